/** Envoy `RedirectAction`: builds the Location of a redirect from the request. */
import { defaults } from '../config/defaults.js'
import { compileRegex } from '../config/regex.js'
import type { RedirectAction } from '../config/types.js'
import type { CompiledMatch } from './matcher.js'
import type { RedirectActionCompiled } from './route-action.js'
import type { RequestView } from './request-view.js'

const DEFAULT_PORT: Record<string, string> = { http: '80', https: '443' }
/**
 * The request's port a scheme change drops (Envoy): `:80` when going to https, `:443` when
 * going to http. Any other port, and any port under another scheme (`ws`), is kept.
 */
const CROSSED_PORT: Record<string, string> = { https: '80', http: '443' }

/** Compiles a redirect action. */
export function buildRedirect(r: RedirectAction, match: CompiledMatch): RedirectActionCompiled {
  const status = r.responseCode ?? defaults.redirectResponseCode
  const matched = match.matchedPrefix ?? ''
  const regex = r.regexRewrite === undefined ? undefined : compileRegex(r.regexRewrite.pattern)
  return Object.freeze({
    kind: 'redirect' as const,
    status,
    location(req: RequestView): string {
      const scheme = r.httpsRedirect === true ? 'https' : (r.schemeRedirect ?? req.scheme).toLowerCase()
      let host = req.authority
      let port: string | undefined
      const colon = host.lastIndexOf(':')
      if (colon !== -1 && host.indexOf(']', colon) === -1) {
        port = host.slice(colon + 1)
        host = host.slice(0, colon)
      }
      if (r.hostRedirect !== undefined) host = r.hostRedirect
      if (r.portRedirect !== undefined) port = String(r.portRedirect)
      else if (port !== undefined && scheme !== req.scheme && CROSSED_PORT[scheme] === port) port = undefined
      if (port !== undefined && DEFAULT_PORT[scheme] === port) port = undefined

      let path: string
      // strip_query drops the request's query; a query written in path_redirect stays (Envoy).
      let query = r.stripQuery === true ? '' : req.queryString
      if (r.pathRedirect !== undefined) {
        const q = r.pathRedirect.indexOf('?')
        path = q === -1 ? r.pathRedirect : r.pathRedirect.slice(0, q)
        if (q !== -1) query = r.pathRedirect.slice(q + 1)
        // Envoy makes a path_redirect without a leading slash absolute.
        if (!path.startsWith('/')) path = `/${path}`
      } else if (r.prefixRewrite !== undefined) {
        // After an exact path or a regex match (both take the whole path) the rewrite replaces the path.
        path = match.isExactPath || match.matchedPrefix === undefined ? r.prefixRewrite : r.prefixRewrite + req.path.slice(matched.length)
      } else if (regex !== undefined) {
        // RE2::GlobalReplace on the path without the query, as the route's regex_rewrite.
        path = regex.replaceAll(req.path, (r.regexRewrite as NonNullable<RedirectAction['regexRewrite']>).substitution)
      } else {
        path = req.path
      }
      return `${scheme}://${host}${port === undefined ? '' : `:${port}`}${path}${query === '' ? '' : `?${query}`}`
    },
  })
}
