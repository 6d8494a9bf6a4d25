/**
 * The proxy's router filter: every inbound request (already through the mesh's inbound
 * filter chain) is forwarded through the mesh's dispatcher, body streamed both ways.
 *
 * As Envoy at the edge (`use_remote_address: true`): hop-by-hop headers are removed in both
 * directions, the peer's address is appended to `x-forwarded-for`, and
 * `x-forwarded-proto` is set to the scheme of the downstream connection. Responses the mesh
 * makes itself (503 no healthy upstream, 504 timeout, redirects) pass through as
 * responses; an authority no virtual host serves gets Envoy's 404 (`NR`).
 *
 * @module
 */
import type http from 'node:http'
import { Writable } from 'node:stream'
import type { TLSSocket } from 'node:tls'
import { isMeshError } from '../errors.js'
import type { Mesh } from '../mesh.js'
import { RESPONSE_FLAGS_HEADER } from '../response-headers.js'
import { absoluteFormScheme } from '../inbound/request-target.js'

/** Removed in both directions (RFC 9110 §7.6.1, plus what undici refuses to send). */
const HOP_BY_HOP: ReadonlySet<string> = new Set([
  'connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te', 'trailer',
  'proxy-authenticate', 'proxy-authorization', 'http2-settings', 'expect',
])

type HeaderObject = Record<string, string | string[] | undefined>

/** Options of {@link createForwarder}. */
export interface ForwarderOptions {
  /** True while the proxy drains: responses then carry `connection: close`. */
  readonly draining: () => boolean
}

/** A request listener that forwards through `mesh`. */
export function createForwarder(mesh: Mesh, options: ForwarderOptions): (req: http.IncomingMessage, res: http.ServerResponse) => void {
  return (req, res) => {
    const target = targetOf(req)
    if (typeof target === 'string') {
      localReply(res, 400, target, options)
      return
    }
    const headers = requestHeaders(req)
    const method = req.method ?? 'GET'
    const hasBody = req.headers['content-length'] !== undefined ? req.headers['content-length'] !== '0' : req.headers['transfer-encoding'] !== undefined
    const abort = new AbortController()
    res.once('close', () => {
      if (!res.writableFinished) abort.abort()
    })
    // A response to HEAD, and a 204 or 304, has no body whatever its Content-Length says
    // (RFC 9110 §6.4.1, §8.6): the client's response ends with the headers.
    const bodiless = method === 'HEAD'
    mesh.dispatcher.stream(
      {
        origin: target.origin, path: target.path, method, headers, body: hasBody ? req : null, signal: abort.signal,
        // undici closes a connection after HEAD unless told not to (for servers that send a
        // body anyway); Envoy and HAProxy keep it, and so does the proxy.
        ...(bodiless ? { reset: false } : {}),
      },
      ({ statusCode, headers: upstream }) => {
        const out = responseHeaders(upstream)
        if (options.draining()) out['connection'] = 'close'
        res.writeHead(statusCode, out)
        if (bodiless || statusCode === 204 || statusCode === 304) {
          // Ended here: undici reports a 304 whose Content-Length announces the full
          // representation's length as a body cut short, and that must not cost the
          // client its response or its connection.
          res.end()
          return discard()
        }
        return res
      },
    ).catch((err: unknown) => {
      if (abort.signal.aborted || res.writableEnded) return
      if (res.headersSent) {
        res.destroy(err as Error)
        return
      }
      if (isMeshError(err, 'SIDECARLESS_ERR_REGISTRY_ONLY')) localReply(res, 404, '', options, 'NR')
      else if (isMeshError(err, 'SIDECARLESS_ERR_INVALID_URL')) localReply(res, 400, 'bad request', options)
      else localReply(res, 502, 'upstream error', options)
    })
  }
}

/**
 * Where the request goes: `origin` from its authority, `path` as sent; or why it cannot. The
 * inbound chain has already turned an absolute-form target into Host + path (before
 * authorization read them), so only its scheme is left to check here.
 */
function targetOf(req: http.IncomingMessage): { origin: string; path: string } | string {
  if (absoluteFormScheme(req) === 'https') return 'only http:// absolute URLs are forwarded'
  const url = req.url ?? '/'
  if (!url.startsWith('/')) return 'the request target is not a path nor an absolute URL'
  const host = req.headers.host
  if (host === undefined || host === '') return 'the request has no Host header'
  // Only host[:port]: anything that would make the URL mean something else is refused.
  if (host.length > 1024 || /[\s/?#@\\%]/.test(host)) return 'the Host header is not an authority'
  try {
    return { origin: `http://${new URL(`http://${host}`).host}`, path: url }
  } catch {
    return 'the Host header is not an authority'
  }
}

function requestHeaders(req: http.IncomingMessage): HeaderObject {
  const nominated = connectionTokens(req.headers.connection)
  const out: HeaderObject = {}
  for (const [name, value] of Object.entries(req.headers)) {
    if (HOP_BY_HOP.has(name) || nominated.has(name)) continue
    out[name] = value
  }
  // Envoy keeps `te: trailers` (gRPC needs it), also out of a longer list (`deflate, trailers`).
  if (offersTrailers(req.headers.te)) out['te'] = 'trailers'
  const peer = req.socket.remoteAddress
  const header = req.headers['x-forwarded-for']
  const xff = Array.isArray(header) ? header.join(', ') : header
  if (peer !== undefined) out['x-forwarded-for'] = xff === undefined || xff === '' ? peer : `${xff}, ${peer}`
  out['x-forwarded-proto'] = (req.socket as TLSSocket).encrypted === true ? 'https' : 'http'
  return out
}

function responseHeaders(headers: HeaderObject): HeaderObject {
  const nominated = connectionTokens(headers['connection'])
  const out: HeaderObject = {}
  for (const [name, value] of Object.entries(headers)) {
    if (HOP_BY_HOP.has(name) || nominated.has(name) || value === undefined) continue
    out[name] = value
  }
  return out
}

/** Whether a TE header lists the `trailers` token (RFC 9110 §10.1.4; parameters ignored). */
function offersTrailers(te: string | string[] | undefined): boolean {
  if (te === undefined) return false
  for (const part of (Array.isArray(te) ? te.join(',') : te).split(',')) {
    const semi = part.indexOf(';')
    if ((semi === -1 ? part : part.slice(0, semi)).trim().toLowerCase() === 'trailers') return true
  }
  return false
}

/** A sink for the body undici may still deliver after the client's response has ended. */
function discard(): Writable {
  return new Writable({
    write(_chunk, _encoding, callback) {
      callback()
    },
  })
}

/** Header names a `Connection` header nominates as hop-by-hop. */
function connectionTokens(value: string | string[] | undefined): ReadonlySet<string> {
  if (value === undefined) return EMPTY
  const text = Array.isArray(value) ? value.join(',') : value
  return new Set(text.split(',').map((t) => t.trim().toLowerCase()).filter((t) => t !== ''))
}
const EMPTY: ReadonlySet<string> = new Set()

function localReply(res: http.ServerResponse, status: number, body: string, options: ForwarderOptions, flag?: string): void {
  if (res.headersSent) return
  const headers: HeaderObject = { 'content-length': String(Buffer.byteLength(body)) }
  if (body !== '') headers['content-type'] = 'text/plain'
  if (flag !== undefined) headers[RESPONSE_FLAGS_HEADER] = flag
  if (options.draining()) headers['connection'] = 'close'
  res.writeHead(status, headers)
  res.end(body)
}
