/**
 * Global rate limit cost: the latency `GlobalRateLimiter.check()` adds to a request, against a
 * real redis-server on loopback (started here on a free port, no persistence).
 *
 * Variants, one call in flight at a time (the latency a request sees):
 *   noop      `await Promise.resolve(true)`: the baseline, an async function that does nothing
 *   ping      `await redis.ping()` on a plain ioredis client: one Redis round trip, the floor
 *   check     `await limiter.check(key)`, quota never exhausted (16 keys): Lua INCR + PEXPIRE
 * Informational, after the rounds:
 *   limited   `check()` on a key already over its quota: answered without a round trip
 *   fallback  `check(key, () => true)` with Redis killed (state `fallback`): decided locally
 *   64 in flight: checks/s and client CPU µs per check, `check` vs `ping`
 *
 * A round times BENCH_OPS calls of each variant, in an order rotated each round; per round the
 * p50/p99 of each, and the verdict uses the medians over rounds. Target: the limiter's own cost
 * over one Redis round trip, check p50 − ping p50, ≤ 25 µs. `node bench/global-rate-limit.mjs`
 * takes ~10 s. Skipped (with a RESULT line saying so) when redis-server is not installed.
 *
 * Knobs: BENCH_ROUNDS (11), BENCH_OPS (calls per variant per round, 2000), BENCH_DURATION (ms
 * per 64-in-flight slice, 500).
 */
import { spawn, spawnSync } from 'node:child_process'
import { once } from 'node:events'
import net from 'node:net'
import { emitResult, envNumber, fmt, header, median, pad, padEnd, rotate, verdict } from './lib/common.mjs'

const ROUNDS = envNumber('BENCH_ROUNDS', 11)
const OPS = envNumber('BENCH_OPS', 2000)
const DURATION = envNumber('BENCH_DURATION', 500)
const KEYS = Array.from({ length: 16 }, (_, i) => `user-${i}`)

header('global-rate-limit: GlobalRateLimiter.check() against a local redis-server', { BENCH_ROUNDS: ROUNDS, BENCH_OPS: OPS, BENCH_DURATION: DURATION })

const probe = spawnSync('redis-server', ['--version'], { encoding: 'utf8' })
if (probe.error !== undefined || probe.status !== 0) {
  console.log('SKIP  redis-server is not installed (apt-get install redis-server); nothing measured')
  emitResult('global-rate-limit', { skipped: 'redis-server not installed', targets: [] })
  process.exit(0)
}
console.log(probe.stdout.trim())

// ---------------------------------------------------------------- redis-server

async function freePort() {
  const server = net.createServer()
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address()
  await new Promise((resolve) => server.close(resolve))
  return port
}

function pingOnce(port) {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1')
    socket.setTimeout(1000, () => socket.destroy())
    socket.on('error', () => resolve(false))
    socket.on('close', () => resolve(false))
    socket.once('data', (d) => {
      socket.end()
      resolve(String(d).startsWith('+PONG'))
    })
    socket.write('PING\r\n')
  })
}

const port = await freePort()
const server = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' })
process.on('exit', () => server.kill('SIGKILL'))
for (let waited = 0; !(await pingOnce(port)); waited += 20) {
  if (waited > 5000 || server.exitCode !== null) throw new Error(`redis-server on port ${port} did not start`)
  await new Promise((resolve) => setTimeout(resolve, 20))
}
const url = `redis://127.0.0.1:${port}`

// ---------------------------------------------------------------- clients

const { GlobalRateLimiter } = await import('../build/src/policy/global-rate-limit.js')
const { Redis } = await import('ioredis')

const limiter = new GlobalRateLimiter({ redis: url, requestsPerUnit: 1_000_000_000, unit: 'hour', prefix: 'bench:' })
const tight = new GlobalRateLimiter({ redis: url, requestsPerUnit: 1, unit: 'hour', prefix: 'bench-tight:' })
const plain = new Redis(url)
if (!(await limiter.ready()) || !(await tight.ready())) throw new Error('the limiter did not connect')
await plain.ping()

let sink = 0
const variants = {
  noop: async () => await Promise.resolve(true),
  ping: async () => (await plain.ping()) === 'PONG',
  check: (i) => limiter.check(KEYS[i & 15]),
}

// Checked before timing: Redis decides, and allows.
for (let i = 0; i < 100; i++) if (!(await variants.check(i))) throw new Error('check: expected allowed')
if (limiter.stats().fallbackDecisions !== 0) throw new Error('check: expected every decision from Redis')
console.log('checked: 100 checks allowed by Redis, no fallback decision\n')

/** Latency in µs of `ops` sequential calls. */
async function sample(fn, ops) {
  const out = new Float64Array(ops)
  for (let i = 0; i < ops; i++) {
    const t0 = performance.now()
    if (await fn(i)) sink++
    out[i] = (performance.now() - t0) * 1000
  }
  return out
}

function percentile(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]
}

function summary(samples) {
  const sorted = Float64Array.from(samples).sort()
  return { p50: percentile(sorted, 0.5), p99: percentile(sorted, 0.99) }
}

// ---------------------------------------------------------------- rounds

for (const fn of Object.values(variants)) await sample(fn, OPS) // warm-up

const order = Object.keys(variants)
const perRound = Object.fromEntries(order.map((v) => [v, []]))
console.log(`${padEnd('round', 6)}${order.map((v) => `${pad(`${v} p50`, 12)}${pad(`${v} p99`, 12)}`).join('')}   (µs)`)
for (let round = 0; round < ROUNDS; round++) {
  const got = {}
  for (const v of rotate(order, round)) got[v] = summary(await sample(variants[v], OPS))
  for (const v of order) perRound[v].push(got[v])
  console.log(`${padEnd(round + 1, 6)}${order.map((v) => `${pad(fmt(got[v].p50, 1), 12)}${pad(fmt(got[v].p99, 1), 12)}`).join('')}`)
}

const med = Object.fromEntries(order.map((v) => [v, {
  p50: median(perRound[v].map((s) => s.p50)),
  p99: median(perRound[v].map((s) => s.p99)),
}]))
const added = {
  p50: median(perRound.check.map((s, i) => s.p50 - perRound.noop[i].p50)),
  p99: median(perRound.check.map((s, i) => s.p99 - perRound.noop[i].p99)),
}
const overPing = {
  p50: median(perRound.check.map((s, i) => s.p50 - perRound.ping[i].p50)),
  p99: median(perRound.check.map((s, i) => s.p99 - perRound.ping[i].p99)),
}
console.log('')
for (const v of order) console.log(`${padEnd(v, 8)} median over rounds: p50 ${fmt(med[v].p50, 1)} µs, p99 ${fmt(med[v].p99, 1)} µs`)
console.log(`added by check() vs the async no-op: p50 +${fmt(added.p50, 1)} µs, p99 +${fmt(added.p99, 1)} µs`)
console.log(`check() over one bare Redis round trip (ping): p50 +${fmt(overPing.p50, 1)} µs, p99 +${fmt(overPing.p99, 1)} µs`)

// ---------------------------------------------------------------- informational

await tight.check('over')
await tight.check('over') // now over its quota of 1: remembered for the window
const limited = summary(await sample(() => tight.check('over'), OPS * 5))
console.log(`limited (key known over quota, no round trip): p50 ${fmt(limited.p50, 2)} µs, p99 ${fmt(limited.p99, 2)} µs`)

async function inFlight(fn, ms) {
  let n = 0
  const end = performance.now() + ms
  const cpu0 = process.cpuUsage()
  await Promise.all(Array.from({ length: 64 }, async () => {
    while (performance.now() < end) if (await fn(n++)) sink++
  }))
  const cpu = process.cpuUsage(cpu0)
  return { perSecond: (n / ms) * 1000, cpuUs: (cpu.user + cpu.system) / n }
}
const tp = { ping: [], check: [] }
for (let round = 0; round < 6; round++) {
  for (const v of round % 2 === 0 ? ['ping', 'check'] : ['check', 'ping']) tp[v].push(await inFlight(variants[v], DURATION))
}
const throughput = Object.fromEntries(Object.entries(tp).map(([v, xs]) => [v, {
  perSecond: median(xs.map((x) => x.perSecond)),
  cpuUs: median(xs.map((x) => x.cpuUs)),
}]))
for (const [v, t] of Object.entries(throughput)) {
  console.log(`64 in flight, ${padEnd(v, 6)} ${fmt(t.perSecond / 1000, 1)}k/s, client CPU ${fmt(t.cpuUs, 1)} µs per call`)
}

// Redis killed: the limiter moves to fallback and decides locally.
const killed = once(server, 'exit')
server.kill('SIGKILL')
await killed
for (let i = 0; limiter.state !== 'fallback'; i++) {
  await limiter.check('k', () => true)
  if (i > 1000) throw new Error('no fallback after Redis was killed')
  await new Promise((resolve) => setTimeout(resolve, 1))
}
const fallback = summary(await sample((i) => limiter.check(KEYS[i & 15], () => true), OPS * 5))
console.log(`fallback (Redis down, local decision): p50 ${fmt(fallback.p50, 2)} µs, p99 ${fmt(fallback.p99, 2)} µs`)
console.log('')

const targets = [verdict('check() p50 over one Redis round trip (check − ping)', overPing.p50, '<=', 25, ' µs')]

await Promise.all([limiter.close(), tight.close()])
plain.disconnect()
if (sink === 0) console.log('(sink)')

emitResult('global-rate-limit', {
  medians: med,
  addedVsNoop: added,
  overPing,
  limited,
  fallback,
  throughput,
  targets,
  knobs: { ROUNDS, OPS, DURATION },
})
