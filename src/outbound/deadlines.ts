/**
 * Route timeouts without a Node timer per request. Requests with the same timeout expire in
 * the order they started, so each distinct timeout keeps one FIFO of deadlines and one timer
 * armed for the oldest live entry. Adding is two array pushes; cancelling clears a slot.
 * Node groups its own timers the same way, but a `setTimeout`/`clearTimeout` pair per
 * request still costs an object, a list insertion and garbage; this costs none of that.
 */

/** Something that can time out. */
export interface Expirable {
  expire(): void
}

/** The deadlines of one timeout duration. */
export class DeadlineList {
  readonly #ms: number
  #items: (Expirable | null)[] = []
  #deadlines: number[] = []
  #head = 0
  /** Entries dropped from the front so far: positions stay valid across compaction. */
  #offset = 0
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
    const index = this.#items.length
    this.#items.push(item)
    const deadline = now + this.#ms
    this.#deadlines.push(deadline)
    if (this.#timer === undefined) this.#arm(deadline, now)
    return this.#offset + index
  }

  /**
   * Makes the entry at `position` inert (it finished in time). Requests of one timeout tend
   * to finish in the order they started, so the head is usually what finishes: moving past
   * it at once keeps the lists as short as the requests in flight, instead of growing for a
   * whole timeout period (at 17k requests/s and 15s, half a million entries to collect).
   */
  cancel(position: number): void {
    const index = position - this.#offset
    if (index < this.#head || index >= this.#items.length) return
    this.#items[index] = null
    if (index !== this.#head) return
    const items = this.#items
    let head = index + 1
    while (head < items.length && items[head] === null) head++
    if (head === items.length) {
      this.#offset += items.length
      this.#items = []
      this.#deadlines = []
      this.#head = 0
    } else if (head > 1024 && head * 2 > items.length) {
      this.#offset += head
      this.#items = items.slice(head)
      this.#deadlines = this.#deadlines.slice(head)
      this.#head = 0
    } else {
      this.#head = head
    }
  }

  #arm(deadline: number, now: number): void {
    this.#timer = setTimeout(() => this.#fire(), Math.max(1, Math.ceil(deadline - now)))
    this.#timer.unref()
  }

  #fire(): void {
    this.#timer = undefined
    const now = performance.now()
    const expired: Expirable[] = []
    let head = this.#head
    while (head < this.#items.length && (this.#deadlines[head] as number) <= now) {
      const item = this.#items[head]
      this.#items[head] = null
      head++
      if (item !== null && item !== undefined) expired.push(item)
    }
    while (head < this.#items.length && this.#items[head] === null) head++
    if (head === this.#items.length) {
      this.#offset += this.#items.length
      this.#items = []
      this.#deadlines = []
      this.#head = 0
    } else {
      if (head > 1024 && head * 2 > this.#items.length) {
        this.#offset += head
        this.#items = this.#items.slice(head)
        this.#deadlines = this.#deadlines.slice(head)
        head = 0
      }
      this.#head = head
      this.#arm(this.#deadlines[head] as number, now)
    }
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
