/**
 * A latency histogram cheap enough to record on every request: fixed memory, O(1) record,
 * no allocation. Buckets grow by a constant ratio of 2^(1/8) (8 per doubling) from ~1 µs to
 * 1 h, so any percentile read from it is within one bucket — about ±4.5% around the bucket's
 * middle, and in practice much closer because it interpolates inside the bucket.
 *
 * Beside those log-spaced buckets it keeps exact counts for Envoy's default Prometheus
 * bucket bounds, so the `le` buckets of the exposition are exact counts, not estimates:
 * latencies measured with a millisecond clock land exactly on bounds like `le="1"`, where
 * an interpolated estimate would be visibly wrong.
 */

/** Smallest latency told apart from zero: 2^-10 ms ≈ 1 µs. Values below land in one bucket `[0, 2^-10)`. */
export const MIN_LATENCY_MS = 2 ** -10
/** Largest latency kept: 1 h. Longer ones are recorded as 1 h. */
export const MAX_LATENCY_MS = 3_600_000
/** Buckets per doubling of latency: the ratio between bucket bounds is 2^(1/8) ≈ 1.0905. */
export const BUCKETS_PER_DOUBLING = 8
/** The ratio between one bucket's upper and lower bound. */
export const BUCKET_RATIO = 2 ** (1 / BUCKETS_PER_DOUBLING)

/**
 * Envoy's default histogram bucket bounds (ms), which its Prometheus output uses for
 * `upstream_rq_time` and `downstream_rq_time`; `+Inf` follows them implicitly.
 */
export const ENVOY_BUCKET_BOUNDS_MS: readonly number[] = Object.freeze([
  0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000,
])

// Bucket 0 holds [0, 2^-10); bucket i ≥ 1 holds [2^(-10 + (i-1)/8), 2^(-10 + i/8)). Bounds are
// powers of 2^(1/8) so that a bucket index comes from the bits of the double, not from a
// logarithm (Math.log2 costs ~9 ns here, the bits ~2 ns): the exponent gives the doubling,
// the top 12 bits of the mantissa the eighth within it, through a table. 1 h falls in bucket 256.
const MIN_EXPONENT = -10
const BUCKETS = 257
const SLOT_BITS = 9
const SLOT_MASK = (1 << SLOT_BITS) - 1

/** Lower bound (ms) of bucket `i`. */
function lowerBound(i: number): number {
  return i === 0 ? 0 : 2 ** (MIN_EXPONENT + (i - 1) / BUCKETS_PER_DOUBLING)
}

/** Upper bound (ms, exclusive) of bucket `i`. */
function upperBound(i: number): number {
  return 2 ** (MIN_EXPONENT + i / BUCKETS_PER_DOUBLING)
}

/** Per top-12-bits of a mantissa (fraction f = c/4096), which eighth of the doubling it is in. */
const EIGHTH = new Uint8Array(4096)
for (let c = 0; c < 4096; c++) {
  let k = 0
  while (k < BUCKETS_PER_DOUBLING - 1 && c / 4096 >= 2 ** ((k + 1) / BUCKETS_PER_DOUBLING) - 1) k++
  EIGHTH[c] = k
}

/** Scratch space to read a double's bits, big-endian whatever the platform. */
const BITS = new DataView(new ArrayBuffer(8))

/** Envoy's bounds, then +∞, as doubles. */
const LE = new Float64Array([...ENVOY_BUCKET_BOUNDS_MS, Infinity])
/** Per log bucket, the first Envoy bound a value in it can fall under (never one too high). */
const LE_HINT = new Uint8Array(BUCKETS)
for (let i = 0, j = 0; i < BUCKETS; i++) {
  const lo = lowerBound(i) * (1 - 1e-9)
  while (LE[j]! < lo) j++
  LE_HINT[i] = j
}

/**
 * Clamps a duration to the histogram's range: negative → 0, above 1 h (or +∞) → 1 h.
 * NaN stays NaN, which callers treat as "nothing to record".
 * @internal
 */
export function clampLatency(ms: number): number {
  // Math.min/max stay in float64 registers; a conditional mixing `ms` with small-integer
  // constants made V8 box `ms` into a fresh heap number on every call.
  return Math.min(Math.max(ms, 0), MAX_LATENCY_MS)
}

/**
 * Where a clamped, non-NaN duration goes: log bucket index in the low 9 bits, Envoy bound
 * index above them. Computed once per request and applied to every level it counts in.
 * @internal
 */
export function latencySlot(v: number): number {
  let bucket = 0
  if (v >= MIN_LATENCY_MS) {
    BITS.setFloat64(0, v)
    const hi = BITS.getUint32(0)
    // v is positive and normal: hi = 0 | 11-bit biased exponent | top 20 bits of mantissa.
    bucket = ((hi >>> 20) - 1023 - MIN_EXPONENT) * BUCKETS_PER_DOUBLING + EIGHTH[(hi >>> 8) & 0xfff]! + 1
  }
  let le = LE_HINT[bucket]!
  while (v > LE[le]!) le++
  return bucket | (le << SLOT_BITS)
}

/**
 * Latency histogram with log-linear buckets (ratio 2^(1/8), so ≤ ~4.5% relative error from
 * a bucket's middle), range ~1 µs … 1 h, fixed memory (two Float64Arrays, about 2.2 kB), and
 * O(1) `record`. Counts are doubles: exact up to 2^53, they never wrap.
 */
export class LatencyHistogram {
  readonly #counts = new Float64Array(BUCKETS)
  /** Counts per Envoy bound: index j counts values in (LE[j-1], LE[j]]; the last is above every bound. */
  readonly #leCounts = new Float64Array(LE.length)
  #count = 0
  #sum = 0
  #min = Infinity
  #max = -Infinity

  /**
   * Records one duration in milliseconds. Negative durations count as 0, durations above
   * 1 h as 1 h; NaN is ignored.
   */
  record(ms: number): void {
    const v = clampLatency(ms)
    if (v !== v) return
    this.recordSlot(latencySlot(v), v)
  }

  /**
   * Records a duration already clamped and located by {@link latencySlot}.
   * @internal the hot path locates a duration once and records it at every level.
   */
  recordSlot(slot: number, v: number): void {
    this.#counts[slot & SLOT_MASK]!++
    this.#leCounts[slot >>> SLOT_BITS]!++
    this.#count++
    this.#sum += v
    if (v < this.#min) this.#min = v
    if (v > this.#max) this.#max = v
  }

  /** How many durations were recorded. */
  get count(): number {
    return this.#count
  }

  /** Sum of the recorded durations, in milliseconds (after clamping). */
  get sum(): number {
    return this.#sum
  }

  /** Smallest recorded duration (ms), or 0 when empty. */
  get min(): number {
    return this.#count === 0 ? 0 : this.#min
  }

  /** Largest recorded duration (ms), or 0 when empty. */
  get max(): number {
    return this.#count === 0 ? 0 : this.#max
  }

  /**
   * The `p`-th percentile in milliseconds, `p` in [0, 100] (clamped), interpolated linearly
   * within its bucket and kept within the recorded min and max; 0 when empty.
   */
  percentile(p: number): number {
    const total = this.#count
    if (total === 0 || p !== p) return 0
    const rank = (p <= 0 ? 0 : p >= 100 ? 1 : p / 100) * total
    const counts = this.#counts
    let seen = 0
    for (let i = 0; i < BUCKETS; i++) {
      const c = counts[i] ?? 0
      if (c === 0) continue
      if (seen + c >= rank) {
        const lo = lowerBound(i)
        const estimate = lo + ((rank - seen) / c) * (upperBound(i) - lo)
        return Math.min(Math.max(estimate, this.#min), this.#max)
      }
      seen += c
    }
    return this.#max
  }

  /**
   * Cumulative counts at the given upper bounds (ms), for Prometheus `le` buckets: element
   * k counts the durations ≤ `boundsMs[k]`. Bounds among {@link ENVOY_BUCKET_BOUNDS_MS} are
   * exact; others are interpolated within their log bucket and rounded. The result never
   * decreases along ascending bounds, and a bound of +∞ (or ≥ 1 h) gives `count`.
   */
  cumulative(boundsMs: readonly number[]): number[] {
    const out: number[] = []
    let floor = 0
    for (const bound of boundsMs) {
      const exact = ENVOY_BUCKET_BOUNDS_MS.indexOf(bound)
      let n = exact >= 0 ? this.#exactAtMost(exact) : this.#estimateAtMost(bound)
      if (n < floor) n = floor
      out.push(n)
      floor = n
    }
    return out
  }

  #exactAtMost(j: number): number {
    let n = 0
    for (let k = 0; k <= j; k++) n += this.#leCounts[k] ?? 0
    return n
  }

  #estimateAtMost(bound: number): number {
    if (this.#count === 0 || !(bound >= this.#min)) return 0
    if (bound >= this.#max) return this.#count
    let n = 0
    const counts = this.#counts
    for (let i = 0; i < BUCKETS; i++) {
      const c = counts[i] ?? 0
      const hi = upperBound(i)
      if (hi <= bound) {
        n += c
        continue
      }
      const lo = lowerBound(i)
      if (bound > lo) n += Math.round((c * (bound - lo)) / (hi - lo))
      break
    }
    return n
  }
}
