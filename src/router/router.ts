/**
 * Routing as a pure decision, without sending anything: which virtual host and route a
 * request takes and what the route would do with it. The dispatcher runs the same steps
 * inline on its hot path; this form serves `mesh.route()` (what would happen to this
 * request?), the route-table tests and tools like Envoy's router_check.
 */
import type { Dispatcher } from 'undici'
import type { Snapshot } from '../snapshot/snapshot.js'
import type { CompiledRoute, CompiledVirtualHost } from './route-action.js'
import { RequestView } from './request-view.js'
import { firstSegment } from './route-index.js'

/** A request to route: a URL (its authority picks the virtual host) plus method and headers. */
export interface RouteQuery {
  /** Absolute URL, e.g. `http://reviews/reviews/1?x=1`. */
  readonly url: string | URL
  /** Default `GET`. */
  readonly method?: string
  /** Request headers; a `host` header overrides the URL's authority, as on the wire. */
  readonly headers?: Readonly<Record<string, string | readonly string[]>>
}

/** What routing decided for a request. */
export type RouteDecision =
  | { readonly kind: 'passthrough'; readonly authority: string }
  | { readonly kind: 'registry_only'; readonly authority: string }
  | { readonly kind: 'no_route'; readonly virtualHost: string }
  | {
    readonly kind: 'cluster'
    readonly virtualHost: string
    readonly route: string | undefined
    /** The possible destinations with their weights (one entry when not split). */
    readonly targets: readonly { readonly cluster: string; readonly subset: string | undefined; readonly weight: number }[]
    /** The path sent upstream (after prefix or regex rewrite). */
    readonly path: string
    /** The Host sent upstream (after host rewrite). */
    readonly host: string
    readonly timeoutMs: number
  }
  | { readonly kind: 'redirect'; readonly virtualHost: string; readonly route: string | undefined; readonly status: number; readonly location: string }
  | { readonly kind: 'direct'; readonly virtualHost: string; readonly route: string | undefined; readonly status: number; readonly body: string | undefined }

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

/** Decides how `snapshot` routes `query`, without side effects. */
export function decideRoute(snapshot: Snapshot, query: RouteQuery): RouteDecision {
  const url = typeof query.url === 'string' ? new URL(query.url) : query.url
  const headers = (query.headers ?? {}) as Dispatcher.DispatchOptions['headers']
  const hostHeader = Object.entries(query.headers ?? {}).find(([k]) => k.toLowerCase() === 'host')?.[1]
  const authority = typeof hostHeader === 'string' ? hostHeader : url.host
  const vhost = snapshot.domains.find(authority)
  if (vhost === undefined) {
    return snapshot.registryOnly ? { kind: 'registry_only', authority } : { kind: 'passthrough', authority }
  }
  const view = new RequestView(query.method ?? 'GET', `${url.pathname}${url.search}`, authority.toLowerCase(), url.protocol.slice(0, -1), headers)
  const route = findRoute(vhost, view)
  if (route === undefined) return { kind: 'no_route', virtualHost: vhost.name }
  const a = route.action
  switch (a.kind) {
    case 'direct':
      return { kind: 'direct', virtualHost: vhost.name, route: route.name, status: a.status, body: a.body?.toString() }
    case 'redirect':
      return { kind: 'redirect', virtualHost: vhost.name, route: route.name, status: a.status, location: a.location(view) }
    case 'cluster': {
      const targets = a.targets.map((t, i) => ({
        cluster: t.clusterName,
        subset: t.subset,
        weight: a.cumulative === null ? 100 : (a.cumulative[i] as number) - (i === 0 ? 0 : (a.cumulative[i - 1] as number)),
      }))
      return {
        kind: 'cluster',
        virtualHost: vhost.name,
        route: route.name,
        targets,
        path: a.rewritePath === null ? view.fullPath : a.rewritePath(view),
        host: a.hostRewrite ?? authority,
        timeoutMs: a.timeoutMs,
      }
    }
  }
}
