/**
 * Istio's standard metrics, as Istio's dashboards and Kiali read them: real meshed servers
 * and clients (productpage → reviews v1, v2), the exposition parsed strictly.
 */
import assert from 'node:assert/strict'
import type { IncomingHttpHeaders } from 'node:http'
import { after, before, describe, test } from 'node:test'
import { Registry, collectDefaultMetrics, Counter } from 'prom-client'
import { request } from 'undici'
import { createMesh, PEER_HEADER } from '../src/index.js'
import { MetricsRegistry } from '../src/observability/metrics.js'
import { parsePeerHeader, peerHeaderValue, workloadOf } from '../src/observability/istio-metrics.js'
import { parseExposition as parseStrict } from './helpers/exposition.js'
import { startProductpage, startReviews, type Workload } from './helpers/reviews-mesh.js'

type Labels = Record<string, string>
/** Samples of `name` whose labels include `want`. */
function samples(text: string, name: string, want: Labels = {}): { labels: Labels; value: number }[] {
  const families = parseStrict(text)
  const out: { labels: Labels; value: number }[] = []
  for (const f of families.values()) {
    for (const s of f.samples) {
      if (s.name !== name) continue
      if (Object.entries(want).every(([k, v]) => s.labels[k] === v)) out.push({ labels: s.labels, value: s.value })
    }
  }
  return out
}
const total = (text: string, name: string, want: Labels = {}): number => samples(text, name, want).reduce((n, s) => n + s.value, 0)

const ISTIO_LABELS = [
  'reporter', 'source_workload', 'source_workload_namespace', 'source_principal', 'source_app', 'source_version',
  'source_canonical_service', 'source_canonical_revision', 'destination_workload', 'destination_workload_namespace',
  'destination_principal', 'destination_app', 'destination_version', 'destination_service', 'destination_service_name',
  'destination_service_namespace', 'destination_canonical_service', 'destination_canonical_revision', 'request_protocol',
  'response_code', 'grpc_response_status', 'response_flags', 'connection_security_policy',
].sort()

describe('productpage → reviews v1, v2', () => {
  let v1: Workload & { headersSeen: IncomingHttpHeaders[] }
  let v2: Workload & { headersSeen: IncomingHttpHeaders[] }
  let page: Workload
  before(async () => {
    v1 = await startReviews('v1')
    v2 = await startReviews('v2')
    page = await startProductpage([{ url: v1.url, version: 'v1' }, { url: v2.url, version: 'v2' }])
    for (let i = 0; i < 6; i++) await (await request(`${page.url}/productpage`)).body.text()
    await (await request(`${page.url}/fail`)).body.text()
    await (await request(`${page.url}/fail`)).body.text()
  })
  after(async () => {
    await page.close()
    await v1.close()
    await v2.close()
  })

  test('reporter="source" at productpage: destination labels from the cluster and the endpoints\' labels', () => {
    const text = page.mesh.metrics.prometheus()
    const rows = samples(text, 'istio_requests_total', { reporter: 'source' })
    assert.ok(rows.length > 0)
    for (const r of rows) {
      assert.deepEqual(Object.keys(r.labels).sort(), ISTIO_LABELS, 'Istio\'s label set, nothing else')
      assert.equal(r.labels.source_workload, 'productpage-v1')
      assert.equal(r.labels.source_app, 'productpage')
      assert.equal(r.labels.source_version, 'v1')
      assert.equal(r.labels.source_workload_namespace, 'default')
      assert.equal(r.labels.destination_service, 'reviews')
      assert.equal(r.labels.destination_service_name, 'reviews')
      assert.equal(r.labels.destination_app, 'reviews')
      assert.equal(r.labels.connection_security_policy, 'unknown', 'as Istio reports it for the source reporter')
      assert.equal(r.labels.request_protocol, 'http')
    }
    assert.equal(total(text, 'istio_requests_total', { reporter: 'source', destination_version: 'v1' }) + total(text, 'istio_requests_total', { reporter: 'source', destination_version: 'v2' }), 8)
    assert.ok(total(text, 'istio_requests_total', { reporter: 'source', destination_version: 'v1' }) >= 2, 'round robin reached v1')
    assert.ok(total(text, 'istio_requests_total', { reporter: 'source', destination_version: 'v2' }) >= 2)
    assert.equal(total(text, 'istio_requests_total', { reporter: 'source', response_code: '503', response_flags: '-' }), 2, 'the upstream\'s own 503s: no flag')
    assert.equal(total(text, 'istio_requests_total', { reporter: 'source', response_code: '200' }), 6)
    assert.equal(total(text, 'istio_request_duration_milliseconds_count', { reporter: 'source' }), 8)
    assert.equal(total(text, 'istio_response_bytes_sum', { reporter: 'source', response_code: '200' }), 6 * 'reviews vX'.length)
  })

  test('reporter="destination" at reviews: the caller from its peer header, the workload from the mesh; the app never sees the header', () => {
    for (const [w, version] of [[v1, 'v1'], [v2, 'v2']] as const) {
      const text = w.mesh.metrics.prometheus()
      const rows = samples(text, 'istio_requests_total', { reporter: 'destination' })
      assert.ok(rows.length > 0)
      for (const r of rows) {
        assert.deepEqual(Object.keys(r.labels).sort(), ISTIO_LABELS)
        assert.equal(r.labels.source_workload, 'productpage-v1')
        assert.equal(r.labels.source_app, 'productpage')
        assert.equal(r.labels.source_version, 'v1')
        assert.equal(r.labels.source_workload_namespace, 'default')
        assert.equal(r.labels.source_principal, 'unknown', 'plain HTTP: no verified identity')
        assert.equal(r.labels.destination_workload, `reviews-${version}`)
        assert.equal(r.labels.destination_version, version)
        assert.equal(r.labels.destination_service, 'reviews.default.svc.cluster.local')
        assert.equal(r.labels.destination_service_namespace, 'default')
        assert.equal(r.labels.connection_security_policy, 'none')
      }
      assert.ok(w.headersSeen.length > 0 && w.headersSeen.every((h) => h[PEER_HEADER] === undefined), 'the peer header is the mesh\'s, not the app\'s')
    }
  })
})

describe('the mesh\'s own replies', () => {
  test('inbound 429 (rate limit) is counted in the 4xx class and as Istio response_code 429 with RL', async () => {
    const w = await startReviews('v1', { listener: { rateLimit: { maxTokens: 2, fillInterval: '1h' } } })
    try {
      const codes: number[] = []
      for (let i = 0; i < 5; i++) {
        const r = await request(`${w.url}/r`)
        await r.body.text()
        codes.push(r.statusCode)
      }
      assert.deepEqual(codes, [200, 200, 429, 429, 429])
      await new Promise((r) => setTimeout(r, 20))
      const route = w.mesh.metrics.snapshot().inbound.routes['(default)']!
      assert.equal(route.responses['4xx'], 3, 'the mesh\'s 429s are responses too (Envoy counts local replies)')
      assert.equal(route.errors.rate_limited, 3, '…and errors of their kind')
      const text = w.mesh.metrics.prometheus()
      assert.equal(total(text, 'istio_requests_total', { reporter: 'destination', response_code: '429', response_flags: 'RL' }), 3)
      assert.equal(total(text, 'istio_requests_total', { reporter: 'destination', response_code: '200', response_flags: '-' }), 2)
      assert.equal(total(text, 'sidecarless_http_downstream_rq_xx_total', { response_code_class: '4' }), 3)
    } finally {
      await w.close()
    }
  })

  test('outbound 503 with no healthy upstream (UH) and a refused connection (UF)', async () => {
    const page = await startProductpage([{ url: 'http://127.0.0.1:1', version: 'v1' }])
    try {
      const r = await request(`${page.url}/x`)
      await r.body.text()
      assert.equal(r.statusCode, 503)
      const text = page.mesh.metrics.prometheus()
      assert.equal(total(text, 'istio_requests_total', { reporter: 'source', response_code: '503', response_flags: 'UF', destination_version: 'v1' }), 1)
      assert.equal(page.mesh.metrics.snapshot().outbound.clusters['reviews']!.responses['5xx'], 1)
      await page.mesh.update({ clusters: [{ name: 'reviews', endpoints: [] }], virtualHosts: [{ name: 'reviews', domains: ['reviews'], routes: [{ match: { prefix: '/' }, route: { cluster: 'reviews' } }] }] })
      await (await request(`${page.url}/x`)).body.text()
      assert.equal(total(page.mesh.metrics.prometheus(), 'istio_requests_total', { reporter: 'source', response_code: '503', response_flags: 'UH' }), 1)
    } finally {
      await page.close()
    }
  })
})

describe('bounded cardinality and identities', () => {
  test('an mTLS caller: source_principal and namespace from its SPIFFE ID, connection_security_policy mutual_tls', () => {
    const m = new MetricsRegistry({ service: 'reviews' })
    const r = m.inbound('api', 'spiffe://cluster.local/ns/shop/sa/productpage', 'workload=productpage-v1,namespace=spoofed,app=productpage,version=v1')
    r.start()
    r.end(200, 3, 10, 20)
    const [row] = samples(m.prometheus(), 'istio_requests_total')
    assert.equal(row?.labels.source_principal, 'spiffe://cluster.local/ns/shop/sa/productpage')
    assert.equal(row?.labels.source_workload_namespace, 'shop', 'the verified namespace wins over the header')
    assert.equal(row?.labels.connection_security_policy, 'mutual_tls')
    assert.equal(row?.labels.source_workload, 'productpage-v1')
    assert.equal(total(m.prometheus(), 'istio_request_bytes_sum'), 10)
    assert.equal(total(m.prometheus(), 'istio_response_bytes_sum'), 20)
  })

  test('callers naming themselves in endless ways share one "unknown" series past the bound', () => {
    const m = new MetricsRegistry({ service: 'reviews', maxEndpointsPerCluster: 4 })
    for (let i = 0; i < 50; i++) {
      const r = m.inbound('api', undefined, `workload=w${i},app=a${i},version=v${i}`)
      r.start()
      r.end(200, 1, 0, 0)
    }
    const rows = samples(m.prometheus(), 'istio_requests_total')
    assert.ok(rows.length <= 5, `${rows.length} series`)
    assert.equal(rows.reduce((n, r) => n + r.value, 0), 50, 'every request counted')
    assert.ok(rows.some((r) => r.labels.source_workload === 'unknown'))
  })

  test('a malformed peer header counts as an unknown caller', () => {
    const m = new MetricsRegistry({ service: 'reviews' })
    const r = m.inbound('api', undefined, 'garbage without pairs')
    r.start()
    r.end(200, 1, 0, 0)
    assert.equal(samples(m.prometheus(), 'istio_requests_total')[0]?.labels.source_workload, 'unknown')
  })
})

describe('the peer header', () => {
  const workloads = [
    workloadOf('productpage', {}),
    workloadOf(undefined, {}),
    workloadOf('reviews', { version: 'v2' }),
    workloadOf('reviews', { version: 'v2', namespace: 'shop' }),
    workloadOf('reviews', { app: 'reviews-app', version: 'v2', workload: 'reviews-v2-7f9c', 'service.istio.io/canonical-name': 'reviews-canonical', 'service.istio.io/canonical-revision': 'r9' }),
    workloadOf('ratings', { 'app.kubernetes.io/name': 'ratings', 'app.kubernetes.io/version': 'unknown', namespace: 'a b,c=d%' }),
    workloadOf('details', { version: 'v1', 'service.istio.io/canonical-revision': 'latest' }),
  ]
  for (const w of workloads) {
    test(`reads back what it was written from: ${peerHeaderValue(w)}`, () => {
      assert.deepEqual(parsePeerHeader(peerHeaderValue(w), undefined), w)
    })
  }

  test('leaves out what the reader implies: a service without labels sends its app alone', () => {
    assert.equal(peerHeaderValue(workloadOf('productpage', {})), 'app=productpage')
    assert.equal(peerHeaderValue(workloadOf('reviews', { version: 'v2', namespace: 'shop' })), 'app=reviews,version=v2,namespace=shop')
  })

  test('the full form earlier versions wrote reads as it always did', () => {
    const full = 'workload=productpage-v1,namespace=default,app=productpage,version=v1,canonicalService=productpage,canonicalRevision=v1'
    assert.deepEqual(parsePeerHeader(full, undefined), {
      workload: 'productpage-v1', namespace: 'default', app: 'productpage', version: 'v1', canonicalService: 'productpage', canonicalRevision: 'v1', principal: 'unknown',
    })
  })
})

describe('process metrics and prom-client', () => {
  test('process and runtime metrics under prom-client\'s names; { process: false } leaves them out', () => {
    const mesh = createMesh({ service: 'x' })
    try {
      const text = mesh.metrics.prometheus()
      const families = parseStrict(text)
      for (const name of ['process_cpu_seconds_total', 'process_cpu_user_seconds_total', 'process_resident_memory_bytes', 'process_start_time_seconds', 'nodejs_eventloop_lag_seconds', 'nodejs_eventloop_lag_p99_seconds', 'nodejs_heap_size_used_bytes', 'nodejs_version_info']) {
        assert.ok(families.has(name), `${name} is exposed`)
      }
      assert.equal(families.get('process_cpu_seconds_total')?.type, 'counter')
      assert.ok(total(text, 'process_resident_memory_bytes') > 1e6)
      assert.equal(samples(text, 'nodejs_version_info')[0]?.labels.version, process.version)
      assert.doesNotMatch(mesh.metrics.prometheus({ process: false }), /process_|nodejs_/)
    } finally {
      void mesh.close()
    }
  })

  test('registerWith(): the mesh\'s series in the app\'s prom-client registry beside its own and its default metrics', async () => {
    const w = await startReviews('v2')
    const registry = new Registry()
    collectDefaultMetrics({ register: registry })
    const appCounter = new Counter({ name: 'app_orders_total', help: 'Orders.', registers: [registry] })
    appCounter.inc(3)
    try {
      const unregister = w.mesh.metrics.registerWith(registry)
      await (await request(`${w.url}/r`)).body.text()
      await new Promise((r) => setTimeout(r, 20))
      // The Istio families existed at registration? Not before the first request: they join at the next scrape.
      await registry.metrics()
      // prom-client spells NaN "Nan" (its event-loop figures before their first sample): the text format says NaN.
      const text = (await registry.metrics()).replace(/ Nan$/gm, ' NaN')
      const families = parseStrict(text)
      assert.equal(total(text, 'app_orders_total'), 3, 'the app\'s own metric')
      assert.equal(total(text, 'istio_requests_total', { reporter: 'destination', destination_version: 'v2', response_code: '200' }), 1)
      assert.equal(total(text, 'sidecarless_http_downstream_rq_total'), 1)
      assert.equal(families.get('istio_request_duration_milliseconds')?.type, 'histogram')
      assert.equal(samples(text, 'process_cpu_seconds_total').length, 1, 'process metrics once: prom-client\'s')
      unregister()
      assert.doesNotMatch(await registry.metrics(), /istio_|sidecarless_/)
      assert.match(await registry.metrics(), /app_orders_total 3/)
      assert.throws(() => w.mesh.metrics.registerWith({} as never), /prom-client Registry/)
    } finally {
      await w.close()
    }
  })
})
