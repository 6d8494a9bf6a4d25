/**
 * Istio `ipBlocks`: single addresses or CIDR ranges, IPv4 and IPv6, parsed strictly
 * (`10.0.0.0/8`, `2001:db8::/32`, `192.168.1.7`). Matching uses `net.BlockList`; an
 * IPv4-mapped IPv6 peer (`::ffff:10.1.2.3`, as dual-stack servers report) counts as IPv4.
 */
import { BlockList, isIP, isIPv4 } from 'node:net'

/** A parsed block, or why it is not one. */
export function parseIpBlock(block: string): { address: string; prefix: number; family: 'ipv4' | 'ipv6' } | string {
  const slash = block.indexOf('/')
  const address = slash === -1 ? block : block.slice(0, slash)
  const v = isIP(address)
  if (v === 0 || address.includes('%')) return `${JSON.stringify(block)} is not an IP address or CIDR range`
  const family = v === 4 ? 'ipv4' : 'ipv6'
  const max = v === 4 ? 32 : 128
  if (slash === -1) return { address, prefix: max, family }
  const bits = block.slice(slash + 1)
  if (!/^(0|[1-9][0-9]{0,2})$/.test(bits) || Number(bits) > max) return `${JSON.stringify(block)} has a prefix length outside 0..${max}`
  return { address, prefix: Number(bits), family }
}

/** Compiles a list of blocks (already validated) into a matcher of addresses. */
export function compileIpBlocks(blocks: readonly string[]): (address: string | undefined) => boolean {
  const list = new BlockList()
  for (const b of blocks) {
    const parsed = parseIpBlock(b)
    if (typeof parsed === 'string') continue
    list.addSubnet(parsed.address, parsed.prefix, parsed.family)
  }
  return (address) => {
    if (address === undefined) return false
    const a = unmapped(address)
    const family = isIPv4(a) ? 'ipv4' : 'ipv6'
    try {
      return list.check(a, family)
    } catch {
      return false
    }
  }
}

/** `::ffff:1.2.3.4` → `1.2.3.4`; other addresses unchanged. */
export function unmapped(address: string): string {
  if (address.length > 7 && address.charCodeAt(0) === 58 && address.toLowerCase().startsWith('::ffff:')) {
    const v4 = address.slice(7)
    if (isIPv4(v4)) return v4
  }
  return address
}
