/**
 * The app's own OpenTelemetry setup, as teams run it: `@opentelemetry/sdk-node` with
 * `auto-instrumentations-node` (instrumentation-http and -undici), exporting over OTLP.
 * A spawned app (test/fixtures/otel) runs two meshed services, frontend → backend; the
 * test's collector stand-in gets the app's spans. Whoever makes them (`tracing.spans`), a
 * hop has one server span and one client span, in one trace, and `mesh.context()` reports
 * that trace.
 */
import assert from 'node:assert/strict'
import { after, describe, test } from 'node:test'
import http from 'node:http'
import { request } from 'undici'
import { startCollector, type CollectorStandIn, type ReceivedSpan } from './helpers/otlp-collector.js'
import { start, stopAll } from './helpers/spawned.js'

after(() => stopAll())

interface Seen {
  frontend: { context: { traceId: string; spanId: string; parentSpanId?: string; route?: string }; active?: { traceId: string; spanId: string } }
  frontendAfter: { context?: { traceId: string } }
  backend: { context: { traceId: string; spanId: string; parentSpanId?: string }; active?: { traceId: string; spanId: string }; traceparent: string | string[] }
}

/** A POST with `Expect: 100-continue`, its body sent only once the server says 100. */
function postExpectingContinue(port: number): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: '/api/7', method: 'POST', headers: { expect: '100-continue', 'content-length': '4' } })
    req.on('continue', () => req.end('body'))
    req.on('response', (res) => {
      let body = ''
      res.setEncoding('utf8').on('data', (c: string) => (body += c)).on('end', () => resolve({ status: res.statusCode ?? 0, body }))
    })
    req.on('error', reject)
  })
}

async function runApp(env: Record<string, string>, headers: Record<string, string> = {}, expectContinue = false): Promise<{ seen: Seen; spans: ReceivedSpan[]; collector: CollectorStandIn }> {
  const collector = await startCollector()
  const app = start(process.execPath, ['--import', './test/fixtures/otel/setup.mjs', 'test/fixtures/otel/app.mjs'], {
    OTEL_EXPORTER_OTLP_ENDPOINT: collector.url(),
    OTEL_EXPORTER_OTLP_PROTOCOL: 'http/protobuf',
    OTEL_TRACES_EXPORTER: 'otlp',
    OTEL_METRICS_EXPORTER: 'none',
    OTEL_LOGS_EXPORTER: 'none',
    OTEL_SERVICE_NAME: 'shop',
    ...env,
  })
  const [, port] = await app.waitFor(/listening (\d+)/, 20_000)
  if (expectContinue) {
    assert.deepEqual(await postExpectingContinue(Number(port)), { status: 200, body: 'item' })
  } else {
    const res = await request(`http://127.0.0.1:${port}/api/7`, { headers })
    assert.equal(await res.body.text(), 'item')
    assert.equal(res.statusCode, 200)
  }
  app.child.kill('SIGUSR2')
  const [, json] = await app.waitFor(/seen (.*)/, 10_000)
  await app.waitFor(/done/, 15_000)
  const seen = JSON.parse(json!) as Seen
  await collector.close()
  // The HTTP spans of the hop; the app's other instrumentations (dns, net) add spans of their own.
  return { seen, spans: collector.spans().filter((s) => HTTP_SCOPES.has(s.scope ?? '')), collector }
}

const HTTP_SCOPES = new Set(['sidecarless', '@opentelemetry/instrumentation-http', '@opentelemetry/instrumentation-undici'])
const SERVER = 2
const CLIENT = 3
const kinds = (spans: ReceivedSpan[]): string => JSON.stringify(spans.map((s) => [s.scope, s.kind, s.name, s.spanId, s.parentSpanId]))

/** Every span in one trace, which mesh.context() reported on both services. */
function oneTrace(seen: Seen, spans: ReceivedSpan[]): string {
  const traceIds = new Set(spans.map((s) => s.traceId))
  assert.equal(traceIds.size, 1, `one trace: ${kinds(spans)}`)
  const [traceId] = traceIds
  assert.equal(seen.frontend.context.traceId, traceId, 'mesh.context() on the frontend reports the trace')
  assert.equal(seen.backend.context.traceId, traceId, 'mesh.context() on the backend reports the trace')
  assert.equal(seen.frontend.active?.traceId, traceId, 'the app\'s active span is in the same trace (logs and APM agree)')
  assert.equal(seen.frontendAfter.context?.traceId, traceId, 'mesh.context() still answers after the outbound call')
  assert.equal(typeof seen.backend.traceparent, 'string', 'exactly one traceparent reached the backend')
  return traceId as string
}

describe('with the OTel SDK and auto-instrumentations (instrumentation-http, -undici)', () => {
  test('spans: auto (default) — the instrumentation\'s spans only, one per hop side, one trace; mesh.context() reports them', async () => {
    const { seen, spans } = await runApp({})
    oneTrace(seen, spans)
    const servers = spans.filter((s) => s.kind === SERVER)
    const clients = spans.filter((s) => s.kind === CLIENT)
    assert.equal(servers.length, 2, `one server span per service: ${kinds(spans)}`)
    assert.equal(clients.length, 1, `one client span: ${kinds(spans)}`)
    assert.ok(spans.every((s) => s.scope !== 'sidecarless'), 'the mesh made no span of its own')
    const front = servers.find((s) => s.attributes['url.path'] === '/api/7')!
    const back = servers.find((s) => s.attributes['url.path'] === '/items/1')!
    const [client] = clients
    assert.equal(front.scope, '@opentelemetry/instrumentation-http')
    assert.equal(client!.scope, '@opentelemetry/instrumentation-undici')
    assert.equal(front.name, 'GET /api/{id}', 'the instrumentation named its span from the mesh\'s inbound route')
    assert.equal(front.attributes['http.route'], '/api/{id}')
    assert.equal(client!.parentSpanId, front.spanId)
    assert.equal(back.parentSpanId, client!.spanId)
    assert.equal(seen.frontend.context.spanId, front.spanId, 'mesh.context().spanId is the server span')
    assert.equal(seen.backend.context.spanId, back.spanId)
    assert.equal(seen.backend.context.parentSpanId, client!.spanId)
    assert.match(seen.backend.traceparent as string, new RegExp(`^00-${front.traceId}-${client!.spanId}-01$`))
  })

  test('spans: auto, the global fetch through mesh.installGlobal(): the same one trace', async () => {
    const { seen, spans } = await runApp({ GLOBAL_FETCH: '1' })
    oneTrace(seen, spans)
    assert.deepEqual(spans.map((s) => s.kind).sort(), [SERVER, SERVER, CLIENT].sort(), kinds(spans))
  })

  test('a caller\'s trace is continued', async () => {
    const traceId = '4bf92f3577b34da6a3ce929d0e0e4736'
    const { seen, spans } = await runApp({}, { traceparent: `00-${traceId}-00f067aa0ba902b7-01` })
    assert.equal(oneTrace(seen, spans), traceId)
    assert.equal(spans.find((s) => s.attributes['url.path'] === '/api/7')?.parentSpanId, '00f067aa0ba902b7')
  })

  test('spans: mesh — the mesh\'s spans only: the instrumentation is bypassed inbound and silenced outbound', async () => {
    const { seen, spans } = await runApp({ SPANS: 'mesh' })
    oneTrace(seen, spans)
    assert.ok(spans.every((s) => s.scope === 'sidecarless'), kinds(spans))
    const servers = spans.filter((s) => s.kind === SERVER)
    const clients = spans.filter((s) => s.kind === CLIENT)
    assert.equal(servers.length, 2, kinds(spans))
    assert.equal(clients.length, 1, kinds(spans))
    const front = servers.find((s) => s.attributes['url.path'] === '/api/7')!
    assert.equal(front.name, 'GET /api/{id}')
    assert.equal(front.resource['service.name'], 'shop', 'through the app\'s provider and resource')
    assert.equal(clients[0]!.parentSpanId, front.spanId)
    assert.equal(seen.frontend.context.spanId, front.spanId)
    assert.equal(seen.frontend.active?.spanId, front.spanId, 'the app\'s spans nest under the mesh\'s server span')
  })

  test('spans: both — both, nested, still one trace', async () => {
    const { seen, spans } = await runApp({ SPANS: 'both' })
    oneTrace(seen, spans)
    const byId = new Map(spans.map((s) => [s.spanId, s]))
    const chain = (s: ReceivedSpan): string[] => {
      const out: string[] = []
      for (let p: ReceivedSpan | undefined = s; p !== undefined; p = p.parentSpanId === undefined ? undefined : byId.get(p.parentSpanId)) out.unshift(`${p.scope === 'sidecarless' ? 'mesh' : 'app'}:${p.kind === SERVER ? 'server' : 'client'}`)
      return out
    }
    const deepest = spans.find((s) => s.scope === 'sidecarless' && s.kind === SERVER && s.attributes['url.path'] === '/items/1')!
    assert.deepEqual(chain(deepest), ['app:server', 'mesh:server', 'mesh:client', 'app:client', 'app:server', 'mesh:server'], kinds(spans))
    assert.equal(spans.length, 6)
    assert.equal(seen.backend.context.spanId, deepest.spanId, 'mesh.context() reports the mesh\'s span')
  })

  test('an Expect: 100-continue request still has one server span per hop side, in one trace', async () => {
    const { seen, spans } = await runApp({}, {}, true)
    oneTrace(seen, spans)
    const front = spans.filter((s) => s.kind === SERVER && s.attributes['url.path'] === '/api/7')
    assert.equal(front.length, 1, `one server span for the frontend: ${kinds(spans)}`)
    assert.equal(spans.filter((s) => s.kind === SERVER).length, 2, kinds(spans))
  })
})
