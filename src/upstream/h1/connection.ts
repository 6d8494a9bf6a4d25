/**
 * One HTTP/1.1 connection to an upstream, driven by the mesh itself: one socket (TCP or TLS,
 * set up by the pool's connector), one request at a time (no pipelining), old-style undici
 * handlers spoken natively. It replaces undici's `Client` for every request an
 * {@link EndpointPool} can serve this way (see {@link supportsLean}); the rest (upgrades,
 * CONNECT, FormData bodies, requests while undici's diagnostics channels are listened to...)
 * still go on a connection driven by undici's `Client`.
 *
 * Why: on a 2-core machine the calling process is the bottleneck, and undici's `Client`
 * costs most of a request's client CPU beyond a raw socket (its `Request` object and header
 * validation, llhttp in wasm with a JS callback per header, the 'readable'/`read()` stream
 * machinery, a `setImmediate` before reuse, `parseHeaders` of raw buffers). Here: the door
 * already checked the caller's headers (`outbound/request-check.ts`), the head is one latin1
 * string, a small body goes in the same write, responses are parsed in JS straight from the
 * socket's chunks ({@link ResponseParser}), and the handler callbacks are what undici 7's
 * `Request` calls, in the same order, with undici's own error classes:
 *
 * - `onConnect(abort)` before the request is written; `onHeaders(status, rawHeaders, resume,
 *   statusText)` for every head (1xx interim ones too, 100 included; a 101 is refused as
 *   undici refuses an unrequested upgrade), returning false to pause reading until
 *   `resume()`; `onData(chunk)` likewise; `onComplete(trailers)` (raw Buffer pairs; empty
 *   when the response was not chunked, as undici gives them); `onError(err)` at most once, and nothing after it.
 * - Failures: the socket's error, `SocketError('other side closed')` when the server closes
 *   first, `HTTPParserError` / `HeadersOverflowError` for a broken response,
 *   `HeadersTimeoutError` / `BodyTimeoutError` (`headersTimeout` / `bodyTimeout`, 300 s by
 *   default as undici's), `RequestAbortedError` for `abort()` without a reason.
 *
 * The connection is given back to its owner one turn of the event loop after the response is
 * complete and the request fully written (a `setImmediate`, as undici does), not at once:
 * bytes, a FIN or a reset the server sent right after the response are read first, so a
 * server that closes without saying so retires the connection instead of failing the next
 * request, and bytes already sent after a response are never taken for the next one
 * (undici's GHSA-35p6-xmwp-9g52). Giving it back at once was measured here (Node 24, 32
 * callers in a closed loop, 7 interleaved rounds): no CPU saved per request (medians 28.1
 * against 27.9 µs), throughput lower in most rounds, and under strace each request's write
 * cost twice the kernel time (it woke a server that had just gone idle).
 * Bytes that arrive after a complete response, with no request outstanding, destroy the
 * connection: they are never read as the next request's response.
 */
import { performance } from 'node:perf_hooks'
import { attachReader, detachReader } from './shared-read.js'
import type { Socket } from 'node:net'
import type { Readable } from 'node:stream'
import { channel } from 'node:diagnostics_channel'
import { errors, type Dispatcher } from 'undici'
import { type BodyWriter, IterableBodyWriter, StreamBodyWriter, type BodyOwner } from './body-writer.js'
import { LegacyFromNew, type LegacyHandler } from './legacy-handler.js'
import { buildHead, RequestHead } from './request-head.js'
import { ParseState, ResponseParser, type ResponseSink } from './response-parser.js'

type DispatchOptions = Dispatcher.DispatchOptions

/** Who owns a connection (the endpoint's pool): told when it is free again, and when it is gone. */
export interface H1Owner {
  h1Released(conn: H1Connection): void
  h1Closed(conn: H1Connection): void
}

/** Options of an {@link H1Connection}; the defaults are undici's `Client`'s. */
export interface H1Options {
  /** The Host header when the request names none: `name[:port]` of the origin. */
  readonly host: string
  /** Idle keep-alive timeout when the server names none (undici: 4 s). */
  readonly keepAliveTimeout?: number | undefined
  /** Upper bound of a server's `Keep-Alive: timeout=` (undici: 600 s). */
  readonly keepAliveMaxTimeout?: number | undefined
  /** Subtracted from the server's `timeout=` (undici: 2 s). */
  readonly keepAliveTimeoutThreshold?: number | undefined
  readonly headersTimeout?: number | undefined
  readonly bodyTimeout?: number | undefined
  /** Largest response head (undici: Node's `http.maxHeaderSize`, 16 KiB). */
  readonly maxHeaderSize?: number | undefined
}

/** A small body goes in the same write as its head, copied into one buffer, up to this size. */
const COALESCE_BYTES = 16 * 1024

/** Methods whose request defines a body (undici: `content-length: 0` is sent for them when there is none). */
function expectsPayload(method: string): boolean {
  return method === 'PUT' || method === 'POST' || method === 'PATCH' || method === 'QUERY' || method === 'PROPFIND' || method === 'PROPPATCH'
}

/** The request channels of undici's diagnostics: a request anyone listens to goes on undici's own Client. */
const DIAGNOSTICS = ['create', 'bodySent', 'bodyChunkSent', 'bodyChunkReceived', 'headers', 'trailers', 'error'].map((n) => channel(`undici:request:${n}`))
  .concat(channel('undici:client:sendHeaders'))

function diagnosed(): boolean {
  for (let i = 0; i < DIAGNOSTICS.length; i++) if ((DIAGNOSTICS[i] as { hasSubscribers: boolean }).hasSubscribers) return true
  return false
}

/**
 * Whether an {@link H1Connection} serves `opts`: not an upgrade or CONNECT (the socket is
 * handed over: undici's Client does it), not a FormData body (undici's fetch encoder), none
 * of undici's rarely used options (`query`, `expectContinue: true`, `typeOfService`, a
 * `maxRedirections` other than 0 — fetch sends 0 —, `throwOnError`: undici refuses the last
 * two itself), and nobody listening to undici's request diagnostics channels
 * (OpenTelemetry's undici instrumentation starts its spans there).
 */
export function supportsLean(opts: DispatchOptions): boolean {
  const o = opts as DispatchOptions & { expectContinue?: unknown; typeOfService?: unknown; throwOnError?: unknown; maxRedirections?: unknown }
  if (o.upgrade != null || o.method === 'CONNECT' || o.query != null || o.expectContinue === true || o.typeOfService != null ||
    o.throwOnError != null || (o.maxRedirections != null && o.maxRedirections !== 0)) return false
  const body = o.body as { [Symbol.toStringTag]?: unknown } | null | undefined
  if (body != null && typeof body === 'object' && body[Symbol.toStringTag] === 'FormData') return false
  return !diagnosed()
}

const enum Timer { None, Headers, Body }

function socketInfo(socket: Socket): Record<string, unknown> {
  return {
    localAddress: socket.localAddress,
    localPort: socket.localPort,
    remoteAddress: socket.remoteAddress,
    remotePort: socket.remotePort,
    remoteFamily: socket.remoteFamily,
    timeout: socket.timeout,
    bytesWritten: socket.bytesWritten,
    bytesRead: socket.bytesRead,
  }
}

function isStream(body: unknown): body is Readable {
  return typeof (body as { pipe?: unknown }).pipe === 'function' && typeof (body as { on?: unknown }).on === 'function'
}

/** The length undici reads off a stream that already ended (`util.bodyLength`), or -1. */
function endedLength(body: Readable): number {
  const state = (body as { _readableState?: { objectMode?: boolean; ended?: boolean; length?: number } })._readableState
  return state !== undefined && state.objectMode === false && state.ended === true && Number.isFinite(state.length) ? state.length as number : -1
}

/** One upstream HTTP/1.1 connection (see the file comment). */
export class H1Connection implements ResponseSink, BodyOwner {
  readonly socket: Socket
  readonly #owner: H1Owner
  readonly #parser: ResponseParser
  readonly #host: string
  readonly #keepAliveDefault: number
  readonly #keepAliveMax: number
  readonly #keepAliveThreshold: number
  readonly #headersTimeoutDefault: number
  readonly #bodyTimeoutDefault: number
  readonly #head = new RequestHead()

  /** The request on the connection, or null. */
  #handler: LegacyHandler | null = null
  /** Counts requests, so that a stale `abort` cannot touch a later one. */
  #seq = 0
  /** Bytes of the request went out (an abort now destroys the connection). */
  #sent = false
  /** The request body is still being written. */
  #writing = false
  #writer: BodyWriter | null = null
  #body: unknown = null
  /** Close after this response (asked, or the server said so). */
  #reset = false
  /** Reading paused by the handler; the rest of a chunk waits in {@link #rest}. */
  #paused = false
  #rest: Buffer | null = null
  #restAt = 0

  #keepAliveMs: number
  #idleSince = 0
  #idleTimer: NodeJS.Timeout | null = null
  #timer: NodeJS.Timeout | null = null
  #timerKind = Timer.None
  /** When the request timer's current phase expires (`performance.now()` ms). */
  #deadline = 0
  #timeoutMs = 0
  #headersTimeout = 0
  #bodyTimeout = 0

  #closing = false
  #destroyed = false
  /** Why the connection was destroyed: what its request hears. */
  #failure: Error | null = null
  #closed = false
  #unrefed = false
  readonly #whenClosed: (() => void)[] = []

  constructor(socket: Socket, owner: H1Owner, options: H1Options) {
    this.socket = socket
    this.#owner = owner
    this.#host = options.host
    this.#keepAliveDefault = options.keepAliveTimeout ?? 4e3
    this.#keepAliveMax = options.keepAliveMaxTimeout ?? 600e3
    this.#keepAliveThreshold = options.keepAliveTimeoutThreshold ?? 2e3
    this.#headersTimeoutDefault = options.headersTimeout ?? 300e3
    this.#bodyTimeoutDefault = options.bodyTimeout ?? 300e3
    this.#keepAliveMs = this.#keepAliveDefault
    this.#parser = new ResponseParser(this, options.maxHeaderSize ?? 16 * 1024)
    // A socket of `leanConnector` reads through the reader; any other through 'data'.
    attachReader(socket, this.#onData)
    socket.on('data', this.#onData)
    socket.on('end', this.#onEnd)
    socket.on('error', this.#onError)
    socket.on('close', this.#onClose)
    if (socket.isPaused()) socket.resume()
  }

  /** A request is on the connection. */
  get busy(): boolean {
    return this.#handler !== null
  }

  get destroyed(): boolean {
    return this.#destroyed
  }

  get closed(): boolean {
    return this.#closing || this.#destroyed
  }

  /**
   * Sends a request. Returns true when it took the connection (its owner is told when the
   * connection is free again, or gone); false when it ended before a byte was written (its
   * handler was told why, or it aborted itself at its start): the connection is still free.
   */
  dispatch(opts: DispatchOptions, handler: Dispatcher.DispatchHandler | LegacyHandler): boolean {
    const h: LegacyHandler = typeof (handler as Dispatcher.DispatchHandler).onRequestStart === 'function' ? new LegacyFromNew(handler as Dispatcher.DispatchHandler) : handler as LegacyHandler
    if (this.#destroyed || this.#closing || this.#handler !== null) {
      h.onError?.(this.#destroyed ? new errors.ClientDestroyedError() : new errors.ClientClosedError())
      return false
    }
    const method = opts.method
    const head = this.#head
    let body: unknown
    let length: number
    try {
      buildHead(opts, this.#host, head)
      length = this.#bodyLength(opts.body, head)
      body = this.#body
      if (length > 0 && head.contentLength !== -1 && head.contentLength !== length && shouldSendLength(method)) throw new errors.RequestContentLengthMismatchError()
    } catch (err) {
      h.onError?.(err as Error)
      return false
    }
    this.#handler = h
    const seq = ++this.#seq
    this.#sent = false
    try {
      h.onConnect?.((err?: Error) => this.#abort(seq, err))
    } catch (err) {
      if (this.#handler === h) {
        this.#handler = null
        h.onError?.(err as Error)
      }
      return false
    }
    // Aborted in onConnect: nothing was written, the connection stays as it was.
    if (this.#handler !== h) return false
    this.#sent = true
    this.#reset = head.reset || (body !== null && length !== 0 && !expectsPayload(method) && (opts as { reset?: boolean | null }).reset !== false)
    this.#parser.start(method === 'HEAD')
    if (this.#unrefed) {
      this.socket.ref()
      this.#unrefed = false
    }
    const o = opts as DispatchOptions & { headersTimeout?: number | null; bodyTimeout?: number | null }
    this.#headersTimeout = o.headersTimeout ?? this.#headersTimeoutDefault
    this.#bodyTimeout = o.bodyTimeout ?? this.#bodyTimeoutDefault
    this.#arm(Timer.Headers, this.#headersTimeout)
    this.#write(head.text, body, length, method)
    return true
  }

  /**
   * The body to send (set as {@link #body}: null when there is none) and its length: -1
   * when unknown (chunked, unless the caller's Content-Length says).
   */
  #bodyLength(body: unknown, head: RequestHead): number {
    this.#body = null
    if (body == null) return 0
    let n: number
    if (typeof body === 'string') {
      n = Buffer.byteLength(body)
    } else if (body instanceof Uint8Array) {
      n = body.byteLength
    } else if (ArrayBuffer.isView(body)) {
      n = body.byteLength
      body = Buffer.from(body.buffer, body.byteOffset, n)
    } else if (body instanceof ArrayBuffer) {
      n = body.byteLength
      body = Buffer.from(body)
    } else if (isStream(body)) {
      if (typeof body.read === 'function') body.read(0)
      const ended = endedLength(body)
      if (ended === 0) return 0
      this.#body = body
      return ended === -1 ? head.contentLength : ended
    } else if (body instanceof Blob) {
      if (!head.hasContentType && body.type !== '') {
        if (/[^\t\x20-\x7e\x80-\xff]/.test(body.type)) throw new errors.InvalidArgumentError('invalid content-type header')
        head.text += `content-type: ${body.type}\r\n`
      }
      n = body.size
    } else if (typeof (body as Iterable<unknown>)[Symbol.iterator] === 'function' || typeof (body as AsyncIterable<unknown>)[Symbol.asyncIterator] === 'function') {
      this.#body = body
      return head.contentLength
    } else {
      throw new errors.InvalidArgumentError('body must be a string, a Buffer, a Readable stream, an iterable, or an async iterable')
    }
    if (n !== 0) this.#body = body
    return n
  }

  #write(head: string, body: unknown, length: number, method: string): void {
    const socket = this.socket
    const h = this.#handler as LegacyHandler
    if (body === null) {
      socket.write(expectsPayload(method) ? `${head}content-length: 0\r\n\r\n` : `${head}\r\n`, 'latin1')
      this.#written(h)
      return
    }
    if (typeof body === 'string' || body instanceof Uint8Array) {
      const text = `${head}content-length: ${length}\r\n\r\n`
      if (length <= COALESCE_BYTES) {
        // One write: head and body in one buffer.
        const buf = Buffer.allocUnsafe(text.length + length)
        const at = buf.write(text, 0, 'latin1')
        if (typeof body === 'string') buf.write(body, at, 'utf8')
        else buf.set(body, at)
        socket.write(buf)
      } else {
        socket.cork()
        socket.write(text, 'latin1')
        socket.write(body)
        socket.uncork()
      }
      if (typeof h.onBodySent === 'function') h.onBodySent(body)
      this.#written(h)
      return
    }
    this.#writing = true
    const writer = isStream(body)
      ? new StreamBodyWriter(socket, this, head, length, expectsPayload(method), body)
      : new IterableBodyWriter(socket, this, head, length, expectsPayload(method), body instanceof Blob ? body.stream() : body as AsyncIterable<unknown>)
    this.#writer = writer
    writer.start()
  }

  /** The request is written whole. */
  #written(h: LegacyHandler): void {
    if (typeof h.onRequestSent === 'function') h.onRequestSent()
  }

  bodyWritten(writer: BodyWriter): void {
    if (writer !== this.#writer) return
    this.#writer = null
    this.#writing = false
    const h = this.#handler
    if (h !== null) this.#written(h)
  }

  bodyFailed(writer: BodyWriter, err: Error): void {
    if (writer !== this.#writer) return
    this.#writer = null
    this.#writing = false
    this.#abort(this.#seq, err)
  }

  // ---------------------------------------------------------------- reading

  readonly #onData = (chunk: Buffer): void => {
    if (this.#destroyed) return
    if (this.#handler === null) {
      // Bytes nobody asked for: never kept for the next request.
      this.#destroy(new errors.SocketError('bad response', socketInfo(this.socket)))
      return
    }
    if (this.#paused) {
      // Already read when the pause came: kept in order.
      this.#rest = this.#rest === null ? chunk : Buffer.concat([this.#rest.subarray(this.#restAt), chunk])
      this.#restAt = 0
      return
    }
    this.#feed(chunk, 0)
  }

  #feed(buf: Buffer, at: number): void {
    const parser = this.#parser
    let pos: number
    try {
      pos = parser.execute(buf, at)
    } catch (err) {
      this.#destroy(err as Error)
      return
    }
    if (this.#handler === null || this.#destroyed) return
    if (parser.state === ParseState.Done) {
      this.#complete(pos < buf.length)
      return
    }
    if (parser.paused) {
      this.#paused = true
      if (pos < buf.length) {
        this.#rest = buf
        this.#restAt = pos
      }
      this.socket.pause()
    }
  }

  /** The legacy `resume` handed to `onHeaders`: reading goes on after a pause. */
  readonly #resume = (): void => {
    if (!this.#paused || this.#destroyed) return
    this.#paused = false
    if (this.#timerKind === Timer.Body) this.#deadline = performance.now() + this.#timeoutMs
    const rest = this.#rest
    if (rest !== null) {
      this.#rest = null
      this.#feed(rest, this.#restAt)
    }
    if (!this.#paused && !this.#destroyed) this.socket.resume()
  }

  onResponseHead(statusCode: number, rawHeaders: Buffer[], statusText: string): boolean {
    const h = this.#handler as LegacyHandler
    if (statusCode === 101) {
      // An upgrade nobody asked for (upgrades go on undici's Client).
      this.#destroy(new errors.SocketError('bad upgrade', socketInfo(this.socket)))
      return false
    }
    const parser = this.#parser
    if (statusCode >= 200) {
      this.#arm(Timer.Body, this.#bodyTimeout)
      if (!parser.keepAlive) {
        this.#reset = true
      } else if (parser.keepAliveTimeout !== -1) {
        const t = Math.min(parser.keepAliveTimeout - this.#keepAliveThreshold, this.#keepAliveMax)
        if (t <= 0) this.#reset = true
        else this.#keepAliveMs = t
      } else {
        this.#keepAliveMs = this.#keepAliveDefault
      }
      if (typeof h.onResponseStarted === 'function') h.onResponseStarted()
    } else {
      this.#deadline = performance.now() + this.#timeoutMs
    }
    let go: boolean
    try {
      go = h.onHeaders?.(statusCode, rawHeaders, this.#resume, statusText) !== false
    } catch (err) {
      this.#abort(this.#seq, err as Error)
      return false
    }
    return go && this.#handler === h
  }

  onResponseBody(chunk: Buffer): boolean {
    const h = this.#handler as LegacyHandler
    // The body timeout restarts with each piece (not needed for the last one).
    if (this.#parser.state !== ParseState.Done) this.#deadline = performance.now() + this.#timeoutMs
    try {
      return h.onData?.(chunk) !== false && this.#handler === h
    } catch (err) {
      this.#abort(this.#seq, err as Error)
      return false
    }
  }

  /** The response is complete: the handler is told, then the connection is freed or closed. */
  #complete(leftover: boolean): void {
    const h = this.#handler as LegacyHandler
    const parser = this.#parser
    this.#handler = null
    this.#paused = false
    this.#rest = null
    parser.state = ParseState.Idle
    this.#timerKind = Timer.None
    const reuse = !leftover && !this.#reset && !this.#writing && !this.#closing
    try {
      h.onComplete?.(parser.trailers ?? [])
    } catch (err) {
      h.onError?.(err as Error)
    }
    if (this.#destroyed) return
    if (!reuse) {
      // Bytes after the response, the response asked to close, or the request was not all written.
      this.#destroy(new errors.InformationalError('reset'))
      return
    }
    this.#idleSince = performance.now()
    if (this.#idleTimer === null) this.#armIdle(this.#keepAliveMs)
    if (this.socket.isPaused()) this.socket.resume()
    this.socket.unref()
    this.#unrefed = true
    // A turn of the event loop first (see the file comment).
    setImmediate(this.#release)
  }

  /** Gives the connection back, unless it closed (or was taken) meanwhile. */
  readonly #release = (): void => {
    if (!this.#destroyed && !this.#closing && this.#handler === null) this.#owner.h1Released(this)
  }

  // ---------------------------------------------------------------- timers

  /** The request timer's phase: one timer per connection, re-armed only when it fires early or too late. */
  #arm(kind: Timer, ms: number): void {
    this.#timerKind = ms > 0 ? kind : Timer.None
    if (ms <= 0) return
    const now = performance.now()
    const deadline = now + ms
    this.#timeoutMs = ms
    const earlier = deadline < this.#deadline
    this.#deadline = deadline
    if (this.#timer === null || earlier) {
      if (this.#timer !== null) clearTimeout(this.#timer)
      this.#timer = setTimeout(this.#onTimer, ms)
      this.#timer.unref()
    }
  }

  readonly #onTimer = (): void => {
    this.#timer = null
    if (this.#timerKind === Timer.None || this.#destroyed) return
    const now = performance.now()
    const waitingOnWrite = this.#timerKind === Timer.Headers && this.#writing && !this.socket.writableNeedDrain
    if (now < this.#deadline - 1 || this.#paused || waitingOnWrite) {
      // Not yet (or paused, or still sending: undici does not time those out): look again later.
      const left = waitingOnWrite || this.#paused ? this.#timeoutMs : this.#deadline - now
      this.#timer = setTimeout(this.#onTimer, left)
      this.#timer.unref()
      return
    }
    this.#destroy(this.#timerKind === Timer.Headers ? new errors.HeadersTimeoutError() : new errors.BodyTimeoutError())
  }

  #armIdle(ms: number): void {
    this.#idleTimer = setTimeout(this.#onIdleTimer, ms)
    this.#idleTimer.unref()
  }

  readonly #onIdleTimer = (): void => {
    this.#idleTimer = null
    if (this.#destroyed || this.#handler !== null) return
    const left = this.#idleSince + this.#keepAliveMs - performance.now()
    if (left > 1) this.#armIdle(left)
    else this.#destroy(new errors.InformationalError('socket idle timeout'))
  }

  // ---------------------------------------------------------------- ending

  /** `abort` as handed to `onConnect`: the request fails with `err`, the connection is destroyed (once bytes went out). */
  #abort(seq: number, err: Error | undefined): void {
    const h = this.#handler
    if (seq !== this.#seq || h === null) return
    const reason = err ?? new errors.RequestAbortedError()
    this.#handler = null
    destroyBody(this.#body, null)
    if (!this.#sent) {
      // Still in onConnect: nothing was written; the connection stays free.
      h.onError?.(reason)
      return
    }
    this.#destroy(new errors.InformationalError('aborted'))
    h.onError?.(reason)
  }

  readonly #onEnd = (): void => {
    if (this.#destroyed) return
    if (this.#handler !== null && this.#parser.finish()) {
      // A body delimited by the close of the connection: complete.
      this.#complete(false)
      return
    }
    this.#destroy(new errors.SocketError('other side closed', socketInfo(this.socket)))
  }

  readonly #onError = (err: Error & { code?: string }): void => {
    if (this.#destroyed) return
    if (err.code === 'ECONNRESET' && this.#handler !== null && this.#parser.finish()) {
      this.#complete(false)
      return
    }
    this.#destroy(err)
  }

  readonly #onClose = (): void => {
    this.#closed = true
    if (!this.#destroyed) this.#destroy(new errors.SocketError('closed', socketInfo(this.socket)))
    // As undici: the request on a connection that failed hears of it once the socket closed.
    const h = this.#handler
    this.#handler = null
    if (h !== null) h.onError?.(this.#failure ?? new errors.SocketError('closed', socketInfo(this.socket)))
    for (const resolve of this.#whenClosed.splice(0)) resolve()
  }

  /**
   * The connection is gone: its owner is told at once (so nothing else is sent on it); the
   * request on it fails with `err` when the socket has closed, as undici reports it.
   */
  #destroy(err: Error): void {
    if (this.#destroyed) return
    this.#destroyed = true
    this.#failure = err
    this.#stop()
    this.#rest = null
    const writer = this.#writer
    this.#writer = null
    writer?.destroy(err)
    this.socket.destroy()
    this.#owner.h1Closed(this)
  }

  /** Stops the parser and both timers (the connection is being destroyed or let go of). */
  #stop(): void {
    this.#parser.stop()
    if (this.#timer !== null) clearTimeout(this.#timer)
    if (this.#idleTimer !== null) clearTimeout(this.#idleTimer)
    this.#timer = null
    this.#idleTimer = null
  }

  /**
   * Lets go of the socket of an idle connection, paused, for another driver (undici's
   * Client, for a request this one does not serve). The connection is unusable after.
   */
  detach(): Socket {
    const socket = this.socket
    this.#destroyed = true
    this.#stop()
    detachReader(socket)
    socket.off('data', this.#onData)
    socket.off('end', this.#onEnd)
    socket.off('error', this.#onError)
    socket.off('close', this.#onClose)
    socket.pause()
    if (this.#unrefed) socket.ref()
    return socket
  }

  /** Closes the connection once its request (if any) is done; resolves when the socket closed. */
  close(): Promise<void> {
    this.#closing = true
    if (this.#handler === null) this.#destroy(new errors.InformationalError('closed'))
    return this.#settled()
  }

  /** Closes at once; the request on it fails with `err`. Resolves when the socket closed. */
  destroy(err: Error | null): Promise<void> {
    this.#destroy(err ?? new errors.ClientDestroyedError())
    return this.#settled()
  }

  #settled(): Promise<void> {
    if (this.#closed) return Promise.resolve()
    return new Promise((resolve) => this.#whenClosed.push(resolve))
  }
}

function shouldSendLength(method: string): boolean {
  return method !== 'GET' && method !== 'HEAD' && method !== 'OPTIONS' && method !== 'TRACE' && method !== 'CONNECT'
}

/** undici's `util.destroy` of a request body on abort: a stream is destroyed, anything else left alone. */
function destroyBody(body: unknown, err: Error | null): void {
  if (body !== null && typeof body === 'object' && isStream(body) && !(body).destroyed) {
    if (err === null) (body).destroy()
    else (body).destroy(err)
  }
}
