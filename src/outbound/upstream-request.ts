/**
 * One try of an outbound request, on its way to an upstream host: the handler the
 * endpoint's pool drives. It counts what the try did (metrics, client span, the cluster's
 * thresholds, the error-rate breaker, outlier detection) and tells its exchange how the try
 * went: a response (with the headers that say who served it), or a failure before the
 * response, which the mesh answers for the upstream as Envoy does (503 on a refused, failed
 * or reset connection; 504 on the per-try timeout). The exchange decides what the caller
 * sees: that answer, or another try.
 *
 * Towards the pool it is an old-style undici handler (`onConnect`, `onHeaders`, `onData`,
 * `onComplete`, `onError`, `onUpgrade`), which undici 7's pools drive as they are: a
 * new-style one is wrapped by undici, which parses every response's raw header list into an
 * object first. This handler keeps the raw list, adds the mesh's headers to it (buffers made
 * once per destination and endpoint), and builds the header object only when something asks
 * for it (`responseHeaders()`: response header mutations, a new-style caller, a retry policy
 * reading headers). Measured here (client CPU per `undici.request` through the mesh, beyond
 * a plain Pool's; medians of alternating processes): about −1 µs on Node 24 for one parse
 * instead of two, no wrapper and no rebuild of raw buffers. undici 7 only: undici 8 takes
 * new-style handlers alone (test/response-head.test.ts pins the major).
 */
import type { Duplex } from 'node:stream'
import type { Context, Span } from '@opentelemetry/api'
import { util, type Dispatcher } from 'undici'
import { abortError, MeshError } from '../errors.js'
import type { ErrorKind, Recorder } from '../observability/metrics.js'
import { dispatchIn, MeshTracer } from '../observability/tracing.js'
import type { ErrorRateBreaker } from '../policy/error-rate-breaker.js'
import type { TryFailure } from '../policy/retry-policy.js'
import { CLUSTER_HEADER, ENDPOINT_HEADER, SUBSET_HEADER, type ResponseFlag } from '../response-headers.js'
import { mutateHeaderObject, type HeaderMutations } from '../http/header-mutations.js'
import type { Cluster } from '../upstream/cluster.js'
import type { Host } from '../upstream/host.js'
import type { ResourceManager } from '../upstream/resource-manager.js'
import type { DeadlineList, Expirable } from './deadlines.js'
import type { Exchange, Try } from './exchange.js'
import { rawFrom } from './handler.js'
import { isProtocolError, upstreamFailureText } from './local-reply.js'

const enum State { Waiting, Streaming, Done }

type HeaderObject = Record<string, string | string[] | undefined>

/** A pool that lets a waiting request go at once (`upstream/endpoint-pool.ts`). */
interface Withdrawing {
  withdraw(handler: object): void
}

/** undici's abort for a request it carries (old-style `onConnect`). */
type AbortUpstream = (err?: Error) => void

/** Trailers when undici gives none as a list. */
const NO_TRAILERS: Buffer[] = []

/** Where a request is going, as the caller is told: a route target or the pass-through cluster. */
export interface Destination {
  readonly clusterName: string
  readonly subset: string | undefined
  readonly responseMutations: HeaderMutations | null
}

/** Istio's name for the cluster that carries traffic to hosts outside the registry. */
export const PASSTHROUGH: Destination = Object.freeze({ clusterName: 'PassthroughCluster', subset: undefined, responseMutations: null })

/** Raw header buffers naming a destination and an endpoint, made once per pair. */
const rawCache = new WeakMap<Destination, Map<string, readonly Buffer[]>>()

function rawFor(dest: Destination, endpoint: string): readonly Buffer[] {
  let byEndpoint = rawCache.get(dest)
  if (byEndpoint === undefined) {
    byEndpoint = new Map()
    rawCache.set(dest, byEndpoint)
  }
  let raw = byEndpoint.get(endpoint)
  if (raw === undefined) {
    const list = [Buffer.from(CLUSTER_HEADER), Buffer.from(dest.clusterName, 'latin1')]
    if (dest.subset !== undefined) list.push(Buffer.from(SUBSET_HEADER), Buffer.from(dest.subset, 'latin1'))
    list.push(Buffer.from(ENDPOINT_HEADER), Buffer.from(endpoint, 'latin1'))
    // Pass-through endpoints are whatever the app calls: keep the cache bounded.
    if (byEndpoint.size >= 1024) byEndpoint.clear()
    raw = Object.freeze(list)
    byEndpoint.set(endpoint, raw)
  }
  return raw
}

/** What one try is: where it goes, what it counts, who it reports to. */
export interface UpstreamRequestOptions {
  /** The request this try belongs to. */
  readonly exchange: Exchange
  readonly dest: Destination
  /** `host:port` of the upstream, as the endpoint header reports it. */
  readonly endpoint: string
  /** The mesh host, whose active-request count least_request reads; none for pass-through. */
  readonly host: Host | undefined
  /** Metrics of this destination and endpoint. */
  readonly recorder: Recorder
  /** The client span, when the trace is recorded. */
  readonly span: Span | undefined
  /** [otel] The OTel context to dispatch in, when the app's undici instrumentation must be silenced or nested (`tracing.spans`). */
  readonly traceContext: Context | undefined
  /** The runtime cluster, told the try's outcome (outlier detection); null for pass-through and mirrored copies. */
  readonly cluster: Cluster | null
  /** The cluster's thresholds, whose request slot this try holds (acquired by the sender); null when none is held. */
  readonly resources: ResourceManager | null
  /** The error-rate breaker this try reports to, and whether it is one of its half-open trials. */
  readonly breaker: ErrorRateBreaker | null
  readonly trial: boolean
  /** The per-try timeout's deadlines (a retry policy's `perTryTimeout`), if any. */
  readonly deadlines: DeadlineList | undefined
  /** Where the try is sent, and how. */
  readonly pool: Dispatcher
  readonly options: Dispatcher.DispatchOptions
  /** When the try started (`performance.now()`), when the sender read the clock already. */
  readonly started?: number
}

/** The handler of one try, towards the pool (old-style: see the module's comment). */
export class UpstreamRequest implements Try, Expirable {
  readonly #exchange: Exchange
  readonly #host: Host | undefined
  readonly #dest: Destination
  readonly endpoint: string
  readonly #recorder: Recorder
  readonly #span: Span | undefined
  readonly #cluster: Cluster | null
  readonly #resources: ResourceManager | null
  readonly #breaker: ErrorRateBreaker | null
  readonly #trial: boolean
  readonly #pool: Dispatcher
  readonly #options: Dispatcher.DispatchOptions
  readonly #traceContext: Context | undefined
  readonly #started: number
  #deadlines: DeadlineList | undefined
  #deadline = 0
  /** undici's abort, from `onConnect`: null while the try waits in the pool's queue. */
  #up: AbortUpstream | null = null
  #upAborted = false
  /** undici's resume, from `onHeaders`, for a paused response. */
  #resumeUp: (() => void) | null = null
  #state = State.Waiting
  #aborted = false
  #paused = false
  #reason: Error | null = null
  #status = 0
  #bytes = 0
  #pending = true
  /** The response's raw header list with the mesh's headers, matching `responseHeaders()`. */
  rawHeaders: Buffer[] | null = null
  /** The upstream's raw response headers, as undici gave them. */
  #upstreamRaw: Buffer[] = NO_TRAILERS
  /** The response's header object, once something asked for it. */
  #headers: HeaderObject | null = null

  constructor(o: UpstreamRequestOptions) {
    this.#exchange = o.exchange
    this.#dest = o.dest
    this.endpoint = o.endpoint
    this.#host = o.host
    this.#recorder = o.recorder
    this.#span = o.span
    this.#cluster = o.cluster
    this.#resources = o.resources
    this.#breaker = o.breaker
    this.#trial = o.trial
    this.#pool = o.pool
    this.#options = o.options
    this.#traceContext = o.traceContext
    this.#started = o.started ?? performance.now()
    o.recorder.start()
    if (o.host !== undefined) o.host.active++
    if (o.deadlines !== undefined) {
      this.#deadlines = o.deadlines
      this.#deadline = o.deadlines.add(this, this.#started)
    }
  }

  /** The endpoint this try goes to (undefined for pass-through). */
  get host(): Host | undefined {
    return this.#host
  }

  /** Hands the try to its pool. */
  dispatch(): boolean {
    if (this.#traceContext !== undefined) return dispatchIn(this.#traceContext, this.#pool, this.#options, this)
    return this.#pool.dispatch(this.#options, this)
  }

  // ------------------------------------------------------------ for the exchange

  abort(reason: Error): void {
    if (this.#state === State.Done || this.#aborted) return
    this.#aborted = true
    this.#reason = reason
    if (this.#up !== null) {
      this.#abortUpstream(reason)
    } else {
      // Still queued in the pool: end now, and leave its queue (no connection is opened for
      // it; our own pool skips it when its turn comes).
      this.#withdraw()
      this.#finish()
      this.#breaker?.release(this.#trial)
      this.#failed('aborted', undefined)
      this.#exchange.tryError(this, abortError(reason))
    }
  }

  /** Pauses the response: undici stops reading when `onHeaders`/`onData` next return. */
  pause(): void {
    this.#paused = true
  }

  resume(): void {
    if (!this.#paused) return
    this.#paused = false
    this.#resumeUp?.()
  }

  /** The per-try timeout: 504 before headers (Envoy's `upstream request timeout`), a coded error after. */
  expire(): void {
    if (this.#state === State.Done) return
    const beforeHeaders = this.#state === State.Waiting
    const err = new MeshError('SIDECARLESS_ERR_UPSTREAM_TIMEOUT', 'the route timeout expired')
    this.#timedOut(err)
    if (beforeHeaders) this.#exchange.tryFailed(this, 'timeout', this.#reply(504, 'upstream request timeout', 'UT'))
    else this.#exchange.tryError(this, err)
  }

  expireRoute(err: MeshError): void {
    if (this.#state === State.Done) return
    this.#timedOut(err)
  }

  /**
   * The response's headers as an object, the mesh's included: undici's parse of the raw list,
   * made on the first ask; the same object after (mutations and flags apply to it).
   */
  responseHeaders(): HeaderObject {
    let headers = this.#headers
    if (headers === null) {
      headers = util.parseHeaders(this.#upstreamRaw)
      const d = this.#dest
      headers[CLUSTER_HEADER] = d.clusterName
      if (d.subset !== undefined) headers[SUBSET_HEADER] = d.subset
      headers[ENDPOINT_HEADER] = this.endpoint
      this.#headers = headers
    }
    return headers
  }

  // ------------------------------------------------------------ handler, for the pool

  onConnect(abort: AbortUpstream): void {
    this.#up = abort
    this.#leftQueue()
    if (this.#aborted || this.#state === State.Done) this.#abortUpstream(this.#reason ?? new MeshError('SIDECARLESS_ERR_ABORTED', 'request no longer wanted'))
  }

  onUpgrade(statusCode: number, rawHeaders: Buffer[] | string[] | null, socket: Duplex): void {
    if (this.#state !== State.Waiting) return
    this.#finish()
    this.#exchange.tryUpgrade(this, statusCode, util.parseHeaders(rawHeaders ?? []), socket)
  }

  /** Returns false to pause the response (undici's old-style contract). */
  onHeaders(statusCode: number, rawHeaders: Buffer[], resume: () => void, statusMessage: string): boolean {
    if (this.#state !== State.Waiting) return !this.#paused
    // Kept from the first head (a 1xx too): a pause returned now is lifted through it.
    this.#resumeUp = resume
    // 1xx informational responses are not the response; wait for the final one.
    if (statusCode < 200) return !this.#paused
    this.#state = State.Streaming
    this.#status = statusCode
    this.#leftQueue()
    const breaker = this.#breaker
    if (breaker !== null) breaker.record(breaker.isFailureStatus(statusCode), this.#trial, performance.now())
    // Outlier detection counts every try's outcome (Envoy does).
    if (this.#cluster !== null) this.#cluster.recordOutcome(this.#host as Host, statusCode)
    this.#upstreamRaw = rawHeaders
    const d = this.#dest
    if (d.responseMutations !== null) {
      const headers = this.responseHeaders()
      mutateHeaderObject(headers, d.responseMutations, { status: statusCode, headers, upstreamAddress: this.endpoint, flags: undefined })
      this.rawHeaders = rawFrom(headers)
    } else if (rawHeaders.length === 0 || Buffer.isBuffer(rawHeaders[0])) {
      // A copy and pushes: `concat` of a frozen list leaves V8's fast path (240 ns against 55).
      const mesh = rawFor(d, this.endpoint)
      const raw = rawHeaders.slice()
      for (let i = 0; i < mesh.length; i++) raw.push(mesh[i] as Buffer)
      this.rawHeaders = raw
    } else {
      // Not buffers (another transport's list): rebuilt from the object, so both match.
      this.rawHeaders = rawFrom(this.responseHeaders())
    }
    this.#exchange.tryResponse(this, statusCode, statusMessage)
    return !this.#paused
  }

  onData(chunk: Buffer): boolean {
    if (this.#state !== State.Streaming) return !this.#paused
    this.#bytes += chunk.length
    this.#exchange.tryData(this, chunk)
    return !this.#paused
  }

  onComplete(rawTrailers: Buffer[] | string[] | null): void {
    if (this.#state !== State.Streaming) return
    this.#finish()
    this.#recorder.end(this.#status, performance.now() - this.#started, this.#bytes, 0)
    MeshTracer.end(this.#span, this.#status, undefined, 'client')
    this.#exchange.tryEnd(this, Array.isArray(rawTrailers) ? (rawTrailers as Buffer[]) : NO_TRAILERS)
  }

  onError(err: Error): void {
    if (this.#state === State.Done) return
    const beforeHeaders = this.#state === State.Waiting
    if (!beforeHeaders && this.#bytes === 0 && (this.#status === 304 || this.#status === 204) && isLengthMismatch(err)) {
      // A 304 or 204 has no body whatever its Content-Length says (RFC 9110 §8.6: a 304's
      // announces the representation's length). undici 7 reports the body it did not get
      // as cut short; the response is complete, not a reset.
      this.onComplete(NO_TRAILERS)
      return
    }
    this.#finish()
    if (beforeHeaders && !this.#aborted && this.#callerBodyFailed(err)) {
      // The caller's own request body failed while it was being sent (its stream errored):
      // the caller's failure, never the upstream's — no breaker, outlier or health outcome,
      // no 503, no retry. The caller gets its body's error, as plain undici gives it.
      this.#breaker?.release(this.#trial)
      this.#failed('aborted', undefined)
      this.#exchange.tryError(this, err)
      return
    }
    if (beforeHeaders && !this.#aborted && this.#up === null && isArgumentError(err)) {
      // The pool refused the request before a byte went out (the door's checks mirror
      // undici's, so this is a backstop): the caller's mistake, never the upstream's — no
      // breaker, outlier or health outcome, no 503, no retry.
      this.#breaker?.release(this.#trial)
      this.#failed('other', undefined)
      this.#exchange.tryError(this, new MeshError('SIDECARLESS_ERR_INVALID_REQUEST', `invalid request: ${err.message}; it was not sent`, { cause: err }))
      return
    }
    if (beforeHeaders && !this.#aborted) {
      const { flag, body } = upstreamFailureText(err)
      // A reset before the request was written is a refused stream (Envoy's HTTP/1 view of it).
      const failure: TryFailure = flag === 'UF' ? 'connect_failure' : this.#up === null ? 'refused' : 'reset'
      this.#transportFailure()
      if (this.#cluster !== null) this.#cluster.recordOutcome(this.#host as Host, failure === 'connect_failure' ? 'connect_failure' : 'reset')
      this.#failed(flag === 'UF' ? 'connect_failure' : flag === 'UPE' ? 'protocol_error' : 'reset', 503)
      this.#exchange.tryFailed(this, failure, this.#reply(503, body, flag))
      return
    }
    if (beforeHeaders) this.#breaker?.release(this.#trial)
    const broken = !this.#aborted && isProtocolError(err)
    this.#failed(this.#aborted ? 'aborted' : broken ? 'protocol_error' : 'reset', beforeHeaders ? undefined : this.#status)
    // The upstream failed mid-body: the caller's body ends with our code, undici's error as the cause.
    const reason = this.#aborted
      ? abortError(err)
      : beforeHeaders
        ? err
        : new MeshError('SIDECARLESS_ERR_UPSTREAM_RESET', broken
          ? `the upstream ${this.endpoint} broke HTTP/1.1 after the response started (${err.message})`
          : `the upstream ${this.endpoint} failed after the response started`, { cause: err })
    this.#exchange.tryError(this, reason)
  }

  // ------------------------------------------------------------ internals

  /** Whether `err` is the caller's request body failing: the stream it gave (or the one a retry replays from) errored with it. */
  #callerBodyFailed(err: Error): boolean {
    const body = this.#exchange.opts.body as { errored?: unknown } | null | undefined
    return typeof body === 'object' && body !== null && body.errored === err
  }

  /** A timeout (the route's or the try's) ended the try: counted as such, the pool's request aborted. */
  #timedOut(err: MeshError): void {
    const beforeHeaders = this.#state === State.Waiting
    this.#finish()
    this.#abortUpstream(err)
    this.#failed('timeout', beforeHeaders ? 504 : this.#status)
    if (beforeHeaders) {
      this.#transportFailure()
      if (this.#cluster !== null) this.#cluster.recordOutcome(this.#host as Host, 'timeout')
    }
  }

  /** The local reply that answers for the upstream: who would have served it, and Envoy's text. */
  #reply(status: number, body: string, flag: ResponseFlag): { status: number; body: string; flag: ResponseFlag; headers: HeaderObject } {
    const d = this.#dest
    const headers: HeaderObject = { [CLUSTER_HEADER]: d.clusterName }
    if (d.subset !== undefined) headers[SUBSET_HEADER] = d.subset
    headers[ENDPOINT_HEADER] = this.endpoint
    return { status, body, flag, headers }
  }

  /** Aborts the pool's request, once (undici's abort is not meant to be called twice). */
  /** Tells the pool a try still waiting for a connection is no longer wanted (our own pool; any other is told at its start). */
  #withdraw(): void {
    (this.#pool as Partial<Withdrawing>).withdraw?.(this)
  }

  #abortUpstream(reason: Error): void {
    const abort = this.#up
    if (abort === null) {
      // Still waiting in the pool.
      this.#withdraw()
      return
    }
    if (this.#upAborted) return
    this.#upAborted = true
    abort(reason)
  }

  /** Records a try that ended without a complete upstream response. */
  #failed(kind: ErrorKind, status: number | undefined): void {
    this.#recorder.fail(kind, performance.now() - this.#started)
    MeshTracer.end(this.#span, status, kind, 'client')
  }

  /** The try left the pool's queue: it no longer counts as pending. */
  #leftQueue(): void {
    if (!this.#pending) return
    this.#pending = false
    this.#resources?.started()
  }

  #transportFailure(): void {
    const b = this.#breaker
    if (b !== null) {
      if (b.countTransportErrors) b.record(true, this.#trial, performance.now())
      else b.release(this.#trial)
    }
  }

  #finish(): void {
    this.#state = State.Done
    this.#resources?.releaseRequest(this.#pending)
    this.#pending = false
    if (this.#host !== undefined) this.#host.active--
    if (this.#deadlines !== undefined) {
      this.#deadlines.cancel(this.#deadline)
      this.#deadlines = undefined
    }
  }
}

/** undici's error for a response body shorter than its Content-Length. */
function isLengthMismatch(err: unknown): boolean {
  return (err as { code?: unknown } | null)?.code === 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH'
}

/** undici's errors for a request it will not send: its arguments, not the upstream. */
function isArgumentError(err: unknown): err is Error {
  const code = (err as { code?: unknown } | null)?.code
  return code === 'UND_ERR_INVALID_ARG' || code === 'UND_ERR_NOT_SUPPORTED'
}
