/**
 * Outlier detection (Envoy `OutlierDetection`), per cluster. The request path feeds it one
 * outcome per request: consecutive-error detectors run inline (a few counters, no
 * allocation) and may eject at once; success-rate and failure-percentage analysis, returns
 * to service and the decay of the ejection multiplier run on one interval timer.
 *
 * Envoy's rules, followed here:
 * - a locally originated failure (connect failure, reset, timeout) counts as a 5xx and as a
 *   gateway failure (no `split_external_local_origin_errors`);
 * - an ejection lasts `baseEjectionTime × multiplier`, capped by `max(baseEjectionTime,
 *   maxEjectionTime)`; the multiplier grows by one per ejection (while below the cap) and
 *   shrinks by one for every interval the endpoint spends in service;
 * - ejected endpoints return on the first interval sweep after their time is up;
 * - an ejection that would take the ejected share above `maxEjectionPercent` is refused
 *   (counted as overflow), unless `alwaysEjectOneHost` and nothing is ejected yet (Envoy ≥ 1.31);
 * - success rate: among endpoints with `successRateRequestVolume` requests in the interval,
 *   when there are at least `successRateMinimumHosts`, those below
 *   `mean − stdevFactor/1000 × stdev` are outliers; failure percentage: those at or above
 *   `failurePercentageThreshold` percent 5xx.
 */
import type { OutlierDetectionConfig } from '../config/types.js'
import { defaults } from '../config/defaults.js'
import { parseDuration } from '../config/duration.js'
import type { Host } from './host.js'
import { reasonIndex, type EjectionReason, type HealthCounters, type HostHealth, type OutlierEjectionEvent, type RequestOutcome } from './host-health.js'

/** What the detector needs from its cluster. */
export interface OutlierEnvironment {
  readonly cluster: string
  /** Every endpoint of the cluster now, with its health. */
  readonly hosts: () => ReadonlyMap<Host, HostHealth>
  /** The usable set changed: rebuild the balancers. */
  readonly changed: () => void
  readonly counters: HealthCounters
  readonly emit: (event: OutlierEjectionEvent) => void
}

/** Outlier detection of one cluster. */
export class OutlierDetector {
  readonly #consecutive5xx: number
  readonly #consecutiveGatewayFailure: number
  readonly #enforcing5xx: number
  readonly #enforcingGateway: number
  readonly #intervalMs: number
  readonly #baseMs: number
  readonly #maxMs: number
  readonly #maxPercent: number
  readonly #alwaysEjectOne: boolean
  readonly #srMinHosts: number
  readonly #srVolume: number
  readonly #srFactor: number
  readonly #enforcingSr: number
  readonly #fpThreshold: number
  readonly #fpMinHosts: number
  readonly #fpVolume: number
  readonly #enforcingFp: number
  /** Whether a passing health check returns an ejected endpoint to service. */
  readonly unejectOnHealthCheck: boolean
  readonly #env: OutlierEnvironment
  #timer: NodeJS.Timeout | undefined
  #stopped = false

  constructor(config: Readonly<OutlierDetectionConfig>, env: OutlierEnvironment) {
    const d = defaults.outlierDetection
    this.#consecutive5xx = config.consecutive5xx ?? d.consecutive5xx
    this.#consecutiveGatewayFailure = config.consecutiveGatewayFailure ?? d.consecutiveGatewayFailure
    this.#enforcing5xx = config.enforcingConsecutive5xx ?? d.enforcingConsecutive5xx
    this.#enforcingGateway = config.enforcingConsecutiveGatewayFailure ?? d.enforcingConsecutiveGatewayFailure
    this.#intervalMs = parseDuration(config.interval) ?? d.intervalMs
    this.#baseMs = parseDuration(config.baseEjectionTime) ?? d.baseEjectionTimeMs
    // Envoy: "the default value (300s) or base_ejection_time, whichever is larger".
    this.#maxMs = Math.max(parseDuration(config.maxEjectionTime) ?? d.maxEjectionTimeMs, this.#baseMs)
    this.#maxPercent = config.maxEjectionPercent ?? d.maxEjectionPercent
    this.#alwaysEjectOne = config.alwaysEjectOneHost ?? d.alwaysEjectOneHost
    this.#srMinHosts = config.successRateMinimumHosts ?? d.successRateMinimumHosts
    this.#srVolume = config.successRateRequestVolume ?? d.successRateRequestVolume
    this.#srFactor = (config.successRateStdevFactor ?? d.successRateStdevFactor) / 1000
    this.#enforcingSr = config.enforcingSuccessRate ?? d.enforcingSuccessRate
    this.#fpThreshold = config.failurePercentageThreshold ?? d.failurePercentageThreshold
    this.#fpMinHosts = config.failurePercentageMinimumHosts ?? d.failurePercentageMinimumHosts
    this.#fpVolume = config.failurePercentageRequestVolume ?? d.failurePercentageRequestVolume
    this.#enforcingFp = config.enforcingFailurePercentage ?? d.enforcingFailurePercentage
    this.unejectOnHealthCheck = config.successfulActiveHealthCheckUnejectHost ?? d.successfulActiveHealthCheckUnejectHost
    this.#env = env
  }

  /** Starts the interval timer (unref'd: it never keeps the process alive). */
  start(): void {
    if (this.#timer !== undefined || this.#stopped) return
    this.#timer = setInterval(() => this.sweep(performance.now()), this.#intervalMs)
    this.#timer.unref()
  }

  /** Stops the timer for good. */
  stop(): void {
    this.#stopped = true
    clearInterval(this.#timer)
    this.#timer = undefined
  }

  /** Counts one request's outcome. The request path calls it: counters only, unless a threshold is reached. */
  record(host: Host, health: HostHealth, outcome: RequestOutcome): void {
    // Local failures are Envoy's 503 (connect failure, reset) and 504 (timeout).
    const status = typeof outcome === 'number' ? outcome : outcome === 'timeout' ? 504 : 503
    health.intervalRequests++
    if (status < 500 || status > 599) {
      health.consecutive5xx = 0
      health.consecutiveGatewayFailure = 0
      return
    }
    health.intervalFailures++
    if (status >= 502 && status <= 504) {
      if (++health.consecutiveGatewayFailure === this.#consecutiveGatewayFailure) {
        health.consecutiveGatewayFailure = 0
        if (!health.ejected) this.#eject(host, health, 'consecutive_gateway_failure', this.#enforcingGateway, performance.now())
      }
    } else {
      health.consecutiveGatewayFailure = 0
    }
    if (++health.consecutive5xx === this.#consecutive5xx) {
      health.consecutive5xx = 0
      if (!health.ejected) this.#eject(host, health, 'consecutive_5xx', this.#enforcing5xx, performance.now())
    }
  }

  /** Returns an ejected endpoint to service at once (a passing active health check). */
  unejectNow(host: Host, health: HostHealth): boolean {
    if (!health.ejected) return false
    this.#uneject(host, health)
    return true
  }

  /** The interval sweep: returns to service, multiplier decay, then success-rate and failure-percentage analysis. */
  sweep(now: number): void {
    if (this.#stopped) return
    const hosts = this.#env.hosts()
    let changed = false
    for (const [host, h] of hosts) {
      if (h.ejectedAt < 0) continue
      if (!h.ejected) {
        if (h.ejectionMultiplier > 0) h.ejectionMultiplier--
        continue
      }
      if (now - h.ejectedAt >= h.ejectionTimeMs) {
        this.#uneject(host, h, false)
        changed = true
      }
    }
    if (this.#analyse(hosts, now)) changed = true
    if (changed) this.#env.changed()
  }

  /** Success-rate and failure-percentage detection over the interval that just ended. */
  #analyse(hosts: ReadonlyMap<Host, HostHealth>, now: number): boolean {
    const enough = hosts.size >= this.#srMinHosts || hosts.size >= this.#fpMinHosts
    const sr: [Host, HostHealth, number][] = []
    const fp: [Host, HostHealth, number][] = []
    let sum = 0
    for (const [host, h] of hosts) {
      const total = h.intervalRequests
      const rate = total === 0 ? 100 : (100 * (total - h.intervalFailures)) / total
      h.intervalRequests = 0
      h.intervalFailures = 0
      if (!enough || h.ejected || total === 0) continue
      if (total >= this.#srVolume) {
        sr.push([host, h, rate])
        sum += rate
      }
      if (total >= this.#fpVolume) fp.push([host, h, rate])
    }
    let changed = false
    if (sr.length > 0 && sr.length >= this.#srMinHosts) {
      const mean = sum / sr.length
      let variance = 0
      for (const [, , rate] of sr) variance += (rate - mean) ** 2
      const threshold = mean - this.#srFactor * Math.sqrt(variance / sr.length)
      for (const [host, h, rate] of sr) {
        if (rate < threshold && !h.ejected && this.#eject(host, h, 'success_rate', this.#enforcingSr, now, false)) changed = true
      }
    }
    if (fp.length > 0 && fp.length >= this.#fpMinHosts) {
      for (const [host, h, rate] of fp) {
        if (100 - rate >= this.#fpThreshold && !h.ejected && this.#eject(host, h, 'failure_percentage', this.#enforcingFp, now, false)) changed = true
      }
    }
    return changed
  }

  /** Envoy's `ejectHost`: the max-percent gate, then the enforcement draw, then the ejection. */
  #eject(host: Host, h: HostHealth, reason: EjectionReason, enforcing: number, now: number, notify = true): boolean {
    const hosts = this.#env.hosts()
    let active = 0
    for (const other of hosts.values()) if (other.ejected) active++
    const percent = (100 * (active + 1)) / hosts.size
    if (percent > this.#maxPercent && !(this.#alwaysEjectOne && active === 0)) {
      this.#env.counters.ejectionsOverflow++
      return false
    }
    if (!(Math.random() * 100 < enforcing)) return false
    if (h.ejectionMultiplier * this.#baseMs < this.#maxMs + this.#baseMs) h.ejectionMultiplier++
    h.ejected = true
    h.ejectedAt = now
    h.ejections++
    h.ejectionReason = reason
    h.ejectionTimeMs = Math.min(this.#baseMs * h.ejectionMultiplier, this.#maxMs)
    this.#env.counters.ejections[reasonIndex(reason)]!++
    this.#env.emit({
      cluster: this.#env.cluster,
      endpoint: host.address.hostPort,
      ejected: true,
      reason,
      ejectionTimeMs: h.ejectionTimeMs,
      timesEjected: h.ejections,
    })
    if (notify) this.#env.changed()
    return true
  }

  #uneject(host: Host, h: HostHealth, notify = true): void {
    h.ejected = false
    // Envoy resets the counters, so a few new errors do not eject again at once.
    h.consecutive5xx = 0
    h.consecutiveGatewayFailure = 0
    this.#env.emit({
      cluster: this.#env.cluster,
      endpoint: host.address.hostPort,
      ejected: false,
      reason: h.ejectionReason,
      ejectionTimeMs: 0,
      timesEjected: h.ejections,
    })
    if (notify) this.#env.changed()
  }
}
