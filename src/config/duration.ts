/**
 * Durations in config: a non-negative number of milliseconds (a bare number is always
 * milliseconds: `250` is 250ms), or a string of one or more `<number><unit>` parts with units
 * `ms`, `s`, `m`, `h`, `d` (`250ms`, `3s`, `1.5s`, `1m30s`, `1d12h`). Envoy's protobuf JSON
 * form (`"0.25s"`) and Go/Istio durations (`1h30m`) are the same syntax.
 */

const PART = /(\d+(?:\.\d+)?)(ms|s|m|h|d)/y
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }

/** The largest duration accepted: 365 days, far beyond any timeout, below timer overflow concerns. */
export const MAX_DURATION_MS = 365 * 24 * 3_600_000

/**
 * Parses a duration to milliseconds, or returns `undefined` when it is not one.
 * Fractions of a millisecond are rounded to the nearest millisecond.
 */
export function parseDuration(value: unknown): number | undefined {
  if (typeof value === 'number') {
    return Number.isFinite(value) && value >= 0 && value <= MAX_DURATION_MS ? Math.round(value) : undefined
  }
  if (typeof value !== 'string' || value.length === 0 || value.length > 64) return undefined
  let total = 0
  let at = 0
  while (at < value.length) {
    PART.lastIndex = at
    const m = PART.exec(value)
    if (m === null) return undefined
    total += Number(m[1]) * (UNIT_MS[m[2] as string] as number)
    at = PART.lastIndex
  }
  return total <= MAX_DURATION_MS ? Math.round(total) : undefined
}

/** Formats milliseconds the way config writes them (`250ms`, `3s`, `1.5s`). */
export function formatDuration(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`
}
