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
  const out: XdsObject = { name: routeConfigName(vh.name), virtual_hosts: [virtualHost] }
  // One virtual host per RouteConfiguration: the route configuration's flag is the virtual host's.
  if (vh.mostSpecificHeaderMutationsWins === true) out['most_specific_header_mutations_wins'] = true
  return out
}

function emitRoute(r: RouteConfig, path: string, ctx: RouteContext): XdsObject {
  const out: XdsObject = defined({ name: r.name })
  out['match'] = routeMatch(r.match)
  if (r.route !== undefined) out['route'] = routeAction(r.route, `${path}.route`, ctx)
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

function routeAction(a: RouteAction, path: string, ctx: RouteContext): XdsObject {
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
  }
  if (a.prefixRewrite !== undefined) out['prefix_rewrite'] = a.prefixRewrite
  if (a.regexRewrite !== undefined) out['regex_rewrite'] = { pattern: { regex: a.regexRewrite.pattern }, substitution: a.regexRewrite.substitution }
  if (a.hostRewrite !== undefined) out['host_rewrite_literal'] = a.hostRewrite
  if (a.timeout !== undefined) {
    const t = duration(a.timeout)
    out['timeout'] = t
    // gRPC ignores `timeout`; istiod gives proxyless clients the same bound as the stream's
    // maximum duration, which gRPC applies as the call's deadline (A31).
    out['max_stream_duration'] = { max_stream_duration: t }
  }
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
  const p = ignoreCase ? [...prefix].map((c) => (/[a-z]/i.test(c) ? `[${c.toLowerCase()}${c.toUpperCase()}]` : escapeRegex(c))).join('') : escapeRegex(prefix)
  return `${p}|${p}/.*`
}

function escapeRegex(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
}
