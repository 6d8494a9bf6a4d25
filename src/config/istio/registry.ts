/**
 * The service registry of one import — what istiod learns from Kubernetes and ServiceEntries,
 * learned here from the file: the clusters of the mesh-config documents (a cluster named
 * `reviews`, `reviews.prod` or a FQDN stands for that service), the hosts of ServiceEntries,
 * and, for a destination found in neither, a service with no endpoints (istiod's cluster
 * without endpoints: requests get 503 `no healthy upstream`).
 *
 * It names the clusters routes go to and builds them at the end, with the DestinationRule of
 * their host applied: one cluster per service (per port when a ServiceEntry has several), and
 * one more per subset that has a traffic policy of its own (istiod builds a cluster per subset).
 */
import type { ClusterConfig, EndpointConfig, HashPolicy, SubsetConfig } from '../types.js'
import { istioDefaults } from './defaults.js'
import type { AppliedRule, DestinationRules } from './destination-rule.js'
import { clusterHostKeys, serviceNamespace } from './names.js'
import type { ServiceEntryService, ServicePort } from './service-entry.js'
import { effectivePolicy, type TrafficPolicyParts } from './traffic-policy.js'
import type { Origin, Translation } from './state.js'

/** A service of the registry. */
export interface Service {
  /** The FQDN (lower case), or a `*.suffix` of a ServiceEntry. */
  readonly host: string
  /** The Kubernetes namespace of the service (of its ServiceEntry, or of its FQDN). */
  readonly namespace: string | undefined
  readonly source: { readonly kind: 'own'; readonly index: number; readonly cluster: ClusterConfig }
    | { readonly kind: 'serviceentry'; readonly entry: ServiceEntryService }
    | { readonly kind: 'placeholder' }
  /** Service ports known from ServiceEntries or VirtualServices. */
  readonly ports: number[]
  readonly addresses: readonly string[]
  /** Where it came from, for reports and locations. */
  readonly origin: Origin | undefined
}

/** A route's target: a cluster and maybe a subset. */
export interface Target {
  readonly cluster: string
  readonly subset?: string
  readonly hashPolicy?: HashPolicy
}

/** A label no endpoint carries: a subset that no DestinationRule defines selects nothing (istiod: no such cluster, 503). */
const UNDEFINED_SUBSET_LABEL = 'sidecarless.io/undefined-subset'

export class Registry {
  readonly services: Service[] = []
  readonly #byKey = new Map<string, Service>()
  readonly #rules = new Map<Service, AppliedRule | null>()
  /** Subset names routed to that no rule defines, per service. */
  readonly #undefinedSubsets = new Map<Service, Set<string>>()
  /** Subsets with a policy of their own that routes use, per service: they get a cluster each. */
  readonly #subsetClusters = new Map<Service, Set<string>>()

  constructor(readonly t: Translation, readonly drs: DestinationRules) {}

  /** Registers a cluster of a mesh-config document under its name and the service FQDN it abbreviates. */
  addOwn(cluster: ClusterConfig, index: number, origin: Origin | undefined): void {
    const keys = clusterHostKeys(cluster.name, this.t.workload)
    const host = keys[keys.length - 1] as string
    const service: Service = { host, namespace: serviceNamespace(host, this.t.workload), source: { kind: 'own', index, cluster }, ports: [], addresses: [], origin }
    this.services.push(service)
    for (const k of keys) if (!this.#byKey.has(k)) this.#byKey.set(k, service)
  }

  /** Registers a ServiceEntry host; a host already known is reported and left out. */
  addEntry(entry: ServiceEntryService): void {
    const existing = this.#byKey.get(entry.host)
    if (existing !== undefined) {
      const by = existing.source.kind === 'own' ? `the mesh-config cluster "${existing.source.cluster.name}"` : existing.source.kind === 'serviceentry' ? existing.source.entry.resource.label : 'another entry'
      this.t.report(`${entry.path}.hosts`, `${entry.host} is already defined by ${by}; this entry's endpoints are not used`)
      return
    }
    const service: Service = {
      host: entry.host,
      namespace: entry.namespace,
      source: { kind: 'serviceentry', entry },
      ports: entry.ports.map((p) => p.number),
      addresses: entry.addresses,
      origin: { doc: entry.resource.doc, path: [...entry.resource.docPath, 'spec'] },
    }
    this.services.push(service)
    this.#byKey.set(entry.host, service)
  }

  find(host: string): Service | undefined {
    return this.#byKey.get(host)
  }

  /** The service of a destination host; one without endpoints is made (and reported) when the file has none. */
  destination(host: string, path: string): Service {
    const found = this.#byKey.get(host)
    if (found !== undefined) return found
    const service: Service = { host, namespace: serviceNamespace(host, this.t.workload), source: { kind: 'placeholder' }, ports: [], addresses: [], origin: undefined }
    this.t.report(path, `no endpoints for ${host} in this file (no ServiceEntry, no mesh-config cluster named after it): requests routed to it get 503 no healthy upstream, as from istiod's cluster without endpoints`)
    this.services.push(service)
    this.#byKey.set(host, service)
    return service
  }

  /** The DestinationRule in force for a service (merged), cached. */
  rule(service: Service): AppliedRule | undefined {
    let r = this.#rules.get(service)
    if (r === undefined) {
      r = this.drs.lookup(service.host, service.namespace) ?? null
      this.#rules.set(service, r)
    }
    return r ?? undefined
  }

  /**
   * The cluster (and subset) a route sends `service` traffic to, on `port` when known, with
   * the hash policy of a consistent-hash balancer (pilot `hashForHTTPDestination`).
   */
  target(service: Service, port: number | undefined, subset: string | undefined, path: string): Target {
    const p = this.#clusterPort(service, port)
    const base = this.clusterName(service, p)
    const rule = this.rule(service)
    let cluster = base
    let subsetPolicy: TrafficPolicyParts | undefined
    if (subset !== undefined) {
      const s = rule?.subsets.find((x) => x.name === subset)
      const own = service.source.kind === 'own' && (service.source.cluster.subsets ?? []).some((x) => x.name === subset)
      if (s === undefined && !own) {
        this.t.report(path, `subset ${JSON.stringify(subset)} of ${service.host} is not defined by a DestinationRule that applies: requests routed to it get 503 no healthy upstream`)
        let set = this.#undefinedSubsets.get(service)
        if (set === undefined) this.#undefinedSubsets.set(service, (set = new Set()))
        set.add(subset)
      } else if (s?.policy !== undefined) {
        subsetPolicy = s.policy
        cluster = `${base}|${subset}`
        let set = this.#subsetClusters.get(service)
        if (set === undefined) this.#subsetClusters.set(service, (set = new Set()))
        set.add(subset)
      }
    }
    const hash = rule === undefined ? undefined : effectivePolicy(rule.policy, subsetPolicy, p).loadBalancer?.hashPolicy
    return { cluster, ...(subset === undefined ? {} : { subset }), ...(hash === undefined ? {} : { hashPolicy: hash }) }
  }

  /** The port whose cluster serves `port`: the service's single port, or `port` when the service has several. */
  #clusterPort(service: Service, port: number | undefined): number | undefined {
    const ports = this.#clusterPorts(service)
    if (ports.length === 0) return port
    if (ports.length === 1) return ports[0]
    return port !== undefined && ports.includes(port) ? port : ports[0]
  }

  /** The ports that get a cluster of their own: those of a ServiceEntry with more than one. */
  #clusterPorts(service: Service): number[] {
    return service.source.kind === 'serviceentry' ? service.source.entry.ports.map((p) => p.number) : []
  }

  /** The cluster name of a service on a port. */
  clusterName(service: Service, port: number | undefined): string {
    if (service.source.kind === 'own') return service.source.cluster.name
    const ports = this.#clusterPorts(service)
    return ports.length > 1 && port !== undefined ? `${service.host}:${port}` : service.host
  }

  /**
   * Every cluster: the mesh-config documents' own (in their order, with their rules applied),
   * then the registry's other services, each followed by its subset clusters. `origins` gets
   * where each came from.
   */
  clusters(ownCount: number): { clusters: ClusterConfig[]; origins: (Origin | undefined)[] } {
    const own: (ClusterConfig | undefined)[] = new Array<ClusterConfig | undefined>(ownCount)
    const ownOrigins: (Origin | undefined)[] = new Array<Origin | undefined>(ownCount)
    const rest: ClusterConfig[] = []
    const restOrigins: (Origin | undefined)[] = []
    for (const service of this.services) {
      const built = this.#build(service)
      if (service.source.kind === 'own') {
        own[service.source.index] = built[0]
        ownOrigins[service.source.index] = service.origin
        rest.push(...built.slice(1))
        for (let i = 1; i < built.length; i++) restOrigins.push(service.origin)
      } else {
        rest.push(...built)
        for (let i = 0; i < built.length; i++) restOrigins.push(service.origin)
      }
    }
    const clusters = [...own.filter((c): c is ClusterConfig => c !== undefined), ...rest]
    return { clusters, origins: [...ownOrigins.filter((_, i) => own[i] !== undefined), ...restOrigins] }
  }

  #build(service: Service): ClusterConfig[] {
    const rule = this.rule(service)
    const ports = this.#clusterPorts(service)
    const out: ClusterConfig[] = []
    const subsetNames = this.#subsetClusters.get(service) ?? new Set<string>()
    // A service without ServiceEntry ports has one cluster; its port is known when routes name exactly one.
    const learned = [...new Set(service.ports)]
    const portList: (number | undefined)[] = ports.length > 1 ? ports : ports.length === 1 ? ports : [learned.length === 1 ? learned[0] : undefined]
    if (rule !== undefined) this.#reportUnusedPorts(rule, portList)
    for (const port of portList) {
      const base = this.#base(service, port)
      const applied = rule === undefined ? base : this.#apply(base, effectivePolicy(rule.policy, undefined, port), rule, service)
      out.push(this.#withUndefinedSubsets(applied, service))
      for (const subset of subsetNames) {
        const s = rule?.subsets.find((x) => x.name === subset)
        if (rule === undefined || s === undefined) continue
        const derived = this.#apply({ ...base, name: `${base.name}|${subset}` }, effectivePolicy(rule.policy, s.policy, port), rule, service)
        out.push(derived)
      }
    }
    return out
  }

  #reportUnusedPorts(rule: AppliedRule, ports: readonly (number | undefined)[]): void {
    const check = (policy: TrafficPolicyParts | undefined, path: string): void => {
      for (const p of policy?.ports.keys() ?? []) {
        if (!ports.includes(p)) this.t.report(path, `port-level settings for port ${p} are not applied: the service's port is ${ports[0] === undefined ? 'not known (give it in a ServiceEntry)' : ports.join(', ')}`)
      }
    }
    const first = rule.rules.find((r) => r.hasPolicy)
    if (first !== undefined) check(first.policy, `${first.resource.label}.spec.trafficPolicy.portLevelSettings`)
    for (const s of rule.subsets) check(s.policy, `${s.path}.trafficPolicy.portLevelSettings`)
  }

  #base(service: Service, port: number | undefined): ClusterConfig {
    if (service.source.kind === 'own') return structuredClone(service.source.cluster)
    // A cluster istiod builds: LEAST_REQUEST, its 10s connect timeout, no circuit breaking.
    const u = istioDefaults.circuitBreakerUnbounded
    const base: ClusterConfig = {
      name: this.clusterName(service, port),
      loadBalancer: istioDefaults.loadBalancer,
      connectTimeout: istioDefaults.connectTimeoutMs,
      circuitBreakers: { maxConnections: u, maxPendingRequests: u, maxRequests: u, maxRetries: u },
    }
    if (service.source.kind === 'serviceentry') {
      const entry = service.source.entry
      if (entry.type !== 'static') base.type = entry.type
      // Outside the mesh: no peer metadata, as Istio strips its metadata exchange headers there.
      if (entry.external) base.peerMetadata = false
      const endpoints: EndpointConfig[] = port === undefined ? [] : entry.endpoints.get(port) ?? []
      base.endpoints = endpoints.map((e) => ({ ...e, ...(e.labels === undefined ? {} : { labels: { ...e.labels } }) }))
    } else {
      base.endpoints = []
    }
    return base
  }

  #apply(cluster: ClusterConfig, policy: TrafficPolicyParts, rule: AppliedRule, service: Service): ClusterConfig {
    const out: ClusterConfig = { ...cluster }
    const subsets: SubsetConfig[] = [...(cluster.subsets ?? [])]
    for (const s of rule.subsets) {
      const i = subsets.findIndex((x) => x.name === s.name)
      if (i >= 0) subsets[i] = { name: s.name, labels: { ...s.labels } }
      else subsets.push({ name: s.name, labels: { ...s.labels } })
    }
    if (subsets.length > 0) out.subsets = subsets
    const lb = policy.loadBalancer
    if (lb?.loadBalancer !== undefined) {
      out.loadBalancer = lb.loadBalancer
      delete out.ringHash
      delete out.maglev
      if (lb.ringHash !== undefined) out.ringHash = { ...lb.ringHash }
      if (lb.maglev !== undefined) out.maglev = { ...lb.maglev }
      if (lb.loadBalancer === 'ring_hash' && lb.ringHash === undefined) out.ringHash = { minimumRingSize: istioDefaults.ringHashMinimumRingSize }
    }
    const pool = policy.connectionPool
    if (pool !== undefined) {
      out.circuitBreakers = { ...(out.circuitBreakers ?? {}), ...pool.circuitBreakers }
      if (pool.connectTimeout !== undefined) out.connectTimeout = pool.connectTimeout
      if (pool.idleTimeout !== undefined) out.idleTimeout = pool.idleTimeout
    }
    if (policy.retryBudget !== undefined) out.circuitBreakers = { ...(out.circuitBreakers ?? {}), retryBudget: { ...policy.retryBudget } }
    const od = policy.outlierDetection
    if (od !== undefined) {
      out.outlierDetection = { ...od.outlierDetection }
      out.commonLbConfig = { ...(out.commonLbConfig ?? {}), healthyPanicThreshold: od.healthyPanicThreshold }
    }
    if (policy.tls !== undefined) {
      const tls = { ...policy.tls }
      const sans = service.source.kind === 'serviceentry' ? service.source.entry.subjectAltNames : []
      if (tls.verifyIdentities === undefined && sans.length > 0 && tls.mode !== 'disable') tls.verifyIdentities = [...sans]
      out.tls = tls
    }
    return out
  }

  #withUndefinedSubsets(cluster: ClusterConfig, service: Service): ClusterConfig {
    const names = this.#undefinedSubsets.get(service)
    if (names === undefined) return cluster
    const subsets = [...(cluster.subsets ?? [])]
    for (const name of names) {
      if (!subsets.some((s) => s.name === name)) subsets.push({ name, labels: { [UNDEFINED_SUBSET_LABEL]: name } })
    }
    return { ...cluster, subsets }
  }
}

/** The ports of a ServiceEntry, re-exported for the virtual-host builder. */
export type { ServicePort }
