/**
 * Compiles a validated config into a frozen snapshot: matchers compiled once, weight tables
 * made cumulative, header mutations merged per target, domains indexed. Clusters whose
 * config did not change keep their runtime object (balancer state, DNS timer, hosts), so a
 * swap does not disturb them.
 */
import { hash } from 'node:crypto'
import { CompiledMatch, compileHeaderMatchers } from '../http/matcher.js'
import { DomainIndex } from '../router/domain-index.js'
import { buildRouteIndex } from '../router/route-index.js'
import { compileMutations, type HeaderMutations, type MutationSource } from '../http/header-mutations.js'
import {
  compileHash,
  type ClusterAction,
  type CompiledAction,
  type CompiledRoute,
  type CompiledVirtualCluster,
  type CompiledVirtualHost,
  type Target,
} from '../router/route-action.js'
import { buildRedirect } from '../router/redirect.js'
import type { RequestView } from '../http/request-view.js'
import type { DeepReadonly } from '../config/deep-readonly.js'
import type { InboundFilters, InboundRoute, Snapshot } from './snapshot.js'
import { Cluster } from '../upstream/cluster.js'
import type { HostRegistry } from '../upstream/host.js'
import { defaults } from '../config/defaults.js'
import { parseDuration } from '../config/duration.js'
import { compileRegex } from '../config/regex.js'
import { normalizeEnvoyEnums } from '../config/envoy-enums.js'
import { isCheckedCopy } from '../config/validate.js'
import type { ClusterConfig, HeaderValueOption, MeshConfig, RateLimitConfig, RequestAuthenticationConfig, RetryPolicyConfig, RouteConfig, TracingConfig, VirtualHostConfig, WeightedClusterConfig } from '../config/types.js'
import { compileAdmission } from '../policy/admission.js'
import type { LimitRegistry, LimitSet } from '../policy/limits.js'
import { RetryPolicy } from '../policy/retry-policy.js'
import { ConfigError, type ConfigIssue } from '../errors.js'
import { collectorUrl, collectorUrlProblem } from '../config/collector-url.js'
import type { TracingSettings } from '../observability/tracing.js'
import { envSampler } from '../config/otel-env.js'
import { compileFault, type CompiledFault } from '../policy/fault.js'
import { compileMirror } from '../router/mirror.js'
import { compileIdentity, compileInboundTls, compileUpstreamTls } from '../security/compile.js'
import type { UpstreamTls } from '../security/upstream-tls.js'
import { RequestAuthentication } from '../security/jwt.js'
import { Authorizer } from '../security/authz.js'

/** The result of a compile: the snapshot, and which cluster runtimes it created and retired. */
export interface CompileResult {
  readonly snapshot: Snapshot
  /** Clusters new in this snapshot (to start). */
  readonly created: readonly Cluster[]
  /** Clusters of the previous snapshot that this one does not reuse (to dispose after the swap). */
  readonly retired: readonly Cluster[]
}

/** Compiles a config that `validateConfig` accepted. */
export function compileConfig(
  input: MeshConfig,
  version: number,
  registry: HostRegistry,
  limits: LimitRegistry,
  previous?: Snapshot,
): CompileResult {
  // Envoy's upper-case enum spellings (ROUND_ROBIN, STRICT_DNS, SECOND) become the model's, once.
  const normalized = normalizeEnvoyEnums(input)
  // The copy validation made is frozen plain data already: it is the snapshot's config as it
  // is (one copy of a large config fewer); anything else is copied and frozen here.
  const config = (normalized === input && isCheckedCopy(input) ? input : cloneFrozen(normalized)) as DeepReadonly<MeshConfig>
  // First: it may throw, and nothing below may have taken resources yet.
  const tracing = compileTracing(config.tracing)
  // Security next: it reads files and may throw; a store it created is closed if anything below throws.
  const identity = compileIdentity(config.identity, previous === undefined ? undefined : { store: previous.identity, key: previous.identityKey })
  const upstreamTls = new Map<string, UpstreamTls | undefined>()
  try {
    ;(config.clusters ?? []).forEach((c, i) => upstreamTls.set(c.name, compileUpstreamTls(c as ClusterConfig, i, identity)))
  } catch (err) {
    if (identity.created) identity.store?.close()
    throw err
  }
  const clusters = new Map<string, Cluster>()
  const created: Cluster[] = []
  const reused = new Set<Cluster>()
  for (const c of config.clusters ?? []) {
    const tls = upstreamTls.get(c.name)
    // With TLS, the key also changes when the workload identity the cluster presents changes.
    const key = clusterKey(c, tls)
    const old = previous?.clusters.get(c.name)
    if (old !== undefined && old.configKey === key) {
      clusters.set(c.name, old)
      reused.add(old)
    } else {
      // A changed cluster inherits its predecessor's endpoint health (Envoy keeps it across CDS updates).
      const cluster = new Cluster(c as ClusterConfig, key, registry, old, tls)
      clusters.set(c.name, cluster)
      created.push(cluster)
    }
  }
  const retired = previous === undefined ? [] : [...previous.clusters.values()].filter((c) => !reused.has(c))

  const clusterLimits = new Map<string, LimitSet | null>()
  for (const c of (config.clusters ?? []) as ClusterConfig[]) clusterLimits.set(c.name, limits.build(`cluster[${c.name}]`, c.rateLimit, c.concurrencyLimit))

  const virtualHosts = new Map<string, CompiledVirtualHost>()
  const domains = new DomainIndex<CompiledVirtualHost>()
  const shared = new SharedParts()
  for (const vh of (config.virtualHosts ?? []) as VirtualHostConfig[]) {
    const routes = Object.freeze(vh.routes.map((r, i) => compileRoute(r, vh, clusters, clusterLimits, limits.build(`route[${vh.name}/${r.name ?? i}]`, r.route?.rateLimit, r.route?.concurrencyLimit), shared)))
    const compiled: CompiledVirtualHost = Object.freeze({
      name: vh.name,
      routes,
      index: buildRouteIndex(routes),
      requireTls: vh.requireTls ?? 'NONE',
      virtualClusters: compileVirtualClusters(vh),
    })
    virtualHosts.set(vh.name, compiled)
    for (const d of vh.domains) domains.add(d, compiled)
  }

  // [security-auth] JWT rules and authorization policies.
  const requestAuthentication = compileRequestAuthentication(config.listener?.requestAuthentication, previous?.requestAuthentication ?? null)
  const authorization = config.listener?.authorization === undefined ? null : new Authorizer(config.listener.authorization)
  const listenerLimits = limits.build('listener', config.listener?.rateLimit as RateLimitConfig | undefined, undefined)
  const filtersOf = (routeLimits: LimitSet | null, fault: CompiledFault | null): InboundFilters | null =>
    inboundFilters(listenerLimits, routeLimits, requestAuthentication, authorization, fault)
  const snapshot: Snapshot = Object.freeze({
    version,
    config,
    clusters,
    virtualHosts,
    domains,
    registryOnly: config.outboundTrafficPolicy?.mode === 'REGISTRY_ONLY',
    tracing,
    listenerLimits,
    listenerRoutes: Object.freeze((config.listener?.routes ?? []).map((r, i): InboundRoute => {
      const name = r.name ?? `route-${i}`
      const routeLimits = limits.build(`listener.route[${name}]`, r.rateLimit as RateLimitConfig | undefined, r.concurrencyLimit)
      const fault = compileFault(r.fault)
      return Object.freeze({ name, match: new CompiledMatch(r.match as RouteConfig['match']), limits: routeLimits, fault, filters: filtersOf(routeLimits, fault) })
    })),
    listenerFilters: filtersOf(null, null),
    identity: identity.store,
    identityKey: identity.key,
    inboundTls: compileInboundTls(config.listener?.mtls, identity.store),
    requestAuthentication,
    authorization,
  })
  return { snapshot, created, retired }
}

/**
 * What tells that a cluster's runtime can be kept on a swap: a SHA-256 digest of its
 * config's JSON (and of the identity it presents, with TLS). The cluster keeps it for as
 * long as it lives, so a digest (43 characters) rather than the JSON itself (~300 bytes for
 * a small cluster, kilobytes for one with many endpoints).
 */
function clusterKey(c: DeepReadonly<ClusterConfig>, tls: UpstreamTls | undefined): string {
  return hash('sha256', tls === undefined ? JSON.stringify(c) : `${JSON.stringify(c)}|tls:${tls.key}`, 'base64url')
}

/** The filter list of one inbound route (limits → JWT → authorization → fault), or `null` when it runs none. */
function inboundFilters(
  listenerLimits: LimitSet | null,
  routeLimits: LimitSet | null,
  requestAuthentication: RequestAuthentication | null,
  authorization: Authorizer | null,
  fault: CompiledFault | null,
): InboundFilters | null {
  const limits = listenerLimits === null ? (routeLimits === null ? null : [routeLimits]) : routeLimits === null ? [listenerLimits] : [listenerLimits, routeLimits]
  if (limits === null && requestAuthentication === null && authorization === null && fault === null) return null
  return Object.freeze({ limits: limits === null ? null : Object.freeze(limits), requestAuthentication, authorization, fault })
}

/** The compiled JWT rules; the previous snapshot's object when the config is the same, so its token cache and fetched keys survive a swap. */
function compileRequestAuthentication(ra: DeepReadonly<RequestAuthenticationConfig> | undefined, previous: RequestAuthentication | null): RequestAuthentication | null {
  if (ra === undefined) return null
  const key = JSON.stringify(ra)
  return previous !== null && previous.configKey === key ? previous : new RequestAuthentication(ra, key)
}

function compileTracing(t: DeepReadonly<TracingConfig> | undefined): TracingSettings {
  // Validation refuses bad collector URLs; this second check keeps compile safe when it is
  // called on its own (the message and path are the ones validation gives).
  const issues: ConfigIssue[] = []
  const collector = (key: 'zipkin' | 'otlp'): string | undefined => {
    const v = t?.[key]
    if (typeof v !== 'string') return undefined
    const problem = collectorUrlProblem(v)
    if (problem === undefined) return collectorUrl(v)
    issues.push({ path: `tracing.${key}`, code: 'INVALID_VALUE', message: problem })
    return undefined
  }
  const zipkin = collector('zipkin')
  const otlp = collector('otlp')
  if (issues.length > 0) throw new ConfigError(issues)
  // tracing.sampling wins; unset, the standard OTEL_TRACES_SAMPLER(_ARG); then Istio's default.
  const sampler = t?.sampling !== undefined ? { ratio: t.sampling / 100, parentBased: true } : envSampler() ?? { ratio: defaults.tracingSampling / 100, parentBased: true }
  return Object.freeze({
    samplingRatio: sampler.ratio,
    parentBased: sampler.parentBased,
    extract: Object.freeze([...(t?.extract ?? defaults.traceExtract)]),
    inject: Object.freeze([...(t?.inject ?? defaults.traceInject)]),
    recentSpans: t?.recentSpans ?? defaults.recentSpans,
    zipkin,
    otlp,
    otlpProtocol: t?.otlpProtocol,
    spans: t?.spans ?? 'auto',
  })
}

function compileRoute(
  r: RouteConfig,
  vh: VirtualHostConfig,
  clusters: ReadonlyMap<string, Cluster>,
  clusterLimits: ReadonlyMap<string, LimitSet | null>,
  routeLimits: LimitSet | null,
  shared: SharedParts,
): CompiledRoute {
  const match = new CompiledMatch(r.match)
  const routeLevel = mutationLevel(r.requestHeadersToAdd, r.requestHeadersToRemove)
  const vhostLevel = mutationLevel(vh.requestHeadersToAdd, vh.requestHeadersToRemove)
  const routeResponse = mutationLevel(r.responseHeadersToAdd, r.responseHeadersToRemove)
  const vhostResponse = mutationLevel(vh.responseHeadersToAdd, vh.responseHeadersToRemove)
  // The order the levels apply in: most specific first (Envoy's default) or last.
  const mostSpecificLast = vh.mostSpecificHeaderMutationsWins === true

  let action: CompiledAction
  if (r.route !== undefined) {
    const a = r.route
    const mirror = a.requestMirrorPolicies === undefined || a.requestMirrorPolicies.length === 0
      ? null
      : compileMirror(a.requestMirrorPolicies, clusters, mergeMutations(mostSpecificLast, routeLevel, vhostLevel, null))
    const base: ActionSettings = {
      timeoutMs: routeTimeoutMs(a),
      rewritePath: compileRewrite(a.prefixRewrite, a.regexRewrite, match),
      hostRewrite: a.hostRewrite,
      hash: compileHash(a.hashPolicy ?? []),
      retry: shared.retryPolicy(a.retryPolicy ?? vh.retryPolicy),
      fault: compileFault(r.fault),
      mirror,
      notFoundStatus: a.clusterNotFoundResponseCode ?? 503,
      grpcTimeout: compileGrpcTimeout(a.maxStreamDuration),
    }
    const target = (d: WeightedClusterConfig): Target => {
      const cluster = clusters.get(d.cluster) as Cluster
      const gate = compileAdmission(routeLimits, clusterLimits.get(cluster.name) ?? null)
      const requestMutations = mergeMutations(mostSpecificLast, mutationLevel(d.requestHeadersToAdd, d.requestHeadersToRemove), routeLevel, vhostLevel)
      const responseMutations = mergeMutations(mostSpecificLast, mutationLevel(d.responseHeadersToAdd, d.responseHeadersToRemove), routeResponse, vhostResponse)
      const make = (): Target => Object.freeze({
        cluster,
        clusterName: cluster.name,
        gate,
        subsetIndex: d.subset === undefined ? -1 : cluster.subsetNames.indexOf(d.subset),
        subset: d.subset,
        requestMutations,
        responseMutations,
      })
      // A target with no limits and no header changes is the same for every route to its cluster and subset.
      return gate === null && requestMutations === null && responseMutations === null ? shared.plainTarget(cluster, d.subset, make) : make()
    }
    if (a.clusterHeader !== undefined) {
      // Envoy cluster_header: the cluster is the request's to name; each one named gets its action once.
      const byCluster = new Map<string, ClusterAction>()
      const forCluster = (name: string): ClusterAction | undefined => {
        let bound = byCluster.get(name)
        if (bound === undefined && clusters.has(name)) {
          bound = clusterAction(base, Object.freeze([target({ cluster: name, weight: 1 })]), null, 0, null, null)
          byCluster.set(name, bound)
        }
        return bound
      }
      action = clusterAction(base, NO_TARGETS, null, 0, a.clusterHeader.toLowerCase(), forCluster)
    } else {
      const dests: WeightedClusterConfig[] = a.weightedClusters ?? [{ cluster: a.cluster as string, subset: a.subset, weight: 1 }]
      // Sized ahead: a list grown by push keeps room for 17 (it is kept, frozen, in the snapshot).
      let kept = 0
      for (let i = 0; i < dests.length; i++) if (!((dests[i] as WeightedClusterConfig).weight === 0 && dests.length > 1)) kept++
      const targets: Target[] = new Array<Target>(kept)
      // A plain array of small integers (a typed array would cost a JSArrayBuffer and its
      // own backing store, ~200 bytes, for a table of two or three numbers).
      const cumulative: number[] | null = kept > 1 ? new Array<number>(kept).fill(0) : null
      let total = 0
      for (let i = 0, n = 0; i < dests.length; i++) {
        const d = dests[i] as WeightedClusterConfig
        if (d.weight === 0 && dests.length > 1) continue
        targets[n] = target(d)
        if (cumulative !== null) {
          total += d.weight
          cumulative[n] = total
        }
        n++
      }
      action = cumulative === null && targets.length === 1
        ? shared.singleTargetAction(base, targets[0] as Target)
        : clusterAction(base, Object.freeze(targets), cumulative === null ? null : Object.freeze(cumulative), total, null, null)
    }
  } else if (r.redirect !== undefined) {
    action = buildRedirect(r.redirect, match)
  } else {
    const d = r.directResponse as NonNullable<RouteConfig['directResponse']>
    action = Object.freeze({ kind: 'direct', status: d.status, body: d.body === undefined ? undefined : Buffer.from(d.body) })
  }
  return Object.freeze({
    name: r.name,
    match,
    action,
    responseMutations: mergeMutations(mostSpecificLast, routeResponse, vhostResponse, null),
  })
}

/**
 * The compiled parts that many routes of one config have alike, made once per compile and
 * shared (they are frozen and hold no state of their own): a retry policy per distinct
 * policy (an Istio config gives most routes the same one), a target per cluster and subset
 * when it has no limits and no header changes, and the action of a route to one such
 * target when nothing else in it is the route's own (no rewrite, hash, fault, mirror...).
 * On the 100-cluster config of bench/lib/mesh-config.mjs: ~140 bytes less per route.
 * Nothing on the request path tells shared parts from the route's own: the route's name
 * and match are its own object's, and per-target state (the send path's recorders) is keyed
 * by the cluster, subset and host, which shared targets have alike.
 */
class SharedParts {
  readonly #retries = new Map<string, RetryPolicy>()
  readonly #retryKeys = new Map<RetryPolicy, string>()
  readonly #targets = new Map<Cluster, Map<string | undefined, Target>>()
  /** Per shared target: the list of it alone, and the actions to it alone, by their settings. */
  readonly #toTarget = new Map<Target, { readonly list: readonly Target[]; readonly actions: Map<string, ClusterAction> }>()

  retryPolicy(config: DeepReadonly<RetryPolicyConfig> | undefined): RetryPolicy | null {
    if (config === undefined) return null
    const key = JSON.stringify(config)
    let policy = this.#retries.get(key)
    if (policy === undefined) {
      policy = new RetryPolicy(config as RetryPolicyConfig)
      this.#retries.set(key, policy)
      this.#retryKeys.set(policy, key)
    }
    return policy
  }

  plainTarget(cluster: Cluster, subset: string | undefined, make: () => Target): Target {
    let bySubset = this.#targets.get(cluster)
    if (bySubset === undefined) this.#targets.set(cluster, (bySubset = new Map<string | undefined, Target>()))
    let target = bySubset.get(subset)
    if (target === undefined) {
      target = make()
      bySubset.set(subset, target)
      this.#toTarget.set(target, { list: Object.freeze([target]), actions: new Map() })
    }
    return target
  }

  singleTargetAction(s: ActionSettings, target: Target): ClusterAction {
    const to = this.#toTarget.get(target)
    if (to === undefined) return clusterAction(s, Object.freeze([target]), null, 0, null, null)
    // Functions and objects made for this route alone (a rewrite closes over its match) make the action its own.
    if (s.rewritePath !== null || s.hash !== null || s.fault !== null || s.mirror !== null || s.grpcTimeout !== null) {
      return clusterAction(s, to.list, null, 0, null, null)
    }
    const key = JSON.stringify([s.timeoutMs, s.hostRewrite ?? null, s.notFoundStatus, s.retry === null ? null : this.#retryKeys.get(s.retry)])
    let action = to.actions.get(key)
    if (action === undefined) to.actions.set(key, (action = clusterAction(s, to.list, null, 0, null, null)))
    return action
  }
}

/** What a route's cluster actions share, whichever cluster a `clusterHeader` names. */
type ActionSettings = Pick<ClusterAction, 'timeoutMs' | 'rewritePath' | 'hostRewrite' | 'hash' | 'retry' | 'fault' | 'mirror' | 'notFoundStatus' | 'grpcTimeout'>

const NO_TARGETS: readonly Target[] = Object.freeze([])

/**
 * A cluster action, made by one object literal: every action has the same shape, with its
 * fields in the object itself. (An object spread, `{ ...base, targets }`, gives an object
 * whose later fields go to a separate property array: 40 more bytes per route.)
 */
function clusterAction(
  s: ActionSettings,
  targets: readonly Target[],
  cumulative: readonly number[] | null,
  totalWeight: number,
  clusterHeader: string | null,
  forCluster: ((name: string) => ClusterAction | undefined) | null,
): ClusterAction {
  return Object.freeze({
    kind: 'cluster',
    targets,
    cumulative,
    totalWeight,
    timeoutMs: s.timeoutMs,
    rewritePath: s.rewritePath,
    hostRewrite: s.hostRewrite,
    hash: s.hash,
    retry: s.retry,
    fault: s.fault,
    mirror: s.mirror,
    clusterHeader,
    forCluster,
    notFoundStatus: s.notFoundStatus,
    grpcTimeout: s.grpcTimeout,
  })
}

/** One level of header mutations, or `null` when it has none (most levels of most configs). */
function mutationLevel(toAdd: readonly HeaderValueOption[] | undefined, toRemove: readonly string[] | undefined): MutationSource | null {
  return (toAdd === undefined || toAdd.length === 0) && (toRemove === undefined || toRemove.length === 0) ? null : { toAdd, toRemove }
}

/**
 * The levels merged, most specific (`first`) to least, or the reverse with
 * `mostSpecificLast`. An empty level changes nothing, so it is left out, and none at all is
 * `null` without a list being made: a large config compiles a few per route and target.
 */
function mergeMutations(mostSpecificLast: boolean, first: MutationSource | null, second: MutationSource | null, third: MutationSource | null): HeaderMutations | null {
  if (first === null && second === null && third === null) return null
  const levels: MutationSource[] = []
  if (first !== null) levels.push(first)
  if (second !== null) levels.push(second)
  if (third !== null) levels.push(third)
  return compileMutations(mostSpecificLast ? levels.reverse() : levels)
}

/**
 * The route timeout: `timeout` (default 15s; 0 disables), bounded by
 * `maxStreamDuration.maxStreamDuration` when set. Without `timeout`, the stream duration
 * replaces the 15s default (as gRPC's proxyless clients read istiod's routes).
 */
function routeTimeoutMs(a: NonNullable<RouteConfig['route']>): number {
  const stream = parseDuration(a.maxStreamDuration?.maxStreamDuration)
  const route = a.timeout !== undefined ? (parseDuration(a.timeout) ?? defaults.routeTimeoutMs) : stream !== undefined ? 0 : defaults.routeTimeoutMs
  return stream !== undefined && stream > 0 && (route === 0 || stream < route) ? stream : route
}

/** gRPC's timeout units (grpc-timeout: up to 8 digits and one of H M S m u n). */
const GRPC_UNITS: Readonly<Record<string, number>> = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 0.001, n: 0.000001 }

/**
 * Envoy's timeout of a gRPC request under `grpc_timeout_header_max` (FilterUtility::finalTimeout):
 * the `grpc-timeout` header less the offset (when the offset is smaller), capped by the max
 * unless it is 0; a gRPC request without the header gets the max (0: no timeout).
 */
function compileGrpcTimeout(msd: NonNullable<RouteConfig['route']>['maxStreamDuration']): ((req: RequestView) => number | undefined) | null {
  const max = parseDuration(msd?.grpcTimeoutHeaderMax)
  if (max === undefined) return null
  const offset = parseDuration(msd?.grpcTimeoutHeaderOffset) ?? 0
  return (req) => {
    const type = req.header('content-type')
    if (type === undefined || !/^application\/grpc(?:$|[+;])/.test(type)) return undefined
    const header = req.header('grpc-timeout')
    const m = header === undefined ? null : /^(\d{1,8})([HMSmun])$/.exec(header)
    let t = m === null ? 0 : Math.ceil(Number(m[1]) * (GRPC_UNITS[m[2] as string] as number))
    if (offset > 0 && offset < t) t -= offset
    if (max !== 0 && (t === 0 || t > max)) t = max
    return t
  }
}

function compileVirtualClusters(vh: VirtualHostConfig): readonly CompiledVirtualCluster[] | null {
  if (vh.virtualClusters === undefined || vh.virtualClusters.length === 0) return null
  return Object.freeze(vh.virtualClusters.map((vc) => {
    const test = compileHeaderMatchers(vc.headers)
    return Object.freeze({ name: vc.name, matches: (req: RequestView) => test((n) => req.header(n)) })
  }))
}

/** Path rewrite of a route: replace the matched prefix (or the exact path), or a regex substitution. */
function compileRewrite(
  prefixRewrite: string | undefined,
  regexRewrite: { pattern: string; substitution: string } | undefined,
  match: CompiledMatch,
): ((req: RequestView) => string) | null {
  if (prefixRewrite !== undefined) {
    const matched = match.matchedPrefix ?? ''
    if (match.isExactPath) {
      return (req) => prefixRewrite + req.fullPath.slice(req.path.length)
    }
    return (req) => prefixRewrite + req.fullPath.slice(matched.length)
  }
  if (regexRewrite !== undefined) {
    // RE2::GlobalReplace on the path without the query, as Envoy does.
    const re = compileRegex(regexRewrite.pattern)
    const substitution = regexRewrite.substitution
    return (req) => re.replaceAll(req.path, substitution) + req.fullPath.slice(req.path.length)
  }
  return null
}

/**
 * A frozen deep copy of validated config data. Fields set to null (YAML's empty value) are
 * dropped: null means "not set" throughout the model, so compiled code never sees it.
 */
function cloneFrozen(value: unknown): unknown {
  if (Array.isArray(value)) return Object.freeze(value.map(cloneFrozen))
  if (typeof value !== 'object' || value === null) return value
  const out: Record<string, unknown> = {}
  for (const key of Object.keys(value)) {
    const v = (value as Record<string, unknown>)[key]
    if (v !== null && v !== undefined) out[key] = cloneFrozen(v)
  }
  return Object.freeze(out)
}
