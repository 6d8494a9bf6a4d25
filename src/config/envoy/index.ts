/**
 * Envoy v3 resources into the mesh model: one translator per resource type, shared by the
 * bootstrap import (`fromEnvoy`) and the xDS client. Each takes the resource (any of the
 * forms `reader.ts` describes), the path to report problems under, and a {@link Problems}
 * that collects every problem with its path.
 *
 * @module
 */
export { fromEnvoy, isEnvoyBootstrap, Composer, type EnvoyImport } from './bootstrap.js'
export { translateListener, translateConnectionManager, type ListenerTranslation, type ConnectionManagerTranslation } from './listener.js'
export { translateRouteConfiguration, translateRoute, ROUTER_ONLY, type RouteConfigurationTranslation, type TranslatedVirtualHost, type HttpFilters } from './route.js'
export { translateCluster, resolveUpstreamTls, type ClusterTranslation, type UpstreamTlsTranslation } from './cluster.js'
export { translateClusterLoadAssignment, type LoadAssignmentTranslation } from './endpoints.js'
export { translateSecret, type SecretTranslation, type TlsCertificateTranslation, type ValidationTranslation } from './secret.js'
export { translateRouteMatch, translateHeaderMatcher } from './match.js'
export { Problems, OutOfBudget, WORK_BUDGET, type UnsupportedField } from './reader.js'
export { translateCommonTlsContext, type CommonTlsTranslation } from './common-tls.js'
export { translateDownstreamTlsContext, type DownstreamTlsTranslation } from './downstream-tls.js'
export { translateRbac, type RbacTranslation } from './rbac.js'
