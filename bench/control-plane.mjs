/**
 * The control plane at fleet scale.
 *
 * Part 1 — push latency, memory, CPU. `sidecarless control-plane` runs in its own process
 * (as in production); this process holds N clients (default 100), each a raw ADS stream
 * (@grpc/grpc-js, our codec) subscribed as a proxyless gRPC client is (one listener, its
 * routes, two clusters, their endpoints) and ACKing every response at once. Each round
 * edits the watched file (a new split). Measured:
 *   - file edit → every client has the new routes (p50/p99 over rounds of the time to the
 *     last client; this includes the watcher's 250 ms debounce);
 *   - memory per connected client (the child's RSS and heap, before and after connecting);
 *   - CPU per push (the child's user+system time over the rounds, per push: validate,
 *     build the snapshot, send to every client, take their ACKs).
 *
 * Part 1b — `cp.traffic.split` → every client has ACKed (p50/p99), in this process, and its
 * baseline: the same N streams, one pre-encoded response written to each by a bare gRPC
 * server and ACKed (the floor of any push on this machine); the ratio is printed.
 *
 * Part 2 — a snapshot of 1,000 clusters (two subsets each: 3,000 xDS clusters) and 10,000
 * routes in 1,000 virtual hosts, in this process: createControlPlane, an update that
 * changes every split, a wildcard client receiving the whole state; baseline mesh.update of
 * the same config.
 *
 *   npm run build && node bench/control-plane.mjs
 * Knobs: BENCH_CLIENTS (100), BENCH_ROUNDS (20), BENCH_CLUSTERS (1000), BENCH_VHOSTS (1000),
 * BENCH_ROUTES_PER_VHOST (10).
 */
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import grpc from '@grpc/grpc-js'
import { createControlPlane, createMesh } from '../build/src/index.js'
import { loadXdsCodec } from '../build/src/xds/protos.js'
import { adsService } from '../build/src/xds/services.js'
import { buildConfig } from './lib/mesh-config.mjs'
import { emitResult, envNumber, fmt, header, median, verdict } from './lib/common.mjs'

const here = dirname(fileURLToPath(import.meta.url))
const CLIENTS = envNumber('BENCH_CLIENTS', 100)
const ROUNDS = envNumber('BENCH_ROUNDS', 20)
const CLUSTERS = envNumber('BENCH_CLUSTERS', 1000)
const VHOSTS = envNumber('BENCH_VHOSTS', 1000)
const PER_VHOST = envNumber('BENCH_ROUTES_PER_VHOST', 10)

const LDS = 'type.googleapis.com/envoy.config.listener.v3.Listener'
const RDS = 'type.googleapis.com/envoy.config.route.v3.RouteConfiguration'
const CDS = 'type.googleapis.com/envoy.config.cluster.v3.Cluster'
const EDS = 'type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment'

header('control plane: push to 100 clients, and a 1,000-cluster / 10,000-route snapshot', {
  BENCH_CLIENTS: CLIENTS, BENCH_ROUNDS: ROUNDS, BENCH_CLUSTERS: CLUSTERS, BENCH_VHOSTS: VHOSTS, BENCH_ROUTES_PER_VHOST: PER_VHOST,
})

const codec = await loadXdsCodec()
const service = adsService(codec)
const Ads = grpc.makeGenericClientConstructor(service, 'ADS')
const percentile = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]
}

/**
 * A client subscribed as gRPC is: LDS [listener] → RDS [route] → CDS/EDS [clusters]; every
 * response ACKed at once. `onRoutes(version, at)` sees each routes response.
 */
function adsClient(address, id, onRoutes) {
  const client = new Ads(address, grpc.credentials.createInsecure())
  const call = client.StreamAggregatedResources()
  const names = { [LDS]: ['reviews:9080'], [RDS]: ['reviews'], [CDS]: ['outbound|9080|v1|reviews', 'outbound|9080|v2|reviews'], [EDS]: ['outbound|9080|v1|reviews', 'outbound|9080|v2|reviews'] }
  let ready
  const synced = new Promise((resolve) => { ready = resolve })
  const seen = new Set()
  call.on('data', (r) => {
    call.write({ type_url: r.type_url, version_info: r.version_info, response_nonce: r.nonce, resource_names: names[r.type_url] ?? [] })
    if (r.type_url === RDS) onRoutes(r.version_info, performance.now())
    seen.add(r.type_url)
    if (seen.size === 4) ready()
  })
  call.on('error', () => {})
  call.write({ node: { id: `bench-${id}`, cluster: 'bench' }, type_url: LDS, resource_names: names[LDS] })
  for (const t of [RDS, CDS, EDS]) call.write({ type_url: t, resource_names: names[t] })
  return { synced, close: () => { call.cancel(); client.close() } }
}

// ------------------------------------------------------------------ part 1

const dir = mkdtempSync(join(tmpdir(), 'sidecarless-bench-cp-'))
const file = join(dir, 'mesh.json')
const fleet = (w) => ({
  clusters: [{
    name: 'reviews',
    endpoints: [{ address: '10.0.0.1:9080', labels: { version: 'v1' } }, { address: '10.0.0.2:9080', labels: { version: 'v2' } }],
    subsets: [{ name: 'v1', labels: { version: 'v1' } }, { name: 'v2', labels: { version: 'v2' } }],
  }],
  virtualHosts: [{ name: 'reviews', domains: ['reviews'], routes: [{ match: { prefix: '/' }, route: { weightedClusters: [{ cluster: 'reviews', subset: 'v1', weight: 100 - w }, { cluster: 'reviews', subset: 'v2', weight: w }] } }] }],
})
writeFileSync(file, JSON.stringify(fleet(0)))
const child = spawn(process.execPath, [join(here, '../build/src/cli/main.js'), 'control-plane', '-c', file, '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0'], { stdio: ['ignore', 'pipe', 'pipe'] })
child.stderr.resume()
const lines = createInterface({ input: child.stdout })
const addresses = await new Promise((resolve) => {
  const found = {}
  lines.on('line', (l) => {
    const m = /listening on (\S+)/.exec(l)
    if (m) found.ads = m[1]
    const a = /admin on (\S+)/.exec(l)
    if (a) found.admin = a[1]
    if (found.ads && found.admin) resolve(found)
  })
})
const serverInfo = async () => (await fetch(`${addresses.admin}/server_info`)).json()
const settle = () => new Promise((r) => setTimeout(r, 500))

await settle()
const empty = await serverInfo()
/** Per client: the routes version it last received, and when. */
const latest = new Map()
const clients = []
for (let i = 0; i < CLIENTS; i++) clients.push(adsClient(addresses.ads, i, (version, at) => latest.set(i, { version, at })))
await Promise.all(clients.map((c) => c.synced))
await settle()
const connected = await serverInfo()
const perClientRss = (connected.memory.rss - empty.memory.rss) / CLIENTS
const perClientHeap = (connected.memory.heap_used - empty.memory.heap_used) / CLIENTS
console.log(`memory per connected client (the control plane's process): RSS ${fmt(perClientRss / 1024, 1)} KiB, heap ${fmt(perClientHeap / 1024, 1)} KiB`)

const lastClient = []
const everyClient = []
const cpuBefore = (await serverInfo()).cpu_us
for (let r = 1; r <= ROUNDS; r++) {
  const before = latest.get(0).version
  const roundStart = performance.now()
  writeFileSync(file, JSON.stringify(fleet(r % 2 === 0 ? 10 : 20)))
  await new Promise((resolve) => {
    const poll = () => {
      const all = [...latest.values()]
      if (all.length === CLIENTS && all.every((x) => x.version !== before && x.version === all[0].version)) resolve()
      else setTimeout(poll, 1)
    }
    poll()
  })
  const times = [...latest.values()].map((x) => x.at - roundStart)
  lastClient.push(Math.max(...times))
  everyClient.push(...times)
}
const cpuAfter = (await serverInfo()).cpu_us
const cpuPerPush = ((cpuAfter.user - cpuBefore.user) + (cpuAfter.system - cpuBefore.system)) / ROUNDS
console.log(`file edit → all ${CLIENTS} clients have the new routes (includes the 250 ms watch debounce): p50 ${fmt(median(lastClient), 1)} ms, p99 ${fmt(percentile(lastClient, 99), 1)} ms`)
console.log(`  every client's own time: p50 ${fmt(percentile(everyClient, 50), 1)} ms, p99 ${fmt(percentile(everyClient, 99), 1)} ms`)
console.log(`CPU per push (control plane process, validate + build + send to ${CLIENTS}): ${fmt(cpuPerPush / 1000, 2)} ms`)
for (const c of clients) c.close()
child.kill('SIGTERM')

// Part 1b: the same push in-process through cp.traffic.split (no file watch), and the floor.
const cp = await createControlPlane({ config: fleet(0), listen: '127.0.0.1:0', log: () => {} })
const splitLatencies = []
const splitEvery = []
{
  let target = ''
  let start = 0
  const got = new Map()
  const cs = []
  for (let i = 0; i < CLIENTS; i++) {
    cs.push(adsClient(cp.address, i, (version, at) => {
      if (version === target && !got.has(i)) {
        got.set(i, at)
        splitEvery.push(at - start)
      }
    }))
  }
  await Promise.all(cs.map((c) => c.synced))
  for (let r = 1; r <= ROUNDS; r++) {
    got.clear()
    start = performance.now()
    const applied = await cp.traffic.split('reviews', { v1: 100 - r, v2: r })
    target = applied.versions.routes
    await new Promise((resolve) => {
      const poll = () => (got.size === CLIENTS && cp.clients().every((c) => c.inSync) ? resolve() : setImmediate(poll))
      poll()
    })
    splitLatencies.push(performance.now() - start)
  }
  for (const c of cs) c.close()
}
await cp.close()

// The floor: a bare gRPC server writes one pre-encoded response to each of N streams; every client ACKs.
const floor = []
{
  const server = new grpc.Server()
  const calls = []
  let acks = 0
  server.addService(service, {
    StreamAggregatedResources: (call) => {
      calls.push(call)
      call.on('data', (req) => { if (req.response_nonce) acks++ })
      call.on('error', () => {})
    },
    DeltaAggregatedResources: (call) => call.end(),
  })
  const port = await new Promise((res, rej) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? rej(e) : res(p))))
  const cs = []
  for (let i = 0; i < CLIENTS; i++) {
    const client = new Ads(`127.0.0.1:${port}`, grpc.credentials.createInsecure())
    const call = client.StreamAggregatedResources()
    call.on('data', (r) => call.write({ type_url: r.type_url, version_info: r.version_info, response_nonce: r.nonce }))
    call.on('error', () => {})
    call.write({ node: { id: `floor-${i}` }, type_url: RDS })
    cs.push({ close: () => { call.cancel(); client.close() } })
  }
  while (calls.length < CLIENTS) await new Promise((r) => setTimeout(r, 5))
  const routes = codec.encode('envoy.config.route.v3.RouteConfiguration', { name: 'reviews', virtual_hosts: [{ name: 'reviews', domains: ['reviews', 'reviews:*'], routes: [{ match: { prefix: '/' }, route: { weighted_clusters: { clusters: [{ name: 'outbound|9080|v1|reviews', weight: 90 }, { name: 'outbound|9080|v2|reviews', weight: 10 }], total_weight: 100 } } }] }] })
  for (let r = 1; r <= ROUNDS; r++) {
    acks = 0
    const start = performance.now()
    for (const call of calls) call.write({ version_info: String(r), resources: [{ type_url: RDS, value: routes }], type_url: RDS, nonce: String(r) })
    await new Promise((resolve) => {
      const poll = () => (acks >= CLIENTS ? resolve() : setImmediate(poll))
      poll()
    })
    floor.push(performance.now() - start)
  }
  for (const c of cs) c.close()
  server.forceShutdown()
}
console.log(`cp.traffic.split → all ${CLIENTS} clients ACKed (in-process): p50 ${fmt(median(splitLatencies), 1)} ms, p99 ${fmt(percentile(splitLatencies, 99), 1)} ms; every client's own p99 ${fmt(percentile(splitEvery, 99), 1)} ms`)
console.log(`floor (bare server writes one response to ${CLIENTS} streams, all ACK): p50 ${fmt(median(floor), 1)} ms`)
const pushRatio = median(splitLatencies) / median(floor)
console.log(`split push ÷ floor: ${fmt(pushRatio, 2)}×`)

// ------------------------------------------------------------------ part 2

const clusterOf = (vh, j) => `c${(vh + (j % 2)) % CLUSTERS}`
const big = (w) => buildConfig({ clusters: CLUSTERS, vhosts: VHOSTS, perVhost: PER_VHOST, cluster: clusterOf, weights: w })
const configA = big([90, 10])
const configB = big([50, 50])
const routeCount = configA.virtualHosts.reduce((n, v) => n + v.routes.length, 0)
globalThis.gc?.()
const heap0 = process.memoryUsage().heapUsed
let t0 = performance.now()
const large = await createControlPlane({ config: configA, listen: '127.0.0.1:0', log: () => {} })
const createMs = performance.now() - t0
globalThis.gc?.()
const heapCp = process.memoryUsage().heapUsed - heap0
const res = large.resources()
const bytes = (kind) => res[kind].length
console.log(`\nsnapshot: ${fmt(configA.clusters.length)} clusters, ${fmt(routeCount)} routes → ${fmt(bytes('listeners'))} listeners, ${fmt(bytes('routes'))} route configurations, ${fmt(bytes('clusters'))} clusters, ${fmt(bytes('endpoints'))} load assignments`)
const updates = []
for (let r = 0; r < 5; r++) {
  t0 = performance.now()
  await large.update(r % 2 === 0 ? configB : configA)
  updates.push(performance.now() - t0)
}
// A wildcard client (Envoy-style): every listener and cluster, then every route and load assignment.
t0 = performance.now()
const wild = await new Promise((resolve) => {
  const client = new Ads(large.address, grpc.credentials.createInsecure())
  const call = client.StreamAggregatedResources()
  let size = 0
  let got = 0
  call.on('data', (r) => {
    size += r.resources.length
    got++
    if (r.type_url === LDS) call.write({ type_url: RDS, resource_names: res.routes.map((x) => x.name) })
    if (r.type_url === CDS) call.write({ type_url: EDS, resource_names: res.endpoints.map((x) => x.name) })
    if (got === 4) {
      call.cancel()
      client.close()
      resolve({ ms: performance.now() - t0, size })
    }
  })
  call.on('error', () => {})
  call.write({ node: { id: 'wildcard' }, type_url: LDS })
  call.write({ type_url: CDS })
})
await large.close()
const mesh = createMesh({ config: configA })
const meshUpdates = []
for (let r = 0; r < 5; r++) {
  t0 = performance.now()
  await mesh.update(r % 2 === 0 ? configB : configA)
  meshUpdates.push(performance.now() - t0)
}
await mesh.close()
console.log(`createControlPlane: ${fmt(createMs, 0)} ms; heap held ${fmt(heapCp / 1024 / 1024, 1)} MiB${globalThis.gc ? '' : ' (run with --expose-gc for a steadier figure)'}`)
console.log(`cp.update (every split changed): median ${fmt(median(updates), 0)} ms; mesh.update of the same: ${fmt(median(meshUpdates), 0)} ms (${fmt(median(updates) / median(meshUpdates), 2)}×)`)
console.log(`a wildcard client receives the whole state (${fmt(wild.size)} resources) in ${fmt(wild.ms, 0)} ms`)
rmSync(dir, { recursive: true, force: true })

const targets = [
  verdict('split → every client ACKed, p99', percentile(splitLatencies, 99), '<=', 1000, ' ms'),
  verdict('file edit → every client has the routes, p99', percentile(lastClient, 99), '<=', 1000, ' ms'),
]
emitResult('control-plane', {
  clients: CLIENTS,
  fileEditP50Ms: median(lastClient), fileEditP99Ms: percentile(lastClient, 99),
  splitP50Ms: median(splitLatencies), splitP99Ms: percentile(splitLatencies, 99), floorP50Ms: median(floor), pushRatio,
  memoryPerClientRss: perClientRss, memoryPerClientHeap: perClientHeap, cpuPerPushMs: cpuPerPush / 1000,
  largeCreateMs: createMs, largeUpdateMs: median(updates), meshUpdateMs: median(meshUpdates), wildcardMs: wild.ms,
  targets,
})
process.exit(0)
