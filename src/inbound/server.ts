/**
 * The inbound side: `mesh.createServer(handler)` and `mesh.wrap(server)`. Wrapping patches
 * the server's `emit` for `request` events, so every handler the server has or will get
 * (Express, Fastify, Koa, a bare listener) runs inside the mesh's filter chain without
 * knowing it. The chain today: context (trace extract, request id, route, peer, server
 * span, metrics) → app; rate limits, authentication, authorization and faults slot in
 * between as they arrive.
 */
import http from 'node:http'
import https from 'node:https'
import type { Socket } from 'node:net'
import { Server as TlsServer, type TLSSocket } from 'node:tls'
import { MeshError } from '../errors.js'
import { peerIdentity } from '../security/identity.js'
import type { InboundPipeline } from './pipeline.js'
import { requestDelivery } from './http-instrumentation.js'
import { MtlsFront } from './tls-listener.js'

const WRAPPED = Symbol.for('sidecarless.wrapped')

// Taken when this module loads, before `sidecarless/register` patches node:http/https, so a
// server made by `mesh.createServer()` is wrapped by that mesh only, never by the process mesh.
const createHttpServer = http.createServer
const createHttpsServer = https.createServer
const HttpServer = http.Server
const HttpsServer = https.Server

type RequestListener = (req: http.IncomingMessage, res: http.ServerResponse) => void

/** A server the mesh can wrap: node:http or node:https. */
export type WrappableServer = http.Server | https.Server

/** Wraps `server` so its requests run through `pipeline`. Idempotent per server. */
export function wrapServer<S extends WrappableServer>(server: S, pipeline: InboundPipeline): S {
  // https.Server is a tls.Server, not an http.Server: both are accepted.
  if (!((server as unknown) instanceof HttpServer) && !((server as unknown) instanceof HttpsServer)) {
    throw new MeshError('SIDECARLESS_ERR_INVALID_ARGUMENT', 'mesh.wrap() takes a node:http or node:https server')
  }
  const marked = server as S & { [WRAPPED]?: InboundPipeline }
  if (marked[WRAPPED] !== undefined) {
    if (marked[WRAPPED] !== pipeline) throw new MeshError('SIDECARLESS_ERR_INVALID_ARGUMENT', 'this server is already wrapped by another mesh')
    return server
  }
  marked[WRAPPED] = pipeline
  const emit = server.emit.bind(server) as (event: string | symbol, ...args: unknown[]) => boolean
  // [otel] through the app's OpenTelemetry HTTP instrumentation, when it wraps this emit.
  // eslint-disable-next-line @typescript-eslint/unbound-method -- the function itself is inspected, and called with `this` bound
  const deliver = requestDelivery(server, server.emit as Parameters<typeof requestDelivery>[1], pipeline)
  // node:https servers keep their own TLS; listener.mtls applies to plain http servers.
  const plain = !((server as unknown) instanceof TlsServer)
  const front = new MtlsFront((s) => emit('connection', s))
  const meshEmit = (event: string | symbol, ...args: unknown[]): boolean => {
    if (event === 'connection' && plain) {
      const inbound = pipeline.inboundTls()
      if (inbound === null) return emit(event, ...args)
      front.accept(args[0] as Socket, inbound)
      return true
    }
    if (event !== 'request') return emit(event, ...args)
    deliver(args[0] as http.IncomingMessage, args[1] as http.ServerResponse)
    return true
  }
  server.emit = meshEmit as typeof server.emit
  if (plain) {
    // close() waits for every accepted socket; those still in their first byte or handshake
    // are not the http server's yet, so close ends them itself.
    const close = server.close.bind(server)
    server.close = ((callback?: (err?: Error) => void) => {
      front.closePending()
      return close(callback)
    })
  }
  return server
}

/** `http.createServer` / `https.createServer` (when TLS options are given), wrapped. */
export function createWrappedServer(pipeline: InboundPipeline, optionsOrHandler?: http.ServerOptions | https.ServerOptions | RequestListener, maybeHandler?: RequestListener): http.Server | https.Server {
  const handler = typeof optionsOrHandler === 'function' ? optionsOrHandler : maybeHandler
  const options: https.ServerOptions = typeof optionsOrHandler === 'object' && optionsOrHandler !== null ? optionsOrHandler : {}
  const tls = options.key !== undefined || options.pfx !== undefined || options.cert !== undefined || options.SNICallback !== undefined
  const server = tls ? createHttpsServer(options, handler) : createHttpServer(options as http.ServerOptions, handler)
  return wrapServer(server, pipeline)
}

/**
 * The peer of a request's connection: address, port and, over verified (m)TLS, the SPIFFE ID
 * of the client certificate (read once per connection and cached on the socket).
 */
export function peerOf(req: http.IncomingMessage): { address: string; port: number; identity?: string } | undefined {
  const s = req.socket as TLSSocket | undefined
  if (s?.remoteAddress === undefined) return undefined
  const identity = s.encrypted === true ? peerIdentity(s) : undefined
  return identity === undefined ? { address: s.remoteAddress, port: s.remotePort ?? 0 } : { address: s.remoteAddress, port: s.remotePort ?? 0, identity }
}
