/**
 * How a filter of the inbound chain refuses a request itself: JWT authentication (401),
 * authorization (403), the rate limits (429, flag `RL`) and the concurrency limit (503,
 * flag `UO`) all answer through {@link refuse}, which marks the response with the kind of
 * refusal so the pipeline's metrics and span count it as that error, not as an app
 * response. The mark is a symbol on the response object: no header goes to the client for it.
 */
import type http from 'node:http'
import { RESPONSE_FLAGS_HEADER } from '../response-headers.js'

const REFUSED = Symbol('sidecarless.refused')

/** Why the mesh refused an inbound request itself. */
export type RefusalKind = 'unauthenticated' | 'denied' | 'rate_limited' | 'overflow'

/** The response flag (`x-sidecarless-response-flags`) a refusal of this kind carries, as Envoy's access log names it. */
const FLAG: Readonly<Record<RefusalKind, string | undefined>> = { unauthenticated: undefined, denied: undefined, rate_limited: 'RL', overflow: 'UO' }

/**
 * Answers `res` with `status` and a plain-text `body`, marked as refused by the mesh for
 * `kind`. When the response has already started, only the mark is set.
 */
export function refuse(res: http.ServerResponse, kind: RefusalKind, status: number, body: string, headers?: Iterable<readonly [string, string]>): void {
  ;(res as { [REFUSED]?: RefusalKind })[REFUSED] = kind
  if (res.headersSent || res.writableEnded || res.destroyed) return
  res.statusCode = status
  res.setHeader('content-type', 'text/plain')
  const flag = FLAG[kind]
  if (flag !== undefined) res.setHeader(RESPONSE_FLAGS_HEADER, flag)
  if (headers !== undefined) for (const [k, v] of headers) res.setHeader(k, v)
  res.end(body)
}

/**
 * The kind of refusal `res` carries: the mark {@link refuse} set, or — for a response the
 * app relayed from a mesh that refused it (the proxy forwarding a local reply) — the
 * `RL` / `UO` flag it carries.
 */
export function refusalOf(res: http.ServerResponse): RefusalKind | undefined {
  const kind = (res as { [REFUSED]?: RefusalKind })[REFUSED]
  if (kind !== undefined) return kind
  const flag = res.getHeader(RESPONSE_FLAGS_HEADER)
  return flag === 'RL' ? 'rate_limited' : flag === 'UO' ? 'overflow' : undefined
}
