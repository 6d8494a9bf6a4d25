/**
 * "Recording costs nothing measurable when nobody reads": the outbound path with the
 * metrics recording as built vs the same path with recording neutralised.
 *
 *   built     undici.request('http://reviews/reviews/1', { dispatcher: mesh.dispatcher }),
 *             route reviews v1/v2 weighted 50/50 (bench/dispatcher.mjs's mesh variant):
 *             every request records into endpoint, subset and cluster
 *   neutral   the same, in a process where MetricsRegistry.prototype.upstream, .inbound and
 *             .cluster (build/src/observability/metrics.js) were replaced, before the mesh was
 *             created, by functions returning one no-op recorder { start(){}, end(){}, fail(){} }
 *             (the baseline: src/ is not touched; the dispatcher still reads the clock and
 *             still calls the recorder, which does nothing)
 *
 * Each variant is its own client process, forked from this script (`--client=<variant>`);
 * the upstream is bench/lib/upstream-server.mjs in a third (node:http on two loopback ports,
 * keep-alive, 56-byte body). This process only orchestrates: a round gives each client
 * BENCH_DURATION ms as BENCH_SLICES slices in ABBABAAB order (mirrored in odd rounds), one
 * client loading at a time with BENCH_CONCURRENCY requests in flight. Per slice the client
 * reports its own process.cpuUsage() delta and request count. Per round and variant:
 * requests/s and client CPU µs per request; the ratio is the median of per-round ratios
 * built ÷ neutral, with a bootstrap 95 % interval of that median (noise band).
 *
 * Target: CPU/request built ÷ neutral ≤ 1.01× (the difference within 1 %). Throughput ratio
 * is informational. For reference, recorder.start() + recorder.end() is micro-measured
 * directly in this process (ns per pair, for the 3-level upstream recorder and the 1-level
 * inbound one, against the same loop over a no-op recorder).
 *
 * Knobs: BENCH_ROUNDS (15), BENCH_DURATION (ms per variant per round, 1000), BENCH_WARMUP
 * (ms per variant, 2000: the JIT of undici and the mesh settles late), BENCH_CONCURRENCY
 * (32), BENCH_SLICES (slices per variant per round, a multiple of 4, 8), BENCH_OPS (recorder
 * pairs per micro sample, 2,000,000), BENCH_AA=1 (diagnostic: leave the 'neutral' client
 * unpatched too, so the ratio measures the noise floor; no target), BENCH_NEUTRAL=istio
 * (neutralise only `IstioSeries.prototype.record`: the ratio is the cost of Istio's series).
 */
import { fork } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { emitResult, envNumber, fmt, header, median, pad, padEnd, pairedRatio, prng, verdict } from './lib/common.mjs'

const VARIANTS = ['built', 'neutral']
const PATH = '/reviews/1'

const clientArg = process.argv.find((a) => a.startsWith('--client='))
if (clientArg !== undefined) await client(clientArg.slice('--client='.length))
else await main()

// ---------------------------------------------------------------- client child

async function client(variant) {
  if (!VARIANTS.includes(variant)) throw new Error(`unknown client variant ${variant}`)
  const CONCURRENCY = envNumber('BENCH_CONCURRENCY', 32)
  const [portA, portB] = process.argv.find((a) => a.startsWith('--ports='))?.slice('--ports='.length).split(',').map(Number) ?? []
  if (variant === 'neutral' && process.env.BENCH_NEUTRAL === 'istio') {
    // Only Istio's series neutralised: built ÷ neutral is what the istio_* recording adds.
    const { IstioSeries } = await import('../build/src/observability/istio-metrics.js')
    if (typeof IstioSeries.prototype.record !== 'function') throw new Error('IstioSeries.prototype.record is not a function: the patch no longer fits build/src/')
    IstioSeries.prototype.record = function noop() {}
  } else if (variant === 'neutral' && process.env.BENCH_AA !== '1') {
    // Must run before the mesh exists: the registry hands out recorders from these methods.
    const { MetricsRegistry } = await import('../build/src/observability/metrics.js')
    const NOOP = Object.freeze({ start() {}, end() {}, fail() {} })
    for (const m of ['upstream', 'inbound', 'cluster']) {
      if (typeof MetricsRegistry.prototype[m] !== 'function') throw new Error(`MetricsRegistry.prototype.${m} is not a function: the patch no longer fits build/src/`)
      MetricsRegistry.prototype[m] = function noopRecorder() {
        return NOOP
      }
    }
  }
  const { request } = await import('undici')
  const { createMesh } = await import('../build/src/index.js')
  const mesh = createMesh({
    service: 'bench',
    config: {
      clusters: [{
        name: 'reviews',
        endpoints: [
          { address: `http://127.0.0.1:${portA}`, labels: { version: 'v1' } },
          { address: `http://127.0.0.1:${portB}`, labels: { version: 'v2' } },
        ],
        subsets: [{ name: 'v1', labels: { version: 'v1' } }, { name: 'v2', labels: { version: 'v2' } }],
      }],
      virtualHosts: [{
        name: 'reviews',
        domains: ['reviews'],
        routes: [{
          name: 'split',
          match: { prefix: '/' },
          route: { weightedClusters: [{ cluster: 'reviews', subset: 'v1', weight: 50 }, { cluster: 'reviews', subset: 'v2', weight: 50 }] },
        }],
      }],
    },
  })
  const url = `http://reviews${PATH}`
  const call = async () => {
    const { statusCode, body } = await request(url, { dispatcher: mesh.dispatcher })
    await body.dump()
    return statusCode
  }
  const recorded = () => mesh.metrics.snapshot().outbound.clusters.reviews?.requests ?? 0

  // Sanity: the split reaches both subsets; the built client counts, the neutral one does not.
  const counts = {}
  for (let i = 0; i < 200; i++) {
    const { statusCode, headers, body } = await request(url, { dispatcher: mesh.dispatcher })
    await body.dump()
    if (statusCode !== 200) throw new Error(`${variant}: mesh answered ${statusCode} (${String(headers['x-sidecarless-response-flags'])})`)
    const s = String(headers['x-sidecarless-subset'])
    counts[s] = (counts[s] ?? 0) + 1
  }
  if (!(counts.v1 > 50 && counts.v2 > 50)) throw new Error(`${variant}: the 50/50 split does not reach both subsets: ${JSON.stringify(counts)}`)
  const expected = variant === 'built' || process.env.BENCH_AA === '1' || process.env.BENCH_NEUTRAL === 'istio' ? 200 : 0
  if (recorded() !== expected) throw new Error(`${variant}: metrics recorded ${recorded()} requests, expected ${expected}`)

  process.send({ ready: true, pid: process.pid, split: counts, recorded: recorded() })
  process.on('message', async (m) => {
    if (m?.cmd === 'run') {
      let n = 0
      let bad = 0
      const c0 = process.cpuUsage()
      const t0 = performance.now()
      const deadline = t0 + m.ms
      const worker = async () => {
        while (performance.now() < deadline) {
          if ((await call()) !== 200) bad++
          n++
        }
      }
      const workers = []
      for (let i = 0; i < CONCURRENCY; i++) workers.push(worker())
      await Promise.all(workers)
      const elapsed = performance.now() - t0
      const c = process.cpuUsage(c0)
      process.send({ seq: m.seq, n, bad, elapsed, cpuMs: (c.user + c.system) / 1000 })
    } else if (m?.cmd === 'stats') {
      process.send({ seq: m.seq, recorded: recorded() })
    }
  })
  process.on('disconnect', () => {
    void mesh.close().finally(() => process.exit(0))
    setTimeout(() => process.exit(0), 2000).unref()
  })
}

// ---------------------------------------------------------------- orchestrator

async function main() {
  const ROUNDS = envNumber('BENCH_ROUNDS', 15)
  const DURATION = envNumber('BENCH_DURATION', 1000)
  const WARMUP = envNumber('BENCH_WARMUP', 2000)
  const CONCURRENCY = envNumber('BENCH_CONCURRENCY', 32)
  const OPS = envNumber('BENCH_OPS', 2_000_000)
  const SLICES = 4 * Math.ceil(envNumber('BENCH_SLICES', 8) / 4)
  const AA = process.env.BENCH_AA === '1'

  header('metrics: outbound path (mesh.dispatcher, 50/50 split) with recording as built vs neutralised', {
    BENCH_ROUNDS: ROUNDS, BENCH_DURATION: `${DURATION}ms`, BENCH_WARMUP: `${WARMUP}ms`, BENCH_CONCURRENCY: CONCURRENCY, BENCH_SLICES: SLICES, BENCH_OPS: OPS, ...(AA ? { BENCH_AA: 1 } : {}),
  })

  let shuttingDown = false
  const children = []
  function start(file, args, name) {
    const child = fork(file, args, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
    const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })))
    const c = { child, exited, gone: false, seq: 0, name }
    void exited.then(({ code, signal }) => {
      c.gone = true
      if (!shuttingDown) {
        console.error(`${name} child exited unexpectedly (code ${code}, signal ${signal})`)
        process.exit(2)
      }
    })
    children.push(c)
    return c
  }
  function first(c, what, ms = 15_000) {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${c.name} child did not report ${what} within ${ms / 1000}s`)), ms)
      c.child.once('message', (m) => {
        clearTimeout(timer)
        resolve(m)
      })
    })
  }
  function ask(c, msg) {
    const seq = ++c.seq
    return new Promise((resolve) => {
      const on = (m) => {
        if (m?.seq !== seq) return
        c.child.off('message', on)
        resolve(m)
      }
      c.child.on('message', on)
      c.child.send({ ...msg, seq })
    })
  }

  const upstream = start(fileURLToPath(new URL('./lib/upstream-server.mjs', import.meta.url)), [], 'upstream')
  const { ports } = await first(upstream, 'its ports')
  const clients = {}
  for (const v of VARIANTS) {
    clients[v] = start(fileURLToPath(import.meta.url), [`--client=${v}`, `--ports=${ports.join(',')}`], v)
    const hello = await first(clients[v], 'ready')
    console.log(`client ${v}: pid ${hello.pid}, split check ${JSON.stringify(hello.split)}, metrics recorded ${hello.recorded} of 200`)
  }

  async function runFor(v, ms) {
    const u0 = await ask(upstream, { cmd: 'cpu' })
    const m0 = machineBusyMs()
    const r = await ask(clients[v], { cmd: 'run', ms })
    const m1 = machineBusyMs()
    const u1 = await ask(upstream, { cmd: 'cpu' })
    const upstreamMs = (u1.cpu.user + u1.cpu.system - u0.cpu.user - u0.cpu.system) / 1000
    return {
      n: r.n,
      bad: r.bad,
      elapsed: r.elapsed,
      cpuMs: r.cpuMs,
      upstreamMs,
      wall: u1.t - u0.t,
      othersMs: m0 === undefined ? NaN : Math.max(0, m1.busy - m0.busy - r.cpuMs - upstreamMs) + (m1.steal - m0.steal),
    }
  }
  function addUp(slices) {
    const t = { n: 0, bad: 0, elapsed: 0, cpuMs: 0, upstreamMs: 0, wall: 0, othersMs: 0 }
    for (const s of slices) for (const k of Object.keys(t)) t[k] += s[k]
    return {
      ...t,
      rps: (t.n * 1000) / t.elapsed,
      cpuPerReq: (t.cpuMs * 1000) / t.n,
      clientCpuPct: (t.cpuMs / t.elapsed) * 100,
      upstreamCpuPct: (t.upstreamMs / t.wall) * 100,
      othersPct: (t.othersMs / t.wall) * 100,
    }
  }

  // ------------------------------------------------------------ rounds

  for (let pass = 0; pass < 2; pass++) for (const v of VARIANTS) await runFor(v, WARMUP / 2)

  const results = { built: [], neutral: [] }
  console.log(`${padEnd('round', 6)}${padEnd('variant', 9)}${pad('req/s', 9)}${pad('cpu µs/req', 12)}${pad('client cpu', 12)}${pad('upstream', 10)}${pad('others', 9)}${pad('non-200', 9)}`)
  for (let r = 0; r < ROUNDS; r++) {
    const slices = { built: [], neutral: [] }
    const ab = r % 2 === 0 ? VARIANTS : [...VARIANTS].reverse()
    const ba = [...ab].reverse()
    const order = []
    for (let k = 0; k < SLICES / 4; k++) order.push(...(k % 2 === 0 ? [...ab, ...ba, ...ba, ...ab] : [...ba, ...ab, ...ab, ...ba]))
    for (const v of order) slices[v].push(await runFor(v, DURATION / SLICES))
    for (const v of VARIANTS) {
      const res = addUp(slices[v])
      results[v].push(res)
      console.log(`${padEnd(r + 1, 6)}${padEnd(v, 9)}${pad(fmt(res.rps), 9)}${pad(fmt(res.cpuPerReq, 2), 12)}${pad(fmt(res.clientCpuPct) + '%', 12)}${pad(fmt(res.upstreamCpuPct) + '%', 10)}${pad(fmt(res.othersPct) + '%', 9)}${pad(res.bad, 9)}`)
      if (res.bad > 0) throw new Error(`${v}: ${res.bad} responses were not 200`)
    }
  }
  const recorded = {}
  for (const v of VARIANTS) recorded[v] = (await ask(clients[v], { cmd: 'stats' })).recorded
  const served = Object.fromEntries(VARIANTS.map((v) => [v, results[v].reduce((a, x) => a + x.n, 0)]))
  console.log(`\nmetrics check: built recorded ${recorded.built} requests (≥ ${served.built} timed), neutral recorded ${recorded.neutral}`)
  if (AA) console.log('BENCH_AA=1: both clients record (an A/A run: the ratio shows the noise floor)')
  else if (process.env.BENCH_NEUTRAL === 'istio') console.log('BENCH_NEUTRAL=istio: both clients record the sidecarless_* series; only the neutral one skips Istio\'s')
  else if (recorded.neutral !== 0 || recorded.built < served.built) throw new Error('the neutralisation did not take, or the built client did not record')

  // ------------------------------------------------------------ summary

  console.log('\nmedians over rounds:')
  const med = {}
  for (const v of VARIANTS) {
    const rs = results[v]
    const m = (k) => median(rs.map((x) => x[k]))
    med[v] = { rps: m('rps'), cpuPerReq: m('cpuPerReq'), clientCpuPct: m('clientCpuPct'), upstreamCpuPct: m('upstreamCpuPct'), othersPct: m('othersPct') }
    console.log(`  ${padEnd(v, 8)} ${pad(fmt(med[v].rps), 7)} req/s  ${pad(fmt(med[v].cpuPerReq, 2), 6)} µs client CPU/req  (client ${fmt(med[v].clientCpuPct)}%, upstream ${fmt(med[v].upstreamCpuPct)}%, others ${fmt(med[v].othersPct)}% of a core)`)
  }
  const cpuRounds = results.built.map((x, i) => x.cpuPerReq / results.neutral[i].cpuPerReq)
  const thrRounds = results.built.map((x, i) => x.rps / results.neutral[i].rps)
  const cpu = pairedRatio(results.built.map((x) => x.cpuPerReq), results.neutral.map((x) => x.cpuPerReq))
  const thr = pairedRatio(results.built.map((x) => x.rps), results.neutral.map((x) => x.rps))
  const cpuCi = bootstrapMedianCi(cpuRounds)
  const thrCi = bootstrapMedianCi(thrRounds)
  const range = (xs) => `${fmt(Math.min(...xs), 3)}–${fmt(Math.max(...xs), 3)}`
  console.log('\nbuilt vs neutral (median of per-round ratios; ratio of medians in brackets; bootstrap 95 % interval of the median):')
  console.log(`  CPU/request  ${fmt(cpu, 4)}×  [${fmt(med.built.cpuPerReq / med.neutral.cpuPerReq, 4)}×]  interval ${fmt(cpuCi[0], 4)}–${fmt(cpuCi[1], 4)}  (per-round ${range(cpuRounds)}; ${fmt((med.built.cpuPerReq - med.neutral.cpuPerReq) * 1000, 0)} ns/req difference of medians)`)
  console.log(`  throughput   ${fmt(thr, 4)}×  [${fmt(med.built.rps / med.neutral.rps, 4)}×]  interval ${fmt(thrCi[0], 4)}–${fmt(thrCi[1], 4)}  (per-round ${range(thrRounds)}; informational)`)
  console.log(`  ${cpuCi[0] <= 1 && cpuCi[1] >= 1 ? 'the CPU interval includes 1.0: no difference the run can tell from noise' : 'the CPU interval excludes 1.0: a difference beyond this run\'s noise'}`)
  const targets = AA ? [] : [verdict('metrics recording built/neutral CPU per request', cpu, '<=', 1.01, '×')]

  // ------------------------------------------------------------ micro: recorder.start() + end()

  const micro = await microRecorder(OPS, med.built.cpuPerReq)

  emitResult('metrics', {
    medians: med,
    ratios: { 'built/neutral': { cpuPerRequest: cpu, cpuInterval95: cpuCi, throughput: thr, throughputInterval95: thrCi } },
    micro,
    targets,
    knobs: { ROUNDS, DURATION, WARMUP, CONCURRENCY, SLICES, OPS, AA },
  })

  // ------------------------------------------------------------ teardown

  shuttingDown = true
  for (const c of children) {
    if (c.gone) continue
    c.child.disconnect()
    const timer = setTimeout(() => c.child.kill('SIGKILL'), 3000)
    await c.exited
    clearTimeout(timer)
  }
}

/**
 * ns per recorder.start() + recorder.end() pair, directly: the 3-level upstream recorder
 * (endpoint, subset, cluster: what one outbound request through a subset records), the
 * 1-level inbound one, and the same loop over a no-op recorder (the loop's own cost).
 * Durations cycle through 1,024 values of 0.05–20 ms, so the histogram slot varies.
 */
async function microRecorder(OPS, cpuPerReqUs) {
  const { MetricsRegistry } = await import('../build/src/observability/metrics.js')
  const { IstioSeries } = await import('../build/src/observability/istio-metrics.js')
  const registry = new MetricsRegistry({ service: 'bench' })
  const series = new IstioSeries('reporter="source"')
  // The Istio part alone: what one request adds to its precomputed series (a cell lookup, buckets).
  const istio = { start() {}, end(status, ms) { series.record(status, 0, 7, ms, 0, 56) }, fail() {} }
  const targets = {
    upstream: registry.upstream('reviews', 'v1', '127.0.0.1:9080'),
    inbound: registry.inbound('route-a'),
    istio,
    noop: { start() {}, end() {}, fail() {} },
  }
  const rnd = prng(42)
  const LAT = Float64Array.from({ length: 1024 }, () => 0.05 * Math.pow(400, rnd()))
  // One loop function per target, so each call site stays monomorphic as on the request path.
  const loops = {
    upstream: (r, n) => { for (let i = 0; i < n; i++) { r.start(); r.end(200, LAT[i & 1023], 56, 0) } },
    inbound: (r, n) => { for (let i = 0; i < n; i++) { r.start(); r.end(200, LAT[i & 1023], 56, 0) } },
    istio: (r, n) => { for (let i = 0; i < n; i++) { r.start(); r.end(200, LAT[i & 1023], 56, 0) } },
    noop: (r, n) => { for (let i = 0; i < n; i++) { r.start(); r.end(200, LAT[i & 1023], 56, 0) } },
  }
  const names = Object.keys(targets)
  for (const k of names) loops[k](targets[k], OPS / 4)
  const SAMPLES = 9
  const ns = Object.fromEntries(names.map((k) => [k, []]))
  for (let s = 0; s < SAMPLES; s++) {
    for (const k of s % 2 === 0 ? names : [...names].reverse()) {
      const t0 = process.hrtime.bigint()
      loops[k](targets[k], OPS)
      ns[k].push(Number(process.hrtime.bigint() - t0) / OPS)
    }
  }
  const out = Object.fromEntries(names.map((k) => [k, median(ns[k])]))
  const upNet = out.upstream - out.noop
  console.log(`\nmicro: recorder.start() + recorder.end(), ${fmt(OPS)} pairs per sample, median of ${SAMPLES} samples:`)
  console.log(`  upstream recorder (endpoint + subset + cluster)  ${fmt(out.upstream, 1)} ns/pair  (net of the no-op loop: ${fmt(upNet, 1)} ns)`)
  console.log(`  inbound recorder (one route)                     ${fmt(out.inbound, 1)} ns/pair  (net: ${fmt(out.inbound - out.noop, 1)} ns)`)
  console.log(`  of which Istio's series (one IstioSeries.record)  ${fmt(out.istio - out.noop, 1)} ns net (part of both recorders above)`)
  console.log(`  no-op recorder (the loop itself)                 ${fmt(out.noop, 1)} ns/pair`)
  console.log(`  = ${fmt((upNet / 1000 / cpuPerReqUs) * 100, 3)} % of the built client's ${fmt(cpuPerReqUs, 1)} µs CPU per request`)
  const snap = registry.snapshot().outbound.clusters.reviews
  if (!(snap.requests > 0 && snap.inFlight === 0)) throw new Error('micro: the recorder did not count')
  return { nsPerPair: out, upstreamNetNs: upNet, fractionOfRequestCpu: upNet / 1000 / cpuPerReqUs }
}

/** A 95 % bootstrap interval of the median of xs (deterministic resampling). */
function bootstrapMedianCi(xs, resamples = 4000) {
  const rnd = prng(7)
  const meds = []
  const sample = new Array(xs.length)
  for (let b = 0; b < resamples; b++) {
    for (let i = 0; i < xs.length; i++) sample[i] = xs[Math.floor(rnd() * xs.length)]
    meds.push(median(sample))
  }
  meds.sort((a, b) => a - b)
  return [meds[Math.floor(resamples * 0.025)], meds[Math.ceil(resamples * 0.975) - 1]]
}

/** Machine-wide busy CPU time (ms, all cores) from /proc/stat; undefined off Linux. */
function machineBusyMs() {
  try {
    const f = readFileSync('/proc/stat', 'latin1').split('\n', 1)[0].trim().split(/\s+/).slice(1).map(Number)
    const [user, nice, system, , , irq, softirq, steal] = f
    return { busy: ((user + nice + system + irq + softirq) * 1000) / 100, steal: (steal * 1000) / 100 }
  } catch {
    return undefined
  }
}
