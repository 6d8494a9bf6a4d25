/**
 * Outbound overhead of the mesh dispatcher.
 *
 *   baseline   undici.request(url, { dispatcher: new Pool(origin) })      one endpoint
 *   candidate  undici.request('http://reviews/...', { dispatcher: mesh.dispatcher })
 *              route: reviews v1/v2 weighted 50/50, one endpoint per subset
 *   info       undici.fetch(url, { dispatcher: new Agent() }) vs mesh.fetch('http://reviews/...')
 *
 * The upstream (node:http, keep-alive, fixed 56-byte body) runs in a forked child listening
 * on two loopback ports, so this process's CPU is the client's alone. Each round gives every
 * variant BENCH_DURATION ms at BENCH_CONCURRENCY requests in flight: the gated pair as eight
 * quarter slices in ABBABAAB order (mirrored in odd rounds), so drift and load bursts inside
 * a round hit both alike, then the fetch pair as four half slices (ABBA). Reported:
 * requests/s and client CPU µs per request (process.cpuUsage() delta / requests), the
 * upstream's CPU, TCP connections it accepted, and the CPU everything else on
 * the machine used meanwhile ("others", from /proc/stat: a noisy round shows there),
 * medians over rounds, and paired ratios (median over rounds of candidate/baseline of the
 * same round; the ratio of the medians is printed beside it).
 *
 * Targets: throughput ratio ≥ 0.95×, CPU/request ratio ≤ 1.10×. A miss prints MISS; the
 * exit code is non-zero only when something crashes.
 *
 * Knobs: BENCH_ROUNDS (11), BENCH_DURATION (ms per variant per round, 1000),
 * BENCH_WARMUP (ms per variant, 1000), BENCH_CONCURRENCY (32), BENCH_VARIANTS (comma list of pool,mesh,agent-fetch,mesh-fetch; also
 * two diagnostics: pool2, two plain Pools alternated, one per port, the mesh's topology
 * without the mesh; mesh1, the mesh to one endpoint without a split, its code path alone).
 */
import { Agent, Pool, fetch as undiciFetch, request } from 'undici'
import { createMesh } from '../dist/index.js'
import { addUp, runSlice, startUpstreamChild } from './lib/client-slices.mjs'
import { emitResult, envNumber, fmt, header, median, pad, padEnd, pairedRatio, verdict } from './lib/common.mjs'

const ROUNDS = envNumber('BENCH_ROUNDS', 11)
const DURATION = envNumber('BENCH_DURATION', 1000)
const WARMUP = envNumber('BENCH_WARMUP', 1000)
const CONCURRENCY = envNumber('BENCH_CONCURRENCY', 32)
const ALL_VARIANTS = ['pool', 'mesh', 'agent-fetch', 'mesh-fetch', 'pool2', 'mesh1']
const DEFAULT_VARIANTS = ['pool', 'mesh', 'agent-fetch', 'mesh-fetch']
const VARIANTS = (process.env.BENCH_VARIANTS ?? DEFAULT_VARIANTS.join(',')).split(',').map((s) => s.trim()).filter(Boolean)
for (const v of VARIANTS) if (!ALL_VARIANTS.includes(v)) throw new Error(`unknown variant ${v}; known: ${ALL_VARIANTS.join(', ')}`)

header('dispatcher: undici.request through mesh.dispatcher (50/50 split) vs a plain Pool', {
  BENCH_ROUNDS: ROUNDS, BENCH_DURATION: `${DURATION}ms`, BENCH_WARMUP: `${WARMUP}ms`, BENCH_CONCURRENCY: CONCURRENCY,
  variants: VARIANTS.join(','),
})

// ---------------------------------------------------------------- upstream child

const upstream = await startUpstreamChild()
const [portA, portB] = upstream.ports

// ---------------------------------------------------------------- clients

const originA = `http://127.0.0.1:${portA}`
const PATH = '/reviews/1'
const pool = new Pool(originA)
// pool2 (diagnostic, not run by default): alternates two plain Pools, one per port, the same
// topology as the mesh's two endpoints without the mesh.
const poolB = new Pool(`http://127.0.0.1:${portB}`)
const poolBUrl = `http://127.0.0.1:${portB}${PATH}`
let flip = 0
const agent = new Agent()
const mesh = createMesh({
  service: 'bench',
  config: {
    clusters: [{
      name: 'reviews-one',
      endpoints: [{ address: `http://127.0.0.1:${portA}` }],
    }, {
      name: 'reviews',
      endpoints: [
        { address: `http://127.0.0.1:${portA}`, labels: { version: 'v1' } },
        { address: `http://127.0.0.1:${portB}`, labels: { version: 'v2' } },
      ],
      subsets: [
        { name: 'v1', labels: { version: 'v1' } },
        { name: 'v2', labels: { version: 'v2' } },
      ],
    }],
    virtualHosts: [{
      // mesh1 (diagnostic): one cluster, one endpoint, no split; the mesh's code path alone.
      name: 'reviews-one',
      domains: ['reviews-one'],
      routes: [{ name: 'one', match: { prefix: '/' }, route: { cluster: 'reviews-one' } }],
    }, {
      name: 'reviews',
      domains: ['reviews', 'reviews.default.svc.cluster.local'],
      routes: [{
        name: 'split',
        match: { prefix: '/' },
        route: { weightedClusters: [{ cluster: 'reviews', subset: 'v1', weight: 50 }, { cluster: 'reviews', subset: 'v2', weight: 50 }] },
      }],
    }],
  },
})

const poolUrl = `${originA}${PATH}`
const meshUrl = `http://reviews${PATH}`
const mesh1Url = `http://reviews-one${PATH}`

/** One request each; resolves to the status code. Bodies are always consumed. */
const calls = {
  pool: async () => {
    const { statusCode, body } = await request(poolUrl, { dispatcher: pool })
    await body.dump()
    return statusCode
  },
  mesh: async () => {
    const { statusCode, body } = await request(meshUrl, { dispatcher: mesh.dispatcher })
    await body.dump()
    return statusCode
  },
  mesh1: async () => {
    const { statusCode, body } = await request(mesh1Url, { dispatcher: mesh.dispatcher })
    await body.dump()
    return statusCode
  },
  pool2: async () => {
    const b = (flip ^= 1) === 1
    const { statusCode, body } = await request(b ? poolBUrl : poolUrl, { dispatcher: b ? poolB : pool })
    await body.dump()
    return statusCode
  },
  'agent-fetch': async () => {
    const res = await undiciFetch(poolUrl, { dispatcher: agent })
    await res.text()
    return res.status
  },
  'mesh-fetch': async () => {
    const res = await mesh.fetch(meshUrl)
    await res.text()
    return res.status
  },
}

/** One slice of variant `name` for `ms`. */
function runFor(name, ms) {
  return runSlice(calls[name], ms, CONCURRENCY, upstream.serverCpu)
}

// ---------------------------------------------------------------- sanity check of the split

{
  const counts = {}
  for (let i = 0; i < 200; i++) {
    const { statusCode, headers, body } = await request(meshUrl, { dispatcher: mesh.dispatcher })
    await body.dump()
    if (statusCode !== 200) throw new Error(`mesh answered ${statusCode} (${String(headers['x-sidecarless-response-flags'])})`)
    const s = String(headers['x-sidecarless-subset'])
    counts[s] = (counts[s] ?? 0) + 1
  }
  console.log(`split check (200 requests): ${JSON.stringify(counts)}`)
  if (!(counts.v1 > 50 && counts.v2 > 50)) throw new Error('the 50/50 split does not reach both subsets')
}

// ---------------------------------------------------------------- rounds

for (const v of VARIANTS) await runFor(v, WARMUP)

/**
 * A round: the undici.request group (pool, mesh[, pool2, mesh1]) as ABBABAAB in quarter slices
 * (mirrored in odd rounds), so load bursts from other processes and drift within the round
 * hit every variant alike, then the informational fetch group as ABBA in half slices.
 * Per-round figures of a variant add up its slices of that round.
 */
const GROUPS = [['pool', 'mesh', 'pool2', 'mesh1'], ['agent-fetch', 'mesh-fetch']]
  .map((g) => g.filter((v) => VARIANTS.includes(v)))
  .filter((g) => g.length > 0)
const results = Object.fromEntries(VARIANTS.map((v) => [v, []]))
console.log(`${padEnd('round', 6)}${padEnd('variant', 13)}${pad('req/s', 10)}${pad('cpu µs/req', 12)}${pad('client cpu', 12)}${pad('server cpu', 12)}${pad('others', 9)}${pad('connects', 10)}${pad('non-200', 9)}`)
for (let r = 0; r < ROUNDS; r++) {
  const slices = Object.fromEntries(VARIANTS.map((v) => [v, []]))
  for (const [gi, g] of GROUPS.entries()) {
    const ab = r % 2 === 0 ? g : [...g].reverse()
    const ba = [...ab].reverse()
    // ABBA BAAB for the request group (quarter slices), ABBA for the fetch group (half slices).
    const order = gi === 0 ? [...ab, ...ba, ...ba, ...ab] : [...ab, ...ba]
    const slice = (DURATION * g.length) / order.length
    for (const v of order) slices[v].push(await runFor(v, slice))
  }
  for (const v of GROUPS.flat()) {
    const res = addUp(slices[v])
    results[v].push(res)
    console.log(`${padEnd(r + 1, 6)}${padEnd(v, 13)}${pad(fmt(res.rps), 10)}${pad(fmt(res.cpuPerReq, 1), 12)}${pad(fmt(res.clientCpuPct) + '%', 12)}${pad(fmt(res.serverCpuPct) + '%', 12)}${pad(fmt(res.othersPct) + '%', 9)}${pad(res.connects, 10)}${pad(res.bad, 9)}`)
    if (res.bad > 0) throw new Error(`${v}: ${res.bad} responses were not 200`)
  }
}

// ---------------------------------------------------------------- summary

console.log('\nmedians over rounds:')
const med = {}
for (const v of VARIANTS) {
  const rs = results[v]
  med[v] = {
    rps: median(rs.map((x) => x.rps)),
    cpuPerReq: median(rs.map((x) => x.cpuPerReq)),
    clientCpuPct: median(rs.map((x) => x.clientCpuPct)),
    serverCpuPct: median(rs.map((x) => x.serverCpuPct)),
    othersPct: median(rs.map((x) => x.othersPct)),
  }
  console.log(`  ${padEnd(v, 12)} ${pad(fmt(med[v].rps), 8)} req/s  ${pad(fmt(med[v].cpuPerReq, 1), 7)} µs CPU/req  (client ${fmt(med[v].clientCpuPct)}%, server ${fmt(med[v].serverCpuPct)}%, others ${fmt(med[v].othersPct)}% of a core)`)
}

const targets = []
const ratios = {}
function pair(candidate, baseline, gated) {
  if (!VARIANTS.includes(candidate) || !VARIANTS.includes(baseline)) return
  const c = results[candidate]
  const b = results[baseline]
  const thr = pairedRatio(c.map((x) => x.rps), b.map((x) => x.rps))
  const cpu = pairedRatio(c.map((x) => x.cpuPerReq), b.map((x) => x.cpuPerReq))
  ratios[`${candidate}/${baseline}`] = { throughput: thr, cpuPerRequest: cpu, throughputOfMedians: med[candidate].rps / med[baseline].rps, cpuOfMedians: med[candidate].cpuPerReq / med[baseline].cpuPerReq }
  console.log(`\n${candidate} vs ${baseline} (median of per-round ratios; ratio of medians in brackets):`)
  const spread = (xs) => { const s = [...xs].sort((x, y) => x - y); return `per-round ${fmt(s[0], 3)}–${fmt(s[s.length - 1], 3)}` }
  const thrRounds = c.map((x, i) => x.rps / b[i].rps)
  const cpuRounds = c.map((x, i) => x.cpuPerReq / b[i].cpuPerReq)
  console.log(`  throughput    ${fmt(thr, 3)}×  [${fmt(med[candidate].rps / med[baseline].rps, 3)}×]  (${spread(thrRounds)})`)
  console.log(`  CPU/request   ${fmt(cpu, 3)}×  [${fmt(med[candidate].cpuPerReq / med[baseline].cpuPerReq, 3)}×]   (${spread(cpuRounds)}; ${fmt(med[candidate].cpuPerReq - med[baseline].cpuPerReq, 1)} µs/req difference of medians)`)
  if (gated) {
    targets.push(verdict(`${candidate}/${baseline} throughput`, thr, '>=', 0.95, '×'))
    targets.push(verdict(`${candidate}/${baseline} CPU per request`, cpu, '<=', 1.1, '×'))
  } else {
    console.log('  (informational, no target)')
  }
}
pair('mesh', 'pool', true)
pair('mesh-fetch', 'agent-fetch', false)
pair('pool2', 'pool', false)
pair('mesh1', 'pool', false)

emitResult('dispatcher', { medians: med, ratios, targets, knobs: { ROUNDS, DURATION, WARMUP, CONCURRENCY } })

// ---------------------------------------------------------------- teardown

await Promise.all([mesh.close(), pool.close(), poolB.close(), agent.close()])
await upstream.stop()
