/** Envoy `RedirectAction`: builds the Location of a redirect from the request. */
import { defaults } from '../config/defaults.js'
import { compileRegex } from '../config/regex.js'
import type { RedirectAction } from '../config/types.js'
import type { CompiledMatch } from '../http/matcher.js'
import type { RedirectActionCompiled } from './route-action.js'
import type { RequestView } from '../http/request-view.js'

/** The default port of the request's scheme, which a scheme change drops (Envoy). */
const DEFAULT_PORT: Record<string, string> = { http: '80', https: '443' }

/**
 * The Host of a redirect that keeps the request's (Envoy's processRequestHost): its port is
 * dropped when `port_redirect` replaces it, or when the scheme changes and the port is the
 * default of the request's scheme (`http://h:80` → `https://h`); any other port stays
 * (`http://h:8080` → `https://h:8080`, `https://h:80` → `ws://h:80`).
 */
function requestHost(authority: string, requestScheme: string, scheme: string, portRedirected: boolean): string {
  // An IPv6 literal's port follows "]:".
  const colon = authority.startsWith('[') ? authority.lastIndexOf(']:') + 1 : authority.lastIndexOf(':')
  if (colon <= 0) return authority
  const port = authority.slice(colon + 1)
  const drop = portRedirected || (scheme !== requestScheme && DEFAULT_PORT[requestScheme] === port)
  return drop ? authority.slice(0, colon) : authority
}

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
      // host_redirect replaces the whole authority; port_redirect then adds its port.
      const host = r.hostRedirect ?? requestHost(req.authority, req.scheme, scheme, r.portRedirect !== undefined)
      const port = r.portRedirect === undefined ? '' : `:${r.portRedirect}`

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
      return `${scheme}://${host}${port}${path}${query === '' ? '' : `?${query}`}`
    },
  })
}
