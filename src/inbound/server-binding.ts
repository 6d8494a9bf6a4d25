/**
 * What the mesh keeps per wrapped server: the pipeline its requests run through (swappable,
 * so an app's explicit `mesh.wrap()` can take a server over from the register hook, and a
 * server created while the register hook had no mesh yet gets one later), the responses
 * and tunnels in flight, and the drain.
 *
 * The drain follows Envoy's: from its start every response says `connection: close` (those
 * in flight too, when their headers are not out yet) and idle keep-alive connections are
 * closed at once, each busy one as it falls idle; after the delay the server stops
 * accepting; requests in flight get the timeout to finish, then their connections are cut.
 *
 * A {@link ServerSet} holds a binding only while its server listens (from `listening` to
 * `close`): a listening server is kept alive by its handle anyway, so the sets never keep
 * a server the app dropped.
 *
 * @module
 */
import type http from 'node:http'
import type https from 'node:https'
import type { AddressInfo } from 'node:net'
import type { Duplex } from 'node:stream'
import type { InboundPipeline } from './pipeline.js'
import { watchInFlight, type InFlightResponses } from './response-close.js'

/** A server the mesh can wrap: node:http or node:https. */
export type WrappableServer = http.Server | https.Server

/** How long the drain waits, in milliseconds. */
export interface DrainTimes {
  /** How long the servers keep accepting (each request told `connection: close`). */
  readonly delayMs: number
  /** How long requests in flight get, once the servers stopped accepting, before they are cut. */
  readonly timeoutMs: number
}

const SLOT = Symbol('sidecarless.inFlightSlot')

type Slotted = http.ServerResponse & { [SLOT]?: number | undefined }

/**
 * A server's responses in flight: an array, each response knowing its slot, so adding and
 * removing allocate nothing (a Set rehashes as it shrinks, which a busy server does on
 * nearly every response).
 */
class InFlight implements InFlightResponses {
  readonly #list: Slotted[] = []

  add(res: http.ServerResponse): void {
    const r = res as Slotted
    if (r[SLOT] !== undefined) return
    r[SLOT] = this.#list.length
    this.#list.push(r)
  }

  delete(res: http.ServerResponse): void {
    const r = res as Slotted
    const slot = r[SLOT]
    if (slot === undefined || this.#list[slot] !== r) return
    r[SLOT] = undefined
    const last = this.#list.pop() as Slotted
    if (last === r) return
    this.#list[slot] = last
    last[SLOT] = slot
  }

  [Symbol.iterator](): Iterator<http.ServerResponse> {
    return this.#list[Symbol.iterator]()
  }
}

/** After the timeout cut every connection, how long to wait for the server's `close` at most. */
const CLOSE_AFTER_CUT_MS = 1000

/** The per-server state of a wrapped server. */
export class ServerBinding {
  /** Where requests run; `null` while the register hook has no mesh yet (requests pass through). */
  pipeline: InboundPipeline | null
  /** Wrapped by the register hook (not by the app): an explicit `mesh.wrap()` takes it over. */
  implicit: boolean
  readonly server: WrappableServer
  /** Ends connections still in their first byte or TLS handshake (set by the wrap). */
  closePending: () => void = () => undefined
  /** The sets tracking this server while it listens: its mesh's and the process's. */
  readonly #sets = new Set<ServerSet>()
  #owner: ServerSet | null = null
  readonly #active = new InFlight()
  readonly #tunnels = new Set<Duplex>()
  #listening = false
  #draining = false
  /** The server's keep-alive timeouts before the drain shortened them (restored on `close`). */
  #keepAliveTimeout: number | undefined
  #keepAliveTimeoutBuffer: number | undefined
  #drained: Promise<void> | undefined
  readonly #closeWaiters = new Set<() => void>()

  constructor(server: WrappableServer, pipeline: InboundPipeline | null, implicit: boolean) {
    this.server = server
    this.pipeline = pipeline
    this.implicit = implicit
    this.#listening = server.listening
  }

  /** True once a drain began, or the app called `server.close()`. */
  get draining(): boolean {
    return this.#draining
  }

  /** `host:port` the server listens on, when it does. */
  get address(): string | undefined {
    const a: AddressInfo | string | null = this.server.address()
    if (a === null) return undefined
    if (typeof a === 'string') return a
    return a.family === 'IPv6' ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`
  }

  /**
   * Makes `owner` (a mesh's set) the one tracking this server, replacing the previous
   * owner's, and keeps `shared` (the process's set) tracking it too.
   */
  ownBy(owner: ServerSet | null, shared: ServerSet): void {
    if (this.#owner !== owner) {
      if (this.#owner !== null) {
        this.#owner.delete(this)
        this.#sets.delete(this.#owner)
      }
      this.#owner = owner
      if (owner !== null) this.#sets.add(owner)
    }
    this.#sets.add(shared)
    if (this.#listening) for (const set of this.#sets) set.add(this)
  }

  /** The server emitted `listening`. */
  listening(): void {
    this.#listening = true
    for (const set of this.#sets) set.add(this)
  }

  /** The server emitted `close`: it neither listens nor has connections. */
  closed(): void {
    this.#listening = false
    // A server may listen again after a close: its keep-alive timeout is its own again.
    if (this.#keepAliveTimeout !== undefined) this.server.keepAliveTimeout = this.#keepAliveTimeout
    if (this.#keepAliveTimeoutBuffer !== undefined) (this.server as { keepAliveTimeoutBuffer?: number }).keepAliveTimeoutBuffer = this.#keepAliveTimeoutBuffer
    this.#keepAliveTimeout = undefined
    this.#keepAliveTimeoutBuffer = undefined
    for (const set of this.#sets) set.delete(this)
    for (const resolve of this.#closeWaiters) resolve()
    this.#closeWaiters.clear()
  }

  /** A request reached the server (`request`, `checkContinue`, `checkExpectation`). */
  admit(res: http.ServerResponse): void {
    // node writes `Connection: close` and ends the connection after this response.
    if (this.#draining) res.shouldKeepAlive = false
    this.#active.add(res)
    watchInFlight(res, this.#active)
  }

  /** An upgrade or CONNECT socket: not the http server's any more, but its close waits for it. */
  tunnel(socket: Duplex): void {
    this.#tunnels.add(socket)
    socket.once('close', () => this.#tunnels.delete(socket))
  }

  /**
   * The graceful part of a drain, also run when the app calls `server.close()` itself:
   * responses not started yet say `connection: close`, idle connections close.
   */
  beginDrain(): void {
    if (this.#draining) return
    this.#draining = true
    for (const res of this.#active) if (!res.headersSent) res.shouldKeepAlive = false
    // A response whose headers already promised keep-alive: node arms the connection's idle
    // timer with the server's keepAliveTimeout when it ends, so 1 ms closes the connection
    // as soon as it falls idle — node's own check, which a request already arriving resets.
    // (Closing idle connections on every response instead would, on Node 26, also close
    // connections just accepted during `delay`, which count as idle before their first byte.)
    this.#keepAliveTimeout ??= this.server.keepAliveTimeout
    this.server.keepAliveTimeout = 1
    // Newer Node versions may add a buffer to that timer; the drain wants none.
    const buffered = this.server as { keepAliveTimeoutBuffer?: number }
    if (typeof buffered.keepAliveTimeoutBuffer === 'number') {
      this.#keepAliveTimeoutBuffer ??= buffered.keepAliveTimeoutBuffer
      buffered.keepAliveTimeoutBuffer = 0
    }
    this.server.closeIdleConnections()
  }

  /** Drains the server (once; later calls share the first drain). Resolves when it closed. */
  drain(times: DrainTimes): Promise<void> {
    this.#drained ??= this.#drain(times)
    return this.#drained
  }

  async #drain(times: DrainTimes): Promise<void> {
    this.beginDrain()
    if (!this.#listening) return
    const closed = new Promise<void>((resolve) => this.#closeWaiters.add(resolve))
    if (times.delayMs > 0) await within(closed, times.delayMs)
    if (this.server.listening) this.server.close()
    if (await within(closed, times.timeoutMs)) return
    // Requests still in flight are cut, as Envoy does when its drain time is over.
    this.server.closeAllConnections()
    for (const socket of this.#tunnels) socket.destroy()
    this.closePending()
    if (!(await within(closed, CLOSE_AFTER_CUT_MS))) this.closed()
  }
}

/** The servers a mesh (or the process) has wrapped, while they listen. */
export class ServerSet {
  readonly #bindings = new Set<ServerBinding>()

  /** @internal */
  add(binding: ServerBinding): void {
    this.#bindings.add(binding)
  }

  /** @internal */
  delete(binding: ServerBinding): void {
    this.#bindings.delete(binding)
  }

  /** How many servers listen (or are still closing). */
  get size(): number {
    return this.#bindings.size
  }

  /** `host:port` of each listening server. */
  addresses(): string[] {
    const out: string[] = []
    for (const b of this.#bindings) {
      const a = b.address
      if (a !== undefined) out.push(a)
    }
    return out
  }

  /** Drains every server; resolves when all closed. */
  async drain(times: DrainTimes): Promise<void> {
    await Promise.all([...this.#bindings].map((b) => b.drain(times)))
  }
}

/** Resolves true when `p` settles within `ms`, false when the time ran out (no timer is left behind). */
function within(p: Promise<void>, ms: number): Promise<boolean> {
  return new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => resolve(false), ms)
    void p.then(() => {
      clearTimeout(timer)
      resolve(true)
    })
  })
}
