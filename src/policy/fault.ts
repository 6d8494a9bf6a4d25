/**
 * Fault injection (Envoy's HTTP fault filter, Istio's `HTTPFaultInjection`), outbound and
 * inbound. A route's `fault` config is compiled once into a {@link CompiledFault}; routes
 * without one carry `null`, so the request path only checks `!== null`.
 *
 * Per request, in Envoy's order: if `maxActiveFaults` requests are already held by a delay,
 * no fault is injected (counted as `overflow`); otherwise the delay is drawn, then the abort.
 * A delayed request waits before it goes on (flag `DI` added to the response's
 * `x-sidecarless-response-flags`); an aborted one is answered `httpStatus` with the body
 * `fault filter abort` and flag `FI`. Both together: the delay, then the abort (`DI,FI`).
 *
 * Header-driven faults (`headerDelay` / `headerAbort`, Envoy's `header_delay` /
 * `header_abort`) read `x-envoy-fault-delay-request` (milliseconds, capped at
 * `defaults.faultHeaderDelayMaxMs`), `x-envoy-fault-abort-request` (200–599) and their
 * `-percentage` companions (0–100; the lower of the header and the config applies, as in
 * Envoy). Header values are parsed strictly; anything else is ignored (no fault).
 */
import type http from 'node:http'
import type { Dispatcher } from 'undici'
import type { FaultConfig } from '../config/types.js'
import { defaults } from '../config/defaults.js'
import { parseDuration } from '../config/duration.js'
import { abortError, MeshError } from '../errors.js'
import { rawFrom, type Controller, type Handler } from '../outbound/handler.js'
import { LocalController, sendLocalReply } from '../outbound/local-reply.js'
import { RESPONSE_FLAGS_HEADER } from '../outbound/response-headers.js'

type HeaderObject = Record<string, string | string[] | undefined>

/** Envoy's body of an aborted request. */
export const FAULT_ABORT_BODY = 'fault filter abort'

/** Header names of Envoy's header-controlled faults. */
export const FAULT_HEADERS = Object.freeze({
  abort: 'x-envoy-fault-abort-request',
  abortPercentage: 'x-envoy-fault-abort-request-percentage',
  delay: 'x-envoy-fault-delay-request',
  delayPercentage: 'x-envoy-fault-delay-request-percentage',
})

/** Counters of one route's fault (Envoy's `fault.*` stats). */
export interface FaultStats {
  readonly delaysInjected: number
  readonly abortsInjected: number
  /** Requests held by a delay now. */
  readonly active: number
  /** Faults not injected because `maxActiveFaults` were active (Envoy `faults_overflow`). */
  readonly overflow: number
}

/** What one request drew: a delay (ms, 0 for none) and an abort status (0 for none). */
export interface FaultDecision {
  readonly delayMs: number
  readonly abortStatus: number
}

/** Reads one request header (first value, lower-case name). */
export type HeaderReader = (name: string) => string | undefined

/**
 * One route's fault, compiled. Immutable config plus four counters. The active count
 * belongs to this compiled object: after a config swap the new snapshot's fault starts
 * counting from zero while requests delayed under the old one finish.
 */
export class CompiledFault {
  /** Fixed delay (ms); 0 with no delay or a header-driven one. */
  readonly delayMs: number
  readonly delayFromHeader: boolean
  /** Percent of requests delayed; -1 when the fault has no delay. */
  readonly delayPercent: number
  readonly abortStatus: number
  readonly abortFromHeader: boolean
  /** Percent of requests aborted; -1 when the fault has no abort. */
  readonly abortPercent: number
  readonly maxActive: number
  #active = 0
  #delays = 0
  #aborts = 0
  #overflow = 0

  constructor(config: FaultConfig) {
    const d = config.delay
    const a = config.abort
    this.delayFromHeader = d?.headerDelay === true
    this.delayMs = d === undefined || this.delayFromHeader ? 0 : (parseDuration(d.fixedDelay) ?? 0)
    this.delayPercent = d === undefined ? -1 : (d.percentage ?? defaults.faultPercentage)
    this.abortFromHeader = a?.headerAbort === true
    this.abortStatus = a === undefined || this.abortFromHeader ? 0 : (a.httpStatus ?? 0)
    this.abortPercent = a === undefined ? -1 : (a.percentage ?? defaults.faultPercentage)
    this.maxActive = config.maxActiveFaults ?? Infinity
  }

  /** The fault of one request, or `null` for none. Counts what it injects. */
  decide(header: HeaderReader): FaultDecision | null {
    if (this.#active >= this.maxActive) {
      this.#overflow++
      return null
    }
    let delayMs = 0
    if (this.delayPercent >= 0) {
      let ms = this.delayMs
      let pct = this.delayPercent
      if (this.delayFromHeader) {
        ms = Math.min(parseUintHeader(header(FAULT_HEADERS.delay), 0, Number.MAX_SAFE_INTEGER) ?? 0, defaults.faultHeaderDelayMaxMs)
        pct = Math.min(pct, parsePercentHeader(header(FAULT_HEADERS.delayPercentage)) ?? pct)
      }
      if (ms > 0 && draw(pct)) delayMs = ms
    }
    let abortStatus = 0
    if (this.abortPercent >= 0) {
      let status = this.abortStatus
      let pct = this.abortPercent
      if (this.abortFromHeader) {
        status = parseUintHeader(header(FAULT_HEADERS.abort), 200, 599) ?? 0
        pct = Math.min(pct, parsePercentHeader(header(FAULT_HEADERS.abortPercentage)) ?? pct)
      }
      if (status !== 0 && draw(pct)) abortStatus = status
    }
    if (delayMs === 0 && abortStatus === 0) return null
    if (delayMs > 0) {
      this.#delays++
      this.#active++
    }
    if (abortStatus !== 0) this.#aborts++
    return { delayMs, abortStatus }
  }

  /** A delayed request stopped waiting (went on, or its caller gave up). */
  release(): void {
    this.#active--
  }

  /** The counters, read at one moment. */
  stats(): FaultStats {
    return { delaysInjected: this.#delays, abortsInjected: this.#aborts, active: this.#active, overflow: this.#overflow }
  }
}

/** Compiles a route's fault; `null` when it has none. */
export function compileFault(config: FaultConfig | undefined): CompiledFault | null {
  if (config === undefined || (config.delay === undefined && config.abort === undefined)) return null
  return new CompiledFault(config)
}

function draw(percent: number): boolean {
  return percent >= 100 || (percent > 0 && Math.random() * 100 < percent)
}

const UINT = /^[0-9]{1,15}$/
const PERCENT = /^[0-9]{1,3}(?:\.[0-9]{1,6})?$/

/** A decimal integer within `min..max`, or undefined for anything else (hostile input). */
function parseUintHeader(value: string | undefined, min: number, max: number): number | undefined {
  if (value === undefined || !UINT.test(value)) return undefined
  const n = Number(value)
  return n >= min && n <= max ? n : undefined
}

/** A percentage 0–100 (fractions allowed), or undefined. */
function parsePercentHeader(value: string | undefined): number | undefined {
  if (value === undefined || !PERCENT.test(value)) return undefined
  const n = Number(value)
  return n <= 100 ? n : undefined
}

/** The flag header with `flag` added (`DI` first, then whatever the reply carried). */
function withFlag(existing: string | string[] | number | undefined, flag: string): string {
  if (existing === undefined) return flag
  const s = Array.isArray(existing) ? existing.join(',') : String(existing)
  return s === '' ? flag : `${flag},${s}`
}

// ---------------------------------------------------------------- outbound

/**
 * Applies a route's fault to an outbound request. With no fault drawn, calls `proceed(h)`
 * at once and returns its result. An abort is answered locally; a delay holds the request
 * (its body untouched) and then calls `proceed` with a handler that adds `DI` to the
 * response flags. The caller may abort during the delay: the timer is cleared, a streaming
 * body is released and the caller gets `SIDECARLESS_ERR_ABORTED`.
 */
export function injectFault(
  fault: CompiledFault,
  opts: Dispatcher.DispatchOptions,
  h: Handler,
  header: HeaderReader,
  proceed: (h: Handler) => boolean,
): boolean {
  const d = fault.decide(header)
  if (d === null) return proceed(h)
  if (d.delayMs === 0) {
    discardBody(opts.body)
    const controller = new LocalController()
    h.onRequestStart?.(controller, {})
    queueMicrotask(() => {
      if (!controller.aborted) sendLocalReply(h, controller, { status: d.abortStatus, body: FAULT_ABORT_BODY, flag: 'FI' })
      else h.onResponseError?.(controller, abortError(controller.reason))
    })
    return true
  }
  const delayed = new DelayedRequest(fault, d, opts.body, h, proceed)
  h.onRequestStart?.(delayed, {})
  delayed.arm()
  return true
}

const enum Phase { Waiting, Forwarded, Done }

/**
 * A request held by a fault delay. Controller towards the caller (abort while waiting ends
 * it; afterwards calls pass on to whatever carries the request), handler towards the rest
 * of the path (it adds `DI` to the response flags and forwards).
 */
class DelayedRequest implements Controller, Handler {
  readonly #fault: CompiledFault
  readonly #decision: FaultDecision
  readonly #down: Handler
  readonly #proceed: (h: Handler) => boolean
  #body: unknown
  #next: Controller | null = null
  #timer: NodeJS.Timeout | undefined
  #phase = Phase.Waiting
  #aborted = false
  #paused = false
  #reason: Error | null = null
  rawHeaders: Buffer[] | null = null

  constructor(fault: CompiledFault, decision: FaultDecision, body: unknown, down: Handler, proceed: (h: Handler) => boolean) {
    this.#fault = fault
    this.#decision = decision
    this.#body = body
    this.#down = down
    this.#proceed = proceed
  }

  arm(): void {
    if (this.#phase !== Phase.Waiting) return
    this.#timer = setTimeout(() => this.#fire(), this.#decision.delayMs)
  }

  #fire(): void {
    this.#timer = undefined
    if (this.#phase !== Phase.Waiting) return
    this.#phase = Phase.Forwarded
    this.#fault.release()
    const body = this.#body
    this.#body = undefined
    if (this.#decision.abortStatus !== 0) {
      discardBody(body)
      const local = new LocalController()
      this.onRequestStart(local)
      sendLocalReply(this, local, { status: this.#decision.abortStatus, body: FAULT_ABORT_BODY, flag: 'FI' })
      return
    }
    try {
      this.#proceed(this)
    } catch (err) {
      // The rest of the path reports through the handler; a throw here would escape a timer.
      this.onResponseError(this, err instanceof Error ? err : new Error(String(err)))
    }
  }

  // ------------------------------------------------------------ controller, for the caller

  get aborted(): boolean {
    return this.#next?.aborted ?? this.#aborted
  }

  get paused(): boolean {
    return this.#next?.paused ?? this.#paused
  }

  get reason(): Error | null {
    return this.#next?.reason ?? this.#reason
  }

  abort(reason: Error): void {
    if (this.#next !== null) {
      this.#next.abort(reason)
      return
    }
    if (this.#aborted || this.#phase === Phase.Done) return
    this.#aborted = true
    this.#reason = reason
    if (this.#phase !== Phase.Waiting) return
    this.#phase = Phase.Done
    clearTimeout(this.#timer)
    this.#timer = undefined
    this.#fault.release()
    discardBody(this.#body)
    this.#body = undefined
    this.#down.onResponseError?.(this, abortError(reason))
  }

  pause(): void {
    this.#paused = true
    this.#next?.pause()
  }

  resume(): void {
    this.#paused = false
    this.#next?.resume()
  }

  // ------------------------------------------------------------ handler, for the rest of the path

  onRequestStart(controller: Controller): void {
    this.#next = controller
    if (this.#aborted) controller.abort(this.#reason ?? new MeshError('SIDECARLESS_ERR_ABORTED', 'request no longer wanted'))
    else if (this.#paused) controller.pause()
  }

  onRequestUpgrade(_controller: Controller, statusCode: number, headers: HeaderObject, socket: never): void {
    this.#phase = Phase.Done
    this.#down.onRequestUpgrade?.(this, statusCode, headers, socket)
  }

  onResponseStart(_controller: Controller, statusCode: number, headers: HeaderObject, statusMessage?: string): void {
    if (statusCode >= 200) headers[RESPONSE_FLAGS_HEADER] = withFlag(headers[RESPONSE_FLAGS_HEADER], 'DI')
    this.rawHeaders = rawFrom(headers)
    this.#down.onResponseStart?.(this, statusCode, headers, statusMessage)
  }

  onResponseData(_controller: Controller, chunk: Buffer): void {
    this.#down.onResponseData?.(this, chunk)
  }

  onResponseEnd(_controller: Controller, trailers: HeaderObject): void {
    this.#phase = Phase.Done
    this.#down.onResponseEnd?.(this, trailers)
  }

  onResponseError(_controller: Controller, err: Error): void {
    this.#phase = Phase.Done
    this.#down.onResponseError?.(this, err)
  }
}

/** A request answered locally never sends its body: release a streaming one. */
function discardBody(body: unknown): void {
  if (body === null || typeof body !== 'object') return
  const b = body as { destroy?: () => void; resume?: () => void }
  if (typeof b.resume === 'function' && typeof b.destroy === 'function') b.destroy()
}

// ---------------------------------------------------------------- inbound

/**
 * The inbound fault filter, right before the app. With no fault drawn, calls `proceed` at
 * once. An abort answers `httpStatus` / `fault filter abort` / flag `FI` and the app is
 * never called; the request's metrics record it as an ordinary response with that status
 * (as Envoy counts it in `downstream_rq_xx`), and {@link FaultStats} count the fault. A
 * delay holds the request before the app sees it (flag `DI` set on the response); a caller
 * that disconnects meanwhile clears the timer, and the app is never called.
 */
export function applyInboundFault(fault: CompiledFault, req: http.IncomingMessage, res: http.ServerResponse, proceed: () => void): void {
  const headers = req.headers
  const d = fault.decide((name) => {
    const v = headers[name]
    return typeof v === 'string' ? v : undefined
  })
  if (d === null) {
    proceed()
    return
  }
  if (d.delayMs === 0) {
    answerAbort(res, d.abortStatus)
    return
  }
  res.setHeader(RESPONSE_FLAGS_HEADER, 'DI')
  const onClose = (): void => {
    clearTimeout(timer)
    fault.release()
  }
  const timer = setTimeout(() => {
    res.off('close', onClose)
    fault.release()
    if (res.destroyed || res.writableEnded) return
    if (d.abortStatus !== 0) answerAbort(res, d.abortStatus)
    else proceed()
  }, d.delayMs)
  res.once('close', onClose)
}

function answerAbort(res: http.ServerResponse, status: number): void {
  res.statusCode = status
  res.setHeader('content-type', 'text/plain')
  // After a delay the header already says DI.
  res.setHeader(RESPONSE_FLAGS_HEADER, res.hasHeader(RESPONSE_FLAGS_HEADER) ? 'DI,FI' : 'FI')
  res.end(FAULT_ABORT_BODY)
}
