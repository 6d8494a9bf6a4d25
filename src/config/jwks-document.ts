/**
 * Checks of a JSON Web Key Set document and of a JWKS URL, used by validation. Kept apart
 * from the key sources so validating a config does not load jose.
 */
import { createPublicKey, type JsonWebKey } from 'node:crypto'
import type { JSONWebKeySet } from 'jose'

/**
 * Parses an inline JWKS and checks every key is a public signature key Node can import.
 * Returns the set, or why it cannot be used (a sentence for validation).
 */
export function parseJwks(text: string): JSONWebKeySet | string {
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch {
    return 'jwks is not valid JSON'
  }
  if (typeof parsed !== 'object' || parsed === null || !Array.isArray((parsed as { keys?: unknown }).keys)) {
    return 'jwks is not a JSON Web Key Set (an object with a "keys" list)'
  }
  const keys = (parsed as { keys: unknown[] }).keys
  if (keys.length === 0) return 'jwks has no keys'
  for (let i = 0; i < keys.length; i++) {
    const k = keys[i]
    if (typeof k !== 'object' || k === null || Array.isArray(k)) return `jwks key ${i} is not an object`
    const jwk = k as Record<string, unknown>
    if (jwk['kty'] === 'oct') return `jwks key ${i} is a symmetric (oct) key; only public keys are accepted`
    if (jwk['d'] !== undefined) return `jwks key ${i} is a private key; publish only the public part`
    try {
      createPublicKey({ key: jwk as JsonWebKey, format: 'jwk' })
    } catch {
      return `jwks key ${i} (kty ${JSON.stringify(jwk['kty'])}) is not a public key Node can import`
    }
  }
  return parsed as JSONWebKeySet
}

/** Why `value` cannot be a JWKS URL, or `undefined`: an absolute http(s) URL with a host and no credentials. */
export function jwksUriProblem(value: string): string | undefined {
  let url: URL
  try {
    url = new URL(value)
  } catch {
    return `${JSON.stringify(value.slice(0, 64))} is not an absolute URL`
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return `a JWKS URL is http or https, not ${url.protocol.slice(0, -1)}`
  if (url.username !== '' || url.password !== '') return 'a JWKS URL must not carry credentials (user:password@)'
  if (url.hostname === '') return 'the JWKS URL has no host'
  return undefined
}

