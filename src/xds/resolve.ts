/**
 * Host names in endpoint addresses, resolved by the control plane: xDS endpoints are IP
 * addresses (gRPC clients refuse names in a ClusterLoadAssignment), so the control plane
 * does for its clients what a `strict_dns` cluster does in Envoy.
 *
 * @module
 */
import { lookup } from 'node:dns/promises'
import { isIP } from 'node:net'
import { parseAddress } from '../config/address.js'
import type { MeshConfig } from '../config/types.js'

/** Every host name (not IP) in the config's endpoint addresses. */
export function hostNamesOf(config: MeshConfig): string[] {
  const names = new Set<string>()
  for (const c of config.clusters ?? []) {
    for (const e of c.endpoints ?? []) {
      const parsed = parseAddress(e.address)
      if (typeof parsed !== 'string' && isIP(parsed.hostname) === 0) names.add(parsed.hostname)
    }
  }
  return [...names].sort()
}

/**
 * Resolves `names` (all addresses of each, in the resolver's order). A name that does not
 * resolve maps to no address, and is reported through `onError`.
 */
export async function resolveHostNames(names: readonly string[], onError: (name: string, err: Error) => void): Promise<Map<string, string[]>> {
  const out = new Map<string, string[]>()
  await Promise.all(names.map(async (name) => {
    try {
      const found = await lookup(name, { all: true })
      out.set(name, found.map((a) => a.address))
    } catch (err) {
      out.set(name, [])
      onError(name, err as Error)
    }
  }))
  return out
}

/** True when two resolutions give the same addresses. */
export function sameResolution(a: ReadonlyMap<string, readonly string[]>, b: ReadonlyMap<string, readonly string[]>): boolean {
  if (a.size !== b.size) return false
  for (const [k, v] of a) {
    const w = b.get(k)
    if (w === undefined || w.length !== v.length || w.some((x, i) => x !== v[i])) return false
  }
  return true
}
