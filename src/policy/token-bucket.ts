/**
 * A token bucket with Envoy `local_ratelimit` semantics, and no timer.
 *
 * The bucket starts full (`maxTokens`). Every `fillIntervalMs` it gains `tokensPerFill`
 * tokens, never holding more than `maxTokens`; each admitted request takes one. Envoy's
 * timer-based bucket (up to 1.30) did the filling on a timer; here the same whole fills are
 * computed when the bucket is next touched, from the time elapsed since the last fill
 * boundary. Boundaries stay on the grid that starts when the bucket was made (or reset), so a
 * bucket read at any moment holds what the timer-filled bucket would hold then, and
 * `msUntilNextFill` is the time until the timer would have fired.
 *
 * (Envoy 1.31 and later refill continuously instead: `tokensPerFill / fillInterval` tokens
 * per second, fractions included, and stopped sending `x-ratelimit-reset`. Whole fills keep
 * the reset time meaningful and the arithmetic exact.)
 *
 * Time is whatever monotonic millisecond clock the caller passes — `performance.now()` in
 * the mesh, plain numbers in tests — never `Date.now()`, which can jump. Every method is O(1)
 * and allocates nothing.
 *
 * @module
 */

/** One token bucket. Not shared across threads; the event loop is the only writer. */
export class TokenBucket {
  /** Burst size: tokens held when full, and at start. */
  readonly maxTokens: number
  /** Tokens added at each fill. */
  readonly tokensPerFill: number
  /** Milliseconds between fills. */
  readonly fillIntervalMs: number
  /** Tokens held, as of the last fill boundary at or before the last call. Always an integer. */
  #tokens: number
  /** Time of the last fill boundary (or of creation/reset). */
  #lastFill: number

  /**
   * @param maxTokens non-negative integer; 0 refuses everything (as in Envoy)
   * @param tokensPerFill positive integer
   * @param fillIntervalMs positive, in the unit of `now` (milliseconds)
   * @param now the current time of the monotonic clock the caller will keep passing
   */
  constructor(maxTokens: number, tokensPerFill: number, fillIntervalMs: number, now: number) {
    if (!Number.isSafeInteger(maxTokens) || maxTokens < 0) throw new RangeError(`maxTokens must be a non-negative integer, got ${maxTokens}`)
    if (!Number.isSafeInteger(tokensPerFill) || tokensPerFill < 1) throw new RangeError(`tokensPerFill must be a positive integer, got ${tokensPerFill}`)
    if (!(fillIntervalMs > 0) || !Number.isFinite(fillIntervalMs)) throw new RangeError(`fillIntervalMs must be a positive number, got ${fillIntervalMs}`)
    if (!Number.isFinite(now)) throw new RangeError(`now must be a finite time, got ${now}`)
    this.maxTokens = maxTokens
    this.tokensPerFill = tokensPerFill
    this.fillIntervalMs = fillIntervalMs
    this.#tokens = maxTokens
    this.#lastFill = now
  }

  /** Takes one token if there is one. */
  tryTake(now: number): boolean {
    this.#refill(now)
    if (this.#tokens === 0) return false
    this.#tokens--
    return true
  }

  /** Tokens available now (what `tryTake` could take before refusing). */
  remaining(now: number): number {
    this.#refill(now)
    return this.#tokens
  }

  /**
   * Milliseconds until the next fill, in (0, fillIntervalMs]. Fills happen on schedule
   * whether or not the bucket is full, as Envoy's fill timer did.
   */
  msUntilNextFill(now: number): number {
    this.#refill(now)
    const ms = this.#lastFill + this.fillIntervalMs - now
    // Only a clock that went backwards (a caller's bug) makes it exceed the interval.
    return ms > this.fillIntervalMs ? this.fillIntervalMs : ms
  }

  /** Full again, with the fill grid restarting at `now` (a recycled per-value bucket). */
  reset(now: number): void {
    this.#tokens = this.maxTokens
    this.#lastFill = now
  }

  /** Adds the whole fills that elapsed since the last boundary. */
  #refill(now: number): void {
    const elapsed = now - this.#lastFill
    if (!(elapsed >= this.fillIntervalMs)) return // also false for NaN: no refill
    const fills = Math.floor(elapsed / this.fillIntervalMs)
    this.#lastFill += fills * this.fillIntervalMs
    const tokens = this.#tokens + fills * this.tokensPerFill
    this.#tokens = tokens < this.maxTokens ? tokens : this.maxTokens
  }
}
