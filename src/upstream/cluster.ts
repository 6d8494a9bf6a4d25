/**
 * The runtime side of a cluster: its endpoints as shared hosts, a load balancer for the
 * whole cluster and one per subset. Membership is replaced whole (a new `members` object),
 * so a request reads one consistent set. `strict_dns` and `logical_dns` clusters resolve in
 * the background (`dns/discovery.ts`) and replace their membership when an answer changes
 * it; a request never waits for DNS: no endpoint yet is 503 `no healthy upstream` at once.
 *
 * With `outlierDetection` or `healthChecks`, each endpoint's health lives here (not in the
 * shared Host), and the balancers cover only usable endpoints — or all of a balancer's
 * endpoints when too few are usable (Envoy's panic mode, `commonLbConfig.healthyPanicThreshold`).
 * A health change rebuilds `members` whole, so a request never sees half an update.
 */
import { parseAddress, type ParsedAddress } from '../config/address.js'
import { defaults } from '../config/defaults.js'
import { parseDuration } from '../config/duration.js'
import type { ClusterConfig } from '../config/types.js'
import { HostRegistry, type ConnectionOptions, type Host, type HostDial } from './host.js'
import { DnsDiscovery, type ClusterDnsStats } from './dns/discovery.js'
import type { UpstreamTls } from '../security/upstream-tls.js'
import { EMPTY_LB, type Endpoint, type LoadBalancer } from './lb/load-balancer.js'
import { LeastRequestLoadBalancer } from './lb/least-request.js'
import { MaglevLoadBalancer } from './lb/maglev.js'
import { RandomLoadBalancer } from './lb/random.js'
import { RingHashLoadBalancer } from './lb/ring-hash.js'
import { RoundRobinLoadBalancer } from './lb/round-robin.js'
import { ResourceManager } from './resource-manager.js'
import { ErrorRateBreaker } from '../policy/error-rate-breaker.js'
import { HealthChecker } from './health-check.js'
import { EJECTION_REASONS, HealthCounters, HostHealth, type ClusterHealthStats, type EjectionReason, type HealthEventSink, type RequestOutcome } from './host-health.js'
import { OutlierDetector } from './outlier-detection.js'

/** The endpoints of a cluster at one moment, with their balancers. */
export interface Members {
  readonly endpoints: readonly Endpoint[]
  /** Balancer over every endpoint. */
  readonly all: LoadBalancer
  /** Balancer per subset, in the order of `ClusterConfig.subsets`. */
  readonly subsets: readonly LoadBalancer[]
  /** Whether `all` is in panic mode: too few usable endpoints, so it balances over every one. */
  readonly panic: boolean
  /** The same, per subset. */
  readonly subsetPanic: readonly boolean[]
}

const NO_HEALTH: ReadonlyMap<Host, HostHealth> = new Map()
/** The balancer cache of a cluster whose balancers are built once per endpoint list (no health to rebuild them for). */
const NO_BALANCERS: ReadonlyMap<string, LoadBalancer> = new Map()
const NO_LABELS: Readonly<Record<string, string>> = Object.freeze({})

/** One endpoint to hold: a configured one, or one DNS discovered (then with how to dial it). */
interface EndpointSpec {
  readonly parsed: ParsedAddress
  readonly labels?: Record<string, string> | undefined
  readonly weight?: number | undefined
  readonly dial?: HostDial | undefined
}

/** A cluster at runtime. */
export class Cluster {
  readonly name: string
  /** The config this cluster was built from (frozen); reused across swaps when unchanged. */
  readonly config: Readonly<ClusterConfig>
  /** A SHA-256 digest of the config's canonical JSON: an unchanged cluster keeps its runtime object on swap. */
  readonly configKey: string
  readonly subsetNames: readonly string[]
  /** Whether the load balancer consumes a request hash. */
  readonly usesHash: boolean
  /** Whether requests carry this workload's peer header (`peerMetadata`, default true). */
  readonly sendsPeer: boolean
  members: Members
  /** Envoy's circuit-breaker thresholds and their live counts. */
  readonly resources: ResourceManager
  /**
   * Error-rate breakers: index 0 for requests to the whole cluster, `i + 1` for subset `i`;
   * null without `circuitBreakers.errorRate`.
   */
  readonly breakers: readonly ErrorRateBreaker[] | null
  readonly #registry: HostRegistry
  readonly #options: ConnectionOptions
  /** Background DNS of strict_dns and logical_dns clusters; null for static ones. */
  readonly #dns: DnsDiscovery | null
  #disposed = false
  #started = false
  /** Health per endpoint host; `null` without outlier detection and health checks (nothing is ever unusable). */
  readonly #health: Map<Host, HostHealth> | null
  readonly #outlier: OutlierDetector | null
  readonly #checker: HealthChecker | null
  /** Ejection and health-check counters; made with the first outlier detection or health check (null before: nothing to count). */
  readonly #counters: HealthCounters | null
  readonly #panicThreshold: number
  readonly #events: HealthEventSink
  /** Health of the cluster this one replaces, by endpoint origin, until this one has started. */
  #adopt: Map<string, HostHealth> | undefined
  #trafficSeen = false
  /**
   * Balancers by endpoint selection, reused while the endpoint list stays the same, when
   * health changes rebuild them (empty and shared otherwise).
   */
  #lbCache: ReadonlyMap<string, LoadBalancer> = NO_BALANCERS
  /** Endpoint indexes of each subset, for the current endpoint list. */
  #subsetIndexes: readonly (readonly number[])[] = []

  /**
   * @param previous the runtime of the same cluster in the snapshot being replaced (its
   *   config changed): endpoint health and health counters carry over, as in Envoy
   */
  constructor(config: Readonly<ClusterConfig>, configKey: string, registry: HostRegistry, previous?: Cluster, tls?: UpstreamTls) {
    this.name = config.name
    this.config = config
    this.configKey = configKey
    this.subsetNames = (config.subsets ?? []).map((s) => s.name)
    this.#registry = registry
    this.#options = {
      connectTimeoutMs: parseDuration(config.connectTimeout) ?? defaults.connectTimeoutMs,
      idleTimeoutMs: parseDuration(config.idleTimeout),
      maxConnections: config.circuitBreakers?.maxConnections,
      tls,
    }
    this.resources = new ResourceManager(config.circuitBreakers)
    const errorRate = config.circuitBreakers?.errorRate
    this.breakers = errorRate === undefined
      ? null
      : Object.freeze([undefined, ...this.subsetNames].map((subset) => new ErrorRateBreaker(errorRate, (from, to, errorPercentage) => {
        registry.onBreakerChange?.({ cluster: this.name, subset, from, to, errorPercentage })
      })))
    const lb = config.loadBalancer ?? defaults.loadBalancer
    this.usesHash = lb === 'ring_hash' || lb === 'maglev'
    this.sendsPeer = config.peerMetadata !== false
    this.#panicThreshold = config.commonLbConfig?.healthyPanicThreshold ?? defaults.healthyPanicThreshold
    this.#events = registry.events
    const check = config.healthChecks?.[0]
    const healthful = config.outlierDetection !== undefined || check !== undefined
    // Carried over from the cluster this one replaces, as Envoy keeps a cluster's stats.
    const counters = (previous === undefined ? null : previous.#counters) ?? (healthful ? new HealthCounters() : null)
    this.#counters = counters
    this.#health = healthful ? new Map() : null
    const before = previous === undefined ? null : previous.#health
    if (healthful && before !== null) {
      this.#adopt = new Map()
      for (const [host, h] of before) this.#adopt.set(host.address.origin, h)
    }
    const hosts = (): ReadonlyMap<Host, HostHealth> => this.#health ?? NO_HEALTH
    const changed = (): void => this.#refresh()
    this.#outlier = config.outlierDetection === undefined ? null : new OutlierDetector(config.outlierDetection, {
      cluster: this.name,
      hosts,
      changed,
      counters: counters as HealthCounters,
      emit: (e) => this.#events.outlierEjection?.(e),
    })
    this.#checker = check === undefined ? null : new HealthChecker(check, {
      cluster: this.name,
      hosts,
      changed,
      trafficSeen: () => this.#trafficSeen,
      passed: (host, h) => this.#outlier !== null && this.#outlier.unejectOnHealthCheck && this.#outlier.unejectNow(host, h),
      counters: counters as HealthCounters,
      emit: (e) => this.#events.endpointHealth?.(e),
    })
    if (config.type === 'strict_dns' || config.type === 'logical_dns') {
      this.#dns = new DnsDiscovery(config, () => this.#onDnsChange(), previous === undefined ? undefined : previous.#dns ?? undefined)
      // Answers adopted from the cluster this one replaces give endpoints at once; else none yet.
      this.members = this.#build(this.#dns.endpoints())
    } else {
      this.#dns = null
      this.members = this.#build((config.endpoints ?? []).map((e) => ({ ...e, parsed: parseAddress(e.address) as ParsedAddress })))
    }
  }

  /**
   * Starts the cluster's timers: DNS resolution of DNS clusters, outlier detection, health
   * checks. Resolves once the first DNS answers (bounded, as Envoy warms a cluster) and the
   * first round of health checks (bounded by their timeout) are in.
   */
  start(): Promise<void> {
    if (this.#started || this.#disposed) return Promise.resolve()
    this.#started = true
    this.#outlier?.start()
    const dns = this.#dns === null ? Promise.resolve() : this.#dns.start(defaults.dnsInitialResolveTimeoutMs)
    return dns.then(async () => {
      if (this.#checker !== null) await this.#checker.start()
      this.#adopt = undefined
    })
  }

  /**
   * Counts the outcome of one request to `host`: its HTTP status, or a failure the mesh saw
   * (connect failure, reset, timeout). The request path calls it once per request; it costs
   * a few counter updates.
   */
  recordOutcome(host: Host, outcome: RequestOutcome): void {
    this.#trafficSeen = true
    const od = this.#outlier
    if (od === null) return
    const h = (this.#health as Map<Host, HostHealth>).get(host)
    if (h !== undefined) od.record(host, h, outcome)
  }

  /** Health of the cluster now, or `undefined` when it has neither outlier detection nor health checks. */
  healthStats(): ClusterHealthStats | undefined {
    const health = this.#health
    if (health === null) return undefined
    const ejected: string[] = []
    const unhealthy: string[] = []
    let healthy = 0
    for (const [host, h] of health) {
      if (h.ejected) ejected.push(host.address.hostPort)
      if (h.checkFailed) unhealthy.push(host.address.hostPort)
      if (h.usable) healthy++
    }
    // A cluster with health has its counters (made with it, or carried over).
    const counters = this.#counters as HealthCounters
    const ejections = {} as Record<EjectionReason, number>
    EJECTION_REASONS.forEach((r, i) => (ejections[r] = counters.ejections[i] ?? 0))
    const m = this.members
    return {
      endpoints: health.size,
      healthy,
      ejections,
      ejectionsActive: ejected.length,
      ejectionsOverflow: counters.ejectionsOverflow,
      healthChecks: { success: counters.checkSuccess, failure: counters.checkFailure },
      panic: m.panic,
      panicSubsets: this.subsetNames.filter((_, i) => m.subsetPanic[i] === true),
      ejected,
      unhealthy,
    }
  }

  /** DNS counters and what each endpoint name resolves to; `undefined` for a static cluster. */
  dnsStats(): ClusterDnsStats | undefined {
    return this.#dns?.stats()
  }

  /** Releases the hosts and stops the DNS timers. */
  dispose(): void {
    if (this.#disposed) return
    this.#disposed = true
    this.#dns?.stop()
    this.#outlier?.stop()
    this.#checker?.stop()
    this.#adopt = undefined
    for (const e of this.members.endpoints) this.#registry.release(e.host)
    this.members = { endpoints: [], all: EMPTY_LB, subsets: this.subsetNames.map(() => EMPTY_LB), panic: false, subsetPanic: this.subsetNames.map(() => false) }
  }

  /**
   * A DNS answer changed what the cluster should hold. New hosts are acquired before old
   * ones are released, so a host in both keeps its pool; a host that goes closes its pool
   * gracefully (its requests in flight finish). When the hosts are the same (a logical_dns
   * endpoint whose address changed), only where their new connections go changes.
   */
  #onDnsChange(): void {
    if (this.#disposed) return
    const list = (this.#dns as DnsDiscovery).endpoints()
    const current = this.members.endpoints
    if (list.length === current.length && list.every((e, i) => HostRegistry.keyOf(e.parsed, this.#options, e.dial) === current[i]?.host.key)) {
      list.forEach((e, i) => {
        if (e.dial !== undefined) current[i]?.host.updateDial(e.dial)
      })
      return
    }
    const old = this.members
    this.members = this.#build(list)
    for (const e of old.endpoints) this.#registry.release(e.host)
  }

  #build(list: readonly EndpointSpec[]): Members {
    const endpoints: Endpoint[] = list.map((e) => ({
      host: this.#registry.acquire(e.parsed, this.#options, e.dial),
      weight: e.weight ?? defaults.endpointWeight,
      // A validated config's labels are frozen already: shared, not copied.
      labels: e.labels === undefined ? NO_LABELS : Object.isFrozen(e.labels) ? e.labels : Object.freeze({ ...e.labels }),
    }))
    this.#subsetIndexes = (this.config.subsets ?? []).map((s) => {
      const want = Object.entries(s.labels)
      const out: number[] = []
      endpoints.forEach((e, i) => {
        if (want.every(([k, v]) => e.labels[k] === v)) out.push(i)
      })
      // Kept for the cluster's life: an exact copy, not the 17 slots a pushed-to array reserves.
      return out.slice()
    })
    this.#lbCache = NO_BALANCERS
    this.#syncHealth(endpoints)
    return this.#assemble(Object.freeze(endpoints))
  }

  /** Keeps one health record per endpoint host: new hosts get one (adopted or fresh), gone hosts lose theirs. */
  #syncHealth(endpoints: readonly Endpoint[]): void {
    const health = this.#health
    if (health === null) return
    const present = new Set<Host>()
    const checked = this.#checker !== null
    for (const e of endpoints) {
      present.add(e.host)
      if (health.has(e.host)) continue
      const h = new HostHealth(checked)
      const from = this.#adopt?.get(e.host.address.origin)
      if (from !== undefined) h.adopt(from, this.#outlier !== null)
      health.set(e.host, h)
    }
    for (const host of health.keys()) if (!present.has(host)) health.delete(host)
  }

  /** Rebuilds the balancers over the same endpoints after a health change. */
  #refresh(): void {
    if (this.#disposed) return
    this.members = this.#assemble(this.members.endpoints)
  }

  /**
   * The balancers of an endpoint list given each endpoint's health: per balancer, the usable
   * endpoints, or all of them in panic mode. Balancers over an unchanged selection are reused.
   */
  #assemble(endpoints: readonly Endpoint[]): Members {
    const health = this.#health
    const usable = health === null ? null : endpoints.map((e) => health.get(e.host)?.usable !== false)
    const cache = new Map<string, LoadBalancer>()
    const scope = (indexes: readonly number[] | null): [LoadBalancer, boolean] => {
      const all = indexes ?? endpoints.map((_, i) => i)
      const ok = usable === null ? all : all.filter((i) => usable[i] === true)
      const panic = ok.length < all.length && all.length > 0 && (100 * ok.length) / all.length < this.#panicThreshold
      const chosen = panic || ok.length === all.length ? all : ok
      const key = `${indexes === null ? 'all' : 'subset'}:${chosen.join(',')}`
      let lb = cache.get(key) ?? this.#lbCache.get(key)
      if (lb === undefined) lb = this.#balancer(chosen.map((i) => endpoints[i] as Endpoint))
      cache.set(key, lb)
      return [lb, panic]
    }
    const [all, panic] = scope(null)
    // Built by `map`, which sizes an array exactly (these live as long as the membership).
    const scoped = this.#subsetIndexes.map(scope)
    const subsets = scoped.map((s) => s[0])
    const subsetPanic = scoped.map((s) => s[1])
    // Only health changes assemble the same endpoints again (`#refresh`).
    this.#lbCache = health === null ? NO_BALANCERS : cache
    return Object.freeze({ endpoints, all, subsets: Object.freeze(subsets), panic, subsetPanic: Object.freeze(subsetPanic) })
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
