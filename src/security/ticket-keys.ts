/**
 * Session ticket keys of the inbound listener (RFC 5077 tickets in TLS 1.2, NewSessionTicket
 * PSKs in TLS 1.3). A ticket is the server's session state, encrypted with a key only this
 * process holds: a client that shows it back resumes without the certificate exchange and
 * signatures of a full handshake.
 *
 * Keys rotate as Envoy's and Go's do: a new key encrypts every ticket once the current one
 * is `rotationMs` old; the previous key still decrypts (and the ticket is renewed under the
 * new key) until it is `2 × rotationMs` old, so a rotation does not turn every returning
 * client into a full handshake. Keys are random, live only in this object's memory, and are
 * never logged, inspected, written or exported. Rotation is checked when a ticket is made or
 * read: no timer.
 *
 * Node has no public API for more than one ticket key. The TLS handle's secure context has
 * one (`enableTicketKeyCallback` / `onticketkeycallback`, present from Node 0.11 to 26, used by
 * Node's own tests), which this module uses when present. Its native side asserts on a
 * malformed answer (a missing key aborts the process), so {@link TicketKeyRing.answer} always
 * returns a complete, well-typed array and cannot throw. Without the hook, tickets are still
 * issued, under the random key OpenSSL gives each secure context, which then changes only
 * when the credentials do; a test fails on a Node without it.
 */
import { randomBytes } from 'node:crypto'
import type { SecureContext } from 'node:tls'

/** Bytes of a ticket key name, HMAC key and AES key (Node and OpenSSL's ticket format). */
const PART = 16

/** What the native ticket-key callback expects back (Node's `TicketKeyCallback`). */
type TicketKeyAnswer = [result: number, hmacKey: Buffer, aesKey: Buffer, name?: Buffer, iv?: Buffer]

/** The native side of a secure context, where the ticket-key hooks live. */
interface NativeContext {
  enableTicketKeyCallback?: () => void
  onticketkeycallback?: (name: Buffer, iv: Buffer, encrypt: boolean) => TicketKeyAnswer
}

interface TicketKey {
  readonly name: Buffer
  readonly hmac: Buffer
  readonly aes: Buffer
  /** `performance.now()` when made. */
  readonly createdAt: number
}

/** Returned for a ticket no key decrypts: OpenSSL then runs a full handshake. The keys are never used. */
const UNKNOWN: TicketKeyAnswer = [0, Buffer.alloc(PART), Buffer.alloc(PART)]

/** Whether this Node exposes the ticket-key callback on secure contexts. */
export function ticketKeyCallbackSupported(context: SecureContext): boolean {
  const native = (context as unknown as { context?: NativeContext }).context
  return typeof native?.enableTicketKeyCallback === 'function'
}

/** Rotating session ticket keys: the current key encrypts, it and the previous one decrypt. */
export class TicketKeyRing {
  readonly #rotationMs: number
  readonly #now: () => number
  /** Newest first; at most two. */
  #keys: TicketKey[] = []
  /** Tickets made, and tickets decrypted with the previous key (renewed). */
  issued = 0
  renewed = 0

  /**
   * @param rotationMs how long a key encrypts; it decrypts for as long again
   * @param now the clock (milliseconds, monotonic); tests pass their own
   */
  constructor(rotationMs: number, now: () => number = () => performance.now()) {
    this.#rotationMs = rotationMs
    this.#now = now
  }

  /**
   * Makes `context` issue and accept tickets with this ring's keys. Returns false when this
   * Node has no ticket-key hook.
   */
  install(context: SecureContext): boolean {
    const native = (context as unknown as { context?: NativeContext }).context
    if (native === undefined || typeof native.enableTicketKeyCallback !== 'function') return false
    native.onticketkeycallback = (name, _iv, encrypt) => this.answer(name, encrypt)
    native.enableTicketKeyCallback()
    return true
  }

  /**
   * The native callback's answer: to encrypt, the current key with a fresh name and IV; to
   * decrypt, the key named by the ticket (1 = accept, 2 = accept and issue a new ticket under
   * the current key), or 0 when no key has that name.
   */
  answer(name: Buffer, encrypt: boolean): TicketKeyAnswer {
    try {
      this.#rotate()
      if (encrypt) {
        const key = this.#keys[0] as TicketKey
        this.issued++
        return [1, key.hmac, key.aes, key.name, randomBytes(PART)]
      }
      for (let i = 0; i < this.#keys.length; i++) {
        const key = this.#keys[i] as TicketKey
        if (key.name.equals(name)) {
          if (i === 0) return [1, key.hmac, key.aes]
          this.renewed++
          return [2, key.hmac, key.aes]
        }
      }
      return UNKNOWN
    } catch {
      // Nothing above should throw; if it ever does, a full handshake beats a crashed process.
      return UNKNOWN
    }
  }

  /** Adds a key when the current one has encrypted for a full period; drops keys past their decrypt window. */
  #rotate(): void {
    const now = this.#now()
    const current = this.#keys[0]
    if (current === undefined || now - current.createdAt >= this.#rotationMs) {
      this.#keys.unshift({ name: randomBytes(PART), hmac: randomBytes(PART), aes: randomBytes(PART), createdAt: now })
    }
    // The previous key decrypts until two periods after it was made; older ones are gone.
    this.#keys = this.#keys.filter((k, i) => i === 0 || (i === 1 && now - k.createdAt < 2 * this.#rotationMs))
  }

  /** Keys held now (for tests and the admin view; never the keys themselves). */
  get size(): number {
    return this.#keys.length
  }

  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return `TicketKeyRing { keys: ${this.#keys.length}, rotationMs: ${this.#rotationMs} }`
  }

  toJSON(): Record<string, number> {
    return { keys: this.#keys.length, rotationMs: this.#rotationMs }
  }
}
