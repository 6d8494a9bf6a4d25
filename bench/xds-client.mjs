/**
 * The xDS client at scale: 1,000 services, each an outbound Listener with RDS (10 routes:
 * prefixes, header matches, retries, a weighted catch-all), an EDS Cluster and two
 * endpoints — 1,000 clusters and 10,000 routes — served by a forked ADS server
 * (lib/ads-server-child.mjs) so this process's CPU is the client's alone.
 *
 *   baseline   createMesh({ config }) with the same config in our model, and mesh.update()
 *              of it with one split changed: what the store costs with no xDS at all
 *   xds        createMesh({ xds, listeners: [all 1,000] }) until every tree is in force
 *              (subscribe, decode, translate, compose, validate, compile); then one
 *              RouteConfiguration changed at the server, until the new snapshot is in force
 *
 * Reports: time and client CPU to the first full config, heap after GC (baseline mesh vs
 * xDS mesh), and the median time from a changed resource leaving the server to the new
 * snapshot in force, against mesh.update() of the same config (ratio). Measured on a loaded
 * machine these are indications, not figures to quote.
 *
 * Knobs: BENCH_SERVICES (1000), BENCH_ROUTES (10 per service), BENCH_ROUNDS (11).
 */
import { fork } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import v8 from 'node:v8'
import vm from 'node:vm'
import { createMesh } from '../dist/index.js'
import { emitResult, envNumber, fmt, header, median, verdict } from './lib/common.mjs'

const SERVICES = envNumber('BENCH_SERVICES', 1000)
const ROUTES = envNumber('BENCH_ROUTES', 10)
const ROUNDS = envNumber('BENCH_ROUNDS', 11)

header('xds-client: 1,000 clusters / 10,000 routes over ADS', { BENCH_SERVICES: SERVICES, BENCH_ROUTES: ROUTES, BENCH_ROUNDS: ROUNDS })

v8.setFlagsFromString('--expose-gc')
const gc = vm.runInNewContext('gc')
function heapMb() {
  gc()
  gc()
  return process.memoryUsage().heapUsed / 1048576
}

const child = fork(fileURLToPath(new URL('./lib/ads-server-child.mjs', import.meta.url)), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
const address = await new Promise((resolve) => {
  child.once('message', (m) => resolve(m.address))
  child.send({ start: { services: SERVICES, routes: ROUTES, endpointPort: 1 } })
})

// The same config in our model, as the composition writes it.
const cluster = (i) => `outbound|80||svc-${i % SERVICES}.bench.svc.cluster.local`
function modelConfig(weights) {
  const clusters = []
  const virtualHosts = []
  for (let i = 0; i < SERVICES; i++) {
    clusters.push({ name: cluster(i), endpoints: [{ address: 'http://127.0.0.1:1' }, { address: 'http://127.0.0.1:2' }] })
    const routes = []
    for (let j = 0; j < ROUTES; j++) {
      const last = j === ROUTES - 1
      routes.push({
        name: `r${j}`,
        match: last ? { prefix: '/' } : { prefix: `/p${j}/`, ...(j % 3 === 0 ? { headers: [{ name: 'x-user', exact: `u${j}` }] } : {}) },
        route: last
          ? { weightedClusters: [{ cluster: cluster(i), weight: weights(i) }, { cluster: cluster(i + 1), weight: 100 - weights(i) }], timeout: '0s' }
          : { cluster: cluster(i + (j % 2)), timeout: '0s', ...(j % 4 === 0 ? { retryPolicy: { retryOn: ['5xx'], numRetries: 2 } } : {}) },
      })
    }
    virtualHosts.push({ name: `svc-${i}:80`, domains: [`svc-${i}:80`, `svc-${i}`], routes })
  }
  return { clusters, virtualHosts }
}

const heap0 = heapMb()
// Baseline: the store alone.
const cfg = modelConfig(() => 90)
let t0 = performance.now()
let cpu0 = process.cpuUsage()
const plain = createMesh({ config: cfg })
const plainCreateMs = performance.now() - t0
const plainCreateCpu = cpuMs(process.cpuUsage(cpu0))
const plainHeap = heapMb() - heap0
const plainUpdates = []
for (let r = 0; r < ROUNDS; r++) {
  const next = modelConfig((i) => (i === r % SERVICES ? (r % 2 === 0 ? 10 : 90) : 90))
  t0 = performance.now()
  await plain.update(next)
  plainUpdates.push(performance.now() - t0)
}
await plain.close()

// The xDS client.
const heap1 = heapMb()
const listeners = Array.from({ length: SERVICES }, (_, i) => `svc-${i}:80`)
t0 = performance.now()
cpu0 = process.cpuUsage()
const mesh = createMesh({ xds: { bootstrap: { xds_servers: [{ server_uri: address, channel_creds: [{ type: 'insecure' }] }], node: { id: 'bench', metadata: { GENERATOR: 'grpc' } } }, listeners, resourceTimeout: '60s' } })
const ready = await mesh.xds.ready()
const xdsReadyMs = performance.now() - t0
const xdsReadyCpu = cpuMs(process.cpuUsage(cpu0))
const xdsHeap = heapMb() - heap1
const st = mesh.xds.status()
const routesInForce = (mesh.config.virtualHosts ?? []).reduce((n, v) => n + v.routes.length, 0)
console.log(`xDS: ready=${ready}, ${fmt(st.resources.length)} resources, ${fmt(mesh.config.clusters?.length ?? 0)} clusters and ${fmt(routesInForce)} routes in force, ${st.counters.configsApplied} configs applied`)

const xdsUpdates = []
for (let r = 0; r < ROUNDS; r++) {
  const applied = new Promise((resolve) => mesh.once('config', resolve))
  const start = performance.now()
  child.send({ bump: r % SERVICES })
  await applied
  xdsUpdates.push(performance.now() - start)
}
await mesh.close()
child.kill()

console.log('')
console.log(`first full config   plain createMesh ${fmt(plainCreateMs, 1)} ms (CPU ${fmt(plainCreateCpu, 1)} ms) | xDS to ready ${fmt(xdsReadyMs, 1)} ms (client CPU ${fmt(xdsReadyCpu, 1)} ms)`)
console.log(`heap after GC       plain ${fmt(plainHeap, 1)} MiB | xDS ${fmt(xdsHeap, 1)} MiB (${fmt(xdsHeap / plainHeap, 2)}×)`)
const plainUpdate = median(plainUpdates)
const xdsUpdate = median(xdsUpdates)
console.log(`one split changed   mesh.update ${fmt(plainUpdate, 1)} ms | server push → snapshot in force ${fmt(xdsUpdate, 1)} ms (${fmt(xdsUpdate / plainUpdate, 2)}×), medians of ${ROUNDS}`)
console.log('')
const results = [
  verdict('push → snapshot in force ÷ mesh.update (same config)', xdsUpdate / plainUpdate, '<=', 2, '×'),
  verdict('heap of the xDS mesh ÷ the file-config mesh', xdsHeap / plainHeap, '<=', 3, '×'),
]
emitResult('xds-client', { services: SERVICES, routes: SERVICES * ROUTES, plainCreateMs, xdsReadyMs, xdsReadyCpu, plainHeap, xdsHeap, plainUpdate, xdsUpdate, results })

function cpuMs(u) {
  return (u.user + u.system) / 1000
}
