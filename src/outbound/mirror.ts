/**
 * Sends the mirrored copies of a dispatcher's requests (the policy is `policy/mirror.ts`).
 * A copy is an exchange of its own — same view of the caller's request, Host
 * `<authority>-shadow`, the route's path and timeout, the mirror target — sent once by the
 * same send path as any request (`send.ts`), outside the shadow cluster's breaker and
 * thresholds. Its caller is a sink that reads nothing and lets the copy's outcome count
 * in the shadow cluster's metrics, as the try counts it; nothing here throws or waits.
 */
import type { Duplex } from 'node:stream'
import { MeshError } from '../errors.js'
import { isReplayableBody, shadowAuthority, type MirrorPolicy } from '../router/mirror.js'
import { Exchange } from './exchange.js'
import type { Controller, Handler } from './handler.js'
import type { SendPath } from './send.js'

/** The copies of one dispatcher's requests. */
export class MirrorSender {
  readonly #send: SendPath
  readonly #live = new Set<Exchange>()

  constructor(send: SendPath) {
    this.#send = send
  }

  /**
   * Copies `ex`'s request to each of `policy`'s targets that its draw selects. Never throws,
   * never waits. `timeoutMs` is the route's timeout, which each copy keeps.
   */
  copy(policy: MirrorPolicy, ex: Exchange, timeoutMs: number): void {
    try {
      const opts = ex.opts
      for (const t of policy.targets) {
        if (!policy.draws(t)) continue
        if (!isReplayableBody(opts.body) || opts.upgrade !== undefined && opts.upgrade !== null) {
          policy.skippedBody++
          continue
        }
        if (policy.inFlight >= policy.maxInFlight) {
          policy.skippedOverflow++
          continue
        }
        policy.mirrored++
        const copy = new Exchange(this.#send, opts, new MirrorSink(policy, this.#live), ex.view, shadowAuthority(ex.authority), ex.path, ex.tracing, null, true)
        copy.target = t
        this.#live.add(copy)
        this.#send.send(copy, timeoutMs)
      }
    } catch {
      // A copy must never hurt the original; whatever failed was counted where it could be.
    }
  }

  /** Aborts every copy in flight (the mesh is closing; nobody waits for them). */
  abortAll(): void {
    for (const copy of [...this.#live]) copy.abort(new MeshError('SIDECARLESS_ERR_CLOSED', 'the mesh closed while a mirrored request was in flight'))
  }
}

/** The caller of a copy: drops the response and counts the copy out when it ends. */
class MirrorSink implements Handler {
  readonly #policy: MirrorPolicy
  readonly #live: Set<Exchange>
  #done = false

  constructor(policy: MirrorPolicy, live: Set<Exchange>) {
    this.#policy = policy
    this.#live = live
    policy.inFlight++
  }

  onRequestStart(): void {}

  onRequestUpgrade(controller: Controller, _status: number, _headers: unknown, socket: Duplex): void {
    socket.destroy()
    this.#end(controller)
  }

  onResponseStart(): void {}

  onResponseData(): void {}

  onResponseEnd(controller: Controller): void {
    this.#end(controller)
  }

  onResponseError(controller: Controller): void {
    this.#end(controller)
  }

  #end(controller: Controller): void {
    if (this.#done) return
    this.#done = true
    this.#policy.inFlight--
    this.#live.delete(controller as Exchange)
  }
}
