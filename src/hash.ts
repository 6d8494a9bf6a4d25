/**
 * A 32-bit string hash for ring hash, Maglev and sticky splits: FNV-1a over UTF-16 code
 * units, finished with Murmur3's avalanche so nearby inputs land far apart. Envoy uses
 * xxHash64; 32 bits are plenty for rings of at most 8M entries.
 */
export function hash32(s: string, seed = 0x811c9dc5): number {
  let h = seed >>> 0
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i)
    h = Math.imul(h, 0x01000193)
  }
  return fmix32(h)
}

/** Murmur3's finaliser: mixes every input bit into every output bit. */
export function fmix32(h: number): number {
  h ^= h >>> 16
  h = Math.imul(h, 0x85ebca6b)
  h ^= h >>> 13
  h = Math.imul(h, 0xc2b2ae35)
  h ^= h >>> 16
  return h >>> 0
}
