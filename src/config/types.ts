/**
 * The mesh config model: Envoy's object model (clusters, endpoints, virtual hosts, routes,
 * listener) in camelCase. Every name keeps its Envoy meaning, so Envoy's docs explain it.
 *
 * These are the *input* types: what users write in YAML, JSON or code. Validation checks
 * them; compilation turns them into the frozen runtime snapshot.
 *
 * @module
 */

/** A duration: a number of milliseconds, or a string such as `250ms`, `3s`, `1.5s`, `1m`, `1h`. */
export type Duration = number | string

/** The whole config of one workload. */
export interface MeshConfig {
  /** Upstream clusters: named groups of endpoints. */
  clusters?: ClusterConfig[]
  /** Outbound virtual hosts: the authority of a request selects one. */
  virtualHosts?: VirtualHostConfig[]
  /** The inbound side of this workload (used by `mesh.createServer` / `mesh.wrap`). */
  listener?: ListenerConfig
  /** What happens to outbound requests whose authority no virtual host claims. */
  outboundTrafficPolicy?: OutboundTrafficPolicy
  /** Trace propagation and sampling. */
  tracing?: TracingConfig
  /**
   * The admin endpoint of `sidecarless proxy` (Envoy's bootstrap `admin`): `/ready`,
   * `/stats`, `/stats/prometheus`, `/clusters`, `/config_dump`, `/server_info`. Unset: no
   * admin endpoint. The in-process mesh (`createMesh`) ignores it.
   */
  admin?: AdminConfig
}

/** A trace header format: W3C Trace Context, B3 single header, or B3 multi-header. */
export type TraceFormat = 'w3c' | 'b3' | 'b3multi'

/** Trace propagation and span recording (Istio's `tracing` mesh config, Envoy's HCM tracing). */
export interface TracingConfig {
  /** Percent (0–100) of new traces that are recorded; a caller's sampled flag is always honoured. Istio's default: 1. */
  sampling?: number
  /** Header formats read from inbound requests, first valid wins (default `w3c`, `b3`, `b3multi`). */
  extract?: TraceFormat[]
  /** Header formats written on outbound requests (default `w3c`). */
  inject?: TraceFormat[]
  /** Finished spans the mesh keeps in memory when the app registered no tracer provider (default 1000; 0 keeps none). */
  recentSpans?: number
  /**
   * A Zipkin collector's v2 span endpoint, e.g. `http://127.0.0.1:9411/api/v2/spans`:
   * sampled spans are sent there as Zipkin v2 JSON, in batches. An http or https URL
   * without credentials. May be set together with `otlp`.
   *
   * Only when the app registered no OpenTelemetry tracer provider: when it did, the mesh's
   * spans go through the app's provider and its exporters, this setting does nothing, and
   * the mesh says so once with a `SIDECARLESS_TRACING_EXPORT_IGNORED` warning.
   */
  zipkin?: string
  /**
   * An OTLP/HTTP traces endpoint, e.g. `http://127.0.0.1:4318/v1/traces`: sampled spans
   * are sent there as OTLP JSON (`ExportTraceServiceRequest`), in batches. An http or https
   * URL without credentials. May be set together with `zipkin`.
   *
   * Only when the app registered no OpenTelemetry tracer provider: when it did, the mesh's
   * spans go through the app's provider and its exporters, this setting does nothing, and
   * the mesh says so once with a `SIDECARLESS_TRACING_EXPORT_IGNORED` warning.
   */
  otlp?: string
}

/** Istio's `outboundTrafficPolicy`. */
export interface OutboundTrafficPolicy {
  /**
   * `ALLOW_ANY` (default): unknown hosts pass through unchanged.
   * `REGISTRY_ONLY`: requests to unknown hosts fail with `SIDECARLESS_ERR_REGISTRY_ONLY`.
   */
  mode: 'ALLOW_ANY' | 'REGISTRY_ONLY'
}

/** Load-balancing policy of a cluster (Envoy's `lb_policy`, lower case). */
export type LoadBalancerPolicy = 'round_robin' | 'least_request' | 'random' | 'ring_hash' | 'maglev'

/** How a cluster finds its endpoints (Envoy's cluster `type`). */
export type DiscoveryType = 'static' | 'strict_dns' | 'logical_dns'

/** An upstream cluster (Envoy `Cluster`). */
export interface ClusterConfig {
  /** Unique name; routes refer to it. */
  name: string
  /**
   * `static` (default): endpoints are used as written; a host name in an address is resolved
   * when a connection is made. `strict_dns`: each endpoint's host name is resolved
   * periodically and every returned address becomes an endpoint (no address: no endpoint).
   * `logical_dns`: like `static`, one logical endpoint per address.
   */
  type?: DiscoveryType
  /** How often `strict_dns` re-resolves (Envoy `dns_refresh_rate`, default 5s). */
  dnsRefreshRate?: Duration
  /** The endpoints (Envoy `load_assignment`). */
  endpoints?: EndpointConfig[]
  /** Named subsets selected by endpoint labels (Istio DestinationRule subsets). */
  subsets?: SubsetConfig[]
  /** Load-balancing policy; default `round_robin`. */
  loadBalancer?: LoadBalancerPolicy
  /** Options of `least_request`. */
  leastRequest?: { choiceCount?: number }
  /** Options of `ring_hash`. */
  ringHash?: { minimumRingSize?: number; maximumRingSize?: number }
  /** Options of `maglev`. */
  maglev?: { tableSize?: number }
  /** TCP (and TLS) connect timeout; Envoy's default is 5s. */
  connectTimeout?: Duration
  /** Rate limit of outbound requests to this cluster; refused requests fail with `SIDECARLESS_ERR_RATE_LIMITED`. */
  rateLimit?: RateLimitConfig
  /** At most this many requests to this cluster at once; the rest queue or fail with `SIDECARLESS_ERR_CONCURRENCY_LIMITED`. */
  concurrencyLimit?: ConcurrencyLimitConfig
  /**
   * How long an idle upstream connection is kept (Envoy `idle_timeout`). Unset: undici's
   * keep-alive defaults (4s, or the server's `Keep-Alive: timeout` hint, which always caps it).
   */
  idleTimeout?: Duration
}

/** One upstream endpoint (Envoy `LbEndpoint`). */
export interface EndpointConfig {
  /** `http://host:port`, `https://host:port`, or `host:port` (http). */
  address: string
  /** Labels (Envoy endpoint metadata); subsets select endpoints by them. */
  labels?: Record<string, string>
  /** Load-balancing weight, 1 to 128 (Envoy `load_balancing_weight`); default 1. */
  weight?: number
}

/** A named subset of a cluster's endpoints, selected by labels. */
export interface SubsetConfig {
  /** Unique within the cluster; routes refer to it. */
  name: string
  /** An endpoint belongs to the subset when it carries every one of these labels. */
  labels: Record<string, string>
}

/** An outbound virtual host (Envoy `VirtualHost`). */
export interface VirtualHostConfig {
  /** Unique name; `mesh.traffic.split(name, ...)` refers to it. */
  name: string
  /**
   * Authorities this virtual host serves: exact (`reviews`, `reviews:9080`), suffix wildcard
   * (`*.example.com`), prefix wildcard (`reviews.*`) or `*`. A domain without a port matches
   * the authority with any port; one with a port matches only that port. Exact beats suffix
   * beats prefix beats `*`; among wildcards the longest wins.
   */
  domains: string[]
  /** Routes, tried in order; the first that matches wins. */
  routes: RouteConfig[]
  /** Headers added to every request routed through this virtual host. */
  requestHeadersToAdd?: HeaderValueOption[]
  /** Header names removed from every request routed through this virtual host. */
  requestHeadersToRemove?: string[]
  /** Headers added to every response of this virtual host. */
  responseHeadersToAdd?: HeaderValueOption[]
  /** Header names removed from every response of this virtual host. */
  responseHeadersToRemove?: string[]
}

/** A route: a match and exactly one action (`route`, `redirect` or `directResponse`). */
export interface RouteConfig {
  /** Optional name, shown in metrics and `mesh.context().route`. */
  name?: string
  /** What requests this route takes. */
  match: RouteMatch
  /** Forward to a cluster (or weighted clusters). */
  route?: RouteAction
  /** Answer with a redirect. */
  redirect?: RedirectAction
  /** Answer with a fixed response. */
  directResponse?: DirectResponseAction
  /** Headers added to the request. */
  requestHeadersToAdd?: HeaderValueOption[]
  /** Header names removed from the request. */
  requestHeadersToRemove?: string[]
  /** Headers added to the response. */
  responseHeadersToAdd?: HeaderValueOption[]
  /** Header names removed from the response. */
  responseHeadersToRemove?: string[]
}

/**
 * Envoy `RouteMatch`. Exactly one path specifier: `prefix`, `path`, `safeRegex` or
 * `pathSeparatedPrefix`. The query string is not part of the path being matched.
 */
export interface RouteMatch {
  /** The path starts with this. */
  prefix?: string
  /** The path is exactly this. */
  path?: string
  /** The whole path matches this regular expression (anchored at both ends). */
  safeRegex?: string
  /** The path is this, or starts with this followed by `/` (`/api` takes `/api` and `/api/x`, not `/apix`). */
  pathSeparatedPrefix?: string
  /** Whether `prefix` and `path` compare case-sensitively (default true). */
  caseSensitive?: boolean
  /** Every header matcher must match. */
  headers?: HeaderMatcher[]
  /** Every query-parameter matcher must match. */
  queryParameters?: QueryParameterMatcher[]
  /** The request method is one of these (upper case). */
  methods?: string[]
}

/**
 * Envoy `HeaderMatcher`. At most one of `exact`, `prefix`, `suffix`, `contains`,
 * `safeRegex`, `present`; with none, the header must be present.
 */
export interface HeaderMatcher {
  /** Header name (case-insensitive). */
  name: string
  exact?: string
  prefix?: string
  suffix?: string
  contains?: string
  /** The whole value matches this regular expression. */
  safeRegex?: string
  /** `true`: the header is present; `false`: it is absent. */
  present?: boolean
  /** Compare string matchers ignoring ASCII case. */
  ignoreCase?: boolean
  /** Match when the matcher would not. */
  invert?: boolean
}

/** Envoy `QueryParameterMatcher`: like a header matcher, on a decoded query parameter. */
export interface QueryParameterMatcher {
  name: string
  exact?: string
  prefix?: string
  suffix?: string
  contains?: string
  safeRegex?: string
  present?: boolean
  ignoreCase?: boolean
}

/** Envoy `RouteAction`: forward to `cluster` (optionally a `subset`) or `weightedClusters`. */
export interface RouteAction {
  /** Target cluster. */
  cluster?: string
  /** Subset of `cluster` (Istio's `destination.subset`). */
  subset?: string
  /** Split traffic across clusters/subsets by weight. */
  weightedClusters?: WeightedClusterConfig[]
  /** Replace the matched prefix (or the whole matched path) with this. */
  prefixRewrite?: string
  /** Rewrite the path with a regex substitution (`\1`-style groups). */
  regexRewrite?: { pattern: string; substitution: string }
  /** Replace the Host/authority sent upstream. */
  hostRewrite?: string
  /** Route timeout: the whole request, retries included (Envoy default 15s; 0 disables). */
  timeout?: Duration
  /** How a request's hash is computed for `ring_hash`/`maglev` clusters. */
  hashPolicy?: HashPolicy[]
  /** Rate limit of the requests this route sends; refused ones fail with `SIDECARLESS_ERR_RATE_LIMITED`. */
  rateLimit?: RateLimitConfig
  /** At most this many of this route's requests at once. */
  concurrencyLimit?: ConcurrencyLimitConfig
}

/** One weighted destination of a split. */
export interface WeightedClusterConfig {
  cluster: string
  subset?: string
  /** Non-negative integer; proportions are weight / sum of weights. */
  weight: number
  requestHeadersToAdd?: HeaderValueOption[]
  requestHeadersToRemove?: string[]
  responseHeadersToAdd?: HeaderValueOption[]
  responseHeadersToRemove?: string[]
}

/**
 * Envoy `HashPolicy`: the first policy that yields a value gives the hash, unless an earlier
 * `terminal` one already did.
 */
export interface HashPolicy {
  header?: { name: string }
  cookie?: { name: string }
  queryParameter?: { name: string }
  /** Stop at this policy when it produced a value. */
  terminal?: boolean
}

/** Envoy `RedirectAction`. */
export interface RedirectAction {
  schemeRedirect?: string
  httpsRedirect?: boolean
  hostRedirect?: string
  portRedirect?: number
  pathRedirect?: string
  prefixRewrite?: string
  /** 301 (default), 302, 303, 307 or 308. */
  responseCode?: number
  stripQuery?: boolean
}

/** Envoy `DirectResponseAction`. */
export interface DirectResponseAction {
  /** HTTP status, 200–599. */
  status: number
  /** Response body (text). */
  body?: string
}

/** Envoy `HeaderValueOption`. */
export interface HeaderValueOption {
  header: { key: string; value: string }
  /**
   * `APPEND_IF_EXISTS_OR_ADD` (default), `ADD_IF_ABSENT`, `OVERWRITE_IF_EXISTS_OR_ADD`,
   * `OVERWRITE_IF_EXISTS`.
   */
  appendAction?: HeaderAppendAction
}

/** Envoy `HeaderValueOption.HeaderAppendAction`. */
export type HeaderAppendAction =
  | 'APPEND_IF_EXISTS_OR_ADD'
  | 'ADD_IF_ABSENT'
  | 'OVERWRITE_IF_EXISTS_OR_ADD'
  | 'OVERWRITE_IF_EXISTS'

/** The inbound side of this workload; later parts add mTLS and authorization. */
export interface ListenerConfig {
  /** Rate limit of every inbound request (Envoy `local_ratelimit` on the listener). */
  rateLimit?: RateLimitConfig
  /** Per-path inbound policy, with the same match objects as outbound routes. */
  routes?: ListenerRouteConfig[]
  /**
   * Where `sidecarless proxy` listens: `host:port` (IPv6 bracketed, `[::]:8080`; port 0 takes
   * a free port). Envoy's listener `address.socket_address`, which the Envoy import
   * translates into this field. The in-process mesh (`mesh.createServer`, `mesh.wrap`)
   * ignores it: there the app owns its sockets. Unset: the proxy needs `--listen`.
   */
  address?: string
}

/** An inbound route: names a class of inbound requests and carries its policy. */
export interface ListenerRouteConfig {
  /** Shown in metrics and `mesh.context().route`. */
  name?: string
  match: RouteMatch
  /** Rate limit of this route's requests (in addition to the listener's). */
  rateLimit?: RateLimitConfig
  /** At most this many of this route's requests run at once; the rest queue or are refused. */
  concurrencyLimit?: ConcurrencyLimitConfig
}

/**
 * A token bucket (Envoy `local_ratelimit` `token_bucket`): `maxTokens` requests may pass in a
 * burst; `tokensPerFill` tokens come back every `fillInterval` (at least 50ms).
 */
export interface TokenBucketConfig {
  maxTokens: number
  /** Default: `maxTokens`. */
  tokensPerFill?: number
  fillInterval: Duration
}

/** A local rate limit, with optional per-descriptor buckets and a shared (Redis) quota. */
export interface RateLimitConfig extends TokenBucketConfig {
  /**
   * Buckets of their own for requests that carry a descriptor (Envoy local_ratelimit
   * descriptors): per client address, identity, header value or path. A request must find a
   * token in every descriptor bucket it matches, and in the default bucket too unless
   * `alwaysConsumeDefaultTokenBucket` is false.
   */
  descriptors?: RateLimitDescriptor[]
  /** Envoy's `always_consume_default_token_bucket` (default true): requests matching descriptors also take from the default bucket. */
  alwaysConsumeDefaultTokenBucket?: boolean
  /** Add `x-ratelimit-limit`, `x-ratelimit-remaining`, `x-ratelimit-reset` to inbound responses (default false). */
  responseHeaders?: boolean
  /** A quota shared by every instance through Redis, checked after the local buckets. */
  global?: GlobalRateLimitConfig
}

/** What a descriptor keys on. */
export type DescriptorKey = 'remoteAddress' | 'identity' | 'header' | 'path'

/** A rate-limit descriptor: a bucket per distinct value of `key` (or for one `value`). */
export interface RateLimitDescriptor extends TokenBucketConfig {
  key: DescriptorKey
  /** The header, when `key` is `header`. */
  name?: string
  /** Only requests with this value; without it, each distinct value gets its own bucket (bounded, least recently used evicted). */
  value?: string
}

/** A quota shared through Redis (Envoy's global rate limit service, in-process). */
export interface GlobalRateLimitConfig {
  /** `redis://host:port[/db]`. */
  redis: string
  /** Requests allowed per `unit` per descriptor value. */
  requestsPerUnit: number
  unit: 'second' | 'minute' | 'hour' | 'day'
  /** What the quota keys on (default: one quota for the whole limit). */
  descriptor?: { key: DescriptorKey; name?: string }
  /** How long a Redis call may take before the local bucket decides (default 50ms). */
  timeout?: Duration
  /**
   * With Redis slow or down: `open` (default) lets the local bucket decide (all pass if there
   * is none); `closed` refuses what the local bucket does not cover.
   */
  failureMode?: 'open' | 'closed'
  /** Key prefix in Redis (default `sidecarless:rl:`). */
  prefix?: string
}

/** A bulkhead: at most `maxConcurrent` at once, `maxQueue` more waiting up to `queueTimeout`. */
export interface ConcurrencyLimitConfig {
  maxConcurrent: number
  /** Default 0: refuse at once when full. */
  maxQueue?: number
  /** Default 1s. */
  queueTimeout?: Duration
}

/**
 * The admin endpoint of `sidecarless proxy` (Envoy's bootstrap `admin`). It is bound to a
 * loopback address whatever `address` says: a non-loopback host is replaced by
 * `127.0.0.1` with a warning, since the endpoint shows the config and has no
 * authentication.
 */
export interface AdminConfig {
  /** `host:port`, e.g. `127.0.0.1:9901` (Envoy's usual admin port); port 0 takes a free port. */
  address: string
}
