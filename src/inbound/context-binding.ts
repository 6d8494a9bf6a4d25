/**
 * Keeps the request context in the app's event handlers. AsyncLocalStorage follows the
 * async call tree, but a request body that arrives after the handler ran (always so after
 * `100 Continue`, often for large bodies, and every message of a WebSocket) is emitted from
 * the connection's own async context, where `mesh.context()` would be undefined and outbound
 * calls would start new traces. As OpenTelemetry's context managers bind request and response
 * emitters, the emitters of a request the app handles run their listeners in its context.
 *
 * Only `emit` is wrapped (one closure per emitter), and an emit already inside the context
 * (the common case), or of an event nobody listens to, calls straight through.
 */
import type { EventEmitter } from 'node:events'
import { currentContext, runWithContext, type MeshRequestContext } from '../observability/context.js'

/** Makes every listener of `emitter` run in `ctx`. */
export function bindToContext(emitter: EventEmitter, ctx: MeshRequestContext): void {
  // eslint-disable-next-line @typescript-eslint/unbound-method -- called below with the emitter as `this`
  const emit = emitter.emit
  emitter.emit = function emitInContext(this: EventEmitter, event: string | symbol): boolean {
    // Already in the context, or no listener to run: straight through. `apply(this,
    // arguments)` hands the arguments on without an array or an iterator per emit, and an
    // event nobody listens to (most of a response's) does not enter the context: on Node 24
    // each entry copies the async context frame (a Map).
    // eslint-disable-next-line prefer-rest-params
    if (currentContext() === ctx || this.listenerCount(event) === 0) return emit.apply(this, arguments as unknown as Parameters<EventEmitter['emit']>)
    // eslint-disable-next-line prefer-rest-params
    return emitIn(ctx, emit, this, arguments)
  } as EventEmitter['emit']
}

function emitIn(ctx: MeshRequestContext, emit: EventEmitter['emit'], emitter: EventEmitter, args: IArguments): boolean {
  return runWithContext(ctx, () => emit.apply(emitter, args as unknown as Parameters<EventEmitter['emit']>))
}
