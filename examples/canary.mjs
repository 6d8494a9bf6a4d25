// A canary release, in one process: two versions of a "reviews" service, a mesh that
// routes http://reviews by its config, and traffic shifted 90/10 → 50/50 → 0/100 while a
// test user is pinned to v2 by a header. Run it with `npm start`.
import http from 'node:http'
import { createMesh } from 'sidecarless'

/** Versions that answer 500 for now (a bad build), for the rollout below. */
const broken = new Set()

/** Starts a tiny reviews service of one version on a free port. */
function startReviews(version) {
  const server = http.createServer((req, res) => {
    if (broken.has(version)) return res.writeHead(500).end('bad build')
    res.setHeader('content-type', 'application/json')
    res.end(JSON.stringify({ version, path: req.url, host: req.headers.host }))
  })
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)))
}

const v1 = await startReviews('v1')
const v2 = await startReviews('v2')

const mesh = createMesh({
  service: 'productpage',
  config: {
    clusters: [{
      name: 'reviews',
      endpoints: [
        { address: `http://127.0.0.1:${v1.address().port}`, labels: { version: 'v1' } },
        { address: `http://127.0.0.1:${v2.address().port}`, labels: { version: 'v2' } },
      ],
      subsets: [
        { name: 'v1', labels: { version: 'v1' } },
        { name: 'v2', labels: { version: 'v2' } },
      ],
    }],
    virtualHosts: [{
      name: 'reviews',
      domains: ['reviews', 'reviews.default.svc.cluster.local'],
      routes: [
        // The test user always sees the canary.
        { name: 'test-user', match: { prefix: '/', headers: [{ name: 'end-user', exact: 'jason' }] }, route: { cluster: 'reviews', subset: 'v2' } },
        // Everyone else: the split the rollout below moves.
        { name: 'default', match: { prefix: '/' }, route: { cluster: 'reviews', subset: 'v1' } },
      ],
    }],
  },
})
mesh.on('config', ({ version }) => console.log(`  (config version ${version} in force)`))

/** Sends n requests and counts which version answered (the mesh says so in a header). */
async function sample(n, headers = {}) {
  const counts = {}
  for (let i = 0; i < n; i++) {
    const res = await mesh.fetch('http://reviews/reviews/1', { headers })
    await res.arrayBuffer()
    const subset = res.headers.get('x-sidecarless-subset') ?? '?'
    counts[subset] = (counts[subset] ?? 0) + 1
  }
  return counts
}

const N = Number(process.env.CANARY_REQUESTS ?? 1000)
const show = (label, counts) => {
  const total = Object.values(counts).reduce((a, b) => a + b, 0)
  const shares = Object.entries(counts).sort().map(([k, c]) => `${k} ${((c / total) * 100).toFixed(1)}%`)
  console.log(`${label.padEnd(28)} served by: ${shares.join(', ')}`)
}

console.log(`canary of reviews v2, ${N} requests per step`)
show('before the canary', await sample(N))
for (const weights of [{ v1: 90, v2: 10 }, { v1: 50, v2: 50 }, { v2: 100 }]) {
  await mesh.traffic.split('reviews', weights)
  const now = Object.entries(mesh.traffic.get('reviews')).map(([k, w]) => `${k}:${w}`).join(' ')
  show(`split ${now}`, await sample(N))
}
show('test user (jason)', await sample(Math.min(N, 100), { 'end-user': 'jason' }))

// A typo in a rollout is refused and the running split stays.
try {
  await mesh.traffic.split('reviews', { v1: 50, v3: 50 })
} catch (err) {
  console.log(`refused: ${err.code}: ${err.issues?.[0]?.code} at ${err.issues?.[0]?.path}`)
}
console.log(`still in force: ${JSON.stringify(mesh.traffic.get('reviews'))}`)

// The same canary, automated: mesh.traffic.rollout moves traffic step by step and judges each
// step by v2's requests in it. A bad build of v2 is rolled back at the first step; a good one
// goes all the way. (Steps of a few hundred ms here; a minute each by default.)
async function rollout(label) {
  await mesh.traffic.split('reviews', { v1: 100 })
  let sending = true
  const load = (async () => {
    while (sending) await sample(10)
  })()
  const r = await mesh.traffic.rollout('reviews', { to: 'v2', steps: [20, 50, 100], interval: '300ms', minRequests: 5 })
  r.on('step', (s) => console.log(`  step ${s.weight}% to v2: ${s.verdict} (${s.failures} of ${s.requests} failed)`))
  const { state, reason } = await r.done
  sending = false
  await load
  console.log(`rollout, ${label}: ${state}${reason === undefined ? '' : ` (${reason})`}; in force: ${JSON.stringify(mesh.traffic.get('reviews'))}`)
}
broken.add('v2')
await rollout('v2 broken')
broken.delete('v2')
await rollout('v2 fixed')

await mesh.close()
v1.close()
v2.close()
