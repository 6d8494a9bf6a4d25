/**
 * Dispatch handlers. Inside the mesh every handler is new-style (`onRequestStart`,
 * `onResponseStart`, `onResponseData`, `onResponseEnd`, `onResponseError`), the only kind
 * undici 8 accepts. Callers may still hand us an old-style one — Node 20's built-in fetch
 * (undici 6) does, once `installGlobal()` made the mesh the global dispatcher — so the
 * dispatcher adapts those at the door and nowhere else.
 */
import type { Dispatcher } from 'undici'

/** A new-style handler. */
export type Handler = Dispatcher.DispatchHandler

/** The controller a new-style handler receives. */
export type Controller = Dispatcher.DispatchController

/** The old-style handler shape (undici ≤ 6). */
interface LegacyHandler {
  onConnect?(abort: (err?: Error) => void, context?: object): void
  onHeaders?(statusCode: number, rawHeaders: Buffer[], resume: () => void, statusText: string): boolean
  onData?(chunk: Buffer): boolean
  onComplete?(trailers: Buffer[] | string[] | null): void
  onError?(err: Error): void
  onUpgrade?(statusCode: number, rawHeaders: Buffer[] | string[] | null, socket: unknown): void
}

/** Returns a new-style view of any handler (an old-style one gets a {@link LegacyHandlerAdapter}). */
export function toNewStyle(handler: object): Handler {
  return typeof (handler as Handler).onRequestStart === 'function' ||
    typeof (handler as Handler).onResponseStart === 'function'
    ? (handler)
    : new LegacyHandlerAdapter(handler)
}

type HeaderObject = Record<string, string | string[] | undefined>

/**
 * The raw (name, value) list of a header object. A controller must always carry one that
 * matches the headers it hands on: undici 8's fetch reads `controller.rawHeaders` and takes
 * a missing list as "no headers at all".
 */
export function rawFrom(headers: HeaderObject | null | undefined): Buffer[] {
  const raw: Buffer[] = []
  if (headers === null || headers === undefined) return raw
  for (const key of Object.keys(headers)) {
    const v = headers[key]
    if (v === undefined) continue
    const k = Buffer.from(key, 'latin1')
    if (Array.isArray(v)) for (const x of v) raw.push(k, Buffer.from(x, 'latin1'))
    else raw.push(k, Buffer.from(v, 'latin1'))
  }
  return raw
}

/**
 * An old-style handler seen as a new-style one. The exchange hands it a response's raw
 * header list and raw trailers directly when it has them (`onRawResponseStart`,
 * `onRawResponseEnd`): an old-style caller parses the raw list itself (undici's request,
 * stream and pipeline do), so building a header object for it, then raw buffers again from
 * that object, is work for nothing on every response.
 */
export class LegacyHandlerAdapter implements Handler {
  readonly #h: LegacyHandler
  #controller: Controller | null = null
  /** One resume callback per request, not one closure per response. */
  readonly #resume = (): void => this.#controller?.resume()

  constructor(h: LegacyHandler) {
    this.#h = h
  }

  onRequestStart(controller: Controller, context: object): void {
    this.#controller = controller
    this.#h.onConnect?.((reason) => controller.abort(reason ?? new Error('aborted')), context)
  }

  onRequestUpgrade(_controller: Controller, statusCode: number, headers: HeaderObject, socket: unknown): void {
    this.#h.onUpgrade?.(statusCode, rawFrom(headers), socket)
  }

  onResponseStart(controller: Controller, statusCode: number, headers: HeaderObject, statusMessage?: string): void {
    // The mesh's controller carries the upstream's raw headers (plus its own) when they
    // still match `headers`: passing them on spares a rebuild for every response.
    const raw = Array.isArray(controller.rawHeaders) ? (controller.rawHeaders as Buffer[]) : rawFrom(headers)
    this.onRawResponseStart(controller, statusCode, raw, statusMessage)
  }

  /** The response head as the old-style handler takes it: `raw` is what `onHeaders` gets. */
  onRawResponseStart(controller: Controller, statusCode: number, raw: Buffer[], statusMessage: string | undefined): void {
    this.#controller = controller
    if (this.#h.onHeaders?.(statusCode, raw, this.#resume, statusMessage ?? '') === false) controller.pause()
  }

  onResponseData(controller: Controller, chunk: Buffer): void {
    if (this.#h.onData?.(chunk) === false) controller.pause()
  }

  onResponseEnd(_controller: Controller, trailers: HeaderObject): void {
    this.#h.onComplete?.(rawFrom(trailers))
  }

  /** The end of the response, its trailers as the raw list `onComplete` gets. */
  onRawResponseEnd(_controller: Controller, rawTrailers: Buffer[]): void {
    this.#h.onComplete?.(rawTrailers)
  }

  onResponseError(_controller: Controller, err: Error): void {
    this.#h.onError?.(err)
  }
}
