/**
 * SPIFFE identities: the `spiffe://trust-domain/path` names workload certificates carry in
 * their URI subject alternative name, as Istio's do (`spiffe://cluster.local/ns/<ns>/sa/<sa>`).
 * The ID grammar itself is `config/spiffe-id.ts` (validation checks config with it too).
 *
 * The identity of a certificate is read from its DER, not from Node's `subjectaltname`
 * string: that string joins names with ", " and quotes some values, so a hostile
 * certificate could make one URI look like two. The X.509-SVID spec requires exactly one
 * URI SAN; a certificate with none, or several, has no identity.
 */
import { X509Certificate } from 'node:crypto'
import type { TLSSocket } from 'node:tls'
import { identityPatternProblem, isSpiffeId } from '../config/spiffe-id.js'
import { children, decodeOid, DerError, readElement } from './der.js'

export {
  identityPatternProblem,
  isSpiffeId,
  MAX_SPIFFE_ID_BYTES,
  parseSpiffeId,
  SpiffeIdError,
  spiffeIdProblem,
  workloadSpiffeId,
  type SpiffeId,
  type SpiffeIdReason,
} from '../config/spiffe-id.js'

// ---------------------------------------------------------------- matching

/**
 * Compiles identities to verify into one test: an exact SPIFFE ID matches itself;
 * `spiffe://td/ns/foo/*` matches every ID under `spiffe://td/ns/foo/` (at least one more
 * segment). Throws a {@link SpiffeIdError} for a pattern that is neither.
 */
export function compileIdentityMatcher(patterns: readonly string[]): (id: string) => boolean {
  const exact = new Set<string>()
  const prefixes: string[] = []
  for (const p of patterns) {
    const problem = identityPatternProblem(p)
    if (problem !== undefined) throw problem
    if (p.endsWith('/*')) prefixes.push(p.slice(0, -1))
    else exact.add(p)
  }
  return (id) => {
    if (exact.has(id)) return true
    for (const p of prefixes) if (id.length > p.length && id.startsWith(p)) return true
    return false
  }
}

// ---------------------------------------------------------------- certificates

const SAN_OID = '2.5.29.17'
/** A certificate's DER is read only up to this size (Node refuses far smaller chains). */
const MAX_CERT_BYTES = 64 * 1024

/**
 * The names in a certificate's subject alternative name extension, from its DER:
 * `uris` (uniformResourceIdentifier) and `dns` (dNSName). Throws on malformed DER.
 */
export function subjectAltNames(der: Buffer): { uris: string[]; dns: string[] } {
  const uris: string[] = []
  const dns: string[] = []
  if (der.length > MAX_CERT_BYTES) throw new DerError('certificate too large')
  const cert = readElement(der)
  const tbs = children(cert)[0]
  if (cert.tag !== 0x30 || tbs?.tag !== 0x30) throw new DerError('not a certificate')
  const extensions = children(tbs).find((e) => e.tag === 0xa3)
  if (extensions === undefined) return { uris, dns }
  const list = children(extensions)[0]
  if (list?.tag !== 0x30) throw new DerError('bad extensions')
  for (const ext of children(list)) {
    const parts = children(ext)
    const id = parts[0]
    if (id?.tag !== 0x06 || decodeOid(id.contents) !== SAN_OID) continue
    const value = parts[parts.length - 1]
    if (value?.tag !== 0x04) throw new DerError('bad extension value')
    const names = readElement(value.contents)
    if (names.tag !== 0x30) throw new DerError('bad subject alternative names')
    for (const name of children(names)) {
      // [6] IA5String uniformResourceIdentifier, [2] IA5String dNSName (IMPLICIT).
      if (name.tag === 0x86) uris.push(name.contents.toString('latin1'))
      else if (name.tag === 0x82) dns.push(name.contents.toString('latin1'))
    }
  }
  return { uris, dns }
}

/**
 * The SPIFFE ID of a certificate (an `X509Certificate`, DER bytes, or PEM), or undefined
 * when it has no valid one: it must carry exactly one URI SAN, and that URI must be a valid
 * SPIFFE ID (X.509-SVID spec §2). Malformed certificates have no identity; nothing throws.
 */
export function spiffeIdOfCertificate(cert: X509Certificate | Buffer | string): string | undefined {
  try {
    const x = typeof cert === 'string' ? new X509Certificate(cert) : cert
    const der = Buffer.isBuffer(x) ? x : x.raw
    const { uris } = subjectAltNames(der)
    if (uris.length !== 1) return undefined
    const uri = uris[0] as string
    return isSpiffeId(uri) ? uri : undefined
  } catch {
    return undefined
  }
}

const PEER_IDENTITY = Symbol('sidecarless.peerIdentity')
const PEER_CERTIFICATE = Symbol('sidecarless.peerCertificate')

/**
 * The peer certificate of a TLS socket, read once and kept on the socket. On the client
 * side, Node 20 to 24 hand the leaf out only once: `getPeerX509Certificate()` removes it from
 * the chain it reads, so a second call returns the issuer or nothing (fixed in Node 26).
 */
export function peerCertificate(socket: TLSSocket): X509Certificate | undefined {
  const s = socket as TLSSocket & { [PEER_CERTIFICATE]?: X509Certificate | null }
  let cert = s[PEER_CERTIFICATE]
  if (cert === undefined) {
    cert = (typeof s.getPeerX509Certificate === 'function' ? s.getPeerX509Certificate() : undefined) ?? null
    s[PEER_CERTIFICATE] = cert
  }
  return cert ?? undefined
}

/**
 * The SPIFFE ID of the peer of a TLS socket whose certificate chain was verified, cached on
 * the socket (it cannot change for the life of the connection). Undefined for plain
 * sockets, unverified peers and certificates without exactly one SPIFFE URI SAN.
 */
export function peerIdentity(socket: TLSSocket): string | undefined {
  const s = socket as TLSSocket & { [PEER_IDENTITY]?: string | null }
  const cached = s[PEER_IDENTITY]
  if (cached !== undefined) return cached ?? undefined
  let id: string | undefined
  if (s.encrypted === true && s.authorized) {
    const cert = peerCertificate(s)
    id = cert === undefined ? undefined : spiffeIdOfCertificate(cert)
  }
  // Requests are read only after the handshake, so `authorized` is final by now.
  if (s.encrypted === true) s[PEER_IDENTITY] = id ?? null
  return id
}

/**
 * Whether the peer certificate of a TLS socket is within its validity period now. A resumed
 * session carries the certificate verified when the session was made; OpenSSL does not
 * check it again, so a session made just before the certificate expired would outlive it.
 */
export function peerCertificateInForce(socket: TLSSocket, now = Date.now()): boolean {
  const cert = peerCertificate(socket)
  if (cert === undefined) return false
  const from = Date.parse(cert.validFrom)
  const to = Date.parse(cert.validTo)
  // An unparsable date fails closed.
  return from <= now && now < to
}
