/**
 * Envoy's resource manager of one cluster (its circuit-breaker thresholds): requests in
 * flight, requests waiting for a connection, and retries in flight (a fixed cap, or Envoy's
 * retry budget). A try acquires a request slot before it goes and releases it when it ends;
 * a retry acquires a retry slot. A request beyond a threshold is shed at once. The counts
 * change only through these acquire/release calls, a few integer updates per try.
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
export class ResourceManager {
  readonly maxRequests: number
  readonly maxPendingRequests: number
  /** Fixed retry cap; -1 when the retry budget decides. */
  readonly maxRetries: number
  readonly budgetRatio: number
  readonly minRetryConcurrency: number
  /** Tries in flight. */
  #active = 0
  /** Tries handed to a pool that have not started writing (waiting for a connection); each is also counted in `active`. */
  #pending = 0
  /** Retries in flight. */
  #activeRetries = 0
  #retries = 0
  #retrySuccesses = 0
  #retryOverflows = 0
  #retryLimitExceeded = 0
  #perTryTimeouts = 0
  readonly #overflows: Record<OverflowReason, number> = { max_requests: 0, max_pending_requests: 0, breaker_open: 0 }

  constructor(config: CircuitBreakersConfig | undefined) {
    this.maxRequests = config?.maxRequests ?? defaults.maxRequests
    this.maxPendingRequests = config?.maxPendingRequests ?? defaults.maxPendingRequests
    const budget = config?.retryBudget
    this.maxRetries = budget === undefined ? config?.maxRetries ?? defaults.maxRetries : -1
    this.budgetRatio = (budget?.budgetPercent ?? defaults.retryBudgetPercent) / 100
    this.minRetryConcurrency = budget?.minRetryConcurrency ?? defaults.retryBudgetMinConcurrency
  }

  /** Tries in flight now. */
  get active(): number {
    return this.#active
  }

  /** Tries waiting for a connection now. */
  get pending(): number {
    return this.#pending
  }

  /** Retries in flight now. */
  get activeRetries(): number {
    return this.#activeRetries
  }

  /**
   * Takes a request slot for a new try, counted as active and pending until
   * {@link started} and {@link releaseRequest}; or returns the threshold it would cross
   * (counted as that overflow) and takes nothing.
   */
  acquireRequest(): OverflowReason | null {
    if (this.#active >= this.maxRequests) return this.overflowed('max_requests')
    // Envoy counts a request as pending only while it waits; with free connections it waits
    // for none. Ours: every try is pending until its pool starts writing it.
    if (this.#pending >= this.maxPendingRequests) return this.overflowed('max_pending_requests')
    this.#active++
    this.#pending++
    return null
  }

  /** The try of a request slot left the pool's queue: no longer pending. Call at most once per slot. */
  started(): void {
    this.#pending--
  }

  /** Gives a request slot back; `pending` when {@link started} was not called for it. */
  releaseRequest(pending: boolean): void {
    this.#active--
    if (pending) this.#pending--
  }

  /** Counts a request shed before it took a slot (an open breaker, or a threshold); returns the reason. */
  overflowed(reason: OverflowReason): OverflowReason {
    this.#overflows[reason]++
    return reason
  }

  /**
   * Whether one more retry may start now (Envoy: `max_retries`, or the retry budget). Envoy's
   * budget is a share of its active plus pending requests, two disjoint sets; here every
   * pending try is also counted in `active`, so `active` alone is that sum.
   */
  mayRetry(): boolean {
    if (this.maxRetries >= 0) return this.#activeRetries < this.maxRetries
    const allowed = Math.max(this.minRetryConcurrency, this.budgetRatio * this.#active)
    return this.#activeRetries < allowed
  }

  /** Takes a retry slot (counted as a retry), or counts a retry overflow and returns false. */
  acquireRetry(): boolean {
    if (!this.mayRetry()) {
      this.#retryOverflows++
      return false
    }
    this.#activeRetries++
    this.#retries++
    return true
  }

  /** Gives a retry slot back. */
  releaseRetry(): void {
    this.#activeRetries--
  }

  /** A request whose last retry got a response that is not retried. */
  retrySucceeded(): void {
    this.#retrySuccesses++
  }

  /** A request that ran out of `numRetries` with a retriable outcome. */
  retryLimitReached(): void {
    this.#retryLimitExceeded++
  }

  /** A try that ran out of its per-try timeout. */
  perTryTimedOut(): void {
    this.#perTryTimeouts++
  }

  stats(): ResilienceStats {
    return {
      retries: this.#retries,
      retrySuccesses: this.#retrySuccesses,
      retryOverflows: this.#retryOverflows,
      retryLimitExceeded: this.#retryLimitExceeded,
      perTryTimeouts: this.#perTryTimeouts,
      overflows: { ...this.#overflows },
      active: this.#active,
      pending: this.#pending,
      activeRetries: this.#activeRetries,
    }
  }
}
