/**
 * The inbound side: `mesh.createServer(handler)` and `mesh.wrap(server)`. Wrapping patches
 * the server's `emit`, so every handler the server has or will get (Express, Fastify, Koa, a
 * bare listener) runs inside the mesh's filter chain without knowing it — for every event by
 * which node:http hands a request to an app: `request`, `checkContinue`, `checkExpectation`,
 * `upgrade` and `connect`. No request reaches the app without passing the chain
 * (`pipeline.ts`): limits, JWT, authorization, fault, context, metrics.
 */
import http from 'node:http'
import https from 'node:https'
import type { Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import { Server as TlsServer, type TLSSocket } from 'node:tls'
import { MeshError } from '../errors.js'
import { peerIdentity } from '../security/identity.js'
import type { InboundPipeline } from './pipeline.js'
import { requestDelivery, uninstrumented } from './http-instrumentation.js'
import { MtlsFront } from './tls-listener.js'
import { Tunnel } from './tunnel.js'

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

/**
 * The mesh's own `checkContinue` listener. node:http answers `100 Continue` by itself before
 * emitting `request` when a server has no `checkContinue` listener, so a request that the
 * chain refuses would already have been told to send its body. With this listener node
 * leaves the interim response to the mesh: the chain runs first, and only an allowed request
 * gets its `100 Continue` (from the app's own `checkContinue` listener, if it has one, or
 * from the mesh, as node would have sent it). It never runs itself: the patched `emit`
 * answers the event.
 */
function meshCheckContinue(): void {}

/** Wraps `server` so its requests run through `pipeline`. Idempotent per server. */
export function wrapServer<S extends WrappableServer>(server: S, pipeline: InboundPipeline): S {
  // https.Server is a tls.Server, not an http.Server: both are accepted.
  if (!((server as unknown) instanceof HttpServer) && !((server as unknown) instanceof HttpsServer)) {
    const kind = (server as { constructor?: { name?: unknown } } | null)?.constructor?.name
    const http2 = kind === 'Http2Server' || kind === 'Http2SecureServer'
    throw new MeshError('SIDECARLESS_ERR_INVALID_ARGUMENT', http2
      ? 'mesh.wrap() does not take node:http2 servers: their requests (compat `request` and raw `stream` events) would not pass the inbound chain; serve HTTP/1.1 with node:http or node:https'
      : 'mesh.wrap() takes a node:http or node:https server')
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
  // eslint-disable-next-line @typescript-eslint/unbound-method -- called with `this` bound
  const plainEmit = uninstrumented(server.emit as Parameters<typeof uninstrumented>[0])
  // node:https servers keep their own TLS; listener.mtls applies to plain http servers.
  const plain = !((server as unknown) instanceof TlsServer)
  const front = new MtlsFront((s) => emit('connection', s), pipeline.tlsCounters())
  /** After the chain allowed an Expect: 100-continue request: what node would have done without the mesh. */
  const continueToApp = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    if (server.listeners('checkContinue').some((l) => l !== meshCheckContinue)) {
      emit('checkContinue', req, res)
      return
    }
    res.writeContinue()
    // The chain ran outside OpenTelemetry's instrumentation: its wrapper would add a second server span.
    plainEmit.call(server, 'request', req, res)
  }
  const tunnel = (event: 'upgrade' | 'connect', req: http.IncomingMessage, socket: Duplex, head: Buffer): void => {
    const t = Tunnel.open(req, socket)
    if (t === undefined) {
      socket.destroy()
      return
    }
    pipeline.handle(req, t.res, () => {
      // No listener (a `shouldUpgradeCallback` said yes to an upgrade nobody takes): close.
      if (t.handOver() && !emit(event, req, socket, head)) socket.destroy()
    }, t)
  }
  const meshEmit = (event: string | symbol, ...args: unknown[]): boolean => {
    switch (event) {
      case 'connection': {
        if (!plain) return emit(event, ...args)
        const inbound = pipeline.inboundTls()
        if (inbound === null) return emit(event, ...args)
        front.accept(args[0] as Socket, inbound)
        return true
      }
      case 'request':
        deliver(args[0] as http.IncomingMessage, args[1] as http.ServerResponse)
        return true
      case 'checkExpectation': {
        const req = args[0] as http.IncomingMessage
        const res = args[1] as http.ServerResponse
        pipeline.handle(req, res, () => emit(event, req, res))
        return true
      }
      case 'checkContinue': {
        const req = args[0] as http.IncomingMessage
        const res = args[1] as http.ServerResponse
        pipeline.handle(req, res, () => continueToApp(req, res))
        return true
      }
      case 'upgrade':
      case 'connect':
        tunnel(event, args[0] as http.IncomingMessage, args[1] as Duplex, args[2] as Buffer)
        return true
      default:
        return emit(event, ...args)
    }
  }
  server.on('checkContinue', meshCheckContinue)
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
