/**
 * `mesh.traffic.rollout()`: a stepped canary over real upstreams (v1 and v2 subsets of
 * one cluster), judged by the mesh's own metrics of the traffic this test sends while it
 * runs. Intervals are short (a step judged every 150–250 ms); what is checked is the
 * outcome, the weights in force and the judgments, never a timing.
 */
import assert from 'node:assert/strict'
import { once } from 'node:events'
import { after, before, describe, test } from 'node:test'
import { request } from 'undici'
import { ConfigError, createMesh, isMeshError, type Mesh, type MeshConfig, type RolloutStep } from '../src/index.js'
import { stepWeights } from '../src/traffic/rollout.js'
import { echo, reviewsCluster, startUpstream, type Upstream } from './helpers/upstream.js'

let v1: Upstream
let v2: Upstream
/** What v2 answers: its status, and how long it waits first. */
const v2Behaviour = { status: 200, delayMs: 0 }

before(async () => {
  v1 = await startUpstream('v1')
  v2 = await startUpstream('v2', (req, res, name) => {
    const answer = (): void => {
      if (v2Behaviour.status === 200) echo(req, res, name)
      else res.writeHead(v2Behaviour.status).end('canary down')
    }
    if (v2Behaviour.delayMs > 0) setTimeout(answer, v2Behaviour.delayMs)
    else answer()
  })
})
after(async () => {
  await Promise.all([v1.close(), v2.close()])
})

function config(): MeshConfig {
  return {
    clusters: [reviewsCluster(v1, v2)],
    virtualHosts: [{
      name: 'reviews',
      domains: ['reviews'],
      routes: [{ match: { prefix: '/' }, route: { cluster: 'reviews', subset: 'v1' } }],
    }],
  }
}

/** Sends requests to http://reviews/ until stopped, `concurrency` at a time; counts answers by subset and status. */
function traffic(mesh: Mesh, concurrency = 4): { stop(): Promise<Record<string, number>> } {
  const counts: Record<string, number> = {}
  let running = true
  const workers = Array.from({ length: concurrency }, async () => {
    while (running) {
      const res = await request('http://reviews/', { dispatcher: mesh.dispatcher })
      await res.body.dump()
      const key = `${String(res.headers['x-sidecarless-subset'])} ${res.statusCode}`
      counts[key] = (counts[key] ?? 0) + 1
      await new Promise((resolve) => setTimeout(resolve, 2))
    }
  })
  return {
    stop: async () => {
      running = false
      await Promise.all(workers)
      return counts
    },
  }
}

async function withMesh(fn: (mesh: Mesh) => Promise<void>): Promise<void> {
  const mesh = createMesh({ service: 'productpage', config: config() })
  try {
    await fn(mesh)
  } finally {
    await mesh.close()
  }
}

describe('mesh.traffic.rollout', () => {
  test('moves traffic step by step and completes when every step passes', async () => {
    v2Behaviour.status = 200
    await withMesh(async (mesh) => {
      const load = traffic(mesh)
      const rollout = await mesh.traffic.rollout('reviews', { to: 'v2', steps: [20, 60, 100], interval: 200, minRequests: 5 })
      assert.deepEqual(mesh.traffic.get('reviews'), { v1: 80, v2: 20 })
      assert.equal(rollout.status().state, 'running')
      const steps: RolloutStep[] = []
      rollout.on('step', (s) => steps.push(s))
      const seen: Record<string, number>[] = []
      rollout.on('step', () => seen.push(mesh.traffic.get('reviews')))
      const final = await rollout.done
      const counts = await load.stop()
      assert.equal(final.state, 'completed', final.reason)
      assert.equal(final.reason, undefined)
      assert.deepEqual(mesh.traffic.get('reviews'), { v1: 0, v2: 100 })
      const passed = steps.filter((s) => s.verdict === 'passed')
      assert.deepEqual(passed.map((s) => s.weight), [20, 60, 100])
      assert.deepEqual(passed.map((s) => s.index), [0, 1, 2])
      for (const s of passed) {
        assert.ok(s.requests >= 5, `step ${s.index} judged ${s.requests} requests`)
        assert.equal(s.failures, 0)
        assert.equal(s.errorRate, 0)
        assert.ok(s.meanLatencyMs !== undefined && s.meanLatencyMs >= 0)
        assert.ok(s.judgedAt >= s.startedAt)
      }
      // Each step was judged with its own weights in force.
      assert.deepEqual(seen.at(-1), { v1: 0, v2: 100 })
      assert.deepEqual(final.judged, steps)
      assert.deepEqual(final.before, { v1: 1, v2: 0 })
      assert.ok((counts['v1 200'] ?? 0) > 0 && (counts['v2 200'] ?? 0) > 0, JSON.stringify(counts))
      // Ended: a new rollout of the same name may start.
      const back = await mesh.traffic.rollout('reviews', { to: 'v1', steps: [100], interval: 50 })
      assert.equal((await back.done).state, 'completed')
      assert.deepEqual(mesh.traffic.get('reviews'), { v1: 100, v2: 0 })
    })
  })

  test('a failing canary is rolled back to the weights before the rollout', async () => {
    v2Behaviour.status = 503
    try {
      await withMesh(async (mesh) => {
        await mesh.traffic.split('reviews', { v1: 95, v2: 5 })
        const load = traffic(mesh)
        const rollout = await mesh.traffic.rollout('reviews', { to: 'v2', steps: [25, 50, 100], interval: 250, minRequests: 5 })
        const [end] = await once(rollout, 'end')
        await load.stop()
        assert.equal(end.state, 'rolledBack')
        assert.match(end.reason, /^step 0 \(25% to "v2"\) failed: error rate 1 \(\d+ of \d+\) is above 0\.05$/)
        assert.deepEqual(mesh.traffic.get('reviews'), { v1: 95, v2: 5 })
        const failed = end.judged.at(-1)
        assert.equal(failed.verdict, 'failed')
        assert.equal(failed.failures, failed.requests)
        assert.deepEqual(await rollout.done, end)
        // abort() after the end changes nothing.
        assert.deepEqual(await rollout.abort(), end)
      })
    } finally {
      v2Behaviour.status = 200
    }
  })

  test('maxMeanLatency and a check of your own fail a step; a throwing check does too', async () => {
    v2Behaviour.delayMs = 40
    try {
      await withMesh(async (mesh) => {
        const load = traffic(mesh)
        const slow = await mesh.traffic.rollout('reviews', { to: 'v2', steps: [50, 100], interval: 250, minRequests: 3, maxMeanLatency: '20ms' })
        const slowEnd = await slow.done
        assert.equal(slowEnd.state, 'rolledBack')
        assert.match(slowEnd.reason ?? '', /mean latency [\d.]+ms is above 20ms/)
        v2Behaviour.delayMs = 0

        const seenByCheck: RolloutStep[] = []
        const vetoed = await mesh.traffic.rollout('reviews', {
          to: 'v2',
          steps: [50, 100],
          interval: 150,
          check: (s) => {
            seenByCheck.push(s)
            return s.index === 0 ? true : 'the business metric dropped'
          },
        })
        const vetoedEnd = await vetoed.done
        assert.equal(vetoedEnd.state, 'rolledBack')
        assert.equal(vetoedEnd.reason, 'step 1 (100% to "v2") failed: the business metric dropped')
        assert.deepEqual(seenByCheck.map((s) => s.weight), [50, 100])
        assert.deepEqual(mesh.traffic.get('reviews'), { v1: 100, v2: 0 })

        const throwing = await mesh.traffic.rollout('reviews', {
          to: 'v2',
          steps: [50],
          interval: 100,
          check: () => Promise.reject(new Error('metrics backend unreachable')),
        })
        const throwingEnd = await throwing.done
        assert.equal(throwingEnd.state, 'rolledBack')
        assert.match(throwingEnd.reason ?? '', /check threw: metrics backend unreachable$/)
        await load.stop()
      })
    } finally {
      v2Behaviour.delayMs = 0
    }
  })

  test('without enough requests a step holds; abort() puts the weights back', async () => {
    await withMesh(async (mesh) => {
      const rollout = await mesh.traffic.rollout('reviews', { to: 'v2', steps: [10, 100], interval: 60, minRequests: 1000 })
      const holds: RolloutStep[] = []
      rollout.on('step', (s) => holds.push(s))
      while (holds.length < 2) await once(rollout, 'step')
      assert.ok(holds.every((s) => s.verdict === 'held' && s.index === 0))
      assert.match(holds[0]?.reason ?? '', /^0 of the 1000 requests needed \(minRequests\) so far$/)
      assert.deepEqual(mesh.traffic.get('reviews'), { v1: 90, v2: 10 })
      const end = await rollout.abort('operator said stop')
      assert.equal(end.state, 'aborted')
      assert.equal(end.reason, 'operator said stop')
      assert.deepEqual(mesh.traffic.get('reviews'), { v1: 100, v2: 0 })
      const count = holds.length
      await new Promise((resolve) => setTimeout(resolve, 200))
      assert.equal(holds.length, count, 'no step is judged after abort()')
    })
  })

  test('a split changed by something else supersedes the rollout, which leaves it', async () => {
    await withMesh(async (mesh) => {
      const rollout = await mesh.traffic.rollout('reviews', { to: 'v2', steps: [10, 100], interval: 100 })
      await mesh.traffic.split('reviews', { v1: 70, v2: 30 })
      const end = await rollout.done
      assert.equal(end.state, 'superseded')
      assert.match(end.reason ?? '', /changed by something else at step 0/)
      assert.deepEqual(mesh.traffic.get('reviews'), { v1: 70, v2: 30 })

      // So does a whole new config without the virtual host.
      const again = await mesh.traffic.rollout('reviews', { to: 'v2', steps: [50, 100], interval: 100 })
      await mesh.update({ clusters: config().clusters ?? [] })
      assert.equal((await again.done).state, 'superseded')
    })
  })

  test('mesh.close() stops a running rollout and leaves the weights', async () => {
    const mesh = createMesh({ service: 'productpage', config: config() })
    const rollout = await mesh.traffic.rollout('reviews', { to: 'v2', steps: [30, 100], interval: '1h' })
    await mesh.close()
    const end = await rollout.done
    assert.equal(end.state, 'aborted')
    assert.equal(end.reason, 'the mesh closed')
    assert.deepEqual(mesh.traffic.get('reviews'), { v1: 70, v2: 30 })
    await assert.rejects(mesh.traffic.rollout('reviews', { to: 'v1' }), (e) => isMeshError(e) && e.code === 'SIDECARLESS_ERR_CLOSED')
  })

  test('bad options and targets are refused with a coded error, and leave nothing running', async () => {
    await withMesh(async (mesh) => {
      const refused = async (options: unknown, pattern: RegExp, name = 'reviews'): Promise<void> => {
        await assert.rejects(
          mesh.traffic.rollout(name, options as never),
          (e) => isMeshError(e) && e.code === 'SIDECARLESS_ERR_INVALID_ARGUMENT' && pattern.test(e.message),
        )
      }
      await refused(undefined, /options must be an object/)
      await refused({}, /`to` must name the subset/)
      await refused({ to: 'v2', steps: [] }, /`steps` must be a non-empty list/)
      await refused({ to: 'v2', steps: [10, 0] }, /steps\[1\] must be an integer percent from 1 to 100, got 0/)
      await refused({ to: 'v2', steps: [50, 50] }, /steps\[1\] \(50\) must be above steps\[0\] \(50\)/)
      await refused({ to: 'v2', steps: [10.5] }, /steps\[0\] must be an integer percent/)
      await refused({ to: 'v2', interval: 'soon' }, /`interval` must be a positive duration such as "30s", got "soon"/)
      await refused({ to: 'v2', interval: 0 }, /`interval` must be a positive duration/)
      await refused({ to: 'v2', maxErrorRate: 5 }, /`maxErrorRate` must be a share from 0 to 1, got 5/)
      await refused({ to: 'v2', maxMeanLatency: 'fast' }, /`maxMeanLatency` must be a duration/)
      await refused({ to: 'v2', minRequests: -1 }, /`minRequests` must be a non-negative integer/)
      await refused({ to: 'v2', check: 'yes' }, /`check` must be a function/)
      await refused({ to: 'v1' }, /"reviews" sends no traffic anywhere but "v1": there is nothing to move/)
      await assert.rejects(mesh.traffic.rollout('ratings', { to: 'v2' }), (e) => isMeshError(e) && e.code === 'SIDECARLESS_ERR_UNKNOWN_TARGET')
      await assert.rejects(
        mesh.traffic.rollout('reviews', { to: 'v9' }),
        (e) => e instanceof ConfigError && e.issues.some((i) => i.code === 'UNKNOWN_SUBSET'),
      )
      assert.deepEqual(mesh.traffic.get('reviews'), { v1: 100 })

      const running = await mesh.traffic.rollout('reviews', { to: 'v2', interval: '1h' })
      await assert.rejects(
        mesh.traffic.rollout('reviews', { to: 'v2' }),
        (e) => isMeshError(e) && e.code === 'SIDECARLESS_ERR_ROLLOUT_RUNNING' && /abort it first/.test(e.message),
      )
      assert.deepEqual(running.status().steps, [10, 25, 50, 100])
      assert.equal((await running.abort()).state, 'aborted')
      assert.deepEqual(mesh.traffic.get('reviews'), { v1: 100, v2: 0 })
    })
  })

  test('a throwing listener is reported as a warning; the rollout goes on', async () => {
    await withMesh(async (mesh) => {
      const warned = new Promise<Error>((resolve) => {
        const onWarning = (w: Error): void => {
          if ((w as NodeJS.ErrnoException).code !== 'SIDECARLESS_LISTENER_ERROR') return
          process.off('warning', onWarning)
          resolve(w)
        }
        process.on('warning', onWarning)
      })
      const rollout = await mesh.traffic.rollout('reviews', { to: 'v2', steps: [50, 100], interval: 50 })
      rollout.on('step', () => {
        throw new Error('listener bug')
      })
      const warning = await warned
      assert.match(warning.message, /a rollout "step" listener threw: listener bug/)
      assert.equal((await rollout.done).state, 'completed')
    })
  })
})

describe('stepWeights', () => {
  test('gives the step to the canary and shares the rest as the others had it, adding up exactly', () => {
    assert.deepEqual(stepWeights({ v1: 1, v2: 0 }, 'v2', 10), { v1: 9000, v2: 1000 })
    assert.deepEqual(stepWeights({ v1: 1, v2: 0 }, 'v2', 100), { v1: 0, v2: 10000 })
    const three = stepWeights({ a: 1, b: 1, c: 1, canary: 0 }, 'canary', 1)
    assert.equal(Object.values(three).reduce((x, y) => x + y, 0), 10000)
    assert.equal(three.canary, 100)
    assert.deepEqual([three.a, three.b, three.c].sort(), [3300, 3300, 3300])
    const uneven = stepWeights({ a: 3, b: 1, canary: 2 }, 'canary', 50)
    assert.deepEqual(uneven, { a: 3750, b: 1250, canary: 5000 })
    // A destination at 0 stays at 0.
    assert.deepEqual(stepWeights({ a: 1, dark: 0, canary: 0 }, 'canary', 40), { a: 6000, dark: 0, canary: 4000 })
  })
})
