/**
 * Envoy's circuit-breaker thresholds of one cluster: requests in flight, requests waiting
 * for a connection, and retries in flight (a fixed cap, or Envoy's retry budget). Counting
 * is a few integer updates per try; a request beyond a threshold is shed at once.
 */
import { defaults } from '../config/defaults.js'
import type { CircuitBreakersConfig } from '../config/types.js'

/** Which threshold shed a request (the value of `x-sidecarless-overflow`). */
export type OverflowReason = 'max_requests' | 'max_pending_requests' | 'breaker_open'

/** Counters of a cluster's resilience policies (Envoy's `upstream_rq_retry*`, `*_overflow`). */
export interface ResilienceStats {
  /** Tries sent again after a retriable outcome. */
  readonly retries: number
  /** Requests whose last retry got a response that was not retried. */
  readonly retrySuccesses: number
  /** Retries not made because the retry budget or `maxRetries` was used up. */
  readonly retryOverflows: number
  /** Requests that ran out of `numRetries` with a retriable outcome. */
  readonly retryLimitExceeded: number
  /** Tries that ran out of their per-try timeout. */
  readonly perTryTimeouts: number
  /** Requests shed by a threshold or an open breaker, by reason. */
  readonly overflows: Readonly<Record<OverflowReason, number>>
  /** Requests in flight / waiting for a connection / retries in flight, now. */
  readonly active: number
  readonly pending: number
  readonly activeRetries: number
}

/** The thresholds and live counts of one cluster. */
export class ClusterResources {
  /** Tries in flight. */
  active = 0
  /** Tries handed to a pool that have not started writing (waiting for a connection); each is also counted in `active`. */
  pending = 0
  /** Retries in flight. */
  activeRetries = 0
  readonly maxRequests: number
  readonly maxPendingRequests: number
  /** Fixed retry cap; -1 when the retry budget decides. */
  readonly maxRetries: number
  readonly budgetRatio: number
  readonly minRetryConcurrency: number

  retries = 0
  retrySuccesses = 0
  retryOverflows = 0
  retryLimitExceeded = 0
  perTryTimeouts = 0
  readonly overflows: Record<OverflowReason, number> = { max_requests: 0, max_pending_requests: 0, breaker_open: 0 }

  constructor(config: CircuitBreakersConfig | undefined) {
    this.maxRequests = config?.maxRequests ?? defaults.maxRequests
    this.maxPendingRequests = config?.maxPendingRequests ?? defaults.maxPendingRequests
    const budget = config?.retryBudget
    this.maxRetries = budget === undefined ? config?.maxRetries ?? defaults.maxRetries : -1
    this.budgetRatio = (budget?.budgetPercent ?? defaults.retryBudgetPercent) / 100
    this.minRetryConcurrency = budget?.minRetryConcurrency ?? defaults.retryBudgetMinConcurrency
  }

  /** The threshold a new try would cross, or null when it may go. */
  admit(): OverflowReason | null {
    if (this.active >= this.maxRequests) return 'max_requests'
    // Envoy counts a request as pending only while it waits; with free connections it waits
    // for none. Ours: every try is pending until its pool starts writing it.
    if (this.pending >= this.maxPendingRequests) return 'max_pending_requests'
    return null
  }

  /**
   * Whether one more retry may start now (Envoy: `max_retries`, or the retry budget). Envoy's
   * budget is a share of its active plus pending requests, two disjoint sets; here every
   * pending try is also counted in `active`, so `active` alone is that sum.
   */
  mayRetry(): boolean {
    if (this.maxRetries >= 0) return this.activeRetries < this.maxRetries
    const allowed = Math.max(this.minRetryConcurrency, this.budgetRatio * this.active)
    return this.activeRetries < allowed
  }

  stats(): ResilienceStats {
    return {
      retries: this.retries,
      retrySuccesses: this.retrySuccesses,
      retryOverflows: this.retryOverflows,
      retryLimitExceeded: this.retryLimitExceeded,
      perTryTimeouts: this.perTryTimeouts,
      overflows: { ...this.overflows },
      active: this.active,
      pending: this.pending,
      activeRetries: this.activeRetries,
    }
  }
}
