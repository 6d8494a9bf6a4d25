/**
 * Response headers the mesh adds so callers can see how a request was served. They are
 * part of the public contract (documented in the README).
 */

/** The cluster that served (or would have served) the request. */
export const CLUSTER_HEADER = 'x-sidecarless-cluster'
/** The subset, when the route named one. */
export const SUBSET_HEADER = 'x-sidecarless-subset'
/** The endpoint (`host:port`) that answered. */
export const ENDPOINT_HEADER = 'x-sidecarless-endpoint'
/**
 * Present only on responses the mesh made itself, with Envoy's response flags:
 * `UH` no healthy upstream, `UF` upstream connection failure, `UC` upstream connection
 * termination, `UPE` upstream protocol error (the upstream's response broke HTTP/1.1: a
 * malformed head, a head over the size limit, a body longer or shorter than its
 * Content-Length), `UT` upstream request timeout, `NR` no route, `RL` rate limited (429), `UO` overflow (a concurrency
 * limit or a circuit-breaker threshold refused it), `DR` direct response or
 * redirect configured on the route (ours: Envoy has no flag for it), `FI` aborted by fault
 * injection. `DI` (delayed by fault injection) is added to any response, the upstream's
 * included; several flags are comma-separated (`DI,FI`).
 */
export const RESPONSE_FLAGS_HEADER = 'x-sidecarless-response-flags'

/**
 * On an outbound 503 with flag `UO`: which limit shed the request (`max_requests`,
 * `max_pending_requests`, `breaker_open`, `concurrency_limit`).
 */
export const OVERFLOW_HEADER = 'x-sidecarless-overflow'

/** Envoy's response flags, as the mesh uses them. */
export type ResponseFlag = 'UH' | 'UF' | 'UC' | 'UPE' | 'UT' | 'NR' | 'DR' | 'RL' | 'UO' | 'FI' | 'DI' | 'NC'

/** A response-flags header value with `flag` put first (`DI` before whatever the reply carried). */
export function withResponseFlag(existing: string | string[] | number | undefined, flag: ResponseFlag): string {
  if (existing === undefined) return flag
  const s = Array.isArray(existing) ? existing.join(',') : String(existing)
  return s === '' ? flag : `${flag},${s}`
}
