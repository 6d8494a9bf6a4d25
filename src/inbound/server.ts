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
import { Server as TlsServer } from 'node:tls'
import { MeshError } from '../errors.js'
import type { InboundPipeline } from './pipeline.js'
import { requestDelivery, uninstrumented } from './http-instrumentation.js'
import { ServerBinding, ServerSet, type WrappableServer } from './server-binding.js'
import { MtlsFront } from './tls-listener.js'
import { Tunnel } from './tunnel.js'

export { ServerBinding, ServerSet, type DrainTimes, type WrappableServer } from './server-binding.js'

const WRAPPED = Symbol.for('sidecarless.wrapped')

// Taken when this module loads, before `sidecarless/register` patches node:http/https, so a
// server made by `mesh.createServer()` is wrapped by that mesh only, never by the process mesh.
const createHttpServer = http.createServer
const createHttpsServer = https.createServer
const HttpServer = http.Server
const HttpsServer = https.Server

type RequestListener = (req: http.IncomingMessage, res: http.ServerResponse) => void

/**
 * Every wrapped server of the process while it listens, whichever mesh wrapped it:
 * `sidecarless/register` drains them all on SIGTERM.
 */
export const processServers = new ServerSet()

/**
 * Who asks for the wrap: the app (`mesh.wrap`, `mesh.createServer`), or the register hook
 * (`implicit`), whose wraps give way to the app's.
 */
export type WrapKind = 'explicit' | 'implicit'

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

/**
 * Wraps `server` so its requests run through `pipeline` (`null`: through nothing yet, see
 * {@link ServerBinding.pipeline}), tracked in `owner` while it listens. Idempotent per
 * server and mesh. A server the register hook wrapped is taken over by an explicit wrap of
 * another mesh; two explicit wraps by different meshes are refused.
 */
export function wrapServer<S extends WrappableServer>(server: S, pipeline: InboundPipeline | null, owner: ServerSet | null = null, kind: WrapKind = 'explicit'): S {
  // https.Server is a tls.Server, not an http.Server: both are accepted.
  if (!((server as unknown) instanceof HttpServer) && !((server as unknown) instanceof HttpsServer)) {
    const kindName = (server as { constructor?: { name?: unknown } } | null)?.constructor?.name
    const http2 = kindName === 'Http2Server' || kindName === 'Http2SecureServer'
    throw new MeshError('SIDECARLESS_ERR_INVALID_ARGUMENT', http2
      ? 'mesh.wrap() does not take node:http2 servers: their requests (compat `request` and raw `stream` events) would not pass the inbound chain; serve HTTP/1.1 with node:http or node:https'
      : 'mesh.wrap() takes a node:http or node:https server')
  }
  const marked = server as S & { [WRAPPED]?: ServerBinding }
  const existing = marked[WRAPPED]
  if (existing !== undefined) {
    rewrap(existing, pipeline, owner, kind)
    return server
  }
  const binding = new ServerBinding(server, pipeline, kind === 'implicit')
  marked[WRAPPED] = binding
  binding.ownBy(owner, processServers)
  const emit = server.emit.bind(server) as (event: string | symbol, ...args: unknown[]) => boolean
  // eslint-disable-next-line @typescript-eslint/unbound-method -- called with the server as `this`
  const serverEmit = server.emit as (this: unknown, ...args: unknown[]) => boolean
  // [otel] through the app's OpenTelemetry HTTP instrumentation, when it wraps this emit.
  // eslint-disable-next-line @typescript-eslint/unbound-method -- the function itself is inspected, and called with `this` bound
  const deliver = requestDelivery(server, server.emit as Parameters<typeof requestDelivery>[1], () => binding.pipeline)
  // eslint-disable-next-line @typescript-eslint/unbound-method -- called with `this` bound
  const plainEmit = uninstrumented(server.emit as Parameters<typeof uninstrumented>[0])
  // node:https servers keep their own TLS; listener.mtls applies to plain http servers.
  const plain = !((server as unknown) instanceof TlsServer)
  // Made on the first mTLS connection, with the counters of the mesh wrapping the server then.
  let mtlsFront: MtlsFront | undefined
  const frontFor = (p: InboundPipeline): MtlsFront => (mtlsFront ??= new MtlsFront((s) => emit('connection', s), p.tlsCounters()))
  binding.closePending = () => mtlsFront?.closePending()
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
    binding.tunnel(socket)
    const pipeline = binding.pipeline
    if (pipeline === null) {
      if (!emit(event, req, socket, head)) socket.destroy()
      return
    }
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
  // Named parameters rather than a rest array: node's events carry at most three, and
  // `serverEmit.apply(server, arguments)` passes every argument on without an array per
  // event (V8 forwards `arguments` to `apply` without making the object).
  const meshEmit = function (this: unknown, event: string | symbol, a?: unknown, b?: unknown, c?: unknown): boolean {
    const pipeline = binding.pipeline
    switch (event) {
      case 'request': {
        const res = b as http.ServerResponse
        binding.admit(res)
        deliver(a as http.IncomingMessage, res)
        return true
      }
      case 'connection': {
        // eslint-disable-next-line prefer-rest-params
        if (!plain || pipeline === null) return serverEmit.apply(server, arguments as unknown as unknown[])
        const inbound = pipeline.inboundTls()
        // eslint-disable-next-line prefer-rest-params
        if (inbound === null) return serverEmit.apply(server, arguments as unknown as unknown[])
        frontFor(pipeline).accept(a as Socket, inbound)
        return true
      }
      case 'checkExpectation': {
        const req = a as http.IncomingMessage
        const res = b as http.ServerResponse
        binding.admit(res)
        if (pipeline === null) return emit(event, req, res)
        pipeline.handle(req, res, () => emit(event, req, res))
        return true
      }
      case 'checkContinue': {
        const req = a as http.IncomingMessage
        const res = b as http.ServerResponse
        binding.admit(res)
        if (pipeline === null) continueToApp(req, res)
        else pipeline.handle(req, res, continueToApp)
        return true
      }
      case 'upgrade':
      case 'connect':
        tunnel(event, a as http.IncomingMessage, b as Duplex, c as Buffer)
        return true
      case 'listening':
        binding.listening()
        // eslint-disable-next-line prefer-rest-params
        return serverEmit.apply(server, arguments as unknown as unknown[])
      case 'close':
        binding.closed()
        // eslint-disable-next-line prefer-rest-params
        return serverEmit.apply(server, arguments as unknown as unknown[])
      default:
        // eslint-disable-next-line prefer-rest-params
        return serverEmit.apply(server, arguments as unknown as unknown[])
    }
  }
  server.on('checkContinue', meshCheckContinue)
  server.emit = meshEmit as typeof server.emit
  // close() by the app is graceful too: later responses say `connection: close` and
  // connections close as they fall idle. Connections still in their first byte or
  // handshake are not the http server's yet, so close ends them itself.
  const close = server.close.bind(server)
  server.close = ((callback?: (err?: Error) => void) => {
    binding.beginDrain()
    binding.closePending()
    return close(callback)
  })
  return server
}

/** A second wrap of a wrapped server: the same mesh again, or a take-over. */
function rewrap(binding: ServerBinding, pipeline: InboundPipeline | null, owner: ServerSet | null, kind: WrapKind): void {
  if (binding.pipeline === pipeline) {
    if (kind === 'explicit') binding.implicit = false
    binding.ownBy(owner ?? null, processServers)
    return
  }
  // The register hook never takes a server from the app's own mesh.
  if (kind === 'implicit' && binding.pipeline !== null && !binding.implicit) return
  if (kind === 'explicit' && !binding.implicit && binding.pipeline !== null) {
    throw new MeshError('SIDECARLESS_ERR_INVALID_ARGUMENT', 'this server is already wrapped by another mesh; a server runs through one mesh: wrap it with that mesh only (or create it with that mesh\'s createServer())')
  }
  // The register hook's wrap (or its wrap without a mesh yet) gives way.
  binding.pipeline = pipeline
  binding.implicit = kind === 'implicit'
  binding.ownBy(owner, processServers)
}

/** `http.createServer` / `https.createServer` (when TLS options are given), wrapped. */
export function createWrappedServer(pipeline: InboundPipeline, owner: ServerSet, optionsOrHandler?: http.ServerOptions | https.ServerOptions | RequestListener, maybeHandler?: RequestListener): http.Server | https.Server {
  const handler = typeof optionsOrHandler === 'function' ? optionsOrHandler : maybeHandler
  const options: https.ServerOptions = typeof optionsOrHandler === 'object' && optionsOrHandler !== null ? optionsOrHandler : {}
  const tls = options.key !== undefined || options.pfx !== undefined || options.cert !== undefined || options.SNICallback !== undefined
  const server = tls ? createHttpsServer(options, handler) : createHttpServer(options as http.ServerOptions, handler)
  return wrapServer(server, pipeline, owner)
}
