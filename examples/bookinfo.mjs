// Bookinfo, in one process: productpage → reviews v1/v2/v3 → ratings, each service its own
// mesh and its own server, talking mTLS with SPIFFE identities from an in-memory CA. It
// shows a canary split moved while running, a header route, a circuit breaker opening on a
// failing version and closing when it heals, traces across the hops and per-version
// metrics. Run it with `npm start`.
import http from 'node:http'
import { setTimeout as sleep } from 'node:timers/promises'
import { createCertificateAuthority } from 'sidecarless'
import { probeServerIdentity, startBookinfo } from './bookinfo/services.mjs'
import { drawTrace, shares, tally, versionTable } from './bookinfo/report.mjs'

const N = Number(process.env.BOOKINFO_REQUESTS ?? 200)
const CONCURRENCY = 4

console.log('== Bookinfo on sidecarless: every service its own mesh, in one process ==')
const ca = createCertificateAuthority({ trustDomain: 'cluster.local' })
const bookinfo = await startBookinfo(ca)
const { services, productpage, peers, faults } = bookinfo
for (const s of services) console.log(`  ${s.name.padEnd(15)} 127.0.0.1:${s.port}  mtls ${s.name.startsWith('productpage') ? 'PERMISSIVE' : 'STRICT'}`)

productpage.on('circuitBreaker', (e) => {
  const rate = e.errorPercentage === undefined ? '' : ` (error rate ${e.errorPercentage.toFixed(1)}%)`
  console.log(`  [event] circuitBreaker reviews/${e.subset ?? '(cluster)'}: ${e.from} -> ${e.to}${rate}`)
})

// A loopback endpoint for the metrics (there is no dashboard): productpage's Prometheus text.
const stats = http.createServer((req, res) => {
  if (req.url !== '/stats/prometheus') return res.writeHead(404).end()
  res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' }).end(productpage.metrics.prometheus())
})
await new Promise((resolve) => stats.listen(0, '127.0.0.1', resolve))
const statsUrl = `http://127.0.0.1:${stats.address().port}/stats/prometheus`
console.log(`  metrics (Prometheus text, loopback only): ${statsUrl}`)

/** n page views of productpage, CONCURRENCY at a time; each says who served its reviews. */
async function browse(n, headers = {}) {
  const results = []
  let next = 0
  const worker = async () => {
    while (next < n) {
      next++
      const res = await fetch(bookinfo.url, { headers })
      results.push(await res.json())
    }
  }
  await Promise.all(Array.from({ length: CONCURRENCY }, worker))
  return results
}

const weights = () => Object.entries(productpage.traffic.get('reviews')).map(([k, w]) => `${k}:${w}`).join(' ')
let snap = productpage.metrics.snapshot()
/** Prints the per-version table since the last call. */
const table = () => {
  const now = productpage.metrics.snapshot()
  console.log('  productpage -> reviews, this phase (from mesh.metrics.snapshot()):')
  console.log(versionTable(snap, now))
  snap = now
}

try {
  console.log('\n== 1. canary: reviews v1 80 / v2 20; end-user jason pinned to v3 ==')
  const canary = await browse(N)
  console.log(`  split ${weights()}  served by: ${shares(tally(canary).byVersion)}  (${N} requests)`)
  const jason = await browse(40, { 'end-user': 'jason' })
  console.log(`  end-user: jason           served by: ${shares(tally(jason).byVersion)}  (stars: ${[...new Set(jason.map((r) => r.reviews.stars))].join(', ')})`)
  table()

  console.log('\n== 2. mTLS: identities from the CA (trust domain cluster.local) ==')
  for (const [who, identity] of [...peers].sort()) console.log(`  ${who.padEnd(11)} saw caller ${identity}`)
  const probe = await probeServerIdentity(ca, bookinfo.reviewsPort('v1'))
  console.log(`  a client that expects ratings at reviews v1's address: ${probe.status} ${probe.flags}: ${probe.body}`)
  try {
    await fetch(`http://127.0.0.1:${bookinfo.reviewsPort('v1')}/reviews/0`)
    console.log('  plain HTTP to reviews v1: answered (STRICT did not hold!)')
  } catch (err) {
    console.log(`  plain HTTP to reviews v1: refused by STRICT mTLS (${err.cause?.code ?? err.message})`)
  }

  console.log('\n== 3. traces (tracing.sampling 100; spans from each mesh\'s tracing.recent()) ==')
  const withRatings = canary.findLast((r) => r.reviews.subset === 'v2') ?? canary[0]
  console.log(drawTrace(services, withRatings.traceId))
  console.log(drawTrace(services, jason[0].traceId))

  console.log('\n== 4. shift: mesh.traffic.split(\'reviews\', { v1: 50, v2: 50 }) while running ==')
  const during = browse(N)
  await productpage.traffic.split('reviews', { v1: 50, v2: 50 })
  await during
  const half = await browse(N)
  console.log(`  split ${weights()}  served by: ${shares(tally(half).byVersion)}  (${N} requests after the change)`)
  table()

  console.log('\n== 5. reviews v2 starts failing (500): its breaker opens, v1 is untouched ==')
  faults.reviewsV2Broken = true
  const broken = []
  const opened = () => productpage.metrics.snapshot().resilience.reviews?.breakers?.v2?.state === 'open'
  for (let i = 0; i < 30 && !opened(); i++) broken.push(...await browse(20))
  broken.push(...await browse(60))
  console.log(`  reviews answers seen by productpage: ${Object.entries(tally(broken).byStatus).sort().map(([k, c]) => `${k}: ${c}`).join(', ')}`)
  console.log('  (503 UO = shed at once by the open breaker, x-sidecarless-overflow: breaker_open)')
  table()

  console.log('\n== 6. reviews v2 heals: after openDuration (1s) trial requests close the breaker ==')
  faults.reviewsV2Broken = false
  await sleep(1100)
  const closed = () => productpage.metrics.snapshot().resilience.reviews?.breakers?.v2?.state === 'closed'
  const healed = []
  for (let i = 0; i < 30 && !closed(); i++) healed.push(...await browse(10))
  healed.push(...await browse(60))
  console.log(`  reviews answers seen by productpage: ${Object.entries(tally(healed).byStatus).sort().map(([k, c]) => `${k}: ${c}`).join(', ')}`)
  table()

  console.log(`\n== 7. metrics: ${statsUrl} ==`)
  const text = await (await fetch(statsUrl)).text()
  const shown = [
    /^sidecarless_cluster_subset_rq_total\{/,
    /^sidecarless_cluster_upstream_rq_overflow_total\{.*reason="breaker_open"/,
    /^sidecarless_cluster_breaker_opened_total\{.*subset="v2"/,
  ]
  for (const line of text.split('\n').filter((l) => shown.some((re) => re.test(l)))) console.log(`  ${line}`)
} finally {
  await new Promise((resolve) => stats.close(resolve))
  await bookinfo.close()
}
console.log('\nall meshes and servers closed')
