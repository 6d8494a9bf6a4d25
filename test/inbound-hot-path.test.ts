// The per-request pieces of the inbound side, tested alone and through a real server: the
// lazy context binding of request/response events, the one close listener per response
// (the drain's in-flight list and the chain's exchange), the peer made once per connection,
// and the inbound recorder reused for the same caller.
import assert from 'node:assert/strict'
import { AsyncLocalStorage, executionAsyncId } from 'node:async_hooks'
import { EventEmitter, once } from 'node:events'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { Socket } from 'node:net'
import { describe, it } from 'node:test'
import { Agent, request } from 'undici'
import { createMesh } from '../src/index.js'
import { bindToContext } from '../src/inbound/context-binding.js'
import { takeRequestHeader } from '../src/inbound/request-header-removal.js'
import { endOnClose, watchInFlight } from '../src/inbound/response-close.js'
import { ServerBinding } from '../src/inbound/server-binding.js'
import { currentContext, MeshRequestContext, runWithContext, runWithContextOn } from '../src/observability/context.js'
import { MetricsRegistry } from '../src/observability/metrics.js'

const ctxA = new MeshRequestContext('a'.repeat(32), 'b'.repeat(16), undefined, false, undefined, 'req-a', undefined, undefined, undefined)

describe('context binding of request and response events', () => {
  it('listeners added after the binding run in the request context; those before it, as they were', () => {
    const e = new EventEmitter()
    const seen: Record<string, unknown> = {}
    e.on('early', () => (seen.early = currentContext()))
    bindToContext(e, ctxA)
    // Nothing added yet: emit is not wrapped at all.
    assert.equal(Object.hasOwn(e, 'emit'), false)
    e.on('late', () => (seen.late = currentContext()))
    assert.equal(Object.hasOwn(e, 'emit'), true)
    e.emit('early')
    e.emit('late')
    assert.equal(seen.early, undefined)
    assert.equal(seen.late, ctxA)
  })

  it('an event that gained an app listener runs all its listeners in the context; other events do not enter it', () => {
    const e = new EventEmitter()
    const seen: unknown[] = []
    e.on('data', () => seen.push(['node', currentContext()]))
    e.on('finish', () => seen.push(['finish', currentContext()]))
    bindToContext(e, ctxA)
    e.on('data', () => seen.push(['app', currentContext()]))
    e.emit('data')
    e.emit('finish')
    assert.deepEqual(seen, [['node', ctxA], ['app', ctxA], ['finish', undefined]])
  })

  it('once, prepend and removeListener keep working on a bound emitter', () => {
    const e = new EventEmitter()
    bindToContext(e, ctxA)
    const calls: string[] = []
    const onceListener = (): void => void calls.push(`once:${currentContext()?.requestId}`)
    const removed = (): void => void calls.push('removed')
    e.once('x', onceListener)
    e.prependListener('x', () => calls.push(`first:${currentContext()?.requestId}`))
    e.on('x', removed)
    e.removeListener('x', removed)
    e.emit('x')
    e.emit('x')
    assert.deepEqual(calls, ['first:req-a', 'once:req-a', 'first:req-a'])
    assert.equal(e.listenerCount('x'), 1)
  })

  it('node\'s own clearIncoming listener does not wrap emit', () => {
    const e = new EventEmitter()
    bindToContext(e, ctxA)
    e.on('end', function clearIncoming() {})
    assert.equal(Object.hasOwn(e, 'emit'), false)
  })

  it('an emit already inside the context calls straight through', () => {
    const e = new EventEmitter()
    bindToContext(e, ctxA)
    let inside: unknown
    e.on('x', () => (inside = currentContext()))
    runWithContext(ctxA, () => e.emit('x'))
    assert.equal(inside, ctxA)
  })

  it('through a wrapped server: a body read after the handler returned, and res finish/close listeners, run in context', async () => {
    const mesh = createMesh({ service: 'hot-path', config: {} })
    const seen: Record<string, string | undefined> = {}
    const server = mesh.createServer((req, res) => {
      const id = mesh.context()?.requestId
      seen.handler = id
      setTimeout(() => {
        // Outside the handler's synchronous run: listeners added later still get the context.
        req.on('data', () => (seen.data = mesh.context()?.requestId))
        req.on('end', () => {
          seen.end = mesh.context()?.requestId
          res.on('finish', () => (seen.finish = mesh.context()?.requestId))
          res.on('close', () => (seen.close = mesh.context()?.requestId))
          res.end('ok')
        })
      }, 10)
    })
    server.listen(0, '127.0.0.1')
    await once(server, 'listening')
    const port = (server.address() as AddressInfo).port
    const agent = new Agent()
    try {
      const r = await request(`http://127.0.0.1:${port}/`, { method: 'POST', body: 'hello', dispatcher: agent, headers: { 'x-request-id': 'rid-1' } })
      assert.equal(await r.body.text(), 'ok')
      await new Promise((resolve) => setTimeout(resolve, 50))
      assert.deepEqual(seen, { handler: 'rid-1', data: 'rid-1', end: 'rid-1', finish: 'rid-1', close: 'rid-1' })
    } finally {
      await agent.close()
      server.close()
      await mesh.close()
    }
  })
})

describe('entering the request context', () => {
  const ctxB = new MeshRequestContext('c'.repeat(32), 'd'.repeat(16), undefined, false, undefined, 'req-b', undefined, undefined, undefined)

  it('inside: the context, in sync code and in async work it starts; the caller\'s other stores as they were; after (a return or a throw): nothing left', async () => {
    const app = new AsyncLocalStorage<string>()
    const seen: unknown[] = []
    let later: Promise<unknown[]> | undefined
    app.run('tenant', () => {
      const outerId = executionAsyncId()
      const r = runWithContextOn(ctxA, (a: number, b: number) => {
        seen.push(currentContext(), app.getStore(), a + b)
        later = new Promise((resolve) => setTimeout(() => resolve([currentContext(), app.getStore()]), 1))
        return 'returned'
      }, 1, 2)
      seen.push(r, currentContext(), app.getStore(), executionAsyncId() === outerId)
      assert.throws(() => runWithContextOn(ctxA, () => {
        throw new Error('app failed')
      }, 0, 0), /app failed/)
      seen.push(currentContext(), app.getStore())
      // Nested: the inner context, then the outer one again.
      runWithContext(ctxA, () => {
        runWithContext(ctxB, () => seen.push(currentContext()))
        seen.push(currentContext())
      })
    })
    assert.deepEqual(seen, [ctxA, 'tenant', 3, 'returned', undefined, 'tenant', true, undefined, 'tenant', ctxB, ctxA])
    assert.deepEqual(await later, [ctxA, 'tenant'])
    assert.equal(currentContext(), undefined)
  })

  it('through a wrapped server: the app\'s own store (entered around listen) reaches the handler as without the mesh; the context reaches later work', async () => {
    const app = new AsyncLocalStorage<string>()
    const mesh = createMesh({ service: 'hot-path', config: {} })
    const seen: Record<string, unknown[]> = {}
    const handler = (name: string) => (req: http.IncomingMessage, res: http.ServerResponse): void => {
      seen[name] = [app.getStore(), mesh.context()?.requestId]
      setTimeout(() => {
        seen[`${name} timer`] = [app.getStore(), mesh.context()?.requestId]
        void Promise.resolve().then(() => {
          seen[`${name} promise`] = [app.getStore(), mesh.context()?.requestId]
          res.end('ok')
        })
      }, 1)
    }
    const plain = http.createServer(handler('plain'))
    const wrapped = mesh.createServer(handler('mesh'))
    app.run('tenant', () => {
      plain.listen(0, '127.0.0.1')
      wrapped.listen(0, '127.0.0.1')
    })
    await Promise.all([once(plain, 'listening'), once(wrapped, 'listening')])
    const agent = new Agent()
    try {
      for (const s of [plain, wrapped]) {
        const r = await request(`http://127.0.0.1:${(s.address() as AddressInfo).port}/`, { dispatcher: agent, headers: { 'x-request-id': 'rid-2' } })
        assert.equal(await r.body.text(), 'ok')
      }
      assert.deepEqual(seen, {
        plain: ['tenant', undefined],
        'plain timer': ['tenant', undefined],
        'plain promise': ['tenant', undefined],
        mesh: ['tenant', 'rid-2'],
        'mesh timer': ['tenant', 'rid-2'],
        'mesh promise': ['tenant', 'rid-2'],
      })
    } finally {
      await agent.close()
      plain.close()
      wrapped.close()
      await mesh.close()
    }
  })
})

describe('one close listener per response', () => {
  const response = (): http.ServerResponse => new http.ServerResponse(new http.IncomingMessage(new Socket()))

  it('the drain sees the responses still in flight, never the closed ones, in any close order', () => {
    const server = http.createServer()
    const binding = new ServerBinding(server, null, false)
    const all = Array.from({ length: 5 }, response)
    for (const res of all) {
      res.shouldKeepAlive = true
      binding.admit(res)
    }
    // Close the first, the last and a middle one: the slots are reused by the others.
    for (const i of [0, 4, 2]) all[i]!.emit('close')
    binding.beginDrain()
    assert.deepEqual(all.map((r) => r.shouldKeepAlive), [true, false, true, false, true])
    // Admitted during the drain: told at once.
    const late = response()
    late.shouldKeepAlive = true
    binding.admit(late)
    assert.equal(late.shouldKeepAlive, false)
  })

  it('one listener serves the in-flight list and the exchange; the exchange ends once', () => {
    const res = response()
    const before = res.listenerCount('close')
    const deleted: unknown[] = []
    let ended = 0
    watchInFlight(res, { delete: (r) => deleted.push(r) })
    endOnClose(res, { closed: () => ended++ })
    assert.equal(res.listenerCount('close'), before + 1)
    res.emit('close')
    res.emit('close')
    assert.deepEqual([deleted.length, ended], [1, 1])
  })

  it('an exchange alone (a tunnel\'s response, never admitted) gets its own listener', () => {
    const res = response()
    let ended = 0
    endOnClose(res, { closed: () => ended++ })
    res.emit('close')
    assert.equal(ended, 1)
  })
})

describe('per-connection and per-caller state', () => {
  it('requests on one keep-alive connection share one frozen peer; another connection gets its own', async () => {
    const mesh = createMesh({ service: 'hot-path', config: {} })
    const peers: unknown[] = []
    const server = mesh.createServer((_req, res) => {
      peers.push(mesh.context()?.peer)
      res.end('ok')
    })
    server.listen(0, '127.0.0.1')
    await once(server, 'listening')
    const port = (server.address() as AddressInfo).port
    const one = new Agent({ connections: 1 })
    const two = new Agent({ connections: 1 })
    try {
      for (const agent of [one, one, two]) await (await request(`http://127.0.0.1:${port}/`, { dispatcher: agent })).body.dump()
      const [a, b, c] = peers as [{ address: string; port: number }, unknown, { port: number }]
      assert.equal(a, b)
      assert.ok(Object.isFrozen(a))
      assert.equal(a.address, '127.0.0.1')
      assert.notEqual(a, c)
      assert.notEqual(a.port, c.port)
    } finally {
      await one.close()
      await two.close()
      server.close()
      await mesh.close()
    }
  })

  it('the inbound recorder of a route follows the caller: alternating callers are counted apart', () => {
    const m = new MetricsRegistry({ service: 'reviews' })
    const peerA = 'workload=a-v1,namespace=default,app=a,version=v1'
    const peerB = 'workload=b-v1,namespace=default,app=b,version=v1'
    const principal = 'spiffe://cluster.local/ns/default/sa/a'
    const calls: [string | undefined, string | undefined][] = [[principal, peerA], [principal, peerB], [principal, peerA], [undefined, peerA], [principal, undefined], [principal, peerA]]
    const recorders = calls.map(([p, h]) => m.inbound('r', p, h))
    assert.equal(recorders[0], recorders[2])
    assert.equal(recorders[0], recorders[5])
    assert.notEqual(recorders[0], recorders[1])
    assert.notEqual(recorders[0], recorders[3])
    assert.notEqual(recorders[0], recorders[4])
    for (const r of recorders) {
      r.start()
      r.end(200, 1, 10, 20)
    }
    const text = m.prometheus()
    const count = (app: string, security: string): number => {
      const line = text.split('\n').find((l) => l.startsWith('istio_requests_total{') && l.includes(`source_app="${app}"`) && l.includes(`connection_security_policy="${security}"`))
      return line === undefined ? 0 : Number(line.slice(line.lastIndexOf(' ') + 1))
    }
    assert.equal(count('a', 'mutual_tls'), 3)
    assert.equal(count('b', 'mutual_tls'), 1)
    assert.equal(count('a', 'none'), 1)
    assert.equal(m.snapshot().inbound.routes['r']?.requests, 6)
  })
})

describe('the peer header is the mesh\'s: taken out before the app sees the request', () => {
  it('through a wrapped server: not in headers, headersDistinct or rawHeaders, wherever it came; its caller counted', async () => {
    const mesh = createMesh({ service: 'reviews', config: {} })
    const seen: { headers: unknown; distinct: unknown; raw: string[] }[] = []
    const server = mesh.createServer((req, res) => {
      seen.push({ headers: req.headers['x-sidecarless-peer'], distinct: req.headersDistinct['x-sidecarless-peer'], raw: req.rawHeaders.filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase()) })
      res.end('ok')
    })
    server.listen(0, '127.0.0.1')
    await once(server, 'listening')
    const port = (server.address() as AddressInfo).port
    const agent = new Agent()
    const peer = 'workload=productpage-v1,namespace=default,app=productpage,version=v1'
    try {
      // Last (as a mesh sends it), first, and in another case.
      for (const headers of [{ 'x-a': '1', 'x-sidecarless-peer': peer }, { 'x-sidecarless-peer': peer, 'x-a': '1' }, { 'X-Sidecarless-Peer': peer, 'x-a': '1' }]) {
        await (await request(`http://127.0.0.1:${port}/`, { dispatcher: agent, headers })).body.dump()
      }
      assert.equal(seen.length, 3)
      for (const s of seen) {
        assert.equal(s.headers, undefined)
        assert.equal(s.distinct, undefined)
        assert.ok(!s.raw.includes('x-sidecarless-peer'), `rawHeaders: ${s.raw.join(',')}`)
        assert.ok(s.raw.includes('x-a'))
      }
      const line = mesh.metrics.prometheus().split('\n').find((l) => l.startsWith('istio_requests_total{') && l.includes('source_app="productpage"'))
      assert.ok(line?.endsWith(' 3'), line)
    } finally {
      await agent.close()
      server.close()
      await mesh.close()
    }
  })

  it('takeRequestHeader: from headers, rawHeaders and an already built headersDistinct; several values joined as node joins them', async () => {
    const results: unknown[] = []
    const server = http.createServer((req, res) => {
      const built = req.url
      if (req.url === '/distinct') assert.deepEqual(req.headersDistinct['x-sidecarless-peer'], ['a=1', 'a=2'])
      const value = takeRequestHeader(req, 'x-sidecarless-peer')
      results.push({ built, value, headers: { ...req.headers }, raw: [...req.rawHeaders], distinct: req.headersDistinct['x-sidecarless-peer'] })
      res.end()
    })
    server.listen(0, '127.0.0.1')
    await once(server, 'listening')
    const port = (server.address() as AddressInfo).port
    const send = (path: string): Promise<void> => new Promise((resolve, reject) => {
      const c = new Socket()
      c.connect(port, '127.0.0.1', () => c.write(`GET ${path} HTTP/1.1\r\nHost: h\r\nx-sidecarless-peer: a=1\r\nx-b: 2\r\nX-Sidecarless-Peer: a=2\r\nConnection: close\r\n\r\n`))
      c.on('data', () => {})
      c.on('end', () => resolve())
      c.on('error', reject)
    })
    try {
      await send('/headers')
      await send('/distinct')
      assert.equal(results.length, 2)
      for (const r of results as { built: string; value: string; headers: Record<string, string>; raw: string[]; distinct: unknown }[]) {
        assert.equal(r.value, 'a=1, a=2', `built ${r.built}`)
        assert.deepEqual(r.headers, { host: 'h', 'x-b': '2', connection: 'close' }, `built ${r.built}`)
        assert.deepEqual(r.raw, ['Host', 'h', 'x-b', '2', 'Connection', 'close'], `built ${r.built}`)
        assert.equal(r.distinct, undefined)
      }
    } finally {
      server.close()
    }
  })
})
