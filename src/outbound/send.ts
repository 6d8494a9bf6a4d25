/**
 * The send path of a dispatcher: after admission, the route timeout starts and each try
 * goes — the cluster's breaker and thresholds admit it, the balancer picks an endpoint (one
 * not tried yet, for a retry), and the request gets its upstream headers and client span
 * and goes to the endpoint's pool. Mirrored copies (`mirror.ts`) and pass-through requests
 * take the same path. Requests the mesh refuses itself are counted here, in one place.
 */
import type { Attributes } from '@opentelemetry/api'
import type { Agent, Dispatcher } from 'undici'
import { currentContext, currentParentSpan } from '../observability/context.js'
import type { ErrorKind, MetricsRegistry, Recorder } from '../observability/metrics.js'
import type { MeshTracer } from '../observability/tracing.js'
import { Admission, type ErrorRateBreaker } from '../policy/error-rate-breaker.js'
import { OVERFLOW_HEADER } from '../response-headers.js'
import { destinationFor, requestMutationsFor } from '../router/resolve.js'
import type { Target } from '../router/route-action.js'
import type { Host } from '../upstream/host.js'
import type { OverflowReason } from '../upstream/resource-manager.js'
import { Deadlines } from './deadlines.js'
import type { Exchange, TrySender } from './exchange.js'
import type { LocalReply } from './local-reply.js'
import { replayableBody } from './replayable-body.js'
import { upstreamHeaders } from './request-headers.js'
import { PASSTHROUGH, UpstreamRequest } from './upstream-request.js'

type DispatchOptions = Dispatcher.DispatchOptions

/** Sends the exchanges of one dispatcher. */
export class SendPath implements TrySender {
  readonly #tracer: MeshTracer
  readonly #metrics: MetricsRegistry
  /** Route and per-try timeouts, one list per duration. */
  readonly #deadlines = new Deadlines()
  /** Recorder per target and endpoint, resolved once: the hot path does two WeakMap reads. */
  readonly #recorders = new WeakMap<Target, WeakMap<Host, Recorder>>()

  constructor(tracer: MeshTracer, metrics: MetricsRegistry) {
    this.#tracer = tracer
    this.#metrics = metrics
  }

  /**
   * After admission: a request that may go twice gets a replayable body, the route timeout
   * starts, and the first try goes (or the caller is answered: overflow, no healthy upstream).
   */
  send(ex: Exchange, timeoutMs: number): boolean {
    const policy = ex.retry
    if (policy !== null) {
      const body = ex.opts.upgrade != null || !policy.admits(ex.view) ? undefined : replayableBody(ex.opts.body)
      if (body === undefined) ex.retry = null
      else ex.body = body
    }
    // One clock read for the route timeout's start, the breaker and the first try.
    const now = performance.now()
    ex.startTimeout(timeoutMs > 0 ? this.#deadlines.list(timeoutMs) : undefined, now)
    return this.#next(ex, now)
  }

  nextTry(ex: Exchange): boolean {
    return this.#next(ex, performance.now())
  }

  #next(ex: Exchange, now: number): boolean {
    const t = this.#startTry(ex, now)
    if (!(t instanceof UpstreamRequest)) {
      // Answered on the next microtask: this may run inside `dispatch`.
      ex.replyLater(t)
      return false
    }
    ex.trying(t)
    return t.dispatch()
  }

  /**
   * A request the mesh refuses itself (a limit, an open breaker or a threshold, no usable
   * endpoint): counted in the target cluster's metrics as `kind`; returns `reply`.
   */
  refused(ex: Exchange, kind: ErrorKind, reply: LocalReply): LocalReply {
    const target = ex.target as Target
    const r = this.#metrics.cluster(target.clusterName, target.subset)
    r.start()
    r.fail(kind, 0)
    return reply
  }

  /**
   * A host outside the registry (Istio's PassthroughCluster): sent as it is, to its own
   * origin, but traced like any other call — a client span, `traceparent`/`tracestate`
   * replaced with this call's, the inbound request's `x-request-id` carried — as Istio's
   * sidecar does for pass-through traffic.
   */
  passThrough(ex: Exchange, agent: Agent, scheme: string, originAuthority: string): boolean {
    const opts = ex.opts
    const ctx = currentContext()
    const client = this.#tracer.startClient(ctx, currentParentSpan(ctx), ex.tracing, opts.method, passThroughAttributes(opts.method, scheme, ex.authority, originAuthority, opts.path))
    // No x-sidecarless-peer: the call leaves the mesh.
    const headers = upstreamHeaders(ex.view.caller, ex.authority, null, { trace: client, formats: client.formats, requestId: ctx?.requestId }, true)
    const t = new UpstreamRequest({
      exchange: ex,
      dest: PASSTHROUGH,
      endpoint: originAuthority,
      host: undefined,
      recorder: this.#metrics.upstream(PASSTHROUGH.clusterName, undefined, originAuthority),
      span: client.span,
      traceContext: client.dispatchContext,
      cluster: null,
      resources: null,
      breaker: null,
      trial: false,
      deadlines: undefined,
      pool: agent,
      options: keepAfterHead({ ...opts, headers }),
    })
    ex.trying(t)
    return t.dispatch()
  }

  /**
   * Prepares one try: the cluster's breaker and thresholds admit it (not a mirrored copy's),
   * the balancer picks an endpoint (one not tried yet, within the policy's draws, for a
   * retry), and the request gets its upstream headers and client span. Returns the local
   * reply instead when the try cannot go (503 overflow or no healthy upstream).
   */
  #startTry(ex: Exchange, now: number): UpstreamRequest | LocalReply {
    const target = ex.target as Target
    const cluster = target.cluster
    const resources = ex.resources
    let breaker: ErrorRateBreaker | null = null
    let trial = false
    if (resources !== null) {
      const breakers = cluster.breakers
      if (breakers !== null) {
        breaker = breakers[target.subsetIndex + 1] ?? null
        if (breaker !== null) {
          const admission = breaker.admit(now)
          if (admission === Admission.Rejected) return this.#overflow(ex, resources.overflowed('breaker_open'))
          trial = admission === Admission.Trial
        }
      }
      const overflow = resources.acquireRequest()
      if (overflow !== null) {
        breaker?.release(trial)
        return this.#overflow(ex, overflow)
      }
    }
    const members = cluster.members
    const lb = target.subsetIndex < 0 ? members.all : members.subsets[target.subsetIndex]
    const hash = ex.hash
    let host = lb?.pick(hash)
    const avoid = ex.avoid()
    if (avoid !== null && lb !== undefined) {
      // Envoy's previous_hosts predicate: draw again, a bounded number of times.
      const attempts = ex.retry?.hostSelectionAttempts ?? 0
      for (let i = 1; i < attempts && host !== undefined && avoid.includes(host); i++) host = lb.pick(hash)
    }
    if (host === undefined) {
      resources?.releaseRequest(true)
      breaker?.release(trial)
      return this.refused(ex, 'no_healthy_upstream', { status: 503, body: 'no healthy upstream', flag: 'UH', headers: ex.targetHeaders() })
    }
    const opts = ex.opts
    const view = ex.view
    // Continue the caller's trace (or start one): a new span id for this call, the request id carried.
    const ctx = currentContext()
    const client = this.#tracer.startClient(ctx, currentParentSpan(ctx), ex.tracing, opts.method, clientAttributes(ex, target, host), now)
    // A lone try (no retry policy, not a copy) is the last to read the caller's headers: no copy.
    const headers = upstreamHeaders(view.caller, ex.authority, requestMutationsFor(target, view), {
      trace: client,
      formats: client.formats,
      requestId: ctx?.requestId,
      peer: target.cluster.sendsPeer ? client.peer : undefined,
    }, ex.retry === null && !ex.shadow)
    const body = ex.body === undefined ? opts.body : ex.body.forTry()
    return new UpstreamRequest({
      exchange: ex,
      dest: destinationFor(target, view),
      endpoint: host.address.hostPort,
      host,
      recorder: this.#recorder(target, host),
      span: client.span,
      traceContext: client.dispatchContext,
      cluster: ex.shadow ? null : cluster,
      resources,
      breaker,
      trial,
      deadlines: ex.retry !== null && ex.retry.perTryTimeoutMs > 0 ? this.#deadlines.list(ex.retry.perTryTimeoutMs) : undefined,
      pool: host.pool,
      options: upstreamOptions(opts, host, ex.path, headers, body),
      started: now,
    })
  }

  /** A 503 for a request a threshold or an open breaker sheds (Envoy's `UO`). */
  #overflow(ex: Exchange, reason: OverflowReason): LocalReply {
    const headers = ex.targetHeaders()
    headers[OVERFLOW_HEADER] = reason
    return this.refused(ex, 'overflow', { status: 503, body: 'upstream connect error or disconnect/reset before headers. reset reason: overflow', flag: 'UO', headers })
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
  return keepAfterHead(up)
}

/**
 * undici closes a connection after every HEAD (against servers that send a body anyway)
 * unless the request says `reset: false`; Envoy keeps it when the response allows, as the
 * proxy does, and so does the mesh's dispatcher unless the caller chose otherwise: a closed
 * connection costs the next request a handshake (with mTLS ~1 ms of CPU on each side).
 */
function keepAfterHead(up: DispatchOptions): DispatchOptions {
  if (up.method === 'HEAD' && (up.reset === undefined || up.reset === null)) up.reset = false
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

/** OTel HTTP client span attributes of a try, built only when the span is recorded. */
function clientAttributes(ex: Exchange, target: Target, host: Host): () => Attributes {
  const resend = ex.retries
  return () => {
    const attrs: Attributes = {
      'http.request.method': ex.opts.method,
      'server.address': host.address.hostname,
      'server.port': host.address.port,
      'url.full': `${ex.view.scheme}://${ex.shadow ? ex.authority : ex.view.authority}${ex.view.fullPath}`,
      'sidecarless.cluster': target.clusterName,
      'sidecarless.endpoint': host.address.hostPort,
    }
    if (target.subset !== undefined) attrs['sidecarless.subset'] = target.subset
    if (resend > 0) attrs['http.request.resend_count'] = resend
    if (ex.shadow) attrs['sidecarless.mirror'] = true
    return attrs
  }
}
