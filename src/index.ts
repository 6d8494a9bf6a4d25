/**
 * sidecarless: an embeddable, in-process service mesh for Node.js.
 *
 * ```ts
 * import { createMesh } from 'sidecarless'
 * const mesh = createMesh({ service: 'productpage', config: 'mesh.yaml' })
 * const res = await mesh.fetch('http://reviews/reviews/1')
 * await mesh.traffic.split('reviews', { v1: 90, v2: 10 })
 * ```
 *
 * @packageDocumentation
 */
export { createMesh, Mesh } from './mesh.js'
export type { ConfigApplied, MeshEvents, MeshMetrics, MeshOptions, MeshTracing, Traffic } from './mesh.js'
export type { Peer, RequestContext } from './observability/context.js'
export type { RequestAuth, JwtFailure } from './security/jwt.js'
export type { SecurityStats } from './security/stats.js'
export type { ClusterStats, ErrorKind, MetricsSnapshot, TrafficStats } from './observability/metrics.js'
export type { FinishedSpan } from './observability/tracing.js'
export type { ExporterStats } from './observability/exporters/batch-exporter.js'
export type { TrafficWeights } from './traffic/split.js'
export type { RouteDecision, RouteQuery } from './router/router.js'
export { MeshDispatcher } from './outbound/dispatcher.js'
export type { MeshFetch } from './outbound/fetch.js'
export {
  CLUSTER_HEADER,
  ENDPOINT_HEADER,
  RESPONSE_FLAGS_HEADER,
  SUBSET_HEADER,
} from './outbound/response-headers.js'
export type { ResponseFlag } from './outbound/response-headers.js'
export { ConfigError, ConfigIssueCodes, ErrorCodes, isMeshError, MeshError } from './errors.js'
export type { ConfigIssue, ConfigIssueCode, ErrorCode } from './errors.js'
export { validateConfig } from './config/validate.js'
export { loadConfig } from './config/load.js'
export type { LoadedConfig } from './config/load.js'
export { fromEnvoy } from './config/envoy.js'
export type { EnvoyImport, UnsupportedField } from './config/envoy.js'
export { parseDuration } from './config/duration.js'
export { defaults } from './config/defaults.js'
export type { DeepReadonly } from './snapshot/snapshot.js'
export type * from './config/types.js'
