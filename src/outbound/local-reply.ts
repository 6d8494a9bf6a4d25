/**
 * Responses the mesh makes itself (Envoy's "local replies"): no healthy upstream, connect
 * failure, timeout, no route, redirects and direct responses. They are ordinary responses
 * to the caller, marked by the response-flags header.
 */
import { abortError } from '../errors.js'
import { RequestController } from '../request-controller.js'
import { rawFrom, type Controller, type Handler } from './handler.js'
import { RESPONSE_FLAGS_HEADER, type ResponseFlag } from '../response-headers.js'

type HeaderObject = Record<string, string | string[] | undefined>

/** What a local reply says. */
export interface LocalReply {
  readonly status: number
  readonly body: Buffer | string | undefined
  readonly flag: ResponseFlag
  readonly headers?: HeaderObject
}

const STATUS_TEXT: Record<number, string> = {
  301: 'Moved Permanently', 302: 'Found', 303: 'See Other', 307: 'Temporary Redirect', 308: 'Permanent Redirect',
  404: 'Not Found', 429: 'Too Many Requests', 503: 'Service Unavailable', 504: 'Gateway Timeout',
}

/**
 * Sends a local reply to `handler` through `controller`. The body is small (at most a few
 * KiB), so it goes in one chunk; an abort by the caller stops the reply where it is.
 * `delayed`: a fault delay held the request first (flag `DI` before the reply's own).
 */
export function sendLocalReply(handler: Handler, controller: Controller, reply: LocalReply, delayed = false): void {
  const body = typeof reply.body === 'string' ? Buffer.from(reply.body) : reply.body
  const headers: HeaderObject = { ...reply.headers }
  headers[RESPONSE_FLAGS_HEADER] = delayed ? `DI,${reply.flag}` : reply.flag
  if (body !== undefined && body.length > 0) {
    headers['content-type'] ??= 'text/plain'
    headers['content-length'] = String(body.length)
  } else {
    headers['content-length'] = '0'
  }
  controller.rawHeaders = rawFrom(headers)
  try {
    handler.onResponseStart?.(controller, reply.status, headers, STATUS_TEXT[reply.status] ?? '')
    if (!controller.aborted && body !== undefined && body.length > 0) handler.onResponseData?.(controller, body)
  } catch (err) {
    // undici's rule for a handler that throws: its own request fails with that error. (undici's
    // CONNECT and upgrade handlers throw on any response that is not a tunnel: a CONNECT the
    // mesh answers itself must reject the caller's promise, not become an uncaught exception.)
    handler.onResponseError?.(controller, err instanceof Error ? err : new Error(String(err)))
    return
  }
  // Aborted by the caller while it read the reply: the request ends with the abort, as any other.
  if (controller.aborted) handler.onResponseError?.(controller, abortError(controller.reason))
  else handler.onResponseEnd?.(controller, {})
}

/**
 * Answers a request at the door (no route, a redirect, a direct response, a fault abort):
 * its controller is announced now, the reply follows on the next microtask, never inside
 * `dispatch`. An abort meanwhile ends the request with the abort instead.
 */
export function answerAtDoor(h: Handler, reply: LocalReply): void {
  const controller = new RequestController()
  h.onRequestStart?.(controller, {})
  queueMicrotask(() => {
    if (!controller.aborted) sendLocalReply(h, controller, reply)
    else h.onResponseError?.(controller, abortError(controller.reason))
  })
}

/** Fails a request at the door with a coded error, on the next microtask. */
export function failAtDoor(h: Handler, err: Error): void {
  queueMicrotask(() => h.onResponseError?.(new RequestController(), err))
}

/** A request answered locally never sends its body: release a streaming one. */
export function discardBody(body: unknown): void {
  if (body === null || typeof body !== 'object') return
  const b = body as { destroy?: () => void; resume?: () => void }
  if (typeof b.resume === 'function' && typeof b.destroy === 'function') b.destroy()
}

/** Envoy's wording for a request that could not reach or lost its upstream. */
export function upstreamFailureText(err: unknown): { flag: ResponseFlag; body: string } {
  const code = (err as { code?: string } | null)?.code
  if (code !== undefined && isTlsFailure(code)) {
    // Envoy: `transport failure reason: TLS_error: ... CERTIFICATE_VERIFY_FAILED`; a peer
    // identity outside tls.verifyIdentities names our code, so callers can tell it apart.
    const reason = code === 'SIDECARLESS_ERR_PEER_IDENTITY' ? `${code}: ${(err as Error).message}` : `TLS_error: ${code}`
    return {
      flag: 'UF',
      body: `upstream connect error or disconnect/reset before headers. reset reason: remote connection failure, transport failure reason: ${reason}`,
    }
  }
  const connectFailure = code === 'ECONNREFUSED' || code === 'UND_ERR_CONNECT_TIMEOUT' || code === 'ENOTFOUND' ||
    code === 'EAI_AGAIN' || code === 'EHOSTUNREACH' || code === 'ENETUNREACH' || code === 'ECONNRESET_CONNECT'
  if (connectFailure) {
    const reason = code === 'ECONNREFUSED' ? 'delayed connect error: Connection refused'
      : code === 'UND_ERR_CONNECT_TIMEOUT' ? 'connection timeout'
        : `${code ?? 'connect error'}`
    return {
      flag: 'UF',
      body: `upstream connect error or disconnect/reset before headers. reset reason: remote connection failure, transport failure reason: ${reason}`,
    }
  }
  if (isProtocolError(err)) {
    return { flag: 'UPE', body: 'upstream connect error or disconnect/reset before headers. reset reason: protocol error' }
  }
  return {
    flag: 'UC',
    body: 'upstream connect error or disconnect/reset before headers. reset reason: connection termination',
  }
}

/**
 * Whether the pool failed a request because the upstream's response broke HTTP/1.1 (Envoy's
 * `UPE`): the parser refused its head or a chunk (undici's `HTTPParserError`, whose `code`
 * is not always set), the head passed the size limit, or the body did not match its
 * Content-Length. Told by name and code, not by class: undici 7 and 8 each have their own.
 */
export function isProtocolError(err: unknown): boolean {
  if (err === null || typeof err !== 'object') return false
  const { name, code } = err as { name?: unknown; code?: unknown }
  return name === 'HTTPParserError' || code === 'UND_ERR_HEADERS_OVERFLOW' || code === 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH' ||
    (typeof code === 'string' && code.startsWith('HPE_'))
}

/** Whether an error code is a TLS handshake or verification failure (Node's, OpenSSL's, or our identity check). */
function isTlsFailure(code: string): boolean {
  return code === 'SIDECARLESS_ERR_PEER_IDENTITY' || code.startsWith('ERR_TLS_') || code.startsWith('ERR_SSL_') ||
    code.startsWith('CERT_') || code.startsWith('UNABLE_TO_') || code === 'DEPTH_ZERO_SELF_SIGNED_CERT' ||
    code === 'SELF_SIGNED_CERT_IN_CHAIN' || code === 'HOSTNAME_MISMATCH'
}
