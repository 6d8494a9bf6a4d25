/**
 * The inbound rate-limit and concurrency filter (Envoy `local_ratelimit`, then the global
 * quota, then a bulkhead). Refused requests are answered by the mesh: 429
 * `local_rate_limited` (`x-sidecarless-response-flags: RL`), or 503 when the route's
 * concurrency limit is full or its queue wait expired (`UO`); the app never sees them.
 */
import type http from 'node:http'
import type { LimitSet } from '../policy/limits.js'
import { rateLimitHeaders, type RateLimitRequest, type RateLimitVerdict } from '../policy/rate-limit.js'
import { refuse } from './local-refusal.js'

/** What the limiters read of an inbound request. */
class InboundLimitRequest implements RateLimitRequest {
  readonly remoteAddress: string | undefined
  readonly identity: string | undefined
  readonly path: string
  readonly #headers: http.IncomingHttpHeaders

  constructor(req: http.IncomingMessage, identity: string | undefined) {
    this.remoteAddress = req.socket.remoteAddress
    this.identity = identity
    const url = req.url ?? '/'
    const q = url.indexOf('?')
    this.path = q === -1 ? url : url.slice(0, q)
    this.#headers = req.headers
  }

  header(name: string): string | undefined {
    const v = this.#headers[name]
    return Array.isArray(v) ? v.join(',') : v
  }
}

/**
 * Runs the limits of the listener and of the request's route, then `proceed` — or answers
 * the request itself. `proceed` runs at most once, possibly later (shared quota, bulkhead
 * queue); a slot taken from a bulkhead is released when the response closes.
 */
export function applyInboundLimits(
  req: http.IncomingMessage,
  res: http.ServerResponse,
  identity: string | undefined,
  sets: readonly LimitSet[],
  proceed: () => void,
): void {
  const lr = new InboundLimitRequest(req, identity)
  const now = performance.now()
  let shown: RateLimitVerdict | undefined
  for (const set of sets) {
    if (set.rate === null) continue
    const v = set.rate.check(lr, now)
    if (!v.allowed) {
      refuse(res, 'rate_limited', 429, 'local_rate_limited', set.responseHeaders ? rateLimitHeaders(v) : undefined)
      return
    }
    if (set.responseHeaders && v.limit >= 0) shown ??= v
  }
  if (shown !== undefined) for (const [k, v] of rateLimitHeaders(shown)) res.setHeader(k, v)

  const globals = sets.filter((s) => s.global !== null)
  if (globals.length === 0) {
    admit(res, sets, proceed)
    return
  }
  // The local buckets above already admitted the request: with Redis down they decide alone.
  void Promise.all(globals.map((s) => (s.global as NonNullable<LimitSet['global']>).check(s.globalKey(lr), s.rate === null ? undefined : () => true)))
    .then((answers) => {
      if (res.destroyed || res.writableEnded) return
      if (answers.every(Boolean)) admit(res, sets, proceed)
      else refuse(res, 'rate_limited', 429, 'rate_limited')
    })
}

function admit(res: http.ServerResponse, sets: readonly LimitSet[], proceed: () => void): void {
  const bulkhead = sets.find((s) => s.concurrency !== null)?.concurrency ?? null
  if (bulkhead === null) {
    proceed()
    return
  }
  const hold = (): void => {
    res.once('close', () => bulkhead.release())
    proceed()
  }
  if (bulkhead.tryAcquire()) {
    hold()
    return
  }
  const ticket = bulkhead.enqueue(hold, (reason) => {
    if (!res.destroyed && !res.writableEnded) refuse(res, 'overflow', 503, reason === 'timeout' ? 'concurrency limit queue timeout' : 'concurrency limit exceeded')
  })
  // No ticket: the limiter settled at once and already called one of the two callbacks.
  if (ticket === undefined) return
  // A caller that goes away while queued gives its place up.
  res.once('close', () => ticket.cancel())
}
