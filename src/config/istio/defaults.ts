/**
 * What istiod puts into the Envoy config it generates when a manifest leaves a field unset.
 * The Istio import writes these values into the translated config, so a workload moving off
 * its sidecar keeps the behaviour it had. Each value names its source in istio/istio.
 *
 * (Kept beside the importer rather than in `../defaults.ts`: they are Istio's defaults, and
 * apply only to config translated from Istio manifests.)
 */
export const istioDefaults = Object.freeze({
  /** The workload's namespace when neither the caller nor the environment names one. */
  namespace: 'default',
  /** Kubernetes' cluster domain (`<svc>.<ns>.svc.cluster.local`). */
  clusterDomain: 'cluster.local',
  /** MeshConfig `rootNamespace`: policies there apply mesh-wide. */
  rootNamespace: 'istio-system',
  /** pilot `route.setTimeout`: a VirtualService route without `timeout` has none (0). */
  routeTimeoutMs: 0,
  /**
   * pilot `route/retry.defaultPolicy`: every outbound route without `retries` gets 2
   * retries on `connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes`
   * with 503 retriable. `unavailable` and `cancelled` are gRPC status conditions the mesh does
   * not implement; the rest carry over.
   */
  retryNumRetries: 2,
  retryOn: ['connect-failure', 'refused-stream', 'retriable-status-codes'] as const,
  retriableStatusCodes: [503] as const,
  /** The gRPC conditions of Istio's default `retryOn`, dropped (the mesh retries HTTP only). */
  retryOnGrpcDropped: ['unavailable', 'cancelled'] as const,
  /** pilot `retry.defaultPolicy`: `HostSelectionRetryMaxAttempts: 5`. */
  hostSelectionRetryMaxAttempts: 5,
  /** pilot `defaultLBAlgorithm()`: LEAST_REQUEST when a DestinationRule names none. */
  loadBalancer: 'least_request' as const,
  /** pilot `ApplyRingHashLoadBalancer`: a consistent hash without an algorithm is a ring of 1024. */
  ringHashMinimumRingSize: 1024,
  /** MeshConfig `connectTimeout`: 10s. */
  connectTimeoutMs: 10_000,
  /**
   * pilot `getDefaultCircuitBreakerThresholds`: 2^32-1 for connections, pending requests,
   * requests and retries — no circuit breaking unless a DestinationRule asks for it. The
   * model's bound (1e9) stands in for 2^32-1.
   */
  circuitBreakerUnbounded: 1_000_000_000,
  /** DestinationRule `outlierDetection.minHealthPercent`: 0, panic mode off (pilot `applyOutlierDetection`). */
  outlierMinHealthPercent: 0,
  /** Envoy's `LbEndpoint.load_balancing_weight` bound in the mesh model. */
  maxEndpointWeight: 128,
})
