/**
 * Which RouteConfiguration serves a listener name a client asks for, decided as gRPC (A28)
 * and Envoy match virtual host domains: exact first, then the longest `*suffix`, then the
 * longest `prefix*`, then `*`; case-insensitive. Deciding it the way the client will match
 * the virtual host inside the RouteConfiguration means a served listener always finds its
 * virtual host there.
 *
 * @module
 */

/** Emitted domains → RouteConfiguration names. */
export class AuthorityIndex {
  readonly #exact = new Map<string, string>()
  readonly #suffix: [string, string][] = []
  readonly #prefix: [string, string][] = []
  #any: string | undefined

  /** Adds the domains of one RouteConfiguration (the first claim of a pattern wins). */
  add(routeConfig: string, domains: readonly string[]): void {
    for (const raw of domains) {
      const d = raw.toLowerCase()
      if (d === '*') this.#any ??= routeConfig
      else if (d.startsWith('*')) this.#suffix.push([d.slice(1), routeConfig])
      else if (d.endsWith('*')) this.#prefix.push([d.slice(0, -1), routeConfig])
      else if (!this.#exact.has(d)) this.#exact.set(d, routeConfig)
    }
  }

  /** Sorts the wildcards longest first; call once after the last `add`. */
  seal(): this {
    this.#suffix.sort((a, b) => b[0].length - a[0].length)
    this.#prefix.sort((a, b) => b[0].length - a[0].length)
    return this
  }

  /** The RouteConfiguration serving `authority`, or undefined. */
  find(authority: string): string | undefined {
    const a = authority.toLowerCase()
    const exact = this.#exact.get(a)
    if (exact !== undefined) return exact
    // A wildcard stands for at least one character, as in gRPC.
    for (const [suffix, rc] of this.#suffix) if (a.length > suffix.length && a.endsWith(suffix)) return rc
    for (const [prefix, rc] of this.#prefix) if (a.length > prefix.length && a.startsWith(prefix)) return rc
    return this.#any
  }

  /** A stable text of the whole index, for versioning. */
  digest(): string {
    return JSON.stringify([[...this.#exact].sort(), this.#suffix, this.#prefix, this.#any ?? null])
  }
}
