/**
 * The security stage of the inbound chain: JWT authentication, then authorization, each
 * present only when configured (`snapshot.requestAuthentication`, `snapshot.authorization`).
 */
import type http from 'node:http'
import type { MeshRequestContext } from '../observability/context.js'
import type { Snapshot } from '../snapshot/snapshot.js'
import type { SecurityCounters } from '../security/stats.js'
import type { RequestAuth } from '../security/jwt.js'
import { applyAuthorization } from './authz-filter.js'
import { applyJwtAuthn } from './jwt-filter.js'

/** Runs authentication and authorization of `snapshot` on `req`, then `proceed` unless refused. */
export function applySecurity(
  req: http.IncomingMessage,
  res: http.ServerResponse,
  snapshot: Snapshot,
  ctx: MeshRequestContext,
  counters: SecurityCounters,
  proceed: () => void,
): void {
  const authn = snapshot.requestAuthentication
  const authorizer = snapshot.authorization
  const authorize = (auth: RequestAuth | undefined): void => {
    if (authorizer === null || applyAuthorization(req, res, authorizer, ctx.peer?.identity, auth, counters)) proceed()
  }
  if (authn === null) authorize(undefined)
  else applyJwtAuthn(req, res, authn, ctx, counters, authorize)
}
