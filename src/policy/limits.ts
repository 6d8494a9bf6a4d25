/**
 * The limits of one place in the mesh (the listener, an inbound route, a cluster, an outbound
 * route) as one object the request paths consult: a local token bucket, a shared Redis quota
 * and a bulkhead, each optional. The registry keeps limiter objects across config swaps when
 * their config did not change, so a routine update neither refills buckets nor drops
 * queued requests, and closes the ones no config uses any more.
 */
import type { ConcurrencyLimitConfig, DescriptorKey, RateLimitConfig } from '../config/types.js'
import { ConcurrencyLimiter } from './concurrency-limit.js'
import { GlobalRateLimiter } from './global-rate-limit.js'
import { LocalRateLimiter, type RateLimitRequest } from './rate-limit.js'

/** Every limit of one place. */
export interface LimitSet {
  /** Where it applies: `listener`, `listener.routes[api]`, `cluster[reviews]`, `route[reviews/default]`. */
  readonly name: string
  readonly rate: LocalRateLimiter | null
  readonly global: GlobalRateLimiter | null
  /** The shared quota's key for a request (its descriptor value, or '' for one quota). */
  readonly globalKey: (req: RateLimitRequest) => string
  readonly concurrency: ConcurrencyLimiter | null
  /** Whether inbound responses carry `x-ratelimit-*`. */
  readonly responseHeaders: boolean
}

/** What `mesh.metrics.snapshot().limits` reports of one place. */
export interface LimitStats {
  /** Local bucket: requests admitted and refused. */
  readonly allowed: number
  readonly limited: number
  /** Shared quota, when configured. */
  readonly global?: {
    readonly allowed: number
    readonly limited: number
    /** Decisions made by the local bucket (or failure mode) while Redis could not answer. */
    readonly fallbackDecisions: number
    /** `fallback` while Redis is down or slow. */
    readonly state: 'ok' | 'fallback'
  }
  /** Bulkhead, when configured. */
  readonly concurrency?: {
    readonly active: number
    readonly queued: number
    readonly rejectedFull: number
    readonly rejectedTimeout: number
  }
}

interface Entry {
  readonly key: string
  readonly set: LimitSet
}

/** Owns every limiter of a mesh. */
export class LimitRegistry {
  #live = new Map<string, Entry>()
  #next = new Map<string, Entry>()

  /**
   * The limit set of `name` for this config, reused when the same place had the same config
   * before; `null` when the place has no limit. Call between `begin()` and `commit()`.
   */
  build(name: string, rateLimit: RateLimitConfig | undefined, concurrency: ConcurrencyLimitConfig | undefined): LimitSet | null {
    if (rateLimit === undefined && concurrency === undefined) return null
    const key = JSON.stringify([rateLimit ?? null, concurrency ?? null])
    const old = this.#live.get(name) ?? this.#next.get(name)
    if (old !== undefined && old.key === key) {
      this.#next.set(name, old)
      return old.set
    }
    const global = rateLimit?.global
    const set: LimitSet = Object.freeze({
      name,
      rate: rateLimit === undefined ? null : new LocalRateLimiter(rateLimit, performance.now(), { alwaysConsumeDefaultTokenBucket: rateLimit.alwaysConsumeDefaultTokenBucket !== false }),
      global: global === undefined ? null : new GlobalRateLimiter(global),
      globalKey: keyOf(global?.descriptor),
      concurrency: concurrency === undefined ? null : new ConcurrencyLimiter(concurrency),
      responseHeaders: rateLimit?.responseHeaders === true,
    })
    this.#next.set(name, { key, set })
    return set
  }

  /** Starts collecting the sets of a new config. */
  begin(): void {
    this.#next = new Map()
  }

  /** Abandons a config that failed: sets built for it only are closed. */
  abort(): void {
    for (const [name, e] of this.#next) if (this.#live.get(name) !== e) void close(e.set)
    this.#next = new Map()
  }

  /** Makes the collected sets the live ones and closes those no config uses any more. */
  commit(): void {
    for (const [name, e] of this.#live) if (this.#next.get(name) !== e) void close(e.set)
    this.#live = this.#next
    this.#next = new Map()
  }

  /** Counters of every live set, by name. */
  stats(): Record<string, LimitStats> {
    const out: Record<string, LimitStats> = {}
    for (const [name, { set }] of [...this.#live].sort(([a], [b]) => (a < b ? -1 : 1))) {
      const r = set.rate?.stats()
      const g = set.global?.stats()
      const c = set.concurrency?.stats()
      out[name] = {
        allowed: r?.allowed ?? 0,
        limited: r?.limited ?? 0,
        ...(g === undefined ? {} : { global: { allowed: g.allowed, limited: g.limited, fallbackDecisions: g.fallbackDecisions, state: g.state } }),
        ...(c === undefined ? {} : { concurrency: { active: c.active, queued: c.queued, rejectedFull: c.rejectedFull, rejectedTimeout: c.rejectedTimeout } }),
      }
    }
    return out
  }

  /** Closes every limiter (Redis connections, queued waiters). */
  async close(): Promise<void> {
    const sets = [...this.#live.values(), ...this.#next.values()].map((e) => e.set)
    this.#live = new Map()
    this.#next = new Map()
    await Promise.all(sets.map(close))
  }
}

function close(set: LimitSet): Promise<void> {
  set.concurrency?.close()
  return set.global?.close().catch(() => undefined) ?? Promise.resolve()
}

function keyOf(d: { key: DescriptorKey; name?: string } | undefined): (req: RateLimitRequest) => string {
  if (d === undefined) return () => ''
  switch (d.key) {
    case 'remoteAddress':
      return (req) => req.remoteAddress ?? ''
    case 'identity':
      return (req) => req.identity ?? ''
    case 'path':
      return (req) => req.path
    case 'header': {
      const name = (d.name ?? '').toLowerCase()
      return (req) => req.header(name) ?? ''
    }
  }
}
