/**
 * SPIFFE identities as authorization sees them: Istio's principal is the SPIFFE ID without
 * `spiffe://` (`cluster.local/ns/default/sa/sleep`), its namespace the segment after `ns/`.
 */

/** The Istio principal of a SPIFFE ID (`spiffe://td/ns/x/sa/y` → `td/ns/x/sa/y`). */
export function principalOf(spiffeId: string | undefined): string | undefined {
  if (spiffeId === undefined) return undefined
  return spiffeId.startsWith('spiffe://') ? spiffeId.slice(9) : spiffeId
}

/** The namespace of a SPIFFE ID in Istio's form (`.../ns/<namespace>/sa/...`), if it has one. */
export function namespaceOf(spiffeId: string | undefined): string | undefined {
  if (spiffeId === undefined) return undefined
  const principal = principalOf(spiffeId) as string
  const parts = principal.split('/')
  for (let i = 1; i + 1 < parts.length; i++) if (parts[i] === 'ns') return parts[i + 1] === '' ? undefined : parts[i + 1]
  return undefined
}
