/**
 * The handler protocol an {@link H1Connection} speaks: undici's old-style one (undici ≤ 6,
 * which undici 7's pools still drive), because the mesh's own try (`UpstreamRequest`) and
 * `Dispatcher.request()` speak it and it costs no wrapper. New-style handlers are adapted
 * ({@link LegacyFromNew}).
 */
import { util, type Dispatcher } from 'undici'
import { RequestController } from '../../request-controller.js'

export interface LegacyHandler {
  onConnect?(abort: (err?: Error) => void, context?: unknown): void
  onHeaders?(statusCode: number, rawHeaders: Buffer[], resume: () => void, statusText: string): boolean | void
  onData?(chunk: Buffer): boolean | void
  onComplete?(trailers: Buffer[] | null): void
  onError?(err: Error): void
  onUpgrade?(statusCode: number, rawHeaders: Buffer[] | null, socket: unknown): void
  onResponseStarted?(): void
  onRequestSent?(): void
  onBodySent?(chunk: unknown): void
}

type Handler = Dispatcher.DispatchHandler

/**
 * A new-style handler (`onRequestStart`, `onResponseStart`, ...) behind the old-style
 * protocol, and the controller it holds: undici 7's `UnwrapHandler` and `UnwrapController`,
 * as one object (the header object parsed from the raw list the same way).
 */
export class LegacyFromNew extends RequestController implements LegacyHandler {
  readonly #h: Handler
  #abort: ((err?: Error) => void) | null = null
  #resume: (() => void) | null = null
  rawTrailers: Buffer[] | null = null

  constructor(handler: Handler) {
    super()
    this.#h = handler
  }

  /** A resume that finds nothing paused does nothing (the connection's own resume is not called). */
  override resume(): void {
    if (this.paused) super.resume()
  }

  protected override aborting(reason: Error): void {
    this.#abort?.(reason)
  }

  protected override pausing(paused: boolean): void {
    if (!paused) this.#resume?.()
  }

  onConnect(abort: (err?: Error) => void, context?: unknown): void {
    this.#abort = abort
    this.#h.onRequestStart?.(this, context)
  }

  onHeaders(statusCode: number, rawHeaders: Buffer[], resume: () => void, statusText: string): boolean {
    this.#resume = resume
    this.rawHeaders = rawHeaders
    this.#h.onResponseStart?.(this, statusCode, util.parseHeaders(rawHeaders), statusText)
    return !this.paused
  }

  onData(chunk: Buffer): boolean {
    this.#h.onResponseData?.(this, chunk)
    return !this.paused
  }

  onComplete(trailers: Buffer[] | null): void {
    this.rawTrailers = trailers
    this.#h.onResponseEnd?.(this, util.parseHeaders(trailers ?? []))
  }

  onError(err: Error): void {
    this.#h.onResponseError?.(this, err)
  }
}
