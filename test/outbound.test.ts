import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { fetch as undiciFetch, request, stream, Agent } from 'undici'
import { Writable } from 'node:stream'
import { createMesh, isMeshError, type MeshConfig } from '../src/index.js'
import { closedPort, echo, reviewsCluster, startUpstream, type Upstream } from './helpers/upstream.js'

let v1: Upstream
let v2: Upstream
let other: Upstream

before(async () => {
  v1 = await startUpstream('v1')
  v2 = await startUpstream('v2')
  other = await startUpstream('other')
})
after(async () => {
  await Promise.all([v1.close(), v2.close(), other.close()])
})

function config(extraRoutes: MeshConfig['virtualHosts'] = []): MeshConfig {
  return {
    clusters: [reviewsCluster(v1, v2), { name: 'other', endpoints: [{ address: other.address }] }],
    virtualHosts: [
      ...(extraRoutes ?? []),
      {
        name: 'reviews',
        domains: ['reviews', 'reviews.default.svc.cluster.local'],
        routes: [
          { match: { prefix: '/', headers: [{ name: 'end-user', exact: 'jason' }] }, route: { cluster: 'reviews', subset: 'v2' } },
          { match: { prefix: '/' }, route: { cluster: 'reviews', subset: 'v1' } },
        ],
      },
    ],
  }
}

describe('routing by authority', () => {
  test('the authority selects the virtual host, with or without port, and Host is forwarded', async () => {
    const mesh = createMesh({ config: config() })
    try {
      for (const url of ['http://reviews/r/1', 'http://reviews:9080/r/1', 'http://reviews.default.svc.cluster.local:9080/r/1', 'http://REVIEWS/r/1']) {
        const res = await mesh.fetch(url)
        assert.equal(res.status, 200, url)
        assert.equal(await res.text(), 'v1 /r/1')
        assert.equal(res.headers.get('x-sidecarless-cluster'), 'reviews')
        assert.equal(res.headers.get('x-sidecarless-subset'), 'v1')
        assert.equal(res.headers.get('x-sidecarless-endpoint'), `127.0.0.1:${v1.port}`)
        assert.equal(res.headers.get('x-upstream-host'), new URL(url).host, 'the upstream sees the authority the caller used')
      }
    } finally {
      await mesh.close()
    }
  })

  test('wildcard domains: exact beats suffix beats prefix beats *', async () => {
    const route = (cluster: string) => [{ match: { prefix: '/' }, route: { cluster } }]
    const mesh = createMesh({
      config: {
        clusters: [
          { name: 'a', endpoints: [{ address: v1.address }] },
          { name: 'b', endpoints: [{ address: v2.address }] },
          { name: 'c', endpoints: [{ address: other.address }] },
        ],
        virtualHosts: [
          { name: 'any', domains: ['*'], routes: route('c') },
          { name: 'suffix', domains: ['*.example.com'], routes: route('b') },
          { name: 'prefix', domains: ['api.*'], routes: route('c') },
          { name: 'exact', domains: ['www.example.com'], routes: route('a') },
        ],
      },
    })
    try {
      const served = async (url: string) => (await request(url, { dispatcher: mesh.dispatcher })).headers['x-sidecarless-cluster']
      assert.equal(await served('http://www.example.com/'), 'a')
      assert.equal(await served('http://foo.example.com/'), 'b')
      assert.equal(await served('http://api.example.com/'), 'b', 'suffix beats prefix')
      assert.equal(await served('http://api.internal/'), 'c')
      assert.equal(await served('http://elsewhere/'), 'c')
    } finally {
      await mesh.close()
    }
  })

  test('an explicit Host header routes like the authority', async () => {
    const mesh = createMesh({ config: config() })
    try {
      const res = await request(`http://127.0.0.1:${other.port}/x`, { dispatcher: mesh.dispatcher, headers: { Host: 'reviews' } })
      assert.equal(await res.body.text(), 'v1 /x')
    } finally {
      await mesh.close()
    }
  })
})

describe('route matching and actions', () => {
  test('header routing sends the test user to v2', async () => {
    const mesh = createMesh({ config: config() })
    try {
      const jason = await mesh.fetch('http://reviews/', { headers: { 'end-user': 'jason' } })
      assert.equal(await jason.text(), 'v2 /')
      const anon = await mesh.fetch('http://reviews/', { headers: { 'end-user': 'mary' } })
      assert.equal(await anon.text(), 'v1 /')
    } finally {
      await mesh.close()
    }
  })

  test('query parameters, methods and inverted header matchers', async () => {
    const mesh = createMesh({
      config: config([{
        name: 'api',
        domains: ['api'],
        routes: [
          { match: { prefix: '/', queryParameters: [{ name: 'canary', exact: 'yes' }] }, route: { cluster: 'reviews', subset: 'v2' } },
          { match: { prefix: '/', methods: ['DELETE'] }, directResponse: { status: 405, body: 'no deleting' } },
          { match: { prefix: '/', headers: [{ name: 'x-internal', present: true, invert: true }] }, route: { cluster: 'other' } },
          { match: { prefix: '/' }, route: { cluster: 'reviews', subset: 'v1' } },
        ],
      }]),
    })
    try {
      assert.equal(await (await mesh.fetch('http://api/p?canary=yes')).text(), 'v2 /p?canary=yes')
      const del = await mesh.fetch('http://api/p', { method: 'DELETE' })
      assert.equal(del.status, 405)
      assert.equal(await del.text(), 'no deleting')
      assert.equal(await (await mesh.fetch('http://api/p')).text(), 'other /p')
      assert.equal(await (await mesh.fetch('http://api/p', { headers: { 'x-internal': '1' } })).text(), 'v1 /p')
    } finally {
      await mesh.close()
    }
  })

  test('prefix, regex and host rewrites reach the upstream', async () => {
    const mesh = createMesh({
      config: config([{
        name: 'rw',
        domains: ['rw'],
        routes: [
          { match: { prefix: '/api/v1/' }, route: { cluster: 'other', prefixRewrite: '/', hostRewrite: 'backend.internal' } },
          { match: { path: '/exact' }, route: { cluster: 'other', prefixRewrite: '/replaced' } },
          { match: { safeRegex: '/users/[0-9]+/profile' }, route: { cluster: 'other', regexRewrite: { pattern: '^/users/([0-9]+)/profile$', substitution: '/profiles/\\1' } } },
          { match: { pathSeparatedPrefix: '/sep' }, route: { cluster: 'other', prefixRewrite: '/s' } },
        ],
      }]),
    })
    try {
      let res = await mesh.fetch('http://rw/api/v1/items?x=1')
      assert.equal(res.headers.get('x-upstream-path'), '/items?x=1')
      assert.equal(res.headers.get('x-upstream-host'), 'backend.internal')
      res = await mesh.fetch('http://rw/exact?q=2')
      assert.equal(res.headers.get('x-upstream-path'), '/replaced?q=2')
      res = await mesh.fetch('http://rw/users/42/profile?full=1')
      assert.equal(res.headers.get('x-upstream-path'), '/profiles/42?full=1')
      res = await mesh.fetch('http://rw/sep/a')
      assert.equal(res.headers.get('x-upstream-path'), '/s/a')
      res = await mesh.fetch('http://rw/separate')
      assert.equal(res.status, 404, 'pathSeparatedPrefix does not take /separate')
      assert.equal(res.headers.get('x-sidecarless-response-flags'), 'NR')
    } finally {
      await mesh.close()
    }
  })

  test('request and response header mutations at virtual host, route and weighted-cluster level', async () => {
    const mesh = createMesh({
      config: {
        clusters: [reviewsCluster(v1, v2)],
        virtualHosts: [{
          name: 'reviews',
          domains: ['reviews'],
          requestHeadersToAdd: [{ header: { key: 'x-vhost', value: 'vh' } }],
          responseHeadersToAdd: [{ header: { key: 'x-served-by', value: 'mesh' } }],
          responseHeadersToRemove: ['x-upstream-path'],
          routes: [{
            match: { prefix: '/' },
            requestHeadersToRemove: ['x-secret'],
            requestHeadersToAdd: [{ header: { key: 'x-route', value: 'r1' }, appendAction: 'OVERWRITE_IF_EXISTS_OR_ADD' }],
            route: {
              weightedClusters: [{
                cluster: 'reviews',
                subset: 'v1',
                weight: 1,
                requestHeadersToAdd: [{ header: { key: 'x-target', value: 'v1' } }],
              }],
            },
          }],
        }],
      },
    })
    try {
      const before = v1.seen.length
      const res = await mesh.fetch('http://reviews/m', { headers: { 'x-secret': 's3cr3t', 'x-route': 'caller' } })
      assert.equal(res.status, 200)
      assert.equal(res.headers.get('x-served-by'), 'mesh')
      assert.equal(res.headers.get('x-upstream-path'), null)
      const seen = v1.seen[before]!
      assert.equal(seen.headers['x-vhost'], 'vh')
      assert.equal(seen.headers['x-route'], 'r1')
      assert.equal(seen.headers['x-target'], 'v1')
      assert.equal(seen.headers['x-secret'], undefined)
      assert.equal(seen.headers.host, 'reviews')
    } finally {
      await mesh.close()
    }
  })

  test('direct responses and redirects are answered by the mesh', async () => {
    const mesh = createMesh({
      config: {
        virtualHosts: [{
          name: 'edge',
          domains: ['edge'],
          routes: [
            { match: { path: '/health' }, directResponse: { status: 200, body: 'ok' } },
            { match: { prefix: '/old/' }, redirect: { prefixRewrite: '/new/', responseCode: 308 } },
            { match: { prefix: '/' }, redirect: { httpsRedirect: true } },
          ],
        }],
      },
    })
    try {
      const health = await mesh.fetch('http://edge/health')
      assert.equal(health.status, 200)
      assert.equal(await health.text(), 'ok')
      assert.equal(health.headers.get('content-type'), 'text/plain')
      const moved = await mesh.fetch('http://edge/old/page?a=1', { redirect: 'manual' })
      assert.equal(moved.status, 308)
      assert.equal(moved.headers.get('location'), 'http://edge/new/page?a=1')
      const https = await mesh.fetch('http://edge:8080/x', { redirect: 'manual' })
      assert.equal(https.status, 301)
      // Envoy keeps a port that is not the request scheme's default (processRequestHost).
      assert.equal(https.headers.get('location'), 'https://edge:8080/x')
    } finally {
      await mesh.close()
    }
  })
})

describe('the mesh answers for the upstream', () => {
  test('no endpoint: 503 no healthy upstream', async () => {
    const mesh = createMesh({
      config: { clusters: [{ name: 'empty' }], virtualHosts: [{ name: 'e', domains: ['e'], routes: [{ match: { prefix: '/' }, route: { cluster: 'empty' } }] }] },
    })
    try {
      const res = await mesh.fetch('http://e/', { method: 'POST', body: 'payload' })
      assert.equal(res.status, 503)
      assert.equal(await res.text(), 'no healthy upstream')
      assert.equal(res.headers.get('x-sidecarless-response-flags'), 'UH')
      assert.equal(res.headers.get('x-sidecarless-cluster'), 'empty')
    } finally {
      await mesh.close()
    }
  })

  test('connection refused: 503 with Envoy\'s upstream connect error text', async () => {
    const port = await closedPort()
    const mesh = createMesh({
      config: { clusters: [{ name: 'dead', endpoints: [{ address: `127.0.0.1:${port}` }] }], virtualHosts: [{ name: 'd', domains: ['d'], routes: [{ match: { prefix: '/' }, route: { cluster: 'dead' } }] }] },
    })
    try {
      for (let i = 0; i < 3; i++) {
        const res = await mesh.fetch('http://d/')
        assert.equal(res.status, 503)
        assert.match(await res.text(), /^upstream connect error or disconnect\/reset before headers\. reset reason: remote connection failure/)
        assert.equal(res.headers.get('x-sidecarless-response-flags'), 'UF')
      }
    } finally {
      await mesh.close()
    }
  })

  test('reset before headers: 503 UC; reset mid-body: the body errors, nothing unhandled', async () => {
    const resetting = await startUpstream('reset', (req, res) => {
      if (req.url === '/mid') {
        res.writeHead(200, { 'content-length': '100' })
        res.write('partial')
        setTimeout(() => res.socket?.destroy(), 10)
      } else {
        req.socket.destroy()
      }
    })
    const mesh = createMesh({
      config: { clusters: [{ name: 'r', endpoints: [{ address: resetting.address }] }], virtualHosts: [{ name: 'r', domains: ['r'], routes: [{ match: { prefix: '/' }, route: { cluster: 'r' } }] }] },
    })
    try {
      const res = await mesh.fetch('http://r/before')
      assert.equal(res.status, 503)
      assert.equal(res.headers.get('x-sidecarless-response-flags'), 'UC')
      assert.match(await res.text(), /reset reason: connection termination/)
      const mid = await mesh.fetch('http://r/mid')
      assert.equal(mid.status, 200)
      await assert.rejects(mid.text(), (err: Error & { cause?: { code?: string } }) => err.cause?.code === 'SIDECARLESS_ERR_UPSTREAM_RESET')
      const { body } = await request('http://r/mid', { dispatcher: mesh.dispatcher })
      await assert.rejects(body.text(), (err: Error & { code?: string; cause?: unknown }) => err.code === 'SIDECARLESS_ERR_UPSTREAM_RESET' && err.cause !== undefined)
    } finally {
      await mesh.close()
      await resetting.close()
    }
  })

  test('route timeout: 504 upstream request timeout, and the upstream request is aborted', async () => {
    let closed = 0
    const slow = await startUpstream('slow', (req, res) => {
      res.on('close', () => closed++)
      if (req.url === '/headers-then-hang') {
        res.writeHead(200)
        res.write('x')
      }
    })
    const mesh = createMesh({
      config: { clusters: [{ name: 's', endpoints: [{ address: slow.address }] }], virtualHosts: [{ name: 's', domains: ['s'], routes: [{ match: { prefix: '/' }, route: { cluster: 's', timeout: '150ms' } }] }] },
    })
    try {
      const started = Date.now()
      const res = await mesh.fetch('http://s/hang')
      assert.equal(res.status, 504)
      assert.equal(await res.text(), 'upstream request timeout')
      assert.equal(res.headers.get('x-sidecarless-response-flags'), 'UT')
      assert.ok(Date.now() - started < 10_000, "the 150ms route timeout fired, not the 15s default")
      const streaming = await request('http://s/headers-then-hang', { dispatcher: mesh.dispatcher })
      assert.equal(streaming.statusCode, 200)
      await assert.rejects(streaming.body.text(), (err: unknown) => isMeshError(err, 'SIDECARLESS_ERR_UPSTREAM_TIMEOUT'))
      for (let i = 0; i < 200 && closed < 2; i++) await new Promise((r) => setTimeout(r, 10))
      assert.equal(closed, 2, 'both upstream requests were aborted')
    } finally {
      await mesh.close()
      await slow.close()
    }
  })
})

describe('outside the registry', () => {
  test('ALLOW_ANY passes unknown hosts through unchanged', async () => {
    const mesh = createMesh({ config: config() })
    try {
      const res = await mesh.fetch(`${other.address}/direct?q=1`)
      assert.equal(await res.text(), 'other /direct?q=1')
      assert.equal(res.headers.get('x-sidecarless-cluster'), 'PassthroughCluster')
      const port = await closedPort()
      const refused = await mesh.fetch(`http://127.0.0.1:${port}/`)
      assert.equal(refused.status, 503, 'a refused pass-through connection is a 503 too, not a rejection')
    } finally {
      await mesh.close()
    }
  })

  test('REGISTRY_ONLY refuses unknown hosts with a coded error', async () => {
    const mesh = createMesh({ config: { ...config(), outboundTrafficPolicy: { mode: 'REGISTRY_ONLY' } } })
    try {
      await assert.rejects(mesh.fetch(`${other.address}/`), (err: unknown) => isMeshError(err, 'SIDECARLESS_ERR_REGISTRY_ONLY'))
      await assert.rejects(request(`${other.address}/`, { dispatcher: mesh.dispatcher }), (err: unknown) => isMeshError(err, 'SIDECARLESS_ERR_REGISTRY_ONLY'))
      assert.equal((await mesh.fetch('http://reviews/')).status, 200, 'registered hosts still work')
    } finally {
      await mesh.close()
    }
  })
})

describe('undici integration', () => {
  test('undici request, stream and fetch accept mesh.dispatcher', async () => {
    const mesh = createMesh({ config: config() })
    try {
      const r = await request('http://reviews/a', { dispatcher: mesh.dispatcher, method: 'POST', body: 'x' })
      assert.equal(await r.body.text(), 'v1 /a')
      assert.equal(r.headers['x-sidecarless-subset'], 'v1')
      const chunks: Buffer[] = []
      await stream('http://reviews/b', { dispatcher: mesh.dispatcher, method: 'GET' }, () => new Writable({
        write(chunk: Buffer, _enc, cb) {
          chunks.push(chunk)
          cb()
        },
      }))
      assert.equal(Buffer.concat(chunks).toString(), 'v1 /b')
      const f = await undiciFetch('http://reviews/c', { dispatcher: mesh.dispatcher })
      assert.equal(await f.text(), 'v1 /c')
      const composed = mesh.dispatcher.compose((dispatch) => (opts, handler) => dispatch({ ...opts, headers: { ...(opts.headers as Record<string, string>), 'end-user': 'jason' } }, handler))
      const c = await request('http://reviews/d', { dispatcher: composed })
      assert.equal(await c.body.text(), 'v2 /d', 'undici interceptors compose in front of the mesh')
    } finally {
      await mesh.close()
    }
  })

  test('installGlobal() routes global fetch through the mesh and its disposer restores the previous dispatcher', async () => {
    const mesh = createMesh({ config: config() })
    try {
      const restore = mesh.installGlobal()
      try {
        const res = await fetch('http://reviews/global', { headers: { 'end-user': 'jason' } })
        assert.equal(await res.text(), 'v2 /global')
        assert.equal(res.headers.get('x-sidecarless-subset'), 'v2')
        const plain = await request('http://reviews/u')
        assert.equal(await plain.body.text(), 'v1 /u', 'undici without a dispatcher uses the global one')
      } finally {
        restore()
      }
      await assert.rejects(fetch('http://reviews.invalid/'), 'after restore, global fetch no longer knows "reviews"')
    } finally {
      await mesh.close()
    }
  })

  test('a caller abort rejects with a coded AbortError and frees the upstream request', async () => {
    let closed = 0
    const ac = new AbortController()
    const hang = await startUpstream('hang', (_req, res) => {
      res.on('close', () => closed++)
      // Abort once the upstream holds the request (on a loaded machine, a fixed delay could
      // abort it while it still waits for a connection, and nothing upstream would close).
      setTimeout(() => ac.abort(), 20)
    })
    const mesh = createMesh({
      config: { clusters: [{ name: 'h', endpoints: [{ address: hang.address }] }], virtualHosts: [{ name: 'h', domains: ['h'], routes: [{ match: { prefix: '/' }, route: { cluster: 'h', timeout: 0 } }] }] },
    })
    try {
      await assert.rejects(mesh.fetch('http://h/', { signal: ac.signal }), (err: unknown) => {
        assert.ok(isMeshError(err, 'SIDECARLESS_ERR_ABORTED'))
        assert.equal((err as Error).name, 'AbortError')
        return true
      })
      for (let i = 0; i < 200 && closed < 1; i++) await new Promise((r) => setTimeout(r, 10))
      assert.equal(closed, 1)
    } finally {
      await mesh.close()
      await hang.close()
    }
  })

  test('an invalid URL rejects with SIDECARLESS_ERR_INVALID_URL', async () => {
    const mesh = createMesh({ config: config() })
    try {
      await assert.rejects(mesh.fetch('not a url'), (err: unknown) => isMeshError(err, 'SIDECARLESS_ERR_INVALID_URL'))
    } finally {
      await mesh.close()
    }
  })
})

describe('snapshots and lifecycle', () => {
  test('a request in flight finishes on the snapshot it started with', async () => {
    let release: () => void = () => undefined
    const gate = new Promise<void>((r) => { release = r })
    const held = await startUpstream('held', (req, res, name) => {
      void gate.then(() => echo(req, res, name))
    })
    const mesh = createMesh({
      config: {
        clusters: [{ name: 'svc', endpoints: [{ address: held.address }] }],
        virtualHosts: [{ name: 'svc', domains: ['svc'], routes: [{ match: { prefix: '/' }, route: { cluster: 'svc' } }] }],
      },
    })
    try {
      const inflight = mesh.fetch('http://svc/first')
      await new Promise((r) => setTimeout(r, 50))
      await mesh.update({
        clusters: [{ name: 'svc', endpoints: [{ address: other.address }] }],
        virtualHosts: [{ name: 'svc', domains: ['svc'], routes: [{ match: { prefix: '/' }, route: { cluster: 'svc' } }] }],
      })
      const after = await mesh.fetch('http://svc/second')
      assert.equal(await after.text(), 'other /second')
      release()
      const first = await inflight
      assert.equal(await first.text(), 'held /first', 'the old endpoint answered the old request')
    } finally {
      await mesh.close()
      await held.close()
    }
  })

  test('connection pools survive a swap when the endpoint is unchanged', async () => {
    const pooled = await startUpstream('pooled')
    const cfg = (extra: string): MeshConfig => ({
      clusters: [{ name: 'p', endpoints: [{ address: pooled.address }] }, { name: extra, endpoints: [{ address: other.address }] }],
      virtualHosts: [{ name: 'p', domains: ['p'], routes: [{ match: { prefix: '/' }, route: { cluster: 'p' } }] }],
    })
    const mesh = createMesh({ config: cfg('x1') })
    try {
      // undici may open a second socket for back-to-back requests; warm both up first.
      for (let i = 0; i < 4; i++) await (await mesh.fetch('http://p/warm')).text()
      const warm = pooled.connections
      for (let i = 2; i < 6; i++) {
        await mesh.update(cfg(`x${i}`))
        await (await mesh.fetch(`http://p/${i}`)).text()
      }
      assert.equal(pooled.connections, warm, 'keep-alive connections served every request across four swaps')
      // A cluster whose config changed but whose endpoint did not keeps the pool too.
      await mesh.update({ ...cfg('x9'), clusters: [{ name: 'p', endpoints: [{ address: pooled.address, weight: 3 }], loadBalancer: 'random' }, { name: 'x9', endpoints: [{ address: other.address }] }] })
      await (await mesh.fetch('http://p/7')).text()
      assert.equal(pooled.connections, warm)
      // An endpoint that left the config has its pool closed.
      await mesh.update({ ...cfg('x10'), clusters: [{ name: 'p', endpoints: [{ address: other.address }] }, { name: 'x10', endpoints: [{ address: other.address }] }] })
      for (let i = 0; i < 200 && pooled.openSockets > 0; i++) await new Promise((r) => setTimeout(r, 10))
      assert.equal(pooled.openSockets, 0, 'the removed endpoint\'s idle connections were closed')
    } finally {
      await mesh.close()
      await pooled.close()
    }
  })

  test('close() lets requests in flight finish, then refuses new ones', async () => {
    const slow = await startUpstream('slow', (req, res, name) => setTimeout(() => echo(req, res, name), 100))
    const mesh = createMesh({
      config: { clusters: [{ name: 's', endpoints: [{ address: slow.address }] }], virtualHosts: [{ name: 's', domains: ['s'], routes: [{ match: { prefix: '/' }, route: { cluster: 's' } }] }] },
    })
    const inflight = request('http://s/drain', { dispatcher: mesh.dispatcher }).then((r) => r.body.text())
    await new Promise((r) => setTimeout(r, 20))
    const closing = mesh.close()
    await assert.rejects(mesh.fetch('http://s/late'), (err: unknown) => isMeshError(err, 'SIDECARLESS_ERR_CLOSED'))
    assert.equal(await inflight, 'slow /drain')
    await closing
    await slow.close()
  })
})

describe('load balancers', () => {
  async function spread(lb: string, n: number, ups: Upstream[], opts: Record<string, unknown> = {}, headers?: (i: number) => Record<string, string>) {
    const mesh = createMesh({
      config: {
        clusters: [{ name: 'c', loadBalancer: lb as 'round_robin', endpoints: ups.map((u, i) => ({ address: u.address, weight: (opts['weights'] as number[] | undefined)?.[i] ?? 1 })) }],
        virtualHosts: [{ name: 'c', domains: ['c'], routes: [{ match: { prefix: '/' }, route: { cluster: 'c', hashPolicy: [{ header: { name: 'x-user' } }] } }] }],
      },
    })
    const counts = new Map<string, number>()
    const byUser = new Map<string, Set<string>>()
    try {
      for (let i = 0; i < n; i++) {
        const h = headers?.(i) ?? {}
        const r = await request('http://c/', { dispatcher: mesh.dispatcher, headers: h })
        await r.body.dump()
        const ep = String(r.headers['x-sidecarless-endpoint'])
        counts.set(ep, (counts.get(ep) ?? 0) + 1)
        if (h['x-user'] !== undefined) {
          const s = byUser.get(h['x-user']) ?? new Set()
          s.add(ep)
          byUser.set(h['x-user'], s)
        }
      }
    } finally {
      await mesh.close()
    }
    return { counts, byUser }
  }

  test('round_robin alternates evenly; weights are honoured', async () => {
    const { counts } = await spread('round_robin', 90, [v1, v2, other])
    assert.deepEqual([...counts.values()], [30, 30, 30])
    const weighted = await spread('round_robin', 80, [v1, v2], { weights: [3, 1] })
    assert.equal(weighted.counts.get(`127.0.0.1:${v1.port}`), 60)
  })

  test('random spreads over every endpoint', async () => {
    const { counts } = await spread('random', 300, [v1, v2, other])
    assert.equal(counts.size, 3)
    for (const c of counts.values()) assert.ok(c > 50, `each endpoint gets a share (${c})`)
  })

  test('ring_hash and maglev keep a user on one endpoint', async () => {
    for (const lb of ['ring_hash', 'maglev']) {
      const { byUser, counts } = await spread(lb, 200, [v1, v2, other], {}, (i) => ({ 'x-user': `user-${i % 20}` }))
      for (const [user, eps] of byUser) assert.equal(eps.size, 1, `${lb}: ${user} stays on one endpoint`)
      assert.ok(counts.size >= 2, `${lb}: users spread over endpoints`)
    }
  })

  test('least_request prefers the endpoint with fewer requests in flight', async () => {
    const slow = await startUpstream('slow', (req, res, name) => setTimeout(() => echo(req, res, name), 300))
    const mesh = createMesh({
      config: {
        clusters: [{ name: 'c', loadBalancer: 'least_request', endpoints: [{ address: slow.address }, { address: v1.address }] }],
        virtualHosts: [{ name: 'c', domains: ['c'], routes: [{ match: { prefix: '/' }, route: { cluster: 'c' } }] }],
      },
    })
    try {
      // Occupy the slow endpoint, then every sequential request should avoid it.
      const busy = Array.from({ length: 4 }, () => request('http://c/', { dispatcher: mesh.dispatcher }).then((r) => r.body.text()))
      await new Promise((r) => setTimeout(r, 30))
      let fast = 0
      for (let i = 0; i < 40; i++) {
        const r = await request('http://c/', { dispatcher: mesh.dispatcher })
        await r.body.dump()
        if (r.headers['x-sidecarless-endpoint'] === `127.0.0.1:${v1.port}`) fast++
      }
      assert.ok(fast >= 36, `most requests avoid the busy endpoint (${fast}/40)`)
      await Promise.all(busy)
    } finally {
      await mesh.close()
      await slow.close()
    }
  })
})

describe('DNS clusters', () => {
  test('strict_dns resolves names; a name that does not resolve leaves no endpoint (503 no healthy upstream)', async () => {
    const mesh = createMesh({
      config: {
        clusters: [
          // v4_only: the upstream listens on 127.0.0.1, and with Envoy's default (auto) a hosts file listing ::1 for localhost wins.
          { name: 'local', type: 'strict_dns', dnsLookupFamily: 'v4_only', endpoints: [{ address: `http://localhost:${v1.port}` }] },
          { name: 'nowhere', type: 'strict_dns', endpoints: [{ address: 'http://no-such-host.invalid:80' }] },
        ],
        virtualHosts: [{
          name: 'dns',
          domains: ['dns'],
          routes: [
            { match: { prefix: '/nowhere' }, route: { cluster: 'nowhere' } },
            { match: { prefix: '/' }, route: { cluster: 'local' } },
          ],
        }],
      },
    })
    try {
      // The first answer may still be on its way right after createMesh; update() waits for it.
      await mesh.update(structuredClone(mesh.config))
      let res
      for (let i = 0; i < 50; i++) {
        res = await mesh.fetch('http://dns/ok')
        if (res.status === 200) break
        await res.arrayBuffer()
        await new Promise((r) => setTimeout(r, 20))
      }
      assert.equal(res?.status, 200)
      assert.equal(await res?.text(), 'v1 /ok')
      const none = await mesh.fetch('http://dns/nowhere')
      assert.equal(none.status, 503)
      assert.equal(await none.text(), 'no healthy upstream')
    } finally {
      await mesh.close()
    }
  })
})

test('a pass-through agent is not leaked: close() resolves with nothing pending', async () => {
  const mesh = createMesh({ config: config() })
  await (await mesh.fetch(`${other.address}/x`)).text()
  await mesh.close()
  await mesh.close()
  assert.ok(mesh.dispatcher.closed)
  // The agent type is exported so users can compare behaviour with a plain one.
  assert.equal(typeof Agent, 'function')
})
