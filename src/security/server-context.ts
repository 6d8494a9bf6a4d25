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
 * One context per credentials is built on first use and reused by every connection.
 */
import { createSecureContext, type SecureContext } from 'node:tls'
import { defaults } from '../config/defaults.js'
import { sessionIdContextOf, type Credentials, type CredentialStore } from './tls.js'
import { TicketKeyRing } from './ticket-keys.js'

const rings = new WeakMap<CredentialStore, TicketKeyRing>()
const contexts = new WeakMap<Credentials, SecureContext>()

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
  const built = contexts.get(credentials)
  if (built !== undefined) return built
  const context = createSecureContext({
    cert: credentials.certificate,
    key: credentials.privateKey,
    ca: credentials.trustBundle,
    sessionIdContext: sessionIdContextOf(credentials.trustBundle),
    sessionTimeout: defaults.tlsSessionTimeoutS,
  })
  // Without Node's ticket-key hook (a test watches for its removal), OpenSSL's own random key
  // of this context encrypts tickets until the credentials rotate.
  ticketKeysOf(store).install(context)
  contexts.set(credentials, context)
  return context
}
