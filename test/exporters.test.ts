/**
 * Span export to Zipkin and OTLP collectors: real collectors (node:http on port 0) record
 * what they receive; a meshed server calls a real upstream through `mesh.fetch`.
 */
import assert from 'node:assert/strict'
import { AsyncResource } from 'node:async_hooks'
import { once } from 'node:events'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import http from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { trace } from '@opentelemetry/api'
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base'
import { Agent, request } from 'undici'
import { ConfigError, createMesh, validateConfig, type ConfigIssue, type FinishedSpan, type Mesh } from '../src/index.js'
import { BatchExporter } from '../src/observability/exporters/batch-exporter.js'
import { CollectorClients } from '../src/observability/exporters/collector-clients.js'
import { encodeOtlp } from '../src/observability/exporters/otlp.js'
import { encodeZipkin } from '../src/observability/exporters/zipkin.js'
import { closedPort, echo, startUpstream, type Upstream } from './helpers/upstream.js'

const PACKAGE_VERSION = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version
// Sampled (bit 0); the random-trace-id flag (bit 1) is set when the mesh started the trace.
const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-0[13]$/
/** Clock slack between Date.now() and the SDK's performance-based clock. */
const SLACK_MS = 50

// ---------------------------------------------------------------- a collector

interface Received {
  readonly path: string
  readonly headers: http.IncomingHttpHeaders
  readonly body: unknown
}

interface Collector {
  readonly url: (path: string) => string
  readonly port: number
  readonly received: Received[]
  /** Requests being answered right now, and the most at once. */
  readonly maxConcurrent: number
  /** Lets held requests (mode `hold`) answer. */
  release(): void
  close(): Promise<void>
}

/** `ok`: 200/202; `fail`: 500; `hold`: answers only on `release()` (or never). */
async function startCollector(mode: 'ok' | 'fail' | 'hold' = 'ok'): Promise<Collector> {
  const received: Received[] = []
  const held: (() => void)[] = []
  const sockets = new Set<Socket>()
  let concurrent = 0
  let maxConcurrent = 0
  let released = false
  const server = http.createServer((req, res) => {
    concurrent++
    maxConcurrent = Math.max(maxConcurrent, concurrent)
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8')
      received.push({ path: req.url ?? '', headers: req.headers, body: text === '' ? undefined : JSON.parse(text) })
      const answer = (): void => {
        concurrent--
        if (mode === 'fail') {
          res.writeHead(500, { 'content-type': 'text/plain' }).end('collector broke')
        } else {
          // Zipkin answers 202 Accepted, an OTLP receiver 200 with an empty response message.
          const zipkin = req.url?.startsWith('/api/v2/spans') === true
          res.writeHead(zipkin ? 202 : 200, { 'content-type': 'application/json' }).end(zipkin ? '' : '{}')
        }
      }
      if (mode === 'hold' && !released) held.push(answer)
      else answer()
    })
  })
  server.on('connection', (s: Socket) => {
    sockets.add(s)
    s.on('close', () => sockets.delete(s))
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const port = (server.address() as AddressInfo).port
  return {
    url: (path) => `http://127.0.0.1:${port}${path}`,
    port,
    received,
    get maxConcurrent() {
      return maxConcurrent
    },
    release() {
      released = true
      for (const answer of held.splice(0)) answer()
    },
    close: () => new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy()
      server.close(() => resolve())
    }),
  }
}

// ---------------------------------------------------------------- helpers

type ZipkinSpan = {
  traceId: string
  id: string
  parentId?: string
  name: string
  kind?: string
  timestamp: number
  duration: number
  localEndpoint: { serviceName?: string }
  remoteEndpoint?: { serviceName?: string; ipv4?: string; ipv6?: string; port?: number }
  tags: Record<string, string>
}

type OtlpValue = { stringValue?: string; intValue?: string; doubleValue?: number; boolValue?: boolean }
type OtlpSpan = {
  traceId: string
  spanId: string
  parentSpanId?: string
  flags?: number
  name: string
  kind: number
  startTimeUnixNano: string
  endTimeUnixNano: string
  attributes: { key: string; value: OtlpValue }[]
  status: { code: number; message?: string }
}
type OtlpRequest = {
  resourceSpans: {
    resource: { attributes: { key: string; value: OtlpValue }[] }
    scopeSpans: { scope: { name: string; version?: string }; spans: OtlpSpan[] }[]
  }[]
}

function zipkinSpans(c: Collector): ZipkinSpan[] {
  return c.received.filter((r) => r.path === '/api/v2/spans').flatMap((r) => r.body as ZipkinSpan[])
}

function otlpRequests(c: Collector): OtlpRequest[] {
  return c.received.filter((r) => r.path === '/v1/traces').map((r) => r.body as OtlpRequest)
}

function otlpSpans(c: Collector): OtlpSpan[] {
  return otlpRequests(c).flatMap((r) => r.resourceSpans.flatMap((rs) => rs.scopeSpans.flatMap((ss) => ss.spans)))
}

function attr(span: OtlpSpan, key: string): OtlpValue | undefined {
  return span.attributes.find((a) => a.key === key)?.value
}

function byKind<T extends { kind?: string | number }>(spans: T[], kind: string | number): T[] {
  return spans.filter((s) => s.kind === kind)
}

/** Collects process warnings with a code starting `SIDECARLESS_TRACING`. */
function captureWarnings(): { readonly list: (Error & { code?: string })[]; stop(): void } {
  const list: (Error & { code?: string })[] = []
  const on = (w: Error & { code?: string }): void => {
    if (w.code?.startsWith('SIDECARLESS_TRACING') === true) list.push(w)
  }
  process.on('warning', on)
  return { list, stop: () => process.off('warning', on) }
}

/** Records unhandled rejections while a test runs. */
function captureRejections(): { readonly list: unknown[]; stop(): void } {
  const list: unknown[] = []
  const on = (reason: unknown): void => {
    list.push(reason)
  }
  process.on('unhandledRejection', on)
  return { list, stop: () => process.off('unhandledRejection', on) }
}

/** Warnings are emitted on the next tick; give them a turn of the event loop. */
const settle = (ms = 20): Promise<void> => new Promise((r) => setTimeout(r, ms))

async function listen(server: http.Server): Promise<string> {
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`
}

async function closeServer(server: http.Server): Promise<void> {
  server.closeAllConnections()
  await new Promise<void>((resolve) => server.close(() => resolve()))
}

let backend: Upstream
before(async () => {
  backend = await startUpstream('backend', (req, res, name) => {
    if (req.url?.startsWith('/fail') === true) {
      res.statusCode = 503
      res.end('unavailable')
    } else {
      echo(req, res, name)
    }
  })
})
after(async () => {
  await backend.close()
})

function meshConfig(tracing: Record<string, unknown>, extra: Record<string, unknown> = {}) {
  return {
    tracing: { sampling: 100, ...tracing },
    clusters: [{ name: 'backend', endpoints: [{ address: backend.address }] }],
    virtualHosts: [{ name: 'backend', domains: ['backend'], routes: [{ match: { prefix: '/' }, route: { cluster: 'backend' } }] }],
    ...extra,
  }
}

/** A meshed server whose handler calls the backend through the mesh (`/fail…` makes the backend answer 503). */
async function frontend(mesh: Mesh): Promise<{ url: string; server: http.Server }> {
  const server = mesh.createServer(async (req, res) => {
    const upstream = await mesh.fetch(`http://backend${req.url === '/fail' ? '/fail' : '/items?id=1'}`)
    res.end(await upstream.text())
  })
  return { url: await listen(server), server }
}

// ---------------------------------------------------------------- end to end

describe('zipkin', () => {
  test('close() delivers the server and client spans as Zipkin v2 JSON', async () => {
    const collector = await startCollector()
    const mesh = createMesh({ service: 'frontend', config: meshConfig({ zipkin: collector.url('/api/v2/spans') }) })
    const { url, server } = await frontend(mesh)
    const t0 = Date.now()
    try {
      const seenBefore = backend.seen.length
      const res = await request(`${url}/api/orders`)
      assert.equal(res.statusCode, 200)
      await res.body.text()
      const tp = TRACEPARENT.exec(String(backend.seen[seenBefore]?.headers.traceparent))
      assert.ok(tp, 'the backend got a sampled traceparent')
      await closeServer(server)
      await mesh.close()
      const t1 = Date.now()

      assert.equal(collector.received.length, 1, 'one batch')
      const req = collector.received[0]!
      assert.equal(req.headers['content-type'], 'application/json')
      assert.equal(req.headers.traceparent, undefined, 'the export request carries no trace')
      const spans = zipkinSpans(collector)
      assert.equal(spans.length, 2, JSON.stringify(spans))
      const [serverSpan] = byKind(spans, 'SERVER')
      const [clientSpan] = byKind(spans, 'CLIENT')
      assert.ok(serverSpan && clientSpan)

      assert.match(serverSpan.traceId, /^[0-9a-f]{32}$/)
      assert.match(serverSpan.id, /^[0-9a-f]{16}$/)
      assert.equal(serverSpan.parentId, undefined, 'a request without trace headers starts a trace')
      assert.equal(clientSpan.traceId, serverSpan.traceId)
      assert.equal(clientSpan.parentId, serverSpan.id, 'the client span is a child of the server span')
      assert.equal(tp[1], clientSpan.traceId)
      assert.equal(tp[2], clientSpan.id, 'the backend saw the client span as its parent')

      assert.equal(serverSpan.name, 'GET')
      assert.equal(clientSpan.name, 'GET')
      for (const s of spans) {
        assert.ok(Number.isInteger(s.timestamp) && Number.isInteger(s.duration), 'whole microseconds')
        assert.ok(s.duration >= 1)
        assert.ok(s.timestamp >= (t0 - SLACK_MS) * 1000 && s.timestamp + s.duration <= (t1 + SLACK_MS) * 1000, `${s.timestamp} in [${t0}, ${t1}] ms`)
        assert.deepEqual(s.localEndpoint, { serviceName: 'frontend' })
      }
      assert.ok(clientSpan.timestamp >= serverSpan.timestamp, 'the client span starts inside the server span')
      assert.ok(clientSpan.timestamp + clientSpan.duration <= serverSpan.timestamp + serverSpan.duration + 1)

      assert.deepEqual(clientSpan.remoteEndpoint, { ipv4: '127.0.0.1', port: backend.port })
      assert.deepEqual(serverSpan.remoteEndpoint, { ipv4: '127.0.0.1' })

      assert.equal(serverSpan.tags['http.request.method'], 'GET')
      assert.equal(serverSpan.tags['url.path'], '/api/orders')
      assert.equal(serverSpan.tags['http.response.status_code'], '200', 'tags are strings')
      assert.equal(clientSpan.tags['http.response.status_code'], '200')
      assert.equal(clientSpan.tags['server.port'], String(backend.port))
      assert.equal(clientSpan.tags['sidecarless.cluster'], 'backend')
      assert.equal(clientSpan.tags['url.full'], 'http://backend/items?id=1')
      for (const s of spans) {
        assert.equal(s.tags['error'], undefined, 'no error tag on success')
        assert.equal(s.tags['otel.status_code'], undefined, 'UNSET status is not reported')
        for (const v of Object.values(s.tags)) assert.equal(typeof v, 'string')
      }
    } finally {
      await closeServer(server)
      await mesh.close()
      await collector.close()
    }
  })
})

describe('otlp', () => {
  test('close() delivers an OTLP JSON ExportTraceServiceRequest continuing the caller\'s trace', async () => {
    const collector = await startCollector()
    const mesh = createMesh({ service: 'frontend', config: meshConfig({ otlp: collector.url('/v1/traces') }) })
    const { url, server } = await frontend(mesh)
    const callerTrace = '4bf92f3577b34da6a3ce929d0e0e4736'
    const callerSpan = '00f067aa0ba902b7'
    const t0 = Date.now()
    try {
      const res = await request(`${url}/api/orders?x=1`, {
        headers: { traceparent: `00-${callerTrace}-${callerSpan}-01`, tracestate: 'vendor=abc' },
      })
      assert.equal(res.statusCode, 200)
      await res.body.text()
      await closeServer(server)
      await mesh.close()
      const t1 = Date.now()

      const [body, ...more] = otlpRequests(collector)
      assert.ok(body)
      assert.equal(more.length, 0, 'one batch')
      assert.equal(collector.received[0]!.headers['content-type'], 'application/json')
      assert.equal(body.resourceSpans.length, 1)
      const rs = body.resourceSpans[0]!
      assert.deepEqual(rs.resource.attributes, [{ key: 'service.name', value: { stringValue: 'frontend' } }])
      assert.equal(rs.scopeSpans.length, 1)
      assert.deepEqual(rs.scopeSpans[0]!.scope, { name: 'sidecarless', version: PACKAGE_VERSION })

      const spans = otlpSpans(collector)
      assert.equal(spans.length, 2)
      const [serverSpan] = byKind(spans, 2)
      const [clientSpan] = byKind(spans, 3)
      assert.ok(serverSpan && clientSpan, 'kinds are integers: SPAN_KIND_SERVER = 2, SPAN_KIND_CLIENT = 3')

      assert.equal(serverSpan.traceId, callerTrace, 'ids are lower-case hex, not base64')
      assert.equal(serverSpan.parentSpanId, callerSpan)
      assert.match(serverSpan.spanId, /^[0-9a-f]{16}$/)
      assert.equal(clientSpan.traceId, callerTrace)
      assert.equal(clientSpan.parentSpanId, serverSpan.spanId)
      assert.equal((serverSpan as { traceState?: string }).traceState, 'vendor=abc')
      assert.equal(serverSpan.flags, 0x301, 'sampled, with a remote parent')
      assert.equal(clientSpan.flags, 0x101, 'sampled, with a local parent')
      assert.equal(serverSpan.name, 'GET')

      for (const s of spans) {
        assert.match(s.startTimeUnixNano, /^\d{19}$/, 'fixed64 as a decimal string')
        assert.match(s.endTimeUnixNano, /^\d{19}$/)
        const start = BigInt(s.startTimeUnixNano)
        const end = BigInt(s.endTimeUnixNano)
        assert.ok(start <= end)
        assert.ok(start >= BigInt(t0 - SLACK_MS) * 1_000_000n && end <= BigInt(t1 + SLACK_MS) * 1_000_000n)
        assert.deepEqual(s.status, { code: 0 })
      }
      assert.ok(BigInt(clientSpan.startTimeUnixNano) >= BigInt(serverSpan.startTimeUnixNano))
      assert.ok(BigInt(clientSpan.endTimeUnixNano) <= BigInt(serverSpan.endTimeUnixNano))

      assert.deepEqual(attr(serverSpan, 'http.request.method'), { stringValue: 'GET' })
      assert.deepEqual(attr(serverSpan, 'url.path'), { stringValue: '/api/orders' })
      assert.deepEqual(attr(serverSpan, 'url.query'), { stringValue: 'x=1' })
      assert.deepEqual(attr(serverSpan, 'http.response.status_code'), { intValue: '200' }, 'int64 as a decimal string')
      assert.deepEqual(attr(clientSpan, 'server.port'), { intValue: String(backend.port) })
      assert.deepEqual(attr(clientSpan, 'sidecarless.cluster'), { stringValue: 'backend' })
    } finally {
      await closeServer(server)
      await mesh.close()
      await collector.close()
    }
  })
})

describe('zipkin and otlp at once', () => {
  test('both collectors get every span; error status maps to Zipkin\'s error tag and OTLP code 2', async () => {
    const collector = await startCollector()
    const mesh = createMesh({
      service: 'frontend',
      config: meshConfig({ zipkin: collector.url('/api/v2/spans'), otlp: collector.url('/v1/traces') }),
    })
    const { url, server } = await frontend(mesh)
    try {
      const ok = await request(`${url}/ok`)
      await ok.body.text()
      const failed = await request(`${url}/fail`)
      await failed.body.text()
      assert.equal(failed.statusCode, 200, 'the app answers 200 whatever the backend said')
      await closeServer(server)
      await mesh.close()

      const z = zipkinSpans(collector)
      const o = otlpSpans(collector)
      assert.equal(z.length, 4)
      assert.equal(o.length, 4)
      assert.deepEqual(new Set(z.map((s) => s.id)), new Set(o.map((s) => s.spanId)), 'the same spans in both formats')

      const zFailed = byKind(z, 'CLIENT').find((s) => s.tags['http.response.status_code'] === '503')
      assert.ok(zFailed)
      assert.equal(zFailed.tags['otel.status_code'], 'ERROR')
      assert.equal(zFailed.tags['error'], '503', 'Zipkin marks the span failed; the reason is error.type')
      const oFailed = o.find((s) => s.spanId === zFailed.id)
      assert.ok(oFailed)
      assert.equal(oFailed.status.code, 2, 'STATUS_CODE_ERROR')
      assert.deepEqual(attr(oFailed, 'error.type'), { stringValue: '503' })
      const stats = mesh.tracing.exporters()
      assert.deepEqual(stats.map((s) => [s.format, s.exported, s.dropped, s.failed, s.queued]).sort(), [['otlp', 4, 0, 0, 0], ['zipkin', 4, 0, 0, 0]])
    } finally {
      await closeServer(server)
      await mesh.close()
      await collector.close()
    }
  })

  test('the config lines are all it takes: a YAML file with sampling, zipkin and otlp', async () => {
    const collector = await startCollector()
    const dir = mkdtempSync(join(tmpdir(), 'sidecarless-exporters-'))
    const file = join(dir, 'mesh.yaml')
    writeFileSync(file, [
      'tracing:',
      '  sampling: 100',
      `  zipkin: ${collector.url('/api/v2/spans')}      # Zipkin v2 JSON`,
      `  otlp: ${collector.url('/v1/traces')}           # OTLP/HTTP JSON`,
      '',
    ].join('\n'))
    const mesh = createMesh({ config: file })
    const server = mesh.createServer((_req, res) => res.end('ok'))
    const url = await listen(server)
    try {
      await (await request(url)).body.text()
      await closeServer(server)
      await mesh.close()
      assert.equal(zipkinSpans(collector).length, 1)
      assert.equal(zipkinSpans(collector)[0]!.localEndpoint.serviceName, 'sidecarless', 'the default service name')
      assert.equal(otlpSpans(collector).length, 1)
    } finally {
      await closeServer(server)
      await mesh.close()
      await collector.close()
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

describe('export requests are not meshed nor traced', () => {
  test('with the mesh installed globally and a route claiming the collector\'s authority, exports still go straight to it', async () => {
    const collector = await startCollector()
    const trap = await startUpstream('trap')
    const authority = `127.0.0.1:${collector.port}`
    const mesh = createMesh({
      service: 'frontend',
      config: meshConfig({ zipkin: collector.url('/api/v2/spans'), otlp: collector.url('/v1/traces') }, {
        clusters: [
          { name: 'backend', endpoints: [{ address: backend.address }] },
          { name: 'trap', endpoints: [{ address: trap.address }] },
        ],
        virtualHosts: [
          { name: 'backend', domains: ['backend'], routes: [{ match: { prefix: '/' }, route: { cluster: 'backend' } }] },
          { name: 'collector', domains: [authority], routes: [{ match: { prefix: '/' }, route: { cluster: 'trap' } }] },
        ],
      }),
    })
    const restore = mesh.installGlobal()
    // The test's own calls to the frontend must not go through the (now global) mesh.
    const direct = new Agent()
    const { url, server } = await frontend(mesh)
    try {
      for (let i = 0; i < 3; i++) await (await request(`${url}/api/${i}`, { dispatcher: direct })).body.text()
      // Let one timed export happen while the requests' contexts are gone, then flush the rest.
      await settle(1_300)
      await (await request(`${url}/api/last`, { dispatcher: direct })).body.text()
      await closeServer(server)
      await mesh.close()

      assert.equal(trap.seen.length, 0, 'the mesh\'s route for the collector\'s authority was never used')
      assert.ok(collector.received.length >= 4, `${collector.received.length} export requests`)
      for (const r of collector.received) {
        assert.equal(r.headers.traceparent, undefined)
        assert.equal(r.headers['x-request-id'], undefined)
      }
      const z = zipkinSpans(collector)
      const o = otlpSpans(collector)
      assert.equal(z.length, 8, 'server and client span of four requests, nothing else')
      assert.equal(o.length, 8)
      for (const s of z) {
        assert.notEqual(s.tags['server.port'], String(collector.port), 'no span for an export request')
        assert.notEqual(s.tags['sidecarless.cluster'], 'trap')
      }
      const recent = mesh.tracing.recent()
      assert.equal(recent.length, 8)
      assert.ok(recent.every((s) => s.attributes['server.port'] !== collector.port))
      const clusters = mesh.metrics.snapshot().outbound.clusters
      assert.deepEqual(Object.keys(clusters).filter((c) => (clusters[c]?.requests ?? 0) > 0), ['backend'], 'no meshed request to the collector')
    } finally {
      restore()
      await direct.close()
      await closeServer(server)
      await mesh.close()
      await trap.close()
      await collector.close()
    }
  })
})

// ---------------------------------------------------------------- failures

describe('a failing collector never fails a request', () => {
  async function run(collectorUrl: string, rounds: number): Promise<{ mesh: Mesh; warnings: (Error & { code?: string })[]; rejections: unknown[]; closeMs: number; requestMs: number[] }> {
    const warnings = captureWarnings()
    const rejections = captureRejections()
    const mesh = createMesh({ service: 'frontend', config: meshConfig({ zipkin: collectorUrl }) })
    const { url, server } = await frontend(mesh)
    const requestMs: number[] = []
    try {
      for (let round = 0; round < rounds; round++) {
        if (round > 0) await settle(1_300)
        for (let i = 0; i < 3; i++) {
          const started = performance.now()
          const res = await request(`${url}/api/${round}/${i}`)
          assert.equal(res.statusCode, 200)
          assert.equal(await res.body.text(), 'backend /items?id=1')
          requestMs.push(performance.now() - started)
        }
      }
      await closeServer(server)
      const started = performance.now()
      await mesh.close()
      const closeMs = performance.now() - started
      await settle()
      return { mesh, warnings: warnings.list, rejections: rejections.list, closeMs, requestMs }
    } finally {
      warnings.stop()
      rejections.stop()
      await closeServer(server)
      await mesh.close()
    }
  }

  test('collector answers 500: one warning for several failed batches, spans counted as failed', async () => {
    const collector = await startCollector('fail')
    try {
      const { mesh, warnings, rejections, closeMs } = await run(collector.url('/api/v2/spans'), 2)
      assert.equal(collector.received.length, 2, 'a timed export, then the flush at close')
      assert.equal(warnings.length, 1, warnings.map((w) => w.message).join('\n'))
      assert.equal(warnings[0]!.code, 'SIDECARLESS_TRACING_EXPORT_FAILED')
      assert.match(warnings[0]!.message, /HTTP 500/)
      assert.deepEqual(rejections, [])
      assert.ok(closeMs < 2_000, `close took ${closeMs} ms`)
      assert.deepEqual(mesh.tracing.exporters().map((s) => [s.format, s.exported, s.failed, s.dropped, s.queued]), [['zipkin', 0, 12, 0, 0]], 'readable after close')
    } finally {
      await collector.close()
    }
  })

  test('collector down: one warning, close() is quick', async () => {
    const port = await closedPort()
    const { warnings, rejections, closeMs } = await run(`http://127.0.0.1:${port}/api/v2/spans`, 2)
    assert.equal(warnings.length, 1, warnings.map((w) => w.message).join('\n'))
    assert.equal(warnings[0]!.code, 'SIDECARLESS_TRACING_EXPORT_FAILED')
    assert.match(warnings[0]!.message, /127\.0\.0\.1:\d+\/api\/v2\/spans/)
    assert.deepEqual(rejections, [])
    assert.ok(closeMs < 2_000, `close took ${closeMs} ms`)
  })

  test('collector hangs: requests are not slowed, close() gives up at the export timeout (10 s)', async () => {
    const collector = await startCollector('hold')
    try {
      const { warnings, rejections, closeMs, requestMs } = await run(collector.url('/api/v2/spans'), 1)
      assert.equal(collector.received.length, 1)
      assert.ok(Math.max(...requestMs) < 1_000, `requests took ${requestMs.join(', ')} ms`)
      assert.ok(closeMs >= 9_500 && closeMs < 11_500, `close took ${closeMs} ms`)
      assert.equal(warnings.length, 1, warnings.map((w) => w.message).join('\n'))
      assert.equal(warnings[0]!.code, 'SIDECARLESS_TRACING_EXPORT_FAILED')
      assert.deepEqual(rejections, [])
    } finally {
      await collector.close()
    }
  })
})

// ---------------------------------------------------------------- the batch exporter alone

function fakeSpan(i: number): FinishedSpan {
  const start = 1_700_000_000_000_000_000n + BigInt(i) * 1_000_000n
  return {
    traceId: 'ab'.repeat(16),
    spanId: i.toString(16).padStart(16, '0'),
    parentSpanId: undefined,
    name: `span-${i}`,
    kind: 'internal',
    startTime: Number(start / 1_000_000n),
    durationMs: 0.5,
    startTimeUnixNano: String(start),
    endTimeUnixNano: String(start + 500_000n),
    attributes: { i, ratio: 0.5, ok: true, list: ['a', 'b'] },
    status: 'unset',
    statusMessage: undefined,
    traceState: undefined,
    parentIsRemote: false,
  }
}

function exporterFor(collector: Collector, clients: CollectorClients, options: { maxQueueSize?: number; maxBatchSize?: number; delayMs?: number; timeoutMs?: number }): BatchExporter {
  return new BatchExporter({
    format: 'zipkin',
    url: collector.url('/api/v2/spans'),
    encode: encodeZipkin,
    resource: { serviceName: 'unit', scopeName: 'sidecarless', scopeVersion: undefined },
    transport: (url, body, signal) => clients.post(url, body, signal),
    scope: new AsyncResource('test'),
    ...options,
  })
}

describe('BatchExporter', () => {
  test('a full queue drops the oldest spans and counts them; one request in flight at a time', async () => {
    const collector = await startCollector('hold')
    const clients = new CollectorClients(5_000)
    const warnings = captureWarnings()
    const exporter = exporterFor(collector, clients, { maxQueueSize: 5, maxBatchSize: 5, delayMs: 60_000 })
    try {
      for (let i = 0; i < 5; i++) exporter.enqueue(fakeSpan(i))
      // A full batch goes out at once, without waiting for the delay.
      while (collector.received.length === 0) await settle(5)
      for (let i = 5; i < 13; i++) exporter.enqueue(fakeSpan(i))
      assert.deepEqual(exporter.stats(), { format: 'zipkin', url: collector.url('/api/v2/spans'), queued: 5, exported: 0, dropped: 3, failed: 0 })
      await settle(50)
      assert.equal(collector.received.length, 1, 'the next batch waits for the one in flight')
      collector.release()
      await exporter.flush(Date.now() + 5_000)
      assert.equal(collector.maxConcurrent, 1)
      const ids = zipkinSpans(collector).map((s) => Number.parseInt(s.id, 16))
      assert.deepEqual(ids, [0, 1, 2, 3, 4, 8, 9, 10, 11, 12], 'spans 5, 6 and 7 were the oldest when the queue overflowed')
      assert.deepEqual(exporter.stats(), { format: 'zipkin', url: collector.url('/api/v2/spans'), queued: 0, exported: 10, dropped: 3, failed: 0 })
      await settle()
      assert.deepEqual(warnings.list.map((w) => w.code), ['SIDECARLESS_TRACING_EXPORT_DROPPED'], 'one warning for three drops')
    } finally {
      warnings.stop()
      await exporter.shutdown(Date.now() + 1_000)
      await clients.close(Date.now() + 1_000)
      await collector.close()
    }
  })

  test('a partial batch waits for the delay; spans ended after shutdown are dropped, not sent', async () => {
    const collector = await startCollector()
    const clients = new CollectorClients(5_000)
    const exporter = exporterFor(collector, clients, { maxBatchSize: 3, delayMs: 300 })
    try {
      exporter.enqueue(fakeSpan(1))
      await settle(100)
      assert.equal(collector.received.length, 0)
      await settle(400)
      assert.equal(collector.received.length, 1)
      const [span] = zipkinSpans(collector)
      assert.deepEqual(span?.tags, { i: '1', ratio: '0.5', ok: 'true', list: '["a","b"]' })
      assert.equal(span?.kind, undefined, 'internal spans have no Zipkin kind')
      assert.equal(span?.timestamp, 1_700_000_000_001_000)
      assert.equal(span?.duration, 500)
      await exporter.shutdown(Date.now() + 1_000)
      assert.doesNotThrow(() => exporter.enqueue(fakeSpan(2)))
      assert.equal(exporter.stats().dropped, 1)
      await settle(400)
      assert.equal(collector.received.length, 1)
    } finally {
      await exporter.shutdown(Date.now() + 1_000)
      await clients.close(Date.now() + 1_000)
      await collector.close()
    }
  })

  test('shutdown is bounded by its deadline when the collector never answers', async () => {
    const collector = await startCollector('hold')
    const clients = new CollectorClients(60_000)
    const warnings = captureWarnings()
    const exporter = exporterFor(collector, clients, { timeoutMs: 60_000 })
    try {
      for (let i = 0; i < 3; i++) exporter.enqueue(fakeSpan(i))
      const started = performance.now()
      await exporter.shutdown(Date.now() + 300)
      await clients.close(Date.now())
      const ms = performance.now() - started
      assert.ok(ms >= 250 && ms < 1_500, `shutdown took ${ms} ms`)
      assert.equal(exporter.stats().failed, 3)
      await settle()
      assert.deepEqual(warnings.list.map((w) => w.code), ['SIDECARLESS_TRACING_EXPORT_FAILED'])
    } finally {
      warnings.stop()
      await collector.close()
    }
  })
})

describe('encoders', () => {
  test('OTLP attribute values: strings, int64 as strings, doubles, booleans, arrays, non-finite doubles', () => {
    const span = { ...fakeSpan(7), attributes: { s: 'x', n: 42, big: 2 ** 60, d: 1.5, b: false, a: [1, 2.5, null], nan: Number.NaN, inf: -Infinity } }
    const body = JSON.parse(encodeOtlp([span], { serviceName: 'svc', scopeName: 'sidecarless', scopeVersion: undefined })) as OtlpRequest
    const s = body.resourceSpans[0]!.scopeSpans[0]!
    assert.deepEqual(s.scope, { name: 'sidecarless' })
    assert.deepEqual(s.spans[0]!.attributes, [
      { key: 's', value: { stringValue: 'x' } },
      { key: 'n', value: { intValue: '42' } },
      { key: 'big', value: { doubleValue: 2 ** 60 } },
      { key: 'd', value: { doubleValue: 1.5 } },
      { key: 'b', value: { boolValue: false } },
      { key: 'a', value: { arrayValue: { values: [{ intValue: '1' }, { doubleValue: 2.5 }, {}] } } },
      { key: 'nan', value: { doubleValue: 'NaN' } },
      { key: 'inf', value: { doubleValue: '-Infinity' } },
    ])
    assert.equal(s.spans[0]!.kind, 1, 'SPAN_KIND_INTERNAL')
    assert.equal(s.spans[0]!.parentSpanId, undefined)
    assert.equal(s.spans[0]!.startTimeUnixNano, '1700000000007000000')
  })

  test('Zipkin: an `error` attribute on a span without error status is not sent (Zipkin would mark it failed)', () => {
    const span = { ...fakeSpan(1), kind: 'client' as const, attributes: { error: false, 'server.address': 'Reviews.default', 'server.port': 9080 } }
    const [z] = JSON.parse(encodeZipkin([span], { serviceName: 'svc', scopeName: 'sidecarless', scopeVersion: undefined })) as ZipkinSpan[]
    assert.equal(z?.tags['error'], undefined)
    assert.deepEqual(z?.remoteEndpoint, { serviceName: 'reviews.default', port: 9080 })
    const failed = { ...span, status: 'error' as const, statusMessage: 'boom' }
    const [f] = JSON.parse(encodeZipkin([failed], { serviceName: 'svc', scopeName: 'sidecarless', scopeVersion: undefined })) as ZipkinSpan[]
    assert.equal(f?.tags['error'], 'boom')
    assert.equal(f?.tags['otel.status_code'], 'ERROR')
  })
})

// ---------------------------------------------------------------- validation

describe('tracing.zipkin / tracing.otlp validation', () => {
  test('validateConfig reports a bad collector URL without a mesh', () => {
    assert.deepEqual(
      validateConfig({ tracing: { zipkin: 'ftp://127.0.0.1/spans', otlp: 'http://127.0.0.1:4318/v1/traces' } }).map((i) => [i.path, i.code]),
      [['tracing.zipkin', 'INVALID_VALUE']],
    )
  })

  function issuesOf(tracing: Record<string, unknown>): ConfigIssue[] {
    try {
      const mesh = createMesh({ config: { tracing } })
      void mesh.close()
    } catch (err) {
      assert.ok(err instanceof ConfigError, String(err))
      assert.equal(err.code, 'SIDECARLESS_ERR_INVALID_CONFIG')
      return [...err.issues]
    }
    return []
  }

  for (const bad of ['ftp://127.0.0.1/spans', 'not a url', '/api/v2/spans', '', 'file:///tmp/spans', 'http://user:secret@127.0.0.1:9411/api/v2/spans', 'https://:secret@collector/v1/traces']) {
    test(`zipkin: ${JSON.stringify(bad)} is refused with INVALID_VALUE at tracing.zipkin`, () => {
      const issues = issuesOf({ zipkin: bad })
      assert.deepEqual(issues.map((i) => [i.path, i.code]), [['tracing.zipkin', 'INVALID_VALUE']])
      assert.ok(!issues[0]!.message.includes('secret'), 'credentials are not repeated in the message')
    })
  }

  test('both bad: both listed; a non-string is INVALID_TYPE', () => {
    assert.deepEqual(issuesOf({ zipkin: 'ws://x/y', otlp: 'mailto:a@b' }).map((i) => [i.path, i.code]), [
      ['tracing.zipkin', 'INVALID_VALUE'],
      ['tracing.otlp', 'INVALID_VALUE'],
    ])
    assert.deepEqual(issuesOf({ zipkin: 9411 }).map((i) => [i.path, i.code]), [['tracing.zipkin', 'INVALID_TYPE']])
  })

  test('http and https URLs are accepted; null means not set', async () => {
    assert.deepEqual(issuesOf({ zipkin: 'http://127.0.0.1:9411/api/v2/spans', otlp: 'https://otel-collector.observability:4318/v1/traces?tenant=a' }), [])
    assert.deepEqual(issuesOf({ zipkin: null, otlp: null }), [])
    const mesh = createMesh({ config: { tracing: { zipkin: 'HTTP://Collector:9411/api/v2/spans#frag' } } })
    try {
      assert.equal(mesh.snapshot.tracing.zipkin, 'http://collector:9411/api/v2/spans', 'normalised, without the fragment')
      assert.equal(mesh.snapshot.tracing.otlp, undefined)
    } finally {
      await mesh.close()
    }
  })

  test('mesh.update() with a bad URL is rejected whole; the config in force stays', async () => {
    const mesh = createMesh({ config: { tracing: { zipkin: 'http://127.0.0.1:9411/api/v2/spans' } } })
    const rejected: ConfigError[] = []
    mesh.on('configRejected', (e) => rejected.push(e))
    try {
      const version = mesh.version
      await assert.rejects(mesh.update({ tracing: { zipkin: 'http://127.0.0.1:9411/api/v2/spans', otlp: 'udp://127.0.0.1:4318' } }), (err: unknown) => {
        assert.ok(err instanceof ConfigError)
        assert.deepEqual(err.issues.map((i) => [i.path, i.code]), [['tracing.otlp', 'INVALID_VALUE']])
        return true
      })
      assert.equal(rejected.length, 1)
      assert.equal(mesh.version, version)
      assert.equal(mesh.snapshot.tracing.zipkin, 'http://127.0.0.1:9411/api/v2/spans')
    } finally {
      await mesh.close()
    }
  })
})

// ---------------------------------------------------------------- config changes and the app's provider

describe('config changes', () => {
  test('moving the collector in mesh.update(): spans already queued still reach the old one', async () => {
    const first = await startCollector()
    const second = await startCollector()
    const mesh = createMesh({ config: meshConfig({ otlp: first.url('/v1/traces') }) })
    const server = mesh.createServer((_req, res) => res.end('ok'))
    const url = await listen(server)
    try {
      await (await request(`${url}/one`)).body.text()
      await mesh.update(meshConfig({ otlp: second.url('/v1/traces') }))
      await (await request(`${url}/two`)).body.text()
      await closeServer(server)
      await mesh.close()
      assert.deepEqual(otlpSpans(first).map((s) => attr(s, 'url.path')?.stringValue), ['/one'])
      assert.deepEqual(otlpSpans(second).map((s) => attr(s, 'url.path')?.stringValue), ['/two'])
    } finally {
      await closeServer(server)
      await mesh.close()
      await first.close()
      await second.close()
    }
  })
})

describe('an app-registered tracer provider', () => {
  test('exports our spans through the app\'s pipeline; the config lines do nothing and one warning says so', async () => {
    const collector = await startCollector()
    const memory = new InMemorySpanExporter()
    const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(memory)] })
    assert.ok(trace.setGlobalTracerProvider(provider))
    const warnings = captureWarnings()
    const mesh = createMesh({ config: meshConfig({ zipkin: collector.url('/api/v2/spans'), otlp: collector.url('/v1/traces') }) })
    const { url, server } = await frontend(mesh)
    try {
      for (let i = 0; i < 3; i++) await (await request(`${url}/api/${i}`)).body.text()
      await closeServer(server)
      await mesh.close()
      await settle()
      assert.equal(collector.received.length, 0)
      assert.deepEqual(mesh.tracing.exporters(), [])
      assert.equal(memory.getFinishedSpans().length, 6, 'server and client span of each request, in the app\'s exporter')
      assert.deepEqual(warnings.list.map((w) => w.code), ['SIDECARLESS_TRACING_EXPORT_IGNORED'])
    } finally {
      warnings.stop()
      trace.disable()
      await provider.shutdown()
      await closeServer(server)
      await mesh.close()
      await collector.close()
    }
  })
})
