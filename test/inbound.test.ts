import assert from 'node:assert/strict'
import { once } from 'node:events'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { pipeline } from 'node:stream/promises'
import { Readable, Transform } from 'node:stream'
import { AsyncResource } from 'node:async_hooks'
import { after, before, describe, test } from 'node:test'
import { request } from 'undici'
import express from 'express'
import Fastify from 'fastify'
import Koa from 'koa'
import { createMesh, type Mesh, type RequestContext } from '../src/index.js'
import { startUpstream, type Upstream } from './helpers/upstream.js'

// Flags: sampled (bit 0) and W3C level 2 random-trace-id (bit 1, set on traces the mesh starts).
const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-0[0-3]$/

let backend: Upstream
before(async () => {
  backend = await startUpstream('backend')
})
after(async () => {
  await backend.close()
})

function meshConfig() {
  return {
    clusters: [{ name: 'backend', endpoints: [{ address: backend.address }] }],
    virtualHosts: [{ name: 'backend', domains: ['backend'], routes: [{ match: { prefix: '/' }, route: { cluster: 'backend' } }] }],
    listener: { routes: [{ name: 'api', match: { prefix: '/api' } }, { name: 'other', match: { prefix: '/' } }] },
  }
}

async function listen(server: http.Server): Promise<string> {
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`
}

async function closeServer(server: http.Server): Promise<void> {
  server.closeAllConnections()
  await new Promise<void>((resolve) => server.close(() => resolve()))
}

describe('mesh.createServer and mesh.context()', () => {
  let mesh: Mesh
  before(() => {
    mesh = createMesh({ service: 'frontend', config: meshConfig() })
  })
  after(async () => {
    await mesh.close()
  })

  test('a request without trace headers starts a trace; context is readable anywhere in the call tree', async () => {
    const seen: (RequestContext | undefined)[] = []
    const server = mesh.createServer((req, res) => {
      seen.push(mesh.context())
      setTimeout(() => {
        seen.push(mesh.context())
        void Promise.resolve().then(() => {
          seen.push(mesh.context())
          res.end('ok')
        })
      }, 5)
    })
    const url = await listen(server)
    try {
      const res = await request(`${url}/api/items`)
      assert.equal(await res.body.text(), 'ok')
      assert.equal(seen.length, 3)
      const ctx = seen[0]!
      assert.match(ctx.traceId, /^[0-9a-f]{32}$/)
      assert.match(ctx.spanId, /^[0-9a-f]{16}$/)
      assert.match(ctx.requestId, /^[0-9a-f-]{36}$/)
      assert.equal(ctx.route, 'api')
      assert.equal(ctx.parentSpanId, undefined)
      assert.equal(ctx.peer?.address, '127.0.0.1')
      for (const c of seen) assert.equal(c, ctx, 'the same context across timers and promises')
      assert.equal(mesh.context(), undefined, 'no context outside a request')
    } finally {
      await closeServer(server)
    }
  })

  test('an incoming W3C trace is continued and x-request-id is kept', async () => {
    let ctx: RequestContext | undefined
    const server = mesh.createServer((req, res) => {
      ctx = mesh.context()
      res.end(String(req.headers['x-request-id']))
    })
    const url = await listen(server)
    try {
      const res = await request(`${url}/x`, {
        headers: { traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01', tracestate: 'congo=t61rcWkgMzE', 'x-request-id': 'req-123' },
      })
      assert.equal(await res.body.text(), 'req-123')
      assert.equal(ctx?.traceId, '0af7651916cd43dd8448eb211c80319c')
      assert.equal(ctx?.parentSpanId, 'b7ad6b7169203331')
      assert.notEqual(ctx?.spanId, 'b7ad6b7169203331')
      assert.equal(ctx?.sampled, true)
      assert.equal(ctx?.traceState, 'congo=t61rcWkgMzE')
      assert.equal(ctx?.route, 'other')
    } finally {
      await closeServer(server)
    }
  })

  test('B3 single and multi headers are read', async () => {
    const ctxs: RequestContext[] = []
    const server = mesh.createServer((_req, res) => {
      ctxs.push(mesh.context()!)
      res.end()
    })
    const url = await listen(server)
    try {
      await (await request(url, { headers: { b3: '80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90' } })).body.dump()
      await (await request(url, { headers: { 'x-b3-traceid': '463ac35c9f6413ad', 'x-b3-spanid': 'a2fb4a1d1a96d312', 'x-b3-sampled': '0' } })).body.dump()
      assert.equal(ctxs[0]?.traceId, '80f198ee56343ba864fe8b2a57d3eff7')
      assert.equal(ctxs[0]?.parentSpanId, 'e457b5a2e4d86bd1')
      assert.equal(ctxs[1]?.traceId, '0000000000000000463ac35c9f6413ad')
      assert.equal(ctxs[1]?.sampled, false)
    } finally {
      await closeServer(server)
    }
  })

  test('malformed, oversized, duplicate or non-ASCII trace headers start a new trace; nothing crashes', async () => {
    const ctxs: RequestContext[] = []
    const server = mesh.createServer((_req, res) => {
      ctxs.push(mesh.context()!)
      res.end()
    })
    const url = await listen(server)
    const bad: Record<string, string | string[]>[] = [
      { traceparent: '00-00000000000000000000000000000000-b7ad6b7169203331-01' },
      { traceparent: '00-0AF7651916CD43DD8448EB211C80319C-B7AD6B7169203331-01' },
      { traceparent: 'ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' },
      { traceparent: `00-${'a'.repeat(5000)}` },
      { traceparent: ['00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01', '00-0af7651916cd43dd8448eb211c80319d-b7ad6b7169203331-01'] },
      { b3: 'not-a-b3-header' },
      { 'x-request-id': 'has spaces, and commas' },
      { traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\u00e9' },
    ]
    try {
      for (const headers of bad) await (await request(url, { headers })).body.dump()
      assert.equal(ctxs.length, bad.length)
      for (const c of ctxs) {
        assert.notEqual(c.traceId, '0af7651916cd43dd8448eb211c80319c')
        assert.match(c.traceId, /^[0-9a-f]{32}$/)
        assert.equal(c.parentSpanId, undefined)
      }
      assert.match(ctxs[6]!.requestId, /^[0-9a-f-]{36}$/, 'an invalid request id is replaced')
    } finally {
      await closeServer(server)
    }
  })

  test('outbound calls made inside a request continue its trace, across timers, streams and pools', async () => {
    const server = mesh.createServer(async (_req, res) => {
      const ctx = mesh.context()!
      const calls: Promise<unknown>[] = []
      calls.push(mesh.fetch('http://backend/direct').then((r) => r.text()))
      calls.push(new Promise((resolve) => setTimeout(() => resolve(request('http://backend/timer', { dispatcher: mesh.dispatcher }).then((r) => r.body.text())), 2)))
      // A stream callback, and a callback-style resource pool that binds with AsyncResource.
      calls.push(pipeline(Readable.from(['a']), new Transform({
        transform(chunk, _enc, cb) {
          void mesh.fetch('http://backend/stream').then((r) => r.text()).then(() => cb(null, chunk), cb)
        },
      }), async function* (source) { for await (const _ of source) yield _ }))
      const pool = new AsyncResource('pool')
      calls.push(new Promise((resolve) => setImmediate(pool.bind(() => resolve(mesh.fetch('http://backend/pool').then((r) => r.text()))))))
      await Promise.all(calls)
      res.end(ctx.traceId)
    })
    const url = await listen(server)
    try {
      const before = backend.seen.length
      const res = await request(`${url}/api/fan-out`, { headers: { 'x-request-id': 'fan-1' } })
      const traceId = await res.body.text()
      const seen = backend.seen.slice(before)
      assert.equal(seen.length, 4)
      const spanIds = new Set<string>()
      for (const s of seen) {
        const m = TRACEPARENT.exec(String(s.headers.traceparent))
        assert.ok(m, `traceparent on ${s.url}: ${String(s.headers.traceparent)}`)
        assert.equal(m[1], traceId, `${s.url} continues the trace`)
        spanIds.add(m[2]!)
        assert.equal(s.headers['x-request-id'], 'fan-1', `${s.url} carries the request id`)
      }
      assert.equal(spanIds.size, 4, 'a new span id per outgoing call')
    } finally {
      await closeServer(server)
    }
  })

  test('a traceparent the app set itself is replaced, never appended to', async () => {
    const server = mesh.createServer(async (_req, res) => {
      const r = await mesh.fetch('http://backend/replace', { headers: { traceparent: '00-11111111111111111111111111111111-2222222222222222-01' } })
      await r.text()
      res.end(mesh.context()!.traceId)
    })
    const url = await listen(server)
    try {
      const before = backend.seen.length
      const traceId = await (await request(url)).body.text()
      const tp = backend.seen[before]!.headers.traceparent
      assert.equal(typeof tp, 'string')
      assert.equal(TRACEPARENT.exec(String(tp))?.[1], traceId)
    } finally {
      await closeServer(server)
    }
  })

  test('outbound calls outside any request start their own trace', async () => {
    const before = backend.seen.length
    await (await mesh.fetch('http://backend/background')).text()
    assert.match(String(backend.seen[before]!.headers.traceparent), TRACEPARENT)
  })
})

describe('two meshed services in one process', () => {
  test('A → B: B continues A\'s trace with A\'s client span as parent; spans nest in the store', async () => {
    const meshB = createMesh({ service: 'b', config: { tracing: { sampling: 100 } } })
    let ctxB: RequestContext | undefined
    const serverB = meshB.createServer((_req, res) => {
      ctxB = meshB.context()
      res.end('from b')
    })
    const urlB = await listen(serverB)
    const meshA = createMesh({
      service: 'a',
      config: {
        tracing: { sampling: 100 },
        clusters: [{ name: 'b', endpoints: [{ address: urlB }] }],
        virtualHosts: [{ name: 'b', domains: ['b'], routes: [{ match: { prefix: '/' }, route: { cluster: 'b' } }] }],
      },
    })
    let ctxA: RequestContext | undefined
    const serverA = meshA.createServer(async (_req, res) => {
      ctxA = meshA.context()
      res.end(await (await meshA.fetch('http://b/hello')).text())
    })
    const urlA = await listen(serverA)
    try {
      assert.equal(await (await request(`${urlA}/start`)).body.text(), 'from b')
      assert.ok(ctxA && ctxB)
      assert.equal(ctxB.traceId, ctxA.traceId)
      assert.equal(ctxB.requestId, ctxA.requestId, 'the request id crosses the hop')
      const spansA = meshA.tracing.recent()
      const server = spansA.find((s) => s.kind === 'server')
      const client = spansA.find((s) => s.kind === 'client')
      assert.ok(server && client, JSON.stringify(spansA))
      assert.equal(server.spanId, ctxA.spanId)
      assert.equal(client.parentSpanId, server.spanId, 'the client span is a child of the server span')
      assert.equal(ctxB.parentSpanId, client.spanId, 'B\'s server span is a child of A\'s client span')
      assert.equal(client.attributes['http.response.status_code'], 200)
      assert.equal(client.attributes['sidecarless.cluster'], 'b')
      const serverSpanB = meshB.tracing.recent().find((s) => s.kind === 'server')
      assert.equal(serverSpanB?.parentSpanId, client.spanId)
      assert.equal(serverSpanB?.attributes['http.request.method'], 'GET')
    } finally {
      await closeServer(serverA)
      await closeServer(serverB)
      await meshA.close()
      await meshB.close()
    }
  })
})

describe('frameworks', () => {
  test('Express, Fastify and Koa run unchanged inside the mesh', async () => {
    const mesh = createMesh({ config: meshConfig() })
    const traceOf = (): string => mesh.context()?.traceId ?? 'none'
    const expressApp = express()
    expressApp.get('/api/e', (_req, res) => {
      setTimeout(() => res.send(traceOf()), 1)
    })
    const expressServer = mesh.wrap(http.createServer(expressApp))

    const fastify = Fastify({ serverFactory: (handler) => mesh.createServer(handler) })
    fastify.get('/api/f', async () => {
      await new Promise((r) => setTimeout(r, 1))
      return traceOf()
    })
    await fastify.ready()

    const koa = new Koa()
    koa.use(async (ctx) => {
      await new Promise((r) => setTimeout(r, 1))
      ctx.body = traceOf()
    })
    const koaServer = mesh.wrap(http.createServer(koa.callback()))

    const urls = [await listen(expressServer), await listen(fastify.server), await listen(koaServer)]
    try {
      const paths = ['/api/e', '/api/f', '/api/k']
      for (let i = 0; i < 3; i++) {
        const res = await request(`${urls[i]}${paths[i]}`, { headers: { traceparent: `00-${'ab'.repeat(16)}-${'cd'.repeat(8)}-01` } })
        assert.equal(res.statusCode, 200)
        assert.equal(await res.body.text(), 'ab'.repeat(16), paths[i])
      }
      const routes = mesh.metrics.snapshot().inbound.routes
      assert.equal(routes['api']?.requests, 3)
      assert.equal(routes['api']?.responses['2xx'], 3)
    } finally {
      await closeServer(expressServer)
      await fastify.close()
      // Fastify closes only servers it started itself.
      await closeServer(fastify.server)
      await closeServer(koaServer)
      await mesh.close()
    }
  })

  test('wrap() is idempotent and refuses what is not a node:http server', async () => {
    const mesh = createMesh()
    try {
      const server = http.createServer((_req, res) => res.end())
      assert.equal(mesh.wrap(server), server)
      assert.equal(mesh.wrap(server), server)
      assert.throws(() => mesh.wrap({} as http.Server), { code: 'SIDECARLESS_ERR_INVALID_ARGUMENT' })
      const other = createMesh()
      assert.throws(() => other.wrap(server), { code: 'SIDECARLESS_ERR_INVALID_ARGUMENT' })
      await other.close()
    } finally {
      await mesh.close()
    }
  })
})

describe('metrics', () => {
  test('inbound and outbound requests are counted with status classes and latency', async () => {
    const mesh = createMesh({ config: meshConfig() })
    const server = mesh.createServer(async (req, res) => {
      if (req.url === '/api/fail') {
        res.statusCode = 500
        res.end()
        return
      }
      await (await mesh.fetch('http://backend/m')).text()
      res.end('ok')
    })
    const url = await listen(server)
    try {
      for (let i = 0; i < 5; i++) await (await request(`${url}/api/ok`)).body.dump()
      await (await request(`${url}/api/fail`)).body.dump()
      await (await request(`${url}/elsewhere`)).body.dump()
      const snap = mesh.metrics.snapshot()
      const api = snap.inbound.routes['api']!
      assert.equal(api.requests, 6)
      assert.equal(api.responses['2xx'], 5)
      assert.equal(api.responses['5xx'], 1)
      assert.equal(api.inFlight, 0)
      assert.equal(api.latency.count, 6)
      assert.ok(api.latency.p99 >= api.latency.p50)
      assert.equal(snap.inbound.routes['other']?.requests, 6 - 5)
      const cluster = snap.outbound.clusters['backend']!
      assert.equal(cluster.requests, 6)
      assert.equal(cluster.responses['2xx'], 6)
      assert.equal(cluster.endpoints[`127.0.0.1:${backend.port}`]?.requests, 6)
      assert.ok(cluster.bytesReceived > 0)
      const text = mesh.metrics.prometheus()
      assert.match(text, /^# TYPE sidecarless_/m)
      assert.match(text, /cluster_name="backend"/)
    } finally {
      await closeServer(server)
      await mesh.close()
    }
  })
})
