/**
 * Type URLs of the xDS resources and of the typed configs the mesh writes and reads.
 *
 * @module
 */

/** The prefix of every type URL (`type.googleapis.com/<full message name>`). */
export const TYPE_URL_PREFIX = 'type.googleapis.com/'

/** The type URL of a message, from its full name (`envoy.config.cluster.v3.Cluster`). */
export function typeUrlOf(typeName: string): string {
  return `${TYPE_URL_PREFIX}${typeName}`
}

/** The full message name a type URL names: whatever follows its last `/`. */
export function typeNameOf(typeUrl: string): string {
  return typeUrl.slice(typeUrl.lastIndexOf('/') + 1)
}

/** Full message names of the four resource types the control plane serves, and of Secret. */
export const ResourceTypeNames = {
  listener: 'envoy.config.listener.v3.Listener',
  route: 'envoy.config.route.v3.RouteConfiguration',
  cluster: 'envoy.config.cluster.v3.Cluster',
  endpoint: 'envoy.config.endpoint.v3.ClusterLoadAssignment',
  secret: 'envoy.extensions.transport_sockets.tls.v3.Secret',
} as const

/** The xDS resource types, by their short names (Envoy's LDS, RDS, CDS, EDS, SDS). */
export type ResourceKind = keyof typeof ResourceTypeNames

export const LISTENER_TYPE_URL = typeUrlOf(ResourceTypeNames.listener)
export const ROUTE_TYPE_URL = typeUrlOf(ResourceTypeNames.route)
export const CLUSTER_TYPE_URL = typeUrlOf(ResourceTypeNames.cluster)
export const ENDPOINT_TYPE_URL = typeUrlOf(ResourceTypeNames.endpoint)
export const SECRET_TYPE_URL = typeUrlOf(ResourceTypeNames.secret)

/** The resource kind of a type URL, or undefined for one the control plane does not serve. */
export function kindOfTypeUrl(typeUrl: string): ResourceKind | undefined {
  switch (typeUrl) {
    case LISTENER_TYPE_URL: return 'listener'
    case ROUTE_TYPE_URL: return 'route'
    case CLUSTER_TYPE_URL: return 'cluster'
    case ENDPOINT_TYPE_URL: return 'endpoint'
    case SECRET_TYPE_URL: return 'secret'
    default: return undefined
  }
}

/** Typed configs written inside resources. */
export const TypedConfigNames = {
  httpConnectionManager: 'envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
  router: 'envoy.extensions.filters.http.router.v3.Router',
  fault: 'envoy.extensions.filters.http.fault.v3.HTTPFault',
  rbac: 'envoy.extensions.filters.http.rbac.v3.RBAC',
  upstreamTlsContext: 'envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext',
  downstreamTlsContext: 'envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext',
  roundRobin: 'envoy.extensions.load_balancing_policies.round_robin.v3.RoundRobin',
  leastRequest: 'envoy.extensions.load_balancing_policies.least_request.v3.LeastRequest',
  random: 'envoy.extensions.load_balancing_policies.random.v3.Random',
  ringHash: 'envoy.extensions.load_balancing_policies.ring_hash.v3.RingHash',
  maglev: 'envoy.extensions.load_balancing_policies.maglev.v3.Maglev',
} as const
