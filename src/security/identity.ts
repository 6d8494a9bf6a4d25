/**
 * SPIFFE identities: the `spiffe://trust-domain/path` names workload certificates carry in
 * their URI subject alternative name, as Istio's do (`spiffe://cluster.local/ns/<ns>/sa/<sa>`).
 *
 * Parsing follows the SPIFFE ID spec (github.com/spiffe/spiffe, standards/SPIFFE-ID.md) as
 * strictly as go-spiffe does: lowercase `spiffe` scheme; a trust domain of [a-z0-9.-_]; path
 * segments of [A-Za-z0-9.-_], none empty, `.` or `..`, no trailing slash; no query,
 * fragment, port or user info; at most 2048 bytes. Each failure has its own reason code.
 *
 * The identity of a certificate is read from its DER, not from Node's `subjectaltname`
 * string: that string joins names with ", " and quotes some values, so a hostile
 * certificate could make one URI look like two. The X.509-SVID spec requires exactly one
 * URI SAN; a certificate with none, or several, has no identity.
 */
import { X509Certificate } from 'node:crypto'
import type { TLSSocket } from 'node:tls'
import { MeshError } from '../errors.js'
import { children, decodeOid, DerError, readElement } from './der.js'

/** Why a string is not a SPIFFE ID. */
export type SpiffeIdReason =
  | 'EMPTY'
  | 'TOO_LONG'
  | 'WRONG_SCHEME'
  | 'MISSING_TRUST_DOMAIN'
  | 'BAD_TRUST_DOMAIN_CHAR'
  | 'EMPTY_SEGMENT'
  | 'DOT_SEGMENT'
  | 'TRAILING_SLASH'
  | 'BAD_PATH_CHAR'

/** A string that is not a valid SPIFFE ID; `reason` says which rule it broke. */
export class SpiffeIdError extends MeshError {
  /** Which rule of the SPIFFE ID spec was broken. */
  readonly reason: SpiffeIdReason

  constructor(reason: SpiffeIdReason, message: string) {
    super('SIDECARLESS_ERR_INVALID_SPIFFE_ID', message)
    this.name = 'SpiffeIdError'
    this.reason = reason
  }
}

/** A parsed SPIFFE ID. */
export interface SpiffeId {
  /** The whole ID, e.g. `spiffe://cluster.local/ns/default/sa/reviews`. */
  readonly id: string
  /** The trust domain, e.g. `cluster.local`. */
  readonly trustDomain: string
  /** The path, e.g. `/ns/default/sa/reviews`; empty for the trust domain's own ID. */
  readonly path: string
  /** The path's segments, e.g. `['ns', 'default', 'sa', 'reviews']`. */
  readonly segments: readonly string[]
  /** The Kubernetes namespace of an Istio-form ID (`/ns/<ns>/sa/<sa>`), else undefined. */
  readonly namespace: string | undefined
  /** The service account of an Istio-form ID (`/ns/<ns>/sa/<sa>`), else undefined. */
  readonly serviceAccount: string | undefined
}

/** The SPIFFE spec's bound on the length of an ID, in bytes. */
export const MAX_SPIFFE_ID_BYTES = 2048
/** The SPIFFE spec's bound on the length of a trust domain. */
const MAX_TRUST_DOMAIN = 255
const SCHEME = 'spiffe://'

function isTrustDomainChar(c: number): boolean {
  // a-z 0-9 . - _
  return (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || c === 0x2e || c === 0x2d || c === 0x5f
}

function isPathChar(c: number): boolean {
  // A-Z a-z 0-9 . - _
  return isTrustDomainChar(c) || (c >= 0x41 && c <= 0x5a)
}

/** The problem with `s` as a SPIFFE ID, or undefined when it is valid. */
export function spiffeIdProblem(s: unknown): SpiffeIdError | undefined {
  if (typeof s !== 'string' || s.length === 0) return new SpiffeIdError('EMPTY', 'a SPIFFE ID cannot be empty')
  if (Buffer.byteLength(s) > MAX_SPIFFE_ID_BYTES) return new SpiffeIdError('TOO_LONG', `a SPIFFE ID is at most ${MAX_SPIFFE_ID_BYTES} bytes`)
  if (!s.startsWith(SCHEME)) return new SpiffeIdError('WRONG_SCHEME', 'a SPIFFE ID starts with "spiffe://" (lowercase)')
  const rest = s.slice(SCHEME.length)
  const slash = rest.indexOf('/')
  const td = slash === -1 ? rest : rest.slice(0, slash)
  if (td.length === 0) return new SpiffeIdError('MISSING_TRUST_DOMAIN', 'the trust domain is missing')
  if (td.length > MAX_TRUST_DOMAIN) return new SpiffeIdError('TOO_LONG', `a trust domain is at most ${MAX_TRUST_DOMAIN} characters`)
  for (let i = 0; i < td.length; i++) {
    if (!isTrustDomainChar(td.charCodeAt(i))) {
      // Covers upper case, ports (":"), user info ("@"), queries ("?") and fragments ("#").
      return new SpiffeIdError('BAD_TRUST_DOMAIN_CHAR', 'trust domain characters are limited to lowercase letters, numbers, dots, dashes, and underscores')
    }
  }
  if (slash === -1) return undefined
  return pathProblem(rest.slice(slash))
}

function pathProblem(path: string): SpiffeIdError | undefined {
  // `path` starts with "/"; walk its segments.
  let start = 1
  for (let i = 1; i <= path.length; i++) {
    if (i < path.length && path.charCodeAt(i) !== 0x2f) {
      if (!isPathChar(path.charCodeAt(i))) {
        return new SpiffeIdError('BAD_PATH_CHAR', 'path segment characters are limited to letters, numbers, dots, dashes, and underscores')
      }
      continue
    }
    const segment = path.slice(start, i)
    if (segment.length === 0) {
      return i === path.length
        ? new SpiffeIdError('TRAILING_SLASH', 'the path cannot have a trailing slash')
        : new SpiffeIdError('EMPTY_SEGMENT', 'the path cannot contain empty segments')
    }
    if (segment === '.' || segment === '..') return new SpiffeIdError('DOT_SEGMENT', 'the path cannot contain dot segments')
    start = i + 1
  }
  return undefined
}

/** Whether `s` is a valid SPIFFE ID. */
export function isSpiffeId(s: unknown): s is string {
  return spiffeIdProblem(s) === undefined
}

/** Parses a SPIFFE ID; throws a {@link SpiffeIdError} naming the broken rule. */
export function parseSpiffeId(s: string): SpiffeId {
  const problem = spiffeIdProblem(s)
  if (problem !== undefined) throw problem
  const rest = s.slice(SCHEME.length)
  const slash = rest.indexOf('/')
  const trustDomain = slash === -1 ? rest : rest.slice(0, slash)
  const path = slash === -1 ? '' : rest.slice(slash)
  const segments = path === '' ? [] : path.slice(1).split('/')
  const istio = segments.length === 4 && segments[0] === 'ns' && segments[2] === 'sa'
  return Object.freeze({
    id: s,
    trustDomain,
    path,
    segments: Object.freeze(segments),
    namespace: istio ? segments[1] : undefined,
    serviceAccount: istio ? segments[3] : undefined,
  })
}

/** The Istio-form SPIFFE ID of a Kubernetes service account: `spiffe://<td>/ns/<ns>/sa/<sa>`. */
export function workloadSpiffeId(trustDomain: string, namespace: string, serviceAccount: string): string {
  for (const part of [namespace, serviceAccount]) {
    // Each is one path segment: a "/" would shift the ns/sa positions.
    if (typeof part !== 'string' || part.includes('/')) throw new SpiffeIdError('BAD_PATH_CHAR', 'a namespace or service account is one path segment (no "/")')
  }
  const id = `${SCHEME}${trustDomain}/ns/${namespace}/sa/${serviceAccount}`
  parseSpiffeId(id)
  return id
}

// ---------------------------------------------------------------- matching

/** The problem with `pattern` as an identity to verify (an exact SPIFFE ID, or one ending in `/*`), if any. */
export function identityPatternProblem(pattern: unknown): SpiffeIdError | undefined {
  if (typeof pattern === 'string' && pattern.endsWith('/*')) return spiffeIdProblem(pattern.slice(0, -2))
  return spiffeIdProblem(pattern)
}

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
