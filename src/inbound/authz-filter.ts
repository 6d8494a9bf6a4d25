/**
 * The authorization filter (Envoy `rbac` as Istio configures it from AuthorizationPolicies):
 * refused requests get Envoy's 403 `RBAC: access denied`; which policy refused them goes to
 * metrics (`sidecarless_rbac_denied_total{policy}`), never to the caller.
 */
import type http from 'node:http'
import { AuthzRequest } from '../security/authz-request.js'
import type { Authorizer } from '../security/authz.js'
import type { RequestAuth } from '../security/jwt.js'
import type { SecurityCounters } from '../security/stats.js'
import { refuse } from './local-refusal.js'

/** Decides on `req`; answers 403 and returns false when refused. */
export function applyAuthorization(
  req: http.IncomingMessage,
  res: http.ServerResponse,
  authorizer: Authorizer,
  identity: string | undefined,
  auth: RequestAuth | undefined,
  counters: SecurityCounters,
): boolean {
  const decision = authorizer.evaluate(new AuthzRequest(req, identity, auth), (policy) => counters.audited(policy))
  if (decision.allowed) {
    counters.rbacAllowed++
    return true
  }
  counters.rbacDenied(decision.policy as string)
  refuse(res, 'denied', 403, 'RBAC: access denied')
  return false
}
