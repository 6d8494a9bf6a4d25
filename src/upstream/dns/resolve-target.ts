/**
 * One configured endpoint of a DNS cluster, kept resolved in the background (Envoy's
 * `ResolveTarget`): resolve, accept or refuse the answer, schedule the next resolution —
 * after the refresh rate, or the records' TTL with `respectDnsTtl`, plus jitter; after a
 * failure, on the failure back-off. One timer per target, unref'd, cleared by `stop()`.
 *
 * A strict target accepts any answer, an empty one included (the name no longer exists: no
 * endpoint). A logical target refuses an empty answer as a failure and keeps its last
 * address, as Envoy's LOGICAL_DNS does, so a resolved endpoint never disappears.
 */
import { defaults } from '../../config/defaults.js'
import { parseDuration } from '../../config/duration.js'
import type { ClusterConfig } from '../../config/types.js'
import { FixedBackOff, JitteredExponentialBackOff, type BackOff } from './backoff.js'
import type { AnswerSource, DnsFailure, DnsResolver, LookupFamily, ResolvedAddress } from './resolver.js'

/** When a cluster's targets resolve again. */
export interface RefreshPolicy {
  readonly refreshMs: number
  readonly respectTtl: boolean
  readonly jitterMs: number
  /** `dnsFailureRefreshRate`, or null: failures retry on `refreshMs`. */
  readonly failure: { readonly baseMs: number; readonly maxMs: number } | null
}

/** The refresh policy of a cluster's config, with Envoy's defaults. */
export function refreshPolicy(c: Readonly<ClusterConfig>): RefreshPolicy {
  const base = parseDuration(c.dnsFailureRefreshRate?.baseInterval)
  return {
    refreshMs: parseDuration(c.dnsRefreshRate) ?? defaults.dnsRefreshRateMs,
    respectTtl: c.respectDnsTtl ?? defaults.respectDnsTtl,
    jitterMs: parseDuration(c.dnsJitter) ?? defaults.dnsJitterMs,
    failure: base === undefined
      ? null
      : { baseMs: base, maxMs: parseDuration(c.dnsFailureRefreshRate?.maxInterval) ?? base * defaults.dnsFailureMaxIntervalFactor },
  }
}

/** Envoy's `cluster.<name>.update_*` counters of a DNS cluster; they carry over config changes. */
export interface DnsCounters {
  /** Resolutions started. */
  attempt: number
  /** Resolutions that gave an answer the cluster accepted. */
  success: number
  /** Resolutions that failed (or, for logical_dns, found no address). */
  failure: number
  /** Successes whose answer changed nothing. */
  noRebuild: number
}

/** Node's timers overflow beyond 2^31 − 1 ms (~24.8 days) and would fire at once. */
const MAX_TIMER_MS = 2 ** 31 - 1

/** One endpoint name kept resolved. */
export class ResolveTarget {
  /** The addresses in use: the latest accepted answer (strict: sorted, logical: first is the one to dial); undefined until one. */
  addresses: readonly ResolvedAddress[] | undefined
  /** Where the addresses in use came from. */
  source: AnswerSource | undefined
  /** The code of the latest failure, until the next success. */
  lastFailure: string | undefined
  /** When the next resolution is due (`performance.now()` time); undefined while one runs or after `stop()`. */
  nextAt: number | undefined
  readonly #resolver: DnsResolver
  readonly #policy: RefreshPolicy
  readonly #counters: DnsCounters
  readonly #changed: () => void
  readonly #backOff: BackOff
  #timer: NodeJS.Timeout | undefined
  #stopped = false
  #started = false
  #firstOutcome: (() => void) | undefined
  readonly #first: Promise<void>

  /**
   * @param logical whether this is a logical_dns endpoint (empty answers are failures)
   * @param changed called when the addresses in use change
   * @param adopted the addresses the same target had in the cluster this one replaces
   */
  constructor(
    readonly hostname: string,
    readonly family: LookupFamily,
    readonly logical: boolean,
    resolver: DnsResolver,
    policy: RefreshPolicy,
    counters: DnsCounters,
    changed: () => void,
    adopted?: { readonly addresses: readonly ResolvedAddress[]; readonly source: AnswerSource | undefined },
  ) {
    this.#resolver = resolver
    this.#policy = policy
    this.#counters = counters
    this.#changed = changed
    this.#backOff = policy.failure === null
      ? new FixedBackOff(policy.refreshMs)
      : new JitteredExponentialBackOff(policy.failure.baseMs, policy.failure.maxMs)
    if (adopted !== undefined) {
      this.addresses = adopted.addresses
      this.source = adopted.source
    }
    this.#first = adopted === undefined ? new Promise<void>((resolve) => (this.#firstOutcome = resolve)) : Promise.resolve()
  }

  /**
   * Starts resolving. Resolves once the first resolution has an outcome (at once when
   * addresses were adopted; the first resolution then runs in the background).
   */
  start(): Promise<void> {
    if (!this.#started && !this.#stopped) {
      this.#started = true
      void this.#run()
    }
    return this.#first
  }

  /** Stops for good: clears the timer; an answer still on its way is ignored. */
  stop(): void {
    this.#stopped = true
    clearTimeout(this.#timer)
    this.#timer = undefined
    this.nextAt = undefined
    this.#settleFirst()
  }

  async #run(): Promise<void> {
    this.#timer = undefined
    this.nextAt = undefined
    this.#counters.attempt++
    let delay: number
    try {
      const answer = await this.#resolver.resolve(this.hostname, this.family)
      if (this.#stopped) return
      if (answer.addresses.length === 0 && this.logical) {
        delay = this.#failed('ENOTFOUND')
      } else {
        this.#counters.success++
        this.lastFailure = undefined
        this.#backOff.reset()
        const addresses = this.logical ? unique(answer.addresses) : sorted(answer.addresses)
        this.source = answer.source
        if (this.addresses !== undefined && sameAddresses(this.addresses, addresses)) {
          this.#counters.noRebuild++
        } else {
          this.addresses = addresses
          this.#changed()
        }
        // An IP literal never changes: nothing to refresh.
        if (answer.source === 'literal') {
          this.#settleFirst()
          return
        }
        delay = this.#successDelay(addresses)
      }
    } catch (err) {
      if (this.#stopped) return
      delay = this.#failed((err as DnsFailure).code ?? 'EUNKNOWN')
    }
    this.#settleFirst()
    this.nextAt = performance.now() + delay
    this.#timer = setTimeout(() => void this.#run(), Math.min(Math.max(delay, 1), MAX_TIMER_MS))
    this.#timer.unref()
  }

  #failed(code: string): number {
    this.#counters.failure++
    this.lastFailure = code
    return this.#backOff.next()
  }

  /** The refresh rate, or the TTL (the shortest for strict, the first address's for logical, as Envoy), plus jitter. */
  #successDelay(addresses: readonly ResolvedAddress[]): number {
    const p = this.#policy
    let delay = p.refreshMs
    if (p.respectTtl && addresses.length > 0) {
      const ttl = this.logical ? addresses[0]?.ttl : minTtl(addresses)
      // Envoy: a TTL of 0 keeps the refresh rate.
      if (ttl !== undefined && ttl > 0) delay = ttl * 1000
    }
    if (p.jitterMs > 0) delay += Math.floor(Math.random() * p.jitterMs)
    return delay
  }

  #settleFirst(): void {
    const settle = this.#firstOutcome
    this.#firstOutcome = undefined
    settle?.()
  }
}

function minTtl(addresses: readonly ResolvedAddress[]): number | undefined {
  let min: number | undefined
  for (const a of addresses) if (a.ttl !== undefined && (min === undefined || a.ttl < min)) min = a.ttl
  return min
}

/** The answer without repeats, its order kept (the first address is the one a logical endpoint dials). */
function unique(addresses: readonly ResolvedAddress[]): ResolvedAddress[] {
  const seen = new Set<string>()
  return addresses.filter((a) => !seen.has(a.address) && (seen.add(a.address), true))
}

/** The answer without repeats, in a fixed order: DNS servers rotate answers, and a new order is not a new host set. */
function sorted(addresses: readonly ResolvedAddress[]): ResolvedAddress[] {
  return unique(addresses).sort((a, b) => (a.address < b.address ? -1 : a.address > b.address ? 1 : 0))
}

/** Whether two accepted answers name the same addresses in the same order (TTLs aside). */
function sameAddresses(a: readonly ResolvedAddress[], b: readonly ResolvedAddress[]): boolean {
  return a.length === b.length && a.every((x, i) => x.address === b[i]?.address)
}
