/**
 * The endpoints of a `strict_dns` or `logical_dns` cluster, discovered in the background:
 * one {@link ResolveTarget} per configured endpoint, one c-ares resolver per cluster (so
 * `stop()` can cancel its queries). The cluster reads `endpoints()` when told they changed.
 *
 * A cluster that replaces another (its config changed) adopts the previous one's answers
 * for the same names, so it has endpoints from its first moment, and keeps its counters;
 * its own resolutions then start at once.
 */
import { parseAddress, type ParsedAddress } from '../../config/address.js'
import { defaults } from '../../config/defaults.js'
import type { ClusterConfig, EndpointConfig } from '../../config/types.js'
import { parseDnsServer, type DnsServerAddress } from '../../config/validate-dns.js'
import type { HostDial } from '../host.js'
import { DnsResolver, lookupFamily, type AnswerSource } from './resolver.js'
import { refreshPolicy, ResolveTarget, type DnsCounters } from './resolve-target.js'

/** One endpoint the cluster should have now. */
export interface DiscoveredEndpoint {
  readonly parsed: ParsedAddress
  readonly labels?: Record<string, string> | undefined
  readonly weight?: number | undefined
  /** How to dial it; undefined for an IP literal (a plain host). */
  readonly dial?: HostDial | undefined
}

/**
 * Envoy's `cluster.<name>.update_*` counters of a DNS cluster, and what each configured
 * endpoint name resolves to now.
 */
export interface ClusterDnsStats {
  /** Resolutions started (Envoy `update_attempt`). */
  readonly updateAttempt: number
  /** Resolutions that gave an accepted answer (Envoy `update_success`). */
  readonly updateSuccess: number
  /** Resolutions that failed; for logical_dns also those that found no address (Envoy `update_failure`). */
  readonly updateFailure: number
  /** Successes that changed nothing (Envoy `update_no_rebuild`). */
  readonly updateNoRebuild: number
  /** Per configured endpoint, in config order. */
  readonly targets: readonly DnsTargetStats[]
}

/** What one configured endpoint name resolves to. */
export interface DnsTargetStats {
  /** The configured `host:port`. */
  readonly endpoint: string
  /** The addresses in use (for logical_dns, the first is dialled); empty until the first answer or while the name does not exist. */
  readonly addresses: readonly string[]
  /** Where they came from: `literal`, `hosts` (the hosts file), `dns` (c-ares) or `system` (getaddrinfo). */
  readonly source: AnswerSource | undefined
  /** The code of the latest failed resolution (`ETIMEOUT`, `ESERVFAIL`, ...), until one succeeds. */
  readonly lastFailure: string | undefined
}

interface Entry {
  readonly target: ResolveTarget
  readonly endpoint: EndpointConfig
  readonly parsed: ParsedAddress
  /** What makes two targets resolve the same way (adoption across config changes). */
  readonly key: string
}

/** DNS discovery of one cluster. */
export class DnsDiscovery {
  readonly counters: DnsCounters
  readonly #entries: readonly Entry[]
  readonly #resolver: DnsResolver
  readonly #logical: boolean
  readonly #dialKey: string
  readonly #happyEyeballs: boolean

  /**
   * @param changed called when the endpoints changed (a target's addresses changed)
   * @param previous the discovery of the cluster this one replaces
   */
  constructor(config: Readonly<ClusterConfig>, changed: () => void, previous?: DnsDiscovery) {
    this.#logical = config.type === 'logical_dns'
    const family = lookupFamily(config.dnsLookupFamily ?? defaults.dnsLookupFamily)
    const servers = (config.dnsResolvers ?? []).map((s) => (parseDnsServer(s) as DnsServerAddress).server)
    this.#resolver = new DnsResolver(servers)
    this.#dialKey = `${family}|${servers.join(',')}`
    this.#happyEyeballs = family === 'all'
    this.counters = previous?.counters ?? { attempt: 0, success: 0, failure: 0, noRebuild: 0 }
    const policy = refreshPolicy(config)
    const before = new Map<string, ResolveTarget>()
    for (const e of previous === undefined ? [] : previous.#entries) if (e.target.addresses !== undefined && !before.has(e.key)) before.set(e.key, e.target)
    this.#entries = (config.endpoints ?? []).map((endpoint) => {
      const parsed = parseAddress(endpoint.address) as ParsedAddress
      const key = `${this.#logical ? 'logical' : 'strict'}|${parsed.hostname}|${this.#dialKey}`
      const adopted = before.get(key)
      const target = new ResolveTarget(parsed.hostname, family, this.#logical, this.#resolver, policy, this.counters, changed,
        adopted?.addresses === undefined ? undefined : { addresses: adopted.addresses, source: adopted.source })
      return { target, endpoint, parsed, key }
    })
  }

  /** The endpoints of the latest answers: strict, one per address; logical, one per resolved name. */
  endpoints(): DiscoveredEndpoint[] {
    const out: DiscoveredEndpoint[] = []
    for (const { target, endpoint, parsed } of this.#entries) {
      const addresses = target.addresses
      if (addresses === undefined || addresses.length === 0) continue
      const literal = target.source === 'literal'
      if (this.#logical) {
        const dial: HostDial | undefined = literal ? undefined : { kind: 'logical', key: this.#dialKey, addresses, happyEyeballs: this.#happyEyeballs }
        out.push({ parsed, labels: endpoint.labels, weight: endpoint.weight, dial })
        continue
      }
      for (const a of addresses) {
        const host = a.family === 6 ? `[${a.address}]` : a.address
        out.push({
          parsed: parseAddress(`${parsed.protocol}//${host}:${parsed.port}`) as ParsedAddress,
          labels: endpoint.labels,
          weight: endpoint.weight,
          dial: literal ? undefined : { kind: 'resolved', serverName: parsed.hostname },
        })
      }
    }
    return out
  }

  /** Starts every target; resolves once each has a first outcome, or after `timeoutMs`. */
  start(timeoutMs: number): Promise<void> {
    const firsts = this.#entries.map((e) => e.target.start())
    let timer: NodeJS.Timeout | undefined
    return Promise.race([
      Promise.all(firsts).then(() => undefined),
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, timeoutMs)
        timer.unref()
      }),
    ]).finally(() => clearTimeout(timer))
  }

  /** Stops every target and abandons the resolver's queries in flight. */
  stop(): void {
    for (const e of this.#entries) e.target.stop()
    this.#resolver.close()
  }

  stats(): ClusterDnsStats {
    const c = this.counters
    return {
      updateAttempt: c.attempt,
      updateSuccess: c.success,
      updateFailure: c.failure,
      updateNoRebuild: c.noRebuild,
      targets: this.#entries.map(({ target, parsed }) => ({
        endpoint: parsed.hostPort,
        addresses: (target.addresses ?? []).map((a) => a.address),
        source: target.source,
        lastFailure: target.lastFailure,
      })),
    }
  }
}
