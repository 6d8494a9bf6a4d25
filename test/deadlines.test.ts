import assert from 'node:assert/strict'
import { test } from 'node:test'
import { DeadlineList } from '../src/outbound/deadlines.js'
import { prng } from './helpers/prng.js'

/** Adds `n` entries, cancels all but `keep` of them (mostly in order, some out of order), and returns the kept ones. */
function batch(list: DeadlineList, n: number, keep: number, random: () => number, expired: Set<number>, base: number, keepFrom = 0): Set<number> {
  const positions: number[] = []
  const now = performance.now()
  for (let i = 0; i < n; i++) positions.push(list.add({ expire: () => expired.add(base + i) }, now))
  const kept = new Set<number>()
  while (kept.size < keep) kept.add(keepFrom + Math.floor(random() * (n - keepFrom)))
  // Requests of one timeout mostly finish in the order they started: cancel in order,
  // swapping neighbours now and then.
  const order = [...Array(n).keys()]
  for (let i = 0; i + 1 < n; i++) if (random() < 0.2) [order[i], order[i + 1]] = [order[i + 1] as number, order[i] as number]
  for (const i of order) if (!kept.has(i)) list.cancel(positions[i] as number)
  return new Set([...kept].map((i) => base + i))
}

test('DeadlineList: exactly the entries not cancelled expire, across head advances and compactions', async () => {
  const random = prng(7)
  const list = new DeadlineList(40)
  const expired = new Set<number>()
  // A batch cancelled whole: the lists reset to empty.
  batch(list, 2000, 0, random, expired, 0)
  // Survivors only near the end: cancelling moves the head past 1,024 entries and more than
  // half the list, so the lists are compacted.
  const kept1 = batch(list, 5000, 30, random, expired, 10_000, 4500)
  // More entries while the survivors still wait: positions stay valid after the reset and
  // the compaction.
  const kept2 = batch(list, 3000, 20, random, expired, 20_000)
  await new Promise((r) => setTimeout(r, 150))
  assert.deepEqual([...expired].sort((a, b) => a - b), [...kept1, ...kept2].sort((a, b) => a - b))
})

test('DeadlineList: an entry added after the lists emptied still expires on time', async () => {
  const list = new DeadlineList(30)
  const p = list.add({ expire: () => undefined }, performance.now())
  list.cancel(p)
  let fired = 0
  const started = performance.now()
  list.add({ expire: () => (fired = performance.now() - started) }, performance.now())
  await new Promise((r) => setTimeout(r, 120))
  assert.ok(fired >= 29, `expired after ${fired} ms`)
})

test('DeadlineList: the ring grows while its entries wrap around, and an emptied large ring still takes new entries', async () => {
  const random = prng(11)
  const list = new DeadlineList(30)
  const expired = new Set<number>()
  // Wrap the ring: 12 in, the first 10 cancelled, then 40 more (the ring doubles twice with
  // its live entries past the end of the array).
  const first = batch(list, 12, 2, random, expired, 0, 10)
  const second = batch(list, 40, 5, random, expired, 100)
  // A burst far past the large-ring bound, every entry cancelled: the ring empties.
  batch(list, 10_000, 0, random, expired, 1_000)
  const third = batch(list, 30, 3, random, expired, 50_000)
  await new Promise((r) => setTimeout(r, 120))
  assert.deepEqual([...expired].sort((a, b) => a - b), [...first, ...second, ...third].sort((a, b) => a - b))
})
