/**
 * Marks a response the mesh made to refuse a request (401 from JWT authentication, 403 from
 * authorization), so the pipeline's metrics count it as that error kind rather than as an
 * app response. A symbol on the response object: no header goes to the client.
 */
import type http from 'node:http'

const DENIED = Symbol('sidecarless.denied')

/** Why the mesh refused a request itself. */
export type DenialKind = 'unauthenticated' | 'denied'

/** Answers `res` with `status` and a plain-text `body`, marked as refused by the mesh. */
export function refuseRequest(res: http.ServerResponse, kind: DenialKind, status: number, body: string, headers?: Readonly<Record<string, string>>): void {
  ;(res as { [DENIED]?: DenialKind })[DENIED] = kind
  if (res.headersSent || res.writableEnded || res.destroyed) return
  res.statusCode = status
  res.setHeader('content-type', 'text/plain')
  if (headers !== undefined) for (const k of Object.keys(headers)) res.setHeader(k, headers[k] as string)
  res.end(body)
}

/** The kind of refusal the mesh answered `res` with, if it did. */
export function denialOf(res: http.ServerResponse): DenialKind | undefined {
  return (res as { [DENIED]?: DenialKind })[DENIED]
}
