/**
 * Every default and bound of the model in one place. Values follow Envoy and Istio where
 * they define one; the comment names the source.
 */
export const defaults = Object.freeze({
  /** Envoy `RouteAction.timeout`: 15s. 0 disables. */
  routeTimeoutMs: 15_000,
  /** Envoy `Cluster.connect_timeout`: 5s. */
  connectTimeoutMs: 5_000,
  /** Envoy `Cluster.dns_refresh_rate`: 5s. */
  dnsRefreshRateMs: 5_000,
  /** Envoy `Cluster.dns_lookup_family`: AUTO (IPv6 if the name has any, else IPv4; Envoy's v1 API defaulted to v4_only). */
  dnsLookupFamily: 'auto' as const,
  /** Envoy `Cluster.respect_dns_ttl`: false. */
  respectDnsTtl: false,
  /** Envoy `Cluster.dns_jitter`: 0 (none). */
  dnsJitterMs: 0,
  /** Envoy `Cluster.RefreshRate.max_interval`: 10 × `base_interval`. */
  dnsFailureMaxIntervalFactor: 10,
  /** How long applying a config waits for a new DNS cluster's first answers (Envoy's cluster warming), at most. */
  dnsInitialResolveTimeoutMs: 5_000,
  /** Envoy `Cluster.lb_policy`: ROUND_ROBIN. */
  loadBalancer: 'round_robin' as const,
  /** Envoy `LeastRequestLbConfig.choice_count`: 2 (power of two choices). */
  leastRequestChoiceCount: 2,
  /** Envoy `RingHashLbConfig.minimum_ring_size`: 1024. */
  ringHashMinimumRingSize: 1024,
  /** Envoy `RingHashLbConfig.maximum_ring_size`: 8M; we cap lower to bound memory per cluster. */
  ringHashMaximumRingSize: 8_388_608,
  /** Envoy `MaglevLbConfig.table_size`: 65537 (prime). */
  maglevTableSize: 65_537,
  /** Envoy `LbEndpoint.load_balancing_weight`: 1 (range 1–128). */
  endpointWeight: 1,
  /** Envoy `RedirectAction.response_code`: MOVED_PERMANENTLY. */
  redirectResponseCode: 301,
  /** Istio `outboundTrafficPolicy.mode`: ALLOW_ANY. */
  outboundTrafficPolicyMode: 'ALLOW_ANY' as const,
  /** Istio `meshConfig.defaultConfig.tracing.sampling`: 1 (percent). */
  tracingSampling: 1,
  /** Formats read from inbound requests (Envoy reads W3C and B3 alike). */
  traceExtract: ['w3c', 'b3', 'b3multi'] as const,
  /** Formats written on outbound requests. */
  traceInject: ['w3c'] as const,
  /** Finished spans kept in memory without an app tracer provider. */
  recentSpans: 1000,
  /** Spans waiting for a collector, per collector; beyond it the oldest are dropped (OTel BatchSpanProcessor: 2048). */
  traceExportQueueSize: 2048,
  /** Spans per export request; a full batch is sent at once (OTel BatchSpanProcessor: 512). */
  traceExportBatchSize: 512,
  /** Delay before a batch that is not full is sent (OTel BatchSpanProcessor: 5000; lower so traces show up quickly). */
  traceExportDelayMs: 1_000,
  /** Bound on one export request, and on the final flush in `mesh.close()` (OTLP exporters: 10s). */
  traceExportTimeoutMs: 10_000,
  /** Envoy local_ratelimit: `fill_interval` must be at least 50ms. */
  minFillIntervalMs: 50,
  /** Distinct descriptor values tracked per descriptor (least recently used evicted beyond). */
  descriptorBuckets: 10_000,
  /** How long a Redis rate-limit call may take before the local bucket decides. */
  globalRateLimitTimeoutMs: 50,
  /** Redis key prefix of global quotas. */
  globalRateLimitPrefix: 'sidecarless:rl:',
  /** Concurrency limit queue wait. */
  concurrencyQueueTimeoutMs: 1_000,
  /** Envoy `HeaderValueOption.append_action`: APPEND_IF_EXISTS_OR_ADD. */
  headerAppendAction: 'APPEND_IF_EXISTS_OR_ADD' as const,
  /** Envoy `RetryPolicy.num_retries`: 1. */
  numRetries: 1,
  /** Envoy `RetryPolicy.retry_back_off.base_interval`: 25ms. */
  retryBaseIntervalMs: 25,
  /** Envoy `RetryPolicy.retry_back_off.max_interval`: 10 × the base interval. */
  retryMaxIntervalFactor: 10,
  /** Istio sets `host_selection_retry_max_attempts: 5` with the `previous_hosts` predicate. */
  hostSelectionRetryMaxAttempts: 5,
  /** Envoy `RateLimitedRetryBackOff.max_interval`: 300s. */
  maxRetryAfterMs: 300_000,
  /** Methods retried without an `Idempotency-Key` header: RFC 9110's idempotent methods. */
  retriableMethods: ['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE'] as const,
  /** Bytes of a streamed request body kept so the request can be retried (Envoy buffers per request too). */
  retryBodyBufferBytes: 64 * 1024,
  /** Envoy `CircuitBreakers.Thresholds.max_connections`: 1024. */
  maxConnections: 1024,
  /**
   * Connections to one endpoint being set up at once (TCP connect and TLS handshake); requests
   * beyond wait for one of them or for a connection to be freed (see `upstream/endpoint-pool.ts`).
   * Envoy has no such knob (its workers spread the handshakes over cores); MongoDB's CMAP
   * `maxConnecting` is 2. Chosen with bench/pool-storm.mjs: 4.
   */
  maxConnectingPerEndpoint: 4,
  /** Envoy `CircuitBreakers.Thresholds.max_pending_requests`: 1024. */
  maxPendingRequests: 1024,
  /** Envoy `CircuitBreakers.Thresholds.max_requests`: 1024. */
  maxRequests: 1024,
  /** Envoy `CircuitBreakers.Thresholds.max_retries`: 3. */
  maxRetries: 3,
  /** Envoy `RetryBudget.budget_percent`: 20. */
  retryBudgetPercent: 20,
  /** Envoy `RetryBudget.min_retry_concurrency`: 3. */
  retryBudgetMinConcurrency: 3,
  /** Error-rate breaker: opossum's and Hystrix's `errorThresholdPercentage`, 50. */
  breakerErrorThreshold: 50,
  /** Error-rate breaker: Hystrix's `requestVolumeThreshold`, 20. */
  breakerVolumeThreshold: 20,
  /** Error-rate breaker: opossum's `rollingCountTimeout`, 10s. */
  breakerRollingWindowMs: 10_000,
  /** Error-rate breaker: opossum's `rollingCountBuckets`, 10. */
  breakerRollingWindowBuckets: 10,
  /** Error-rate breaker: opossum's `resetTimeout`, 30s. */
  breakerOpenDurationMs: 30_000,
  /** Error-rate breaker: trial requests while half-open (opossum lets one through). */
  breakerHalfOpenTrials: 1,
  /** Envoy `OutlierDetection` defaults (api/envoy/config/cluster/v3/outlier_detection.proto). */
  outlierDetection: Object.freeze({
    consecutive5xx: 5,
    consecutiveGatewayFailure: 5,
    enforcingConsecutive5xx: 100,
    enforcingConsecutiveGatewayFailure: 0,
    intervalMs: 10_000,
    baseEjectionTimeMs: 30_000,
    maxEjectionTimeMs: 300_000,
    maxEjectionPercent: 10,
    alwaysEjectOneHost: false,
    successRateMinimumHosts: 5,
    successRateRequestVolume: 100,
    successRateStdevFactor: 1900,
    enforcingSuccessRate: 100,
    failurePercentageThreshold: 85,
    failurePercentageMinimumHosts: 5,
    failurePercentageRequestVolume: 50,
    enforcingFailurePercentage: 0,
    successfulActiveHealthCheckUnejectHost: true,
  }),
  /** Envoy `HealthCheck.no_traffic_interval`: 60s. */
  healthCheckNoTrafficIntervalMs: 60_000,
  /** Envoy `HealthCheck.interval_jitter`: 0. */
  healthCheckIntervalJitterMs: 0,
  /** `HttpHealthCheck.expectedStatuses`: 200–299. Envoy's default is 200 alone; Kubernetes HTTP probes (which Istio rewrites) pass on 200–399, and any 2xx is a success to most apps. */
  healthCheckExpectedStatuses: Object.freeze([Object.freeze({ start: 200, end: 300 })]),
  /** Envoy `CommonLbConfig.healthy_panic_threshold`: 50 (percent). */
  healthyPanicThreshold: 50,
  /** Istio `HTTPFaultInjection` / Envoy `FaultDelay.percentage` and `FaultAbort.percentage`: 100 when unset. */
  faultPercentage: 100,
  /** Cap on a header-driven delay (`x-envoy-fault-delay-request`); hostile headers cannot hold a request longer. */
  faultHeaderDelayMaxMs: 60_000,
  /** Envoy `RequestMirrorPolicy.runtime_fraction`: 100% when unset. */
  mirrorPercentage: 100,
  /** Mirrors of one route in flight at once; beyond it copies are skipped, so a slow shadow cannot grow memory without bound. */
  mirrorMaxInFlight: 1024,
  /** Istio `PeerAuthentication.mtls.mode` when unset: PERMISSIVE. */
  mtlsMode: 'PERMISSIVE' as const,
  /** Envoy `listener_filters_timeout` (time to the first byte and through the TLS handshake): 15s. */
  handshakeTimeoutMs: 15_000,
  /** Istio `DEFAULT_WORKLOAD_CERT_TTL`: 24h (lifetime of certificates `sidecarless ca issue` makes). */
  workloadCertTtlMs: 24 * 3600_000,
  /** Poll interval of watched credential files, beside fs.watch (our choice). */
  credentialPollMs: 5_000,
  /** How long a session ticket key encrypts; it decrypts for as long again (Go rotates daily, Envoy takes keys from config; hourly bounds a stolen key's reach). */
  tlsTicketKeyRotationMs: 3600_000,
  /** Lifetime of an inbound TLS session (OpenSSL `SSL_CTX_set_timeout`, the TLS 1.3 ticket lifetime hint). */
  tlsSessionTimeoutS: 3600,
  /** Resumable sessions the mesh keeps per upstream host (undici keeps 100 per origin; one host name per pool needs few). */
  tlsClientSessionsPerHost: 8,
  /** Envoy `JwtProvider.clock_skew_seconds`: 60s. */
  jwtClockSkewMs: 60_000,
  /** Istio `JWTRule.timeout` of the JWKS fetch: 5s. */
  jwksTimeoutMs: 5_000,
  /** Envoy `RemoteJwks.cache_duration` as Istio sets it: 20m. */
  jwksCacheDurationMs: 20 * 60_000,
  /** After a failed JWKS fetch, the next one waits this long (Envoy `JwksAsyncFetch.failed_refetch_duration`: 1s). */
  jwksFailedRefetchMs: 1_000,
  /** A token with an unknown `kid` refetches the JWKS at most this often (jose's `cooldownDuration`: 30s). */
  jwksCooldownMs: 30_000,
  /** Verified tokens kept until their expiry, least recently used evicted beyond (Envoy `JwtCacheConfig.jwt_cache_size`: 100; ours is larger). */
  jwtCacheSize: 10_000,
  /** Istio's default token locations: `Authorization: Bearer <token>`, then `?access_token=`. */
  jwtDefaultHeader: Object.freeze({ name: 'authorization', prefix: 'Bearer ' }),
  jwtDefaultParam: 'access_token',
  /**
   * `drain.timeout`: 20s for requests in flight once the servers stopped accepting. Envoy's
   * `--drain-time-s` is 600s (made for hot restarts); Istio's `terminationDrainDuration`,
   * 5s, cuts any longer request. 20s plus the span flush (≤ 10s) fits Kubernetes' default
   * grace period of 30s.
   */
  drainTimeoutMs: 20_000,
  /** `drain.delay`: 0, the servers stop accepting at once (a `preStop` sleep covers Kubernetes' endpoint removal). */
  drainDelayMs: 0,
})

/** Bounds on hostile or accidental input. A config beyond them is rejected with `TOO_LARGE`. */
export const limits = Object.freeze({
  /** Bytes of a config file. */
  configFileBytes: 64 * 1024 * 1024,
  /** Items of any one list (clusters, endpoints, routes, domains, ...). */
  listItems: 100_000,
  /**
   * Values in one config (objects, lists and primitives the schema reaches, shared references
   * counted at each use): a bound on validation time for configs built in code, where a few
   * shared objects can stand for a huge tree.
   */
  configValues: 5_000_000,
  /** Characters of any one string value. */
  stringLength: 8_192,
  /** Characters of a regular expression (Envoy's RE2 program size bound plays this role). */
  regexLength: 1_024,
  /** Characters of a direct response body (Envoy `max_direct_response_body_size_bytes`: 4096). */
  directResponseBody: 4_096,
  /** Maximum `ringHash.maximumRingSize` we accept. */
  ringSize: 8_388_608,
  /** Shortest outlier-detection and health-check interval and timeout we accept (a floor against busy timers). */
  minHealthIntervalMs: 10,
  /** Shortest `dnsRefreshRate` and `dnsFailureRefreshRate` intervals (Envoy: greater than 1ms). */
  minDnsRefreshMs: 1,
  /** DNS servers in one cluster's `dnsResolvers`. */
  dnsResolvers: 16,
  /** Longest outlier-detection / health-check duration we accept: one day. */
  maxHealthDurationMs: 86_400_000,
  /** Bytes of a health-check response body read before the connection is dropped. */
  healthCheckBodyBytes: 64 * 1024,
  /** Longest `drain.timeout` and `drain.delay` (1h; a drain longer than that is a hang). */
  drainMs: 3_600_000,
  /** Longest `fault.delay.fixedDelay` (1h; Node timers misfire beyond ~24.8 days). */
  faultFixedDelayMs: 3_600_000,
  /** Characters of an inline PEM value (certificate, key, trust bundle) or of a credential file. */
  pemLength: 1024 * 1024,
  /** Characters of a JWT; longer tokens are refused with 401 before any parsing. */
  jwtLength: 16_384,
  /** Bytes of a fetched JWKS document. */
  jwksBytes: 512 * 1024,
})
