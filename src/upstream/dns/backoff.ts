/**
 * When a DNS cluster asks again after a failed resolution (Envoy's DNS refresh strategies):
 * without `dnsFailureRefreshRate`, on the normal refresh rate (Envoy's FixedBackOffStrategy);
 * with it, a fully jittered exponential back-off — uniform in [0, interval), the interval
 * starting at `baseInterval` and doubling per failure up to `maxInterval` (Envoy's
 * JitteredExponentialBackOffStrategy). A success resets it.
 */

/** The delay before the next try after a failure. */
export interface BackOff {
  /** The next delay in milliseconds; each call counts one more failure. */
  next(): number
  /** Forgets the failures (after a success). */
  reset(): void
}

/** The same delay after every failure. */
export class FixedBackOff implements BackOff {
  constructor(readonly delayMs: number) {}
  next(): number {
    return this.delayMs
  }
  reset(): void {}
}

/** Full-jitter exponential back-off between `baseMs` and `maxMs`. */
export class JitteredExponentialBackOff implements BackOff {
  #interval: number

  /** @param random a uniform source in [0, 1) (tests pass their own) */
  constructor(readonly baseMs: number, readonly maxMs: number, readonly random: () => number = Math.random) {
    this.#interval = baseMs
  }

  next(): number {
    const interval = Math.min(this.#interval, this.maxMs)
    this.#interval = Math.min(this.#interval * 2, this.maxMs)
    return Math.floor(this.random() * interval)
  }

  reset(): void {
    this.#interval = this.baseMs
  }
}
