import { cumulativeWeights, searchCumulative, uniformWeights, type Endpoint, type LoadBalancer } from './load-balancer.js'
import type { Host } from '../host.js'

/** Random, weighted by endpoint weight. */
export class RandomLoadBalancer implements LoadBalancer {
  readonly size: number
  readonly #hosts: readonly Host[]
  readonly #cum: Float64Array | undefined

  constructor(endpoints: readonly Endpoint[]) {
    this.size = endpoints.length
    this.#hosts = endpoints.map((e) => e.host)
    this.#cum = uniformWeights(endpoints) ? undefined : cumulativeWeights(endpoints)
  }

  pick(): Host | undefined {
    const hosts = this.#hosts
    if (hosts.length === 0) return undefined
    const cum = this.#cum
    if (cum === undefined) return hosts[Math.floor(Math.random() * hosts.length)]
    return hosts[searchCumulative(cum, Math.random() * (cum[cum.length - 1] as number))]
  }
}
