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
 * @module sidecarless
 */
import './runtime-check.js'
export { createMesh, Mesh } from './mesh.js'
export type { ConfigApplied, MeshEvents, MeshMetrics, MeshOptions, MeshState, MeshTracing, MeshXds, PrometheusOptions, Traffic, XdsConnectionEvent, XdsOptions } from './mesh.js'
export type { ResourceStatus as XdsClientResourceStatus, XdsCounters, XdsResourceStatus, XdsResourceType, XdsStatus } from './xds/client/status.js'
export type { PromClientRegistry, RegisterOptions } from './observability/prom-client-bridge.js'
export { PEER_HEADER } from './observability/istio-metrics.js'
export type { Peer, RequestContext } from './observability/context.js'
export type { ClusterResilienceStats, ClusterStats, ErrorKind, MetricsSnapshot, TrafficStats } from './observability/metrics.js'
export { DEFAULT_ROUTE, OTHER_ENDPOINT } from './observability/metrics.js'
export type { OverflowReason, ResilienceStats } from './upstream/resource-manager.js'
export type { BreakerState, BreakerStateChange, BreakerStats } from './policy/error-rate-breaker.js'
export type { RequestAuth, JwtFailure } from './security/jwt.js'
export type { SecurityStats } from './security/stats.js'
export type { FinishedSpan } from './observability/tracing.js'
export type { ExporterStats } from './observability/exporters/collectors.js'
export type { TrafficWeights } from './traffic/split.js'
export type { Rollout, RolloutEvents, RolloutOptions, RolloutState, RolloutStatus, RolloutStep } from './traffic/rollout.js'
export type { RouteDecision, RouteQuery } from './router/router.js'
export { MeshDispatcher } from './outbound/dispatcher.js'
export type { MeshFetch } from './outbound/fetch.js'
export {
  CLUSTER_HEADER,
  ENDPOINT_HEADER,
  OVERFLOW_HEADER,
  RESPONSE_FLAGS_HEADER,
  SUBSET_HEADER,
} from './response-headers.js'
export type { ResponseFlag } from './response-headers.js'
export { ConfigError, ConfigIssueCodes, ConfigWarningCodes, ErrorCodes, isMeshError, MeshError } from './errors.js'
export type { ConfigIssue, ConfigIssueCode, ConfigLocation, ConfigWarning, ConfigWarningCode, ErrorCode } from './errors.js'
export { validateConfig } from './config/validate.js'
export { lintConfig } from './config/lint.js'
export { loadConfig } from './config/load.js'
export type { LoadedConfig, LoadOptions } from './config/load.js'
export { fromEnvoy, fromIstio } from './config/importers.js'
export type { EnvoyImport, UnsupportedField } from './config/envoy/index.js'
export type { IstioImport, IstioTranslateOptions } from './config/istio/translate.js'
export { parseDuration } from './config/duration.js'
export { defaults } from './config/defaults.js'
export type { DeepReadonly } from './snapshot/snapshot.js'
export type * from './config/types.js'
export type { ClusterHealthStats, EjectionReason, EndpointHealthEvent, OutlierEjectionEvent, RequestOutcome } from './upstream/host-health.js'
export type { ClusterDnsStats, DnsTargetStats } from './upstream/dns/discovery.js'
export type { AnswerSource } from './upstream/dns/resolver.js'
export { FAULT_ABORT_BODY, FAULT_HEADERS } from './policy/fault.js'
export type { FaultStats } from './policy/fault.js'
export type { MirrorStats } from './router/mirror.js'
export { CertificateAuthority, createCertificateAuthority, loadCertificateAuthority } from './security/ca.js'
export type { CertificateAuthorityOptions, IssueRequest, IssuedCertificate } from './security/ca.js'
export {
  compileIdentityMatcher,
  isSpiffeId,
  parseSpiffeId,
  spiffeIdOfCertificate,
  SpiffeIdError,
  workloadSpiffeId,
} from './security/identity.js'
export type { SpiffeId, SpiffeIdReason } from './security/identity.js'
export { CredentialsError, CredentialStore, loadCredentials } from './security/tls.js'
export type { CredentialSources, Credentials, CredentialStoreEvents, CredentialStoreOptions } from './security/tls.js'
export { createControlPlane } from './xds/create-control-plane.js'
export type {
  ControlPlane,
  ControlPlaneApplied,
  ControlPlaneClient,
  ControlPlaneEvents,
  ControlPlaneNack,
  ControlPlaneOptions,
  ControlPlaneStats,
  ControlPlaneTraffic,
  XdsVersions,
} from './xds/control-plane-api.js'
export type { OmittedField, XdsNack, XdsNode, XdsObject, XdsTypeStatus } from './xds/types.js'
