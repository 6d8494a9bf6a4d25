import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { request } from 'undici'
import { createMesh, validateConfig, OVERFLOW_HEADER, RESPONSE_FLAGS_HEADER, type MeshConfig, type RetryPolicyConfig, type CircuitBreakersConfig } from '../src/index.js'
import { RetryPolicy, retryAfterMs } from '../src/policy/retry-policy.js'
import { ResourceManager } from '../src/upstream/resource-manager.js'
import { closedPort, startUpstream, type Behaviour, type Upstream } from './helpers/upstream.js'

const ok: Behaviour = (_req, res, name) => res.end(name)
const unavailable: Behaviour = (_req, res) => {
  res.statusCode = 503
  res.end('down')
}
const hang: Behaviour = () => undefined

/** One cluster `svc` of the given endpoints, one route with the given retry policy. */
function config(addresses: string[], retryPolicy: RetryPolicyConfig | undefined, extra: { timeout?: string; circuitBreakers?: CircuitBreakersConfig; loadBalancer?: 'round_robin' | 'random' } = {}): MeshConfig {
  return {
    clusters: [{
      name: 'svc',
      endpoints: addresses.map((address) => ({ address })),
      ...(extra.circuitBreakers === undefined ? {} : { circuitBreakers: extra.circuitBreakers }),
      ...(extra.loadBalancer === undefined ? {} : { loadBalancer: extra.loadBalancer }),
    }],
    virtualHosts: [{
      name: 'svc',
      domains: ['svc'],
      routes: [{ match: { prefix: '/' }, route: { cluster: 'svc', ...(retryPolicy === undefined ? {} : { retryPolicy }), ...(extra.timeout === undefined ? {} : { timeout: extra.timeout }) } }],
    }],
  }
}

let good: Upstream
let bad: Upstream
let refused: string

before(async () => {
  good = await startUpstream('good', ok)
  bad = await startUpstream('bad', unavailable)
  refused = `http://127.0.0.1:${await closedPort()}`
})
after(async () => {
  await Promise.all([good.close(), bad.close()])
})

describe('retries', () => {
  test('a 503 is retried on the other endpoint (previous hosts), so every request succeeds', async () => {
    const mesh = createMesh({ config: config([bad.address, good.address], { retryOn: '5xx', numRetries: 1 }) })
    try {
      const before = { good: good.seen.length, bad: bad.seen.length }
      for (let i = 0; i < 40; i++) {
        const res = await mesh.fetch('http://svc/x')
        assert.equal(res.status, 200)
        assert.equal(await res.text(), 'good')
      }
      assert.ok(bad.seen.length - before.bad > 0, 'the failing endpoint was tried')
      assert.equal(good.seen.length - before.good, 40)
      const stats = mesh.metrics.snapshot().resilience['svc']
      assert.ok(stats !== undefined)
      assert.equal(stats.retries, bad.seen.length - before.bad)
      assert.equal(stats.retrySuccesses, stats.retries)
      assert.match(mesh.metrics.prometheus(), /sidecarless_cluster_upstream_rq_retry_total\{cluster_name="svc"\} [1-9]/)
    } finally {
      await mesh.close()
    }
  })

  test('a refused connection is retried under connect-failure', async () => {
    const mesh = createMesh({ config: config([refused, good.address], { retryOn: ['connect-failure'], numRetries: 2 }) })
    try {
      for (let i = 0; i < 10; i++) {
        const res = await mesh.fetch('http://svc/')
        assert.equal(res.status, 200)
        await res.text()
      }
    } finally {
      await mesh.close()
    }
  })

  test('outcomes the policy does not name are not retried', async () => {
    const mesh = createMesh({ config: config([bad.address], { retryOn: 'connect-failure,reset', numRetries: 3 }) })
    try {
      const n = bad.seen.length
      const res = await mesh.fetch('http://svc/')
      assert.equal(res.status, 503)
      assert.equal(await res.text(), 'down')
      assert.equal(bad.seen.length - n, 1)
    } finally {
      await mesh.close()
    }
  })

  test('numRetries bounds the tries; the last response is passed on as it is', async () => {
    const mesh = createMesh({ config: config([bad.address], { retryOn: ['gateway-error'], numRetries: 2, retryBackOff: { baseInterval: '1ms' } }) })
    try {
      const n = bad.seen.length
      const res = await mesh.fetch('http://svc/')
      assert.equal(res.status, 503)
      assert.equal(await res.text(), 'down')
      assert.equal(res.headers.get(RESPONSE_FLAGS_HEADER), null, 'an upstream response, not a local reply')
      assert.equal(bad.seen.length - n, 3)
      assert.equal(mesh.metrics.snapshot().resilience['svc']?.retryLimitExceeded, 1)
    } finally {
      await mesh.close()
    }
  })

  test('POST is retried only with an Idempotency-Key, and the body is sent again whole', async () => {
    const bodies: string[] = []
    let calls = 0
    const flaky = await startUpstream('flaky', (req, res) => {
      let body = ''
      req.setEncoding('utf8')
      req.on('data', (c: string) => (body += c))
      req.on('end', () => {
        bodies.push(body)
        res.statusCode = calls++ % 2 === 0 ? 503 : 200
        res.end(body)
      })
    })
    const mesh = createMesh({ config: config([flaky.address], { retryOn: '5xx', numRetries: 1, retryBackOff: { baseInterval: '1ms' } }) })
    try {
      let res = await mesh.fetch('http://svc/', { method: 'POST', body: 'payload-1' })
      assert.equal(res.status, 503, 'POST without Idempotency-Key is not retried')
      await res.text()
      calls = 0
      res = await mesh.fetch('http://svc/', { method: 'POST', body: 'payload-2', headers: { 'idempotency-key': 'k1' } })
      assert.equal(res.status, 200)
      assert.equal(await res.text(), 'payload-2')
      calls = 0
      // fetch streams its body: the recorded copy is replayed.
      res = await mesh.fetch('http://svc/', { method: 'PUT', body: 'x'.repeat(10_000) })
      assert.equal(res.status, 200)
      assert.equal((await res.text()).length, 10_000)
      calls = 0
      // undici.request with a string body.
      const r = await request('http://svc/', { method: 'PUT', body: 'via-request', dispatcher: mesh.dispatcher })
      assert.equal(r.statusCode, 200)
      assert.equal(await r.body.text(), 'via-request')
      assert.deepEqual(bodies.slice(-2), ['via-request', 'via-request'])
    } finally {
      await mesh.close()
      await flaky.close()
    }
  })

  test('a streamed body over the 64 KiB bound is sent once and not retried', async () => {
    let calls = 0
    const flaky = await startUpstream('flaky-big', (req, res) => {
      let n = 0
      req.on('data', (c: Buffer) => (n += c.length))
      req.on('end', () => {
        res.statusCode = calls++ === 0 ? 503 : 200
        res.end(String(n))
      })
    })
    const mesh = createMesh({ config: config([flaky.address], { retryOn: '5xx', numRetries: 1, retryBackOff: { baseInterval: '1ms' } }) })
    try {
      const res = await mesh.fetch('http://svc/', { method: 'PUT', body: 'y'.repeat(200_000) })
      assert.equal(res.status, 503)
      assert.equal(await res.text(), '200000')
      assert.equal(calls, 1)
    } finally {
      await mesh.close()
      await flaky.close()
    }
  })

  test('a per-try timeout moves on to the next endpoint within the route timeout', async () => {
    const hung = await startUpstream('hung', hang)
    const mesh = createMesh({ config: config([hung.address, good.address], { retryOn: '5xx', numRetries: 1, perTryTimeout: '100ms', retryBackOff: { baseInterval: '1ms' } }, { loadBalancer: 'round_robin' }) })
    try {
      for (let i = 0; i < 4; i++) {
        const res = await mesh.fetch('http://svc/')
        assert.equal(res.status, 200)
        await res.text()
      }
      assert.ok((mesh.metrics.snapshot().resilience['svc']?.perTryTimeouts ?? 0) >= 1)
    } finally {
      await mesh.close()
      await hung.close()
    }
  })

  test('the route timeout covers every try: 504 when all of them hang', async () => {
    const hung = await startUpstream('hung2', hang)
    const mesh = createMesh({ config: config([hung.address], { retryOn: '5xx', numRetries: 10, perTryTimeout: '60ms', retryBackOff: { baseInterval: '1ms' } }, { timeout: '500ms' }) })
    try {
      const started = performance.now()
      const res = await mesh.fetch('http://svc/')
      const took = performance.now() - started
      assert.equal(res.status, 504)
      assert.equal(res.headers.get(RESPONSE_FLAGS_HEADER), 'UT')
      assert.equal(await res.text(), 'upstream request timeout')
      // Half a second for 60 ms tries (11 of them would take longer), so a loaded machine still makes several.
      assert.ok(took >= 490, `took ${took} ms`)
      assert.ok(hung.seen.length >= 2, `more than one try was made before the route timeout (${hung.seen.length})`)
    } finally {
      await mesh.close()
      await hung.close()
    }
  })

  test('Retry-After is honoured; one beyond maxRetryAfter ends the retries', async () => {
    let calls = 0
    const limited = await startUpstream('limited', (_req, res) => {
      if (calls++ % 2 === 0) {
        res.statusCode = 503
        res.setHeader('retry-after', '1')
        res.end('later')
      } else {
        res.end('now')
      }
    })
    const mesh = createMesh({ config: config([limited.address], { retryOn: '5xx', numRetries: 1 }) })
    try {
      const started = performance.now()
      const res = await mesh.fetch('http://svc/')
      assert.equal(res.status, 200)
      assert.equal(await res.text(), 'now')
      assert.ok(performance.now() - started >= 950, 'waited for Retry-After: 1')
      await mesh.update(config([limited.address], { retryOn: '5xx', numRetries: 1, maxRetryAfter: '500ms' }))
      calls = 0
      const res2 = await mesh.fetch('http://svc/')
      assert.equal(res2.status, 503)
      assert.equal(await res2.text(), 'later')
    } finally {
      await mesh.close()
      await limited.close()
    }
  })

  test('a caller abort during the back-off ends the request with a coded error and holds no retry slot', async () => {
    // Retry-After: 5 makes the wait before the retry certain (a jittered back-off may be ~0).
    const later = await startUpstream('later', (_req, res) => {
      res.statusCode = 503
      res.setHeader('retry-after', '5')
      res.end()
    })
    const mesh = createMesh({ config: config([later.address], { retryOn: '5xx', numRetries: 1 }) })
    try {
      const ac = new AbortController()
      const p = mesh.fetch('http://svc/', { signal: ac.signal })
      while (later.seen.length === 0) await new Promise((r) => setTimeout(r, 5))
      await new Promise((r) => setTimeout(r, 50))
      assert.equal(mesh.metrics.snapshot().resilience['svc']?.activeRetries, 1, 'the retry is waiting')
      ac.abort()
      await assert.rejects(p, (err: Error) => err.name === 'AbortError')
      assert.equal(mesh.metrics.snapshot().resilience['svc']?.activeRetries, 0)
      assert.equal(later.seen.length, 1, 'no retry was sent')
    } finally {
      await mesh.close()
      await later.close()
    }
  })
})

describe('retry budget', () => {
  /**
   * `total` requests, `concurrency` at a time, against a cluster that answers every try 503
   * after 5 ms. At every try the upstream receives, the retries in flight are read from the
   * mesh's own counters; the upstream attempts are counted.
   */
  async function outage(circuitBreakers: CircuitBreakersConfig | undefined, concurrency: number, total: number): Promise<{ attempts: number; requests: number; maxRetriesInFlight: number }> {
    let attempts = 0
    let maxRetriesInFlight = 0
    // eslint-disable-next-line prefer-const -- read by the upstream before it is set
    let mesh: ReturnType<typeof createMesh> | undefined
    const down = await startUpstream('down', (_req, res) => {
      attempts++
      maxRetriesInFlight = Math.max(maxRetriesInFlight, mesh?.metrics.snapshot().resilience['svc']?.activeRetries ?? 0)
      setTimeout(() => {
        res.statusCode = 503
        res.end()
      }, 5)
    })
    mesh = createMesh({ config: config([down.address], { retryOn: '5xx', numRetries: 3, retryBackOff: { baseInterval: '1ms', maxInterval: '2ms' } }, { circuitBreakers }) })
    const m = mesh
    try {
      let next = 0
      let requests = 0
      await Promise.all(Array.from({ length: concurrency }, async () => {
        while (next++ < total) {
          const res = await m.fetch('http://svc/')
          await res.arrayBuffer()
          assert.equal(res.status, 503)
          requests++
        }
      }))
      const stats = m.metrics.snapshot().resilience['svc']
      assert.equal(stats?.retries, attempts - requests, 'every upstream attempt beyond the first of each request is a counted retry')
      assert.equal(stats?.activeRetries, 0)
      return { attempts, requests, maxRetriesInFlight }
    } finally {
      await m.close()
      await down.close()
    }
  }

  test('under a full outage, maxRetries (default 3) bounds retries in flight and so the upstream attempts', async () => {
    const r = await outage(undefined, 20, 400)
    assert.ok(r.maxRetriesInFlight <= 3, `${r.maxRetriesInFlight} retries in flight`)
    // 20 requests in flight, at most 3 of them retrying: attempts stay well under 2 per request.
    assert.ok(r.attempts < r.requests * 1.5, `${r.attempts} attempts for ${r.requests} requests`)
  })

  test('a retry budget (20%, min 3) keeps the amplification of an outage near 20%; without a bound it is 1 + numRetries', async () => {
    const budget = await outage({ retryBudget: { budgetPercent: 20, minRetryConcurrency: 3 } }, 20, 400)
    // Retries in flight ≤ 20% of the tries in flight (waiting ones included), or 3. Those are
    // one per request (20, the retries' own among them) and tries whose retried response is
    // still being drained, at most one per retrying request: R ≤ 0.2 × (20 + R), so R ≤ 5.
    assert.ok(budget.maxRetriesInFlight <= 5, `${budget.maxRetriesInFlight} retries in flight`)
    assert.ok(budget.attempts < budget.requests * 1.5, `${budget.attempts} attempts for ${budget.requests} requests`)
    const unbounded = await outage({ maxRetries: 1_000_000 }, 20, 100)
    assert.equal(unbounded.attempts, unbounded.requests * 4, 'without a bound every request tries 1 + numRetries times')
  })
})

describe('retry budget accounting', () => {
  test('a try waiting for a connection counts once (it is both active and pending)', () => {
    const r = new ResourceManager({ retryBudget: { budgetPercent: 50, minRetryConcurrency: 0 } })
    // Four tries in flight, all still waiting for a connection.
    for (let i = 0; i < 4; i++) assert.equal(r.acquireRequest(), null)
    assert.equal(r.active, 4)
    assert.equal(r.pending, 4)
    assert.equal(r.acquireRetry(), true)
    assert.equal(r.activeRetries, 1)
    assert.equal(r.mayRetry(), true)
    assert.equal(r.acquireRetry(), true)
    assert.equal(r.mayRetry(), false, 'retries in flight may be 50% of 4 tries: 2')
    assert.equal(r.acquireRetry(), false)
    assert.equal(r.stats().retryOverflows, 1)
  })
})

describe('circuit-breaker thresholds', () => {
  test('maxRequests sheds the excess at once with 503 UO, naming the threshold', async () => {
    const slow = await startUpstream('slow', (_req, res) => setTimeout(() => res.end('ok'), 150))
    const mesh = createMesh({ config: config([slow.address], undefined, { circuitBreakers: { maxRequests: 2 } }) })
    try {
      const results = await Promise.all(Array.from({ length: 5 }, async () => {
        const res = await mesh.fetch('http://svc/')
        return { status: res.status, flag: res.headers.get(RESPONSE_FLAGS_HEADER), overflow: res.headers.get(OVERFLOW_HEADER), body: await res.text() }
      }))
      assert.equal(results.filter((r) => r.status === 200).length, 2)
      const shed = results.filter((r) => r.status === 503)
      assert.equal(shed.length, 3)
      for (const r of shed) {
        assert.equal(r.flag, 'UO')
        assert.equal(r.overflow, 'max_requests')
      }
      assert.equal(mesh.metrics.snapshot().resilience['svc']?.overflows.max_requests, 3)
      assert.equal(mesh.metrics.snapshot().outbound.clusters['svc']?.errors.overflow, 3)
    } finally {
      await mesh.close()
      await slow.close()
    }
  })

  test('maxPendingRequests sheds requests waiting for a connection beyond maxConnections', async () => {
    const slow = await startUpstream('slow2', (_req, res) => setTimeout(() => res.end('ok'), 150))
    const mesh = createMesh({ config: config([slow.address], undefined, { circuitBreakers: { maxConnections: 1, maxPendingRequests: 2 } }) })
    try {
      const results = await Promise.all(Array.from({ length: 6 }, async () => {
        const res = await mesh.fetch('http://svc/')
        await res.text()
        return { status: res.status, overflow: res.headers.get(OVERFLOW_HEADER) }
      }))
      const shed = results.filter((r) => r.status === 503)
      assert.ok(shed.length >= 3, `${shed.length} shed`)
      for (const r of shed) assert.equal(r.overflow, 'max_pending_requests')
      assert.ok(slow.connections <= 1, 'one connection at most')
    } finally {
      await mesh.close()
      await slow.close()
    }
  })
})

describe('error-rate breaker', () => {
  test('opens on a high failure rate, rejects without calling the upstream, then closes after successful trials', async () => {
    let failing = true
    const svc = await startUpstream('svc', (_req, res) => {
      res.statusCode = failing ? 500 : 200
      res.end()
    })
    const mesh = createMesh({ config: config([svc.address], undefined, { circuitBreakers: { errorRate: { volumeThreshold: 5, errorThreshold: 50, openDuration: '200ms', halfOpenTrials: 2 } } }) })
    const changes: string[] = []
    mesh.on('circuitBreaker', (c) => changes.push(`${c.cluster}:${c.from}->${c.to}`))
    try {
      for (let i = 0; i < 5; i++) assert.equal((await mesh.fetch('http://svc/')).status, 500)
      assert.deepEqual(changes, ['svc:closed->open'])
      const n = svc.seen.length
      const shed = await mesh.fetch('http://svc/')
      assert.equal(shed.status, 503)
      assert.equal(shed.headers.get(OVERFLOW_HEADER), 'breaker_open')
      assert.equal(svc.seen.length, n, 'the upstream was not called while open')
      assert.match(mesh.metrics.prometheus(), /sidecarless_cluster_breaker_state\{cluster_name="svc",subset="\(cluster\)",state="open"\} 1/)
      failing = false
      await new Promise((r) => setTimeout(r, 220))
      assert.equal((await mesh.fetch('http://svc/')).status, 200)
      assert.equal((await mesh.fetch('http://svc/')).status, 200)
      assert.deepEqual(changes, ['svc:closed->open', 'svc:open->halfOpen', 'svc:halfOpen->closed'])
      assert.equal(mesh.metrics.snapshot().resilience['svc']?.breakers?.['(cluster)']?.state, 'closed')
    } finally {
      await mesh.close()
      await svc.close()
    }
  })

  test('a failed trial opens it again; 4xx do not count as failures by default', async () => {
    let status = 404
    const svc = await startUpstream('svc2', (_req, res) => {
      res.statusCode = status
      res.end()
    })
    const mesh = createMesh({ config: config([svc.address], undefined, { circuitBreakers: { errorRate: { volumeThreshold: 3, openDuration: '100ms' } } }) })
    const changes: string[] = []
    mesh.on('circuitBreaker', (c) => changes.push(c.to))
    try {
      for (let i = 0; i < 10; i++) assert.equal((await mesh.fetch('http://svc/')).status, 404)
      assert.deepEqual(changes, [], '404s leave the breaker closed')
      status = 502
      for (let i = 0; i < 3; i++) await mesh.fetch('http://svc/')
      // 3 failures of 13 in the window: 23% — still closed. More failures open it.
      for (let i = 0; i < 20 && changes.length === 0; i++) await mesh.fetch('http://svc/')
      assert.deepEqual(changes, ['open'])
      await new Promise((r) => setTimeout(r, 120))
      assert.equal((await mesh.fetch('http://svc/')).status, 502, 'the trial goes through and fails')
      assert.deepEqual(changes, ['open', 'halfOpen', 'open'])
      assert.equal((await mesh.fetch('http://svc/')).status, 503)
    } finally {
      await mesh.close()
      await svc.close()
    }
  })
})

describe('retry policy details', () => {
  test('back-off is fully jittered and capped', () => {
    const p = new RetryPolicy({ retryOn: ['5xx'], retryBackOff: { baseInterval: '25ms' } })
    assert.equal(p.maxIntervalMs, 250)
    for (let n = 1; n <= 8; n++) {
      const ceiling = Math.min(250, 25 * 2 ** (n - 1))
      let max = 0
      for (let i = 0; i < 2000; i++) {
        const w = p.backOffMs(n)
        assert.ok(w >= 0 && w <= ceiling, `retry ${n}: ${w}`)
        max = Math.max(max, w)
      }
      assert.ok(max > ceiling * 0.8, 'the whole range is used')
    }
  })

  test('Retry-After: seconds, HTTP dates, garbage', () => {
    const now = Date.parse('2026-11-27T00:00:00Z')
    assert.equal(retryAfterMs('3', now), 3000)
    assert.equal(retryAfterMs('Fri, 27 Nov 2026 00:00:05 GMT', now), 5000)
    assert.equal(retryAfterMs('Thu, 26 Nov 2026 00:00:05 GMT', now), 0)
    assert.equal(retryAfterMs('soon', now), undefined)
    assert.equal(retryAfterMs('-1', now), undefined)
    assert.equal(retryAfterMs(undefined, now), undefined)
    assert.equal(retryAfterMs('9'.repeat(100), now), undefined)
  })

  test('retriable status codes and headers', () => {
    const p = new RetryPolicy({ retryOn: 'retriable-status-codes,retriable-headers,retriable-4xx', retriableStatusCodes: [429], retriableHeaders: [{ name: 'x-retry', exact: 'yes' }] })
    assert.equal(p.retriesResponse(429, {}), true)
    assert.equal(p.retriesResponse(409, {}), true)
    assert.equal(p.retriesResponse(400, { 'x-retry': 'yes' }), true)
    assert.equal(p.retriesResponse(400, { 'x-retry': 'no' }), false)
    assert.equal(p.retriesResponse(503, {}), false)
    assert.equal(p.retriesFailure('connect_failure'), false)
  })

  test('validation names the path of every problem', () => {
    const base = config([good.address], undefined)
    const vh = base.virtualHosts![0]!
    vh.routes[0]!.route!.retryPolicy = { retryOn: '5xx,gateway-eror', retryBackOff: { baseInterval: '100ms', maxInterval: '10ms' } }
    vh.retryPolicy = { retryOn: ['retriable-status-codes'] }
    base.clusters![0]!.circuitBreakers = { maxRequests: 0, errorRate: { errorThreshold: 120, failureStatuses: [{ start: 500, end: 500 }] } }
    const issues = validateConfig(base).map((i) => `${i.path} ${i.code}`)
    assert.deepEqual([...issues].sort(), [
      'clusters[0].circuitBreakers.maxRequests INVALID_VALUE',
      'clusters[0].circuitBreakers.errorRate.errorThreshold INVALID_VALUE',
      'virtualHosts[0].routes[0].route.retryPolicy.retryOn[1] INVALID_VALUE',
      'virtualHosts[0].retryPolicy.retriableStatusCodes REQUIRED',
      'virtualHosts[0].routes[0].route.retryPolicy.retryBackOff.maxInterval INVALID_VALUE',
      'clusters[0].circuitBreakers.errorRate.failureStatuses[0] INVALID_VALUE',
    ].sort())
  })
})
