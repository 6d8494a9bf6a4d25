// The bulkhead: slots, FIFO queue, one shared queue timer, cancel, close, and no timer left
// behind. Real time only where the queue timer has to fire, with short timeouts.
import assert from 'node:assert/strict'
import { setTimeout as sleep } from 'node:timers/promises'
import { describe, test } from 'node:test'
import { ConcurrencyLimiter, type ConcurrencyRejection, type Ticket } from '../src/policy/concurrency-limit.js'

/** A waiter that records what happened to it. */
function waiter(log: string[], name: string): [() => void, (reason: ConcurrencyRejection) => void] {
  return [() => log.push(`${name}:granted`), (reason) => log.push(`${name}:${reason}`)]
}

/** Counts the Timeout resources that keep the event loop alive. */
function refedTimeouts(): number {
  return process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length
}

/**
 * Wraps the global setTimeout/clearTimeout (the limiter calls them by their global names) to
 * know which timers are pending — unref'd timers included, which
 * process.getActiveResourcesInfo() does not list.
 */
function trackTimers(): { pending: () => number; created: () => number; restore: () => void } {
  const realSet = globalThis.setTimeout
  const realClear = globalThis.clearTimeout
  const pending = new Set<unknown>()
  let created = 0
  const set = (fn: (...args: unknown[]) => void, ms?: number, ...args: unknown[]): NodeJS.Timeout => {
    const t = realSet(() => {
      pending.delete(t)
      fn(...args)
    }, ms)
    pending.add(t)
    created++
    return t
  }
  const clear = (t: NodeJS.Timeout | string | number | undefined): void => {
    pending.delete(t)
    realClear(t)
  }
  globalThis.setTimeout = set as unknown as typeof globalThis.setTimeout
  globalThis.clearTimeout = clear
  return {
    pending: () => pending.size,
    created: () => created,
    restore: () => {
      globalThis.setTimeout = realSet
      globalThis.clearTimeout = realClear
    },
  }
}

describe('ConcurrencyLimiter', () => {
  test('tryAcquire takes free slots; release frees them', () => {
    const l = new ConcurrencyLimiter({ maxConcurrent: 2 })
    assert.equal(l.tryAcquire(), true)
    assert.equal(l.tryAcquire(), true)
    assert.equal(l.tryAcquire(), false)
    assert.equal(l.active, 2)
    l.release()
    assert.equal(l.active, 1)
    assert.equal(l.tryAcquire(), true)
    l.release()
    l.release()
    l.release() // an extra release is ignored
    assert.equal(l.active, 0)
    assert.equal(l.rejectedFull, 0, 'a failed tryAcquire is not a rejection')
  })

  test('enqueue with a free slot grants at once and returns no ticket', () => {
    const l = new ConcurrencyLimiter({ maxConcurrent: 1, maxQueue: 1 })
    const log: string[] = []
    assert.equal(l.enqueue(...waiter(log, 'a')), undefined)
    assert.deepEqual(log, ['a:granted'])
    assert.equal(l.active, 1)
    l.release()
  })

  test('waiters are granted in FIFO order, synchronously inside release()', () => {
    const l = new ConcurrencyLimiter({ maxConcurrent: 1, maxQueue: 3, queueTimeout: '10s' })
    const log: string[] = []
    assert.equal(l.tryAcquire(), true)
    for (const name of ['a', 'b', 'c']) assert.ok(l.enqueue(...waiter(log, name)) !== undefined)
    assert.equal(l.queued, 3)
    assert.equal(l.tryAcquire(), false, 'no overtaking the queue')
    l.release()
    assert.deepEqual(log, ['a:granted'], 'granted before release() returned')
    assert.equal(l.active, 1, 'the slot moved to a without ever being free')
    assert.equal(l.queued, 2)
    l.release()
    l.release()
    assert.deepEqual(log, ['a:granted', 'b:granted', 'c:granted'])
    l.release()
    assert.equal(l.active, 0)
    assert.equal(l.queued, 0)
  })

  test('queue full: rejected("full") at once, counted', () => {
    const l = new ConcurrencyLimiter({ maxConcurrent: 1, maxQueue: 1, queueTimeout: '10s' })
    const log: string[] = []
    l.tryAcquire()
    const t = l.enqueue(...waiter(log, 'a'))
    assert.equal(l.enqueue(...waiter(log, 'b')), undefined)
    assert.deepEqual(log, ['b:full'])
    assert.equal(l.rejectedFull, 1)
    t?.cancel()
    l.release()
  })

  test('maxQueue 0 (the default): refused at once when every slot is taken', () => {
    const l = new ConcurrencyLimiter({ maxConcurrent: 1 })
    const log: string[] = []
    l.tryAcquire()
    assert.equal(l.enqueue(...waiter(log, 'a')), undefined)
    assert.deepEqual(log, ['a:full'])
    assert.equal(l.rejectedFull, 1)
    assert.equal(l.queueTimeoutMs, 1000, 'defaults.concurrencyQueueTimeoutMs')
    l.release()
  })

  test('cancel removes a queued waiter; neither callback runs; later ones keep their place', () => {
    const l = new ConcurrencyLimiter({ maxConcurrent: 1, maxQueue: 3, queueTimeout: '10s' })
    const log: string[] = []
    l.tryAcquire()
    const a = l.enqueue(...waiter(log, 'a')) as Ticket
    const b = l.enqueue(...waiter(log, 'b')) as Ticket
    const c = l.enqueue(...waiter(log, 'c')) as Ticket
    assert.equal(b.cancel(), true)
    assert.equal(b.cancel(), false, 'only once')
    assert.equal(l.queued, 2)
    l.release()
    assert.equal(a.cancel(), false, 'a was granted: it holds a slot now')
    l.release()
    l.release()
    assert.deepEqual(log, ['a:granted', 'c:granted'])
    assert.equal(c.cancel(), false)
    assert.equal(l.active, 0)
    // Cancelling the only waiter empties the queue (and the timer goes, see below).
    l.tryAcquire()
    const d = l.enqueue(...waiter(log, 'd')) as Ticket
    assert.equal(d.cancel(), true)
    assert.equal(l.queued, 0)
    l.release()
    assert.equal(log.includes('d:granted'), false)
  })

  test('release from inside granted(): no recursion, no double grant, order kept', () => {
    const n = 20_000 // deep enough to overflow the stack if hand-offs recursed
    const l = new ConcurrencyLimiter({ maxConcurrent: 1, maxQueue: n, queueTimeout: '10s' })
    const order: number[] = []
    l.tryAcquire()
    for (let i = 0; i < n; i++) {
      l.enqueue(
        () => {
          order.push(i)
          assert.equal(l.active, 1)
          l.release() // done at once: the next waiter should get the slot
        },
        () => assert.fail('no waiter is rejected'),
      )
    }
    l.release()
    assert.equal(order.length, n)
    assert.ok(order.every((v, i) => v === i), 'FIFO')
    assert.equal(l.active, 0)
    assert.equal(l.queued, 0)
  })

  test('a waiter that enqueues from its own rejection does not break the queue', () => {
    const l = new ConcurrencyLimiter({ maxConcurrent: 1, maxQueue: 1, queueTimeout: '10s' })
    const log: string[] = []
    l.tryAcquire()
    l.enqueue(...waiter(log, 'a'))
    l.enqueue(() => log.push('b:granted'), (r) => {
      log.push(`b:${r}`)
      l.enqueue(...waiter(log, 'b2')) // still full: rejected again, synchronously
    })
    assert.deepEqual(log, ['b:full', 'b2:full'])
    l.close()
  })

  test('queue timeout: each waiter is rejected with "timeout" once its own queueTimeout passed; one timer for all', async () => {
    const timers = trackTimers()
    const before = refedTimeouts()
    try {
      const l = new ConcurrencyLimiter({ maxConcurrent: 1, maxQueue: 10, queueTimeout: '40ms' })
      const enqueuedAt = new Map<string, number>()
      const waited = new Map<string, number>()
      const order: string[] = []
      const enqueue = (name: string): void => {
        enqueuedAt.set(name, performance.now())
        l.enqueue(
          () => assert.fail(`${name} was granted`),
          (reason) => {
            assert.equal(reason, 'timeout')
            order.push(name)
            waited.set(name, performance.now() - (enqueuedAt.get(name) as number))
          },
        )
      }
      l.tryAcquire()
      for (const name of ['a', 'b', 'c']) enqueue(name)
      assert.equal(timers.pending(), 1, 'one timer for the whole queue')
      await sleep(25)
      enqueue('d') // its deadline is ~25 ms after the others'
      assert.equal(timers.pending(), 1, 'still one timer')
      for (let i = 0; i < 400 && order.length < 4; i++) await sleep(5)
      assert.deepEqual(order, ['a', 'b', 'c', 'd'])
      for (const [name, ms] of waited) assert.ok(ms >= 40, `${name} rejected after ${ms.toFixed(2)} ms, before its 40 ms`)
      assert.equal(l.rejectedTimeout, 4)
      assert.equal(l.queued, 0)
      assert.equal(timers.pending(), 0, 'no timer once the queue is empty')
      assert.ok(timers.created() >= 2, 'a timer for a–c, re-armed for d')
      assert.equal(l.active, 1, 'timeouts do not touch the slot holder')
      l.release()
      assert.equal(refedTimeouts(), before, 'no Timeout keeps the loop alive')
    } finally {
      timers.restore()
    }
  })

  test('the queue timer is cleared as soon as the queue drains by grants or cancels', () => {
    const timers = trackTimers()
    try {
      const l = new ConcurrencyLimiter({ maxConcurrent: 1, maxQueue: 5, queueTimeout: '10s' })
      const log: string[] = []
      l.tryAcquire()
      l.enqueue(...waiter(log, 'a'))
      const b = l.enqueue(...waiter(log, 'b')) as Ticket
      assert.equal(timers.pending(), 1)
      l.release() // a granted; b still queued: the timer stays
      assert.equal(timers.pending(), 1)
      b.cancel() // queue empty: timer cleared
      assert.equal(timers.pending(), 0)
      l.enqueue(...waiter(log, 'c'))
      assert.equal(timers.pending(), 1)
      l.release() // c granted: queue empty
      assert.equal(timers.pending(), 0)
      l.release()
      assert.equal(l.active, 0)
      assert.deepEqual(log, ['a:granted', 'c:granted'])
      assert.equal(timers.created(), 2, 'one timer per busy period, none per waiter')
    } finally {
      timers.restore()
    }
  })

  test('a queueTimeout beyond setTimeout\'s range does not spin (Node would fire after 1 ms)', async () => {
    const timers = trackTimers()
    try {
      const l = new ConcurrencyLimiter({ maxConcurrent: 1, maxQueue: 1, queueTimeout: '720h' })
      l.tryAcquire()
      const reasons: string[] = []
      l.enqueue(() => {}, (reason) => reasons.push(reason))
      await sleep(20)
      assert.equal(timers.created(), 1)
      assert.equal(timers.pending(), 1)
      assert.deepEqual(reasons, [])
      l.close()
      assert.deepEqual(reasons, ['closed'])
      assert.equal(timers.pending(), 0)
    } finally {
      timers.restore()
    }
  })

  test('close rejects every waiter, refuses newcomers, leaves no timer; holders still release', () => {
    const timers = trackTimers()
    try {
      const l = new ConcurrencyLimiter({ maxConcurrent: 1, maxQueue: 5, queueTimeout: '10s' })
      const log: string[] = []
      l.tryAcquire()
      for (const name of ['a', 'b']) l.enqueue(...waiter(log, name))
      l.close()
      assert.deepEqual(log, ['a:closed', 'b:closed'])
      assert.equal(l.queued, 0)
      assert.equal(timers.pending(), 0)
      assert.equal(l.enqueue(...waiter(log, 'c')), undefined)
      assert.deepEqual(log.at(-1), 'c:closed')
      l.release()
      assert.equal(l.active, 0)
      assert.equal(l.tryAcquire(), false)
      l.close() // idempotent
      assert.equal(l.rejectedFull, 0)
      assert.equal(l.rejectedTimeout, 0)
    } finally {
      timers.restore()
    }
  })

  test('a cancelled waiter is never granted nor timed out', async () => {
    const l = new ConcurrencyLimiter({ maxConcurrent: 1, maxQueue: 2, queueTimeout: '20ms' })
    const log: string[] = []
    l.tryAcquire()
    const a = l.enqueue(...waiter(log, 'a')) as Ticket
    l.enqueue(...waiter(log, 'b'))
    a.cancel()
    await sleep(50)
    assert.deepEqual(log, ['b:timeout'])
    assert.equal(l.rejectedTimeout, 1)
    l.release()
  })

  test('the Promise form resumes the waiter in its own async context', async () => {
    const { AsyncLocalStorage } = await import('node:async_hooks')
    const als = new AsyncLocalStorage<string>()
    const l = new ConcurrencyLimiter({ maxConcurrent: 1, maxQueue: 1, queueTimeout: '1s' })
    l.tryAcquire()
    const waiting = als.run('waiter', async () => {
      await new Promise<void>((resolve, reject) => l.enqueue(resolve, reject))
      return als.getStore()
    })
    als.run('releaser', () => l.release())
    assert.equal(await waiting, 'waiter')
    l.release()
  })

  test('stats()', () => {
    const l = new ConcurrencyLimiter({ maxConcurrent: 1, maxQueue: 0 })
    l.tryAcquire()
    l.enqueue(() => {}, () => {})
    assert.deepEqual(l.stats(), { active: 1, queued: 0, rejectedFull: 1, rejectedTimeout: 0 })
    l.release()
  })

  test('rejects nonsense limits', () => {
    assert.throws(() => new ConcurrencyLimiter({ maxConcurrent: 0 }), RangeError)
    assert.throws(() => new ConcurrencyLimiter({ maxConcurrent: 1, maxQueue: -1 }), RangeError)
    assert.throws(() => new ConcurrencyLimiter({ maxConcurrent: 1, queueTimeout: 'later' }), TypeError)
  })
})
