import assert from 'node:assert/strict'
import { createHook } from 'node:async_hooks'
import { after, before, describe, test } from 'node:test'
import { createMesh, type HealthCheckConfig, type MeshConfig } from '../src/index.js'
import { closedPort } from './helpers/upstream.js'
import { send, sleep, startControlled, until, watch, type Controlled } from './helpers/health.js'

let a: Controlled
let b: Controlled
let c: Controlled

before(async () => {
  ;[a, b, c] = (await Promise.all(['a', 'b', 'c'].map((n) => startControlled(n)))) as [Controlled, Controlled, Controlled]
})
after(async () => {
  await Promise.all([a, b, c].map((x) => x.up.close()))
})

function reset(...xs: Controlled[]): void {
  for (const x of xs) {
    x.traffic = 200
    x.health = 200
  }
}

const check = (extra: Partial<HealthCheckConfig> = {}, http: Partial<HealthCheckConfig['httpHealthCheck']> = {}): HealthCheckConfig => ({
  timeout: '1s',
  interval: '40ms',
  noTrafficInterval: '40ms',
  unhealthyThreshold: 2,
  healthyThreshold: 2,
  ...extra,
  httpHealthCheck: { path: '/healthz', ...http },
})

function config(addresses: string[], hc: HealthCheckConfig, extra: Record<string, unknown> = {}): MeshConfig {
  return {
    clusters: [{ name: 'svc', endpoints: addresses.map((address) => ({ address })), healthChecks: [hc], ...extra }],
    virtualHosts: [{ name: 'svc', domains: ['svc'], routes: [{ match: { prefix: '/' }, route: { cluster: 'svc' } }] }],
  }
}

describe('active health checks', () => {
  test('every endpoint gets a first verdict; the check goes straight to the endpoint with the cluster name as Host', async () => {
    reset(a, b, c)
    const mesh = createMesh({ config: config([a, b, c].map((x) => x.up.address), check({}, { requestHeadersToAdd: [{ header: { key: 'x-probe', value: 'yes' } }] })) })
    const w = watch(mesh)
    try {
      await until('three verdicts', () => w.health.length >= 3)
      assert.deepEqual(new Set(w.health.map((e) => e.endpoint)), new Set([a.endpoint, b.endpoint, c.endpoint]))
      assert.ok(w.health.every((e) => e.healthy && e.cause === 'passed' && e.status === 200))
      assert.equal(a.lastCheck?.host, 'svc', 'Envoy: the Host of a check is the cluster name')
      assert.equal(a.lastCheck?.['user-agent'], 'sidecarless/HC')
      assert.equal(a.lastCheck?.['x-probe'], 'yes')
      assert.equal(a.lastCheck?.traceparent, undefined, 'checks are not traced')
      const stats = mesh.metrics.snapshot().health?.['svc']
      assert.equal(stats?.healthy, 3)
      assert.ok((stats?.healthChecks.success ?? 0) >= 3)
    } finally {
      await mesh.close()
    }
  })

  test('an unexpected status makes an endpoint unhealthy at once (Envoy); traffic avoids it; healthyThreshold passes bring it back', async () => {
    reset(a, b, c)
    const mesh = createMesh({ config: config([a, b, c].map((x) => x.up.address), check()) })
    const w = watch(mesh)
    try {
      await until('three verdicts', () => w.health.length >= 3)
      const checksBefore = a.checks
      a.health = 500
      const down = await until('a unhealthy', () => w.health.find((e) => e.endpoint === a.endpoint && !e.healthy))
      assert.equal(down.cause, 'status')
      assert.equal(down.status, 500)
      assert.equal(a.checks - checksBefore, 1, 'one failing check was enough')
      const during = await send(mesh, 'http://svc/x', 12)
      assert.ok(during.every((r) => r.endpoint !== a.endpoint && r.status === 200))
      assert.deepEqual(mesh.metrics.snapshot().health?.['svc']?.unhealthy, [a.endpoint])

      const checksAtRecovery = a.checks
      a.health = 200
      await until('a healthy', () => w.health.find((e, i) => i > w.health.indexOf(down) && e.endpoint === a.endpoint && e.healthy))
      assert.ok(a.checks - checksAtRecovery >= 2, 'healthyThreshold (2) passing checks')
      const back = await send(mesh, 'http://svc/x', 9)
      assert.equal(back.filter((r) => r.endpoint === a.endpoint).length, 3)
    } finally {
      await mesh.close()
    }
  })

  test('a retriable status counts towards unhealthyThreshold instead', async () => {
    reset(a, b, c)
    const mesh = createMesh({ config: config([a, b, c].map((x) => x.up.address), check({ unhealthyThreshold: 3 }, { retriableStatuses: [{ start: 500, end: 501 }] })) })
    const w = watch(mesh)
    try {
      await until('three verdicts', () => w.health.length >= 3)
      const checksBefore = a.checks
      a.health = 500
      await until('a unhealthy', () => w.health.find((e) => e.endpoint === a.endpoint && !e.healthy))
      assert.equal(a.checks - checksBefore, 3, 'unhealthyThreshold (3) failing checks')
    } finally {
      await mesh.close()
    }
  })

  test('a hung endpoint times out: unhealthy after unhealthyThreshold timeouts, and its sockets are released', async () => {
    reset(a, b, c)
    const mesh = createMesh({ config: config([a, b, c].map((x) => x.up.address), check({ timeout: '60ms' })) })
    const w = watch(mesh)
    try {
      // The first checks of a loaded machine may take longer than 60ms: wait until a has passed one.
      await until('a healthy', () => w.health.some((e) => e.endpoint === a.endpoint && e.healthy))
      const from = w.health.length
      const checksBefore = a.checks
      a.health = 'hang'
      const down = await until('a unhealthy', () => w.health.find((e, i) => i >= from && e.endpoint === a.endpoint && !e.healthy))
      assert.equal(down.cause, 'timeout')
      assert.equal(a.checks - checksBefore, 2)
      await sleep(200)
      // Timed-out checks close their connection; at most one check is in flight at a time.
      assert.ok(a.up.openSockets <= 1, `${a.up.openSockets} sockets open to the hung endpoint`)
      a.health = 200
      await until('a healthy again', () => w.health.find((e, i) => i > w.health.indexOf(down) && e.endpoint === a.endpoint && e.healthy))
    } finally {
      await mesh.close()
    }
  })

  test('a closed port: the first check fails on the network and the endpoint never takes traffic', async () => {
    reset(a, b)
    const port = await closedPort()
    const mesh = createMesh({ config: config([a.up.address, b.up.address, `http://127.0.0.1:${port}`], check()) })
    const w = watch(mesh)
    try {
      const down = await until('verdict on the closed port', () => w.health.find((e) => e.endpoint === `127.0.0.1:${port}`))
      assert.equal(down.healthy, false)
      assert.equal(down.cause, 'network')
      await until('a and b healthy', () => w.health.filter((e) => e.healthy).length >= 2)
      const res = await send(mesh, 'http://svc/x', 12)
      assert.ok(res.every((r) => r.status === 200))
    } finally {
      await mesh.close()
    }
  })

  test('with no traffic yet, checks run every noTrafficInterval; after traffic, every interval', async () => {
    reset(a)
    const mesh = createMesh({ config: config([a.up.address], check({ interval: '30ms', noTrafficInterval: '10s' })) })
    const w = watch(mesh)
    try {
      await until('first verdict', () => w.health.length >= 1)
      const quiet = a.checks
      await sleep(200)
      assert.equal(a.checks, quiet, 'no check within noTrafficInterval')
      // The next round is already scheduled on the long interval; traffic shortens the ones after it.
      await send(mesh, 'http://svc/x', 1)
      assert.equal(mesh.metrics.snapshot().health?.['svc']?.healthy, 1)
    } finally {
      await mesh.close()
    }
  })

  test('panic: every endpoint failing its checks still gets traffic (healthyPanicThreshold 50)', async () => {
    reset(a, b)
    a.health = 503
    b.health = 503
    const mesh = createMesh({ config: config([a.up.address, b.up.address], check()) })
    const w = watch(mesh)
    try {
      await until('two verdicts', () => w.health.length >= 2)
      const res = await send(mesh, 'http://svc/x', 6)
      assert.ok(res.every((r) => r.status === 200))
      assert.equal(new Set(res.map((r) => r.endpoint)).size, 2)
      assert.equal(mesh.metrics.snapshot().health?.['svc']?.panic, true)
    } finally {
      await mesh.close()
    }
  })

  test('a passing check returns an outlier-ejected endpoint to service (successfulActiveHealthCheckUnejectHost)', async () => {
    reset(a, b, c)
    c.traffic = 500
    const mesh = createMesh({
      config: config([a, b, c].map((x) => x.up.address), check({ interval: '100ms' }), { outlierDetection: { interval: '10s', baseEjectionTime: '10s', maxEjectionPercent: 50 } }),
    })
    const w = watch(mesh)
    try {
      await until('three verdicts', () => w.health.length >= 3)
      await send(mesh, 'http://svc/x', 15)
      await until('c ejected', () => w.ejections.find((e) => e.ejected))
      const back = await until('c returned by a passing check', () => w.ejections.find((e) => !e.ejected))
      assert.equal(back.endpoint, c.endpoint)
    } finally {
      await mesh.close()
    }
  })
})

describe('cleanup', () => {
  test('mesh.close() leaves no health-check timer nor socket behind, even with a check in flight', async () => {
    reset(a, b)
    a.health = 'hang'
    const live = new Set<number>()
    const hook = createHook({
      init(id, type) {
        if (type !== 'Timeout') return
        const stack = new Error().stack ?? ''
        if (stack.includes('/upstream/')) live.add(id)
      },
      destroy(id) {
        live.delete(id)
      },
    })
    hook.enable()
    const baseline = process.getActiveResourcesInfo().filter((r) => r === 'TCPSocketWrap').length
    const mesh = createMesh({
      config: config([a.up.address, b.up.address], check({ timeout: '5s', interval: '20ms' }), { outlierDetection: { interval: '20ms' } }),
    })
    try {
      await until('b checked', () => b.checks >= 2)
      assert.ok(live.size > 0, 'the hook sees the cluster timers')
    } finally {
      await mesh.close()
    }
    await until('every timer of the clusters gone', () => live.size === 0, 2_000).finally(() => hook.disable())
    await until('upstream sockets closed', () => a.up.openSockets === 0 && b.up.openSockets === 0, 2_000)
    const sockets = process.getActiveResourcesInfo().filter((r) => r === 'TCPSocketWrap').length
    assert.ok(sockets <= baseline, `${sockets} client sockets open, ${baseline} before`)
  })
})
