/**
 * An authority → the API listener a proxyless client asks for by that name (A27), as
 * istiod's grpcgen writes it: an HttpConnectionManager with the fault and router filters
 * (router last) whose routes come over ADS (RDS).
 *
 * @module
 */
import type { XdsObject } from '../types.js'
import { TypedConfigNames } from '../type-urls.js'
import { typed } from './common.js'
import { FAULT_FILTER } from './route.js'

/** The HTTP filters of every API listener: fault, then router (gRPC requires the router last). */
const HTTP_FILTERS: readonly XdsObject[] = [
  { name: FAULT_FILTER, typed_config: typed(TypedConfigNames.fault) },
  { name: 'envoy.filters.http.router', typed_config: typed(TypedConfigNames.router) },
]

/** The Listener `name` whose routes are the RouteConfiguration `routeConfigName`. */
export function emitApiListener(name: string, routeConfigName: string): XdsObject {
  return {
    name,
    api_listener: {
      api_listener: typed(TypedConfigNames.httpConnectionManager, {
        rds: { config_source: { ads: {}, resource_api_version: 'V3' }, route_config_name: routeConfigName },
        http_filters: HTTP_FILTERS,
      }),
    },
  }
}
