/**
 * A request under a retry policy. To the caller it is the controller of one request; to
 * each try (an UpstreamRequest) it is the handler. A try's response is held back until it is
 * known not to be retried: a retriable one is dropped (its body drained when small, the try
 * aborted otherwise) and, after a jittered back-off or the `Retry-After` the upstream asked
 * for, a new try goes to an endpoint not tried yet. The route timeout covers every try; each
 * try may have its own. Retries count against the cluster's retry budget (or
 * `maxRetries`), so a failing cluster sees at most that many more requests.
 */
import type { Duplex } from 'node:stream'
import { abortError, MeshError } from '../errors.js'
import type { ClusterResources } from '../policy/cluster-resources.js'
import type { ConcurrencyLimiter } from '../policy/concurrency-limit.js'
import { retryAfterMs, type RetryPolicy } from '../policy/retry-policy.js'
import type { Host } from '../upstream/host.js'
import type { DeadlineList, Expirable } from './deadlines.js'
import { rawFrom, type Controller, type Handler } from './handler.js'
import { sendLocalReply, type LocalReply } from './local-reply.js'
import type { ReplayableBody } from './replayable-body.js'
import { CLUSTER_HEADER, SUBSET_HEADER } from './response-headers.js'
import { UpstreamRequest } from './upstream-request.js'

type HeaderObject = Record<string, string | string[] | undefined>

/** Starts one try: the try, or the local reply that answers when it cannot start. */
export type StartTry = (downstream: Handler, avoid: readonly Host[] | null, body: unknown, resend: number) => UpstreamRequest | LocalReply

/** A response small enough to read to its end rather than give up its connection. */
const DRAIN_LIMIT = 64 * 1024

const enum State { Trying, BackingOff, Streaming, Done }

export class RetryingRequest implements Handler, Controller, Expirable {
  readonly #downstream: Handler
  readonly #policy: RetryPolicy
  readonly #start: StartTry
  readonly #body: ReplayableBody
  readonly #resources: ClusterResources
  readonly #clusterName: string
  readonly #subset: string | undefined
  #held: readonly ConcurrencyLimiter[] | null
  #state = State.Trying
  #current: UpstreamRequest | null = null
  /** Endpoints tried so far: the first alone, then a list once there is a retry. */
  #first: Host | undefined
  #tried: Host[] | null = null
  #retries = 0
  /** This request holds one of the cluster's in-flight retry slots. */
  #holdsRetrySlot = false
  #timer: NodeJS.Timeout | undefined
  #deadlines: DeadlineList | undefined
  #deadline = 0
  readonly #startedAt: number
  #aborted = false
  #paused = false
  #reason: Error | null = null
  rawHeaders: Buffer[] | null = null

  constructor(downstream: Handler, policy: RetryPolicy, start: StartTry, body: ReplayableBody, resources: ClusterResources, clusterName: string, subset: string | undefined, deadlines: DeadlineList | undefined, held: readonly ConcurrencyLimiter[] | null) {
    this.#downstream = downstream
    this.#policy = policy
    this.#start = start
    this.#body = body
    this.#resources = resources
    this.#clusterName = clusterName
    this.#subset = subset
    this.#held = held
    this.#startedAt = performance.now()
    if (deadlines !== undefined) {
      this.#deadlines = deadlines
      this.#deadline = deadlines.add(this, this.#startedAt)
    }
  }

  /**
   * Sends the first try. Returns false when it could not start (the caller was answered
   * with a local reply).
   */
  begin(): boolean {
    return this.#try()
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

  abort(cause: Error): void {
    if (this.#state === State.Done || this.#aborted) return
    const reason = abortError(cause)
    this.#aborted = true
    this.#reason = reason
    const current = this.#current
    if (current !== null && this.#state !== State.BackingOff) {
      // The try answers us with onResponseError, which ends this request.
      current.abort(reason)
      // (The try may have ended this request already, synchronously.)
      if ((this.#state as State) !== State.Done) this.#fail(reason)
      return
    }
    this.#fail(reason)
  }

  pause(): void {
    this.#paused = true
    this.#current?.pause()
  }

  resume(): void {
    this.#paused = false
    this.#current?.resume()
  }

  // ------------------------------------------------------------ handler, for the tries

  onRequestStart(): void {
    // Tries are announced to us before they are dispatched; nothing to do.
  }

  onRequestUpgrade(controller: Controller, statusCode: number, headers: HeaderObject, socket: Duplex): void {
    if (controller !== this.#current || this.#state !== State.Trying) return
    this.#finish()
    this.#downstream.onRequestUpgrade?.(this, statusCode, headers, socket)
  }

  onResponseStart(controller: Controller, statusCode: number, headers: HeaderObject, statusMessage?: string): void {
    if (controller !== this.#current || this.#state !== State.Trying) return
    const attempt = controller as UpstreamRequest
    const failure = attempt.failure
    if (failure === 'timeout') this.#resources.perTryTimeouts++
    const retriable = failure !== null ? this.#policy.retriesFailure(failure) : this.#policy.retriesResponse(statusCode, headers)
    if (retriable && this.#retryAfter(attempt, failure === null ? headers : undefined)) return
    if (this.#retries > 0 && !retriable) this.#resources.retrySuccesses++
    this.#state = State.Streaming
    this.rawHeaders = attempt.rawHeaders ?? rawFrom(headers)
    this.#downstream.onResponseStart?.(this, statusCode, headers, statusMessage)
  }

  onResponseData(controller: Controller, chunk: Buffer): void {
    if (controller !== this.#current || this.#state !== State.Streaming) return
    this.#downstream.onResponseData?.(this, chunk)
  }

  onResponseEnd(controller: Controller, trailers: HeaderObject): void {
    if (controller !== this.#current || this.#state !== State.Streaming) return
    this.#finish()
    this.#downstream.onResponseEnd?.(this, trailers)
  }

  onResponseError(controller: Controller, err: Error): void {
    if (controller !== this.#current || this.#state === State.Done) return
    this.#fail(err)
  }

  // ------------------------------------------------------------ internals

  /** Route timeout: 504 before a response was passed on, a coded error after. */
  expire(): void {
    if (this.#state === State.Done) return
    const streaming = this.#state === State.Streaming
    const err = new MeshError('SIDECARLESS_ERR_UPSTREAM_TIMEOUT', 'the route timeout expired')
    const current = this.#current
    this.#current = null
    this.#finish()
    current?.abort(err)
    if (streaming) this.#downstream.onResponseError?.(this, err)
    else this.#reply({ status: 504, body: 'upstream request timeout', flag: 'UT', headers: this.#targetHeaders() })
  }

  /**
   * Decides whether a retriable outcome is retried: tries left, a replayable body, room in
   * the retry budget, and a `Retry-After` within bounds. When it is, the try is let go and
   * the next one is scheduled.
   */
  #retryAfter(attempt: UpstreamRequest, headers: HeaderObject | undefined): boolean {
    const policy = this.#policy
    const resources = this.#resources
    if (this.#retries >= policy.numRetries) {
      resources.retryLimitExceeded++
      return false
    }
    if (!this.#body.replayable) return false
    let wait: number
    const asked = headers === undefined ? undefined : retryAfterMs(headers['retry-after'])
    if (asked !== undefined) {
      const left = this.#deadlines === undefined ? Infinity : this.#remainingMs()
      if (asked > policy.maxRetryAfterMs || asked >= left) return false
      wait = asked
    } else {
      wait = policy.backOffMs(this.#retries + 1)
    }
    // The slot a retry in flight held is given back before asking for the next one.
    this.#releaseRetrySlot()
    if (!resources.mayRetry()) {
      resources.retryOverflows++
      return false
    }
    resources.activeRetries++
    this.#holdsRetrySlot = true
    resources.retries++
    this.#retries++
    // Forget the try first: letting it go may call back into this request.
    this.#current = null
    this.#state = State.BackingOff
    if (attempt.failure === null) this.#letGo(attempt, headers)
    this.#timer = setTimeout(() => {
      this.#timer = undefined
      if (this.#state !== State.BackingOff) return
      this.#state = State.Trying
      this.#try()
    }, wait)
    return true
  }

  /** Stops listening to a try whose response will not be used: drain a small body, abort a large one. */
  #letGo(attempt: UpstreamRequest, headers: HeaderObject | undefined): void {
    const length = Number(headers?.['content-length'])
    if (!(length >= 0 && length <= DRAIN_LIMIT)) attempt.abort(new MeshError('SIDECARLESS_ERR_ABORTED', 'the response is being retried'))
  }

  #try(): boolean {
    let avoid: readonly Host[] | null = null
    if (this.#first !== undefined) avoid = this.#tried ??= [this.#first]
    const t = this.#start(this, avoid, this.#body.forTry(), this.#retries)
    if (!(t instanceof UpstreamRequest)) {
      this.#finish()
      this.#reply(t)
      return false
    }
    this.#current = t
    const host = t.host
    if (host !== undefined) {
      if (this.#first === undefined) this.#first = host
      else if (this.#tried !== null && !this.#tried.includes(host)) this.#tried.push(host)
    }
    if (this.#paused) t.pause()
    return t.dispatch()
  }

  #remainingMs(): number {
    return this.#deadlines === undefined ? Infinity : this.#deadlines.ms - (performance.now() - this.#startedAt)
  }

  #reply(reply: LocalReply): void {
    sendLocalReply(this.#downstream, this, reply)
  }

  #targetHeaders(): HeaderObject {
    const headers: HeaderObject = { [CLUSTER_HEADER]: this.#clusterName }
    if (this.#subset !== undefined) headers[SUBSET_HEADER] = this.#subset
    return headers
  }

  #fail(err: Error): void {
    this.#finish()
    this.#downstream.onResponseError?.(this, err)
  }

  #releaseRetrySlot(): void {
    if (!this.#holdsRetrySlot) return
    this.#holdsRetrySlot = false
    this.#resources.activeRetries--
  }

  #finish(): void {
    this.#state = State.Done
    clearTimeout(this.#timer)
    this.#timer = undefined
    this.#releaseRetrySlot()
    this.#body.close()
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
