/**
 * What undici's `Pool` did that the endpoint pool (src/upstream/endpoint-pool.ts) must keep
 * doing, against real servers: connections the server closes (`Connection: close`,
 * `Keep-Alive: timeout=1`, after every response), upgrades and CONNECT through the mesh,
 * `close()` / `destroy()` with requests waiting and in flight (no call hangs: each is
 * raced against a bounded wait and must settle), a request undici refuses (its connection
 * is freed, not leaked), a refused endpoint that comes back, request bodies of every kind
 * while they wait, and the pool's stats and the server's sockets after all of it.
 */
import assert from 'node:assert/strict'
import { once } from 'node:events'
import http from 'node:http'
import net, { type AddressInfo, type Socket } from 'node:net'
import { Readable } from 'node:stream'
import { after, afterEach, before, describe, it } from 'node:test'
import { buildConnector, request, upgrade, type Dispatcher } from 'undici'
import { createMesh, type MeshConfig } from '../src/index.js'
import { EndpointPool } from '../src/upstream/endpoint-pool.js'
import { HostRegistry } from '../src/upstream/host.js'
import { parseAddress, type ParsedAddress } from '../src/config/address.js'

const uncaught: Error[] = []
const onUncaught = (err: Error): void => {
  uncaught.push(err)
}
before(() => process.on('uncaughtException', onUncaught))
after(() => {
  process.off('uncaughtException', onUncaught)
  assert.deepEqual(uncaught.map((e) => e.message), [], 'no uncaught exception')
})

/** Settles `p` or fails after `ms` (a hang is the defect; the bound is generous, never asserted as speed). */
async function settles<T>(p: Promise<T>, what: string, ms = 5_000): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  try {
    return await Promise.race([p, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what} did not settle within ${ms} ms`)), ms)))])
  } finally {
    clearTimeout(timer)
  }
}

async function until(cond: () => boolean, what: string, ms = 5_000): Promise<void> {
  await settles((async () => {
    while (!cond()) await new Promise((r) => setTimeout(r, 5))
  })(), what, ms)
}

interface Server {
  readonly port: number
  readonly origin: string
  accepted: number
  readonly open: () => number
  readonly held: (() => void)[]
  close(): Promise<void>
}

/** An http server on port 0; `/hold` is answered when the test calls the next `held` entry. */
async function startServer(handle: (req: http.IncomingMessage, res: http.ServerResponse) => void = (req, res) => res.end('ok')): Promise<Server> {
  const sockets = new Set<Socket>()
  const held: (() => void)[] = []
  const server = http.createServer((req, res) => {
    if (req.url === '/hold') {
      req.resume()
      held.push(() => res.end('held'))
      return
    }
    handle(req, res)
  })
  const out = { port: 0, origin: '', accepted: 0, open: () => sockets.size, held } as { -readonly [K in keyof Server]: Server[K] }
  server.on('connection', (s: Socket) => {
    out.accepted++
    sockets.add(s)
    s.on('close', () => sockets.delete(s))
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  out.port = (server.address() as AddressInfo).port
  out.origin = `http://127.0.0.1:${out.port}`
  out.close = () => new Promise<void>((resolve) => {
    for (const s of sockets) s.destroy()
    server.close(() => resolve())
  })
  return out
}

function poolTo(origin: string, maxConnections?: number): EndpointPool {
  return new EndpointPool(origin, { connect: buildConnector({ timeout: 2_000 }), maxConnecting: 4, maxConnections })
}

function meshTo(origin: string, extra: Partial<NonNullable<MeshConfig['clusters']>[number]> = {}): ReturnType<typeof createMesh> {
  return createMesh({
    service: 'productpage',
    config: {
      clusters: [{ name: 'up', endpoints: [{ address: origin }], ...extra }],
      virtualHosts: [{ name: 'up', domains: ['up'], routes: [{ match: { prefix: '/' }, route: { cluster: 'up', timeout: '30s' } }] }],
    },
  })
}

async function text(d: Dispatcher, url: string, opts: Record<string, unknown> = {}): Promise<string> {
  const res = await request(url, { dispatcher: d, ...opts })
  return `${res.statusCode} ${await res.body.text()}`
}

describe('endpoint pool: connections the server closes', () => {
  it('a server that closes after every response (Connection: close): 50 sequential requests all answered, no socket left open', async () => {
    const server = await startServer((req, res) => {
      req.resume()
      res.setHeader('connection', 'close')
      res.end('ok')
    })
    const mesh = meshTo(server.origin)
    try {
      for (let i = 0; i < 50; i++) assert.equal(await settles(text(mesh.dispatcher, 'http://up/'), `request ${i}`), '200 ok')
      assert.equal(server.accepted, 50, 'one connection per request')
      await until(() => server.open() === 0, 'every connection closed')
    } finally {
      await settles(mesh.close(), 'mesh.close()')
      await server.close()
    }
  })

  it('Keep-Alive: timeout=1 (below undici\'s threshold): each response closes its connection, the next request gets a new one', async () => {
    const server = await startServer((req, res) => {
      req.resume()
      res.setHeader('keep-alive', 'timeout=1')
      res.end('ok')
    })
    const pool = poolTo(server.origin)
    try {
      for (let i = 0; i < 20; i++) assert.equal(await settles(text(pool, `${server.origin}/`), `request ${i}`), '200 ok')
      await until(() => server.open() === 0, 'connections closed by the client')
      await until(() => pool.stats.connected === 0, 'the pool forgot them')
    } finally {
      await settles(pool.close(), 'pool.close()')
      await server.close()
    }
  })

  it('a server that closes idle keep-alive connections: the next request (after the close was seen) goes on a new connection', async () => {
    const server = await startServer((req, res) => {
      req.resume()
      res.end('ok', () => setImmediate(() => req.socket.end()))
    })
    const pool = poolTo(server.origin)
    try {
      for (let i = 0; i < 20; i++) {
        assert.equal(await settles(text(pool, `${server.origin}/`), `request ${i}`), '200 ok')
        await until(() => pool.stats.connected === 0, 'the closed connection left the pool')
      }
      assert.equal(server.accepted, 20)
      assert.deepEqual({ ...pool.stats }, { connected: 0, free: 0, connecting: 0, pending: 0, queued: 0, running: 0, size: 0 })
    } finally {
      await settles(pool.close(), 'pool.close()')
      await server.close()
    }
  })
})

describe('endpoint pool: requests undici refuses', () => {
  it('a request undici rejects (invalid header) fails alone: its connection is freed, the next request is answered', async () => {
    const server = await startServer()
    const pool = poolTo(server.origin, 1)
    try {
      assert.equal(await settles(text(pool, `${server.origin}/`), 'warm-up'), '200 ok')
      await assert.rejects(settles(text(pool, `${server.origin}/`, { headers: { 'x-bad': 'a\r\nb' } }), 'invalid request'), /invalid/i)
      assert.equal(await settles(text(pool, `${server.origin}/`), 'request after the invalid one'), '200 ok')
      assert.equal(server.accepted, 1, 'the connection the invalid request took was freed, not left busy until its keep-alive timer')
      await until(() => pool.stats.running === 0 && pool.stats.free === 1, 'the connection idle again')
      // A waiting one too: the only connection is busy, the invalid request waits, then is refused.
      const held = text(pool, `${server.origin}/hold`)
      await until(() => server.held.length === 1, 'held request at the server')
      const bad = assert.rejects(settles(text(pool, `${server.origin}/`, { headers: { 'x-bad': 'a\r\nb' } }), 'waiting invalid request'), /invalid/i)
      const good = settles(text(pool, `${server.origin}/`), 'request behind the invalid one')
      server.held.shift()?.()
      assert.equal(await held, '200 held')
      await bad
      assert.equal(await good, '200 ok')
      assert.equal(server.accepted, 1, 'one connection served all of them')
    } finally {
      await settles(pool.close(), 'pool.close()')
      await server.close()
    }
  })
})

describe('endpoint pool: close and destroy', () => {
  it('close() called twice, the second after the first resolved or while it drains: both settle', async () => {
    const server = await startServer()
    const pool = poolTo(server.origin)
    try {
      assert.equal(await text(pool, `${server.origin}/`), '200 ok')
      await settles(pool.close(), 'first close()')
      await settles(pool.close(), 'second close()')
      const p2 = poolTo(server.origin)
      const held = text(p2, `${server.origin}/hold`)
      await until(() => server.held.length === 1, 'held request')
      const c1 = p2.close()
      await new Promise((r) => setImmediate(r))
      const c2 = p2.close()
      server.held.shift()?.()
      assert.equal(await held, '200 held')
      await settles(Promise.all([c1, c2]), 'both close() calls')
    } finally {
      await server.close()
    }
  })

  it('close() with requests in flight and waiting: all are answered, then it resolves; no socket left', async () => {
    const server = await startServer()
    const pool = poolTo(server.origin, 2)
    try {
      const all = Array.from({ length: 6 }, () => text(pool, `${server.origin}/hold`))
      await until(() => server.held.length === 2, 'two in flight')
      assert.equal(pool.stats.pending, 4)
      const closed = pool.close()
      await assert.rejects(text(pool, `${server.origin}/`), { code: 'UND_ERR_CLOSED' })
      for (let i = 0; i < 6; i++) {
        await until(() => server.held.length > 0, `held request ${i}`)
        server.held.shift()?.()
      }
      assert.deepEqual(await settles(Promise.all(all), 'requests'), Array(6).fill('200 held'))
      await settles(closed, 'close()')
      await until(() => server.open() === 0, 'server sockets closed')
    } finally {
      await server.close()
    }
  })

  it('destroy() after close() while a request is in flight: the request fails, the connection is cut, both settle', async () => {
    const server = await startServer()
    const pool = poolTo(server.origin)
    try {
      const held = text(pool, `${server.origin}/hold`).catch((e: Error) => `failed ${e.name}`)
      const waiting = text(pool, `${server.origin}/hold`).catch((e: Error) => `failed ${e.name}`)
      await until(() => server.held.length >= 1, 'held request')
      const closed = pool.close()
      await new Promise((r) => setImmediate(r))
      await settles(pool.destroy(), 'destroy()')
      assert.match(await settles(held, 'in-flight request'), /^failed /)
      // The second may have been in flight or waiting: either way it fails and settles.
      assert.match(await settles(waiting, 'second request'), /^failed /)
      await settles(closed, 'close()')
      await until(() => server.open() === 0, 'server sockets closed')
    } finally {
      await server.close()
    }
  })

  it('mesh.dispatcher.destroy() after an endpoint with a request in flight was removed by a config update: the request fails, destroy settles', async () => {
    const server = await startServer()
    const other = await startServer()
    const mesh = meshTo(server.origin)
    try {
      const held = request('http://up/hold', { dispatcher: mesh.dispatcher }).then((r) => r.body.text().then((t) => `${r.statusCode} ${t}`))
      await until(() => server.held.length === 1, 'held request')
      // The endpoint leaves the config: its host is released and its pool closes gracefully.
      await mesh.update({
        clusters: [{ name: 'up', endpoints: [{ address: other.origin }] }],
        virtualHosts: [{ name: 'up', domains: ['up'], routes: [{ match: { prefix: '/' }, route: { cluster: 'up', timeout: '30s' } }] }],
      })
      assert.equal(await settles(text(mesh.dispatcher, 'http://up/'), 'request to the new endpoint'), '200 ok')
      await settles(mesh.dispatcher.destroy(), 'mesh.dispatcher.destroy()')
      await settles(held.catch(() => 'failed'), 'the in-flight request on the removed endpoint')
      await until(() => server.open() === 0, 'its connection cut')
    } finally {
      server.held.forEach((r) => r())
      await server.close()
      await other.close()
    }
  })

  it('HostRegistry.closeAll(true) destroys pools that were closing gracefully', async () => {
    const server = await startServer()
    const registry = new HostRegistry()
    try {
      const host = registry.acquire(parseAddress(server.origin) as ParsedAddress, { connectTimeoutMs: 2_000, idleTimeoutMs: undefined, maxConnections: undefined })
      const held = text(host.pool, `${server.origin}/hold`)
      await until(() => server.held.length === 1, 'held request')
      registry.release(host)
      await settles(registry.closeAll(true), 'closeAll(true)')
      await assert.rejects(settles(held, 'in-flight request'))
      await until(() => server.open() === 0, 'connection cut')
    } finally {
      server.held.forEach((r) => r())
      await server.close()
    }
  })
})

describe('endpoint pool: refused, then back', () => {
  it('requests waiting on a refused endpoint fail 503 UF; once it listens again, requests are answered', async () => {
    const probe = net.createServer()
    probe.listen(0, '127.0.0.1')
    await once(probe, 'listening')
    const port = (probe.address() as AddressInfo).port
    await new Promise<void>((resolve) => probe.close(() => resolve()))
    const mesh = meshTo(`http://127.0.0.1:${port}`)
    let server: http.Server | undefined
    try {
      const failed = await settles(Promise.all(Array.from({ length: 20 }, async () => {
        const res = await request('http://up/', { dispatcher: mesh.dispatcher })
        await res.body.dump()
        return `${res.statusCode} ${String(res.headers['x-sidecarless-response-flags'])}`
      })), 'requests to a refused endpoint')
      assert.deepEqual(new Set(failed), new Set(['503 UF']))
      server = http.createServer((req, res) => res.end('back'))
      server.listen(port, '127.0.0.1')
      await once(server, 'listening')
      const back = await settles(Promise.all(Array.from({ length: 20 }, () => text(mesh.dispatcher, 'http://up/'))), 'requests after it came back')
      assert.deepEqual(back, Array(20).fill('200 back'))
    } finally {
      await settles(mesh.close(), 'mesh.close()')
      server?.closeAllConnections()
      await new Promise<void>((resolve) => (server === undefined ? resolve() : server.close(() => resolve())))
    }
  })
})

describe('endpoint pool: upgrade and CONNECT through the mesh', () => {
  let server: http.Server
  let port = 0
  before(async () => {
    server = http.createServer((req, res) => res.end('plain'))
    server.on('upgrade', (req: http.IncomingMessage, socket: Socket) => {
      socket.write('HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: echo\r\n\r\n')
      socket.on('data', (d: Buffer) => socket.write(d))
      socket.on('end', () => socket.end())
    })
    server.on('connect', (req: http.IncomingMessage, socket: Socket) => {
      socket.write('HTTP/1.1 200 Connection Established\r\n\r\n')
      socket.on('data', (d: Buffer) => socket.write(d))
      socket.on('end', () => socket.end())
    })
    server.listen(0, '127.0.0.1')
    await once(server, 'listening')
    port = (server.address() as AddressInfo).port
  })
  after(async () => {
    server.closeAllConnections()
    await new Promise<void>((resolve) => server.close(() => resolve()))
  })

  it('upgrades queued behind each other (maxConnections 1): each gets its own socket, then plain requests are answered', async () => {
    const mesh = meshTo(`http://127.0.0.1:${port}`, { circuitBreakers: { maxConnections: 1 } })
    try {
      const ups = await settles(Promise.all(Array.from({ length: 3 }, async (_, i) => {
        const { socket } = await upgrade('http://up/ws', { dispatcher: mesh.dispatcher, protocol: 'echo' })
        socket.write(`hello ${i}`)
        const [chunk] = await once(socket, 'data') as [Buffer]
        socket.end()
        return chunk.toString()
      })), 'upgrades')
      assert.deepEqual(ups, ['hello 0', 'hello 1', 'hello 2'])
      assert.equal(await settles(text(mesh.dispatcher, 'http://up/'), 'plain request after upgrades'), '200 plain')
    } finally {
      await settles(mesh.close(), 'mesh.close()')
    }
  })

  it('CONNECTs queued behind each other (maxConnections 1) through mesh.dispatcher reach the cluster endpoint, then a plain request is answered', async () => {
    // An authority-form path ("up:443") matches the empty prefix, not "/".
    const mesh = createMesh({
      service: 'productpage',
      config: {
        clusters: [{ name: 'up', endpoints: [{ address: `http://127.0.0.1:${port}` }], circuitBreakers: { maxConnections: 1 } }],
        virtualHosts: [{ name: 'up', domains: ['up', 'up:443'], routes: [{ match: { prefix: '' }, route: { cluster: 'up' } }] }],
      },
    })
    try {
      const tunnels = await settles(Promise.all(Array.from({ length: 3 }, async (_, i) => {
        const { socket, statusCode } = await mesh.dispatcher.connect({ origin: 'http://up', path: 'up:443' })
        assert.equal(statusCode, 200)
        socket.write(`tunnel ${i}`)
        const [chunk] = await once(socket, 'data') as [Buffer]
        socket.end()
        return chunk.toString()
      })), 'CONNECTs')
      assert.deepEqual(tunnels, ['tunnel 0', 'tunnel 1', 'tunnel 2'])
      assert.equal(await settles(text(mesh.dispatcher, 'http://up/'), 'plain request after CONNECT'), '200 plain')
    } finally {
      await settles(mesh.close(), 'mesh.close()')
    }
  })
})

describe('endpoint pool: request bodies while they wait', () => {
  let server: Server
  before(async () => {
    server = await startServer((req, res) => {
      const chunks: Buffer[] = []
      req.on('data', (c: Buffer) => chunks.push(c))
      req.on('end', () => res.end(String(Buffer.concat(chunks).length)))
    })
  })
  after(() => server.close())
  afterEach(() => server.held.forEach((r) => r()))

  it('stream, async iterable, Buffer and a large body with Expect: 100-continue, each queued behind a held request, arrive whole', async () => {
    const mesh = meshTo(server.origin, { circuitBreakers: { maxConnections: 1 } })
    try {
      const held = text(mesh.dispatcher, 'http://up/hold')
      await until(() => server.held.length === 1, 'held request')
      const big = Buffer.alloc(1 << 20, 7)
      const results = Promise.all([
        text(mesh.dispatcher, 'http://up/', { method: 'POST', body: Readable.from([Buffer.from('abc'), Buffer.from('def')]) }),
        text(mesh.dispatcher, 'http://up/', { method: 'POST', body: (async function* () { yield Buffer.from('xyz'); await Promise.resolve(); yield Buffer.from('w') })() as unknown as Readable }),
        text(mesh.dispatcher, 'http://up/', { method: 'POST', body: Buffer.from('12345') }),
        text(mesh.dispatcher, 'http://up/', { method: 'PUT', body: big, headers: { expect: '100-continue' } }).catch((e: Error) => `rejected ${e.message}`),
      ])
      server.held.shift()?.()
      assert.equal(await held, '200 held')
      const [s, it, b, large] = await settles(results, 'queued bodies')
      assert.deepEqual([s, it, b], ['200 6', '200 4', '200 5'])
      // undici refuses `expect` (its own header); plain undici rejects it too. Without it, the large body arrives.
      assert.match(large, /^(200 1048576|rejected .*expect.*)$/i)
      assert.equal(await settles(text(mesh.dispatcher, 'http://up/', { method: 'PUT', body: big }), 'large body'), '200 1048576')
    } finally {
      await settles(mesh.close(), 'mesh.close()')
    }
  })

  it('a caller abort while queued, and a body that errors while queued: both fail alone, the connection serves the next request', async () => {
    const mesh = meshTo(server.origin, { circuitBreakers: { maxConnections: 1 } })
    try {
      const accepted = server.accepted
      const held = text(mesh.dispatcher, 'http://up/hold')
      await until(() => server.held.length === 1, 'held request')
      const ac = new AbortController()
      const body1 = new Readable({ read() {} })
      const aborted = request('http://up/', { dispatcher: mesh.dispatcher, method: 'POST', body: body1, signal: ac.signal })
      const body2 = new Readable({ read() {} })
      const errored = request('http://up/', { dispatcher: mesh.dispatcher, method: 'POST', body: body2 })
      await new Promise((r) => setTimeout(r, 20))
      ac.abort()
      await assert.rejects(settles(aborted, 'aborted request'))
      body2.destroy(new Error('body failed'))
      await assert.rejects(settles(errored, 'request whose body failed'), /body failed/)
      server.held.shift()?.()
      assert.equal(await held, '200 held')
      assert.equal(await settles(text(mesh.dispatcher, 'http://up/', { method: 'POST', body: 'after' }), 'next request'), '200 5')
      assert.equal(server.accepted - accepted, 1, 'no connection was destroyed for them')
      assert.equal(body2.listenerCount('error') <= 1, true)
    } finally {
      await settles(mesh.close(), 'mesh.close()')
    }
  })
})
