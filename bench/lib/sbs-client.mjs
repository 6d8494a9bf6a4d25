/**
 * The calling service of bench/side-by-side.mjs, one process per kind:
 *
 *   plain  undici `request()` with plain Agents (one per target; the TLS one presents a
 *          client certificate). Never imports the mesh: on Node 20 an AsyncLocalStorage
 *          that ran once keeps async hooks on for the whole process.
 *   mesh   undici `request()` with `mesh.dispatcher`, routes armed with a 3 s timeout and
 *          a retry policy (the config comes from the parent).
 *   http2  node:http2's own client: one session per target (TLS with a client certificate),
 *          every request a stream on it. Never imports the mesh or undici's dispatcher.
 *
 * Commands: `closed` (a closed loop: `connections` requests in flight for `ms`) and `open`
 * (a fixed rate for `ms`, latency of every request from the moment it was sent). Both
 * report the requests done, failures and the elapsed time; the parent reads every
 * process's CPU around them. Bodies are always read to the end.
 */
import { connect as connectHttp2 } from 'node:http2'
import { Agent, request } from 'undici'
import { serve } from './ipc.mjs'

const calls = new Map()
const clusterOf = new Map()
let mesh

/** One request; resolves to the status code (0 for an error, whose message is kept). */
function makeCall(url, dispatcher) {
  return async () => {
    try {
      const { statusCode, headers, body } = await request(url, { dispatcher })
      await body.dump()
      if (statusCode !== 200) lastError = `status ${statusCode}${headers['x-sidecarless-response-flags'] ? ` (${headers['x-sidecarless-response-flags']})` : ''}`
      return statusCode
    } catch (err) {
      lastError = `${err?.code ?? ''} ${err?.message ?? err}`.trim()
      return 0
    }
  }
}
let lastError

/** A node:http2 session to `url`'s origin; each call is a GET stream on it, its body read to the end. */
async function makeHttp2Call(url, tls) {
  const { origin, pathname } = new URL(url)
  const session = connectHttp2(origin, { ...tls, ALPNProtocols: ['h2'] })
  await new Promise((resolve, reject) => {
    session.once('connect', resolve)
    session.once('error', reject)
  })
  if (session.alpnProtocol !== 'h2') throw new Error(`${origin} did not select h2 (ALPN ${session.alpnProtocol})`)
  session.on('error', (err) => (lastError = `${err?.code ?? ''} ${err?.message ?? err}`.trim()))
  const headers = { ':method': 'GET', ':path': pathname, ':authority': tls?.servername ?? new URL(url).host }
  return () => new Promise((resolve) => {
    let status = 0
    const stream = session.request(headers, { endStream: true })
    stream.once('response', (h) => (status = h[':status']))
    stream.on('data', () => {})
    stream.once('end', () => {
      if (status !== 200) lastError = `status ${status}`
      resolve(status)
    })
    stream.once('error', (err) => {
      lastError = `${err?.code ?? ''} ${err?.message ?? err}`.trim()
      resolve(0)
    })
  })
}

async function closed({ arm, ms, connections }) {
  const call = calls.get(arm)
  if (call === undefined) throw new Error(`no target ${arm}`)
  let n = 0
  let bad = 0
  const t0 = performance.now()
  const deadline = t0 + ms
  const worker = async () => {
    while (performance.now() < deadline) {
      if ((await call()) !== 200) bad++
      n++
    }
  }
  const workers = []
  for (let i = 0; i < connections; i++) workers.push(worker())
  await Promise.all(workers)
  return { n, bad, elapsed: performance.now() - t0, lastError: bad > 0 ? lastError : undefined }
}

/**
 * Open loop: request i is due at t0 + i/rate. A timer sends every request that is due and
 * sleeps until the next one (timers have ~1 ms granularity, so requests leave in small
 * bursts). Latency is measured from the moment a request was sent; how late the sender was
 * against the schedule is reported apart (`lagP99`), so a client that fell behind shows.
 */
function open({ arm, ms, rate }) {
  const call = calls.get(arm)
  if (call === undefined) throw new Error(`no target ${arm}`)
  const total = Math.max(1, Math.floor((ms * rate) / 1000))
  const latency = new Float64Array(total)
  const lag = new Float64Array(total)
  const interval = 1000 / rate
  let sent = 0
  let done = 0
  let bad = 0
  return new Promise((resolve) => {
    const t0 = performance.now()
    const finish = () => {
      const elapsed = performance.now() - t0
      const sorted = latency.slice().sort()
      const lags = lag.slice().sort()
      resolve({
        n: total,
        bad,
        elapsed,
        p50: quantile(sorted, 0.5),
        p90: quantile(sorted, 0.9),
        p99: quantile(sorted, 0.99),
        max: sorted[sorted.length - 1],
        lagP99: quantile(lags, 0.99),
        lastError: bad > 0 ? lastError : undefined,
      })
    }
    const send = (i, now) => {
      lag[i] = now - (t0 + i * interval)
      const start = performance.now()
      void call().then((status) => {
        latency[i] = performance.now() - start
        if (status !== 200) bad++
        if (++done === total) finish()
      })
    }
    const tick = () => {
      const now = performance.now()
      const due = Math.min(total, Math.floor((now - t0) / interval) + 1)
      while (sent < due) send(sent++, now)
      if (sent < total) setTimeout(tick, Math.max(0, t0 + sent * interval - performance.now()))
    }
    tick()
  })
}

function quantile(sorted, q) {
  if (sorted.length === 0) return NaN
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]
}

serve({
  /**
   * targets: { [arm]: { url, tls?: { ca, cert, key, servername } } } for the plain kind;
   * { [arm]: { url, cluster } } and `meshConfig` for the mesh kind.
   */
  async start({ kind, targets, meshConfig }) {
    if (kind === 'mesh') {
      const { createMesh } = await import('../../dist/index.js')
      mesh = createMesh({ service: 'productpage', config: meshConfig })
      for (const [arm, t] of Object.entries(targets)) {
        calls.set(arm, makeCall(t.url, mesh.dispatcher))
        clusterOf.set(arm, t.cluster)
      }
    } else if (kind === 'plain') {
      for (const [arm, t] of Object.entries(targets)) {
        // One Agent per target, as separate apps would have; keep-alive as long as the run.
        // `allowH2`: HTTP/2 when the server's ALPN picks it (undici then keeps one session per origin).
        const agent = new Agent({ keepAliveTimeout: 120_000, keepAliveMaxTimeout: 120_000, ...(t.tls ? { connect: t.tls } : {}), ...(t.allowH2 ? { allowH2: true } : {}) })
        calls.set(arm, makeCall(t.url, agent))
      }
    } else if (kind === 'http2') {
      for (const [arm, t] of Object.entries(targets)) calls.set(arm, await makeHttp2Call(t.url, t.tls))
    } else {
      throw new Error(`unknown client kind ${kind}`)
    }
    return {}
  },
  closed,
  open,
  /** For a mesh client: the requests its outbound metrics counted for the arm's cluster. */
  stats: ({ arm }) => {
    if (mesh === undefined) return {}
    return { outbound: mesh.metrics.snapshot().outbound.clusters[clusterOf.get(arm)]?.requests ?? 0 }
  },
}, {
  onDisconnect: () => mesh?.close(),
})
