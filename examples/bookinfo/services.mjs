// The Bookinfo services of the demo: each one its own mesh and its own server on port 0,
// calling the next through its own mesh.fetch. Started bottom-up (ratings, reviews,
// productpage) so each caller's config can name the ports of the services it calls.
import { createMesh } from 'sidecarless'

const spiffe = (sa) => `spiffe://cluster.local/ns/default/sa/${sa}`

/** Reads a request body as JSON, or undefined. */
async function readJson(res) {
  const text = await res.text()
  try {
    return JSON.parse(text)
  } catch {
    return undefined
  }
}

/** Listens on a free loopback port; resolves with the port. */
function listen(server) {
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => resolve(server.address().port))
  })
}

/** Sends a JSON answer. */
function json(res, status, body) {
  res.writeHead(status, { 'content-type': 'application/json' })
  res.end(JSON.stringify(body))
}

/**
 * Starts every service. `ca` issues each workload's certificate; `peers` collects the
 * SPIFFE identities the services saw on their inbound connections (caller → callee).
 */
export async function startBookinfo(ca) {
  const credentials = (sa) => {
    const { certificate, privateKey, trustBundle } = ca.issue({ namespace: 'default', serviceAccount: sa, ttl: '1h' })
    return { certificate, privateKey, trustBundle }
  }
  const tracing = { sampling: 100 }
  const peers = new Map()   // "reviews v2" → identity of its caller, first seen
  const notePeer = (mesh, name) => {
    const identity = mesh.context()?.peer?.identity
    if (!peers.has(name)) peers.set(name, identity ?? '(none: not mTLS)')
  }
  const services = []        // { name, mesh, server, port }

  // ratings: the leaf. STRICT mTLS: only callers with a mesh certificate get in.
  const ratingsMesh = createMesh({
    service: 'ratings',
    labels: { version: 'v1' },
    config: { identity: credentials('ratings'), listener: { mtls: { mode: 'STRICT' } }, tracing },
  })
  const ratingsServer = ratingsMesh.createServer((req, res) => {
    notePeer(ratingsMesh, 'ratings v1')
    json(res, 200, { id: req.url.split('/').pop(), ratings: { Reviewer1: 5, Reviewer2: 4 } })
  })
  services.push({ name: 'ratings v1', mesh: ratingsMesh, server: ratingsServer, port: await listen(ratingsServer) })
  const ratingsPort = services[0].port

  // reviews v1 (no stars), v2 (black stars), v3 (red stars). v2 can be broken on demand.
  const faults = { reviewsV2Broken: false }
  for (const [version, color] of [['v1', null], ['v2', 'black'], ['v3', 'red']]) {
    const mesh = createMesh({
      service: 'reviews',
      labels: { version },
      config: {
        identity: credentials('reviews'),
        listener: { mtls: { mode: 'STRICT' } },
        tracing,
        clusters: [{
          name: 'ratings',
          endpoints: [{ address: `127.0.0.1:${ratingsPort}`, labels: { version: 'v1' } }],
          // mTLS to ratings, and only to a workload whose certificate says it is ratings.
          tls: { mode: 'mutual', verifyIdentities: [spiffe('ratings')] },
        }],
        virtualHosts: [{ name: 'ratings', domains: ['ratings'], routes: [{ match: { prefix: '/' }, route: { cluster: 'ratings', timeout: '2s' } }] }],
      },
    })
    const server = mesh.createServer(async (req, res) => {
      notePeer(mesh, `reviews ${version}`)
      if (version === 'v2' && faults.reviewsV2Broken) return json(res, 500, { error: 'reviews v2 is broken' })
      const id = req.url.split('/').pop()
      const body = { id, version, reviews: ['An extremely entertaining play by Shakespeare.', 'Absolutely fun and entertaining.'] }
      if (color !== null) {
        const r = await mesh.fetch(`http://ratings/ratings/${id}`)
        const ratings = await readJson(r)
        body.stars = r.ok ? { color, ...ratings?.ratings } : { error: `ratings unavailable (${r.status})` }
      }
      json(res, 200, body)
    })
    services.push({ name: `reviews ${version}`, mesh, server, port: await listen(server) })
  }
  const reviewsPort = (v) => services.find((s) => s.name === `reviews ${v}`).port

  // productpage: the entry point (plain HTTP from the demo's "browser"; PERMISSIVE accepts it).
  const productpage = createMesh({
    service: 'productpage',
    labels: { version: 'v1' },
    config: {
      identity: credentials('productpage'),
      listener: { mtls: { mode: 'PERMISSIVE' } },
      tracing,
      clusters: [{
        name: 'reviews',
        endpoints: ['v1', 'v2', 'v3'].map((v) => ({ address: `127.0.0.1:${reviewsPort(v)}`, labels: { version: v } })),
        subsets: ['v1', 'v2', 'v3'].map((v) => ({ name: v, labels: { version: v } })),
        tls: { mode: 'mutual', verifyIdentities: [spiffe('reviews')] },
        // One error-rate breaker per subset: a failing version is cut off, the others are not.
        circuitBreakers: {
          errorRate: { errorThreshold: 50, volumeThreshold: 10, rollingWindow: '2s', openDuration: '1s', halfOpenTrials: 2 },
        },
      }],
      virtualHosts: [{
        name: 'reviews',
        domains: ['reviews', 'reviews.default.svc.cluster.local'],
        routes: [
          // Istio's Bookinfo rule: the test user jason always sees v3.
          { name: 'jason', match: { prefix: '/', headers: [{ name: 'end-user', exact: 'jason' }] }, route: { cluster: 'reviews', subset: 'v3' } },
          {
            name: 'default',
            match: { prefix: '/' },
            route: {
              weightedClusters: [{ cluster: 'reviews', subset: 'v1', weight: 80 }, { cluster: 'reviews', subset: 'v2', weight: 20 }],
              timeout: '3s',
              // A reset or refused connection is tried again (on another endpoint when there is one).
              retryPolicy: { retryOn: ['reset', 'connect-failure'], numRetries: 2 },
            },
          },
        ],
      }],
    },
  })
  const productpageServer = productpage.createServer(async (req, res) => {
    const user = req.headers['end-user']
    const r = await productpage.fetch('http://reviews/reviews/0', { headers: typeof user === 'string' ? { 'end-user': user } : {} })
    const reviews = await readJson(r)
    json(res, 200, {
      traceId: productpage.context()?.traceId,
      reviews: {
        status: r.status,
        subset: r.headers.get('x-sidecarless-subset'),
        flags: r.headers.get('x-sidecarless-response-flags'),
        overflow: r.headers.get('x-sidecarless-overflow'),
        stars: reviews?.stars?.color ?? null,
      },
    })
  })
  services.push({ name: 'productpage v1', mesh: productpage, server: productpageServer, port: await listen(productpageServer) })

  return {
    services,
    productpage,
    peers,
    faults,
    url: `http://127.0.0.1:${services.at(-1).port}/productpage`,
    reviewsPort,
    /** Closes every server, then every mesh (drains requests in flight). */
    async close() {
      await Promise.all(services.map((s) => new Promise((resolve) => {
        s.server.close(() => resolve())
        s.server.closeAllConnections?.()
      })))
      await Promise.all(services.map((s) => s.mesh.close()))
    },
  }
}

/**
 * What productpage's side of mTLS sees: a throwaway mesh with productpage's identity whose
 * cluster expects ratings' SPIFFE ID at `port` (a reviews server). The handshake succeeds,
 * the identity check refuses, and the 503 names the identity the server presented.
 */
export async function probeServerIdentity(ca, port) {
  const { certificate, privateKey, trustBundle } = ca.issue({ namespace: 'default', serviceAccount: 'productpage', ttl: '1h' })
  const probe = createMesh({
    service: 'productpage',
    config: {
      identity: { certificate, privateKey, trustBundle },
      clusters: [{ name: 'ratings', endpoints: [{ address: `127.0.0.1:${port}` }], tls: { mode: 'mutual', verifyIdentities: [spiffe('ratings')] } }],
      virtualHosts: [{ name: 'ratings', domains: ['ratings'], routes: [{ match: { prefix: '/' }, route: { cluster: 'ratings' } }] }],
    },
  })
  try {
    const res = await probe.fetch('http://ratings/ratings/0')
    return { status: res.status, flags: res.headers.get('x-sidecarless-response-flags'), body: await res.text() }
  } finally {
    await probe.close()
  }
}
