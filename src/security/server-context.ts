/**
 * The secure context inbound mTLS connections are served with: the workload's credentials,
 * plus what TLS session resumption needs on a server that asks for client certificates.
 *
 * - A session id context. OpenSSL refuses to resume a session that carries a verified client
 *   certificate on a server without one, with a fatal `internal_error` alert (the defect a
 *   hand-built TLSSocket had; a `tls.Server` derives one itself). Ours is a digest of the
 *   trust bundle: a session made while another bundle was trusted does not match, so OpenSSL
 *   treats it as unknown and runs a full handshake, verifying the client against the
 *   bundle in force. A CA rotation thus invalidates every earlier session and ticket.
 * - Rotating session ticket keys ({@link TicketKeyRing}), one ring per credential store, so
 *   a certificate rotation that keeps the trust bundle keeps tickets valid too.
 * - A session lifetime (`sessionTimeout`): OpenSSL refuses older sessions, whatever the key.
 *
 * One context per credentials (and, where Node cannot run the key ring, per key period) is
 * built on first use and reused by every connection.
 */
import { createHash } from 'node:crypto'
import { createSecureContext, type SecureContext } from 'node:tls'
import { defaults } from '../config/defaults.js'
import type { Credentials, CredentialStore } from './tls.js'
import { TicketKeyRing } from './ticket-keys.js'

interface Built {
  readonly context: SecureContext
  /** The key period this context was made for, or -1 when the ring rotates its keys itself. */
  readonly epoch: number
}

const rings = new WeakMap<CredentialStore, TicketKeyRing>()
const contexts = new WeakMap<Credentials, Built>()

/** OpenSSL's bound on a session id context (SSL_MAX_SID_CTX_LENGTH). */
const SID_CTX_BYTES = 32

/** The session id context for a trust bundle: 32 hex characters of its SHA-256. */
export function sessionIdContextOf(trustBundle: string): string {
  return createHash('sha256').update('sidecarless/mtls/v1\n').update(trustBundle).digest('hex').slice(0, SID_CTX_BYTES)
}

/** The ticket key ring of a credential store (made on first use). */
export function ticketKeysOf(store: CredentialStore): TicketKeyRing {
  let ring = rings.get(store)
  if (ring === undefined) {
    ring = new TicketKeyRing(defaults.tlsTicketKeyRotationMs)
    rings.set(store, ring)
  }
  return ring
}

/** The secure context for a new inbound mTLS connection with the store's current credentials. */
export function serverContextOf(store: CredentialStore): SecureContext {
  const credentials = store.current
  const ring = ticketKeysOf(store)
  const built = contexts.get(credentials)
  if (built !== undefined && (built.epoch === -1 || built.epoch === ring.epoch)) return built.context
  const context = createSecureContext({
    cert: credentials.certificate,
    key: credentials.privateKey,
    ca: credentials.trustBundle,
    sessionIdContext: sessionIdContextOf(credentials.trustBundle),
    sessionTimeout: defaults.tlsSessionTimeoutS,
  })
  const epoch = ring.install(context) ? -1 : ring.epoch
  contexts.set(credentials, { context, epoch })
  return context
}
