/**
 * Keeps the request context in the app's event handlers. AsyncLocalStorage follows the
 * async call tree, but a request body that arrives after the handler ran (always so after
 * `100 Continue`, often for large bodies, and every message of a WebSocket) is emitted from
 * the connection's own async context, where `mesh.context()` would be undefined and outbound
 * calls would start new traces. As OpenTelemetry's context managers bind request and response
 * emitters, the emitters of a request the app handles run their listeners in its context.
 *
 * Only `emit` is wrapped (one closure per emitter), and an emit already inside the context
 * (the common case) calls straight through.
 */
import type { EventEmitter } from 'node:events'
import { currentContext, runWithContext, type MeshRequestContext } from '../observability/context.js'

/** Makes every listener of `emitter` run in `ctx`. */
export function bindToContext(emitter: EventEmitter, ctx: MeshRequestContext): void {
  // eslint-disable-next-line @typescript-eslint/unbound-method -- called below with the emitter as `this`
  const emit = emitter.emit
  emitter.emit = function emitInContext(this: EventEmitter, event: string | symbol, ...args: unknown[]): boolean {
    if (currentContext() === ctx) return emit.call(this, event, ...args)
    return runWithContext(ctx, () => emit.call(this, event, ...args))
  } as EventEmitter['emit']
}
