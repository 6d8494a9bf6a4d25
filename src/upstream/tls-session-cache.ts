/**
 * Resumable TLS sessions of one upstream host's connections, so a reconnect resumes instead
 * of running a full handshake (as undici's own connector does with its `SessionCache`).
 *
 * Each session is stored with what the full handshake that made it verified: the server's
 * SPIFFE ID and when its certificate expires. A client resuming a session gets no server
 * certificate from Node (the session keeps the leaf, not the chain Node reads), but the
 * resumption itself proves the server holds that session's secret, which only the server
 * verified in the full handshake has; so the stored identity is the resumed connection's
 * identity, as Go's client restores its verified chains. A session is not offered once the
 * certificate it was verified with has expired.
 *
 * A session is only offered back with the secure context it was made with: the context
 * stands for the credentials generation (client certificate and trust bundle) of the
 * cluster, so once credentials rotate no session made with the old certificate, or verified
 * against the old trust bundle, is reused. Bounded: few sessions per server name, the least
 * recently stored dropped first.
 */
import type { SecureContext } from 'node:tls'

/** A session and what its full handshake verified. */
export interface CachedSession {
  /** The session (Node's serialized form, for `tls.connect({ session })`). */
  readonly session: Buffer
  /** The server's SPIFFE ID, if its certificate had one. */
  readonly identity: string | undefined
  /** When the server certificate expires (ms since the epoch). */
  readonly notAfter: number
}

export class TlsSessionCache {
  readonly #max: number
  #context: SecureContext | undefined
  readonly #sessions = new Map<string, CachedSession>()

  /** @param max sessions kept (one per server name and port) */
  constructor(max: number) {
    this.#max = max
  }

  /** The session to offer for `key` with `context`, if one was stored with the same context and is still valid. */
  get(context: SecureContext, key: string, now = Date.now()): CachedSession | undefined {
    if (context !== this.#context) return undefined
    const entry = this.#sessions.get(key)
    if (entry !== undefined && now >= entry.notAfter) {
      this.#sessions.delete(key)
      return undefined
    }
    return entry
  }

  /** Stores the newest session of `key`, made with `context`; sessions of other contexts are dropped. */
  set(context: SecureContext, key: string, entry: CachedSession): void {
    if (context !== this.#context) {
      // Credentials rotated: sessions made with the previous ones are never offered again.
      this.#sessions.clear()
      this.#context = context
    }
    this.#sessions.delete(key)
    this.#sessions.set(key, entry)
    if (this.#sessions.size > this.#max) this.#sessions.delete(this.#sessions.keys().next().value as string)
  }

  /** Forgets `key`'s session (a connection that offered or made it failed). */
  delete(key: string): void {
    this.#sessions.delete(key)
  }

  /** Sessions held. */
  get size(): number {
    return this.#sessions.size
  }
}
