/**
 * mTLS cost on the outbound path.
 *
 *   baseline   mesh.fetch('http://plain/')   cluster without tls, keep-alive
 *   candidate  mesh.fetch('http://secure/')  cluster with tls: { mode: mutual, verifyIdentities },
 *                                            keep-alive, our CA's ECDSA P-256 certificates
 *
 * Both go to the same upstream: a mesh server in PERMISSIVE mode in a forked child (plain
 * HTTP and mTLS on one port). Each round gives each variant BENCH_DURATION ms at
 * BENCH_CONCURRENCY requests in flight, as four half slices in ABBA order (BAAB in odd
 * rounds). Reported: requests/s, client CPU µs per request, medians over rounds, and the
 * paired throughput ratio (median over rounds of secure/plain of the same round).
 * Then the handshake cost: BENCH_HANDSHAKES sequential new connections each, plain TCP
 * connect vs TCP + TLS 1.3 handshake with client certificate (client wall time, median).
 *
 * Target: throughput ratio ≥ 0.8×. A miss prints MISS; the exit code is non-zero only when
 * something crashes.
 *
 * Knobs: BENCH_ROUNDS (7), BENCH_DURATION (ms per variant per round, 1000), BENCH_WARMUP
 * (ms per variant, 1000), BENCH_CONCURRENCY (32), BENCH_HANDSHAKES (200).
 */
import { fork } from 'node:child_process'
import net from 'node:net'
import tls from 'node:tls'
import { fileURLToPath } from 'node:url'
import { createCertificateAuthority, createMesh } from '../dist/index.js'
import { emitResult, envNumber, fmt, header, median, pad, padEnd, pairedRatio, verdict } from './lib/common.mjs'

const ROUNDS = envNumber('BENCH_ROUNDS', 7)
const DURATION = envNumber('BENCH_DURATION', 1000)
const WARMUP = envNumber('BENCH_WARMUP', 1000)
const CONCURRENCY = envNumber('BENCH_CONCURRENCY', 32)
const HANDSHAKES = envNumber('BENCH_HANDSHAKES', 200)

header('mtls: mesh.fetch over mTLS keep-alive vs plain HTTP keep-alive, and the handshake cost', {
  BENCH_ROUNDS: ROUNDS, BENCH_DURATION: `${DURATION}ms`, BENCH_WARMUP: `${WARMUP}ms`, BENCH_CONCURRENCY: CONCURRENCY, BENCH_HANDSHAKES: HANDSHAKES,
})

const ca = createCertificateAuthority({ trustDomain: 'cluster.local' })
const serverCert = ca.issue({ namespace: 'default', serviceAccount: 'reviews' })
const clientCert = ca.issue({ namespace: 'default', serviceAccount: 'productpage' })
const identity = (c) => ({ certificate: c.certificate, privateKey: c.privateKey, trustBundle: c.trustBundle })

const child = fork(fileURLToPath(new URL('./lib/mtls-server.mjs', import.meta.url)), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
child.once('exit', (code, signal) => {
  if (!shuttingDown) {
    console.error(`upstream child exited unexpectedly (code ${code}, signal ${signal})`)
    process.exit(2)
  }
})
let shuttingDown = false
child.send({ identity: identity(serverCert) })
const port = await new Promise((resolve, reject) => {
  const timer = setTimeout(() => reject(new Error('upstream child did not report its port within 10s')), 10_000)
  child.once('message', (m) => {
    clearTimeout(timer)
    resolve(m.port)
  })
})

const route = (name) => ({ name, domains: [name], routes: [{ match: { prefix: '/' }, route: { cluster: name } }] })
const mesh = createMesh({
  config: {
    identity: identity(clientCert),
    clusters: [
      { name: 'plain', endpoints: [{ address: `127.0.0.1:${port}` }] },
      { name: 'secure', endpoints: [{ address: `127.0.0.1:${port}` }], tls: { mode: 'mutual', verifyIdentities: ['spiffe://cluster.local/ns/default/sa/reviews'] } },
    ],
    virtualHosts: [route('plain'), route('secure')],
  },
})

const URLS = { plain: 'http://plain/reviews/1', secure: 'http://secure/reviews/1' }

async function load(variant, ms) {
  const url = URLS[variant]
  const end = performance.now() + ms
  let done = 0
  let failed = 0
  const cpu0 = process.cpuUsage()
  const worker = async () => {
    while (performance.now() < end) {
      const res = await mesh.fetch(url)
      await res.arrayBuffer()
      if (res.status === 200) done++
      else failed++
    }
  }
  const t0 = performance.now()
  await Promise.all(Array.from({ length: CONCURRENCY }, worker))
  const elapsed = performance.now() - t0
  const cpu = process.cpuUsage(cpu0)
  return { done, failed, ms: elapsed, cpuUs: cpu.user + cpu.system }
}

await load('plain', WARMUP)
await load('secure', WARMUP)

const rps = { plain: [], secure: [] }
const cpuPerReq = { plain: [], secure: [] }
let failures = 0
for (let round = 0; round < ROUNDS; round++) {
  const order = round % 2 === 0 ? ['plain', 'secure', 'secure', 'plain'] : ['secure', 'plain', 'plain', 'secure']
  const acc = { plain: { done: 0, ms: 0, cpuUs: 0 }, secure: { done: 0, ms: 0, cpuUs: 0 } }
  for (const v of order) {
    const r = await load(v, DURATION / 2)
    acc[v].done += r.done
    acc[v].ms += r.ms
    acc[v].cpuUs += r.cpuUs
    failures += r.failed
  }
  for (const v of ['plain', 'secure']) {
    rps[v].push(acc[v].done / (acc[v].ms / 1000))
    cpuPerReq[v].push(acc[v].cpuUs / acc[v].done)
  }
  console.log(`round ${pad(round + 1, 2)}  plain ${pad(fmt(rps.plain[round]), 8)} req/s  secure ${pad(fmt(rps.secure[round]), 8)} req/s  ratio ${(rps.secure[round] / rps.plain[round]).toFixed(3)}`)
}

console.log('')
console.log(`${padEnd('variant', 10)} ${pad('req/s', 10)} ${pad('cpu µs/req', 12)}`)
for (const v of ['plain', 'secure']) console.log(`${padEnd(v, 10)} ${pad(fmt(median(rps[v])), 10)} ${pad(fmt(median(cpuPerReq[v]), 1), 12)}`)
const ratio = pairedRatio(rps.secure, rps.plain)
const cpuRatio = pairedRatio(cpuPerReq.secure, cpuPerReq.plain)
console.log(`paired throughput ratio secure/plain ${ratio.toFixed(3)}× (ratio of medians ${(median(rps.secure) / median(rps.plain)).toFixed(3)}×); cpu/request ratio ${cpuRatio.toFixed(3)}×; failed requests ${failures}`)

// ---------------------------------------------------------------- handshake cost

function connectOnce(secure) {
  return new Promise((resolve, reject) => {
    const t0 = performance.now()
    const s = secure
      ? tls.connect({ host: '127.0.0.1', port, cert: clientCert.certificate, key: clientCert.privateKey, ca: ca.trustBundle, checkServerIdentity: () => undefined, ALPNProtocols: ['http/1.1'] }, done)
      : net.connect(port, '127.0.0.1', done)
    function done() {
      const ms = performance.now() - t0
      s.destroy()
      resolve(ms)
    }
    s.once('error', reject)
  })
}
const tcp = []
const handshake = []
for (let i = 0; i < HANDSHAKES; i++) {
  tcp.push(await connectOnce(false))
  handshake.push(await connectOnce(true))
}
const tcpMs = median(tcp)
const tlsMs = median(handshake)
console.log(`new connection (median of ${HANDSHAKES}): TCP ${tcpMs.toFixed(3)} ms, TCP + mTLS handshake ${tlsMs.toFixed(3)} ms (handshake ≈ ${(tlsMs - tcpMs).toFixed(3)} ms)`)
console.log('')

const targets = [verdict('mTLS keep-alive throughput vs plain keep-alive (paired)', ratio, '>=', 0.8, '×')]
emitResult('mtls', {
  plainRps: median(rps.plain), secureRps: median(rps.secure), ratio, cpuRatio, failures,
  tcpConnectMs: tcpMs, mtlsConnectMs: tlsMs, targets,
})

shuttingDown = true
await mesh.close()
child.disconnect()
