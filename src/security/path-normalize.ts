/**
 * The path authorization matches on: the request path without its query, normalised as
 * Istio's `MERGE_SLASHES` normalisation does (RFC 3986 dot segments removed, percent-encoded
 * unreserved characters decoded, backslashes and runs of slashes merged), so `/admin` cannot
 * be dodged with `//admin`, `/x/../admin` or `/%61dmin`. The app still sees the original URL.
 */

const UNRESERVED = /%(2[dDeE]|3[0-9]|[46][1-9a-fA-F]|[57][0-9aA]|5[fF]|7[eE])/g

/** The normalised path of a request target (`/a/./b/../c?x=1` → `/a/c`). */
export function normalizePath(target: string): string {
  const q = target.indexOf('?')
  let path = q === -1 ? target : target.slice(0, q)
  const h = path.indexOf('#')
  if (h !== -1) path = path.slice(0, h)
  // Fast path: nothing to normalise in the common case.
  if (!/[%\\]|\/\/|\/\.(?:\/|\.|$)/.test(path)) return path === '' ? '/' : path
  if (path.includes('%')) path = path.replace(UNRESERVED, (m) => String.fromCharCode(parseInt(m.slice(1), 16)))
  path = path.replace(/\\/g, '/')
  const out: string[] = []
  for (const seg of path.split('/')) {
    if (seg === '' || seg === '.') continue
    if (seg === '..') out.pop()
    else out.push(seg)
  }
  const trailing = /\/(\.{0,2})$/.test(path) && out.length > 0
  return `/${out.join('/')}${trailing ? '/' : ''}`
}
