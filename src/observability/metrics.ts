/**
 * The mesh's traffic metrics: counters and latency histograms per place — an inbound route,
 * an outbound cluster, one of its subsets, one of its endpoints — read as a JSON snapshot
 * (`mesh.metrics.snapshot()`) or as Prometheus text (`mesh.metrics.prometheus()`).
 *
 * Recording sits on the request path, so it is built to cost almost nothing: a place is
 * resolved once into a {@link Recorder} (callers cache it), and recording only adds to
 * number fields of objects that already exist — no Map lookup, no string, no allocation.
 * All the work (percentiles, label escaping, sorting) happens when somebody reads.
 *
 * Exposition names are Envoy's stat names with the `sidecarless_` prefix instead of
 * `envoy_`, and a `_total` suffix on every counter as Prometheus conventions ask (Envoy's
 * `upstream_rq_total` keeps its single `_total`). Levels never share a family, so summing
 * a family never counts a request twice:
 *
 * | level | family prefix | labels |
 * | --- | --- | --- |
 * | cluster | `sidecarless_cluster_upstream_` | `cluster_name` |
 * | subset | `sidecarless_cluster_subset_` | `cluster_name`, `subset` |
 * | endpoint | `sidecarless_cluster_endpoint_` (Envoy's per-endpoint stats) | `cluster_name`, `endpoint` |
 * | inbound route | `sidecarless_http_downstream_` | `route` |
 *
 * Every sample also carries `service` when the registry was given one.
 */
import type { LimitStats } from '../policy/limits.js'
import type { ResilienceStats } from '../upstream/resource-manager.js'
import type { BreakerStats } from '../policy/error-rate-breaker.js'

/** Retries, circuit-breaker thresholds and error-rate breakers of one cluster. */
export interface ClusterResilienceStats extends ResilienceStats {
  /** Error-rate breakers, by subset name (`(cluster)` for requests without a subset); absent without `circuitBreakers.errorRate`. */
  readonly breakers?: Readonly<Record<string, BreakerStats>>
}
import { EJECTION_REASONS, type ClusterHealthStats } from '../upstream/host-health.js'
import type { ClusterDnsStats } from '../upstream/dns/discovery.js'
import { SecurityCounters, type SecurityStats } from '../security/stats.js'
import { clampLatency, ENVOY_BUCKET_BOUNDS_MS, LatencyHistogram, latencySlot } from './histogram.js'
import { escapeHelp, escapeLabelValue, formatValue } from './prometheus-text.js'
import { istioLabels, IstioSeries, parsePeerHeader, serviceOfCluster, UNKNOWN_WORKLOAD, workloadOf, writeIstio, type IstioWorkload } from './istio-metrics.js'

export { escapeLabelValue } from './prometheus-text.js'

/** Why a request ended without an upstream response, or with one the mesh made itself. */
export type ErrorKind =
  | 'connect_failure'
  | 'reset'
  | 'timeout'
  | 'no_healthy_upstream'
  | 'no_route'
  | 'aborted'
  | 'overflow'
  | 'rate_limited'
  | 'registry_only'
  | 'other'
  /** Inbound: refused with 401 by JWT authentication (`listener.requestAuthentication`). */
  | 'unauthenticated'
  /** Inbound: refused with 403 by authorization (`listener.authorization`). */
  | 'denied'
  /**
   * Outbound: the upstream's response broke HTTP/1.1 (a malformed head, a head over the size
   * limit, a body that does not match its Content-Length): Envoy's `UPE`. A reset of the
   * stream for retries and outlier detection, counted apart so it can be told from one.
   */
  | 'protocol_error'

/** Every {@link ErrorKind}, in the order snapshots and the exposition list them. */
export const ERROR_KINDS: readonly ErrorKind[] = Object.freeze([
  'connect_failure', 'reset', 'timeout', 'no_healthy_upstream', 'no_route',
  'aborted', 'overflow', 'rate_limited', 'registry_only', 'other',
  'unauthenticated', 'denied', 'protocol_error',
] as const)

/** Classes of HTTP response status, as counted. */
export type ResponseClass = '1xx' | '2xx' | '3xx' | '4xx' | '5xx'

/** Counters of one place in the mesh (an inbound route, a cluster, a subset, an endpoint). */
export interface TrafficStats {
  /** Requests started. */
  readonly requests: number
  /** Requests started and not yet ended. */
  readonly inFlight: number
  /** Requests that got a response, by status class (`1xx` … `5xx`). */
  readonly responses: Readonly<Record<ResponseClass, number>>
  /** Requests that ended without a response, or with a response the mesh made, by kind. */
  readonly errors: Readonly<Record<ErrorKind, number>>
  /** Body bytes received: of responses (outbound places) or of requests (inbound routes). */
  readonly bytesReceived: number
  /** Body bytes sent: of requests (outbound places) or of responses (inbound routes). */
  readonly bytesSent: number
  /**
   * Duration of the requests that ended, in milliseconds, whether they got a response or
   * failed (so `latency.count` is `requests - inFlight`, durations of NaN aside).
   * Percentiles are estimates within ~4.5%; 0 when no request ended yet.
   */
  readonly latency: LatencyStats
}

/** Count, sum and percentiles of request durations, in milliseconds. */
export interface LatencyStats {
  /** Requests whose duration was recorded. */
  readonly count: number
  /** Sum of their durations (ms). */
  readonly sumMs: number
  /** Median duration (ms). */
  readonly p50: number
  /** 90th percentile (ms). */
  readonly p90: number
  /** 99th percentile (ms). */
  readonly p99: number
}

/** Counters of an outbound cluster, with the same counters for each subset and endpoint. */
export interface ClusterStats extends TrafficStats {
  /**
   * Per subset name: the requests routed through that subset. Requests routed to the
   * cluster without a subset count in the cluster only.
   */
  readonly subsets: Readonly<Record<string, TrafficStats>>
  /**
   * Per endpoint (`host:port`): the requests sent to it. Endpoints beyond
   * `maxEndpointsPerCluster` share the entry {@link OTHER_ENDPOINT}.
   */
  readonly endpoints: Readonly<Record<string, TrafficStats>>
}

/** What `mesh.metrics.snapshot()` returns: every counter, read at one moment. */
export interface MetricsSnapshot {
  /** When it was taken (`Date.now()`). */
  readonly takenAt: number
  /** Requests this workload served. */
  readonly inbound: {
    /** Per inbound route name, or {@link DEFAULT_ROUTE} for requests no named route took. */
    readonly routes: Readonly<Record<string, TrafficStats>>
    /**
     * Per caller SPIFFE ID (mTLS peers only; Istio's `source_principal`), every route
     * together. Callers beyond `maxEndpointsPerCluster` (the same bound) share the entry {@link OTHER_ENDPOINT}.
     */
    readonly sources: Readonly<Record<string, TrafficStats>>
  }
  /** Requests this workload sent. */
  readonly outbound: {
    /** Per cluster name (including `PassthroughCluster` for hosts outside the registry). */
    readonly clusters: Readonly<Record<string, ClusterStats>>
    /** Per virtual cluster (Envoy `virtual_clusters`), keyed `<virtual host>/<name>`; absent when none counted. */
    readonly virtualClusters?: Readonly<Record<string, TrafficStats>>
  }
  /**
   * Rate and concurrency limits, by place: `listener`, `listener.route[api]`,
   * `cluster[reviews]`, `route[reviews/default]`.
   */
  readonly limits: Readonly<Record<string, LimitStats>>
  /** Retries, overflows and breakers, per cluster of the config in force. */
  readonly resilience: Readonly<Record<string, ClusterResilienceStats>>
  /**
   * Endpoint health per cluster, for clusters with `outlierDetection` or `healthChecks`:
   * ejections, health-check results, panic mode. Absent when no cluster has either.
   */
  readonly health?: Readonly<Record<string, ClusterHealthStats>>
  /**
   * Service discovery of `strict_dns` and `logical_dns` clusters: resolutions attempted,
   * succeeded, failed and unchanged, and what each endpoint name resolves to now. Absent when
   * no cluster resolves names.
   */
  readonly dns?: Readonly<Record<string, ClusterDnsStats>>
  /** JWT authentication and authorization of inbound requests. */
  readonly security: SecurityStats
}

/**
 * Records the requests of one place. Each call updates every level the place belongs to
 * (for an endpoint reached through a subset: endpoint, subset and cluster). Call `start`
 * once per request, then exactly one of `end` or `fail`.
 */
export interface Recorder {
  /** A request started. */
  start(): void
  /**
   * A response arrived with `status` and finished after `ms` milliseconds, carrying
   * `bytesReceived` and `bytesSent` body bytes (see {@link TrafficStats} for which is which).
   */
  end(status: number, ms: number, bytesReceived: number, bytesSent: number): void
  /** The request ended after `ms` milliseconds without an upstream response, or with a mesh-made one. */
  fail(kind: ErrorKind, ms: number): void
}

/** Options of {@link MetricsRegistry}. */
export interface MetricsOptions {
  /** This workload's name, added as the `service` label to every exposed sample. */
  readonly service?: string | undefined
  /**
   * Most endpoints kept apart per cluster (default 1024). Requests to further endpoints
   * count under {@link OTHER_ENDPOINT}, so a cluster of unbounded hosts (the pass-through
   * cluster) cannot grow the registry without end.
   */
  readonly maxEndpointsPerCluster?: number | undefined
  /** This workload as Istio's labels describe it (the `service` option and the mesh's labels); default: `service` alone. */
  readonly workload?: IstioWorkload | undefined
}

/** What the registry asks of the config for Istio's destination labels: an endpoint's labels, or a subset's selector. */
export type EndpointLabelsSource = (cluster: string, subset: string | undefined, endpoint: string | undefined) => Readonly<Record<string, string>> | undefined

/** The inbound route name of requests that no named route took. */
export const DEFAULT_ROUTE = '(default)'
/** The endpoint entry that counts the endpoints beyond a cluster's `maxEndpointsPerCluster`. */
export const OTHER_ENDPOINT = '(other)'
/**
 * Clusters that exist without being configured (Istio's names for traffic to hosts outside
 * the registry): `retain` keeps them.
 */
export const BUILTIN_CLUSTERS: ReadonlySet<string> = new Set(['PassthroughCluster', 'BlackHoleCluster'])

const DEFAULT_MAX_ENDPOINTS = 1024
const RESPONSE_CLASSES: readonly ResponseClass[] = ['1xx', '2xx', '3xx', '4xx', '5xx']

/** Index of a status's class in `Place.responses`; anything outside 100–599 counts as 5xx. */
function classIndex(status: number): number {
  const c = (status / 100) | 0
  return c >= 1 && c <= 5 ? c - 1 : 4
}

/** Index of a kind in `Place.errors` (a switch on interned strings: no lookup, no hashing). */
function kindIndex(kind: ErrorKind): number {
  switch (kind) {
    case 'connect_failure': return 0
    case 'reset': return 1
    case 'timeout': return 2
    case 'no_healthy_upstream': return 3
    case 'no_route': return 4
    case 'aborted': return 5
    case 'overflow': return 6
    case 'rate_limited': return 7
    case 'registry_only': return 8
    case 'unauthenticated': return 10
    case 'denied': return 11
    case 'protocol_error': return 12
    default: return 9
  }
}

/**
 * The answer the caller got when a request ended with an error of each kind (by
 * {@link kindIndex}): the status the mesh replied with (0: no response, the request failed
 * or the caller left) and Envoy's response flag (index in `RESPONSE_FLAGS`). Like Envoy, the
 * mesh's own replies count in the response classes too.
 */
const REPLY_STATUS = new Int16Array([503, 503, 504, 503, 404, 0, 503, 429, 0, 0, 401, 403, 503])
const REPLY_FLAG = new Uint8Array([4, 6, 5, 3, 7, 9, 2, 1, 7, 0, 0, 8, 11])

/** The counters of one place. Plain fields: the hot path only adds to them. */
class Place {
  requests = 0
  inFlight = 0
  bytesReceived = 0
  bytesSent = 0
  readonly responses = new Float64Array(5)
  readonly errors = new Float64Array(ERROR_KINDS.length)
  readonly latency = new LatencyHistogram()

  /** @param labels this place's Prometheus labels, escaped once, without braces */
  constructor(readonly labels: string) {}
}

/** A recorder over the places of one request's path, most specific first, and its Istio series. */
class PlaceRecorder implements Recorder {
  readonly #places: readonly Place[]
  readonly #istio: IstioSeries | null
  /** Inbound: bytes received are the request's; outbound: the response's. */
  readonly #inbound: boolean

  constructor(places: readonly Place[], istio: IstioSeries | null = null, inbound = false) {
    this.#places = places
    this.#istio = istio
    this.#inbound = inbound
  }

  start(): void {
    for (let i = 0, places = this.#places; i < places.length; i++) {
      const p = places[i]!
      p.requests++
      p.inFlight++
    }
  }

  end(status: number, ms: number, bytesReceived: number, bytesSent: number): void {
    const cls = classIndex(status)
    const rx = bytesReceived > 0 ? bytesReceived : 0
    const tx = bytesSent > 0 ? bytesSent : 0
    const v = clampLatency(ms)
    const slot = v === v ? latencySlot(v) : -1
    for (let i = 0, places = this.#places; i < places.length; i++) {
      const p = places[i]!
      p.inFlight--
      p.responses[cls]!++
      p.bytesReceived += rx
      p.bytesSent += tx
      if (slot >= 0) p.latency.recordSlot(slot, v)
    }
    const istio = this.#istio
    if (istio !== null) istio.record(status, 0, slot >= 0 ? slot >>> SLOT_BITS : -1, v, this.#inbound ? rx : tx, this.#inbound ? tx : rx)
  }

  fail(kind: ErrorKind, ms: number): void {
    const k = kindIndex(kind)
    const v = clampLatency(ms)
    const slot = v === v ? latencySlot(v) : -1
    const status = REPLY_STATUS[k]!
    const cls = status === 0 ? -1 : classIndex(status)
    for (let i = 0, places = this.#places; i < places.length; i++) {
      const p = places[i]!
      p.inFlight--
      p.errors[k]!++
      if (cls >= 0) p.responses[cls]!++
      if (slot >= 0) p.latency.recordSlot(slot, v)
    }
    const istio = this.#istio
    if (istio !== null) istio.record(status, REPLY_FLAG[k]!, slot >= 0 ? slot >>> SLOT_BITS : -1, v, 0, 0)
  }
}

/** The bits of a latency slot below its Envoy bound index (see `latencySlot`). */
const SLOT_BITS = 9

/** One inbound route: its place, its recorder for unknown callers, and those per caller. */
interface InboundRouteEntry {
  readonly place: Place
  readonly recorder: Recorder
  /** Per caller: its principal, and the peer header it sent. */
  readonly bySource: Map<string, Recorder>
  /** The caller of the latest request with one, and its recorder. */
  last?: { readonly principal: string | undefined; readonly peer: string | undefined; readonly recorder: Recorder }
}

/** One cluster: its totals, subsets, endpoints, and the recorders made over them. */
class ClusterPlace {
  readonly total: Place
  readonly subsets = new Map<string, Place>()
  readonly endpoints = new Map<string, Place>()
  /** Recorders per endpoint, for requests routed without a subset. */
  readonly direct = new Map<string, Recorder>()
  /** Recorders per subset, then per endpoint. */
  readonly viaSubset = new Map<string, Map<string, Recorder>>()
  /** Recorders for failures before an endpoint was chosen: without subset, and per subset. */
  clusterOnly: Recorder | undefined
  readonly subsetOnly = new Map<string, Recorder>()
  /** Istio series (reporter="source") of this cluster, by their labels. */
  readonly istio = new Map<string, IstioSeries>()

  constructor(readonly labels: string, readonly name: string) {
    this.total = new Place(labels)
  }
}

/**
 * The mesh's metrics: hands out {@link Recorder}s for the request path and reads them as a
 * {@link MetricsSnapshot} or as Prometheus text.
 */
export class MetricsRegistry {
  readonly #serviceLabel: string
  #limitSource: (() => Record<string, LimitStats>) | undefined

  /** Where `snapshot().limits` and the limit series come from (the mesh's limit registry). */
  setLimitSource(source: () => Record<string, LimitStats>): void {
    this.#limitSource = source
  }

  #resilienceSource: (() => Record<string, ClusterResilienceStats>) | undefined

  /** Where `snapshot().resilience` and the retry/overflow/breaker series come from (the clusters in force). */
  setResilienceSource(source: () => Record<string, ClusterResilienceStats>): void {
    this.#resilienceSource = source
  }

  #healthSource: (() => Record<string, ClusterHealthStats>) | undefined

  /** Where `snapshot().health` and the outlier / health-check / panic series come from (the clusters in force). */
  setHealthSource(source: () => Record<string, ClusterHealthStats>): void {
    this.#healthSource = source
  }

  #dnsSource: (() => Record<string, ClusterDnsStats>) | undefined

  /** Where `snapshot().dns` and the cluster update series come from (the DNS clusters in force). */
  setDnsSource(source: () => Record<string, ClusterDnsStats>): void {
    this.#dnsSource = source
  }
  readonly #maxEndpoints: number
  /** Counters of inbound JWT authentication and authorization (the inbound pipeline records them). */
  readonly security = new SecurityCounters()
  readonly #routes = new Map<string, InboundRouteEntry>()
  /** The {@link DEFAULT_ROUTE} entry (nearly every request of a listener without routes), kept apart to skip the lookup; `retain` never drops it. */
  #defaultRoute: InboundRouteEntry | undefined
  readonly #sources = new Map<string, Place>()
  readonly #clusters = new Map<string, ClusterPlace>()
  // [envoy-translators] virtual clusters: one place per `<virtual host>/<name>`, bounded by the config.
  readonly #virtualClusters = new Map<string, { place: Place; recorder: Recorder }>()

  /** The recorder of requests counted under virtual cluster `name` of `virtualHost` (Envoy `vhost.<vh>.vcluster.<name>`). */
  virtualCluster(virtualHost: string, name: string): Recorder {
    const key = `${virtualHost}/${name}`
    let entry = this.#virtualClusters.get(key)
    if (entry === undefined) {
      const place = new Place(`${this.#serviceLabel}virtual_host="${escapeLabelValue(virtualHost)}",virtual_cluster="${escapeLabelValue(name)}"`)
      entry = { place, recorder: new PlaceRecorder([place]) }
      this.#virtualClusters.set(key, entry)
    }
    return entry.recorder
  }

  readonly #workload: IstioWorkload
  #endpointLabels: EndpointLabelsSource | undefined
  /** Istio series (reporter="destination") of inbound requests, by their labels; bounded like the callers. */
  readonly #inboundIstio = new Map<string, IstioSeries>()
  /** Inbound recorders per (route, caller principal, peer header), past the plain per-route one. */

  /** Where Istio's destination labels of outbound requests come from (the clusters in force). */
  setEndpointLabelsSource(source: EndpointLabelsSource): void {
    this.#endpointLabels = source
  }

  constructor(options: MetricsOptions = {}) {
    this.#workload = options.workload ?? workloadOf(options.service, {})
    this.#serviceLabel = options.service === undefined ? '' : `service="${escapeLabelValue(options.service)}",`
    const max = options.maxEndpointsPerCluster
    this.#maxEndpoints = max === undefined ? DEFAULT_MAX_ENDPOINTS : Math.max(0, Math.floor(max))
  }

  /**
   * The recorder for inbound requests taken by `route` (`undefined` or `''`: no named
   * route, counted as {@link DEFAULT_ROUTE}). The same object for the same name: cache it.
   */
  inbound(route: string | undefined, sourcePrincipal?: string, peer?: string): Recorder {
    const unnamed = route === undefined || route === ''
    let entry = unnamed ? this.#defaultRoute : this.#routes.get(route)
    if (entry === undefined) {
      const name = unnamed ? DEFAULT_ROUTE : route
      entry = this.#routes.get(name)
      if (entry === undefined) {
        const place = new Place(`${this.#serviceLabel}route="${escapeLabelValue(name)}"`)
        entry = { place, recorder: new PlaceRecorder([place], this.#inboundSeries(undefined, undefined), true), bySource: new Map() }
        this.#routes.set(name, entry)
      }
      if (unnamed) this.#defaultRoute = entry
    }
    if (sourcePrincipal === undefined && peer === undefined) return entry.recorder
    // The caller of the route's previous request, nearly always: compared, not keyed (a key
    // is a new string per request, hashed for the lookup).
    const last = entry.last
    if (last !== undefined && last.peer === peer && last.principal === sourcePrincipal) return last.recorder
    // Keyed by caller and by what it says of itself (the peer header); the common case, an
    // mTLS caller without the header, keys by its principal alone.
    const key = peer === undefined ? sourcePrincipal as string : `${sourcePrincipal ?? ''}\n${peer}`
    let r = entry.bySource.get(key)
    if (r === undefined) {
      const places = sourcePrincipal === undefined ? [entry.place] : [entry.place, this.#source(sourcePrincipal)]
      r = new PlaceRecorder(places, this.#inboundSeries(sourcePrincipal, peer), true)
      // Bounded like the places: a recorder per (route, caller) the registry tracks.
      if (entry.bySource.size < this.#maxEndpoints) entry.bySource.set(key, r)
    }
    entry.last = { principal: sourcePrincipal, peer, recorder: r }
    return r
  }

  /** The Istio series of inbound requests from this caller; past the bound, the unknown caller's. */
  #inboundSeries(principal: string | undefined, peer: string | undefined): IstioSeries {
    const caller = peer === undefined ? undefined : parsePeerHeader(peer, principal)
    const source = caller ?? (principal === undefined ? UNKNOWN_WORKLOAD : { ...workloadOf(undefined, {}, principal), workload: 'unknown', app: 'unknown' })
    const w = this.#workload
    const service = { service: w.namespace === 'unknown' ? w.canonicalService : `${w.canonicalService}.${w.namespace}.svc.cluster.local`, name: w.canonicalService, namespace: w.namespace }
    let labels = istioLabels('destination', source, w, service, principal === undefined ? 'none' : 'mutual_tls')
    if (!this.#inboundIstio.has(labels) && this.#inboundIstio.size >= this.#maxEndpoints) {
      labels = istioLabels('destination', UNKNOWN_WORKLOAD, w, service, principal === undefined ? 'none' : 'mutual_tls')
    }
    let series = this.#inboundIstio.get(labels)
    if (series === undefined) {
      series = new IstioSeries(labels)
      this.#inboundIstio.set(labels, series)
    }
    return series
  }

  /** The Istio series of outbound requests to `cluster` (through `subset`, to `endpoint`): destination labels from the endpoint's labels. */
  #outboundSeries(c: ClusterPlace, subset: string | undefined, endpoint: string | undefined): IstioSeries {
    const labels = this.#endpointLabels?.(c.name, subset, endpoint) ?? {}
    const service = serviceOfCluster(c.name)
    const destination = workloadOf(labels['app'] === undefined ? service.name : undefined, labels)
    const key = istioLabels('source', this.#workload, destination, service, 'unknown')
    let series = c.istio.get(key)
    if (series === undefined) {
      series = new IstioSeries(key)
      c.istio.set(key, series)
    }
    return series
  }

  /** The caller's place, or the shared {@link OTHER_ENDPOINT} one past the limit. */
  #source(principal: string): Place {
    let place = this.#sources.get(principal)
    if (place !== undefined) return place
    const own = this.#sources.size - (this.#sources.has(OTHER_ENDPOINT) ? 1 : 0)
    const key = own < this.#maxEndpoints ? principal : OTHER_ENDPOINT
    place = this.#sources.get(key)
    if (place === undefined) {
      place = new Place(`${this.#serviceLabel}source_principal="${escapeLabelValue(key)}"`)
      this.#sources.set(key, place)
    }
    return place
  }

  /**
   * The recorder for outbound requests sent to `endpoint` (`host:port`) of `cluster`,
   * routed through `subset` (or none): it updates the endpoint, the subset and the cluster.
   * The same object for the same triple: cache it.
   */
  upstream(cluster: string, subset: string | undefined, endpoint: string): Recorder {
    const c = this.#cluster(cluster)
    let byEndpoint = c.direct
    if (subset !== undefined) {
      const found = c.viaSubset.get(subset)
      if (found !== undefined) byEndpoint = found
      else c.viaSubset.set(subset, (byEndpoint = new Map<string, Recorder>()))
    }
    let recorder = byEndpoint.get(endpoint)
    if (recorder === undefined) {
      const [key, place] = this.#endpoint(c, endpoint)
      recorder = byEndpoint.get(key)
      if (recorder === undefined) {
        recorder = new PlaceRecorder(subset === undefined ? [place, c.total] : [place, this.#subset(c, subset), c.total], this.#outboundSeries(c, subset, key === OTHER_ENDPOINT ? undefined : key))
        byEndpoint.set(key, recorder)
      }
    }
    return recorder
  }

  /**
   * A recorder for requests that failed before an endpoint was chosen (no healthy upstream,
   * circuit-breaker overflow): it updates the cluster and, when given, the subset only.
   * The same object for the same pair.
   */
  cluster(cluster: string, subset: string | undefined): Recorder {
    const c = this.#cluster(cluster)
    if (subset === undefined) return (c.clusterOnly ??= new PlaceRecorder([c.total], this.#outboundSeries(c, undefined, undefined)))
    let recorder = c.subsetOnly.get(subset)
    if (recorder === undefined) {
      recorder = new PlaceRecorder([this.#subset(c, subset), c.total], this.#outboundSeries(c, subset, undefined))
      c.subsetOnly.set(subset, recorder)
    }
    return recorder
  }

  /**
   * Forgets the clusters and inbound routes not named here (removed from the config), so a
   * long-lived process does not grow forever. {@link BUILTIN_CLUSTERS}, {@link DEFAULT_ROUTE}
   * and places with requests still in flight are kept (a later call drops them). Recorders
   * handed out for a forgotten place keep working but count where nobody reads.
   */
  retain(clusters: ReadonlySet<string>, routes: ReadonlySet<string>): void {
    for (const [name, c] of this.#clusters) {
      if (!clusters.has(name) && !BUILTIN_CLUSTERS.has(name) && c.total.inFlight <= 0) this.#clusters.delete(name)
    }
    for (const [name, entry] of this.#routes) {
      if (!routes.has(name) && name !== DEFAULT_ROUTE && entry.place.inFlight <= 0) this.#routes.delete(name)
    }
  }

  /**
   * Forgets the subsets and endpoints of `cluster` not named here (an endpoint update:
   * pods come and go), keeping those with requests in flight. The cluster's own counters
   * keep the forgotten ones' history, so endpoints then add up to less than their cluster.
   */
  retainMembers(cluster: string, subsets: ReadonlySet<string>, endpoints: ReadonlySet<string>): void {
    const c = this.#clusters.get(cluster)
    if (c === undefined) return
    for (const [name, place] of c.subsets) {
      if (subsets.has(name) || place.inFlight > 0) continue
      c.subsets.delete(name)
      c.viaSubset.delete(name)
      c.subsetOnly.delete(name)
    }
    for (const [name, place] of c.endpoints) {
      if (endpoints.has(name) || name === OTHER_ENDPOINT || place.inFlight > 0) continue
      c.endpoints.delete(name)
      c.direct.delete(name)
      for (const byEndpoint of c.viaSubset.values()) byEndpoint.delete(name)
    }
  }

  /** Every counter, read now. */
  snapshot(): MetricsSnapshot {
    const routes: Record<string, TrafficStats> = {}
    for (const name of sortedKeys(this.#routes)) routes[name] = trafficStats(this.#routes.get(name)!.place)
    const sources: Record<string, TrafficStats> = {}
    for (const name of sortedKeys(this.#sources)) sources[name] = trafficStats(this.#sources.get(name)!)
    const clusters: Record<string, ClusterStats> = {}
    for (const name of sortedKeys(this.#clusters)) {
      const c = this.#clusters.get(name)!
      const subsets: Record<string, TrafficStats> = {}
      for (const s of sortedKeys(c.subsets)) subsets[s] = trafficStats(c.subsets.get(s)!)
      const endpoints: Record<string, TrafficStats> = {}
      for (const e of sortedKeys(c.endpoints)) endpoints[e] = trafficStats(c.endpoints.get(e)!)
      clusters[name] = { ...trafficStats(c.total), subsets, endpoints }
    }
    const virtualClusters: Record<string, TrafficStats> = {}
    for (const key of sortedKeys(this.#virtualClusters)) virtualClusters[key] = trafficStats(this.#virtualClusters.get(key)!.place)
    const outbound = this.#virtualClusters.size === 0 ? { clusters } : { clusters, virtualClusters }
    const snap: MetricsSnapshot = { takenAt: Date.now(), inbound: { routes, sources }, outbound, limits: this.#limitSource?.() ?? {}, resilience: this.#resilienceSource?.() ?? {}, security: this.security.snapshot() }
    const health = this.#healthSource?.()
    const dns = this.#dnsSource?.()
    return {
      ...snap,
      ...(health === undefined || Object.keys(health).length === 0 ? {} : { health }),
      ...(dns === undefined || Object.keys(dns).length === 0 ? {} : { dns }),
    }
  }

  /**
   * The metrics in the Prometheus text exposition format 0.0.4 (serve it with
   * `Content-Type: text/plain; version=0.0.4; charset=utf-8`).
   */
  prometheus(): string {
    const clusters = sortedKeys(this.#clusters).map((name) => this.#clusters.get(name)!)
    const subsets: Place[] = []
    const endpoints: Place[] = []
    for (const c of clusters) {
      for (const s of sortedKeys(c.subsets)) subsets.push(c.subsets.get(s)!)
      for (const e of sortedKeys(c.endpoints)) endpoints.push(c.endpoints.get(e)!)
    }
    const routes = sortedKeys(this.#routes).map((name) => this.#routes.get(name)!.place)
    const out: string[] = []
    writeLevel(out, CLUSTER_LEVEL, clusters.map((c) => c.total))
    writeLevel(out, SUBSET_LEVEL, subsets)
    writeLevel(out, ENDPOINT_LEVEL, endpoints)
    writeLevel(out, INBOUND_LEVEL, routes)
    writeLevel(out, SOURCE_LEVEL, sortedKeys(this.#sources).map((name) => this.#sources.get(name)!))
    writeLevel(out, VCLUSTER_LEVEL, sortedKeys(this.#virtualClusters).map((key) => this.#virtualClusters.get(key)!.place))
    const limits = this.#limitSource?.()
    if (limits !== undefined) writeLimits(out, this.#serviceLabel, limits)
    const resilience = this.#resilienceSource?.()
    if (resilience !== undefined) writeResilience(out, this.#serviceLabel, resilience)
    const health = this.#healthSource?.()
    if (health !== undefined) writeHealth(out, this.#serviceLabel, health)
    const dns = this.#dnsSource?.()
    if (dns !== undefined) writeDns(out, this.#serviceLabel, dns)
    if (this.security.used) writeSecurity(out, this.#serviceLabel, this.security.snapshot())
    out.push(...this.security.tls.prometheus(this.#serviceLabel))
    writeIstio(out, [...this.#inboundIstio.values(), ...clusters.flatMap((c) => [...c.istio.values()])])
    return out.length === 0 ? '' : out.join('\n') + '\n'
  }

  #cluster(name: string): ClusterPlace {
    let c = this.#clusters.get(name)
    if (c === undefined) {
      c = new ClusterPlace(`${this.#serviceLabel}cluster_name="${escapeLabelValue(name)}"`, name)
      this.#clusters.set(name, c)
    }
    return c
  }

  #subset(c: ClusterPlace, subset: string): Place {
    let place = c.subsets.get(subset)
    if (place === undefined) {
      place = new Place(`${c.labels},subset="${escapeLabelValue(subset)}"`)
      c.subsets.set(subset, place)
    }
    return place
  }

  /** The endpoint's place, or the shared {@link OTHER_ENDPOINT} one past the limit; with the key it is kept under. */
  #endpoint(c: ClusterPlace, endpoint: string): [string, Place] {
    let place = c.endpoints.get(endpoint)
    if (place !== undefined) return [endpoint, place]
    const ownEntries = c.endpoints.size - (c.endpoints.has(OTHER_ENDPOINT) ? 1 : 0)
    const key = ownEntries < this.#maxEndpoints ? endpoint : OTHER_ENDPOINT
    place = c.endpoints.get(key)
    if (place === undefined) {
      place = new Place(`${c.labels},endpoint="${escapeLabelValue(key)}"`)
      c.endpoints.set(key, place)
    }
    return [key, place]
  }
}

// ---------------------------------------------------------------- snapshot

function trafficStats(p: Place): TrafficStats {
  const responses = {} as Record<ResponseClass, number>
  RESPONSE_CLASSES.forEach((cls, i) => (responses[cls] = p.responses[i] ?? 0))
  const errors = {} as Record<ErrorKind, number>
  ERROR_KINDS.forEach((kind, i) => (errors[kind] = p.errors[i] ?? 0))
  const h = p.latency
  return {
    requests: p.requests,
    inFlight: p.inFlight,
    responses,
    errors,
    bytesReceived: p.bytesReceived,
    bytesSent: p.bytesSent,
    latency: { count: h.count, sumMs: h.sum, p50: h.percentile(50), p90: h.percentile(90), p99: h.percentile(99) },
  }
}

function sortedKeys(map: ReadonlyMap<string, unknown>): string[] {
  return [...map.keys()].sort()
}

// ---------------------------------------------------------------- Prometheus exposition

/** An error kind that Envoy counts under a stat of its own, exposed under that name too. */
interface EnvoyAlias {
  readonly kind: ErrorKind
  readonly stat: string
  readonly help: string
}

/** How one level of places is exposed. */
interface Level {
  /** Family name prefix, ending in `_`. */
  readonly prefix: string
  /** What a request of this level is, for HELP texts. */
  readonly noun: string
  /** Which body bytes are "received" and "sent" at this level. */
  readonly rx: string
  readonly tx: string
  /** Whether the latency histogram is exposed (not per endpoint, like Envoy: too many series). */
  readonly histogram: boolean
  readonly aliases: readonly EnvoyAlias[]
}

const CONNECT_FAIL: EnvoyAlias = { kind: 'connect_failure', stat: 'cx_connect_fail_total', help: 'that failed to connect' }
const TIMEOUT: EnvoyAlias = { kind: 'timeout', stat: 'rq_timeout_total', help: 'that timed out' }
const RX_RESET: EnvoyAlias = { kind: 'reset', stat: 'rq_rx_reset_total', help: 'reset by the other side' }
const OVERFLOW: EnvoyAlias = { kind: 'overflow', stat: 'rq_pending_overflow_total', help: 'shed by the circuit breaker' }
const PROTOCOL_ERROR: EnvoyAlias = { kind: 'protocol_error', stat: 'cx_protocol_error_total', help: 'whose response broke the HTTP protocol' }
const NONE_HEALTHY: EnvoyAlias = { kind: 'no_healthy_upstream', stat: 'cx_none_healthy_total', help: 'with no healthy endpoint to send them to' }

const CLUSTER_LEVEL: Level = {
  prefix: 'sidecarless_cluster_upstream_',
  noun: 'upstream requests of the cluster',
  rx: 'response',
  tx: 'request',
  histogram: true,
  aliases: [CONNECT_FAIL, TIMEOUT, RX_RESET, PROTOCOL_ERROR, OVERFLOW, NONE_HEALTHY],
}
const VCLUSTER_LEVEL: Level = { ...CLUSTER_LEVEL, prefix: 'sidecarless_vhost_vcluster_upstream_', noun: 'requests counted under the virtual cluster', histogram: false }
const SUBSET_LEVEL: Level = { ...CLUSTER_LEVEL, prefix: 'sidecarless_cluster_subset_', noun: 'upstream requests of the cluster routed through the subset' }
const ENDPOINT_LEVEL: Level = {
  ...CLUSTER_LEVEL,
  prefix: 'sidecarless_cluster_endpoint_',
  noun: 'upstream requests sent to the endpoint',
  histogram: false,
  aliases: [CONNECT_FAIL, TIMEOUT, RX_RESET],
}
const INBOUND_LEVEL: Level = {
  prefix: 'sidecarless_http_downstream_',
  noun: 'downstream (inbound) requests taken by the route',
  rx: 'request',
  tx: 'response',
  histogram: true,
  aliases: [TIMEOUT, RX_RESET],
}
const SOURCE_LEVEL: Level = {
  ...INBOUND_LEVEL,
  prefix: 'sidecarless_http_downstream_source_',
  noun: 'downstream (inbound) requests from the mTLS caller (source_principal)',
  histogram: false,
}

/** JWT authentication and authorization series (Envoy's `jwt_authn.*` and `rbac.*` stats). */
function writeSecurity(out: string[], serviceLabel: string, s: SecurityStats): void {
  const svc = serviceLabel === '' ? '' : serviceLabel.slice(0, -1)
  const one = (name: string, help: string, value: number): void => {
    out.push(`# HELP ${name} ${help}`, `# TYPE ${name} counter`, `${name}${svc === '' ? '' : `{${svc}}`} ${formatValue(value)}`)
  }
  const labelled = (name: string, help: string, label: string, values: Readonly<Record<string, number>>): void => {
    const keys = Object.keys(values).filter((k) => values[k] !== 0).sort()
    if (keys.length === 0) return
    out.push(`# HELP ${name} ${help}`, `# TYPE ${name} counter`)
    for (const k of keys) out.push(`${name}{${serviceLabel}${label}="${escapeLabelValue(k)}"} ${formatValue(values[k] as number)}`)
  }
  one('sidecarless_jwt_authn_allowed_total', 'Inbound requests whose JWT was verified.', s.jwt.allowed)
  labelled('sidecarless_jwt_authn_denied_total', 'Inbound requests refused with 401 by JWT authentication, by reason.', 'reason', s.jwt.denied)
  one('sidecarless_jwt_authn_jwt_cache_hit_total', 'Verified JWTs found in the token cache.', s.jwt.cacheHits)
  one('sidecarless_jwt_authn_jwt_cache_miss_total', 'JWTs verified with a signature check (not in the token cache).', s.jwt.cacheMisses)
  one('sidecarless_rbac_allowed_total', 'Inbound requests authorization allowed.', s.rbac.allowed)
  labelled('sidecarless_rbac_denied_total', 'Inbound requests refused with 403 by authorization, by policy.', 'policy', s.rbac.denied)
  labelled('sidecarless_rbac_audited_total', 'Inbound requests an AUDIT authorization policy matched, by policy.', 'policy', s.rbac.audited)
}

/** Rate and concurrency limit series, one `limiter` label per place. */
function writeLimits(out: string[], serviceLabel: string, limits: Record<string, LimitStats>): void {
  const names = Object.keys(limits)
  if (names.length === 0) return
  const label = (n: string): string => `${serviceLabel}limiter="${escapeLabelValue(n)}"`
  const series = (name: string, type: 'counter' | 'gauge', help: string, rows: [string, number][]): void => {
    if (rows.length === 0) return
    out.push(`# HELP ${name} ${escapeHelp(help)}`, `# TYPE ${name} ${type}`)
    for (const [labels, v] of rows) out.push(`${name}{${labels}} ${formatValue(v)}`)
  }
  const rows = (pick: (s: LimitStats) => number | undefined, extra = ''): [string, number][] =>
    names.flatMap((n) => {
      const v = pick(limits[n] as LimitStats)
      return v === undefined ? [] : [[`${label(n)}${extra}`, v] as [string, number]]
    })
  series('sidecarless_ratelimit_allowed_total', 'counter', 'Requests the local token bucket admitted.', rows((s) => s.allowed))
  series('sidecarless_ratelimit_limited_total', 'counter', 'Requests the local token bucket refused.', rows((s) => s.limited))
  series('sidecarless_ratelimit_global_allowed_total', 'counter', 'Requests the shared (Redis) quota admitted.', rows((s) => s.global?.allowed))
  series('sidecarless_ratelimit_global_limited_total', 'counter', 'Requests the shared (Redis) quota refused.', rows((s) => s.global?.limited))
  series('sidecarless_ratelimit_global_fallback_decisions_total', 'counter', 'Decisions taken locally while Redis could not answer.', rows((s) => s.global?.fallbackDecisions))
  series('sidecarless_ratelimit_global_fallback', 'gauge', '1 while the shared quota is in fallback (Redis down or slow).', rows((s) => (s.global === undefined ? undefined : s.global.state === 'fallback' ? 1 : 0)))
  series('sidecarless_concurrency_active', 'gauge', 'Requests holding a concurrency slot.', rows((s) => s.concurrency?.active))
  series('sidecarless_concurrency_queued', 'gauge', 'Requests waiting for a concurrency slot.', rows((s) => s.concurrency?.queued))
  series('sidecarless_concurrency_rejected_total', 'counter', 'Requests a concurrency limit refused, by reason.', [
    ...rows((s) => s.concurrency?.rejectedFull, ',reason="full"'),
    ...rows((s) => s.concurrency?.rejectedTimeout, ',reason="timeout"'),
  ])
}

function writeResilience(out: string[], serviceLabel: string, clusters: Record<string, ClusterResilienceStats>): void {
  const names = Object.keys(clusters).sort()
  if (names.length === 0) return
  const label = (n: string): string => `${serviceLabel}cluster_name="${escapeLabelValue(n)}"`
  const series = (name: string, type: 'counter' | 'gauge', help: string, rows: [string, number][]): void => {
    if (rows.length === 0) return
    out.push(`# HELP ${name} ${escapeHelp(help)}`, `# TYPE ${name} ${type}`)
    for (const [labels, v] of rows) out.push(`${name}{${labels}} ${formatValue(v)}`)
  }
  const rows = (pick: (s: ClusterResilienceStats) => number): [string, number][] => names.map((n) => [label(n), pick(clusters[n] as ClusterResilienceStats)])
  const P = 'sidecarless_cluster_upstream_'
  series(`${P}rq_retry_total`, 'counter', 'Retries sent (Envoy upstream_rq_retry).', rows((s) => s.retries))
  series(`${P}rq_retry_success_total`, 'counter', 'Requests whose retry got a response that was not retried (Envoy upstream_rq_retry_success).', rows((s) => s.retrySuccesses))
  series(`${P}rq_retry_overflow_total`, 'counter', 'Retries not sent because the retry budget or maxRetries was used up (Envoy upstream_rq_retry_overflow).', rows((s) => s.retryOverflows))
  series(`${P}rq_retry_limit_exceeded_total`, 'counter', 'Requests that used up numRetries with a retriable outcome (Envoy upstream_rq_retry_limit_exceeded).', rows((s) => s.retryLimitExceeded))
  series(`${P}rq_per_try_timeout_total`, 'counter', 'Tries that ran out of their per-try timeout (Envoy upstream_rq_per_try_timeout).', rows((s) => s.perTryTimeouts))
  series(`${P}rq_retry_active`, 'gauge', 'Retries in flight.', rows((s) => s.activeRetries))
  series(`${P}rq_pending_active`, 'gauge', 'Tries waiting for a connection (Envoy upstream_rq_pending_active).', rows((s) => s.pending))
  series(`${P}rq_overflow_total`, 'counter', 'Requests shed with 503 UO by a circuit-breaker threshold or an open breaker, by reason.', names.flatMap((n) => {
    const o = (clusters[n] as ClusterResilienceStats).overflows
    return (Object.keys(o) as (keyof typeof o)[]).map((reason) => [`${label(n)},reason="${reason}"`, o[reason]] as [string, number])
  }))
  const breakerRows = (pick: (b: BreakerStats) => number, extra?: (b: BreakerStats) => [string, number][]): [string, number][] => names.flatMap((n) => {
    const b = (clusters[n] as ClusterResilienceStats).breakers
    if (b === undefined) return []
    return Object.keys(b).flatMap((subset) => {
      const base = `${label(n)},subset="${escapeLabelValue(subset)}"`
      const stats = b[subset] as BreakerStats
      return extra === undefined ? [[base, pick(stats)] as [string, number]] : extra(stats).map(([l, v]) => [`${base}${l}`, v] as [string, number])
    })
  })
  series('sidecarless_cluster_breaker_state', 'gauge', 'Error-rate breaker state: 1 for the state it is in (closed, open, halfOpen), 0 for the others.', breakerRows(() => 0, (b) => (['closed', 'open', 'halfOpen'] as const).map((st) => [`,state="${st}"`, b.state === st ? 1 : 0])))
  series('sidecarless_cluster_breaker_opened_total', 'counter', 'Times the error-rate breaker opened.', breakerRows((b) => b.opened))
  series('sidecarless_cluster_breaker_rejected_total', 'counter', 'Requests the error-rate breaker rejected while open or half-open.', breakerRows((b) => b.rejected))
}

/** Writes gauge and counter families with one row per cluster (and optional extra labels). */
function clusterSeries(out: string[], serviceLabel: string): {
  label: (cluster: string) => string
  series: (name: string, type: 'counter' | 'gauge', help: string, rows: [string, number][]) => void
} {
  return {
    label: (n) => `${serviceLabel}cluster_name="${escapeLabelValue(n)}"`,
    series: (name, type, help, rows) => {
      out.push(`# HELP ${name} ${escapeHelp(help)}`, `# TYPE ${name} ${type}`)
      for (const [labels, v] of rows) out.push(`${name}{${labels}} ${formatValue(v)}`)
    },
  }
}

/**
 * Outlier detection, health check and panic series per cluster, named after Envoy's
 * `cluster.<name>.outlier_detection.*`, `health_check.*`, `membership_*` stats.
 */
function writeHealth(out: string[], serviceLabel: string, health: Record<string, ClusterHealthStats>): void {
  const names = Object.keys(health).sort()
  if (names.length === 0) return
  const { label, series } = clusterSeries(out, serviceLabel)
  const rows = (pick: (s: ClusterHealthStats) => number): [string, number][] => names.map((n) => [label(n), pick(health[n] as ClusterHealthStats)])
  series('sidecarless_cluster_outlier_detection_ejections_enforced_total', 'counter', 'Endpoints ejected by outlier detection, by reason.',
    names.flatMap((n) => EJECTION_REASONS.map((r) => [`${label(n)},reason="${r}"`, (health[n] as ClusterHealthStats).ejections[r]] as [string, number])))
  series('sidecarless_cluster_outlier_detection_ejections_active', 'gauge', 'Endpoints ejected now.', rows((s) => s.ejectionsActive))
  series('sidecarless_cluster_outlier_detection_ejections_overflow_total', 'counter', 'Ejections refused because maxEjectionPercent was reached.', rows((s) => s.ejectionsOverflow))
  series('sidecarless_cluster_health_check_success_total', 'counter', 'Active health checks that passed.', rows((s) => s.healthChecks.success))
  series('sidecarless_cluster_health_check_failure_total', 'counter', 'Active health checks that failed.', rows((s) => s.healthChecks.failure))
  series('sidecarless_cluster_membership_total', 'gauge', 'Endpoints of the cluster.', rows((s) => s.endpoints))
  series('sidecarless_cluster_membership_healthy', 'gauge', 'Endpoints neither ejected nor failing health checks.', rows((s) => s.healthy))
  series('sidecarless_cluster_lb_panic', 'gauge', '1 while a balancer of the cluster (subset="" for the whole cluster) is in panic mode and uses every endpoint.',
    names.flatMap((n) => {
      const s = health[n] as ClusterHealthStats
      return [[`${label(n)},subset=""`, s.panic ? 1 : 0] as [string, number], ...s.panicSubsets.map((sub) => [`${label(n)},subset="${escapeLabelValue(sub)}"`, 1] as [string, number])]
    }))
}

/**
 * Service discovery of DNS clusters, named after Envoy's `cluster.<name>.update_attempt`,
 * `update_success`, `update_failure` and `update_no_rebuild`, and the addresses each endpoint
 * name resolves to now (Envoy's `membership_total` counts hosts, not names).
 */
function writeDns(out: string[], serviceLabel: string, dns: Record<string, ClusterDnsStats>): void {
  const names = Object.keys(dns).sort()
  if (names.length === 0) return
  const { label, series } = clusterSeries(out, serviceLabel)
  const rows = (pick: (s: ClusterDnsStats) => number): [string, number][] => names.map((n) => [label(n), pick(dns[n] as ClusterDnsStats)])
  series('sidecarless_cluster_update_attempt_total', 'counter', 'DNS resolutions started for the cluster (Envoy update_attempt).', rows((s) => s.updateAttempt))
  series('sidecarless_cluster_update_success_total', 'counter', 'DNS resolutions that gave an answer (Envoy update_success).', rows((s) => s.updateSuccess))
  series('sidecarless_cluster_update_failure_total', 'counter', 'DNS resolutions that failed (Envoy update_failure).', rows((s) => s.updateFailure))
  series('sidecarless_cluster_update_no_rebuild_total', 'counter', 'DNS answers that changed no endpoint (Envoy update_no_rebuild).', rows((s) => s.updateNoRebuild))
  series('sidecarless_cluster_dns_addresses', 'gauge', 'Addresses an endpoint name of the cluster resolves to now.',
    names.flatMap((n) => (dns[n] as ClusterDnsStats).targets.map((t) => [`${label(n)},endpoint="${escapeLabelValue(t.endpoint)}"`, t.addresses.length] as [string, number])))
}

function writeLevel(out: string[], level: Level, places: readonly Place[]): void {
  if (places.length === 0) return
  const P = level.prefix
  const family = (name: string, type: string, help: string): void => {
    out.push(`# HELP ${name} ${escapeHelp(help)}`, `# TYPE ${name} ${type}`)
  }
  const simple = (name: string, type: 'counter' | 'gauge', help: string, value: (p: Place) => number): void => {
    family(name, type, help)
    for (const p of places) out.push(`${name}{${p.labels}} ${formatValue(value(p))}`)
  }

  simple(`${P}rq_total`, 'counter', `Total ${level.noun}, counted when they start.`, (p) => p.requests)
  simple(`${P}rq_active`, 'gauge', `Active ${level.noun}: started and not yet ended.`, (p) => p.inFlight)

  let name = `${P}rq_xx_total`
  family(name, 'counter', `Total ${level.noun} that got a response, by status class (response_code_class="2" for 2xx).`)
  for (const p of places) {
    for (let c = 0; c < 5; c++) out.push(`${name}{${p.labels},response_code_class="${c + 1}"} ${formatValue(p.responses[c] ?? 0)}`)
  }

  name = `${P}rq_error_total`
  family(name, 'counter', `Total ${level.noun} that ended without a response, or with one the mesh made, by error_kind.`)
  for (const p of places) {
    // Only kinds that happened: most never do at most places, and ten zero series per place add up.
    ERROR_KINDS.forEach((kind, k) => {
      const n = p.errors[k] ?? 0
      if (n !== 0) out.push(`${name}{${p.labels},error_kind="${kind}"} ${formatValue(n)}`)
    })
  }

  for (const alias of level.aliases) {
    const k = ERROR_KINDS.indexOf(alias.kind)
    simple(`${P}${alias.stat}`, 'counter', `Total ${level.noun} ${alias.help} (also in ${P}rq_error_total{error_kind="${alias.kind}"}).`, (p) => p.errors[k] ?? 0)
  }

  simple(`${P}cx_rx_bytes_total`, 'counter', `Total ${level.rx} body bytes received, of ${level.noun}.`, (p) => p.bytesReceived)
  simple(`${P}cx_tx_bytes_total`, 'counter', `Total ${level.tx} body bytes sent, of ${level.noun}.`, (p) => p.bytesSent)

  if (!level.histogram) return
  name = `${P}rq_time`
  family(name, 'histogram', `Duration of ${level.noun} in milliseconds, from start to end, failures included.`)
  const les = ENVOY_BUCKET_BOUNDS_MS.map(formatValue)
  for (const p of places) {
    const h = p.latency
    const cumulative = h.cumulative(ENVOY_BUCKET_BOUNDS_MS)
    cumulative.forEach((n, i) => out.push(`${name}_bucket{${p.labels},le="${les[i]}"} ${formatValue(n)}`))
    out.push(
      `${name}_bucket{${p.labels},le="+Inf"} ${formatValue(h.count)}`,
      `${name}_sum{${p.labels}} ${formatValue(h.sum)}`,
      `${name}_count{${p.labels}} ${formatValue(h.count)}`,
    )
  }
}
