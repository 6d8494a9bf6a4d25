/**
 * The security stage of the inbound chain: JWT authentication, then authorization, each
 * present only when configured (`filters.requestAuthentication`, `filters.authorization`).
 */
import type http from 'node:http'
import type { MeshRequestContext } from '../observability/context.js'
import type { InboundFilters } from '../snapshot/snapshot.js'
import type { SecurityCounters } from '../security/stats.js'
import type { RequestAuth } from '../security/jwt.js'
import { applyAuthorization } from './authz-filter.js'
import { applyJwtAuthn } from './jwt-filter.js'

/** Runs the authentication and authorization of `filters` on `req`, then `proceed` unless refused. */
export function applySecurity(
  req: http.IncomingMessage,
  res: http.ServerResponse,
  filters: InboundFilters,
  ctx: MeshRequestContext,
  counters: SecurityCounters,
  proceed: () => void,
): void {
  const authn = filters.requestAuthentication
  const authorizer = filters.authorization
  const authorize = (auth: RequestAuth | undefined): void => {
    if (authorizer === null || applyAuthorization(req, res, authorizer, ctx.peer?.identity, auth, counters)) proceed()
  }
  if (authn === null) authorize(undefined)
  else applyJwtAuthn(req, res, authn, ctx, counters, authorize)
}
