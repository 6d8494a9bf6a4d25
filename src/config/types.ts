/**
 * The mesh config model: Envoy's object model (clusters, endpoints, virtual hosts, routes,
 * listener) in camelCase. Every name keeps its Envoy meaning, so Envoy's docs explain it.
 *
 * These are the *input* types: what users write in YAML, JSON or code. Validation checks
 * them; compilation turns them into the frozen runtime snapshot.
 *
 * @module
 */

/**
 * A duration: a number of milliseconds, or a string of `<number><unit>` parts with units
 * `ms`, `s`, `m`, `h`, `d` — `250ms`, `3s`, `1.5s`, `1m30s`, `1h`, `1d12h`. A bare number is
 * always milliseconds: `timeout: 3` is 3ms, not 3s. At most 365 days; fractions of a
 * millisecond are rounded.
 */
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
   * This workload's own certificate, key and trust bundle (Istio: one workload certificate
   * per proxy). Inbound mTLS serves it; upstream `mutual` TLS presents it unless a cluster
   * names its own.
   */
  identity?: IdentityConfig
  /**
   * The admin endpoint (Envoy's bootstrap `admin`): `/ready`, `/healthz`, `/stats`,
   * `/stats/prometheus`, `/clusters`, `/config_dump`, `/server_info`, served by the mesh
   * (`createMesh`, `sidecarless/register`) and by `sidecarless proxy`. Unset: no admin
   * endpoint. Bound to loopback unless `allowNonLoopback`.
   */
  admin?: AdminConfig
  /**
   * How `mesh.close()` (and SIGTERM under `sidecarless/register`) drains the servers the
   * mesh wrapped: requests in flight finish, new ones are refused.
   */
  drain?: DrainConfig
}

/**
 * A workload's TLS credentials. Each value is inline PEM (it starts with `-----BEGIN`) or a
 * file path. Files are watched and reloaded when they change; a bad or half-written file
 * keeps the last good credentials (and raises a `SIDECARLESS_TLS_RELOAD_FAILED` warning).
 */
export interface IdentityConfig {
  /** The workload certificate (leaf first, then any intermediates); its URI SAN is the workload's SPIFFE ID. */
  certificate: string
  /** The certificate's private key. Never logged. */
  privateKey: string
  /** The CA certificates peers' certificates are verified against. */
  trustBundle: string
  /** Reload the files when they change (default true; inline PEM is never watched). */
  watch?: boolean
}

/**
 * Inbound mutual TLS (Istio `PeerAuthentication`). `STRICT`: only mTLS connections, with a
 * client certificate that chains to the trust bundle and carries a SPIFFE ID. `PERMISSIVE`
 * (Istio's default): mTLS and plain HTTP on the same port, told apart by the first byte.
 * `DISABLE`: plain HTTP only.
 */
export type MtlsMode = 'STRICT' | 'PERMISSIVE' | 'DISABLE'

/** Inbound mTLS of the listener (Istio `PeerAuthentication.mtls` and `portLevelMtls`). */
export interface ListenerMtlsConfig {
  /** The mode for every port not in `portLevelMtls` (default PERMISSIVE, as Istio's). */
  mode?: MtlsMode
  /** Per-port modes, keyed by the server's local port (`"8080"`). */
  portLevelMtls?: Record<string, { mode: MtlsMode }>
  /**
   * How long a new connection may take to send its first byte and finish the TLS handshake
   * before it is closed (Envoy `listener_filters_timeout`: 15s).
   */
  handshakeTimeout?: Duration
}

/**
 * How a cluster's connections are secured (Istio `DestinationRule.trafficPolicy.tls`, Envoy
 * `UpstreamTlsContext`). Istio's upper-case modes are accepted too; `ISTIO_MUTUAL` is
 * `mutual` with the workload identity.
 */
export type UpstreamTlsMode = 'disable' | 'simple' | 'mutual' | 'DISABLE' | 'SIMPLE' | 'MUTUAL' | 'ISTIO_MUTUAL'

/** Upstream TLS of a cluster. */
export interface ClusterTlsConfig {
  /**
   * `disable`: plain (or whatever the endpoint URL says). `simple`: TLS, the server verified
   * against the trust bundle (by host name unless `verifyIdentities` is set). `mutual`: TLS
   * presenting a client certificate; the server verified against the trust bundle and, when
   * set, `verifyIdentities`. `ISTIO_MUTUAL`: `mutual` with the workload identity, offering
   * the ALPN an Istio sidecar offers (`istio-http/1.1`, `istio`, then `http/1.1`), so a
   * sidecar's inbound listener terminates the mTLS. Endpoints are dialed with TLS whatever
   * their URL scheme.
   */
  mode: UpstreamTlsMode
  /**
   * The SNI sent (Istio `sni`). Default: for `ISTIO_MUTUAL` with a cluster named in Istio's
   * form (`outbound|9080|v1|reviews.default.svc.cluster.local`), Istio's SNI
   * (`outbound_.9080_.v1_.reviews.default.svc.cluster.local`); otherwise the endpoint's host
   * name when it is not an IP.
   */
  sni?: string
  /**
   * SPIFFE IDs the server's certificate may carry (Istio `subjectAltNames`): exact, or a
   * prefix ending in `/*` (`spiffe://cluster.local/ns/prod/*`). Checked after the handshake
   * and before any request byte is written; a mismatch fails the request with a 503 whose
   * response flag is `UF` and whose body names `SIDECARLESS_ERR_PEER_IDENTITY`.
   */
  verifyIdentities?: string[]
  /** CA certificates to verify the server against (PEM or path); default: the workload identity's trust bundle, else Node's root CAs. */
  trustBundle?: string
  /** Client certificate for `mutual` (PEM or path); default: the workload identity's. */
  certificate?: string
  /** Its private key (PEM or path); required with `certificate`. */
  privateKey?: string
}

/** A trace header format: W3C Trace Context, B3 single header, or B3 multi-header. */
export type TraceFormat = 'w3c' | 'b3' | 'b3multi'

/** Trace propagation and span recording (Istio's `tracing` mesh config, Envoy's HCM tracing). */
export interface TracingConfig {
  /**
   * Percent (0–100) of new traces that are recorded; a caller's sampled flag is always
   * honoured. Unset: `OTEL_TRACES_SAMPLER` / `OTEL_TRACES_SAMPLER_ARG` when set, else
   * Istio's default, 1.
   */
  sampling?: number
  /** Header formats read from inbound requests, first valid wins (default `w3c`, `b3`, `b3multi`). */
  extract?: TraceFormat[]
  /** Header formats written on outbound requests (default `w3c`). */
  inject?: TraceFormat[]
  /** Finished spans the mesh keeps in memory when the app registered no tracer provider (default 1000; 0 keeps none). */
  recentSpans?: number
  /**
   * A Zipkin collector's v2 span endpoint, e.g. `http://127.0.0.1:9411/api/v2/spans`:
   * sampled spans are sent there as Zipkin v2 JSON, in batches, by OpenTelemetry's Zipkin
   * exporter. An http or https URL without credentials. May be set together with `otlp`.
   * Unset, `OTEL_EXPORTER_ZIPKIN_ENDPOINT` (or `OTEL_TRACES_EXPORTER=zipkin`) can name it.
   *
   * Only when the app registered no OpenTelemetry tracer provider: when it did, the mesh's
   * spans go through the app's provider and its exporters, this setting does nothing, and
   * the mesh says so once with a `SIDECARLESS_TRACING_EXPORT_IGNORED` warning.
   */
  zipkin?: string
  /**
   * An OTLP traces endpoint: sampled spans are sent there in batches by OpenTelemetry's own
   * OTLP exporter, over {@link TracingConfig.otlpProtocol} (default `http/protobuf`). For
   * OTLP/HTTP, the URL is used as written (`http://127.0.0.1:4318/v1/traces`); a URL
   * without a path gets `/v1/traces` added. For gRPC, `http://127.0.0.1:4317`. An http or
   * https URL without credentials: headers (an API key), compression and the timeout come
   * from the standard `OTEL_EXPORTER_OTLP_*` environment variables. May be set together
   * with `zipkin`. Unset, `OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT` or `OTEL_TRACES_EXPORTER`
   * can name the collector.
   *
   * Only when the app registered no OpenTelemetry tracer provider: when it did, the mesh's
   * spans go through the app's provider and its exporters, this setting does nothing, and
   * the mesh says so once with a `SIDECARLESS_TRACING_EXPORT_IGNORED` warning.
   */
  otlp?: string
  /**
   * The OTLP transport of `otlp`: `http/protobuf` (default, as the OTel spec's),
   * `http/json`, or `grpc` (needs the optional package `@opentelemetry/exporter-trace-otlp-grpc`).
   * Unset: `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`, then `OTEL_EXPORTER_OTLP_PROTOCOL`.
   */
  otlpProtocol?: OtlpProtocol
  /**
   * Who makes the HTTP server and client spans of a hop when the app runs OpenTelemetry's
   * HTTP instrumentation (`@opentelemetry/instrumentation-http`, `-undici`, as
   * `auto-instrumentations-node` loads them), so that a hop has one server span, one client
   * span and one trace:
   * - `auto` (default): per side, the app's instrumentation when it is active on that side
   *   (the server's `emit` is instrumented; undici requests are), else the mesh;
   * - `app`: the instrumentation's spans only; `mesh.context()` reports them, and the trace
   *   headers sent upstream are the instrumentation's;
   * - `mesh`: the mesh's spans only; the app's HTTP instrumentation is bypassed for wrapped
   *   servers and silenced for requests sent through the mesh;
   * - `both`: both, nested (the mesh's server span under the instrumentation's, the
   *   instrumentation's client span under the mesh's): to see the mesh's own time.
   */
  spans?: SpanOwnership
}

/** The OTLP transports (the values of `OTEL_EXPORTER_OTLP_PROTOCOL`). */
export type OtlpProtocol = 'http/protobuf' | 'http/json' | 'grpc'

/** Who makes a hop's HTTP spans: see {@link TracingConfig.spans}. */
export type SpanOwnership = 'auto' | 'mesh' | 'app' | 'both'

/** Istio's `outboundTrafficPolicy`. */
export interface OutboundTrafficPolicy {
  /**
   * `ALLOW_ANY` (default): unknown hosts pass through unchanged.
   * `REGISTRY_ONLY`: requests to unknown hosts fail with `SIDECARLESS_ERR_REGISTRY_ONLY`.
   */
  mode: 'ALLOW_ANY' | 'REGISTRY_ONLY'
}

/**
 * Load-balancing policy of a cluster (Envoy's `lb_policy`, lower case). A config file (or an
 * untyped object) may also use Envoy's spelling, `ROUND_ROBIN`, `LEAST_REQUEST`, `RANDOM`,
 * `RING_HASH`, `MAGLEV`: validation accepts it and the mesh reads it as the lower case.
 */
export type LoadBalancerPolicy = 'round_robin' | 'least_request' | 'random' | 'ring_hash' | 'maglev'

/**
 * How a cluster finds its endpoints (Envoy's cluster `type`, lower case; Envoy's `STATIC`,
 * `STRICT_DNS`, `LOGICAL_DNS` are accepted too, as for {@link LoadBalancerPolicy}).
 */
export type DiscoveryType = 'static' | 'strict_dns' | 'logical_dns'

/**
 * Which address families a DNS cluster asks for (Envoy's `dns_lookup_family`; Envoy's
 * upper-case spellings are accepted too).
 * - `auto` (default, Envoy's `AUTO`): IPv6 addresses if the name has any, else IPv4.
 * - `v4_only` / `v6_only`: only that family.
 * - `v4_preferred`: IPv4 addresses if the name has any, else IPv6.
 * - `all`: both families; a `logical_dns` endpoint then connects with Happy Eyeballs
 *   (RFC 8305) over the whole answer, as Envoy does.
 */
export type DnsLookupFamily =
  | 'auto' | 'v4_only' | 'v6_only' | 'v4_preferred' | 'all'
  | 'AUTO' | 'V4_ONLY' | 'V6_ONLY' | 'V4_PREFERRED' | 'ALL'

/** Envoy's `Cluster.RefreshRate`: the back-off of DNS refreshes after a failed resolution. */
export interface DnsFailureRefreshRate {
  /** The first back-off (at least 1ms); each failure doubles it, with full jitter. */
  baseInterval: Duration
  /** The longest back-off (at least `baseInterval`); default 10 × `baseInterval`. */
  maxInterval?: Duration
}

/** An upstream cluster (Envoy `Cluster`). */
export interface ClusterConfig {
  /** Unique name; routes refer to it. */
  name: string
  /**
   * `static` (default): endpoints are used as written; a host name in an address is resolved
   * when a connection is made.
   *
   * `strict_dns` and `logical_dns` resolve their endpoints' host names in the background
   * (never on the request path), on `dnsRefreshRate` or the records' TTL, as Envoy does:
   * - `strict_dns`: every address of the latest answer is an endpoint; endpoints come and go
   *   as the answer changes (one that goes drains: its requests in flight finish). A name
   *   that does not exist leaves no endpoint; a failed lookup keeps the last answer.
   * - `logical_dns`: each configured endpoint is one logical endpoint whose new connections
   *   go to the first address of the latest answer; open connections keep theirs (Envoy
   *   allows exactly one endpoint; more are each their own logical endpoint here). Once
   *   resolved it stays: a failed or empty answer keeps the last address.
   *
   * Until the first answer, and while a name does not resolve, such a cluster has no
   * endpoint: requests get 503 `no healthy upstream` (`UH`) at once. Connections go to the
   * resolved IP; the Host header and TLS SNI / certificate checks keep the endpoint's name.
   */
  type?: DiscoveryType
  /** How often DNS clusters re-resolve (Envoy `dns_refresh_rate`, default 5s, at least 1ms). */
  dnsRefreshRate?: Duration
  /**
   * Re-resolve after the records' TTL instead of `dnsRefreshRate` (Envoy `respect_dns_ttl`,
   * default false). Answers without a TTL (the hosts file, the system resolver) and TTL 0
   * use `dnsRefreshRate`.
   */
  respectDnsTtl?: boolean
  /**
   * Back-off of the next refresh after a failed resolution (Envoy `dns_failure_refresh_rate`);
   * unset: failures retry on `dnsRefreshRate`. A success resets it.
   */
  dnsFailureRefreshRate?: DnsFailureRefreshRate
  /**
   * Up to this much random delay added to each refresh after a success, so many instances do
   * not query at once (Envoy `dns_jitter`, default 0).
   */
  dnsJitter?: Duration
  /** Address families DNS clusters ask for (Envoy `dns_lookup_family`, default `auto`). */
  dnsLookupFamily?: DnsLookupFamily
  /**
   * DNS servers to ask instead of the system's (`/etc/resolv.conf`), as `ip` or `ip:port`
   * (`[ipv6]:port`) — Envoy's `dns_resolvers` / c-ares `resolvers`. The hosts file is still
   * read first; the system resolver (getaddrinfo) is then never used.
   */
  dnsResolvers?: string[]
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
  /** Rate limit of outbound requests to this cluster; refused requests are answered 429 (flag `RL`) and not sent. */
  rateLimit?: RateLimitConfig
  /** At most this many requests to this cluster at once; the rest queue, or are answered 503 (flag `UO`, `x-sidecarless-overflow: concurrency_limit`). */
  concurrencyLimit?: ConcurrencyLimitConfig
  /**
   * How long an idle upstream connection is kept (Envoy `idle_timeout`). Unset: undici's
   * keep-alive defaults (4s, or the server's `Keep-Alive: timeout` hint, which always caps it).
   */
  idleTimeout?: Duration
  /** Envoy's circuit-breaker thresholds, and an error-rate breaker. */
  circuitBreakers?: CircuitBreakersConfig
  /**
   * Passive health checking (Envoy `outlier_detection`, Istio DestinationRule
   * `trafficPolicy.outlierDetection`): endpoints that fail are ejected from load balancing
   * for a while. Off unless set; `{}` turns it on with Envoy's defaults.
   */
  outlierDetection?: OutlierDetectionConfig
  /**
   * Active health checks (Envoy `health_checks`): at most one, HTTP only. Off unless set.
   * While configured, an endpoint is used once its first check passes.
   */
  healthChecks?: HealthCheckConfig[]
  /** Load-balancing settings common to every policy (Envoy `common_lb_config`). */
  commonLbConfig?: CommonLbConfig
  /** TLS / mTLS towards the endpoints (Istio `DestinationRule.trafficPolicy.tls`). */
  tls?: ClusterTlsConfig
  /**
   * Tell the cluster's endpoints who calls them: the `x-sidecarless-peer` header (this
   * workload's name, namespace and version labels), from which a meshed destination labels
   * Istio's metrics with their source. Default true. Set it false for a service outside the
   * mesh, which has no use for it and should not learn it — as Istio strips its metadata
   * exchange headers for external services. Istio's `ServiceEntry` with
   * `location: MESH_EXTERNAL` and an Envoy cluster with
   * `metadata.filter_metadata.istio.external: true` translate to false. Calls to hosts outside
   * the registry (PassthroughCluster) never carry it.
   */
  peerMetadata?: boolean
}

/**
 * Envoy `CircuitBreakers` thresholds (default priority), plus an error-rate breaker.
 * A request beyond a threshold is answered at once with 503, response flag `UO`, and the
 * threshold's name in `x-sidecarless-overflow`.
 */
export interface CircuitBreakersConfig {
  /** Connections to each endpoint (Envoy counts them per cluster; each endpoint has its own pool here). Default 1024. */
  maxConnections?: number
  /** Requests of this cluster waiting for a connection. Default 1024. */
  maxPendingRequests?: number
  /** Requests of this cluster in flight (every try counts). Default 1024. */
  maxRequests?: number
  /** Retries of this cluster in flight at once, when there is no `retryBudget`. Default 3. */
  maxRetries?: number
  /**
   * Envoy's retry budget: retries in flight may be at most `budgetPercent` of the requests
   * in flight and waiting, or `minRetryConcurrency`, whichever is more. When set,
   * `maxRetries` is not used.
   */
  retryBudget?: { budgetPercent?: number; minRetryConcurrency?: number }
  /** Opens per cluster and per subset when the share of failed requests is too high. */
  errorRate?: ErrorRateBreakerConfig
}

/**
 * An error-rate circuit breaker (the Hystrix/opossum model), one per cluster and one per
 * subset. Closed, it counts outcomes in a rolling window; once the window holds at least
 * `volumeThreshold` requests and more than `errorThreshold` percent failed, it opens: every
 * request is answered 503 (`UO`, overflow `breaker_open`) for `openDuration`. Then it lets
 * `halfOpenTrials` requests through: all succeed, it closes; one fails, it opens again.
 */
export interface ErrorRateBreakerConfig {
  /** Percent of failures in the window that opens the breaker (default 50). */
  errorThreshold?: number
  /** Requests the window must hold before the breaker may open (default 20). */
  volumeThreshold?: number
  /** Length of the rolling window (default 10s). */
  rollingWindow?: Duration
  /** Buckets of the window (default 10). */
  rollingWindowBuckets?: number
  /** How long the breaker stays open before it lets trial requests through (default 30s). */
  openDuration?: Duration
  /** Trial requests let through while half-open (default 1). */
  halfOpenTrials?: number
  /** Response statuses that count as failures, as half-open ranges (default `[{ start: 500, end: 600 }]`). */
  failureStatuses?: { start: number; end: number }[]
  /** Whether transport failures (connect failure, reset, timeout) count as failures (default true). */
  countTransportErrors?: boolean
}

/**
 * Envoy `OutlierDetection`. Outcomes of real requests are counted per endpoint: a
 * locally originated failure (connect failure, reset, timeout) counts as a 5xx and as a
 * gateway failure (Envoy without `split_external_local_origin_errors`). Percentages are 0–100.
 */
export interface OutlierDetectionConfig {
  /** Consecutive 5xx (or local failures) before an ejection; default 5. 0 never ejects. */
  consecutive5xx?: number
  /** Consecutive gateway failures (502, 503, 504, or local failures) before an ejection; default 5. */
  consecutiveGatewayFailure?: number
  /** Percent chance a consecutive-5xx detection ejects; default 100. */
  enforcingConsecutive5xx?: number
  /** Percent chance a consecutive-gateway-failure detection ejects; default 0 (counted, not enforced), as in Envoy. */
  enforcingConsecutiveGatewayFailure?: number
  /** Time between analysis sweeps (success rate, failure percentage, returns to service); default 10s. */
  interval?: Duration
  /** Base ejection time, multiplied by the times the endpoint was ejected; default 30s. */
  baseEjectionTime?: Duration
  /** Cap on an ejection time; default 300s (or `baseEjectionTime` when larger, as in Envoy). */
  maxEjectionTime?: Duration
  /** At most this percent of the cluster's endpoints ejected at once; default 10. */
  maxEjectionPercent?: number
  /**
   * Allow one ejection even when it exceeds `maxEjectionPercent` (Envoy
   * `always_eject_one_host`, since 1.31); default false. Without it a cluster of fewer
   * than 10 endpoints ejects nothing under the default 10%.
   */
  alwaysEjectOneHost?: boolean
  /** Endpoints with enough volume needed for success-rate analysis; default 5. */
  successRateMinimumHosts?: number
  /** Requests an endpoint needs in one interval to be analysed by success rate; default 100. */
  successRateRequestVolume?: number
  /** Ejection below mean − (factor / 1000) × stdev of the success rates; default 1900. */
  successRateStdevFactor?: number
  /** Percent chance a success-rate detection ejects; default 100. */
  enforcingSuccessRate?: number
  /** Failure percentage at or above which an endpoint is an outlier; default 85. */
  failurePercentageThreshold?: number
  /** Endpoints with enough volume needed for failure-percentage analysis; default 5. */
  failurePercentageMinimumHosts?: number
  /** Requests an endpoint needs in one interval to be analysed by failure percentage; default 50. */
  failurePercentageRequestVolume?: number
  /** Percent chance a failure-percentage detection ejects; default 0 (off), as in Envoy. */
  enforcingFailurePercentage?: number
  /**
   * A passing active health check returns an ejected endpoint to service (Envoy
   * `successful_active_health_check_uneject_host`); default true.
   */
  successfulActiveHealthCheckUnejectHost?: boolean
}

/** A half-open range of HTTP statuses, `start` included, `end` excluded (Envoy `Int64Range`). */
export interface StatusRange {
  start: number
  end: number
}

/**
 * Envoy `HealthCheck` with `http_health_check`. One timer per cluster checks every
 * endpoint; checks go straight to the endpoint (not routed, not traced).
 */
export interface HealthCheckConfig {
  /** How long a check may take before it counts as a (network) failure. Required. */
  timeout: Duration
  /** Time between checks of an endpoint, from the end of the previous one. Required. */
  interval: Duration
  /** A random 0..intervalJitter added to each interval; default 0. */
  intervalJitter?: Duration
  /**
   * Network failures (timeout, refused, reset) in a row before an endpoint is unhealthy.
   * A response with an unexpected status makes it unhealthy at once, unless the status is
   * in `retriableStatuses` (Envoy semantics). Required.
   */
  unhealthyThreshold: number
  /** Passing checks in a row before an unhealthy endpoint is healthy again (the first check ever decides alone). Required. */
  healthyThreshold: number
  /** Interval used while the cluster has carried no request yet; default 60s. */
  noTrafficInterval?: Duration
  /** The HTTP check. Required. */
  httpHealthCheck: HttpHealthCheckConfig
}

/** Envoy `HealthCheck.HttpHealthCheck`. */
export interface HttpHealthCheckConfig {
  /** Request path, starting with `/`. Required. */
  path: string
  /** Host header of the check; default the cluster name, as in Envoy. */
  host?: string
  /** Statuses that pass; default `[{ start: 200, end: 300 }]` (Envoy's default is 200 alone). */
  expectedStatuses?: StatusRange[]
  /** Failing statuses that count towards `unhealthyThreshold` instead of failing at once. */
  retriableStatuses?: StatusRange[]
  /** Headers added to the check request. */
  requestHeadersToAdd?: HeaderValueOption[]
}

/** Envoy `Cluster.CommonLbConfig`. */
export interface CommonLbConfig {
  /**
   * Panic threshold, percent (Envoy `healthy_panic_threshold`, default 50): when fewer
   * than this share of a balancer's endpoints (the cluster's, or a subset's) are usable,
   * it balances over all of them, ejected and unhealthy included. 0 disables panic mode.
   */
  healthyPanicThreshold?: number
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
  /** Retry policy of every route of this virtual host that has none of its own. */
  retryPolicy?: RetryPolicyConfig
  /**
   * Envoy `require_tls`: `ALL` answers every plain-http request with a 301 to the same URL
   * over https (`https://` + the Host as sent + the path), before any route is tried;
   * `EXTERNAL_ONLY` does so only for requests that are not internal (internal: they carry
   * `x-envoy-internal: true`, Envoy's mark); `NONE` (default) never.
   */
  requireTls?: 'NONE' | 'EXTERNAL_ONLY' | 'ALL'
  /**
   * Envoy `virtual_clusters`: names for classes of requests, in metrics. A request is
   * counted under the first one whose every header matcher matches (`:path` and `:method`
   * included), per virtual host; `mesh.route()` tells which.
   */
  virtualClusters?: VirtualClusterConfig[]
  /**
   * Envoy `most_specific_header_mutations_wins`: the header mutations apply from the least
   * specific level to the most specific (virtual host, route, weighted cluster), so the most
   * specific one has the last word. Default false: route (or weighted cluster) first, then
   * the virtual host. Each level removes before it adds.
   */
  mostSpecificHeaderMutationsWins?: boolean
}

/** Envoy `VirtualCluster`: a name, and the header matchers (`:path`, `:method`, …) a request must all match. */
export interface VirtualClusterConfig {
  /** Shown in metrics (`outbound.virtualClusters["<virtual host>/<name>"]`) and `mesh.route()`. */
  name: string
  /** Every matcher must match; `[]` matches every request. */
  headers: HeaderMatcher[]
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
  /**
   * Fault injection on this route's requests (Istio `HTTPRoute.fault`, Envoy's HTTP fault
   * filter); only on routes that forward (`route`). A delay holds the request before it is
   * sent; an abort answers it locally (`x-sidecarless-response-flags: FI`).
   */
  fault?: FaultConfig
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
  /**
   * Envoy `range_match`: the value is a decimal integer with `start <= value < end`
   * (a value that is not an integer does not match).
   */
  rangeMatch?: { start: number; end: number }
  /** Envoy `treat_missing_header_as_empty`: a missing header is matched as the empty string. */
  treatMissingHeaderAsEmpty?: boolean
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

/** Envoy `RouteAction`: forward to `cluster` (optionally a `subset`), `weightedClusters`, or the cluster `clusterHeader` names. */
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
  /**
   * Envoy `cluster_header`: send the request to the cluster named by this request header
   * (instead of `cluster` / `weightedClusters`). No such header, or no such cluster: the
   * request is answered with `clusterNotFoundResponseCode` (503) and response flag `NC`,
   * as Envoy answers.
   */
  clusterHeader?: string
  /** Envoy `cluster_not_found_response_code`: 503 (default), 404 or 500. */
  clusterNotFoundResponseCode?: number
  /** Route timeout: the whole request, retries included (Envoy default 15s; 0 disables). */
  timeout?: Duration
  /**
   * Envoy `max_stream_duration` of a route (istiod writes route timeouts here for proxyless
   * clients). `maxStreamDuration` bounds the whole request like `timeout` (the lower of the
   * two applies); with `grpcTimeoutHeaderMax` set, a request's `grpc-timeout` header (less
   * `grpcTimeoutHeaderOffset`, capped by `grpcTimeoutHeaderMax` unless it is 0) is its
   * timeout instead. Expiry is answered like a route timeout (504).
   */
  maxStreamDuration?: { maxStreamDuration?: Duration; grpcTimeoutHeaderMax?: Duration; grpcTimeoutHeaderOffset?: Duration }
  /** How a request's hash is computed for `ring_hash`/`maglev` clusters. */
  hashPolicy?: HashPolicy[]
  /** Rate limit of the requests this route sends; refused ones are answered 429 (flag `RL`) and not sent. */
  rateLimit?: RateLimitConfig
  /** At most this many of this route's requests at once. */
  concurrencyLimit?: ConcurrencyLimitConfig
  /** When and how a failed request is tried again (overrides the virtual host's). */
  retryPolicy?: RetryPolicyConfig
  /**
   * Copies of a share of this route's requests, sent fire-and-forget to other clusters
   * (Envoy `request_mirror_policies`, Istio `mirror`). The copy's Host gets `-shadow`
   * appended to its host part (`reviews:9080` → `reviews-shadow:9080`); its response is
   * discarded and never affects the original request.
   */
  requestMirrorPolicies?: RequestMirrorPolicy[]
}

/** One mirror destination (Envoy `RouteAction.RequestMirrorPolicy`). */
export interface RequestMirrorPolicy {
  /** The shadow cluster. */
  cluster: string
  /** A subset of `cluster`. */
  subset?: string
  /** Percent (0–100, fractions allowed) of the route's requests that are mirrored; default 100 (Envoy `runtime_fraction`). */
  percentage?: number
}

/**
 * A retry condition (Envoy's `x-envoy-retry-on` values):
 * - `5xx`: a 5xx response, or no response at all (reset, connect failure, per-try timeout);
 * - `gateway-error`: a 502, 503 or 504 response, or a per-try timeout;
 * - `reset`: the connection was reset or closed before a response;
 * - `connect-failure`: no connection could be made (refused, connect timeout, DNS);
 * - `refused-stream`: the upstream refused the stream (HTTP/2 REFUSED_STREAM; with HTTP/1.1,
 *   a connection closed before the request was written);
 * - `retriable-4xx`: a 409 response;
 * - `retriable-status-codes`: a status listed in `retriableStatusCodes`;
 * - `retriable-headers`: a response with a header matching `retriableHeaders`.
 */
export type RetryOn =
  | '5xx'
  | 'gateway-error'
  | 'reset'
  | 'connect-failure'
  | 'refused-stream'
  | 'retriable-4xx'
  | 'retriable-status-codes'
  | 'retriable-headers'

/**
 * Envoy `RetryPolicy`. A retry goes to another endpoint when the cluster has one
 * (Envoy's `previous_hosts` predicate, which Istio always sets), waits a fully jittered
 * exponential back-off (or the response's `Retry-After`), and counts against the
 * cluster's retry budget, so retries cannot multiply an outage.
 *
 * Only requests that can be sent twice are retried: methods in `retriableMethods`
 * (default: the idempotent ones) or any request carrying an `Idempotency-Key` header, and
 * whose body is replayable — none, a string or a buffer, or a streamed body of at most
 * 64 KiB that was either sent whole or not read at all.
 */
export interface RetryPolicyConfig {
  /** When to retry: a list, or Envoy's comma-separated string (`"5xx,reset"`). */
  retryOn: RetryOn[] | string
  /** Retries after the first try (Envoy default: 1). */
  numRetries?: number
  /** Timeout of each try, within the route timeout; a try that runs out counts as a 504. Unset: none. */
  perTryTimeout?: Duration
  /** Back-off between tries: a random wait up to `base × 2^(retry-1)`, capped by `maxInterval` (Envoy: 25ms, 10 × base). */
  retryBackOff?: { baseInterval?: Duration; maxInterval?: Duration }
  /** Statuses retried under `retriable-status-codes`. */
  retriableStatusCodes?: number[]
  /** Response headers that make a response retriable under `retriable-headers`. */
  retriableHeaders?: HeaderMatcher[]
  /** When set, only requests matching one of these header matchers are retried (Envoy). */
  retriableRequestHeaders?: HeaderMatcher[]
  /** Methods that may be retried (default GET, HEAD, OPTIONS, PUT, DELETE, TRACE: the idempotent ones). */
  retriableMethods?: string[]
  /** How many times to draw an endpoint not tried yet before accepting one that was (Istio: 5). */
  hostSelectionRetryMaxAttempts?: number
  /**
   * Longest `Retry-After` (seconds or HTTP date) the mesh waits for before a retry; a longer
   * one, or one past the route timeout, ends the retries with that response (Envoy's
   * rate-limited back-off max, 300s).
   */
  maxRetryAfter?: Duration
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
  /**
   * Rewrites the path (not the query) into the Location: RE2 `GlobalReplace` of `pattern`
   * by `substitution` (`\\1`… for groups), as `RouteAction.regexRewrite` does. One of
   * `pathRedirect`, `prefixRewrite` and `regexRewrite`.
   */
  regexRewrite?: { pattern: string; substitution: string }
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

/**
 * Envoy `HeaderValueOption`. The value may hold Envoy's command operators, with Envoy's
 * meaning: `%REQ(x-user)%`, `%START_TIME(%s)%`, `%UPSTREAM_REMOTE_ADDRESS%` (response headers),
 * `%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%`, `%HOSTNAME%`, `%UPSTREAM_CLUSTER%`, … (the list:
 * `HEADER_OPERATORS` in `config/header-format.ts`, and the README); a literal `%` is written
 * `%%`. A value that comes out empty is not added unless `keepEmptyValue`.
 */
export interface HeaderValueOption {
  header: { key: string; value: string }
  /** Add the header even when its value is empty (Envoy `keep_empty_value`). */
  keepEmptyValue?: boolean
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

/** The inbound side of this workload; later parts add mTLS. */
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
  /** Inbound mutual TLS (Istio `PeerAuthentication`); needs `identity`. Unset: plain HTTP. */
  mtls?: ListenerMtlsConfig
  /**
   * JWT authentication of inbound requests (Istio `RequestAuthentication`). A request
   * without a token passes (authorization decides); one with an invalid token gets 401.
   */
  requestAuthentication?: RequestAuthenticationConfig
  /**
   * Authorization policies of inbound requests (Istio `AuthorizationPolicy`, one entry per
   * policy): DENY policies first, then ALLOW; refused requests get 403 `RBAC: access denied`.
   */
  authorization?: AuthorizationPolicyConfig[]
}

/** Istio `RequestAuthentication` of this workload. */
export interface RequestAuthenticationConfig {
  /** Istio `jwtRules`: one per accepted issuer. */
  jwtRules: JwtRule[]
}

/** Istio `JWTRule`: how tokens of one issuer are found and verified. */
export interface JwtRule {
  /** Istio `issuer`: the `iss` a token must carry to be verified by this rule. */
  issuer: string
  /** Istio `audiences`: a token must carry one of these in `aud` (not checked when absent). */
  audiences?: string[]
  /** Istio `jwksUri`: an http(s) URL of the issuer's JSON Web Key Set. Exactly one of `jwksUri` and `jwks`. */
  jwksUri?: string
  /** Istio `jwks`: the JSON Web Key Set itself, as a JSON string of public keys. */
  jwks?: string
  /**
   * Istio `fromHeaders`: headers the token is read from, after `prefix`. Default (with
   * `fromParams` also absent): `Authorization: Bearer <token>`, then the `access_token` query parameter.
   */
  fromHeaders?: JwtHeader[]
  /** Istio `fromParams`: query parameters the token is read from. */
  fromParams?: string[]
  /** Istio `forwardOriginalToken` (default false): keep the token header for the app instead of removing it once verified. */
  forwardOriginalToken?: boolean
  /** Istio `outputClaimToHeaders`: request headers set from claims of a verified token (client-sent copies are removed). */
  outputClaimToHeaders?: ClaimToHeader[]
  /** Istio `outputPayloadToHeader`: a request header that receives the verified payload, base64url-encoded. */
  outputPayloadToHeader?: string
  /** Envoy `JwtProvider.clock_skew_seconds` (default 60s): tolerance on `exp` and `nbf`. */
  clockSkew?: Duration
  /** Istio `timeout` of the JWKS fetch (default 5s). */
  jwksTimeout?: Duration
  /** Envoy `RemoteJwks.cache_duration` (Istio's default 20m): how long fetched keys are used before a refetch. */
  jwksCacheDuration?: Duration
}

/** Istio `JWTHeader`: a header that carries a token. */
export interface JwtHeader {
  /** Header name. */
  name: string
  /** Text before the token, e.g. `Bearer ` (matched case-insensitively). */
  prefix?: string
}

/** Istio `ClaimToHeader`. */
export interface ClaimToHeader {
  /** The request header to set. */
  header: string
  /** The claim to copy (`a.b` for a nested one); strings, numbers and booleans only. */
  claim: string
}

/** Istio `AuthorizationPolicy.Action`. */
export type AuthorizationAction = 'ALLOW' | 'DENY' | 'AUDIT'

/** Istio `AuthorizationPolicy` (the selector is this workload). */
export interface AuthorizationPolicyConfig {
  /** Shown in metrics (`policy` label); default `authorization[<index>]`. */
  name?: string
  /** Istio `action` (default ALLOW). AUDIT only counts matches. */
  action?: AuthorizationAction
  /** Istio `rules`: the policy matches when any rule matches; no rules match nothing, `[{}]` matches everything. */
  rules?: AuthorizationRule[]
}

/** Istio `Rule`: one source, one operation and every condition must match. */
export interface AuthorizationRule {
  /** Istio `from`: any entry matches (absent: any source). */
  from?: { source: AuthorizationSource }[]
  /** Istio `to`: any entry matches (absent: any operation). */
  to?: { operation: AuthorizationOperation }[]
  /** Istio `when`: every condition matches (absent: no condition). */
  when?: AuthorizationCondition[]
}

/**
 * Istio `Source`. Every field set must match (a field and its `not` form both); within a
 * list, any value. Strings match exactly, by prefix `abc*`, by suffix `*abc`, or `*` (present).
 */
export interface AuthorizationSource {
  /** Peer identities from mutual TLS, as Istio writes them: the SPIFFE ID without `spiffe://` (`cluster.local/ns/default/sa/sleep`). */
  principals?: string[]
  notPrincipals?: string[]
  /** `<iss>/<sub>` of the verified JWT. */
  requestPrincipals?: string[]
  notRequestPrincipals?: string[]
  /** The peer's namespace, from its SPIFFE ID (`.../ns/<namespace>/...`). */
  namespaces?: string[]
  notNamespaces?: string[]
  /** The connection's source address: IPs or CIDRs, IPv4 or IPv6. */
  ipBlocks?: string[]
  notIpBlocks?: string[]
  /** The client's address; the mesh trusts no proxy (Istio `numTrustedProxies: 0`), so it is the connection's source address. */
  remoteIpBlocks?: string[]
  notRemoteIpBlocks?: string[]
}

/** Istio `Operation`: every field set must match; within a list, any value. */
export interface AuthorizationOperation {
  /** `Host` header, case-insensitive, with or without its port. */
  hosts?: string[]
  notHosts?: string[]
  /** The local port the request arrived on. */
  ports?: string[]
  notPorts?: string[]
  /** HTTP methods, upper case. */
  methods?: string[]
  notMethods?: string[]
  /** Request path without the query, normalised (dot segments resolved, slashes merged). */
  paths?: string[]
  notPaths?: string[]
}

/**
 * Istio `Condition`: `key` is one of `request.headers[<name>]`, `source.ip`, `remote.ip`,
 * `source.namespace`, `source.principal`, `request.auth.principal`, `request.auth.audiences`,
 * `request.auth.presenter`, `request.auth.claims[<name>]` (nested: `[a][b]`),
 * `destination.port`, `destination.ip`, `connection.sni`.
 */
export interface AuthorizationCondition {
  key: string
  /** Any of these matches (IPs and CIDRs for the `.ip` keys). */
  values?: string[]
  /** None of these matches. */
  notValues?: string[]
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
  /**
   * Fault injection on this route's inbound requests, after the limits and right before the
   * app: a delay holds the request before the app sees it; an abort answers it without
   * calling the app (`x-sidecarless-response-flags: FI`).
   */
  fault?: FaultConfig
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
  /** The window of `requestsPerUnit` (a config file may also use Envoy's `RateLimitUnit` spelling, `SECOND`, …). */
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
 * The admin endpoint (Envoy's bootstrap `admin`). It has no authentication, so it is bound
 * to loopback: a non-loopback `address` is replaced by `127.0.0.1` (same port) with a
 * warning, unless `allowNonLoopback` is set. Then the probes and metrics (`/ready`,
 * `/healthz`, `/stats/prometheus`) answer anyone who can reach the port — the kubelet,
 * Prometheus — while the endpoints that show the config (`/config_dump`, `/clusters`,
 * `/stats`, `/server_info`) still answer loopback peers only (`kubectl port-forward`
 * connects from loopback), as Istio splits its status port (15020) from Envoy's admin.
 */
export interface AdminConfig {
  /** `host:port`, e.g. `127.0.0.1:9901` (Envoy's usual admin port); port 0 takes a free port. */
  address: string
  /** Bind a non-loopback `address` as given (default false: it is replaced by 127.0.0.1). */
  allowNonLoopback?: boolean
}

/**
 * How the mesh drains its servers when it closes (Envoy's drain, Istio's
 * `terminationDrainDuration`). The drain marks the mesh not ready (`/ready` answers 503),
 * answers every request with `connection: close` and closes idle keep-alive connections;
 * after `delay` the servers stop accepting connections, and requests still in flight get
 * `timeout` to finish before their connections are cut.
 */
export interface DrainConfig {
  /**
   * How long requests in flight may take to finish once the servers stopped accepting
   * (default 20s: with the span flush, at most 10s, it fits Kubernetes' default
   * `terminationGracePeriodSeconds` of 30).
   */
  timeout?: Duration
  /**
   * How long the servers keep accepting new connections after the drain began, each request
   * answered with `connection: close` (default 0). On Kubernetes, callers may still connect
   * for a few seconds after SIGTERM, until the endpoint removal reaches every node: a
   * `preStop` sleep or a delay of about 5s covers it (Istio's sidecar keeps accepting for
   * its `terminationDrainDuration`, 5s).
   */
  delay?: Duration
}

/**
 * Fault injection (Istio `HTTPFaultInjection`, Envoy `HTTPFault`). At least one of `delay`
 * and `abort`. When both apply to a request, the delay comes first, then the abort.
 */
export interface FaultConfig {
  /** Hold the request for a while before it goes on. */
  delay?: FaultDelayConfig
  /** Answer the request with an error status instead of forwarding it. */
  abort?: FaultAbortConfig
  /**
   * At most this many requests of this route held by a fault delay at once (Envoy
   * `max_active_faults`); beyond it, requests pass without a fault. Unset: no bound.
   */
  maxActiveFaults?: number
}

/**
 * A fault delay: exactly one of `fixedDelay` and `headerDelay: true` (Envoy's
 * `fixed_delay` / `header_delay` oneof).
 */
export interface FaultDelayConfig {
  /** How long the request is held (at most 1h). */
  fixedDelay?: Duration
  /**
   * Take the delay from the request's `x-envoy-fault-delay-request` header (milliseconds,
   * capped at 60s) and, when present, `x-envoy-fault-delay-request-percentage` (0–100, the
   * lower of it and `percentage` applies). Requests without a valid header are not delayed.
   * Only set this where callers may be trusted to slow their own requests.
   */
  headerDelay?: boolean
  /** Percent (0–100, fractions allowed) of requests delayed; default 100. */
  percentage?: number
}

/**
 * A fault abort: exactly one of `httpStatus` and `headerAbort: true` (Envoy's
 * `http_status` / `header_abort` oneof).
 */
export interface FaultAbortConfig {
  /** The status answered, 200–599. */
  httpStatus?: number
  /**
   * Take the status from the request's `x-envoy-fault-abort-request` header (200–599) and,
   * when present, `x-envoy-fault-abort-request-percentage` (0–100, the lower of it and
   * `percentage` applies). Requests without a valid header are not aborted.
   */
  headerAbort?: boolean
  /** Percent (0–100, fractions allowed) of requests aborted; default 100. */
  percentage?: number
}
