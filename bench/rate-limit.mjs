/**
 * Local rate limit cost: one `LocalRateLimiter.check(request, now)` call, no network.
 *
 * Cases (each a limiter built from a config, as the mesh builds one per snapshot):
 *   default      the default bucket only, every request admitted, responseHeaders off:
 *                the fast path (returns the shared ALLOWED verdict, allocates nothing)
 *   per-value    a header descriptor without `value` (one bucket per distinct value) over
 *                1,000 distinct values, plus the default bucket (Envoy's default: both pay)
 *   limited      the default bucket empty: every request refused (a verdict is built)
 * Informational, no target:
 *   headers      `default` with responseHeaders on (the verdict carries limit/remaining/reset)
 *   churn        the per-value descriptor over 16,384 values cycling through the
 *                10,000-bucket map: every check misses, evicts the least recently used
 *                bucket and recycles it
 * Baseline: the same loop over the same requests and clock values, calling nothing.
 *
 * Each timed sample runs BENCH_OPS checks of one case; a round times every case once, in
 * an order rotated each round. Reported: ns per check per round, medians gross and net of
 * the same round's baseline. Target: ≤ 1 µs (1,000 ns) per check, gross, for default,
 * per-value and limited. `node bench/rate-limit.mjs` takes ~10 s.
 *
 * Knobs: BENCH_ROUNDS (15), BENCH_OPS (checks per timed sample, 1000000), BENCH_CASES
 * (comma list of case ids).
 */
import { LocalRateLimiter, ALLOWED } from '../build/src/policy/rate-limit.js'
import { emitResult, envNumber, fmt, header, median, pad, padEnd, rotate, verdict } from './lib/common.mjs'

const ROUNDS = envNumber('BENCH_ROUNDS', 15)
const OPS = envNumber('BENCH_OPS', 1_000_000)
const MIX = 1024 // requests in a mix; power of two

header('rate-limit: LocalRateLimiter.check per request', { BENCH_ROUNDS: ROUNDS, BENCH_OPS: OPS, mix: MIX })

// ---------------------------------------------------------------- requests

/** What the inbound filter would hand the limiter: a view over the request's headers. */
class BenchRequest {
  constructor(remoteAddress, path, headers) {
    this.remoteAddress = remoteAddress
    this.identity = undefined
    this.path = path
    this.headers = headers
  }

  header(name) {
    return this.headers[name]
  }
}

function mixOf(distinctUsers) {
  const mix = []
  for (let i = 0; i < MIX; i++) {
    const user = `user-${(i * 7919) % distinctUsers}` // spread, every value used
    mix.push(new BenchRequest(`10.0.${(i >> 8) & 255}.${i & 255}`, `/reviews/${i % 10}`, { 'x-user': user, accept: '*/*' }))
  }
  return mix
}

const plainMix = mixOf(1000)
// 16,384 distinct values for the churn case, in a fixed cycle longer than the bucket map.
const CHURN_VALUES = 16_384
const churnMix = []
for (let i = 0; i < CHURN_VALUES; i++) churnMix.push(new BenchRequest('10.0.0.1', '/', { 'x-user': `churn-${i}` }))

// ---------------------------------------------------------------- limiters

const HUGE = 1_000_000_000 // never runs dry within a run
const t0 = performance.now()

const limiters = {
  default: new LocalRateLimiter({ maxTokens: HUGE, fillInterval: '1s' }, t0),
  'per-value': new LocalRateLimiter({
    maxTokens: HUGE,
    fillInterval: '1s',
    descriptors: [{ key: 'header', name: 'x-user', maxTokens: HUGE, fillInterval: '1s' }],
  }, t0),
  limited: new LocalRateLimiter({ maxTokens: 1, tokensPerFill: 1, fillInterval: '1h' }, t0),
  headers: new LocalRateLimiter({ maxTokens: HUGE, fillInterval: '1s', responseHeaders: true }, t0),
  churn: new LocalRateLimiter({
    maxTokens: HUGE,
    fillInterval: '1s',
    descriptors: [{ key: 'header', name: 'x-user', maxTokens: HUGE, fillInterval: '1s' }],
  }, t0),
}
limiters.limited.check(plainMix[0], t0) // drain its one token

// ---------------------------------------------------------------- checks before timing

{
  const now = t0 + 1
  for (const r of plainMix) {
    if (limiters.default.check(r, now) !== ALLOWED) throw new Error('default: expected the shared ALLOWED verdict')
    if (limiters['per-value'].check(r, now) !== ALLOWED) throw new Error('per-value: expected ALLOWED')
    if (limiters.limited.check(r, now).allowed) throw new Error('limited: expected a refusal')
    const v = limiters.headers.check(r, now)
    if (!v.allowed || v.limit !== HUGE || v.resetSeconds !== 1) throw new Error(`headers: unexpected verdict ${JSON.stringify(v)}`)
  }
  const buckets = limiters['per-value'].stats().descriptorBuckets
  if (buckets !== 1000) throw new Error(`per-value: expected 1,000 buckets, got ${buckets}`)
  for (const r of churnMix) limiters.churn.check(r, now)
  if (limiters.churn.stats().descriptorBuckets !== 10_000) throw new Error('churn: expected the map full at 10,000')
  console.log('checked: default → ALLOWED, per-value → 1,000 buckets, limited → refused, headers → full verdict, churn → map at its 10,000 bound\n')
}

// ---------------------------------------------------------------- timed loops

let sink = 0
// The clock advances ~1 µs per check, so fills happen (1 s intervals) as they would live.
const STEP = 0.001
let clock = t0 + 10

/** The loop without the check: fetch the request, advance the clock, use the result. */
function baselineLoop(mix, ops) {
  let acc = 0
  let now = clock
  for (let i = 0; i < ops; i++) {
    const r = mix[i & (MIX - 1)]
    now += STEP
    acc += r.path.length
  }
  clock = now
  return acc
}

function checkLoop(limiter, mix, ops) {
  let acc = 0
  let now = clock
  for (let i = 0; i < ops; i++) {
    const r = mix[i & (MIX - 1)]
    now += STEP
    if (limiter.check(r, now).allowed) acc++
  }
  clock = now
  return acc
}

let churnAt = 0
function churnLoop(limiter, ops) {
  let acc = 0
  let now = clock
  let at = churnAt
  for (let i = 0; i < ops; i++) {
    const r = churnMix[at]
    at = at + 1 === CHURN_VALUES ? 0 : at + 1
    now += STEP
    if (limiter.check(r, now).allowed) acc++
  }
  churnAt = at
  clock = now
  return acc
}

function timeIt(fn) {
  const start = process.hrtime.bigint()
  sink += fn()
  return Number(process.hrtime.bigint() - start) / OPS // ns per op
}

const ALL = [
  { id: 'baseline', run: () => timeIt(() => baselineLoop(plainMix, OPS)) },
  { id: 'default', target: true, run: () => timeIt(() => checkLoop(limiters.default, plainMix, OPS)) },
  { id: 'per-value', target: true, run: () => timeIt(() => checkLoop(limiters['per-value'], plainMix, OPS)) },
  { id: 'limited', target: true, run: () => timeIt(() => checkLoop(limiters.limited, plainMix, OPS)) },
  { id: 'headers', run: () => timeIt(() => checkLoop(limiters.headers, plainMix, OPS)) },
  { id: 'churn', run: () => timeIt(() => churnLoop(limiters.churn, OPS)) },
]
const wanted = process.env.BENCH_CASES?.split(',')
const runners = ALL.filter((r) => r.id === 'baseline' || wanted === undefined || wanted.includes(r.id))

// Warm up every loop (JIT) before timing.
for (let w = 0; w < 3; w++) for (const r of runners) r.run()

const samples = Object.fromEntries(runners.map((r) => [r.id, []]))
for (let round = 0; round < ROUNDS; round++) {
  for (const r of rotate(runners, round)) samples[r.id].push(r.run())
}

// ---------------------------------------------------------------- report

console.log('ns per check, per round:')
console.log(padEnd('case', 10) + samples.baseline.map((_, i) => pad(i + 1, 7)).join(''))
for (const r of runners) console.log(padEnd(r.id, 10) + samples[r.id].map((x) => pad(fmt(x, 1), 7)).join(''))

const base = median(samples.baseline)
const medians = {}
console.log(`\nmedians over ${ROUNDS} rounds (net = minus the baseline of the same round, then median):`)
console.log(`  ${padEnd('baseline', 10)} ${pad(fmt(base, 1), 8)} ns  (the loop alone)`)
for (const r of runners) {
  if (r.id === 'baseline') continue
  const gross = median(samples[r.id])
  const net = median(samples[r.id].map((x, i) => x - samples.baseline[i]))
  medians[r.id] = { gross, net }
  console.log(`  ${padEnd(r.id, 10)} ${pad(fmt(gross, 1), 8)} ns/check gross ${pad(fmt(net, 1), 8)} ns net${r.target ? '' : '   (info)'}`)
}

console.log('')
const targets = []
for (const r of runners) {
  if (r.target) targets.push(verdict(`${r.id}: ns per check (gross)`, medians[r.id].gross, '<=', 1000, ' ns'))
}
console.log(`(info) per-value live buckets ${fmt(limiters['per-value'].stats().descriptorBuckets)}, churn ${fmt(limiters.churn.stats().descriptorBuckets)}; limited refused ${fmt(limiters.limited.stats().limited)}`)

emitResult('rate-limit', { baselineNs: base, medians, targets, knobs: { ROUNDS, OPS, MIX } })
if (sink === 0.5) console.log(sink) // keep the results alive
