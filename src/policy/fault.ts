/**
 * Fault injection (Envoy's HTTP fault filter, Istio's `HTTPFaultInjection`): the decision,
 * shared by the outbound path (`outbound/fault.ts`) and the inbound filter
 * (`inbound/fault-filter.ts`). A route's `fault` config is compiled once into a
 * {@link CompiledFault}; routes without one carry `null`, so the request path only checks
 * `!== null`.
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
import type { FaultConfig } from '../config/types.js'
import { defaults } from '../config/defaults.js'
import { parseDuration } from '../config/duration.js'

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

