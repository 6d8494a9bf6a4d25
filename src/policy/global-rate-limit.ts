/**
 * A quota shared by every instance through Redis: Envoy's global rate limit (the `ratelimit`
 * service with its Redis backend), in-process.
 *
 * Semantics, as in Envoy's ratelimit service: **fixed windows aligned to the unit**. The
 * window of a request is `[floor(now / unit) * unit, +unit)` by the local clock; its counter
 * is the Redis key `${prefix}${unit}:${windowStart}:${key}`. Each check increments the counter
 * with one atomic Lua script (`INCR`, plus `PEXPIRE` on the first hit) in one round trip and is
 * allowed while the count is at most `requestsPerUnit`. So at most `requestsPerUnit` requests
 * per window pass across all instances, and — as with any fixed window — up to twice that
 * within one unit straddling a boundary. Instances whose clocks disagree count in different
 * windows for the length of the skew.
 *
 * Redis is never allowed to hold a request: a check answers within `timeout` (default 50ms).
 * When Redis is down, slow or erroring, the limiter is in the `fallback` state and the caller's
 * fallback (its local bucket) decides — or, with none, `failureMode`. While in `fallback`,
 * checks decide at once; one check at a time still asks Redis, and the first that gets an answer
 * within the timeout returns the limiter to `ok`. Each move into `fallback` emits one process
 * warning (`SIDECARLESS_RATE_LIMIT_FALLBACK`), never one per request.
 *
 * `ioredis` is imported on first construction, so apps that configure no global limit never
 * load it.
 *
 * @module
 */
import { createHash } from 'node:crypto'
import { once } from 'node:events'
import { setTimeout as delay } from 'node:timers/promises'
import type * as IORedis from 'ioredis'
import { defaults } from '../config/defaults.js'
import { parseDuration } from '../config/duration.js'
import type { GlobalRateLimitConfig } from '../config/types.js'
import { MeshError } from '../errors.js'

/** The local decision used when Redis cannot answer: the local bucket's verdict. */
export interface GlobalDecisionFallback {
  (): boolean
}

/** `ok`: Redis answers. `fallback`: it did not, lately; the local decision applies. */
export type GlobalRateLimitState = 'ok' | 'fallback'

/** Counters of one limiter, since it was created. */
export interface GlobalRateLimitStats {
  /** Checks that resolved `true` (by Redis or by the fallback). */
  allowed: number
  /** Checks that resolved `false`. */
  limited: number
  /** Checks decided without Redis: by the fallback function, or by `failureMode`. */
  fallbackDecisions: number
  /** Failed Redis interactions: commands that errored or timed out, connection errors. */
  redisErrors: number
  state: GlobalRateLimitState
}

/** Options of a {@link GlobalRateLimiter}. */
export interface GlobalRateLimiterOptions {
  /** Called on every change of state (into `fallback`, back to `ok`). */
  onStateChange?: (state: GlobalRateLimitState) => void
}

const UNIT_MS = { second: 1_000, minute: 60_000, hour: 3_600_000, day: 86_400_000 } as const

/** Descriptor values longer than this are hashed, so a client cannot make keys of any size. */
const MAX_KEY_CHARS = 128
/** A counter outlives its window by this much, for instances whose clocks run behind. */
const EXPIRY_GRACE_MS = 1_000
/** TCP connect bound; the timeout of a check is separate and much shorter. */
const CONNECT_TIMEOUT_MS = 1_000
/** Reconnect backoff: 50ms doubling, capped, with jitter so instances do not reconnect in step. */
const RECONNECT_BASE_MS = 50
const RECONNECT_MAX_MS = 1_000
/**
 * Commands outstanding this long with no answer mean a dead connection (a Redis that vanished
 * without a reset, or hangs): the connection is dropped and reopened.
 */
const STUCK_MIN_MS = 1_000
/** close(): how long QUIT, then the socket's close, may take before it is destroyed. */
const CLOSE_STEP_MS = 1_000
/**
 * ioredis destroys a socket this long after ending it (its `disconnectTimeout`). It arms that
 * timer even for a socket already closed (Redis down), so close() waits it out: kept tiny.
 */
const DISCONNECT_TIMEOUT_MS = 1
/** Keys known to be over quota in the current window, remembered to spare Redis the round trip. */
const MAX_OVER_LIMIT_KEYS = 10_000

/** `n = INCR key; if n == 1 then PEXPIRE key ttl end; return n`: one round trip, atomic. */
const QUOTA_LUA = `local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return n`

type IORedisModule = typeof IORedis
type QuotaClient = IORedis.Redis & {
  sidecarlessQuota(key: string, ttlMs: number): Promise<number>
}

let ioredisModule: Promise<IORedisModule> | undefined
function loadIORedis(): Promise<IORedisModule> {
  return (ioredisModule ??= import('ioredis'))
}

/** One check waiting for Redis. `done` once it resolved, whoever answered first. */
interface Pending {
  readonly key: string
  readonly deadline: number
  readonly fallback: GlobalDecisionFallback | undefined
  readonly resolve: (allowed: boolean) => void
  done: boolean
}

/**
 * A shared quota in Redis: `requestsPerUnit` per `unit` window per key.
 *
 * ```ts
 * const limiter = new GlobalRateLimiter({ redis: 'redis://127.0.0.1:6379', requestsPerUnit: 100, unit: 'second' })
 * if (!(await limiter.check(clientId, () => localBucket.take()))) respond429()
 * ```
 */
export class GlobalRateLimiter {
  readonly #limit: number
  readonly #unit: GlobalRateLimitConfig['unit']
  readonly #unitMs: number
  readonly #prefix: string
  readonly #timeoutMs: number
  readonly #failOpen: boolean
  readonly #url: string
  readonly #shownUrl: string
  readonly #secrets: readonly string[]
  readonly #onStateChange: ((state: GlobalRateLimitState) => void) | undefined

  #state: GlobalRateLimitState = 'ok'
  #client: QuotaClient | undefined
  #starting: Promise<void>
  /** Until the first connection is ready or has failed, checks wait for it (within their timeout). */
  #startup = true
  #startupWaiters: Pending[] = []
  #closed = false
  #closing: Promise<void> | undefined
  readonly #firstConnection: Promise<boolean>
  #firstConnectionSettled: (connected: boolean) => void = () => undefined

  // Checks waiting for Redis, in deadline order (the timeout is the same for all), and the one
  // timer that resolves those Redis did not answer in time.
  #queue: Pending[] = []
  #head = 0
  #timer: NodeJS.Timeout | undefined

  // Commands sent and not yet answered (they may outlive their checks), and when Redis last
  // showed signs of life; together they tell a stuck connection.
  #inFlight = 0
  #lastProgress = 0

  #windowEnd = 0
  #keyHead = ''
  #overLimit = new Set<string>()

  #allowed = 0
  #limited = 0
  #fallbackDecisions = 0
  #redisErrors = 0

  constructor(config: GlobalRateLimitConfig, options: GlobalRateLimiterOptions = {}) {
    const unitMs = UNIT_MS[config.unit]
    if (unitMs === undefined) {
      throw new MeshError('SIDECARLESS_ERR_INVALID_ARGUMENT', `global rate limit: unit must be second, minute, hour or day`)
    }
    if (!Number.isInteger(config.requestsPerUnit) || config.requestsPerUnit < 1) {
      throw new MeshError('SIDECARLESS_ERR_INVALID_ARGUMENT', 'global rate limit: requestsPerUnit must be a positive integer')
    }
    const timeoutMs = config.timeout === undefined ? defaults.globalRateLimitTimeoutMs : parseDuration(config.timeout)
    if (timeoutMs === undefined || timeoutMs < 1) {
      throw new MeshError('SIDECARLESS_ERR_INVALID_ARGUMENT', 'global rate limit: timeout must be a duration of at least 1ms')
    }
    const redis = redisTarget(config.redis)
    this.#limit = config.requestsPerUnit
    this.#unit = config.unit
    this.#unitMs = unitMs
    this.#prefix = config.prefix ?? defaults.globalRateLimitPrefix
    this.#timeoutMs = timeoutMs
    this.#failOpen = config.failureMode !== 'closed'
    this.#url = config.redis
    this.#shownUrl = redis.shown
    this.#secrets = redis.secrets
    this.#onStateChange = options.onStateChange
    this.#firstConnection = new Promise<boolean>((resolve) => (this.#firstConnectionSettled = resolve))
    this.#starting = this.#start()
  }

  /** `ok` while Redis answers; `fallback` since it last failed to. */
  get state(): GlobalRateLimitState {
    return this.#state
  }

  /**
   * Takes one unit of quota for `key` (the descriptor value, `''` for none). Resolves `true`
   * when the request is allowed. Never rejects, and resolves within the timeout: when Redis
   * is slow, down or erroring, with `fallback()` if given, else `failureMode === 'open'`.
   */
  check(key: string, fallback?: GlobalDecisionFallback): Promise<boolean> {
    const now = Date.now()
    if (now >= this.#windowEnd) this.#newWindow(now)
    const redisKey = this.#keyHead + (key.length > MAX_KEY_CHARS || key.startsWith('#') ? hashKey(key) : key)
    // Counters only grow within a window: once over, a key stays over until the window ends.
    if (this.#overLimit.has(redisKey)) return Promise.resolve(this.#count(false))
    if (this.#closed) return Promise.resolve(this.#local(fallback))

    const client = this.#client
    const ready = client !== undefined && client.status === 'ready'
    if (this.#state === 'fallback') {
      // One check at a time asks Redis (a probe); the rest decide at once.
      if (!ready || this.#inFlight > 0) {
        if (this.#inFlight > 0) this.#dropIfStuck()
        return Promise.resolve(this.#local(fallback))
      }
    } else if (!ready && !this.#startup) {
      this.#enterFallback('the connection is not ready')
      return Promise.resolve(this.#local(fallback))
    }

    return new Promise<boolean>((resolve) => {
      const p: Pending = { key: redisKey, deadline: performance.now() + this.#timeoutMs, fallback, resolve, done: false }
      this.#track(p)
      if (ready) this.#send(client, p)
      else this.#startupWaiters.push(p)
    })
  }

  /**
   * Resolves `true` once the first connection to Redis is ready, `false` if it failed (the
   * limiter then keeps reconnecting, in `fallback`) or the limiter was closed first. Never
   * rejects. Checks made before it resolves wait for the connection, but only within their
   * timeout; await this at startup to have the first requests counted in Redis.
   */
  ready(): Promise<boolean> {
    return this.#firstConnection
  }

  /** Counters since creation, and the state. Holds nothing secret. */
  stats(): GlobalRateLimitStats {
    return {
      allowed: this.#allowed,
      limited: this.#limited,
      fallbackDecisions: this.#fallbackDecisions,
      redisErrors: this.#redisErrors,
      state: this.#state,
    }
  }

  /**
   * Closes the Redis connection (QUIT, then the socket is closed, bounded in time). Checks still
   * waiting resolve at once with the local decision; later checks too. Idempotent.
   */
  close(): Promise<void> {
    return (this.#closing ??= this.#close())
  }

  async #close(): Promise<void> {
    this.#closed = true
    this.#firstConnectionSettled(false)
    if (this.#timer !== undefined) clearTimeout(this.#timer)
    this.#timer = undefined
    for (let i = this.#head; i < this.#queue.length; i++) {
      const p = this.#queue[i] as Pending
      if (!p.done) this.#settleLocally(p)
    }
    this.#queue = []
    this.#head = 0
    this.#startupWaiters = []
    await this.#starting
    const client = this.#client
    if (client === undefined) return
    if (client.status === 'ready') {
      await settleWithin(client.quit(), CLOSE_STEP_MS)
    }
    const stream = client.stream as IORedis.Redis['stream'] | undefined
    // Stops reconnecting too. Not when already ended: it would arm a timer for nothing.
    if (client.status !== 'end') client.disconnect()
    if (stream !== undefined && !stream.destroyed) {
      await settleWithin(once(stream, 'close'), CLOSE_STEP_MS)
      stream.destroy()
    }
    await delay(DISCONNECT_TIMEOUT_MS + 1)
  }

  async #start(): Promise<void> {
    let mod: IORedisModule
    try {
      mod = await loadIORedis()
    } catch (err) {
      this.#startupFailed(`ioredis could not be loaded (${this.#scrub(err)})`)
      return
    }
    if (this.#closed) return
    const client = new mod.Redis(this.#url, {
      lazyConnect: true,
      connectTimeout: Math.max(CONNECT_TIMEOUT_MS, this.#timeoutMs),
      disconnectTimeout: DISCONNECT_TIMEOUT_MS,
      // Fail fast while disconnected instead of queueing: a check must not wait for a reconnect.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      // A command cut off by a disconnect may have counted already; never send it twice.
      autoResendUnfulfilledCommands: false,
      retryStrategy: (attempt: number) =>
        Math.round(Math.min(RECONNECT_MAX_MS, RECONNECT_BASE_MS * 2 ** Math.min(attempt - 1, 10)) * (0.8 + Math.random() * 0.4)),
      connectionName: 'sidecarless-rate-limit',
    }) as QuotaClient
    client.defineCommand('sidecarlessQuota', { numberOfKeys: 1, lua: QUOTA_LUA })
    // Without a listener, ioredis prints every connection error to the console.
    client.on('error', (err: unknown) => {
      this.#redisErrors++
      if (this.#startup) this.#startupFailed(this.#scrub(err))
      else this.#enterFallback(this.#scrub(err))
    })
    client.on('close', () => {
      if (!this.#startup) this.#enterFallback('the connection closed')
    })
    client.on('ready', () => this.#ready(client))
    this.#client = client
    client.connect().catch(() => {
      // Reported through the 'error' event; ioredis keeps reconnecting.
    })
  }

  #ready(client: QuotaClient): void {
    if (this.#closed) return
    this.#firstConnectionSettled(true)
    this.#startup = false
    const waiters = this.#startupWaiters
    this.#startupWaiters = []
    for (const p of waiters) if (!p.done) this.#send(client, p)
  }

  #startupFailed(reason: string): void {
    if (!this.#startup) return
    this.#firstConnectionSettled(false)
    this.#startup = false
    const waiters = this.#startupWaiters
    this.#startupWaiters = []
    this.#enterFallback(reason)
    for (const p of waiters) if (!p.done) this.#settleLocally(p)
  }

  #send(client: QuotaClient, p: Pending): void {
    if (this.#inFlight++ === 0) this.#lastProgress = performance.now()
    client.sidecarlessQuota(p.key, this.#unitMs + EXPIRY_GRACE_MS).then(
      (count) => this.#answered(p, count),
      (err: unknown) => this.#failed(p, err),
    )
  }

  #answered(p: Pending, count: number): void {
    this.#inFlight--
    this.#lastProgress = performance.now()
    if (count > this.#limit && this.#overLimit.size < MAX_OVER_LIMIT_KEYS && p.key.startsWith(this.#keyHead)) {
      this.#overLimit.add(p.key)
    }
    if (p.done) return // too late: the check was already decided locally
    p.done = true
    if (this.#state === 'fallback') this.#enterOk()
    p.resolve(this.#count(count <= this.#limit))
  }

  #failed(p: Pending, err: unknown): void {
    this.#inFlight--
    this.#lastProgress = performance.now()
    if (p.done) return
    this.#redisErrors++
    this.#enterFallback(this.#scrub(err))
    this.#settleLocally(p)
  }

  /** A dead connection keeps commands outstanding forever; reopen it so a probe can get through. */
  #dropIfStuck(): void {
    if (performance.now() - this.#lastProgress < Math.max(STUCK_MIN_MS, 10 * this.#timeoutMs)) return
    this.#lastProgress = performance.now()
    // disconnect(true) reconnects; the outstanding commands are rejected, settling #inFlight.
    this.#client?.disconnect(true)
  }

  #track(p: Pending): void {
    this.#queue.push(p)
    if (this.#timer === undefined) this.#arm(p.deadline)
  }

  #arm(deadline: number): void {
    this.#timer = setTimeout(this.#sweep, Math.max(1, Math.ceil(deadline - performance.now())))
  }

  /** Resolves, with the local decision, every check whose deadline passed without an answer. */
  readonly #sweep = (): void => {
    this.#timer = undefined
    const now = performance.now()
    const queue = this.#queue
    let i = this.#head
    let timedOut = false
    for (; i < queue.length; i++) {
      const p = queue[i] as Pending
      if (p.done) continue
      if (p.deadline > now) break
      timedOut = true
      this.#settleLocally(p)
    }
    if (i >= queue.length) {
      queue.length = 0
      this.#head = 0
    } else {
      this.#head = i
      if (i > 1024 && i * 2 > queue.length) {
        queue.splice(0, i)
        this.#head = 0
      }
      this.#arm((queue[this.#head] as Pending).deadline)
    }
    // While the first connection is still being made (bounded by the connect timeout), a check
    // that waited too long is decided locally but is not yet a failure of Redis.
    if (timedOut && !this.#startup) {
      this.#redisErrors++
      this.#enterFallback(`no answer within ${this.#timeoutMs}ms`)
    }
  }

  #settleLocally(p: Pending): void {
    p.done = true
    p.resolve(this.#local(p.fallback))
  }

  #local(fallback: GlobalDecisionFallback | undefined): boolean {
    this.#fallbackDecisions++
    let allowed = this.#failOpen
    if (fallback !== undefined) {
      try {
        allowed = fallback() === true
      } catch {
        // A throwing fallback is the caller's bug; the failure mode still decides.
      }
    }
    return this.#count(allowed)
  }

  #count(allowed: boolean): boolean {
    if (allowed) this.#allowed++
    else this.#limited++
    return allowed
  }

  #newWindow(now: number): void {
    const start = now - (now % this.#unitMs)
    this.#windowEnd = start + this.#unitMs
    this.#keyHead = `${this.#prefix}${this.#unit}:${start}:`
    this.#overLimit.clear()
  }

  #enterFallback(reason: string): void {
    if (this.#state === 'fallback' || this.#closed) return
    this.#state = 'fallback'
    process.emitWarning(
      `global rate limit (${this.#limit}/${this.#unit}, prefix ${this.#prefix}): Redis ${this.#shownUrl} cannot answer (${reason}); ` +
        'requests are decided by the local rate limit ' +
        `(failureMode ${this.#failOpen ? 'open' : 'closed'} where there is none) until it answers again.`,
      { code: 'SIDECARLESS_RATE_LIMIT_FALLBACK' },
    )
    this.#notify('fallback')
  }

  #enterOk(): void {
    if (this.#state === 'ok' || this.#closed) return
    this.#state = 'ok'
    this.#notify('ok')
  }

  #notify(state: GlobalRateLimitState): void {
    const listener = this.#onStateChange
    if (listener === undefined) return
    try {
      listener(state)
    } catch (err) {
      // Like an event listener that throws: the app's bug surfaces, the limiter is not affected.
      queueMicrotask(() => {
        throw err
      })
    }
  }

  /** An error's message, with any credential of the Redis URL removed. */
  #scrub(err: unknown): string {
    let text = err instanceof Error ? err.message : String(err)
    for (const secret of this.#secrets) text = text.split(secret).join('***')
    return text.length > 200 ? `${text.slice(0, 200)}…` : text
  }
}

/** The Redis URL as it may be shown (no user, no password), and the secrets to scrub from messages. */
function redisTarget(value: string): { shown: string; secrets: string[] } {
  let url: URL
  try {
    url = new URL(value)
  } catch {
    throw new MeshError('SIDECARLESS_ERR_INVALID_ARGUMENT', 'global rate limit: redis must be a redis:// or rediss:// URL')
  }
  if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') {
    throw new MeshError('SIDECARLESS_ERR_INVALID_ARGUMENT', `global rate limit: redis must be a redis:// or rediss:// URL, not ${url.protocol}`)
  }
  const secrets: string[] = []
  // ioredis also reads `?password=` from the query string.
  for (const raw of [url.password, url.searchParams.get('password') ?? '']) {
    if (raw === '') continue
    secrets.push(raw)
    const decoded = safeDecode(raw)
    if (decoded !== raw) secrets.push(decoded)
  }
  return { shown: `${url.protocol}//${url.host}${url.pathname === '/' ? '' : url.pathname}`, secrets }
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s)
  } catch {
    return s
  }
}

/** A long (or `#`-led) descriptor value as `#` + its SHA-256: literal keys never start with `#`. */
function hashKey(key: string): string {
  return `#${createHash('sha256').update(key).digest('base64url')}`
}

/** Waits for `promise` to settle, at most `ms`; never rejects. */
async function settleWithin(promise: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined
  try {
    await Promise.race([promise.catch(() => undefined), new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)))])
  } finally {
    clearTimeout(timer)
  }
}
