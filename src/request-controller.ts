/**
 * The controller a caller holds for its request (undici's `DispatchController`): abort,
 * pause, resume, and what they did. There is one per request, whatever carries the request
 * at the moment — a wait at the limits, a fault delay, a back-off between tries, a try, a
 * local reply — so the caller sees one object from `onRequestStart` to the end. What an
 * abort, pause or resume does to the stage in progress is the subclass's: the exchange's
 * (`outbound/exchange.ts`), or the adapter of a new-style handler on the mesh's own
 * connection (`upstream/h1/legacy-handler.ts`); a request answered at the door uses this
 * class as it is.
 */
import type { Dispatcher } from 'undici'

export class RequestController implements Dispatcher.DispatchController {
  /** Raw response headers for old-style callers, matching the header object handed on. */
  rawHeaders: Buffer[] | null = null
  #aborted = false
  #paused = false
  #reason: Error | null = null

  get aborted(): boolean {
    return this.#aborted
  }

  get paused(): boolean {
    return this.#paused
  }

  get reason(): Error | null {
    return this.#reason
  }

  abort(reason: Error): void {
    if (this.#aborted) return
    this.#aborted = true
    this.#reason = reason
    this.aborting(reason)
  }

  pause(): void {
    this.#paused = true
    this.pausing(true)
  }

  resume(): void {
    this.#paused = false
    this.pausing(false)
  }

  /** The caller aborted (once): stop what carries the request. */
  protected aborting(_reason: Error): void {}

  /** The caller paused (`true`) or resumed (`false`) the response. */
  protected pausing(_paused: boolean): void {}
}
