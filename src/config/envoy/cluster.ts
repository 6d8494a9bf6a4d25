/**
 * Envoy `Cluster` (a bootstrap's `static_resources.clusters`, or a CDS resource) as our
 * `ClusterConfig`: discovery type, load balancing, circuit breakers, outlier detection,
 * health checks, upstream TLS (`UpstreamTlsContext`), idle timeout, and the endpoints of an
 * inline `load_assignment`. An EDS cluster names the ClusterLoadAssignment to wait for.
 */
import { limits } from '../defaults.js'
import type { CircuitBreakersConfig, ClusterConfig, ClusterTlsConfig, DiscoveryType, HealthCheckConfig, LoadBalancerPolicy, OutlierDetectionConfig, StatusRange } from '../types.js'
import { translateClusterLoadAssignment } from './endpoints.js'
import { headersToAdd } from './headers.js'
import {
  asBool,
  asDuration,
  asEnum,
  asList,
  asMap,
  asNumber,
  asString,
  asUint,
  clip,
  present,
  isObject,
  put,
  readField,
  typeName,
  type Field,
  type Problems,
  type Shape,
} from './reader.js'
import { translateCommonTlsContext, type CommonTlsTranslation } from './common-tls.js'
import type { SecretTranslation } from './secret.js'

/**
 * Upstream TLS as written, with the secrets and certificate providers it names still to
 * resolve (for gRPC proxyless clients the provider is istio-agent's `default`).
 */
export interface UpstreamTlsTranslation extends CommonTlsTranslation {
  readonly path: string
  readonly sni: string | undefined
}

/** The result of {@link translateCluster}. */
export interface ClusterTranslation {
  /** The cluster; its `tls` holds what was inline, see {@link resolveUpstreamTls} for the rest. */
  readonly config: ClusterConfig
  /** For an EDS cluster: the ClusterLoadAssignment to wait for (`eds_cluster_config.service_name`, else the cluster's name). */
  readonly edsServiceName: string | undefined
  /** The scheme endpoints are written with: `https` when the transport socket is TLS. */
  readonly endpointScheme: 'http' | 'https'
  /** The upstream TLS context, when the transport socket is TLS. */
  readonly tls: UpstreamTlsTranslation | undefined
}

const PROTOCOL_OPTIONS = 'upstream protocol options are not imported'

const CLUSTER: Shape = {
  use: [
    'name', 'type', 'connect_timeout', 'lb_policy', 'dns_refresh_rate', 'load_assignment', 'transport_socket',
    'respect_dns_ttl', 'dns_lookup_family', 'dns_failure_refresh_rate', 'dns_jitter', 'dns_resolvers',
    'dns_resolution_config', 'typed_dns_resolver_config',
    'least_request_lb_config', 'ring_hash_lb_config', 'maglev_lb_config', 'lb_subset_config', 'eds_cluster_config',
    'outlier_detection', 'health_checks', 'common_lb_config', 'circuit_breakers', 'typed_extension_protocol_options',
    'common_http_protocol_options', 'load_balancing_policy', 'metadata',
  ],
  // Names and stats have no meaning in-process; alt_stat_name, Istio's per-cluster metadata.
  drop: ['alt_stat_name', 'track_cluster_stats', 'track_timeout_budgets'],
  why: {
    cluster_type: 'custom cluster types are not supported',
    use_tcp_for_dns_lookups: 'DNS is asked over UDP (c-ares); TCP lookups are not configurable',
    http_protocol_options: PROTOCOL_OPTIONS,
    http2_protocol_options: 'HTTP/2 upstreams are not supported; HTTP/1.1 is used',
    upstream_http_protocol_options: PROTOCOL_OPTIONS,
    protocol_selection: 'upstreams are spoken to in HTTP/1.1',
    hosts: 'the deprecated hosts list is not imported; use load_assignment',
    transport_socket_matches: 'per-endpoint transport sockets are not supported',
    upstream_connection_options: 'TCP keepalive options are not supported',
    per_connection_buffer_limit_bytes: 'connection buffer limits are not supported',
    close_connections_on_host_health_failure: 'connections are kept when an endpoint turns unhealthy',
    ignore_health_on_host_removal: 'endpoints are removed as soon as EDS removes them',
    filters: 'upstream network filters are not supported',
    upstream_bind_config: 'source addresses are not configurable',
    preconnect_policy: 'preconnecting is not supported',
    connection_pool_per_downstream_connection: 'pools are per endpoint',
    wait_for_warm_on_init: 'clusters are used as soon as they are complete',
  },
}

const CLUSTER_TYPES = ['STATIC', 'STRICT_DNS', 'LOGICAL_DNS', 'EDS', 'ORIGINAL_DST']
const LB_POLICIES = ['ROUND_ROBIN', 'LEAST_REQUEST', 'RING_HASH', 'RANDOM', 'ORIGINAL_DST_LB', 'MAGLEV', 'CLUSTER_PROVIDED', 'LOAD_BALANCING_POLICY_CONFIG']
const SUPPORTED_LB: readonly string[] = ['ROUND_ROBIN', 'LEAST_REQUEST', 'RANDOM', 'RING_HASH', 'MAGLEV']
const EDS_CONFIG: Shape = { use: ['service_name'], drop: ['eds_config'] }

/**
 * Translates an Envoy `Cluster`; `undefined` (reported) when it has no name. Never throws on
 * bad input (but see {@link Problems.step}).
 */
export function translateCluster(resource: unknown, path: string, p: Problems): ClusterTranslation | undefined {
  const f: Field = { key: path, name: 'cluster', value: resource, path }
  const m = readField(p, f, CLUSTER)
  if (m === undefined) return undefined
  const name = asString(p, m.get('name'))
  if (name === undefined || name === '') {
    p.report(path, 'a cluster needs a name; cluster dropped')
    return undefined
  }
  const config: ClusterConfig = { name }
  const typeField = m.get('type')
  const type = asEnum(p, typeField, CLUSTER_TYPES)
  let edsServiceName: string | undefined
  if (type === 'EDS') {
    const eds = readField(p, m.get('eds_cluster_config'), EDS_CONFIG)
    const service = asString(p, eds?.get('service_name'))
    edsServiceName = service === undefined || service === '' ? name : service
  } else if (type === 'ORIGINAL_DST') {
    // Kept as a cluster without endpoints, so routes naming it still resolve (to 503).
    p.report((typeField as Field).path, 'cluster type ORIGINAL_DST is not supported; the cluster is imported without endpoints')
  } else if (type !== undefined) {
    config.type = type.toLowerCase() as DiscoveryType
  }
  put(config, 'connectTimeout', asDuration(p, m.get('connect_timeout')))
  if (type === 'STRICT_DNS' || type === 'LOGICAL_DNS') {
    put(config, 'dnsRefreshRate', asDuration(p, m.get('dns_refresh_rate')))
    dnsOptions(p, m, config)
  } else {
    for (const name of DNS_FIELDS) {
      const f = m.get(name)
      if (present(f)) p.report(f.path, `${name} applies to STRICT_DNS and LOGICAL_DNS clusters only; ignored`)
    }
  }
  put(config, 'loadBalancer', lbPolicy(p, m.get('lb_policy')))
  lbOptions(p, m, config)
  loadBalancingPolicy(p, m.get('load_balancing_policy'), config)
  health(p, m, config)
  put(config, 'circuitBreakers', circuitBreakers(p, m.get('circuit_breakers')))
  put(config, 'idleTimeout', idleTimeout(p, m))
  if (clusterIsExternal(p, m.get('metadata'))) config.peerMetadata = false
  const lbSubset = m.get('lb_subset_config')
  if (present(lbSubset)) readField(p, lbSubset, LB_SUBSET)
  const tls = transportSocket(p, m.get('transport_socket'))
  const endpointScheme = tls === undefined ? 'http' : 'https'
  if (tls !== undefined) {
    const inline = inlineTls(tls)
    if (inline !== undefined) config.tls = inline
  }
  const assignment = m.get('load_assignment')
  if (present(assignment)) {
    if (type === 'EDS') p.report(assignment.path, 'an EDS cluster takes its endpoints from EDS; load_assignment ignored')
    else {
      const endpoints = translateClusterLoadAssignment(assignment.value, assignment.path, p, endpointScheme).endpoints
      if (endpoints.length > 0) config.endpoints = endpoints
    }
  }
  return { config, edsServiceName, endpointScheme, tls }
}

const DNS_FIELDS = ['dns_refresh_rate', 'respect_dns_ttl', 'dns_lookup_family', 'dns_failure_refresh_rate', 'dns_jitter', 'dns_resolvers', 'dns_resolution_config', 'typed_dns_resolver_config']
const DNS_FAMILIES = ['AUTO', 'V4_ONLY', 'V6_ONLY', 'V4_PREFERRED', 'ALL']
const FAILURE_REFRESH: Shape = { use: ['base_interval', 'max_interval'] }
const RESOLUTION_CONFIG: Shape = {
  use: ['resolvers'],
  why: { dns_resolver_options: 'DNS resolver options (TCP lookups, search domains) are not configurable' },
}
const CARES_CONFIG: Shape = {
  use: ['resolvers'],
  drop: ['use_resolvers_as_fallback', 'filter_unroutable_families'],
  why: {
    dns_resolver_options: 'DNS resolver options (TCP lookups, search domains) are not configurable',
    udp_max_queries: 'c-ares query limits are not configurable',
    query_timeout_seconds: 'DNS query timeouts are not configurable',
    query_tries: 'DNS query tries are not configurable',
  },
}
const RESOLVER_ADDRESS: Shape = { use: ['socket_address'], other: 'only socket addresses name DNS servers' }
const RESOLVER_SOCKET: Shape = { use: ['address', 'port_value'], drop: ['protocol'], other: 'not used for DNS servers' }

const CLUSTER_METADATA: Shape = { use: ['filter_metadata'], why: { typed_filter_metadata: 'typed metadata is not imported' } }

/**
 * Whether the cluster's metadata marks it outside the mesh, as istiod does for a ServiceEntry
 * with `location: MESH_EXTERNAL` (`filter_metadata.istio.external: true`): its requests then
 * carry no peer header. Istio's other keys are passed over quietly; other namespaces are
 * reported, since nothing else in them is imported.
 */
function clusterIsExternal(p: Problems, f: Field | undefined): boolean {
  const md = readField(p, f, CLUSTER_METADATA)
  let external = false
  for (const ns of asMap(p, md?.get('filter_metadata'))) {
    if (ns.key !== 'istio') {
      p.report(ns.path, `metadata namespace "${clip(ns.key)}" is not imported; only "istio" (its "external" flag) is read`)
      continue
    }
    // A google.protobuf.Struct: plain JSON in YAML and proto3 JSON; protobufjs may give { fields: { k: { boolValue } } }.
    const struct = isObject(ns.value) ? ns.value : undefined
    const fields = struct !== undefined && Object.keys(struct).length === 1 && isObject(struct['fields']) ? struct['fields'] : struct
    const flag = fields?.['external']
    external = flag === true || (isObject(flag) && (flag['boolValue'] === true || flag['bool_value'] === true))
  }
  return external
}

/**
 * Envoy's DNS settings of STRICT_DNS / LOGICAL_DNS clusters: `respect_dns_ttl`,
 * `dns_lookup_family`, `dns_failure_refresh_rate`, `dns_jitter` and the DNS servers to ask
 * (`dns_resolvers`, `dns_resolution_config.resolvers`, or a c-ares `typed_dns_resolver_config`).
 */
function dnsOptions(p: Problems, m: Map<string, Field>, config: ClusterConfig): void {
  put(config, 'respectDnsTtl', asBool(p, m.get('respect_dns_ttl')))
  const family = asEnum(p, m.get('dns_lookup_family'), DNS_FAMILIES)
  if (family !== undefined) config.dnsLookupFamily = family.toLowerCase() as NonNullable<ClusterConfig['dnsLookupFamily']>
  const failure = readField(p, m.get('dns_failure_refresh_rate'), FAILURE_REFRESH)
  if (failure !== undefined) {
    const baseInterval = asDuration(p, failure.get('base_interval'))
    const maxInterval = asDuration(p, failure.get('max_interval'))
    if (baseInterval !== undefined) config.dnsFailureRefreshRate = maxInterval === undefined ? { baseInterval } : { baseInterval, maxInterval }
  }
  put(config, 'dnsJitter', asDuration(p, m.get('dns_jitter')))
  const resolvers: string[] = []
  for (const r of asList(p, m.get('dns_resolvers'))) addResolver(p, r, resolvers)
  const resolution = readField(p, m.get('dns_resolution_config'), RESOLUTION_CONFIG)
  for (const r of asList(p, resolution?.get('resolvers'))) addResolver(p, r, resolvers)
  const typed = m.get('typed_dns_resolver_config')
  if (present(typed)) {
    const extension = readField(p, typed, { use: ['typed_config'], drop: ['name'] })
    const config = extension?.get('typed_config')
    const type = typeName(p, config)
    if (type === 'envoy.extensions.network.dns_resolver.cares.v3.CaresDnsResolverConfig') {
      const cares = readField(p, config, CARES_CONFIG)
      for (const r of asList(p, cares?.get('resolvers'))) addResolver(p, r, resolvers)
    } else if (type !== '' && !type.startsWith('!') && config !== undefined) {
      p.report(config.path, `DNS resolver ${type} is not supported; the system's resolver configuration applies`)
    }
  }
  if (resolvers.length > 0) config.dnsResolvers = resolvers
}

function addResolver(p: Problems, f: Field, out: string[]): void {
  const a = readField(p, f, RESOLVER_ADDRESS)
  const s = readField(p, a?.get('socket_address'), RESOLVER_SOCKET)
  if (s === undefined) return
  const host = asString(p, s.get('address'))
  const port = present(s.get('port_value')) ? asUint(p, s.get('port_value'), 1, 65535) : 53
  if (host === undefined || host === '' || port === undefined) return
  out.push(host.includes(':') && !host.startsWith('[') ? `[${host}]:${port}` : `${host}:${port}`)
}

function lbPolicy(p: Problems, f: Field | undefined): LoadBalancerPolicy | undefined {
  const policy = asEnum(p, f, LB_POLICIES)
  if (policy === undefined || f === undefined) return undefined
  if (!SUPPORTED_LB.includes(policy)) {
    p.report(f.path, `lb_policy ${policy} is not supported; the default ROUND_ROBIN applies`)
    return undefined
  }
  return policy.toLowerCase() as LoadBalancerPolicy
}

const LB_SUBSET: Shape = {
  use: [],
  why: { subset_selectors: 'Envoy selects subsets by label keys, the mesh by named subsets; define subsets on the cluster' },
  other: 'subset load balancing is not imported',
}
const LEAST_REQUEST: Shape = { use: ['choice_count'], why: { active_request_bias: 'active request bias is not supported', slow_start_config: 'slow start is not supported' } }
const RING_HASH: Shape = { use: ['minimum_ring_size', 'maximum_ring_size'], drop: ['hash_function'] }
const MAGLEV: Shape = { use: ['table_size'] }

function lbOptions(p: Problems, m: Map<string, Field>, cluster: ClusterConfig): void {
  const lr = readField(p, m.get('least_request_lb_config'), LEAST_REQUEST)
  const choiceCount = asUint(p, lr?.get('choice_count'), 2, 100)
  if (choiceCount !== undefined) cluster.leastRequest = { choiceCount }
  const rh = readField(p, m.get('ring_hash_lb_config'), RING_HASH)
  if (rh !== undefined) {
    const ringHash: NonNullable<ClusterConfig['ringHash']> = {}
    put(ringHash, 'minimumRingSize', asUint(p, rh.get('minimum_ring_size'), 1, limits.ringSize))
    put(ringHash, 'maximumRingSize', asUint(p, rh.get('maximum_ring_size'), 1, limits.ringSize))
    if (Object.keys(ringHash).length > 0) cluster.ringHash = ringHash
  }
  const mg = readField(p, m.get('maglev_lb_config'), MAGLEV)
  const tableSize = asUint(p, mg?.get('table_size'), 2, 5_000_011)
  if (tableSize !== undefined) cluster.maglev = { tableSize }
}

const LB_POLICY_LIST: Shape = { use: ['policies'] }
const LB_POLICY_ENTRY: Shape = { use: ['typed_extension_config'] }
const TYPED_EXTENSION: Shape = { use: ['typed_config'], drop: ['name'] }
const LB_EXTENSIONS = 'envoy.extensions.load_balancing_policies.'
const WRR_LOCALITY: Shape = { use: ['endpoint_picking_policy'] }
const RING_HASH_POLICY: Shape = { use: ['minimum_ring_size', 'maximum_ring_size'], drop: ['hash_function', 'use_hostname_for_hashing', 'hash_balance_factor', 'consistent_hashing_lb_config'] }
const LEAST_REQUEST_POLICY: Shape = { use: ['choice_count'], why: { active_request_bias: 'active request bias is not supported', slow_start_config: 'slow start is not supported' } }
const MAGLEV_POLICY: Shape = { use: ['table_size'], drop: ['consistent_hashing_lb_config'] }

/**
 * `load_balancing_policy` (the extension form gRPC prefers, gRFC A52): the first policy in
 * the list the mesh has — round robin, least request, random, ring hash, maglev, or
 * `wrr_locality` around one of them (localities are flattened here anyway). It replaces
 * `lb_policy`, as in Envoy.
 */
function loadBalancingPolicy(p: Problems, f: Field | undefined, config: ClusterConfig): void {
  const m = readField(p, f, LB_POLICY_LIST)
  if (m === undefined || f === undefined) return
  const entries = asList(p, m.get('policies'))
  for (const entry of entries) {
    const ext = readField(p, readField(p, entry, LB_POLICY_ENTRY)?.get('typed_extension_config'), TYPED_EXTENSION)
    if (lbExtension(p, ext?.get('typed_config'), config, 0)) return
  }
  p.report(f.path, 'no load-balancing policy in the list is supported (round_robin, least_request, random, ring_hash, maglev, wrr_locality); the default ROUND_ROBIN applies')
}

function lbExtension(p: Problems, typed: Field | undefined, config: ClusterConfig, depth: number): boolean {
  const type = typeName(p, typed)
  if (!type.startsWith(LB_EXTENSIONS) || depth > 2) return false
  const kind = type.slice(LB_EXTENSIONS.length).split('.')[0]
  switch (kind) {
    case 'round_robin':
      config.loadBalancer = 'round_robin'
      return true
    case 'random':
      config.loadBalancer = 'random'
      return true
    case 'least_request': {
      config.loadBalancer = 'least_request'
      const choiceCount = asUint(p, readField(p, typed, LEAST_REQUEST_POLICY)?.get('choice_count'), 2, 100)
      if (choiceCount !== undefined) config.leastRequest = { choiceCount }
      return true
    }
    case 'ring_hash': {
      config.loadBalancer = 'ring_hash'
      const rh = readField(p, typed, RING_HASH_POLICY)
      const ringHash: NonNullable<ClusterConfig['ringHash']> = {}
      put(ringHash, 'minimumRingSize', asUint(p, rh?.get('minimum_ring_size'), 1, limits.ringSize))
      put(ringHash, 'maximumRingSize', asUint(p, rh?.get('maximum_ring_size'), 1, limits.ringSize))
      if (Object.keys(ringHash).length > 0) config.ringHash = ringHash
      return true
    }
    case 'maglev': {
      config.loadBalancer = 'maglev'
      const tableSize = asUint(p, readField(p, typed, MAGLEV_POLICY)?.get('table_size'), 2, 5_000_011)
      if (tableSize !== undefined) config.maglev = { tableSize }
      return true
    }
    case 'wrr_locality': {
      const inner = readField(p, readField(p, typed, WRR_LOCALITY)?.get('endpoint_picking_policy'), LB_POLICY_LIST)
      for (const entry of asList(p, inner?.get('policies'))) {
        const ext = readField(p, readField(p, entry, LB_POLICY_ENTRY)?.get('typed_extension_config'), TYPED_EXTENSION)
        if (lbExtension(p, ext?.get('typed_config'), config, depth + 1)) return true
      }
      return false
    }
    default:
      return false
  }
}

// ---------------------------------------------------------------- circuit breakers, idle timeout

const CIRCUIT_BREAKERS: Shape = { use: ['thresholds'], why: { per_host_thresholds: 'per-host thresholds are not supported' } }
const THRESHOLDS: Shape = {
  use: ['priority', 'max_connections', 'max_pending_requests', 'max_requests', 'max_retries', 'retry_budget'],
  drop: ['track_remaining'],
  why: { max_connection_pools: 'the number of connection pools is not bounded' },
}
const RETRY_BUDGET: Shape = { use: ['budget_percent', 'min_retry_concurrency'] }

/** The DEFAULT-priority thresholds; HIGH priority has no counterpart (every request is DEFAULT). */
function circuitBreakers(p: Problems, f: Field | undefined): CircuitBreakersConfig | undefined {
  const m = readField(p, f, CIRCUIT_BREAKERS)
  if (m === undefined) return undefined
  let out: CircuitBreakersConfig | undefined
  for (const item of asList(p, m.get('thresholds'))) {
    const t = readField(p, item, THRESHOLDS)
    if (t === undefined) continue
    const priority = present(t.get('priority')) ? asEnum(p, t.get('priority'), ['DEFAULT', 'HIGH']) : 'DEFAULT'
    if (priority !== 'DEFAULT') {
      if (priority === 'HIGH') p.report(item.path, 'HIGH priority thresholds are not supported: every request is DEFAULT priority; dropped')
      continue
    }
    if (out !== undefined) {
      p.report(item.path, 'a second DEFAULT priority threshold set; dropped')
      continue
    }
    const cb: CircuitBreakersConfig = {}
    put(cb, 'maxConnections', asUint(p, t.get('max_connections'), 1, 1e9))
    put(cb, 'maxPendingRequests', asUint(p, t.get('max_pending_requests'), 0, 1e9))
    put(cb, 'maxRequests', asUint(p, t.get('max_requests'), 1, 1e9))
    put(cb, 'maxRetries', asUint(p, t.get('max_retries'), 0, 1e9))
    const budget = readField(p, t.get('retry_budget'), RETRY_BUDGET)
    if (budget !== undefined) {
      const rb: NonNullable<CircuitBreakersConfig['retryBudget']> = {}
      put(rb, 'budgetPercent', percent(p, budget.get('budget_percent')))
      put(rb, 'minRetryConcurrency', asUint(p, budget.get('min_retry_concurrency'), 0, 1e9))
      cb.retryBudget = rb
    }
    out = cb
  }
  return out
}

const HTTP_PROTOCOL_OPTIONS_TYPE = 'envoy.extensions.upstreams.http.v3.HttpProtocolOptions'
const HTTP_PROTOCOL_OPTIONS: Shape = {
  use: ['common_http_protocol_options'],
  why: {
    explicit_http_config: 'the upstream protocol is HTTP/1.1',
    use_downstream_protocol_config: 'the upstream protocol is HTTP/1.1',
    auto_config: 'the upstream protocol is HTTP/1.1',
    upstream_http_protocol_options: PROTOCOL_OPTIONS,
    http_filters: 'upstream HTTP filters are not supported',
    header_validation_config: PROTOCOL_OPTIONS,
  },
}
const COMMON_HTTP_OPTIONS: Shape = {
  use: ['idle_timeout'],
  why: {
    max_connection_duration: 'connection lifetimes are not bounded',
    max_headers_count: PROTOCOL_OPTIONS,
    max_stream_duration: 'stream durations are bounded by the route (maxStreamDuration)',
    headers_with_underscores_action: PROTOCOL_OPTIONS,
    max_requests_per_connection: 'requests per connection are not bounded',
    max_response_headers_kb: PROTOCOL_OPTIONS,
  },
}

/** `common_http_protocol_options.idle_timeout`, from the HttpProtocolOptions extension or the deprecated field. */
function idleTimeout(p: Problems, m: Map<string, Field>): string | undefined {
  let timeout: string | undefined
  for (const entry of asMap(p, m.get('typed_extension_protocol_options'))) {
    const type = typeName(p, entry)
    if (entry.key !== HTTP_PROTOCOL_OPTIONS_TYPE && type !== HTTP_PROTOCOL_OPTIONS_TYPE) {
      p.report(entry.path, `protocol options "${clip(entry.key)}" are not supported`)
      continue
    }
    const options = readField(p, entry, HTTP_PROTOCOL_OPTIONS)
    const common = readField(p, options?.get('common_http_protocol_options'), COMMON_HTTP_OPTIONS)
    timeout = asDuration(p, common?.get('idle_timeout')) ?? timeout
  }
  const legacy = readField(p, m.get('common_http_protocol_options'), COMMON_HTTP_OPTIONS)
  return asDuration(p, legacy?.get('idle_timeout')) ?? timeout
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
    detect_degraded_hosts: 'degraded endpoints are not tracked',
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
    always_log_health_check_success: 'health check event logs are not supported; listen to the mesh\'s endpointHealth event',
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

function health(p: Problems, m: Map<string, Field>, cluster: ClusterConfig): void {
  const od = readField(p, m.get('outlier_detection'), OUTLIER_DETECTION)
  if (od !== undefined) {
    const out: OutlierDetectionConfig = {}
    for (const [from, to] of OD_COUNTS) put(out, to, asUint(p, od.get(from), 0, 1e9))
    for (const [from, to] of OD_PERCENTS) put(out, to, asUint(p, od.get(from), 0, 100))
    for (const [from, to] of OD_DURATIONS) put(out, to, asDuration(p, od.get(from)))
    for (const [from, to] of OD_BOOLS) put(out, to, asBool(p, od.get(from)))
    cluster.outlierDetection = out
  }
  const checks = asList(p, m.get('health_checks'))
  for (const extra of checks.slice(1)) p.report(extra.path, 'a cluster has at most one health check (as in Envoy); dropped')
  const first = checks[0]
  if (first !== undefined) {
    const check = healthCheck(p, first)
    if (check !== undefined) cluster.healthChecks = [check]
  }
  const lb = readField(p, m.get('common_lb_config'), COMMON_LB)
  const panic = percent(p, lb?.get('healthy_panic_threshold'))
  if (panic !== undefined) cluster.commonLbConfig = { healthyPanicThreshold: panic }
}

/**
 * An Envoy `Percent`: `{ value: 50.0 }`, or a bare number in hand-written YAML. Decoded from
 * protobuf, a Percent of 0 is an empty message (proto3 leaves a default value out): 0, which
 * for the panic threshold means "never panic", not "unset".
 */
function percent(p: Problems, f: Field | undefined): number | undefined {
  if (present(f) && typeof f.value === 'object' && !Array.isArray(f.value) && Object.keys(f.value as object).length === 0) return 0
  return asNumber(p, f, 0, 100)
}

function healthCheck(p: Problems, f: Field): HealthCheckConfig | undefined {
  const m = readField(p, f, HEALTH_CHECK)
  if (m === undefined) return undefined
  const http = readField(p, m.get('http_health_check'), HTTP_HEALTH_CHECK)
  const timeout = asDuration(p, m.get('timeout'))
  const interval = asDuration(p, m.get('interval'))
  const unhealthyThreshold = asUint(p, m.get('unhealthy_threshold'), 1, 1e6)
  const healthyThreshold = asUint(p, m.get('healthy_threshold'), 1, 1e6)
  const path = asString(p, http?.get('path'))
  if (http === undefined || path === undefined || timeout === undefined || interval === undefined || unhealthyThreshold === undefined || healthyThreshold === undefined) {
    p.report(f.path, 'a health check needs timeout, interval, unhealthy_threshold, healthy_threshold and http_health_check.path; dropped')
    return undefined
  }
  const httpHealthCheck: HealthCheckConfig['httpHealthCheck'] = { path }
  put(httpHealthCheck, 'host', asString(p, http.get('host')))
  put(httpHealthCheck, 'expectedStatuses', statusRanges(p, http.get('expected_statuses')))
  put(httpHealthCheck, 'retriableStatuses', statusRanges(p, http.get('retriable_statuses')))
  put(httpHealthCheck, 'requestHeadersToAdd', headersToAdd(p, http.get('request_headers_to_add'), true))
  const check: HealthCheckConfig = { timeout, interval, unhealthyThreshold, healthyThreshold, httpHealthCheck }
  put(check, 'intervalJitter', asDuration(p, m.get('interval_jitter')))
  put(check, 'noTrafficInterval', asDuration(p, m.get('no_traffic_interval')))
  return check
}

function statusRanges(p: Problems, f: Field | undefined): StatusRange[] | undefined {
  const out: StatusRange[] = []
  for (const item of asList(p, f)) {
    const r = readField(p, item, INT64_RANGE)
    const start = asUint(p, r?.get('start'), 100, 600)
    const end = asUint(p, r?.get('end'), 100, 600)
    if (start !== undefined && end !== undefined && start < end) out.push({ start, end })
    else if (r !== undefined) p.report(item.path, 'a status range needs start < end, within 100..600; dropped')
  }
  return out.length > 0 ? out : undefined
}

// ---------------------------------------------------------------- upstream TLS

const TRANSPORT_SOCKET: Shape = { use: ['name', 'typed_config'] }
const TLS_NAME = 'envoy.transport_sockets.tls'
const TLS_TYPE = 'envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext'
const RAW_BUFFER_NAME = 'envoy.transport_sockets.raw_buffer'
const RAW_BUFFER_TYPE = 'envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer'
const UPSTREAM_TLS: Shape = {
  use: ['common_tls_context', 'sni'],
  why: {
    allow_renegotiation: 'TLS renegotiation is not supported',
    max_session_keys: 'the session cache is Node\'s',
    auto_host_sni: 'set sni',
    auto_sni_san_validation: 'set the SAN matchers',
    enforce_rsa_key_usage: 'key usage is checked by Node',
  },
}
/** The TLS of a transport socket: `undefined` for plain text (raw_buffer or none), or what the UpstreamTlsContext says. */
function transportSocket(p: Problems, f: Field | undefined): UpstreamTlsTranslation | undefined {
  const m = readField(p, f, TRANSPORT_SOCKET)
  if (m === undefined || f === undefined) return undefined
  const name = asString(p, m.get('name'))
  const typed = m.get('typed_config')
  const type = typeName(p, typed)
  if (name === RAW_BUFFER_NAME || type === RAW_BUFFER_TYPE) return undefined
  if (name !== TLS_NAME && type !== TLS_TYPE) {
    p.report(f.path, `transport socket "${clip(name ?? type)}" is not supported; plain HTTP is used`)
    return undefined
  }
  const ctx = readField(p, typed, UPSTREAM_TLS)
  const sni = asString(p, ctx?.get('sni'))
  const common = translateCommonTlsContext(p, ctx?.get('common_tls_context'))
  if (common.validation === undefined && common.validationSecret === undefined && common.validationProvider === undefined) {
    // Envoy without a validation context does not verify the server; the mesh does.
    p.report(f.path, 'upstream TLS without a validation context: Envoy would not verify the server; the mesh verifies it against its default trust')
  }
  return { path: f.path, sni, ...common }
}

/** The TLS settings known without resolving any secret. */
function inlineTls(t: UpstreamTlsTranslation): ClusterTlsConfig | undefined {
  return resolveUpstreamTls(t, new Map(), undefined)
}

/**
 * Our `ClusterTlsConfig` for a translated TLS context, with named SDS secrets looked up in
 * `secrets`. A certificate provider (gRPC proxyless) means the workload identity, which is
 * our default for `mutual`. Unknown secrets are reported to `p` (when given).
 */
export function resolveUpstreamTls(t: UpstreamTlsTranslation, secrets: ReadonlyMap<string, SecretTranslation>, p: Problems | undefined): ClusterTlsConfig | undefined {
  let certificate = t.certificate
  let validation = t.validation
  if (t.certificateSecret !== undefined) {
    const s = secrets.get(t.certificateSecret)?.tlsCertificate
    if (s !== undefined) certificate = s
    else p?.report(t.path, `secret "${clip(t.certificateSecret)}" (a TLS certificate) is not defined; no client certificate is presented`)
  }
  if (t.validationSecret !== undefined) {
    const s = secrets.get(t.validationSecret)?.validationContext
    if (s !== undefined) validation = { trustedCa: s.trustedCa ?? validation?.trustedCa, verifyIdentities: validation?.verifyIdentities ?? s.verifyIdentities }
    else p?.report(t.path, `secret "${clip(t.validationSecret)}" (a validation context) is not defined; the default trust applies`)
  }
  const mutual = certificate !== undefined || t.certificateProvider !== undefined
  const tls: ClusterTlsConfig = { mode: mutual ? 'mutual' : 'simple' }
  if (t.sni !== undefined && t.sni !== '') tls.sni = t.sni
  if (certificate !== undefined) {
    tls.certificate = certificate.certificate
    tls.privateKey = certificate.privateKey
  }
  if (validation?.trustedCa !== undefined) tls.trustBundle = validation.trustedCa
  if (validation?.verifyIdentities !== undefined) tls.verifyIdentities = [...validation.verifyIdentities]
  return tls
}
