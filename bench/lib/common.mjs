/**
 * Helpers shared by the benchmarks: env knobs, medians, paired ratios, PASS/MISS lines and
 * the one machine-readable `RESULT {json}` line that bench/run.mjs collects.
 */

/** A positive number from the environment, or the default. */
export function envNumber(name, fallback) {
  const raw = process.env[name]
  if (raw === undefined || raw === '') return fallback
  const n = Number(raw)
  if (!Number.isFinite(n) || n <= 0) {
    throw new Error(`${name} must be a positive number (got ${JSON.stringify(raw)})`)
  }
  return n
}

export function median(values) {
  const xs = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b)
  if (xs.length === 0) return NaN
  const mid = xs.length >> 1
  return xs.length % 2 === 1 ? xs[mid] : (xs[mid - 1] + xs[mid]) / 2
}

/** Median of the per-round ratios candidate[i] / baseline[i] (paired: same round, adjacent in time). */
export function pairedRatio(candidate, baseline) {
  const ratios = []
  for (let i = 0; i < Math.min(candidate.length, baseline.length); i++) ratios.push(candidate[i] / baseline[i])
  return median(ratios)
}

/** `order` rotated by `round`, so no variant always runs first (or last) in a round. */
export function rotate(order, round) {
  const k = round % order.length
  return [...order.slice(k), ...order.slice(0, k)]
}

export function fmt(n, digits = 0) {
  if (!Number.isFinite(n)) return String(n)
  return n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits })
}

export function pad(s, width) {
  s = String(s)
  return s.length >= width ? s : ' '.repeat(width - s.length) + s
}

export function padEnd(s, width) {
  s = String(s)
  return s.length >= width ? s : s + ' '.repeat(width - s.length)
}

/**
 * Prints one target line and returns the verdict. `cmp` is '>=' or '<='.
 * A missed target is reported, never turned into a failing exit code.
 */
export function verdict(label, value, cmp, target, unit = '') {
  const ok = cmp === '>=' ? value >= target : value <= target
  const v = ok ? 'PASS' : 'MISS'
  console.log(`${v}  ${label}: ${fmt(value, unit === '×' ? 3 : 2)}${unit} (target ${cmp} ${target}${unit})`)
  return { label, value, cmp, target, unit, verdict: v }
}

/** The line bench/run.mjs parses. */
export function emitResult(name, data) {
  console.log(`RESULT ${JSON.stringify({ bench: name, node: process.version, ...data })}`)
}

export function header(title, knobs) {
  console.log(`# ${title}`)
  console.log(`node ${process.version} (${process.platform}/${process.arch}), pid ${process.pid}`)
  console.log(Object.entries(knobs).map(([k, v]) => `${k}=${v}`).join('  '))
  console.log('')
}

/** A small deterministic PRNG (mulberry32), so every run builds the same request mix. */
export function prng(seed) {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}
