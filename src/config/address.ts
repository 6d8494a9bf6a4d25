/**
 * Endpoint addresses: `http://host:port`, `https://host:port`, or `host:port` (http).
 * IPv6 hosts are bracketed (`[::1]:8080`). No path, query, user info or fragment.
 */

/** A parsed endpoint address. */
export interface ParsedAddress {
  readonly protocol: 'http:' | 'https:'
  /** Host name or IP, without brackets. */
  readonly hostname: string
  readonly port: number
  /** `protocol//host:port`, the undici origin. */
  readonly origin: string
  /** `host:port` as it appears in an authority (IPv6 bracketed). */
  readonly hostPort: string
}

/** Parses an endpoint address, or returns a sentence saying what is wrong with it. */
export function parseAddress(address: string): ParsedAddress | string {
  const text = address.includes('://') ? address : `http://${address}`
  let url: URL
  try {
    url = new URL(text)
  } catch {
    return `"${address}" is not host:port nor an http(s) URL`
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return `scheme ${url.protocol} is not http: or https:`
  if (url.username !== '' || url.password !== '') return 'user info is not allowed in an endpoint address'
  if ((url.pathname !== '/' && url.pathname !== '') || url.search !== '' || url.hash !== '') {
    return 'an endpoint address has no path, query or fragment'
  }
  if (url.hostname === '') return 'the host is empty'
  const port = url.port === '' ? (url.protocol === 'https:' ? 443 : 80) : Number(url.port)
  if (port === 0) return 'port 0 is not a destination'
  const hostname = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname
  // Joined, not concatenated: `join` makes one flat string, where `+` and template literals
  // make a chain of string pieces that a host keeps as long as it lives (every endpoint of a
  // large config).
  const hostPort = [url.hostname, port].join(':')
  return Object.freeze({ protocol: url.protocol, hostname, port, origin: [url.protocol, hostPort].join('//'), hostPort })
}
