/**
 * Verified tokens, kept until they expire so a token is verified once rather than on every
 * request (one signature check costs 150–330 µs). Keyed by the token string; bounded, the
 * least recently used entry leaves first. A Map keeps insertion order, so moving an entry to
 * the end on a hit makes the first key the least recently used.
 */

/** A cache of values that expire, bounded to `capacity` entries. */
export class TokenCache<V> {
  readonly #entries = new Map<string, { value: V; expiresAt: number }>()
  readonly #capacity: number

  constructor(capacity: number) {
    this.#capacity = Math.max(1, capacity)
  }

  /** The value of `token` if cached and not expired at `now` (ms since the epoch). */
  get(token: string, now: number): V | undefined {
    const e = this.#entries.get(token)
    if (e === undefined) return undefined
    if (now >= e.expiresAt) {
      this.#entries.delete(token)
      return undefined
    }
    // Recency: a hit moves to the end, unless it is already the newest.
    this.#entries.delete(token)
    this.#entries.set(token, e)
    return e.value
  }

  /** Keeps `value` for `token` until `expiresAt` (ms since the epoch). */
  set(token: string, value: V, expiresAt: number): void {
    if (this.#entries.size >= this.#capacity && !this.#entries.has(token)) {
      const oldest = this.#entries.keys().next()
      if (oldest.done !== true) this.#entries.delete(oldest.value)
    }
    this.#entries.set(token, { value, expiresAt })
  }

  get size(): number {
    return this.#entries.size
  }
}
