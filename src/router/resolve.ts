/**
 * Route resolution: everything Envoy's router decides before a request leaves, in one
 * function that the dispatcher runs on its hot path and `mesh.route()` runs to explain a
 * decision. Authority → virtual host (or pass-through / REGISTRY_ONLY); `require_tls`;
 * virtual cluster; first matching route; then the route's action: a local reply (no route,
 * redirect, direct response, `cluster_header` naming no cluster) with its headers, or a
 * cluster action (bound to the header's cluster for `cluster_header`, with the timeout a
 * `grpc-timeout` header gives under `max_stream_duration`).
 */
import type { DomainIndex } from './domain-index.js'
import { bindRequestMutations, bindResponseMutations, mutateHeaderObject, type HeaderMutations } from '../http/header-mutations.js'
import type { ClusterAction, CompiledRoute, CompiledVirtualHost, Target } from './route-action.js'
import { RequestView } from '../http/request-view.js'
import { firstSegment } from './route-index.js'
import type { Dispatcher } from 'undici'

type RawHeaders = Dispatcher.DispatchOptions['headers']
type HeaderObject = Record<string, string | string[] | undefined>

/** What routing reads of a snapshot: the virtual hosts by authority, and what to do with other authorities. */
export interface RouteTable {
  /** Authority → virtual host. */
  readonly domains: DomainIndex<CompiledVirtualHost>
  /** `outboundTrafficPolicy.mode === 'REGISTRY_ONLY'`. */
  readonly registryOnly: boolean
}

/** A response the router answers itself (Envoy's local reply). */
export interface LocalAnswer {
  readonly status: number
  readonly body: Buffer | undefined
  /** `NR` no route, `DR` redirect / direct response / require_tls, `NC` no cluster. */
  readonly flag: 'NR' | 'DR' | 'NC'
  /** Response headers, the route's response mutations applied. */
  readonly headers: HeaderObject
  /** Why: `no_route`, `redirect`, `direct`, `require_tls`, `cluster_not_found`. */
  readonly reason: 'no_route' | 'redirect' | 'direct' | 'require_tls' | 'cluster_not_found'
}

/** What routing decided. */
export type Resolution =
  | { readonly kind: 'passthrough'; readonly authority: string }
  | { readonly kind: 'registry_only'; readonly authority: string }
  | {
    readonly kind: 'local'
    readonly vhost: CompiledVirtualHost
    readonly route: CompiledRoute | undefined
    readonly view: RequestView
    readonly answer: LocalAnswer
  }
  | {
    readonly kind: 'cluster'
    readonly vhost: CompiledVirtualHost
    readonly route: CompiledRoute
    readonly view: RequestView
    readonly action: ClusterAction
  }

/** The first route of `vhost` that matches. */
export function findRoute(vhost: CompiledVirtualHost, view: RequestView): CompiledRoute | undefined {
  const index = vhost.index
  const routes = index === null ? vhost.routes : (index.bySegment.get(firstSegment(view.fullPath)) ?? index.others)
  for (let i = 0; i < routes.length; i++) {
    const r = routes[i] as CompiledRoute
    if (r.match.matches(view)) return r
  }
  return undefined
}

/**
 * Routes a request by `table` (a snapshot). `authority` is the Host the request carries (or its
 * origin's); `path` the `:path` with the query. No side effects: the dispatcher sends what
 * this decides, `mesh.route()` describes it. `view`, when given, is the request as the
 * caller built it already (the dispatcher's, which carries the headers it checked).
 */
export function resolveRoute(table: RouteTable, method: string, path: string, authority: string, scheme: string, headers: RawHeaders, downstream?: { readonly remoteAddress?: string | undefined; readonly localAddress?: string | undefined }, given?: RequestView): Resolution {
  const vhost = table.domains.find(authority)
  if (vhost === undefined) return table.registryOnly ? { kind: 'registry_only', authority } : { kind: 'passthrough', authority }
  const view = given ?? new RequestView(method, path, authority.toLowerCase(), scheme, headers)
  if (downstream !== undefined) {
    view.downstreamRemoteAddress = downstream.remoteAddress
    view.downstreamLocalAddress = downstream.localAddress
  }
  return resolveInVirtualHost(vhost, view, authority)
}

/** Routing within a virtual host already chosen. */
export function resolveInVirtualHost(vhost: CompiledVirtualHost, view: RequestView, authority: string): Resolution {
  if (vhost.virtualClusters !== null) {
    for (const vc of vhost.virtualClusters) {
      if (vc.matches(view)) {
        view.virtualCluster = vc.name
        break
      }
    }
  }
  if (vhost.requireTls !== 'NONE' && view.scheme !== 'https' && (vhost.requireTls === 'ALL' || view.header('x-envoy-internal') !== 'true')) {
    // Envoy's SSL redirect: the same Host (port included) and path, over https, before any route.
    const answer: LocalAnswer = { status: 301, body: undefined, flag: 'DR', headers: { location: `https://${authority}${view.fullPath}` }, reason: 'require_tls' }
    return { kind: 'local', vhost, route: undefined, view, answer }
  }
  const route = findRoute(vhost, view)
  if (route === undefined) {
    return { kind: 'local', vhost, route, view, answer: { status: 404, body: undefined, flag: 'NR', headers: {}, reason: 'no_route' } }
  }
  view.route = route.name
  const action = route.action
  switch (action.kind) {
    case 'direct':
      return { kind: 'local', vhost, route, view, answer: localAnswer(route, view, action.status, action.body, 'DR', {}, 'direct') }
    case 'redirect':
      return { kind: 'local', vhost, route, view, answer: localAnswer(route, view, action.status, undefined, 'DR', { location: action.location(view) }, 'redirect') }
    case 'cluster': {
      let a = action
      if (a.forCluster !== null) {
        const name = view.header(a.clusterHeader as string)
        const bound = name === undefined ? undefined : a.forCluster(name)
        if (bound === undefined) {
          return { kind: 'local', vhost, route, view, answer: localAnswer(route, view, a.notFoundStatus, undefined, 'NC', {}, 'cluster_not_found') }
        }
        a = bound
      }
      if (a.grpcTimeout !== null) {
        const t = a.grpcTimeout(view)
        if (t !== undefined && t !== a.timeoutMs) a = { ...a, timeoutMs: t }
      }
      return { kind: 'cluster', vhost, route, view, action: a }
    }
  }
}

/** A local reply with the route's response mutations, formatted for this request and status. */
function localAnswer(route: CompiledRoute, view: RequestView, status: number, body: Buffer | undefined, flag: LocalAnswer['flag'], headers: HeaderObject, reason: LocalAnswer['reason']): LocalAnswer {
  const m = route.responseMutations
  if (m !== null) applyResponseMutations(headers, m, view, status, flag)
  return { status, body, flag, headers, reason }
}

/** Applies response mutations to a local reply's headers (no upstream: UPSTREAM_* are empty). */
export function applyResponseMutations(headers: HeaderObject, m: HeaderMutations, view: RequestView, status: number, flag: string | undefined): void {
  const bound = bindResponseMutations(m, view.facts(undefined))
  if (bound !== null) mutateHeaderObject(headers, bound, { status, headers, upstreamAddress: undefined, flags: flag })
}

/** The request mutations a target applies to this request, command operators formatted (once per try; cheap when none). */
export function requestMutationsFor(target: Target, view: RequestView): HeaderMutations | null {
  const m = target.requestMutations
  return m === null || m.formatted === null ? m : bindRequestMutations(m, view.facts(target.clusterName))
}

/** Where a request goes as the upstream request reports it: the target itself, or a copy whose response mutations read this request. */
export function destinationFor(target: Target, view: RequestView): Pick<Target, 'clusterName' | 'subset' | 'responseMutations'> {
  const m = target.responseMutations
  if (m === null || m.formatted === null) return target
  return { clusterName: target.clusterName, subset: target.subset, responseMutations: bindResponseMutations(m, view.facts(target.clusterName)) }
}
