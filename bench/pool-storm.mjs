/**
 * Connection storm under an open loop: does a hiccup make the endpoint's pool open a
 * connection (and, with mTLS, run a TLS handshake) per queued request?
 *
 * This process is the calling service (a mesh client, `mesh.dispatcher`); a forked child is
 * the called one (bench/lib/storm-server.mjs): a mesh server with STRICT mTLS, or a plain
 * node:http server with `--plain`. The client sends at a fixed rate (an open loop: request i
 * leaves at t0 + i/rate whatever happened to the earlier ones) while the server blocks its
 * event loop for `--stall` ms every `--stall-every` ms, as a GC pause or a busy neighbour
 * would. Each variant is a cluster config, run with a fresh client mesh (warmed at 50 req/s
 * for `--warmup` ms without stalls, so it starts with a connection or two), in rotated order
 * each round:
 *
 *   default   the cluster as a user writes it (no circuitBreakers)
 *   mc64      circuitBreakers.maxConnections: 64 (the workaround found in issue 17)
 *
 * Per variant (medians over rounds): requests, failures (with their response flags), p50 /
 * p99 / max latency, the connections the server accepted and the TLS handshakes the client
 * ran (full + resumed, from snapshot().security.tls.upstream) during the measured phase.
 * The route has a 250 ms timeout (`--timeout`), longer than a stall, so a request that is
 * not held up by the pool itself is answered in time, and retries (5xx, reset,
 * connect-failure; 2), as the side-by-side bench's mesh arms do.
 *
 *   node bench/pool-storm.mjs                              mTLS, 3 rounds
 *   node bench/pool-storm.mjs --plain                      the same over plain HTTP
 *   node bench/pool-storm.mjs --rate=1500 --stall=80 --stall-every=400 --duration=4000 --rounds=5
 *
 * Target: the default variant has no failures and opens no more connections than mc64
 * (MISS is printed otherwise; the exit code is non-zero only on a crash).
 */
import { fileURLToPath } from 'node:url'
import { request } from 'undici'
import { createCertificateAuthority, createMesh } from '../dist/index.js'
import { forkChild } from './lib/ipc.mjs'
import { emitResult, fmt, median, rotate, verdict } from './lib/common.mjs'

const args = Object.fromEntries(process.argv.slice(2).map((a) => {
  const [k, v] = a.replace(/^--/, '').split(/=(.*)/s)
  return [k, v ?? true]
}))
const num = (k, d) => {
  if (args[k] === undefined) return d
  const n = Number(args[k])
  if (!Number.isFinite(n) || n < 0) throw new Error(`--${k} must be a number`)
  return n
}
const opts = {
  plain: args.plain === true,
  rounds: num('rounds', 3),
  rate: num('rate', 1000),
  duration: num('duration', 4000),
  warmup: num('warmup', 1000),
  stall: num('stall', 100),
  stallEvery: num('stall-every', 500),
  timeout: String(args.timeout ?? '250ms'),
  variants: String(args.variants ?? 'default,mc64').split(','),
}

const VARIANTS = {
  default: {},
  mc64: { circuitBreakers: { maxConnections: 64 } },
  mc1024: { circuitBreakers: { maxConnections: 1024 } },
}
for (const v of opts.variants) if (!(v in VARIANTS)) throw new Error(`unknown variant ${v} (${Object.keys(VARIANTS).join(', ')})`)

const ca = createCertificateAuthority({ trustDomain: 'cluster.local' })
const pick = (c) => ({ certificate: c.certificate, privateKey: c.privateKey, trustBundle: c.trustBundle })
const serverCreds = pick(ca.issue({ namespace: 'default', serviceAccount: 'reviews' }))
const clientCreds = pick(ca.issue({ namespace: 'default', serviceAccount: 'productpage' }))

console.log(`# pool-storm: open loop at ${opts.rate} req/s against ${opts.plain ? 'plain HTTP' : 'STRICT mTLS'}, the server stalling ${opts.stall} ms every ${opts.stallEvery} ms`)
console.log(`node ${process.version}; ${opts.rounds} round(s) of ${opts.duration} ms per variant; route timeout ${opts.timeout}`)

const server = forkChild(fileURLToPath(new URL('./lib/storm-server.mjs', import.meta.url)), {
  name: 'storm-server',
  onCrash: (err) => {
    console.error(err.message)
    process.exit(2)
  },
})
const { port } = await server.call('start', { kind: opts.plain ? 'plain' : 'mesh-strict', credentials: serverCreds })

function meshFor(variant) {
  return createMesh({
    service: 'productpage',
    config: {
      ...(opts.plain ? {} : { identity: clientCreds }),
      clusters: [{
        name: 'reviews',
        endpoints: [{ address: `http://127.0.0.1:${port}` }],
        ...(opts.plain ? {} : { tls: { mode: 'ISTIO_MUTUAL', verifyIdentities: ['spiffe://cluster.local/ns/default/sa/reviews'] } }),
        ...VARIANTS[variant],
      }],
      virtualHosts: [{
        name: 'reviews',
        domains: ['reviews'],
        routes: [{ match: { prefix: '/' }, route: { cluster: 'reviews', timeout: opts.timeout, retryPolicy: { retryOn: '5xx,reset,connect-failure', numRetries: 2 } } }],
      }],
    },
  })
}

/** Open loop for `ms` at `rate`: latency of each request from its scheduled time, and its outcome. */
function openLoop(dispatcher, ms, rate) {
  const total = Math.max(1, Math.floor((ms * rate) / 1000))
  const latency = new Float64Array(total)
  const flags = {}
  let bad = 0
  let sent = 0
  let done = 0
  const interval = 1000 / rate
  return new Promise((resolve) => {
    const t0 = performance.now()
    const send = (i) => {
      const due = t0 + i * interval
      request('http://reviews/reviews/1', { dispatcher }).then(async ({ statusCode, headers, body }) => {
        await body.dump()
        if (statusCode !== 200) {
          bad++
          const f = `${statusCode} ${headers['x-sidecarless-response-flags'] ?? ''}`.trim()
          flags[f] = (flags[f] ?? 0) + 1
        }
      }, (err) => {
        bad++
        flags[err?.code ?? 'error'] = (flags[err?.code ?? 'error'] ?? 0) + 1
      }).finally(() => {
        latency[i] = performance.now() - due
        if (++done === total) {
          const sorted = latency.slice().sort()
          const q = (p) => sorted[Math.min(total - 1, Math.floor(p * total))]
          resolve({ n: total, bad, flags, p50: q(0.5), p90: q(0.9), p99: q(0.99), max: sorted[total - 1], elapsed: performance.now() - t0 })
        }
      })
    }
    const tick = () => {
      const due = Math.min(total, Math.floor((performance.now() - t0) / interval) + 1)
      while (sent < due) send(sent++)
      if (sent < total) setTimeout(tick, Math.max(0, t0 + sent * interval - performance.now()))
    }
    tick()
  })
}

const handshakes = (mesh) => {
  const t = mesh.metrics.snapshot().security.tls.upstream
  return { full: t.full, resumed: t.resumed, failed: t.failed }
}

async function runVariant(variant) {
  const mesh = meshFor(variant)
  try {
    // A slow warm-up: the pool starts with the one or two connections a steady caller keeps.
    await openLoop(mesh.dispatcher, opts.warmup, 50)
    const h0 = handshakes(mesh)
    const s0 = await server.call('stats')
    const cpu0 = process.cpuUsage()
    const count = Math.max(1, Math.floor(opts.duration / opts.stallEvery) - 1)
    await server.call('stalls', { ms: opts.stall, every: opts.stallEvery, count: opts.stall > 0 ? count : 0 })
    const r = await openLoop(mesh.dispatcher, opts.duration, opts.rate)
    await server.call('stalls', { count: 0 })
    const cpu = process.cpuUsage(cpu0)
    const s1 = await server.call('stats')
    const h1 = handshakes(mesh)
    return {
      ...r,
      connections: s1.connections - s0.connections,
      serverHandshakes: s1.tls === undefined ? NaN : s1.tls.full + s1.tls.resumed - s0.tls.full - s0.tls.resumed,
      full: h1.full - h0.full,
      resumed: h1.resumed - h0.resumed,
      clientCpuPerReq: (cpu.user + cpu.system) / r.n,
    }
  } finally {
    await mesh.close()
  }
}

const results = Object.fromEntries(opts.variants.map((v) => [v, []]))
for (let round = 0; round < opts.rounds; round++) {
  const order = rotate(opts.variants, round)
  const line = []
  for (const v of order) {
    const r = await runVariant(v)
    results[v].push(r)
    line.push(`${v}: ${r.bad} failed${r.bad > 0 ? ` ${JSON.stringify(r.flags)}` : ''}, ${r.connections} connections (${r.full} full + ${r.resumed} resumed handshakes), p99 ${r.p99.toFixed(1)} ms`)
  }
  console.log(`round ${round + 1}/${opts.rounds}: ${line.join('; ')}`)
}
await server.stop()

console.log('')
console.log('| variant | requests | failed | connections opened | TLS handshakes full + resumed | p50 / p90 / p99 / max ms | client CPU µs/req |')
console.log('| --- | ---: | ---: | ---: | ---: | --- | ---: |')
const summary = {}
for (const v of opts.variants) {
  const col = (k) => median(results[v].map((r) => r[k]))
  summary[v] = { failed: col('bad'), connections: col('connections'), full: col('full'), resumed: col('resumed'), p50: col('p50'), p90: col('p90'), p99: col('p99'), max: col('max'), clientCpuPerReq: col('clientCpuPerReq') }
  const s = summary[v]
  console.log(`| ${v} | ${fmt(col('n'))} | ${fmt(s.failed)} | ${fmt(s.connections)} | ${opts.plain ? '—' : `${fmt(s.full)} + ${fmt(s.resumed)}`} | ${s.p50.toFixed(2)} / ${s.p90.toFixed(2)} / ${s.p99.toFixed(2)} / ${s.max.toFixed(0)} | ${fmt(s.clientCpuPerReq)} |`)
}
console.log('(medians over rounds; connections and handshakes counted during the measured phase only)')
console.log('')
const targets = []
if (summary.default !== undefined) {
  targets.push(verdict('default variant: failed requests', summary.default.failed, '<=', 0))
  if (summary.mc64 !== undefined) targets.push(verdict('default variant: connections opened ÷ mc64\'s (+1)', (summary.default.connections + 1) / (summary.mc64.connections + 1), '<=', 1.5, '×'))
}
emitResult('pool-storm', { plain: opts.plain, rate: opts.rate, stall: opts.stall, stallEvery: opts.stallEvery, variants: summary, targets })
