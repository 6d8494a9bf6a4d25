/**
 * A bulkhead: at most `maxConcurrent` operations at once, up to `maxQueue` more waiting in
 * FIFO order for at most `queueTimeout` each, the rest refused at once.
 *
 * - `tryAcquire()` is the synchronous fast path: a slot is taken when one is free and nobody
 *   is queued (a newcomer never overtakes a waiter).
 * - `enqueue(granted, rejected)` waits for a slot. It returns a {@link Ticket} while the
 *   waiter is queued. It returns `undefined` when it settled before returning: `granted()`
 *   already ran (a slot was free and nobody queued), or `rejected('full')` /
 *   `rejected('closed')` already ran.
 * - `release()` frees a slot and hands it **synchronously** to the head of the queue: the slot
 *   moves from the releaser to the waiter without ever being free, so `tryAcquire` cannot
 *   steal it (no starvation), and the waiter's `granted()` runs before `release()` returns. A
 *   waiter is granted at most once: it leaves the queue before its callback runs, and
 *   `cancel()`, a timeout or `close()` only act on waiters still queued. A `release()` called
 *   from inside a `granted()` callback does not recurse: the outer hand-off loop serves the
 *   next waiter, so the stack stays flat however long the queue.
 * - Callbacks run in the caller's stack of `release()` (or of the queue timer); wrap the
 *   pair in a Promise (`new Promise((ok, no) => limiter.enqueue(ok, no))`) and `await` it to
 *   resume in the waiter's own async context. A callback run by `release()`, the timer or
 *   `close()` that throws does not disturb the limiter or the other waiters: the error is
 *   rethrown on a microtask, as an uncaught error. Callbacks run by `enqueue` itself (granted
 *   or refused at once) run on the caller's stack, and their errors reach the caller.
 * - Every waiter waits the same `queueTimeout`, so deadlines come in queue order: ONE timer,
 *   armed for the head's deadline, serves the whole queue. It is unref'd (it never keeps the
 *   process alive by itself) and cleared as soon as the queue empties, so an idle limiter
 *   holds no timer. When the head leaves early the timer is left to fire and re-arm for the
 *   new head, rather than being re-created on every hand-off.
 * - `close()` rejects every waiter with `'closed'`; afterwards `tryAcquire` refuses and
 *   `enqueue` rejects with `'closed'`. Operations holding a slot finish and `release()` as
 *   usual.
 *
 * Time is `performance.now()`: monotonic, so a wall-clock jump never expires a queue early.
 *
 * @module
 */
import type { ConcurrencyLimitConfig } from '../config/types.js'
import { defaults } from '../config/defaults.js'
import { parseDuration } from '../config/duration.js'

/** The longest delay setTimeout takes as asked. */
const MAX_TIMER_MS = 2 ** 31 - 1

/** Why a waiter was not granted a slot. */
export type ConcurrencyRejection = 'full' | 'timeout' | 'closed'

/** A queued waiter, held by its caller. */
export interface Ticket {
  /**
   * Leaves the queue (the caller gave up, e.g. its request was aborted). Neither callback runs
   * afterwards. Returns `true` if the waiter was still queued, `false` if it was already
   * granted (then it holds a slot and must `release()` it), rejected or cancelled.
   */
  cancel(): boolean
}

/** Counters and gauges of a limiter. */
export interface ConcurrencyStats {
  readonly active: number
  readonly queued: number
  readonly rejectedFull: number
  readonly rejectedTimeout: number
}

/** A queued waiter: a node of the FIFO's doubly linked list, so `cancel` is O(1). */
class Waiter implements Ticket {
  readonly deadline: number
  granted: (() => void) | null
  rejected: ((reason: ConcurrencyRejection) => void) | null
  prev: Waiter | null = null
  next: Waiter | null = null
  /** The limiter's one remover (shared by all its waiters, so a waiter costs no closure). */
  readonly #remove: (waiter: Waiter) => boolean

  constructor(remove: (waiter: Waiter) => boolean, deadline: number, granted: () => void, rejected: (reason: ConcurrencyRejection) => void) {
    this.#remove = remove
    this.deadline = deadline
    this.granted = granted
    this.rejected = rejected
  }

  cancel(): boolean {
    return this.granted !== null && this.#remove(this)
  }
}

/** A bulkhead. See the module documentation for the exact semantics. */
export class ConcurrencyLimiter {
  readonly maxConcurrent: number
  readonly maxQueue: number
  readonly queueTimeoutMs: number
  #active = 0
  #queued = 0
  #rejectedFull = 0
  #rejectedTimeout = 0
  #closed = false
  /** Oldest waiter (next granted, first to time out). */
  #head: Waiter | null = null
  #tail: Waiter | null = null
  #timer: NodeJS.Timeout | undefined
  /** The deadline the timer was armed for. */
  #timerDeadline = 0
  /** True while `#handOff` runs, so a `release()` from a callback does not recurse. */
  #handingOff = false

  /** @param config a validated concurrency limit (durations may be strings) */
  constructor(config: ConcurrencyLimitConfig) {
    const maxQueue = config.maxQueue ?? 0
    const queueTimeoutMs = config.queueTimeout === undefined ? defaults.concurrencyQueueTimeoutMs : parseDuration(config.queueTimeout)
    if (!Number.isSafeInteger(config.maxConcurrent) || config.maxConcurrent < 1) throw new RangeError(`maxConcurrent must be a positive integer, got ${config.maxConcurrent}`)
    if (!Number.isSafeInteger(maxQueue) || maxQueue < 0) throw new RangeError(`maxQueue must be a non-negative integer, got ${maxQueue}`)
    if (queueTimeoutMs === undefined) throw new TypeError(`invalid queueTimeout ${String(config.queueTimeout)}`)
    this.maxConcurrent = config.maxConcurrent
    this.maxQueue = maxQueue
    this.queueTimeoutMs = queueTimeoutMs
  }

  /** Operations holding a slot. */
  get active(): number {
    return this.#active
  }

  /** Waiters in the queue. */
  get queued(): number {
    return this.#queued
  }

  /** Waiters refused because the queue was full (or `maxQueue` is 0). */
  get rejectedFull(): number {
    return this.#rejectedFull
  }

  /** Waiters that waited `queueTimeout` without a slot. */
  get rejectedTimeout(): number {
    return this.#rejectedTimeout
  }

  get closed(): boolean {
    return this.#closed
  }

  stats(): ConcurrencyStats {
    return { active: this.#active, queued: this.#queued, rejectedFull: this.#rejectedFull, rejectedTimeout: this.#rejectedTimeout }
  }

  /** Takes a slot if one is free and nobody is waiting. Never queues, never counts a rejection. */
  tryAcquire(): boolean {
    if (this.#active >= this.maxConcurrent || this.#head !== null || this.#closed) return false
    this.#active++
    return true
  }

  /**
   * Waits for a slot. Returns a ticket while queued; `undefined` when already settled:
   * granted at once (a slot was free and nobody queued), or rejected at once with `'full'`
   * (queue full) or `'closed'`. Exactly one of the callbacks runs, once, unless the ticket is
   * cancelled first.
   */
  enqueue(granted: () => void, rejected: (reason: ConcurrencyRejection) => void): Ticket | undefined {
    if (this.#closed) {
      rejected('closed')
      return undefined
    }
    if (this.#active < this.maxConcurrent && this.#head === null) {
      this.#active++
      granted()
      return undefined
    }
    if (this.#queued >= this.maxQueue) {
      this.#rejectedFull++
      rejected('full')
      return undefined
    }
    const waiter = new Waiter(this.#cancel, performance.now() + this.queueTimeoutMs, granted, rejected)
    if (this.#tail === null) this.#head = waiter
    else {
      this.#tail.next = waiter
      waiter.prev = this.#tail
    }
    this.#tail = waiter
    this.#queued++
    this.#ensureTimer()
    return waiter
  }

  /** Frees a slot; the oldest waiter, if any, gets it before this returns. An extra release (none active) is ignored. */
  release(): void {
    if (this.#active === 0) return
    this.#active--
    this.#handOff()
  }

  /** Rejects every waiter with `'closed'` and refuses new ones. Idempotent. */
  close(): void {
    this.#closed = true
    while (this.#head !== null) {
      const waiter = this.#head
      this.#unlink(waiter)
      settle(waiter, 'closed')
    }
    this.#disarmIfIdle()
  }

  /** Grants free slots to waiters in FIFO order; flat however callbacks re-enter. */
  #handOff(): void {
    if (this.#handingOff) return
    this.#handingOff = true
    try {
      while (this.#head !== null && this.#active < this.maxConcurrent) {
        const waiter = this.#head
        this.#unlink(waiter)
        this.#active++
        settle(waiter, undefined)
      }
    } finally {
      this.#handingOff = false
    }
    this.#disarmIfIdle()
  }

  /** `Ticket.cancel`: removes a still-queued waiter. */
  readonly #cancel = (waiter: Waiter): boolean => {
    if (waiter.granted === null) return false
    this.#unlink(waiter)
    waiter.granted = null
    waiter.rejected = null
    this.#disarmIfIdle()
    return true
  }

  /** The queue timer: rejects every waiter past its deadline, then re-arms for the new head. */
  readonly #onTimer = (): void => {
    this.#timer = undefined
    const now = performance.now()
    while (this.#head !== null && this.#head.deadline <= now) {
      const waiter = this.#head
      this.#unlink(waiter)
      this.#rejectedTimeout++
      settle(waiter, 'timeout')
    }
    this.#ensureTimer()
  }

  /**
   * Arms the timer for the head's deadline unless one is armed for that or earlier. Deadlines
   * only grow along the queue, so a timer armed for an earlier head never fires late; it fires
   * early at worst, finds nothing due, and re-arms.
   */
  #ensureTimer(): void {
    const head = this.#head
    if (head === null || (this.#timer !== undefined && this.#timerDeadline <= head.deadline)) return
    if (this.#timer !== undefined) clearTimeout(this.#timer)
    // Node's timer clock can run a little behind performance.now(), so the timer may fire a
    // fraction of a millisecond early; #onTimer then finds nothing due and re-arms.
    // Beyond 2^31 - 1 ms Node would fire after 1 ms instead; a capped timer fires early and re-arms.
    const delay = Math.min(MAX_TIMER_MS, Math.max(1, Math.ceil(head.deadline - performance.now())))
    const timer = setTimeout(this.#onTimer, delay)
    timer.unref()
    this.#timer = timer
    this.#timerDeadline = head.deadline
  }

  #disarmIfIdle(): void {
    if (this.#head === null && this.#timer !== undefined) {
      clearTimeout(this.#timer)
      this.#timer = undefined
    }
  }

  #unlink(waiter: Waiter): void {
    if (waiter.prev === null) this.#head = waiter.next
    else waiter.prev.next = waiter.next
    if (waiter.next === null) this.#tail = waiter.prev
    else waiter.next.prev = waiter.prev
    waiter.prev = null
    waiter.next = null
    this.#queued--
  }
}

/** Runs a waiter's callback once (`undefined`: granted), isolating the limiter from its errors. */
function settle(waiter: Waiter, reason: ConcurrencyRejection | undefined): void {
  const granted = waiter.granted
  const rejected = waiter.rejected
  waiter.granted = null
  waiter.rejected = null
  try {
    if (reason === undefined) granted?.()
    else rejected?.(reason)
  } catch (err) {
    queueMicrotask(() => {
      throw err
    })
  }
}
