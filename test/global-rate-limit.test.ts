/**
 * The global rate limit against a real redis-server (test/helpers/redis.ts starts one per
 * suite, on a free port): quota per window and per key, one quota shared by two processes,
 * Redis killed, restarted and hung mid-run, failure modes, credentials kept out of messages,
 * and close() leaving nothing behind.
 *
 * Skipped (reported as such) when redis-server is not installed. The two-process test runs
 * children importing the limiter's own module as tsc built it (build/src/; dist/ is a bundle
 * whose files are not the source's).
 */
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { once } from 'node:events'
import { createInterface } from 'node:readline'
import { after, before, describe, test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { GlobalRateLimiter, type GlobalRateLimitState } from '../src/policy/global-rate-limit.js'
import { freePort, redisServerAvailable, startRedis, type RedisServer } from './helpers/redis.js'

// build/test/global-rate-limit.test.js → build/src/ (built by `npm run build:test`).
const BUILT_MODULE = fileURLToPath(new URL('../src/policy/global-rate-limit.js', import.meta.url))
const TIMEOUT_MS = 50
/** What a check may take beyond the timeout on a busy two-core machine: timer lateness, GC. */
const SLACK_MS = 100
const HOUR_MS = 3_600_000
/**
 * The timeout of tests that count decisions: on a loaded machine Redis may take more than the
 * default 50ms, and a check decided locally would then be miscounted. The tests of slow and
 * dead Redis use the default.
 */
const COUNTING_TIMEOUT = '2s'

// Each test carries the skip (not only the suite), so the summary counts them as skipped.
const skip = redisServerAvailable() ? false : 'redis-server not installed'
const it = (name: string, fn: () => Promise<void> | void) => test(name, { skip }, fn)

const warnings: Error[] = []
const unhandled: unknown[] = []
const onWarning = (w: Error & { code?: string }) => {
  if (w.code === 'SIDECARLESS_RATE_LIMIT_FALLBACK') warnings.push(w)
}
const onUnhandled = (reason: unknown) => unhandled.push(reason)

let prefixes = 0
/** A key prefix no other test (nor an earlier run) uses. */
function freshPrefix(): string {
  return `test:${process.pid}:${Date.now()}:${++prefixes}:`
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

/** Polls `pred` every 10ms until it holds; fails after `ms`. */
async function waitFor(what: string, pred: () => boolean, ms = 5_000): Promise<void> {
  const deadline = Date.now() + ms
  while (!pred()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`)
    await sleep(10)
  }
}

/** Waits, if needed, so that at least `needMs` remain in the current window of `unitMs`. */
async function windowRoom(unitMs: number, needMs: number): Promise<number> {
  const left = unitMs - (Date.now() % unitMs)
  if (left < needMs) await sleep(left + 5)
  const now = Date.now()
  return now - (now % unitMs)
}

/** A check and how long it took to resolve. */
async function timedCheck(limiter: GlobalRateLimiter, key: string, fallback?: () => boolean) {
  const t0 = performance.now()
  const allowed = await limiter.check(key, fallback)
  return { allowed, ms: performance.now() - t0 }
}

/**
 * Keeps `loops` checks going until `stop()`; records the slowest. Each loop yields to the event
 * loop between checks, so checks decided at once do not starve timers.
 */
function checkLoad(limiter: GlobalRateLimiter, fallback?: () => boolean, loops = 4) {
  let running = true
  let slowest = 0
  let count = 0
  const done = Promise.all(
    Array.from({ length: loops }, async (_, i) => {
      while (running) {
        const { ms } = await timedCheck(limiter, `load-${i}`, fallback)
        slowest = Math.max(slowest, ms)
        count++
        await sleep(2)
      }
    }),
  )
  return {
    get slowest() {
      return slowest
    },
    get count() {
      return count
    },
    async stop() {
      running = false
      await done
    },
  }
}

describe('GlobalRateLimiter with a real Redis', () => {
  let redis: RedisServer

  before(async () => {
    if (skip !== false) return
    process.on('warning', onWarning)
    process.on('unhandledRejection', onUnhandled)
    redis = await startRedis()
  })

  after(async () => {
    if (skip !== false) return
    await redis.stop()
    process.off('warning', onWarning)
    process.off('unhandledRejection', onUnhandled)
  })

  it('allows requestsPerUnit per window and per key, then limits', async () => {
    const prefix = freshPrefix()
    const limiter = new GlobalRateLimiter({ redis: redis.url, requestsPerUnit: 20, unit: 'hour', prefix, timeout: COUNTING_TIMEOUT })
    try {
      assert.equal(await limiter.ready(), true)
      const start = await windowRoom(HOUR_MS, 10_000)
      const first = await Promise.all(Array.from({ length: 30 }, () => limiter.check('alice')))
      assert.equal(first.filter(Boolean).length, 20, 'exactly 20 of 30 concurrent checks allowed')
      const bob = await Promise.all(Array.from({ length: 5 }, () => limiter.check('bob')))
      assert.deepEqual(bob, [true, true, true, true, true], 'another key has its own quota')

      // Envoy's layout: one counter per unit, window start and descriptor value, expiring after the window.
      const key = `${prefix}hour:${start}:alice`
      assert.equal(await redis.command('GET', key), '30')
      const ttl = await redis.command('PTTL', key)
      assert.ok(typeof ttl === 'number' && ttl > HOUR_MS - 10_000 && ttl <= HOUR_MS + 1_000, `PTTL ${String(ttl)}`)

      // Once over, the key stays over for the window: answered without a Redis round trip.
      for (let i = 0; i < 10; i++) assert.equal(await limiter.check('alice'), false)
      assert.equal(await redis.command('GET', key), '30', 'no INCR for a key known to be over quota')

      assert.deepEqual(limiter.stats(), { allowed: 25, limited: 20, fallbackDecisions: 0, redisErrors: 0, state: 'ok' })
      assert.equal(limiter.state, 'ok')
    } finally {
      await limiter.close()
    }
  })

  it('long and #-led descriptor values are hashed into bounded keys', async () => {
    const prefix = freshPrefix()
    const limiter = new GlobalRateLimiter({ redis: redis.url, requestsPerUnit: 2, unit: 'hour', prefix, timeout: COUNTING_TIMEOUT })
    try {
      assert.equal(await limiter.ready(), true)
      await windowRoom(HOUR_MS, 10_000)
      const long = 'x'.repeat(10_000)
      assert.deepEqual([await limiter.check(long), await limiter.check(long), await limiter.check(long)], [true, true, false])
      assert.equal(await limiter.check(`${long}y`), true, 'a different long value is a different quota')
      assert.equal(await limiter.check('#literal'), true)
      const keys = await redis.command('KEYS', `${prefix}*`)
      assert.ok(Array.isArray(keys) && keys.length === 3, `keys: ${JSON.stringify(keys)}`)
      for (const k of keys as string[]) {
        assert.ok(k.length <= prefix.length + 'hour:'.length + 14 + 1 + 44, `key bounded: ${k.length} chars`)
        assert.match(k.slice(k.lastIndexOf(':') + 1), /^#[A-Za-z0-9_-]{43}$/)
      }
    } finally {
      await limiter.close()
    }
  })

  it('the quota comes back in the next window', async () => {
    const limiter = new GlobalRateLimiter({ redis: redis.url, requestsPerUnit: 5, unit: 'second', prefix: freshPrefix(), timeout: COUNTING_TIMEOUT })
    try {
      assert.equal(await limiter.ready(), true)
      await windowRoom(1_000, 800)
      const first = await Promise.all(Array.from({ length: 8 }, () => limiter.check('')))
      assert.equal(first.filter(Boolean).length, 5)
      await windowRoom(1_000, 1_000) // sleeps into the next second
      const second = await Promise.all(Array.from({ length: 5 }, () => limiter.check('')))
      assert.equal(second.filter(Boolean).length, 5)
    } finally {
      await limiter.close()
    }
  })

  it('two processes share one quota', async () => {
    assert.ok(existsSync(BUILT_MODULE), `${BUILT_MODULE} is missing: run \`npm run build:test\` first`)
    const limit = 500
    const perChild = 600
    const prefix = freshPrefix()
    await windowRoom(HOUR_MS, 20_000)
    const children = [0, 1].map(() => startChild({ module: BUILT_MODULE, redis: redis.url, limit, prefix, checks: perChild, concurrency: 16, timeout: COUNTING_TIMEOUT }))
    try {
      await Promise.all(children.map((c) => c.line('ready')))
      for (const c of children) c.send('go')
      const results = await Promise.all(children.map((c) => c.line('result')))
      const total = results.reduce((sum, r) => sum + (r.allowed as number), 0)
      assert.ok(Math.abs(total - limit) <= limit * 0.05, `allowed ${total} in total, limit ${limit} (per process: ${results.map((r) => r.allowed as number).join(', ')})`)
      for (const r of results) {
        assert.equal((r.allowed as number) + (r.limited as number), perChild)
        assert.equal(r.fallbackDecisions, 0, 'every decision came from Redis')
        assert.equal(r.ioredisBeforeConstruct, false, 'importing the module does not load ioredis')
        assert.equal(r.ioredisAfterConstruct, true)
      }
      // close() left no handle behind: each child exits on its own, without process.exit().
      const codes = await Promise.all(children.map((c) => c.exit(5_000)))
      assert.deepEqual(codes, [0, 0], `children exited: ${children.map((c) => c.stderr()).join('\n')}`)
    } finally {
      for (const c of children) c.kill()
    }
  })

  it('close() resolves waiting checks, is idempotent, and leaves no handle', async () => {
    const before = resourceCounts()
    const limiter = new GlobalRateLimiter({ redis: redis.url, requestsPerUnit: 10, unit: 'minute', prefix: freshPrefix() })
    assert.equal(await limiter.ready(), true)
    assert.equal(await limiter.check('k'), true)
    await Promise.all([limiter.close(), limiter.close()])
    assert.equal(await limiter.check('k', () => false), false, 'after close the local decision applies')
    assert.deepEqual(resourceCounts(), before, 'nothing left once close() resolved')

    // Closed before it even connected: the pending check resolves at once, ready() says false.
    const early = new GlobalRateLimiter({ redis: redis.url, requestsPerUnit: 10, unit: 'minute' })
    const pending = early.check('k', () => true)
    await early.close()
    assert.equal(await pending, true)
    assert.equal(await early.ready(), false)
    assert.deepEqual(resourceCounts(), before)

    // Closed while Redis is down and ioredis is between reconnects.
    const down = new GlobalRateLimiter({ redis: `redis://127.0.0.1:${await freePort()}`, requestsPerUnit: 10, unit: 'minute' })
    assert.equal(await down.ready(), false)
    await sleep(30)
    await down.close()
    assert.deepEqual(resourceCounts(), before)
  })

  it('Redis killed mid-run: the fallback decides within the timeout; one warning; recovery after a restart', async () => {
    const own = await startRedis()
    const states: GlobalRateLimitState[] = []
    let fallbackCalls = 0
    const fallback = () => {
      fallbackCalls++
      return false
    }
    const limiter = new GlobalRateLimiter(
      { redis: own.url, requestsPerUnit: 1_000_000, unit: 'minute', prefix: freshPrefix(), timeout: `${TIMEOUT_MS}ms` },
      { onStateChange: (s) => states.push(s) },
    )
    const warned = warnings.length
    try {
      assert.equal(await limiter.ready(), true)
      let load = checkLoad(limiter, fallback)
      await sleep(150)
      assert.equal(fallbackCalls, 0, 'Redis decides while it is up')
      await own.kill()
      await waitFor('fallback state', () => limiter.state === 'fallback', 1_000)
      await sleep(300)
      await load.stop()
      assert.ok(load.slowest <= TIMEOUT_MS + SLACK_MS, `slowest check ${load.slowest.toFixed(1)}ms`)
      assert.ok(fallbackCalls > 0, 'the fallback decided while Redis was down')
      assert.equal(limiter.state, 'fallback')
      assert.deepEqual(states, ['fallback'])
      assert.equal(warnings.length - warned, 1, 'one warning per move into fallback, not one per request')
      const stats = limiter.stats()
      assert.ok(stats.fallbackDecisions >= fallbackCalls && stats.redisErrors > 0, JSON.stringify(stats))

      // Restarted on the same port: the limiter reconnects and Redis decides again.
      load = checkLoad(limiter, fallback)
      await own.restart()
      await waitFor('recovery to ok', () => limiter.state === 'ok', 5_000)
      await load.stop()
      assert.ok(load.slowest <= TIMEOUT_MS + SLACK_MS, `slowest check ${load.slowest.toFixed(1)}ms`)
      assert.deepEqual(states, ['fallback', 'ok'])
      const calls = fallbackCalls
      assert.equal(await limiter.check('after'), true)
      assert.equal(fallbackCalls, calls, 'no fallback once Redis answers')
      assert.equal(warnings.length - warned, 1)

      // A second outage is a second transition: a second warning.
      await own.kill()
      await waitFor('fallback again', () => limiter.state === 'fallback', 1_000)
      assert.deepEqual(states, ['fallback', 'ok', 'fallback'])
      await sleep(10)
      assert.equal(warnings.length - warned, 2)
    } finally {
      await limiter.close()
      await own.stop()
    }
  })

  it('Redis hung (SIGSTOP): checks answer within the timeout, then at once; back to ok when it resumes', async () => {
    const own = await startRedis()
    const states: GlobalRateLimitState[] = []
    const limiter = new GlobalRateLimiter(
      { redis: own.url, requestsPerUnit: 1_000_000, unit: 'minute', prefix: freshPrefix(), timeout: TIMEOUT_MS },
      { onStateChange: (s) => states.push(s) },
    )
    const warned = warnings.length
    try {
      assert.equal(await limiter.ready(), true)
      own.pause()
      const first = await timedCheck(limiter, 'k', () => false)
      assert.equal(first.allowed, false, 'the fallback decided')
      assert.ok(first.ms >= TIMEOUT_MS - 5 && first.ms <= TIMEOUT_MS + SLACK_MS, `first check took ${first.ms.toFixed(1)}ms`)
      assert.equal(limiter.state, 'fallback')
      const next = await timedCheck(limiter, 'k', () => true)
      assert.equal(next.allowed, true)
      assert.ok(next.ms < TIMEOUT_MS / 2, `in fallback a check does not wait for Redis (${next.ms.toFixed(1)}ms)`)

      // Long enough for the stuck-connection guard (1s without an answer) to reopen the connection.
      const load = checkLoad(limiter, () => true)
      await sleep(1_300)
      own.resume()
      await waitFor('recovery to ok', () => limiter.state === 'ok', 5_000)
      await load.stop()
      assert.ok(load.slowest <= TIMEOUT_MS + SLACK_MS, `slowest check ${load.slowest.toFixed(1)}ms`)
      assert.deepEqual(states, ['fallback', 'ok'])
      assert.equal(warnings.length - warned, 1)
      assert.equal(await limiter.check('k', () => false), true, 'Redis decides again')
    } finally {
      own.resume()
      await limiter.close()
      await own.stop()
    }
  })

  it('without a fallback function, failureMode decides: closed refuses, open allows', async () => {
    const port = await freePort() // nothing listens there
    for (const [failureMode, expected] of [['closed', false], ['open', true], [undefined, true]] as const) {
      const limiter = new GlobalRateLimiter({ redis: `redis://127.0.0.1:${port}`, requestsPerUnit: 5, unit: 'second', failureMode })
      try {
        const first = await timedCheck(limiter, 'k') // made while the connection is being attempted
        assert.equal(first.allowed, expected, `failureMode ${failureMode}`)
        assert.ok(first.ms <= TIMEOUT_MS + SLACK_MS, `${first.ms.toFixed(1)}ms`)
        assert.equal(await limiter.ready(), false)
        assert.equal(limiter.state, 'fallback')
        const later = await timedCheck(limiter, 'k')
        assert.equal(later.allowed, expected)
        assert.ok(later.ms < TIMEOUT_MS / 2, `${later.ms.toFixed(1)}ms`)
        assert.equal(limiter.stats().limited, expected ? 0 : 2)
      } finally {
        await limiter.close()
      }
    }
  })

  it('a password in the Redis URL never shows in warnings or stats', async () => {
    const secret = 's3cr3t-Pa55'
    const guarded = await startRedis({ password: secret })
    const port = await freePort()
    const warned = warnings.length
    const limiters = [
      new GlobalRateLimiter({ redis: `redis://:${secret}@127.0.0.1:${port}`, requestsPerUnit: 5, unit: 'second' }), // unreachable
      new GlobalRateLimiter({ redis: `redis://default:${secret}x@127.0.0.1:${guarded.port}`, requestsPerUnit: 5, unit: 'second' }), // refused
      new GlobalRateLimiter({ redis: guarded.url, requestsPerUnit: 5, unit: 'second', prefix: freshPrefix(), timeout: COUNTING_TIMEOUT }), // right
    ]
    try {
      const ready = await Promise.all(limiters.map((l) => l.ready()))
      assert.deepEqual(ready, [false, false, true])
      assert.equal(await limiters[2]!.check('k', () => false), true, 'authenticated: Redis decides')
      await sleep(10)
      const messages = warnings.slice(warned).map((w) => w.message)
      assert.equal(messages.length, 2, messages.join('\n'))
      assert.ok(messages.some((m) => m.includes(`redis://127.0.0.1:${port}`)), messages.join('\n'))
      assert.ok(messages.some((m) => /WRONGPASS|NOAUTH|invalid/i.test(m)), messages.join('\n'))
      for (const m of messages) assert.ok(!m.includes(secret), `a warning leaks the password: ${m}`)
      for (const l of limiters) assert.ok(!JSON.stringify(l.stats()).includes(secret))
    } finally {
      await Promise.all(limiters.map((l) => l.close()))
      await guarded.stop()
    }
  })

  it('no unhandled rejection', () => {
    assert.deepEqual(unhandled, [])
  })
})

/**
 * Counts of the active resources a Redis client could hold (sockets, timers, DNS lookups), by
 * type, to compare before and after. Child processes and their pipes, which other tests and
 * the redis-server helper own, are left out.
 */
function resourceCounts(): Record<string, number> {
  const counts: Record<string, number> = {}
  for (const r of process.getActiveResourcesInfo()) {
    if (/TCP|Timeout|Immediate|GetAddrInfo|Query|TLS/i.test(r)) counts[r] = (counts[r] ?? 0) + 1
  }
  return counts
}

/**
 * The child's script: imports the built limiter (checking that doing so loads no ioredis),
 * waits for "go", runs its checks and reports, then closes and lets the process end by itself.
 */
const CHILD = `
import { createRequire } from 'node:module'
import { createInterface } from 'node:readline'
const cfg = JSON.parse(process.env.GRL_CHILD)
const cache = createRequire(cfg.module).cache
const ioredisLoaded = () => Object.keys(cache).some((k) => k.includes('/node_modules/ioredis/'))
const { GlobalRateLimiter } = await import(cfg.module)
const ioredisBeforeConstruct = ioredisLoaded()
const limiter = new GlobalRateLimiter({ redis: cfg.redis, requestsPerUnit: cfg.limit, unit: 'hour', prefix: cfg.prefix, timeout: cfg.timeout })
if (!(await limiter.ready())) throw new Error('redis not ready')
const ioredisAfterConstruct = ioredisLoaded()
const say = (o) => process.stdout.write(JSON.stringify(o) + '\\n')
say({ event: 'ready' })
const input = createInterface({ input: process.stdin })
for await (const line of input) if (line === 'go') break
input.close()
let next = 0
await Promise.all(Array.from({ length: cfg.concurrency }, async () => {
  while (next++ < cfg.checks) await limiter.check('shared')
}))
say({ event: 'result', ...limiter.stats(), ioredisBeforeConstruct, ioredisAfterConstruct })
await limiter.close()
`

interface Child {
  line(event: string): Promise<Record<string, unknown>>
  send(text: string): void
  exit(ms: number): Promise<number | null>
  stderr(): string
  kill(): void
}

function startChild(cfg: Record<string, unknown>): Child {
  const proc = spawn(process.execPath, ['--input-type=module', '-e', CHILD], {
    env: { ...process.env, GRL_CHILD: JSON.stringify(cfg) },
    stdio: ['pipe', 'pipe', 'pipe'],
  })
  let stderr = ''
  proc.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d))
  const events: Record<string, unknown>[] = []
  const waiters: (() => void)[] = []
  createInterface({ input: proc.stdout }).on('line', (l) => {
    events.push(JSON.parse(l) as Record<string, unknown>)
    for (const w of waiters.splice(0)) w()
  })
  const exited = once(proc, 'exit').then(() => proc.exitCode)
  return {
    async line(event) {
      let timedOut = false
      const timer = setTimeout(() => {
        timedOut = true
        for (const w of waiters.splice(0)) w()
      }, 10_000)
      try {
        for (;;) {
          const found = events.find((e) => e.event === event)
          if (found !== undefined) return found
          if (proc.exitCode !== null) assert.fail(`child exited (${proc.exitCode}) before "${event}": ${stderr}`)
          if (timedOut) assert.fail(`child sent no "${event}": ${stderr}`)
          await Promise.race([new Promise<void>((r) => waiters.push(r)), exited])
        }
      } finally {
        clearTimeout(timer)
      }
    },
    send(text) {
      proc.stdin.write(`${text}\n`)
    },
    async exit(ms) {
      proc.stdin.end()
      const timer = setTimeout(() => proc.kill('SIGKILL'), ms)
      const code = await exited
      clearTimeout(timer)
      return proc.signalCode === null ? code : null
    },
    stderr: () => stderr,
    kill() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL')
    },
  }
}
