/**
 * The inbound filter chain, run for every request a wrapped server receives, whichever
 * node:http event delivers it. First the request target is settled (one authority, one
 * path: `request-target.ts`); then the context filter reads the caller's trace (or starts
 * one), settles the request id, names the route, starts the server span and the metrics;
 * then limits → JWT → authorization → fault; the app runs inside the request context so
 * `mesh.context()` and outbound calls see it anywhere in its async call tree.
 */
import type http from 'node:http'
import type { Socket } from 'node:net'
import type { Attributes, Span } from '@opentelemetry/api'
import type { SpanOwnership } from '../config/types.js'
import { setAppRoute } from '../observability/instrumentation.js'
import { otelApi } from '../observability/otel-api.js'
import { PEER_HEADER } from '../observability/istio-metrics.js'
import { appServerSpan } from './http-instrumentation.js'
import type { MetricsRegistry, Recorder } from '../observability/metrics.js'
import { MeshRequestContext, runWithContextOn } from '../observability/context.js'
import { newRequestId } from '../observability/ids.js'
import { extract, isValidRequestId } from '../observability/propagation.js'
import { MeshTracer } from '../observability/tracing.js'
import { RequestView } from '../http/request-view.js'
import type { InboundFilters, InboundRoute, Snapshot } from '../snapshot/snapshot.js'
import { peerOf } from './peer.js'
import { applyInboundLimits } from './limits-filter.js'
import { applyInboundFault } from './fault-filter.js'
import type { InboundTls } from '../security/compile.js'
import type { TlsCounters } from '../security/tls-stats.js'
import type { SecurityCounters } from '../security/stats.js'
import { applySecurity } from './security-filter.js'
import { refusalOf } from './local-refusal.js'
import { normalizeRequestTarget } from './request-target.js'
import { takeRequestHeader } from './request-header-removal.js'
import { bindToContext } from './context-binding.js'
import { endOnClose, type ClosingExchange } from './response-close.js'
import type { Tunnel } from './tunnel.js'


/** Where the chain hands an allowed request: the app (its `request` listeners, or the tunnel's hand-over). */
export type AppListener = (req: http.IncomingMessage, res: http.ServerResponse) => void

/** Runs wrapped servers' requests through the mesh. */
export class InboundPipeline {
  readonly #snapshot: () => Snapshot
  readonly #tracer: MeshTracer
  readonly #metrics: MetricsRegistry

  constructor(snapshot: () => Snapshot, tracer: MeshTracer, metrics: MetricsRegistry) {
    this.#snapshot = snapshot
    this.#tracer = tracer
    this.#metrics = metrics
  }

  /** `tracing.spans` in force: who makes the server span under the app's HTTP instrumentation. */
  spanOwnership(): SpanOwnership {
    return this.#snapshot().tracing.spans
  }

  /** The listener's mTLS in the snapshot in force (null: plain HTTP). */
  inboundTls(): InboundTls | null {
    return this.#snapshot().inboundTls
  }

  /** Where the listener counts its TLS handshakes. */
  tlsCounters(): TlsCounters {
    return this.#metrics.security.tls
  }

  /**
   * Runs the chain on `req`, then `next(req, res)` (the app) unless a filter answered `res` itself.
   * `tunnel` is set for upgrade and CONNECT requests: `res` is then the tunnel's, used only
   * for refusals, and the exchange ends when the app's socket closes.
   */
  handle(req: http.IncomingMessage, res: http.ServerResponse, next: AppListener, tunnel?: Tunnel): void {
    const snapshot = this.#snapshot()
    const started = performance.now()
    // [otel-metrics] a calling mesh's word on who it is (Istio's source_* labels); the app
    // does not see it. Taken first, before anything builds `req.headers`.
    const caller = takeRequestHeader(req, PEER_HEADER)
    // Before anything reads the URL or Host: every filter and the app see the same ones.
    const malformed = normalizeRequestTarget(req)
    const headers = req.headers
    extracting = headers
    const parent = extract(headerOf, snapshot.tracing.extract)
    extracting = NO_HEADERS

    let requestId = headers['x-request-id']
    if (typeof requestId !== 'string' || !isValidRequestId(requestId)) {
      // Envoy generates the id at the edge and hands it to the app with the request.
      requestId = newRequestId()
      headers['x-request-id'] = requestId
    }

    const entry = snapshot.listenerRoutes.length === 0 || malformed !== undefined ? undefined : matchRoute(snapshot, req)
    const route = entry?.name
    const peer = peerOf(req)
    const method = req.method ?? 'GET'
    // [otel] HTTP semantic conventions: `GET /api/{id}` with `http.route` from the named route.
    const appSpan = appServerSpan(req)
    if (appSpan !== undefined && route !== undefined) setAppRoute(otelApi().context.active(), route)
    attributesOf = req
    attributesPeer = peer?.address
    attributesRoute = route
    const s = this.#tracer.startServer(parent, snapshot.tracing, route === undefined ? method : `${method} ${route}`, serverAttributes, started, appSpan)
    attributesOf = undefined
    const ctx = new MeshRequestContext(s.traceId, s.spanId, s.parentSpanId, s.sampled, s.traceState, requestId, route, peer, s.span, s.random)

    const recorder: Recorder = this.#metrics.inbound(route, peer?.identity, caller)
    recorder.start()
    const socket = req.socket
    endOnClose(res, new InboundExchange(res, started, socket, socket.bytesRead, bytesWritten(socket), recorder, s.span, tunnel))
    if (malformed !== undefined) {
      // Envoy's codec refuses such a request before any filter: a 400, counted as a response.
      res.statusCode = 400
      res.setHeader('content-type', 'text/plain')
      res.setHeader('connection', 'close')
      res.end(`bad request: ${malformed}`)
      return
    }
    const filters = entry === undefined ? snapshot.listenerFilters : entry.filters
    if (filters === null) {
      enterApp(req, res, ctx, next, tunnel)
      return
    }
    runFilters(filters, req, res, peer?.identity, ctx, this.#metrics.security, () => enterApp(req, res, ctx, next, tunnel))
  }
}

/**
 * One request through the chain, from its arrival to its response's `close`: what its
 * metrics and span need then (`response-close.ts`).
 */
class InboundExchange implements ClosingExchange {
  constructor(
    readonly res: http.ServerResponse,
    /** `performance.now()` at arrival. */
    readonly started: number,
    readonly socket: Socket,
    readonly readBefore: number,
    readonly writtenBefore: number,
    readonly recorder: Recorder,
    readonly span: Span | undefined,
    readonly tunnel: Tunnel | undefined,
  ) {}

  /** The response closed: counts the request and ends its span. */
  closed(): void {
    const { res, recorder, span, tunnel } = this
    const ms = performance.now() - this.started
    const received = this.socket.bytesRead - this.readBefore
    const sent = bytesWritten(this.socket) - this.writtenBefore
    // [security-auth] 401/403 of JWT and authorization; 429/503 of the limits.
    const refusal = refusalOf(res)
    if (tunnel?.handedOver === true) {
      // An upgrade or CONNECT the app took: its status is what it wrote on the socket
      // (101 Switching Protocols, 200 for CONNECT, or its own refusal).
      const status = tunnel.status
      if (status === undefined) {
        recorder.fail('aborted', ms)
        MeshTracer.end(span, undefined, 'aborted', 'server')
      } else {
        recorder.end(status, ms, received, sent)
        MeshTracer.end(span, status, undefined, 'server')
      }
    } else if (refusal !== undefined) {
      // Answered by the mesh itself: an error of that kind, not an app response. A 401 or
      // 403 is not a server error (OTel HTTP conventions): the span keeps an unset status.
      recorder.fail(refusal, ms)
      const spanError = refusal === 'rate_limited' || refusal === 'overflow' ? refusal : undefined
      MeshTracer.end(span, res.statusCode, spanError, 'server')
    } else if (res.writableFinished) {
      recorder.end(res.statusCode, ms, received, sent)
      MeshTracer.end(span, res.statusCode, undefined, 'server')
    } else {
      // The caller went away before the response was complete.
      recorder.fail('aborted', ms)
      MeshTracer.end(span, res.headersSent ? res.statusCode : undefined, 'aborted', 'server')
    }
  }
}

/**
 * `socket.bytesWritten` without its cost when nothing waits to be written: the getter adds
 * up the socket's write buffer, copying it into a new array to do so, on every call. With
 * nothing buffered, in flight or pending it equals the bytes handed to the OS so far.
 */
function bytesWritten(socket: Socket): number {
  const s = socket as Socket & { _bytesDispatched?: unknown; _pendingData?: unknown }
  const dispatched = s._bytesDispatched
  if (typeof dispatched === 'number' && s.writableLength === 0 && s._pendingData == null) return dispatched
  return socket.bytesWritten
}

// The trace headers are read synchronously, one request at a time: one getter serves all.
const NO_HEADERS: http.IncomingHttpHeaders = Object.freeze({})
let extracting: http.IncomingHttpHeaders = NO_HEADERS
const headerOf = (name: string): string | string[] | undefined => extracting[name]

/** The app, inside its request context: listeners it adds (body, close, finish) run in the context too. */
function enterApp(req: http.IncomingMessage, res: http.ServerResponse, ctx: MeshRequestContext, next: AppListener, tunnel: Tunnel | undefined): void {
  bindToContext(req, ctx)
  if (tunnel === undefined) bindToContext(res, ctx)
  runWithContextOn(ctx, next, req, res)
}

/** The compiled filters of a request's route, in order: limits → JWT authn → authorization → fault → `app`. */
function runFilters(
  filters: InboundFilters,
  req: http.IncomingMessage,
  res: http.ServerResponse,
  identity: string | undefined,
  ctx: MeshRequestContext,
  counters: SecurityCounters,
  app: () => void,
): void {
  const fault = filters.fault
  const faulted = fault === null ? app : () => applyInboundFault(fault, req, res, app)
  const secured = filters.requestAuthentication !== null || filters.authorization !== null
  const afterLimits = secured ? () => applySecurity(req, res, filters, ctx, counters, faulted) : faulted
  if (filters.limits === null) afterLimits()
  else applyInboundLimits(req, res, identity, filters.limits, afterLimits)
}

function matchRoute(snapshot: Snapshot, req: http.IncomingMessage): InboundRoute | undefined {
  const view = new RequestView(req.method ?? 'GET', req.url ?? '/', (req.headers.host ?? '').toLowerCase(), 'http', req.headers)
  for (const r of snapshot.listenerRoutes) if (r.match.matches(view)) return r
  return undefined
}

// A sampled request's span attributes, read synchronously while its span starts: one
// function serves all, so an unsampled request (nearly all) builds no closure for them.
let attributesOf: http.IncomingMessage | undefined
let attributesPeer: string | undefined
let attributesRoute: string | undefined

function serverAttributes(): Attributes {
  const req = attributesOf as http.IncomingMessage
  const clientAddress = attributesPeer
  const route = attributesRoute
  const url = req.url ?? '/'
  const q = url.indexOf('?')
  const attrs: Attributes = {
    'http.request.method': req.method ?? 'GET',
    'url.path': q === -1 ? url : url.slice(0, q),
    'url.scheme': (req.socket as { encrypted?: boolean }).encrypted === true ? 'https' : 'http',
  }
  if (q !== -1) attrs['url.query'] = url.slice(q + 1)
  const host = req.headers.host
  if (host !== undefined) attrs['server.address'] = host
  if (clientAddress !== undefined) attrs['client.address'] = clientAddress
  const ua = req.headers['user-agent']
  if (ua !== undefined) attrs['user_agent.original'] = ua
  attrs['network.protocol.version'] = req.httpVersion
  if (route !== undefined) attrs['http.route'] = route
  return attrs
}
