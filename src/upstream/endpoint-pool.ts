/**
 * The connection pool of one upstream endpoint: HTTP/1.1 connections, each driven by an
 * undici `Client`, and the requests waiting for one.
 *
 * Why not undici's `Pool`: a request that finds no free connection makes it open a new one,
 * up to its limit, and the request is bound to that connection. Under an open loop (a fixed
 * arrival rate) a hiccup queues requests and each opens its own connection — with mTLS a
 * TLS handshake of ~1–1.5 ms of CPU on each side, which prolongs the hiccup — and a request
 * whose route timeout fires while its connection is still being set up destroys that
 * connection once it is ready (HTTP/1.1 cannot withdraw a request any other way), so more
 * handshakes follow: a storm of 503 `UO` and 504 `UT` (issue 17). Here setting up a
 * connection is apart from the requests, as Go's transport and "max connecting" pools
 * (MongoDB's CMAP) do:
 *
 * - At most `maxConnecting` connections are being established at once, and a new one is
 *   started only while more requests wait than connections are being set up (Envoy's
 *   rule for HTTP/1.1 pools). `maxConnections` bounds connections open plus being set up.
 * - A waiting request takes whichever connection is ready first — a new one or one that
 *   was freed — in arrival order. A connection that is set up when nothing waits stays
 *   in the pool, idle.
 * - A request that ended while it waited (its route or per-try timeout, or its caller
 *   aborted) is dropped when its turn comes: never written, and the connection it would
 *   have taken stays open for the next one.
 * - A failed connection attempt fails every request that was waiting when it started (Envoy
 *   purges its pending requests on a connect failure), so none waits behind a dead endpoint;
 *   a request that came later waits for an attempt of its own (started at once if none is
 *   in progress), so one that arrives after the endpoint came back is not failed by an
 *   attempt made while it was down.
 * - A request that finds a free connection goes at once (the last freed first, so the
 *   connections in use stay warm and surplus ones reach their idle timeout); a request
 *   that waits resumes in its caller's async context.
 *
 * Each connection is driven by the mesh's own HTTP/1.1 connection ({@link H1Connection},
 * `h1/`) for every request it can serve ({@link supportsLean}); a request it cannot (an
 * upgrade, CONNECT, a FormData body, undici's rare options, or while undici's diagnostics
 * channels are listened to) goes on a connection driven by undici's public `Client` (one
 * socket each, pipelining 1; its documented `drain` / `disconnect` / `connectionError`
 * events, identical in undici 7 and 8). An idle connection of ours is handed to a Client
 * when such a request takes it, and stays with that Client — unless its socket reads into
 * the shared buffer (`h1/shared-read.ts`, `connectStreaming` set, as the mesh's pools do):
 * that one is closed and the Client opens a socket of its own, in stream mode.
 */
import { AsyncResource } from 'node:async_hooks'
import { isIP, type Socket } from 'node:net'
import type { Readable } from 'node:stream'
import { Client, Dispatcher, errors, type buildConnector } from 'undici'
import { H1Connection, supportsLean, type H1Options, type H1Owner } from './h1/connection.js'

type Handler = Dispatcher.DispatchHandler
type Controller = Dispatcher.DispatchController
type DispatchOptions = Dispatcher.DispatchOptions

/**
 * An old-style (undici ≤ 6) handler, which undici 7's pools still drive as it is: its
 * `Dispatcher.request()` uses one, and so does the mesh's own try (`UpstreamRequest`).
 */
interface LegacyHandler {
  onConnect?(abort: (err?: Error) => void, context?: unknown): void
  onHeaders?(statusCode: number, rawHeaders: Buffer[], resume: () => void, statusText: string): boolean
  onData?(chunk: Buffer): boolean
  onComplete?(trailers: Buffer[] | null): void
  onError?(err: Error): void
  onUpgrade?(statusCode: number, rawHeaders: Buffer[] | null, socket: unknown): void
}

/** Options of an {@link EndpointPool}. */
export interface EndpointPoolOptions {
  /** Opens one connection (TCP, or TLS with the cluster's connector), with its connect timeout. */
  readonly connect: buildConnector.connector
  /**
   * Set when the sockets `connect` opens read into a shared buffer (`h1/shared-read.ts`) and
   * so cannot be handed to undici's `Client`: a request only the Client serves then gets a
   * connection of its own, opened by this connector (stream mode).
   */
  readonly connectStreaming?: buildConnector.connector | undefined
  /** Connections open plus being set up, at most; undefined: no cap. */
  readonly maxConnections?: number | undefined
  /** Connections being set up at once, at most (at least 1). */
  readonly maxConnecting: number
  /** SNI for new connections when the request that needs one names none. */
  readonly servername?: string | undefined
  /** Idle keep-alive timeouts of each connection (undici `Client` options); undefined: undici's. */
  readonly keepAliveTimeout?: number | undefined
  readonly keepAliveMaxTimeout?: number | undefined
  /** Time for a response's head, and between pieces of its body (ms); undefined: undici's 300 s. A request's own option wins. */
  readonly headersTimeout?: number | undefined
  readonly bodyTimeout?: number | undefined
}

/** What {@link EndpointPool.stats} reports (the fields of undici's `PoolStats`, plus `connecting`). */
export interface EndpointPoolStats {
  /** Connections open (idle or in use). */
  readonly connected: number
  /** Connections idle. */
  readonly free: number
  /** Connections being set up. */
  readonly connecting: number
  /** Requests waiting for a connection. */
  readonly pending: number
  readonly queued: number
  /** Requests on a connection. */
  readonly running: number
  readonly size: number
}

/** The controller handed to handlers failed before they started (nothing to abort or pause). */
const NOT_STARTED: Controller = Object.freeze({
  aborted: true,
  paused: false,
  reason: null,
  abort() {},
  pause() {},
  resume() {},
})

/** Fails a handler that never started, new-style or old-style. */
function failHandler(handler: Handler, err: Error): void {
  if (typeof handler.onResponseError === 'function') handler.onResponseError(NOT_STARTED, err)
  else (handler as LegacyHandler).onError?.(err)
}

/** What drives a connection: undici's `Client`, or the mesh's {@link H1Connection}. */
interface Driver {
  close(): Promise<void>
  destroy(err: Error): Promise<void>
}

/**
 * One connection: the socket the pool set up, until a driver takes it on its first request —
 * an {@link H1Connection}, or undici's `Client` for requests ours does not serve.
 */
class Connection implements H1Owner {
  /** undici's Client, once a request needed it (then it drives the connection for good). */
  client: Client | null = null
  /** The mesh's own driver, while it drives the connection. */
  h1: H1Connection | null = null
  /** On the idle stack. */
  idle = false
  /** Closed or retired: never used again. */
  gone = false
  /** The socket set up for this connection, until a driver takes it. */
  socket: Socket | null
  /** Set while an unclaimed socket waits idle (closes it after the idle timeout), with its listeners. */
  timer: NodeJS.Timeout | undefined
  onUnclaimedClose: () => void = noop
  onUnclaimedData: () => void = noop
  readonly #freed: (c: Connection) => void
  readonly #closed: (c: Connection) => void

  constructor(socket: Socket, freed: (c: Connection) => void, closed: (c: Connection) => void) {
    this.socket = socket
    this.#freed = freed
    this.#closed = closed
  }

  get driver(): Driver | null {
    return this.h1 ?? this.client
  }

  h1Released(): void {
    this.#freed(this)
  }

  h1Closed(): void {
    this.#closed(this)
  }
}

/**
 * A request waiting for a connection. It resumes in its caller's async context (the app's
 * OpenTelemetry context, the mesh's request context), as it would have run had it gone at
 * once. For a new-style handler it is also the handler the connection drives and the
 * controller that handler holds: when the connection starts the request, the handler is
 * asked first; one that aborts right away (it ended while it waited) is dropped before a
 * byte is written, by failing its start — undici then discards the request and keeps the
 * connection, where an abort would destroy it.
 */
class QueuedRequest extends AsyncResource implements Handler, Controller {
  readonly opts: DispatchOptions
  readonly handler: Handler
  #real: Controller | null = null
  #starting = false
  #dropped: Error | null = null

  /**
   * Set once the request ended while it waited (its body errored, or its handler withdrew it:
   * a timeout or an abort): it is skipped, never sent, and no connection is opened for it.
   */
  settled = false
  /** The queue it waits in, told when it ends there. */
  queue: WaitQueue | null = null
  /** Its place in arrival order (see {@link EndpointPool} `#purge`). */
  seq = 0
  readonly #body: Readable | null

  constructor(opts: DispatchOptions, handler: Handler) {
    super('sidecarless.QueuedRequest')
    this.opts = opts
    this.handler = handler
    // undici listens for a stream body's errors from the moment it has the request; until a
    // connection takes this one, the pool does (an 'error' nobody hears would crash the process).
    const body = opts.body as Readable | null | undefined
    this.#body = body !== null && typeof body === 'object' && typeof body.on === 'function' && typeof body.pipe === 'function' ? body : null
    this.#body?.on('error', this.#onBodyError)
  }

  /** The caller's body failed while the request waited: the caller's failure, at once (as undici reports it). */
  readonly #onBodyError = (err: Error): void => {
    if (this.settled) return
    this.settled = true
    this.queue?.ended()
    this.#body?.off('error', this.#onBodyError)
    this.runInAsyncScope(failHandler, null, this.handler, err)
  }

  /** The request leaves the queue (to a connection, or failed): undici hears its body from now on. */
  leave(): void {
    this.#body?.off('error', this.#onBodyError)
  }

  /**
   * What the connection is given: this wrapper for a new-style handler, a {@link LegacyStart}
   * for an old-style one — both drop a request that ended while it waited without
   * destroying the connection.
   */
  get target(): Handler {
    return typeof this.handler.onRequestStart === 'function' ? this : new LegacyStart(this.handler as LegacyHandler) as unknown as Handler
  }

  // ---------------------------------------------------------------- as the handler

  onRequestStart(controller: Controller, context: unknown): void {
    this.#real = controller
    this.#starting = true
    try {
      this.handler.onRequestStart?.(this, context)
    } finally {
      this.#starting = false
    }
    // Thrown, not aborted: undici fails the request (onResponseError follows) without
    // touching the socket, and writes nothing.
    if (this.#dropped !== null) throw this.#dropped
  }

  onRequestUpgrade(_c: Controller, statusCode: number, headers: Parameters<NonNullable<Handler['onRequestUpgrade']>>[2], socket: Parameters<NonNullable<Handler['onRequestUpgrade']>>[3]): void {
    this.handler.onRequestUpgrade?.(this, statusCode, headers, socket)
  }

  onResponseStart(_c: Controller, statusCode: number, headers: Parameters<NonNullable<Handler['onResponseStart']>>[2], statusMessage?: string): void {
    this.handler.onResponseStart?.(this, statusCode, headers, statusMessage)
  }

  onResponseData(_c: Controller, chunk: Buffer): void {
    this.handler.onResponseData?.(this, chunk)
  }

  onResponseEnd(_c: Controller, trailers: Parameters<NonNullable<Handler['onResponseEnd']>>[1]): void {
    this.handler.onResponseEnd?.(this, trailers)
  }

  onResponseError(_c: Controller | null, err: Error): void {
    this.handler.onResponseError?.(this, err)
  }

  // ---------------------------------------------------------------- as the controller

  abort(reason: Error): void {
    if (this.#starting) this.#dropped ??= reason
    else if (this.#real !== null) this.#real.abort(reason)
    else this.#dropped ??= reason
  }

  pause(): void {
    this.#real?.pause()
  }

  resume(): void {
    this.#real?.resume()
  }

  get aborted(): boolean {
    return this.#dropped !== null || this.#real?.aborted === true
  }

  get paused(): boolean {
    return this.#real?.paused === true
  }

  get reason(): Error | null {
    return this.#dropped ?? this.#real?.reason ?? null
  }

  get rawHeaders(): Controller['rawHeaders'] {
    return this.#real?.rawHeaders
  }

  get rawTrailers(): Controller['rawTrailers'] {
    return this.#real?.rawTrailers
  }
}

/**
 * An old-style handler's start, guarded as {@link QueuedRequest.onRequestStart} guards a
 * new-style one: a handler that aborts inside `onConnect` (it ended while it waited) fails
 * the start by a throw, so undici discards the request unsent and keeps the connection,
 * where its abort would destroy the socket. Made only for requests that waited.
 */
class LegacyStart implements LegacyHandler {
  readonly #h: LegacyHandler
  #abort: ((err?: Error) => void) | null = null
  #starting = false
  #dropped: Error | null = null

  constructor(h: LegacyHandler) {
    this.#h = h
  }

  readonly #guardedAbort = (err?: Error): void => {
    if (this.#starting) this.#dropped ??= err ?? new Error('request aborted while it waited')
    else this.#abort?.(err)
  }

  onConnect(abort: (err?: Error) => void, context?: unknown): void {
    this.#abort = abort
    this.#starting = true
    try {
      this.#h.onConnect?.(this.#guardedAbort, context)
    } finally {
      this.#starting = false
    }
    if (this.#dropped !== null) throw this.#dropped
  }

  onHeaders(statusCode: number, rawHeaders: Buffer[], resume: () => void, statusText: string): boolean {
    return this.#h.onHeaders?.(statusCode, rawHeaders, resume, statusText) ?? true
  }

  onData(chunk: Buffer): boolean {
    return this.#h.onData?.(chunk) ?? true
  }

  onComplete(trailers: Buffer[] | null): void {
    this.#h.onComplete?.(trailers)
  }

  onError(err: Error): void {
    this.#h.onError?.(err)
  }

  onUpgrade(statusCode: number, rawHeaders: Buffer[] | null, socket: unknown): void {
    this.#h.onUpgrade?.(statusCode, rawHeaders, socket)
  }
}

/**
 * A FIFO of waiting requests: an array and a head index, compacted as it empties. A request
 * that ends while it waits stays in place until its turn (then skipped) but no longer counts
 * as waiting, so no connection is opened for it.
 */
class WaitQueue {
  #items: (QueuedRequest | undefined)[] = []
  #head = 0
  /** Items still in the array that ended while they waited. */
  #ended = 0
  /** Waiting requests by their handler, for {@link EndpointPool.withdraw}. */
  readonly #byHandler = new Map<object, QueuedRequest>()

  /** Requests still waiting (not ended). */
  get length(): number {
    return this.#items.length - this.#head - this.#ended
  }

  push(item: QueuedRequest): void {
    item.queue = this
    this.#items.push(item)
    this.#byHandler.set(item.handler, item)
  }

  /** An item ended while it waited (see {@link QueuedRequest.settled}). */
  ended(): void {
    this.#ended++
  }

  /** The waiting request of `handler`, if it still waits. */
  find(handler: object): QueuedRequest | undefined {
    return this.#byHandler.get(handler)
  }

  /** The oldest item that has not failed while it waited. */
  shift(): QueuedRequest | undefined {
    let item = this.#shiftAny()
    while (item !== undefined && item.settled) item = this.#shiftAny()
    item?.leave()
    return item
  }

  #shiftAny(): QueuedRequest | undefined {
    if (this.#head >= this.#items.length) return undefined
    const item = this.#items[this.#head]
    this.#items[this.#head++] = undefined
    if (item !== undefined) {
      this.#byHandler.delete(item.handler)
      if (item.settled) this.#ended--
    }
    if (this.#head === this.#items.length) {
      this.#items = []
      this.#head = 0
    } else if (this.#head >= 1024 && this.#head * 2 >= this.#items.length) {
      this.#items = this.#items.slice(this.#head)
      this.#head = 0
    }
    return item
  }

  /** The oldest item, left in place. */
  peek(): QueuedRequest | undefined {
    return this.#items[this.#head]
  }

  /** Takes the items that arrived up to `seq` (the oldest ones) and have not failed out, oldest first. */
  takeUpTo(seq: number): QueuedRequest[] {
    const taken: QueuedRequest[] = []
    for (let item = this.peek(); item !== undefined && item.seq <= seq; item = this.peek()) {
      this.#shiftAny()
      if (item.settled) continue
      item.leave()
      taken.push(item)
    }
    return taken
  }

  /** Takes every item that has not failed out, oldest first. */
  takeAll(): QueuedRequest[] {
    const all = (this.#items.slice(this.#head) as QueuedRequest[]).filter((w) => !w.settled)
    this.#items = []
    this.#head = 0
    this.#ended = 0
    this.#byHandler.clear()
    for (const w of all) w.leave()
    return all
  }
}

/** The connection pool of one upstream endpoint (see the file comment). */
export class EndpointPool extends Dispatcher {
  readonly #origin: URL
  readonly #connect: buildConnector.connector
  readonly #connectStreaming: buildConnector.connector | undefined
  readonly #maxConnections: number
  readonly #maxConnecting: number
  readonly #servername: string | undefined
  readonly #clientOptions: Client.Options
  readonly #h1Options: H1Options
  readonly #idleTimeoutMs: number
  /** Connections open, idle or in use. */
  readonly #connections = new Set<Connection>()
  /** Idle connections; the last freed on top. */
  readonly #idle: Connection[] = []
  readonly #waiting = new WaitQueue()
  #connecting = 0
  /** Requests that have waited so far: the arrival number of the latest. */
  #arrivals = 0
  #closed = false
  #destroyed = false
  #whenClosed: (() => void) | null = null
  /** What `close()` returns, the first call and every later one (undici's pools answer a second close too). */
  #closing: Promise<void> | null = null
  /**
   * Clients that left the pool but still finish a request (closed gracefully by `close()`,
   * or retired holding one): `destroy()` cuts them too, as undici's Pool destroys every client.
   */
  readonly #finishing = new Set<Driver>()
  readonly #onFreed = (conn: Connection): void => this.#free(conn)
  readonly #onConnClosed = (conn: Connection): void => this.#retire(conn)

  constructor(origin: string | URL, options: EndpointPoolOptions) {
    super()
    this.#origin = new URL(origin)
    this.#connect = options.connect
    this.#connectStreaming = options.connectStreaming
    this.#maxConnections = options.maxConnections ?? Infinity
    this.#maxConnecting = Math.max(1, options.maxConnecting)
    this.#servername = options.servername
    this.#clientOptions = {
      ...(options.keepAliveTimeout === undefined ? {} : { keepAliveTimeout: options.keepAliveTimeout }),
      ...(options.keepAliveMaxTimeout === undefined ? {} : { keepAliveMaxTimeout: options.keepAliveMaxTimeout }),
      ...(options.headersTimeout === undefined ? {} : { headersTimeout: options.headersTimeout }),
      ...(options.bodyTimeout === undefined ? {} : { bodyTimeout: options.bodyTimeout }),
    }
    this.#h1Options = {
      host: this.#origin.host,
      keepAliveTimeout: options.keepAliveTimeout,
      keepAliveMaxTimeout: options.keepAliveMaxTimeout,
      headersTimeout: options.headersTimeout,
      bodyTimeout: options.bodyTimeout,
    }
    // undici's default keep-alive timeout (4 s) unless the cluster's idle timeout says otherwise.
    this.#idleTimeoutMs = options.keepAliveTimeout ?? 4_000
  }

  /** Connections and requests now. */
  get stats(): EndpointPoolStats {
    const connected = this.#connections.size
    const free = this.#idle.length
    const queued = this.#waiting.length
    const running = connected - free
    return { connected, free, connecting: this.#connecting, pending: queued, queued, running, size: queued + running }
  }

  /** True once `close()` or `destroy()` was called. */
  get closed(): boolean {
    return this.#closed
  }

  get destroyed(): boolean {
    return this.#destroyed
  }

  override dispatch(opts: DispatchOptions, handler: Handler): boolean {
    if (this.#closed) {
      failHandler(handler, this.#destroyed ? new errors.ClientDestroyedError() : new errors.ClientClosedError())
      return true
    }
    const conn = this.#idle.pop()
    if (conn !== undefined) {
      conn.idle = false
      this.#send(conn, opts, handler)
      return true
    }
    const queued = new QueuedRequest(opts, handler)
    queued.seq = ++this.#arrivals
    this.#waiting.push(queued)
    this.#grow()
    return true
  }

  /** Stops taking requests; resolves once those waiting and running are done and every connection is closed. */
  override close(): Promise<void>
  override close(callback: () => void): void
  override close(callback?: () => void): Promise<void> | void {
    const p = this.#close()
    if (callback === undefined) return p
    void p.then(() => callback(), () => callback())
  }

  /** Fails the requests waiting and running, and closes every connection at once. */
  override destroy(): Promise<void>
  override destroy(err: Error | null): Promise<void>
  override destroy(callback: () => void): void
  override destroy(err: Error | null, callback: () => void): void
  override destroy(a?: Error | null | (() => void), b?: () => void): Promise<void> | void {
    const callback = typeof a === 'function' ? a : b
    const err = typeof a === 'function' || a === undefined || a === null ? new errors.ClientDestroyedError() : a
    const p = this.#destroy(err)
    if (callback === undefined) return p
    void p.then(() => callback(), () => callback())
  }

  /**
   * The request `handler` was dispatched with ended while it waited for a connection (its
   * route or per-try timeout fired, or its caller aborted): it leaves the count of waiting
   * requests at once, so no connection is opened for it, and is skipped when its turn comes.
   * Nothing is said to the handler (it ended itself). Unknown or started requests: no-op.
   */
  withdraw(handler: object): void {
    const item = this.#waiting.find(handler)
    if (item === undefined || item.settled) return
    item.settled = true
    this.#waiting.ended()
    item.leave()
    this.#settle()
  }

  // ---------------------------------------------------------------- requests

  /**
   * Hands a request to an idle connection; it is busy until its driver frees it (our
   * connection's `h1Released`, the Client's `drain`).
   */
  #send(conn: Connection, opts: DispatchOptions, handler: Handler): void {
    if (conn.client === null && supportsLean(opts)) {
      let h1 = conn.h1
      if (h1 === null) {
        this.#claim(conn)
        h1 = conn.h1 = new H1Connection(conn.socket as Socket, conn, this.#h1Options)
        conn.socket = null
      }
      // False: the request ended before a byte was written (refused, or dropped at its
      // start); the connection is as it was.
      if (!h1.dispatch(opts, handler)) {
        if (h1.destroyed) this.#retire(conn)
        else this.#free(conn)
      }
      return
    }
    if (conn.client === null) this.#toClient(conn)
    const client = conn.client as Client
    // With pipelining 1 the Client emits `drain` once it can take the next request (also
    // after it dropped one at start, when dispatch returns true). A request it refused
    // outright (its Request could not be built: an invalid header, method or body) failed
    // its handler and was never queued: false with nothing queued, and no `drain` will
    // come, so the connection is freed here (undici's Pool kept using that Client too).
    if (!client.dispatch(opts, handler) && client.stats.size === 0) {
      if (client.closed || client.destroyed) this.#retire(conn)
      else this.#free(conn)
    }
  }

  /** A connection is free (new, or its Client drained): the oldest waiting request takes it, or it goes idle. */
  #free(conn: Connection): void {
    if (conn.idle || conn.gone) return
    const next = this.#waiting.shift()
    if (next === undefined) {
      conn.idle = true
      this.#idle.push(conn)
      if (conn.socket !== null) this.#watchUnclaimed(conn)
      this.#settle()
      return
    }
    next.runInAsyncScope(this.#send, this, conn, next.opts, next.target)
  }

  /** Starts connections while more requests wait than connections are being set up, within both bounds. */
  #grow(): void {
    while (
      this.#waiting.length > this.#connecting &&
      this.#connecting < this.#maxConnecting &&
      this.#connections.size + this.#connecting < this.#maxConnections &&
      !this.#destroyed
    ) this.#dial()
  }

  #dial(): void {
    this.#connecting++
    const url = this.#origin
    const servername = this.#servername ?? (url.protocol === 'https:' ? sniOf(this.#waiting.peek()?.opts) : undefined)
    const hostname = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname
    let settled = false
    // The requests this attempt may fail: those waiting when it started.
    const upTo = this.#arrivals
    const done = (err: Error | null, socket: Socket | null): void => {
      if (settled) return
      settled = true
      this.#connecting--
      if (this.#destroyed) {
        socket?.destroy()
        return
      }
      if (err !== null || socket === null) {
        this.#purge(err ?? new errors.SocketError('no socket'), upTo)
        // Requests that came after it started get an attempt of their own.
        this.#grow()
        this.#settle()
        return
      }
      this.#free(this.#adopt(socket))
      this.#grow()
    }
    try {
      this.#connect({
        host: url.host,
        hostname,
        protocol: url.protocol,
        port: url.port,
        servername: servername ?? null,
        localAddress: null,
        httpSocket: undefined,
      } as buildConnector.Options, (err, socket) => done(err, socket))
    } catch (err) {
      done(err as Error, null)
    }
  }

  /**
   * A connection attempt failed: the requests that were waiting when it started fail with its
   * error (Envoy purges its pending requests). One that came later is not failed by an attempt
   * it did not wait for — after a refused endpoint comes back, attempts started before may
   * still be failing, and undici's Pool would have dialled anew for it — it waits for its own.
   */
  #purge(err: Error, upTo: number): void {
    // Taken out first: a retry dispatched from a failure handler waits for a new attempt.
    for (const w of this.#waiting.takeUpTo(upTo)) w.runInAsyncScope(failHandler, null, w.handler, err)
  }

  // ---------------------------------------------------------------- connections

  /** A socket the pool set up: a connection, not driven yet. */
  #adopt(socket: Socket): Connection {
    const conn = new Connection(socket, this.#onFreed, this.#onConnClosed)
    this.#connections.add(conn)
    return conn
  }

  /**
   * Gives a connection to undici's `Client` (a request ours does not serve took it): its
   * unclaimed socket, or the socket our idle driver lets go of — unless that socket reads
   * into the shared buffer (`connectStreaming` set): then it is closed and the Client opens
   * one of its own, in stream mode.
   */
  #toClient(conn: Connection): void {
    if (conn.h1 !== null) {
      conn.socket = conn.h1.detach()
      conn.h1 = null
    } else {
      this.#claim(conn)
    }
    const streaming = this.#connectStreaming
    if (streaming !== undefined) {
      conn.socket?.destroy()
      conn.socket = null
    }
    const client = conn.client = new Client(this.#origin, {
      ...this.#clientOptions,
      connect: (opts, callback) => {
        const ready = conn.socket
        conn.socket = null
        // Asynchronously, as a real connector answers: undici's Client starts writing only
        // when the callback comes after its connect() returned.
        if (ready !== null && !ready.destroyed) queueMicrotask(() => callback(null, ready))
        // A socket of its own (see above), or reconnecting (the socket closed while a
        // request was being handed over): a new one.
        else (streaming ?? this.#connect)(opts, callback)
      },
    })
    client.on('drain', () => this.#free(conn))
    client.on('disconnect', () => this.#retire(conn))
    client.on('connectionError', () => this.#retire(conn))
  }

  /** The connection's Client takes its socket (on the request being sent now): the pool stops watching it. */
  #claim(conn: Connection): void {
    const socket = conn.socket as Socket
    if (conn.timer === undefined) {
      // Never watched (taken as soon as it was set up): paused for the driver, as when watched.
      socket.pause()
      return
    }
    clearTimeout(conn.timer)
    conn.timer = undefined
    socket.off('close', conn.onUnclaimedClose)
    socket.off('data', conn.onUnclaimedData)
    socket.off('error', noop)
    // Flowing while watched; the Client reads it its own way ('readable').
    socket.pause()
  }

  /**
   * An unclaimed socket waiting idle: closed after the idle timeout, and dropped if the
   * server closes it or sends anything (HTTP/1.1 servers send nothing unasked).
   */
  #watchUnclaimed(conn: Connection): void {
    if (conn.timer !== undefined) return
    const socket = conn.socket as Socket
    conn.onUnclaimedClose = () => this.#retire(conn)
    conn.onUnclaimedData = () => socket.destroy()
    socket.on('close', conn.onUnclaimedClose)
    socket.on('data', conn.onUnclaimedData)
    socket.on('error', noop)
    conn.timer = setTimeout(() => socket.destroy(), this.#idleTimeoutMs)
    conn.timer.unref()
  }

  /** A connection closed (or its Client failed to reconnect): it leaves the pool; waiting requests may need another. */
  #retire(conn: Connection): void {
    if (conn.gone) return
    conn.gone = true
    this.#connections.delete(conn)
    if (conn.idle) {
      conn.idle = false
      const i = this.#idle.indexOf(conn)
      if (i !== -1) this.#idle.splice(i, 1)
    }
    if (conn.socket !== null) {
      clearTimeout(conn.timer)
      conn.socket.destroy()
      conn.socket = null
    }
    // A Client that still holds a request (handed over as its socket closed) finishes it.
    const driver = conn.driver
    if (driver !== null) void this.#finish(driver)
    this.#grow()
    this.#settle()
  }

  // ---------------------------------------------------------------- closing

  #close(): Promise<void> {
    if (this.#closing !== null) return this.#closing
    if (this.#destroyed) return Promise.resolve()
    this.#closed = true
    const p = this.#closing = new Promise<void>((resolve) => this.#onClosed(resolve))
    this.#settle()
    return p
  }

  /** Closes a driver that left the pool, letting its request finish; `destroy()` can still cut it. */
  #finish(driver: Driver): Promise<void> {
    this.#finishing.add(driver)
    return driver.close().catch(noop).finally(() => this.#finishing.delete(driver))
  }

  #onClosed(resolve: () => void): void {
    const before = this.#whenClosed
    this.#whenClosed = () => {
      before?.()
      resolve()
    }
  }

  /** Once closing and nothing waits or is being set up: every connection closes after its request. */
  #settle(): void {
    if (!this.#closed || this.#whenClosed === null || this.#waiting.length > 0 || this.#connecting > 0) return
    const resolve = this.#whenClosed
    this.#whenClosed = null
    const conns = [...this.#connections]
    this.#connections.clear()
    this.#idle.length = 0
    void Promise.all(conns.map((c) => {
      c.gone = true
      if (c.socket !== null) {
        clearTimeout(c.timer)
        c.socket.destroy()
        c.socket = null
      }
      const driver = c.driver
      return driver === null ? Promise.resolve() : this.#finish(driver)
    })).then(resolve)
  }

  async #destroy(err: Error): Promise<void> {
    this.#closed = true
    this.#destroyed = true
    for (const w of this.#waiting.takeAll()) w.runInAsyncScope(failHandler, null, w.handler, err)
    const conns = [...this.#connections]
    this.#connections.clear()
    this.#idle.length = 0
    const finishing = [...this.#finishing]
    this.#finishing.clear()
    await Promise.all([
      ...conns.map((c) => {
        c.gone = true
        if (c.socket !== null) {
          clearTimeout(c.timer)
          c.socket.destroy()
          c.socket = null
        }
        return c.driver?.destroy(err).catch(noop)
      }),
      ...finishing.map((c) => c.destroy(err).catch(noop)),
    ])
    const resolve = this.#whenClosed
    this.#whenClosed = null
    resolve?.()
  }
}

function noop(): void {}

/**
 * The SNI undici would derive for a request that names no servername: its own, or its Host
 * header's name when that is not an IP (only for https endpoints addressed by IP without
 * cluster TLS; see `Host.servername`).
 */
function sniOf(opts: DispatchOptions | undefined): string | undefined {
  if (opts === undefined) return undefined
  const named = (opts as { servername?: unknown }).servername
  if (typeof named === 'string' && named !== '') return named
  const headers = opts.headers
  let host: unknown
  if (Array.isArray(headers)) {
    for (let i = 0; i + 1 < headers.length; i += 2) if (String(headers[i]).toLowerCase() === 'host') host = headers[i + 1]
  } else if (headers !== null && typeof headers === 'object') {
    for (const [k, v] of Object.entries(headers)) if (k.toLowerCase() === 'host') host = v
  }
  if (typeof host !== 'string') return undefined
  const name = host.startsWith('[') ? host.slice(1, host.indexOf(']')) : host.replace(/:\d+$/, '')
  return isIP(name) === 0 && name !== '' ? name : undefined
}
