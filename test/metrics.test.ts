import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import {
  BUCKET_RATIO,
  ENVOY_BUCKET_BOUNDS_MS,
  LatencyHistogram,
  MAX_LATENCY_MS,
  MIN_LATENCY_MS,
} from '../src/observability/histogram.js'
import {
  DEFAULT_ROUTE,
  ERROR_KINDS,
  MetricsRegistry,
  OTHER_ENDPOINT,
  type ClusterStats,
  type ErrorKind,
  type TrafficStats,
} from '../src/observability/metrics.js'

// ---------------------------------------------------------------- helpers

/** Deterministic PRNG (mulberry32), so a failure reproduces. */
function prng(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** Log-normal samples (ms) with median e^mu and shape sigma. */
function logNormal(n: number, mu: number, sigma: number, seed: number): number[] {
  const rnd = prng(seed)
  const out: number[] = []
  while (out.length < n) {
    const u = 1 - rnd()
    const v = rnd()
    const z = Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v)
    out.push(Math.exp(mu + sigma * z))
  }
  return out
}

/** Exact nearest-rank percentile of sorted data. */
function exactPercentile(sorted: readonly number[], p: number): number {
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length))
  return sorted[rank - 1]!
}

/** How far an estimate may be from the truth: half a bucket around its middle. */
const BUCKET_ERROR = (BUCKET_RATIO - 1) / 2

import { parseExposition, sampleOf } from './helpers/exposition.js'

// ---------------------------------------------------------------- histogram

describe('LatencyHistogram', () => {
  test('percentiles of 100k log-normal latencies are within the bucket error', () => {
    for (const [mu, sigma, seed] of [[Math.log(20), 1, 1], [Math.log(3), 2.5, 2], [Math.log(0.2), 0.3, 3]] as const) {
      const data = logNormal(100_000, mu, sigma, seed)
      const h = new LatencyHistogram()
      for (const v of data) h.record(v)
      const sorted = [...data].sort((a, b) => a - b)
      assert.equal(h.count, data.length)
      const exactSum = data.reduce((a, b) => a + b, 0)
      assert.ok(Math.abs(h.sum - exactSum) / exactSum < 1e-9, 'sum is exact')
      for (const p of [50, 90, 99, 99.9]) {
        const exact = exactPercentile(sorted, p)
        const estimate = h.percentile(p)
        const error = Math.abs(estimate - exact) / exact
        assert.ok(error <= BUCKET_ERROR, `mu=${mu.toFixed(2)} sigma=${sigma} p${p}: estimate ${estimate}, exact ${exact}, error ${(error * 100).toFixed(2)}%`)
      }
      assert.equal(h.percentile(0), sorted[0], 'p0 is the minimum')
      assert.equal(h.percentile(100), sorted.at(-1), 'p100 is the maximum')
    }
  })

  test('an empty histogram reads as zeros', () => {
    const h = new LatencyHistogram()
    assert.equal(h.count, 0)
    assert.equal(h.sum, 0)
    assert.equal(h.percentile(50), 0)
    assert.equal(h.percentile(99), 0)
    assert.deepEqual(h.cumulative([1, 10, Infinity]), [0, 0, 0])
  })

  test('edge values: zero, negative, NaN, tiny, huge', () => {
    const h = new LatencyHistogram()
    h.record(0)
    h.record(-5)
    h.record(-Infinity)
    assert.equal(h.count, 3, 'negative durations count as 0')
    assert.equal(h.sum, 0)
    assert.equal(h.percentile(50), 0)
    h.record(NaN)
    assert.equal(h.count, 3, 'NaN is ignored')
    h.record(MIN_LATENCY_MS / 10)
    assert.ok(h.percentile(100) >= 0 && h.percentile(100) <= MIN_LATENCY_MS)
    h.record(1e12)
    h.record(Infinity)
    assert.equal(h.count, 6)
    assert.equal(h.max, MAX_LATENCY_MS, 'huge durations are clamped to 1 h')
    assert.equal(h.percentile(100), MAX_LATENCY_MS)
    assert.ok(Number.isFinite(h.sum))
    assert.ok(Math.abs(h.sum - (2 * MAX_LATENCY_MS + MIN_LATENCY_MS / 10)) < 1e-6)
    assert.equal(h.percentile(-10), 0, 'p below 0 reads as p0')
    assert.equal(h.percentile(1000), MAX_LATENCY_MS, 'p above 100 reads as p100')
    assert.equal(h.percentile(NaN), 0)
  })

  test('a constant latency reads back exactly at every percentile', () => {
    const h = new LatencyHistogram()
    for (let i = 0; i < 1000; i++) h.record(7)
    for (const p of [0, 1, 50, 99, 100]) assert.equal(h.percentile(p), 7)
  })

  test('cumulative counts are exact at Envoy bounds, even for values on a bound', () => {
    const h = new LatencyHistogram()
    for (let i = 0; i < 10; i++) h.record(1) // exactly on le="1"
    for (let i = 0; i < 5; i++) h.record(5) // exactly on le="5"
    h.record(5.000001)
    h.record(0.5)
    h.record(3_600_000)
    assert.deepEqual(h.cumulative([0.5, 1, 5, 10, 3_600_000, Infinity]), [1, 11, 16, 17, 18, 18])
    const all = h.cumulative(ENVOY_BUCKET_BOUNDS_MS)
    assert.equal(all.length, ENVOY_BUCKET_BOUNDS_MS.length)
    assert.equal(all.at(-1), h.count)
  })

  test('cumulative counts at other bounds are estimated, never decrease, and end at count', () => {
    const data = logNormal(20_000, Math.log(30), 1.2, 9)
    const h = new LatencyHistogram()
    for (const v of data) h.record(v)
    const bounds = [0.1, 2, 7, 20, 33, 80, 200, 1234, 99_999, Infinity]
    const got = h.cumulative(bounds)
    for (let i = 1; i < got.length; i++) assert.ok(got[i]! >= got[i - 1]!, 'cumulative')
    assert.equal(got.at(-1), h.count)
    bounds.forEach((b, i) => {
      if (!Number.isFinite(b)) return
      const exact = data.filter((v) => v <= b).length
      // Only the samples within one bucket of the bound can be misplaced.
      const slack = data.filter((v) => v > b / BUCKET_RATIO && v < b * BUCKET_RATIO).length
      assert.ok(Math.abs(got[i]! - exact) <= slack, `le=${b}: ${got[i]} vs ${exact} (slack ${slack})`)
    })
  })
})

// ---------------------------------------------------------------- registry

const ZERO_ERRORS = Object.fromEntries(ERROR_KINDS.map((k) => [k, 0])) as Record<ErrorKind, number>

function countersOf(s: TrafficStats): Record<string, number> {
  return {
    requests: s.requests,
    inFlight: s.inFlight,
    ...Object.fromEntries(Object.entries(s.responses).map(([k, v]) => [`r${k}`, v])),
    ...Object.fromEntries(Object.entries(s.errors).map(([k, v]) => [`e_${k}`, v])),
    bytesReceived: s.bytesReceived,
    bytesSent: s.bytesSent,
    latencyCount: s.latency.count,
  }
}

function sumCounters(list: readonly TrafficStats[]): Record<string, number> {
  const total: Record<string, number> = {}
  for (const s of list) for (const [k, v] of Object.entries(countersOf(s))) total[k] = (total[k] ?? 0) + v
  return total
}

/** Drives a random mix of requests through the recorders: ~70% responses, ~25% failures, ~5% left in flight. */
function drive(recorders: readonly { start(): void; end(status: number, ms: number, rx: number, tx: number): void; fail(kind: ErrorKind, ms: number): void }[], n: number, seed: number): void {
  const rnd = prng(seed)
  const statuses = [101, 200, 201, 204, 302, 404, 429, 500, 503]
  for (let i = 0; i < n; i++) {
    const r = recorders[Math.floor(rnd() * recorders.length)]!
    r.start()
    const roll = rnd()
    const ms = Math.exp(rnd() * 8 - 2)
    if (roll < 0.7) r.end(statuses[Math.floor(rnd() * statuses.length)]!, ms, Math.floor(rnd() * 5000), Math.floor(rnd() * 500))
    else if (roll < 0.95) r.fail(ERROR_KINDS[Math.floor(rnd() * ERROR_KINDS.length)]!, ms)
    // else: left in flight
  }
}

describe('MetricsRegistry: recorders', () => {
  test('the same place gives the same recorder', () => {
    const m = new MetricsRegistry()
    assert.equal(m.upstream('reviews', 'v1', '10.0.0.1:9080'), m.upstream('reviews', 'v1', '10.0.0.1:9080'))
    assert.notEqual(m.upstream('reviews', 'v1', '10.0.0.1:9080'), m.upstream('reviews', 'v2', '10.0.0.1:9080'))
    assert.notEqual(m.upstream('reviews', 'v1', '10.0.0.1:9080'), m.upstream('reviews', undefined, '10.0.0.1:9080'))
    assert.notEqual(m.upstream('reviews', 'v1', '10.0.0.1:9080'), m.upstream('reviews', 'v1', '10.0.0.2:9080'))
    assert.equal(m.cluster('reviews', undefined), m.cluster('reviews', undefined))
    assert.equal(m.cluster('reviews', 'v1'), m.cluster('reviews', 'v1'))
    assert.notEqual(m.cluster('reviews', 'v1'), m.cluster('reviews', undefined))
    assert.equal(m.inbound('api'), m.inbound('api'))
    assert.equal(m.inbound(undefined), m.inbound(DEFAULT_ROUTE))
    assert.equal(m.inbound(''), m.inbound(DEFAULT_ROUTE))
  })

  test('levels add up: endpoints = subset = cluster when all traffic goes through one subset', () => {
    const m = new MetricsRegistry()
    const endpoints = ['10.0.0.1:9080', '10.0.0.2:9080', '10.0.0.3:9080']
    drive(endpoints.map((e) => m.upstream('reviews', 'v1', e)), 20_000, 42)
    const c = m.snapshot().outbound.clusters.reviews!
    const perEndpoint = sumCounters(Object.values(c.endpoints))
    assert.deepEqual(Object.keys(c.endpoints), endpoints)
    assert.deepEqual(perEndpoint, countersOf(c.subsets.v1!))
    assert.deepEqual(perEndpoint, countersOf(c))
    assert.ok(c.requests === 20_000 && c.inFlight > 0 && c.errors.timeout > 0 && c.responses['5xx'] > 0)
    const sumMs = Object.values(c.endpoints).reduce((a, s) => a + s.latency.sumMs, 0)
    assert.ok(Math.abs(sumMs - c.latency.sumMs) / c.latency.sumMs < 1e-9)
  })

  test('levels add up with several subsets, no subset, and failures before an endpoint', () => {
    const m = new MetricsRegistry()
    const a = '10.0.0.1:9080'
    const b = '10.0.0.2:9080'
    drive([m.upstream('reviews', 'v1', a), m.upstream('reviews', 'v2', b), m.upstream('reviews', undefined, a), m.upstream('reviews', undefined, b)], 10_000, 7)
    drive([m.cluster('reviews', 'v1'), m.cluster('reviews', undefined)], 1000, 8)
    const c = m.snapshot().outbound.clusters.reviews!
    // Every request counts in the cluster; those that reached an endpoint also in that endpoint.
    const endpoints = sumCounters(Object.values(c.endpoints))
    const subsets = sumCounters(Object.values(c.subsets))
    assert.ok(endpoints.requests! < c.requests && subsets.requests! < c.requests)
    assert.ok(c.errors.no_healthy_upstream > 0)
    // Build the cluster from its parts: requests through endpoints + failures before one.
    const m2 = new MetricsRegistry()
    drive([m2.cluster('reviews', 'v1'), m2.cluster('reviews', undefined)], 1000, 8)
    const early = countersOf(m2.snapshot().outbound.clusters.reviews!)
    for (const [k, v] of Object.entries(countersOf(c))) assert.equal(v, (endpoints[k] ?? 0) + (early[k] ?? 0), k)
  })

  test('in-flight accounting', () => {
    const m = new MetricsRegistry()
    const r = m.upstream('reviews', 'v1', '10.0.0.1:9080')
    const inbound = m.inbound('api')
    r.start()
    r.start()
    r.start()
    inbound.start()
    let s = m.snapshot()
    let c = s.outbound.clusters.reviews!
    for (const level of [c, c.subsets.v1!, c.endpoints['10.0.0.1:9080']!]) {
      assert.equal(level.requests, 3)
      assert.equal(level.inFlight, 3)
      assert.equal(level.latency.count, 0)
    }
    assert.equal(s.inbound.routes.api!.inFlight, 1)
    r.end(200, 12, 100, 10)
    r.fail('reset', 3)
    inbound.end(204, 1, 0, 0)
    s = m.snapshot()
    c = s.outbound.clusters.reviews!
    for (const level of [c, c.subsets.v1!, c.endpoints['10.0.0.1:9080']!]) {
      assert.equal(level.requests, 3)
      assert.equal(level.inFlight, 1)
      assert.equal(level.latency.count, 2)
      assert.equal(level.latency.sumMs, 15)
      assert.equal(level.responses['2xx'], 1)
      assert.equal(level.errors.reset, 1)
    }
    assert.equal(s.inbound.routes.api!.inFlight, 0)
  })

  test('status classes and byte counts', () => {
    const m = new MetricsRegistry()
    const r = m.inbound('api')
    for (const status of [100, 199, 200, 299, 301, 404, 499, 500, 599, 0, 600, NaN]) {
      r.start()
      r.end(status, 1, 10, 20)
    }
    r.start()
    r.end(200, 1, -5, NaN)
    const s = m.snapshot().inbound.routes.api!
    assert.deepEqual(s.responses, { '1xx': 2, '2xx': 3, '3xx': 1, '4xx': 2, '5xx': 5 })
    assert.equal(s.bytesReceived, 120, 'negative byte counts are ignored')
    assert.equal(s.bytesSent, 240, 'NaN byte counts are ignored')
  })

  test('each error kind counts on its own; an unknown kind counts as other', () => {
    const m = new MetricsRegistry()
    const r = m.cluster('reviews', undefined)
    ERROR_KINDS.forEach((kind, i) => {
      for (let k = 0; k <= i; k++) {
        r.start()
        r.fail(kind, 1)
      }
    })
    r.start()
    r.fail('no-such-kind' as ErrorKind, 1)
    const s = m.snapshot().outbound.clusters.reviews!
    const expected = Object.fromEntries(ERROR_KINDS.map((k, i) => [k, i + 1]))
    expected.other = (expected.other ?? 0) + 1
    assert.deepEqual(s.errors, expected)
    assert.equal(s.inFlight, 0)
  })

  test('endpoints beyond maxEndpointsPerCluster share one entry', () => {
    const m = new MetricsRegistry({ maxEndpointsPerCluster: 2 })
    const rs = ['a:1', 'b:1', 'c:1', 'd:1'].map((e) => m.upstream('PassthroughCluster', undefined, e))
    assert.equal(rs[2], rs[3], 'overflowing endpoints share a recorder')
    assert.equal(m.upstream('PassthroughCluster', undefined, 'e:1'), rs[2])
    assert.equal(m.upstream('PassthroughCluster', undefined, 'a:1'), rs[0])
    for (const r of rs) {
      r.start()
      r.end(200, 1, 0, 0)
    }
    const c = m.snapshot().outbound.clusters.PassthroughCluster!
    assert.deepEqual(Object.keys(c.endpoints), ['(other)', 'a:1', 'b:1'])
    assert.equal(c.endpoints[OTHER_ENDPOINT]!.requests, 2)
    assert.deepEqual(sumCounters(Object.values(c.endpoints)), countersOf(c))
  })
})

describe('MetricsRegistry: snapshot', () => {
  test('shape', () => {
    const m = new MetricsRegistry({ service: 'productpage' })
    const r = m.upstream('reviews', 'v2', '10.0.0.2:9080')
    r.start()
    r.end(200, 25, 1000, 50)
    const i = m.inbound(undefined)
    i.start()
    i.end(503, 40, 10, 20)
    const before = Date.now()
    const s = m.snapshot()
    assert.ok(s.takenAt >= before && s.takenAt <= Date.now())
    assert.deepEqual(Object.keys(s), ['takenAt', 'inbound', 'outbound', 'limits', 'resilience', 'security'])
    assert.deepEqual(s.limits, {}, 'no limiter without a limit source')
    assert.deepEqual(Object.keys(s.inbound.routes), [DEFAULT_ROUTE])
    const c: ClusterStats = s.outbound.clusters.reviews!
    assert.deepEqual(Object.keys(c).sort(), ['bytesReceived', 'bytesSent', 'endpoints', 'errors', 'inFlight', 'latency', 'requests', 'responses', 'subsets'])
    assert.deepEqual(Object.keys(c.subsets), ['v2'])
    assert.deepEqual(Object.keys(c.endpoints), ['10.0.0.2:9080'])
    const e = c.endpoints['10.0.0.2:9080']!
    assert.deepEqual(e, {
      requests: 1,
      inFlight: 0,
      responses: { '1xx': 0, '2xx': 1, '3xx': 0, '4xx': 0, '5xx': 0 },
      errors: ZERO_ERRORS,
      bytesReceived: 1000,
      bytesSent: 50,
      latency: { count: 1, sumMs: 25, p50: 25, p90: 25, p99: 25 },
    })
    assert.deepEqual(Object.keys(e.errors), [...ERROR_KINDS])
    assert.equal(s.inbound.routes[DEFAULT_ROUTE]!.responses['5xx'], 1)
    assert.doesNotThrow(() => JSON.stringify(s))
  })

  test('a snapshot is a copy: later requests do not change it', () => {
    const m = new MetricsRegistry()
    const r = m.inbound('api')
    r.start()
    const s = m.snapshot()
    r.end(200, 1, 0, 0)
    assert.equal(s.inbound.routes.api!.inFlight, 1)
    assert.equal(m.snapshot().inbound.routes.api!.inFlight, 0)
  })
})

describe('MetricsRegistry: retain', () => {
  test('drops clusters and routes no longer configured, keeps built-in and busy ones', () => {
    const m = new MetricsRegistry()
    for (const name of ['reviews', 'ratings', 'details', 'PassthroughCluster']) {
      const r = m.upstream(name, undefined, '10.0.0.1:80')
      r.start()
      if (name !== 'details') r.end(200, 1, 0, 0) // details keeps one request in flight
    }
    for (const name of ['api', 'old', DEFAULT_ROUTE]) {
      m.inbound(name).start()
      m.inbound(name).end(200, 1, 0, 0)
    }
    m.retain(new Set(['reviews']), new Set(['api']))
    let s = m.snapshot()
    assert.deepEqual(Object.keys(s.outbound.clusters), ['PassthroughCluster', 'details', 'reviews'])
    assert.deepEqual(Object.keys(s.inbound.routes), [DEFAULT_ROUTE, 'api'])
    // The busy cluster goes once its request ended.
    m.upstream('details', undefined, '10.0.0.1:80').end(200, 1, 0, 0)
    m.retain(new Set(['reviews']), new Set(['api']))
    s = m.snapshot()
    assert.deepEqual(Object.keys(s.outbound.clusters), ['PassthroughCluster', 'reviews'])
    assert.doesNotMatch(m.prometheus(), /ratings|details|"old"/)
    // A cluster that comes back starts from zero.
    assert.equal(m.snapshot().outbound.clusters.ratings, undefined)
    m.upstream('ratings', undefined, '10.0.0.1:80').start()
    assert.equal(m.snapshot().outbound.clusters.ratings!.requests, 1)
  })

  test('retainMembers drops endpoints and subsets no longer in the cluster', () => {
    const m = new MetricsRegistry()
    const old = m.upstream('reviews', 'v1', '10.0.0.1:9080')
    old.start()
    old.end(200, 1, 0, 0)
    const kept = m.upstream('reviews', 'v2', '10.0.0.2:9080')
    kept.start()
    kept.end(200, 1, 0, 0)
    m.retainMembers('reviews', new Set(['v2']), new Set(['10.0.0.2:9080']))
    const c = m.snapshot().outbound.clusters.reviews!
    assert.deepEqual(Object.keys(c.subsets), ['v2'])
    assert.deepEqual(Object.keys(c.endpoints), ['10.0.0.2:9080'])
    assert.equal(c.requests, 2, 'the cluster keeps its history')
    assert.notEqual(m.upstream('reviews', 'v1', '10.0.0.1:9080'), old, 'a new recorder after a drop')
    assert.equal(m.upstream('reviews', 'v2', '10.0.0.2:9080'), kept)
    m.retainMembers('no-such-cluster', new Set(), new Set())
  })
})

// ---------------------------------------------------------------- exposition

describe('MetricsRegistry: Prometheus exposition', () => {
  function populated(service?: string): MetricsRegistry {
    const m = new MetricsRegistry(service === undefined ? {} : { service })
    drive([m.upstream('reviews', 'v1', '10.0.0.1:9080'), m.upstream('reviews', 'v2', '10.0.0.2:9080'), m.upstream('ratings', undefined, '10.0.0.3:9080')], 5000, 3)
    drive([m.cluster('reviews', 'v1')], 100, 4)
    drive([m.inbound('api'), m.inbound(undefined)], 2000, 5)
    return m
  }

  test('an empty registry exposes nothing', () => {
    assert.equal(new MetricsRegistry().prometheus(), '')
    assert.equal(parseExposition('').size, 0)
  })

  test('parses strictly: every family typed and documented, valid names, counters end in _total, histograms well-formed', () => {
    const m = populated('productpage')
    const families = parseExposition(m.prometheus())
    assert.ok(families.size >= 30, `${families.size} families`)
    for (const f of families.values()) {
      assert.ok(f.type !== undefined, `${f.name} has no TYPE`)
      assert.ok(f.help !== undefined && f.help.length > 0, `${f.name} has no HELP`)
      assert.match(f.name, /^(sidecarless|istio)_/)
      if (f.type === 'counter') assert.match(f.name, /_total$/, `counter ${f.name} should end in _total`)
      else assert.doesNotMatch(f.name, /_total$/, `${f.type} ${f.name} should not end in _total`)
      for (const s of f.samples) {
        // Istio's series carry Istio's labels only, as its dashboards expect.
        if (f.name.startsWith('sidecarless_')) assert.equal(s.labels.service, 'productpage', `${s.name} lacks the service label`)
        if (f.type === 'counter' || f.type === 'histogram') assert.ok(s.value >= 0 && Number.isFinite(s.value), `${s.name} = ${s.value}`)
      }
    }
    const types = Object.fromEntries([...families.values()].map((f) => [f.name, f.type]))
    for (const [name, type] of Object.entries({
      sidecarless_cluster_upstream_rq_total: 'counter',
      sidecarless_cluster_upstream_rq_xx_total: 'counter',
      sidecarless_cluster_upstream_rq_active: 'gauge',
      sidecarless_cluster_upstream_rq_time: 'histogram',
      sidecarless_cluster_upstream_cx_connect_fail_total: 'counter',
      sidecarless_cluster_upstream_rq_timeout_total: 'counter',
      sidecarless_cluster_upstream_rq_error_total: 'counter',
      sidecarless_cluster_subset_rq_time: 'histogram',
      sidecarless_cluster_endpoint_rq_total: 'counter',
      sidecarless_http_downstream_rq_total: 'counter',
      sidecarless_http_downstream_rq_xx_total: 'counter',
      sidecarless_http_downstream_rq_time: 'histogram',
    })) {
      assert.equal(types[name], type, name)
    }
  })

  test('values agree with the snapshot', () => {
    const m = populated()
    const families = parseExposition(m.prometheus())
    const s = m.snapshot()
    const reviews = s.outbound.clusters.reviews!
    const cl = { cluster_name: 'reviews' }
    assert.equal(sampleOf(families, 'sidecarless_cluster_upstream_rq_total', 'sidecarless_cluster_upstream_rq_total', cl), reviews.requests)
    assert.equal(sampleOf(families, 'sidecarless_cluster_upstream_rq_active', 'sidecarless_cluster_upstream_rq_active', cl), reviews.inFlight)
    for (const cls of ['1', '2', '3', '4', '5'] as const) {
      assert.equal(
        sampleOf(families, 'sidecarless_cluster_upstream_rq_xx_total', 'sidecarless_cluster_upstream_rq_xx_total', { ...cl, response_code_class: cls }),
        reviews.responses[`${cls}xx`],
      )
    }
    assert.equal(sampleOf(families, 'sidecarless_cluster_upstream_rq_timeout_total', 'sidecarless_cluster_upstream_rq_timeout_total', cl), reviews.errors.timeout)
    assert.equal(sampleOf(families, 'sidecarless_cluster_upstream_cx_connect_fail_total', 'sidecarless_cluster_upstream_cx_connect_fail_total', cl), reviews.errors.connect_failure)
    assert.equal(sampleOf(families, 'sidecarless_cluster_upstream_cx_none_healthy_total', 'sidecarless_cluster_upstream_cx_none_healthy_total', cl), reviews.errors.no_healthy_upstream)
    for (const kind of ERROR_KINDS) {
      const f = families.get('sidecarless_cluster_upstream_rq_error_total')!
      const hit = f.samples.find((x) => x.labels.cluster_name === 'reviews' && x.labels.error_kind === kind)
      assert.equal(hit?.value ?? 0, reviews.errors[kind], kind)
    }
    assert.equal(sampleOf(families, 'sidecarless_cluster_upstream_cx_rx_bytes_total', 'sidecarless_cluster_upstream_cx_rx_bytes_total', cl), reviews.bytesReceived)
    assert.equal(sampleOf(families, 'sidecarless_cluster_upstream_rq_time', 'sidecarless_cluster_upstream_rq_time_count', cl), reviews.latency.count)
    assert.equal(sampleOf(families, 'sidecarless_cluster_upstream_rq_time', 'sidecarless_cluster_upstream_rq_time_sum', cl), reviews.latency.sumMs)
    assert.equal(sampleOf(families, 'sidecarless_cluster_subset_rq_total', 'sidecarless_cluster_subset_rq_total', { ...cl, subset: 'v2' }), reviews.subsets.v2!.requests)
    assert.equal(
      sampleOf(families, 'sidecarless_cluster_endpoint_rq_total', 'sidecarless_cluster_endpoint_rq_total', { cluster_name: 'ratings', endpoint: '10.0.0.3:9080' }),
      s.outbound.clusters.ratings!.endpoints['10.0.0.3:9080']!.requests,
    )
    assert.equal(sampleOf(families, 'sidecarless_http_downstream_rq_total', 'sidecarless_http_downstream_rq_total', { route: DEFAULT_ROUTE }), s.inbound.routes[DEFAULT_ROUTE]!.requests)
    // Levels never share a family: summing the cluster family counts each request once.
    const total = families.get('sidecarless_cluster_upstream_rq_total')!.samples.reduce((a, x) => a + x.value, 0)
    assert.equal(total, 5000 + 100)
  })

  test('histogram buckets use Envoy bounds and match the snapshot', () => {
    const m = new MetricsRegistry()
    const r = m.inbound('api')
    for (const ms of [0.2, 0.5, 1, 1, 3, 7, 120, 5000, 4e6]) {
      r.start()
      r.end(200, ms, 0, 0)
    }
    const f = parseExposition(m.prometheus()).get('sidecarless_http_downstream_rq_time')!
    const buckets = f.samples.filter((x) => x.name.endsWith('_bucket')).map((x) => [x.labels.le, x.value])
    assert.deepEqual(buckets.map(([le]) => le), [...ENVOY_BUCKET_BOUNDS_MS.map(String), '+Inf'])
    assert.deepEqual(Object.fromEntries(buckets), {
      '0.5': 2, '1': 4, '5': 5, '10': 6, '25': 6, '50': 6, '100': 6, '250': 7, '500': 7, '1000': 7, '2500': 7,
      '5000': 8, '10000': 8, '30000': 8, '60000': 8, '300000': 8, '600000': 8, '1800000': 8, '3600000': 9, '+Inf': 9,
    })
  })

  test('label values with quotes, backslashes and newlines survive a round trip', () => {
    const service = 'svc "quoted" \\ back\\\\slash \n newline'
    const cluster = 'outbound|9080|v1|reviews.default.svc.cluster.local "x"\\n'
    const subset = 'line1\nline2\\'
    const endpoint = '[::1]:9080'
    const route = 'route with \\"both\\" and ünïcödé ✓\n'
    const m = new MetricsRegistry({ service })
    const u = m.upstream(cluster, subset, endpoint)
    u.start()
    u.end(200, 2, 1, 1)
    const i = m.inbound(route)
    i.start()
    i.fail('rate_limited', 0.1)
    const text = m.prometheus()
    const families = parseExposition(text)
    const seen = { service: new Set<string>(), cluster_name: new Set<string>(), subset: new Set<string>(), endpoint: new Set<string>(), route: new Set<string>() }
    for (const f of families.values()) {
      for (const s of f.samples) for (const [k, v] of Object.entries(s.labels)) (seen as Record<string, Set<string>>)[k]?.add(v)
    }
    assert.deepEqual([...seen.service], [service])
    assert.deepEqual([...seen.cluster_name], [cluster])
    assert.deepEqual([...seen.subset], [subset])
    assert.deepEqual([...seen.endpoint], [endpoint])
    assert.deepEqual([...seen.route], [route])
    assert.equal(sampleOf(families, 'sidecarless_http_downstream_rq_error_total', 'sidecarless_http_downstream_rq_error_total', { route, error_kind: 'rate_limited' }), 1)
    // Every line is one sample or comment: no raw newline leaked from a label value.
    for (const line of text.split('\n').slice(0, -1)) assert.match(line, /^(#|sidecarless_|istio_)/)
  })

  test('the parser is strict: it rejects malformed expositions', () => {
    const ok = '# HELP a_total A counter.\n# TYPE a_total counter\na_total{x="1"} 1\n'
    assert.equal(parseExposition(ok).get('a_total')!.samples[0]!.value, 1)
    const bad: Record<string, string> = {
      'no final newline': ok.slice(0, -1),
      'bad escape': '# TYPE a counter\na{x="\\q"} 1\n',
      'unterminated value': '# TYPE a counter\na{x="1} 1\n',
      'duplicate label': '# TYPE a counter\na{x="1",x="2"} 1\n',
      'bad metric name': '# TYPE 1a counter\n1a 1\n',
      'bad label name': '# TYPE a counter\na{1x="1"} 1\n',
      'bad value': '# TYPE a counter\na 1,5\n',
      'second TYPE': '# TYPE a counter\n# TYPE a counter\na 1\n',
      'TYPE after samples': 'a 1\n# TYPE a counter\n',
      'unknown type': '# TYPE a meter\na 1\n',
      'family split in two': '# TYPE a gauge\na 1\n# TYPE b gauge\nb 1\na{x="2"} 1\n',
      'duplicate series': '# TYPE a gauge\na{x="1"} 1\na{x="1"} 2\n',
      'histogram +Inf differs from count': '# TYPE h histogram\nh_bucket{le="1"} 1\nh_bucket{le="+Inf"} 2\nh_sum 1\nh_count 3\n',
      'histogram not cumulative': '# TYPE h histogram\nh_bucket{le="1"} 2\nh_bucket{le="+Inf"} 1\nh_sum 1\nh_count 1\n',
      'histogram without +Inf': '# TYPE h histogram\nh_bucket{le="1"} 1\nh_sum 1\nh_count 1\n',
    }
    for (const [why, text] of Object.entries(bad)) assert.throws(() => parseExposition(text), Error, why)
  })
})
