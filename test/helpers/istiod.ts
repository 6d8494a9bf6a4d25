/**
 * xDS resources shaped as istiod writes them for proxyless gRPC clients, from
 * istio/istio pilot/pkg/networking/grpcgen (lds.go, rds.go, cds.go, grpcgen.go) and
 * pilot/pkg/security/authz/model (RBAC), in the codec's object form (proto3 JSON names,
 * `'@type'` on every Any):
 *
 * - outbound Listener: named `host:port` as requested, `address` the service VIP, an
 *   `api_listener` whose HttpConnectionManager has http_filters [fault, router] and RDS
 *   over ADS named `outbound|<port>||<host>` (clusterKey);
 * - RouteConfiguration of that name: the service's virtual hosts (domains host, host:port,
 *   short names), routes to `outbound|<port>|<subset>|<host>` clusters, weighted or not;
 * - Cluster: EDS over ADS, `eds_cluster_config.service_name` = the cluster name; ring hash
 *   (ApplyRingHashLoadBalancer), `max_requests`; ISTIO_MUTUAL as an UpstreamTlsContext whose
 *   certificate and validation come from certificate provider instance `default`
 *   (`default` / `ROOTCA`), SAN matchers exact SPIFFE IDs;
 * - inbound Listener `xds.istio.io/grpc/lds/inbound/<ip>:<port>`: one filter chain,
 *   `inbound-mtls` (DownstreamTlsContext, require_client_certificate) or
 *   `inbound-plaintext`, HCM with RBAC filters (DENY then ALLOW) and the router, and the
 *   inline route configuration `inbound` (non_forwarding_action).
 */
import type { XdsObject } from '../../src/xds/codec.js'

const HCM = 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager'
const ROUTER = 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router'
const FAULT = 'type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault'
const RBAC = 'type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC'
const UPSTREAM_TLS = 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext'
const DOWNSTREAM_TLS = 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext'

/** `outbound|<port>|<subset>|<host>` (model.BuildSubsetKey). */
export function clusterKey(host: string, port: number, subset = ''): string {
  return `outbound|${port}|${subset}|${host}`
}

/** The supported http filters of grpcgen: fault, then router. */
export const GRPC_FILTERS: XdsObject[] = [
  { name: 'envoy.filters.http.fault', typed_config: { '@type': FAULT } },
  { name: 'envoy.filters.http.router', typed_config: { '@type': ROUTER } },
]

/** The outbound Listener istiod sends for a requested `name` (`host:port`). */
export function apiListener(name: string, host: string, port: number, vip = '10.0.0.1'): XdsObject {
  return {
    name,
    address: { socket_address: { address: vip, port_value: port } },
    api_listener: {
      api_listener: {
        '@type': HCM,
        http_filters: GRPC_FILTERS,
        rds: { config_source: { ads: {} }, route_config_name: clusterKey(host, port) },
      },
    },
  }
}

/** A route's action: one cluster or weighted ones ({ cluster: weight }). */
export type Target = string | Record<string, number>

/** One route of a virtual host. */
export interface RouteSpec {
  readonly prefix?: string
  readonly headers?: XdsObject[]
  readonly to: Target
  readonly timeout?: string
  readonly retry?: XdsObject
  readonly hashHeader?: string
  readonly fault?: XdsObject
}

/** A virtual host as BuildSidecarOutboundVirtualHosts writes it (domains host, host:port, short names). */
export function virtualHost(host: string, port: number, routes: RouteSpec[], extraDomains: string[] = []): XdsObject {
  const short = host.split('.')[0] as string
  const domains = [...new Set([host, `${host}:${port}`, short, `${short}:${port}`, ...extraDomains])]
  return {
    name: `${host}:${port}`,
    domains,
    routes: routes.map((r, i) => {
      const action: XdsObject = typeof r.to === 'string'
        ? { cluster: r.to }
        : { weighted_clusters: { clusters: Object.entries(r.to).map(([name, weight]) => ({ name, weight })), total_weight: Object.values(r.to).reduce((a, b) => a + b, 0) } }
      action['timeout'] = r.timeout ?? '0s'
      if (r.retry !== undefined) action['retry_policy'] = r.retry
      if (r.hashHeader !== undefined) action['hash_policy'] = [{ header: { header_name: r.hashHeader } }]
      const route: XdsObject = {
        name: i === routes.length - 1 ? 'default' : `route-${i}`,
        match: { prefix: r.prefix ?? '/', ...(r.headers === undefined ? {} : { headers: r.headers }) },
        route: action,
      }
      if (r.fault !== undefined) route['typed_per_filter_config'] = { 'envoy.filters.http.fault': { '@type': FAULT, ...r.fault } }
      return route
    }),
  }
}

/** The RouteConfiguration named `outbound|<port>||<host>`. */
export function routeConfig(host: string, port: number, routes: RouteSpec[], extraDomains: string[] = []): XdsObject {
  return { name: clusterKey(host, port), virtual_hosts: [virtualHost(host, port, routes, extraDomains)] }
}

/** Cluster options of a DestinationRule as grpcgen applies them. */
export interface ClusterSpec {
  readonly ringHash?: { min?: number; max?: number }
  readonly maxRequests?: number
  /** ISTIO_MUTUAL with these SANs (exact SPIFFE IDs). */
  readonly istioMutual?: readonly string[]
}

/** An EDS cluster (edsCluster) with the traffic policy applied. */
export function edsCluster(name: string, spec: ClusterSpec = {}): XdsObject {
  const c: XdsObject = {
    name,
    type: 'EDS',
    eds_cluster_config: { service_name: name, eds_config: { ads: {} } },
  }
  if (spec.ringHash !== undefined) {
    c['lb_policy'] = 'RING_HASH'
    c['ring_hash_lb_config'] = { minimum_ring_size: String(spec.ringHash.min ?? 1024), ...(spec.ringHash.max === undefined ? {} : { maximum_ring_size: String(spec.ringHash.max) }) }
  }
  if (spec.maxRequests !== undefined) c['circuit_breakers'] = { thresholds: [{ max_requests: spec.maxRequests }] }
  if (spec.istioMutual !== undefined) {
    c['transport_socket'] = {
      name: 'envoy.transport_sockets.tls',
      typed_config: {
        '@type': UPSTREAM_TLS,
        common_tls_context: commonTls(spec.istioMutual),
      },
    }
  }
  return c
}

/**
 * buildCommonTLSContext: certificate and validation from provider instance `default`, each
 * in the current field and in the deprecated one (istiod writes both since gRPC 1.66
 * dropped the deprecated ones; see grpcgen/tls_test.go).
 */
export function commonTls(sans: readonly string[]): XdsObject {
  const validation: XdsObject = { ca_certificate_provider_instance: { instance_name: 'default', certificate_name: 'ROOTCA' } }
  if (sans.length > 0) validation['match_subject_alt_names'] = sans.map((s) => ({ exact: s }))
  return {
    tls_certificate_provider_instance: { instance_name: 'default', certificate_name: 'default' },
    tls_certificate_certificate_provider_instance: { instance_name: 'default', certificate_name: 'default' },
    combined_validation_context: {
      validation_context_certificate_provider_instance: { instance_name: 'default', certificate_name: 'ROOTCA' },
      default_validation_context: validation,
    },
  }
}

/** An endpoint: `host:port`, with labels (Istio's `envoy.lb` metadata) and a weight. */
export interface EndpointSpec {
  readonly address: string
  readonly port: number
  readonly labels?: Record<string, string>
  readonly weight?: number
}

/** The ClusterLoadAssignment of a cluster (one locality). */
export function loadAssignment(clusterName: string, endpoints: EndpointSpec[]): XdsObject {
  return {
    cluster_name: clusterName,
    endpoints: [{
      locality: { region: 'r1', zone: 'z1' },
      lb_endpoints: endpoints.map((e) => ({
        endpoint: { address: { socket_address: { address: e.address, port_value: e.port } } },
        ...(e.labels === undefined ? {} : { metadata: { filter_metadata: { 'envoy.lb': e.labels } } }),
        load_balancing_weight: e.weight ?? 1,
      })),
      load_balancing_weight: 1,
    }],
  }
}

/** The inbound Listener of a proxyless server (buildInboundListeners). */
export function inboundListener(name: string, port: number, options: { mtls: boolean; deny?: XdsObject; allow?: XdsObject }): XdsObject {
  const filters: XdsObject[] = []
  if (options.deny !== undefined) filters.push({ name: 'envoy.filters.http.rbac.DENY', typed_config: { '@type': RBAC, rules: { action: 'DENY', policies: options.deny } } })
  if (options.allow !== undefined) filters.push({ name: 'envoy.filters.http.rbac', typed_config: { '@type': RBAC, rules: { policies: options.allow } } })
  filters.push({ name: 'envoy.filters.http.router', typed_config: { '@type': ROUTER } })
  const suffix = options.mtls ? 'mtls' : 'plaintext'
  const chain: XdsObject = {
    name: `inbound-${suffix}`,
    filters: [{
      name: `inbound-hcm${suffix}`,
      typed_config: {
        '@type': HCM,
        route_config: {
          name: 'inbound',
          virtual_hosts: [{ domains: ['*'], routes: [{ match: { prefix: '/' }, non_forwarding_action: {} }] }],
        },
        http_filters: filters,
      },
    }],
  }
  if (options.mtls) {
    chain['transport_socket'] = {
      name: 'envoy.transport_sockets.tls',
      typed_config: { '@type': DOWNSTREAM_TLS, common_tls_context: commonTls([]), require_client_certificate: true },
    }
  }
  return { name, address: { socket_address: { address: '0.0.0.0', port_value: port } }, filter_chains: [chain] }
}

/**
 * An Istio rule's RBAC policy (authz model Generate): permissions = one `and_rules` per `to`
 * (methods, paths as `or_rules`), principals = one `and_ids` per `from` (principals as
 * `authenticated.principal_name`, exact `spiffe://…`).
 */
export function rbacPolicy(rule: { methods?: string[]; paths?: string[]; principals?: string[]; notPaths?: string[] }): XdsObject {
  const perm: XdsObject[] = []
  if (rule.methods !== undefined) perm.push({ or_rules: { rules: rule.methods.map((m) => ({ header: { name: ':method', string_match: { exact: m } } })) } })
  if (rule.paths !== undefined) perm.push({ or_rules: { rules: rule.paths.map((p) => ({ url_path: { path: pathMatcher(p) } })) } })
  if (rule.notPaths !== undefined) perm.push({ not_rule: { or_rules: { rules: rule.notPaths.map((p) => ({ url_path: { path: pathMatcher(p) } })) } } })
  if (perm.length === 0) perm.push({ any: true })
  const ids: XdsObject[] = []
  if (rule.principals !== undefined) ids.push({ or_ids: { ids: rule.principals.map((p) => ({ authenticated: { principal_name: p === '*' ? { safe_regex: { regex: '.+' } } : { exact: `spiffe://${p}` } } })) } })
  if (ids.length === 0) ids.push({ any: true })
  return { permissions: [{ and_rules: { rules: perm } }], principals: [{ and_ids: { ids } }] }
}

function pathMatcher(p: string): XdsObject {
  if (p.endsWith('*')) return { prefix: p.slice(0, -1) }
  if (p.startsWith('*')) return { suffix: p.slice(1) }
  return { exact: p }
}

/** A bootstrap as istio-agent writes it (GenerateBootstrap), pointing at `serverUri`. */
export function agentBootstrap(serverUri: string, options: { certDir?: string; nodeId?: string } = {}): XdsObject {
  const b: XdsObject = {
    xds_servers: [{ server_uri: serverUri, channel_creds: [{ type: 'insecure' }], server_features: ['xds_v3'] }],
    node: {
      id: options.nodeId ?? 'sidecar~10.0.0.9~echo-client-1.default~default.svc.cluster.local',
      metadata: { GENERATOR: 'grpc', NAMESPACE: 'default', INSTANCE_IPS: '10.0.0.9' },
      locality: {},
      UserAgentVersionType: null,
    },
    server_listener_resource_name_template: 'xds.istio.io/grpc/lds/inbound/%s',
  }
  if (options.certDir !== undefined) {
    b['certificate_providers'] = {
      default: {
        plugin_name: 'file_watcher',
        config: {
          private_key_file: `${options.certDir}/key.pem`,
          certificate_file: `${options.certDir}/cert-chain.pem`,
          ca_certificate_file: `${options.certDir}/root-cert.pem`,
          refresh_interval: '900s',
        },
      },
    }
  }
  return b
}
