import { hash32 } from '../../hash.js'
import type { Host } from '../host.js'
import type { Endpoint, LoadBalancer } from './load-balancer.js'

/**
 * Maglev consistent hashing (Eisenbud et al., NSDI 2016; Envoy `MAGLEV`): each endpoint
 * fills a prime-sized lookup table in its own permutation order, turns taken in proportion
 * to weight. A pick is one table read; disruption on membership change is minimal.
 */
export class MaglevLoadBalancer implements LoadBalancer {
  readonly size: number
  readonly #table: readonly Host[]

  constructor(endpoints: readonly Endpoint[], tableSize: number) {
    this.size = endpoints.length
    this.#table = endpoints.length === 0 ? [] : buildTable(endpoints, tableSize)
  }

  pick(hash: number | undefined): Host | undefined {
    const t = this.#table
    if (t.length === 0) return undefined
    const h = hash ?? (Math.random() * 0x100000000) >>> 0
    return t[h % t.length]
  }
}

function buildTable(endpoints: readonly Endpoint[], size: number): Host[] {
  const n = endpoints.length
  const offset = new Array<number>(n)
  const skip = new Array<number>(n)
  const next = new Array<number>(n).fill(0)
  const maxWeight = endpoints.reduce((m, e) => Math.max(m, e.weight), 1)
  const credit = new Array<number>(n).fill(0)
  for (let i = 0; i < n; i++) {
    const name = (endpoints[i] as Endpoint).host.address.hostPort
    offset[i] = hash32(name, 0x9747b28c) % size
    skip[i] = (hash32(name, 0x2f1a3b5d) % (size - 1)) + 1
  }
  const table = new Array<Host | undefined>(size).fill(undefined)
  let filled = 0
  while (filled < size) {
    for (let i = 0; i < n && filled < size; i++) {
      // Weighted turns: an endpoint takes a slot each time its credit reaches the max weight.
      credit[i] = (credit[i] as number) + (endpoints[i] as Endpoint).weight
      if ((credit[i] as number) < maxWeight) continue
      credit[i] = (credit[i] as number) - maxWeight
      let c = ((offset[i] as number) + (next[i] as number) * (skip[i] as number)) % size
      while (table[c] !== undefined) {
        next[i] = (next[i] as number) + 1
        c = ((offset[i] as number) + (next[i] as number) * (skip[i] as number)) % size
      }
      table[c] = (endpoints[i] as Endpoint).host
      next[i] = (next[i] as number) + 1
      filled++
    }
  }
  return table as Host[]
}
