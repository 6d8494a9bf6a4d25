/**
 * A Host is one upstream address with its connection pool. Hosts are shared by every
 * snapshot and cluster that names the same address with the same connection options, so
 * pools (and their warm keep-alive sockets) survive config swaps; a host whose last
 * user lets go closes its pool gracefully, letting requests in flight finish.
 *
 * Hosts of DNS clusters never make undici resolve a name (see {@link HostDial}): a
 * strict_dns host's address is the resolved IP, a logical_dns host dials the address its
 * cluster resolved last, through a `lookup` that answers from memory.
 */
import type { LookupAddress, LookupOptions } from 'node:dns'
import { defaults } from '../config/defaults.js'
import type { ParsedAddress } from '../config/address.js'
import type { BreakerStateChange } from '../policy/error-rate-breaker.js'
import type { ResolvedAddress } from './dns/resolver.js'
import type { HealthEventSink } from './host-health.js'
import type { TlsCounters } from '../security/tls-stats.js'
import { EndpointPool } from './endpoint-pool.js'
import type { UpstreamTls } from '../security/upstream-tls.js'
import { createTlsConnector } from './tls-connector.js'
import { leanConnector } from './h1/shared-read.js'

/**
 * How a host named by DNS is dialled.
 * - `resolved` (strict_dns): the host's address is one resolved IP; `serverName`, the
 *   endpoint's DNS name, is the TLS SNI and the name its certificate is checked against.
 * - `logical` (logical_dns): the host's address keeps the DNS name (Host header, SNI,
 *   metrics); each new connection goes to the first address of its cluster's latest answer
 *   (Happy Eyeballs over all of them with `happyEyeballs`), open ones keep theirs.
 *   `key` tells apart hosts resolved differently (lookup family, DNS servers).
 */
export type HostDial =
  | { readonly kind: 'resolved'; readonly serverName: string }
  | { readonly kind: 'logical'; readonly key: string; readonly addresses: readonly ResolvedAddress[]; readonly happyEyeballs: boolean }

type LookupCallback = (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void
type LookupFunction = (hostname: string, options: LookupOptions, callback: LookupCallback) => void

/** Where a host's TLS handshakes are counted (the registry's, read at each handshake: the mesh may set it later). */
export interface TlsStatsSource {
  readonly tlsStats: TlsCounters | undefined
}

const NO_TLS_STATS: TlsStatsSource = Object.freeze({ tlsStats: undefined })
const NO_ADDRESSES: readonly LookupAddress[] = Object.freeze([])

/** Connection options that make two pools to one address different. */
export interface ConnectionOptions {
  readonly connectTimeoutMs: number
  readonly idleTimeoutMs: number | undefined
  /** Connections the pool may open (`circuitBreakers.maxConnections`); undefined: no cap. */
  readonly maxConnections: number | undefined
  /** The cluster's TLS (`ClusterConfig.tls`), when it is not `disable`. */
  readonly tls?: UpstreamTls | undefined
}

/** One upstream address and its pool. */
export class Host {
  /** Requests dispatched and not yet finished (least_request reads it). */
  active = 0
  /** Clusters holding this host. */
  refs = 0
  /**
   * The servername undici is given for every request: for https hosts named by DNS, the SNI;
   * for plain http, the endpoint's host name. undici otherwise derives it from each request's
   * Host header, running an IPv6 regex per request; over plain http it is never used.
   * Undefined for https to an IP (undici then derives SNI from Host, which issue 6 revisits).
   */
  readonly servername: string | undefined
  readonly #options: ConnectionOptions
  readonly #tlsStats: TlsStatsSource
  readonly #dial: HostDial['kind'] | undefined
  #pool: EndpointPool | undefined
  /** A logical host's addresses to dial, first first; empty for other hosts. */
  #dialAddresses: readonly LookupAddress[] = NO_ADDRESSES
  #happyEyeballs = false

  constructor(readonly key: string, readonly address: ParsedAddress, options: ConnectionOptions, dial?: HostDial, tlsStats: TlsStatsSource = NO_TLS_STATS) {
    this.#options = options
    this.#dial = dial?.kind
    this.#tlsStats = tlsStats
    // With cluster TLS the connector picks SNI itself; a fixed value here only keeps undici
    // from deriving one per request (and from reconnecting when two requests' differ).
    // A strict_dns host's address is an IP: its SNI is the endpoint's DNS name.
    const named = dial?.kind === 'resolved' ? dial.serverName : address.hostname
    this.servername = options.tls !== undefined
      ? (options.tls.sni ?? named)
      : dial?.kind === 'resolved' || address.protocol === 'http:' || !isIp(address.hostname) ? named : undefined
    if (dial?.kind === 'logical') this.updateDial(dial)
  }

  /** For a logical host: the addresses new connections go to, from its cluster's latest answer. */
  updateDial(dial: HostDial): void {
    if (dial.kind !== 'logical' || this.#dial !== 'logical') return
    this.#dialAddresses = dial.addresses.map((a) => ({ address: a.address, family: a.family }))
    this.#happyEyeballs = dial.happyEyeballs
  }

  /** Where a new connection goes now: a logical host's first resolved address, else the host's own. */
  get connectAddress(): string {
    return this.#dial === 'logical' ? (this.#dialAddresses[0]?.address ?? this.address.hostname) : this.address.hostname
  }

  /**
   * The `lookup` a logical host's sockets use instead of DNS: the first address of the latest
   * answer, or all of them for Happy Eyeballs (Node's `autoSelectFamily` asks for `all`).
   */
  #lookup(hostname: string, options: LookupOptions, callback: LookupCallback): void {
    const list = this.#dialAddresses
    const first = list[0]
    if (first === undefined) {
      callback(Object.assign(new Error(`${hostname} has no resolved address`), { code: 'ENOTFOUND', hostname }), [])
      return
    }
    if (options.all === true) callback(null, this.#happyEyeballs ? [...list] : [first])
    else callback(null, first.address, first.family)
  }

  /**
   * The connection pool, created on the first request: a config names thousands of
   * endpoints a process may never call. Connections being set up are bounded
   * (`defaults.maxConnectingPerEndpoint`): see {@link EndpointPool}.
   */
  get pool(): EndpointPool {
    return (this.#pool ??= this.#createPool())
  }

  #createPool(): EndpointPool {
    const tls = this.#options.tls
    // Handed to net/tls.connect: a logical host resolves from memory, never on the request path.
    // The closures are made here, with the pool: most hosts of a config never get one.
    const lookup: LookupFunction = (hostname, options, callback) => this.#lookup(hostname, options, callback)
    const dial = this.#dial === 'logical' ? { lookup, ...(this.#happyEyeballs ? { autoSelectFamily: true } : {}) } : {}
    // Our connections read into a shared buffer; undici's Client gets stream-mode sockets of its own.
    const connector = tls === undefined
      ? leanConnector({ timeout: this.#options.connectTimeoutMs, ...dial })
      : createTlsConnector(tls, this.#options.connectTimeoutMs, { servername: this.#dial === 'resolved' ? this.servername : undefined, ...dial }, () => this.#tlsStats.tlsStats)
    return new EndpointPool(this.address.origin, {
      connect: connector,
      connectStreaming: connector.streaming,
      maxConnections: this.#options.maxConnections,
      maxConnecting: defaults.maxConnectingPerEndpoint,
      servername: this.servername,
      keepAliveTimeout: this.#options.idleTimeoutMs,
      keepAliveMaxTimeout: this.#options.idleTimeoutMs,
    })
  }

  /** Closes the pool if it was ever opened: gracefully, or at once with `force`. */
  async close(force: boolean): Promise<void> {
    const pool = this.#pool
    if (pool === undefined) return
    await (force ? pool.destroy() : pool.close()).catch(() => undefined)
  }
}

function isIp(hostname: string): boolean {
  return /^[\d.]+$/.test(hostname) || hostname.includes(':')
}

/** Owns every Host; hands out shared ones and closes pools nobody holds. */
export class HostRegistry {
  /** Where clusters report their breakers' state changes (the mesh emits them as events). */
  onBreakerChange: ((change: BreakerStateChange) => void) | undefined
  /** Where upstream TLS handshakes are counted (the mesh's metrics). */
  tlsStats: TlsCounters | undefined
  readonly #hosts = new Map<string, Host>()
  /** Hosts nobody holds any more, whose pools are closing gracefully (their requests finish). */
  readonly #closing = new Map<Host, Promise<void>>()

  /** @param events where the clusters built on this registry report endpoint health changes */
  constructor(readonly events: HealthEventSink = {}) {}

  /**
   * Takes a reference on the host for `address` with `options` (dialled as `dial` says),
   * creating it if needed. A logical host shared with another cluster takes this caller's
   * latest addresses.
   */
  acquire(address: ParsedAddress, options: ConnectionOptions, dial?: HostDial): Host {
    const key = hostKey(address, options, dial)
    let host = this.#hosts.get(key)
    if (host === undefined) {
      host = new Host(key, address, options, dial, this)
      this.#hosts.set(key, host)
    } else if (dial !== undefined) {
      host.updateDial(dial)
    }
    host.refs++
    return host
  }

  /** The key two acquisitions of one host share. */
  static keyOf(address: ParsedAddress, options: ConnectionOptions, dial?: HostDial): string {
    return hostKey(address, options, dial)
  }

  /** Drops a reference; the last one closes the pool once its requests finish. */
  release(host: Host): void {
    if (--host.refs > 0) return
    if (this.#hosts.get(host.key) === host) this.#hosts.delete(host.key)
    const closing = host.close(false)
    this.#closing.set(host, closing)
    void closing.finally(() => this.#closing.delete(host))
  }

  /** How many hosts (pools) are open. */
  get size(): number {
    return this.#hosts.size
  }

  /** The host for a key, if open (for tests and admin). */
  get(key: string): Host | undefined {
    return this.#hosts.get(key)
  }

  /**
   * Closes every pool: gracefully (requests finish), or at once with `force` — the pools of
   * hosts a config update removed, still finishing their requests, included (a forced close
   * must not wait for a response that may never come).
   */
  async closeAll(force = false): Promise<void> {
    const hosts = [...this.#hosts.values()]
    this.#hosts.clear()
    await Promise.all([
      ...hosts.map((h) => h.close(force)),
      ...[...this.#closing].map(([h, closing]) => (force ? Promise.all([closing, h.close(true)]) : closing)),
    ])
  }
}

/**
 * {@link HostRegistry.keyOf}, outside the class: a class that names itself in its body is
 * renamed by the bundler (`class _HostRegistry`), and its `.name` with it.
 */
function hostKey(address: ParsedAddress, options: ConnectionOptions, dial?: HostDial): string {
  // One flat string (`join`, see parseAddress): the registry keeps it as long as the host lives.
  const parts: (string | number)[] = [address.origin, options.connectTimeoutMs, options.idleTimeoutMs ?? '', options.maxConnections ?? '', options.tls?.key ?? '']
  if (dial !== undefined) parts.push(dial.kind === 'resolved' ? `sni=${dial.serverName}` : `logical=${dial.key}`)
  return parts.join('|')
}
