/**
 * Trace, span and request identifiers.
 *
 * Every id is cut from a pooled `crypto.randomFillSync` buffer (one 16 KiB fill serves 1,024
 * trace ids, or ~680 requests of a server: a span id and a request id each) and written as
 * lower hex by one `String.fromCharCode` call with a character per argument, which V8 builds
 * as one flat one-byte string. Measured on this machine (median of 3 × 2M draws, Node 22 / 24
 * / 26): a span id costs 32–33 ns, against 82–120 ns for `Buffer#toString('hex')` of its slice
 * (the previous way: a call into C++ per id) and 90–100 ns for concatenating a table of byte
 * strings (a cons string, flattened later); a trace id 57–63 ns; a request id 62–69 ns against
 * 204–218 ns for `crypto.randomUUID()` (which concatenates 20 strings). OpenTelemetry JS's
 * `RandomIdGenerator` takes four `Math.random()` words instead: ids here come from the CSPRNG,
 * not from V8's xorshift128+ whose state an observer of enough ids can recover. Every bit of a trace id is uniformly random, which is what W3C Trace
 * Context Level 2 asks of a trace id before its `random-trace-id` flag may be set: a trace
 * started with `newTraceId()` can set that flag.
 *
 * The pool's size: a fill costs about the same whatever its size up to 16 KiB, and more on a
 * busy server, where it runs with cold caches once in a few hundred requests (measured with
 * the caches flushed before each fill: 4.4 µs for 4 KiB, 5.4 µs for 16 KiB, 12.8 µs for
 * 64 KiB; 26, 8 and 5 ns per request's 24 bytes). Ids are fresh flat strings, never slices of
 * a long string, so keeping one id does not keep anything else alive.
 */
import { randomFillSync } from 'node:crypto'

const POOL_SIZE = 16384
const pool = Buffer.allocUnsafe(POOL_SIZE)
let offset = POOL_SIZE

/** Character codes of the lower-hex digits, by value. */
const HEX = new Uint8Array(16)
for (let i = 0; i < 16; i++) HEX[i] = '0123456789abcdef'.charCodeAt(i)
const DASH = 0x2d
const hexString = String.fromCharCode

/** Offset in `pool` of `bytes` fresh random bytes, not all zero (redrawn, p = 2^-8·bytes). */
function draw(bytes: number): number {
  for (;;) {
    if (offset + bytes > POOL_SIZE) {
      randomFillSync(pool)
      offset = 0
    }
    const start = offset
    offset += bytes
    for (let i = start; i < start + bytes; i++) {
      if (pool[i] !== 0) return start
    }
  }
}

// Each id reads its bytes into locals and indexes the digit table in place: no helper calls,
// so its speed does not hang on a caller's inlining budget (a helper per digit, inlined in a
// benchmark, stayed a call in a busy server on Node 26).

/** A new W3C trace id: 32 lower-hex characters (128 random bits), never all zeros. */
export function newTraceId(): string {
  const s = draw(16)
  const p = pool
  const b0 = p[s]!, b1 = p[s + 1]!, b2 = p[s + 2]!, b3 = p[s + 3]!, b4 = p[s + 4]!, b5 = p[s + 5]!, b6 = p[s + 6]!, b7 = p[s + 7]!
  const b8 = p[s + 8]!, b9 = p[s + 9]!, b10 = p[s + 10]!, b11 = p[s + 11]!, b12 = p[s + 12]!, b13 = p[s + 13]!, b14 = p[s + 14]!, b15 = p[s + 15]!
  const h = HEX
  return hexString(
    h[b0 >>> 4]!, h[b0 & 15]!, h[b1 >>> 4]!, h[b1 & 15]!, h[b2 >>> 4]!, h[b2 & 15]!, h[b3 >>> 4]!, h[b3 & 15]!,
    h[b4 >>> 4]!, h[b4 & 15]!, h[b5 >>> 4]!, h[b5 & 15]!, h[b6 >>> 4]!, h[b6 & 15]!, h[b7 >>> 4]!, h[b7 & 15]!,
    h[b8 >>> 4]!, h[b8 & 15]!, h[b9 >>> 4]!, h[b9 & 15]!, h[b10 >>> 4]!, h[b10 & 15]!, h[b11 >>> 4]!, h[b11 & 15]!,
    h[b12 >>> 4]!, h[b12 & 15]!, h[b13 >>> 4]!, h[b13 & 15]!, h[b14 >>> 4]!, h[b14 & 15]!, h[b15 >>> 4]!, h[b15 & 15]!,
  )
}

/** A new span id: 16 lower-hex characters (64 random bits), never all zeros. */
export function newSpanId(): string {
  const s = draw(8)
  const p = pool
  const b0 = p[s]!, b1 = p[s + 1]!, b2 = p[s + 2]!, b3 = p[s + 3]!, b4 = p[s + 4]!, b5 = p[s + 5]!, b6 = p[s + 6]!, b7 = p[s + 7]!
  const h = HEX
  return hexString(
    h[b0 >>> 4]!, h[b0 & 15]!, h[b1 >>> 4]!, h[b1 & 15]!, h[b2 >>> 4]!, h[b2 & 15]!, h[b3 >>> 4]!, h[b3 & 15]!,
    h[b4 >>> 4]!, h[b4 & 15]!, h[b5 >>> 4]!, h[b5 & 15]!, h[b6 >>> 4]!, h[b6 & 15]!, h[b7 >>> 4]!, h[b7 & 15]!,
  )
}

/**
 * A new request id, as Envoy generates for `x-request-id`: a random (version 4) UUID in its
 * lower-case 8-4-4-4-12 form (RFC 9562 §5.4: 122 random bits, version `4`, variant `10`).
 */
export function newRequestId(): string {
  const s = draw(16)
  const p = pool
  const b0 = p[s]!, b1 = p[s + 1]!, b2 = p[s + 2]!, b3 = p[s + 3]!, b4 = p[s + 4]!, b5 = p[s + 5]!, b7 = p[s + 7]!
  const b9 = p[s + 9]!, b10 = p[s + 10]!, b11 = p[s + 11]!, b12 = p[s + 12]!, b13 = p[s + 13]!, b14 = p[s + 14]!, b15 = p[s + 15]!
  // The version nibble and the variant's two bits replace random ones.
  const b6 = 0x40 | (p[s + 6]! & 0x0f)
  const b8 = 0x80 | (p[s + 8]! & 0x3f)
  const h = HEX
  return hexString(
    h[b0 >>> 4]!, h[b0 & 15]!, h[b1 >>> 4]!, h[b1 & 15]!, h[b2 >>> 4]!, h[b2 & 15]!, h[b3 >>> 4]!, h[b3 & 15]!, DASH,
    h[b4 >>> 4]!, h[b4 & 15]!, h[b5 >>> 4]!, h[b5 & 15]!, DASH,
    h[b6 >>> 4]!, h[b6 & 15]!, h[b7 >>> 4]!, h[b7 & 15]!, DASH,
    h[b8 >>> 4]!, h[b8 & 15]!, h[b9 >>> 4]!, h[b9 & 15]!, DASH,
    h[b10 >>> 4]!, h[b10 & 15]!, h[b11 >>> 4]!, h[b11 & 15]!, h[b12 >>> 4]!, h[b12 & 15]!, h[b13 >>> 4]!, h[b13 & 15]!, h[b14 >>> 4]!, h[b14 & 15]!, h[b15 >>> 4]!, h[b15 & 15]!,
  )
}
