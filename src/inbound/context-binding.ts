/**
 * Keeps the request context in the app's event handlers. AsyncLocalStorage follows the
 * async call tree, but a request body that arrives after the handler ran (always so after
 * `100 Continue`, often for large bodies, and every message of a WebSocket) is emitted from
 * the connection's own async context, where `mesh.context()` would be undefined and outbound
 * calls would start new traces. As OpenTelemetry's context managers bind request and response
 * emitters, the emitters of a request the app handles run the app's listeners in its context.
 *
 * Bound lazily, because most requests need nothing: binding only listens for `newListener`
 * (one listener, a shared function; the context is a field of the emitter). The listeners
 * present when the binding is made are node's and the mesh's own, which need no context.
 * The first listener added later (by the app, or by node for the app: `pipe`, `res.end(cb)`,
 * async iteration, a WebSocket library) wraps the emitter's `emit`, and from then on an
 * event that gained such a listener is emitted inside the context, unless it already is.
 * Entering the context is what costs (on Node 24+ each entry copies the async context
 * frame, a Map; on Node 22 it writes a property on the current async resource), so events
 * nobody but node and the mesh listens to — nearly all of a request's and a response's —
 * are emitted as they would be without the mesh.
 *
 * One listener node adds later is known to need no context and is left alone:
 * `clearIncoming`, which node's http server puts on a request's `end` when the response
 * finished first (nearly every GET answered at once) to let the parser drop the request.
 * Were node to rename it, it would be bound like any other: correct, only slower.
 *
 * Not bound: a listener added before the binding, or after the app removed every
 * `newListener` listener of the emitter (`removeAllListeners()` without an event name).
 */
import type { EventEmitter } from 'node:events'
import { currentContext, runWithContext, type MeshRequestContext } from '../observability/context.js'

const CONTEXT = Symbol('sidecarless.context')
const APP_EVENTS = Symbol('sidecarless.appEvents')

type Event = string | symbol
type Emit = EventEmitter['emit']

/** An emitter bound to a request context. */
interface Bound extends EventEmitter {
  [CONTEXT]?: MeshRequestContext
  /** Events that gained a listener after the binding (whose emits enter the context); set with the `emit` wrapper. */
  [APP_EVENTS]?: Event[]
}

/** Makes every listener added to `emitter` from now on run in `ctx`. */
export function bindToContext(emitter: EventEmitter, ctx: MeshRequestContext): void {
  const bound = emitter as Bound
  const first = bound[CONTEXT] === undefined
  bound[CONTEXT] = ctx
  if (first) emitter.on('newListener', onNewListener)
}

/** node's http server's own `end` listener (see above), by its name. */
const NODE_CLEAR_INCOMING = 'clearIncoming'

/** `newListener` (emitted before the listener is added): marks the event, wrapping `emit` on the first. */
function onNewListener(this: Bound, event: Event, listener: (...args: unknown[]) => unknown): void {
  if (listener.name === NODE_CLEAR_INCOMING) return
  let events = this[APP_EVENTS]
  if (events === undefined) {
    events = []
    this[APP_EVENTS] = events
    wrapEmit(this, events)
  }
  if (!events.includes(event)) events.push(event)
}

function wrapEmit(emitter: Bound, events: readonly Event[]): void {
  // eslint-disable-next-line @typescript-eslint/unbound-method -- called below with the emitter as `this`
  const emit = emitter.emit
  emitter.emit = function emitInContext(this: Bound, event: Event): boolean {
    const ctx = this[CONTEXT] as MeshRequestContext
    // Not an app's event, already in the context, or no listener left: straight through.
    // `apply(this, arguments)` hands the arguments on without an array per emit.
    if (!events.includes(event) || currentContext() === ctx || this.listenerCount(event) === 0) {
      // eslint-disable-next-line prefer-rest-params
      return emit.apply(this, arguments as unknown as Parameters<Emit>)
    }
    // eslint-disable-next-line prefer-rest-params
    return emitIn(ctx, emit, this, arguments)
  } as Emit
}

function emitIn(ctx: MeshRequestContext, emit: Emit, emitter: EventEmitter, args: IArguments): boolean {
  return runWithContext(ctx, () => emit.apply(emitter, args as unknown as Parameters<Emit>))
}
