/**
 * The endpoint pool with its two drivers: the mesh's HTTP/1.1 connection for what it
 * serves, undici's `Client` for the rest (docs/upstream-connections.md). A connection of
 * ours that a request it cannot serve takes is handed to a Client on the same socket; while
 * anyone listens to undici's request diagnostics, requests go through undici (and are seen).
 * With the connector the mesh uses for plain TCP (`leanConnector`: sockets that read into a
 * shared buffer), such a request gets a connection of its own instead.
 */
import assert from 'node:assert/strict'
import http from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import { after, before, describe, it } from 'node:test'
import { buildConnector, upgrade } from 'undici'
import { EndpointPool } from '../src/upstream/endpoint-pool.js'
import { bigBody, readSlowly, sendBigBody, sha } from './helpers/big-body.js'
import { assertEchoes, serveEcho, watchRequestPaths } from './helpers/undici-client-only.js'
import { leanConnector } from '../src/upstream/h1/shared-read.js'

let server: http.Server
let origin = ''
/** The server side socket of each request, by path. */
const socketOf = new Map<string, Socket>()

before(async () => {
  server = http.createServer((req, res) => {
    socketOf.set(req.url ?? '', req.socket)
    if (req.url === '/hang') return
    // Several reads' worth (over the shared 64 KiB buffer).
    if (sendBigBody(req.url, res)) return
    if (req.url === '/then-garbage') {
      // A response, then bytes nobody asked for on the idle keep-alive connection.
      res.end('ok /then-garbage', () => setTimeout(() => req.socket.write('HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n'), 20))
      return
    }
    res.end(`ok ${req.url}`)
  })
  server.on('upgrade', (req: http.IncomingMessage, socket: Socket) => {
    socketOf.set(req.url ?? '', socket)
    serveEcho(socket)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
})

after(() => {
  server.closeAllConnections()
  return new Promise<void>((resolve) => server.close(() => resolve()))
})

/** A pool as the mesh makes one for a plain TCP endpoint. */
function leanPoolTo(maxConnections?: number): EndpointPool {
  return new EndpointPool(origin, { connect: leanConnector({ timeout: 2_000 }), connectStreaming: buildConnector({ timeout: 2_000 }), maxConnecting: 4, maxConnections })
}

function poolTo(maxConnections?: number): EndpointPool {
  return new EndpointPool(origin, { connect: buildConnector({ timeout: 2_000 }), maxConnecting: 4, maxConnections })
}

async function text(pool: EndpointPool, path: string): Promise<string> {
  const r = await pool.request({ method: 'GET', path, origin })
  return `${r.statusCode} ${await r.body.text()}`
}

describe('h1 pool: two drivers', () => {
  it('an upgrade takes a connection ours served before: the same socket goes to undici\'s Client, bytes go both ways; plain requests go on after', async () => {
    const pool = poolTo(1)
    try {
      assert.equal(await text(pool, '/first'), '200 ok /first')
      assert.equal(await text(pool, '/second'), '200 ok /second')
      assert.equal(socketOf.get('/first'), socketOf.get('/second'), 'kept alive by our connection')
      const { socket, headers } = await upgrade(`${origin}/up`, { dispatcher: pool, protocol: 'echo' })
      assert.equal(headers['upgrade'], 'echo')
      assert.equal(socketOf.get('/up')?.remotePort, socketOf.get('/first')?.remotePort, 'the same connection, handed over')
      await assertEchoes(socket)
      assert.equal(await text(pool, '/after'), '200 ok /after')
      assert.notEqual(socketOf.get('/after')?.remotePort, socketOf.get('/up')?.remotePort, 'a new connection after the upgrade took the old one')
    } finally {
      await pool.close()
    }
  })

  it('while undici\'s request diagnostics are listened to, requests go through undici\'s Client and are seen there', async () => {
    const pool = poolTo()
    let watch: ReturnType<typeof watchRequestPaths> | undefined
    try {
      assert.equal(await text(pool, '/quiet'), '200 ok /quiet')
      watch = watchRequestPaths()
      assert.equal(await text(pool, '/watched'), '200 ok /watched')
      watch.stop()
      assert.equal(await text(pool, '/quiet-again'), '200 ok /quiet-again')
      assert.deepEqual(watch.paths, ['/watched'], 'only the request made while listened to went through undici')
    } finally {
      watch?.stop()
      await pool.close()
    }
  })

  it('the pool\'s headersTimeout and bodyTimeout reach its connections', async () => {
    const pool = new EndpointPool(origin, { connect: buildConnector({ timeout: 2_000 }), maxConnecting: 4, headersTimeout: 50, bodyTimeout: 50 })
    try {
      await assert.rejects(pool.request({ method: 'GET', path: '/hang', origin }), { code: 'UND_ERR_HEADERS_TIMEOUT' })
      assert.equal(await text(pool, '/fine'), '200 ok /fine')
    } finally {
      await pool.close()
    }
  })

  it('close() with idle connections of both kinds resolves, and no socket stays open', async () => {
    const pool = poolTo()
    await text(pool, '/a')
    const watch = watchRequestPaths()
    try {
      await Promise.all([text(pool, '/b'), text(pool, '/c')])
    } finally {
      watch.stop()
    }
    await pool.close()
    assert.equal(pool.stats.connected, 0)
    const open = (): Promise<number> => new Promise<number>((resolve) => server.getConnections((_e, n) => resolve(n)))
    for (let i = 0; i < 100 && (await open()) > 0; i++) await new Promise((r) => setTimeout(r, 10))
    assert.equal(await open(), 0, 'the server sees no connection left')
  })
})

describe('h1 pool: plain TCP sockets that read into a shared buffer', () => {
  it('bodies over several reads arrive whole, request after request on one kept-alive connection', async () => {
    const pool = leanPoolTo(1)
    try {
      for (const n of [1, 5_000, 65_536, 200_003, 3]) {
        const r = await pool.request({ method: 'GET', path: `/big/${n}`, origin })
        const got = Buffer.from(await r.body.arrayBuffer())
        assert.equal(got.length, n)
        assert.equal(sha(got), sha(bigBody(n)), `body of ${n} bytes`)
      }
      assert.equal(socketOf.get('/big/1'), socketOf.get('/big/3'), 'one connection throughout')
    } finally {
      await pool.close()
    }
  })

  it('two bodies read at once through two connections do not mix (each read is copied out of the shared buffer)', async () => {
    const pool = leanPoolTo()
    try {
      const sizes = [150_001, 150_002, 90_001, 90_002]
      const bodies = await Promise.all(sizes.map(async (n) => {
        const r = await pool.request({ method: 'GET', path: `/big/${n}`, origin })
        return readSlowly(r.body)
      }))
      sizes.forEach((n, i) => assert.equal(sha(bodies[i] as Buffer), sha(bigBody(n)), `body of ${n} bytes`))
    } finally {
      await pool.close()
    }
  })

  it('an upgrade gets a connection of its own in stream mode; bytes go both ways; plain requests go on after', async () => {
    const pool = leanPoolTo(1)
    try {
      assert.equal(await text(pool, '/lean-first'), '200 ok /lean-first')
      const { socket, headers } = await upgrade(`${origin}/lean-up`, { dispatcher: pool, protocol: 'echo' })
      assert.equal(headers['upgrade'], 'echo')
      assert.notEqual(socketOf.get('/lean-up')?.remotePort, socketOf.get('/lean-first')?.remotePort, 'not the socket that reads into the shared buffer')
      await assertEchoes(socket)
      assert.equal(await text(pool, '/lean-after'), '200 ok /lean-after')
    } finally {
      await pool.close()
    }
  })

  it('while undici\'s request diagnostics are listened to, requests go through undici\'s Client on stream-mode connections', async () => {
    const pool = leanPoolTo()
    let watch: ReturnType<typeof watchRequestPaths> | undefined
    try {
      assert.equal(await text(pool, '/lean-quiet'), '200 ok /lean-quiet')
      watch = watchRequestPaths()
      assert.equal(await text(pool, '/lean-watched'), '200 ok /lean-watched')
      const r = await pool.request({ method: 'GET', path: '/big/100000', origin })
      assert.equal(sha(Buffer.from(await r.body.arrayBuffer())), sha(bigBody(100_000)))
      watch.stop()
      assert.equal(await text(pool, '/lean-quiet-again'), '200 ok /lean-quiet-again')
      assert.deepEqual(watch.paths, ['/lean-watched', '/big/100000'])
    } finally {
      watch?.stop()
      await pool.close()
    }
  })

  it('bytes an idle connection receives unasked close it; the next request goes on a new one', async () => {
    const pool = leanPoolTo(1)
    try {
      assert.equal(await text(pool, '/then-garbage'), '200 ok /then-garbage')
      await new Promise((resolve) => setTimeout(resolve, 100))
      assert.equal(pool.stats.connected, 0, 'the connection that received bytes unasked is gone')
      assert.equal(await text(pool, '/lean-next'), '200 ok /lean-next')
      assert.notEqual(socketOf.get('/lean-next')?.remotePort, socketOf.get('/then-garbage')?.remotePort)
    } finally {
      await pool.close()
    }
  })
})
