/**
 * Verified tokens, kept until they expire so a token is verified once rather than on every
 * request (one signature check costs 150–330 µs). Bounded; the least recently used entry
 * leaves first (a Map keeps insertion order, so moving an entry to the end on a hit makes
 * the first key the least recently used).
 *
 * Entries are keyed by the token's last 32 characters — its signature, random to anyone
 * without the key — because hashing a whole token (600+ characters) costs microseconds on
 * every lookup; the entry holds the whole token and a hit requires it to be equal. A forged
 * token with the same tail is a miss (and is verified), never a hit.
 */

const TAIL = 32

/** A cache of values that expire, bounded to `capacity` entries. */
export class TokenCache<V> {
  readonly #entries = new Map<string, { token: string; value: V; expiresAt: number }>()
  readonly #capacity: number

  constructor(capacity: number) {
    this.#capacity = Math.max(1, capacity)
  }

  /** The value of `token` if cached and not expired at `now` (ms since the epoch). */
  get(token: string, now: number): V | undefined {
    const key = keyOf(token)
    const e = this.#entries.get(key)
    if (e === undefined || e.token !== token) return undefined
    if (now >= e.expiresAt) {
      this.#entries.delete(key)
      return undefined
    }
    this.#entries.delete(key)
    this.#entries.set(key, e)
    return e.value
  }

  /** Keeps `value` for `token` until `expiresAt` (ms since the epoch). */
  set(token: string, value: V, expiresAt: number): void {
    const key = keyOf(token)
    if (this.#entries.size >= this.#capacity && !this.#entries.has(key)) {
      const oldest = this.#entries.keys().next()
      if (oldest.done !== true) this.#entries.delete(oldest.value)
    }
    this.#entries.set(key, { token, value, expiresAt })
  }

  get size(): number {
    return this.#entries.size
  }
}

function keyOf(token: string): string {
  return token.length <= TAIL * 2 ? token : token.slice(token.length - TAIL)
}
