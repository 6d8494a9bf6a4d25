/**
 * Where a JWT rule's keys come from: an inline JWKS (Istio `jwks`), or a JWKS URL (Istio
 * `jwksUri`) fetched by jose's remote key set through a dispatcher of our own — never the
 * mesh's, which may be the global one — with a timeout, a bound on the document's size,
 * the cache duration of the rule, at most one refetch per cooldown for unknown `kid`s, and a
 * pause after a failed fetch so a down endpoint is not hammered once per request.
 *
 * jose is passed in by the caller, which imports it on first use: loading it costs ~150 ms,
 * which a mesh without JWT rules should not pay.
 */
import type * as JoseModule from 'jose'
import type { FetchImplementation, JSONWebKeySet, JWTVerifyGetKey } from 'jose'
import { Agent, request, type Dispatcher } from 'undici'
import { defaults, limits } from '../config/defaults.js'

/** The jose module. */
export type Jose = typeof JoseModule

/** A key resolver for `jwtVerify`, with fetch counters when it is remote. */
export interface KeySource {
  readonly getKey: JWTVerifyGetKey
  readonly stats: JwksStats
}

/** Counters of a remote JWKS. */
export interface JwksStats {
  /** Fetches that returned a usable document. */
  fetched: number
  /** Fetches that failed (network, status, size, timeout, bad JSON), and refused during the pause after one. */
  failed: number
}

/** A key source over an inline JWKS (already validated). */
export function inlineKeySource(jose: Jose, jwks: JSONWebKeySet): KeySource {
  return { getKey: jose.createLocalJWKSet(jwks), stats: { fetched: 0, failed: 0 } }
}

/** Options of a remote key source. */
export interface RemoteJwksOptions {
  readonly timeoutMs: number
  readonly cacheDurationMs: number
  /** Default {@link defaults.jwksCooldownMs}. */
  readonly cooldownMs?: number
  /** Default {@link defaults.jwksFailedRefetchMs}. */
  readonly failedRefetchMs?: number
}

let sharedAgent: Agent | undefined

/**
 * The dispatcher of every JWKS fetch: a plain undici Agent, so key fetches never go
 * through the mesh (even when it is the global dispatcher). Connections are not kept
 * (fetches are minutes apart), so it holds no socket and no timer between fetches.
 */
function jwksDispatcher(): Dispatcher {
  sharedAgent ??= new Agent({ connections: 4, keepAliveTimeout: 1_000, maxResponseSize: limits.jwksBytes })
  return sharedAgent
}

/** A key source fetching `uri`. */
export function remoteKeySource(jose: Jose, uri: string, options: RemoteJwksOptions): KeySource {
  const stats: JwksStats = { fetched: 0, failed: 0 }
  const failedRefetchMs = options.failedRefetchMs ?? defaults.jwksFailedRefetchMs
  let pausedUntil = 0
  const fetchJwks: FetchImplementation = async (url, init) => {
    const now = performance.now()
    if (now < pausedUntil) {
      stats.failed++
      throw new Error('the JWKS endpoint failed a moment ago; not refetching yet')
    }
    try {
      const res = await request(url, {
        dispatcher: jwksDispatcher(),
        method: 'GET',
        headers: { accept: 'application/json, application/jwk-set+json' },
        signal: init.signal,
        reset: true,
        headersTimeout: options.timeoutMs,
        bodyTimeout: options.timeoutMs,
      })
      const chunks: Buffer[] = []
      let size = 0
      for await (const chunk of res.body as AsyncIterable<Buffer>) {
        size += chunk.length
        if (size > limits.jwksBytes) {
          res.body.destroy()
          throw new Error(`the JWKS document is larger than ${limits.jwksBytes} bytes`)
        }
        chunks.push(chunk)
      }
      if (res.statusCode !== 200) throw new Error(`the JWKS endpoint answered ${res.statusCode}`)
      const body = Buffer.concat(chunks)
      // Parsed here so that a bad document counts as a failed fetch (and pauses refetching).
      const keys = parseFetchedJwks(body)
      stats.fetched++
      return new Response(JSON.stringify(keys), { status: 200, headers: { 'content-type': 'application/json' } })
    } catch (err) {
      stats.failed++
      pausedUntil = performance.now() + failedRefetchMs
      throw err
    }
  }
  const getKey = jose.createRemoteJWKSet(new URL(uri), {
    timeoutDuration: Math.max(1, Math.round(options.timeoutMs)),
    cacheMaxAge: options.cacheDurationMs,
    cooldownDuration: options.cooldownMs ?? defaults.jwksCooldownMs,
    [jose.customFetch]: fetchJwks,
  })
  return { getKey, stats }
}

function parseFetchedJwks(body: Buffer): JSONWebKeySet {
  const parsed: unknown = JSON.parse(body.toString('utf8'))
  if (typeof parsed !== 'object' || parsed === null || !Array.isArray((parsed as { keys?: unknown }).keys)) {
    throw new Error('the JWKS endpoint did not return a JSON Web Key Set')
  }
  // Symmetric keys are never used to verify: dropping them here means no token can select one.
  const keys = (parsed as { keys: unknown[] }).keys.filter((k) => typeof k === 'object' && k !== null && (k as { kty?: unknown }).kty !== 'oct')
  return { keys } as JSONWebKeySet
}
