/** Envoy `RedirectAction`: builds the Location of a redirect from the request. */
import { defaults } from '../config/defaults.js'
import type { RedirectAction } from '../config/types.js'
import type { CompiledMatch } from './matcher.js'
import type { RedirectActionCompiled } from './route-action.js'
import type { RequestView } from './request-view.js'

const DEFAULT_PORT: Record<string, string> = { http: '80', https: '443' }

/** Compiles a redirect action. */
export function buildRedirect(r: RedirectAction, match: CompiledMatch): RedirectActionCompiled {
  const status = r.responseCode ?? defaults.redirectResponseCode
  const matched = match.matchedPrefix ?? ''
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
      else if (scheme !== req.scheme) port = undefined // a scheme change drops the old port (Envoy)
      if (port !== undefined && DEFAULT_PORT[scheme] === port) port = undefined

      let path: string
      let query = req.queryString
      if (r.pathRedirect !== undefined) {
        const q = r.pathRedirect.indexOf('?')
        path = q === -1 ? r.pathRedirect : r.pathRedirect.slice(0, q)
        if (q !== -1) query = r.pathRedirect.slice(q + 1)
      } else if (r.prefixRewrite !== undefined) {
        path = match.isExactPath ? r.prefixRewrite : r.prefixRewrite + req.path.slice(matched.length)
      } else {
        path = req.path
      }
      if (r.stripQuery === true) query = ''
      return `${scheme}://${host}${port === undefined ? '' : `:${port}`}${path}${query === '' ? '' : `?${query}`}`
    },
  })
}
