/**
 * JWT authentication of inbound requests with Istio `RequestAuthentication` semantics:
 * a request without a token passes (authorization decides what it may do); a request whose
 * token is invalid — or that carries two different tokens — is refused with 401. A token
 * is verified with jose against the key set of the rule whose `issuer` it names: signature
 * (asymmetric algorithms only, never `none` nor HMAC), `iss`, `aud`, `exp` and `nbf` with the
 * rule's clock skew. Verified tokens are cached until they expire, so the common path is a
 * header read and a Map lookup, and stays synchronous. jose is imported on the first token
 * that needs verifying (loading it costs ~150 ms a mesh without tokens should not pay).
 */
import type http from 'node:http'
import type { JWTPayload } from 'jose'
import type { DeepReadonly } from '../config/deep-readonly.js'
import type { JwtRule, RequestAuthenticationConfig } from '../config/types.js'
import { defaults, limits } from '../config/defaults.js'
import { parseDuration } from '../config/duration.js'
import { inlineKeySource, remoteKeySource, type Jose, type KeySource } from './jwks.js'
import { parseJwks } from '../config/jwks-document.js'
import { claimAt } from './claims.js'
import { TokenCache } from './token-cache.js'

/** What a verified token tells about a request: `mesh.context().auth`. */
export interface RequestAuth {
  /** Istio's request principal: `<iss>/<sub>`. */
  readonly principal: string
  /** The verified payload (frozen). */
  readonly claims: Readonly<JWTPayload>
  /** `aud`, always as a list. */
  readonly audiences: readonly string[]
  /** `azp`, when the token names its presenter. */
  readonly presenter: string | undefined
}

/** Why a token was refused (the `reason` label of `sidecarless_jwt_authn_denied_total`). */
export type JwtFailure =
  | 'bad_format'
  | 'too_large'
  | 'multiple_tokens'
  | 'unknown_issuer'
  | 'expired'
  | 'not_yet_valid'
  | 'audience'
  | 'claims'
  | 'signature'
  | 'no_key'
  | 'jwks_fetch'

/** Every {@link JwtFailure}, for metrics. */
export const JWT_FAILURES: readonly JwtFailure[] = Object.freeze([
  'bad_format', 'too_large', 'multiple_tokens', 'unknown_issuer', 'expired', 'not_yet_valid',
  'audience', 'claims', 'signature', 'no_key', 'jwks_fetch',
] as const)

/** Envoy's 401 bodies for each failure (`jwt_authn` status messages). */
export const JWT_FAILURE_BODY: Readonly<Record<JwtFailure, string>> = Object.freeze({
  bad_format: 'Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections',
  too_large: 'Jwt is too large',
  multiple_tokens: 'Jwt is present more than once with different values',
  unknown_issuer: 'Jwt issuer is not configured',
  expired: 'Jwt is expired',
  not_yet_valid: 'Jwt not yet valid',
  audience: 'Audiences in Jwt are not allowed',
  claims: 'Jwt claims are not valid',
  signature: 'Jwt verification fails',
  no_key: "Jwks doesn't have key to match kid or alg from Jwt",
  jwks_fetch: 'Jwks remote fetch is failed',
})

/** The outcome of authenticating one request. */
export type AuthnOutcome =
  | { readonly kind: 'none' }
  | { readonly kind: 'verified'; readonly verified: Verified; readonly location: Location }
  | { readonly kind: 'failed'; readonly reason: JwtFailure; readonly cacheHit: false }

/** A verified token, as cached: the auth facts, and what its rule does to the request. */
export interface Verified {
  readonly auth: RequestAuth
  readonly rule: CompiledJwtRule
  /** Request headers to set (`outputClaimToHeaders`, `outputPayloadToHeader`), sanitised. */
  readonly headers: readonly (readonly [string, string])[]
}

/** A place a token is read from. */
interface Location {
  readonly kind: 'header' | 'param'
  readonly name: string
  /** Lower-cased prefix (headers). */
  readonly prefix: string
  /** The rules that read tokens here. */
  readonly rules: readonly CompiledJwtRule[]
}

/** Asymmetric JWS algorithms: `none` and HMAC are never accepted, whatever the token says. */
const ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519']

const NONE: AuthnOutcome = Object.freeze({ kind: 'none' })
const failures = Object.fromEntries(JWT_FAILURES.map((r) => [r, Object.freeze({ kind: 'failed', reason: r, cacheHit: false })])) as Record<JwtFailure, AuthnOutcome & { kind: 'failed' }>

/** One `jwtRules` entry, compiled. */
export class CompiledJwtRule {
  readonly issuer: string
  readonly audiences: readonly string[] | undefined
  readonly clockSkewMs: number
  readonly cacheDurationMs: number
  readonly forwardOriginalToken: boolean
  readonly claimHeaders: readonly { readonly header: string; readonly path: readonly string[] }[]
  readonly payloadHeader: string | undefined
  readonly #rule: DeepReadonly<JwtRule>
  #keys: KeySource | undefined

  constructor(rule: DeepReadonly<JwtRule>) {
    this.#rule = rule
    this.issuer = rule.issuer
    this.audiences = rule.audiences === undefined || rule.audiences.length === 0 ? undefined : [...rule.audiences]
    this.clockSkewMs = parseDuration(rule.clockSkew) ?? defaults.jwtClockSkewMs
    this.cacheDurationMs = parseDuration(rule.jwksCacheDuration) ?? defaults.jwksCacheDurationMs
    this.forwardOriginalToken = rule.forwardOriginalToken === true
    this.claimHeaders = (rule.outputClaimToHeaders ?? []).map((c) => ({ header: c.header.toLowerCase(), path: c.claim.split('.') }))
    this.payloadHeader = rule.outputPayloadToHeader?.toLowerCase()
  }

  /** The rule's key source, made on first use. */
  keys(jose: Jose): KeySource {
    if (this.#keys !== undefined) return this.#keys
    const rule = this.#rule
    if (rule.jwks !== undefined) {
      const set = parseJwks(rule.jwks)
      // Validation refused a bad JWKS already; a set without keys verifies nothing.
      this.#keys = inlineKeySource(jose, typeof set === 'string' ? { keys: [] } : set)
    } else {
      this.#keys = remoteKeySource(jose, rule.jwksUri as string, {
        timeoutMs: parseDuration(rule.jwksTimeout) ?? defaults.jwksTimeoutMs,
        cacheDurationMs: this.cacheDurationMs,
      })
    }
    return this.#keys
  }

  /** Fetch counters of the rule's JWKS (zero until the first fetch, and for an inline JWKS). */
  get jwksStats(): KeySource['stats'] {
    return this.#keys?.stats ?? { fetched: 0, failed: 0 }
  }
}

let josePromise: Promise<Jose> | undefined
function loadJose(): Promise<Jose> {
  return (josePromise ??= import('jose'))
}

/** Counters of a {@link RequestAuthentication}. */
export interface AuthnCounters {
  /** Signature verifications run (cache misses that reached jose). */
  verifications: number
  /** Requests whose token was found in the cache. */
  cacheHits: number
}

/** The compiled `listener.requestAuthentication`. */
export class RequestAuthentication {
  /** The config it was compiled from, as JSON: equal keys share one object across snapshots (and its caches). */
  readonly configKey: string
  readonly rules: readonly CompiledJwtRule[]
  readonly counters: AuthnCounters = { verifications: 0, cacheHits: 0 }
  readonly #headers: readonly Location[]
  readonly #params: readonly Location[]
  /** Headers the mesh sets from claims: removed from every request first, so clients cannot forge them. */
  readonly #owned: readonly string[]
  readonly #cache = new TokenCache<Verified>(defaults.jwtCacheSize)
  /** Verifications in flight: concurrent requests with one new token share one check (no stampede). */
  readonly #pending = new Map<string, { readonly location: Location; readonly outcome: Promise<AuthnOutcome> }>()

  constructor(config: DeepReadonly<RequestAuthenticationConfig>, configKey: string) {
    this.configKey = configKey
    this.rules = Object.freeze(config.jwtRules.map((r) => new CompiledJwtRule(r)))
    const headers = new Map<string, { name: string; prefix: string; rules: CompiledJwtRule[] }>()
    const params = new Map<string, CompiledJwtRule[]>()
    const owned = new Set<string>()
    config.jwtRules.forEach((r, i) => {
      const rule = this.rules[i] as CompiledJwtRule
      const defaulted = r.fromHeaders === undefined && r.fromParams === undefined
      const hs = defaulted ? [defaults.jwtDefaultHeader] : (r.fromHeaders ?? [])
      for (const h of hs) {
        const name = h.name.toLowerCase()
        const prefix = (h.prefix ?? '').toLowerCase()
        const key = `${name}\n${prefix}`
        const entry = headers.get(key) ?? { name, prefix, rules: [] }
        entry.rules.push(rule)
        headers.set(key, entry)
      }
      for (const p of defaulted ? [defaults.jwtDefaultParam] : (r.fromParams ?? [])) params.set(p, [...(params.get(p) ?? []), rule])
      for (const c of rule.claimHeaders) owned.add(c.header)
      if (rule.payloadHeader !== undefined) owned.add(rule.payloadHeader)
    })
    this.#headers = Object.freeze([...headers.values()].map((h) => Object.freeze({ kind: 'header' as const, name: h.name, prefix: h.prefix, rules: Object.freeze(h.rules) })))
    this.#params = Object.freeze([...params].map(([name, rules]) => Object.freeze({ kind: 'param' as const, name, prefix: '', rules: Object.freeze(rules) })))
    this.#owned = Object.freeze([...owned])
  }

  /**
   * Finds and verifies the request's token. Synchronous when there is none or it is cached;
   * a promise otherwise. Never rejects.
   */
  authenticate(req: http.IncomingMessage): AuthnOutcome | Promise<AuthnOutcome> {
    if (this.#owned.length > 0) removeHeaders(req, this.#owned)
    let token: string | undefined
    let location: Location | undefined
    const headers = req.headers
    for (let i = 0; i < this.#headers.length; i++) {
      const loc = this.#headers[i] as Location
      if (headers[loc.name] === undefined) continue
      // Every field line, from the raw headers: node keeps only the first `Authorization`
      // (and joins other repeated headers with ", "), which would hide a second token.
      const raw = req.rawHeaders
      for (let j = 0; j + 1 < raw.length; j += 2) {
        const name = raw[j] as string
        if (name.length !== loc.name.length || name.toLowerCase() !== loc.name) continue
        const t = tokenAfterPrefix(raw[j + 1] as string, loc.prefix)
        if (t === undefined) continue
        if (token === undefined) {
          token = t
          location = loc
        } else if (t !== token) {
          return failures.multiple_tokens
        }
      }
    }
    if (this.#params.length > 0) {
      const url = req.url ?? ''
      const q = url.indexOf('?')
      if (q !== -1) {
        const query = new URLSearchParams(url.slice(q + 1))
        for (const loc of this.#params) {
          for (const t of query.getAll(loc.name)) {
            if (t === '') continue
            if (token === undefined) {
              token = t
              location = loc
            } else if (t !== token) {
              return failures.multiple_tokens
            }
          }
        }
      }
    }
    if (token === undefined || location === undefined) return NONE
    if (token.length > limits.jwtLength) return failures.too_large
    const hit = this.#cache.get(token, Date.now())
    if (hit !== undefined && location.rules.includes(hit.rule)) {
      this.counters.cacheHits++
      return { kind: 'verified', verified: hit, location }
    }
    const pending = this.#pending.get(token)
    if (pending !== undefined && pending.location === location) return pending.outcome
    const outcome = this.#verify(token, location)
    if (this.#pending.size < defaults.jwtCacheSize) {
      this.#pending.set(token, { location, outcome })
      void outcome.then(() => this.#pending.delete(token))
    }
    return outcome
  }

  async #verify(token: string, location: Location): Promise<AuthnOutcome> {
    const jose = await loadJose()
    let iss: unknown
    try {
      iss = jose.decodeJwt(token).iss
    } catch {
      return failures.bad_format
    }
    let last: JwtFailure = 'unknown_issuer'
    for (const rule of location.rules) {
      if (rule.issuer !== iss) continue
      this.counters.verifications++
      try {
        const { payload } = await jose.jwtVerify(token, rule.keys(jose).getKey, {
          issuer: rule.issuer,
          ...(rule.audiences === undefined ? {} : { audience: rule.audiences as string[] }),
          clockTolerance: rule.clockSkewMs / 1000,
          algorithms: ALGORITHMS,
        })
        const verified = verifiedOf(payload, rule)
        const now = Date.now()
        const exp = typeof payload.exp === 'number' ? payload.exp * 1000 + rule.clockSkewMs : Infinity
        this.#cache.set(token, verified, Math.min(exp, now + rule.cacheDurationMs))
        return { kind: 'verified', verified, location }
      } catch (err) {
        last = failureOf(err)
      }
    }
    return failures[last]
  }

  /** Applies a verified token to the request: drops the token header unless forwarded, sets claim headers. */
  static apply(req: http.IncomingMessage, outcome: AuthnOutcome & { kind: 'verified' }): void {
    const { verified, location } = outcome
    if (!verified.rule.forwardOriginalToken && location.kind === 'header') removeHeaders(req, [location.name])
    for (const [name, value] of verified.headers) req.headers[name] = value
  }
}

function tokenAfterPrefix(value: string, prefix: string): string | undefined {
  if (prefix.length > 0) {
    if (value.length <= prefix.length) return undefined
    // Case-insensitive: `Bearer` is an auth scheme, and schemes are (RFC 9110 §11.1).
    for (let i = 0; i < prefix.length; i++) {
      let c = value.charCodeAt(i)
      if (c >= 65 && c <= 90) c += 32
      if (c !== prefix.charCodeAt(i)) return undefined
    }
  }
  const t = value.slice(prefix.length).trim()
  return t === '' ? undefined : t
}

function verifiedOf(payload: JWTPayload, rule: CompiledJwtRule): Verified {
  const claims = deepFreeze(payload)
  const aud = payload.aud
  const audiences = Object.freeze(aud === undefined ? [] : Array.isArray(aud) ? aud.filter((a) => typeof a === 'string') : [aud])
  const headers: [string, string][] = []
  for (const c of rule.claimHeaders) {
    const v = claimAt(payload, c.path)
    if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') {
      const clean = headerSafe(String(v))
      if (clean !== '') headers.push([c.header, clean])
    }
  }
  if (rule.payloadHeader !== undefined) headers.push([rule.payloadHeader, Buffer.from(JSON.stringify(payload)).toString('base64url')])
  const auth: RequestAuth = Object.freeze({
    principal: `${payload.iss ?? ''}/${payload.sub ?? ''}`,
    claims,
    audiences,
    presenter: typeof payload['azp'] === 'string' ? payload['azp'] : undefined,
  })
  return Object.freeze({ auth, rule, headers: Object.freeze(headers.map((h) => Object.freeze(h))) })
}

/** A claim value as a header value: control characters (CR, LF, NUL, ...) removed, bounded. */
function headerSafe(v: string): string {
  // eslint-disable-next-line no-control-regex
  const clean = v.replace(/[\x00-\x08\x0a-\x1f\x7f]/g, '')
  return clean.length > 4096 ? clean.slice(0, 4096) : clean
}

function deepFreeze<T>(v: T): T {
  if (typeof v === 'object' && v !== null && !Object.isFrozen(v)) {
    Object.freeze(v)
    for (const x of Object.values(v)) deepFreeze(x)
  }
  return v
}

function failureOf(err: unknown): JwtFailure {
  const code = (err as { code?: unknown } | null)?.code
  switch (code) {
    case 'ERR_JWT_EXPIRED':
      return 'expired'
    case 'ERR_JWT_CLAIM_VALIDATION_FAILED': {
      const claim = (err as { claim?: unknown }).claim
      return claim === 'nbf' ? 'not_yet_valid' : claim === 'aud' ? 'audience' : claim === 'iss' ? 'unknown_issuer' : 'claims'
    }
    case 'ERR_JWKS_NO_MATCHING_KEY':
    case 'ERR_JWKS_MULTIPLE_MATCHING_KEYS':
    case 'ERR_JWK_INVALID':
      return 'no_key'
    case 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED':
    case 'ERR_JOSE_ALG_NOT_ALLOWED':
    case 'ERR_JOSE_NOT_SUPPORTED':
      return 'signature'
    case 'ERR_JWS_INVALID':
    case 'ERR_JWT_INVALID':
      return 'bad_format'
    default:
      // Anything else came from fetching the key set: network, status, size, JSON, timeout.
      return 'jwks_fetch'
  }
}

/** Removes headers (lower-case names) from `req.headers` and `req.rawHeaders`. */
function removeHeaders(req: http.IncomingMessage, names: readonly string[]): void {
  let present = false
  for (const n of names) {
    if (req.headers[n] !== undefined) {
      delete req.headers[n]
      present = true
    }
  }
  if (!present) return
  const raw = req.rawHeaders
  const kept: string[] = []
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i] as string
    if (!names.includes(name.toLowerCase())) kept.push(name, raw[i + 1] as string)
  }
  req.rawHeaders = kept
}
