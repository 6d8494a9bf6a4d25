/**
 * The runtime side of a cluster: its endpoints as shared hosts, a load balancer for the
 * whole cluster and one per subset. Membership is replaced whole (a new `members` object),
 * so a request reads one consistent set. `strict_dns` clusters re-resolve on a timer and
 * replace their membership when the answer changes.
 */
import { lookup } from 'node:dns/promises'
import { parseAddress, type ParsedAddress } from '../config/address.js'
import { defaults } from '../config/defaults.js'
import { parseDuration } from '../config/duration.js'
import type { ClusterConfig } from '../config/types.js'
import type { ConnectionOptions, Host, HostRegistry } from './host.js'
import type { UpstreamTls } from './tls-connector.js'
import { EMPTY_LB, type Endpoint, type LoadBalancer } from './lb/load-balancer.js'
import { LeastRequestLoadBalancer } from './lb/least-request.js'
import { MaglevLoadBalancer } from './lb/maglev.js'
import { RandomLoadBalancer } from './lb/random.js'
import { RingHashLoadBalancer } from './lb/ring-hash.js'
import { RoundRobinLoadBalancer } from './lb/round-robin.js'

/** The endpoints of a cluster at one moment, with their balancers. */
export interface Members {
  readonly endpoints: readonly Endpoint[]
  /** Balancer over every endpoint. */
  readonly all: LoadBalancer
  /** Balancer per subset, in the order of `ClusterConfig.subsets`. */
  readonly subsets: readonly LoadBalancer[]
}

/** How long the first DNS answer of a strict_dns cluster is awaited when a config is applied. */
const INITIAL_RESOLVE_TIMEOUT_MS = 5_000

/** A cluster at runtime. */
export class Cluster {
  readonly name: string
  /** The config this cluster was built from (frozen); reused across swaps when unchanged. */
  readonly config: Readonly<ClusterConfig>
  /** Canonical JSON of the config: an unchanged cluster keeps its runtime object on swap. */
  readonly configKey: string
  readonly subsetNames: readonly string[]
  /** Whether the load balancer consumes a request hash. */
  readonly usesHash: boolean
  members: Members
  readonly #registry: HostRegistry
  readonly #options: ConnectionOptions
  #timer: NodeJS.Timeout | undefined
  #disposed = false
  #resolving: Promise<void> | undefined

  constructor(config: Readonly<ClusterConfig>, configKey: string, registry: HostRegistry, tls?: UpstreamTls) {
    this.name = config.name
    this.config = config
    this.configKey = configKey
    this.subsetNames = (config.subsets ?? []).map((s) => s.name)
    this.#registry = registry
    this.#options = {
      connectTimeoutMs: parseDuration(config.connectTimeout) ?? defaults.connectTimeoutMs,
      idleTimeoutMs: parseDuration(config.idleTimeout),
      tls,
    }
    const lb = config.loadBalancer ?? defaults.loadBalancer
    this.usesHash = lb === 'ring_hash' || lb === 'maglev'
    if (config.type === 'strict_dns') {
      this.members = this.#build([])
    } else {
      this.members = this.#build((config.endpoints ?? []).map((e) => ({ ...e, parsed: parseAddress(e.address) as ParsedAddress })))
    }
  }

  /** Starts DNS resolution for strict_dns clusters; resolves once the first answer is in (bounded). */
  start(): Promise<void> {
    if (this.config.type !== 'strict_dns' || this.#resolving !== undefined) return Promise.resolve()
    const first = this.#resolve()
    this.#resolving = first
    const interval = parseDuration(this.config.dnsRefreshRate) ?? defaults.dnsRefreshRateMs
    const tick = (): void => {
      this.#timer = setTimeout(() => {
        void this.#resolve().finally(() => {
          if (!this.#disposed) tick()
        })
      }, Math.max(interval, 100))
      this.#timer.unref()
    }
    tick()
    let timeout: NodeJS.Timeout | undefined
    return Promise.race([
      first,
      new Promise<void>((resolve) => {
        timeout = setTimeout(resolve, INITIAL_RESOLVE_TIMEOUT_MS)
        timeout.unref()
      }),
    ]).finally(() => clearTimeout(timeout))
  }

  /** Releases the hosts and stops the DNS timer. */
  dispose(): void {
    if (this.#disposed) return
    this.#disposed = true
    clearTimeout(this.#timer)
    for (const e of this.members.endpoints) this.#registry.release(e.host)
    this.members = { endpoints: [], all: EMPTY_LB, subsets: this.subsetNames.map(() => EMPTY_LB) }
  }

  async #resolve(): Promise<void> {
    const resolved: (Omit<NonNullable<ClusterConfig['endpoints']>[number], 'address'> & { parsed: ParsedAddress })[] = []
    for (const e of this.config.endpoints ?? []) {
      const parsed = parseAddress(e.address) as ParsedAddress
      try {
        const answers = await lookup(parsed.hostname, { all: true })
        for (const a of answers) {
          const host = a.family === 6 ? `[${a.address}]` : a.address
          resolved.push({ ...e, parsed: parseAddress(`${parsed.protocol}//${host}:${parsed.port}`) as ParsedAddress })
        }
      } catch {
        // A name that does not resolve contributes no endpoint (Envoy: the host set shrinks).
      }
    }
    if (this.#disposed) return
    const before = this.members.endpoints.map((e) => e.host.key).join(' ')
    const next = this.#build(resolved)
    if (next.endpoints.map((e) => e.host.key).join(' ') === before) {
      for (const e of next.endpoints) this.#registry.release(e.host)
      return
    }
    const old = this.members
    this.members = next
    for (const e of old.endpoints) this.#registry.release(e.host)
  }

  #build(list: readonly { parsed: ParsedAddress; labels?: Record<string, string>; weight?: number }[]): Members {
    const endpoints: Endpoint[] = list.map((e) => ({
      host: this.#registry.acquire(e.parsed, this.#options),
      weight: e.weight ?? defaults.endpointWeight,
      labels: Object.freeze({ ...(e.labels ?? {}) }),
    }))
    const subsets = (this.config.subsets ?? []).map((s) => {
      const want = Object.entries(s.labels)
      return this.#balancer(endpoints.filter((e) => want.every(([k, v]) => e.labels[k] === v)))
    })
    return Object.freeze({ endpoints: Object.freeze(endpoints), all: this.#balancer(endpoints), subsets: Object.freeze(subsets) })
  }

  #balancer(endpoints: readonly Endpoint[]): LoadBalancer {
    if (endpoints.length === 0) return EMPTY_LB
    const c = this.config
    switch (c.loadBalancer ?? defaults.loadBalancer) {
      case 'round_robin':
        return new RoundRobinLoadBalancer(endpoints)
      case 'random':
        return new RandomLoadBalancer(endpoints)
      case 'least_request':
        return new LeastRequestLoadBalancer(endpoints, c.leastRequest?.choiceCount ?? defaults.leastRequestChoiceCount)
      case 'ring_hash':
        return new RingHashLoadBalancer(
          endpoints,
          c.ringHash?.minimumRingSize ?? defaults.ringHashMinimumRingSize,
          c.ringHash?.maximumRingSize ?? defaults.ringHashMaximumRingSize,
        )
      case 'maglev':
        return new MaglevLoadBalancer(endpoints, c.maglev?.tableSize ?? defaults.maglevTableSize)
    }
  }

  /** Every host of the cluster now. */
  get hosts(): readonly Host[] {
    return this.members.endpoints.map((e) => e.host)
  }
}
