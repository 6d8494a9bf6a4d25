/**
 * Request bodies the mesh streams upstream (src/upstream/h1/body-writer.ts: chunked unless
 * the length is known) against llhttp, the parser of Node's http servers, over a real
 * keep-alive connection: generated bodies of strings (multi-byte ones too), Buffers and
 * Uint8Arrays, empty pieces among them, sent with the caller's Content-Length or chunked.
 *
 * The property: each request is read by the server as exactly one request with exactly the
 * bytes sent, and the next request on the connection starts where it ended (an empty piece
 * written as a chunk of size 0 would end a chunked body early, and the rest would be read as
 * a request of its own). A Content-Length that does not match the body fails the request
 * with undici's `RequestContentLengthMismatchError`, and the connection is not used again; a
 * body shorter than declared never reaches the server as a whole request.
 *
 * Seeded (SIDECARLESS_FUZZ_SEED, SIDECARLESS_FUZZ_CASES to run more).
 */
import assert from 'node:assert/strict'
import { once } from 'node:events'
import net from 'node:net'
import { after, before, test } from 'node:test'
import { IterableBodyWriter, type BodyOwner, type BodyWriter } from '../src/upstream/h1/body-writer.js'
import { buildHead, RequestHead } from '../src/upstream/h1/request-head.js'
import { llhttpCode, llhttpParser } from './helpers/llhttp.js'
import { prng } from './helpers/prng.js'

interface Received {
  path: string
  headers: string[]
  body: Buffer
}

/** A server that reads every connection with llhttp and hands over each request it completes. */
class LlhttpServer {
  readonly server = net.createServer((socket) => this.#read(socket))
  readonly sockets = new Set<net.Socket>()
  /** Per client port: settles once the server's side of that connection closed (made by whichever side asks first). */
  readonly #closed = new Map<number, { promise: Promise<void>; resolve: () => void }>()

  #closedOf(port: number): { promise: Promise<void>; resolve: () => void } {
    let c = this.#closed.get(port)
    if (c === undefined) {
      let resolve!: () => void
      const promise = new Promise<void>((r) => (resolve = r))
      c = { promise, resolve }
      this.#closed.set(port, c)
    }
    return c
  }
  readonly #received: Received[] = []
  readonly #waiting: ((r: Received | string) => void)[] = []
  port = 0

  async listen(): Promise<void> {
    this.server.listen(0, '127.0.0.1')
    await once(this.server, 'listening')
    this.port = (this.server.address() as net.AddressInfo).port
  }

  /** The next request the server completes, or why llhttp refused the bytes. */
  next(): Promise<Received | string> {
    const r = this.#received.shift()
    if (r !== undefined) return Promise.resolve(r)
    return new Promise((resolve) => this.#waiting.push(resolve))
  }

  #deliver(r: Received | string): void {
    const w = this.#waiting.shift()
    if (w !== undefined) w(r)
    else if (typeof r !== 'string') this.#received.push(r)
  }

  close(): Promise<void> {
    for (const s of this.sockets) s.destroy()
    return new Promise((resolve) => this.server.close(() => resolve()))
  }

  /** Settles once the connection from the client's `port` has closed on the server's side. */
  closed(port: number): Promise<void> {
    return this.#closedOf(port).promise
  }

  /** The request read for `path` and not yet taken, if any (taken now). */
  take(path: string): Received | undefined {
    const i = this.#received.findIndex((r) => r.path === path)
    return i === -1 ? undefined : this.#received.splice(i, 1)[0]
  }

  #read(socket: net.Socket): void {
    this.sockets.add(socket)
    const closed = this.#closedOf(socket.remotePort as number)
    socket.on('close', () => {
      this.sockets.delete(socket)
      closed.resolve()
    })
    socket.on('error', () => {})
    let current: Omit<Received, 'body'> | undefined
    const body: Buffer[] = []
    const p = llhttpParser('request', {
      head: (h) => {
        current = { path: h.url, headers: h.headers }
        body.length = 0
      },
      body: (chunk) => body.push(chunk),
      complete: () => {
        if (current !== undefined) this.#deliver({ ...current, body: Buffer.concat(body) })
        current = undefined
      },
    })
    socket.on('data', (d: Buffer) => {
      const r = p.execute(d)
      if (r instanceof Error) {
        this.#deliver(`refused: ${llhttpCode(r)}`)
        socket.destroy()
      }
    })
  }
}

/** What a writer reported. */
function outcome(): { owner: BodyOwner; done: Promise<Error | null> } {
  let resolve!: (e: Error | null) => void
  const done = new Promise<Error | null>((r) => (resolve = r))
  const owner: BodyOwner = {
    bodyWritten: (_w: BodyWriter) => resolve(null),
    bodyFailed: (_w: BodyWriter, err: Error) => resolve(err),
  }
  return { owner, done }
}

const SEED = Number(process.env['SIDECARLESS_FUZZ_SEED'] ?? 0x5eed)
const CASES = Number(process.env['SIDECARLESS_FUZZ_CASES'] ?? 400)
const server = new LlhttpServer()
before(() => server.listen())
after(() => server.close())

async function connect(): Promise<net.Socket> {
  const s = net.connect(server.port, '127.0.0.1')
  s.on('error', () => {})
  await once(s, 'connect')
  return s
}

test(`request bodies the mesh streams are read by llhttp as sent, each request where the last one ended (${CASES} generated bodies)`, async (t) => {
  const r = prng(SEED)
  const int = (n: number): number => Math.floor(r() * n)
  const pick = <T>(a: readonly T[]): T => a[int(a.length)] as T
  const piece = (): string | Buffer | Uint8Array => {
    const k = int(10)
    if (k === 0) return ''
    if (k === 1) return Buffer.alloc(0)
    if (k === 2) return new Uint8Array([0x30, 0x0d, 0x0a, 0x0d, 0x0a].slice(0, 1 + int(5)))
    if (k === 3) return pick(['é', '€uro', '😀', '0\r\n\r\n'])
    if (k === 4) return Buffer.alloc(1 + int(40000), 0x61 + int(26))
    return 'x'.repeat(int(300))
  }
  let socket = await connect()
  let sent = 0
  let mismatched = 0
  t.after(() => socket.destroy())
  for (let i = 0; i < CASES; i++) {
    const pieces = Array.from({ length: int(6) }, piece)
    const bytes = Buffer.concat(pieces.map((p) => (typeof p === 'string' ? Buffer.from(p) : Buffer.from(p))))
    const declare = r()
    // The caller's Content-Length: none (chunked), the body's, or one off.
    const length = declare < 0.5 ? -1 : declare < 0.9 ? bytes.length : Math.max(0, bytes.length + pick([-1, 1]))
    const head = new RequestHead()
    buildHead({ method: 'POST', path: `/c${i}`, headers: length === -1 ? ['x-case', String(i)] : ['x-case', String(i), 'content-length', String(length)] }, 'up.example', head)
    const { owner, done } = outcome()
    new IterableBodyWriter(socket, owner, head.text, head.contentLength, true, pieces).start()
    const err = await done
    if (length !== -1 && length !== bytes.length) {
      assert.equal(err?.name, 'RequestContentLengthMismatchError', `case ${i}: a Content-Length of ${length} for ${bytes.length} bytes`)
      mismatched++
      // The connection is not used again; once the server saw it close, what it read of
      // this request is known. A body shorter than declared never makes a whole request. A
      // longer one may: its first pieces can fill the declared length before the piece
      // that overflows is seen (as with undici); then exactly the declared bytes went.
      const port = socket.localPort as number
      socket.destroy()
      await server.closed(port)
      const read = server.take(`/c${i}`)
      if (read !== undefined) {
        assert.ok(bytes.length > length, `case ${i}: a body of ${bytes.length} bytes, shorter than its Content-Length of ${length}, was read as a whole request`)
        assert.ok(read.body.equals(bytes.subarray(0, length)), `case ${i}: the declared bytes, and only those`)
      }
      socket = await connect()
      continue
    }
    assert.equal(err, null, `case ${i}`)
    sent++
    const got = await server.next()
    const where = `case ${i}: ${JSON.stringify(pieces.map((p) => (typeof p === 'string' ? p : `<${p.byteLength} bytes>`)))}`
    assert.notEqual(typeof got, 'string', `${String(got)} (${where})`)
    const req = got as Received
    assert.equal(req.path, `/c${i}`, `the request read is the one sent (${where})`)
    assert.ok(req.body.equals(bytes), `body of ${req.body.length} bytes read, ${bytes.length} sent (${where})`)
    const names = req.headers.filter((_, k) => k % 2 === 0).map((n) => n.toLowerCase())
    if (length === -1 && bytes.length > 0) assert.ok(names.includes('transfer-encoding') && !names.includes('content-length'), `chunked (${where})`)
    else assert.ok(names.includes('content-length') && !names.includes('transfer-encoding'), `with its length (${where})`)
  }
  assert.ok(sent > CASES / 2 && mismatched > 0, `both outcomes reached: ${sent} sent, ${mismatched} with a wrong length`)
  console.log(`seed ${SEED}: ${sent} of ${CASES} bodies read by llhttp as sent; ${mismatched} with a wrong Content-Length refused by the writer`)
})
