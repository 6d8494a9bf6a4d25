/**
 * The JWT authentication filter (Envoy `jwt_authn` as Istio configures it from a
 * `RequestAuthentication`): a request without a token goes on unauthenticated; one with a
 * verified token goes on with `mesh.context().auth` set and the rule's headers applied; one
 * with an invalid token is answered 401 with an RFC 6750 `WWW-Authenticate` challenge.
 */
import type http from 'node:http'
import type { MeshRequestContext } from '../observability/context.js'
import { JWT_FAILURE_BODY, RequestAuthentication, type AuthnOutcome, type RequestAuth } from '../security/jwt.js'
import type { SecurityCounters } from '../security/stats.js'
import { refuse } from './local-refusal.js'

/**
 * Authenticates `req`, then calls `proceed` with the verified auth (or `undefined` when the
 * request had no token) — at once when the token is cached or absent, later otherwise — or
 * answers 401 and never calls it.
 */
export function applyJwtAuthn(
  req: http.IncomingMessage,
  res: http.ServerResponse,
  authn: RequestAuthentication,
  ctx: MeshRequestContext,
  counters: SecurityCounters,
  proceed: (auth: RequestAuth | undefined) => void,
): void {
  const outcome = authn.authenticate(req)
  if (!(outcome instanceof Promise)) {
    settle(outcome, true)
    return
  }
  outcome.then(
    (o) => {
      // The caller may have gone away while the keys were fetched.
      if (res.destroyed || res.writableEnded) return
      settle(o, false)
    },
    // authenticate() never rejects; a bug there must still answer, never hang.
    () => settle({ kind: 'failed', reason: 'signature', cacheHit: false }, false),
  )

  function settle(o: AuthnOutcome, sync: boolean): void {
    if (o.kind === 'none') {
      proceed(undefined)
      return
    }
    if (o.kind === 'verified') {
      counters.jwtAllowed++
      if (sync) counters.jwtCacheHits++
      else counters.jwtCacheMisses++
      RequestAuthentication.apply(req, o)
      ctx.auth = o.verified.auth
      proceed(o.verified.auth)
      return
    }
    if (!sync) counters.jwtCacheMisses++
    counters.jwtDenied(o.reason)
    refuse(res, 'unauthenticated', 401, JWT_FAILURE_BODY[o.reason], [['www-authenticate', `Bearer realm="${realmOf(req)}", error="invalid_token"`]])
  }
}

/** Envoy's realm: the request URL without its query, with anything a quoted-string cannot carry removed. */
function realmOf(req: http.IncomingMessage): string {
  const scheme = (req.socket as { encrypted?: boolean }).encrypted === true ? 'https' : 'http'
  // A CONNECT target is an authority, already the Host: no path.
  const url = req.method === 'CONNECT' ? '' : (req.url ?? '/')
  const q = url.indexOf('?')
  const realm = `${scheme}://${req.headers.host ?? ''}${q === -1 ? url : url.slice(0, q)}`
  return realm.replace(/[^\x21\x23-\x5b\x5d-\x7e]/g, '').slice(0, 512)
}
