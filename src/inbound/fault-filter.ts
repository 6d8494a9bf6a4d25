/**
 * The inbound fault filter (Envoy's HTTP fault filter on an inbound route, the decision in
 * `policy/fault.ts`), the last filter before the app.
 */
import type http from 'node:http'
import { FAULT_ABORT_BODY, type CompiledFault } from '../policy/fault.js'
import { RESPONSE_FLAGS_HEADER } from '../response-headers.js'

/**
 * The inbound fault filter, right before the app. With no fault drawn, calls `proceed` at
 * once. An abort answers `httpStatus` / `fault filter abort` / flag `FI` and the app is
 * never called; the request's metrics record it as an ordinary response with that status
 * (as Envoy counts it in `downstream_rq_xx`), and {@link FaultStats} count the fault. A
 * delay holds the request before the app sees it (flag `DI` set on the response); a caller
 * that disconnects meanwhile clears the timer, and the app is never called.
 */
export function applyInboundFault(fault: CompiledFault, req: http.IncomingMessage, res: http.ServerResponse, proceed: () => void): void {
  const headers = req.headers
  const d = fault.decide((name) => {
    const v = headers[name]
    return typeof v === 'string' ? v : undefined
  })
  if (d === null) {
    proceed()
    return
  }
  if (d.delayMs === 0) {
    answerAbort(res, d.abortStatus)
    return
  }
  res.setHeader(RESPONSE_FLAGS_HEADER, 'DI')
  const onClose = (): void => {
    clearTimeout(timer)
    fault.release()
  }
  const timer = setTimeout(() => {
    res.off('close', onClose)
    fault.release()
    if (res.destroyed || res.writableEnded) return
    if (d.abortStatus !== 0) answerAbort(res, d.abortStatus)
    else proceed()
  }, d.delayMs)
  res.once('close', onClose)
}

function answerAbort(res: http.ServerResponse, status: number): void {
  res.statusCode = status
  res.setHeader('content-type', 'text/plain')
  // After a delay the header already says DI.
  res.setHeader(RESPONSE_FLAGS_HEADER, res.hasHeader(RESPONSE_FLAGS_HEADER) ? 'DI,FI' : 'FI')
  res.end(FAULT_ABORT_BODY)
}
