/**
 * Request mirroring (Envoy `RouteAction.request_mirror_policies`, Istio `mirror`): a
 * sampled share of a route's requests is copied, fire-and-forget, to a shadow cluster
 * (or subset) through that cluster's load balancer and endpoint pools.
 *
 * The copy never touches the original request: it is sent once (no retries), its response
 * body is read and discarded, its errors are swallowed (counted in the shadow cluster's
 * metrics, like any request to it), and nothing here throws or leaves a rejection. The
 * copy's Host is the original authority (after `hostRewrite`) with `-shadow` appended to
 * its host part (`reviews:9080` → `reviews-shadow:9080`); it carries the route's header
 * mutations and the caller's trace (a client span of its own, in the same trace).
 *
 * Bounds: at most `defaults.mirrorMaxInFlight` copies of one route in flight (beyond it,
 * copies are skipped and counted); each copy ends at the route timeout; `close()` of the
 * mesh aborts copies still in flight. Only replayable bodies are mirrored (none, a string,
 * a Buffer or Uint8Array): a streaming body can be read once, by the original request, so
 * such requests are not mirrored and are counted as skipped.
 *
 * The copy is taken when the request is routed, after the fault filter (an aborted request
 * is not mirrored; a delayed one is mirrored after its delay) and before the route and
 * cluster limits of the original decide. The shadow cluster's own limits do not apply to
 * copies: the in-flight bound is what protects this process.
 */
import type { Attributes, Span } from '@opentelemetry/api'
import type { Dispatcher } from 'undici'
import { defaults } from '../config/defaults.js'
import { MeshError } from '../errors.js'
import { currentContext, currentParentSpan } from '../observability/context.js'
import type { ErrorKind, MetricsRegistry, Recorder } from '../observability/metrics.js'
import { MeshTracer, type TracingSettings } from '../observability/tracing.js'
import type { RequestMirrorPolicy } from '../config/types.js'
import type { Controller, Handler } from '../outbound/handler.js'
import { Deadlines, type DeadlineList, type Expirable } from '../outbound/deadlines.js'
import { upstreamFailureText } from '../outbound/local-reply.js'
import { upstreamHeaders, type OutboundView } from '../outbound/request-headers.js'
import type { HeaderMutations } from '../router/header-mutations.js'
import type { Cluster } from '../upstream/cluster.js'
import type { Host } from '../upstream/host.js'

type DispatchOptions = Dispatcher.DispatchOptions
type HeaderObject = Record<string, string | string[] | undefined>

/** One compiled mirror destination. */
export interface MirrorTarget {
  readonly cluster: Cluster
  readonly clusterName: string
  /** Index into `cluster.members.subsets`, or -1 for the whole cluster. */
  readonly subsetIndex: number
  readonly subset: string | undefined
  /** Percent of requests copied here (0–100). */
  readonly percentage: number
  /** The route's and virtual host's request mutations, applied to the copy too. */
  readonly requestMutations: HeaderMutations | null
}

/** Counters of one route's mirrors. */
export interface MirrorStats {
  /** Copies sent (their outcome counts in the shadow cluster's metrics). */
  readonly mirrored: number
  /** Copies not made because the request body streams (cannot be replayed). */
  readonly skippedBody: number
  /** Copies not made because `mirrorMaxInFlight` copies of this route were in flight. */
  readonly skippedOverflow: number
  /** Copies in flight now. */
  readonly inFlight: number
}

/** The mirror policies of one route, compiled. */
export class MirrorPolicy {
  readonly targets: readonly MirrorTarget[]
  readonly maxInFlight: number
  inFlight = 0
  mirrored = 0
  skippedBody = 0
  skippedOverflow = 0

  constructor(targets: readonly MirrorTarget[], maxInFlight: number = defaults.mirrorMaxInFlight) {
    this.targets = Object.freeze([...targets])
    this.maxInFlight = maxInFlight
  }

  /** The counters, read at one moment. */
  stats(): MirrorStats {
    return { mirrored: this.mirrored, skippedBody: this.skippedBody, skippedOverflow: this.skippedOverflow, inFlight: this.inFlight }
  }
}

/** Compiles a route's mirror policies; `null` when it has none. Validation checked the names. */
export function compileMirror(
  policies: readonly RequestMirrorPolicy[] | undefined,
  clusters: ReadonlyMap<string, Cluster>,
  requestMutations: HeaderMutations | null,
): MirrorPolicy | null {
  if (policies === undefined || policies.length === 0) return null
  const targets: MirrorTarget[] = []
  for (const p of policies) {
    const cluster = clusters.get(p.cluster)
    if (cluster === undefined) continue
    targets.push(Object.freeze({
      cluster,
      clusterName: cluster.name,
      subsetIndex: p.subset === undefined ? -1 : cluster.subsetNames.indexOf(p.subset),
      subset: p.subset,
      percentage: p.percentage ?? defaults.mirrorPercentage,
      requestMutations,
    }))
  }
  return targets.length === 0 ? null : new MirrorPolicy(targets)
}

/** Envoy's shadow host: `-shadow` appended to the host part, the port kept. */
export function shadowAuthority(authority: string): string {
  const close = authority.lastIndexOf(']')
  const colon = authority.lastIndexOf(':')
  if (colon > close && colon !== -1) return `${authority.slice(0, colon)}-shadow${authority.slice(colon)}`
  return `${authority}-shadow`
}

/** Whether undici can send `body` twice: nothing, a string, or bytes. */
export function isReplayableBody(body: unknown): boolean {
  return body === undefined || body === null || typeof body === 'string' || body instanceof Uint8Array
}

/** Sends the copies of one dispatcher's requests. */
export class MirrorSender {
  readonly #metrics: MetricsRegistry
  readonly #tracer: MeshTracer
  readonly #deadlines = new Deadlines()
  readonly #live = new Set<ShadowRequest>()
  readonly #recorders = new WeakMap<MirrorTarget, Map<string, Recorder>>()

  constructor(metrics: MetricsRegistry, tracer: MeshTracer) {
    this.#metrics = metrics
    this.#tracer = tracer
  }

  /**
   * Copies the request to each of `policy`'s targets that its draw selects. Never throws,
   * never waits. `authority` is what the original request sends as Host (after
   * `hostRewrite`); `path` the path it sends (after rewrites).
   */
  copy(policy: MirrorPolicy, opts: DispatchOptions, view: OutboundView, authority: string, path: string, timeoutMs: number, tracing: TracingSettings): void {
    try {
      for (const t of policy.targets) {
        if (t.percentage < 100 && !(t.percentage > 0 && Math.random() * 100 < t.percentage)) continue
        if (!isReplayableBody(opts.body) || opts.upgrade !== undefined && opts.upgrade !== null) {
          policy.skippedBody++
          continue
        }
        if (policy.inFlight >= policy.maxInFlight) {
          policy.skippedOverflow++
          continue
        }
        this.#send(policy, t, opts, view, authority, path, timeoutMs, tracing)
      }
    } catch {
      // A copy must never hurt the original; whatever failed was counted where it could be.
    }
  }

  /** Aborts every copy in flight (the mesh is closing; nobody waits for them). */
  abortAll(): void {
    for (const s of [...this.#live]) s.cancel()
  }

  #send(policy: MirrorPolicy, t: MirrorTarget, opts: DispatchOptions, view: OutboundView, authority: string, path: string, timeoutMs: number, tracing: TracingSettings): void {
    const members = t.cluster.members
    const lb = t.subsetIndex < 0 ? members.all : members.subsets[t.subsetIndex]
    const host = lb?.pick(undefined)
    policy.mirrored++
    if (host === undefined) {
      const r = this.#metrics.cluster(t.clusterName, t.subset)
      r.start()
      r.fail('no_healthy_upstream', 0)
      return
    }
    const shadow = shadowAuthority(authority)
    const ctx = currentContext()
    const client = this.#tracer.startClient(ctx, currentParentSpan(ctx), tracing, opts.method, shadowAttributes(opts.method, shadow, view, t, host))
    const headers = upstreamHeaders(view.caller, shadow, t.requestMutations, { trace: client, formats: client.formats, requestId: ctx?.requestId, peer: client.peer })
    const up: DispatchOptions & { servername?: string } = {
      origin: host.address.origin,
      path,
      method: opts.method,
      headers,
      body: opts.body ?? null,
    }
    if (host.servername !== undefined) up.servername = host.servername
    const request = new ShadowRequest(policy, host, this.#recorder(t, host), client.span, this.#live, timeoutMs > 0 ? this.#deadlines.list(timeoutMs) : undefined)
    try {
      host.pool.dispatch(up, request)
    } catch (err) {
      request.onResponseError(null, err instanceof Error ? err : new Error(String(err)))
    }
  }

  #recorder(t: MirrorTarget, host: Host): Recorder {
    let byHost = this.#recorders.get(t)
    if (byHost === undefined) {
      byHost = new Map()
      this.#recorders.set(t, byHost)
    }
    const key = host.address.hostPort
    let r = byHost.get(key)
    if (r === undefined) {
      r = this.#metrics.upstream(t.clusterName, t.subset, key)
      byHost.set(key, r)
    }
    return r
  }
}

function shadowAttributes(method: string, authority: string, view: OutboundView, t: MirrorTarget, host: Host): () => Attributes {
  return () => {
    const attrs: Attributes = {
      'http.request.method': method,
      'server.address': host.address.hostname,
      'server.port': host.address.port,
      'url.full': `${view.scheme}://${authority}${view.fullPath}`,
      'sidecarless.cluster': t.clusterName,
      'sidecarless.endpoint': host.address.hostPort,
      'sidecarless.mirror': true,
    }
    if (t.subset !== undefined) attrs['sidecarless.subset'] = t.subset
    return attrs
  }
}

/** One copy in flight: a handler that reads and drops the response and counts the outcome. */
class ShadowRequest implements Handler, Expirable {
  readonly #policy: MirrorPolicy
  readonly #host: Host
  readonly #recorder: Recorder
  readonly #span: Span | undefined
  readonly #live: Set<ShadowRequest>
  readonly #started = performance.now()
  #deadlines: DeadlineList | undefined
  #deadline = 0
  #controller: Controller | null = null
  #done = false
  #status = 0
  #bytes = 0

  constructor(policy: MirrorPolicy, host: Host, recorder: Recorder, span: Span | undefined, live: Set<ShadowRequest>, deadlines: DeadlineList | undefined) {
    this.#policy = policy
    this.#host = host
    this.#recorder = recorder
    this.#span = span
    this.#live = live
    policy.inFlight++
    host.active++
    live.add(this)
    recorder.start()
    if (deadlines !== undefined) {
      this.#deadlines = deadlines
      this.#deadline = deadlines.add(this, this.#started)
    }
  }

  onRequestStart(controller: Controller): void {
    this.#controller = controller
    if (this.#done) controller.abort(new MeshError('SIDECARLESS_ERR_ABORTED', 'mirror no longer wanted'))
  }

  onRequestUpgrade(_controller: Controller, _status: number, _headers: HeaderObject, socket: { destroy(): void }): void {
    socket.destroy()
    this.#fail('other', undefined)
  }

  onResponseStart(_controller: Controller, statusCode: number): void {
    if (statusCode >= 200) this.#status = statusCode
  }

  onResponseData(_controller: Controller, chunk: Buffer): void {
    this.#bytes += chunk.length
  }

  onResponseEnd(): void {
    if (this.#finish()) {
      this.#recorder.end(this.#status, performance.now() - this.#started, this.#bytes, 0)
      MeshTracer.end(this.#span, this.#status, undefined, 'client')
    }
  }

  onResponseError(_controller: Controller | null, err: Error): void {
    if (this.#done) return
    const kind: ErrorKind = this.#status !== 0 ? 'reset' : upstreamFailureText(err).flag === 'UF' ? 'connect_failure' : 'reset'
    this.#fail(kind, this.#status === 0 ? undefined : this.#status)
  }

  /** The route timeout expired. */
  expire(): void {
    this.#deadlines = undefined
    this.#abort('timeout', 'SIDECARLESS_ERR_UPSTREAM_TIMEOUT', 'the route timeout expired on a mirrored request')
  }

  /** The mesh is closing. */
  cancel(): void {
    this.#abort('aborted', 'SIDECARLESS_ERR_CLOSED', 'the mesh closed while a mirrored request was in flight')
  }

  #abort(kind: ErrorKind, code: 'SIDECARLESS_ERR_UPSTREAM_TIMEOUT' | 'SIDECARLESS_ERR_CLOSED', message: string): void {
    if (this.#done) return
    const controller = this.#controller
    this.#fail(kind, undefined)
    try {
      // Not started yet: onRequestStart aborts it when the pool gets to it.
      controller?.abort(new MeshError(code, message))
    } catch {
      // The connection is already gone.
    }
  }

  #fail(kind: ErrorKind, status: number | undefined): void {
    if (!this.#finish()) return
    this.#recorder.fail(kind, performance.now() - this.#started)
    MeshTracer.end(this.#span, status, kind, 'client')
  }

  /** Releases what the copy holds; false when it had already finished. */
  #finish(): boolean {
    if (this.#done) return false
    this.#done = true
    this.#policy.inFlight--
    this.#host.active--
    this.#live.delete(this)
    if (this.#deadlines !== undefined) {
      this.#deadlines.cancel(this.#deadline)
      this.#deadlines = undefined
    }
    return true
  }
}
