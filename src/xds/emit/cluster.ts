/**
 * A cluster (or one of its subsets) → an Envoy EDS Cluster whose endpoints come over ADS,
 * as istiod's grpcgen writes them, with the policy fields gRPC clients honour
 * (`circuit_breakers` max_requests, `outlier_detection` (A50), ring hash (A42), upstream
 * mTLS from certificate provider instances (A29)) and the rest of Envoy's cluster model.
 *
 * @module
 */
import { defaults } from '../../config/defaults.js'
import type { CircuitBreakersConfig, ClusterConfig, ClusterTlsConfig, HealthCheckConfig, LoadBalancerPolicy, OutlierDetectionConfig } from '../../config/types.js'
import type { XdsObject } from '../types.js'
import { TypedConfigNames } from '../type-urls.js'
import { defined, duration, headerValueOption, type Omissions, typed } from './common.js'

/** The certificate provider instance every client is expected to have (istio-agent's bootstrap writes `default`). */
export const CERTIFICATE_PROVIDER_INSTANCE = 'default'

/** How a transport socket carrying TLS is named; gRPC requires exactly this (istiod's grpcgen). */
export const TLS_TRANSPORT_SOCKET = 'envoy.transport_sockets.tls'

const LB_POLICY = { round_robin: 'ROUND_ROBIN', least_request: 'LEAST_REQUEST', random: 'RANDOM', ring_hash: 'RING_HASH', maglev: 'MAGLEV' } as const

/**
 * The Cluster `name` for `cluster` (at `clusters[index]`). Every subset cluster carries the
 * parent's policies, as istiod's subset clusters inherit the DestinationRule's.
 */
export function emitCluster(cluster: ClusterConfig, name: string, index: number, omissions: Omissions): XdsObject {
  const path = `clusters[${index}]`
  const out: XdsObject = {
    name,
    type: 'EDS',
    eds_cluster_config: { eds_config: { ads: {}, resource_api_version: 'V3' }, service_name: name },
  }
  if (cluster.connectTimeout !== undefined) out['connect_timeout'] = duration(cluster.connectTimeout)
  Object.assign(out, loadBalancing(cluster))
  if (cluster.circuitBreakers !== undefined) out['circuit_breakers'] = circuitBreakers(cluster.circuitBreakers, `${path}.circuitBreakers`, omissions)
  if (cluster.outlierDetection !== undefined) out['outlier_detection'] = outlierDetection(cluster.outlierDetection)
  if (cluster.healthChecks?.length) out['health_checks'] = cluster.healthChecks.map(healthCheck)
  if (cluster.commonLbConfig?.healthyPanicThreshold !== undefined) {
    out['common_lb_config'] = { healthy_panic_threshold: { value: cluster.commonLbConfig.healthyPanicThreshold } }
  }
  if (cluster.tls !== undefined) {
    const socket = transportSocket(cluster.tls, `${path}.tls`, omissions)
    if (socket !== undefined) out['transport_socket'] = socket
  }
  // Istio's mark of a service outside the mesh (a MESH_EXTERNAL ServiceEntry): no peer header.
  if (cluster.peerMetadata === false) out['metadata'] = { filter_metadata: { istio: { external: true } } }
  if (cluster.rateLimit !== undefined) omissions.add(`${path}.rateLimit`, 'cluster rate limits have no xDS field')
  if (cluster.concurrencyLimit !== undefined) omissions.add(`${path}.concurrencyLimit`, 'concurrency limits have no xDS field')
  if (cluster.idleTimeout !== undefined) omissions.add(`${path}.idleTimeout`, 'the idle timeout is not carried over xDS')
  return out
}

/**
 * `lb_policy` and its options. Policies gRPC does not implement (least request, random,
 * maglev) also get a `load_balancing_policy` list ending in one it does (A52): clients pick
 * the first they support, Envoy the first too. gRPC clients without A52 refuse them.
 */
function loadBalancing(c: ClusterConfig): XdsObject {
  // Validation accepts Envoy's spelling too (`RING_HASH`); the mesh reads it as the lower case.
  const policy = (c.loadBalancer ?? defaults.loadBalancer).toLowerCase() as LoadBalancerPolicy
  const out: XdsObject = {}
  if (policy !== 'round_robin') out['lb_policy'] = LB_POLICY[policy]
  const ringHash = defined({
    minimum_ring_size: c.ringHash?.minimumRingSize === undefined ? undefined : String(c.ringHash.minimumRingSize),
    maximum_ring_size: c.ringHash?.maximumRingSize === undefined ? undefined : String(c.ringHash.maximumRingSize),
  })
  switch (policy) {
    case 'ring_hash':
      out['ring_hash_lb_config'] = { ...ringHash, hash_function: 'XX_HASH' }
      break
    case 'least_request': {
      const lr = c.leastRequest?.choiceCount === undefined ? {} : { choice_count: c.leastRequest.choiceCount }
      if (c.leastRequest?.choiceCount !== undefined) out['least_request_lb_config'] = lr
      out['load_balancing_policy'] = policies(['least_request', typed(TypedConfigNames.leastRequest, lr)], ['round_robin', typed(TypedConfigNames.roundRobin)])
      break
    }
    case 'random':
      out['load_balancing_policy'] = policies(['random', typed(TypedConfigNames.random)], ['round_robin', typed(TypedConfigNames.roundRobin)])
      break
    case 'maglev': {
      const mg = c.maglev?.tableSize === undefined ? {} : { table_size: String(c.maglev.tableSize) }
      if (c.maglev?.tableSize !== undefined) out['maglev_lb_config'] = mg
      // Maglev and ring hash both hash the route's hash policy onto the endpoints.
      out['load_balancing_policy'] = policies(['maglev', typed(TypedConfigNames.maglev, mg)], ['ring_hash', typed(TypedConfigNames.ringHash, { ...ringHash, hash_function: 'XX_HASH' })])
      break
    }
    case 'round_robin':
      break
  }
  return out
}

/** A `load_balancing_policy` list; each entry is named as Envoy names the extension (`envoy.load_balancing_policies.<policy>`). */
function policies(...configs: [string, XdsObject][]): XdsObject {
  return { policies: configs.map(([policy, typed_config]) => ({ typed_extension_config: { name: `envoy.load_balancing_policies.${policy}`, typed_config } })) }
}

function circuitBreakers(cb: CircuitBreakersConfig, path: string, omissions: Omissions): XdsObject {
  const threshold: XdsObject = defined({
    max_connections: cb.maxConnections,
    max_pending_requests: cb.maxPendingRequests,
    max_requests: cb.maxRequests,
    max_retries: cb.maxRetries,
  })
  if (cb.retryBudget !== undefined) {
    threshold['retry_budget'] = defined({
      budget_percent: cb.retryBudget.budgetPercent === undefined ? undefined : { value: cb.retryBudget.budgetPercent },
      min_retry_concurrency: cb.retryBudget.minRetryConcurrency,
    })
  }
  if (cb.errorRate !== undefined) omissions.add(`${path}.errorRate`, 'the error-rate breaker has no xDS field')
  return { thresholds: [threshold] }
}

const OD_UINT = [
  ['consecutive5xx', 'consecutive_5xx'], ['consecutiveGatewayFailure', 'consecutive_gateway_failure'],
  ['enforcingConsecutive5xx', 'enforcing_consecutive_5xx'], ['enforcingConsecutiveGatewayFailure', 'enforcing_consecutive_gateway_failure'],
  ['maxEjectionPercent', 'max_ejection_percent'], ['successRateMinimumHosts', 'success_rate_minimum_hosts'],
  ['successRateRequestVolume', 'success_rate_request_volume'], ['successRateStdevFactor', 'success_rate_stdev_factor'],
  ['enforcingSuccessRate', 'enforcing_success_rate'], ['failurePercentageThreshold', 'failure_percentage_threshold'],
  ['failurePercentageMinimumHosts', 'failure_percentage_minimum_hosts'], ['failurePercentageRequestVolume', 'failure_percentage_request_volume'],
  ['enforcingFailurePercentage', 'enforcing_failure_percentage'],
] as const satisfies readonly (readonly [keyof OutlierDetectionConfig, string])[]
const OD_DURATION = [['interval', 'interval'], ['baseEjectionTime', 'base_ejection_time'], ['maxEjectionTime', 'max_ejection_time']] as const
const OD_BOOL = [['alwaysEjectOneHost', 'always_eject_one_host'], ['successfulActiveHealthCheckUnejectHost', 'successful_active_health_check_uneject_host']] as const

/** Envoy `OutlierDetection`: only the fields set (Envoy's defaults are ours). */
function outlierDetection(od: OutlierDetectionConfig): XdsObject {
  const out: XdsObject = {}
  for (const [from, to] of OD_UINT) if (od[from] !== undefined) out[to] = od[from]
  for (const [from, to] of OD_DURATION) if (od[from] !== undefined) out[to] = duration(od[from])
  for (const [from, to] of OD_BOOL) if (od[from] !== undefined) out[to] = od[from]
  return out
}

function healthCheck(h: HealthCheckConfig): XdsObject {
  const http = h.httpHealthCheck
  return defined({
    timeout: duration(h.timeout),
    interval: duration(h.interval),
    interval_jitter: h.intervalJitter === undefined ? undefined : duration(h.intervalJitter),
    unhealthy_threshold: h.unhealthyThreshold,
    healthy_threshold: h.healthyThreshold,
    no_traffic_interval: h.noTrafficInterval === undefined ? undefined : duration(h.noTrafficInterval),
    http_health_check: defined({
      path: http.path,
      host: http.host,
      expected_statuses: http.expectedStatuses?.map((r) => ({ start: String(r.start), end: String(r.end) })),
      retriable_statuses: http.retriableStatuses?.map((r) => ({ start: String(r.start), end: String(r.end) })),
      request_headers_to_add: http.requestHeadersToAdd?.map(headerValueOption),
    }),
  })
}

/**
 * Upstream TLS as grpcgen writes it: certificates come from the client's own certificate
 * provider instance (`default`: the workload certificate, `ROOTCA`: the trust bundle), in
 * both the current fields and the ones older gRPC reads; the server's identities as SAN
 * matchers. Files named in the config are local to the control plane, so they are not sent.
 */
function transportSocket(tls: ClusterTlsConfig, path: string, omissions: Omissions): XdsObject | undefined {
  const mode = tls.mode.toLowerCase()
  if (mode === 'disable') return undefined
  for (const key of ['trustBundle', 'certificate', 'privateKey'] as const) {
    if (tls[key] !== undefined) omissions.add(`${path}.${key}`, `not sent: each client uses its certificate provider instance "${CERTIFICATE_PROVIDER_INSTANCE}", as istiod configures proxyless clients`)
  }
  const sans = (tls.verifyIdentities ?? []).map((id) => (id.endsWith('/*') ? { prefix: id.slice(0, -1) } : { exact: id }))
  const rootCa = { instance_name: CERTIFICATE_PROVIDER_INSTANCE, certificate_name: 'ROOTCA' }
  const validation: XdsObject = { ca_certificate_provider_instance: rootCa }
  if (sans.length > 0) validation['match_subject_alt_names'] = sans
  const common: XdsObject = {
    combined_validation_context: {
      default_validation_context: validation,
      validation_context_certificate_provider_instance: rootCa,
    },
  }
  if (mode !== 'simple') {
    const identity = { instance_name: CERTIFICATE_PROVIDER_INSTANCE, certificate_name: 'default' }
    common['tls_certificate_provider_instance'] = identity
    common['tls_certificate_certificate_provider_instance'] = identity
  }
  const context = defined({ common_tls_context: common, sni: tls.sni })
  return { name: TLS_TRANSPORT_SOCKET, typed_config: typed(TypedConfigNames.upstreamTlsContext, context) }
}
