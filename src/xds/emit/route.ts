/**
 * A virtual host → an Envoy RouteConfiguration holding that one virtual host, with the
 * fields gRPC's xDS clients read (A28 routing, A31 timeouts, A44 retries, A42 ring-hash
 * hash policies, A33 faults) and the rest of Envoy's route model for Envoy-shaped clients.
 *
 * @module
 */
import { parseDomain } from '../../config/domain.js'
import { parseDuration } from '../../config/duration.js'
import type {
  FaultConfig, HashPolicy, RedirectAction, RetryPolicyConfig, RouteAction, RouteConfig, RouteMatch, VirtualHostConfig,
} from '../../config/types.js'
import { defaults } from '../../config/defaults.js'
import type { XdsObject } from '../types.js'
import { TypedConfigNames } from '../type-urls.js'
import { defined, duration, fractionalPercent, headerMatcher, headerMutations, type Omissions, queryMatcher, typed } from './common.js'
import { routeConfigName } from './names.js'

/** What the route emitter needs from the rest of the snapshot. */
export interface RouteContext {
  /** The xDS cluster name of a cluster (and subset). */
  clusterName(cluster: string, subset: string | undefined): string
  readonly omissions: Omissions
}

/** The name of the HTTP fault filter (istiod puts it in every proxyless listener). */
export const FAULT_FILTER = 'envoy.filters.http.fault'

const NOT_FOUND_CODES: Readonly<Record<number, string>> = { 503: 'SERVICE_UNAVAILABLE', 404: 'NOT_FOUND', 500: 'INTERNAL_SERVER_ERROR' }

const REDIRECT_CODES: Readonly<Record<number, string>> = {
  301: 'MOVED_PERMANENTLY', 302: 'FOUND', 303: 'SEE_OTHER', 307: 'TEMPORARY_REDIRECT', 308: 'PERMANENT_REDIRECT',
}

/**
 * The domains written in the RouteConfiguration. gRPC matches the virtual host by the
 * exact authority it dials (`reviews:9080`), while our `reviews` serves every port: each
 * exact domain without a port is also written `reviews:*`, a prefix wildcard gRPC and
 * Envoy both read that way.
 */
export function emittedDomains(domains: readonly string[]): string[] {
  const out: string[] = []
  for (const d of domains) {
    out.push(d)
    const parsed = parseDomain(d)
    if (typeof parsed !== 'string' && parsed.kind === 'exact' && parsed.port === undefined && !d.endsWith(':*') && !d.endsWith(']')) out.push(`${d}:*`)
  }
  return out
}

/** The RouteConfiguration of `vh` (at `virtualHosts[index]`). */
export function emitRouteConfiguration(vh: VirtualHostConfig, index: number, ctx: RouteContext): XdsObject {
  const path = `virtualHosts[${index}]`
  const virtualHost: XdsObject = {
    name: vh.name,
    domains: emittedDomains(vh.domains),
    routes: vh.routes.map((r, i) => emitRoute(r, `${path}.routes[${i}]`, ctx)),
    ...headerMutations(vh),
  }
  if (vh.retryPolicy !== undefined) virtualHost['retry_policy'] = retryPolicy(vh.retryPolicy, `${path}.retryPolicy`, ctx)
  // Neither is read by gRPC clients; Envoy and ours apply them.
  if (vh.requireTls !== undefined && vh.requireTls !== 'NONE') virtualHost['require_tls'] = vh.requireTls
  if (vh.virtualClusters?.length) virtualHost['virtual_clusters'] = vh.virtualClusters.map((v) => ({ name: v.name, headers: v.headers.map(headerMatcher) }))
  const out: XdsObject = { name: routeConfigName(vh.name), virtual_hosts: [virtualHost] }
  // One virtual host per RouteConfiguration: the route configuration's flag is the virtual host's.
  if (vh.mostSpecificHeaderMutationsWins === true) out['most_specific_header_mutations_wins'] = true
  return out
}

function emitRoute(r: RouteConfig, path: string, ctx: RouteContext): XdsObject {
  const out: XdsObject = defined({ name: r.name })
  out['match'] = routeMatch(r.match)
  if (r.route !== undefined) out['route'] = routeAction(r.route, r.match, `${path}.route`, ctx)
  else if (r.redirect !== undefined) out['redirect'] = redirect(r.redirect)
  else if (r.directResponse !== undefined) {
    out['direct_response'] = defined({ status: r.directResponse.status, body: r.directResponse.body === undefined ? undefined : { inline_string: r.directResponse.body } })
  }
  Object.assign(out, headerMutations(r))
  if (r.fault !== undefined) out['typed_per_filter_config'] = { [FAULT_FILTER]: typed(TypedConfigNames.fault, httpFault(r.fault)) }
  return out
}

function routeMatch(m: RouteMatch): XdsObject {
  const out: XdsObject = {}
  if (m.prefix !== undefined) out['prefix'] = m.prefix
  else if (m.path !== undefined) out['path'] = m.path
  else if (m.safeRegex !== undefined) out['safe_regex'] = { regex: m.safeRegex }
  else if (m.pathSeparatedPrefix !== undefined) out['safe_regex'] = { regex: pathSeparatedRegex(m.pathSeparatedPrefix, m.caseSensitive === false) }
  if (m.caseSensitive === false && m.pathSeparatedPrefix === undefined) out['case_sensitive'] = false
  const headers = (m.headers ?? []).map(headerMatcher)
  if (m.methods?.length) {
    // Envoy matches methods as the :method pseudo-header.
    const [only] = m.methods
    headers.push(m.methods.length === 1 && only !== undefined
      ? { name: ':method', string_match: { exact: only } }
      : { name: ':method', string_match: { safe_regex: { regex: m.methods.map(escapeRegex).join('|') } } })
  }
  if (headers.length > 0) out['headers'] = headers
  if (m.queryParameters?.length) out['query_parameters'] = m.queryParameters.map(queryMatcher)
  return out
}

function routeAction(a: RouteAction, match: RouteMatch, path: string, ctx: RouteContext): XdsObject {
  const out: XdsObject = {}
  if (a.weightedClusters !== undefined) {
    const clusters = a.weightedClusters.map((w) => ({
      name: ctx.clusterName(w.cluster, w.subset),
      weight: w.weight,
      ...headerMutations(w),
    }))
    // Older gRPC (C-core 1.51) refuses weights that do not add up to total_weight (default
    // 100); writing the sum keeps any weights valid everywhere.
    out['weighted_clusters'] = { clusters, total_weight: a.weightedClusters.reduce((s, w) => s + w.weight, 0) }
  } else if (a.cluster !== undefined) {
    out['cluster'] = ctx.clusterName(a.cluster, a.subset)
  } else if (a.clusterHeader !== undefined) {
    // gRPC clients do not honour cluster_header (A28); ours and Envoy do, for the clusters
    // they hold: a client subscribes only to the clusters routes name.
    out['cluster_header'] = a.clusterHeader
  }
  if (a.clusterNotFoundResponseCode !== undefined) out['cluster_not_found_response_code'] = NOT_FOUND_CODES[a.clusterNotFoundResponseCode]
  if (a.prefixRewrite !== undefined && match.pathSeparatedPrefix !== undefined) {
    // The match goes out as a safe_regex (gRPC refuses path_separated_prefix), and Envoy
    // refuses prefix_rewrite with a regex match: the same rewrite as a regex_rewrite.
    const prefix = literalRegex(match.pathSeparatedPrefix, match.caseSensitive === false)
    out['regex_rewrite'] = { pattern: { regex: `^${prefix}` }, substitution: a.prefixRewrite.replaceAll('\\', '\\\\') }
  } else if (a.prefixRewrite !== undefined) {
    out['prefix_rewrite'] = a.prefixRewrite
  }
  if (a.regexRewrite !== undefined) out['regex_rewrite'] = { pattern: { regex: a.regexRewrite.pattern }, substitution: a.regexRewrite.substitution }
  if (a.hostRewrite !== undefined) out['host_rewrite_literal'] = a.hostRewrite
  if (a.timeout !== undefined) out['timeout'] = duration(a.timeout)
  const msd = maxStreamDuration(a)
  if (msd !== undefined) out['max_stream_duration'] = msd
  if (a.hashPolicy?.length) out['hash_policy'] = a.hashPolicy.map(hashPolicy)
  if (a.retryPolicy !== undefined) out['retry_policy'] = retryPolicy(a.retryPolicy, `${path}.retryPolicy`, ctx)
  if (a.requestMirrorPolicies?.length) {
    out['request_mirror_policies'] = a.requestMirrorPolicies.map((m) => defined({
      cluster: ctx.clusterName(m.cluster, m.subset),
      runtime_fraction: m.percentage === undefined ? undefined : { default_value: fractionalPercent(m.percentage) },
    }))
  }
  if (a.rateLimit !== undefined) ctx.omissions.add(`${path}.rateLimit`, 'route rate limits are not carried over xDS; each client would need its own local_ratelimit filter')
  if (a.concurrencyLimit !== undefined) ctx.omissions.add(`${path}.concurrencyLimit`, 'concurrency limits have no xDS field')
  return out
}

/**
 * The route's `max_stream_duration`. gRPC ignores `timeout` and applies
 * `max_stream_duration` as the call's deadline (A31), so istiod writes the route timeout
 * there too; ours bounds a request by the lower of `timeout` and `maxStreamDuration`, so the
 * lower one is written (0 is no bound). With `grpcTimeoutHeaderMax`, the stream's duration
 * is written as given: the header's timeout then stands in for it.
 */
function maxStreamDuration(a: RouteAction): XdsObject | undefined {
  const m = a.maxStreamDuration
  const timeout = a.timeout === undefined ? undefined : parseDuration(a.timeout)
  let bound = m?.maxStreamDuration === undefined ? undefined : parseDuration(m.maxStreamDuration)
  if (timeout !== undefined && m?.grpcTimeoutHeaderMax === undefined && (bound === undefined || bound === 0 || (timeout > 0 && timeout < bound))) bound = timeout
  const out = defined({
    max_stream_duration: bound === undefined ? undefined : duration(bound),
    grpc_timeout_header_max: m?.grpcTimeoutHeaderMax === undefined ? undefined : duration(m.grpcTimeoutHeaderMax),
    grpc_timeout_header_offset: m?.grpcTimeoutHeaderOffset === undefined ? undefined : duration(m.grpcTimeoutHeaderOffset),
  })
  return Object.keys(out).length === 0 ? undefined : out
}

function hashPolicy(p: HashPolicy): XdsObject {
  const out: XdsObject = {}
  if (p.header !== undefined) out['header'] = { header_name: p.header.name }
  else if (p.cookie !== undefined) out['cookie'] = { name: p.cookie.name }
  else if (p.queryParameter !== undefined) out['query_parameter'] = { name: p.queryParameter.name }
  if (p.terminal === true) out['terminal'] = true
  return out
}

function retryPolicy(p: RetryPolicyConfig, path: string, ctx: RouteContext): XdsObject {
  const on = typeof p.retryOn === 'string' ? p.retryOn.split(',').map((s) => s.trim()).filter((s) => s !== '') : p.retryOn
  const out: XdsObject = { retry_on: on.join(','), num_retries: p.numRetries ?? defaults.numRetries }
  if (p.perTryTimeout !== undefined) out['per_try_timeout'] = duration(p.perTryTimeout)
  if (p.retryBackOff !== undefined) {
    // gRPC requires base_interval whenever retry_back_off is set (A44).
    const base = parseDuration(p.retryBackOff.baseInterval ?? defaults.retryBaseIntervalMs) ?? defaults.retryBaseIntervalMs
    out['retry_back_off'] = defined({
      base_interval: duration(base),
      max_interval: p.retryBackOff.maxInterval === undefined ? undefined : duration(p.retryBackOff.maxInterval),
    })
  }
  if (p.retriableStatusCodes?.length) out['retriable_status_codes'] = [...p.retriableStatusCodes]
  if (p.retriableHeaders?.length) out['retriable_headers'] = p.retriableHeaders.map(headerMatcher)
  if (p.retriableRequestHeaders?.length) out['retriable_request_headers'] = p.retriableRequestHeaders.map(headerMatcher)
  if (p.hostSelectionRetryMaxAttempts !== undefined) out['host_selection_retry_max_attempts'] = String(p.hostSelectionRetryMaxAttempts)
  if (p.retriableMethods !== undefined) ctx.omissions.add(`${path}.retriableMethods`, 'Envoy has no retriable-methods field; clients retry their own idempotent requests')
  if (p.maxRetryAfter !== undefined) ctx.omissions.add(`${path}.maxRetryAfter`, 'the Retry-After cap has no xDS field')
  return out
}

function redirect(r: RedirectAction): XdsObject {
  return defined({
    https_redirect: r.httpsRedirect,
    scheme_redirect: r.httpsRedirect === undefined ? r.schemeRedirect : undefined,
    host_redirect: r.hostRedirect,
    port_redirect: r.portRedirect,
    path_redirect: r.pathRedirect,
    prefix_rewrite: r.pathRedirect === undefined ? r.prefixRewrite : undefined,
    regex_rewrite: r.pathRedirect !== undefined || r.prefixRewrite !== undefined || r.regexRewrite === undefined
      ? undefined
      : { pattern: { regex: r.regexRewrite.pattern }, substitution: r.regexRewrite.substitution },
    response_code: r.responseCode === undefined ? undefined : REDIRECT_CODES[r.responseCode],
    strip_query: r.stripQuery,
  })
}

/** Our fault config → Envoy `HTTPFault`. */
export function httpFault(f: FaultConfig): XdsObject {
  const out: XdsObject = {}
  if (f.delay !== undefined) {
    const delay: XdsObject = f.delay.headerDelay === true ? { header_delay: {} } : { fixed_delay: duration(f.delay.fixedDelay ?? 0) }
    delay['percentage'] = fractionalPercent(f.delay.percentage ?? defaults.faultPercentage)
    out['delay'] = delay
  }
  if (f.abort !== undefined) {
    const abort: XdsObject = f.abort.headerAbort === true ? { header_abort: {} } : { http_status: f.abort.httpStatus ?? 503 }
    abort['percentage'] = fractionalPercent(f.abort.percentage ?? defaults.faultPercentage)
    out['abort'] = abort
  }
  if (f.maxActiveFaults !== undefined) out['max_active_faults'] = f.maxActiveFaults
  return out
}

/**
 * `pathSeparatedPrefix` as the regex gRPC understands: both gRPC clients refuse Envoy's
 * `path_separated_prefix` (and with it the whole RouteConfiguration). `/api` takes `/api` and
 * `/api/...`; without case, each letter is a class (`[aA]`), as safe regexes have no `(?i)`.
 */
function pathSeparatedRegex(prefix: string, ignoreCase: boolean): string {
  const p = literalRegex(prefix, ignoreCase)
  return `${p}|${p}/.*`
}

/** A regex matching `text` literally (each letter a class `[aA]` when case is ignored). */
function literalRegex(text: string, ignoreCase: boolean): string {
  return ignoreCase ? [...text].map((c) => (/[a-z]/i.test(c) ? `[${c.toLowerCase()}${c.toUpperCase()}]` : escapeRegex(c))).join('') : escapeRegex(text)
}

function escapeRegex(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
}
