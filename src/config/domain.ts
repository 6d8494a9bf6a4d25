/** Virtual host domain patterns, as Envoy defines them. */

/** A classified domain pattern; `host` is lower-cased, `port` is the explicit port or undefined. */
export type DomainPattern =
  | { readonly kind: 'exact'; readonly host: string; readonly port: string | undefined }
  | { readonly kind: 'suffix'; readonly host: string; readonly port: string | undefined }
  | { readonly kind: 'prefix'; readonly host: string; readonly port: string | undefined }
  | { readonly kind: 'any'; readonly host: ''; readonly port: undefined }

const HOST_CHARS = /^[a-z0-9._~!$&'()+,;=%:[\]-]*$/

/**
 * Classifies a domain: `*`, `*suffix` (`*.example.com`, `*-bar.com`), `prefix*`
 * (`reviews.*`), or exact; each may carry `:port`. Returns a sentence when invalid.
 */
export function parseDomain(domain: string): DomainPattern | string {
  const d = domain.toLowerCase()
  if (d === '*') return { kind: 'any', host: '', port: undefined }
  if (d.length === 0) return 'a domain is empty'
  let host = d
  let port: string | undefined
  const portMatch = /:(\d{1,5}|\*)$/.exec(d)
  if (portMatch !== null && !d.endsWith(']') && !(d.startsWith('[') && !d.includes(']:'))) {
    host = d.slice(0, portMatch.index)
    port = portMatch[1] === '*' ? undefined : portMatch[1]
    if (port !== undefined && (Number(port) > 65535 || Number(port) === 0)) return `"${domain}": port ${port} is not a TCP port`
  }
  const stars = host.split('*').length - 1
  if (stars > 1) return `"${domain}" has more than one wildcard`
  if (!HOST_CHARS.test(host.replace('*', ''))) return `"${domain}" has characters a host cannot have`
  if (stars === 1) {
    if (host === '*') return { kind: 'any', host: '', port: undefined }
    if (host.startsWith('*')) return { kind: 'suffix', host: host.slice(1), port }
    if (host.endsWith('*')) return { kind: 'prefix', host: host.slice(0, -1), port }
    return `"${domain}": a wildcard may only start or end a domain`
  }
  return { kind: 'exact', host, port }
}
