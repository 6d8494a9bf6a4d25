/**
 * One outbound request on its way to an upstream host. It sits between the caller's
 * handler and the endpoint pool: to the pool it is a handler, to the caller it is the
 * controller. That seat lets it answer for the upstream when the upstream cannot (503
 * before headers, 504 on timeout, as Envoy does), add the headers that say who served the
 * request, and abort promptly even while the request waits in the pool's queue.
 */
import type { Duplex } from 'node:stream'
import type { Dispatcher } from 'undici'
import type { Span } from '@opentelemetry/api'
import { abortError, MeshError } from '../errors.js'
import type { ErrorKind, Recorder } from '../observability/metrics.js'
import { dispatchIn, MeshTracer } from '../observability/tracing.js'
import type { Context } from '@opentelemetry/api'
import { mutateHeaderObject } from '../router/header-mutations.js'
import type { HeaderMutations } from '../router/header-mutations.js'
import type { Host } from '../upstream/host.js'
import type { Cluster } from '../upstream/cluster.js' // outlier detection (issue #4)
import type { DeadlineList, Expirable } from './deadlines.js'
import type { ConcurrencyLimiter } from '../policy/concurrency-limit.js'
import { rawFrom, type Controller, type Handler } from './handler.js'
import { sendLocalReply, upstreamFailureText } from './local-reply.js'
import { CLUSTER_HEADER, ENDPOINT_HEADER, SUBSET_HEADER, type ResponseFlag } from './response-headers.js'
import type { ClusterResources } from '../policy/cluster-resources.js'
import type { ErrorRateBreaker } from '../policy/error-rate-breaker.js'
import type { TryFailure } from '../policy/retry-policy.js'

const enum State { Waiting, Streaming, Done }

type HeaderObject = Record<string, string | string[] | undefined>

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

/** Handler towards the pool, controller towards the caller. */
export class UpstreamRequest implements Handler, Controller, Expirable {
  readonly #downstream: Handler
  readonly #host: Host | undefined
  readonly #dest: Destination
  readonly #endpoint: string
  #up: Controller | null = null
  #state = State.Waiting
  #aborted = false
  #paused = false
  #reason: Error | null = null
  /** Concurrency slots this request holds until it finishes. */
  #held: readonly ConcurrencyLimiter[] | null
  #deadlines: DeadlineList | undefined
  #deadline = 0
  readonly #recorder: Recorder
  readonly #span: Span | undefined
  readonly #started: number
  #status = 0
  #bytes = 0
  /** The cluster's thresholds, counted while this try runs; null for pass-through. */
  readonly #resources: ClusterResources | null
  #pending = true
  /** Raw response headers for old-style callers, when they still match the header object. */
  rawHeaders: Buffer[] | null = null
  /** The error-rate breaker this try reports to, and whether it is one of its half-open trials. */
  breaker: ErrorRateBreaker | null = null
  trial = false
  /** Set when the mesh answered for the upstream (503 or 504): how the try failed. */
  failure: TryFailure | null = null
  /** Outlier detection: the cluster told the outcome of this request (issue #4). */
  readonly #cluster: Cluster | null

  /**
   * @param endpoint `host:port` of the upstream, as the endpoint header reports it
   * @param host the mesh host, whose active-request count least_request reads; none for pass-through
   * @param recorder metrics of this destination and endpoint
   * @param span the client span, when the trace is recorded
   * @param cluster the runtime cluster, told the request's outcome (outlier detection); none for pass-through
   */
  constructor(downstream: Handler, dest: Destination, endpoint: string, host: Host | undefined, deadlines: DeadlineList | undefined, recorder: Recorder, span: Span | undefined, held: readonly ConcurrencyLimiter[] | null = null, cluster: Cluster | null = null) {
    this.#cluster = cluster
    const resources = cluster === null ? null : cluster.resources
    this.#held = held
    this.#resources = resources
    if (resources !== null) {
      resources.active++
      resources.pending++
    }
    this.#downstream = downstream
    this.#dest = dest
    this.#endpoint = endpoint
    this.#host = host
    this.#recorder = recorder
    this.#span = span
    this.#started = performance.now()
    recorder.start()
    if (host !== undefined) host.active++
    if (deadlines !== undefined) {
      this.#deadlines = deadlines
      this.#deadline = deadlines.add(this, this.#started)
    }
  }

  /** The endpoint this try goes to (undefined for pass-through). */
  get host(): Host | undefined {
    return this.#host
  }

  #pool: Dispatcher | undefined
  #options: Dispatcher.DispatchOptions | undefined

  /** Sets where `dispatch` sends this try. */
  prepare(pool: Dispatcher, options: Dispatcher.DispatchOptions): void {
    this.#pool = pool
    this.#options = options
  }

  /** [otel] The OTel context to dispatch in, when the app's undici instrumentation must be silenced or nested (`tracing.spans`). */
  traceContext: Context | undefined = undefined

  /** Hands the try to its pool (after the caller was told it started). */
  dispatch(): boolean {
    if (this.traceContext !== undefined) return dispatchIn(this.traceContext, this.#pool as Dispatcher, this.#options, this)
    return (this.#pool as Dispatcher).dispatch(this.#options as Dispatcher.DispatchOptions, this)
  }

  // ------------------------------------------------------------ controller, for the caller

  get aborted(): boolean {
    return this.#aborted
  }

  get paused(): boolean {
    return this.#paused
  }

  get reason(): Error | null {
    return this.#reason
  }

  abort(reason: Error): void {
    if (this.#state === State.Done || this.#aborted) return
    this.#aborted = true
    this.#reason = reason
    if (this.#up !== null) {
      this.#up.abort(reason)
    } else {
      // Still queued in the pool: answer the caller now; the pool's start is aborted later.
      this.#finish()
      this.breaker?.release(this.trial)
      this.#failed('aborted', undefined)
      this.#downstream.onResponseError?.(this, abortError(reason))
    }
  }

  pause(): void {
    this.#paused = true
    this.#up?.pause()
  }

  resume(): void {
    this.#paused = false
    this.#up?.resume()
  }

  // ------------------------------------------------------------ handler, for the pool

  onRequestStart(controller: Controller): void {
    this.#up = controller
    this.#started_()
    if (this.#aborted || this.#state === State.Done) controller.abort(this.#reason ?? new MeshError('SIDECARLESS_ERR_ABORTED', 'request no longer wanted'))
  }

  onRequestUpgrade(controller: Controller, statusCode: number, headers: HeaderObject, socket: Duplex): void {
    if (this.#state !== State.Waiting) return
    this.#finish()
    this.#downstream.onRequestUpgrade?.(this, statusCode, headers, socket)
  }

  onResponseStart(controller: Controller, statusCode: number, headers: HeaderObject, statusMessage?: string): void {
    if (this.#state !== State.Waiting) return
    if (statusCode < 200) {
      // 1xx informational responses are not the response; wait for the final one.
      return
    }
    this.#state = State.Streaming
    this.#status = statusCode
    this.#started_()
    if (this.breaker !== null) this.breaker.record(this.breaker.isFailureStatus(statusCode), this.trial, performance.now())
    // Outlier detection counts every try's outcome (Envoy does).
    if (this.#cluster !== null) this.#cluster.recordOutcome(this.#host as Host, statusCode)
    const d = this.#dest
    headers[CLUSTER_HEADER] = d.clusterName
    if (d.subset !== undefined) headers[SUBSET_HEADER] = d.subset
    headers[ENDPOINT_HEADER] = this.#endpoint
    if (d.responseMutations !== null) {
      mutateHeaderObject(headers, d.responseMutations, { status: statusCode, headers, upstreamAddress: this.#endpoint, flags: undefined })
      this.rawHeaders = rawFrom(headers)
    } else {
      const raw = controller.rawHeaders
      this.rawHeaders = Array.isArray(raw) && (raw.length === 0 || Buffer.isBuffer(raw[0]))
        ? (raw as Buffer[]).concat(rawFor(d, this.#endpoint))
        : rawFrom(headers)
    }
    this.#downstream.onResponseStart?.(this, statusCode, headers, statusMessage)
  }

  onResponseData(_controller: Controller, chunk: Buffer): void {
    if (this.#state !== State.Streaming) return
    this.#bytes += chunk.length
    this.#downstream.onResponseData?.(this, chunk)
  }

  onResponseEnd(_controller: Controller, trailers: HeaderObject): void {
    if (this.#state !== State.Streaming) return
    this.#finish()
    this.#recorder.end(this.#status, performance.now() - this.#started, this.#bytes, 0)
    MeshTracer.end(this.#span, this.#status, undefined, 'client')
    this.#downstream.onResponseEnd?.(this, trailers)
  }

  onResponseError(_controller: Controller, err: Error): void {
    if (this.#state === State.Done) return
    const beforeHeaders = this.#state === State.Waiting
    this.#finish()
    if (beforeHeaders && !this.#aborted && this.#up === null && isArgumentError(err)) {
      // The pool refused the request before a byte went out (the door's checks mirror
      // undici's, so this is a backstop): the caller's mistake, never the upstream's — no
      // breaker, outlier or health outcome, no 503, no retry.
      this.breaker?.release(this.trial)
      this.#failed('other', undefined)
      this.#downstream.onResponseError?.(this, new MeshError('SIDECARLESS_ERR_INVALID_REQUEST', `invalid request: ${err.message}; it was not sent`, { cause: err }))
      return
    }
    if (beforeHeaders && !this.#aborted) {
      const { flag, body } = upstreamFailureText(err)
      // A reset before the request was written is a refused stream (Envoy's HTTP/1 view of it).
      this.failure = flag === 'UF' ? 'connect_failure' : this.#up === null ? 'refused' : 'reset'
      this.#transportFailure()
      if (this.#cluster !== null) this.#cluster.recordOutcome(this.#host as Host, this.failure === 'connect_failure' ? 'connect_failure' : 'reset')
      this.#failed(flag === 'UF' ? 'connect_failure' : 'reset', 503)
      this.#localReply(503, body, flag)
      return
    }
    if (beforeHeaders) this.breaker?.release(this.trial)
    this.#failed(this.#aborted ? 'aborted' : 'reset', beforeHeaders ? undefined : this.#status)
    // The upstream failed mid-body: the caller's body ends with our code, undici's error as the cause.
    const reason = this.#aborted
      ? abortError(err)
      : beforeHeaders
        ? err
        : new MeshError('SIDECARLESS_ERR_UPSTREAM_RESET', `the upstream ${this.#endpoint} failed after the response started`, { cause: err })
    this.#downstream.onResponseError?.(this, reason)
  }

  // ------------------------------------------------------------ internals

  /** Route timeout: 504 before headers (Envoy's `upstream request timeout`), a coded error after. */
  expire(): void {
    if (this.#state === State.Done) return
    const beforeHeaders = this.#state === State.Waiting
    const err = new MeshError('SIDECARLESS_ERR_UPSTREAM_TIMEOUT', 'the route timeout expired')
    this.#finish()
    this.#up?.abort(err)
    this.#failed('timeout', beforeHeaders ? 504 : this.#status)
    if (beforeHeaders) {
      this.failure = 'timeout'
      this.#transportFailure()
      if (this.#cluster !== null) this.#cluster.recordOutcome(this.#host as Host, 'timeout')
      this.#localReply(504, 'upstream request timeout', 'UT')
    }
    else this.#downstream.onResponseError?.(this, err)
  }

  #localReply(status: number, body: string, flag: ResponseFlag): void {
    const d = this.#dest
    const headers: HeaderObject = { [CLUSTER_HEADER]: d.clusterName }
    if (d.subset !== undefined) headers[SUBSET_HEADER] = d.subset
    headers[ENDPOINT_HEADER] = this.#endpoint
    sendLocalReply(this.#downstream, this, { status, body, flag, headers })
  }

  /** Records a request that ended without a complete upstream response. */
  #failed(kind: ErrorKind, status: number | undefined): void {
    this.#recorder.fail(kind, performance.now() - this.#started)
    MeshTracer.end(this.#span, status, kind, 'client')
  }

  /** The try left the pool's queue: it no longer counts as pending. */
  #started_(): void {
    if (!this.#pending) return
    this.#pending = false
    if (this.#resources !== null) this.#resources.pending--
  }

  #transportFailure(): void {
    const b = this.breaker
    if (b !== null) {
      if (b.countTransportErrors) b.record(true, this.trial, performance.now())
      else b.release(this.trial)
    }
  }

  #finish(): void {
    this.#state = State.Done
    this.#started_()
    if (this.#resources !== null) this.#resources.active--
    if (this.#host !== undefined) this.#host.active--
    if (this.#deadlines !== undefined) {
      this.#deadlines.cancel(this.#deadline)
      this.#deadlines = undefined
    }
    if (this.#held !== null) {
      for (const c of this.#held) c.release()
      this.#held = null
    }
  }
}

/** undici's errors for a request it will not send: its arguments, not the upstream. */
function isArgumentError(err: unknown): err is Error {
  const code = (err as { code?: unknown } | null)?.code
  return code === 'UND_ERR_INVALID_ARG' || code === 'UND_ERR_NOT_SUPPORTED'
}
