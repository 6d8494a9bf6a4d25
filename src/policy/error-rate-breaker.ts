/**
 * An error-rate circuit breaker (the Hystrix/opossum model) for one cluster or subset.
 * Outcomes go into a rolling window of buckets (two counters each); the breaker opens when
 * the window holds enough requests and too many failed, rejects requests while open, then
 * lets a few trial requests through and closes when they all succeed.
 *
 * Recording is O(1) and allocation-free, and no timer runs: the open period ends at the
 * first request after it (the half-open transition is reported then).
 *
 * opossum, the library first planned for this, was measured on this machine at 1.5–2 µs of
 * CPU per successful call and ~40 µs per failed call (it sums every bucket's fields with
 * `Object.keys` on each failure, and sorts the window's latencies unless told not to),
 * needs a promise per request, and lets exactly one trial through when half-open.
 */
import { defaults } from '../config/defaults.js'
import { parseDuration } from '../config/duration.js'
import type { ErrorRateBreakerConfig } from '../config/types.js'

/** The state of a breaker. */
export type BreakerState = 'closed' | 'open' | 'halfOpen'

/** What `admit` decided. */
export const enum Admission { Rejected = 0, Admitted = 1, Trial = 2 }

/** A breaker's state change, as `mesh.on('circuitBreaker')` reports it. */
export interface BreakerStateChange {
  readonly cluster: string
  readonly subset: string | undefined
  readonly from: BreakerState
  readonly to: BreakerState
  /** Failure percentage of the window when it opened (closed → open); undefined otherwise. */
  readonly errorPercentage: number | undefined
}

/** Counters of a breaker, for metrics. */
export interface BreakerStats {
  readonly state: BreakerState
  readonly opened: number
  readonly rejected: number
}

export class ErrorRateBreaker {
  state: BreakerState = 'closed'
  /** Times it opened. */
  opened = 0
  /** Requests it rejected. */
  rejected = 0
  readonly #threshold: number
  readonly #volume: number
  readonly #bucketMs: number
  readonly #openMs: number
  readonly #trials: number
  readonly #failureRanges: readonly (readonly [number, number])[]
  readonly countTransportErrors: boolean
  readonly #total: Uint32Array
  readonly #failed: Uint32Array
  /** Absolute bucket number of the newest bucket. */
  #head = 0
  #openedAt = 0
  #trialsStarted = 0
  #trialsSucceeded = 0
  readonly #onChange: (from: BreakerState, to: BreakerState, errorPercentage: number | undefined) => void

  constructor(config: ErrorRateBreakerConfig, onChange: (from: BreakerState, to: BreakerState, errorPercentage: number | undefined) => void) {
    this.#threshold = config.errorThreshold ?? defaults.breakerErrorThreshold
    this.#volume = config.volumeThreshold ?? defaults.breakerVolumeThreshold
    const buckets = config.rollingWindowBuckets ?? defaults.breakerRollingWindowBuckets
    const window = parseDuration(config.rollingWindow) ?? defaults.breakerRollingWindowMs
    this.#bucketMs = Math.max(1, window / buckets)
    this.#openMs = parseDuration(config.openDuration) ?? defaults.breakerOpenDurationMs
    this.#trials = config.halfOpenTrials ?? defaults.breakerHalfOpenTrials
    this.#failureRanges = (config.failureStatuses ?? [{ start: 500, end: 600 }]).map((r) => [r.start, r.end] as const)
    this.countTransportErrors = config.countTransportErrors ?? true
    this.#total = new Uint32Array(buckets)
    this.#failed = new Uint32Array(buckets)
    this.#onChange = onChange
  }

  /** Whether a response status counts as a failure. */
  isFailureStatus(status: number): boolean {
    for (const [start, end] of this.#failureRanges) if (status >= start && status < end) return true
    return false
  }

  /** Decides whether a request may go; a `Trial` must be reported with `record(…, true)` or `release`. */
  admit(now: number): Admission {
    if (this.state === 'closed') return Admission.Admitted
    if (this.state === 'open') {
      if (now - this.#openedAt < this.#openMs) {
        this.rejected++
        return Admission.Rejected
      }
      this.#transition('halfOpen', undefined)
      this.#trialsStarted = 0
      this.#trialsSucceeded = 0
    }
    if (this.#trialsStarted < this.#trials) {
      this.#trialsStarted++
      return Admission.Trial
    }
    this.rejected++
    return Admission.Rejected
  }

  /** Records the outcome of an admitted request. */
  record(failed: boolean, trial: boolean, now: number): void {
    if (trial) {
      if (this.state !== 'halfOpen') return
      if (failed) {
        this.#open(now, undefined)
      } else if (++this.#trialsSucceeded >= this.#trials) {
        this.#reset(now)
        this.#transition('closed', undefined)
      }
      return
    }
    if (this.state !== 'closed') return
    const i = this.#advance(now)
    this.#total[i] = (this.#total[i] as number) + 1
    if (!failed) return
    this.#failed[i] = (this.#failed[i] as number) + 1
    let total = 0
    let failures = 0
    for (let b = 0; b < this.#total.length; b++) {
      total += this.#total[b] as number
      failures += this.#failed[b] as number
    }
    if (total < this.#volume) return
    const pct = (failures / total) * 100
    if (pct > this.#threshold) this.#open(now, pct)
  }

  /** A trial that ended with no outcome (the caller aborted): its slot is given back. */
  release(trial: boolean): void {
    if (trial && this.state === 'halfOpen' && this.#trialsStarted > this.#trialsSucceeded) this.#trialsStarted--
  }

  stats(): BreakerStats {
    return { state: this.state, opened: this.opened, rejected: this.rejected }
  }

  #open(now: number, pct: number | undefined): void {
    this.#openedAt = now
    this.opened++
    this.#transition('open', pct)
  }

  #reset(now: number): void {
    this.#total.fill(0)
    this.#failed.fill(0)
    this.#head = Math.floor(now / this.#bucketMs)
  }

  /** Moves the window to `now`, zeroing buckets that fell out; returns the current bucket's slot. */
  #advance(now: number): number {
    const n = this.#total.length
    const bucket = Math.floor(now / this.#bucketMs)
    const gap = bucket - this.#head
    if (gap > 0) {
      if (gap >= n) {
        this.#total.fill(0)
        this.#failed.fill(0)
      } else {
        for (let b = this.#head + 1; b <= bucket; b++) {
          this.#total[b % n] = 0
          this.#failed[b % n] = 0
        }
      }
      this.#head = bucket
    }
    return this.#head % n
  }

  #transition(to: BreakerState, pct: number | undefined): void {
    const from = this.state
    if (from === to) return
    this.state = to
    this.#onChange(from, to, pct)
  }
}
