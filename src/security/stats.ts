/**
 * Counters of inbound authentication and authorization, named after Envoy's `jwt_authn`
 * and `rbac` filter stats. Labels are bounded: failure reasons are a fixed list, policy
 * names come from the config (plus one name for "no ALLOW policy matched").
 */
import { JWT_FAILURES, type JwtFailure } from './jwt.js'
import { TlsCounters, type TlsStats } from './tls-stats.js'

/** What `mesh.metrics.snapshot().security` reports. */
export interface SecurityStats {
  readonly jwt: {
    /** Requests whose token was verified (from the cache or not). */
    readonly allowed: number
    /** Requests refused with 401, by reason. */
    readonly denied: Readonly<Record<JwtFailure, number>>
    /** Verified tokens found in the cache. */
    readonly cacheHits: number
    /** Tokens verified with a signature check. */
    readonly cacheMisses: number
  }
  readonly rbac: {
    /** Requests authorization allowed. */
    readonly allowed: number
    /** Requests refused with 403, by policy (the DENY policy, or `(no ALLOW policy matched)`). */
    readonly denied: Readonly<Record<string, number>>
    /** Matches of AUDIT policies, by policy. */
    readonly audited: Readonly<Record<string, number>>
  }
  /** TLS handshakes, full and resumed, of the inbound listener and of upstream connections. */
  readonly tls: TlsStats
}

/** Most distinct policy names counted; further names share `(other)`. */
const MAX_POLICIES = 1_000

/** The live counters. Recording adds to numbers; reading builds the snapshot. */
export class SecurityCounters {
  jwtAllowed = 0
  jwtCacheHits = 0
  jwtCacheMisses = 0
  readonly #jwtDenied = new Float64Array(JWT_FAILURES.length)
  rbacAllowed = 0
  readonly #rbacDenied = new Map<string, number>()
  readonly #audited = new Map<string, number>()
  /** TLS handshakes (their own exposition: see {@link TlsCounters.prometheus}). */
  readonly tls = new TlsCounters()

  jwtDenied(reason: JwtFailure): void {
    this.#jwtDenied[JWT_FAILURES.indexOf(reason)]!++
  }

  rbacDenied(policy: string): void {
    bump(this.#rbacDenied, policy)
  }

  audited(policy: string): void {
    bump(this.#audited, policy)
  }

  /** True once anything was counted (the exposition skips the families until then). */
  get used(): boolean {
    return this.jwtAllowed + this.rbacAllowed + this.#rbacDenied.size + this.#audited.size > 0 || this.#jwtDenied.some((n) => n > 0)
  }

  snapshot(): SecurityStats {
    const denied = {} as Record<JwtFailure, number>
    JWT_FAILURES.forEach((r, i) => (denied[r] = this.#jwtDenied[i] ?? 0))
    return {
      jwt: { allowed: this.jwtAllowed, denied, cacheHits: this.jwtCacheHits, cacheMisses: this.jwtCacheMisses },
      rbac: { allowed: this.rbacAllowed, denied: Object.fromEntries(this.#rbacDenied), audited: Object.fromEntries(this.#audited) },
      tls: this.tls.snapshot(),
    }
  }
}

function bump(map: Map<string, number>, key: string): void {
  const k = map.has(key) || map.size < MAX_POLICIES ? key : '(other)'
  map.set(k, (map.get(k) ?? 0) + 1)
}
