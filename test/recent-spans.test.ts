/**
 * The recent-span store without the OpenTelemetry SDK: while no collector is configured the
 * mesh records its spans with a tracer of its own (`recording-span.ts`), and what the store
 * shows must be exactly what the SDK's spans gave. Each scenario runs twice, through the
 * store's tracer and through the SDK (forced by setting one of the SDK's span-limit
 * variables to its default value, which changes nothing else), and the records must match
 * field by field (ids replaced by their order of appearance; times are given explicitly).
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { SpanKind, SpanStatusCode, type Attributes, type AttributeValue, type HrTime, type Span } from '@opentelemetry/api'
import { MeshTracer, type FinishedSpan, type TracingSettings } from '../src/observability/tracing.js'

const settings: TracingSettings = {
  extract: ['w3c'],
  inject: ['w3c'],
  samplingRatio: 1,
  parentBased: true,
  recentSpans: 100,
  zipkin: undefined,
  otlp: undefined,
  otlpProtocol: undefined,
  spans: 'mesh',
}

const TRACE = '0af7651916cd43dd8448eb211c80319c'
const CALLER = 'b7ad6b7169203331'
/** Ten seconds from now: ends given from here are after every start of the test. */
const START: HrTime = [Math.floor(Date.now() / 1000) + 10, 123_456_000]
const at = (ms: number): HrTime => [START[0] + Math.floor(ms / 1000), START[1] + (ms % 1000) * 1e6]

/** Every scenario: spans started through the tracer and worked on as the mesh and an app would. */
function scenarios(tracer: MeshTracer): void {
  // A server span continuing a caller's trace, with a tracestate; attributes of every kind.
  const server = tracer.startServer({ traceId: TRACE, spanId: CALLER, sampled: true, traceState: 'vendor=a,other=b', format: 'w3c', random: true }, settings, 'GET /items',
    () => ({ 'http.request.method': 'GET', list: ['a', 'b'], mixed: [1, 'x'] as unknown as AttributeValue, nothing: null as unknown as AttributeValue, '': 'empty key', holes: [null, 2, undefined, 3] }),
    performance.now()).span as Span
  assert.ok(server !== undefined, 'a sampled server span records')
  server.setAttribute('http.response.status_code', 200)
  server.setAttribute('bad', { an: 'object' } as unknown as AttributeValue)
  server.setAttribute('gone', undefined as unknown as AttributeValue)
  server.setAttributes({ a: 1, b: true, c: [true, false] })
  server.addEvent('ignored by the record', { k: 'v' })
  server.recordException(new Error('recorded as an event'))
  server.updateName('GET /items/{id}')
  server.setStatus({ code: SpanStatusCode.ERROR, message: 'upstream failed' })
  server.setStatus({ code: SpanStatusCode.UNSET })

  // A client span under it, ended with an error; then an OK status that is final.
  const client = tracer.startClient(undefined, server, settings, 'GET', () => ({ 'server.address': 'reviews' })).span as Span
  client.setStatus({ code: SpanStatusCode.OK, message: 'dropped: only ERROR keeps a message' })
  client.setStatus({ code: SpanStatusCode.ERROR, message: 'ignored: OK is final' })
  client.end(at(5))
  // Nothing changes an ended span; a second end is ignored.
  client.setAttribute('late', 1)
  client.updateName('late')
  client.end(at(9))

  // More attributes than the limit (128): the first ones stay, a known key still updates.
  const root = tracer.startServer(undefined, settings, 'root', () => ({}), performance.now()).span as Span
  for (let i = 0; i < 140; i++) root.setAttribute(`k${i}`, i)
  root.setAttribute('k0', 'updated')
  root.setStatus({ code: SpanStatusCode.ERROR, message: 42 as unknown as string })
  root.end(at(20))

  // An end before the start: duration 0, end = start.
  const backwards = tracer.startServer(undefined, settings, 'backwards', () => ({}), performance.now()).span as Span
  backwards.end([START[0] - 20, 0])
  server.end(at(1500))
}

/** The store after the scenarios, ids replaced by their order of appearance. */
function record(viaSdk: boolean): { spans: FinishedSpan[] } {
  const name = 'OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT'
  const saved = process.env[name]
  if (viaSdk) process.env[name] = '128'
  else delete process.env[name]
  try {
    const tracer = new MeshTracer({ serviceName: 'svc', env: {} })
    scenarios(tracer)
    const ids = new Map<string, string>()
    const id = (v: string | undefined): string | undefined => v === undefined ? undefined : (ids.get(v) ?? (ids.set(v, `id${ids.size}`), `id${ids.size - 1}`))
    const spans = tracer.recent().map((s) => ({
      ...s,
      traceId: id(s.traceId) as string,
      spanId: id(s.spanId) as string,
      parentSpanId: id(s.parentSpanId),
      // Start times come from performance.now() through the same clock in both runs, to the
      // microsecond; compare the parts that do not depend on when the test ran.
      startTime: 0,
      startTimeUnixNano: '',
      endTimeUnixNano: s.endTimeUnixNano.length > 0 ? 'set' : '',
      durationMs: s.durationMs === 0 ? 0 : s.durationMs > 5 ? 1 : -1,
    }))
    return { spans }
  } finally {
    if (saved === undefined) delete process.env[name]
    else process.env[name] = saved
  }
}

test('the store\'s own spans record exactly what the SDK\'s spans recorded', () => {
  const own = record(false)
  const sdk = record(true)
  assert.equal(own.spans.length, 4)
  assert.deepEqual(own.spans, sdk.spans)
  // And what that is, spelled out for the first span.
  const server = own.spans.find((s) => s.name === 'GET /items/{id}')
  assert.deepEqual(server?.attributes, { 'http.request.method': 'GET', list: ['a', 'b'], holes: [null, 2, undefined, 3], 'http.response.status_code': 200, a: 1, b: true, c: [true, false] })
  assert.equal(server?.status, 'error')
  assert.equal(server?.statusMessage, 'upstream failed')
  assert.equal(server?.traceState, 'vendor=a,other=b')
  assert.equal(server?.parentIsRemote, true)
  assert.equal(server?.kind, 'server')
  const client = own.spans.find((s) => s.kind === 'client')
  assert.equal(client?.status, 'ok')
  assert.equal(client?.statusMessage, undefined)
  assert.equal(client?.parentSpanId, server?.spanId)
  assert.equal(Object.keys(own.spans.find((s) => s.name === 'root')?.attributes ?? {}).length, 128)
})

test('times: start and end as given, to the nanosecond, and the duration between them', () => {
  for (const viaSdk of [false, true]) {
    const name = 'OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT'
    if (viaSdk) process.env[name] = '128'
    try {
      const tracer = new MeshTracer({ env: {} })
      const perf = performance.now()
      const span = tracer.startServer(undefined, settings, 't', (): Attributes => ({}), perf).span as Span
      span.end(at(1250))
      const [s] = tracer.recent()
      assert.ok(s !== undefined)
      const startNs = BigInt(s.startTimeUnixNano)
      assert.equal(BigInt(s.endTimeUnixNano), BigInt(at(1250)[0]) * 1_000_000_000n + BigInt(at(1250)[1]), `end as given (${viaSdk ? 'SDK' : 'store'})`)
      assert.ok(Math.abs(s.durationMs - Number(BigInt(s.endTimeUnixNano) - startNs) / 1e6) < 1e-6, 'duration is end minus start')
      assert.ok(Math.abs(s.startTime - Number(startNs / 1000n) / 1000) < 1, 'startTime is the start in epoch ms')
    } finally {
      delete process.env[name]
    }
  }
})

test('a span the mesh starts through its own tracer is a real OTel span: context, recording flag, kind', () => {
  const tracer = new MeshTracer({ env: {} })
  const start = tracer.startServer(undefined, settings, 'k', () => ({}), performance.now())
  const span = start.span as Span
  assert.equal(span.isRecording(), true)
  assert.equal(span.spanContext().traceId, start.traceId)
  assert.equal(span.spanContext().spanId, start.spanId)
  assert.equal(span.spanContext().traceFlags & 1, 1)
  assert.equal(start.random, true, 'a trace the mesh starts has random ids')
  MeshTracer.end(span, 503, undefined, 'server')
  assert.equal(span.isRecording(), false)
  const [s] = tracer.recent()
  assert.deepEqual([s?.kind, s?.status, s?.attributes['error.type'], s?.attributes['http.response.status_code']], ['server', 'error', '503', 503])
  assert.equal(SpanKind.SERVER, 1)
})
