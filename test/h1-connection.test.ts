/**
 * The mesh's HTTP/1.1 connection (src/upstream/h1/connection.ts) against a hand-written
 * server: the old-style handler protocol as undici 7's `Client` drives it (order of calls,
 * one `onError`, pause and resume, abort), its timeouts, keep-alive, the request head it
 * writes, body errors, and when the pool leaves a request to undici's `Client`.
 */
import assert from 'node:assert/strict'
import net from 'node:net'
import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import { after, before, describe, it } from 'node:test'
import { Readable } from 'node:stream'
import type { Dispatcher } from 'undici'
import { H1Connection, supportsLean, type H1Owner } from '../src/upstream/h1/connection.js'

/** A server answering each request with `answer(head)`'s bytes (or nothing, for undefined). */
class Upstream {
  readonly server: net.Server
  /** Every request head received, in order. */
  readonly heads: string[] = []
  /** Raw bytes received per connection. */
  readonly received: Buffer[] = []
  readonly sockets: net.Socket[] = []
  answer: (head: string, socket: net.Socket) => string | undefined = () => 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok'
  port = 0

  constructor() {
    this.server = net.createServer((socket) => {
      const index = this.received.push(Buffer.alloc(0)) - 1
      this.sockets.push(socket)
      let pending = ''
      socket.on('error', () => {})
      socket.on('data', (d: Buffer) => {
        this.received[index] = Buffer.concat([this.received[index] as Buffer, d])
        pending += d.toString('latin1')
        for (let end = pending.indexOf('\r\n\r\n'); end !== -1; end = pending.indexOf('\r\n\r\n')) {
          const head = pending.slice(0, end + 4)
          pending = pending.slice(end + 4)
          this.heads.push(head)
          const out = this.answer(head, socket)
          if (out !== undefined && !socket.destroyed) socket.write(out, 'latin1')
        }
      })
    })
  }

  async listen(): Promise<void> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve))
    this.port = (this.server.address() as net.AddressInfo).port
  }

  close(): Promise<void> {
    for (const s of this.sockets) s.destroy()
    return new Promise((resolve) => this.server.close(() => resolve()))
  }
}

/** An owner that records what the connection tells it. */
class Owner implements H1Owner {
  released = 0
  closed = 0
  onRelease: () => void = () => {}
  h1Released(): void {
    this.released++
    this.onRelease()
  }

  h1Closed(): void {
    this.closed++
  }
}

/** An old-style handler recording every call, in order. */
class Calls {
  readonly log: string[] = []
  readonly data: Buffer[] = []
  abort: ((err?: Error) => void) | null = null
  resume: (() => void) | null = null
  error: (Error & { code?: string }) | null = null
  trailers: Buffer[] | null = null
  rawHeaders: Buffer[] | null = null
  pauseOnData = false
  readonly ended: Promise<void>
  #end!: () => void

  constructor() {
    this.ended = new Promise((resolve) => (this.#end = resolve))
  }

  onConnect(abort: (err?: Error) => void): void {
    this.log.push('connect')
    this.abort = abort
  }

  onHeaders(status: number, raw: Buffer[], resume: () => void, text: string): boolean {
    this.log.push(`headers ${status} ${text}`)
    this.rawHeaders = raw
    this.resume = resume
    return true
  }

  onData(chunk: Buffer): boolean {
    this.log.push('data')
    this.data.push(chunk)
    return !this.pauseOnData
  }

  onComplete(trailers: Buffer[] | null): void {
    this.log.push('complete')
    this.trailers = trailers
    this.#end()
  }

  onError(err: Error): void {
    this.log.push(`error ${err.name}`)
    this.error = err
    this.#end()
  }

  get body(): string {
    return Buffer.concat(this.data).toString()
  }
}

let up: Upstream

before(async () => {
  up = new Upstream()
  await up.listen()
})

after(() => up.close())

async function connect(owner: Owner = new Owner(), options: Partial<ConstructorParameters<typeof H1Connection>[2]> = {}): Promise<{ conn: H1Connection; owner: Owner; socket: net.Socket }> {
  const socket = net.connect(up.port, '127.0.0.1')
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject))
  const conn = new H1Connection(socket, owner, { host: `127.0.0.1:${up.port}`, ...options })
  return { conn, owner, socket }
}

const GET = (path = '/', extra: Partial<Dispatcher.DispatchOptions> = {}): Dispatcher.DispatchOptions => ({ method: 'GET', path, headers: null, ...extra })

async function until(check: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 500; i++) {
    if (check()) return
    await new Promise((r) => setTimeout(r, 10))
  }
  assert.fail(`timed out waiting for ${what}`)
}

describe('h1 connection: the handler protocol', () => {
  it('onConnect, each head (1xx too), data, then onComplete with raw trailers; the owner gets the connection back a turn later', async () => {
    up.answer = () => 'HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-Sum: 1\r\n\r\n'
    const { conn, owner } = await connect()
    const h = new Calls()
    owner.onRelease = () => h.log.push('released')
    assert.equal(conn.dispatch(GET('/a'), h), true)
    await h.ended
    assert.deepEqual(h.log, ['connect', 'headers 103 Early Hints', 'headers 200 OK', 'data', 'complete'])
    // A turn of the event loop later, as undici's Client drains.
    await until(() => owner.released === 1, 'release')
    assert.equal(h.log.at(-1), 'released')
    assert.equal(h.body, 'hello')
    assert.deepEqual(h.trailers?.map((b) => b.toString()), ['X-Sum', '1'])
    assert.ok(h.rawHeaders?.every((b) => Buffer.isBuffer(b)))
    await conn.close()
  })

  it('a response without trailers completes with an empty list (as undici gives it), and the connection serves the next request', async () => {
    up.answer = () => 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok'
    const { conn, owner } = await connect()
    for (let i = 0; i < 3; i++) {
      const h = new Calls()
      assert.equal(conn.dispatch(GET(), h), true)
      await h.ended
      assert.deepEqual(h.trailers, [])
      assert.equal(h.body, 'ok')
      await until(() => owner.released === i + 1, 'release')
    }
    assert.deepEqual([owner.released, owner.closed], [3, 0])
    await conn.close()
    assert.equal(owner.closed, 1)
  })

  it('abort() after the request went out: one onError with its reason, the connection destroyed; without a reason RequestAbortedError', async () => {
    up.answer = () => undefined
    for (const reason of [new Error('gone'), undefined]) {
      const { conn, owner } = await connect()
      const h = new Calls()
      conn.dispatch(GET(), h)
      await until(() => up.heads.length > 0, 'request')
      h.abort?.(reason)
      h.abort?.(new Error('twice'))
      await h.ended
      assert.deepEqual(h.log, ['connect', `error ${reason === undefined ? 'AbortError' : 'Error'}`])
      if (reason !== undefined) assert.equal(h.error, reason)
      else assert.equal(h.error?.code, 'UND_ERR_ABORTED')
      assert.equal(owner.closed, 1)
      assert.equal(conn.destroyed, true)
    }
  })

  it('abort() inside onConnect: onError, nothing written, the connection stays free for the next request', async () => {
    up.answer = () => 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok'
    const { conn, owner } = await connect()
    const before = up.heads.length
    const h = new Calls()
    h.onConnect = (abort) => abort(new Error('no longer wanted'))
    assert.equal(conn.dispatch(GET(), h), false)
    assert.equal(h.error?.message, 'no longer wanted')
    assert.equal(owner.released, 0, 'never taken, so not given back')
    const next = new Calls()
    assert.equal(conn.dispatch(GET('/next'), next), true)
    await next.ended
    assert.equal(next.body, 'ok')
    assert.equal(up.heads.length, before + 1, 'only the second request was written')
    assert.equal(owner.closed, 0)
    await conn.close()
  })

  it('onData returning false pauses reading until resume(); every byte arrives after', async () => {
    const body = 'x'.repeat(256 * 1024)
    up.answer = (_h, socket) => {
      socket.write(`HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\n\r\n`)
      for (let i = 0; i < body.length; i += 16 * 1024) socket.write(body.slice(i, i + 16 * 1024))
      return undefined
    }
    const { conn } = await connect()
    const h = new Calls()
    h.pauseOnData = true
    conn.dispatch(GET(), h)
    await until(() => h.data.length > 0, 'first data')
    await new Promise((r) => setTimeout(r, 50))
    assert.equal(h.data.length, 1, 'nothing more while paused')
    h.pauseOnData = false
    h.resume?.()
    await h.ended
    assert.equal(h.body.length, body.length)
    await conn.close()
  })

  it('a new-style handler is driven through its own controller, with the header object undici would parse', async () => {
    up.answer = () => 'HTTP/1.1 201 Created\r\nX-A: 1\r\nX-A: 2\r\nContent-Length: 2\r\n\r\nok'
    const { conn } = await connect()
    const seen: unknown[] = []
    let done!: () => void
    const ended = new Promise<void>((r) => (done = r))
    conn.dispatch(GET(), {
      onRequestStart: (c) => seen.push(typeof c.abort),
      onResponseStart: (_c, status, headers) => seen.push(status, headers),
      onResponseData: (_c, chunk) => seen.push(chunk.toString()),
      onResponseEnd: (_c, trailers) => {
        seen.push(trailers)
        done()
      },
      onResponseError: (_c, err) => seen.push(err),
    })
    await ended
    assert.deepEqual(seen, ['function', 201, { 'x-a': ['1', '2'], 'content-length': '2' }, 'ok', {}])
    await conn.close()
  })
})

describe('h1 connection: failures', () => {
  it('headersTimeout: HeadersTimeoutError once no head came in time', async () => {
    up.answer = () => undefined
    const { conn } = await connect()
    const h = new Calls()
    conn.dispatch(GET('/', { headersTimeout: 50 }), h)
    await h.ended
    assert.equal(h.error?.code, 'UND_ERR_HEADERS_TIMEOUT')
    assert.equal(conn.destroyed, true)
  })

  it('bodyTimeout: BodyTimeoutError once the body stalls', async () => {
    up.answer = () => 'HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhel'
    const { conn } = await connect()
    const h = new Calls()
    conn.dispatch(GET('/', { bodyTimeout: 50 }), h)
    await h.ended
    assert.deepEqual([h.body, h.error?.code], ['hel', 'UND_ERR_BODY_TIMEOUT'])
  })

  it('the server closes before answering: SocketError "other side closed"', async () => {
    up.answer = (_h, socket) => {
      socket.end()
      return undefined
    }
    const { conn } = await connect()
    const h = new Calls()
    conn.dispatch(GET(), h)
    await h.ended
    assert.deepEqual([h.error?.name, h.error?.message], ['SocketError', 'other side closed'])
  })

  it('a broken head: HTTPParserError, reported once the socket closed', async () => {
    up.answer = () => 'HTTP/1.1 200 OK\r\nX-A : 1\r\n\r\n'
    const { conn, owner } = await connect()
    const h = new Calls()
    conn.dispatch(GET(), h)
    await h.ended
    assert.deepEqual(h.log, ['connect', 'error HTTPParserError'])
    assert.equal(owner.closed, 1)
  })

  it('a 101 to a request that asked for no upgrade: SocketError "bad upgrade"', async () => {
    up.answer = () => 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n'
    const { conn } = await connect()
    const h = new Calls()
    conn.dispatch(GET(), h)
    await h.ended
    assert.deepEqual([h.error?.name, h.error?.message], ['SocketError', 'bad upgrade'])
  })

  it('bytes arriving while idle (after a complete response) destroy the connection; nobody reads them', async () => {
    up.answer = (_h, socket) => {
      setTimeout(() => socket.write('HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nsmuggled'), 30)
      return 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok'
    }
    const { conn, owner } = await connect()
    const h = new Calls()
    conn.dispatch(GET(), h)
    await h.ended
    await until(() => owner.closed === 1, 'connection destroyed')
    assert.equal(conn.destroyed, true)
  })

  it('bytes in the same read after a complete response: the response completes, the connection is destroyed, never given back', async () => {
    up.answer = () => 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nsmuggled'
    const { conn, owner } = await connect()
    const h = new Calls()
    conn.dispatch(GET(), h)
    await h.ended
    assert.deepEqual([h.log.at(-1), h.body], ['complete', 'ok'])
    await until(() => owner.closed === 1, 'connection destroyed')
    await new Promise((r) => setImmediate(r))
    assert.equal(owner.released, 0)
  })

  it('a body stream that errors fails the request with its own error', async () => {
    up.answer = () => undefined
    const { conn } = await connect()
    const h = new Calls()
    const body = new Readable({ read() {} })
    conn.dispatch(GET('/', { method: 'POST', body }), h)
    body.push('part')
    await until(() => up.heads.length > 0, 'head')
    const failure = new Error('body broke')
    body.destroy(failure)
    await h.ended
    assert.equal(h.error, failure)
    assert.equal(body.errored, failure)
  })

  it('a response that comes before the body was all sent completes; the connection and the source are let go without an error', async () => {
    up.answer = () => 'HTTP/1.1 413 Content Too Large\r\nContent-Length: 0\r\n\r\n'
    const { conn, owner } = await connect()
    const h = new Calls()
    const body = new Readable({ read() {} })
    body.push('more to come')
    conn.dispatch(GET('/', { method: 'POST', body }), h)
    await h.ended
    assert.deepEqual(h.log, ['connect', 'headers 413 Content Too Large', 'complete'])
    await until(() => owner.closed === 1 && body.destroyed, 'connection and source let go')
    assert.equal(body.errored, null)
  })

  it('the connection failing while a body streams: the request fails, the source is destroyed with the error (heard, so the process goes on)', async () => {
    up.answer = (_h, socket) => {
      socket.destroy()
      return undefined
    }
    const { conn } = await connect()
    const h = new Calls()
    const body = new Readable({ read() {} })
    body.push('more to come')
    conn.dispatch(GET('/', { method: 'POST', body }), h)
    await h.ended
    assert.equal(h.error?.name, 'SocketError')
    await until(() => body.destroyed, 'source destroyed')
    await new Promise((r) => setImmediate(r))
    assert.equal((body.errored)?.name, 'SocketError')
  })

  it('a stream shorter than the Content-Length the caller gave: RequestContentLengthMismatchError', async () => {
    up.answer = () => undefined
    const { conn } = await connect()
    const h = new Calls()
    conn.dispatch(GET('/', { method: 'POST', body: Readable.from([Buffer.from('abc')], { objectMode: false }), headers: { 'content-length': '10' } }), h)
    await h.ended
    assert.equal(h.error?.code, 'UND_ERR_REQ_CONTENT_LENGTH_MISMATCH')
  })
})

describe('h1 connection: the request as written', () => {
  it('request line, Host (the caller\'s, else the origin\'s), connection: keep-alive, list values one line each, Content-Length of a small body', async () => {
    up.answer = () => 'HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n'
    const { conn } = await connect()
    const a = new Calls()
    const start = up.heads.length
    const listed = ['x-a', '1', 'x-list', ['a', 'b']] as unknown as string[]
    conn.dispatch(GET('/p?q=1', { headers: listed }), a)
    await a.ended
    const b = new Calls()
    conn.dispatch({ method: 'POST', path: '/b', headers: { Host: 'virtual:81', 'content-type': 'text/plain' }, body: 'héllo' }, b)
    await b.ended
    assert.equal(up.heads[start], `GET /p?q=1 HTTP/1.1\r\nhost: 127.0.0.1:${up.port}\r\nconnection: keep-alive\r\nx-a: 1\r\nx-list: a\r\nx-list: b\r\n\r\n`)
    assert.equal(up.heads[start + 1], 'POST /b HTTP/1.1\r\nhost: virtual:81\r\nconnection: keep-alive\r\ncontent-type: text/plain\r\ncontent-length: 6\r\n\r\n')
    await conn.close()
  })

  it('a line break in anything the door did not check (a header value, the Host) is refused before a byte is written', async () => {
    up.answer = () => 'HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n'
    const { conn } = await connect()
    const start = up.heads.length
    for (const headers of [['x-a', 'ok\r\nx-injected: 1'], ['host', 'a\r\n\r\nGET /smuggled HTTP/1.1'], ['x-a', 'bare\nlf'], ['x-a', 'bare\rcr']]) {
      const h = new Calls()
      assert.equal(conn.dispatch(GET('/', { headers }), h), false)
      assert.equal((h.error as { code?: string } | null)?.code, 'UND_ERR_INVALID_ARG')
    }
    const ok = new Calls()
    conn.dispatch(GET('/fine'), ok)
    await ok.ended
    assert.equal(up.heads.length, start + 1)
    assert.match(up.heads[start] as string, /^GET \/fine /)
    await conn.close()
  })

  it('headers undici sets itself are refused as undici refuses them', async () => {
    const { conn } = await connect()
    for (const [name, code] of [['transfer-encoding', 'UND_ERR_INVALID_ARG'], ['upgrade', 'UND_ERR_INVALID_ARG'], ['keep-alive', 'UND_ERR_INVALID_ARG'], ['expect', 'UND_ERR_NOT_SUPPORTED']]) {
      const h = new Calls()
      assert.equal(conn.dispatch(GET('/', { headers: [name as string, 'x'] }), h), false)
      assert.equal((h.error as { code?: string } | null)?.code, code, name)
    }
    await conn.close()
  })

  it('connection: close from the caller is sent, and the connection closes after the response', async () => {
    up.answer = () => 'HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n'
    const { conn, owner } = await connect()
    const h = new Calls()
    conn.dispatch(GET('/', { headers: { connection: 'close' } }), h)
    await h.ended
    assert.match(up.heads.at(-1) as string, /\r\nconnection: close\r\n/)
    assert.deepEqual([owner.released, owner.closed], [0, 1])
  })
})

describe('h1 connection: keep-alive', () => {
  it('Keep-Alive: timeout=N from the server closes the idle connection after N minus undici\'s 2 s threshold', async () => {
    up.answer = () => 'HTTP/1.1 200 OK\r\nKeep-Alive: timeout=3\r\nContent-Length: 0\r\n\r\n'
    const { conn, owner } = await connect()
    const h = new Calls()
    conn.dispatch(GET(), h)
    await h.ended
    await until(() => owner.released === 1, 'release')
    await until(() => owner.closed === 1, 'idle close')
  })

  it('Keep-Alive: timeout=1 (within the threshold) closes the connection after the response', async () => {
    up.answer = () => 'HTTP/1.1 200 OK\r\nKeep-Alive: timeout=1\r\nContent-Length: 0\r\n\r\n'
    const { owner, conn } = await connect()
    const h = new Calls()
    conn.dispatch(GET(), h)
    await h.ended
    assert.deepEqual([owner.released, owner.closed], [0, 1])
  })

  it('keepAliveTimeout (no Keep-Alive from the server) closes the idle connection', async () => {
    up.answer = () => 'HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n'
    const { conn, owner } = await connect(new Owner(), { keepAliveTimeout: 50 })
    const h = new Calls()
    conn.dispatch(GET(), h)
    await h.ended
    await until(() => owner.closed === 1, 'idle close')
  })
})

describe('h1 connection: what goes to undici\'s Client instead', () => {
  it('upgrades, CONNECT, FormData bodies and undici\'s rare options are not served', () => {
    assert.equal(supportsLean(GET()), true)
    // What fetch and request() pass along is served.
    assert.equal(supportsLean({ ...GET(), maxRedirections: 0, expectContinue: false, blocking: true, idempotent: true } as Dispatcher.DispatchOptions), true)
    assert.equal(supportsLean(GET('/', { upgrade: 'websocket' })), false)
    assert.equal(supportsLean(GET('/', { method: 'CONNECT' })), false)
    assert.equal(supportsLean(GET('/', { method: 'POST', body: new FormData() as never })), false)
    assert.equal(supportsLean(GET('/', { query: { a: 1 } })), false)
    assert.equal(supportsLean({ ...GET(), expectContinue: true }), false)
  })

  it('while anyone listens to undici\'s request diagnostics (OpenTelemetry\'s undici instrumentation), requests go on undici\'s Client', () => {
    const listener = (): void => {}
    subscribe('undici:request:create', listener)
    try {
      assert.equal(supportsLean(GET()), false)
    } finally {
      unsubscribe('undici:request:create', listener)
    }
    assert.equal(supportsLean(GET()), true)
  })
})
