/**
 * The first step of the inbound chain: one authority and one path for every filter.
 *
 * HTTP/1.1 has four request-target forms (RFC 9112 §3.2): origin-form (`/a?b`), absolute-form
 * (`http://host/a?b`, sent to proxies and allowed to any server), authority-form (`host:port`,
 * CONNECT only) and asterisk-form (`*`, OPTIONS only). node:http hands the target to the app
 * as it came, so an absolute-form `GET http://app/admin` would reach `/admin` past every filter
 * that reads `req.url` as a path. As Envoy does before any filter runs, an absolute-form
 * target is split once into authority and path: `req.url` becomes the origin-form path and
 * the Host header becomes the target's authority (RFC 9112 §3.2.2: the target's authority
 * wins; Host is then replaced). Authority-form (CONNECT) keeps its target, and Host becomes
 * that authority too; asterisk-form keeps its meaning. Anything else is refused with 400.
 */
import type http from 'node:http'

const SCHEME = Symbol('sidecarless.targetScheme')

/** `host[:port]` as RFC 3986 allows it in an http(s) URI: IP literal or name, no userinfo, no percent-encoding. */
const AUTHORITY = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~!$&'()*+,;=]+)(?::(\d{1,5}))?$/
/** The parts of an absolute-form target: scheme, authority, then path and query (possibly empty). */
const ABSOLUTE = /^(https?):\/\/([^/?#]*)([^#]*)$/i
const CONNECT_FORM = 'a CONNECT request target must be host:port'

/**
 * Turns `req`'s request target into origin-form (absolute-form) or checks it (the other
 * forms), rewriting `req.url` and the Host header in `req.headers` and `req.rawHeaders`.
 * Returns `undefined` when the request may go on, or why it is malformed (answer 400).
 */
export function normalizeRequestTarget(req: http.IncomingMessage): string | undefined {
  const url = req.url ?? '/'
  // Origin-form: nearly every request, nothing to do (but CONNECT takes only authority-form).
  if (url.charCodeAt(0) === 47) return req.method === 'CONNECT' ? CONNECT_FORM : undefined
  if (req.method === 'CONNECT') {
    const m = AUTHORITY.exec(url)
    if (m === null || m[1] === undefined || !validPort(m[1])) return CONNECT_FORM
    setHost(req, url)
    return undefined
  }
  if (url === '*') return req.method === 'OPTIONS' ? undefined : 'the request target * is only for OPTIONS'
  const m = ABSOLUTE.exec(url)
  if (m === null) return 'the request target is not a path, an absolute http(s) URL, host:port (CONNECT) or * (OPTIONS)'
  const authority = m[2] as string
  if (authority.includes('@')) return 'the request target carries userinfo'
  const a = AUTHORITY.exec(authority)
  if (a === null || (a[1] !== undefined && !validPort(a[1]))) return 'the request target has no valid authority'
  const rest = m[3] as string
  req.url = rest === '' ? '/' : rest.charCodeAt(0) === 63 ? `/${rest}` : rest
  ;(req as { [SCHEME]?: 'http' | 'https' })[SCHEME] = (m[1] as string).toLowerCase() as 'http' | 'https'
  setHost(req, authority)
  return undefined
}

/** The scheme of `req`'s request target when it came in absolute form, else `undefined`. */
export function absoluteFormScheme(req: http.IncomingMessage): 'http' | 'https' | undefined {
  return (req as { [SCHEME]?: 'http' | 'https' })[SCHEME]
}

function validPort(port: string): boolean {
  return Number(port) <= 65535
}

/** Makes `authority` the request's one Host, in the parsed headers and the raw ones. */
function setHost(req: http.IncomingMessage, authority: string): void {
  const raw = req.rawHeaders
  let found = false
  const kept: string[] = []
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i] as string
    if (name.length === 4 && name.toLowerCase() === 'host') {
      if (found) continue
      found = true
      kept.push(name, authority)
    } else {
      kept.push(name, raw[i + 1] as string)
    }
  }
  if (!found) kept.push('Host', authority)
  req.rawHeaders = kept
  req.headers.host = authority
}
