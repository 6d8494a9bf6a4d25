/**
 * The health of one endpoint as one cluster sees it: outlier-detection counters and
 * ejection, and the active health check verdict. It lives in the cluster, not in the
 * shared Host: two clusters naming one address judge it apart, as two Envoy clusters do.
 * Plain number fields, so the request path only adds to them.
 */

/** Why an endpoint was ejected (Envoy's `OutlierEjectionType`, lower case). */
export type EjectionReason = 'consecutive_5xx' | 'consecutive_gateway_failure' | 'success_rate' | 'failure_percentage'

/** Every {@link EjectionReason}, in the order snapshots and the exposition list them. */
export const EJECTION_REASONS: readonly EjectionReason[] = Object.freeze([
  'consecutive_5xx', 'consecutive_gateway_failure', 'success_rate', 'failure_percentage',
] as const)

/**
 * What became of one request to an endpoint, as outlier detection counts it: the HTTP
 * status, or a failure the mesh saw itself (counted as a 5xx and a gateway failure).
 */
export type RequestOutcome = number | 'connect_failure' | 'reset' | 'timeout'

/** One endpoint's health in one cluster. */
export class HostHealth {
  // ---- outlier detection (Envoy DetectorHostMonitorImpl)
  consecutive5xx = 0
  consecutiveGatewayFailure = 0
  /** Requests and 5xx of the current interval, for success-rate and failure-percentage analysis. */
  intervalRequests = 0
  intervalFailures = 0
  ejected = false
  /** When the current (or last) ejection began (`performance.now()`); -1: never ejected. */
  ejectedAt = -1
  /** Envoy's ejection-time multiplier: up by one per ejection, down by one per healthy interval. */
  ejectionMultiplier = 0
  /** Times ejected, ever. */
  ejections = 0
  /** The length of the current ejection, ms (for events and admin). */
  ejectionTimeMs = 0
  /** Why the current (or last) ejection happened. */
  ejectionReason: EjectionReason | undefined = undefined
  // ---- active health checking (Envoy ActiveHealthCheckSession)
  /** Envoy's FAILED_ACTIVE_HC: failed its checks (or has not passed one yet). */
  checkFailed: boolean
  /** No check has answered yet: the first answer decides alone. */
  checkPending: boolean
  healthyRun = 0
  unhealthyRun = 0

  /** @param checked whether the cluster health-checks its endpoints (they then start unproven) */
  constructor(readonly checked: boolean) {
    this.checkFailed = checked
    this.checkPending = checked
  }

  /** Whether load balancing may pick this endpoint outside panic mode. */
  get usable(): boolean {
    return !this.ejected && !this.checkFailed
  }

  /** Takes over the state of the same endpoint in the cluster this one replaces (Envoy keeps it across CDS updates). */
  adopt(from: HostHealth, outlierDetection: boolean): void {
    if (outlierDetection) this.#adoptEjection(from)
    // Only a verdict of a check carries over; an endpoint of a cluster without checks is unproven.
    if (this.checked && from.checked && !from.checkPending) {
      this.checkFailed = from.checkFailed
      this.checkPending = false
      this.healthyRun = from.healthyRun
      this.unhealthyRun = from.unhealthyRun
    }
  }

  #adoptEjection(from: HostHealth): void {
    this.consecutive5xx = from.consecutive5xx
    this.consecutiveGatewayFailure = from.consecutiveGatewayFailure
    this.ejected = from.ejected
    this.ejectedAt = from.ejectedAt
    this.ejectionMultiplier = from.ejectionMultiplier
    this.ejections = from.ejections
    this.ejectionTimeMs = from.ejectionTimeMs
    this.ejectionReason = from.ejectionReason
  }
}

/** Counters of one cluster's health machinery; shared by the runtimes of one cluster name across config swaps. */
export class HealthCounters {
  /** Enforced ejections by reason, in {@link EJECTION_REASONS} order. */
  readonly ejections = new Float64Array(EJECTION_REASONS.length)
  /** Ejections refused by `maxEjectionPercent` (Envoy `ejections_overflow`). */
  ejectionsOverflow = 0
  /** Health checks that passed / failed (Envoy `health_check.success` / `health_check.failure`). */
  checkSuccess = 0
  checkFailure = 0
}

/** Index of a reason in {@link HealthCounters.ejections}. */
export function reasonIndex(reason: EjectionReason): number {
  switch (reason) {
    case 'consecutive_5xx': return 0
    case 'consecutive_gateway_failure': return 1
    case 'success_rate': return 2
    default: return 3
  }
}

/** What `mesh.on('outlierEjection')` receives: an endpoint ejected or returned to service. */
export interface OutlierEjectionEvent {
  readonly cluster: string
  /** `host:port` of the endpoint. */
  readonly endpoint: string
  /** `true`: ejected now; `false`: returned to service. */
  readonly ejected: boolean
  /** Why it was ejected (also given when it returns). */
  readonly reason: EjectionReason | undefined
  /** How long this ejection lasts, ms (base time × multiplier, capped); 0 when returned. */
  readonly ejectionTimeMs: number
  /** How many times it was ejected so far. */
  readonly timesEjected: number
}

/** What `mesh.on('endpointHealth')` receives: an active health check changed an endpoint's verdict. */
export interface EndpointHealthEvent {
  readonly cluster: string
  /** `host:port` of the endpoint. */
  readonly endpoint: string
  /** The verdict now. */
  readonly healthy: boolean
  /** What the check that decided it saw: a passing status, an unexpected one, a timeout, or a network failure. */
  readonly cause: 'passed' | 'status' | 'timeout' | 'network'
  /** The status the check got, when it got one. */
  readonly status: number | undefined
}

/** Where clusters report health changes (the mesh turns them into events). */
export interface HealthEventSink {
  outlierEjection?(event: OutlierEjectionEvent): void
  endpointHealth?(event: EndpointHealthEvent): void
}

/** Health of one cluster, read for metrics (`mesh.metrics.snapshot().health`). */
export interface ClusterHealthStats {
  /** Endpoints of the cluster. */
  readonly endpoints: number
  /** Endpoints neither ejected nor failing their health checks. */
  readonly healthy: number
  /** Enforced ejections so far, by reason. */
  readonly ejections: Readonly<Record<EjectionReason, number>>
  /** Endpoints ejected now. */
  readonly ejectionsActive: number
  /** Ejections refused because `maxEjectionPercent` was reached. */
  readonly ejectionsOverflow: number
  /** Health checks that passed and that failed. */
  readonly healthChecks: { readonly success: number; readonly failure: number }
  /** Whether the whole-cluster balancer is in panic mode (too few usable endpoints: all are used). */
  readonly panic: boolean
  /** Subsets whose balancer is in panic mode. */
  readonly panicSubsets: readonly string[]
  /** `host:port` of the endpoints ejected now. */
  readonly ejected: readonly string[]
  /** `host:port` of the endpoints failing (or not yet passing) their health checks. */
  readonly unhealthy: readonly string[]
}
