import { hash32 } from '../../hash.js'
import type { Host } from '../host.js'
import type { Endpoint, LoadBalancer } from './load-balancer.js'

/**
 * Ketama-style consistent hashing (Envoy `RING_HASH`). Each endpoint gets ring entries in
 * proportion to its weight, the ring holding between `minimumRingSize` and
 * `maximumRingSize` entries; a request goes to the first entry at or after its hash.
 * Adding or removing one endpoint moves only about 1/N of the keys.
 */
export class RingHashLoadBalancer implements LoadBalancer {
  readonly size: number
  readonly #ring: Uint32Array
  readonly #owners: readonly Host[]

  constructor(endpoints: readonly Endpoint[], minimumRingSize: number, maximumRingSize: number) {
    this.size = endpoints.length
    if (endpoints.length === 0) {
      this.#ring = new Uint32Array(0)
      this.#owners = []
      return
    }
    const totalWeight = endpoints.reduce((s, e) => s + e.weight, 0)
    const minWeight = endpoints.reduce((m, e) => Math.min(m, e.weight / totalWeight), 1)
    // Scale so the lightest endpoint gets at least one entry, within the configured bounds.
    const scale = Math.min(Math.ceil(minWeight * minimumRingSize) / minWeight, maximumRingSize)
    const entries: { hash: number; host: Host }[] = []
    for (const e of endpoints) {
      const count = Math.max(1, Math.round((e.weight / totalWeight) * scale))
      const base = e.host.address.hostPort
      for (let i = 0; i < count; i++) entries.push({ hash: hash32(`${base}_${i}`), host: e.host })
    }
    entries.sort((a, b) => a.hash - b.hash)
    this.#ring = Uint32Array.from(entries, (x) => x.hash)
    this.#owners = entries.map((x) => x.host)
  }

  pick(hash: number | undefined): Host | undefined {
    const ring = this.#ring
    if (ring.length === 0) return undefined
    const h = hash ?? (Math.random() * 0x100000000) >>> 0
    let lo = 0
    let hi = ring.length
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if ((ring[mid] as number) < h) lo = mid + 1
      else hi = mid
    }
    return this.#owners[lo === ring.length ? 0 : lo]
  }
}
