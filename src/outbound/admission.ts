/**
 * The outbound limits, run: the target's compiled gate (`policy/admission.ts`) — the local
 * buckets of the route and of the cluster, then their shared quotas, then their bulkheads —
 * before the first try. Like Envoy, the mesh answers a refusal itself with an ordinary
 * response, never an error: a rate limit (local bucket or shared quota) is 429 with flag
 * `RL`; a full bulkhead (or its queue wait expiring) is 503 with flag `UO` and
 * `x-sidecarless-overflow: concurrency_limit`. A shared quota and a bulkhead queue may make
 * the request wait; the caller can abort it meanwhile (`SIDECARLESS_ERR_ABORTED`), which
 * gives its place up.
 */
import type { AdmissionGate } from '../policy/admission.js'
import type { ConcurrencyLimiter } from '../policy/concurrency-limit.js'
import { rateLimitHeaders } from '../policy/rate-limit.js'
import { OVERFLOW_HEADER } from '../response-headers.js'
import type { Exchange } from './exchange.js'
import type { SendPath } from './send.js'

/** Runs `gate` for `ex`, then sends it (`timeoutMs`: its route timeout), or answers it. */
export function admit(ex: Exchange, gate: AdmissionGate, send: SendPath, timeoutMs: number): boolean {
  const buckets = gate.buckets
  if (buckets.length > 0) {
    const now = performance.now()
    for (let i = 0; i < buckets.length; i++) {
      const verdict = (buckets[i] as (typeof buckets)[number]).check(ex.view, now)
      if (verdict.allowed) continue
      const headers = ex.targetHeaders()
      if (gate.bucketHeaders[i] === true) for (const [k, v] of rateLimitHeaders(verdict)) headers[k] = v
      ex.replyLater(send.refused(ex, 'rate_limited', { status: 429, body: 'local_rate_limited', flag: 'RL', headers }))
      return true
    }
  }
  const quotas = gate.quotas
  if (quotas.length === 0) return acquire(ex, gate.bulkheads, 0, send, timeoutMs)
  // The local buckets above already admitted the request: with Redis down they decide alone.
  void Promise.all(quotas.map((q) => q.limiter.check(q.key(ex.view), q.hasLocalBucket ? () => true : undefined))).then((answers) => {
    if (ex.done) return
    if (answers.every(Boolean)) acquire(ex, gate.bulkheads, 0, send, timeoutMs)
    else ex.reply(send.refused(ex, 'rate_limited', { status: 429, body: 'rate_limited', flag: 'RL', headers: ex.targetHeaders() }))
  })
  return true
}

/** Takes a slot of each bulkhead from `i` on (waiting in a queue when one is full), then sends. */
function acquire(ex: Exchange, bulkheads: readonly ConcurrencyLimiter[], i: number, send: SendPath, timeoutMs: number): boolean {
  for (; i < bulkheads.length; i++) {
    const b = bulkheads[i] as ConcurrencyLimiter
    if (b.tryAcquire()) {
      ;(ex.held ??= []).push(b)
      continue
    }
    const next = i + 1
    const ticket = b.enqueue(() => {
      ex.ticket = null
      // Granted to a request that ended meanwhile (it released what it held): give it back.
      if (ex.done) {
        b.release()
        return
      }
      ;(ex.held ??= []).push(b)
      acquire(ex, bulkheads, next, send, timeoutMs)
    }, (reason) => {
      ex.ticket = null
      const headers = ex.targetHeaders()
      headers[OVERFLOW_HEADER] = 'concurrency_limit'
      ex.replyLater(send.refused(ex, 'overflow', { status: 503, body: reason === 'timeout' ? 'concurrency limit queue timeout' : 'concurrency limit exceeded', flag: 'UO', headers }))
    })
    // No ticket: the limiter settled at once and already called one of the two callbacks.
    if (ticket !== undefined) ex.ticket = ticket
    return true
  }
  return send.send(ex, timeoutMs)
}
