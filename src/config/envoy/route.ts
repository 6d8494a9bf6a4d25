/**
 * Envoy `RouteConfiguration` (from a bootstrap's `route_config`, or an RDS resource) as our
 * virtual hosts: domains, routes (match, action, header mutations, per-route fault),
 * `require_tls`, `virtual_clusters`, retry policies, and the route configuration's own
 * header mutations (applied after the virtual host's, as Envoy does).
 *
 * The result keeps Envoy's scoping: names and domains are those of this one route
 * configuration. Putting several together into one mesh config (unique virtual host names,
 * one domain space) is the caller's job: `bootstrap.ts` for a bootstrap, the xDS client for
 * the route configurations its listeners name.
 */
import { isHeaderName, isHeaderValue } from '../http-token.js'
import { limits } from '../defaults.js'
import { RETRY_ON } from '../schema.js'
import { rewriteProblem } from '../regex.js'
import type {
  DirectResponseAction,
  FaultConfig,
  HashPolicy,
  HeaderMatcher,
  RedirectAction,
  RequestMirrorPolicy,
  RetryOn,
  RetryPolicyConfig,
  RouteAction,
  RouteConfig,
  RouteMatch,
  VirtualClusterConfig,
  VirtualHostConfig,
  WeightedClusterConfig,
} from '../types.js'
import { FAULT_FILTER, FAULT_TYPE, translateHttpFault, translateMirrorPolicy } from './fault.js'
import { MUTATIONS, translateMutations } from './headers.js'
import { regexOf, translateHeaderMatcher, translateRouteMatch } from './match.js'
import {
  asBool,
  asDuration,
  asEnum,
  asList,
  asMap,
  asString,
  asStrings,
  asUint,
  clip,
  describe,
  firstOf,
  isObject,
  nonEmpty,
  present,
  put,
  readField,
  typeName,
  unwrap,
  type Field,
  type Problems,
  type Shape,
} from './reader.js'

/** What the connection manager's HTTP filters mean for the routes it serves. */
export interface HttpFilters {
  /**
   * Envoy's fault filter: absent (`undefined`: per-route fault configs are ignored, as
   * Envoy ignores them), present with no usable default (`null`), or its filter-level config
   * (the default of every route that has no per-route one).
   */
  readonly fault: FaultConfig | null | undefined
}

/** No HTTP filter besides the router. */
export const ROUTER_ONLY: HttpFilters = Object.freeze({ fault: undefined })

/** One translated virtual host, with where it came from (for the composer's reports). */
export interface TranslatedVirtualHost {
  /** The virtual host; `name` is `''` when the input had none (the composer names it). */
  readonly config: VirtualHostConfig
  /** Its path in the input. */
  readonly path: string
  /** The path of each of `config.domains`, in order. */
  readonly domainPaths: readonly string[]
}

/** The result of {@link translateRouteConfiguration}. */
export interface RouteConfigurationTranslation {
  /** `name` of the RouteConfiguration (what RDS subscribes to). */
  readonly name: string | undefined
  readonly virtualHosts: readonly TranslatedVirtualHost[]
}

const ROUTE_CONFIGURATION: Shape = {
  use: ['name', 'virtual_hosts', ...MUTATIONS, 'most_specific_header_mutations_wins', 'ignore_port_in_host_matching'],
  // validate_clusters: the mesh always checks that routes name existing clusters.
  drop: ['validate_clusters', 'max_direct_response_body_size_bytes'],
  why: {
    internal_only_headers: 'internal-only headers are not stripped',
    vhds: 'on-demand virtual hosts (VHDS) are not supported',
    cluster_specifier_plugins: 'cluster specifier plugins are not supported',
    request_mirror_policies: 'route-configuration-level mirror policies are not supported; set them on routes',
    typed_per_filter_config: 'route-configuration-level per-filter config is not supported',
    metadata: 'route configuration metadata is not imported',
  },
}

/**
 * Translates an Envoy `RouteConfiguration`. Never throws on bad input (but see
 * {@link Problems.step}): problems go to `p`, with paths under `path`.
 *
 * @param filters - the HTTP filters of the connection manager serving it (fault defaults).
 */
export function translateRouteConfiguration(resource: unknown, path: string, p: Problems, filters: HttpFilters = ROUTER_ONLY): RouteConfigurationTranslation {
  const m = readField(p, { key: path, name: 'route_config', value: resource, path }, ROUTE_CONFIGURATION)
  if (m === undefined) return { name: undefined, virtualHosts: [] }
  const name = asString(p, m.get('name'))
  const mostSpecificWins = asBool(p, m.get('most_specific_header_mutations_wins')) === true
  if (asBool(p, m.get('ignore_port_in_host_matching')) === true) {
    p.report((m.get('ignore_port_in_host_matching') as Field).path, 'ignore_port_in_host_matching is not supported: a domain without a port matches any port anyway; one with a port matches only it')
  }
  // Route-configuration-level mutations are one more level: after the virtual host's by
  // default, before it when the most specific wins. Our model has no such level, so they are
  // merged into each virtual host's, in the order Envoy applies them.
  const global: VirtualHostConfig = { name: '', domains: [], routes: [] }
  translateMutations(p, m, global)
  const virtualHosts: TranslatedVirtualHost[] = []
  for (const item of asList(p, m.get('virtual_hosts'))) {
    const vh = translateVirtualHost(p, item, filters)
    if (vh === undefined) continue
    if (mostSpecificWins) {
      vh.config.mostSpecificHeaderMutationsWins = true
      mergeMutations(vh.config, global, vh.config)
    } else {
      mergeMutations(vh.config, vh.config, global)
    }
    virtualHosts.push(vh)
  }
  return { name, virtualHosts }
}

/**
 * Sets `into`'s mutations to those of `first` then `second` applied in turn: each removes
 * before it adds, so what `second` removes is also taken out of `first`'s additions.
 */
function mergeMutations(into: VirtualHostConfig, first: VirtualHostConfig, second: VirtualHostConfig): void {
  for (const [add, remove] of [['requestHeadersToAdd', 'requestHeadersToRemove'], ['responseHeadersToAdd', 'responseHeadersToRemove']] as const) {
    const removed = second[remove]?.map((n) => n.toLowerCase()) ?? []
    const adds = [...(first[add]?.filter((a) => !removed.includes(a.header.key.toLowerCase())) ?? []), ...(second[add] ?? [])]
    const removes = [...(first[remove] ?? []), ...(second[remove] ?? [])]
    if (adds.length > 0) into[add] = adds
    else delete into[add]
    if (removes.length > 0) into[remove] = removes
    else delete into[remove]
  }
}

// ---------------------------------------------------------------- virtual hosts

const VIRTUAL_HOST: Shape = {
  use: ['name', 'domains', 'routes', 'require_tls', 'virtual_clusters', 'retry_policy', ...MUTATIONS],
  drop: ['include_request_attempt_count', 'include_attempt_count_in_response'],
  why: {
    cors: 'CORS is not supported',
    rate_limits: 'rate limits are not imported',
    typed_per_filter_config: 'per-filter config on a virtual host is not supported; set it on the routes',
    hedge_policy: 'request hedging is not supported',
    retry_policy_typed_config: 'retry policy extensions are not supported',
    per_request_buffer_limit_bytes: 'request buffer limits are not supported',
    request_mirror_policies: 'virtual-host-level mirror policies are not supported; set them on routes',
    metadata: 'virtual host metadata is not imported',
    matcher: 'the generic matcher tree is not supported; use routes',
  },
}
const TLS_REQUIREMENTS = ['NONE', 'EXTERNAL_ONLY', 'ALL']
const VIRTUAL_CLUSTER: Shape = { use: ['name', 'headers'] }

function translateVirtualHost(p: Problems, f: Field, filters: HttpFilters): TranslatedVirtualHost | undefined {
  const m = readField(p, f, VIRTUAL_HOST)
  if (m === undefined) return undefined
  const name = asString(p, m.get('name')) ?? ''
  const domains: string[] = []
  const domainPaths: string[] = []
  for (const item of asStrings(p, m.get('domains'))) {
    domains.push(item.value as string)
    domainPaths.push(item.path)
  }
  const routes: RouteConfig[] = []
  const routeNames = new Set<string>()
  for (const item of asList(p, m.get('routes'))) {
    const route = translateRoute(p, item, filters)
    if (route === undefined) continue
    if (route.name !== undefined) {
      // Envoy allows repeated route names; ours label metrics, so a repeat loses its name.
      if (routeNames.has(route.name)) {
        p.report(item.path, `route name "${clip(route.name)}" repeats an earlier route's; this route is imported without a name`)
        delete route.name
      } else {
        routeNames.add(route.name)
      }
    }
    routes.push(route)
  }
  const vh: VirtualHostConfig = { name, domains, routes }
  const tls = asEnum(p, m.get('require_tls'), TLS_REQUIREMENTS)
  if (tls === 'ALL' || tls === 'EXTERNAL_ONLY') vh.requireTls = tls
  put(vh, 'virtualClusters', virtualClusters(p, m.get('virtual_clusters')))
  put(vh, 'retryPolicy', retryPolicy(p, m.get('retry_policy')))
  translateMutations(p, m, vh)
  return { config: vh, path: f.path, domainPaths }
}

function virtualClusters(p: Problems, f: Field | undefined): VirtualClusterConfig[] | undefined {
  const out: VirtualClusterConfig[] = []
  const names = new Set<string>()
  for (const item of asList(p, f)) {
    const m = readField(p, item, VIRTUAL_CLUSTER)
    if (m === undefined) continue
    const name = nonEmpty(p, m.get('name'))
    if (name === undefined) {
      p.report(item.path, 'a virtual cluster needs a name; dropped')
      continue
    }
    if (names.has(name)) {
      p.report(item.path, `virtual cluster "${clip(name)}" is defined twice; dropped`)
      continue
    }
    // Envoy requires at least one matcher; one it cannot honour would count other requests under this name.
    const headers: HeaderMatcher[] = []
    let ok = true
    for (const h of asList(p, m.get('headers'))) {
      const matcher = translateHeaderMatcher(p, h)
      if (matcher === undefined) ok = false
      else headers.push(matcher)
    }
    if (!ok || headers.length === 0) {
      p.report(item.path, ok ? 'a virtual cluster needs headers; dropped' : `virtual cluster "${clip(name)}" dropped: a matcher cannot be honoured, and without it other requests would be counted under this name`)
      continue
    }
    names.add(name)
    out.push({ name, headers })
  }
  return out.length > 0 ? out : undefined
}

// ---------------------------------------------------------------- routes

const ROUTE: Shape = {
  use: ['name', 'match', 'route', 'redirect', 'direct_response', 'typed_per_filter_config', ...MUTATIONS],
  why: {
    metadata: 'route metadata is not imported',
    decorator: 'tracing decorators are not imported',
    tracing: 'tracing settings are not imported',
    filter_action: 'filter actions are not supported',
    non_forwarding_action: 'non-forwarding actions are not supported',
    per_request_buffer_limit_bytes: 'request buffer limits are not supported',
    stat_prefix: 'route stat prefixes are not supported; route names label metrics',
  },
}
const ACTIONS = ['route', 'redirect', 'direct_response']

/** One Envoy `Route`; `undefined` (reported) when it is dropped. */
export function translateRoute(p: Problems, f: Field, filters: HttpFilters = ROUTER_ONLY): RouteConfig | undefined {
  const m = readField(p, f, ROUTE)
  if (m === undefined) return undefined
  const matchField = m.get('match')
  if (!present(matchField)) {
    p.report(f.path, 'a route needs a match; route dropped')
    return undefined
  }
  const name = asString(p, m.get('name'))
  const match = translateRouteMatch(p, matchField)
  if (match === undefined) {
    p.report(f.path, 'route dropped: its match cannot be honoured in full, and a broader match would take traffic meant for the routes after it')
    return undefined
  }
  const route: RouteConfig = name === undefined || name === '' ? { match } : { name, match }
  const action = firstOf(p, m, ACTIONS)
  let ok = false
  if (action?.name === 'route') ok = put(route, 'route', translateRouteAction(p, action, match))
  else if (action?.name === 'redirect') ok = put(route, 'redirect', redirectAction(p, action))
  else if (action?.name === 'direct_response') ok = put(route, 'directResponse', directResponse(p, action))
  if (!ok) {
    p.report(f.path, 'route dropped: it has no action the mesh can run (route, redirect or direct_response)')
    return undefined
  }
  translateMutations(p, m, route)
  routeFault(p, f.path, m.get('typed_per_filter_config'), route, filters)
  return route
}

/**
 * A route's fault: its `typed_per_filter_config` for the fault filter replaces the
 * filter-level config (as in Envoy); either applies only when the connection manager has
 * the fault filter. Any other per-filter config is reported.
 */
function routeFault(p: Problems, routePath: string, f: Field | undefined, route: RouteConfig, filters: HttpFilters): void {
  let fault = filters.fault ?? undefined
  for (const entry of asMap(p, f)) {
    const type = typeName(p, entry)
    if (entry.key !== FAULT_FILTER && type !== FAULT_TYPE) {
      p.report(entry.path, `per-filter config for "${clip(entry.key)}" is not supported`)
      continue
    }
    if (filters.fault === undefined) {
      p.report(entry.path, `the connection manager has no ${FAULT_FILTER} filter, so Envoy would not apply this fault either; ignored`)
      continue
    }
    fault = translateHttpFault(p, entry)
  }
  if (fault === undefined) return
  if (route.route === undefined) {
    p.report(f?.path ?? routePath, 'fault injection on a redirect or direct response route is not imported')
    return
  }
  route.fault = fault
}

// ---------------------------------------------------------------- route actions

const ROUTE_ACTION: Shape = {
  use: [
    'cluster', 'weighted_clusters', 'cluster_header', 'cluster_not_found_response_code', 'prefix_rewrite', 'regex_rewrite',
    'host_rewrite_literal', 'timeout', 'max_stream_duration', 'hash_policy', 'request_mirror_policies', 'retry_policy',
    'append_x_forwarded_host',
  ],
  // Istio sets these to their defaults on every route.
  drop: ['max_grpc_timeout', 'grpc_timeout_offset'],
  why: {
    cluster_specifier_plugin: 'cluster specifier plugins are not supported',
    inline_cluster_specifier_plugin: 'cluster specifier plugins are not supported',
    cors: 'CORS is not supported',
    idle_timeout: 'per-route idle timeouts are not supported',
    auto_host_rewrite: 'automatic host rewrite is not supported; use host_rewrite_literal',
    host_rewrite_header: 'host rewrite from a header is not supported; use host_rewrite_literal',
    host_rewrite_path_regex: 'host rewrite from the path is not supported; use host_rewrite_literal',
    metadata_match: 'metadata matching is not supported; name a subset instead',
    rate_limits: 'rate limits are not imported',
    upgrade_configs: 'protocol upgrades are not supported',
    hedge_policy: 'request hedging is not supported',
    internal_redirect_policy: 'internal redirects are not supported',
    path_rewrite_policy: 'URI template rewrites are not supported',
    retry_policy_typed_config: 'retry policy extensions are not supported',
    priority: 'routing priorities are not supported',
    early_data_policy: 'early data is not supported',
  },
}
const WEIGHTED_CLUSTERS: Shape = {
  use: ['clusters'],
  // Envoy v3 requires total_weight to equal the sum when set; the mesh uses the sum.
  drop: ['total_weight'],
  why: {
    runtime_key_prefix: 'runtime weights are not supported',
    header_name: 'picking the weighted cluster from a header is not supported',
    random_value_specifier: 'a fixed random value is not supported',
  },
}
const CLUSTER_WEIGHT: Shape = {
  use: ['name', 'weight', ...MUTATIONS],
  why: {
    metadata_match: 'metadata matching is not supported; name a subset instead',
    typed_per_filter_config: 'per-filter config is not supported',
    host_rewrite_literal: 'a per-cluster host rewrite is not supported',
    cluster_header: 'choosing the cluster from a header is not supported',
  },
}
const REGEX_REWRITE: Shape = { use: ['pattern', 'substitution'] }
const MAX_STREAM_DURATION: Shape = { use: ['max_stream_duration', 'grpc_timeout_header_max', 'grpc_timeout_header_offset'] }
const NOT_FOUND_CODES = ['SERVICE_UNAVAILABLE', 'NOT_FOUND', 'INTERNAL_SERVER_ERROR']
const NOT_FOUND_STATUS: Readonly<Record<string, number>> = { SERVICE_UNAVAILABLE: 503, NOT_FOUND: 404, INTERNAL_SERVER_ERROR: 500 }

function translateRouteAction(p: Problems, f: Field, match: RouteMatch): RouteAction | undefined {
  const m = readField(p, f, ROUTE_ACTION)
  if (m === undefined) return undefined
  // Metadata matching picks endpoints within the cluster: without it the route would reach
  // endpoints Envoy never sends it to (never widen).
  const subsetOnly = ['metadata_match', 'metadataMatch'].find((k) => present(rawField(f, k)))
  if (subsetOnly !== undefined) {
    p.report(f.path, `"${subsetOnly}" picks endpoints the mesh cannot select that way; the route is dropped`)
    return undefined
  }
  const action: RouteAction = {}
  const dest = firstOf(p, m, ['cluster', 'weighted_clusters', 'cluster_header'])
  let ok = false
  if (dest?.name === 'cluster') ok = put(action, 'cluster', nonEmpty(p, dest))
  else if (dest?.name === 'weighted_clusters') ok = put(action, 'weightedClusters', weightedClusters(p, dest))
  else if (dest?.name === 'cluster_header') ok = put(action, 'clusterHeader', clusterHeader(p, dest))
  if (!ok) {
    if (dest === undefined) p.report(f.path, 'a route action needs cluster, weighted_clusters or cluster_header')
    return undefined
  }
  const notFound = asEnum(p, m.get('cluster_not_found_response_code'), NOT_FOUND_CODES)
  if (notFound !== undefined && notFound !== 'SERVICE_UNAVAILABLE') action.clusterNotFoundResponseCode = NOT_FOUND_STATUS[notFound]
  const rewrite = firstOf(p, m, ['prefix_rewrite', 'regex_rewrite'])
  if (rewrite?.name === 'prefix_rewrite') {
    const prefix = asString(p, rewrite)
    if (match.safeRegex === undefined) put(action, 'prefixRewrite', prefix)
    // A regex match takes the whole path, so Envoy's prefix_rewrite replaces the whole path (the query stays).
    else if (prefix !== undefined) action.regexRewrite = { pattern: '^.*$', substitution: prefix.replace(/\\/g, '\\\\') }
  } else if (rewrite !== undefined) {
    put(action, 'regexRewrite', regexRewrite(p, rewrite))
  }
  put(action, 'hostRewrite', authority(p, m.get('host_rewrite_literal')))
  const xfh = m.get('append_x_forwarded_host')
  // false is Envoy's default (and what Istio sends); true would add a header the mesh does not add.
  if (asBool(p, xfh) === true) p.report((xfh as Field).path, 'append_x_forwarded_host is not supported: a host rewrite does not add x-forwarded-host')
  put(action, 'timeout', asDuration(p, m.get('timeout')))
  const msd = readField(p, m.get('max_stream_duration'), MAX_STREAM_DURATION)
  if (msd !== undefined) {
    const out: NonNullable<RouteAction['maxStreamDuration']> = {}
    put(out, 'maxStreamDuration', asDuration(p, msd.get('max_stream_duration')))
    put(out, 'grpcTimeoutHeaderMax', asDuration(p, msd.get('grpc_timeout_header_max')))
    put(out, 'grpcTimeoutHeaderOffset', asDuration(p, msd.get('grpc_timeout_header_offset')))
    if (Object.keys(out).length > 0) action.maxStreamDuration = out
  }
  const hashPolicy: HashPolicy[] = []
  for (const item of asList(p, m.get('hash_policy'))) {
    const policy = translateHashPolicy(p, item)
    if (policy !== undefined) hashPolicy.push(policy)
  }
  if (hashPolicy.length > 0) action.hashPolicy = hashPolicy
  const mirrors: RequestMirrorPolicy[] = []
  for (const item of asList(p, m.get('request_mirror_policies'))) {
    const policy = translateMirrorPolicy(p, item)
    if (policy !== undefined) mirrors.push(policy)
  }
  if (mirrors.length > 0) action.requestMirrorPolicies = mirrors
  put(action, 'retryPolicy', retryPolicy(p, m.get('retry_policy')))
  return action
}

function clusterHeader(p: Problems, f: Field): string | undefined {
  const name = nonEmpty(p, f)
  if (name === undefined) return undefined
  if (!isHeaderName(name) && !/^:(authority|method|path|scheme)$/i.test(name)) {
    p.report(f.path, `"${clip(name)}" is not a header name`)
    return undefined
  }
  return name
}

function weightedClusters(p: Problems, f: Field): WeightedClusterConfig[] | undefined {
  const m = readField(p, f, WEIGHTED_CLUSTERS)
  const out: WeightedClusterConfig[] = []
  for (const item of asList(p, m?.get('clusters'))) {
    const c = readField(p, item, CLUSTER_WEIGHT)
    if (c === undefined) continue
    // A share whose destination cannot be honoured drops the whole split: leaving the share
    // out, or sending it to the whole cluster instead of a subset, would send traffic where
    // Envoy does not (never widen).
    const elsewhere = ['cluster_header', 'clusterHeader', 'metadata_match', 'metadataMatch'].find((k) => present(rawField(item, k)))
    if (elsewhere !== undefined) {
      p.report(f.path, `a share chooses its cluster by "${elsewhere}", which is not supported; the route is dropped`)
      return undefined
    }
    const cluster = nonEmpty(p, c.get('name'))
    if (cluster === undefined) {
      p.report(f.path, 'a weighted cluster needs a name; the route is dropped')
      return undefined
    }
    // An unset weight is 0 in Envoy too.
    const weight = present(c.get('weight')) ? asUint(p, c.get('weight'), 0, 0xffffffff) : 0
    if (weight === undefined) continue
    const entry: WeightedClusterConfig = { cluster, weight }
    translateMutations(p, c, entry)
    out.push(entry)
  }
  if (out.length === 0) {
    p.report(f.path, 'no weighted cluster left')
    return undefined
  }
  if (out.every((c) => c.weight === 0)) {
    p.report(f.path, 'the weights add up to 0')
    return undefined
  }
  return out
}

/** A field of a message as written, whether or not a shape reads it. */
function rawField(f: Field, key: string): Field | undefined {
  const v = isObject(f.value) ? f.value[key] : undefined
  return v === undefined ? undefined : { key, name: key, value: v, path: `${f.path}.${key}` }
}

function regexRewrite(p: Problems, f: Field): RouteAction['regexRewrite'] {
  const m = readField(p, f, REGEX_REWRITE)
  if (m === undefined) return undefined
  const pattern = regexOf(p, m.get('pattern'))
  const substitution = asString(p, m.get('substitution'))
  if (pattern === undefined || substitution === undefined) {
    p.report(f.path, 'regex_rewrite needs pattern.regex and substitution; dropped')
    return undefined
  }
  const bad = rewriteProblem(pattern, substitution)
  if (bad !== undefined) {
    p.report((m.get('substitution') as Field).path, `${bad}; regex_rewrite dropped`)
    return undefined
  }
  return { pattern, substitution }
}

/** A host rewrite: an authority, with nothing that would make the Host header unsafe. */
function authority(p: Problems, f: Field | undefined): string | undefined {
  const value = asString(p, f)
  if (value === undefined || f === undefined) return undefined
  if (value.length === 0 || !isHeaderValue(value) || /[\s/]/.test(value)) {
    p.report(f.path, `"${clip(value)}" is not an authority; dropped`)
    return undefined
  }
  return value
}

// ---------------------------------------------------------------- retry policies

const RETRY_POLICY: Shape = {
  use: [
    'retry_on', 'num_retries', 'per_try_timeout', 'retry_back_off', 'retriable_status_codes', 'retriable_headers',
    'retriable_request_headers', 'host_selection_retry_max_attempts', 'retry_host_predicate', 'rate_limited_retry_back_off',
  ],
  why: {
    retry_priority: 'retry priorities are not supported',
    per_try_idle_timeout: 'per-try idle timeouts are not supported',
    retry_options_predicates: 'retry options predicates are not supported',
  },
}
const RETRY_BACK_OFF: Shape = { use: ['base_interval', 'max_interval'] }
const RATE_LIMITED_BACK_OFF: Shape = { use: ['max_interval', 'reset_headers'] }
/** Envoy retry_on values with no counterpart in the mesh (gRPC status conditions, HTTP/3). */
const KNOWN_RETRY_ON = new Set<string>(RETRY_ON)
/** The host predicate every retry here uses anyway (a retry goes to another endpoint when it can). */
const PREVIOUS_HOSTS = 'envoy.retry_host_predicates.previous_hosts'

/** Envoy `RetryPolicy` as ours; retry conditions the mesh lacks are reported and left out. */
function retryPolicy(p: Problems, f: Field | undefined): RetryPolicyConfig | undefined {
  const m = readField(p, f, RETRY_POLICY)
  if (m === undefined || f === undefined) return undefined
  const retryOnField = m.get('retry_on')
  const conditions: RetryOn[] = []
  for (const raw of (asString(p, retryOnField) ?? '').split(',')) {
    const c = raw.trim()
    if (c === '') continue
    if (KNOWN_RETRY_ON.has(c)) conditions.push(c as RetryOn)
    else p.report(retryOnField?.path ?? f.path, `retry condition "${clip(c)}" is not supported; left out`)
  }
  if (conditions.length === 0) {
    p.report(f.path, 'the retry policy has no retry condition the mesh supports; no retries')
    return undefined
  }
  const policy: RetryPolicyConfig = { retryOn: conditions }
  put(policy, 'numRetries', asUint(p, m.get('num_retries'), 0, 100))
  put(policy, 'perTryTimeout', asDuration(p, m.get('per_try_timeout')))
  const backOff = readField(p, m.get('retry_back_off'), RETRY_BACK_OFF)
  if (backOff !== undefined) {
    const b: NonNullable<RetryPolicyConfig['retryBackOff']> = {}
    put(b, 'baseInterval', asDuration(p, backOff.get('base_interval')))
    put(b, 'maxInterval', asDuration(p, backOff.get('max_interval')))
    if (Object.keys(b).length > 0) policy.retryBackOff = b
  }
  const codes: number[] = []
  for (const item of asList(p, m.get('retriable_status_codes'))) {
    const code = asUint(p, item, 100, 599)
    if (code !== undefined) codes.push(code)
  }
  if (codes.length > 0) policy.retriableStatusCodes = codes
  for (const [key, to] of [['retriable_headers', 'retriableHeaders'], ['retriable_request_headers', 'retriableRequestHeaders']] as const) {
    const list: HeaderMatcher[] = []
    for (const item of asList(p, m.get(key))) {
      const h = translateHeaderMatcher(p, item)
      if (h !== undefined) list.push(h)
      else if (to === 'retriableRequestHeaders') {
        // A request matcher dropped would let more requests be retried: drop the policy's retries of those instead.
        p.report(item.path, 'a retriable request header matcher cannot be honoured; the retry policy is dropped rather than retrying more requests')
        return undefined
      }
    }
    if (list.length > 0) policy[to] = list
  }
  put(policy, 'hostSelectionRetryMaxAttempts', asUint(p, m.get('host_selection_retry_max_attempts'), 1, 100))
  for (const item of asList(p, m.get('retry_host_predicate'))) {
    const name = isObjectLike(item.value) ? item.value['name'] : undefined
    if (name !== PREVIOUS_HOSTS) p.report(item.path, `retry host predicate ${describe(name)} is not supported; retries prefer an endpoint not tried yet (${PREVIOUS_HOSTS})`)
  }
  const limited = readField(p, m.get('rate_limited_retry_back_off'), RATE_LIMITED_BACK_OFF)
  if (limited !== undefined) {
    put(policy, 'maxRetryAfter', asDuration(p, limited.get('max_interval')))
    for (const item of asList(p, limited.get('reset_headers'))) {
      const header = isObjectLike(item.value) ? unwrap(item.value['name']) : undefined
      if (typeof header !== 'string' || header.toLowerCase() !== 'retry-after') p.report(item.path, 'only the Retry-After header is read for back-off')
    }
  }
  return policy
}

function isObjectLike(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

// ---------------------------------------------------------------- hash policies

const HASH_POLICY: Shape = {
  use: ['header', 'cookie', 'query_parameter', 'terminal'],
  why: {
    connection_properties: 'hashing on connection properties is not supported',
    filter_state: 'hashing on filter state is not supported',
  },
}
const HASH_HEADER: Shape = { use: ['header_name'], why: { regex_rewrite: 'rewriting the hashed header value is not supported' } }
const HASH_COOKIE: Shape = {
  use: ['name'],
  why: {
    ttl: 'generating the cookie is not supported; requests without it are hashed by the next policy',
    path: 'generating the cookie is not supported',
    attributes: 'generating the cookie is not supported',
  },
}
const HASH_QUERY: Shape = { use: ['name'] }

function translateHashPolicy(p: Problems, f: Field): HashPolicy | undefined {
  const m = readField(p, f, HASH_POLICY)
  if (m === undefined) return undefined
  const kind = firstOf(p, m, ['header', 'cookie', 'query_parameter'])
  const policy: HashPolicy = {}
  let ok = false
  if (kind?.name === 'header') {
    const name = asString(p, readField(p, kind, HASH_HEADER)?.get('header_name'))
    if (name !== undefined && !isHeaderName(name)) p.report(kind.path, `"${clip(name)}" is not a header name`)
    else ok = put(policy, 'header', name === undefined ? undefined : { name })
  } else if (kind?.name === 'cookie') {
    const name = nonEmpty(p, readField(p, kind, HASH_COOKIE)?.get('name'))
    ok = put(policy, 'cookie', name === undefined ? undefined : { name })
  } else if (kind?.name === 'query_parameter') {
    const name = nonEmpty(p, readField(p, kind, HASH_QUERY)?.get('name'))
    ok = put(policy, 'queryParameter', name === undefined ? undefined : { name })
  }
  if (!ok) {
    p.report(f.path, 'hash policy dropped: it needs header.header_name, cookie.name or query_parameter.name')
    return undefined
  }
  if (asBool(p, m.get('terminal')) === true) policy.terminal = true
  return policy
}

// ---------------------------------------------------------------- redirect, direct response

const REDIRECT: Shape = {
  use: ['scheme_redirect', 'https_redirect', 'host_redirect', 'port_redirect', 'path_redirect', 'prefix_rewrite', 'regex_rewrite', 'response_code', 'strip_query'],
}
/** RedirectResponseCode enum, by value. */
const REDIRECT_CODES: Readonly<Record<string, number>> = {
  MOVED_PERMANENTLY: 301, FOUND: 302, SEE_OTHER: 303, TEMPORARY_REDIRECT: 307, PERMANENT_REDIRECT: 308,
}
const DIRECT_RESPONSE: Shape = { use: ['status', 'body'], why: { body_format: 'body formatting is not supported' } }
const DATA_SOURCE: Shape = {
  use: ['inline_string', 'inline_bytes'],
  why: {
    filename: 'bodies from files are not supported; use inline_string',
    environment_variable: 'bodies from environment variables are not supported; use inline_string',
    watched_directory: 'bodies from files are not supported; use inline_string',
  },
}

function redirectAction(p: Problems, f: Field): RedirectAction | undefined {
  const m = readField(p, f, REDIRECT)
  if (m === undefined) return undefined
  const redirect: RedirectAction = {}
  const scheme = firstOf(p, m, ['scheme_redirect', 'https_redirect'])
  if (scheme?.name === 'scheme_redirect') {
    const s = asString(p, scheme)
    if (s !== undefined && /^[a-z][a-z0-9+.-]*$/i.test(s)) redirect.schemeRedirect = s
    else if (s !== undefined) p.report(scheme.path, `"${clip(s)}" is not a URL scheme; dropped`)
  } else if (scheme !== undefined) {
    if (asBool(p, scheme) === true) redirect.httpsRedirect = true
  }
  put(redirect, 'hostRedirect', locationPart(p, m.get('host_redirect')))
  const port = asUint(p, m.get('port_redirect'), 0, 65535)
  // Port 0 is protobuf's "unset".
  if (port !== undefined && port > 0) redirect.portRedirect = port
  const path = firstOf(p, m, ['path_redirect', 'prefix_rewrite', 'regex_rewrite'])
  if (path?.name === 'path_redirect') put(redirect, 'pathRedirect', locationPart(p, path))
  else if (path?.name === 'prefix_rewrite') put(redirect, 'prefixRewrite', locationPart(p, path))
  else if (path !== undefined) {
    const rewrite = regexRewrite(p, path)
    if (rewrite !== undefined && !isHeaderValue(rewrite.substitution)) p.report(path.path, 'the substitution has characters a Location header cannot carry; dropped')
    else put(redirect, 'regexRewrite', rewrite)
  }
  put(redirect, 'responseCode', redirectCode(p, m.get('response_code')))
  if (asBool(p, m.get('strip_query')) === true) redirect.stripQuery = true
  return redirect
}

function redirectCode(p: Problems, f: Field | undefined): number | undefined {
  if (!present(f)) return undefined
  const v = f.value
  // By name, by enum number (0..4), or (leniently) as the status code itself.
  const names = Object.keys(REDIRECT_CODES)
  const codes = Object.values(REDIRECT_CODES)
  if (typeof v === 'string' && Object.hasOwn(REDIRECT_CODES, v.toUpperCase())) return REDIRECT_CODES[v.toUpperCase()]
  if (typeof v === 'number' && Number.isInteger(v) && v >= 0 && v < codes.length) return codes[v]
  if (typeof v === 'number' && codes.includes(v)) return v
  p.report(f.path, `${describe(v)} is not one of ${names.join(', ')}; dropped`)
  return undefined
}

/** A string that will go into a Location header. */
function locationPart(p: Problems, f: Field | undefined): string | undefined {
  const value = asString(p, f)
  if (value === undefined || f === undefined || isHeaderValue(value)) return value
  p.report(f.path, 'contains characters a header cannot carry; dropped')
  return undefined
}

function directResponse(p: Problems, f: Field): DirectResponseAction | undefined {
  const m = readField(p, f, DIRECT_RESPONSE)
  if (m === undefined) return undefined
  const statusField = m.get('status')
  if (!present(statusField)) {
    p.report(f.path, 'a direct_response needs a status')
    return undefined
  }
  const status = asUint(p, statusField, 200, 599)
  if (status === undefined) return undefined
  const response: DirectResponseAction = { status }
  const bodyField = m.get('body')
  if (present(bodyField)) {
    const source = readField(p, bodyField, DATA_SOURCE)
    const kind = source === undefined ? undefined : firstOf(p, source, ['inline_string', 'inline_bytes'])
    let body: string | undefined
    if (kind?.name === 'inline_string') body = asString(p, kind)
    else if (kind?.name === 'inline_bytes') body = inlineBytes(p, kind)
    if (body === undefined) {
      if (source !== undefined && kind === undefined && (source.unsupported ?? 0) === 0) p.report(bodyField.path, 'a body needs inline_string or inline_bytes; the route is dropped')
      return undefined
    }
    if (Buffer.byteLength(body) > limits.directResponseBody) {
      p.report(bodyField.path, `the body is over ${limits.directResponseBody} bytes, the most the mesh (and Envoy by default) sends`)
      return undefined
    }
    if (body !== '') response.body = body
  }
  return response
}

/** `inline_bytes`: base64 in JSON and YAML, a byte array from protobufjs. Only UTF-8 text fits our model. */
function inlineBytes(p: Problems, f: Field): string | undefined {
  const v = f.value
  const bytes = typeof v === 'string' ? Buffer.from(v, 'base64') : v instanceof Uint8Array ? Buffer.from(v) : undefined
  if (bytes === undefined) {
    p.report(f.path, `expected base64 bytes, got ${describe(v)}; dropped`)
    return undefined
  }
  const text = bytes.toString('utf8')
  if (!Buffer.from(text, 'utf8').equals(bytes)) {
    p.report(f.path, 'binary bodies are not supported (the body is not UTF-8 text); dropped')
    return undefined
  }
  return text
}

