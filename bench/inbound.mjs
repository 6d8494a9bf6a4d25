/**
 * Inbound overhead of a wrapped server.
 *
 *   baseline   http.createServer(handler)                                   'plain'
 *   candidate  mesh.createServer(handler), defaults: context, trace extraction and
 *              propagation, request id, metrics; the handler reads mesh.context()   'mesh'
 *   info       the same with config { tracing: { sampling: 100 } } and sampled callers, so
 *              every request is recorded into the recent-span store              'mesh-sampled'
 *
 * Every variant is its own server process, forked from this script (`--server=<variant>`),
 * so none pays for another's state: on Node 20 an AsyncLocalStorage that ran once keeps
 * async hooks on for the whole process, and the span store's garbage is its own. All of
 * them listen at once; this process is the client and loads one at a time (undici Pool,
 * keep-alive, BENCH_CONCURRENCY requests in flight through `pool.dispatch` callback loops,
 * the cheapest client undici offers, so that the server rather than the client is the
 * bottleneck on a quiet machine; bodies read and dropped). Every request
 * carries a W3C `traceparent` (1,024 different trace ids, flags 00 — the caller did not
 * sample — except for mesh-sampled, whose callers send 01), so the mesh extracts a parent
 * each time; none carries an `x-request-id`, so the mesh generates one, as at the edge.
 *
 * A round gives every variant BENCH_DURATION ms as BENCH_SLICES slices in mirrored order
 * (ABC CBA ABC CBA, rotated each round), so drift and load bursts inside a round hit all
 * alike. Per slice, the server
 * child reports its process.cpuUsage() over IPC before and after; per round and variant:
 * requests/s, server CPU µs per request, server CPU % of a core (≈ 100 %: the server is
 * the bottleneck; well below: the client or the machine is), client CPU, CPU of everything
 * else on the machine ("others", from /proc/stat) and TCP connections accepted (a warm
 * pool opens none). Ratios are medians of per-round ratios (the ratio of the medians is
 * printed beside them).
 *
 * Target: mesh/plain throughput ≥ 0.95×. CPU per request and mesh-sampled are printed for
 * information. A miss prints MISS; the exit code is non-zero only when something crashes.
 *
 * Knobs: BENCH_ROUNDS (11), BENCH_DURATION (ms per variant per round, 1000), BENCH_WARMUP
 * (ms per variant, 1000), BENCH_CONCURRENCY (64), BENCH_SLICES (slices per variant per
 * round, even, 4), BENCH_VARIANTS (comma list of plain,
 * mesh, mesh-sampled; e.g. `BENCH_VARIANTS=mesh` to profile the mesh server alone; also
 * plain-acf and mesh-acf, not run by default: plain and mesh with their server run under
 * `--experimental-async-context-frame`, Node 22's opt-in to the AsyncLocalStorage of Node 24
 * and later (there the flag is the default, so they repeat plain and mesh):
 * `BENCH_VARIANTS=plain,mesh,plain-acf,mesh-acf`).
 */
import { fork } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { createServer } from 'node:http'
import { fileURLToPath } from 'node:url'
import { Pool } from 'undici'
import { emitResult, envNumber, fmt, header, median, pad, padEnd, pairedRatio, rotate, verdict } from './lib/common.mjs'

const DEFAULT_VARIANTS = ['plain', 'mesh', 'mesh-sampled']
const ALL_VARIANTS = [...DEFAULT_VARIANTS, 'plain-acf', 'mesh-acf']
/** Variants whose server runs with AsyncLocalStorage on async context frames (a flag on Node 22). */
const ACF = '-acf'
const BODY = Buffer.from('{"id":1,"reviews":[{"reviewer":"jason","text":"ok"}]}\n')
const PATH = '/reviews/1'

const serverArg = process.argv.find((a) => a.startsWith('--server='))
if (serverArg !== undefined) await serve(serverArg.slice('--server='.length))
else await main()

// ---------------------------------------------------------------- server child

async function serve(variant) {
  if (!ALL_VARIANTS.includes(variant)) throw new Error(`unknown server variant ${variant}`)
  if (variant.endsWith(ACF)) variant = variant.slice(0, -ACF.length)
  const headers = { 'content-type': 'application/json', 'content-length': String(BODY.length) }
  let served = 0
  let noContext = 0
  let connections = 0
  let mesh
  let server
  const json = (res, value) => {
    const b = Buffer.from(JSON.stringify(value ?? null))
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(b.length) })
    res.end(b)
  }
  if (variant === 'plain') {
    // No import of the mesh at all: this process must not run any of its code.
    server = createServer((req, res) => {
      served++
      if (req.url === '/ctx') return json(res, {})
      res.writeHead(200, headers)
      res.end(BODY)
    })
  } else {
    const { createMesh } = await import('../dist/index.js')
    mesh = createMesh({
      service: 'bench-inbound',
      config: variant === 'mesh-sampled' ? { tracing: { sampling: 100 } } : {},
    })
    server = mesh.createServer((req, res) => {
      served++
      const ctx = mesh.context()
      if (ctx === undefined || ctx.requestId === '') noContext++
      if (req.url === '/ctx') return json(res, { ...ctx?.toJSON(), requestIdHeader: req.headers['x-request-id'] })
      res.writeHead(200, headers)
      res.end(BODY)
    })
  }
  server.keepAliveTimeout = 120_000
  server.headersTimeout = 130_000
  server.requestTimeout = 0
  server.on('connection', () => connections++)
  await new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', resolve)
  })
  process.send({ port: server.address().port, pid: process.pid })
  process.on('message', (m) => {
    if (m?.cmd === 'cpu') {
      process.send({ seq: m.seq, cpu: process.cpuUsage(), t: performance.now(), served, connections })
    } else if (m?.cmd === 'stats') {
      let inboundRequests
      if (mesh !== undefined) {
        inboundRequests = 0
        for (const r of Object.values(mesh.metrics.snapshot().inbound.routes)) inboundRequests += r.requests
      }
      process.send({
        seq: m.seq,
        served,
        noContext,
        inboundRequests,
        recentSpans: mesh?.tracing.recent().length,
        heapUsedMB: process.memoryUsage().heapUsed / 1048576,
      })
    }
  })
  process.on('disconnect', () => {
    server.closeAllConnections?.()
    server.close()
    void mesh?.close()
    setTimeout(() => process.exit(0), 200).unref()
  })
}

// ---------------------------------------------------------------- client / orchestrator

async function main() {
  const ROUNDS = envNumber('BENCH_ROUNDS', 11)
  const DURATION = envNumber('BENCH_DURATION', 1000)
  const WARMUP = envNumber('BENCH_WARMUP', 1000)
  const CONCURRENCY = envNumber('BENCH_CONCURRENCY', 64)
  const SLICES = 2 * Math.ceil(envNumber('BENCH_SLICES', 4) / 2)
  const VARIANTS = (process.env.BENCH_VARIANTS ?? DEFAULT_VARIANTS.join(',')).split(',').map((s) => s.trim()).filter(Boolean)
  for (const v of VARIANTS) if (!ALL_VARIANTS.includes(v)) throw new Error(`unknown variant ${v}; known: ${ALL_VARIANTS.join(', ')}`)

  header('inbound: mesh.createServer(handler) (defaults, traceparent on every request) vs http.createServer(handler)', {
    BENCH_ROUNDS: ROUNDS, BENCH_DURATION: `${DURATION}ms`, BENCH_WARMUP: `${WARMUP}ms`, BENCH_CONCURRENCY: CONCURRENCY, BENCH_SLICES: SLICES,
    variants: VARIANTS.join(','),
  })

  // ------------------------------------------------------------ server children

  let shuttingDown = false
  const servers = {}
  for (const v of VARIANTS) {
    const execArgv = v.endsWith(ACF) && !process.execArgv.includes('--experimental-async-context-frame') ? [...process.execArgv, '--experimental-async-context-frame'] : process.execArgv
    const child = fork(fileURLToPath(import.meta.url), [`--server=${v}`], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], execArgv })
    const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })))
    const s = { child, exited, gone: false, seq: 0 }
    void exited.then(({ code, signal }) => {
      s.gone = true
      if (!shuttingDown) {
        console.error(`${v} server child exited unexpectedly (code ${code}, signal ${signal})`)
        process.exit(2)
      }
    })
    const hello = await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${v} server child did not report its port within 10s`)), 10_000)
      child.once('message', (m) => {
        clearTimeout(timer)
        resolve(m)
      })
    })
    s.port = hello.port
    s.pid = hello.pid
    servers[v] = s
  }
  console.log(`servers: ${VARIANTS.map((v) => `${v} pid ${servers[v].pid} :${servers[v].port}`).join(', ')}`)

  function ask(v, cmd) {
    const s = servers[v]
    const seq = ++s.seq
    return new Promise((resolve) => {
      const on = (m) => {
        if (m?.seq !== seq) return
        s.child.off('message', on)
        resolve(m)
      }
      s.child.on('message', on)
      s.child.send({ cmd, seq })
    })
  }

  // ------------------------------------------------------------ clients

  /** 1,024 traceparents per variant, fresh ids each, as header objects built up front. */
  const MIX = 1024
  const hex = (bytes) => randomBytes(bytes).toString('hex')
  const headerSets = {}
  const pools = {}
  for (const v of VARIANTS) {
    const flags = v === 'mesh-sampled' ? '01' : '00'
    headerSets[v] = Array.from({ length: MIX }, () => ({ traceparent: `00-${hex(16)}-${hex(8)}-${flags}` }))
    pools[v] = new Pool(`http://127.0.0.1:${servers[v].port}`, { connections: CONCURRENCY, keepAliveTimeout: 120_000, keepAliveMaxTimeout: 120_000 })
  }

  /** Sanity: the mesh servers see the caller's trace and a request id; the plain one answers. */
  for (const v of VARIANTS) {
    const traceId = hex(16)
    const spanId = hex(8)
    const { statusCode, body } = await pools[v].request({ path: '/ctx', method: 'GET', headers: { traceparent: `00-${traceId}-${spanId}-${v === 'mesh-sampled' ? '01' : '00'}` } })
    const ctx = await body.json()
    if (statusCode !== 200) throw new Error(`${v}: /ctx answered ${statusCode}`)
    if (!v.startsWith('plain')) {
      if (ctx.traceId !== traceId || ctx.parentSpanId !== spanId) throw new Error(`${v}: the server did not continue the caller's trace: ${JSON.stringify(ctx)}`)
      if (typeof ctx.requestId !== 'string' || ctx.requestId === '' || ctx.requestId !== ctx.requestIdHeader) throw new Error(`${v}: no request id: ${JSON.stringify(ctx)}`)
      if (ctx.sampled !== (v === 'mesh-sampled')) throw new Error(`${v}: sampled is ${ctx.sampled}`)
      console.log(`context check ${v}: traceId ${ctx.traceId.slice(0, 8)}… continued, parent ${ctx.parentSpanId}, requestId ${ctx.requestId}, sampled ${ctx.sampled}`)
    }
  }

  /**
   * The load: CONCURRENCY callback loops, each dispatching its next request from the end of
   * the previous one through `pool.dispatch` with a minimal handler (no body stream, no
   * promise per request), so the client stays as cheap as undici allows and the server, not
   * the client, is the bottleneck when the machine is otherwise quiet. The body is read and
   * dropped; any status but 200 counts as bad.
   */
  class Once {
    constructor(done) {
      this.done = done
      this.status = 0
    }
    onRequestStart() {}
    onResponseStart(_controller, statusCode) {
      this.status = statusCode
    }
    onResponseData() {}
    onResponseEnd() {
      this.done(this.status)
    }
    onResponseError(_controller, err) {
      this.done(0, err)
    }
  }

  /** One slice: `v` for `ms` at CONCURRENCY in flight. Raw sums, so slices add up. */
  async function runFor(v, ms) {
    const pool = pools[v]
    const hs = headerSets[v]
    let next = 0
    let n = 0
    let bad = 0
    let error
    const s0 = await ask(v, 'cpu')
    const m0 = machineBusyMs()
    const c0 = process.cpuUsage()
    const t0 = performance.now()
    const deadline = t0 + ms
    await new Promise((resolve) => {
      let active = CONCURRENCY
      const loop = () => {
        if (error !== undefined || performance.now() >= deadline) {
          if (--active === 0) resolve()
          return
        }
        pool.dispatch({ path: PATH, method: 'GET', headers: hs[next++ & (MIX - 1)] }, new Once(done))
      }
      const done = (status, err) => {
        if (err !== undefined) error ??= err
        else if (status !== 200) bad++
        n++
        loop()
      }
      for (let i = 0; i < CONCURRENCY; i++) loop()
    })
    if (error !== undefined) throw error
    const elapsed = performance.now() - t0
    const c = process.cpuUsage(c0)
    const m1 = machineBusyMs()
    const s1 = await ask(v, 'cpu')
    const clientMs = (c.user + c.system) / 1000
    const serverUserMs = (s1.cpu.user - s0.cpu.user) / 1000
    const serverSysMs = (s1.cpu.system - s0.cpu.system) / 1000
    const serverMs = serverUserMs + serverSysMs
    return {
      n,
      bad,
      elapsed,
      clientMs,
      serverMs,
      serverUserMs,
      serverSysMs,
      serverElapsed: s1.t - s0.t,
      served: s1.served - s0.served,
      connects: s1.connections - s0.connections,
      othersMs: m0 === undefined ? NaN : Math.max(0, m1.busy - m0.busy - clientMs - serverMs) + (m1.steal - m0.steal),
    }
  }

  function addUp(slices) {
    const t = { n: 0, bad: 0, elapsed: 0, clientMs: 0, serverMs: 0, serverUserMs: 0, serverSysMs: 0, serverElapsed: 0, served: 0, connects: 0, othersMs: 0 }
    for (const s of slices) for (const k of Object.keys(t)) t[k] += s[k]
    return {
      ...t,
      rps: (t.n * 1000) / t.elapsed,
      serverCpuPerReq: (t.serverMs * 1000) / t.served,
      serverUserPerReq: (t.serverUserMs * 1000) / t.served,
      serverSysPerReq: (t.serverSysMs * 1000) / t.served,
      clientCpuPerReq: (t.clientMs * 1000) / t.n,
      serverCpuPct: (t.serverMs / t.serverElapsed) * 100,
      clientCpuPct: (t.clientMs / t.elapsed) * 100,
      othersPct: (t.othersMs / t.elapsed) * 100,
    }
  }

  // ------------------------------------------------------------ rounds

  // Warm up in two alternating passes, so every server and the client's pools are hot.
  for (let pass = 0; pass < 2; pass++) for (const v of VARIANTS) await runFor(v, WARMUP / 2)

  const results = Object.fromEntries(VARIANTS.map((v) => [v, []]))
  console.log(`${padEnd('round', 6)}${padEnd('variant', 14)}${pad('req/s', 9)}${pad('srv µs/req', 12)}${pad('server cpu', 12)}${pad('cli µs/req', 12)}${pad('client cpu', 12)}${pad('others', 9)}${pad('connects', 10)}${pad('non-200', 9)}`)
  for (let r = 0; r < ROUNDS; r++) {
    const slices = Object.fromEntries(VARIANTS.map((v) => [v, []]))
    const base = rotate(VARIANTS, r)
    const order = []
    for (let k = 0; k < SLICES; k++) order.push(...(k % 2 === 0 ? base : [...base].reverse()))
    for (const v of order) slices[v].push(await runFor(v, DURATION / SLICES))
    for (const v of VARIANTS) {
      const res = addUp(slices[v])
      results[v].push(res)
      console.log(`${padEnd(r + 1, 6)}${padEnd(v, 14)}${pad(fmt(res.rps), 9)}${pad(fmt(res.serverCpuPerReq, 1), 12)}${pad(fmt(res.serverCpuPct) + '%', 12)}${pad(fmt(res.clientCpuPerReq, 1), 12)}${pad(fmt(res.clientCpuPct) + '%', 12)}${pad(fmt(res.othersPct) + '%', 9)}${pad(res.connects, 10)}${pad(res.bad, 9)}`)
      if (res.bad > 0) throw new Error(`${v}: ${res.bad} responses were not 200`)
      if (res.served !== res.n) throw new Error(`${v}: the server counted ${res.served} requests, the client ${res.n}`)
    }
  }

  // ------------------------------------------------------------ checks after the run

  const stats = {}
  for (const v of VARIANTS) stats[v] = await ask(v, 'stats')
  for (const v of VARIANTS) {
    const s = stats[v]
    if (v.startsWith('plain')) continue
    if (s.noContext > 0) throw new Error(`${v}: ${s.noContext} requests saw no mesh.context()`)
    // Every request but the /ctx check counted by the inbound metrics.
    if (s.inboundRequests !== s.served) throw new Error(`${v}: metrics counted ${s.inboundRequests} inbound requests, the server served ${s.served}`)
    if (v === 'mesh-sampled' && !(s.recentSpans > 0)) throw new Error(`${v}: no span was recorded`)
    if ((v === 'mesh' || v === 'mesh-acf') && s.recentSpans !== 0) throw new Error(`${v}: ${s.recentSpans} spans were recorded from unsampled callers`)
  }
  console.log(`\nserver checks: ${VARIANTS.map((v) => `${v}: ${stats[v].served} served${stats[v].inboundRequests === undefined ? '' : `, ${stats[v].inboundRequests} in metrics, ${stats[v].recentSpans} recent spans`}, heap ${fmt(stats[v].heapUsedMB, 1)} MB`).join('; ')}`)

  // ------------------------------------------------------------ summary

  console.log('\nmedians over rounds:')
  const med = {}
  for (const v of VARIANTS) {
    const rs = results[v]
    const m = (k) => median(rs.map((x) => x[k]))
    med[v] = { rps: m('rps'), serverCpuPerReq: m('serverCpuPerReq'), serverUserPerReq: m('serverUserPerReq'), serverSysPerReq: m('serverSysPerReq'), clientCpuPerReq: m('clientCpuPerReq'), serverCpuPct: m('serverCpuPct'), clientCpuPct: m('clientCpuPct'), othersPct: m('othersPct') }
    console.log(`  ${padEnd(v, 13)} ${pad(fmt(med[v].rps), 7)} req/s  ${pad(fmt(med[v].serverCpuPerReq, 1), 6)} µs server CPU/req [user ${fmt(med[v].serverUserPerReq, 1)} + sys ${fmt(med[v].serverSysPerReq, 1)}]  (server ${fmt(med[v].serverCpuPct)}%, client ${fmt(med[v].clientCpuPct)}% [${fmt(med[v].clientCpuPerReq, 1)} µs/req], others ${fmt(med[v].othersPct)}% of a core)`)
  }

  const targets = []
  const ratios = {}
  const spread = (xs) => {
    const s = [...xs].sort((x, y) => x - y)
    return `per-round ${fmt(s[0], 3)}–${fmt(s[s.length - 1], 3)}`
  }
  function pair(candidate, baseline, gated) {
    if (!VARIANTS.includes(candidate) || !VARIANTS.includes(baseline)) return
    const c = results[candidate]
    const b = results[baseline]
    const thr = pairedRatio(c.map((x) => x.rps), b.map((x) => x.rps))
    const cpu = pairedRatio(c.map((x) => x.serverCpuPerReq), b.map((x) => x.serverCpuPerReq))
    ratios[`${candidate}/${baseline}`] = {
      throughput: thr,
      serverCpuPerRequest: cpu,
      throughputOfMedians: med[candidate].rps / med[baseline].rps,
      serverCpuOfMedians: med[candidate].serverCpuPerReq / med[baseline].serverCpuPerReq,
      serverCpuPerRequestDiffUs: med[candidate].serverCpuPerReq - med[baseline].serverCpuPerReq,
    }
    console.log(`\n${candidate} vs ${baseline} (median of per-round ratios; ratio of medians in brackets):`)
    console.log(`  throughput         ${fmt(thr, 3)}×  [${fmt(med[candidate].rps / med[baseline].rps, 3)}×]  (${spread(c.map((x, i) => x.rps / b[i].rps))})`)
    console.log(`  server CPU/request ${fmt(cpu, 3)}×  [${fmt(med[candidate].serverCpuPerReq / med[baseline].serverCpuPerReq, 3)}×]  (${spread(c.map((x, i) => x.serverCpuPerReq / b[i].serverCpuPerReq))}; +${fmt(med[candidate].serverCpuPerReq - med[baseline].serverCpuPerReq, 1)} µs/req difference of medians; informational)`)
    const du = median(c.map((x, i) => x.serverUserPerReq - b[i].serverUserPerReq))
    const ds = median(c.map((x, i) => x.serverSysPerReq - b[i].serverSysPerReq))
    ratios[`${candidate}/${baseline}`].serverUserDiffUs = du
    ratios[`${candidate}/${baseline}`].serverSysDiffUs = ds
    console.log(`  server CPU/request difference, median per round: user ${du >= 0 ? '+' : ''}${fmt(du, 1)} µs, system ${ds >= 0 ? '+' : ''}${fmt(ds, 1)} µs`)
    if (gated) targets.push(verdict(`${candidate}/${baseline} throughput`, thr, '>=', 0.95, '×'))
    else console.log('  (informational, no target)')
  }
  pair('mesh', 'plain', true)
  pair('mesh-sampled', 'plain', false)
  pair('mesh-sampled', 'mesh', false)
  pair('mesh-acf', 'plain-acf', false)
  pair('mesh-acf', 'mesh', false)

  emitResult('inbound', { medians: med, ratios, targets, knobs: { ROUNDS, DURATION, WARMUP, CONCURRENCY, SLICES } })

  // ------------------------------------------------------------ teardown

  shuttingDown = true
  await Promise.all(Object.values(pools).map((p) => p.destroy()))
  for (const s of Object.values(servers)) {
    if (s.gone) continue
    s.child.disconnect()
    const timer = setTimeout(() => s.child.kill('SIGKILL'), 2000)
    await s.exited
    clearTimeout(timer)
  }
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
