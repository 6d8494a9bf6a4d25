/**
 * Istio's standard metrics (https://istio.io/latest/docs/reference/config/metrics/), beside
 * the `sidecarless_*` series, so that Istio's Grafana dashboards and Kiali read a meshed
 * workload as they read a sidecar: `istio_requests_total`, `istio_request_duration_milliseconds`,
 * `istio_request_bytes` and `istio_response_bytes`, with Istio's labels and meanings:
 *
 * - `reporter="destination"` for requests this workload served (inbound), `"source"` for
 *   requests it sent (outbound);
 * - the destination of inbound requests and the source of outbound ones is this workload
 *   (its `service` and labels: `app`, `version`, `workload`, `namespace`, Istio's canonical
 *   labels); the other side comes from what the mesh knows of it: for inbound requests the
 *   caller's SPIFFE ID under mTLS (`source_principal`, `source_workload_namespace`) and the
 *   peer metadata a calling mesh sends in {@link PEER_HEADER} (as Istio's sidecars exchange
 *   `x-envoy-peer-metadata`); for outbound requests the cluster (`destination_service`) and
 *   the endpoint's labels (`destination_version`, ...);
 * - `response_code` is the status the caller got (0 when none), whoever made it, and
 *   `response_flags` Envoy's flags for the mesh's own answers (`RL`, `UO`, `UH`, `UF`, `UT`,
 *   `UC`, `NR`, `RBAC`, `DC`; `-` for none);
 * - `connection_security_policy` is `mutual_tls` or `none` for the destination reporter,
 *   `unknown` for the source reporter, as Istio reports it.
 *
 * Cardinality is bounded: a label set is made once per (route, caller) or (cluster, subset,
 * endpoint) recorder, which the registry bounds, and response codes and flags are finite.
 * Recording is O(1): the recorder holds its series; a request adds to a cell found by one
 * small-integer Map lookup (status and flag).
 */
import { escapeLabelValue } from './prometheus-text.js'

/** The request header by which a mesh tells the workload it calls who it is. */
export const PEER_HEADER = 'x-sidecarless-peer'

/** A workload as Istio's labels describe it. */
export interface IstioWorkload {
  readonly workload: string
  readonly namespace: string
  readonly app: string
  readonly version: string
  readonly canonicalService: string
  readonly canonicalRevision: string
  /** SPIFFE ID, or `unknown`. */
  readonly principal: string
}

/** The service a request was for, as Istio's `destination_service*` labels name it. */
export interface IstioService {
  /** FQDN when known (`reviews.default.svc.cluster.local`), else the short name. */
  readonly service: string
  readonly name: string
  readonly namespace: string
}

const UNKNOWN = 'unknown'

export const UNKNOWN_WORKLOAD: IstioWorkload = Object.freeze({
  workload: UNKNOWN, namespace: UNKNOWN, app: UNKNOWN, version: UNKNOWN, canonicalService: UNKNOWN, canonicalRevision: UNKNOWN, principal: UNKNOWN,
})

/**
 * A workload from its service name and labels. Istio's label names are read first
 * (`service.istio.io/canonical-name`, `-revision`, `app.kubernetes.io/name`, `-version`),
 * then `app`, `version`, `workload`, `namespace`; the service name fills what is missing.
 */
export function workloadOf(service: string | undefined, labels: Readonly<Record<string, string>>, principal?: string): IstioWorkload {
  const app = labels['app'] ?? labels['app.kubernetes.io/name'] ?? service ?? UNKNOWN
  const version = labels['version'] ?? labels['app.kubernetes.io/version'] ?? UNKNOWN
  const canonicalService = labels['service.istio.io/canonical-name'] ?? app
  const canonicalRevision = labels['service.istio.io/canonical-revision'] ?? (version === UNKNOWN ? 'latest' : version)
  const namespace = labels['namespace'] ?? (principal === undefined ? undefined : spiffeNamespace(principal)) ?? UNKNOWN
  const workload = labels['workload'] ?? (service === undefined ? UNKNOWN : version === UNKNOWN ? service : `${service}-${version}`)
  return { workload, namespace, app, version, canonicalService, canonicalRevision, principal: principal ?? UNKNOWN }
}

/** The service of a cluster name: `name.ns.svc.<domain>` is split, anything else is its own name. */
export function serviceOfCluster(cluster: string): IstioService {
  const m = /^([^.]+)\.([^.]+)\.svc(?:\.|$)/.exec(cluster)
  return m === null ? { service: cluster, name: cluster, namespace: UNKNOWN } : { service: cluster, name: m[1] as string, namespace: m[2] as string }
}

/** The namespace in a SPIFFE ID of Istio's shape (`spiffe://td/ns/<ns>/sa/<sa>`). */
function spiffeNamespace(id: string): string | undefined {
  const m = /^spiffe:\/\/[^/]+\/ns\/([^/]+)\/sa\/[^/]+$/.exec(id)
  return m === null ? undefined : m[1]
}

const PEER_KEYS = ['workload', 'namespace', 'app', 'version', 'canonicalService', 'canonicalRevision'] as const

/** The workload name a peer header implies when it names none: `app`, or `app-version`. */
function impliedWorkload(app: string, version: string): string {
  if (app === UNKNOWN) return UNKNOWN
  return version === UNKNOWN ? app : `${app}-${version}`
}

/** The canonical revision a peer header implies when it names none. */
function impliedRevision(version: string): string {
  return version === UNKNOWN ? 'latest' : version
}

/**
 * The {@link PEER_HEADER} value of a workload: `key=value` pairs, values percent-encoded
 * (like W3C baggage). `app` is always written; every other key only when its value differs
 * from what {@link parsePeerHeader} implies without it (`unknown` for `version` and
 * `namespace`, `app`/`app-version` for `workload`, `app` for `canonicalService`,
 * `version`/`latest` for `canonicalRevision`). A service without labels sends
 * `app=<service>`: the header is validated by the client and parsed by the server on every
 * request, so its length is paid twice per call.
 */
export function peerHeaderValue(w: IstioWorkload): string {
  let out = `app=${encodeURIComponent(w.app)}`
  if (w.version !== UNKNOWN) out += `,version=${encodeURIComponent(w.version)}`
  if (w.workload !== impliedWorkload(w.app, w.version)) out += `,workload=${encodeURIComponent(w.workload)}`
  if (w.namespace !== UNKNOWN) out += `,namespace=${encodeURIComponent(w.namespace)}`
  if (w.canonicalService !== w.app) out += `,canonicalService=${encodeURIComponent(w.canonicalService)}`
  if (w.canonicalRevision !== impliedRevision(w.version)) out += `,canonicalRevision=${encodeURIComponent(w.canonicalRevision)}`
  return out
}

/**
 * The workload a {@link PEER_HEADER} value names, with `principal` (the caller's verified
 * SPIFFE ID, if any: the header never sets it), or `undefined` for a malformed value.
 * Keys left out take the values {@link peerHeaderValue} leaves them out for.
 * The caller's own word, so it only labels metrics (bounded by the registry).
 */
export function parsePeerHeader(value: string, principal: string | undefined): IstioWorkload | undefined {
  if (value.length > 1024) return undefined
  const out: Record<string, string> = {}
  for (const pair of value.split(',')) {
    const eq = pair.indexOf('=')
    if (eq <= 0) return undefined
    const key = pair.slice(0, eq).trim()
    if (!(PEER_KEYS as readonly string[]).includes(key)) continue
    try {
      out[key] = decodeURIComponent(pair.slice(eq + 1).trim()).slice(0, 253)
    } catch {
      return undefined
    }
  }
  const ns = principal === undefined ? undefined : spiffeNamespace(principal)
  const app = out['app'] ?? UNKNOWN
  const version = out['version'] ?? UNKNOWN
  return {
    workload: out['workload'] ?? impliedWorkload(app, version),
    // A verified identity's namespace wins over what the caller says.
    namespace: ns ?? out['namespace'] ?? UNKNOWN,
    app,
    version,
    canonicalService: out['canonicalService'] ?? app,
    canonicalRevision: out['canonicalRevision'] ?? impliedRevision(version),
    principal: principal ?? UNKNOWN,
  }
}

/** The Istio labels of one series, without response_code and response_flags, escaped once. */
export function istioLabels(reporter: 'source' | 'destination', source: IstioWorkload, destination: IstioWorkload, service: IstioService, security: 'mutual_tls' | 'none' | 'unknown'): string {
  const pairs: [string, string][] = [
    ['reporter', reporter],
    ['source_workload', source.workload],
    ['source_workload_namespace', source.namespace],
    ['source_principal', source.principal],
    ['source_app', source.app],
    ['source_version', source.version],
    ['source_canonical_service', source.canonicalService],
    ['source_canonical_revision', source.canonicalRevision],
    ['destination_workload', destination.workload],
    ['destination_workload_namespace', destination.namespace],
    ['destination_principal', destination.principal],
    ['destination_app', destination.app],
    ['destination_version', destination.version],
    ['destination_service', service.service],
    ['destination_service_name', service.name],
    ['destination_service_namespace', service.namespace],
    ['destination_canonical_service', destination.canonicalService],
    ['destination_canonical_revision', destination.canonicalRevision],
    ['request_protocol', 'http'],
    ['grpc_response_status', ''],
    ['connection_security_policy', security],
  ]
  return pairs.map(([k, v]) => `${k}="${escapeLabelValue(v)}"`).join(',')
}

/** Envoy's response flags the mesh sets, by index; 0 is none (`-`). */
export const RESPONSE_FLAGS = ['-', 'RL', 'UO', 'UH', 'UF', 'UT', 'UC', 'NR', 'RBAC', 'DC', 'UAEX', 'UPE'] as const
export type ResponseFlagName = (typeof RESPONSE_FLAGS)[number]

/** Istio's duration buckets: Envoy's defaults (ms). */
export const DURATION_BUCKETS_MS: readonly number[] = Object.freeze([0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000])
/** Size buckets (bytes): decades from 1 B to 1 GB. */
export const SIZE_BUCKETS: readonly number[] = Object.freeze([1, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 100000000, 1000000000])

/** Index of the first size bucket holding `n` (SIZE_BUCKETS.length: above all): decades, so a few comparisons. */
function sizeIndex(n: number): number {
  if (n <= 1) return 0
  if (n <= 1000) return n <= 10 ? 1 : n <= 100 ? 2 : 3
  if (n <= 1e6) return n <= 1e4 ? 4 : n <= 1e5 ? 5 : 6
  return n <= 1e7 ? 7 : n <= 1e8 ? 8 : n <= 1e9 ? 9 : 10
}

/** The counters of one (labels, response_code, response_flags). Bucket arrays count per bucket, not cumulatively. */
class IstioCell {
  count = 0
  durationSum = 0
  readonly duration = new Float64Array(DURATION_BUCKETS_MS.length + 1)
  requestBytesSum = 0
  readonly requestBytes = new Float64Array(SIZE_BUCKETS.length + 1)
  responseBytesSum = 0
  readonly responseBytes = new Float64Array(SIZE_BUCKETS.length + 1)

  /** @param suffix `,response_code="…",response_flags="…"` */
  constructor(readonly suffix: string) {}
}

/** The series of one Istio label set: a cell per (response code, flag) seen. */
export class IstioSeries {
  readonly #cells = new Map<number, IstioCell>()
  /** The cell of the last request: most requests of a series end the same way (200, no flag). */
  #lastKey = -1
  #last: IstioCell | undefined

  constructor(readonly labels: string) {}

  /**
   * One request: `status` (0: no response), `flag` (index in {@link RESPONSE_FLAGS}), its
   * duration's bucket index in {@link DURATION_BUCKETS_MS} (one past the end: above them),
   * its duration, and the request and response sizes.
   */
  record(status: number, flag: number, durationBucket: number, ms: number, requestBytes: number, responseBytes: number): void {
    const key = status * 16 + flag
    let cell = key === this.#lastKey ? this.#last : this.#cells.get(key)
    if (cell === undefined) {
      cell = new IstioCell(`,response_code="${status}",response_flags="${RESPONSE_FLAGS[flag] ?? '-'}"`)
      this.#cells.set(key, cell)
    }
    this.#lastKey = key
    this.#last = cell
    cell.count++
    if (durationBucket >= 0) {
      cell.duration[durationBucket]!++
      cell.durationSum += ms
    }
    cell.requestBytes[sizeIndex(requestBytes)]!++
    cell.requestBytesSum += requestBytes
    cell.responseBytes[sizeIndex(responseBytes)]!++
    cell.responseBytesSum += responseBytes
  }

  /** The cells, by response code then flag. */
  cells(): IstioCell[] {
    return [...this.#cells.entries()].sort((a, b) => a[0] - b[0]).map(([, c]) => c)
  }
}

/** Appends the Istio families for `series` to `out` (nothing when there is no request yet). */
export function writeIstio(out: string[], series: readonly IstioSeries[]): void {
  const rows = series.flatMap((s) => s.cells().map((c) => [s.labels, c] as const))
  if (rows.length === 0) return
  out.push('# HELP istio_requests_total Requests, as Istio\'s proxies count them (reporter="destination": served; "source": sent).', '# TYPE istio_requests_total counter')
  for (const [labels, c] of rows) out.push(`istio_requests_total{${labels}${c.suffix}} ${c.count}`)
  const histogram = (name: string, help: string, bounds: readonly number[], pick: (c: IstioCell) => [Float64Array, number]): void => {
    out.push(`# HELP ${name} ${help}`, `# TYPE ${name} histogram`)
    const les = bounds.map((b) => String(b))
    for (const [labels, c] of rows) {
      const [buckets, sum] = pick(c)
      let cumulative = 0
      for (let i = 0; i < bounds.length; i++) {
        cumulative += buckets[i] ?? 0
        out.push(`${name}_bucket{${labels}${c.suffix},le="${les[i]}"} ${cumulative}`)
      }
      cumulative += buckets[bounds.length] ?? 0
      out.push(`${name}_bucket{${labels}${c.suffix},le="+Inf"} ${cumulative}`, `${name}_sum{${labels}${c.suffix}} ${sum}`, `${name}_count{${labels}${c.suffix}} ${cumulative}`)
    }
  }
  histogram('istio_request_duration_milliseconds', 'Request durations (ms).', DURATION_BUCKETS_MS, (c) => [c.duration, c.durationSum])
  histogram('istio_request_bytes', 'Request sizes (bytes).', SIZE_BUCKETS, (c) => [c.requestBytes, c.requestBytesSum])
  histogram('istio_response_bytes', 'Response sizes (bytes).', SIZE_BUCKETS, (c) => [c.responseBytes, c.responseBytesSum])
}
