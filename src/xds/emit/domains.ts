/**
 * Which RouteConfiguration serves a listener name a client asks for, decided exactly as
 * our router picks a virtual host for an authority (`router/domain-index.ts`): exact first,
 * then the longest `*suffix`, then the longest `prefix*`, then `*`, case-insensitive; a
 * domain without a port matches the authority on any port, one with a port only that port.
 * The client selects the virtual host inside the RouteConfiguration by the same rules, so a
 * served listener always finds the virtual host our config meant for its authority.
 *
 * gRPC's own matching (A28) compares the whole `host:port`: exact domains without a port are
 * also emitted as `host:*` (see `emittedDomains`), which gRPC reads as a prefix; a suffix
 * wildcard without a port (`*.example.com`) has no gRPC spelling that covers every port, so
 * a gRPC client calling `x.example.com:80` gets its RouteConfiguration and finds no virtual
 * host there (the call fails) rather than being routed by another virtual host.
 *
 * @module
 */
import { DomainIndex } from '../../router/domain-index.js'

/** Emitted domains → RouteConfiguration names. */
export class AuthorityIndex {
  readonly #index = new DomainIndex<string>()
  readonly #entries: [string, string][] = []

  /** Adds the domains of one RouteConfiguration (the first claim of a pattern wins). */
  add(routeConfig: string, domains: readonly string[]): void {
    for (const d of domains) {
      this.#index.add(d, routeConfig)
      this.#entries.push([d.toLowerCase(), routeConfig])
    }
  }

  /** The RouteConfiguration serving `authority`, or undefined. */
  find(authority: string): string | undefined {
    return this.#index.find(authority)
  }

  /** A stable text of the whole index, for versioning. */
  digest(): string {
    return JSON.stringify(this.#entries)
  }
}
