/**
 * Envoy `Listener` with its `HttpConnectionManager`: where routes come from (`route_config`
 * inline, or `rds` by name) and what the HTTP filters mean for them. Listeners arrive in two
 * shapes: with `filter_chains` (a bootstrap, a sidecar) and with `api_listener` (what istiod
 * sends proxyless clients, one per authority the app calls).
 *
 * HTTP filters honoured: the router (what the mesh does anyway) and the fault filter
 * (filter-level defaults, per-route overrides). Any other filter is reported: its effect is
 * not applied. Security filters say so loudly, since leaving them out lets requests through
 * that Envoy would refuse.
 */
import type { FaultConfig } from '../types.js'
import { listenAddress } from './address.js'
import { FAULT_FILTER, FAULT_TYPE, translateHttpFault } from './fault.js'
import {
  asList,
  asString,
  clip,
  isObject,
  present,
  readField,
  readObject,
  typeName,
  type Field,
  type Problems,
  type Shape,
} from './reader.js'
import { translateRouteConfiguration, type HttpFilters, type RouteConfigurationTranslation } from './route.js'

/** One HTTP connection manager of a listener. */
export interface ConnectionManagerTranslation {
  /** The HCM's path in the input. */
  readonly path: string
  /** What its HTTP filters mean for its routes. */
  readonly filters: HttpFilters
  /** `rds.route_config_name`: the RouteConfiguration to fetch (xDS), when routes are not inline. */
  readonly routeConfigName: string | undefined
  /** The inline `route_config`, translated with `filters`. */
  readonly routeConfig: RouteConfigurationTranslation | undefined
}

/** The result of {@link translateListener}. */
export interface ListenerTranslation {
  readonly name: string | undefined
  /** `address.socket_address` as `host:port` (where `sidecarless proxy` would listen). */
  readonly address: string | undefined
  /** The connection managers, from `api_listener` or every filter chain, in order. */
  readonly connectionManagers: readonly ConnectionManagerTranslation[]
}

const LISTENER: Shape = {
  use: ['name', 'address', 'filter_chains', 'api_listener'],
  // Istio sets these on every listener; they change nothing in-process.
  drop: ['traffic_direction', 'continue_on_listener_filters_timeout', 'bind_to_port', 'stat_prefix'],
  why: {
    additional_addresses: 'additional listener addresses are not supported; the proxy listens on one address',
    listener_filters: 'listener filters are not supported',
    default_filter_chain: 'the default filter chain is not imported',
    listener_filters_timeout: 'set listener.mtls.handshakeTimeout instead',
    per_connection_buffer_limit_bytes: 'connection buffer limits are not supported',
    filter_chain_matcher: 'filter chain matchers are not supported',
    metadata: 'listener metadata is not imported',
    socket_options: 'socket options are not supported',
    access_log: 'access logs are not imported',
    connection_balance_config: 'connection balancing is not supported',
    use_original_dst: 'original destination listeners are not supported',
  },
}
const API_LISTENER: Shape = { use: ['api_listener'] }
const FILTER_CHAIN: Shape = {
  use: ['filters'],
  drop: ['name'],
  why: {
    filter_chain_match: 'filter chain match criteria are not supported; the routes of every chain are imported',
    transport_socket: 'downstream TLS is configured on the mesh listener (listener.mtls), not imported',
    transport_socket_connect_timeout: 'downstream TLS is configured on the mesh listener, not imported',
    metadata: 'filter chain metadata is not imported',
  },
}
const NETWORK_FILTER: Shape = { use: ['name', 'typed_config'], why: { config_discovery: 'filter config discovery (ECDS) is not supported' } }
const HCM_NAME = 'envoy.filters.network.http_connection_manager'
const HCM_TYPE = 'envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager'
const NOT_APPLIED = 'connection manager settings are not applied by the mesh'
const HCM: Shape = {
  use: ['route_config', 'rds', 'http_filters'],
  // Stats prefixes and codec choice have no meaning in-process.
  drop: ['stat_prefix', 'codec_type'],
  why: {
    scoped_routes: 'scoped routes are not supported',
    access_log: 'access logs are not imported',
    tracing: 'tracing is configured on the mesh (tracing), not imported',
  },
  other: NOT_APPLIED,
}
const RDS: Shape = { use: ['route_config_name', 'config_source'] }
const HTTP_FILTER: Shape = {
  use: ['name', 'typed_config', 'is_optional', 'disabled'],
  why: { config_discovery: 'filter config discovery (ECDS) is not supported' },
}
const ROUTER_TYPE = 'envoy.extensions.filters.http.router.v3.Router'
const ROUTER_NAME = 'envoy.filters.http.router'
const ROUTER: Shape = {
  use: [],
  drop: ['dynamic_stats', 'start_child_span', 'suppress_envoy_headers', 'suppress_grpc_request_failure_code_stats'],
  other: 'router filter settings are not applied',
}
/** Filters that refuse requests: leaving them out lets requests through that Envoy refuses. */
const ENFORCING: Readonly<Record<string, string>> = {
  'envoy.filters.http.rbac': 'RBAC',
  'envoy.extensions.filters.http.rbac.v3.RBAC': 'RBAC',
  'envoy.filters.http.jwt_authn': 'JWT authentication',
  'envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication': 'JWT authentication',
  'envoy.filters.http.ext_authz': 'external authorization',
  'envoy.extensions.filters.http.ext_authz.v3.ExtAuthz': 'external authorization',
  'envoy.filters.http.local_ratelimit': 'local rate limiting',
  'envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit': 'local rate limiting',
  'envoy.filters.http.ratelimit': 'rate limiting',
  'envoy.extensions.filters.http.ratelimit.v3.RateLimit': 'rate limiting',
}

/**
 * Translates an Envoy `Listener`: its connection managers and their routes. Never throws on
 * bad input (but see {@link Problems.step}); returns `undefined` when it is not an object.
 */
export function translateListener(resource: unknown, path: string, p: Problems): ListenerTranslation | undefined {
  const m = readField(p, { key: path, name: 'listener', value: resource, path }, LISTENER)
  if (m === undefined) return undefined
  const name = asString(p, m.get('name'))
  const addressField = m.get('address')
  const address = present(addressField) ? listenAddress(p, addressField) : undefined
  const connectionManagers: ConnectionManagerTranslation[] = []
  const api = readField(p, m.get('api_listener'), API_LISTENER)
  if (api !== undefined) {
    const hcm = translateConnectionManager(p, api.get('api_listener'))
    if (hcm !== undefined) connectionManagers.push(hcm)
  }
  for (const chain of asList(p, m.get('filter_chains'))) {
    const c = readField(p, chain, FILTER_CHAIN)
    for (const filter of asList(p, c?.get('filters'))) {
      const f = readField(p, filter, NETWORK_FILTER)
      if (f === undefined) continue
      const filterName = asString(p, f.get('name'))
      const typed = f.get('typed_config')
      const type = typeName(p, typed)
      if (filterName !== HCM_NAME && type !== HCM_TYPE) {
        p.report(filter.path, `network filter "${clip(filterName ?? type)}" is not supported; only ${HCM_NAME} is imported`)
        continue
      }
      if (!present(typed)) {
        p.report(filter.path, 'http_connection_manager has no typed_config; nothing imported')
        continue
      }
      const hcm = translateConnectionManager(p, typed)
      if (hcm !== undefined) connectionManagers.push(hcm)
    }
  }
  return { name, address, connectionManagers }
}

/** Envoy `HttpConnectionManager` (the typed_config of the filter, or of an api_listener). */
export function translateConnectionManager(p: Problems, f: Field | undefined): ConnectionManagerTranslation | undefined {
  if (f === undefined) return undefined
  const type = typeName(p, f)
  if (type !== '' && type !== HCM_TYPE) {
    p.report(f.path, `expected an HttpConnectionManager, got ${clip(type)}; nothing imported`)
    return undefined
  }
  const hcm = readField(p, f, HCM)
  if (hcm === undefined) return undefined
  const filters = httpFilters(p, hcm.get('http_filters'))
  let routeConfigName: string | undefined
  const rds = readField(p, hcm.get('rds'), RDS)
  if (rds !== undefined) routeConfigName = asString(p, rds.get('route_config_name'))
  const inline = hcm.get('route_config')
  const routeConfig = present(inline) ? translateRouteConfiguration(inline.value, inline.path, p, filters) : undefined
  if (routeConfig === undefined && routeConfigName === undefined) p.report(f.path, 'the connection manager has neither route_config nor rds; no routes')
  return { path: f.path, filters, routeConfigName, routeConfig }
}

/** The router filter is what the mesh does anyway; the fault filter is honoured; any other HTTP filter is reported. */
function httpFilters(p: Problems, f: Field | undefined): HttpFilters {
  let fault: FaultConfig | null | undefined
  let router = false
  for (const item of asList(p, f)) {
    if (!isObject(item.value)) {
      p.report(item.path, 'expected an HTTP filter object; dropped')
      continue
    }
    const m = readObject(p, item.value, item.path, HTTP_FILTER)
    const name = asString(p, m.get('name')) ?? ''
    const typed = m.get('typed_config')
    const type = typeName(p, typed)
    if (m.get('disabled')?.value === true) continue
    if (name === FAULT_FILTER || type === FAULT_TYPE) {
      fault = present(typed) ? (translateHttpFault(p, typed) ?? null) : null
      continue
    }
    if (name === ROUTER_NAME || type === ROUTER_TYPE) {
      router = true
      readField(p, typed, ROUTER)
      continue
    }
    const label = ENFORCING[type] ?? ENFORCING[name]
    if (label !== undefined) {
      p.report(item.path, `HTTP filter "${clip(name === '' ? type : name)}" is not supported: its ${label} is NOT enforced here, so requests it would refuse are routed`)
    } else {
      p.report(item.path, `HTTP filter "${clip(name === '' ? type : name)}" is not supported`)
    }
  }
  if (!router && f !== undefined && present(f)) p.report(f.path, `no ${ROUTER_NAME} filter: Envoy would route nothing; the mesh routes as if it were last`)
  return { fault }
}
