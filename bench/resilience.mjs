/**
 * Cost of the armed resilience chain on the outbound path, with no failures.
 *
 *   baseline   undici.request('http://core/...', { dispatcher: mesh.dispatcher })
 *              cluster of two endpoints, round robin, no route timeout, no policies
 *   candidate  undici.request('http://armed/...', { dispatcher: mesh.dispatcher })
 *              the same endpoints with a route timeout (3s), a retry policy (5xx, reset,
 *              connect-failure; 2 retries; per-try timeout 1s), Envoy circuit-breaker
 *              thresholds with a retry budget, an error-rate breaker and outlier detection
 *
 * Same harness as dispatcher.mjs: the upstream (node:http, keep-alive) runs in a forked
 * child, each round runs both variants in ABBABAAB quarter slices, and the report gives
 * requests/s and client CPU µs per request, medians over rounds and paired ratios.
 *
 * Target (issue #4): the armed chain costs at most 5% more client CPU per request
 * (CPU ratio ≤ 1.05×). A miss prints MISS; the exit code is non-zero only on a crash.
 *
 * Knobs: BENCH_ROUNDS (11), BENCH_DURATION (ms per variant per round, 1000),
 * BENCH_WARMUP (ms per variant, 1000), BENCH_CONCURRENCY (32).
 */
import { request } from 'undici'
import { createMesh } from '../dist/index.js'
import { addUp, runSlice, startUpstreamChild } from './lib/client-slices.mjs'
import { emitResult, envNumber, fmt, header, median, pad, padEnd, pairedRatio, verdict } from './lib/common.mjs'

const ROUNDS = envNumber('BENCH_ROUNDS', 11)
const DURATION = envNumber('BENCH_DURATION', 1000)
const WARMUP = envNumber('BENCH_WARMUP', 1000)
const CONCURRENCY = envNumber('BENCH_CONCURRENCY', 32)
const VARIANTS = ['core', 'armed']

header('resilience: the armed policy chain (timeout, retries, breakers, outlier detection) vs the core path', {
  BENCH_ROUNDS: ROUNDS, BENCH_DURATION: `${DURATION}ms`, BENCH_WARMUP: `${WARMUP}ms`, BENCH_CONCURRENCY: CONCURRENCY,
})

// ---------------------------------------------------------------- upstream child

const upstream = await startUpstreamChild()
const [portA, portB] = upstream.ports

// ---------------------------------------------------------------- clients

const PATH = '/reviews/1'
const endpoints = [{ address: `http://127.0.0.1:${portA}` }, { address: `http://127.0.0.1:${portB}` }]
const mesh = createMesh({
  service: 'bench',
  config: {
    clusters: [
      { name: 'core', endpoints },
      {
        name: 'armed',
        endpoints,
        circuitBreakers: { maxRequests: 1024, maxPendingRequests: 1024, retryBudget: { budgetPercent: 20, minRetryConcurrency: 3 }, errorRate: {} },
        outlierDetection: {},
      },
    ],
    virtualHosts: [
      { name: 'core', domains: ['core'], routes: [{ name: 'core', match: { prefix: '/' }, route: { cluster: 'core', timeout: 0 } }] },
      {
        name: 'armed',
        domains: ['armed'],
        routes: [{
          name: 'armed',
          match: { prefix: '/' },
          route: { cluster: 'armed', timeout: '3s', retryPolicy: { retryOn: '5xx,reset,connect-failure', numRetries: 2, perTryTimeout: '1s' } },
        }],
      },
    ],
  },
})

/** One request each; resolves to the status code. Bodies are always consumed. */
const calls = {
  core: async () => {
    const { statusCode, body } = await request(`http://core${PATH}`, { dispatcher: mesh.dispatcher })
    await body.dump()
    return statusCode
  },
  armed: async () => {
    const { statusCode, body } = await request(`http://armed${PATH}`, { dispatcher: mesh.dispatcher })
    await body.dump()
    return statusCode
  },
}

/** One slice of variant `name` for `ms`. */
function runFor(name, ms) {
  return runSlice(calls[name], ms, CONCURRENCY, upstream.serverCpu)
}

// ---------------------------------------------------------------- rounds

for (const v of VARIANTS) await runFor(v, WARMUP)

/**
 * A round: both variants as ABBABAAB in quarter slices (mirrored in odd rounds), so load
 * (mirrored in odd rounds), so load bursts from other processes and drift within the round
 * hit every variant alike, then the informational fetch group as ABBA in half slices.
 * Per-round figures of a variant add up its slices of that round.
 */
const GROUPS = [['core', 'armed']]
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
  if (gated) targets.push(verdict(`${candidate}/${baseline} CPU per request`, cpu, '<=', 1.05, '×'))
}
pair('armed', 'core', true)
const stats = mesh.metrics.snapshot().resilience['armed']
console.log(`\narmed cluster counters: retries ${stats?.retries}, overflows ${JSON.stringify(stats?.overflows)}, breaker ${stats?.breakers?.['(cluster)']?.state}`)

emitResult('resilience', { medians: med, ratios, targets, knobs: { ROUNDS, DURATION, WARMUP, CONCURRENCY } })

// ---------------------------------------------------------------- teardown

await mesh.close()
await upstream.stop()
