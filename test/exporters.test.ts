/**
 * Span export through OpenTelemetry's own exporters, to a collector stand-in that decodes
 * what real collectors receive (OTLP protobuf and JSON, gzip, Zipkin v2, OTLP/gRPC); a
 * meshed server calls a real upstream through `mesh.fetch`. The standard OTEL_* variables
 * are set on `process.env` around the meshes that read them (this file runs in its own
 * process, its tests one after another).
 */
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { once } from 'node:events'
import type http from 'node:http'
import type { AddressInfo } from 'node:net'
import { after, before, describe, test } from 'node:test'
import { promisify } from 'node:util'
import { trace } from '@opentelemetry/api'
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base'
import { Agent, request } from 'undici'
import { ConfigError, createMesh, defaults, validateConfig, type ConfigIssue, type Mesh } from '../src/index.js'
import { startCollector, startGrpcCollector, type ReceivedSpan } from './helpers/otlp-collector.js'
import { echo, startUpstream, type Upstream } from './helpers/upstream.js'

// Sampled (bit 0); the random-trace-id flag (bit 1) is set when the mesh started the trace.
const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-0[13]$/
const run = promisify(execFile)

/** Collects process warnings with a code starting `SIDECARLESS_TRACING`. */
function captureWarnings(): { readonly list: (Error & { code?: string })[]; stop(): void } {
  const list: (Error & { code?: string })[] = []
  const on = (w: Error & { code?: string }): void => {
    if (w.code?.startsWith('SIDECARLESS_TRACING') === true) list.push(w)
  }
  process.on('warning', on)
  return { list, stop: () => process.off('warning', on) }
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

/** Runs `fn` with `vars` in process.env, restoring what was there. */
async function withEnv<T>(vars: Record<string, string>, fn: () => Promise<T>): Promise<T> {
  const saved = Object.fromEntries(Object.keys(vars).map((k) => [k, process.env[k]]))
  Object.assign(process.env, vars)
  try {
    return await fn()
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k]
      else process.env[k] = v
    }
  }
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
    listener: { routes: [{ name: '/api/{id}', match: { prefix: '/api/' } }] },
    ...extra,
  }
}

/** A meshed server whose handler calls the backend through the mesh. */
async function frontend(mesh: Mesh): Promise<{ url: string; server: http.Server }> {
  const server = mesh.createServer(async (req, res) => {
    const upstream = await mesh.fetch(`http://backend${req.url === '/fail' ? '/fail' : '/items?id=1'}`)
    res.end(await upstream.text())
  })
  return { url: await listen(server), server }
}

/** Sends `n` requests to a fresh meshed frontend, then closes server and mesh (which flushes the spans). */
async function traffic(mesh: Mesh, paths: string[]): Promise<string[]> {
  const { url, server } = await frontend(mesh)
  const seen: string[] = []
  try {
    for (const p of paths) {
      const before = backend.seen.length
      const res = await request(`${url}${p}`)
      await res.body.text()
      seen.push(String(backend.seen[before]?.headers.traceparent))
    }
  } finally {
    await closeServer(server)
    await mesh.close()
  }
  return seen
}

const byKind = (spans: readonly ReceivedSpan[], kind: number): ReceivedSpan[] => spans.filter((s) => s.kind === kind)

// ---------------------------------------------------------------- loaded only when configured

describe('the exporters are loaded only when a collector is configured', () => {
  test('importing the package and serving sampled requests loads no exporter; naming a collector loads its one', async () => {
    const script = `
      import { createRequire } from 'node:module'
      import { createMesh } from './build/src/index.js'
      const loaded = () => Object.keys(createRequire(import.meta.url).cache).filter((k) => /@opentelemetry[\\/](exporter|otlp)/.test(k)).length
      const counts = [loaded()]
      const mesh = createMesh({ config: { tracing: { sampling: 100 } } })
      const server = mesh.createServer((req, res) => res.end('ok'))
      await new Promise((r) => server.listen(0, '127.0.0.1', r))
      await fetch('http://127.0.0.1:' + server.address().port + '/')
      counts.push(mesh.tracing.recent().length, loaded())
      await mesh.update({ tracing: { sampling: 100, otlp: 'http://127.0.0.1:9/v1/traces' } })
      await fetch('http://127.0.0.1:' + server.address().port + '/')
      counts.push(loaded())
      server.close(); await mesh.close(true)
      console.log(JSON.stringify(counts))
    `
    const { stdout } = await run(process.execPath, ['--input-type=module', '-e', script], { cwd: new URL('../..', import.meta.url).pathname })
    const [atImport, recorded, afterSampled, afterOtlp] = JSON.parse(stdout) as number[]
    assert.equal(atImport, 0, 'importing sidecarless loads no exporter')
    assert.equal(recorded, 1, 'the request was sampled and recorded')
    assert.equal(afterSampled, 0, 'recording spans without a collector loads no exporter')
    assert.ok(afterOtlp! > 0, 'the OTLP exporter was loaded once a collector was named')
  })
})

// ---------------------------------------------------------------- OTLP

describe('otlp', () => {
  test('mesh.close() sends what is queued and closes the exporter, without sitting out the 10 s export bound', async () => {
    // The processor shuts its exporter down last; the mesh's counting exporter once handed
    // that back to the processor itself, which then waited on itself until the bound fired:
    // every close() with a collector took 10 s. A deadlock check, not a speed target: the
    // close takes milliseconds, the bound is 10 s.
    const collector = await startCollector()
    const mesh = createMesh({ service: 'frontend', config: meshConfig({ otlp: collector.url('/v1/traces') }) })
    const { url, server } = await frontend(mesh)
    const res = await request(`${url}/api/1`)
    await res.body.text()
    await closeServer(server)
    const started = performance.now()
    await mesh.close()
    const took = performance.now() - started
    assert.ok(took < defaults.traceExportTimeoutMs / 2, `close() took ${took.toFixed(0)} ms; the export bound is ${defaults.traceExportTimeoutMs} ms`)
    assert.equal(collector.spans().length, 2, 'the queued spans were sent before close() resolved')
    await collector.close()
  })

  test('default http/protobuf: one trace, semantic-convention names, the workload on the resource, sub-millisecond times', async () => {
    const collector = await startCollector()
    const mesh = createMesh({ service: 'frontend', labels: { version: 'v2' }, config: meshConfig({ otlp: collector.url('/v1/traces') }) })
    const t0 = Date.now()
    const [sent] = await traffic(mesh, ['/api/7', '/other'])
    const t1 = Date.now()
    const spans = collector.spans()
    assert.equal(spans.length, 4, JSON.stringify(collector.requests.map((r) => r.spans.map((s) => s.name))))
    assert.ok(collector.requests.every((r) => r.encoding === 'protobuf'), 'protobuf by default, as the OTel spec says')
    assert.equal(collector.requests[0]!.headers['content-type'], 'application/x-protobuf')
    assert.match(String(collector.requests[0]!.headers['user-agent']), /OTel-OTLP-Exporter-JavaScript/)
    assert.equal(collector.requests[0]!.headers.traceparent, undefined, 'the export request carries no trace')

    const servers = byKind(spans, 2)
    const clients = byKind(spans, 3)
    assert.deepEqual(servers.map((s) => s.name).sort(), ['GET', 'GET /api/{id}'], 'HTTP semantic conventions: method and route')
    const api = servers.find((s) => s.name === 'GET /api/{id}')!
    assert.equal(api.attributes['http.route'], '/api/{id}')
    assert.equal(servers.find((s) => s.name === 'GET')!.attributes['http.route'], undefined, 'no route: no http.route')
    const client = clients.find((c) => c.traceId === api.traceId)!
    assert.ok(client, 'the client span is in the server span\'s trace')
    assert.equal(client.parentSpanId, api.spanId)
    const tp = TRACEPARENT.exec(sent!)
    assert.ok(tp)
    assert.deepEqual([tp[1], tp[2]], [client.traceId, client.spanId], 'the backend saw the client span as its parent')

    for (const s of spans) {
      assert.equal(s.resource['service.name'], 'frontend')
      assert.equal(s.resource['service.version'], 'v2', 'the version label is service.version')
      assert.equal(s.resource['telemetry.sdk.name'], 'opentelemetry')
      assert.equal(s.scope, 'sidecarless')
      assert.ok(s.startTimeUnixNano >= BigInt(t0 - 5) * 1_000_000n && s.endTimeUnixNano <= BigInt(t1 + 5) * 1_000_000n, `${s.startTimeUnixNano} within [${t0}, ${t1}] ms`)
      assert.ok(s.endTimeUnixNano >= s.startTimeUnixNano)
    }
    assert.ok(client.startTimeUnixNano >= api.startTimeUnixNano && client.endTimeUnixNano <= api.endTimeUnixNano, 'the client span lies inside the server span')
    // Date.now() would give whole milliseconds: all four starts and ends on a millisecond has odds of 1e-24.
    assert.ok(spans.some((s) => s.startTimeUnixNano % 1_000_000n !== 0n) && spans.some((s) => s.endTimeUnixNano % 1_000_000n !== 0n), 'sub-millisecond (whole-microsecond) start and end times')
    assert.deepEqual(mesh.tracing.exporters().map((e) => [e.format, e.protocol, e.exported, e.failed, e.dropped, e.queued]), [['otlp', 'http/protobuf', 4, 0, 0, 0]])
    await collector.close()
  })

  test('otlpProtocol http/json; a URL without a path gets /v1/traces', async () => {
    const collector = await startCollector()
    const mesh = createMesh({ service: 'frontend', config: meshConfig({ otlp: collector.url(), otlpProtocol: 'http/json' }) })
    await traffic(mesh, ['/api/1'])
    assert.equal(collector.spans().length, 2)
    assert.deepEqual(collector.requests.map((r) => [r.path, r.encoding]), [['/v1/traces', 'json']])
    await collector.close()
  })

  test('OTEL_EXPORTER_OTLP_HEADERS, _COMPRESSION=gzip, OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES are honoured', async () => {
    const collector = await startCollector()
    await withEnv({
      OTEL_EXPORTER_OTLP_HEADERS: 'x-api-key=s3cr3t,x-tenant=blue',
      OTEL_EXPORTER_OTLP_COMPRESSION: 'gzip',
      OTEL_SERVICE_NAME: 'frontend-from-env',
      OTEL_RESOURCE_ATTRIBUTES: 'deployment.environment.name=staging,service.name=ignored',
    }, async () => {
      const mesh = createMesh({ service: 'frontend', config: meshConfig({ otlp: collector.url('/v1/traces') }) })
      await traffic(mesh, ['/api/1'])
    })
    const [req] = collector.requests
    assert.ok(req)
    assert.equal(req.headers['x-api-key'], 's3cr3t')
    assert.equal(req.headers['x-tenant'], 'blue')
    assert.equal(req.gzip, true, 'gzip-compressed body')
    assert.equal(collector.spans().length, 2)
    for (const s of collector.spans()) {
      assert.equal(s.resource['service.name'], 'frontend-from-env', 'OTEL_SERVICE_NAME wins')
      assert.equal(s.resource['deployment.environment.name'], 'staging')
    }
    await collector.close()
  })

  test('no config lines: OTEL_EXPORTER_OTLP_ENDPOINT names the collector, OTEL_TRACES_SAMPLER=always_on samples', async () => {
    const collector = await startCollector()
    await withEnv({ OTEL_EXPORTER_OTLP_ENDPOINT: collector.url(), OTEL_TRACES_SAMPLER: 'always_on' }, async () => {
      const config = meshConfig({})
      delete (config.tracing as { sampling?: number }).sampling
      const mesh = createMesh({ service: 'frontend', config })
      assert.equal(mesh.snapshot.tracing.samplingRatio, 1)
      await traffic(mesh, ['/api/1', '/api/2'])
      assert.deepEqual(mesh.tracing.exporters().map((e) => [e.format, e.url, e.exported]), [['otlp', '(from OTEL_* environment)', 4]])
    })
    assert.deepEqual([...new Set(collector.requests.map((r) => r.path))], ['/v1/traces'])
    assert.equal(collector.spans().length, 4)
    await collector.close()
  })

  test('OTEL_TRACES_SAMPLER=parentbased_traceidratio with _ARG=0 samples no new trace but honours a sampled caller', async () => {
    await withEnv({ OTEL_TRACES_SAMPLER: 'parentbased_traceidratio', OTEL_TRACES_SAMPLER_ARG: '0' }, async () => {
      const mesh = createMesh({ config: { tracing: { recentSpans: 10 } } })
      assert.equal(mesh.snapshot.tracing.samplingRatio, 0)
      const server = mesh.createServer((_req, res) => res.end('ok'))
      const url = await listen(server)
      try {
        await (await request(url)).body.text()
        assert.equal(mesh.tracing.recent().length, 0)
        await (await request(url, { headers: { traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01' } })).body.text()
        await settle()
        assert.deepEqual(mesh.tracing.recent().map((s) => s.traceId), ['4bf92f3577b34da6a3ce929d0e0e4736'])
      } finally {
        await closeServer(server)
        await mesh.close()
      }
    })
  })

  test('a collector answering 503 gets the batch again (the exporter\'s retry); nothing counts as failed', async () => {
    const collector = await startCollector()
    collector.failNext(1, 503)
    const mesh = createMesh({ service: 'frontend', config: meshConfig({ otlp: collector.url('/v1/traces') }) })
    await traffic(mesh, ['/api/1'])
    assert.deepEqual(collector.requests.map((r) => r.status), [503, 200])
    assert.deepEqual(collector.requests[1]!.spans.map((s) => s.spanId).sort(), collector.requests[0]!.spans.map((s) => s.spanId).sort(), 'the same spans, sent again')
    assert.deepEqual(mesh.tracing.exporters().map((e) => [e.exported, e.failed]), [[2, 0]])
    await collector.close()
  })

  test('grpc: OTLP over gRPC to a grpc-js TraceService', async () => {
    const collector = await startGrpcCollector()
    const mesh = createMesh({ service: 'frontend', config: meshConfig({ otlp: collector.url, otlpProtocol: 'grpc' }) })
    await traffic(mesh, ['/api/1'])
    const spans = collector.requests.flatMap((r) => r.spans)
    assert.deepEqual(spans.map((s) => s.name).sort(), ['GET', 'GET /api/{id}'])
    assert.equal(spans[0]!.resource['service.name'], 'frontend')
    assert.deepEqual(mesh.tracing.exporters().map((e) => [e.format, e.protocol, e.exported]), [['otlp', 'grpc', 2]])
    await collector.close()
  })
})

// ---------------------------------------------------------------- Zipkin

describe('zipkin', () => {
  test('tracing.zipkin: Zipkin v2 JSON from OpenTelemetry\'s Zipkin exporter, one trace', async () => {
    const collector = await startCollector()
    const mesh = createMesh({ service: 'frontend', labels: { version: 'v1' }, config: meshConfig({ zipkin: collector.url('/api/v2/spans') }) })
    const [sent] = await traffic(mesh, ['/api/3'])
    const spans = collector.spans()
    assert.deepEqual(collector.requests.map((r) => [r.path, r.encoding, r.headers['content-type']]), [['/api/v2/spans', 'zipkin', 'application/json']])
    const [server] = byKind(spans, 2)
    const [client] = byKind(spans, 3)
    assert.ok(server && client)
    assert.equal(server.name, 'GET /api/{id}')
    assert.equal(client.parentSpanId, server.spanId)
    assert.equal(TRACEPARENT.exec(sent!)?.[2], client.spanId)
    assert.equal(server.resource['service.name'], 'frontend')
    assert.equal(server.attributes['http.route'], '/api/{id}')
    await collector.close()
  })
})

// ---------------------------------------------------------------- isolation of export traffic

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
    const direct = new Agent()
    const { url, server } = await frontend(mesh)
    try {
      for (let i = 0; i < 3; i++) await (await request(`${url}/api/${i}`, { dispatcher: direct })).body.text()
      // One timed export while the requests' contexts are gone, then the rest at close.
      await settle(1_300)
      await (await request(`${url}/api/last`, { dispatcher: direct })).body.text()
      await closeServer(server)
      await mesh.close()
      assert.equal(trap.seen.length, 0, 'the mesh\'s route for the collector\'s authority was never used')
      for (const r of collector.requests) {
        assert.equal(r.headers.traceparent, undefined)
        assert.equal(r.headers['x-request-id'], undefined)
      }
      const zipkin = collector.requests.filter((r) => r.encoding === 'zipkin').flatMap((r) => r.spans)
      const otlp = collector.requests.filter((r) => r.encoding === 'protobuf').flatMap((r) => r.spans)
      assert.equal(zipkin.length, 8, 'server and client span of four requests, nothing else')
      assert.equal(otlp.length, 8)
      assert.ok(otlp.every((s) => s.attributes['server.port'] !== collector.port), 'no span for an export request')
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
  test('collector answers 500 (not retried): one warning, spans counted as failed, requests unaffected', async () => {
    const collector = await startCollector()
    collector.failNext(100, 500)
    const warnings = captureWarnings()
    const mesh = createMesh({ service: 'frontend', config: meshConfig({ zipkin: collector.url('/api/v2/spans?token=s3cr3t'), otlp: collector.url('/v1/traces') }) })
    try {
      await traffic(mesh, ['/api/1', '/api/2'])
      await settle()
      assert.deepEqual(mesh.tracing.exporters().map((e) => [e.format, e.exported, e.failed]).sort(), [['otlp', 0, 4], ['zipkin', 0, 4]])
      assert.deepEqual(warnings.list.map((w) => w.code), ['SIDECARLESS_TRACING_EXPORT_FAILED', 'SIDECARLESS_TRACING_EXPORT_FAILED'], 'one per collector')
      assert.ok(warnings.list.every((w) => !w.message.includes('s3cr3t')), 'the query string (a token) is not repeated')
    } finally {
      warnings.stop()
      await collector.close()
    }
  })

  test('collector down: requests are answered; close() is bounded', async () => {
    const collector = await startCollector()
    const url = collector.url('/v1/traces')
    await collector.close()
    const warnings = captureWarnings()
    await withEnv({ OTEL_EXPORTER_OTLP_TIMEOUT: '1000' }, async () => {
      const mesh = createMesh({ service: 'frontend', config: meshConfig({ otlp: url }) })
      const started = performance.now()
      await traffic(mesh, ['/api/1'])
      assert.ok(performance.now() - started < 15_000)
      assert.equal(mesh.tracing.exporters()[0]!.exported, 0)
    })
    warnings.stop()
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

  test('tracing.spans and tracing.otlpProtocol take their enums only', () => {
    assert.deepEqual(issuesOf({ spans: 'sidecar', otlpProtocol: 'http/xml' }).map((i) => [i.path, i.code]).sort(), [
      ['tracing.otlpProtocol', 'INVALID_VALUE'],
      ['tracing.spans', 'INVALID_VALUE'],
    ].sort())
    assert.deepEqual(issuesOf({ spans: 'both', otlpProtocol: 'grpc', otlp: 'http://127.0.0.1:4317' }), [])
  })

  test('OTEL_TRACES_SAMPLER_ARG out of range: a warning, and the OTel SDK\'s fallback of 1', async () => {
    const seen: string[] = []
    const on = (w: Error & { code?: string }): void => void (w.code === 'SIDECARLESS_OTEL_ENV_IGNORED' && seen.push(w.message))
    process.on('warning', on)
    try {
      await withEnv({ OTEL_TRACES_SAMPLER: 'traceidratio', OTEL_TRACES_SAMPLER_ARG: '7' }, async () => {
        const mesh = createMesh({ config: {} })
        assert.equal(mesh.snapshot.tracing.samplingRatio, 1)
        assert.equal(mesh.snapshot.tracing.parentBased, false, 'traceidratio is not parent-based')
        await mesh.close()
      })
      await withEnv({ OTEL_TRACES_SAMPLER: 'jaeger_remote' }, async () => {
        const mesh = createMesh({ config: {} })
        assert.equal(mesh.snapshot.tracing.samplingRatio, 0.01, 'Istio\'s default when the sampler cannot be applied')
        await mesh.close()
      })
      const mesh = createMesh({ config: { tracing: { sampling: 50 } } })
      assert.equal(mesh.snapshot.tracing.samplingRatio, 0.5, 'tracing.sampling wins over the environment')
      await mesh.close()
      await settle()
      assert.equal(seen.length, 2, seen.join('\n'))
    } finally {
      process.off('warning', on)
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
      assert.deepEqual(first.spans().map((s) => s.attributes['url.path']), ['/one'])
      assert.deepEqual(second.spans().map((s) => s.attributes['url.path']), ['/two'])
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
    try {
      await traffic(mesh, ['/api/1', '/api/2', '/api/3'])
      await settle()
      assert.equal(collector.requests.length, 0)
      assert.deepEqual(mesh.tracing.exporters(), [])
      assert.equal(memory.getFinishedSpans().length, 6, 'server and client span of each request, in the app\'s exporter')
      assert.deepEqual(warnings.list.map((w) => w.code), ['SIDECARLESS_TRACING_EXPORT_IGNORED'])
    } finally {
      warnings.stop()
      trace.disable()
      await provider.shutdown()
      await collector.close()
    }
  })
})
