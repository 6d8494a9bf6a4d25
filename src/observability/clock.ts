/**
 * Span times with sub-millisecond precision that stay on the wall clock.
 *
 * The OpenTelemetry SDK starts a span at `Date.now()` (whole milliseconds) unless given a
 * start time, and ends a span that was given one at `Date.now()` too; so the mesh passes
 * both. `performance.timeOrigin + performance.now()` has the precision but drifts from the
 * wall clock in a long-lived process (the monotonic clock does not follow NTP slews, and it
 * stops while a machine sleeps: the reason the SDK moved to `Date.now()`). So the offset
 * between the two clocks is re-anchored on `Date.now()` whenever they disagree by more than
 * 1 ms: precision from the monotonic clock, accuracy from the wall clock.
 */

/** Epoch ms minus `performance.now()`: starts as `timeOrigin`, re-anchored on drift. */
let offset = performance.timeOrigin

/**
 * The epoch time in milliseconds (with a fraction) of a `performance.now()` reading. The
 * fraction is what makes it precise; `Date.now()` bounds it within ~1 ms of the wall clock.
 */
export function epochMs(perfNow?: number): number {
  const now = performance.now()
  const wall = Date.now()
  // Date.now() truncates: the true time is in [wall, wall + 1). Well outside that, re-anchor
  // (in the middle of the millisecond: the best guess from one sample).
  const estimate = now + offset
  if (estimate < wall - 1 || estimate > wall + 2) offset = wall + 0.5 - now
  return (perfNow ?? now) + offset
}

/**
 * The same time as an OTel `HrTime` (`[seconds, nanoseconds]`), in whole microseconds. Whole
 * microseconds because Zipkin's span model is int64 microseconds and OTel's Zipkin exporter
 * does not round start times: a fractional one makes a Zipkin server reject the batch.
 * (A float of epoch milliseconds cannot carry exact microseconds, hence the tuple.)
 */
export function spanTime(perfNow?: number): [number, number] {
  const ms = epochMs(perfNow)
  let seconds = Math.floor(ms / 1000)
  let micros = Math.round((ms - seconds * 1000) * 1000)
  if (micros >= 1_000_000) {
    seconds++
    micros -= 1_000_000
  }
  return [seconds, micros * 1000]
}
