/**
 * A stepped canary: traffic of a split moved to one destination step by step (10 % → 25 %
 * → 50 % → 100 % by default), each step held for an interval and then judged by what the
 * destination's requests in that step did; a step that fails puts the weights back as they
 * were before the rollout. Every move is an ordinary split (`split.ts`): validated, applied
 * like any config change.
 *
 * The judgment reads the mesh's own outbound metrics of the destination (its subset, or its
 * cluster when the split is between clusters), so it sees the calls of this process only:
 * each instance of a fleet judges its own traffic. A fleet that wants one rollout for all
 * runs it at the control plane.
 */
import { EventEmitter } from 'node:events'
import { parseDuration } from '../config/duration.js'
import { MeshError } from '../errors.js'
import type { MetricsSnapshot, TrafficStats } from '../observability/metrics.js'
import type { TrafficWeights } from './split.js'

/** Options of `mesh.traffic.rollout(name, options)`. */
export interface RolloutOptions {
  /** The destination traffic moves to: a subset of the split's cluster, or a cluster when the split is between clusters. */
  readonly to: string
  /**
   * The percent of traffic `to` gets at each step, increasing, each an integer from 1 to
   * 100. Default `[10, 25, 50, 100]`. The rest goes to the destinations that had traffic
   * before, in the proportions they had.
   */
  readonly steps?: readonly number[] | undefined
  /** How long each step holds before it is judged: a duration (`"30s"`) or milliseconds. Default `"1m"`. */
  readonly interval?: string | number | undefined
  /**
   * The step fails when more than this share (0–1) of `to`'s requests that ended in it
   * failed: a 5xx (the upstream's, or the mesh's own 503/504) or no response at all.
   * Requests the caller aborted are not counted. Default `0.05`.
   */
  readonly maxErrorRate?: number | undefined
  /** The step fails when `to`'s mean latency in it is above this (a duration or milliseconds). Default: not checked. */
  readonly maxMeanLatency?: string | number | undefined
  /**
   * A step is judged only once `to` ended at least this many requests in it; until then it
   * holds for another interval, and another (each `step` event says so). Default `0`: a step
   * with no traffic passes when its interval is over.
   */
  readonly minRequests?: number | undefined
  /**
   * Your own judgment, after the built-in ones pass: `true` passes the step; `false`, or a
   * string saying why, fails it (so does a throw or a rejection).
   */
  readonly check?: ((step: RolloutStep) => boolean | string | Promise<boolean | string>) | undefined
}

/** Where a rollout is. */
export type RolloutState =
  /** Moving traffic, or holding a step. */
  | 'running'
  /** Every step passed; `to` keeps the last step's share. */
  | 'completed'
  /** A step failed (or could not be applied); the weights are as they were before the rollout. */
  | 'rolledBack'
  /** `abort()` was called (the weights are put back), or the mesh closed (they are left). */
  | 'aborted'
  /** The split was changed by something else while the rollout ran; the rollout stopped and left it. */
  | 'superseded'
  /** A step failed and the weights could not be put back either; `reason` says both. */
  | 'failed'

/** One judgment of a step: what `to`'s requests did while the step held. */
export interface RolloutStep {
  /** The step's index in `steps`. */
  readonly index: number
  /** The percent of traffic `to` had in the step. */
  readonly weight: number
  /** Requests to `to` that ended in the step, aborted ones aside. */
  readonly requests: number
  /** Of those, the ones that failed (5xx, or no response). */
  readonly failures: number
  /** `failures / requests`; 0 when there were none. */
  readonly errorRate: number
  /** Mean duration of the requests that ended in the step (ms); `undefined` when none did. */
  readonly meanLatencyMs: number | undefined
  /** `Date.now()` when the step's weights were applied. */
  readonly startedAt: number
  /** `Date.now()` when it was judged. */
  readonly judgedAt: number
  /** `passed`; `failed` (the rollout rolls back); `held`: too few requests yet (`minRequests`), judged again after another interval. */
  readonly verdict: 'passed' | 'failed' | 'held'
  /** Why a step failed or held. */
  readonly reason?: string | undefined
}

/** What {@link Rollout.status} and {@link Rollout.done} give. */
export interface RolloutStatus {
  /** The split's name (a virtual host or a cluster). */
  readonly name: string
  /** The destination traffic moves to. */
  readonly to: string
  readonly state: RolloutState
  /** The steps' weights, as given (or the default). */
  readonly steps: readonly number[]
  /** The index of the step in force (or the last one applied). */
  readonly step: number
  /** The split's weights before the rollout, as `mesh.traffic.split` takes them: what a rollback restores. */
  readonly before: TrafficWeights
  /** Every judgment so far, in order. */
  readonly judged: readonly RolloutStep[]
  /** Why the rollout ended, when it did otherwise than `completed`. */
  readonly reason?: string | undefined
}

/** Events of a {@link Rollout}. */
export interface RolloutEvents {
  /** A step was judged (passed, failed or held). */
  step: [RolloutStep]
  /** The rollout ended: completed, rolled back, aborted, superseded or failed. */
  end: [RolloutStatus]
}

/**
 * A running (or ended) stepped canary; `EventEmitter` of {@link RolloutEvents}. Made by
 * `mesh.traffic.rollout()`.
 */
export interface Rollout extends EventEmitter<RolloutEvents> {
  readonly name: string
  readonly to: string
  /** Settles when the rollout ends, with its final status; never rejects. */
  readonly done: Promise<RolloutStatus>
  /** Where it is now. */
  status(): RolloutStatus
  /**
   * Stops the rollout and puts the weights back as they were before it (unless something
   * else changed them meanwhile). Resolves with the final status; a no-op once it ended.
   */
  abort(reason?: string): Promise<RolloutStatus>
}

/** What a rollout needs of the mesh. */
export interface RolloutHost {
  /** Applies a split of the rollout's name (validated; rejects like `mesh.traffic.split`). */
  split(weights: TrafficWeights): Promise<unknown>
  /** The split's integer weights now, and the cluster whose subsets they name (undefined: the keys are clusters). */
  read(): { readonly cluster: string | undefined; readonly weights: Readonly<Record<string, number>> }
  /** The mesh's metrics now. */
  metrics(): MetricsSnapshot
  /** The rollout ended: the mesh forgets it. */
  ended(rollout: Rollout): void
}

const DEFAULT_STEPS = Object.freeze([10, 25, 50, 100])
const DEFAULT_INTERVAL_MS = 60_000
const DEFAULT_MAX_ERROR_RATE = 0.05
/** Weights are written out of this total, so a share keeps two decimals of a percent. */
const SCALE = 10_000

interface Checked {
  readonly steps: readonly number[]
  readonly intervalMs: number
  readonly maxErrorRate: number
  readonly maxMeanLatencyMs: number | undefined
  readonly minRequests: number
  readonly check: RolloutOptions['check']
}

function invalid(message: string): MeshError {
  return new MeshError('SIDECARLESS_ERR_INVALID_ARGUMENT', `rollout: ${message}`)
}

function checkOptions(options: RolloutOptions): Checked {
  if (options === null || typeof options !== 'object') throw invalid('options must be an object such as { to: "v2" }')
  if (typeof options.to !== 'string' || options.to === '') throw invalid('`to` must name the subset (or cluster) traffic moves to')
  const given: unknown = options.steps ?? DEFAULT_STEPS
  if (!Array.isArray(given) || given.length === 0) throw invalid('`steps` must be a non-empty list of percents such as [10, 50, 100]')
  const steps: number[] = []
  for (const [i, w] of (given as unknown[]).entries()) {
    if (typeof w !== 'number' || !Number.isInteger(w) || w < 1 || w > 100) throw invalid(`steps[${i}] must be an integer percent from 1 to 100, got ${String(w)}`)
    if (i > 0 && w <= (steps[i - 1] as number)) throw invalid(`steps[${i}] (${w}) must be above steps[${i - 1}] (${String(steps[i - 1])})`)
    steps.push(w)
  }
  const intervalMs = options.interval === undefined ? DEFAULT_INTERVAL_MS : parseDuration(options.interval)
  if (intervalMs === undefined || intervalMs <= 0) throw invalid(`\`interval\` must be a positive duration such as "30s", got ${JSON.stringify(options.interval)}`)
  const maxErrorRate = options.maxErrorRate ?? DEFAULT_MAX_ERROR_RATE
  if (typeof maxErrorRate !== 'number' || !(maxErrorRate >= 0 && maxErrorRate <= 1)) throw invalid(`\`maxErrorRate\` must be a share from 0 to 1, got ${String(maxErrorRate)}`)
  const maxMeanLatencyMs = options.maxMeanLatency === undefined ? undefined : parseDuration(options.maxMeanLatency)
  if (options.maxMeanLatency !== undefined && maxMeanLatencyMs === undefined) throw invalid(`\`maxMeanLatency\` must be a duration such as "250ms", got ${JSON.stringify(options.maxMeanLatency)}`)
  const minRequests = options.minRequests ?? 0
  if (typeof minRequests !== 'number' || !Number.isInteger(minRequests) || minRequests < 0) throw invalid(`\`minRequests\` must be a non-negative integer, got ${String(minRequests)}`)
  if (options.check !== undefined && typeof options.check !== 'function') throw invalid('`check` must be a function')
  return { steps: Object.freeze(steps), intervalMs, maxErrorRate, maxMeanLatencyMs, minRequests, check: options.check }
}

/**
 * The weights of a step: `to` gets `percent`, the others share the rest in the proportions
 * of `before` (largest remainders, so the total is exactly {@link SCALE}).
 */
export function stepWeights(before: TrafficWeights, to: string, percent: number): Record<string, number> {
  const others = Object.keys(before).filter((k) => k !== to && (before[k] as number) > 0)
  let total = 0
  for (const k of others) total += before[k] as number
  const rest = ((100 - percent) * SCALE) / 100
  const out: Record<string, number> = {}
  for (const k of Object.keys(before)) out[k] = 0
  out[to] = SCALE - rest
  if (rest === 0) return out
  const shares = others.map((k) => {
    const exact = (rest * (before[k] as number)) / total
    return { k, whole: Math.floor(exact), remainder: exact - Math.floor(exact) }
  })
  let left = rest
  for (const s of shares) left -= s.whole
  shares.sort((a, b) => b.remainder - a.remainder)
  for (const s of shares) out[s.k] = s.whole + (left-- > 0 ? 1 : 0)
  return out
}

function sameWeights(a: Readonly<Record<string, number>>, b: Readonly<Record<string, number>>): boolean {
  for (const k in a) if ((a[k] ?? 0) !== (b[k] ?? 0)) return false
  for (const k in b) if ((a[k] ?? 0) !== (b[k] ?? 0)) return false
  return true
}

/** `to`'s counters: its subset's, or its cluster's. */
function statsOf(snapshot: MetricsSnapshot, cluster: string | undefined, to: string): TrafficStats | undefined {
  const clusters = snapshot.outbound.clusters
  return cluster === undefined ? clusters[to] : clusters[cluster]?.subsets[to]
}

interface Counts {
  readonly ended: number
  readonly aborted: number
  readonly notFailed: number
  readonly latencyCount: number
  readonly latencySumMs: number
}

const NONE: Counts = Object.freeze({ ended: 0, aborted: 0, notFailed: 0, latencyCount: 0, latencySumMs: 0 })

function countsOf(s: TrafficStats | undefined): Counts {
  if (s === undefined) return NONE
  const r = s.responses
  return {
    ended: s.requests - s.inFlight,
    aborted: s.errors.aborted ?? 0,
    // Istio's success rate: any response but a 5xx (a 4xx is the caller's).
    notFailed: (r['1xx'] ?? 0) + (r['2xx'] ?? 0) + (r['3xx'] ?? 0) + (r['4xx'] ?? 0),
    latencyCount: s.latency.count,
    latencySumMs: s.latency.sumMs,
  }
}

/**
 * A rollout of `name`, checked but not started: `begin()` applies its first step (and
 * rejects, the rollout then ended, when the split refuses it).
 */
export function createRollout(name: string, options: RolloutOptions, host: RolloutHost): RunningRollout {
  const checked = checkOptions(options)
  const to = options.to
  const now = host.read()
  const before = Object.freeze({ ...now.weights, [to]: now.weights[to] ?? 0 })
  if (!Object.keys(before).some((k) => k !== to && (before[k] as number) > 0)) {
    throw invalid(`"${name}" sends no traffic anywhere but "${to}": there is nothing to move`)
  }
  return new RunningRollout(name, to, checked, before, host)
}

/** A {@link Rollout} as the mesh holds it: begun once, stopped when the mesh closes. */
export class RunningRollout extends EventEmitter<RolloutEvents> implements Rollout {
  readonly name: string
  readonly to: string
  readonly done: Promise<RolloutStatus>
  readonly #options: Checked
  readonly #before: TrafficWeights
  readonly #host: RolloutHost
  readonly #judged: RolloutStep[] = []
  #resolve!: (status: RolloutStatus) => void
  #state: RolloutState = 'running'
  /** `abort()` was called: no further step starts; the abort decides the end. */
  #aborting = false
  #reason: string | undefined
  #step = 0
  /** The weights this rollout applied last: anything else in force means someone else changed the split. */
  #applied: Readonly<Record<string, number>> = {}
  #stepStartedAt = 0
  #stepCounts: Counts = NONE
  #timer: NodeJS.Timeout | undefined
  /** The judgment under way (its check and the next step's split), which `abort()` lets finish first. */
  #judging: Promise<void> | undefined

  constructor(name: string, to: string, options: Checked, before: TrafficWeights, host: RolloutHost) {
    super()
    this.name = name
    this.to = to
    this.#options = options
    this.#before = before
    this.#host = host
    this.done = new Promise((resolve) => (this.#resolve = resolve))
  }

  status(): RolloutStatus {
    return Object.freeze({
      name: this.name,
      to: this.to,
      state: this.#state,
      steps: this.#options.steps,
      step: this.#step,
      before: this.#before,
      judged: Object.freeze([...this.#judged]),
      ...(this.#reason === undefined ? {} : { reason: this.#reason }),
    })
  }

  /** Applies the first step; a refusal (an unknown subset, say) rejects, and nothing is left running. */
  async begin(): Promise<void> {
    try {
      await this.#apply(0)
    } catch (err) {
      this.#host.ended(this)
      throw err
    }
    this.#arm()
  }

  async abort(reason = 'aborted'): Promise<RolloutStatus> {
    if (this.#state !== 'running') return this.done
    this.#stop()
    this.#aborting = true
    await this.#judging
    if (this.#state !== 'running') return this.done
    if (this.#superseded()) this.#end('superseded', `${reason}; the split had been changed by something else, and was left as it is`)
    else await this.#rollBack('aborted', reason)
    return this.done
  }

  /** The mesh closed: stops without touching the config. */
  closed(): void {
    if (this.#state !== 'running') return
    this.#stop()
    this.#end('aborted', 'the mesh closed')
  }

  async #apply(index: number): Promise<void> {
    const weights = stepWeights(this.#before, this.to, this.#options.steps[index] as number)
    await this.#host.split(weights)
    this.#step = index
    // What was asked for, not read back: a split writes these integers as given.
    this.#applied = weights
    this.#stepStartedAt = Date.now()
    this.#stepCounts = this.#counts()
  }

  #counts(): Counts {
    return countsOf(statsOf(this.#host.metrics(), this.#host.read().cluster, this.to))
  }

  #arm(): void {
    if (this.#aborting) return
    this.#timer = setTimeout(() => {
      this.#judging = this.#judge().finally(() => (this.#judging = undefined))
    }, this.#options.intervalMs)
  }

  #stop(): void {
    clearTimeout(this.#timer)
    this.#timer = undefined
  }

  #superseded(): boolean {
    try {
      return !sameWeights(this.#host.read().weights, this.#applied)
    } catch {
      // The split is gone altogether (its route or virtual host was removed).
      return true
    }
  }

  async #judge(): Promise<void> {
    this.#timer = undefined
    if (this.#state !== 'running') return
    if (this.#superseded()) {
      this.#end('superseded', `the split of "${this.name}" was changed by something else at step ${this.#step}; the rollout stopped and left it`)
      return
    }
    const step = await this.#verdict()
    if (this.#state !== 'running') return
    this.#judged.push(step)
    this.#emit('step', step)
    if (this.#aborting) return
    if (step.verdict === 'held') {
      this.#arm()
      return
    }
    if (step.verdict === 'failed') {
      await this.#rollBack('rolledBack', `step ${step.index} (${step.weight}% to "${this.to}") failed: ${step.reason ?? 'failed'}`)
      return
    }
    const next = this.#step + 1
    if (next === this.#options.steps.length) {
      this.#end('completed', undefined)
      return
    }
    try {
      await this.#apply(next)
    } catch (err) {
      if (this.#state !== 'running') return
      await this.#rollBack('rolledBack', `step ${next} (${String(this.#options.steps[next])}% to "${this.to}") could not be applied: ${(err as Error).message}`)
      return
    }
    if (this.#state === 'running') this.#arm()
  }

  async #verdict(): Promise<RolloutStep> {
    const a = this.#stepCounts
    const b = this.#counts()
    const requests = Math.max(0, (b.ended - a.ended) - (b.aborted - a.aborted))
    const failures = Math.min(requests, Math.max(0, requests - (b.notFailed - a.notFailed)))
    const latencyCount = b.latencyCount - a.latencyCount
    const base = {
      index: this.#step,
      weight: this.#options.steps[this.#step] as number,
      requests,
      failures,
      errorRate: requests === 0 ? 0 : failures / requests,
      meanLatencyMs: latencyCount > 0 ? (b.latencySumMs - a.latencySumMs) / latencyCount : undefined,
      startedAt: this.#stepStartedAt,
    }
    const o = this.#options
    const judged = (verdict: RolloutStep['verdict'], reason?: string): RolloutStep =>
      Object.freeze({ ...base, judgedAt: Date.now(), verdict, ...(reason === undefined ? {} : { reason }) })
    if (requests < o.minRequests) return judged('held', `${requests} of the ${o.minRequests} requests needed (minRequests) so far`)
    if (base.errorRate > o.maxErrorRate) return judged('failed', `error rate ${round(base.errorRate)} (${failures} of ${requests}) is above ${o.maxErrorRate}`)
    if (o.maxMeanLatencyMs !== undefined && base.meanLatencyMs !== undefined && base.meanLatencyMs > o.maxMeanLatencyMs) {
      return judged('failed', `mean latency ${round(base.meanLatencyMs)}ms is above ${o.maxMeanLatencyMs}ms`)
    }
    if (o.check === undefined) return judged('passed')
    let answer: boolean | string
    try {
      answer = await o.check(judged('passed'))
    } catch (err) {
      return judged('failed', `check threw: ${(err as Error)?.message ?? String(err)}`)
    }
    if (answer === true) return judged('passed')
    return judged('failed', typeof answer === 'string' && answer !== '' ? answer : 'check returned false')
  }

  async #rollBack(state: 'rolledBack' | 'aborted', reason: string): Promise<void> {
    this.#state = state
    try {
      await this.#host.split(this.#before)
    } catch (err) {
      this.#end('failed', `${reason}; putting the weights back failed too: ${(err as Error).message}`)
      return
    }
    this.#end(state, reason)
  }

  #end(state: RolloutState, reason: string | undefined): void {
    this.#stop()
    this.#state = state
    this.#reason = reason
    this.#host.ended(this)
    const status = this.status()
    this.#resolve(status)
    this.#emit('end', status)
  }

  /** Emits to the rollout's listeners; one that throws is reported as a warning, and the rollout goes on. */
  #emit<K extends keyof RolloutEvents>(name: K, event: RolloutEvents[K][0]): void {
    try {
      ;(this.emit as (n: K, e: RolloutEvents[K][0]) => boolean)(name, event)
    } catch (err) {
      process.emitWarning(`a rollout "${name}" listener threw: ${err instanceof Error ? err.message : String(err)}`, { code: 'SIDECARLESS_LISTENER_ERROR' })
    }
  }
}

function round(x: number): number {
  return Math.round(x * 1000) / 1000
}
