/**
 * Every node:http event that delivers a request to an app — `request`, `checkContinue`,
 * `checkExpectation`, `upgrade`, `connect` — passes the inbound chain: a denied request is
 * answered by the mesh and never reaches the app; an allowed one runs in the request context.
 * Real clients: undici, node:http (Expect, Upgrade, CONNECT), undici's WebSocket, raw sockets.
 */
import assert from 'node:assert/strict'
import { once } from 'node:events'
import http from 'node:http'
import https from 'node:https'
import type { AddressInfo } from 'node:net'
import type { Duplex } from 'node:stream'
import { after, before, describe, test } from 'node:test'
import { Agent, request, WebSocket } from 'undici'
import { createMesh, type Mesh, type MeshConfig } from '../src/index.js'
import { acceptWebSocket, parseResponse, RawConnection } from './helpers/raw-http.js'
import { connectRequest, expectContinue, upgradeRequest } from './helpers/event-clients.js'
import { makeKey, now, sign, type TestKey } from './helpers/tokens.js'
import { makePki } from './helpers/certs.js'

const ISS = 'https://issuer.test'
const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736'
const TRACEPARENT = `00-${TRACE_ID}-00f067aa0ba902b7-01`
const client = new Agent()
let key: TestKey

before(async () => {
  key = await makeKey('ES256', 'k1')
})
after(() => client.close())

function config(): MeshConfig {
  return {
    tracing: { sampling: 100 },
    listener: {
      requestAuthentication: { jwtRules: [{ issuer: ISS, jwks: JSON.stringify({ keys: [key.jwk] }) }] },
      authorization: [
        { name: 'no-admin', action: 'DENY', rules: [{ to: [{ operation: { paths: ['/admin*'] } }] }, { to: [{ operation: { hosts: ['forbidden.example:443'] } }] }] },
      ],
      routes: [
        { name: 'ws-limited', match: { prefix: '/ws-limited' }, rateLimit: { maxTokens: 1, fillInterval: '1h' } },
        { name: 'ws-fault', match: { prefix: '/ws-fault' }, fault: { abort: { httpStatus: 503 } } },
        { name: 'ws-one', match: { prefix: '/ws-one' }, concurrencyLimit: { maxConcurrent: 1 } },
        { name: 'ws', match: { prefix: '/ws' } },
      ],
    },
  }
}

/** What the app saw of a request: the event, and the mesh context it ran in. */
interface Seen {
  event: string
  url: string
  requestId: string | undefined
  traceId: string | undefined
  route: string | undefined
  principal: string | undefined
}

/** A wrapped server listening to all five events, recording what reached the app. */
async function startApp(mesh: Mesh, { checkContinue = true } = {}): Promise<{ server: http.Server; port: number; seen: Seen[] }> {
  const seen: Seen[] = []
  const record = (event: string, req: http.IncomingMessage): Seen => {
    const ctx = mesh.context()
    const s = { event, url: req.url ?? '', requestId: ctx?.requestId, traceId: ctx?.traceId, route: ctx?.route, principal: ctx?.auth?.principal }
    seen.push(s)
    return s
  }
  const answer = (event: string, req: http.IncomingMessage, res: http.ServerResponse): void => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      // Read in a later turn: the context follows the app's async tree.
      setImmediate(() => res.end(JSON.stringify({ ...record(event, req), body: Buffer.concat(chunks).toString() })))
    })
  }
  const server = mesh.createServer((req, res) => answer('request', req, res))
  if (checkContinue) {
    server.on('checkContinue', (req, res) => {
      res.writeContinue()
      answer('checkContinue', req, res)
    })
  }
  server.on('checkExpectation', (req, res) => answer('checkExpectation', req, res))
  server.on('upgrade', (req: http.IncomingMessage, socket: Duplex) => {
    // Each message the client sends is answered from the socket's data handler: in context too.
    setImmediate(() => acceptWebSocket(req, socket, JSON.stringify(record('upgrade', req)), {}, () => JSON.stringify(record('message', req))))
  })
  server.on('connect', (req: http.IncomingMessage, socket: Duplex) => {
    socket.on('error', () => {})
    socket.write('HTTP/1.1 200 Connection Established\r\n\r\n')
    setImmediate(() => socket.end(JSON.stringify(record('connect', req))))
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  return { server, port: (server.address() as AddressInfo).port, seen }
}

async function close(server: http.Server): Promise<void> {
  server.closeAllConnections()
  await new Promise<void>((resolve) => server.close(() => resolve()))
}

/** Opens a WebSocket with undici's client; resolves with the first message, after the close. */
function webSocketMessage(url: string, headers: Record<string, string> = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { dispatcher: client, headers })
    let message: string | undefined
    ws.addEventListener('message', (e) => {
      message = String(e.data)
      ws.close()
    })
    ws.addEventListener('close', () => (message === undefined ? reject(new Error('closed without a message')) : resolve(message)))
    ws.addEventListener('error', (e) => reject(new Error(`websocket error: ${String((e as { message?: string }).message)}`)))
  })
}

async function until(check: () => boolean, what: string, ms = 5000): Promise<void> {
  const end = Date.now() + ms
  while (!check()) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

describe('every node:http event that delivers a request runs the inbound chain', () => {
  let mesh: Mesh
  let app: Awaited<ReturnType<typeof startApp>>
  before(async () => {
    mesh = createMesh({ service: 'events', config: config() })
    app = await startApp(mesh)
  })
  after(async () => {
    await close(app.server)
    await mesh.close()
  })

  test('request: a denied one gets 403, an allowed one runs in the request context', async () => {
    const denied = await request(`http://127.0.0.1:${app.port}/admin/users`, { dispatcher: client })
    assert.equal(denied.statusCode, 403)
    assert.equal(await denied.body.text(), 'RBAC: access denied')
    const ok = await request(`http://127.0.0.1:${app.port}/x`, { dispatcher: client, headers: { traceparent: TRACEPARENT } })
    const seen = (await ok.body.json()) as Seen
    assert.equal(seen.event, 'request')
    assert.equal(seen.traceId, TRACE_ID)
    assert.equal(seen.requestId, ok.headers['x-request-id'] ?? seen.requestId)
    assert.match(seen.requestId ?? '', /^[0-9a-f-]{36}$/)
    assert.ok(!app.seen.some((s) => s.url.startsWith('/admin')), 'the app never saw /admin')
  })

  test('checkContinue (the app listens): a denied request gets 403 without 100 Continue, its body never sent; an allowed one continues in context', async () => {
    const denied = await expectContinue(app.port, '/admin/upload', 'secret body')
    assert.deepEqual([denied.status, denied.text, denied.continued], [403, 'RBAC: access denied', false])
    const ok = await expectContinue(app.port, '/upload', 'hello', { traceparent: TRACEPARENT })
    assert.equal(ok.status, 200)
    assert.equal(ok.continued, true)
    const seen = JSON.parse(ok.text) as Seen & { body: string }
    assert.deepEqual([seen.event, seen.body, seen.traceId], ['checkContinue', 'hello', TRACE_ID])
    assert.match(seen.requestId ?? '', /^[0-9a-f-]{36}$/)
    assert.ok(!app.seen.some((s) => s.url.startsWith('/admin')))
  })

  test('checkContinue on the wire: the refusal closes the connection before any body byte; an allowed request gets exactly one 100 Continue', async () => {
    const c = await RawConnection.open(app.port)
    c.send('POST /admin/x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n')
    const text = await c.untilClosed()
    const r = parseResponse(text)
    assert.equal(r.status, 403)
    assert.doesNotMatch(text, /100 Continue/)
    assert.match(r.head, /\r\nconnection: close/i)

    const ok = await RawConnection.open(app.port)
    ok.send('POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n')
    await ok.read(/^HTTP\/1\.1 100 Continue\r\n\r\n/)
    ok.send('hello')
    const all = await ok.read(/"body":"hello"/)
    assert.equal(all.match(/100 Continue/g)?.length, 1)
    ok.destroy()
  })

  test('checkExpectation: a denied request gets 403, an allowed one reaches the app in context', async () => {
    const denied = await new Promise<number>((resolve, reject) => {
      http.request({ host: '127.0.0.1', port: app.port, path: '/admin', agent: false, headers: { expect: 'x-custom' } }, (res) => {
        res.resume()
        resolve(res.statusCode ?? 0)
      }).on('error', reject).end()
    })
    assert.equal(denied, 403)
    const seen = await new Promise<Seen>((resolve, reject) => {
      http.request({ host: '127.0.0.1', port: app.port, path: '/expect', agent: false, headers: { expect: 'x-custom' } }, (res) => {
        let text = ''
        res.setEncoding('utf8').on('data', (d: string) => (text += d)).on('end', () => resolve(JSON.parse(text) as Seen))
      }).on('error', reject).end()
    })
    assert.equal(seen.event, 'checkExpectation')
    assert.match(seen.requestId ?? '', /^[0-9a-f-]{36}$/)
    assert.ok(!app.seen.some((s) => s.url.startsWith('/admin')))
  })

  test('upgrade (WebSocket): a denied handshake gets 403 on the socket; an accepted one runs the app in context', async () => {
    const denied = await upgradeRequest(app.port, '/admin/ws')
    assert.deepEqual([denied.status, denied.text], [403, 'RBAC: access denied'])
    assert.equal(denied.headers.connection, 'close')

    const message = await webSocketMessage(`ws://127.0.0.1:${app.port}/ws/chat`, { traceparent: TRACEPARENT })
    const seen = JSON.parse(message) as Seen
    assert.deepEqual([seen.event, seen.url, seen.traceId, seen.route], ['upgrade', '/ws/chat', TRACE_ID, 'ws'])
    assert.match(seen.requestId ?? '', /^[0-9a-f-]{36}$/)
    assert.ok(!app.seen.some((s) => s.url.startsWith('/admin')))
  })

  test('a WebSocket message, handled long after the handshake, runs in the upgrade request context', async () => {
    const ws = new WebSocket(`ws://127.0.0.1:${app.port}/ws/echo`, { dispatcher: client, headers: { traceparent: TRACEPARENT } })
    const messages: Seen[] = []
    await new Promise<void>((resolve, reject) => {
      ws.addEventListener('message', (e) => {
        messages.push(JSON.parse(String(e.data)) as Seen)
        if (messages.length === 1) setTimeout(() => ws.send('ping'), 20)
        else ws.close()
      })
      ws.addEventListener('close', () => resolve())
      ws.addEventListener('error', () => reject(new Error('websocket error')))
    })
    const [handshake, message] = messages as [Seen, Seen]
    assert.equal(message.event, 'message')
    assert.equal(message.traceId, TRACE_ID)
    assert.equal(message.requestId, handshake.requestId)
  })

  test('a request body arriving after the handler ran: its data and end handlers run in the request context', async () => {
    const c = await RawConnection.open(app.port)
    c.send(`POST /late-body HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\ntraceparent: ${TRACEPARENT}\r\n\r\n`)
    await new Promise((resolve) => setTimeout(resolve, 50))
    c.send('hello')
    const seen = JSON.parse(parseResponse(await c.read(/"body":"hello"/)).body) as Seen & { body: string }
    assert.equal(seen.traceId, TRACE_ID)
    assert.match(seen.requestId ?? '', /^[0-9a-f-]{36}$/)
    c.destroy()
  })

  test('connect: a denied CONNECT gets 403 and is closed; an allowed one reaches the app in context', async () => {
    const denied = await connectRequest(app.port, 'forbidden.example:443')
    assert.equal(denied.status, 403)
    const unauthenticated = await new Promise<http.IncomingMessage>((resolve, reject) => {
      http.request({ host: '127.0.0.1', port: app.port, method: 'CONNECT', path: 'allowed.example:443', agent: false, headers: { authorization: 'Bearer x.y.z' } })
        .on('connect', (res, socket) => {
          socket.destroy()
          resolve(res)
        })
        .on('error', reject)
        .end()
    })
    for (const target of ['nohost', 'host:', '/path', 'user@host:443', 'host:70000']) {
      const c = await RawConnection.open(app.port)
      c.send(`CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n\r\n`)
      const r = parseResponse(await c.untilClosed())
      assert.deepEqual([r.status, r.body], [400, 'bad request: a CONNECT request target must be host:port'], target)
    }
    assert.equal(unauthenticated.statusCode, 401)
    assert.equal(unauthenticated.headers['www-authenticate'], 'Bearer realm="http://allowed.example:443", error="invalid_token"')
    assert.doesNotMatch(denied.text, /"event"/)
    const ok = await connectRequest(app.port, 'allowed.example:443', { traceparent: TRACEPARENT })
    assert.equal(ok.status, 200)
    const seen = JSON.parse(ok.text) as Seen
    assert.deepEqual([seen.event, seen.url, seen.traceId], ['connect', 'allowed.example:443', TRACE_ID])
    assert.match(seen.requestId ?? '', /^[0-9a-f-]{36}$/)
    assert.ok(!app.seen.some((s) => s.url.startsWith('forbidden')))
  })

  test('upgrade: JWT (401 with its challenge, a verified principal in context), rate limit (429), fault (503)', async () => {
    const bad = await upgradeRequest(app.port, '/ws', { authorization: 'Bearer not.a.token' })
    assert.equal(bad.status, 401)
    assert.match(String(bad.headers['www-authenticate']), /^Bearer realm="http:\/\/127\.0\.0\.1:\d+\/ws", error="invalid_token"$/)
    const token = await sign(key, { iss: ISS, sub: 'alice', exp: now() + 600 })
    const verified = JSON.parse(await webSocketMessage(`ws://127.0.0.1:${app.port}/ws`, { authorization: `Bearer ${token}` })) as Seen
    assert.equal(verified.principal, `${ISS}/alice`)

    await webSocketMessage(`ws://127.0.0.1:${app.port}/ws-limited`)
    const limited = await upgradeRequest(app.port, '/ws-limited')
    assert.equal(limited.status, 429)
    assert.equal(limited.headers['x-sidecarless-response-flags'], 'RL')

    const faulted = await upgradeRequest(app.port, '/ws-fault')
    assert.deepEqual([faulted.status, faulted.text, faulted.headers['x-sidecarless-response-flags']], [503, 'fault filter abort', 'FI'])
    assert.ok(!app.seen.some((s) => s.url === '/ws-fault'))
  })

  test('a WebSocket holds its concurrency slot while it is open, and frees it when it closes', async () => {
    // The app keeps this one open: the handshake and message come, the client does not close.
    const ws = new WebSocket(`ws://127.0.0.1:${app.port}/ws-one`, { dispatcher: client })
    await once(ws as unknown as EventTarget, 'message')
    const busy = await upgradeRequest(app.port, '/ws-one')
    assert.equal(busy.status, 503)
    assert.equal(busy.headers['x-sidecarless-response-flags'], 'UO')
    ws.close()
    await until(() => mesh.metrics.snapshot().inbound.routes['ws-one']?.inFlight === 0, 'the first WebSocket to end')
    JSON.parse(await webSocketMessage(`ws://127.0.0.1:${app.port}/ws-one`))
  })

  test('a 101 is a response: counted when the socket closes, with a server span', async () => {
    const before = mesh.metrics.snapshot().inbound.routes['ws']
    const traceId = 'aaaabbbbccccddddeeeeffff00001111'
    await webSocketMessage(`ws://127.0.0.1:${app.port}/ws/metrics`, { traceparent: `00-${traceId}-00f067aa0ba902b7-01` })
    await until(() => (mesh.metrics.snapshot().inbound.routes['ws']?.responses['1xx'] ?? 0) > (before?.responses['1xx'] ?? 0), 'the 101 to be counted')
    const after = mesh.metrics.snapshot().inbound.routes['ws']!
    assert.equal(after.inFlight, 0)
    assert.ok(after.bytesSent > 0, 'the bytes written on the upgraded socket count')
    const span = mesh.tracing.recent().find((s) => s.traceId === traceId && s.kind === 'server')
    assert.ok(span !== undefined, 'a server span for the upgrade')
    assert.equal(span.attributes['http.response.status_code'], 101)
    assert.equal(span.status, 'unset')
  })

  test('every request counted once: the inbound totals match what was sent', () => {
    const snap = mesh.metrics.snapshot().inbound.routes
    const total = Object.values(snap).reduce((n, r) => n + r.requests, 0)
    const ended = Object.values(snap).reduce((n, r) => n + r.latency.count, 0)
    assert.equal(total, ended, 'nothing left in flight')
    // request 2, checkContinue 2 + 2 on the wire, checkExpectation 2, upgrade 2 + 1 with a
    // message, a late body 1, connect 3 + 5 malformed, JWT 2 + limited 2 + fault 1, ws-one 3,
    // metrics 1.
    assert.equal(total, 29)
  })
})

describe('over TLS (node:https server)', () => {
  test('a WebSocket over wss: refused on the TLS socket, or accepted in context', async () => {
    const pki = makePki([])
    const mesh = createMesh({ service: 'wss', config: config() })
    const server = mesh.createServer({ key: pki.server.key, cert: pki.server.cert }, (_req, res) => res.end())
    server.on('upgrade', (req: http.IncomingMessage, socket: Duplex) => {
      acceptWebSocket(req, socket, JSON.stringify({ requestId: mesh.context()?.requestId, traceId: mesh.context()?.traceId }))
    })
    server.listen(0, '127.0.0.1')
    await once(server, 'listening')
    const port = (server.address() as AddressInfo).port
    const tlsClient = new Agent({ connect: { ca: pki.ca } })
    try {
      const denied = await new Promise<http.IncomingMessage>((resolve, reject) => {
        https.request({ host: '127.0.0.1', port, path: '/admin/ws', ca: pki.ca, agent: false, headers: { connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-version': '13', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==' } })
          .on('response', (res) => {
            res.resume()
            resolve(res)
          })
          .on('error', reject)
          .end()
      })
      assert.equal(denied.statusCode, 403)
      const message = await new Promise<string>((resolve, reject) => {
        const ws = new WebSocket(`wss://127.0.0.1:${port}/ws`, { dispatcher: tlsClient, headers: { traceparent: TRACEPARENT } })
        ws.addEventListener('message', (e) => {
          ws.close()
          resolve(String(e.data))
        })
        ws.addEventListener('error', () => reject(new Error('websocket error')))
      })
      assert.equal((JSON.parse(message) as Seen).traceId, TRACE_ID)
    } finally {
      await tlsClient.close()
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
      await mesh.close()
    }
  })
})

describe('checkContinue without an app listener', () => {
  test('node would send 100 Continue before the chain: the mesh sends it only once the chain allowed, exactly once', async () => {
    const mesh = createMesh({ service: 'expect', config: config() })
    const app = await startApp(mesh, { checkContinue: false })
    try {
      assert.equal(app.server.listenerCount('checkContinue'), 1, "the mesh's own listener")
      const denied = await expectContinue(app.port, '/admin/upload', 'secret')
      assert.deepEqual([denied.status, denied.continued], [403, false])

      const ok = await RawConnection.open(app.port)
      ok.send('POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n')
      await ok.read(/^HTTP\/1\.1 100 Continue\r\n\r\n/)
      ok.send('hello')
      const all = await ok.read(/"body":"hello"/)
      assert.equal(all.match(/100 Continue/g)?.length, 1)
      const seen = JSON.parse(parseResponse(all.slice(all.indexOf('HTTP/1.1 200'))).body) as Seen
      assert.equal(seen.event, 'request', "node's own path: the request event after 100 Continue")
      assert.match(seen.requestId ?? '', /^[0-9a-f-]{36}$/, 'the body handler ran in the request context')
      ok.destroy()

      const viaNode = await expectContinue(app.port, '/upload', 'again')
      assert.deepEqual([viaNode.status, viaNode.continued], [200, true])
      assert.match((JSON.parse(viaNode.text) as Seen).requestId ?? '', /^[0-9a-f-]{36}$/)
      assert.equal(mesh.metrics.snapshot().inbound.routes['(default)']?.requests, 3, 'each request ran the chain once')
      assert.ok(!app.seen.some((s) => s.url.startsWith('/admin')))
    } finally {
      await close(app.server)
      await mesh.close()
    }
  })
})

describe('mesh.wrap and node:http2', () => {
  test('an http2 server is refused with a coded error saying why', async () => {
    const http2 = await import('node:http2')
    const mesh = createMesh({ service: 'h2', config: {} })
    try {
      for (const server of [http2.createServer(), http2.createSecureServer({})]) {
        assert.throws(() => mesh.wrap(server as never), (err: Error & { code?: string }) => {
          assert.equal(err.code, 'SIDECARLESS_ERR_INVALID_ARGUMENT')
          assert.match(err.message, /does not take node:http2 servers: their requests .* would not pass the inbound chain/)
          return true
        })
      }
    } finally {
      await mesh.close()
    }
  })
})
