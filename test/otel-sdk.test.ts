/**
 * The app registered an OpenTelemetry SDK (context manager + tracer provider): the mesh must
 * use it. Its server and client spans go to the app's exporter, the app's spans nest between
 * them, `mesh.context()` is served from OTel's context, and the mesh's own span store stays
 * empty. This file runs in its own process (node --test), so global registration is fine.
 */
import assert from 'node:assert/strict'
import { once } from 'node:events'
import type http from 'node:http'
import type { AddressInfo } from 'node:net'
import { after, before, describe, test } from 'node:test'
import { context, ROOT_CONTEXT, SpanKind, trace } from '@opentelemetry/api'
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks'
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-base'
import { request } from 'undici'
import { createMesh, type Mesh, type RequestContext } from '../src/index.js'
import { startUpstream, type Upstream } from './helpers/upstream.js'

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-0[01]$/
const INCOMING_TRACE = '4bf92f3577b34da6a3ce929d0e0e4736'
const INCOMING_SPAN = '00f067aa0ba902b7'

let backend: Upstream
let exporter: InMemorySpanExporter | undefined
let provider: BasicTracerProvider | undefined
let contextManager: AsyncLocalStorageContextManager | undefined

function meshConfig(extra: Record<string, unknown> = {}) {
  return {
    clusters: [{ name: 'backend', endpoints: [{ address: backend.address }] }],
    virtualHosts: [{ name: 'backend', domains: ['backend'], routes: [{ match: { prefix: '/' }, route: { cluster: 'backend' } }] }],
    ...extra,
  }
}

/** What the app does at start-up: register the SDK globally. */
function registerAppSdk(): InMemorySpanExporter {
  exporter = new InMemorySpanExporter()
  contextManager = new AsyncLocalStorageContextManager().enable()
  assert.equal(context.setGlobalContextManager(contextManager), true, 'context manager registered')
  provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] })
  assert.equal(trace.setGlobalTracerProvider(provider), true, 'tracer provider registered')
  return exporter
}

async function listen(server: http.Server): Promise<string> {
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`
}

async function closeServer(server: http.Server): Promise<void> {
  server.closeAllConnections()
  await new Promise<void>((resolve) => server.close(() => resolve()))
}

/** Polls `check` until it returns a value (the server span ends on the response's `close`, after the client has it). */
async function eventually<T>(what: string, check: () => T | undefined, timeoutMs = 2000): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = check()
    if (value !== undefined) return value
    if (Date.now() > deadline) assert.fail(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 5))
  }
}

function describeSpans(spans: readonly ReadableSpan[]): string {
  return JSON.stringify(spans.map((s) => ({
    name: s.name,
    kind: SpanKind[s.kind],
    traceId: s.spanContext().traceId,
    spanId: s.spanContext().spanId,
    parent: s.parentSpanContext?.spanId,
    scope: s.instrumentationScope.name,
  })))
}

const spansOf = (traceId: string): ReadableSpan[] => (exporter?.getFinishedSpans() ?? []).filter((s) => s.spanContext().traceId === traceId)

// Created before the app registers anything: registration must be checked per request.
const lateMesh: Mesh = createMesh({ service: 'late', config: { tracing: { sampling: 100 } } })

before(async () => {
  backend = await startUpstream('backend')
  await lateMesh.update(meshConfig({ tracing: { sampling: 100 } }))
})

after(async () => {
  await lateMesh.close()
  await backend.close()
  await provider?.shutdown()
  trace.disable()
  context.disable()
})

test('before the app registers an SDK, the mesh records into its own store and its own AsyncLocalStorage', async () => {
  assert.equal(exporter, undefined, 'this test runs first, before registration')
  let ctx: RequestContext | undefined
  const server = lateMesh.createServer(async (_req, res) => {
    ctx = lateMesh.context()
    res.end(await (await lateMesh.fetch('http://backend/before')).text())
  })
  const url = await listen(server)
  try {
    const res = await request(`${url}/before`)
    assert.equal(await res.body.text(), 'backend /before')
    assert.ok(ctx, 'mesh.context() works without OTel')
    const traceId = ctx.traceId
    const recent = await eventually('the server span in the mesh store', () => {
      const spans = lateMesh.tracing.recent().filter((s) => s.traceId === traceId)
      return spans.some((s) => s.kind === 'server') ? spans : undefined
    })
    assert.deepEqual(recent.map((s) => s.kind).sort(), ['client', 'server'])
  } finally {
    await closeServer(server)
  }
})

describe('with the app\'s OpenTelemetry SDK registered', () => {
  let mesh: Mesh
  before(() => {
    registerAppSdk()
    mesh = createMesh({ service: 'frontend', config: meshConfig() })
  })
  after(async () => {
    await mesh.close()
  })

  test('server span → app span → client span, all exported by the app\'s provider in one trace', async () => {
    let ctx: RequestContext | undefined
    let activeAtEntry: string | undefined
    let ctxInRootContext: RequestContext | undefined = undefined
    let ctxInAppSpan: RequestContext | undefined
    let ctxAfterTimer: RequestContext | undefined
    let appSpanId: string | undefined
    const server = mesh.createServer(async (_req, res) => {
      ctx = mesh.context()
      activeAtEntry = trace.getSpan(context.active())?.spanContext().spanId
      // Served from OTel's context, not a second AsyncLocalStorage: outside it, no request context.
      ctxInRootContext = context.with(ROOT_CONTEXT, () => mesh.context())
      const body = await trace.getTracer('app').startActiveSpan('app-work', async (span) => {
        try {
          appSpanId = span.spanContext().spanId
          ctxInAppSpan = mesh.context()
          const r = await mesh.fetch('http://backend/inside-app-span')
          await new Promise((resolve) => setTimeout(resolve, 1))
          ctxAfterTimer = mesh.context()
          return await r.text()
        } finally {
          span.end()
        }
      })
      res.end(body)
    })
    const url = await listen(server)
    try {
      const seenBefore = backend.seen.length
      const res = await request(`${url}/api/work`, {
        headers: { traceparent: `00-${INCOMING_TRACE}-${INCOMING_SPAN}-01`, 'x-request-id': 'otel-1' },
      })
      assert.equal(res.statusCode, 200)
      assert.equal(await res.body.text(), 'backend /inside-app-span')

      // mesh.context() in the handler, from OTel's context.
      assert.ok(ctx, 'mesh.context() works inside the handler')
      assert.equal(ctx.traceId, INCOMING_TRACE)
      assert.equal(ctx.parentSpanId, INCOMING_SPAN)
      assert.equal(ctx.requestId, 'otel-1')
      assert.equal(activeAtEntry, ctx.spanId, 'OTel\'s active span in the handler is the mesh\'s server span')
      assert.equal(ctxInRootContext, undefined, 'mesh.context() reads OTel\'s context (ROOT_CONTEXT has none)')
      assert.equal(ctxInAppSpan, ctx, 'the request context survives the app\'s startActiveSpan')
      assert.equal(ctxAfterTimer, ctx, 'and an await and a timer')

      const spans = await eventually('server, app and client spans in the app\'s exporter', () => {
        const s = spansOf(INCOMING_TRACE)
        return s.length >= 3 ? s : undefined
      })
      const all = describeSpans(spans)
      assert.equal(spans.length, 3, all)
      const serverSpan = spans.find((s) => s.kind === SpanKind.SERVER)
      const appSpan = spans.find((s) => s.name === 'app-work')
      const clientSpan = spans.find((s) => s.kind === SpanKind.CLIENT)
      assert.ok(serverSpan && appSpan && clientSpan, all)
      assert.equal(serverSpan.instrumentationScope.name, 'sidecarless', all)
      assert.equal(clientSpan.instrumentationScope.name, 'sidecarless', all)
      assert.equal(appSpan.instrumentationScope.name, 'app', all)

      // Parent links: caller → server → app → client.
      assert.equal(serverSpan.spanContext().spanId, ctx.spanId, 'mesh.context().spanId is the exported server span')
      assert.equal(serverSpan.parentSpanContext?.spanId, INCOMING_SPAN, all)
      assert.equal(serverSpan.parentSpanContext?.isRemote, true, 'the server span\'s parent is the remote caller')
      assert.equal(appSpan.spanContext().spanId, appSpanId)
      assert.equal(appSpan.parentSpanContext?.spanId, serverSpan.spanContext().spanId, `app span nests under the server span: ${all}`)
      assert.equal(clientSpan.parentSpanContext?.spanId, appSpan.spanContext().spanId, `client span nests under the app span: ${all}`)
      for (const s of spans) assert.equal(s.spanContext().traceId, INCOMING_TRACE, all)
      assert.equal(serverSpan.attributes['http.response.status_code'], 200)
      assert.equal(clientSpan.attributes['http.response.status_code'], 200)

      // What went on the wire: the client span's id.
      const seen = backend.seen.slice(seenBefore)
      assert.equal(seen.length, 1)
      const m = TRACEPARENT.exec(String(seen[0]!.headers.traceparent))
      assert.ok(m, `traceparent: ${String(seen[0]!.headers.traceparent)}`)
      assert.equal(m[1], INCOMING_TRACE)
      assert.equal(m[2], clientSpan.spanContext().spanId, 'the upstream\'s parent is the mesh\'s client span')
      assert.equal(seen[0]!.headers['x-request-id'], 'otel-1')

      assert.deepEqual(mesh.tracing.recent(), [], 'the mesh\'s own store is not used when the app has a provider')
      assert.equal(mesh.context(), undefined, 'no request context outside a request')
    } finally {
      await closeServer(server)
    }
  })

  test('a request without a trace starts one in the app\'s provider', async () => {
    let ctx: RequestContext | undefined
    const server = mesh.createServer(async (_req, res) => {
      ctx = mesh.context()
      res.end(await (await mesh.fetch('http://backend/new-trace')).text())
    })
    const url = await listen(server)
    try {
      await (await request(`${url}/new`)).body.dump()
      assert.ok(ctx)
      assert.equal(ctx.parentSpanId, undefined)
      const traceId = ctx.traceId
      const spans = await eventually('server and client spans', () => {
        const s = spansOf(traceId)
        return s.length >= 2 ? s : undefined
      })
      const all = describeSpans(spans)
      assert.equal(spans.length, 2, all)
      const serverSpan = spans.find((s) => s.kind === SpanKind.SERVER)
      const clientSpan = spans.find((s) => s.kind === SpanKind.CLIENT)
      assert.ok(serverSpan && clientSpan, all)
      assert.equal(serverSpan.spanContext().spanId, ctx.spanId)
      assert.equal(serverSpan.parentSpanContext, undefined, 'a root span')
      assert.equal(clientSpan.parentSpanContext?.spanId, serverSpan.spanContext().spanId, `with no app span the client nests under the server span: ${all}`)
      assert.deepEqual(mesh.tracing.recent(), [])
    } finally {
      await closeServer(server)
    }
  })

  test('a mesh created before the app registered its provider uses the provider (checked per request)', async () => {
    const recentBefore = lateMesh.tracing.recent().length
    assert.ok(recentBefore > 0, 'the late mesh recorded into its own store before registration')
    let ctx: RequestContext | undefined
    let activeAtEntry: string | undefined
    let ctxInRootContext: RequestContext | undefined = undefined
    const server = lateMesh.createServer(async (_req, res) => {
      ctx = lateMesh.context()
      activeAtEntry = trace.getSpan(context.active())?.spanContext().spanId
      ctxInRootContext = context.with(ROOT_CONTEXT, () => lateMesh.context())
      const body = await trace.getTracer('app').startActiveSpan('late-app-work', async (span) => {
        try {
          return await (await lateMesh.fetch('http://backend/late')).text()
        } finally {
          span.end()
        }
      })
      res.end(body)
    })
    const url = await listen(server)
    try {
      const seenBefore = backend.seen.length
      const res = await request(`${url}/late`)
      assert.equal(await res.body.text(), 'backend /late')
      assert.ok(ctx)
      assert.equal(activeAtEntry, ctx.spanId, 'the late mesh puts its server span in OTel\'s context')
      assert.equal(ctxInRootContext, undefined, 'the late mesh serves mesh.context() from OTel\'s context')
      const traceId = ctx.traceId
      const spans = await eventually('the late mesh\'s spans in the app\'s exporter', () => {
        const s = spansOf(traceId)
        return s.length >= 3 ? s : undefined
      })
      const all = describeSpans(spans)
      assert.equal(spans.length, 3, all)
      const serverSpan = spans.find((s) => s.kind === SpanKind.SERVER)
      const appSpan = spans.find((s) => s.name === 'late-app-work')
      const clientSpan = spans.find((s) => s.kind === SpanKind.CLIENT)
      assert.ok(serverSpan && appSpan && clientSpan, all)
      assert.equal(serverSpan.spanContext().spanId, ctx.spanId)
      assert.equal(appSpan.parentSpanContext?.spanId, serverSpan.spanContext().spanId, all)
      assert.equal(clientSpan.parentSpanContext?.spanId, appSpan.spanContext().spanId, all)
      const m = TRACEPARENT.exec(String(backend.seen[seenBefore]?.headers.traceparent))
      assert.equal(m?.[1], traceId)
      assert.equal(m?.[2], clientSpan.spanContext().spanId)
      assert.equal(lateMesh.tracing.recent().length, recentBefore, 'nothing more went to the mesh\'s own store')
    } finally {
      await closeServer(server)
    }
  })
})

test('tracing.spans: app, without any HTTP instrumentation: the mesh records no span and passes the caller\'s trace on', async () => {
  assert.ok(exporter, 'the app SDK is registered')
  const mesh = createMesh({ service: 'quiet', config: meshConfig({ tracing: { spans: 'app' } }) })
  let ctx: RequestContext | undefined
  const server = mesh.createServer(async (_req, res) => {
    ctx = mesh.context()
    res.end(await (await mesh.fetch('http://backend/app-mode')).text())
  })
  const url = await listen(server)
  try {
    const seenBefore = backend.seen.length
    await (await request(`${url}/x`, { headers: { traceparent: `00-${INCOMING_TRACE}-${INCOMING_SPAN}-01` } })).body.text()
    assert.equal(ctx?.traceId, INCOMING_TRACE, 'mesh.context() still answers')
    const m = TRACEPARENT.exec(String(backend.seen[seenBefore]?.headers.traceparent))
    assert.equal(m?.[1], INCOMING_TRACE, 'one trace downstream')
    await new Promise((r) => setTimeout(r, 50))
    assert.deepEqual(spansOf(INCOMING_TRACE).filter((s) => s.instrumentationScope.name === 'sidecarless' && s.attributes['url.path'] === '/x'), [], 'no server span of the mesh\'s')
    assert.equal(spansOf(INCOMING_TRACE).filter((s) => s.instrumentationScope.name === 'sidecarless' && s.attributes['url.full'] === 'http://backend/app-mode').length, 0, 'no client span of the mesh\'s')
  } finally {
    await closeServer(server)
    await mesh.close()
  }
})
