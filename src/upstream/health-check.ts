/**
 * Active HTTP health checks (Envoy `HealthCheck` with `http_health_check`), per cluster.
 *
 * One timer per cluster drives every endpoint: a round checks all endpoints at once, one
 * more timer bounds the round by `timeout` (aborting what has not answered), and the next
 * round starts `interval` (+ a random `0..intervalJitter`) after the round ends — or
 * `noTrafficInterval` while the cluster has carried no request. Both timers are unref'd and
 * cleared by `stop()`, which also aborts checks in flight. Checks go to the endpoint's own
 * pool (reusing its connections, as Envoy's `reuse_connection`), not through the router, so
 * they are neither routed, traced nor counted as traffic; bodies are drained, bounded.
 *
 * Verdicts follow Envoy's `ActiveHealthCheckSession`: the first answer ever decides alone; a
 * healthy endpoint turns unhealthy after `unhealthyThreshold` network failures (timeout,
 * refused, reset) or retriable statuses in a row, and at once on any other unexpected
 * status; an unhealthy one turns healthy after `healthyThreshold` passes in a row.
 */
import type { Dispatcher } from 'undici'
import type { HealthCheckConfig, StatusRange } from '../config/types.js'
import { defaults, limits } from '../config/defaults.js'
import { parseDuration } from '../config/duration.js'
import { compileMutations, mutateHeaderObject } from '../http/header-mutations.js'
import type { Host } from './host.js'
import type { EndpointHealthEvent, HealthCounters, HostHealth } from './host-health.js'

/** What the checker needs from its cluster. */
export interface HealthCheckEnvironment {
  readonly cluster: string
  /** Every endpoint of the cluster now, with its health. */
  readonly hosts: () => ReadonlyMap<Host, HostHealth>
  /** Whether the cluster has carried a request yet. */
  readonly trafficSeen: () => boolean
  /** A check passed: returns true when that returned an ejected endpoint to service. */
  readonly passed: (host: Host, health: HostHealth) => boolean
  /** The usable set changed: rebuild the balancers. */
  readonly changed: () => void
  readonly counters: HealthCounters
  readonly emit: (event: EndpointHealthEvent) => void
}

/** The outcome of one check. */
interface CheckResult {
  readonly cause: EndpointHealthEvent['cause']
  readonly status: number | undefined
  /** A failing status listed in `retriableStatuses`: counts towards the threshold. */
  readonly retriable: boolean
}

const USER_AGENT = 'sidecarless/HC'

/** Active health checking of one cluster. */
export class HealthChecker {
  readonly #timeoutMs: number
  readonly #intervalMs: number
  readonly #jitterMs: number
  readonly #noTrafficMs: number
  readonly #unhealthyThreshold: number
  readonly #healthyThreshold: number
  readonly #path: string
  readonly #headers: Record<string, string | string[] | undefined>
  readonly #expected: readonly StatusRange[]
  readonly #retriable: readonly StatusRange[]
  readonly #env: HealthCheckEnvironment
  #timer: NodeJS.Timeout | undefined
  #round: AbortController | undefined
  #started = false
  #stopped = false

  constructor(config: Readonly<HealthCheckConfig>, env: HealthCheckEnvironment) {
    this.#timeoutMs = parseDuration(config.timeout) ?? 1_000
    this.#intervalMs = parseDuration(config.interval) ?? 10_000
    this.#jitterMs = parseDuration(config.intervalJitter) ?? defaults.healthCheckIntervalJitterMs
    this.#noTrafficMs = parseDuration(config.noTrafficInterval) ?? defaults.healthCheckNoTrafficIntervalMs
    this.#unhealthyThreshold = config.unhealthyThreshold
    this.#healthyThreshold = config.healthyThreshold
    const http = config.httpHealthCheck
    this.#path = http.path
    // Envoy: the Host header is the cluster name unless `host` says otherwise.
    const headers: Record<string, string | string[] | undefined> = { host: http.host ?? env.cluster, 'user-agent': USER_AGENT }
    const mutations = compileMutations([{ toAdd: http.requestHeadersToAdd }])
    if (mutations !== null) mutateHeaderObject(headers, mutations)
    this.#headers = Object.freeze(headers)
    this.#expected = http.expectedStatuses ?? defaults.healthCheckExpectedStatuses
    this.#retriable = http.retriableStatuses ?? []
    this.#env = env
  }

  /** Runs the first round now; resolves when it is over (within `timeout`). Later rounds follow on the timer. */
  start(): Promise<void> {
    if (this.#started || this.#stopped) return Promise.resolve()
    this.#started = true
    return this.#runRound()
  }

  /** Stops the timers and aborts checks in flight. */
  stop(): void {
    this.#stopped = true
    clearTimeout(this.#timer)
    this.#timer = undefined
    this.#round?.abort()
    this.#round = undefined
  }

  async #runRound(): Promise<void> {
    if (this.#stopped) return
    const round = new AbortController()
    this.#round = round
    const timeout = setTimeout(() => round.abort(), this.#timeoutMs)
    timeout.unref()
    const hosts = [...this.#env.hosts()]
    try {
      await Promise.all(hosts.map(async ([host, health]) => {
        const result = await this.#check(host, round.signal)
        if (this.#stopped || this.#env.hosts().get(host) !== health) return
        this.#apply(host, health, result)
      }))
    } finally {
      clearTimeout(timeout)
      if (this.#round === round) this.#round = undefined
    }
    this.#schedule()
  }

  #schedule(): void {
    if (this.#stopped) return
    const base = this.#env.trafficSeen() ? this.#intervalMs : this.#noTrafficMs
    const jitter = this.#jitterMs > 0 ? Math.floor(Math.random() * this.#jitterMs) : 0
    this.#timer = setTimeout(() => {
      this.#timer = undefined
      void this.#runRound()
    }, base + jitter)
    this.#timer.unref()
  }

  async #check(host: Host, signal: AbortSignal): Promise<CheckResult> {
    const options: Dispatcher.RequestOptions & { servername?: string } = {
      method: 'GET',
      path: this.#path,
      headers: this.#headers,
      signal,
    }
    if (host.servername !== undefined) options.servername = host.servername
    let status: number
    try {
      const res = await host.pool.request(options)
      status = res.statusCode
      // Drained (bounded) so the connection can serve the next check; a body past the bound closes it.
      await res.body.dump({ limit: limits.healthCheckBodyBytes }).catch(() => undefined)
    } catch {
      return { cause: signal.aborted ? 'timeout' : 'network', status: undefined, retriable: false }
    }
    if (inRanges(status, this.#expected)) return { cause: 'passed', status, retriable: false }
    return { cause: 'status', status, retriable: inRanges(status, this.#retriable) }
  }

  /** Envoy's verdict rules for one result. */
  #apply(host: Host, h: HostHealth, r: CheckResult): void {
    const first = h.checkPending
    h.checkPending = false
    let changed = false
    let unejected = false
    if (r.cause === 'passed') {
      this.#env.counters.checkSuccess++
      h.unhealthyRun = 0
      if (h.checkFailed && (first || ++h.healthyRun === this.#healthyThreshold)) {
        h.checkFailed = false
        h.healthyRun = 0
        changed = true
      }
      unejected = this.#env.passed(host, h)
    } else {
      this.#env.counters.checkFailure++
      h.healthyRun = 0
      if (!h.checkFailed && ((r.cause === 'status' && !r.retriable) || ++h.unhealthyRun === this.#unhealthyThreshold)) {
        h.checkFailed = true
        h.unhealthyRun = 0
        changed = true
      }
    }
    if (changed || first) {
      this.#env.emit({ cluster: this.#env.cluster, endpoint: host.address.hostPort, healthy: !h.checkFailed, cause: r.cause, status: r.status })
    }
    if (changed || unejected) this.#env.changed()
  }
}

function inRanges(status: number, ranges: readonly StatusRange[]): boolean {
  for (const r of ranges) if (status >= r.start && status < r.end) return true
  return false
}
