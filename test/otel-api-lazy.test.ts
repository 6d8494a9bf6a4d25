/**
 * `@opentelemetry/api` loads on first use (`src/observability/otel-api.ts`): a mesh whose
 * app registers nothing with OpenTelemetry serves and calls, its spans recorded into the
 * recent-span store, without loading the API; an app that registers its SDK after the mesh
 * was created gets, from its next request on, what it got when it registered first (the
 * mesh's spans through its provider, its spans nested under the mesh's, `mesh.context()`
 * from OTel's context). Checked in fresh processes that record every module they resolve
 * (ES imports and `require` alike) and read `require.cache`, for both builds: tsc's
 * build/src/ and the package's bundle (dist/). Then the mesh's stand-ins for the API's parts
 * (its enum values, `createTraceState`) are checked against the API itself.
 */
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { createTraceState, SpanKind, SpanStatusCode, TraceFlags } from '@opentelemetry/api'
import {
  SPAN_KIND_CLIENT,
  SPAN_KIND_SERVER,
  STATUS_ERROR,
  STATUS_OK,
  STATUS_UNSET,
  TRACE_FLAGS_NONE,
  TRACE_FLAGS_SAMPLED,
} from '../src/observability/otel-api.js'
import { W3cTraceState } from '../src/observability/trace-state.js'

const BUILDS = {
  'build/src': fileURLToPath(new URL('../src/index.js', import.meta.url)),
  dist: fileURLToPath(new URL('../../dist/index.js', import.meta.url)),
} as const
type Build = keyof typeof BUILDS

/**
 * Runs `body` (an ES module's top level, `INDEX` standing for the build's index) in a fresh
 * node. `apiLoaded()` in the body tells whether the API was resolved or required so far.
 */
function run(build: Build, body: string): unknown {
  const script = `
import { registerHooks, createRequire } from 'node:module'
const urls = new Set()
registerHooks({
  resolve(specifier, context, next) {
    const r = next(specifier, context)
    urls.add(r.url)
    return r
  },
})
const API = /node_modules\\/@opentelemetry\\/api\\//
const apiLoaded = () => [...urls].some((u) => API.test(u)) || Object.keys(createRequire(import.meta.url).cache).some((f) => API.test(f))
const result = await (async () => { ${body.replaceAll('INDEX', JSON.stringify(BUILDS[build]))} })()
console.log(JSON.stringify(result))
`
  const out = execFileSync(process.execPath, ['--disable-warning=SIDECARLESS_UNSUPPORTED_NODE', '--input-type=module', '-e', script], { encoding: 'utf8', cwd: fileURLToPath(new URL('../..', import.meta.url)) })
  return JSON.parse(out.trim().split('\n').at(-1) as string)
}

/** An upstream, and a mesh (sampling every request) serving an app that calls it through the mesh. */
const SETUP = `
const sc = await import(INDEX)
const http = await import('node:http')
const listen = async (s) => { s.listen(0, '127.0.0.1'); await new Promise((r) => s.once('listening', r)); return s.address().port }
const upstream = http.createServer((req, res) => res.end(String(req.headers.traceparent))).listen(0, '127.0.0.1')
await new Promise((r) => upstream.once('listening', r))
const mesh = sc.createMesh({ config: {
  clusters: [{ name: 'c', endpoints: [{ address: 'http://127.0.0.1:' + upstream.address().port }] }],
  virtualHosts: [{ name: 'c', domains: ['c'], routes: [{ match: { prefix: '/' }, route: { cluster: 'c' } }] }],
  tracing: { sampling: 100 },
} })
let onRequest = async () => undefined
const server = mesh.createServer(async (req, res) => {
  const extra = await onRequest()
  const sent = await (await mesh.fetch('http://c/')).text()
  res.end(JSON.stringify({ sent, context: mesh.context()?.toJSON(), extra }))
})
const port = await listen(server)
const call = async (headers = {}) => JSON.parse(await (await fetch('http://127.0.0.1:' + port + '/', { headers })).text())
const close = async () => { server.close(); upstream.close(); await mesh.close() }
`

/** One test per build. */
function both(name: string, fn: (build: Build) => void): void {
  for (const build of Object.keys(BUILDS) as Build[]) test(`${name} (${build})`, () => fn(build))
}

both('a mesh whose app registers nothing with OpenTelemetry serves and calls, traced, without loading @opentelemetry/api', (build) => {
  const result = run(build, `${SETUP}
const traceparent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'
const first = await call({ traceparent, tracestate: 'b=2, a=1' })
const second = await call()
await close()
const spans = mesh.tracing.recent().map((s) => ({ kind: s.kind, traceState: s.traceState ?? null, parentIsRemote: s.parentIsRemote }))
return { traced: first.context.traceId, sent: first.sent.slice(3, 35), second: second.context.sampled, spans, api: apiLoaded() }`) as Record<string, unknown>
  assert.equal(result['traced'], '4bf92f3577b34da6a3ce929d0e0e4736', 'the caller\'s trace is continued')
  assert.equal(result['sent'], '4bf92f3577b34da6a3ce929d0e0e4736', 'and propagated upstream')
  assert.equal(result['second'], true)
  assert.deepEqual(result['spans'], [
    { kind: 'client', traceState: 'b=2,a=1', parentIsRemote: false },
    { kind: 'server', traceState: 'b=2,a=1', parentIsRemote: true },
    { kind: 'client', traceState: null, parentIsRemote: false },
    { kind: 'server', traceState: null, parentIsRemote: false },
  ], 'the spans are in the store, the tracestate as the API would parse it')
  assert.equal(result['api'], false, '@opentelemetry/api was loaded')
})

both('an app that registers its OpenTelemetry SDK after the mesh was created gets its spans and context from its next request on', (build) => {
  const result = run(build, `${SETUP}
const before = await call()
const loadedBefore = apiLoaded()
const { context, trace } = await import('@opentelemetry/api')
const { AsyncLocalStorageContextManager } = await import('@opentelemetry/context-async-hooks')
const { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } = await import('@opentelemetry/sdk-trace-base')
const exporter = new InMemorySpanExporter()
context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable())
trace.setGlobalTracerProvider(new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }))
const recentBefore = mesh.tracing.recent().length
// The app's handler: its active span is the mesh's server span; its own span nests under it,
// and the mesh's client span under the app's span.
onRequest = async () => {
  const active = trace.getActiveSpan()?.spanContext().spanId
  const span = trace.getTracer('app').startSpan('app work')
  await context.with(trace.setSpan(context.active(), span), async () => { await (await mesh.fetch('http://c/')).text() })
  span.end()
  return { active, app: span.spanContext().spanId }
}
const after = await call()
await new Promise((r) => setTimeout(r, 50))
await close()
const spans = exporter.getFinishedSpans().map((s) => ({ name: s.name, scope: s.instrumentationScope.name, kind: s.kind, traceId: s.spanContext().traceId, spanId: s.spanContext().spanId, parent: s.parentSpanContext?.spanId }))
return { before: before.context.sampled, loadedBefore, after, spans, recentAfter: mesh.tracing.recent().length - recentBefore }`) as {
    before: boolean
    loadedBefore: boolean
    after: { context: { traceId: string; spanId: string }; extra: { active: string; app: string } }
    spans: { name: string; scope: string; kind: number; traceId: string; spanId: string; parent: string | undefined }[]
    recentAfter: number
  }
  assert.equal(result.before, true)
  assert.equal(result.loadedBefore, false, 'nothing registered yet: the API is not loaded')
  const { context, extra } = result.after
  assert.equal(extra.active, context.spanId, 'the app\'s active span is the mesh\'s server span (mesh.context() agrees)')
  const server = result.spans.find((s) => s.scope === 'sidecarless' && s.kind === (SpanKind.SERVER as number))
  assert.ok(server, `the mesh's server span went to the app's exporter: ${JSON.stringify(result.spans)}`)
  assert.equal(server.spanId, context.spanId)
  const app = result.spans.find((s) => s.name === 'app work')
  assert.equal(app?.parent, server.spanId, 'the app\'s span nests under the mesh\'s server span')
  const clients = result.spans.filter((s) => s.scope === 'sidecarless' && s.kind === (SpanKind.CLIENT as number))
  assert.deepEqual(clients.map((s) => s.parent).sort(), [server.spanId, extra.app].sort(), 'client spans under the app\'s active span, or the server span')
  assert.ok(result.spans.every((s) => s.traceId === context.traceId), 'one trace')
  assert.equal(result.recentAfter, 0, 'the mesh\'s own store gets nothing once the app\'s provider takes the spans')
})

test('the enum values the mesh uses without the API are the API\'s', () => {
  assert.equal(SPAN_KIND_SERVER, SpanKind.SERVER)
  assert.equal(SPAN_KIND_CLIENT, SpanKind.CLIENT)
  assert.equal(STATUS_UNSET, SpanStatusCode.UNSET)
  assert.equal(STATUS_OK, SpanStatusCode.OK)
  assert.equal(STATUS_ERROR, SpanStatusCode.ERROR)
  assert.equal(TRACE_FLAGS_NONE, TraceFlags.NONE)
  assert.equal(TRACE_FLAGS_SAMPLED, TraceFlags.SAMPLED)
})

test('the mesh\'s tracestate parses, serialises and changes as the API\'s createTraceState does', () => {
  const many = Array.from({ length: 40 }, (_, i) => `k${i}=v${i}`).join(',')
  const vectors = [
    '', 'a=1', 'b=2, a=1', ' a=1 ,b=2 ', 'a=1,a=2,b=3', 'a=1,b=2,a=3', 'bad key=1,a=2', 'A=1,a=2', 'a=,b=2', 'a=x=y,b=2',
    'vendor@tenant=1,0abc@x=2,1abc=3', 'a=1,,b=2', 'novalue,a=1', `a=${'x'.repeat(256)},b=2`, `a=${'x'.repeat(257)},b=2`,
    'a=1 2,b=3', 'a=1\t,b=2', many, `a=${'x'.repeat(520)}`,
  ]
  for (const raw of vectors) {
    const ours = new W3cTraceState(raw)
    const api = createTraceState(raw)
    assert.equal(ours.serialize(), api.serialize(), `serialize of ${JSON.stringify(raw)}`)
    for (const key of ['a', 'b', 'k0', 'k39', 'vendor@tenant', 'missing']) assert.equal(ours.get(key), api.get(key), `get(${key}) of ${JSON.stringify(raw)}`)
    assert.equal(ours.set('b', 'new').serialize(), api.set('b', 'new').serialize(), `set of ${JSON.stringify(raw)}`)
    assert.equal(ours.set('z', '9').unset('a').serialize(), api.set('z', '9').unset('a').serialize(), `set then unset of ${JSON.stringify(raw)}`)
    assert.equal(ours.serialize(), new W3cTraceState(raw).serialize(), 'set and unset return new states')
  }
})
