/**
 * Route timeouts without a Node timer per request. Requests with the same timeout expire in
 * the order they started, so each distinct timeout keeps one FIFO of deadlines and one timer
 * armed for the oldest live entry. Adding is two stores into a ring; cancelling clears a slot.
 * Node groups its own timers the same way, but a `setTimeout`/`clearTimeout` pair per
 * request still costs an object, a list insertion and garbage; this costs none of that.
 */

/** Something that can time out. */
export interface Expirable {
  expire(): void
}

/** A ring mask above which an emptied ring is given back (4,096 entries, ~64 KB). */
const LARGE_RING = 4095

/**
 * The deadlines of one timeout duration: a ring of entries in start order. Positions count
 * up from 0 for the life of the list; the entry at position `p` sits at `p & mask`. In the
 * steady state (as many requests starting as ending) adding and cancelling allocate
 * nothing: the ring only grows, by doubling, when more requests are in flight than it holds.
 */
export class DeadlineList {
  readonly #ms: number
  #items: (Expirable | null)[] = new Array<Expirable | null>(16).fill(null)
  #deadlines = new Float64Array(16)
  #mask = 15
  /** Position of the oldest entry not yet cancelled or expired (or `#tail` when none). */
  #head = 0
  /** Position the next entry gets. */
  #tail = 0
  #timer: NodeJS.Timeout | undefined

  constructor(ms: number) {
    this.#ms = ms
  }

  /** The timeout of this list's entries, in milliseconds. */
  get ms(): number {
    return this.#ms
  }

  /** Adds `item`, started at `now` (performance.now()); returns its position for `cancel`. */
  add(item: Expirable, now: number): number {
    if (this.#tail - this.#head > this.#mask) this.#grow()
    const position = this.#tail++
    const deadline = now + this.#ms
    this.#items[position & this.#mask] = item
    this.#deadlines[position & this.#mask] = deadline
    if (this.#timer === undefined) this.#arm(deadline, now)
    return position
  }

  /**
   * Makes the entry at `position` inert (it finished in time). Requests of one timeout tend
   * to finish in the order they started, so the head is usually what finishes: moving past
   * it at once keeps the ring as short as the requests in flight, instead of growing for a
   * whole timeout period (at 17k requests/s and 15s, half a million entries to hold).
   */
  cancel(position: number): void {
    if (position < this.#head || position >= this.#tail) return
    const items = this.#items
    const mask = this.#mask
    items[position & mask] = null
    if (position !== this.#head) return
    let head = position + 1
    while (head < this.#tail && items[head & mask] === null) head++
    this.#head = head
    if (head === this.#tail && mask > LARGE_RING) this.#shrink()
  }

  /** An empty ring that a burst made large goes back to its first size. */
  #shrink(): void {
    this.#items = new Array<Expirable | null>(16).fill(null)
    this.#deadlines = new Float64Array(16)
    this.#mask = 15
  }

  /** Doubles the ring, each live position moving to its place under the new mask. */
  #grow(): void {
    const size = (this.#mask + 1) * 2
    const items = new Array<Expirable | null>(size).fill(null)
    const deadlines = new Float64Array(size)
    const mask = size - 1
    for (let p = this.#head; p < this.#tail; p++) {
      items[p & mask] = this.#items[p & this.#mask] as Expirable | null
      deadlines[p & mask] = this.#deadlines[p & this.#mask] as number
    }
    this.#items = items
    this.#deadlines = deadlines
    this.#mask = mask
  }

  #arm(deadline: number, now: number): void {
    this.#timer = setTimeout(() => this.#fire(), Math.max(1, Math.ceil(deadline - now)))
    this.#timer.unref()
  }

  #fire(): void {
    this.#timer = undefined
    const now = performance.now()
    const items = this.#items
    const deadlines = this.#deadlines
    const mask = this.#mask
    const expired: Expirable[] = []
    let head = this.#head
    while (head < this.#tail && (deadlines[head & mask] as number) <= now) {
      const item = items[head & mask]
      items[head & mask] = null
      head++
      if (item !== null && item !== undefined) expired.push(item)
    }
    while (head < this.#tail && items[head & mask] === null) head++
    this.#head = head
    if (head < this.#tail) this.#arm(deadlines[head & mask] as number, now)
    else if (mask > LARGE_RING) this.#shrink()
    // Expire after the list is consistent: an expiry may start new requests on this list.
    for (const item of expired) item.expire()
  }
}

/** Deadline lists by duration; one per dispatcher. */
export class Deadlines {
  readonly #lists = new Map<number, DeadlineList>()

  /** The list of `ms`-long deadlines. */
  list(ms: number): DeadlineList {
    let list = this.#lists.get(ms)
    if (list === undefined) {
      list = new DeadlineList(ms)
      this.#lists.set(ms, list)
    }
    return list
  }
}
