/**
 * SPIFFE identities as authorization sees them: Istio's principal is the SPIFFE ID without
 * `spiffe://` (`cluster.local/ns/default/sa/sleep`), its namespace the segment after `ns/`.
 */
import type { TLSSocket } from 'node:tls'

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

/**
 * The SPIFFE ID in the URI SAN of the peer certificate of a verified TLS connection, or
 * `undefined`. Only an authorized peer (the server verified its chain) counts; one URI SAN
 * of scheme `spiffe` is expected (SPIFFE X.509-SVID: exactly one).
 *
 * Private stand-in until `peerOf()` (src/inbound/server.ts) fills `identity` itself.
 */
export function spiffeIdOfSocket(socket: unknown): string | undefined {
  const s = socket as Partial<TLSSocket> | undefined
  if (s === undefined || s.encrypted !== true || s.authorized !== true || typeof s.getPeerCertificate !== 'function') return undefined
  // One connection has one peer certificate: read it once, not per request.
  const known = bySocket.get(s)
  if (known !== undefined) return known === NONE ? undefined : known
  const id = readSpiffeId(s as TLSSocket)
  bySocket.set(s, id ?? NONE)
  return id
}

const NONE = ''
const bySocket = new WeakMap<object, string>()

function readSpiffeId(s: TLSSocket): string | undefined {
  const cert = s.getPeerCertificate(false)
  const san = cert?.subjectaltname
  if (typeof san !== 'string' || san.length > 65_536) return undefined
  let found: string | undefined
  for (const entry of san.split(', ')) {
    if (!entry.startsWith('URI:spiffe://')) continue
    if (found !== undefined) return undefined
    found = entry.slice(4)
  }
  return found
}
