/**
 * MeshDispatcher: the outbound data path as an undici Dispatcher. `dispatch` reads the
 * current snapshot once, finds the virtual host by authority and the first matching route,
 * then either answers locally (redirect, direct response, no route, no healthy upstream) or
 * picks a target and an endpoint and hands the request to that endpoint's pool.
 * Errors go to the handler, never thrown, as undici's contract asks.
 */
import type { Attributes } from '@opentelemetry/api'
import { Agent, Dispatcher } from 'undici'
import { currentContext, currentParentSpan } from '../observability/context.js'
import type { MetricsRegistry, Recorder } from '../observability/metrics.js'
import type { MeshTracer, TracingSettings } from '../observability/tracing.js'
import { abortError, MeshError } from '../errors.js'
import type { ClusterAction, Target } from '../router/route-action.js'
import { pickTarget } from '../router/route-action.js'
import { destinationFor, requestMutationsFor, resolveRoute } from '../router/resolve.js'
import { virtualCluster } from './virtual-cluster.js'
import type { SnapshotStore } from '../snapshot/store.js'
import type { Host } from '../upstream/host.js'
import { toNewStyle, type Handler } from './handler.js'
import { LocalController, sendLocalReply, type LocalReply } from './local-reply.js'
import type { Controller } from './handler.js'
import type { LimitSet } from '../policy/limits.js'
import { rateLimitHeaders } from '../policy/rate-limit.js'
import type { ConcurrencyLimiter } from '../policy/concurrency-limit.js'
import { OutboundView, replacedBy, upstreamHeaders, type CallerHeaders } from './request-headers.js'
import { checkRequest } from './request-check.js'
import { CLUSTER_HEADER, OVERFLOW_HEADER, SUBSET_HEADER } from './response-headers.js'
import { PASSTHROUGH, UpstreamRequest } from './upstream-request.js'
import { Deadlines, type DeadlineList } from './deadlines.js'
import { replayableBody } from './replayable-body.js'
import { RetryingRequest, type StartTry } from './retrying-request.js'
import { Admission } from '../policy/error-rate-breaker.js'
import type { OverflowReason } from '../policy/cluster-resources.js'
import { injectFault } from '../policy/fault.js' // fault/mirror
import { MirrorSender } from '../policy/mirror.js' // fault/mirror

type DispatchOptions = Dispatcher.DispatchOptions

/** Scheme and authority of an origin, memoised: a process talks to few origins. */
const originCache = new Map<string, readonly [scheme: string, authority: string]>()

function splitOrigin(origin: DispatchOptions['origin']): readonly [string, string] | undefined {
  if (origin === undefined || origin === null) return undefined
  if (typeof origin !== 'string') return [origin.protocol.slice(0, -1), origin.host]
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
  return hit
}

/** Options of {@link MeshDispatcher}. */
export interface MeshDispatcherOptions {
  /** Called by `close()`/`destroy()`: the mesh closes everything it owns. */
  readonly onClose: (force: boolean) => Promise<void>
  readonly tracer: MeshTracer
  readonly metrics: MetricsRegistry
}

/**
 * An undici Dispatcher that routes every request by the mesh config. Use it with undici's
 * `request`, `stream`, `pipeline` and `fetch` (`{ dispatcher: mesh.dispatcher }`), or make it
 * global with `mesh.installGlobal()`.
 */
export class MeshDispatcher extends Dispatcher {
  readonly #store: SnapshotStore
  readonly #passThrough: Agent
  readonly #onClose: (force: boolean) => Promise<void>
  readonly #tracer: MeshTracer
  readonly #metrics: MetricsRegistry
  /** Recorder per target and endpoint, resolved once: the hot path does two WeakMap reads. */
  readonly #recorders = new WeakMap<Target, WeakMap<Host, Recorder>>()
  readonly #deadlines = new Deadlines()
  readonly #mirrors: MirrorSender // fault/mirror
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
    this.#tracer = options.tracer
    this.#metrics = options.metrics
    this.#mirrors = new MirrorSender(options.metrics, options.tracer) // fault/mirror
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
      fail(h, new MeshError('SIDECARLESS_ERR_CLOSED', 'the mesh is closed'))
      return false
    }
    const origin = splitOrigin(opts.origin)
    if (origin === undefined || typeof opts.path !== 'string' || typeof opts.method !== 'string') {
      fail(h, new MeshError('SIDECARLESS_ERR_INVALID_URL', `cannot route a request without a valid origin and path (origin: ${String(opts.origin)})`))
      return false
    }
    // A request undici would refuse is the caller's mistake: refused here, before routing,
    // so it never reaches an endpoint's pool and never counts against an upstream.
    const snapshot = this.#store.current
    const caller = checkRequest(opts, replacedBy(snapshot.tracing.inject))
    if (caller instanceof MeshError) {
      discardBody(opts.body)
      fail(h, caller)
      return false
    }
    const [scheme, originAuthority] = origin
    const authority = caller.host ?? originAuthority

    // Route resolution is router/resolve.ts, the same function mesh.route() explains.
    const view = new OutboundView(opts.method, opts.path, authority.toLowerCase(), scheme, opts.headers, caller)
    const r = resolveRoute(snapshot, opts.method, opts.path, authority, scheme, opts.headers, undefined, view)
    switch (r.kind) {
      case 'registry_only':
        discardBody(opts.body)
        fail(h, new MeshError('SIDECARLESS_ERR_REGISTRY_ONLY', `"${authority}" is not in the mesh registry and outboundTrafficPolicy is REGISTRY_ONLY`))
        return false
      case 'passthrough':
        return this.#dispatchPassThrough(opts, h, scheme, originAuthority, caller, snapshot.tracing)
      case 'local':
        discardBody(opts.body)
        localReply(h, r.answer)
        return true
      case 'cluster':
        return this.#dispatchToCluster(opts, virtualCluster(h, r, this.#metrics), view, r.action, authority, snapshot.tracing)
    }
  }

  #dispatchToCluster(opts: DispatchOptions, h: Handler, view: OutboundView, action: ClusterAction, authority: string, tracing: TracingSettings, faulted = false): boolean {
    // fault/mirror (policy/fault.ts, policy/mirror.ts): the fault filter first, then the copy.
    if (action.fault !== null && !faulted) return injectFault(action.fault, opts, h, (name) => view.header(name), (next) => this.#dispatchToCluster(opts, next, view, action, authority, tracing, true))
    if (action.mirror !== null) this.#mirrors.copy(action.mirror, opts, view, action.hostRewrite ?? authority, action.rewritePath === null ? opts.path : action.rewritePath(view), action.timeoutMs, tracing)
    // fault/mirror end
    const hash = action.hash === null ? undefined : action.hash(view)
    const target = pickTarget(action, hash)
    if (action.limits === null && target.clusterLimits === null) {
      return this.#send(opts, h, view, action, target, hash, authority, tracing, null, null)
    }
    return this.#gate(opts, h, view, action, target, hash, authority, tracing)
  }

  /**
   * The outbound limits of the route and of the target's cluster. Like Envoy, the mesh
   * answers a refusal itself with an ordinary response, never an error: a rate limit
   * (local bucket or shared quota) is 429 with flag `RL`; a full bulkhead (or its queue
   * wait expiring) is 503 with flag `UO` and `x-sidecarless-overflow: concurrency_limit`.
   * A shared quota and a bulkhead queue may make the request wait; the caller can abort it
   * meanwhile (`SIDECARLESS_ERR_ABORTED`).
   */
  #gate(opts: DispatchOptions, h: Handler, view: OutboundView, action: ClusterAction, target: Target, hash: number | undefined, authority: string, tracing: TracingSettings): boolean {
    const sets = action.limits === null ? [target.clusterLimits as LimitSet] : target.clusterLimits === null ? [action.limits] : [action.limits, target.clusterLimits]
    const now = performance.now()
    for (const set of sets) {
      if (set.rate === null) continue
      const verdict = set.rate.check(view, now)
      if (!verdict.allowed) {
        discardBody(opts.body)
        const headers = this.#refused(target, 'rate_limited')
        if (set.responseHeaders) for (const [k, v] of rateLimitHeaders(verdict)) headers[k] = v
        localReply(h, { status: 429, body: 'local_rate_limited', flag: 'RL', headers })
        return true
      }
    }
    const gate = new GateController(h, opts.body)
    h.onRequestStart?.(gate, {})
    const held: ConcurrencyLimiter[] = []
    const refuse = (reply: LocalReply): void => {
      for (const c of held) c.release()
      held.length = 0
      discardBody(opts.body)
      if (gate.aborted) return
      gate.settle()
      sendLocalReply(h, gate, reply)
    }
    gate.onAbort = () => {
      for (const c of held) c.release()
      held.length = 0
    }
    const bulkheads = sets.flatMap((s) => (s.concurrency === null ? [] : [{ name: s.name, limiter: s.concurrency }]))
    const acquireNext = (i: number): void => {
      if (gate.aborted) return
      if (i === bulkheads.length) {
        gate.onAbort = null
        this.#send(opts, h, view, action, target, hash, authority, tracing, held.length === 0 ? null : held, gate)
        return
      }
      const b = bulkheads[i] as { name: string; limiter: ConcurrencyLimiter }
      if (b.limiter.tryAcquire()) {
        held.push(b.limiter)
        acquireNext(i + 1)
        return
      }
      const ticket = b.limiter.enqueue(() => {
        held.push(b.limiter)
        acquireNext(i + 1)
      }, (reason) => {
        const headers = this.#refused(target, 'overflow')
        headers[OVERFLOW_HEADER] = 'concurrency_limit'
        refuse({ status: 503, body: reason === 'timeout' ? 'concurrency limit queue timeout' : 'concurrency limit exceeded', flag: 'UO', headers })
      })
      // No ticket: the limiter settled at once and already called one of the two callbacks.
      if (ticket === undefined) return
      gate.onAbort = () => {
        ticket.cancel()
        for (const c of held) c.release()
        held.length = 0
      }
    }
    const globals = sets.filter((s) => s.global !== null)
    if (globals.length === 0) {
      acquireNext(0)
      return true
    }
    void Promise.all(globals.map((s) => (s.global as NonNullable<LimitSet['global']>).check(s.globalKey(view), s.rate === null ? undefined : () => true)))
      .then((answers) => {
        if (gate.aborted) return
        if (answers.every(Boolean)) acquireNext(0)
        else refuse({ status: 429, body: 'rate_limited', flag: 'RL', headers: this.#refused(target, 'rate_limited') })
      })
    return true
  }

  /** Counts a request a limit refused in the target cluster's metrics; returns the reply's headers. */
  #refused(target: Target, kind: 'rate_limited' | 'overflow'): Record<string, string | string[] | undefined> {
    const r = this.#metrics.cluster(target.clusterName, target.subset)
    r.start()
    r.fail(kind, 0)
    return targetHeaders(target)
  }

  #send(opts: DispatchOptions, h: Handler, view: OutboundView, action: ClusterAction, target: Target, hash: number | undefined, authority: string, tracing: TracingSettings, held: ConcurrencyLimiter[] | null, gate: GateController | null): boolean {
    const policy = action.retry
    const body = policy === null || opts.upgrade != null || !policy.admits(view) ? undefined : replayableBody(opts.body)
    if (policy !== null && body !== undefined) {
      const perTry = policy.perTryTimeoutMs > 0 ? this.#deadlines.list(policy.perTryTimeoutMs) : undefined
      const attempts = policy.hostSelectionAttempts
      const start: StartTry = (downstream, avoid, tryBody, resend) =>
        this.#startTry(opts, downstream, view, action, target, hash, authority, tracing, null, perTry, avoid, attempts, tryBody, resend)
      const retrying = new RetryingRequest(h, policy, start, body, target.cluster.resources, target.clusterName, target.subset,
        action.timeoutMs > 0 ? this.#deadlines.list(action.timeoutMs) : undefined, held)
      if (gate === null) h.onRequestStart?.(retrying, {})
      else gate.next = retrying
      return retrying.begin()
    }
    const t = this.#startTry(opts, h, view, action, target, hash, authority, tracing, held, action.timeoutMs > 0 ? this.#deadlines.list(action.timeoutMs) : undefined, null, 0, opts.body, 0)
    if (!(t instanceof UpstreamRequest)) {
      if (held !== null) for (const c of held) c.release()
      discardBody(opts.body)
      if (gate === null) localReply(h, t)
      else {
        gate.settle()
        sendLocalReply(h, gate, t)
      }
      return true
    }
    if (gate === null) h.onRequestStart?.(t, {})
    else gate.next = t
    return t.dispatch()
  }

  /**
   * Prepares one try: the cluster's breaker and thresholds admit it, the balancer picks an
   * endpoint (one not in `avoid`, within `attempts` draws, for a retry), and the request
   * gets its upstream headers and client span. Returns the local reply instead when the try
   * cannot go (503 overflow or no healthy upstream).
   */
  #startTry(opts: DispatchOptions, downstream: Handler, view: OutboundView, action: ClusterAction, target: Target, hash: number | undefined, authority: string, tracing: TracingSettings, held: ConcurrencyLimiter[] | null, deadlines: DeadlineList | undefined, avoid: readonly Host[] | null, attempts: number, body: unknown, resend: number): UpstreamRequest | LocalReply {
    const cluster = target.cluster
    const breaker = cluster.breakers === null ? null : cluster.breakers[target.subsetIndex + 1] ?? null
    let trial = false
    if (breaker !== null) {
      const admission = breaker.admit(performance.now())
      if (admission === Admission.Rejected) return this.#overflow(target, 'breaker_open')
      trial = admission === Admission.Trial
    }
    const overflow = cluster.resources.admit()
    if (overflow !== null) {
      breaker?.release(trial)
      return this.#overflow(target, overflow)
    }
    const members = cluster.members
    const lb = target.subsetIndex < 0 ? members.all : members.subsets[target.subsetIndex]
    let host = lb?.pick(hash)
    if (avoid !== null && lb !== undefined) {
      // Envoy's previous_hosts predicate: draw again, a bounded number of times.
      for (let i = 1; i < attempts && host !== undefined && avoid.includes(host); i++) host = lb.pick(hash)
    }
    if (host === undefined) {
      breaker?.release(trial)
      const r = this.#metrics.cluster(target.clusterName, target.subset)
      r.start()
      r.fail('no_healthy_upstream', 0)
      return { status: 503, body: 'no healthy upstream', flag: 'UH', headers: targetHeaders(target) }
    }
    // Continue the caller's trace (or start one): a new span id for this call, the request id carried.
    const ctx = currentContext()
    const parentSpan = currentParentSpan(ctx)
    const client = this.#tracer.startClient(ctx, parentSpan, tracing, opts.method, clientAttributes(opts.method, authority, view, target, host, resend))
    // A lone try (no retry policy) is the last to read the caller's headers: no copy.
    const headers = upstreamHeaders(view.caller, action.hostRewrite ?? authority, requestMutationsFor(target, view), {
      trace: client,
      formats: client.formats,
      requestId: ctx?.requestId,
      peer: client.peer,
    }, !(downstream instanceof RetryingRequest))
    const path = action.rewritePath === null ? opts.path : action.rewritePath(view)
    const request = new UpstreamRequest(downstream, destinationFor(target, view), host.address.hostPort, host, deadlines, this.#recorder(target, host), client.span, held, cluster)
    request.traceContext = client.dispatchContext // [otel] tracing.spans
    if (breaker !== null) {
      request.breaker = breaker
      request.trial = trial
    }
    request.prepare(host.pool, upstreamOptions(opts, host, path, headers, body))
    return request
  }

  /** A 503 for a request a threshold or an open breaker sheds (Envoy's `UO`). */
  #overflow(target: Target, reason: OverflowReason): LocalReply {
    target.cluster.resources.overflows[reason]++
    const r = this.#metrics.cluster(target.clusterName, target.subset)
    r.start()
    r.fail('overflow', 0)
    const headers = targetHeaders(target)
    headers[OVERFLOW_HEADER] = reason
    return { status: 503, body: 'upstream connect error or disconnect/reset before headers. reset reason: overflow', flag: 'UO', headers }
  }

  #recorder(target: Target, host: Host): Recorder {
    let byHost = this.#recorders.get(target)
    if (byHost === undefined) {
      byHost = new WeakMap()
      this.#recorders.set(target, byHost)
    }
    let r = byHost.get(host)
    if (r === undefined) {
      r = this.#metrics.upstream(target.clusterName, target.subset, host.address.hostPort)
      byHost.set(host, r)
    }
    return r
  }

  /**
   * A host outside the registry (Istio's PassthroughCluster): sent as it is, to its own
   * origin, but traced like any other call — a client span, `traceparent`/`tracestate`
   * replaced with this call's, the inbound request's `x-request-id` carried — as Istio's
   * sidecar does for pass-through traffic.
   */
  #dispatchPassThrough(opts: DispatchOptions, h: Handler, scheme: string, originAuthority: string, caller: CallerHeaders, tracing: TracingSettings): boolean {
    const authority = caller.host ?? originAuthority
    const ctx = currentContext()
    const client = this.#tracer.startClient(ctx, currentParentSpan(ctx), tracing, opts.method, passThroughAttributes(opts.method, scheme, authority, originAuthority, opts.path))
    // No x-sidecarless-peer: the call leaves the mesh.
    const headers = upstreamHeaders(caller, authority, null, { trace: client, formats: client.formats, requestId: ctx?.requestId }, true)
    const request = new UpstreamRequest(h, PASSTHROUGH, originAuthority, undefined, undefined, this.#metrics.upstream(PASSTHROUGH.clusterName, undefined, originAuthority), client.span)
    request.traceContext = client.dispatchContext // [otel] tracing.spans
    h.onRequestStart?.(request, {})
    return this.#passThrough.dispatch({ ...opts, headers }, request)
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
    this.#mirrors.abortAll() // fault/mirror: copies are fire-and-forget; nobody waits for them
    this.#closing ??= this.#onClose(force)
    return this.#closing
  }
}

/**
 * The caller's options with origin, path and headers replaced. (An object inheriting from
 * the caller's, instead of a copy, was measured 3× slower: undici's reads of inherited
 * fields miss V8's inline caches.)
 */
function upstreamOptions(opts: DispatchOptions, host: Host, path: string, headers: DispatchOptions['headers'], body: unknown): DispatchOptions {
  const up: DispatchOptions & { servername?: string } = { ...opts, origin: host.address.origin, path, headers }
  if (body !== opts.body) up.body = body as DispatchOptions['body']
  if (host.servername !== undefined) up.servername = host.servername
  return up
}

/** OTel HTTP client span attributes of a pass-through call, built only when the span is recorded. */
function passThroughAttributes(method: string, scheme: string, authority: string, originAuthority: string, path: string): () => Attributes {
  return () => {
    const at = originAuthority.lastIndexOf(':')
    const bracket = originAuthority.lastIndexOf(']')
    const hasPort = at > bracket && at !== -1
    return {
      'http.request.method': method,
      'server.address': hasPort ? originAuthority.slice(0, at) : originAuthority,
      'server.port': hasPort ? Number(originAuthority.slice(at + 1)) : scheme === 'https' ? 443 : 80,
      'url.full': `${scheme}://${authority}${path}`,
      'sidecarless.cluster': PASSTHROUGH.clusterName,
    }
  }
}

/** OTel HTTP client span attributes, built only when the span is recorded. */
function clientAttributes(method: string, authority: string, view: OutboundView, target: Target, host: Host, resend: number): () => Attributes {
  return () => {
    const attrs: Attributes = {
      'http.request.method': method,
      'server.address': host.address.hostname,
      'server.port': host.address.port,
      'url.full': `${view.scheme}://${authority}${view.fullPath}`,
      'sidecarless.cluster': target.clusterName,
      'sidecarless.endpoint': host.address.hostPort,
    }
    if (target.subset !== undefined) attrs['sidecarless.subset'] = target.subset
    if (resend > 0) attrs['http.request.resend_count'] = resend
    return attrs
  }
}

function targetHeaders(target: Target): Record<string, string | string[] | undefined> {
  const headers: Record<string, string> = { [CLUSTER_HEADER]: target.clusterName }
  if (target.subset !== undefined) headers[SUBSET_HEADER] = target.subset
  return headers
}

/**
 * The controller a caller holds while its request waits at the limits: an abort there gives
 * up the wait (the caller gets `SIDECARLESS_ERR_ABORTED` at once); once the request is sent,
 * the controller forwards to the upstream request.
 */
class GateController implements Controller {
  next: Controller | null = null
  onAbort: (() => void) | null = null
  rawHeaders: Buffer[] | null = null
  readonly #handler: Handler
  #body: unknown
  #aborted = false
  #settled = false
  #paused = false
  #reason: Error | null = null

  constructor(handler: Handler, body: unknown) {
    this.#handler = handler
    this.#body = body
  }

  get aborted(): boolean {
    return this.next?.aborted ?? this.#aborted
  }

  get paused(): boolean {
    return this.next?.paused ?? this.#paused
  }

  get reason(): Error | null {
    return this.next?.reason ?? this.#reason
  }

  abort(reason: Error): void {
    if (this.next !== null) {
      this.next.abort(reason)
      return
    }
    if (this.#aborted) return
    this.#aborted = true
    this.#reason = reason
    // Being answered locally: the reply sees the abort and ends the request with it.
    if (this.#settled) return
    this.onAbort?.()
    this.onAbort = null
    discardBody(this.#body)
    this.#body = undefined
    this.#handler.onResponseError?.(this, abortError(reason))
  }

  /** The wait is over and the mesh answers the request itself (a local reply follows). */
  settle(): void {
    this.#settled = true
    this.onAbort = null
  }

  pause(): void {
    this.#paused = true
    this.next?.pause()
  }

  resume(): void {
    this.#paused = false
    this.next?.resume()
  }
}

/** Answers a request locally, on the next microtask (never inside `dispatch`). */
function localReply(h: Handler, reply: LocalReply): void {
  const controller = new LocalController()
  h.onRequestStart?.(controller, {})
  queueMicrotask(() => {
    if (!controller.aborted) sendLocalReply(h, controller, reply)
    else h.onResponseError?.(controller, abortError(controller.reason))
  })
}

/** Fails a request with a coded error, on the next microtask. */
function fail(h: Handler, err: Error): void {
  queueMicrotask(() => h.onResponseError?.(new LocalController(), err))
}

/** A request answered locally never sends its body: release a streaming one. */
function discardBody(body: unknown): void {
  if (body === null || typeof body !== 'object') return
  const b = body as { destroy?: () => void; resume?: () => void }
  if (typeof b.resume === 'function' && typeof b.destroy === 'function') b.destroy()
}
