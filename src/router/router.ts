/**
 * Routing as a pure decision, without sending anything: `mesh.route()` (what would happen
 * to this request?), the route-table tests and tools like Envoy's router_check. It runs
 * {@link resolveRoute}, the very function the dispatcher runs, and describes its result:
 * virtual host, virtual cluster, route, targets and weights, rewritten path and host,
 * timeout, the headers each target would add and remove (command operators resolved where
 * the request alone decides them), or the local answer (redirect, direct response, no
 * route, `require_tls`, `cluster_header` naming no cluster) with its status, headers and body.
 */
import type { Dispatcher } from 'undici'
import type { HeaderAppendAction } from '../config/types.js'
import { readsResponse } from '../http/header-format.js'
import { bindRequestMutations, type HeaderMutations } from '../http/header-mutations.js'
import { resolveRoute, type RouteTable } from './resolve.js'
import type { RequestView } from '../http/request-view.js'
import type { Target } from './route-action.js'

export { findRoute } from './resolve.js'

/** A request to route: a URL (its authority picks the virtual host) plus method and headers. */
export interface RouteQuery {
  /** Absolute URL, e.g. `http://reviews/reviews/1?x=1`. */
  readonly url: string | URL
  /** Default `GET`. */
  readonly method?: string
  /** Request headers; a `host` header overrides the URL's authority, as on the wire. */
  readonly headers?: Readonly<Record<string, string | readonly string[]>>
  /** The caller's `address:port` and the local one it reached, for `%DOWNSTREAM_…%` operators. */
  readonly downstream?: { readonly remoteAddress?: string; readonly localAddress?: string }
}

/** One header a decision adds. */
export interface HeaderAddition {
  readonly name: string
  /** The value, command operators resolved; when `resolved` is false, the value as configured (it needs the response). */
  readonly value: string
  readonly appendAction: HeaderAppendAction
  /** False for values that read the response (`%UPSTREAM_REMOTE_ADDRESS%`, `%RESP(…)%`, …). */
  readonly resolved: boolean
}

/** Headers a decision adds and removes (names lower-cased; removals apply first). */
export interface HeaderChanges {
  readonly add: readonly HeaderAddition[]
  readonly remove: readonly string[]
}

/** One destination of a cluster decision. */
export interface RouteTarget {
  readonly cluster: string
  readonly subset: string | undefined
  /** Share of the traffic, in the weights' own unit (100 when there is one target). */
  readonly weight: number
  /** What this target's request gets (weighted cluster, route and virtual host levels). */
  readonly requestHeaders: HeaderChanges
  /** What this target's response gets. */
  readonly responseHeaders: HeaderChanges
}

interface Routed {
  readonly virtualHost: string
  /** The virtual cluster the request is counted under (Envoy `virtual_clusters`), if any. */
  readonly virtualCluster: string | undefined
}

/** What routing decided for a request. */
export type RouteDecision =
  | { readonly kind: 'passthrough'; readonly authority: string }
  | { readonly kind: 'registry_only'; readonly authority: string }
  | (Routed & { readonly kind: 'no_route'; readonly status: number })
  | (Routed & {
    readonly kind: 'cluster'
    readonly route: string | undefined
    /** The possible destinations with their weights (one entry when not split). */
    readonly targets: readonly RouteTarget[]
    /** The path sent upstream (after prefix or regex rewrite). */
    readonly path: string
    /** The Host sent upstream (after host rewrite). */
    readonly host: string
    /** The route timeout (a `grpc-timeout` header under `maxStreamDuration` included); 0: none. */
    readonly timeoutMs: number
    /** For a `clusterHeader` route: the header read and the cluster it named. */
    readonly clusterHeader?: { readonly name: string; readonly value: string }
  })
  | (Routed & {
    readonly kind: 'redirect'
    readonly route: string | undefined
    readonly status: number
    readonly location: string
    /** The response headers, Location included. */
    readonly headers: Readonly<Record<string, string | readonly string[]>>
    /** True when the redirect is the virtual host's `requireTls` (no route was tried). */
    readonly requireTls: boolean
  })
  | (Routed & {
    readonly kind: 'direct'
    readonly route: string | undefined
    readonly status: number
    readonly body: string | undefined
    readonly headers: Readonly<Record<string, string | readonly string[]>>
  })
  | (Routed & {
    readonly kind: 'cluster_not_found'
    readonly route: string | undefined
    /** 503 unless the route says otherwise (Envoy `cluster_not_found_response_code`); response flag `NC`. */
    readonly status: number
    readonly clusterHeader: { readonly name: string; readonly value: string | undefined }
    readonly headers: Readonly<Record<string, string | readonly string[]>>
  })

/** Decides how `table` (a snapshot) routes `query`, without side effects. */
export function decideRoute(table: RouteTable, query: RouteQuery): RouteDecision {
  const url = typeof query.url === 'string' ? new URL(query.url) : query.url
  const headers = (query.headers ?? {}) as Dispatcher.DispatchOptions['headers']
  const hostHeader = Object.entries(query.headers ?? {}).find(([k]) => k.toLowerCase() === 'host')?.[1]
  const authority = typeof hostHeader === 'string' ? hostHeader : url.host
  // URL drops a bare "?" from `search`; the request sends it, so the decision keeps it too.
  const search = url.search !== '' || !url.href.replace(/#.*$/s, '').endsWith('?') ? url.search : '?'
  const r = resolveRoute(table, query.method ?? 'GET', `${url.pathname}${search}`, authority, url.protocol.slice(0, -1), headers, query.downstream)
  if (r.kind === 'passthrough' || r.kind === 'registry_only') return r
  const view = r.view
  const routed: Routed = { virtualHost: r.vhost.name, virtualCluster: view.virtualCluster }
  if (r.kind === 'local') {
    const a = r.answer
    const route = r.route?.name
    const headers = a.headers as Record<string, string | readonly string[]>
    switch (a.reason) {
      case 'no_route':
        return { ...routed, kind: 'no_route', status: a.status }
      case 'direct':
        return { ...routed, kind: 'direct', route, status: a.status, body: a.body?.toString(), headers }
      case 'redirect':
      case 'require_tls':
        return { ...routed, kind: 'redirect', route, status: a.status, location: String(a.headers['location']), headers, requireTls: a.reason === 'require_tls' }
      case 'cluster_not_found': {
        const name = r.route?.action.kind === 'cluster' ? (r.route.action.clusterHeader ?? '') : ''
        return { ...routed, kind: 'cluster_not_found', route, status: a.status, clusterHeader: { name, value: view.header(name) }, headers }
      }
    }
  }
  const a = r.action
  const targets = a.targets.map((t, i) => ({
    cluster: t.clusterName,
    subset: t.subset,
    weight: a.cumulative === null ? 100 : (a.cumulative[i] as number) - (i === 0 ? 0 : (a.cumulative[i - 1] as number)),
    requestHeaders: changes(t.requestMutations, view, t, false),
    responseHeaders: changes(t.responseMutations, view, t, true),
  }))
  const decision = {
    ...routed,
    kind: 'cluster' as const,
    route: r.route.name,
    targets,
    path: a.rewritePath === null ? view.fullPath : a.rewritePath(view),
    host: a.hostRewrite ?? authority,
    timeoutMs: a.timeoutMs,
  }
  const header = r.route.action.kind === 'cluster' ? r.route.action.clusterHeader : null
  return header === null ? decision : { ...decision, clusterHeader: { name: header, value: view.header(header) ?? '' } }
}

/** The header changes of one target, formatted for this request where the request decides them. */
function changes(m: HeaderMutations | null, view: RequestView, t: Target, response: boolean): HeaderChanges {
  if (m === null) return { add: [], remove: [] }
  const facts = view.facts(t.clusterName)
  if (!response) {
    const bound = bindRequestMutations(m, facts) as HeaderMutations
    return { remove: m.remove, add: bound.add.map((a) => ({ name: a.name, value: a.value, appendAction: a.action, resolved: true })) }
  }
  const add: HeaderAddition[] = []
  for (const a of m.formatted ?? m.add) {
    if (a.format !== null && readsResponse(a.source)) {
      add.push({ name: a.name, value: a.source, appendAction: a.action, resolved: false })
      continue
    }
    const value = a.format === null ? a.value : a.format(facts, undefined)
    if (value !== '' || a.keepEmpty) add.push({ name: a.name, value, appendAction: a.action, resolved: true })
  }
  return { remove: m.remove, add }
}
