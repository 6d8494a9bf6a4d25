/**
 * A compiled retry policy (Envoy `RetryPolicy`): which outcomes are retried, how long to
 * wait between tries, and which requests may be sent twice at all. Built once per route;
 * the per-request state lives in the retrying request.
 */
import { defaults } from '../config/defaults.js'
import { parseDuration } from '../config/duration.js'
import type { HeaderMatcher, RetryOn, RetryPolicyConfig } from '../config/types.js'
import { compileHeaderMatchers } from '../http/matcher.js'
import type { RequestView } from '../http/request-view.js'

/** How a try ended without a response of its own (a local reply stands in for it). */
export type TryFailure = 'connect_failure' | 'reset' | 'refused' | 'timeout'

const enum On {
  FiveXx = 1,
  GatewayError = 2,
  Reset = 4,
  ConnectFailure = 8,
  RefusedStream = 16,
  Retriable4xx = 32,
  RetriableStatusCodes = 64,
  RetriableHeaders = 128,
}

const BITS: Readonly<Record<RetryOn, On>> = {
  '5xx': On.FiveXx,
  'gateway-error': On.GatewayError,
  reset: On.Reset,
  'connect-failure': On.ConnectFailure,
  'refused-stream': On.RefusedStream,
  'retriable-4xx': On.Retriable4xx,
  'retriable-status-codes': On.RetriableStatusCodes,
  'retriable-headers': On.RetriableHeaders,
}

type HeaderObject = Record<string, string | string[] | undefined>

/** A route's retry policy, ready to consult. */
export class RetryPolicy {
  readonly numRetries: number
  /** 0: no per-try timeout. */
  readonly perTryTimeoutMs: number
  readonly baseIntervalMs: number
  readonly maxIntervalMs: number
  readonly maxRetryAfterMs: number
  readonly hostSelectionAttempts: number
  readonly #on: number
  readonly #statusCodes: ReadonlySet<number>
  readonly #responseHeaders: ((header: (name: string) => string | undefined) => boolean)[] | null
  readonly #requestHeaders: ((header: (name: string) => string | undefined) => boolean)[] | null
  readonly #methods: ReadonlySet<string>

  constructor(config: RetryPolicyConfig) {
    const on = typeof config.retryOn === 'string' ? config.retryOn.split(',').map((v) => v.trim()) : config.retryOn
    let bits = 0
    for (const c of on) bits |= BITS[c as RetryOn] ?? 0
    this.#on = bits
    this.numRetries = config.numRetries ?? defaults.numRetries
    this.perTryTimeoutMs = parseDuration(config.perTryTimeout) ?? 0
    this.baseIntervalMs = parseDuration(config.retryBackOff?.baseInterval) ?? defaults.retryBaseIntervalMs
    this.maxIntervalMs = parseDuration(config.retryBackOff?.maxInterval) ?? this.baseIntervalMs * defaults.retryMaxIntervalFactor
    this.maxRetryAfterMs = parseDuration(config.maxRetryAfter) ?? defaults.maxRetryAfterMs
    this.hostSelectionAttempts = config.hostSelectionRetryMaxAttempts ?? defaults.hostSelectionRetryMaxAttempts
    this.#statusCodes = new Set(config.retriableStatusCodes ?? [])
    // Envoy: a response is retriable when it matches any one of the matchers.
    this.#responseHeaders = eachMatcher(config.retriableHeaders)
    this.#requestHeaders = eachMatcher(config.retriableRequestHeaders)
    this.#methods = new Set(config.retriableMethods ?? defaults.retriableMethods)
  }

  /** Whether this request may be tried more than once: its method (or an `Idempotency-Key`) and Envoy's request-header matchers. */
  admits(req: RequestView): boolean {
    if (this.numRetries === 0) return false
    if (!this.#methods.has(req.method) && req.header('idempotency-key') === undefined) return false
    if (this.#requestHeaders === null) return true
    const header = (name: string): string | undefined => req.header(name)
    return this.#requestHeaders.some((m) => m(header))
  }

  /** Whether `retriesResponse` reads the headers (`retriable-headers`): when not, callers need not build them. */
  get readsResponseHeaders(): boolean {
    return (this.#on & On.RetriableHeaders) !== 0 && this.#responseHeaders !== null
  }

  /** Whether a response with this status and these headers is retried. */
  retriesResponse(status: number, headers: HeaderObject): boolean {
    const on = this.#on
    if (status >= 500) {
      if ((on & On.FiveXx) !== 0) return true
      if ((on & On.GatewayError) !== 0 && status >= 502 && status <= 504) return true
    }
    if ((on & On.Retriable4xx) !== 0 && status === 409) return true
    if ((on & On.RetriableStatusCodes) !== 0 && this.#statusCodes.has(status)) return true
    if ((on & On.RetriableHeaders) !== 0 && this.#responseHeaders !== null) {
      const header = (name: string): string | undefined => {
        const v = headers[name]
        return Array.isArray(v) ? v[0] : v
      }
      if (this.#responseHeaders.some((m) => m(header))) return true
    }
    return false
  }

  /** Whether a try that failed this way (the mesh answered 503/504 for it) is retried. */
  retriesFailure(failure: TryFailure): boolean {
    const on = this.#on
    switch (failure) {
      case 'connect_failure':
        return (on & (On.ConnectFailure | On.FiveXx)) !== 0
      case 'refused':
        return (on & (On.RefusedStream | On.ConnectFailure | On.Reset | On.FiveXx)) !== 0
      case 'reset':
        return (on & (On.Reset | On.FiveXx)) !== 0
      case 'timeout':
        // Envoy treats a per-try timeout as a 504 from the upstream.
        return (on & (On.FiveXx | On.GatewayError)) !== 0 || ((on & On.RetriableStatusCodes) !== 0 && this.#statusCodes.has(504))
    }
  }

  /** Envoy's fully jittered exponential back-off before retry number `retry` (1-based). */
  backOffMs(retry: number): number {
    const ceiling = Math.min(this.maxIntervalMs, this.baseIntervalMs * 2 ** Math.min(retry - 1, 30))
    return Math.random() * ceiling
  }
}

function eachMatcher(list: readonly HeaderMatcher[] | undefined): ((header: (name: string) => string | undefined) => boolean)[] | null {
  if (list === undefined || list.length === 0) return null
  return list.map((m) => compileHeaderMatchers([m]))
}

/**
 * The wait a `Retry-After` value asks for, in milliseconds: delay-seconds or an HTTP date
 * (RFC 9110 §10.2.3). Undefined when absent or unparseable; a date in the past is 0.
 */
export function retryAfterMs(value: string | string[] | undefined, now = Date.now()): number | undefined {
  const v = Array.isArray(value) ? value[0] : value
  if (v === undefined) return undefined
  const text = v.trim()
  if (/^\d{1,10}$/.test(text)) return Number(text) * 1000
  // HTTP dates only (IMF-fixdate, RFC 850, asctime): Date.parse takes far more than that.
  if (text.length > 64 || !(/ GMT$/.test(text) || /^[A-Za-z]{3} [A-Za-z]{3} [ \d]\d \d{2}:\d{2}:\d{2} \d{4}$/.test(text))) return undefined
  const date = Date.parse(text.endsWith(' GMT') ? text : `${text} GMT`)
  if (Number.isNaN(date)) return undefined
  return Math.max(0, date - now)
}
