import type { Host } from '../host.js'

/** An endpoint as a cluster sees it: a shared host plus this cluster's weight and labels. */
export interface Endpoint {
  readonly host: Host
  readonly weight: number
  readonly labels: Readonly<Record<string, string>>
}

/**
 * Picks a host for one request. `hash` is the request's hash from the route's hash
 * policy, or `undefined` when it has none (hash-based balancers then pick at random, as
 * Envoy does). Returns `undefined` only when there is no endpoint.
 */
export interface LoadBalancer {
  readonly size: number
  pick(hash: number | undefined): Host | undefined
}

/** The balancer of an empty endpoint set: there is never a host. */
export const EMPTY_LB: LoadBalancer = Object.freeze({ size: 0, pick: () => undefined })

/** Cumulative weights, for weighted random picks by binary search. */
export function cumulativeWeights(endpoints: readonly Endpoint[]): Float64Array {
  const cum = new Float64Array(endpoints.length)
  let total = 0
  for (let i = 0; i < endpoints.length; i++) {
    total += (endpoints[i] as Endpoint).weight
    cum[i] = total
  }
  return cum
}

/** Index of the first cumulative weight above `x` (0 ≤ x < total). */
export function searchCumulative(cum: Float64Array, x: number): number {
  let lo = 0
  let hi = cum.length - 1
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if ((cum[mid] as number) > x) hi = mid
    else lo = mid + 1
  }
  return lo
}

/** True when every endpoint has the same weight. */
export function uniformWeights(endpoints: readonly Endpoint[]): boolean {
  const w = endpoints[0]?.weight
  return endpoints.every((e) => e.weight === w)
}
