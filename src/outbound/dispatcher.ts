/**
 * MeshDispatcher: the outbound data path as an undici Dispatcher. `dispatch` reads the
 * current snapshot once, finds the virtual host by authority and the first matching route,
 * then either answers locally (redirect, direct response, no route, no healthy upstream) or
 * picks a target and an endpoint and hands the request to that endpoint's pool.
 * Errors go to the handler, never thrown, as undici's contract asks.
 */
import { Agent, Dispatcher } from 'undici'
import { abortError, MeshError } from '../errors.js'
import { currentContext } from '../observability/context.js'
import type { MetricsRegistry } from '../observability/metrics.js'
import type { MeshTracer } from '../observability/tracing.js'
import { pickTarget, type ClusterAction } from '../router/route-action.js'
import { resolveRoute } from '../router/resolve.js'
import type { SnapshotStore } from '../snapshot/store.js'
import { admit } from './admission.js'
import { Exchange } from './exchange.js'
import { applyFault } from './fault.js'
import { toNewStyle } from './handler.js'
import { answerAtDoor, discardBody, failAtDoor } from './local-reply.js'
import { MirrorSender } from './mirror.js'
import { checkRequest } from './request-check.js'
import { OutboundView, replacedBy } from './request-headers.js'
import { SendPath } from './send.js'

type DispatchOptions = Dispatcher.DispatchOptions

/** Scheme and authority of an origin, memoised: a process talks to few origins. */
const originCache = new Map<string, readonly [scheme: string, authority: string]>()
/**
 * The last origin split, checked before the map: callers mostly repeat one origin, and
 * undici hands a fresh string each time, which the map must hash (a compare costs 40 ns less).
 */
let lastOrigin = ''
let lastSplit: readonly [string, string] | undefined

function splitOrigin(origin: DispatchOptions['origin']): readonly [string, string] | undefined {
  if (origin === undefined || origin === null) return undefined
  if (typeof origin !== 'string') return [origin.protocol.slice(0, -1), origin.host]
  if (origin === lastOrigin) return lastSplit
  let hit = originCache.get(origin)
  if (hit === undefined) {
    let url: URL
    try {
      url = new URL(origin)
    } catch {
      return undefined
    }
    hit = [url.protocol.slice(0, -1), url.host]
    if (originCache.size >= 1024) originCache.clear()
    originCache.set(origin, hit)
  }
  lastOrigin = origin
  lastSplit = hit
  return hit
}

/** Options of {@link MeshDispatcher}. */
export interface MeshDispatcherOptions {
  /** Called by `close()`/`destroy()`: the mesh closes everything it owns. */
  readonly onClose: (force: boolean) => Promise<void>
  readonly tracer: MeshTracer
  readonly metrics: MetricsRegistry
  /** xDS: see {@link AuthorityResolver}. */
  readonly resolveAuthority?: AuthorityResolver | undefined
}

/**
 * Asked when no virtual host claims a request's authority (the xDS client subscribes to its
 * Listener): `undefined` to route as usual; a promise to wait, then route once more (`true`)
 * or answer 503 `no healthy upstream` (`false`).
 */
export type AuthorityResolver = (authority: string, scheme: string) => Promise<boolean> | undefined

/**
 * An undici Dispatcher that routes every request by the mesh config. Use it with undici's
 * `request`, `stream`, `pipeline` and `fetch` (`{ dispatcher: mesh.dispatcher }`), or make it
 * global with `mesh.installGlobal()`.
 */
export class MeshDispatcher extends Dispatcher {
  readonly #store: SnapshotStore
  readonly #passThrough: Agent
  readonly #onClose: (force: boolean) => Promise<void>
  readonly #metrics: MetricsRegistry
  readonly #send: SendPath
  readonly #mirrors: MirrorSender
  readonly #resolveAuthority: AuthorityResolver | undefined // xds
  /** xds: requests routed again after a wait, so they wait at most once. */
  readonly #resolved = new WeakSet<object>() // xds
  #closed = false
  /** While the mesh drains its servers: the requests being drained may still call out. */
  #servingDrain = false
  #closing: Promise<void> | undefined

  /** @internal the mesh creates its dispatcher; users reach it as `mesh.dispatcher`. */
  constructor(store: SnapshotStore, options: MeshDispatcherOptions) {
    super()
    this.#store = store
    this.#passThrough = new Agent()
    this.#onClose = options.onClose
    this.#metrics = options.metrics
    this.#send = new SendPath(options.tracer, options.metrics)
    this.#mirrors = new MirrorSender(this.#send)
    this.#resolveAuthority = options.resolveAuthority // xds
  }

  /** True once `close()` or `destroy()` was called. */
  get closed(): boolean {
    return this.#closed
  }

  override dispatch(opts: DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    if (handler === null || typeof handler !== 'object') {
      throw new MeshError('SIDECARLESS_ERR_INVALID_ARGUMENT', 'dispatch needs a handler object')
    }
    const h = toNewStyle(handler)
    if (this.#closed && !(this.#servingDrain && currentContext() !== undefined)) {
      failAtDoor(h, new MeshError('SIDECARLESS_ERR_CLOSED', 'the mesh is closed'))
      return false
    }
    const origin = splitOrigin(opts.origin)
    if (origin === undefined || typeof opts.path !== 'string' || typeof opts.method !== 'string') {
      failAtDoor(h, new MeshError('SIDECARLESS_ERR_INVALID_URL', `cannot route a request without a valid origin and path (origin: ${String(opts.origin)})`))
      return false
    }
    // A request undici would refuse is the caller's mistake: refused here, before routing,
    // so it never reaches an endpoint's pool and never counts against an upstream.
    const snapshot = this.#store.current
    const caller = checkRequest(opts, replacedBy(snapshot.tracing.inject))
    if (caller instanceof MeshError) {
      discardBody(opts.body)
      failAtDoor(h, caller)
      return false
    }
    const [scheme, originAuthority] = origin
    const authority = caller.host ?? originAuthority

    // Route resolution is router/resolve.ts, the same function mesh.route() explains.
    const view = new OutboundView(opts.method, opts.path, authority.toLowerCase(), scheme, opts.headers, caller)
    const r = resolveRoute(snapshot, opts.method, opts.path, authority, scheme, opts.headers, undefined, view)
    if ((r.kind === 'registry_only' || r.kind === 'passthrough') && this.#awaitAuthority(opts, handler, authority, scheme)) return true // xds
    switch (r.kind) {
      case 'registry_only':
        discardBody(opts.body)
        failAtDoor(h, new MeshError('SIDECARLESS_ERR_REGISTRY_ONLY', `"${authority}" is not in the mesh registry and outboundTrafficPolicy is REGISTRY_ONLY`))
        return false
      case 'passthrough': {
        const ex = new Exchange(this.#send, opts, h, view, authority, opts.path, snapshot.tracing, null)
        if (!this.#announce(ex)) return false
        return this.#send.passThrough(ex, this.#passThrough, scheme, originAuthority)
      }
      case 'local':
        discardBody(opts.body)
        answerAtDoor(h, r.answer)
        return true
      case 'cluster': {
        const action = r.action
        // Envoy `virtual_clusters`: counted once, under its name, whatever retries happen below.
        const vc = view.virtualCluster === undefined ? null : this.#metrics.virtualCluster(r.vhost.name, view.virtualCluster)
        const path = action.rewritePath === null ? opts.path : action.rewritePath(view)
        const ex = new Exchange(this.#send, opts, h, view, action.hostRewrite ?? authority, path, snapshot.tracing, vc)
        if (!this.#announce(ex)) return false
        // The fault filter first, then the copy, then the target's limits and the tries.
        if (action.fault !== null) return applyFault(ex, action.fault, () => this.#route(ex, action))
        return this.#route(ex, action)
      }
    }
  }

  /**
   * xds: when the resolver has something to wait for, the request waits, then is dispatched
   * once more (a second miss routes as usual) or answered 503 `no healthy upstream`.
   */
  #awaitAuthority(opts: DispatchOptions, handler: Dispatcher.DispatchHandler, authority: string, scheme: string): boolean {
    if (this.#resolveAuthority === undefined || this.#resolved.has(handler)) return false
    const wait = this.#resolveAuthority(authority, scheme)
    if (wait === undefined) return false
    this.#resolved.add(handler)
    void wait.then((ok) => {
      if (ok || this.#closed) this.dispatch(opts, handler)
      else {
        discardBody(opts.body)
        answerAtDoor(toNewStyle(handler), { status: 503, body: 'no healthy upstream', flag: 'UH', headers: {} })
      }
    })
    return true
  }

  /** Hands the caller its controller, the exchange; false when the caller aborted it at once. */
  #announce(ex: Exchange): boolean {
    ex.downstream.onRequestStart?.(ex, {})
    if (!ex.aborted) return true
    // Aborted inside onRequestStart: the exchange answered with the abort already, unless
    // it could not yet (a throwing handler leaves it to us).
    if (!ex.done) ex.fail(abortError(ex.reason))
    return false
  }

  /** Mirror, target, limits, tries: the rest of a cluster route. */
  #route(ex: Exchange, action: ClusterAction): boolean {
    if (action.mirror !== null) this.#mirrors.copy(action.mirror, ex, action.timeoutMs)
    const hash = action.hash === null ? undefined : action.hash(ex.view)
    const target = pickTarget(action, hash)
    ex.target = target
    ex.hash = hash
    ex.retry = action.retry
    if (target.gate !== null) return admit(ex, target.gate, this.#send, action.timeoutMs)
    return this.#send.send(ex, action.timeoutMs)
  }

  /**
   * Stops taking requests and closes the mesh: requests in flight finish, then every pool
   * closes. Same as `mesh.close()`.
   */
  override close(): Promise<void>
  override close(callback: () => void): void
  override close(callback?: () => void): Promise<void> | void {
    const p = this.#shutdown(false)
    if (callback === undefined) return p
    void p.then(() => callback(), () => callback())
  }

  /** Closes at once: requests in flight fail. */
  override destroy(): Promise<void>
  override destroy(err: Error | null): Promise<void>
  override destroy(callback: () => void): void
  override destroy(err: Error | null, callback: () => void): void
  override destroy(a?: Error | null | (() => void), b?: () => void): Promise<void> | void {
    const callback = typeof a === 'function' ? a : b
    const p = this.#shutdown(true)
    if (callback === undefined) return p
    void p.then(() => callback(), () => callback())
  }

  /**
   * @internal while the mesh drains its servers, the closed dispatcher still takes the
   * requests made inside an inbound request (those being drained need their upstreams);
   * every other request is refused from the moment `close()` was called.
   */
  serveDrain(on: boolean): void {
    this.#servingDrain = on
  }

  /** @internal closes the pass-through agent; the mesh closes the rest. */
  async closePassThrough(force: boolean): Promise<void> {
    await (force ? this.#passThrough.destroy() : this.#passThrough.close()).catch(() => undefined)
  }

  #shutdown(force: boolean): Promise<void> {
    this.#closed = true
    // Copies are fire-and-forget; nobody waits for them.
    this.#mirrors.abortAll()
    this.#closing ??= this.#onClose(force)
    return this.#closing
  }
}
