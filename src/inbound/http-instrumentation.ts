/**
 * Wrapped servers under OpenTelemetry's HTTP instrumentation (`@opentelemetry/instrumentation-http`,
 * which `auto-instrumentations-node` loads). It wraps `http.Server.prototype.emit`: for each
 * `request` event it starts a SERVER span from the request's trace headers, makes it the
 * active span, then calls the `emit` it wrapped. A wrapped server's own `emit` is the
 * mesh's and runs first, so without care a hop gets two server spans in two traces, and the
 * mesh's request context is lost (the instrumentation starts from an empty context).
 *
 * So the mesh calls the instrumentation itself, with a relay as `this`: the instrumentation
 * starts and activates its span, then its inner emit fires `request` on the relay, whose
 * listener runs the mesh's chain inside that context (the chain adopts the span:
 * `mesh.context()` reports it), and the chain hands the request to the server's listeners
 * through the emit the instrumentation wrapped. With `tracing.spans: 'mesh'` the
 * instrumentation is skipped and the mesh's span is the only one.
 *
 * Only OpenTelemetry's wrapper is recognised (shimmer's `__wrapped`/`__original` marks on a
 * function named `incomingRequest`): another wrapper is left alone and runs as before.
 */
import { EventEmitter } from 'node:events'
import type http from 'node:http'
import type { Span } from '@opentelemetry/api'
import type { SpanOwnership } from '../config/types.js'
import { otelApi } from '../observability/otel-api.js'

/** Set on a request the instrumentation runs around: its server span, for the chain to adopt. */
export const APP_SERVER_SPAN: unique symbol = Symbol('sidecarless.appServerSpan')

type Emit = (this: unknown, event: string | symbol, ...args: unknown[]) => boolean
type Req = http.IncomingMessage & { [APP_SERVER_SPAN]?: Span | undefined }

/** What delivery needs of the inbound chain (`pipeline.ts`). */
export interface InboundChain {
  handle(req: http.IncomingMessage, res: http.ServerResponse, next: (req: http.IncomingMessage, res: http.ServerResponse) => void): void
  spanOwnership(): SpanOwnership
}

/** The emit OpenTelemetry's instrumentation-http wrapped, when `emit` is its wrapper. */
function wrappedByOtel(emit: Emit): Emit | undefined {
  const f = emit as Emit & { __wrapped?: unknown; __original?: unknown }
  return f.__wrapped === true && typeof f.__original === 'function' && f.name === 'incomingRequest' ? f.__original as Emit : undefined
}

/**
 * How `server` hands a `request` event to the chain, then to its listeners, given the
 * `emit` it had before the mesh wrapped it.
 */
export function requestDelivery(server: http.Server, emit: Emit, pipelineOf: () => InboundChain | null): (req: http.IncomingMessage, res: http.ServerResponse) => void {
  const inner = wrappedByOtel(emit)
  if (inner === undefined) {
    // One function for every request: the chain calls it with the request and response.
    const toServer = (req: http.IncomingMessage, res: http.ServerResponse): void => void emit.call(server, 'request', req, res)
    return (req, res) => {
      const pipeline = pipelineOf()
      // No mesh yet (register waiting for a good config): straight to the app.
      if (pipeline === null) toServer(req, res)
      else pipeline.handle(req, res, toServer)
    }
  }
  const toApp = (req: http.IncomingMessage, res: http.ServerResponse): void => void inner.call(server, 'request', req, res)
  const relay = new EventEmitter()
  relay.on('request', (req: Req, res: http.ServerResponse) => {
    // The instrumentation registered OpenTelemetry's API (it runs on it), so loading ours costs nothing new.
    const { trace, context } = otelApi()
    req[APP_SERVER_SPAN] = trace.getSpan(context.active())
    const pipeline = pipelineOf()
    if (pipeline === null) toApp(req, res)
    else pipeline.handle(req, res, toApp)
  })
  return (req, res) => {
    const pipeline = pipelineOf()
    if (pipeline === null) emit.call(server, 'request', req, res)
    else if (pipeline.spanOwnership() === 'mesh') pipeline.handle(req, res, toApp)
    else emit.call(relay, 'request', req, res)
  }
}

/**
 * `emit` without OpenTelemetry's wrapper: for a `request` the chain already ran on outside
 * the instrumentation (an Expect: 100-continue request), so a hop keeps one server span.
 */
export function uninstrumented(emit: Emit): Emit {
  return wrappedByOtel(emit) ?? emit
}

/** The app instrumentation's server span of `req`, when it runs around the chain. */
export function appServerSpan(req: http.IncomingMessage): Span | undefined {
  return (req as Req)[APP_SERVER_SPAN]
}
