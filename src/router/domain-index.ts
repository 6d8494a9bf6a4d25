/**
 * Authority → virtual host, without scanning the virtual hosts. Exact domains are one map
 * lookup; wildcard domains are found by looking up each suffix (or prefix) of the
 * requested host, so the cost grows with the length of the host name, not with the number
 * of virtual hosts. Precedence is Envoy's: exact, then the longest suffix wildcard, then
 * the longest prefix wildcard, then `*`; a domain with a port beats the same domain without.
 * Answers are memoised per authority (bounded), so a steady request mix costs one lookup.
 */
import { parseDomain } from '../config/domain.js'

const CACHE_LIMIT = 4096

/** Maps authorities to values (virtual hosts). */
export class DomainIndex<V> {
  readonly #exact = new Map<string, V>()
  readonly #suffix = new Map<string, V>()
  readonly #prefix = new Map<string, V>()
  #any: V | undefined
  #minSuffix = Infinity
  #minPrefix = Infinity
  readonly #cache = new Map<string, V | null>()

  /** Adds a domain pattern; the first value added for a pattern wins (validation forbids duplicates). */
  add(domain: string, value: V): void {
    const d = parseDomain(domain)
    if (typeof d === 'string') return
    const key = d.port === undefined ? d.host : `${d.host}:${d.port}`
    switch (d.kind) {
      case 'any':
        this.#any ??= value
        return
      case 'exact':
        if (!this.#exact.has(key)) this.#exact.set(key, value)
        return
      case 'suffix':
        if (!this.#suffix.has(key)) this.#suffix.set(key, value)
        this.#minSuffix = Math.min(this.#minSuffix, d.host.length)
        return
      case 'prefix':
        if (!this.#prefix.has(key)) this.#prefix.set(key, value)
        this.#minPrefix = Math.min(this.#minPrefix, d.host.length)
        return
    }
  }

  /** The value for an authority (`host` or `host:port`, any case), or undefined. */
  find(authority: string): V | undefined {
    const cached = this.#cache.get(authority)
    if (cached !== undefined) return cached ?? undefined
    const found = this.#lookup(authority.toLowerCase())
    if (this.#cache.size >= CACHE_LIMIT) this.#cache.clear()
    this.#cache.set(authority, found ?? null)
    return found
  }

  #lookup(authority: string): V | undefined {
    let host = authority
    let port: string | undefined
    const colon = authority.lastIndexOf(':')
    if (colon !== -1 && authority.indexOf(']', colon) === -1) {
      host = authority.slice(0, colon)
      port = authority.slice(colon + 1)
    }
    if (host.endsWith('.')) host = host.slice(0, -1)
    const withPort = (h: string): string => `${h}:${port ?? ''}`

    if (port !== undefined) {
      const v = this.#exact.get(withPort(host))
      if (v !== undefined) return v
    }
    const exact = this.#exact.get(host)
    if (exact !== undefined) return exact

    if (this.#suffix.size > 0) {
      // Longest suffix first; a wildcard never matches the empty string, so start at 1.
      for (let i = 1; i <= host.length - this.#minSuffix; i++) {
        const s = host.slice(i)
        if (port !== undefined) {
          const v = this.#suffix.get(withPort(s))
          if (v !== undefined) return v
        }
        const v = this.#suffix.get(s)
        if (v !== undefined) return v
      }
    }
    if (this.#prefix.size > 0) {
      for (let i = host.length - 1; i >= this.#minPrefix; i--) {
        const p = host.slice(0, i)
        if (port !== undefined) {
          const v = this.#prefix.get(withPort(p))
          if (v !== undefined) return v
        }
        const v = this.#prefix.get(p)
        if (v !== undefined) return v
      }
    }
    return this.#any
  }
}
