// Token bucket and local rate limiter: Envoy local_ratelimit semantics on a fake clock.
// Every `now` here is a plain number of milliseconds; no test waits for real time.
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import type { RateLimitConfig } from '../src/config/types.js'
import { TokenBucket } from '../src/policy/token-bucket.js'
import {
  ALLOWED,
  LocalRateLimiter,
  MAX_DESCRIPTOR_VALUE_LENGTH,
  rateLimitHeaders,
  type RateLimitRequest,
  type RateLimitVerdict,
} from '../src/policy/rate-limit.js'

/** A request with the given parts; header names are looked up lower-case, as the limiter asks. */
function req(parts: { remoteAddress?: string; identity?: string; path?: string; headers?: Record<string, string> } = {}): RateLimitRequest {
  const headers = parts.headers ?? {}
  return {
    remoteAddress: parts.remoteAddress,
    identity: parts.identity,
    path: parts.path ?? '/',
    header: (name) => headers[name],
  }
}

/** Runs `count` checks at `now` and returns how many were admitted. */
function admitted(limiter: LocalRateLimiter, request: RateLimitRequest, now: number, count: number): number {
  let ok = 0
  for (let i = 0; i < count; i++) if (limiter.check(request, now).allowed) ok++
  return ok
}

describe('TokenBucket', () => {
  test('starts full, refuses when empty', () => {
    const b = new TokenBucket(3, 1, 1000, 0)
    assert.equal(b.remaining(0), 3)
    assert.equal(b.tryTake(0), true)
    assert.equal(b.tryTake(0), true)
    assert.equal(b.tryTake(0), true)
    assert.equal(b.tryTake(0), false)
    assert.equal(b.remaining(0), 0)
  })

  test('refills tokensPerFill at each whole fill interval, not in between', () => {
    const b = new TokenBucket(10, 2, 1000, 0)
    for (let i = 0; i < 10; i++) assert.equal(b.tryTake(0), true)
    assert.equal(b.remaining(999), 0, 'one millisecond before the boundary: nothing yet')
    assert.equal(b.remaining(999.999), 0)
    assert.equal(b.remaining(1000), 2, 'at the boundary: one fill')
    assert.equal(b.remaining(1999), 2)
    assert.equal(b.remaining(2000), 4)
    assert.equal(b.remaining(4500), 8, 'several fills at once (2000 → 4000)')
  })

  test('never holds more than maxTokens', () => {
    const b = new TokenBucket(5, 4, 100, 0)
    assert.equal(b.tryTake(0), true)
    assert.equal(b.remaining(100), 5, '4 + 4 capped at 5')
    assert.equal(b.remaining(1_000_000), 5, 'a long idle time fills to the cap, no further')
  })

  test('fills stay on the grid that started at creation', () => {
    const b = new TokenBucket(1, 1, 1000, 250)
    assert.equal(b.msUntilNextFill(250), 1000)
    assert.equal(b.tryTake(1000), true)
    assert.equal(b.msUntilNextFill(1000), 250, 'next boundary is 1250, whatever the time of the take')
    assert.equal(b.tryTake(1249), false)
    assert.equal(b.tryTake(1250), true)
    assert.equal(b.msUntilNextFill(3000), 250, 'boundaries 2250, 3250: fills happen whether or not the bucket is full')
    assert.equal(b.msUntilNextFill(3249.5), 0.5)
    assert.equal(b.msUntilNextFill(3250), 1000, 'at a boundary the next one is a whole interval away')
  })

  test('remaining and msUntilNextFill take nothing', () => {
    const b = new TokenBucket(2, 1, 50, 0)
    for (let i = 0; i < 5; i++) {
      b.remaining(10)
      b.msUntilNextFill(10)
    }
    assert.equal(b.remaining(10), 2)
  })

  test('reset: full again, grid restarts', () => {
    const b = new TokenBucket(2, 1, 100, 0)
    b.tryTake(0)
    b.tryTake(0)
    b.reset(130)
    assert.equal(b.remaining(130), 2)
    assert.equal(b.msUntilNextFill(130), 100)
  })

  test('maxTokens 0 refuses everything (Envoy)', () => {
    const b = new TokenBucket(0, 1, 100, 0)
    assert.equal(b.tryTake(0), false)
    assert.equal(b.tryTake(10_000), false)
  })

  test('rejects nonsense parameters', () => {
    assert.throws(() => new TokenBucket(-1, 1, 100, 0), RangeError)
    assert.throws(() => new TokenBucket(1.5, 1, 100, 0), RangeError)
    assert.throws(() => new TokenBucket(1, 0, 100, 0), RangeError)
    assert.throws(() => new TokenBucket(1, 1, 0, 0), RangeError)
    assert.throws(() => new TokenBucket(1, 1, Number.NaN, 0), RangeError)
    assert.throws(() => new TokenBucket(1, 1, 100, Number.NaN), RangeError)
  })
})

describe('LocalRateLimiter: default bucket', () => {
  test('config durations as strings; tokensPerFill defaults to maxTokens', () => {
    const limiter = new LocalRateLimiter({ maxTokens: 3, fillInterval: '1s' }, 0)
    assert.equal(admitted(limiter, req(), 0, 5), 3)
    assert.equal(admitted(limiter, req(), 999, 5), 0)
    assert.equal(admitted(limiter, req(), 1000, 5), 3, 'a whole refill: tokensPerFill = maxTokens')
    assert.deepEqual(limiter.stats(), { allowed: 6, limited: 9, descriptorBuckets: 0 })
  })

  test('admitted without responseHeaders: the shared frozen ALLOWED verdict', () => {
    const limiter = new LocalRateLimiter({ maxTokens: 2, fillInterval: 1000 }, 0)
    const v = limiter.check(req(), 0)
    assert.equal(v, ALLOWED)
    assert.ok(Object.isFrozen(v))
    assert.deepEqual(rateLimitHeaders(v), [], 'ALLOWED carries no numbers, so no headers')
  })

  test('a refusal carries the bucket numbers even without responseHeaders', () => {
    const limiter = new LocalRateLimiter({ maxTokens: 1, tokensPerFill: 1, fillInterval: '2.5s' }, 0)
    limiter.check(req(), 0)
    const v = limiter.check(req(), 600)
    assert.deepEqual(v, { allowed: false, limit: 1, remaining: 0, resetSeconds: 2, descriptor: undefined })
  })

  test('with responseHeaders: verdict fields and x-ratelimit-* values (Envoy DRAFT_VERSION_03)', () => {
    const limiter = new LocalRateLimiter({ maxTokens: 10, tokensPerFill: 5, fillInterval: '1500ms', responseHeaders: true }, 0)
    const first = limiter.check(req(), 0)
    assert.deepEqual(first, { allowed: true, limit: 10, remaining: 9, resetSeconds: 2, descriptor: undefined })
    assert.deepEqual(rateLimitHeaders(first), [
      ['x-ratelimit-limit', '10'],
      ['x-ratelimit-remaining', '9'],
      ['x-ratelimit-reset', '2'],
    ])
    const later = limiter.check(req(), 600) // 900 ms to the next fill: rounds up to 1 s
    assert.deepEqual(later, { allowed: true, limit: 10, remaining: 8, resetSeconds: 1, descriptor: undefined })
    for (let i = 0; i < 8; i++) limiter.check(req(), 700)
    const refused = limiter.check(req(), 1499)
    assert.deepEqual(refused, { allowed: false, limit: 10, remaining: 0, resetSeconds: 1, descriptor: undefined })
    assert.deepEqual(rateLimitHeaders(refused), [
      ['x-ratelimit-limit', '10'],
      ['x-ratelimit-remaining', '0'],
      ['x-ratelimit-reset', '1'],
    ])
    const refilled = limiter.check(req(), 1500)
    assert.deepEqual(refilled, { allowed: true, limit: 10, remaining: 4, resetSeconds: 2, descriptor: undefined })
  })

  test('resetSeconds rounds up, and is never 0 while a fill is pending', () => {
    const limiter = new LocalRateLimiter({ maxTokens: 100, fillInterval: '60s', responseHeaders: true }, 0)
    assert.equal(limiter.check(req(), 0).resetSeconds, 60)
    assert.equal(limiter.check(req(), 500).resetSeconds, 60)
    assert.equal(limiter.check(req(), 1000).resetSeconds, 59)
    assert.equal(limiter.check(req(), 59_999.5).resetSeconds, 1)
    assert.equal(limiter.check(req(), 60_000).resetSeconds, 60)
  })
})

describe('LocalRateLimiter: descriptors', () => {
  const perUser: RateLimitConfig = {
    maxTokens: 1000,
    fillInterval: '1s',
    descriptors: [{ key: 'header', name: 'X-User', maxTokens: 2, tokensPerFill: 1, fillInterval: '1s' }],
  }

  test('one bucket per distinct header value; header name case-insensitive', () => {
    const asked: string[] = []
    const limiter = new LocalRateLimiter(perUser, 0)
    const r = (user: string): RateLimitRequest => ({
      ...req(),
      header: (name) => {
        asked.push(name)
        return name === 'x-user' ? user : undefined
      },
    })
    assert.equal(admitted(limiter, r('alice'), 0, 5), 2)
    assert.equal(admitted(limiter, r('bob'), 0, 5), 2, 'bob has a bucket of his own')
    assert.equal(admitted(limiter, r('alice'), 1000, 5), 1, 'alice refilled: tokensPerFill 1')
    assert.ok(asked.every((n) => n === 'x-user'), 'the header is asked for in lower case')
    assert.equal(limiter.stats().descriptorBuckets, 2)
  })

  test('a request without the header does not match: only the default bucket applies', () => {
    const limiter = new LocalRateLimiter(perUser, 0)
    assert.equal(admitted(limiter, req(), 0, 10), 10)
    assert.equal(limiter.stats().descriptorBuckets, 0)
  })

  test('the verdict names the descriptor that refused', () => {
    const limiter = new LocalRateLimiter(perUser, 0)
    const r = req({ headers: { 'x-user': 'alice' } })
    admitted(limiter, r, 0, 2)
    const v = limiter.check(r, 250)
    assert.deepEqual(v, { allowed: false, limit: 2, remaining: 0, resetSeconds: 1, descriptor: 'header:x-user' })
  })

  test('Envoy default (always_consume_default_token_bucket: true): matched requests also pay the default bucket', () => {
    const limiter = new LocalRateLimiter({
      maxTokens: 3,
      fillInterval: '1s',
      descriptors: [{ key: 'remoteAddress', maxTokens: 2, fillInterval: '1s' }],
    }, 0)
    const a = req({ remoteAddress: '10.0.0.1' })
    const b = req({ remoteAddress: '10.0.0.2' })
    assert.equal(admitted(limiter, a, 0, 5), 2, 'per-address bucket: 2')
    const v = limiter.check(b, 0)
    assert.equal(v.allowed, true, 'the default bucket had 1 left')
    const refused = limiter.check(b, 0)
    assert.equal(refused.allowed, false)
    assert.equal(refused.descriptor, undefined, 'refused by the default bucket, which caps every address together')
    assert.equal(refused.limit, 3)
  })

  test('alwaysConsumeDefaultTokenBucket: false — a matched descriptor replaces the default bucket', () => {
    const config: RateLimitConfig = {
      maxTokens: 2,
      fillInterval: '1s',
      descriptors: [{ key: 'header', name: 'x-tier', value: 'premium', maxTokens: 10, fillInterval: '1s' }],
    }
    const premium = req({ headers: { 'x-tier': 'premium' } })
    const basic = req({ headers: { 'x-tier': 'basic' } })
    const override = new LocalRateLimiter(config, 0, { alwaysConsumeDefaultTokenBucket: false })
    assert.equal(admitted(override, premium, 0, 20), 10, 'premium: its own 10, the default bucket untouched')
    assert.equal(admitted(override, basic, 0, 5), 2, 'a value other than `value` does not match: default bucket')
    const envoyDefault = new LocalRateLimiter(config, 0)
    assert.equal(admitted(envoyDefault, premium, 0, 20), 2, 'by default the default bucket still caps premium')
  })

  test('a descriptor with `value` shares one bucket among the requests carrying that value', () => {
    const limiter = new LocalRateLimiter({
      maxTokens: 100,
      fillInterval: '1s',
      responseHeaders: true,
      descriptors: [{ key: 'path', value: '/login', maxTokens: 3, fillInterval: '1m' }],
    }, 0)
    assert.equal(admitted(limiter, req({ path: '/login', remoteAddress: 'a' }), 0, 2), 2)
    assert.equal(admitted(limiter, req({ path: '/login', remoteAddress: 'b' }), 0, 5), 1)
    const v = limiter.check(req({ path: '/login' }), 1000)
    assert.deepEqual(v, { allowed: false, limit: 3, remaining: 0, resetSeconds: 59, descriptor: 'path=/login' })
    assert.equal(limiter.check(req({ path: '/other' }), 1000).allowed, true)
    assert.equal(limiter.stats().descriptorBuckets, 0, 'fixed-value buckets are not per-value buckets')
  })

  test('identity and remoteAddress keys; an absent identity does not match', () => {
    const limiter = new LocalRateLimiter({
      maxTokens: 100,
      fillInterval: '1s',
      descriptors: [{ key: 'identity', maxTokens: 1, fillInterval: '1s' }],
    }, 0)
    const spiffe = 'spiffe://cluster.local/ns/default/sa/reviews'
    assert.equal(admitted(limiter, req({ identity: spiffe }), 0, 3), 1)
    assert.equal(admitted(limiter, req({ identity: undefined }), 0, 3), 3)
  })

  test('every matching descriptor applies; the strictest (slowest fill) is checked first; no token is wasted', () => {
    const limiter = new LocalRateLimiter({
      maxTokens: 1000,
      fillInterval: '1s',
      responseHeaders: true,
      descriptors: [
        { key: 'remoteAddress', maxTokens: 5, fillInterval: '1s' }, // 5 per second
        { key: 'header', name: 'x-user', maxTokens: 2, tokensPerFill: 2, fillInterval: '10s' }, // 0.2 per second
      ],
    }, 0)
    const alice = req({ remoteAddress: '10.0.0.1', headers: { 'x-user': 'alice' } })
    assert.equal(admitted(limiter, alice, 0, 2), 2)
    const v = limiter.check(alice, 0)
    assert.equal(v.allowed, false)
    assert.equal(v.descriptor, 'header:x-user', 'refused by the user bucket')
    // The refused request took nothing: the address bucket still has 3, the default 998.
    const sameAddress = req({ remoteAddress: '10.0.0.1', headers: { 'x-user': 'bob' } })
    assert.equal(admitted(limiter, sameAddress, 0, 10), 2, 'bob: limited by his own bucket first')
    const noUser = req({ remoteAddress: '10.0.0.1' })
    assert.equal(admitted(limiter, noUser, 0, 10), 1, 'the address bucket had 5 − 4 = 1 left')
    const refused = limiter.check(noUser, 0)
    assert.equal(refused.descriptor, 'remoteAddress')
  })

  test('an admitted verdict reports the bucket closest to exhaustion', () => {
    const limiter = new LocalRateLimiter({
      maxTokens: 3,
      fillInterval: '1s',
      responseHeaders: true,
      descriptors: [{ key: 'remoteAddress', maxTokens: 5, fillInterval: '1s' }],
    }, 0)
    const v1 = limiter.check(req({ remoteAddress: 'a' }), 0)
    assert.deepEqual(v1, { allowed: true, limit: 3, remaining: 2, resetSeconds: 1, descriptor: undefined }, 'default: 2 left, address: 4 left')
    const strict = new LocalRateLimiter({
      maxTokens: 100,
      fillInterval: '1s',
      responseHeaders: true,
      descriptors: [{ key: 'remoteAddress', maxTokens: 5, fillInterval: '1s' }],
    }, 0)
    assert.deepEqual(strict.check(req({ remoteAddress: 'a' }), 0), { allowed: true, limit: 5, remaining: 4, resetSeconds: 1, descriptor: 'remoteAddress' })
  })

  test('a refused request creates no per-value bucket, so refused floods evict nobody', () => {
    const limiter = new LocalRateLimiter({
      maxTokens: 1,
      fillInterval: '1s',
      descriptors: [{ key: 'header', name: 'x-key', maxTokens: 1, fillInterval: '1s' }],
    }, 0)
    assert.equal(limiter.check(req({ headers: { 'x-key': 'first' } }), 0).allowed, true)
    for (let i = 0; i < 100; i++) assert.equal(limiter.check(req({ headers: { 'x-key': `k${i}` } }), 0).allowed, false)
    assert.equal(limiter.stats().descriptorBuckets, 1)
  })

  test('per-value buckets start full when made, on their own fill grid', () => {
    const limiter = new LocalRateLimiter({
      maxTokens: 1000,
      fillInterval: '1s',
      responseHeaders: true,
      descriptors: [{ key: 'remoteAddress', maxTokens: 1, fillInterval: '1s' }],
    }, 0)
    const v = limiter.check(req({ remoteAddress: 'late' }), 5400)
    assert.deepEqual(v, { allowed: true, limit: 1, remaining: 0, resetSeconds: 1, descriptor: 'remoteAddress' })
    assert.equal(limiter.check(req({ remoteAddress: 'late' }), 6399).allowed, false)
    assert.equal(limiter.check(req({ remoteAddress: 'late' }), 6400).allowed, true)
  })

  test('least recently used values are evicted first', () => {
    const limiter = new LocalRateLimiter({
      maxTokens: 1000,
      fillInterval: '1m',
      descriptors: [{ key: 'header', name: 'x-key', maxTokens: 1, fillInterval: '1m' }],
    }, 0, { descriptorBuckets: 3 })
    const r = (k: string): RateLimitRequest => req({ headers: { 'x-key': k } })
    for (const k of ['a', 'b', 'c']) assert.equal(limiter.check(r(k), 0).allowed, true)
    assert.equal(limiter.check(r('a'), 0).allowed, false, 'a is used again (refused, but touched): now most recent')
    assert.equal(limiter.check(r('d'), 0).allowed, true, 'd evicts the least recently used: b')
    assert.equal(limiter.stats().descriptorBuckets, 3)
    // Least to most recent: c, a, d.
    assert.equal(limiter.check(r('a'), 0).allowed, false, 'a kept its empty bucket')
    assert.equal(limiter.check(r('c'), 0).allowed, false, 'c kept its empty bucket')
    // Now d, a, c.
    assert.equal(limiter.check(r('b'), 0).allowed, true, 'b was evicted: a fresh bucket, evicting d')
    assert.equal(limiter.check(r('d'), 0).allowed, true, 'd was evicted: a fresh bucket, evicting a')
    assert.equal(limiter.check(r('c'), 0).allowed, false, 'c survived')
    assert.equal(limiter.check(r('a'), 0).allowed, true, 'a was evicted (by d)')
  })

  test('100,000 distinct hostile values: the bucket map stays at its bound', () => {
    const limiter = new LocalRateLimiter({
      maxTokens: 1_000_000,
      fillInterval: '1s',
      descriptors: [
        { key: 'header', name: 'x-api-key', maxTokens: 5, fillInterval: '1s' },
        { key: 'remoteAddress', maxTokens: 5, fillInterval: '1s' },
      ],
    }, 0)
    const headers: Record<string, string> = { 'x-api-key': '' }
    const r = { remoteAddress: '', identity: undefined, path: '/', header: (n: string): string | undefined => headers[n] }
    let ok = 0
    for (let i = 0; i < 100_000; i++) {
      headers['x-api-key'] = `hostile-${i}`
      r.remoteAddress = `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`
      if (limiter.check(r, i / 100).allowed) ok++
      if ((i & 4095) === 0) assert.ok(limiter.stats().descriptorBuckets <= 20_000)
    }
    assert.equal(ok, 100_000, 'every new value gets a full bucket')
    assert.equal(limiter.stats().descriptorBuckets, 20_000, 'two descriptors × defaults.descriptorBuckets (10,000)')
  })

  test(`values longer than ${MAX_DESCRIPTOR_VALUE_LENGTH} characters are hashed, not truncated`, () => {
    const limiter = new LocalRateLimiter({
      maxTokens: 1000,
      fillInterval: '1s',
      descriptors: [{ key: 'header', name: 'authorization', maxTokens: 1, fillInterval: '1s' }],
    }, 0)
    const prefix = 'Bearer ' + 'x'.repeat(400)
    const one = req({ headers: { authorization: prefix + 'one' } })
    const two = req({ headers: { authorization: prefix + 'two' } })
    assert.equal(limiter.check(one, 0).allowed, true)
    assert.equal(limiter.check(two, 0).allowed, true, 'same first 256+ characters, different value: different bucket')
    assert.equal(limiter.check(one, 0).allowed, false, 'the same long value finds its bucket again')
    const short = req({ headers: { authorization: 'short' } })
    assert.equal(limiter.check(short, 0).allowed, true)
    assert.equal(limiter.stats().descriptorBuckets, 3)
  })

  test('counters: allowed and limited', () => {
    const limiter = new LocalRateLimiter({ maxTokens: 2, fillInterval: '1s', descriptors: [{ key: 'path', maxTokens: 1, fillInterval: '1s' }] }, 0)
    const verdicts: RateLimitVerdict[] = []
    for (const path of ['/a', '/a', '/b', '/c']) verdicts.push(limiter.check(req({ path }), 0))
    assert.deepEqual(verdicts.map((v) => v.allowed), [true, false, true, false])
    const s = limiter.stats()
    assert.equal(s.allowed, 2)
    assert.equal(s.limited, 2)
  })

  test('rejects a descriptor it cannot use', () => {
    assert.throws(() => new LocalRateLimiter({ maxTokens: 1, fillInterval: '1s', descriptors: [{ key: 'header', maxTokens: 1, fillInterval: '1s' }] }, 0), TypeError)
    assert.throws(() => new LocalRateLimiter({ maxTokens: 1, fillInterval: 'soon' }, 0), TypeError)
    assert.throws(() => new LocalRateLimiter({ maxTokens: 1, fillInterval: '1s' }, 0, { descriptorBuckets: 0 }), RangeError)
  })
})
