/**
 * A Host is one upstream address with its connection pool. Hosts are shared by every
 * snapshot and cluster that names the same address with the same connection options, so
 * pools (and their warm keep-alive sockets) survive config swaps; a host whose last
 * user lets go closes its pool gracefully, letting requests in flight finish.
 */
import { Pool } from 'undici'
import type { ParsedAddress } from '../config/address.js'
import type { BreakerStateChange } from '../policy/error-rate-breaker.js'
import type { HealthEventSink } from './host-health.js'
import type { TlsCounters } from '../security/tls-stats.js'
import { createTlsConnector, type UpstreamTls } from './tls-connector.js'

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
  readonly #tlsStats: () => TlsCounters | undefined
  #pool: Pool | undefined

  constructor(readonly key: string, readonly address: ParsedAddress, options: ConnectionOptions, tlsStats: () => TlsCounters | undefined = () => undefined) {
    this.#options = options
    this.#tlsStats = tlsStats
    // With cluster TLS the connector picks SNI itself; a fixed value here only keeps undici
    // from deriving one per request (and from reconnecting when two requests' differ).
    this.servername = options.tls !== undefined ? (options.tls.sni ?? address.hostname) : address.protocol === 'http:' || !isIp(address.hostname) ? address.hostname : undefined
  }

  /**
   * The connection pool, created on the first request: a config names thousands of
   * endpoints a process may never call, and an undici Pool costs ~18 KB up front.
   */
  get pool(): Pool {
    const tls = this.#options.tls
    this.#pool ??= new Pool(this.address.origin, {
      connect: tls === undefined ? { timeout: this.#options.connectTimeoutMs } : createTlsConnector(tls, this.#options.connectTimeoutMs, this.#tlsStats),
      ...(this.#options.maxConnections === undefined ? {} : { connections: this.#options.maxConnections }),
      ...(this.#options.idleTimeoutMs === undefined
        ? {}
        : { keepAliveTimeout: this.#options.idleTimeoutMs, keepAliveMaxTimeout: this.#options.idleTimeoutMs }),
    })
    return this.#pool
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
  readonly #closing = new Set<Promise<void>>()

  /** @param events where the clusters built on this registry report endpoint health changes */
  constructor(readonly events: HealthEventSink = {}) {}

  /** Takes a reference on the host for `address` with `options`, creating it if needed. */
  acquire(address: ParsedAddress, options: ConnectionOptions): Host {
    const key = `${address.origin}|${options.connectTimeoutMs}|${options.idleTimeoutMs ?? ''}|${options.maxConnections ?? ''}|${options.tls?.key ?? ''}`
    let host = this.#hosts.get(key)
    if (host === undefined) {
      host = new Host(key, address, options, () => this.tlsStats)
      this.#hosts.set(key, host)
    }
    host.refs++
    return host
  }

  /** Drops a reference; the last one closes the pool once its requests finish. */
  release(host: Host): void {
    if (--host.refs > 0) return
    if (this.#hosts.get(host.key) === host) this.#hosts.delete(host.key)
    const closing = host.close(false)
    this.#closing.add(closing)
    void closing.finally(() => this.#closing.delete(closing))
  }

  /** How many hosts (pools) are open. */
  get size(): number {
    return this.#hosts.size
  }

  /** The host for a key, if open (for tests and admin). */
  get(key: string): Host | undefined {
    return this.#hosts.get(key)
  }

  /** Closes every pool: gracefully (requests finish), or at once with `force`. */
  async closeAll(force = false): Promise<void> {
    const hosts = [...this.#hosts.values()]
    this.#hosts.clear()
    await Promise.all([
      ...hosts.map((h) => h.close(force)),
      ...this.#closing,
    ])
  }
}
