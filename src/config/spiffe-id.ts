/**
 * SPIFFE IDs as config values: the `spiffe://trust-domain/path` grammar, checked as strictly
 * as go-spiffe does (github.com/spiffe/spiffe, standards/SPIFFE-ID.md): lowercase `spiffe`
 * scheme; a trust domain of [a-z0-9.-_]; path segments of [A-Za-z0-9.-_], none empty, `.` or
 * `..`, no trailing slash; no query, fragment, port or user info; at most 2048 bytes. Each
 * failure has its own reason code. Validation and the runtime (`security/identity.ts`, which
 * re-exports these) share it.
 */
import { MeshError } from '../errors.js'

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

/** The problem with `pattern` as an identity to verify (an exact SPIFFE ID, or one ending in `/*`), if any. */
export function identityPatternProblem(pattern: unknown): SpiffeIdError | undefined {
  if (typeof pattern === 'string' && pattern.endsWith('/*')) return spiffeIdProblem(pattern.slice(0, -2))
  return spiffeIdProblem(pattern)
}
