import { cumulativeWeights, searchCumulative, uniformWeights, type Endpoint, type LoadBalancer } from './load-balancer.js'
import type { Host } from '../host.js'

/** Longest precomputed weighted schedule; beyond it weighted picks fall back to weighted random. */
const MAX_SCHEDULE = 1 << 16

/**
 * Round robin. Equal weights: a cursor. Unequal weights: a precomputed smooth weighted
 * round-robin schedule (each host appears in proportion to its weight, spread evenly),
 * so a pick is one array read. The start is random, so a fleet of clients that start
 * together do not all hit the first endpoint (Envoy does the same).
 */
export class RoundRobinLoadBalancer implements LoadBalancer {
  readonly size: number
  readonly #schedule: readonly Host[]
  readonly #cum: Float64Array | undefined
  #next: number

  constructor(endpoints: readonly Endpoint[]) {
    this.size = endpoints.length
    if (uniformWeights(endpoints)) {
      this.#schedule = endpoints.map((e) => e.host)
    } else {
      const total = endpoints.reduce((s, e) => s + e.weight, 0)
      this.#schedule = total <= MAX_SCHEDULE ? smoothSchedule(endpoints, total) : []
      if (this.#schedule.length === 0) this.#cum = cumulativeWeights(endpoints)
    }
    this.#next = Math.floor(Math.random() * Math.max(1, this.#schedule.length))
    if (this.#cum !== undefined) {
      const cum = this.#cum
      const hosts = endpoints.map((e) => e.host)
      this.pick = () => hosts[searchCumulative(cum, Math.random() * (cum[cum.length - 1] as number))]
    }
  }

  pick(): Host | undefined {
    const s = this.#schedule
    if (s.length === 0) return undefined
    const i = this.#next
    this.#next = i + 1 === s.length ? 0 : i + 1
    return s[i]
  }
}

/** Nginx's smooth weighted round robin, unrolled into one full cycle. */
function smoothSchedule(endpoints: readonly Endpoint[], total: number): Host[] {
  const current = new Array<number>(endpoints.length).fill(0)
  const out: Host[] = []
  for (let n = 0; n < total; n++) {
    let best = 0
    for (let i = 0; i < endpoints.length; i++) {
      current[i] = (current[i] as number) + (endpoints[i] as Endpoint).weight
      if ((current[i] as number) > (current[best] as number)) best = i
    }
    current[best] = (current[best] as number) - total
    out.push((endpoints[best] as Endpoint).host)
  }
  // Kept for the balancer's life: an exact copy, not the slots a pushed-to array reserves.
  return out.slice()
}
