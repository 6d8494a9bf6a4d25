/**
 * Import of an Envoy v3 bootstrap (`static_resources`) into the mesh model.
 *
 * The importer is a translator, not a validator: it reads what it understands, and lists
 * everything else (with the path as the user wrote it) instead of failing, so a user
 * pasting a real Envoy config sees at once what carried over and what did not. Nothing is
 * dropped without a report, except fields that have no meaning in-process (stat prefixes,
 * the router filter) or that restate a default.
 *
 * Work is bounded by the shape of Envoy's model: the importer descends only into fields it
 * knows, never into arbitrary nesting, and a global budget stops it on inputs built from
 * shared references (a list of one huge object repeated) that would otherwise multiply.
 *
 * @module
 */
import { parseAddress } from './address.js'
import { formatListenAddress, parseListenAddress } from './listen-address.js'
import { limits } from './defaults.js'
import { parseDomain } from './domain.js'
import { parseDuration } from './duration.js'
import { isHeaderName, isHeaderValue } from './http-token.js'
import { unsafeRegexReason } from './regex.js'
import type {
  ClusterConfig,
  DirectResponseAction,
  DiscoveryType,
  EndpointConfig,
  FaultConfig,
  HashPolicy,
  HealthCheckConfig,
  OutlierDetectionConfig,
  StatusRange,
  HeaderAppendAction,
  HeaderMatcher,
  HeaderValueOption,
  LoadBalancerPolicy,
  MeshConfig,
  QueryParameterMatcher,
  RedirectAction,
  RequestMirrorPolicy,
  RouteAction,
  RouteConfig,
  RouteMatch,
  VirtualHostConfig,
  WeightedClusterConfig,
} from './types.js'

/** One part of the Envoy input that was not imported, and why. */
export interface UnsupportedField {
  /**
   * Where it is, with the field names as written in the input, e.g.
   * `static_resources.clusters[0].health_checks`; `''` for the input as a whole.
   */
  readonly path: string
  /** What was not imported and why, e.g. `unsupported field "foo"`. */
  readonly message: string
}

/** The result of {@link fromEnvoy}. */
export interface EnvoyImport {
  /** The translated config. Run `validateConfig` on it before use, as on any config. */
  readonly config: MeshConfig
  /** Everything in the input that is not in `config`, in document order. */
  readonly unsupported: readonly UnsupportedField[]
}

/**
 * Translates an Envoy v3 bootstrap (its `static_resources`) into our model.
 *
 * Clusters become `clusters` (endpoints from `load_assignment`, labels from the
 * `envoy.lb` metadata); the route configs of every listener's `http_connection_manager`
 * become `virtualHosts`; the first listener's `address.socket_address` becomes
 * `listener.address` and the bootstrap's `admin.address` becomes `admin.address` (both
 * used by `sidecarless proxy`). Field names may be snake_case (Envoy YAML) or proto3-JSON
 * camelCase. Virtual hosts whose names repeat across listeners get a `-2`, `-3`, ...
 * suffix (not reported: Envoy allows it, our model needs unique names); a domain already
 * claimed by an earlier virtual host is dropped and reported, as the mesh has one domain
 * space for all listeners.
 *
 * Never throws on bad input: problems go into `unsupported` (or, for a non-object, one
 * entry at path `''`).
 *
 * @param bootstrap - a parsed Envoy bootstrap (from YAML or JSON).
 */
export function fromEnvoy(bootstrap: unknown): EnvoyImport {
  const imp = new Importer()
  try {
    importBootstrap(imp, bootstrap)
  } catch (err) {
    // Hostile objects (throwing getters, proxies) and the work budget end up here; what
    // was translated before stays, so the report still shows how far the import got.
    if (err instanceof OutOfBudget) {
      imp.report(err.path, `the input is too large: the import stopped here after ${WORK_BUDGET} items`)
    } else {
      imp.report('', `the input could not be read: ${errorText(err)}`)
    }
  }
  const config: MeshConfig = {}
  if (imp.clusters.length > 0) config.clusters = imp.clusters
  if (imp.virtualHosts.length > 0) config.virtualHosts = imp.virtualHosts
  if (imp.listenerAddress !== undefined) config.listener = { address: imp.listenerAddress }
  if (imp.adminAddress !== undefined) config.admin = { address: imp.adminAddress }
  return { config, unsupported: imp.finish() }
}

/**
 * True when `input` looks like an Envoy bootstrap (an object with a `static_resources` or
 * `staticResources` key), so a loader can tell it from a mesh config.
 */
export function isEnvoyBootstrap(input: unknown): boolean {
  try {
    return isObject(input) && (Object.hasOwn(input, 'static_resources') || Object.hasOwn(input, 'staticResources'))
  } catch {
    return false
  }
}

// ---------------------------------------------------------------- import state

/**
 * Upper bound on fields and list items visited. A bootstrap with 100k endpoints takes about
 * 600k; the bound only bites on inputs that repeat shared objects to multiply the work.
 */
const WORK_BUDGET = 2_000_000
/** Reports beyond this are counted, not listed, so a hostile input cannot flood memory. */
const MAX_REPORTS = 10_000

class OutOfBudget extends Error {
  constructor(readonly path: string) {
    super('work budget exhausted')
  }
}

class Importer {
  readonly clusters: ClusterConfig[] = []
  readonly virtualHosts: VirtualHostConfig[] = []
  readonly clusterNames = new Set<string>()
  readonly virtualHostNames = new Set<string>()
  /** Normalised domain → the virtual host that claimed it first. */
  readonly domainOwners = new Map<string, string>()
  /**
   * The HTTP fault filter of the connection manager being imported: absent (`undefined`),
   * present with no usable default (`null`), or its filter-level config.
   */
  httpFault: FaultConfig | null | undefined = undefined
  /** The first listener's `host:port` (where `sidecarless proxy` listens). */
  listenerAddress: string | undefined
  /** The admin endpoint's `host:port`. */
  adminAddress: string | undefined
  readonly #reports: UnsupportedField[] = []
  #omitted = 0
  #work = 0

  report(path: string, message: string): void {
    if (this.#reports.length < MAX_REPORTS) this.#reports.push({ path, message })
    else this.#omitted++
  }

  step(path: string): void {
    if (++this.#work > WORK_BUDGET) throw new OutOfBudget(path)
  }

  finish(): UnsupportedField[] {
    if (this.#omitted > 0) this.#reports.push({ path: '', message: `${this.#omitted} more problems were found and not listed` })
    return this.#reports
  }
}

// ---------------------------------------------------------------- reading Envoy objects

type Obj = Record<string, unknown>

/** A field of an Envoy object: its key as written, its snake_case name, value and path. */
interface Field {
  readonly key: string
  readonly name: string
  readonly value: unknown
  readonly path: string
}

/** What the importer does with each field of one Envoy message type. */
interface Shape {
  /** Fields translated (snake_case names). */
  readonly use: readonly string[]
  /** Fields dropped without a report: no meaning in-process, or a restated default. */
  readonly drop?: readonly string[]
  /** Fields Envoy knows and the mesh does not support, with the reason shown to the user. */
  readonly why?: Readonly<Record<string, string>>
  /** The reason given for any other field. */
  readonly other?: string
}

/**
 * The fields of `obj` that `shape` uses, by snake_case name; every other field is
 * reported unless the shape drops it. Keys keep their input order, which `firstOf` uses.
 */
function readObject(imp: Importer, obj: Obj, path: string, shape: Shape): Map<string, Field> {
  const out = new Map<string, Field>()
  for (const key of Object.keys(obj)) {
    imp.step(path)
    const name = snakeCase(key)
    const here = seg(path, key)
    if (shape.use.includes(name)) {
      const prior = out.get(name)
      if (prior === undefined) out.set(name, { key, name, value: obj[key], path: here })
      else imp.report(here, `"${clip(key)}" repeats "${prior.key}"; ignored`)
    } else if (shape.drop?.includes(name) !== true) {
      const why = shape.why !== undefined && Object.hasOwn(shape.why, name) ? shape.why[name] : shape.other
      imp.report(here, `unsupported field "${clip(key)}"${why === undefined ? '' : `: ${why}`}`)
    }
  }
  return out
}

/** Reads an object-valued field with `shape`; `undefined` (reported) when it is not an object. */
function readField(imp: Importer, f: Field | undefined, shape: Shape): Map<string, Field> | undefined {
  const obj = asObject(imp, f)
  return obj === undefined || f === undefined ? undefined : readObject(imp, obj, f.path, shape)
}

/**
 * The first present field among `names` (a protobuf oneof), in input order; the others
 * are reported, since Envoy would reject the config.
 */
function firstOf(imp: Importer, fields: Map<string, Field>, names: readonly string[]): Field | undefined {
  let first: Field | undefined
  for (const f of fields.values()) {
    if (!names.includes(f.name) || !present(f)) continue
    if (first === undefined) first = f
    else imp.report(f.path, `"${f.key}" and "${first.key}" cannot both be set; "${f.key}" ignored`)
  }
  return first
}

function present(f: Field | undefined): f is Field {
  return f !== undefined && f.value !== undefined && f.value !== null
}

function asObject(imp: Importer, f: Field | undefined): Obj | undefined {
  if (!present(f)) return undefined
  if (isObject(f.value)) return f.value
  imp.report(f.path, `expected an object, got ${describe(f.value)}; dropped`)
  return undefined
}

function asString(imp: Importer, f: Field | undefined): string | undefined {
  if (!present(f)) return undefined
  if (typeof f.value === 'string') return f.value
  imp.report(f.path, `expected a string, got ${describe(f.value)}; dropped`)
  return undefined
}

/** A bool, or a protobuf BoolValue written as `{ value: bool }`. */
function asBool(imp: Importer, f: Field | undefined): boolean | undefined {
  if (!present(f)) return undefined
  const v = unwrap(f.value)
  if (typeof v === 'boolean') return v
  imp.report(f.path, `expected true or false, got ${describe(v)}; dropped`)
  return undefined
}

/**
 * A non-negative integer within `min..max`: a number, a decimal string (proto3 JSON writes
 * 64-bit integers as strings) or a wrapper `{ value: n }`.
 */
function asUint(imp: Importer, f: Field | undefined, min: number, max: number): number | undefined {
  if (!present(f)) return undefined
  const v = unwrap(f.value)
  const n = typeof v === 'string' && /^\d{1,16}$/.test(v) ? Number(v) : v
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 0) {
    imp.report(f.path, `expected a non-negative integer, got ${describe(v)}; dropped`)
    return undefined
  }
  if (n < min || n > max) {
    imp.report(f.path, `${n} is outside ${min}..${max}, the range the mesh accepts; dropped`)
    return undefined
  }
  return n
}

/**
 * A protobuf Duration: the JSON string form (`"0.25s"`), kept as written since our
 * durations accept it, or the `{ seconds, nanos }` object form.
 */
function asDuration(imp: Importer, f: Field | undefined): string | undefined {
  if (!present(f)) return undefined
  const v = f.value
  if (typeof v === 'string') {
    const ms = parseDuration(v)
    if (ms === undefined) {
      imp.report(f.path, `${describe(v)} is not a duration like "5s" or "0.25s"; dropped`)
      return undefined
    }
    // A positive duration below a millisecond would round to 0, which means "no timeout".
    return ms === 0 && /[1-9]/.test(v) ? '1ms' : v
  }
  if (isObject(v)) {
    const seconds = Number(v['seconds'] ?? 0)
    const nanos = Number(v['nanos'] ?? 0)
    const ms = seconds * 1000 + nanos / 1e6
    if (Object.keys(v).every((k) => k === 'seconds' || k === 'nanos') && parseDuration(ms) !== undefined) {
      return `${Math.max(Math.round(ms), ms > 0 ? 1 : 0)}ms`
    }
  }
  imp.report(f.path, `${describe(v)} is not a duration like "5s" or "0.25s"; dropped`)
  return undefined
}

/**
 * An enum written by name (`"ROUND_ROBIN"`) or number; `names[i]` is the name of value i.
 * Returns the name, or `undefined` (reported) when it is neither.
 */
function asEnum(imp: Importer, f: Field | undefined, names: readonly (string | undefined)[]): string | undefined {
  if (!present(f)) return undefined
  const v = f.value
  const name = typeof v === 'number' ? names[v] : typeof v === 'string' ? v.toUpperCase() : undefined
  if (name !== undefined && names.includes(name)) return name
  imp.report(f.path, `${describe(v)} is not one of ${names.filter((n) => n !== undefined).join(', ')}; dropped`)
  return undefined
}

/** The items of a list field, each as a Field; over-long lists are reported and truncated. */
function asList(imp: Importer, f: Field | undefined): Field[] {
  if (!present(f)) return []
  const v = f.value
  if (!Array.isArray(v)) {
    imp.report(f.path, `expected a list, got ${describe(v)}; dropped`)
    return []
  }
  let length = v.length
  if (length > limits.listItems) {
    imp.report(f.path, `${length} items; only the first ${limits.listItems} are imported`)
    length = limits.listItems
  }
  const out: Field[] = []
  for (let i = 0; i < length; i++) {
    const path = `${f.path}[${i}]`
    imp.step(path)
    out.push({ key: `${f.key}[${i}]`, name: f.name, value: v[i] as unknown, path })
  }
  return out
}

/** The string items of a list field; other items are reported. */
function asStrings(imp: Importer, f: Field | undefined): Field[] {
  return asList(imp, f).filter((item) => asString(imp, item) !== undefined)
}

/** A protobuf wrapper (`{ value: x }`) written out in YAML; proto3 JSON writes plain `x`. */
function unwrap(v: unknown): unknown {
  if (isObject(v)) {
    const keys = Object.keys(v)
    if (keys.length === 1 && keys[0] === 'value') return v['value']
  }
  return v
}

// ---------------------------------------------------------------- bootstrap

const BOOTSTRAP: Shape = {
  use: ['static_resources', 'admin'],
  why: { dynamic_resources: 'xDS is configured on the mesh, not imported from a bootstrap' },
  other: 'only static_resources is imported',
}

const STATIC_RESOURCES: Shape = {
  use: ['listeners', 'clusters'],
  why: { secrets: 'TLS secrets are not imported' },
}

function importBootstrap(imp: Importer, input: unknown): void {
  if (!isObject(input)) {
    imp.report('', `expected an Envoy bootstrap object, got ${describe(input)}`)
    return
  }
  const top = readObject(imp, input, '', BOOTSTRAP)
  const staticResources = top.get('static_resources')
  if (!present(staticResources)) {
    imp.report('', 'not an Envoy bootstrap: it has no static_resources')
    return
  }
  const res = readField(imp, staticResources, STATIC_RESOURCES)
  if (res === undefined) return
  // Clusters first, in the order written, so the output reads like the input.
  for (const item of asList(imp, res.get('clusters'))) {
    const cluster = importCluster(imp, item)
    if (cluster !== undefined) imp.clusters.push(cluster)
  }
  for (const item of asList(imp, res.get('listeners'))) importListener(imp, item)
  importAdmin(imp, top.get('admin'))
}

const ADMIN: Shape = {
  use: ['address'],
  why: {
    access_log_path: 'admin access logs are not imported',
    access_log: 'admin access logs are not imported',
    profile_path: 'profiling is not supported',
    socket_options: 'socket options are not supported',
    ignore_global_conn_limit: 'connection limits are not supported',
  },
}

/** Envoy's `admin.address`, for the admin endpoint of `sidecarless proxy`. */
function importAdmin(imp: Importer, f: Field | undefined): void {
  const m = readField(imp, f, ADMIN)
  if (m === undefined || f === undefined) return
  const address = listenAddress(imp, m.get('address'))
  if (address === undefined) imp.report(f.path, 'no usable address.socket_address; the admin endpoint is not imported')
  else imp.adminAddress = address
}

/**
 * `host:port` of an Envoy Address to listen on (port 0 allowed), IPv6 bracketed;
 * `undefined` (reported) otherwise.
 */
function listenAddress(imp: Importer, f: Field | undefined): string | undefined {
  const a = readField(imp, f, ADDRESS)
  const s = readField(imp, a?.get('socket_address'), SOCKET_ADDRESS)
  if (s === undefined || f === undefined) return undefined
  const protocol = asEnum(imp, s.get('protocol'), ['TCP', 'UDP'])
  if (protocol === 'UDP') {
    imp.report((s.get('protocol') as Field).path, 'UDP listeners are not supported')
    return undefined
  }
  const host = asString(imp, s.get('address'))
  // An unset port_value is 0 in protobuf: any free port.
  const port = present(s.get('port_value')) ? asUint(imp, s.get('port_value'), 0, 65535) : 0
  if (host === undefined || host === '' || port === undefined) return undefined
  const address = formatListenAddress(host, port)
  const parsed = parseListenAddress(address)
  if (typeof parsed === 'string') {
    imp.report(f.path, `${parsed}; dropped`)
    return undefined
  }
  return address
}

// ---------------------------------------------------------------- clusters

const PROTOCOL_OPTIONS = 'upstream protocol options are not imported'

const CLUSTER: Shape = {
  use: [
    'name', 'type', 'connect_timeout', 'lb_policy', 'dns_refresh_rate', 'load_assignment', 'transport_socket',
    'least_request_lb_config', 'ring_hash_lb_config', 'maglev_lb_config', 'lb_subset_config',
    'outlier_detection', 'health_checks', 'common_lb_config',
  ],
  why: {
    cluster_type: 'custom cluster types are not supported',
    dns_lookup_family: 'the address family of DNS lookups is not configurable',
    typed_extension_protocol_options: PROTOCOL_OPTIONS,
    http_protocol_options: PROTOCOL_OPTIONS,
    http2_protocol_options: PROTOCOL_OPTIONS,
    common_http_protocol_options: PROTOCOL_OPTIONS,
    upstream_http_protocol_options: PROTOCOL_OPTIONS,
    circuit_breakers: 'circuit breakers are not imported',
    hosts: 'the deprecated hosts list is not imported; use load_assignment',
    transport_socket_matches: 'per-endpoint transport sockets are not supported',
    load_balancing_policy: 'extension load-balancing policies are not supported; use lb_policy',
  },
}

const CLUSTER_TYPES = ['STATIC', 'STRICT_DNS', 'LOGICAL_DNS', 'EDS', 'ORIGINAL_DST']
const LB_POLICIES = ['ROUND_ROBIN', 'LEAST_REQUEST', 'RING_HASH', 'RANDOM', 'ORIGINAL_DST_LB', 'MAGLEV', 'CLUSTER_PROVIDED', 'LOAD_BALANCING_POLICY_CONFIG']
const SUPPORTED_LB: readonly string[] = ['ROUND_ROBIN', 'LEAST_REQUEST', 'RANDOM', 'RING_HASH', 'MAGLEV']

function importCluster(imp: Importer, f: Field): ClusterConfig | undefined {
  const m = readField(imp, f, CLUSTER)
  if (m === undefined) return undefined
  const name = asString(imp, m.get('name'))
  if (name === undefined || name === '') {
    imp.report(f.path, 'a cluster needs a name; cluster dropped')
    return undefined
  }
  if (imp.clusterNames.has(name)) {
    imp.report(seg(f.path, m.get('name')?.key ?? 'name'), `cluster "${name}" is defined twice; this one is dropped`)
    return undefined
  }
  imp.clusterNames.add(name)

  const cluster: ClusterConfig = { name }
  put(cluster, 'type', clusterType(imp, m.get('type')))
  put(cluster, 'connectTimeout', asDuration(imp, m.get('connect_timeout')))
  put(cluster, 'dnsRefreshRate', asDuration(imp, m.get('dns_refresh_rate')))
  put(cluster, 'loadBalancer', lbPolicy(imp, m.get('lb_policy')))
  importLbOptions(imp, m, cluster)
  importHealth(imp, m, cluster)
  const lbSubset = m.get('lb_subset_config')
  if (present(lbSubset)) readField(imp, lbSubset, LB_SUBSET)
  const scheme = transportScheme(imp, m.get('transport_socket'))
  const endpoints = importLoadAssignment(imp, m.get('load_assignment'), scheme)
  if (endpoints.length > 0) cluster.endpoints = endpoints
  return cluster
}

function clusterType(imp: Importer, f: Field | undefined): DiscoveryType | undefined {
  const type = asEnum(imp, f, CLUSTER_TYPES)
  if (type === undefined || f === undefined) return undefined
  if (type === 'EDS' || type === 'ORIGINAL_DST') {
    // Kept as a cluster without endpoints, so routes naming it still resolve.
    imp.report(f.path, `cluster type ${type} is not supported; the cluster is imported without endpoints`)
    return undefined
  }
  return type.toLowerCase() as DiscoveryType
}

function lbPolicy(imp: Importer, f: Field | undefined): LoadBalancerPolicy | undefined {
  const policy = asEnum(imp, f, LB_POLICIES)
  if (policy === undefined || f === undefined) return undefined
  if (!SUPPORTED_LB.includes(policy)) {
    imp.report(f.path, `lb_policy ${policy} is not supported; the default ROUND_ROBIN applies`)
    return undefined
  }
  return policy.toLowerCase() as LoadBalancerPolicy
}

const LB_SUBSET: Shape = {
  use: [],
  why: { subset_selectors: 'Envoy selects subsets by label keys, the mesh by named subsets; define subsets on the cluster' },
  other: 'subset load balancing is not imported',
}
const LEAST_REQUEST: Shape = { use: ['choice_count'] }
const RING_HASH: Shape = { use: ['minimum_ring_size', 'maximum_ring_size'] }
const MAGLEV: Shape = { use: ['table_size'] }

function importLbOptions(imp: Importer, m: Map<string, Field>, cluster: ClusterConfig): void {
  const lr = readField(imp, m.get('least_request_lb_config'), LEAST_REQUEST)
  const choiceCount = asUint(imp, lr?.get('choice_count'), 2, 100)
  if (choiceCount !== undefined) cluster.leastRequest = { choiceCount }

  const rh = readField(imp, m.get('ring_hash_lb_config'), RING_HASH)
  if (rh !== undefined) {
    const ringHash: NonNullable<ClusterConfig['ringHash']> = {}
    put(ringHash, 'minimumRingSize', asUint(imp, rh.get('minimum_ring_size'), 1, limits.ringSize))
    put(ringHash, 'maximumRingSize', asUint(imp, rh.get('maximum_ring_size'), 1, limits.ringSize))
    if (Object.keys(ringHash).length > 0) cluster.ringHash = ringHash
  }

  const mg = readField(imp, m.get('maglev_lb_config'), MAGLEV)
  const tableSize = asUint(imp, mg?.get('table_size'), 2, 5_000_011)
  if (tableSize !== undefined) cluster.maglev = { tableSize }
}

// ---------------------------------------------------------------- outlier detection, health checks, panic threshold

const LOCAL_ORIGIN = 'local-origin errors are counted with the others (split_external_local_origin_errors is not supported)'
const OUTLIER_DETECTION: Shape = {
  use: [
    'consecutive_5xx', 'consecutive_gateway_failure', 'enforcing_consecutive_5xx', 'enforcing_consecutive_gateway_failure',
    'interval', 'base_ejection_time', 'max_ejection_time', 'max_ejection_percent', 'always_eject_one_host',
    'success_rate_minimum_hosts', 'success_rate_request_volume', 'success_rate_stdev_factor', 'enforcing_success_rate',
    'failure_percentage_threshold', 'failure_percentage_minimum_hosts', 'failure_percentage_request_volume',
    'enforcing_failure_percentage', 'successful_active_health_check_uneject_host',
  ],
  why: {
    split_external_local_origin_errors: LOCAL_ORIGIN,
    consecutive_local_origin_failure: LOCAL_ORIGIN,
    enforcing_consecutive_local_origin_failure: LOCAL_ORIGIN,
    enforcing_local_origin_success_rate: LOCAL_ORIGIN,
    enforcing_failure_percentage_local_origin: LOCAL_ORIGIN,
    max_ejection_time_jitter: 'ejection time jitter is not supported',
    monitors: 'outlier detection extensions are not supported',
  },
}
const HEALTH_CHECK: Shape = {
  use: ['timeout', 'interval', 'interval_jitter', 'unhealthy_threshold', 'healthy_threshold', 'no_traffic_interval', 'http_health_check'],
  drop: ['reuse_connection'],
  why: {
    tcp_health_check: 'only HTTP health checks are supported',
    grpc_health_check: 'only HTTP health checks are supported',
    custom_health_check: 'only HTTP health checks are supported',
    initial_jitter: 'the first round of checks runs at once',
    interval_jitter_percent: 'use interval_jitter',
    unhealthy_interval: 'one interval applies to healthy and unhealthy endpoints',
    unhealthy_edge_interval: 'one interval applies to healthy and unhealthy endpoints',
    healthy_edge_interval: 'one interval applies to healthy and unhealthy endpoints',
    no_traffic_healthy_interval: 'use no_traffic_interval',
    alt_port: 'checks go to the endpoint\'s own port',
    event_log_path: 'health check event logs are not supported; listen to the mesh\'s endpointHealth event',
    event_logger: 'health check event logs are not supported; listen to the mesh\'s endpointHealth event',
    always_log_health_check_failures: 'health check event logs are not supported; listen to the mesh\'s endpointHealth event',
    tls_options: 'checks use the endpoint\'s scheme',
    transport_socket_match_criteria: 'checks use the endpoint\'s scheme',
  },
}
const HTTP_HEALTH_CHECK: Shape = {
  use: ['path', 'host', 'expected_statuses', 'retriable_statuses', 'request_headers_to_add'],
  why: {
    send: 'request payloads are not supported',
    receive: 'response payload matching is not supported',
    response_buffer_size: 'response payload matching is not supported',
    request_headers_to_remove: 'check headers cannot be removed',
    codec_client_type: 'checks use HTTP/1.1',
    service_name_matcher: 'service name matching is not supported',
    method: 'checks use GET',
  },
}
const INT64_RANGE: Shape = { use: ['start', 'end'] }
const COMMON_LB: Shape = {
  use: ['healthy_panic_threshold'],
  why: {
    zone_aware_lb_config: 'locality-aware load balancing is not supported',
    locality_weighted_lb_config: 'locality weights are not supported',
    update_merge_window: 'membership updates apply at once',
    ignore_new_hosts_until_first_hc: 'new endpoints of a health-checked cluster always wait for their first check',
    close_connections_on_host_set_change: 'connections are kept across membership changes',
    consistent_hashing_lb_config: 'consistent hashing options are not imported',
    override_host_status: 'host status overrides are not supported',
  },
}
const OD_COUNTS = [
  ['consecutive_5xx', 'consecutive5xx'], ['consecutive_gateway_failure', 'consecutiveGatewayFailure'],
  ['success_rate_minimum_hosts', 'successRateMinimumHosts'], ['success_rate_request_volume', 'successRateRequestVolume'],
  ['success_rate_stdev_factor', 'successRateStdevFactor'], ['failure_percentage_minimum_hosts', 'failurePercentageMinimumHosts'],
  ['failure_percentage_request_volume', 'failurePercentageRequestVolume'],
] as const
const OD_PERCENTS = [
  ['enforcing_consecutive_5xx', 'enforcingConsecutive5xx'], ['enforcing_consecutive_gateway_failure', 'enforcingConsecutiveGatewayFailure'],
  ['max_ejection_percent', 'maxEjectionPercent'], ['enforcing_success_rate', 'enforcingSuccessRate'],
  ['failure_percentage_threshold', 'failurePercentageThreshold'], ['enforcing_failure_percentage', 'enforcingFailurePercentage'],
] as const
const OD_DURATIONS = [['interval', 'interval'], ['base_ejection_time', 'baseEjectionTime'], ['max_ejection_time', 'maxEjectionTime']] as const
const OD_BOOLS = [['always_eject_one_host', 'alwaysEjectOneHost'], ['successful_active_health_check_uneject_host', 'successfulActiveHealthCheckUnejectHost']] as const

function importHealth(imp: Importer, m: Map<string, Field>, cluster: ClusterConfig): void {
  const od = readField(imp, m.get('outlier_detection'), OUTLIER_DETECTION)
  if (od !== undefined) {
    const out: OutlierDetectionConfig = {}
    for (const [from, to] of OD_COUNTS) put(out, to, asUint(imp, od.get(from), 0, 1e9))
    for (const [from, to] of OD_PERCENTS) put(out, to, asUint(imp, od.get(from), 0, 100))
    for (const [from, to] of OD_DURATIONS) put(out, to, asDuration(imp, od.get(from)))
    for (const [from, to] of OD_BOOLS) put(out, to, asBool(imp, od.get(from)))
    cluster.outlierDetection = out
  }
  const checks = asList(imp, m.get('health_checks'))
  for (const extra of checks.slice(1)) imp.report(extra.path, 'a cluster has at most one health check (as in Envoy); dropped')
  const first = checks[0]
  if (first !== undefined) {
    const check = importHealthCheck(imp, first)
    if (check !== undefined) cluster.healthChecks = [check]
  }
  const lb = readField(imp, m.get('common_lb_config'), COMMON_LB)
  const panic = lb?.get('healthy_panic_threshold')
  if (present(panic)) {
    // An Envoy Percent: `{ value: 50.0 }`, or a bare number in hand-written YAML.
    const v = unwrap(panic.value)
    if (typeof v === 'number' && v >= 0 && v <= 100) cluster.commonLbConfig = { healthyPanicThreshold: v }
    else imp.report(panic.path, `${describe(v)} is not a percentage (0 to 100); dropped`)
  }
}

function importHealthCheck(imp: Importer, f: Field): HealthCheckConfig | undefined {
  const m = readField(imp, f, HEALTH_CHECK)
  if (m === undefined) return undefined
  const http = readField(imp, m.get('http_health_check'), HTTP_HEALTH_CHECK)
  const timeout = asDuration(imp, m.get('timeout'))
  const interval = asDuration(imp, m.get('interval'))
  const unhealthyThreshold = asUint(imp, m.get('unhealthy_threshold'), 1, 1e6)
  const healthyThreshold = asUint(imp, m.get('healthy_threshold'), 1, 1e6)
  const path = asString(imp, http?.get('path'))
  if (http === undefined || path === undefined || timeout === undefined || interval === undefined || unhealthyThreshold === undefined || healthyThreshold === undefined) {
    imp.report(f.path, 'a health check needs timeout, interval, unhealthy_threshold, healthy_threshold and http_health_check.path; dropped')
    return undefined
  }
  const httpHealthCheck: HealthCheckConfig['httpHealthCheck'] = { path }
  put(httpHealthCheck, 'host', asString(imp, http.get('host')))
  put(httpHealthCheck, 'expectedStatuses', statusRanges(imp, http.get('expected_statuses')))
  put(httpHealthCheck, 'retriableStatuses', statusRanges(imp, http.get('retriable_statuses')))
  put(httpHealthCheck, 'requestHeadersToAdd', headersToAdd(imp, http.get('request_headers_to_add')))
  const check: HealthCheckConfig = { timeout, interval, unhealthyThreshold, healthyThreshold, httpHealthCheck }
  put(check, 'intervalJitter', asDuration(imp, m.get('interval_jitter')))
  put(check, 'noTrafficInterval', asDuration(imp, m.get('no_traffic_interval')))
  return check
}

function statusRanges(imp: Importer, f: Field | undefined): StatusRange[] | undefined {
  const out: StatusRange[] = []
  for (const item of asList(imp, f)) {
    const r = readField(imp, item, INT64_RANGE)
    const start = asUint(imp, r?.get('start'), 100, 600)
    const end = asUint(imp, r?.get('end'), 100, 600)
    if (start !== undefined && end !== undefined && start < end) out.push({ start, end })
    else if (r !== undefined) imp.report(item.path, 'a status range needs start < end, within 100..600; dropped')
  }
  return out.length > 0 ? out : undefined
}

// ---------------------------------------------------------------- upstream TLS

const TRANSPORT_SOCKET: Shape = { use: ['name', 'typed_config'] }
const TLS_NAME = 'envoy.transport_sockets.tls'
const RAW_BUFFER_NAME = 'envoy.transport_sockets.raw_buffer'
const TLS_DETAIL = 'TLS settings are not imported yet; endpoints use https:// with default verification'

/**
 * The endpoint scheme a cluster's transport socket implies. TLS becomes `https:`; its
 * certificates and validation settings have no place in the model yet, so each is reported.
 */
function transportScheme(imp: Importer, f: Field | undefined): 'http' | 'https' {
  const m = readField(imp, f, TRANSPORT_SOCKET)
  if (m === undefined || f === undefined) return 'http'
  const name = asString(imp, m.get('name'))
  const typed = m.get('typed_config')
  const config = asObject(imp, typed)
  const type = typeof config?.['@type'] === 'string' ? config['@type'] : ''
  if (name === RAW_BUFFER_NAME || type.endsWith('.RawBuffer')) return 'http'
  if (name !== TLS_NAME && !type.endsWith('.UpstreamTlsContext')) {
    imp.report(f.path, `transport socket "${clip(name ?? type)}" is not supported; plain HTTP is used`)
    return 'http'
  }
  let details = 0
  if (config !== undefined && typed !== undefined) {
    for (const key of Object.keys(config)) {
      imp.step(typed.path)
      if (key === '@type') continue
      details++
      const here = seg(typed.path, key)
      const inner = config[key]
      if (snakeCase(key) === 'common_tls_context' && isObject(inner)) {
        readObject(imp, inner, here, { use: [], other: TLS_DETAIL })
      } else {
        imp.report(here, `unsupported field "${clip(key)}": ${TLS_DETAIL}`)
      }
    }
  }
  if (details === 0) {
    // Envoy without a validation_context does not verify the server; the mesh does.
    imp.report(f.path, 'upstream TLS is imported as https:// endpoints, which verify the server certificate (Envoy without a validation_context does not)')
  }
  return 'https'
}

// ---------------------------------------------------------------- endpoints

const LOAD_ASSIGNMENT: Shape = {
  use: ['endpoints'],
  drop: ['cluster_name'],
  why: { policy: 'overprovisioning and drop overloads are not imported' },
}
const LOCALITY_ENDPOINTS: Shape = {
  use: ['lb_endpoints', 'priority'],
  why: {
    locality: 'locality-aware load balancing is not supported',
    load_balancing_weight: 'locality weights are not supported',
  },
}
const LB_ENDPOINT: Shape = { use: ['endpoint', 'load_balancing_weight', 'metadata', 'health_status'] }
const ENDPOINT: Shape = {
  use: ['address'],
  why: {
    health_check_config: 'per-endpoint health check settings are not imported',
    hostname: 'endpoint host names are not imported',
  },
}
const ADDRESS: Shape = {
  use: ['socket_address'],
  why: { pipe: 'Unix domain sockets are not supported', envoy_internal_address: 'internal addresses are not supported' },
}
const SOCKET_ADDRESS: Shape = { use: ['address', 'port_value', 'protocol'] }
const METADATA: Shape = { use: ['filter_metadata'] }
const HEALTH_STATUSES = ['UNKNOWN', 'HEALTHY', 'UNHEALTHY', 'DRAINING', 'TIMEOUT', 'DEGRADED']
/** The metadata namespace Envoy's subset load balancer reads; Istio puts labels there. */
const LB_NAMESPACE = 'envoy.lb'

function importLoadAssignment(imp: Importer, f: Field | undefined, scheme: 'http' | 'https'): EndpointConfig[] {
  const m = readField(imp, f, LOAD_ASSIGNMENT)
  const out: EndpointConfig[] = []
  for (const group of asList(imp, m?.get('endpoints'))) {
    const g = readField(imp, group, LOCALITY_ENDPOINTS)
    if (g === undefined) continue
    const priority = asUint(imp, g.get('priority'), 0, 0xffffffff)
    if (priority !== undefined && priority > 0) {
      const p = g.get('priority') as Field
      imp.report(p.path, `priority ${priority} is not supported; these endpoints are skipped (only priority 0 is imported)`)
      continue
    }
    for (const item of asList(imp, g.get('lb_endpoints'))) {
      const endpoint = importLbEndpoint(imp, item, scheme)
      if (endpoint !== undefined) out.push(endpoint)
    }
  }
  return out
}

function importLbEndpoint(imp: Importer, f: Field, scheme: 'http' | 'https'): EndpointConfig | undefined {
  const m = readField(imp, f, LB_ENDPOINT)
  if (m === undefined) return undefined
  const status = asEnum(imp, m.get('health_status'), HEALTH_STATUSES)
  if (status !== undefined && status !== 'UNKNOWN' && status !== 'HEALTHY') {
    // Envoy routes to such an endpoint only as a last resort; the mesh has no such tier.
    imp.report((m.get('health_status') as Field).path, `health_status ${status} is not supported; the endpoint is dropped`)
    return undefined
  }
  const e = readField(imp, m.get('endpoint'), ENDPOINT)
  const hostPort = socketAddress(imp, e?.get('address'))
  if (hostPort === undefined) {
    imp.report(f.path, 'no usable endpoint.address.socket_address; endpoint dropped')
    return undefined
  }
  const address = `${scheme}://${hostPort}`
  const parsed = parseAddress(address)
  if (typeof parsed === 'string') {
    imp.report(f.path, `${parsed}; endpoint dropped`)
    return undefined
  }
  const endpoint: EndpointConfig = { address }
  const labels = importLabels(imp, m.get('metadata'))
  if (labels !== undefined) endpoint.labels = labels
  put(endpoint, 'weight', endpointWeight(imp, m.get('load_balancing_weight')))
  return endpoint
}

/** `host:port` of an Envoy Address, IPv6 bracketed; `undefined` (reported) otherwise. */
function socketAddress(imp: Importer, f: Field | undefined): string | undefined {
  const a = readField(imp, f, ADDRESS)
  const s = readField(imp, a?.get('socket_address'), SOCKET_ADDRESS)
  if (s === undefined) return undefined
  const protocol = asEnum(imp, s.get('protocol'), ['TCP', 'UDP'])
  if (protocol === 'UDP') {
    imp.report((s.get('protocol') as Field).path, 'UDP endpoints are not supported')
    return undefined
  }
  const host = asString(imp, s.get('address'))
  const port = asUint(imp, s.get('port_value'), 1, 65535)
  if (host === undefined || host === '' || port === undefined) return undefined
  return host.includes(':') && !host.startsWith('[') ? `[${host}]:${port}` : `${host}:${port}`
}

/** Envoy allows weights up to 2^32-1, the mesh up to 128: larger ones are capped, keeping their order. */
function endpointWeight(imp: Importer, f: Field | undefined): number | undefined {
  const weight = asUint(imp, f, 1, 0xffffffff)
  if (weight === undefined || f === undefined || weight <= 128) return weight
  imp.report(f.path, `weight ${weight} is above 128, the largest the mesh accepts; 128 is used`)
  return 128
}

/** Labels from `metadata.filter_metadata["envoy.lb"]`; other namespaces are reported. */
function importLabels(imp: Importer, f: Field | undefined): Record<string, string> | undefined {
  const md = readField(imp, f, METADATA)
  const fm = md?.get('filter_metadata')
  const namespaces = asObject(imp, fm)
  if (namespaces === undefined || fm === undefined) return undefined
  let labels: Record<string, string> | undefined
  for (const ns of Object.keys(namespaces)) {
    imp.step(fm.path)
    const here = seg(fm.path, ns)
    if (ns !== LB_NAMESPACE) {
      imp.report(here, `metadata namespace "${clip(ns)}" is not imported; only "${LB_NAMESPACE}" becomes labels`)
      continue
    }
    const values = asObject(imp, { key: ns, name: ns, value: namespaces[ns], path: here })
    for (const [key, value] of Object.entries(values ?? {})) {
      imp.step(here)
      if (typeof value !== 'string') {
        imp.report(seg(here, key), `label values are strings, got ${describe(value)}; dropped`)
        continue
      }
      labels ??= {}
      // defineProperty, so a label named "__proto__" stays a label.
      Object.defineProperty(labels, key, { value, enumerable: true, writable: true, configurable: true })
    }
  }
  return labels
}

// ---------------------------------------------------------------- listeners

const LISTENER: Shape = {
  use: ['filter_chains', 'address'],
  // The first listener's address becomes `listener.address`, where `sidecarless proxy`
  // listens (the in-process mesh ignores it: the app owns its sockets).
  drop: ['name'],
  why: {
    additional_addresses: 'additional listener addresses are not supported; the proxy listens on one address',
    listener_filters: 'listener filters are not supported',
    default_filter_chain: 'the default filter chain is not imported',
  },
}
const FILTER_CHAIN: Shape = {
  use: ['filters'],
  drop: ['name'],
  why: {
    filter_chain_match: 'filter chain match criteria are not supported; the routes of every chain are imported',
    transport_socket: 'downstream TLS is configured on the mesh listener, not imported',
  },
}
const NETWORK_FILTER: Shape = { use: ['name', 'typed_config'] }
const HCM_NAME = 'envoy.filters.network.http_connection_manager'
const HCM: Shape = {
  use: ['route_config', 'http_filters'],
  // Stats prefixes and codec choice have no meaning in-process.
  drop: ['@type', 'stat_prefix', 'codec_type'],
  why: {
    rds: 'RDS is not supported; write the route_config inline',
    scoped_routes: 'scoped routes are not supported',
    access_log: 'access logs are not imported',
  },
}
const HTTP_FILTER: Shape = { use: ['name', 'typed_config'] }
const ROUTER_NAME = 'envoy.filters.http.router'
const ROUTER: Shape = { use: [], drop: ['@type'] }

function importListener(imp: Importer, f: Field): void {
  const m = readField(imp, f, LISTENER)
  const address = m?.get('address')
  if (present(address)) {
    if (imp.listenerAddress !== undefined) {
      imp.report(address.path, `sidecarless proxy serves one listener, on ${imp.listenerAddress}; this address is not used (its routes are imported)`)
    } else {
      imp.listenerAddress = listenAddress(imp, address)
    }
  }
  for (const chain of asList(imp, m?.get('filter_chains'))) {
    const c = readField(imp, chain, FILTER_CHAIN)
    for (const filter of asList(imp, c?.get('filters'))) importNetworkFilter(imp, filter)
  }
}

function importNetworkFilter(imp: Importer, f: Field): void {
  const m = readField(imp, f, NETWORK_FILTER)
  if (m === undefined) return
  const name = asString(imp, m.get('name'))
  const typed = m.get('typed_config')
  const type = typeName(typed)
  if (name !== HCM_NAME && !type.endsWith('HttpConnectionManager')) {
    imp.report(f.path, `network filter "${clip(name ?? type)}" is not supported; only ${HCM_NAME} is imported`)
    return
  }
  const hcm = readField(imp, typed, HCM)
  if (hcm === undefined) {
    imp.report(f.path, 'http_connection_manager has no typed_config; nothing imported')
    return
  }
  imp.httpFault = undefined
  checkHttpFilters(imp, hcm.get('http_filters'))
  const routeConfig = hcm.get('route_config')
  if (present(routeConfig)) importRouteConfiguration(imp, routeConfig)
  imp.httpFault = undefined
}

/** The router filter is what the mesh does anyway; any other HTTP filter is reported. */
function checkHttpFilters(imp: Importer, f: Field | undefined): void {
  for (const item of asList(imp, f)) {
    if (!isObject(item.value)) {
      asObject(imp, item)
      continue
    }
    const raw = item.value
    const name = typeof raw['name'] === 'string' ? raw['name'] : ''
    const typed = raw['typed_config'] ?? raw['typedConfig']
    const type = isObject(typed) && typeof typed['@type'] === 'string' ? typed['@type'] : ''
    if (name === FAULT_NAME || type.endsWith(FAULT_TYPE)) {
      const m = readObject(imp, raw, item.path, HTTP_FILTER)
      const typedConfig = m.get('typed_config')
      imp.httpFault = present(typedConfig) ? (importHttpFault(imp, typedConfig) ?? null) : null
      continue
    }
    if (name !== ROUTER_NAME && !type.endsWith('.Router')) {
      imp.report(item.path, `HTTP filter "${clip(name === '' ? type : name)}" is not supported`)
      continue
    }
    const m = readObject(imp, raw, item.path, HTTP_FILTER)
    readField(imp, m.get('typed_config'), ROUTER)
  }
}

/** The `@type` of a typed_config field, or `''`. */
function typeName(f: Field | undefined): string {
  const v = f?.value
  return isObject(v) && typeof v['@type'] === 'string' ? v['@type'] : ''
}

// ---------------------------------------------------------------- virtual hosts

const ROUTE_CONFIG_HEADERS = 'route-configuration-level header mutations are not imported; move them to the virtual hosts'
const ROUTE_CONFIGURATION: Shape = {
  use: ['virtual_hosts'],
  // validate_clusters: the mesh always checks that routes name existing clusters.
  drop: ['name', 'validate_clusters'],
  why: {
    request_headers_to_add: ROUTE_CONFIG_HEADERS,
    request_headers_to_remove: ROUTE_CONFIG_HEADERS,
    response_headers_to_add: ROUTE_CONFIG_HEADERS,
    response_headers_to_remove: ROUTE_CONFIG_HEADERS,
  },
}

const MUTATIONS = ['request_headers_to_add', 'request_headers_to_remove', 'response_headers_to_add', 'response_headers_to_remove']

const VIRTUAL_HOST: Shape = {
  use: ['name', 'domains', 'routes', ...MUTATIONS],
  why: {
    retry_policy: 'retry policies are not imported yet',
    cors: 'CORS is not supported',
    rate_limits: 'rate limits are not imported',
    typed_per_filter_config: 'per-filter config is not supported',
    require_tls: 'require_tls is not supported',
    virtual_clusters: 'virtual clusters are not supported',
    hedge_policy: 'request hedging is not supported',
  },
}

function importRouteConfiguration(imp: Importer, f: Field): void {
  const m = readField(imp, f, ROUTE_CONFIGURATION)
  for (const item of asList(imp, m?.get('virtual_hosts'))) {
    const vh = importVirtualHost(imp, item)
    if (vh !== undefined) imp.virtualHosts.push(vh)
  }
}

function importVirtualHost(imp: Importer, f: Field): VirtualHostConfig | undefined {
  const m = readField(imp, f, VIRTUAL_HOST)
  if (m === undefined) return undefined
  let base = asString(imp, m.get('name'))
  if (base === undefined || base === '') {
    base = 'virtual-host'
    imp.report(f.path, `a virtual host needs a name; imported as "${uniqueName(imp.virtualHostNames, base)}"`)
  }
  const name = uniqueName(imp.virtualHostNames, base)
  const domains = claimDomains(imp, m.get('domains'), name)
  if (domains.length === 0) {
    imp.report(f.path, `virtual host "${name}" has no usable domain; dropped`)
    return undefined
  }
  imp.virtualHostNames.add(name)
  const routes: RouteConfig[] = []
  for (const item of asList(imp, m.get('routes'))) {
    const route = importRoute(imp, item)
    if (route !== undefined) routes.push(route)
  }
  const vh: VirtualHostConfig = { name, domains, routes }
  importMutations(imp, m, vh)
  return vh
}

/** `base`, or `base-2`, `base-3`, ... : the first not yet taken. */
function uniqueName(taken: ReadonlySet<string>, base: string): string {
  if (!taken.has(base)) return base
  let i = 2
  while (taken.has(`${base}-${i}`)) i++
  return `${base}-${i}`
}

/**
 * The domains of a virtual host that no earlier one claimed. Envoy scopes domains to a
 * route config; the mesh has a single outbound domain space, so the first claim wins.
 */
function claimDomains(imp: Importer, f: Field | undefined, owner: string): string[] {
  const out: string[] = []
  for (const item of asStrings(imp, f)) {
    const domain = item.value as string
    const parsed = parseDomain(domain)
    if (typeof parsed === 'string') {
      imp.report(item.path, `${parsed}; dropped`)
      continue
    }
    const key = `${parsed.kind}:${parsed.host}:${parsed.port ?? ''}`
    const prior = imp.domainOwners.get(key)
    if (prior !== undefined) {
      imp.report(item.path, `domain "${clip(domain)}" is already served by virtual host "${prior}"; the mesh has one domain space for all listeners, so it is dropped here`)
      continue
    }
    imp.domainOwners.set(key, owner)
    out.push(domain)
  }
  return out
}

// ---------------------------------------------------------------- routes

const ROUTE: Shape = {
  use: ['name', 'match', 'route', 'redirect', 'direct_response', 'typed_per_filter_config', ...MUTATIONS],
  why: {
    metadata: 'route metadata is not imported',
    decorator: 'tracing decorators are not imported',
    tracing: 'tracing settings are not imported',
    filter_action: 'filter actions are not supported',
    non_forwarding_action: 'non-forwarding actions are not supported',
  },
}
const ACTIONS = ['route', 'redirect', 'direct_response']

function importRoute(imp: Importer, f: Field): RouteConfig | undefined {
  const m = readField(imp, f, ROUTE)
  if (m === undefined) return undefined
  const matchField = m.get('match')
  if (!present(matchField)) {
    imp.report(f.path, 'a route needs a match; route dropped')
    return undefined
  }
  const name = asString(imp, m.get('name'))
  const match = importMatch(imp, matchField)
  if (match === undefined) {
    imp.report(f.path, 'route dropped: its match cannot be imported, and a broader match would take traffic it should not')
    return undefined
  }
  const route: RouteConfig = name === undefined ? { match } : { name, match }
  const action = firstOf(imp, m, ACTIONS)
  let ok = false
  if (action?.name === 'route') ok = put(route, 'route', importRouteAction(imp, action, match))
  else if (action?.name === 'redirect') ok = put(route, 'redirect', importRedirect(imp, action))
  else if (action?.name === 'direct_response') ok = put(route, 'directResponse', importDirectResponse(imp, action))
  if (!ok) {
    imp.report(f.path, 'route dropped: it has no action the mesh can run (route, redirect or direct_response)')
    return undefined
  }
  importMutations(imp, m, route)
  importRouteFault(imp, f.path, m.get('typed_per_filter_config'), route)
  return route
}

// ---------------------------------------------------------------- matches

const ROUTE_MATCH: Shape = {
  use: ['prefix', 'path', 'safe_regex', 'path_separated_prefix', 'case_sensitive', 'headers', 'query_parameters'],
  why: {
    grpc: 'gRPC matching is not supported',
    runtime_fraction: 'runtime fractions are not supported',
    tls_context: 'TLS context matching is not supported',
    dynamic_metadata: 'dynamic metadata matching is not supported',
    path_match_policy: 'URI template matching is not supported',
    connect_matcher: 'CONNECT matching is not supported',
    filter_state: 'filter state matching is not supported',
  },
}
const PATH_SPECIFIERS = ['prefix', 'path', 'safe_regex', 'path_separated_prefix']
// google_re2 only says which engine to use, and RE2 is what safe regexes mean anyway.
const REGEX_MATCHER: Shape = { use: ['regex'], drop: ['google_re2'] }
const HEADER_MATCHER: Shape = {
  use: [
    'name', 'exact_match', 'prefix_match', 'suffix_match', 'contains_match', 'safe_regex_match',
    'present_match', 'string_match', 'range_match', 'invert_match',
  ],
  why: { treat_missing_header_as_empty: 'treat_missing_header_as_empty is not supported' },
}
const HEADER_CRITERIA = ['exact_match', 'prefix_match', 'suffix_match', 'contains_match', 'safe_regex_match', 'present_match', 'string_match', 'range_match']
const STRING_MATCHER: Shape = { use: ['exact', 'prefix', 'suffix', 'contains', 'safe_regex', 'custom', 'ignore_case'] }
const STRING_CRITERIA = ['exact', 'prefix', 'suffix', 'contains', 'safe_regex', 'custom']
const QUERY_MATCHER: Shape = { use: ['name', 'string_match', 'present_match'] }
/** Pseudo-headers the mesh's matcher understands. */
const PSEUDO_HEADERS: readonly string[] = [':method', ':authority', ':path', ':scheme']

/** A RouteMatch, or `undefined` (reported) when some criterion cannot be kept. */
function importMatch(imp: Importer, f: Field): RouteMatch | undefined {
  const m = readField(imp, f, ROUTE_MATCH)
  if (m === undefined) return undefined
  const spec = firstOf(imp, m, PATH_SPECIFIERS)
  if (spec === undefined) {
    imp.report(f.path, 'a match needs one of prefix, path, safe_regex, path_separated_prefix')
    return undefined
  }
  const match: RouteMatch = {}
  if (!importPathSpecifier(imp, spec, match)) return undefined
  put(match, 'caseSensitive', asBool(imp, m.get('case_sensitive')))
  const headers: HeaderMatcher[] = []
  for (const item of asList(imp, m.get('headers'))) {
    const h = importHeaderMatcher(imp, item)
    if (h === undefined) return undefined
    headers.push(h)
  }
  if (headers.length > 0) match.headers = headers
  const query: QueryParameterMatcher[] = []
  for (const item of asList(imp, m.get('query_parameters'))) {
    const q = importQueryMatcher(imp, item)
    if (q === undefined) return undefined
    query.push(q)
  }
  if (query.length > 0) match.queryParameters = query
  return match
}

function importPathSpecifier(imp: Importer, f: Field, match: RouteMatch): boolean {
  if (f.name === 'safe_regex') return put(match, 'safeRegex', regexOf(imp, f))
  const value = asString(imp, f)
  if (value === undefined) return false
  if (f.name === 'prefix') return put(match, 'prefix', value)
  if (!value.startsWith('/')) {
    imp.report(f.path, `"${clip(value)}" must start with /`)
    return false
  }
  if (f.name === 'path') return put(match, 'path', value)
  if (value.endsWith('/') || /[?#]/.test(value)) {
    imp.report(f.path, `"${clip(value)}" must not end with / nor contain ? or #`)
    return false
  }
  return put(match, 'pathSeparatedPrefix', value)
}

/** The `regex` of an Envoy RegexMatcher, if the mesh can run it safely. */
function regexOf(imp: Importer, f: Field | undefined): string | undefined {
  const m = readField(imp, f, REGEX_MATCHER)
  const regexField = m?.get('regex')
  const regex = asString(imp, regexField)
  if (regex === undefined || regexField === undefined) {
    if (m !== undefined && regexField === undefined && f !== undefined) imp.report(f.path, 'a regex matcher needs regex')
    return undefined
  }
  const why = unsafeRegexReason(regex)
  if (why !== undefined) {
    imp.report(regexField.path, `the regex cannot be used: ${why}`)
    return undefined
  }
  return regex
}

function importHeaderMatcher(imp: Importer, f: Field): HeaderMatcher | undefined {
  const m = readField(imp, f, HEADER_MATCHER)
  if (m === undefined) return undefined
  const name = asString(imp, m.get('name'))
  if (name === undefined) {
    imp.report(f.path, 'a header matcher needs a name')
    return undefined
  }
  if (!isHeaderName(name) && !PSEUDO_HEADERS.includes(name)) {
    imp.report((m.get('name') as Field).path, `cannot match on header "${clip(name)}"`)
    return undefined
  }
  const matcher: HeaderMatcher = { name }
  const criterion = firstOf(imp, m, HEADER_CRITERIA)
  if (criterion !== undefined && !importHeaderCriterion(imp, criterion, matcher)) return undefined
  if (asBool(imp, m.get('invert_match')) === true) matcher.invert = true
  return matcher
}

function importHeaderCriterion(imp: Importer, f: Field, matcher: HeaderMatcher): boolean {
  switch (f.name) {
    case 'exact_match': return put(matcher, 'exact', asString(imp, f))
    case 'prefix_match': return put(matcher, 'prefix', asString(imp, f))
    case 'suffix_match': return put(matcher, 'suffix', asString(imp, f))
    case 'contains_match': return put(matcher, 'contains', asString(imp, f))
    case 'safe_regex_match': return put(matcher, 'safeRegex', regexOf(imp, f))
    case 'present_match': return put(matcher, 'present', asBool(imp, f))
    case 'string_match': return importStringMatcher(imp, f, matcher)
    default:
      imp.report(f.path, `unsupported field "${f.key}": range matching is not supported`)
      return false
  }
}

/** Envoy StringMatcher → the string fields shared by header and query matchers. */
function importStringMatcher(imp: Importer, f: Field, into: HeaderMatcher | QueryParameterMatcher): boolean {
  const m = readField(imp, f, STRING_MATCHER)
  if (m === undefined) return false
  const c = firstOf(imp, m, STRING_CRITERIA)
  let ok: boolean
  switch (c?.name) {
    case 'exact': ok = put(into, 'exact', asString(imp, c)); break
    case 'prefix': ok = put(into, 'prefix', asString(imp, c)); break
    case 'suffix': ok = put(into, 'suffix', asString(imp, c)); break
    case 'contains': ok = put(into, 'contains', asString(imp, c)); break
    case 'safe_regex': ok = put(into, 'safeRegex', regexOf(imp, c)); break
    case 'custom':
      imp.report(c.path, `unsupported field "${c.key}": custom string matchers are not supported`)
      return false
    default:
      imp.report(f.path, 'a string matcher needs one of exact, prefix, suffix, contains, safe_regex')
      return false
  }
  // Envoy ignores ignore_case for safe_regex; the mesh would not, so it is left out there.
  const ignoreCase = asBool(imp, m.get('ignore_case'))
  if (ok && ignoreCase === true && c.name !== 'safe_regex') into.ignoreCase = true
  return ok
}

function importQueryMatcher(imp: Importer, f: Field): QueryParameterMatcher | undefined {
  const m = readField(imp, f, QUERY_MATCHER)
  if (m === undefined) return undefined
  const name = asString(imp, m.get('name'))
  if (name === undefined || name === '') {
    imp.report(f.path, 'a query parameter matcher needs a name')
    return undefined
  }
  const matcher: QueryParameterMatcher = { name }
  const c = firstOf(imp, m, ['string_match', 'present_match'])
  if (c?.name === 'string_match' && !importStringMatcher(imp, c, matcher)) return undefined
  if (c?.name === 'present_match' && !put(matcher, 'present', asBool(imp, c))) return undefined
  return matcher
}

// ---------------------------------------------------------------- route actions

const ROUTE_ACTION: Shape = {
  use: ['cluster', 'weighted_clusters', 'prefix_rewrite', 'regex_rewrite', 'host_rewrite_literal', 'timeout', 'hash_policy', 'request_mirror_policies'],
  why: {
    retry_policy: 'retry policies are not imported yet',
    cluster_header: 'choosing the cluster from a header is not supported',
    cluster_specifier_plugin: 'cluster specifier plugins are not supported',
    inline_cluster_specifier_plugin: 'cluster specifier plugins are not supported',
    cors: 'CORS is not supported',
    idle_timeout: 'per-route idle timeouts are not supported',
    auto_host_rewrite: 'automatic host rewrite is not supported; use host_rewrite_literal',
    host_rewrite_header: 'host rewrite from a header is not supported; use host_rewrite_literal',
    host_rewrite_path_regex: 'host rewrite from the path is not supported; use host_rewrite_literal',
    metadata_match: 'metadata matching is not supported; name a subset instead',
    rate_limits: 'rate limits are not imported',
    max_stream_duration: 'stream duration limits are not supported',
    upgrade_configs: 'protocol upgrades are not supported',
    hedge_policy: 'request hedging is not supported',
    internal_redirect_policy: 'internal redirects are not supported',
  },
}
const WEIGHTED_CLUSTERS: Shape = {
  use: ['clusters'],
  // Envoy v3 requires total_weight to equal the sum when set; the mesh uses the sum.
  drop: ['total_weight'],
  why: {
    runtime_key_prefix: 'runtime weights are not supported',
    header_name: 'picking the weighted cluster from a header is not supported',
  },
}
const CLUSTER_WEIGHT: Shape = {
  use: ['name', 'weight', ...MUTATIONS],
  why: {
    metadata_match: 'metadata matching is not supported; name a subset instead',
    typed_per_filter_config: 'per-filter config is not supported',
    host_rewrite_literal: 'a per-cluster host rewrite is not supported',
    cluster_header: 'choosing the cluster from a header is not supported',
  },
}
const REGEX_REWRITE: Shape = { use: ['pattern', 'substitution'] }

function importRouteAction(imp: Importer, f: Field, match: RouteMatch): RouteAction | undefined {
  const m = readField(imp, f, ROUTE_ACTION)
  if (m === undefined) return undefined
  const action: RouteAction = {}
  const dest = firstOf(imp, m, ['cluster', 'weighted_clusters'])
  const ok = dest?.name === 'cluster'
    ? put(action, 'cluster', nonEmpty(imp, dest))
    : put(action, 'weightedClusters', dest === undefined ? undefined : importWeightedClusters(imp, dest))
  if (!ok) {
    if (dest === undefined) imp.report(f.path, 'a route action needs cluster or weighted_clusters')
    return undefined
  }
  const rewrite = firstOf(imp, m, ['prefix_rewrite', 'regex_rewrite'])
  if (rewrite?.name === 'prefix_rewrite') {
    if (match.safeRegex === undefined) put(action, 'prefixRewrite', asString(imp, rewrite))
    else imp.report(rewrite.path, 'prefix_rewrite with a safe_regex match is not supported; use regex_rewrite; dropped')
  } else if (rewrite !== undefined) {
    put(action, 'regexRewrite', importRegexRewrite(imp, rewrite))
  }
  put(action, 'hostRewrite', authority(imp, m.get('host_rewrite_literal')))
  put(action, 'timeout', asDuration(imp, m.get('timeout')))
  const hashPolicy: HashPolicy[] = []
  for (const item of asList(imp, m.get('hash_policy'))) {
    const p = importHashPolicy(imp, item)
    if (p !== undefined) hashPolicy.push(p)
  }
  if (hashPolicy.length > 0) action.hashPolicy = hashPolicy
  const mirrors: RequestMirrorPolicy[] = []
  for (const item of asList(imp, m.get('request_mirror_policies'))) {
    const p = importMirrorPolicy(imp, item)
    if (p !== undefined) mirrors.push(p)
  }
  if (mirrors.length > 0) action.requestMirrorPolicies = mirrors
  return action
}

function importWeightedClusters(imp: Importer, f: Field): WeightedClusterConfig[] | undefined {
  const m = readField(imp, f, WEIGHTED_CLUSTERS)
  const out: WeightedClusterConfig[] = []
  for (const item of asList(imp, m?.get('clusters'))) {
    const c = readField(imp, item, CLUSTER_WEIGHT)
    if (c === undefined) continue
    const cluster = nonEmpty(imp, c.get('name'))
    if (cluster === undefined) {
      imp.report(item.path, 'a weighted cluster needs a name; dropped')
      continue
    }
    // An unset weight is 0 in Envoy too.
    const weight = present(c.get('weight')) ? asUint(imp, c.get('weight'), 0, 0xffffffff) : 0
    if (weight === undefined) continue
    const entry: WeightedClusterConfig = { cluster, weight }
    importMutations(imp, c, entry)
    out.push(entry)
  }
  if (out.length === 0) {
    imp.report(f.path, 'no weighted cluster left')
    return undefined
  }
  return out
}

function importRegexRewrite(imp: Importer, f: Field): RouteAction['regexRewrite'] {
  const m = readField(imp, f, REGEX_REWRITE)
  if (m === undefined) return undefined
  const pattern = regexOf(imp, m.get('pattern'))
  const substitution = asString(imp, m.get('substitution'))
  if (pattern === undefined || substitution === undefined) {
    imp.report(f.path, 'regex_rewrite needs pattern.regex and substitution; dropped')
    return undefined
  }
  return { pattern, substitution }
}

/** A host rewrite: an authority, with nothing that would make the Host header unsafe. */
function authority(imp: Importer, f: Field | undefined): string | undefined {
  const value = asString(imp, f)
  if (value === undefined || f === undefined) return undefined
  if (value.length === 0 || !isHeaderValue(value) || /[\s/]/.test(value)) {
    imp.report(f.path, `"${clip(value)}" is not an authority; dropped`)
    return undefined
  }
  return value
}

function nonEmpty(imp: Importer, f: Field | undefined): string | undefined {
  const value = asString(imp, f)
  if (value === '' && f !== undefined) imp.report(f.path, 'an empty name; dropped')
  return value === '' ? undefined : value
}

// ---------------------------------------------------------------- hash policies

const HASH_POLICY: Shape = {
  use: ['header', 'cookie', 'query_parameter', 'terminal'],
  why: {
    connection_properties: 'hashing on connection properties is not supported',
    filter_state: 'hashing on filter state is not supported',
  },
}
const HASH_HEADER: Shape = { use: ['header_name'], why: { regex_rewrite: 'rewriting the hashed header value is not supported' } }
const HASH_COOKIE: Shape = {
  use: ['name'],
  why: {
    ttl: 'generating the cookie is not supported; requests without it are hashed by the next policy',
    path: 'generating the cookie is not supported',
    attributes: 'generating the cookie is not supported',
  },
}
const HASH_QUERY: Shape = { use: ['name'] }

function importHashPolicy(imp: Importer, f: Field): HashPolicy | undefined {
  const m = readField(imp, f, HASH_POLICY)
  if (m === undefined) return undefined
  const kind = firstOf(imp, m, ['header', 'cookie', 'query_parameter'])
  const policy: HashPolicy = {}
  let ok = false
  if (kind?.name === 'header') {
    const name = asString(imp, readField(imp, kind, HASH_HEADER)?.get('header_name'))
    if (name !== undefined && !isHeaderName(name)) imp.report(kind.path, `"${clip(name)}" is not a header name`)
    else ok = put(policy, 'header', name === undefined ? undefined : { name })
  } else if (kind?.name === 'cookie') {
    const name = nonEmpty(imp, readField(imp, kind, HASH_COOKIE)?.get('name'))
    ok = put(policy, 'cookie', name === undefined ? undefined : { name })
  } else if (kind?.name === 'query_parameter') {
    const name = nonEmpty(imp, readField(imp, kind, HASH_QUERY)?.get('name'))
    ok = put(policy, 'queryParameter', name === undefined ? undefined : { name })
  }
  if (!ok) {
    imp.report(f.path, 'hash policy dropped: it needs header.header_name, cookie.name or query_parameter.name')
    return undefined
  }
  if (asBool(imp, m.get('terminal')) === true) policy.terminal = true
  return policy
}

// ---------------------------------------------------------------- redirect, direct response

const REDIRECT: Shape = {
  use: ['scheme_redirect', 'https_redirect', 'host_redirect', 'port_redirect', 'path_redirect', 'prefix_rewrite', 'response_code', 'strip_query'],
  why: { regex_rewrite: 'regex rewrites in redirects are not supported' },
}
/** RedirectResponseCode enum, by value. */
const REDIRECT_CODES: Readonly<Record<string, number>> = {
  MOVED_PERMANENTLY: 301, FOUND: 302, SEE_OTHER: 303, TEMPORARY_REDIRECT: 307, PERMANENT_REDIRECT: 308,
}
const DIRECT_RESPONSE: Shape = { use: ['status', 'body'] }
const DATA_SOURCE: Shape = {
  use: ['inline_string'],
  why: {
    filename: 'bodies from files are not supported; use inline_string',
    inline_bytes: 'binary bodies are not supported; use inline_string',
    environment_variable: 'bodies from environment variables are not supported; use inline_string',
  },
}

function importRedirect(imp: Importer, f: Field): RedirectAction | undefined {
  const m = readField(imp, f, REDIRECT)
  if (m === undefined) return undefined
  const redirect: RedirectAction = {}
  const scheme = firstOf(imp, m, ['scheme_redirect', 'https_redirect'])
  if (scheme?.name === 'scheme_redirect') {
    const s = asString(imp, scheme)
    if (s !== undefined && /^[a-z][a-z0-9+.-]*$/i.test(s)) redirect.schemeRedirect = s
    else if (s !== undefined) imp.report(scheme.path, `"${clip(s)}" is not a URL scheme; dropped`)
  } else if (scheme !== undefined) {
    put(redirect, 'httpsRedirect', asBool(imp, scheme))
  }
  put(redirect, 'hostRedirect', headerValue(imp, m.get('host_redirect')))
  const port = asUint(imp, m.get('port_redirect'), 0, 65535)
  // Port 0 is protobuf's "unset".
  if (port !== undefined && port > 0) redirect.portRedirect = port
  const path = firstOf(imp, m, ['path_redirect', 'prefix_rewrite'])
  if (path?.name === 'path_redirect') put(redirect, 'pathRedirect', headerValue(imp, path))
  else if (path !== undefined) put(redirect, 'prefixRewrite', headerValue(imp, path))
  put(redirect, 'responseCode', redirectCode(imp, m.get('response_code')))
  put(redirect, 'stripQuery', asBool(imp, m.get('strip_query')))
  if (Object.keys(redirect).length === 0) {
    // A redirect that changes nothing sends the client back to the same URL, forever.
    imp.report(f.path, 'the redirect has nothing left to change')
    return undefined
  }
  return redirect
}

function redirectCode(imp: Importer, f: Field | undefined): number | undefined {
  if (!present(f)) return undefined
  const v = f.value
  // By name, by enum number (0..4), or (leniently) as the status code itself.
  const names = Object.keys(REDIRECT_CODES)
  const codes = Object.values(REDIRECT_CODES)
  if (typeof v === 'string' && Object.hasOwn(REDIRECT_CODES, v.toUpperCase())) return REDIRECT_CODES[v.toUpperCase()]
  if (typeof v === 'number' && Number.isInteger(v) && v >= 0 && v < codes.length) return codes[v]
  if (typeof v === 'number' && codes.includes(v)) return v
  imp.report(f.path, `${describe(v)} is not one of ${names.join(', ')}; dropped`)
  return undefined
}

/** A string that will go into a Location header. */
function headerValue(imp: Importer, f: Field | undefined): string | undefined {
  const value = asString(imp, f)
  if (value === undefined || f === undefined || isHeaderValue(value)) return value
  imp.report(f.path, 'contains characters a header cannot carry; dropped')
  return undefined
}

function importDirectResponse(imp: Importer, f: Field): DirectResponseAction | undefined {
  const m = readField(imp, f, DIRECT_RESPONSE)
  if (m === undefined) return undefined
  const statusField = m.get('status')
  if (!present(statusField)) {
    imp.report(f.path, 'a direct_response needs a status')
    return undefined
  }
  const status = asUint(imp, statusField, 200, 599)
  if (status === undefined) return undefined
  const response: DirectResponseAction = { status }
  const bodyField = m.get('body')
  if (present(bodyField)) {
    const body = asString(imp, readField(imp, bodyField, DATA_SOURCE)?.get('inline_string'))
    if (body === undefined) return undefined
    if (Buffer.byteLength(body) > limits.directResponseBody) {
      imp.report(bodyField.path, `the body is over ${limits.directResponseBody} bytes, the most the mesh (and Envoy by default) sends`)
      return undefined
    }
    response.body = body
  }
  return response
}

// ---------------------------------------------------------------- header mutations

type Mutable = Pick<VirtualHostConfig, 'requestHeadersToAdd' | 'requestHeadersToRemove' | 'responseHeadersToAdd' | 'responseHeadersToRemove'>

const HEADER_VALUE_OPTION: Shape = {
  use: ['header', 'append', 'append_action'],
  why: { keep_empty_value: 'keep_empty_value is not supported' },
}
const HEADER_VALUE: Shape = { use: ['key', 'value'], why: { raw_value: 'raw (binary) header values are not supported; use value' } }
const APPEND_ACTIONS: readonly HeaderAppendAction[] = ['APPEND_IF_EXISTS_OR_ADD', 'ADD_IF_ABSENT', 'OVERWRITE_IF_EXISTS_OR_ADD', 'OVERWRITE_IF_EXISTS']
/** Headers the mesh will not let config touch, as its validation says (framing and routing). */
const PROTECTED_HEADERS: readonly string[] = ['host', 'content-length', 'transfer-encoding', 'connection', 'upgrade']

function importMutations(imp: Importer, m: Map<string, Field>, target: Mutable): void {
  put(target, 'requestHeadersToAdd', headersToAdd(imp, m.get('request_headers_to_add')))
  put(target, 'requestHeadersToRemove', headersToRemove(imp, m.get('request_headers_to_remove')))
  put(target, 'responseHeadersToAdd', headersToAdd(imp, m.get('response_headers_to_add')))
  put(target, 'responseHeadersToRemove', headersToRemove(imp, m.get('response_headers_to_remove')))
}

function headersToAdd(imp: Importer, f: Field | undefined): HeaderValueOption[] | undefined {
  const out: HeaderValueOption[] = []
  for (const item of asList(imp, f)) {
    const option = importHeaderValueOption(imp, item)
    if (option !== undefined) out.push(option)
  }
  return out.length > 0 ? out : undefined
}

function headersToRemove(imp: Importer, f: Field | undefined): string[] | undefined {
  const out: string[] = []
  for (const item of asStrings(imp, f)) {
    const name = item.value as string
    if (mutableHeader(name)) out.push(name)
    else imp.report(item.path, `header "${clip(name)}" cannot be removed; dropped`)
  }
  return out.length > 0 ? out : undefined
}

function importHeaderValueOption(imp: Importer, f: Field): HeaderValueOption | undefined {
  const m = readField(imp, f, HEADER_VALUE_OPTION)
  const h = readField(imp, m?.get('header'), HEADER_VALUE)
  if (m === undefined || h === undefined) {
    if (m !== undefined) imp.report(f.path, 'a header to add needs header.key; dropped')
    return undefined
  }
  const keyField = h.get('key')
  const key = asString(imp, keyField)
  if (key === undefined || keyField === undefined) {
    imp.report(f.path, 'a header to add needs header.key; dropped')
    return undefined
  }
  if (!mutableHeader(key)) {
    imp.report(keyField.path, `header "${clip(key)}" cannot be set by a header mutation; dropped`)
    return undefined
  }
  const value = plainHeaderValue(imp, h.get('value'))
  if (value === undefined) return undefined
  const option: HeaderValueOption = { header: { key, value } }
  put(option, 'appendAction', appendAction(imp, m))
  return option
}

/**
 * A header value to add. Envoy expands `%COMMAND%` operators in it and writes a literal
 * `%` as `%%`; the mesh adds values verbatim, so operators are reported and `%%` unescaped.
 */
function plainHeaderValue(imp: Importer, f: Field | undefined): string | undefined {
  if (!present(f)) return ''
  const value = asString(imp, f)
  if (value === undefined) return undefined
  if (value.replaceAll('%%', '').includes('%')) {
    imp.report(f.path, 'Envoy %...% substitutions in header values are not supported; header dropped')
    return undefined
  }
  const plain = value.replaceAll('%%', '%')
  if (!isHeaderValue(plain)) {
    imp.report(f.path, 'the value contains characters a header cannot carry; header dropped')
    return undefined
  }
  return plain
}

/** append_action, or the legacy `append` bool (true: append, false: overwrite). */
function appendAction(imp: Importer, m: Map<string, Field>): HeaderAppendAction | undefined {
  const f = firstOf(imp, m, ['append_action', 'append'])
  if (f?.name === 'append_action') return asEnum(imp, f, APPEND_ACTIONS) as HeaderAppendAction | undefined
  const append = asBool(imp, f)
  if (append === undefined) return undefined
  return append ? 'APPEND_IF_EXISTS_OR_ADD' : 'OVERWRITE_IF_EXISTS_OR_ADD'
}

function mutableHeader(name: string): boolean {
  return isHeaderName(name) && !PROTECTED_HEADERS.includes(name.toLowerCase())
}

// ---------------------------------------------------------------- small helpers

function isObject(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

/**
 * Sets `obj[key]` when `value` is defined; returns whether it did, so a caller can tell a
 * translated field from a dropped one in one expression.
 */
function put<T extends object, K extends keyof T>(obj: T, key: K, value: T[K] | undefined): boolean {
  if (value === undefined) return false
  obj[key] = value
  return true
}

/** proto3 JSON's lowerCamelCase back to the proto field name (`typedConfig` → `typed_config`). */
function snakeCase(key: string): string {
  return /[A-Z]/.test(key) ? key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`) : key
}

/** Appends a key to a path: dotted when it reads as a name, bracketed and quoted otherwise. */
function seg(path: string, key: string): string {
  if (/^[A-Za-z_@][A-Za-z0-9_@]*$/.test(key)) return path === '' ? key : `${path}.${key}`
  return `${path}[${JSON.stringify(clip(key))}]`
}

/** Bounds what a hostile key or value can add to a message. */
function clip(s: string): string {
  return s.length > 64 ? `${s.slice(0, 64)}…` : s
}

function describe(v: unknown): string {
  if (v === null) return 'null'
  if (v === undefined) return 'nothing'
  if (Array.isArray(v)) return 'a list'
  if (typeof v === 'string') return JSON.stringify(clip(v))
  if (typeof v === 'object') return 'an object'
  if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint') return `${typeof v} ${String(v)}`
  return `a ${typeof v}`
}

function errorText(err: unknown): string {
  try {
    return clip(err instanceof Error ? err.message : String(err))
  } catch {
    return 'unknown error'
  }
}

// ---------------------------------------------------------------- fault injection and mirroring

const FAULT_NAME = 'envoy.filters.http.fault'
const FAULT_TYPE = 'envoy.extensions.filters.http.fault.v3.HTTPFault'
const RUNTIME_OVERRIDE = 'runtime overrides are not supported; the configured values apply'
/** HTTPFault fields that narrow which requests are faulted: without them the fault would reach more traffic. */
const FAULT_SCOPE = 'fault scoping by upstream cluster, headers or downstream nodes is not supported; the fault is dropped rather than applied more widely'
const HTTP_FAULT: Shape = {
  use: ['delay', 'abort', 'max_active_faults', 'upstream_cluster', 'headers', 'downstream_nodes'],
  drop: ['@type', 'disable_downstream_cluster_stats', 'filter_metadata'],
  why: {
    response_rate_limit: 'response rate limits are not supported',
    delay_percent_runtime: RUNTIME_OVERRIDE,
    abort_percent_runtime: RUNTIME_OVERRIDE,
    delay_duration_runtime: RUNTIME_OVERRIDE,
    abort_http_status_runtime: RUNTIME_OVERRIDE,
    max_active_faults_runtime: RUNTIME_OVERRIDE,
    response_rate_limit_percent_runtime: RUNTIME_OVERRIDE,
    abort_grpc_status_runtime: RUNTIME_OVERRIDE,
  },
}
const FAULT_DELAY: Shape = { use: ['fixed_delay', 'header_delay', 'percentage'] }
const FAULT_ABORT: Shape = { use: ['http_status', 'grpc_status', 'header_abort', 'percentage'] }
const FRACTIONAL_PERCENT: Shape = { use: ['numerator', 'denominator'] }
const RUNTIME_FRACTION: Shape = { use: ['default_value'], why: { runtime_key: RUNTIME_OVERRIDE } }
const MIRROR_POLICY: Shape = {
  use: ['cluster', 'runtime_fraction'],
  why: {
    cluster_header: 'choosing the mirror cluster from a header is not supported',
    trace_sampled: 'the copy follows the sampling of the original request',
    disable_shadow_host_suffix_append: 'the -shadow suffix is always appended',
    request_headers_mutations: 'per-mirror header mutations are not supported',
  },
}
const DENOMINATORS = ['HUNDRED', 'TEN_THOUSAND', 'MILLION']

/** An Envoy FractionalPercent as a 0–100 percentage (a numerator above the denominator is 100%, as in Envoy). */
function importFractionalPercent(imp: Importer, f: Field | undefined): number | undefined {
  const m = readField(imp, f, FRACTIONAL_PERCENT)
  if (m === undefined) return undefined
  const numerator = present(m.get('numerator')) ? asUint(imp, m.get('numerator'), 0, 0xffffffff) : 0
  if (numerator === undefined) return undefined
  const denominator = present(m.get('denominator')) ? asEnum(imp, m.get('denominator'), DENOMINATORS) : 'HUNDRED'
  if (denominator === undefined) return undefined
  const scale = denominator === 'HUNDRED' ? 100 : denominator === 'TEN_THOUSAND' ? 10_000 : 1_000_000
  return Math.min(100, (numerator * 100) / scale)
}

/** Envoy `HTTPFault` (filter-level or per-route) as the mesh's fault config. */
function importHttpFault(imp: Importer, f: Field): FaultConfig | undefined {
  const m = readField(imp, f, HTTP_FAULT)
  if (m === undefined) return undefined
  for (const key of ['upstream_cluster', 'headers', 'downstream_nodes']) {
    const scoped = m.get(key)
    if (present(scoped) && !(Array.isArray(scoped.value) && scoped.value.length === 0)) {
      imp.report(scoped.path, `unsupported field "${scoped.key}": ${FAULT_SCOPE}`)
      return undefined
    }
  }
  const fault: FaultConfig = {}
  const delay = readField(imp, m.get('delay'), FAULT_DELAY)
  if (delay !== undefined) {
    const source = firstOf(imp, delay, ['fixed_delay', 'header_delay'])
    const percentage = importFractionalPercent(imp, delay.get('percentage'))
    if (source?.name === 'fixed_delay') {
      const fixedDelay = asDuration(imp, source)
      if (fixedDelay !== undefined) fault.delay = percentage === undefined ? { fixedDelay } : { fixedDelay, percentage }
    } else if (source?.name === 'header_delay') {
      fault.delay = percentage === undefined ? { headerDelay: true } : { headerDelay: true, percentage }
    } else {
      imp.report(m.get('delay')?.path ?? f.path, 'a delay needs fixed_delay or header_delay; dropped')
    }
  }
  const abort = readField(imp, m.get('abort'), FAULT_ABORT)
  if (abort !== undefined) {
    const source = firstOf(imp, abort, ['http_status', 'grpc_status', 'header_abort'])
    const percentage = importFractionalPercent(imp, abort.get('percentage'))
    if (source?.name === 'http_status') {
      const httpStatus = asUint(imp, source, 200, 599)
      if (httpStatus !== undefined) fault.abort = percentage === undefined ? { httpStatus } : { httpStatus, percentage }
    } else if (source?.name === 'header_abort') {
      fault.abort = percentage === undefined ? { headerAbort: true } : { headerAbort: true, percentage }
    } else if (source?.name === 'grpc_status') {
      imp.report(source.path, 'unsupported field "grpc_status": gRPC aborts are not supported; dropped')
    } else {
      imp.report(m.get('abort')?.path ?? f.path, 'an abort needs http_status or header_abort; dropped')
    }
  }
  put(fault, 'maxActiveFaults', asUint(imp, m.get('max_active_faults'), 0, 1e9))
  if (fault.delay === undefined && fault.abort === undefined) return undefined
  return fault
}

/**
 * A route's fault: its `typed_per_filter_config` for the fault filter replaces the
 * filter-level config (as in Envoy); either applies only when the connection manager has
 * the fault filter. Any other per-filter config is reported.
 */
function importRouteFault(imp: Importer, routePath: string, f: Field | undefined, route: RouteConfig): void {
  let fault = imp.httpFault ?? undefined
  const perFilter = asObject(imp, f)
  if (perFilter !== undefined && f !== undefined) {
    for (const key of Object.keys(perFilter)) {
      imp.step(f.path)
      const here = seg(f.path, key)
      const field: Field = { key, name: key, value: perFilter[key], path: here }
      if (key !== FAULT_NAME && !typeName(field).endsWith(FAULT_TYPE)) {
        imp.report(here, `per-filter config for "${clip(key)}" is not supported`)
        continue
      }
      if (imp.httpFault === undefined) {
        imp.report(here, `the connection manager has no ${FAULT_NAME} filter, so Envoy would not apply this fault either; ignored`)
        continue
      }
      fault = importHttpFault(imp, field)
    }
  }
  if (fault === undefined) return
  if (route.route === undefined) {
    imp.report(f?.path ?? routePath, 'fault injection on a redirect or direct response route is not imported')
    return
  }
  route.fault = fault
}

/** Envoy `RouteAction.RequestMirrorPolicy`. */
function importMirrorPolicy(imp: Importer, f: Field): RequestMirrorPolicy | undefined {
  const m = readField(imp, f, MIRROR_POLICY)
  if (m === undefined) return undefined
  const cluster = nonEmpty(imp, m.get('cluster'))
  if (cluster === undefined) {
    imp.report(f.path, 'a mirror policy needs a cluster; dropped')
    return undefined
  }
  const policy: RequestMirrorPolicy = { cluster }
  const fraction = readField(imp, m.get('runtime_fraction'), RUNTIME_FRACTION)
  if (fraction !== undefined) {
    const value = fraction.get('default_value')
    const percentage = present(value) ? importFractionalPercent(imp, value) : undefined
    if (percentage === undefined) {
      // Envoy requires default_value; guessing a share would mirror traffic nobody asked for.
      imp.report(m.get('runtime_fraction')?.path ?? f.path, 'runtime_fraction needs a usable default_value; the mirror policy is dropped')
      return undefined
    }
    policy.percentage = percentage
  }
  return policy
}
