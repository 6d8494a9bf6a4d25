import type { MeshConfig } from '../config/types.js'
import type { DeepReadonly } from '../config/deep-readonly.js'
import type { CompiledVirtualHost } from '../router/route-action.js'
import type { DomainIndex } from '../router/domain-index.js'
import type { Cluster } from '../upstream/cluster.js'
import type { CompiledMatch } from '../http/matcher.js'
import type { LimitSet } from '../policy/limits.js'
import type { TracingSettings } from '../observability/tracing.js'
import type { CompiledFault } from '../policy/fault.js'
import type { CredentialStore } from '../security/tls.js'
import type { InboundTls } from '../security/compile.js'
import type { RequestAuthentication } from '../security/jwt.js'
import type { Authorizer } from '../security/authz.js'

export type { DeepReadonly } from '../config/deep-readonly.js'

/** One inbound route (`listener.routes[]`), compiled. */
export interface InboundRoute {
  readonly name: string
  readonly match: CompiledMatch
  readonly limits: LimitSet | null
  readonly fault: CompiledFault | null
  /** Every filter a request on this route runs, resolved once; `null` when it runs none. */
  readonly filters: InboundFilters | null
}

/**
 * The filter list of inbound requests on one route (or on none), compiled when the snapshot
 * is built, as fastify resolves hook lists: a request with nothing to run checks one `null`
 * and goes to the app, building no array and no closure.
 */
export interface InboundFilters {
  /** The limits to apply in order (the listener's, then the route's); `null` when neither has any. */
  readonly limits: readonly LimitSet[] | null
  readonly requestAuthentication: RequestAuthentication | null
  readonly authorization: Authorizer | null
  readonly fault: CompiledFault | null
}

/**
 * One compiled, frozen config. A request captures the current snapshot once, when it
 * starts, and uses only it until it ends; a config change builds a new one and swaps one
 * reference.
 */
export interface Snapshot {
  /** Increases by one with every applied config. */
  readonly version: number
  /** The config this snapshot was compiled from (a frozen copy). */
  readonly config: DeepReadonly<MeshConfig>
  readonly clusters: ReadonlyMap<string, Cluster>
  readonly virtualHosts: ReadonlyMap<string, CompiledVirtualHost>
  /** Authority → virtual host. */
  readonly domains: DomainIndex<CompiledVirtualHost>
  /** `outboundTrafficPolicy.mode === 'REGISTRY_ONLY'`. */
  readonly registryOnly: boolean
  /** Tracing settings. */
  readonly tracing: TracingSettings
  /** Limits of every inbound request (`listener.rateLimit`). */
  readonly listenerLimits: LimitSet | null
  /** Inbound routes (`listener.routes`): the name of each inbound request's route, its limits, its fault and its filter list. */
  readonly listenerRoutes: readonly InboundRoute[]
  /** The filters of an inbound request no route names; `null` when it has none. */
  readonly listenerFilters: InboundFilters | null
  /** The workload's credentials (`identity`), shared by snapshots while `identity` is unchanged. */
  readonly identity: CredentialStore | null
  /** Canonical JSON of `identity` ('' when unset): tells whether the next snapshot may reuse the store. */
  readonly identityKey: string
  /** Inbound mTLS (`listener.mtls`), or null for plain HTTP. */
  readonly inboundTls: InboundTls | null
  /** `listener.requestAuthentication`, compiled; `null` when absent. Shared with the previous snapshot when unchanged (token cache, JWKS). */
  readonly requestAuthentication: RequestAuthentication | null
  /** `listener.authorization`, compiled; `null` when absent. */
  readonly authorization: Authorizer | null
}
