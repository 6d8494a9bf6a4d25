import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { createMesh, type ClusterConfig, type MeshConfig } from '../src/index.js'
import { closedPort } from './helpers/upstream.js'
import { send, sleep, startControlled, until, watch, type Controlled } from './helpers/health.js'

let a: Controlled
let b: Controlled
let c: Controlled
let d: Controlled
let e: Controlled

before(async () => {
  ;[a, b, c, d, e] = (await Promise.all(['a', 'b', 'c', 'd', 'e'].map((n) => startControlled(n)))) as [Controlled, Controlled, Controlled, Controlled, Controlled]
})
after(async () => {
  await Promise.all([a, b, c, d, e].map((x) => x.up.close()))
})

function reset(...xs: Controlled[]): void {
  for (const x of xs) {
    x.traffic = 200
    x.health = 200
  }
}

/** One cluster `svc` over `ups` (labelled by name, a subset per upstream), one catch-all route, and a route per subset. */
function config(ups: Controlled[], extra: Partial<ClusterConfig>): MeshConfig {
  return {
    clusters: [{
      name: 'svc',
      endpoints: ups.map((u) => ({ address: u.up.address, labels: { name: u.up.name } })),
      subsets: ups.map((u) => ({ name: u.up.name, labels: { name: u.up.name } })),
      ...extra,
    }],
    virtualHosts: [{
      name: 'svc',
      domains: ['svc'],
      routes: [
        ...ups.map((u) => ({ match: { prefix: `/only/${u.up.name}` }, route: { cluster: 'svc', subset: u.up.name } })),
        { match: { prefix: '/' }, route: { cluster: 'svc' } },
      ],
    }],
  }
}

describe('consecutive 5xx', () => {
  test('an endpoint answering 5xx is ejected after 5 in a row, traffic moves to the others, and it returns after baseEjectionTime', async () => {
    reset(a, b, c)
    c.traffic = 500
    const mesh = createMesh({ config: config([a, b, c], { outlierDetection: { interval: '50ms', baseEjectionTime: '600ms', maxEjectionPercent: 50 } }) })
    const w = watch(mesh)
    let ejectedAt = 0
    let returnedAt = 0
    mesh.on('outlierEjection', (x) => {
      if (x.ejected) ejectedAt = performance.now()
      else returnedAt = performance.now()
    })
    try {
      const first = await send(mesh, 'http://svc/x', 15)
      assert.equal(first.filter((r) => r.endpoint === c.endpoint).length, 5, 'round robin gave c five requests before its ejection')
      assert.equal(w.ejections.length, 1)
      const ej = w.ejections[0]!
      assert.deepEqual(ej, { cluster: 'svc', endpoint: c.endpoint, ejected: true, reason: 'consecutive_5xx', ejectionTimeMs: 600, timesEjected: 1 })

      const stats = mesh.metrics.snapshot().health?.['svc']
      assert.equal(stats?.ejectionsActive, 1)
      assert.deepEqual(stats?.ejected, [c.endpoint])
      assert.equal(stats?.ejections.consecutive_5xx, 1)
      assert.equal(stats?.panic, false)
      assert.match(mesh.metrics.prometheus(), /sidecarless_cluster_outlier_detection_ejections_enforced_total\{cluster_name="svc",reason="consecutive_5xx"\} 1\n/)
      assert.match(mesh.metrics.prometheus(), /sidecarless_cluster_outlier_detection_ejections_active\{cluster_name="svc"\} 1\n/)

      // While c is out (a machine under load may run out of its 600ms: stop at its return).
      let sent = 0
      while (sent < 20 && returnedAt === 0) {
        const [r] = await send(mesh, 'http://svc/x', 1)
        if (returnedAt !== 0) break
        assert.notEqual(r?.endpoint, c.endpoint, 'no request reaches the ejected endpoint')
        assert.equal(r?.status, 200)
        sent++
      }
      assert.ok(sent >= 5, `${sent} requests were sent while c was ejected`)

      c.traffic = 200
      await until('c returns to service', () => w.ejections.find((x) => !x.ejected))
      // Measured between the two events; the ejection's own clock reading is taken a moment
      // before its event, which a GC pause on a loaded machine can stretch by a few ms.
      assert.ok(returnedAt - ejectedAt >= 575, `not before its ejection time (${returnedAt - ejectedAt}ms)`)
      const back = await send(mesh, 'http://svc/x', 9)
      assert.equal(back.filter((r) => r.endpoint === c.endpoint).length, 3, 'c takes its share again')
      assert.equal(mesh.metrics.snapshot().health?.['svc']?.ejectionsActive, 0)
    } finally {
      await mesh.close()
    }
  })

  test('a closed port (connect failures) is ejected too: local failures count as 5xx', async () => {
    reset(a, b)
    const port = await closedPort()
    const mesh = createMesh({
      config: {
        clusters: [{ name: 'svc', endpoints: [{ address: a.up.address }, { address: b.up.address }, { address: `http://127.0.0.1:${port}` }], outlierDetection: { maxEjectionPercent: 50, interval: '1s' } }],
        virtualHosts: [{ name: 'svc', domains: ['svc'], routes: [{ match: { prefix: '/' }, route: { cluster: 'svc' } }] }],
      },
    })
    const w = watch(mesh)
    try {
      const first = await send(mesh, 'http://svc/x', 15)
      assert.equal(first.filter((r) => r.status === 503).length, 5)
      assert.equal(w.ejections[0]?.endpoint, `127.0.0.1:${port}`)
      assert.equal(w.ejections[0]?.reason, 'consecutive_5xx')
      const after = await send(mesh, 'http://svc/x', 20)
      assert.ok(after.every((r) => r.status === 200))
    } finally {
      await mesh.close()
    }
  })

  test('gateway failures are counted but not enforced by default (Envoy: enforcingConsecutiveGatewayFailure 0)', async () => {
    reset(a, b, c)
    c.traffic = 503
    const base = { interval: '1s', maxEjectionPercent: 50, consecutive5xx: 0 }
    let mesh = createMesh({ config: config([a, b, c], { outlierDetection: base }) })
    let w = watch(mesh)
    try {
      await send(mesh, 'http://svc/only/c', 10)
      assert.equal(w.ejections.length, 0)
    } finally {
      await mesh.close()
    }
    mesh = createMesh({ config: config([a, b, c], { outlierDetection: { ...base, enforcingConsecutiveGatewayFailure: 100 } }) })
    w = watch(mesh)
    try {
      await send(mesh, 'http://svc/only/c', 5)
      assert.equal(w.ejections[0]?.reason, 'consecutive_gateway_failure')
    } finally {
      await mesh.close()
    }
  })

  test('the ejection time grows with each ejection, is capped by maxEjectionTime, and shrinks while the endpoint stays healthy', async () => {
    reset(a, b, c)
    c.traffic = 500
    // The interval is 4× the ejection times: between an endpoint's return and the test's next
    // failing requests a loaded machine may take well over 100 ms, and a whole interval with
    // the endpoint healthy would decay the multiplier the test is counting.
    const mesh = createMesh({ config: config([a, b, c], { outlierDetection: { interval: '400ms', baseEjectionTime: '100ms', maxEjectionTime: '250ms', maxEjectionPercent: 50 } }) })
    const w = watch(mesh)
    try {
      const times: number[] = []
      for (let round = 0; round < 4; round++) {
        // The single-endpoint subset route reaches c directly (its subset balancer is in panic while c is ejected).
        await send(mesh, 'http://svc/only/c', 5)
        const ej = await until(`ejection ${round + 1}`, () => w.ejections.filter((x) => x.ejected)[round])
        times.push(ej.ejectionTimeMs)
        if (round === 0) {
          const stats = mesh.metrics.snapshot().health?.['svc']
          assert.deepEqual(stats?.panicSubsets, ['c'], 'the subset of the ejected endpoint alone is in panic')
          assert.equal(stats?.panic, false)
        }
        await until(`return ${round + 1}`, () => w.ejections.filter((x) => !x.ejected)[round])
      }
      assert.deepEqual(times, [100, 200, 250, 250])
      // Healthy for several intervals: the multiplier decays (one step per interval).
      await sleep(1800)
      await send(mesh, 'http://svc/only/c', 5)
      const ej = await until('ejection after decay', () => w.ejections.filter((x) => x.ejected)[4])
      assert.ok(ej.ejectionTimeMs < 250, `decayed ejection time, got ${ej.ejectionTimeMs}`)
      assert.equal(ej.timesEjected, 5)
    } finally {
      await mesh.close()
    }
  })
})

describe('maxEjectionPercent', () => {
  test('never ejects beyond it; the refused ejections count as overflow', async () => {
    reset(a, b, c, d)
    c.traffic = 500
    d.traffic = 500
    const mesh = createMesh({ config: config([a, b, c, d], { outlierDetection: { interval: '1s', maxEjectionPercent: 25 } }) })
    const w = watch(mesh)
    try {
      await send(mesh, 'http://svc/x', 40)
      assert.equal(w.ejections.filter((x) => x.ejected).length, 1)
      const stats = mesh.metrics.snapshot().health?.['svc']
      assert.equal(stats?.ejectionsActive, 1)
      assert.ok((stats?.ejectionsOverflow ?? 0) >= 1, 'the second bad endpoint hit the limit')
    } finally {
      await mesh.close()
    }
  })

  test('below one endpoint\'s worth nothing is ejected, unless alwaysEjectOneHost (Envoy >= 1.31)', async () => {
    reset(a, b)
    b.traffic = 500
    let mesh = createMesh({ config: config([a, b], { outlierDetection: { interval: '1s' } }) })
    let w = watch(mesh)
    try {
      await send(mesh, 'http://svc/only/b', 10)
      assert.equal(w.ejections.length, 0, 'one of two is 50%, above the default 10%')
      assert.equal(mesh.metrics.snapshot().health?.['svc']?.ejectionsOverflow, 2)
    } finally {
      await mesh.close()
    }
    mesh = createMesh({ config: config([a, b], { outlierDetection: { interval: '1s', alwaysEjectOneHost: true } }) })
    w = watch(mesh)
    try {
      await send(mesh, 'http://svc/only/b', 5)
      assert.equal(w.ejections.length, 1)
      const rest = await send(mesh, 'http://svc/x', 6)
      assert.ok(rest.every((r) => r.endpoint === a.endpoint))
    } finally {
      await mesh.close()
    }
  })
})

describe('success rate and failure percentage', () => {
  /** Half of c's answers fail, alternating, so consecutive-error detection never fires. */
  function flaky(x: Controlled): () => void {
    x.traffic = 'alternate'
    return () => reset(x)
  }

  async function drive(mesh: ReturnType<typeof createMesh>, done: () => boolean): Promise<void> {
    const deadline = Date.now() + 5_000
    while (!done() && Date.now() < deadline) {
      await Promise.all(Array.from({ length: 10 }, () => send(mesh, 'http://svc/x', 1)))
    }
  }

  test('an endpoint far below the others\' success rate is ejected on the interval sweep', async () => {
    reset(a, b, c, d, e)
    const stop = flaky(c)
    const mesh = createMesh({
      config: config([a, b, c, d, e], {
        outlierDetection: { interval: '300ms', consecutive5xx: 0, successRateRequestVolume: 10, successRateStdevFactor: 1000, maxEjectionPercent: 20 },
      }),
    })
    const w = watch(mesh)
    try {
      await drive(mesh, () => w.ejections.length > 0)
      assert.equal(w.ejections[0]?.endpoint, c.endpoint)
      assert.equal(w.ejections[0]?.reason, 'success_rate')
      assert.equal(w.ejections.filter((x) => x.ejected).length, 1)
    } finally {
      stop()
      await mesh.close()
    }
  })

  test('an endpoint at or above failurePercentageThreshold is ejected when enforcingFailurePercentage is set', async () => {
    reset(a, b, c, d, e)
    const stop = flaky(c)
    const mesh = createMesh({
      config: config([a, b, c, d, e], {
        outlierDetection: {
          interval: '300ms', consecutive5xx: 0, enforcingSuccessRate: 0, maxEjectionPercent: 20,
          failurePercentageThreshold: 30, failurePercentageRequestVolume: 10, enforcingFailurePercentage: 100,
        },
      }),
    })
    const w = watch(mesh)
    try {
      await drive(mesh, () => w.ejections.length > 0)
      assert.equal(w.ejections[0]?.endpoint, c.endpoint)
      assert.equal(w.ejections[0]?.reason, 'failure_percentage')
    } finally {
      stop()
      await mesh.close()
    }
  })

  test('fewer endpoints than successRateMinimumHosts: no analysis', async () => {
    reset(a, b, c)
    const stop = flaky(c)
    const mesh = createMesh({
      config: config([a, b, c], { outlierDetection: { interval: '100ms', consecutive5xx: 0, successRateRequestVolume: 5, successRateStdevFactor: 100, maxEjectionPercent: 50 } }),
    })
    const w = watch(mesh)
    try {
      const until = Date.now() + 600
      while (Date.now() < until) await Promise.all(Array.from({ length: 10 }, () => send(mesh, 'http://svc/x', 1)))
      assert.equal(w.ejections.length, 0)
    } finally {
      stop()
      await mesh.close()
    }
  })
})

describe('panic threshold', () => {
  test('when every endpoint is ejected, traffic is still spread over all of them (no 503)', async () => {
    reset(a, b)
    a.traffic = 500
    b.traffic = 500
    const od = { interval: '1s', consecutive5xx: 2, maxEjectionPercent: 100 }
    const mesh = createMesh({ config: config([a, b], { outlierDetection: od }) })
    const w = watch(mesh)
    try {
      await send(mesh, 'http://svc/x', 4)
      assert.equal(w.ejections.filter((x) => x.ejected).length, 2)
      const res = await send(mesh, 'http://svc/x', 10)
      assert.ok(res.every((r) => r.status === 500), 'the upstreams answer, not the mesh')
      assert.deepEqual(new Set(res.map((r) => r.endpoint)), new Set([a.endpoint, b.endpoint]))
      const stats = mesh.metrics.snapshot().health?.['svc']
      assert.equal(stats?.panic, true)
      assert.equal(stats?.healthy, 0)
      assert.match(mesh.metrics.prometheus(), /sidecarless_cluster_lb_panic\{cluster_name="svc",subset=""\} 1\n/)
    } finally {
      await mesh.close()
    }
  })

  test('healthyPanicThreshold 0 disables panic: no usable endpoint gives 503 no healthy upstream', async () => {
    reset(a, b)
    a.traffic = 500
    b.traffic = 500
    const mesh = createMesh({ config: config([a, b], { outlierDetection: { interval: '1s', consecutive5xx: 2, maxEjectionPercent: 100 }, commonLbConfig: { healthyPanicThreshold: 0 } }) })
    try {
      await send(mesh, 'http://svc/x', 4)
      const res = await mesh.fetch('http://svc/x')
      assert.equal(res.status, 503)
      assert.equal(await res.text(), 'no healthy upstream')
      assert.equal(res.headers.get('x-sidecarless-response-flags'), 'UH')
    } finally {
      await mesh.close()
    }
  })

  test('below the threshold (1 of 3 usable < 50%) the balancer uses all endpoints', async () => {
    reset(a, b, c)
    b.traffic = 500
    c.traffic = 500
    const mesh = createMesh({ config: config([a, b, c], { outlierDetection: { interval: '1s', consecutive5xx: 2, maxEjectionPercent: 100 } }) })
    const w = watch(mesh)
    try {
      // Round robin starts at a random endpoint and is rebuilt after the first ejection, so
      // how many requests it takes to eject both is not fixed: send until it happened.
      for (let i = 0; i < 40 && w.ejections.length < 2; i++) await send(mesh, 'http://svc/x', 1)
      assert.equal(w.ejections.length, 2)
      const res = await send(mesh, 'http://svc/x', 9)
      assert.equal(new Set(res.map((r) => r.endpoint)).size, 3)
    } finally {
      await mesh.close()
    }
  })
})

describe('config swaps', () => {
  test('a changed cluster keeps the ejections of the endpoints that remain, and its counters', async () => {
    reset(a, b, c)
    c.traffic = 500
    const od = { interval: '1s', baseEjectionTime: '10s', maxEjectionPercent: 50 }
    const mesh = createMesh({ config: config([a, b, c], { outlierDetection: od }) })
    const w = watch(mesh)
    try {
      await send(mesh, 'http://svc/x', 15)
      assert.equal(w.ejections.length, 1)
      const before = mesh.snapshot.clusters.get('svc')
      await mesh.update(config([a, b, c], { outlierDetection: od, connectTimeout: '2s' }))
      assert.notEqual(mesh.snapshot.clusters.get('svc'), before, 'the cluster runtime was replaced')
      const stats = mesh.metrics.snapshot().health?.['svc']
      assert.deepEqual(stats?.ejected, [c.endpoint])
      assert.equal(stats?.ejections.consecutive_5xx, 1)
      const res = await send(mesh, 'http://svc/x', 10)
      assert.ok(res.every((r) => r.endpoint !== c.endpoint))
    } finally {
      await mesh.close()
    }
  })
})
