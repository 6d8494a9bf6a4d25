/**
 * Local rate limiting, after Envoy's `local_ratelimit` filter: a default token bucket plus
 * descriptor buckets, decided in-process with no timer and no I/O.
 *
 * How a request is decided (Envoy's rules, checked against its `local_ratelimit_impl.cc` and
 * the `LocalRateLimit` proto):
 *
 * - Every descriptor the request matches applies, not only the first: a request limited per
 *   client address *and* per identity must pass both buckets. Matched buckets are checked in
 *   order of fill rate (tokens per second), slowest first, as Envoy sorts them, so a refusal
 *   names the strictest bucket that is empty.
 * - The default bucket applies too. Envoy's `always_consume_default_token_bucket` defaults to
 *   `true`: a request that matched descriptors still takes a token from the default bucket,
 *   which therefore caps the whole listener/route/cluster. With the option `false` (see
 *   {@link LocalRateLimiterOptions}) the default bucket is used only by requests that match
 *   no descriptor, so a descriptor's bucket replaces it: the "override" the proto's
 *   `descriptors` field speaks of, e.g. a higher limit for one header value.
 * - A request is admitted only when every bucket that applies has a token; only then is one
 *   token taken from each. Envoy takes them one by one and keeps those taken before a later
 *   bucket refuses; on one event loop we can check first and waste none.
 *
 * Descriptors (`RateLimitDescriptor`) key on the client address, the peer identity, a request
 * header (by `name`, case-insensitive) or the path, as the caller passes them in
 * {@link RateLimitRequest}. A request without that value (no such header, no identity) does
 * not match. With `value`, only requests carrying exactly that value match, and they share one
 * bucket. Without `value` every distinct value gets its own bucket (Envoy's "dynamic
 * descriptors"): those live in a bounded map per descriptor (`defaults.descriptorBuckets`,
 * 10,000), least recently used evicted, O(1), so a flood of distinct values cannot grow
 * memory. An evicted value starts again with a full bucket; the default bucket, which every
 * request also pays by default, still caps such a flood. A request that is refused never
 * creates a per-value bucket, so refused floods evict nobody.
 *
 * Values longer than 256 characters are hashed (SHA-256), not truncated: truncation would let
 * values that share a long prefix share one bucket, so one client could drain another's.
 *
 * The admitted fast path allocates nothing when `responseHeaders` is off: `check` returns the
 * shared frozen {@link ALLOWED} verdict, whose numbers are -1 (not computed). With
 * `responseHeaders` on, and for every refusal, the verdict carries the limit, remaining tokens
 * and reset time of one bucket: for a refusal the bucket that refused; for an admission the
 * one with the fewest tokens left (ties to the strictest descriptor, the default bucket
 * last), the quota the client is closest to exhausting. Envoy reports the first descriptor
 * bucket even when the default bucket has fewer left.
 *
 * @module
 */
import { hash } from 'node:crypto'
import type { DescriptorKey, RateLimitConfig, RateLimitDescriptor, TokenBucketConfig } from '../config/types.js'
import { defaults } from '../config/defaults.js'
import { parseDuration } from '../config/duration.js'
import { TokenBucket } from './token-bucket.js'

/** What the limiter reads of a request. */
export interface RateLimitRequest {
  /** The client's address (the socket's remote address, or what a trusted proxy said). */
  readonly remoteAddress: string | undefined
  /** The peer's identity (SPIFFE id under mTLS, or an authenticated principal). */
  readonly identity: string | undefined
  /** The path the descriptors see; pass it without the query string, as routes match it. */
  readonly path: string
  /** A request header by lower-case name, `undefined` when absent. */
  header(name: string): string | undefined
}

/** The decision on one request. */
export interface RateLimitVerdict {
  readonly allowed: boolean
  /** `maxTokens` of the bucket reported; -1 in the shared {@link ALLOWED} verdict. */
  readonly limit: number
  /** Tokens that bucket has left after this request; -1 in {@link ALLOWED}. */
  readonly remaining: number
  /** Whole seconds (rounded up) until that bucket's next fill; -1 in {@link ALLOWED}. */
  readonly resetSeconds: number
  /** The label of the descriptor whose bucket is reported (`header:x-user`, `path=/login`); `undefined` for the default bucket. */
  readonly descriptor: string | undefined
}

/** Options beyond the config model. */
export interface LocalRateLimiterOptions {
  /**
   * Envoy's `always_consume_default_token_bucket` (default `true`): requests that match
   * descriptors also take a token from the default bucket. `false`: the matched descriptors'
   * buckets replace the default bucket for those requests.
   */
  alwaysConsumeDefaultTokenBucket?: boolean
  /** Per-value buckets kept per descriptor without `value` (default `defaults.descriptorBuckets`). */
  descriptorBuckets?: number
}

/** Counters of a limiter. */
export interface RateLimitStats {
  /** Requests admitted. */
  readonly allowed: number
  /** Requests refused. */
  readonly limited: number
  /** Per-value buckets alive now, over every descriptor. */
  readonly descriptorBuckets: number
}

/**
 * The verdict returned for every admitted request when `responseHeaders` is off: shared and
 * frozen, so admitting costs no allocation. Its numbers are -1: nothing was computed.
 */
export const ALLOWED: RateLimitVerdict = Object.freeze({ allowed: true, limit: -1, remaining: -1, resetSeconds: -1, descriptor: undefined })

/** Values longer than this are replaced by their SHA-256 before they key a bucket. */
export const MAX_DESCRIPTOR_VALUE_LENGTH = 256

/**
 * The `x-ratelimit-*` response headers of a verdict, as Envoy's local rate limit filter writes
 * them with `enable_x_ratelimit_headers: DRAFT_VERSION_03` (draft-ietf-httpapi-ratelimit-headers-03):
 * `x-ratelimit-limit` the bucket's `maxTokens`, `x-ratelimit-remaining` its tokens left,
 * `x-ratelimit-reset` seconds until its next fill. Empty for the shared {@link ALLOWED}
 * verdict, which carries no numbers.
 */
export function rateLimitHeaders(verdict: RateLimitVerdict): [name: string, value: string][] {
  if (verdict.limit < 0) return []
  return [
    ['x-ratelimit-limit', String(verdict.limit)],
    ['x-ratelimit-remaining', String(verdict.remaining)],
    ['x-ratelimit-reset', String(verdict.resetSeconds)],
  ]
}

// ---------------------------------------------------------------- per-value buckets

/** A node of the LRU list; it owns its bucket, and both are recycled on eviction. */
class LruNode {
  key: string
  readonly bucket: TokenBucket
  /** Towards the most recently used end. */
  newer: LruNode | null = null
  /** Towards the least recently used end. */
  older: LruNode | null = null

  constructor(key: string, bucket: TokenBucket) {
    this.key = key
    this.bucket = bucket
  }
}

/**
 * A map from value to bucket holding at most `capacity` entries, the least recently used
 * evicted first. A Map finds the node; an intrusive doubly linked list keeps the order, so
 * every operation is O(1), and an eviction reuses the evicted node and bucket.
 */
class BucketLru {
  readonly #map = new Map<string, LruNode>()
  readonly #capacity: number
  readonly #spec: BucketSpec
  /** Most recently used. */
  #newest: LruNode | null = null
  /** Least recently used: the next evicted. */
  #oldest: LruNode | null = null

  constructor(capacity: number, spec: BucketSpec) {
    this.#capacity = capacity
    this.#spec = spec
  }

  get size(): number {
    return this.#map.size
  }

  /** The bucket of `key`, marked most recently used, or `undefined`. */
  get(key: string): TokenBucket | undefined {
    const node = this.#map.get(key)
    if (node === undefined) return undefined
    if (node !== this.#newest) {
      this.#unlink(node)
      this.#pushNewest(node)
    }
    return node.bucket
  }

  /** A new full bucket for `key` (which must be absent), evicting the least recently used at capacity. */
  insert(key: string, now: number): TokenBucket {
    let node: LruNode
    const oldest = this.#oldest
    if (this.#map.size >= this.#capacity && oldest !== null) {
      this.#map.delete(oldest.key)
      this.#unlink(oldest)
      node = oldest
      node.key = key
      node.bucket.reset(now)
    } else {
      const s = this.#spec
      node = new LruNode(key, new TokenBucket(s.maxTokens, s.tokensPerFill, s.fillIntervalMs, now))
    }
    this.#map.set(key, node)
    this.#pushNewest(node)
    return node.bucket
  }

  #unlink(node: LruNode): void {
    if (node.newer === null) this.#newest = node.older
    else node.newer.older = node.older
    if (node.older === null) this.#oldest = node.newer
    else node.older.newer = node.newer
    node.newer = null
    node.older = null
  }

  #pushNewest(node: LruNode): void {
    node.older = this.#newest
    node.newer = null
    if (this.#newest !== null) this.#newest.newer = node
    this.#newest = node
    if (this.#oldest === null) this.#oldest = node
  }
}

// ---------------------------------------------------------------- compiled descriptors

interface BucketSpec {
  readonly maxTokens: number
  readonly tokensPerFill: number
  readonly fillIntervalMs: number
}

const KEY_REMOTE_ADDRESS = 0
const KEY_IDENTITY = 1
const KEY_HEADER = 2
const KEY_PATH = 3

const KEY_KINDS: Record<DescriptorKey, number> = {
  remoteAddress: KEY_REMOTE_ADDRESS,
  identity: KEY_IDENTITY,
  header: KEY_HEADER,
  path: KEY_PATH,
}

/** One descriptor, ready to match: either one fixed bucket (`value` given) or per-value buckets. */
class CompiledDescriptor {
  readonly kind: number
  /** Lower-case header name, for `header` descriptors. */
  readonly headerName: string
  readonly value: string | undefined
  readonly label: string
  readonly spec: BucketSpec
  /** Tokens per millisecond, the sort key (Envoy sorts matched descriptors by fill rate). */
  readonly fillRate: number
  readonly fixed: TokenBucket | undefined
  readonly perValue: BucketLru | undefined

  constructor(d: RateLimitDescriptor, index: number, capacity: number, now: number) {
    const kind = KEY_KINDS[d.key] as number | undefined
    if (kind === undefined) throw new TypeError(`rate limit descriptor ${index}: unknown key ${String(d.key)}`)
    this.kind = kind
    if (kind === KEY_HEADER && (typeof d.name !== 'string' || d.name === '')) {
      throw new TypeError(`rate limit descriptor ${index}: a header descriptor names its header`)
    }
    this.headerName = kind === KEY_HEADER ? (d.name as string).toLowerCase() : ''
    this.value = d.value
    this.label = (kind === KEY_HEADER ? `header:${this.headerName}` : d.key) + (d.value === undefined ? '' : `=${d.value}`)
    this.spec = bucketSpec(d, `rate limit descriptor ${index} (${this.label})`)
    this.fillRate = this.spec.tokensPerFill / this.spec.fillIntervalMs
    if (d.value === undefined) {
      this.fixed = undefined
      this.perValue = new BucketLru(capacity, this.spec)
    } else {
      this.fixed = new TokenBucket(this.spec.maxTokens, this.spec.tokensPerFill, this.spec.fillIntervalMs, now)
      this.perValue = undefined
    }
  }

  /** The request's value for this descriptor's key, `undefined` when it has none. */
  extract(req: RateLimitRequest): string | undefined {
    switch (this.kind) {
      case KEY_REMOTE_ADDRESS:
        return req.remoteAddress
      case KEY_IDENTITY:
        return req.identity
      case KEY_HEADER:
        return req.header(this.headerName)
      default:
        return req.path
    }
  }
}

function bucketSpec(b: TokenBucketConfig, what: string): BucketSpec {
  const fillIntervalMs = parseDuration(b.fillInterval)
  if (fillIntervalMs === undefined || fillIntervalMs <= 0) throw new TypeError(`${what}: invalid fillInterval ${String(b.fillInterval)}`)
  // The model's default for tokensPerFill is maxTokens (Envoy's proto default is 1).
  return { maxTokens: b.maxTokens, tokensPerFill: b.tokensPerFill ?? b.maxTokens, fillIntervalMs }
}

/** The map key of a per-value bucket: the value itself, or a digest of a long one (NUL-prefixed, so it cannot equal a short value). */
function valueKey(value: string): string {
  return value.length <= MAX_DESCRIPTOR_VALUE_LENGTH ? value : '\0' + hash('sha256', value, 'base64url')
}

// ---------------------------------------------------------------- the limiter

/**
 * The local rate limit of one listener, route or cluster. Build it once per config snapshot
 * (the buckets start full) and call {@link check} for every request.
 */
export class LocalRateLimiter {
  /** Whether the owner adds `x-ratelimit-*` headers; when off, admitted requests get {@link ALLOWED}. */
  readonly responseHeaders: boolean
  readonly alwaysConsumeDefaultTokenBucket: boolean
  readonly #default: TokenBucket
  /** Sorted by fill rate, slowest first (stable: config order among equals). */
  readonly #descriptors: readonly CompiledDescriptor[]
  // Scratch space of one check: the matched descriptors, their bucket (null: a per-value
  // bucket not created yet) and key. Preallocated, so matching allocates nothing; a check
  // reads only the slots it wrote. The buckets referenced live on anyway (an evicted one is
  // recycled, never dropped), so stale slots hold nothing alive.
  readonly #matched: CompiledDescriptor[]
  readonly #matchedBucket: (TokenBucket | null)[]
  readonly #matchedKey: string[]
  #allowed = 0
  #limited = 0

  /**
   * @param config a validated rate limit (durations may be strings)
   * @param now the monotonic clock's current time (`performance.now()` unless testing)
   */
  constructor(config: RateLimitConfig, now: number = performance.now(), options: LocalRateLimiterOptions = {}) {
    const spec = bucketSpec(config, 'rate limit')
    this.#default = new TokenBucket(spec.maxTokens, spec.tokensPerFill, spec.fillIntervalMs, now)
    this.responseHeaders = config.responseHeaders === true
    this.alwaysConsumeDefaultTokenBucket = options.alwaysConsumeDefaultTokenBucket ?? true
    const capacity = options.descriptorBuckets ?? defaults.descriptorBuckets
    if (!Number.isSafeInteger(capacity) || capacity < 1) throw new RangeError(`descriptorBuckets must be a positive integer, got ${capacity}`)
    const compiled = (config.descriptors ?? []).map((d, i) => new CompiledDescriptor(d, i, capacity, now))
    this.#descriptors = compiled.sort((a, b) => a.fillRate - b.fillRate) // Array#sort is stable
    const n = compiled.length
    this.#matched = new Array<CompiledDescriptor>(n)
    this.#matchedBucket = new Array<TokenBucket | null>(n).fill(null)
    this.#matchedKey = new Array<string>(n).fill('')
  }

  /** Decides one request: admitted requests take a token from every bucket that applies. */
  check(req: RateLimitRequest, now: number): RateLimitVerdict {
    const descriptors = this.#descriptors
    if (descriptors.length === 0) {
      const bucket = this.#default
      if (!bucket.tryTake(now)) return this.#refuse(bucket, undefined, now)
      this.#allowed++
      return this.responseHeaders ? verdictOf(true, bucket, undefined, now) : ALLOWED
    }

    // Phase 1: find every bucket that applies; refuse if any is empty.
    const matched = this.#matched
    const matchedBucket = this.#matchedBucket
    const matchedKey = this.#matchedKey
    let n = 0
    for (let i = 0; i < descriptors.length; i++) {
      const d = descriptors[i] as CompiledDescriptor
      const value = d.extract(req)
      if (value === undefined) continue
      let bucket: TokenBucket | null
      if (d.fixed !== undefined) {
        if (value !== d.value) continue
        bucket = d.fixed
        if (bucket.remaining(now) === 0) return this.#refuse(bucket, d.label, now)
      } else {
        const key = valueKey(value)
        bucket = (d.perValue as BucketLru).get(key) ?? null
        if (bucket === null) {
          // A new bucket starts full, so it has a token unless maxTokens is 0.
          if (d.spec.maxTokens === 0) return this.#refuse(new TokenBucket(0, d.spec.tokensPerFill, d.spec.fillIntervalMs, now), d.label, now)
          matchedKey[n] = key
        } else if (bucket.remaining(now) === 0) {
          return this.#refuse(bucket, d.label, now)
        }
      }
      matched[n] = d
      matchedBucket[n] = bucket
      n++
    }
    const useDefault = n === 0 || this.alwaysConsumeDefaultTokenBucket
    if (useDefault && this.#default.remaining(now) === 0) return this.#refuse(this.#default, undefined, now)

    // Phase 2: every bucket has a token; take one from each.
    for (let i = 0; i < n; i++) {
      let bucket = matchedBucket[i] as TokenBucket | null
      if (bucket === null) bucket = ((matched[i] as CompiledDescriptor).perValue as BucketLru).insert(matchedKey[i] as string, now)
      bucket.tryTake(now)
      matchedBucket[i] = bucket
    }
    if (useDefault) this.#default.tryTake(now)
    this.#allowed++
    if (!this.responseHeaders) return ALLOWED

    // Report the bucket with the fewest tokens left: the quota the client is closest to
    // exhausting. Ties go to the strictest descriptor; the default bucket comes last.
    let best: TokenBucket = this.#default
    let label: string | undefined
    let bestRemaining = Infinity
    for (let i = 0; i < n; i++) {
      const bucket = matchedBucket[i] as TokenBucket
      const left = bucket.remaining(now)
      if (left < bestRemaining) {
        best = bucket
        label = (matched[i] as CompiledDescriptor).label
        bestRemaining = left
      }
    }
    if (useDefault && this.#default.remaining(now) < bestRemaining) {
      best = this.#default
      label = undefined
    }
    return verdictOf(true, best, label, now)
  }

  /** Admitted and refused requests so far, and the per-value buckets alive. */
  stats(): RateLimitStats {
    let buckets = 0
    for (const d of this.#descriptors) if (d.perValue !== undefined) buckets += d.perValue.size
    return { allowed: this.#allowed, limited: this.#limited, descriptorBuckets: buckets }
  }

  #refuse(bucket: TokenBucket, label: string | undefined, now: number): RateLimitVerdict {
    this.#limited++
    return verdictOf(false, bucket, label, now)
  }
}

function verdictOf(allowed: boolean, bucket: TokenBucket, descriptor: string | undefined, now: number): RateLimitVerdict {
  return {
    allowed,
    limit: bucket.maxTokens,
    remaining: bucket.remaining(now),
    resetSeconds: Math.ceil(bucket.msUntilNextFill(now) / 1000),
    descriptor,
  }
}
