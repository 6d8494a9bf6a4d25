/**
 * The request context: who is calling, which trace this request belongs to, which route
 * took it. It lives in exactly one AsyncLocalStorage: OpenTelemetry's, when the app
 * registered an OTel context manager (so the app's spans and ours share one context and
 * one storage), or the mesh's own otherwise. Two would double the cost of every async hop.
 */
import { AsyncLocalStorage, AsyncResource } from 'node:async_hooks'
import type { Context, Span } from '@opentelemetry/api'
import type { RequestAuth } from '../security/jwt.js'
import { contextKey, otelApi, otelGlobal } from './otel-api.js'

/** The other end of an inbound connection. */
export interface Peer {
  /** Remote IP address. */
  readonly address: string
  /** Remote port. */
  readonly port: number
  /** SPIFFE ID of the peer's certificate, when the connection is mutual TLS. */
  readonly identity?: string | undefined
}

/** What `mesh.context()` returns inside a request: stable, read-only facts. */
export interface RequestContext {
  /** W3C trace id (32 lower-hex characters). */
  readonly traceId: string
  /** This request's span id (16 lower-hex characters): the server span. */
  readonly spanId: string
  /** The caller's span id, when the request carried a trace. */
  readonly parentSpanId: string | undefined
  /** Whether the trace is sampled (recorded). */
  readonly sampled: boolean
  /** The W3C tracestate carried with the trace, if any. */
  readonly traceState: string | undefined
  /** The `x-request-id` of this request (generated at the edge when absent). */
  readonly requestId: string
  /** The inbound route's name (`listener.routes[].name`), or `undefined` when none matched. */
  readonly route: string | undefined
  /** The caller's address (and identity under mTLS). */
  readonly peer: Peer | undefined
  /**
   * The request's verified JWT (`listener.requestAuthentication`): `{ principal, claims,
   * audiences, presenter }`, principal being `<iss>/<sub>`; `undefined` when the request
   * carried no token or no JWT rules are configured.
   */
  readonly auth?: RequestAuth | undefined
}

/** The context with the mesh's private parts (the server span). */
export class MeshRequestContext implements RequestContext {
  constructor(
    readonly traceId: string,
    readonly spanId: string,
    readonly parentSpanId: string | undefined,
    readonly sampled: boolean,
    readonly traceState: string | undefined,
    readonly requestId: string,
    readonly route: string | undefined,
    readonly peer: Peer | undefined,
    /** @internal the server span, when the trace is recorded. */
    readonly span: Span | undefined,
    /**
     * @internal the W3C Level 2 random-trace-id flag of the trace (`SpanStart.random`), so
     * outgoing calls that keep the trace id keep the flag as received.
     */
    readonly random: boolean = false,
  ) {}

  /** Set by the JWT filter before the app runs; read-only to callers. */
  auth: RequestAuth | undefined = undefined

  /** A plain copy for callers (logs, JSON): the span stays inside the mesh. */
  toJSON(): RequestContext {
    const { traceId, spanId, parentSpanId, sampled, traceState, requestId, route, peer, auth } = this
    return { traceId, spanId, parentSpanId, sampled, traceState, requestId, route, peer, ...(auth === undefined ? {} : { auth }) }
  }
}

const REQUEST_KEY = contextKey('sidecarless.request')
const ownStorage = new AsyncLocalStorage<MeshRequestContext>()

/**
 * True when the app registered an OpenTelemetry context manager (checked per request: apps
 * may register late). Read from the API's global object, without loading the API: it is
 * loaded (`otel-api.ts`) only once this is true.
 */
export function otelContextManagerRegistered(): boolean {
  return otelGlobal()?.context !== undefined
}

/** The request context in OTel's context `active` (with the server span, so app spans nest under it). */
function otelContextOf(active: Context, ctx: MeshRequestContext): Context {
  const c = active.setValue(REQUEST_KEY, ctx)
  return ctx.span === undefined ? c : otelApi().trace.setSpan(c, ctx.span)
}

/**
 * Whether this runtime's AsyncLocalStorage keeps its stores in async context frames (Node 24
 * and later by default; Node 22 with `--experimental-async-context-frame`) rather than on
 * async resources through async_hooks (Node 22 by default). Told by behaviour, not by version
 * or flags: a store entered inside a resource's scope stays on that resource with async_hooks,
 * and is gone once the scope ends with frames. Probed on the first request, when the mesh's
 * storage is about to be enabled anyway.
 */
let contextFrames: boolean | undefined

function probeContextFrames(): boolean {
  const probe = new AsyncLocalStorage<number>()
  const resource = new AsyncResource('sidecarless.probe', MANUAL_DESTROY)
  resource.runInAsyncScope(() => probe.enterWith(1))
  const kept = resource.runInAsyncScope(() => probe.getStore())
  resource.emitDestroy()
  probe.disable()
  return kept === undefined
}

const MANUAL_DESTROY = Object.freeze({ requireManualDestroy: true })
const REQUEST_SCOPE = 'sidecarless.request'

/**
 * `fn(a, b)` with `ctx` as the mesh's store, in the scope of a resource made just before (so
 * its frame is the caller's: every other store stays as the caller had it).
 *
 * Why not `ownStorage.run`: with async context frames, `run` makes two frames (each a copy of
 * a Map): one to enter and one to leave, the second a copy of a frame that already holds a
 * store, through the Map constructor's generic path. A resource's scope leaves by putting the
 * caller's own frame back, so entering this way makes one frame, copied from the caller's
 * (usually empty). Measured (median of 3 × 2M calls, empty caller frame): `run` 207 / 218 ns
 * on Node 24 / 26, this 66 / 68 ns; with async_hooks (Node 22) `run` costs 30 ns and stays.
 * The resource is destroyed at once (for async_hooks users: init, before, after, destroy, like
 * any callback); work the app starts inside has it as its trigger.
 */
function enterFrame<A, B, T>(ctx: MeshRequestContext, fn: (a: A, b: B) => T, a: A, b: B): T {
  const resource = new AsyncResource(REQUEST_SCOPE, MANUAL_DESTROY)
  try {
    return resource.runInAsyncScope(enterThen<A, B, T>, undefined, ctx, fn, a, b)
  } finally {
    resource.emitDestroy()
  }
}

function enterThen<A, B, T>(ctx: MeshRequestContext, fn: (a: A, b: B) => T, a: A, b: B): T {
  ownStorage.enterWith(ctx)
  return fn(a, b)
}

function callWithout<T>(fn: () => T): T {
  return fn()
}

/**
 * Runs `fn` with `ctx` as the current request context. With an OTel context manager the
 * context (and the server span, so app spans nest under it) goes into OTel's context.
 */
export function runWithContext<T>(ctx: MeshRequestContext, fn: () => T): T {
  if (otelContextManagerRegistered()) {
    const otelContext = otelApi().context
    return otelContext.with(otelContextOf(otelContext.active(), ctx), fn)
  }
  contextFrames ??= probeContextFrames()
  if (contextFrames) return enterFrame(ctx, callWithout<T>, fn, undefined)
  return ownStorage.run(ctx, fn)
}

/**
 * {@link runWithContext} for a function of two arguments (the app's `request` listener):
 * called with them, so the caller needs no closure to carry them.
 */
export function runWithContextOn<A, B, T>(ctx: MeshRequestContext, fn: (a: A, b: B) => T, a: A, b: B): T {
  if (otelContextManagerRegistered()) {
    const otelContext = otelApi().context
    return otelContext.with(otelContextOf(otelContext.active(), ctx), fn, undefined, a, b)
  }
  contextFrames ??= probeContextFrames()
  if (contextFrames) return enterFrame(ctx, fn, a, b)
  return ownStorage.run(ctx, fn, a, b)
}

/** The current request context, or `undefined` outside any request. */
export function currentContext(): MeshRequestContext | undefined {
  if (otelContextManagerRegistered()) {
    return otelApi().context.active().getValue(REQUEST_KEY) as MeshRequestContext | undefined
  }
  return ownStorage.getStore()
}

/** The span that should parent an outgoing call: the app's active OTel span, else the server span. */
export function currentParentSpan(ctx: MeshRequestContext | undefined): Span | undefined {
  if (otelContextManagerRegistered()) {
    const { trace, context } = otelApi()
    const active = trace.getSpan(context.active())
    if (active !== undefined) return active
  }
  return ctx?.span
}
