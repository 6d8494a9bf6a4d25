/**
 * One outbound request through the mesh, from `dispatch` to its end: the one object each
 * stage takes — admission (`admission.ts`), fault (`fault.ts`), the tries (`send.ts`,
 * `upstream-request.ts`), retries (below, with `retry.ts`) and the response — and the one
 * controller the caller holds throughout.
 *
 * It holds what routing decided (target, path, Host, timeout, retry policy), what the
 * request holds while it runs (bulkhead slots, the route timeout, a retry slot, the
 * replayable body) and releases all of it exactly once when the request ends, however it
 * ends. Tries report to it; it passes the one response it keeps to the caller, adding `DI`
 * after a fault delay and counting the virtual cluster.
 *
 * Phases: admitting (waiting at a shared quota or a bulkhead queue) · delaying (fault
 * delay) · trying (a try in flight, no response passed on yet) · backing off (between
 * tries) · streaming (a response passed on) · done. A caller's abort acts on the phase:
 * a wait is given up and the caller answered at once; a try in flight is aborted and ends
 * the request through its error.
 */
import type { Duplex } from 'node:stream'
import { util, type Dispatcher } from 'undici'
import { abortError, MeshError } from '../errors.js'
import type { Recorder } from '../observability/metrics.js'
import type { TracingSettings } from '../observability/tracing.js'
import type { Ticket, ConcurrencyLimiter } from '../policy/concurrency-limit.js'
import type { CompiledFault } from '../policy/fault.js'
import { retryAfterMs, type RetryPolicy, type TryFailure } from '../policy/retry-policy.js'
import { CLUSTER_HEADER, ENDPOINT_HEADER, RESPONSE_FLAGS_HEADER, SUBSET_HEADER, withResponseFlag } from '../response-headers.js'
import type { Target } from '../router/route-action.js'
import type { Host } from '../upstream/host.js'
import type { ResourceManager } from '../upstream/resource-manager.js'
import { RequestController } from '../request-controller.js'
import type { DeadlineList, Expirable } from './deadlines.js'
import { LegacyHandlerAdapter, rawFrom, type Handler } from './handler.js'
import { discardBody, sendLocalReply, type LocalReply } from './local-reply.js'
import type { ReplayableBody } from './replayable-body.js'
import type { OutboundView } from './request-headers.js'

type DispatchOptions = Dispatcher.DispatchOptions
type HeaderObject = Record<string, string | string[] | undefined>

/** What the exchange asks of a try in flight (an `UpstreamRequest`). */
export interface Try {
  /** The endpoint it went to; undefined for pass-through. */
  readonly host: Host | undefined
  /** The endpoint (`host:port`) as the endpoint header names it. */
  readonly endpoint: string
  /**
   * The response's raw header list (the upstream's, then the mesh's), as old-style callers
   * take it; set when the response starts, before `tryResponse`.
   */
  readonly rawHeaders: Buffer[] | null
  /**
   * The response's headers as an object (the mesh's included), built on the first ask and
   * the same object after: asked only by what reads it (a new-style caller, a retry policy
   * reading headers, a fault delay's flag), so an old-style caller never pays for it.
   */
  responseHeaders(): HeaderObject
  /** The caller gave up: stop the try; it reports its end through `tryError`. */
  abort(reason: Error): void
  /** The route timeout expired: count the try as timed out and stop it, without answering. */
  expireRoute(err: MeshError): void
  pause(): void
  resume(): void
}

/** Starts tries: the send path (`send.ts`). */
export interface TrySender {
  /** Starts the next try of `ex` (first or retry): dispatches it, or answers the caller locally. */
  nextTry(ex: Exchange): boolean
}

/** What a retry policy that reads no header is given instead of a parsed object. */
const NO_HEADERS: HeaderObject = Object.freeze({})

/** A response small enough to read to its end rather than give up its connection. */
const DRAIN_LIMIT = 64 * 1024

const enum Phase { Admitting, Delaying, Trying, BackingOff, Streaming, Done }

export class Exchange extends RequestController implements Expirable {
  readonly sender: TrySender
  readonly opts: DispatchOptions
  readonly downstream: Handler
  /** The caller's old-style handler, when it is one: it gets raw headers and trailers as they came. */
  readonly #legacy: LegacyHandlerAdapter | null
  /** The request as routing saw it, with the caller's headers as the door read them. */
  readonly view: OutboundView
  /** The Host sent upstream: the caller's authority, or the route's `hostRewrite`. */
  readonly authority: string
  /** The path sent upstream, rewritten by the route. */
  readonly path: string
  readonly tracing: TracingSettings
  /** Where the tries go (set before the first try); null for pass-through. */
  target: Target | null = null
  /** The request's hash (hash policies), when the route has one. */
  hash: number | undefined = undefined
  /** The route's retry policy, when this request may be tried more than once. */
  retry: RetryPolicy | null = null
  /** The body each try sends: replayable under a retry policy, the caller's as it is otherwise. */
  body: ReplayableBody | undefined = undefined
  /** A mirrored copy: sent once, outside the cluster's breaker and thresholds. */
  readonly shadow: boolean
  /** The try in flight (or whose response streams). */
  current: Try | null = null
  /** Bulkhead slots this request holds until it ends. */
  held: ConcurrencyLimiter[] | null = null
  /** A bulkhead queue place while admitting. */
  ticket: Ticket | null = null
  /** The fault whose delay holds the request (released when the delay ends). */
  fault: CompiledFault | null = null
  /** A fault delay held the request: `DI` goes on its response. */
  delayed = false
  /** Tries made after the first. */
  retries = 0
  /** Endpoints tried so far: the first alone, then a list once there is a retry. */
  first: Host | undefined = undefined
  tried: Host[] | null = null
  #phase = Phase.Admitting
  #timer: NodeJS.Timeout | undefined = undefined
  #deadlines: DeadlineList | undefined = undefined
  #deadline = 0
  #deadlineStart = 0
  #holdsRetrySlot = false
  /** A try was handed to a pool: the caller's body is undici's from then on. */
  #sent = false
  /** Envoy `virtual_clusters`: the virtual cluster's recorder, counting this request once. */
  readonly #vc: Recorder | null
  readonly #vcStarted: number
  #status = 0
  #bytes = 0

  constructor(sender: TrySender, opts: DispatchOptions, downstream: Handler, view: OutboundView, authority: string, path: string, tracing: TracingSettings, vc: Recorder | null, shadow = false) {
    super()
    this.sender = sender
    this.opts = opts
    this.downstream = downstream
    this.#legacy = downstream instanceof LegacyHandlerAdapter ? downstream : null
    this.view = view
    this.authority = authority
    this.path = path
    this.tracing = tracing
    this.shadow = shadow
    this.#vc = vc
    this.#vcStarted = vc === null ? 0 : performance.now()
    vc?.start()
  }

  /** Whether the request ended (answered, failed or aborted). */
  get done(): boolean {
    return this.#phase === Phase.Done
  }

  /** The cluster's resource manager (thresholds, retry budget) of the target. */
  get resources(): ResourceManager | null {
    return this.target === null || this.shadow ? null : this.target.cluster.resources
  }

  // ------------------------------------------------------------ stages

  /** A fault delay holds the request for `ms`, then `then` runs (unless the caller gave up). */
  delay(fault: CompiledFault, ms: number, then: () => void): void {
    this.#phase = Phase.Delaying
    this.fault = fault
    this.delayed = true
    this.#timer = setTimeout(() => {
      this.#timer = undefined
      if (this.#phase !== Phase.Delaying) return
      this.#phase = Phase.Admitting
      this.fault = null
      fault.release()
      try {
        then()
      } catch (err) {
        // The rest of the path reports through the handler; a throw here would escape a timer.
        this.fail(err instanceof Error ? err : new Error(String(err)))
      }
    }, ms)
  }

  /**
   * The route timeout starts (once, when the first try is about to go: limits and a fault
   * delay come before it, as Envoy's router filter comes after theirs).
   */
  startTimeout(deadlines: DeadlineList | undefined, now: number): void {
    this.#deadlineStart = now
    if (deadlines === undefined) return
    this.#deadlines = deadlines
    this.#deadline = deadlines.add(this, this.#deadlineStart)
  }

  /** A try is in flight now (the first, or a retry after its back-off). */
  trying(t: Try): void {
    this.#phase = Phase.Trying
    this.#sent = true
    this.current = t
    const host = t.host
    if (host !== undefined) {
      if (this.first === undefined) this.first = host
      else if (this.tried !== null && !this.tried.includes(host)) this.tried.push(host)
    }
    if (this.paused) t.pause()
  }

  /** Endpoints a retry should avoid (Envoy's previous_hosts), or null for the first try. */
  avoid(): readonly Host[] | null {
    if (this.first === undefined) return null
    return (this.tried ??= [this.first])
  }

  // ------------------------------------------------------------ controller, for the caller

  protected override aborting(reason: Error): void {
    switch (this.#phase) {
      case Phase.Done:
        return
      case Phase.Trying:
      case Phase.Streaming: {
        const t = this.current
        if (t !== null) {
          // The try answers through tryError, which ends this request.
          t.abort(abortError(reason))
          // (Unless it had not reached its pool yet and ended at once.)
          if ((this.#phase as Phase) !== Phase.Done) this.fail(abortError(reason))
          return
        }
        this.fail(abortError(reason))
        return
      }
      default:
        // Waiting (limits, fault delay, back-off): give up the wait and answer now.
        this.fail(abortError(reason))
    }
  }

  protected override pausing(paused: boolean): void {
    const t = this.current
    if (t === null) return
    if (paused) t.pause()
    else t.resume()
  }

  // ------------------------------------------------------------ from the tries

  /**
   * A try's response started (status ≥ 200); its head is the try's (`rawHeaders`,
   * `responseHeaders()`). Returns nothing: the exchange keeps it or retries.
   */
  tryResponse(t: Try, statusCode: number, statusMessage: string | undefined): void {
    if (t !== this.current || this.#phase !== Phase.Trying) return
    const policy = this.retry
    if (policy !== null) {
      const retriable = policy.retriesResponse(statusCode, policy.readsResponseHeaders ? t.responseHeaders() : NO_HEADERS)
      if (retriable && this.#retryAfter(t, t.responseHeaders())) {
        // Drain a small body (the connection is kept), abort a large one.
        const length = Number(t.responseHeaders()['content-length'])
        if (!(length >= 0 && length <= DRAIN_LIMIT)) t.abort(new MeshError('SIDECARLESS_ERR_ABORTED', 'the response is being retried'))
        return
      }
      if (this.retries > 0 && !retriable) this.resources?.retrySucceeded()
    }
    this.#phase = Phase.Streaming
    this.#status = statusCode
    let raw = t.rawHeaders
    if (this.delayed) {
      const headers = t.responseHeaders()
      headers[RESPONSE_FLAGS_HEADER] = withResponseFlag(headers[RESPONSE_FLAGS_HEADER], 'DI')
      raw = rawFrom(headers)
    } else if (raw === null) {
      raw = rawFrom(t.responseHeaders())
    }
    this.rawHeaders = raw
    const legacy = this.#legacy
    if (legacy !== null) legacy.onRawResponseStart(this, statusCode, raw, statusMessage)
    else this.downstream.onResponseStart?.(this, statusCode, t.responseHeaders(), statusMessage)
  }

  /**
   * A try failed before its response (the mesh answers for the upstream: 503 on a refused,
   * failed or reset connection, 504 on its per-try timeout). Retried when the policy says
   * so, else `reply` is the answer.
   */
  tryFailed(t: Try, failure: TryFailure, reply: LocalReply): void {
    if (t !== this.current || this.#phase !== Phase.Trying) return
    const policy = this.retry
    if (policy !== null) {
      const resources = this.resources
      if (failure === 'timeout') resources?.perTryTimedOut()
      const retriable = policy.retriesFailure(failure)
      if (retriable && this.#retryAfter(t, undefined)) return
      if (this.retries > 0 && !retriable) resources?.retrySucceeded()
    }
    this.reply(reply)
  }

  tryData(t: Try, chunk: Buffer): void {
    if (t !== this.current || this.#phase !== Phase.Streaming) return
    this.#bytes += chunk.length
    this.downstream.onResponseData?.(this, chunk)
  }

  /** The try's response ended, with its raw trailers (undici's list, usually empty). */
  tryEnd(t: Try, rawTrailers: Buffer[]): void {
    if (t !== this.current || this.#phase !== Phase.Streaming) return
    this.#finish()
    this.#vcEnd()
    const legacy = this.#legacy
    // An old-style caller gets the trailers as a header object would give them back (names
    // in lower case, repeated names together), as it always has; without trailers, the list.
    if (legacy !== null) legacy.onRawResponseEnd(this, rawTrailers.length === 0 ? rawTrailers : rawFrom(trailersOf(rawTrailers)))
    else this.downstream.onResponseEnd?.(this, trailersOf(rawTrailers))
  }

  tryError(t: Try, err: Error): void {
    if (t !== this.current || this.#phase === Phase.Done) return
    this.fail(err)
  }

  tryUpgrade(t: Try, statusCode: number, headers: HeaderObject, socket: Duplex): void {
    if (t !== this.current || this.#phase !== Phase.Trying) return
    this.#finish()
    this.#vcEnd()
    this.downstream.onRequestUpgrade?.(this, statusCode, headers, socket)
  }

  // ------------------------------------------------------------ endings

  /** Answers the caller with a local reply; the request ends. */
  reply(reply: LocalReply): void {
    if (this.#phase === Phase.Done) return
    this.#finish()
    if (!this.#sent) discardBody(this.opts.body)
    if (this.#vc !== null) {
      this.#status = reply.status
      this.#bytes = typeof reply.body === 'string' ? Buffer.byteLength(reply.body) : (reply.body?.length ?? 0)
      this.#vcEnd()
    }
    sendLocalReply(this.downstream, this, reply, this.delayed)
  }

  /** Answers with a local reply on the next microtask (the caller may be inside `dispatch`); an abort meanwhile wins. */
  replyLater(reply: LocalReply): void {
    queueMicrotask(() => this.reply(reply))
  }

  /** Fails the request with `err` (a coded error, or undici's); the request ends. */
  fail(err: Error): void {
    if (this.#phase === Phase.Done) return
    this.#finish()
    if (!this.#sent) discardBody(this.opts.body)
    this.#vcFail()
    this.downstream.onResponseError?.(this, err)
  }

  /** Route timeout: 504 before a response was passed on, a coded error after. */
  expire(): void {
    this.#deadlines = undefined
    if (this.#phase === Phase.Done) return
    const err = new MeshError('SIDECARLESS_ERR_UPSTREAM_TIMEOUT', 'the route timeout expired')
    const streaming = this.#phase === Phase.Streaming
    const t = this.current
    this.current = null
    t?.expireRoute(err)
    if (streaming) {
      this.fail(err)
      return
    }
    this.reply({ status: 504, body: 'upstream request timeout', flag: 'UT', headers: this.targetHeaders(t?.endpoint) })
  }

  /** `x-sidecarless-cluster` / `-subset` (and `-endpoint`, when one was tried) of a reply the mesh makes. */
  targetHeaders(endpoint?: string): HeaderObject {
    const target = this.target
    const headers: HeaderObject = {}
    if (target === null) return headers
    headers[CLUSTER_HEADER] = target.clusterName
    if (target.subset !== undefined) headers[SUBSET_HEADER] = target.subset
    if (endpoint !== undefined) headers[ENDPOINT_HEADER] = endpoint
    return headers
  }

  // ------------------------------------------------------------ internals

  /**
   * Decides whether a retriable outcome is retried: tries left, a replayable body, room in
   * the retry budget, and a `Retry-After` within bounds. When it is, the try is let go and
   * the next one is scheduled.
   */
  #retryAfter(t: Try, headers: HeaderObject | undefined): boolean {
    const policy = this.retry as RetryPolicy
    const resources = this.resources
    if (this.retries >= policy.numRetries) {
      resources?.retryLimitReached()
      return false
    }
    if (this.body === undefined || !this.body.replayable) return false
    let wait: number
    const asked = headers === undefined ? undefined : retryAfterMs(headers['retry-after'])
    if (asked !== undefined) {
      const left = this.#deadlines === undefined ? Infinity : this.#deadlines.ms - (performance.now() - this.#deadlineStart)
      if (asked > policy.maxRetryAfterMs || asked >= left) return false
      wait = asked
    } else {
      wait = policy.backOffMs(this.retries + 1)
    }
    // The slot a retry in flight held is given back before asking for the next one.
    this.#releaseRetrySlot()
    if (resources !== null && !resources.acquireRetry()) return false
    this.#holdsRetrySlot = resources !== null
    this.retries++
    // Forget the try first: letting it go may call back into this request.
    if (this.current === t) this.current = null
    this.#phase = Phase.BackingOff
    this.#timer = setTimeout(() => {
      this.#timer = undefined
      if (this.#phase !== Phase.BackingOff) return
      this.#phase = Phase.Trying
      this.sender.nextTry(this)
    }, wait)
    return true
  }

  #releaseRetrySlot(): void {
    if (!this.#holdsRetrySlot) return
    this.#holdsRetrySlot = false
    this.resources?.releaseRetry()
  }

  /** Releases what the request holds; it is over. */
  #finish(): void {
    const phase = this.#phase
    this.#phase = Phase.Done
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer)
      this.#timer = undefined
    }
    if (phase === Phase.Delaying && this.fault !== null) {
      this.fault.release()
      this.fault = null
    }
    if (this.ticket !== null) {
      this.ticket.cancel()
      this.ticket = null
    }
    this.#releaseRetrySlot()
    this.body?.close()
    if (this.#deadlines !== undefined) {
      this.#deadlines.cancel(this.#deadline)
      this.#deadlines = undefined
    }
    const held = this.held
    if (held !== null) {
      this.held = null
      for (let i = 0; i < held.length; i++) (held[i] as ConcurrencyLimiter).release()
    }
  }

  #vcEnd(): void {
    this.#vc?.end(this.#status, performance.now() - this.#vcStarted, this.#bytes, 0)
  }

  #vcFail(): void {
    this.#vc?.fail('reset', performance.now() - this.#vcStarted)
  }
}

/** Trailers as an object, as undici builds one from its raw list. */
function trailersOf(raw: Buffer[]): HeaderObject {
  return util.parseHeaders(raw)
}
