/**
 * The keys of an authorization policy's `when` conditions (Istio's `AuthorizationPolicy`
 * condition keys), parsed once: validation reports unknown ones by path, and the runtime
 * (`security/authz.ts`) compiles the known ones into predicates.
 */

/** A parsed `when` key. */
export type ConditionKey =
  | { readonly kind: 'header'; readonly name: string }
  | { readonly kind: 'claim'; readonly path: readonly string[] }
  | { readonly kind: 'source.ip' | 'remote.ip' | 'destination.ip' | 'source.namespace' | 'source.principal' | 'request.auth.principal' | 'request.auth.audiences' | 'request.auth.presenter' | 'destination.port' | 'connection.sni' }

const SIMPLE_KEYS = new Set(['source.ip', 'remote.ip', 'destination.ip', 'source.namespace', 'source.principal', 'request.auth.principal', 'request.auth.audiences', 'request.auth.presenter', 'destination.port', 'connection.sni'])

/** Parses a `when` key, or returns why it is not one. */
export function parseConditionKey(key: string): ConditionKey | string {
  if (SIMPLE_KEYS.has(key)) return { kind: key } as ConditionKey
  const header = /^request\.headers\[([^\][]+)\]$/.exec(key)
  if (header !== null) return { kind: 'header', name: (header[1] as string).toLowerCase() }
  if (key.startsWith('request.auth.claims[')) {
    const rest = key.slice('request.auth.claims'.length)
    if (/^(\[[^\][]+\])+$/.test(rest)) return { kind: 'claim', path: rest.slice(1, -1).split('][') }
    return `${JSON.stringify(key)}: a claim key is request.auth.claims[name] (nested: [a][b])`
  }
  return `unknown condition key ${JSON.stringify(key.length > 64 ? `${key.slice(0, 64)}…` : key)}; known: request.headers[<name>], ${[...SIMPLE_KEYS].join(', ')}, request.auth.claims[<name>]`
}

/** True for the keys whose values are IPs or CIDRs. */
export function isIpConditionKey(key: ConditionKey): boolean {
  return key.kind === 'source.ip' || key.kind === 'remote.ip' || key.kind === 'destination.ip'
}
