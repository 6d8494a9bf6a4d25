import assert from 'node:assert/strict'
import { createHook } from 'node:async_hooks'
import { after, before, describe, test } from 'node:test'
import { createMesh, fromEnvoy, validateConfig, type HealthCheckConfig, type MeshConfig } from '../src/index.js'
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

describe('validation of outlierDetection, healthChecks and commonLbConfig', () => {
  const withCluster = (extra: Record<string, unknown>): unknown => ({ clusters: [{ name: 'c', endpoints: [{ address: '127.0.0.1:1' }], ...extra }] })
  const issues = (extra: Record<string, unknown>): [string, string][] => validateConfig(withCluster(extra)).map((i) => [i.path, i.code])
  const hc = (over: Record<string, unknown> = {}, http: Record<string, unknown> = {}): Record<string, unknown> => ({
    timeout: '1s', interval: '5s', unhealthyThreshold: 3, healthyThreshold: 2, ...over, httpHealthCheck: { path: '/healthz', ...http },
  })

  test('valid configs pass, including {} for Envoy defaults', () => {
    assert.deepEqual(issues({ outlierDetection: {} }), [])
    assert.deepEqual(issues({
      outlierDetection: { consecutive5xx: 3, interval: '5s', baseEjectionTime: '10s', maxEjectionTime: '1m', maxEjectionPercent: 50, alwaysEjectOneHost: true, enforcingFailurePercentage: 100 },
      healthChecks: [hc({ intervalJitter: '1s', noTrafficInterval: '30s' }, { host: 'svc.local', expectedStatuses: [{ start: 200, end: 400 }], retriableStatuses: [{ start: 503, end: 504 }], requestHeadersToAdd: [{ header: { key: 'x-a', value: 'b' } }] })],
      commonLbConfig: { healthyPanicThreshold: 0 },
    }), [])
  })

  test('percentages, counts and types are checked with their paths', () => {
    assert.deepEqual(issues({ outlierDetection: { maxEjectionPercent: 101, consecutive5xx: -1, enforcingSuccessRate: 'x', alwaysEjectOneHost: 1 } }), [
      ['clusters[0].outlierDetection.maxEjectionPercent', 'INVALID_VALUE'],
      ['clusters[0].outlierDetection.consecutive5xx', 'INVALID_VALUE'],
      ['clusters[0].outlierDetection.enforcingSuccessRate', 'INVALID_TYPE'],
      ['clusters[0].outlierDetection.alwaysEjectOneHost', 'INVALID_TYPE'],
    ])
    assert.deepEqual(issues({ commonLbConfig: { healthyPanicThreshold: 150 } }), [['clusters[0].commonLbConfig.healthyPanicThreshold', 'INVALID_VALUE']])
    assert.deepEqual(issues({ outlierDetection: { consecutive5x: 3 } }), [['clusters[0].outlierDetection.consecutive5x', 'UNKNOWN_FIELD']])
  })

  test('durations: bounds, and baseEjectionTime not above maxEjectionTime', () => {
    assert.deepEqual(issues({ outlierDetection: { interval: '1ms', baseEjectionTime: '0s', maxEjectionTime: '2d' } }), [
      ['clusters[0].outlierDetection.interval', 'INVALID_DURATION'],
      ['clusters[0].outlierDetection.baseEjectionTime', 'INVALID_DURATION'],
      ['clusters[0].outlierDetection.maxEjectionTime', 'INVALID_DURATION'],
    ])
    const [issue] = validateConfig(withCluster({ outlierDetection: { baseEjectionTime: '5m', maxEjectionTime: '1m' } }))
    assert.equal(issue?.path, 'clusters[0].outlierDetection.baseEjectionTime')
    assert.equal(issue?.code, 'INVALID_VALUE')
    assert.match(issue?.message ?? '', /above maxEjectionTime/)
    assert.deepEqual(issues({ healthChecks: [hc({ timeout: '0s', interval: '5ms', intervalJitter: '2d' })] }), [
      ['clusters[0].healthChecks[0].timeout', 'INVALID_DURATION'],
      ['clusters[0].healthChecks[0].interval', 'INVALID_DURATION'],
      ['clusters[0].healthChecks[0].intervalJitter', 'INVALID_DURATION'],
    ])
  })

  test('health checks: required fields, one per cluster, a path starting with /, non-empty status ranges, header rules', () => {
    assert.deepEqual(issues({ healthChecks: [{ httpHealthCheck: {} }] }), [
      ['clusters[0].healthChecks[0].timeout', 'REQUIRED'],
      ['clusters[0].healthChecks[0].interval', 'REQUIRED'],
      ['clusters[0].healthChecks[0].unhealthyThreshold', 'REQUIRED'],
      ['clusters[0].healthChecks[0].healthyThreshold', 'REQUIRED'],
      ['clusters[0].healthChecks[0].httpHealthCheck.path', 'REQUIRED'],
    ])
    assert.deepEqual(issues({ healthChecks: [hc(), hc()] }), [['clusters[0].healthChecks', 'INVALID_VALUE']])
    assert.deepEqual(issues({ healthChecks: [hc({ unhealthyThreshold: 0 }, { path: 'healthz' })] }), [
      ['clusters[0].healthChecks[0].unhealthyThreshold', 'INVALID_VALUE'],
      ['clusters[0].healthChecks[0].httpHealthCheck.path', 'INVALID_VALUE'],
    ])
    assert.deepEqual(issues({ healthChecks: [hc({}, { path: '/a b', host: 'a/b', expectedStatuses: [{ start: 300, end: 200 }, { start: 200, end: 700 }], requestHeadersToAdd: [{ header: { key: 'host', value: 'x' } }] })] }), [
      ['clusters[0].healthChecks[0].httpHealthCheck.path', 'INVALID_VALUE'],
      ['clusters[0].healthChecks[0].httpHealthCheck.host', 'INVALID_VALUE'],
      ['clusters[0].healthChecks[0].httpHealthCheck.expectedStatuses[0]', 'INVALID_VALUE'],
      ['clusters[0].healthChecks[0].httpHealthCheck.expectedStatuses[1].end', 'INVALID_VALUE'],
      ['clusters[0].healthChecks[0].httpHealthCheck.requestHeadersToAdd[0].header.key', 'INVALID_HEADER'],
    ])
  })
})

describe('Envoy import', () => {
  test('outlier_detection, health_checks and common_lb_config.healthy_panic_threshold translate; what does not is listed', () => {
    const { config, unsupported } = fromEnvoy({
      static_resources: {
        clusters: [{
          name: 'web',
          load_assignment: { endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: 8080 } } } }] }] },
          outlier_detection: { consecutive_5xx: 3, interval: '5s', base_ejection_time: { seconds: 10 }, max_ejection_percent: { value: 50 }, always_eject_one_host: true, split_external_local_origin_errors: true },
          health_checks: [
            {
              timeout: '1s', interval: '10s', unhealthy_threshold: 3, healthy_threshold: { value: 2 }, reuse_connection: true, unhealthy_interval: '1s',
              http_health_check: { path: '/healthz', host: 'web.local', expected_statuses: [{ start: 200, end: 204 }], request_headers_to_add: [{ header: { key: 'x-hc', value: '1' } }], codec_client_type: 'HTTP2' },
            },
            { timeout: '1s', interval: '1s', unhealthy_threshold: 1, healthy_threshold: 1, tcp_health_check: {} },
          ],
          common_lb_config: { healthy_panic_threshold: { value: 25 }, zone_aware_lb_config: {} },
        }],
      },
    })
    const c = config.clusters?.[0]
    assert.deepEqual(c?.outlierDetection, { consecutive5xx: 3, maxEjectionPercent: 50, interval: '5s', baseEjectionTime: '10s', alwaysEjectOneHost: true })
    assert.deepEqual(c?.healthChecks, [{
      timeout: '1s', interval: '10s', unhealthyThreshold: 3, healthyThreshold: 2,
      httpHealthCheck: { path: '/healthz', host: 'web.local', expectedStatuses: [{ start: 200, end: 204 }], requestHeadersToAdd: [{ header: { key: 'x-hc', value: '1' } }] },
    }])
    assert.deepEqual(c?.commonLbConfig, { healthyPanicThreshold: 25 })
    const C = 'static_resources.clusters[0]'
    assert.deepEqual(unsupported.map((u) => u.path).sort(), [
      `${C}.common_lb_config.zone_aware_lb_config`,
      `${C}.health_checks[0].http_health_check.codec_client_type`,
      `${C}.health_checks[0].unhealthy_interval`,
      `${C}.health_checks[1]`,
      `${C}.outlier_detection.split_external_local_origin_errors`,
    ].sort())
    assert.deepEqual(validateConfig(config), [])
  })
})
