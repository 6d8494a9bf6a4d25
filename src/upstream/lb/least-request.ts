import { cumulativeWeights, searchCumulative, uniformWeights, type Endpoint, type LoadBalancer } from './load-balancer.js'
import type { Host } from '../host.js'

/**
 * Least request by the power of `choiceCount` choices (Envoy default 2): draw that many
 * endpoints at random (weighted), keep the one with the fewest active requests per unit of
 * weight. O(choiceCount) per pick, no global scan, and it avoids the herd that a strict
 * "global least" causes when many clients see the same counts.
 */
export class LeastRequestLoadBalancer implements LoadBalancer {
  readonly size: number
  readonly #endpoints: readonly Endpoint[]
  readonly #cum: Float64Array | undefined
  readonly #choices: number

  constructor(endpoints: readonly Endpoint[], choiceCount: number) {
    this.size = endpoints.length
    this.#endpoints = endpoints
    this.#cum = uniformWeights(endpoints) ? undefined : cumulativeWeights(endpoints)
    this.#choices = choiceCount
  }

  pick(): Host | undefined {
    const eps = this.#endpoints
    if (eps.length === 0) return undefined
    if (eps.length === 1) return (eps[0] as Endpoint).host
    if (this.#cum === undefined && this.#choices === 2) return this.#pickTwoDistinct()
    let best: Endpoint | undefined
    let bestScore = Infinity
    for (let i = 0; i < this.#choices; i++) {
      const e = this.#draw()
      const score = e.host.active / e.weight
      if (score < bestScore) {
        best = e
        bestScore = score
      }
    }
    return (best as Endpoint).host
  }

  /**
   * The common case, two distinct draws: Envoy draws with replacement, which with few hosts
   * often compares a host with itself (with two hosts, half the time); distinct draws cost
   * the same and always compare two hosts.
   */
  #pickTwoDistinct(): Host {
    const eps = this.#endpoints
    const n = eps.length
    const i = Math.floor(Math.random() * n)
    let j = Math.floor(Math.random() * (n - 1))
    if (j >= i) j++
    const a = eps[i] as Endpoint
    const b = eps[j] as Endpoint
    return (b.host.active < a.host.active ? b : a).host
  }

  #draw(): Endpoint {
    const eps = this.#endpoints
    const cum = this.#cum
    if (cum === undefined) return eps[Math.floor(Math.random() * eps.length)] as Endpoint
    return eps[searchCumulative(cum, Math.random() * (cum[cum.length - 1] as number))] as Endpoint
  }
}
