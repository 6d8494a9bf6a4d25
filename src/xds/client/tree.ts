/**
 * From subscribed Listeners to complete trees, as gRPC's dependency manager does
 * (`@grpc/grpc-js-xds` src/xds-dependency-manager.ts, gRFC A74): a Listener names its
 * RouteConfiguration (RDS), the virtual host matching the Listener's authority names
 * Clusters (CDS), an EDS Cluster names its ClusterLoadAssignment. A tree is ready only when
 * every node has arrived or is known not to exist; until then the last ready tree of that
 * Listener stays in use.
 *
 * Known not to exist: a missing RouteConfiguration, or no virtual host for the authority,
 * gives a virtual host without routes (404, as Envoy answers a request no route matches);
 * a missing Cluster, or missing endpoints, a cluster without endpoints (503
 * `no healthy upstream`). A Cluster the server deleted while a route still names it keeps
 * its last version (make-before-break: it goes once nothing routes to it).
 *
 * @module
 */
import { translateRouteConfiguration, Problems, type HttpFilters, type RouteConfigurationTranslation } from '../../config/envoy/index.js'
import type { ClusterConfig, VirtualHostConfig } from '../../config/types.js'
import { DomainIndex } from '../../router/domain-index.js'
import type { XdsObject } from '../types.js'
import type { ResourceEntry } from './protocol.js'
import { routeClusters, WITH_FAULT_FILTER, type ClientListener, type ClusterValue, type EndpointValue, type ListenerValue, type RouteValue } from './resources.js'

/** Read access to the cached resources. */
export interface ResourceView {
  listener(name: string): ResourceEntry<ListenerValue> | undefined
  route(name: string): ResourceEntry<RouteValue> | undefined
  cluster(name: string): ResourceEntry<ClusterValue> | undefined
  endpoint(name: string): ResourceEntry<EndpointValue> | undefined
}

/** An outbound Listener resolved into our model. */
export interface ListenerTree {
  readonly listener: string
  /** Its routes: the virtual host of its route configuration that matches the Listener's authority. */
  readonly routes: VirtualHostConfig
  /** Every cluster the routes name, complete (with endpoints) or empty. */
  readonly clusters: ReadonlyMap<string, ClusterConfig>
}

/** Where an outbound Listener stands now. */
export type Resolution =
  | { readonly kind: 'pending' }
  | { readonly kind: 'absent' }
  | {
    readonly kind: 'ready'
    readonly tree: ListenerTree
    /** The objects the tree was built from: the same objects again make the same tree. */
    readonly inputs: readonly unknown[]
  }

/** What each type needs subscribed. */
export interface Needs {
  readonly routes: Set<string>
  readonly clusters: Set<string>
  readonly endpoints: Set<string>
}

const translations = new WeakMap<object, Map<string, RouteConfigurationTranslation>>()
const indexes = new WeakMap<RouteConfigurationTranslation, DomainIndex<number>>()

/** The route configuration a client Listener serves, translated with its filters. */
export function listenerRoutes(view: ResourceView, listener: ClientListener): { translation: RouteConfigurationTranslation | undefined; state: 'ready' | 'pending' | 'absent' } {
  if (listener.inlineRoutes !== undefined) return { translation: translated(listener.inlineRoutes, listener.inlineRoutes, listener.filters), state: 'ready' }
  const entry = view.route(listener.rdsName ?? '')
  if (entry?.value !== undefined) return { translation: translated(entry.value, entry.value.raw, listener.filters, entry.value), state: 'ready' }
  return { translation: undefined, state: entry?.status === 'DOES_NOT_EXIST' ? 'absent' : 'pending' }
}

/** Translations are cached per resource and per set of HTTP filters (the fault filter changes what routes mean). */
function translated(key: object, raw: XdsObject, filters: HttpFilters, value?: RouteValue): RouteConfigurationTranslation {
  const filtersKey = JSON.stringify(filters)
  if (value !== undefined && filtersKey === JSON.stringify(WITH_FAULT_FILTER)) return value.translation
  let byFilters = translations.get(key)
  if (byFilters === undefined) {
    byFilters = new Map()
    translations.set(key, byFilters)
  }
  let t = byFilters.get(filtersKey)
  if (t === undefined) {
    t = translateRouteConfiguration(raw, 'route_config', new Problems(), filters)
    byFilters.set(filtersKey, t)
  }
  return t
}

/** The virtual host for an authority (Envoy's domain precedence), or undefined. */
export function selectVirtualHost(translation: RouteConfigurationTranslation, authority: string): VirtualHostConfig | undefined {
  let index = indexes.get(translation)
  if (index === undefined) {
    index = new DomainIndex<number>()
    translation.virtualHosts.forEach((vh, i) => {
      for (const d of vh.config.domains) index?.add(d, i)
    })
    indexes.set(translation, index)
  }
  const i = index.find(authority)
  return i === undefined ? undefined : translation.virtualHosts[i]?.config
}

/** Resolves an outbound Listener; `needs` collects what must be subscribed to get further. */
export function resolveListener(view: ResourceView, name: string, needs: Needs): Resolution {
  const entry = view.listener(name)
  const value = entry?.value
  if (entry === undefined || (value === undefined && entry.status !== 'DOES_NOT_EXIST')) return { kind: 'pending' }
  if (value === undefined || entry.deleted || value.role !== 'client') return { kind: 'absent' }
  if (value.rdsName !== undefined) needs.routes.add(value.rdsName)
  const routes = listenerRoutes(view, value)
  if (routes.state === 'pending') return { kind: 'pending' }
  const vhost = routes.translation === undefined ? undefined : selectVirtualHost(routes.translation, name)
  const names = new Set<string>()
  for (const r of vhost?.routes ?? []) for (const c of routeClusters(r.route)) names.add(c)
  const clusters = new Map<string, ClusterConfig>()
  const inputs: unknown[] = [value, vhost]
  let pending = false
  for (const c of names) {
    needs.clusters.add(c)
    const cluster = resolveCluster(view, c, needs, inputs)
    if (cluster === undefined) pending = true
    else clusters.set(c, cluster)
  }
  if (pending) return { kind: 'pending' }
  const routesOf: VirtualHostConfig = vhost === undefined ? { name, domains: [], routes: [] } : { ...vhost, name, domains: [] }
  return { kind: 'ready', tree: { listener: name, routes: routesOf, clusters }, inputs }
}

/** A cluster with its endpoints, an empty one when it does not exist, or undefined while pending. */
export function resolveCluster(view: ResourceView, name: string, needs: Needs, inputs: unknown[] = []): ClusterConfig | undefined {
  const entry = view.cluster(name)
  if (entry === undefined) return undefined
  const value = entry.value
  inputs.push(value ?? entry.status)
  if (value === undefined) return entry.status === 'DOES_NOT_EXIST' ? { name } : undefined
  if (value.edsServiceName === undefined) return value.config
  needs.endpoints.add(value.edsServiceName)
  const eds = view.endpoint(value.edsServiceName)
  inputs.push(eds?.value ?? eds?.status)
  if (eds?.value !== undefined) {
    const scheme = value.endpointScheme
    const endpoints = eds.value.endpoints.map((e) => (scheme === 'https' ? { ...e, address: e.address.replace(/^http:/, 'https:') } : e))
    return endpoints.length === 0 ? value.config : { ...value.config, endpoints }
  }
  return eds?.status === 'DOES_NOT_EXIST' ? value.config : undefined
}
