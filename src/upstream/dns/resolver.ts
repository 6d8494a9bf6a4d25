/**
 * Resolves the host names of DNS clusters, off the request path. Where an answer comes from,
 * in order (the order of glibc's `files dns` and of Envoy's c-ares resolver):
 *
 * 1. an IP literal is its own answer;
 * 2. the hosts file (c-ares queries do not read it; `localhost` lives there);
 * 3. DNS, through c-ares (`dns.Resolver`, A / AAAA with their TTLs): it runs on the event
 *    loop, not on libuv's 4-thread pool, and gives the TTLs `respectDnsTtl` needs;
 * 4. only when DNS says the name does not exist (NXDOMAIN, or no record of the family), and
 *    only with the system's DNS servers: getaddrinfo (`dns.lookup`), which applies the
 *    `search` domains of resolv.conf (Kubernetes short names like `reviews`) and nsswitch
 *    sources c-ares does not know. Its answers carry no TTL. A DNS timeout or server failure
 *    does NOT fall back to it: getaddrinfo would hang on the same dead server while holding
 *    one of the pool's threads (which fs, crypto and zlib share).
 *
 * A name that does not exist resolves to an empty answer (Envoy's c-ares resolver treats
 * NXDOMAIN and NODATA the same way); other failures reject with the resolver's error code.
 */
import { lookup as systemLookup, Resolver } from 'node:dns/promises'
import { isIP } from 'node:net'
import type { DnsLookupFamily } from '../../config/types.js'
import { systemHostsFile, type HostsFile } from './hosts-file.js'

/** `DnsLookupFamily` in one spelling. */
export type LookupFamily = 'auto' | 'v4_only' | 'v6_only' | 'v4_preferred' | 'all'

/** One resolved address. */
export interface ResolvedAddress {
  readonly address: string
  readonly family: 4 | 6
  /** The record's TTL in seconds; undefined when the source has none (hosts file, getaddrinfo, literal). */
  readonly ttl: number | undefined
}

/** Where an answer came from. */
export type AnswerSource = 'literal' | 'hosts' | 'dns' | 'system'

/** The outcome of one resolution that did not fail: the addresses (none when the name does not exist). */
export interface DnsAnswer {
  readonly addresses: readonly ResolvedAddress[]
  readonly source: AnswerSource
}

/** What a failed resolution rejects with. */
export interface DnsFailure extends Error {
  /** The resolver's code: `ETIMEOUT`, `ESERVFAIL`, `ECONNREFUSED`, `EAI_AGAIN`, ... */
  readonly code: string
}

/** The lower-case spelling of a configured family (default `auto`). */
export function lookupFamily(family: DnsLookupFamily | undefined): LookupFamily {
  return (family?.toLowerCase() ?? 'auto') as LookupFamily
}

/** Codes by which c-ares and getaddrinfo say the name has no address (as opposed to a failure). */
const NO_SUCH_NAME = new Set(['ENOTFOUND', 'ENODATA'])

type Query = (family: 4 | 6) => Promise<ResolvedAddress[]>

/** Resolves names for one cluster; `close()` abandons its queries in flight and refuses new ones. */
export class DnsResolver {
  /** The c-ares channel, made on the first DNS question (clusters of IPs and hosts-file names never need one). */
  #resolver: Resolver | undefined
  readonly #servers: readonly string[]
  readonly #custom: boolean
  readonly #hosts: HostsFile
  #closed = false

  /**
   * @param servers DNS servers (`ip:port`) to ask instead of the system's; none: resolv.conf's
   *   (with its `timeout` and `attempts` options, which c-ares honours)
   * @param hosts the hosts file to read first (tests give their own)
   */
  constructor(servers: readonly string[] = [], hosts: HostsFile = systemHostsFile) {
    this.#servers = servers
    this.#custom = servers.length > 0
    this.#hosts = hosts
  }

  /** Resolves `name` for `family`: the addresses, or none when the name does not exist. */
  async resolve(name: string, family: LookupFamily): Promise<DnsAnswer> {
    const literal = isIP(name)
    if (literal !== 0) return { addresses: [{ address: name, family: literal as 4 | 6, ttl: undefined }], source: 'literal' }
    this.#checkOpen()
    const listed = await this.#hosts.lookup(name)
    if (listed.length > 0) {
      const addresses = await select(family, (f) => Promise.resolve(
        listed.filter((a) => a.family === f).map((a) => ({ address: a.address, family: a.family, ttl: undefined }))))
      if (addresses.length > 0) return { addresses, source: 'hosts' }
    }
    const dns = await select(family, (f) => this.#dns(name, f))
    if (dns.length > 0 || this.#custom) return { addresses: dns, source: 'dns' }
    return { addresses: await select(family, await this.#system(name)), source: 'system' }
  }

  /**
   * Abandons every query in flight (they reject with `ECANCELLED`) and refuses new ones, so
   * a resolution under way asks nothing more (no fallback to the other family or source).
   */
  close(): void {
    this.#closed = true
    this.#resolver?.cancel()
  }

  #checkOpen(): void {
    if (this.#closed) throw Object.assign(new Error('the DNS resolver is closed'), { code: 'ECANCELLED' })
  }

  /** One A or AAAA query with TTLs; none when the name or the record type does not exist. */
  async #dns(name: string, family: 4 | 6): Promise<ResolvedAddress[]> {
    this.#checkOpen()
    if (this.#resolver === undefined) {
      this.#resolver = new Resolver()
      if (this.#custom) this.#resolver.setServers(this.#servers)
    }
    const resolver = this.#resolver
    try {
      const records = family === 4
        ? await resolver.resolve4(name, { ttl: true })
        : await resolver.resolve6(name, { ttl: true })
      return records.map((r) => ({ address: r.address, family, ttl: r.ttl }))
    } catch (err) {
      if (NO_SUCH_NAME.has((err as DnsFailure).code)) return []
      throw err
    }
  }

  /** getaddrinfo once for both families; the family policy then picks from its answer. */
  async #system(name: string): Promise<Query> {
    this.#checkOpen()
    let all: ResolvedAddress[]
    try {
      const found = await systemLookup(name, { all: true })
      all = found.map((a) => ({ address: a.address, family: a.family === 6 ? 6 : 4, ttl: undefined }))
    } catch (err) {
      if (!NO_SUCH_NAME.has((err as DnsFailure).code)) throw err
      all = []
    }
    return (f) => Promise.resolve(all.filter((a) => a.family === f))
  }
}

/**
 * Applies a lookup family to a per-family query: one family, one then the other when the
 * first has no address (or fails), or both (IPv6 first, as RFC 6724 orders them).
 */
async function select(family: LookupFamily, query: Query): Promise<ResolvedAddress[]> {
  switch (family) {
    case 'v4_only':
      return query(4)
    case 'v6_only':
      return query(6)
    case 'auto':
      return fallback(query, 6, 4)
    case 'v4_preferred':
      return fallback(query, 4, 6)
    case 'all': {
      const [v6, v4] = await Promise.allSettled([query(6), query(4)])
      if (v6.status === 'rejected' && v4.status === 'rejected') throw v6.reason
      const found = [...(v6.status === 'fulfilled' ? v6.value : []), ...(v4.status === 'fulfilled' ? v4.value : [])]
      // One family failed and the other has nothing: that is a failure, not "no such name".
      if (found.length === 0) {
        if (v6.status === 'rejected') throw v6.reason
        if (v4.status === 'rejected') throw v4.reason
      }
      return found
    }
  }
}

async function fallback(query: Query, first: 4 | 6, second: 4 | 6): Promise<ResolvedAddress[]> {
  let failure: Error | undefined
  try {
    const preferred = await query(first)
    if (preferred.length > 0) return preferred
  } catch (err) {
    failure = err as Error
  }
  const other = await query(second)
  if (other.length === 0 && failure !== undefined) throw failure
  return other
}
