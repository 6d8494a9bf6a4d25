/**
 * What happens when a response of a wrapped server closes, run by one shared `close`
 * listener (`this` is the response): the server forgets it (no longer in flight, for the
 * drain), then the chain's exchange ends (metrics, span). What each needs is kept on the
 * response, so a request costs one listener and no closure or `once` wrapper.
 */
import type http from 'node:http'

/** Where a server keeps its responses in flight. */
export interface InFlightResponses {
  delete(res: http.ServerResponse): void
}

/** The chain's side of one request, ended when its response closes. */
export interface ClosingExchange {
  closed(): void
}

const IN_FLIGHT = Symbol('sidecarless.inFlight')
const EXCHANGE = Symbol('sidecarless.exchange')

type Watched = http.ServerResponse & { [IN_FLIGHT]?: InFlightResponses | undefined; [EXCHANGE]?: ClosingExchange | undefined }

/** An admitted response: in `inFlight` until it closes. */
export function watchInFlight(res: http.ServerResponse, inFlight: InFlightResponses): void {
  const w = res as Watched
  const listening = w[IN_FLIGHT] !== undefined || w[EXCHANGE] !== undefined
  w[IN_FLIGHT] = inFlight
  if (!listening) res.on('close', responseClosed)
}

/** `exchange` ends (once) when `res` closes. */
export function endOnClose(res: http.ServerResponse, exchange: ClosingExchange): void {
  const w = res as Watched
  const listening = w[IN_FLIGHT] !== undefined || w[EXCHANGE] !== undefined
  w[EXCHANGE] = exchange
  if (!listening) res.on('close', responseClosed)
}

function responseClosed(this: Watched): void {
  const inFlight = this[IN_FLIGHT]
  if (inFlight !== undefined) {
    this[IN_FLIGHT] = undefined
    inFlight.delete(this)
  }
  const exchange = this[EXCHANGE]
  if (exchange !== undefined) {
    this[EXCHANGE] = undefined
    exchange.closed()
  }
}
