/**
 * Fault injection on the outbound path (Envoy's HTTP fault filter as a route's `fault`; the
 * decision is `policy/fault.ts`). With no fault drawn the request goes on at once. An abort
 * is answered locally (`httpStatus`, body `fault filter abort`, flag `FI`); a delay holds the
 * request (its body untouched) and then lets it go on, with `DI` added to the response's
 * flags. The caller may abort during the delay: the timer is cleared, a streaming body is
 * released and the caller gets `SIDECARLESS_ERR_ABORTED`.
 */
import { FAULT_ABORT_BODY, type CompiledFault } from '../policy/fault.js'
import type { Exchange } from './exchange.js'

/** Applies `fault` to `ex`, then `proceed()` unless the fault answered it. */
export function applyFault(ex: Exchange, fault: CompiledFault, proceed: () => boolean): boolean {
  const view = ex.view
  const d = fault.decide((name) => view.header(name))
  if (d === null) return proceed()
  const abort = d.abortStatus
  if (d.delayMs === 0) {
    ex.replyLater({ status: abort, body: FAULT_ABORT_BODY, flag: 'FI' })
    return true
  }
  ex.delay(fault, d.delayMs, () => {
    if (abort !== 0) ex.reply({ status: abort, body: FAULT_ABORT_BODY, flag: 'FI' })
    else proceed()
  })
  return true
}
