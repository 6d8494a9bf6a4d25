/**
 * The outbound admission gate of one route target: the limits of the route, then those of
 * the target's cluster, compiled once when the snapshot is built into flat lists (the local
 * buckets, the shared quotas, the bulkheads, each in that order), so a request walks them
 * without building anything. A target with no limit has no gate (`null`): the request path
 * only checks `!== null`. Running the gate (answering refusals, waiting for a quota or a
 * bulkhead) is the outbound path's (`outbound/admission.ts`).
 */
import type { ConcurrencyLimiter } from './concurrency-limit.js'
import type { GlobalRateLimiter } from './global-rate-limit.js'
import type { LimitSet } from './limits.js'
import type { LocalRateLimiter, RateLimitRequest } from './rate-limit.js'

/** A shared quota of the gate, with how a request names its key. */
export interface GateQuota {
  readonly limiter: GlobalRateLimiter
  readonly key: (req: RateLimitRequest) => string
  /** Whether a local bucket of the same place already admitted the request (then a Redis outage falls back to it). */
  readonly hasLocalBucket: boolean
}

/** The compiled limits one request passes before its first try. */
export interface AdmissionGate {
  /** Local token buckets, route first. */
  readonly buckets: readonly LocalRateLimiter[]
  /** For each bucket: whether its refusals carry `x-ratelimit-*` headers. */
  readonly bucketHeaders: readonly boolean[]
  /** Shared quotas (Redis), route first; empty when none. */
  readonly quotas: readonly GateQuota[]
  /** Bulkheads, route first; empty when none. */
  readonly bulkheads: readonly ConcurrencyLimiter[]
}

/** The gate of a target of `route` in `cluster`: both places' limits, or `null` when neither has any. */
export function compileAdmission(route: LimitSet | null, cluster: LimitSet | null): AdmissionGate | null {
  if (route === null && cluster === null) return null
  const sets = route === null ? [cluster as LimitSet] : cluster === null ? [route] : [route, cluster]
  const buckets: LocalRateLimiter[] = []
  const bucketHeaders: boolean[] = []
  const quotas: GateQuota[] = []
  const bulkheads: ConcurrencyLimiter[] = []
  for (const s of sets) {
    if (s.rate !== null) {
      buckets.push(s.rate)
      bucketHeaders.push(s.responseHeaders)
    }
    if (s.global !== null) quotas.push(Object.freeze({ limiter: s.global, key: s.globalKey, hasLocalBucket: s.rate !== null }))
    if (s.concurrency !== null) bulkheads.push(s.concurrency)
  }
  return Object.freeze({
    buckets: Object.freeze(buckets),
    bucketHeaders: Object.freeze(bucketHeaders),
    quotas: Object.freeze(quotas),
    bulkheads: Object.freeze(bulkheads),
  })
}
