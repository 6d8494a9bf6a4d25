/**
 * Trace propagation on every outbound path (issue 11 items 6 and 7).
 *
 * - A call made while serving an inbound request carries `traceparent` (a span of its own,
 *   parented by the server span), `tracestate` and the inbound `x-request-id`, and has a
 *   client span — to hosts outside the registry (PassthroughCluster) too, as Istio's
 *   sidecar does; mirrored copies and each retry likewise (each try a span id of its own).
 * - W3C Trace Context Level 2 `random-trace-id` flag (trace-flags bit 1): set on a trace the
 *   mesh starts (its trace ids are all random); kept exactly as received when the trace is
 *   continued (the flag belongs to the trace id); never invented for a B3 trace. The
 *   sampled bit is unchanged.
 */
import assert from 'node:assert/strict'
import { once } from 'node:events'
import type http from 'node:http'
import type { AddressInfo } from 'node:net'
import { after, before, describe, test } from 'node:test'
import { request } from 'undici'
import { createMesh, type Mesh, type MeshConfig } from '../src/index.js'
import { startUpstream, type Seen, type Upstream } from './helpers/upstream.js'

const TRACE = '0af7651916cd43dd8448eb211c80319c'
const CALLER_SPAN = 'b7ad6b7169203331'

let outside: Upstream
let inside: Upstream
let flaky: Upstream
let flakyCalls = 0
before(async () => {
  outside = await startUpstream('outside')
  inside = await startUpstream('inside')
  flaky = await startUpstream('flaky', (_req, res) => {
    // Fails twice, then answers: three tries of one request.
    res.statusCode = flakyCalls++ % 3 === 2 ? 200 : 503
    res.end('flaky')
  })
})
after(async () => {
  await Promise.all([outside.close(), inside.close(), flaky.close()])
})

function config(extra: Partial<MeshConfig> = {}): MeshConfig {
  return {
    clusters: [
      { name: 'inside', endpoints: [{ address: inside.address }] },
      { name: 'flaky', endpoints: [{ address: flaky.address }] },
    ],
    virtualHosts: [
      { name: 'inside', domains: ['inside'], routes: [{ match: { prefix: '/' }, route: { cluster: 'inside' } }] },
      { name: 'flaky', domains: ['flaky'], routes: [{ match: { prefix: '/' }, route: { cluster: 'flaky', retryPolicy: { retryOn: ['5xx'], numRetries: 3, retryBackOff: { baseInterval: '1ms', maxInterval: '2ms' } } } }] },
    ],
    tracing: { sampling: 100, recentSpans: 100 },
    ...extra,
  }
}

/** An inbound server of `mesh` whose handler makes `call` while serving; returns its URL. */
async function serve(mesh: Mesh, call: () => Promise<unknown>): Promise<{ url: string; close(): void }> {
  const server = mesh.createServer((_req: http.IncomingMessage, res: http.ServerResponse) => {
    call().then(() => res.end('ok'), (err: unknown) => {
      res.statusCode = 500
      res.end(String(err))
    })
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`,
    close: () => {
      server.closeAllConnections()
      server.close()
    },
  }
}

/** Sends one inbound request with these headers and returns the last request `up` saw. */
async function through(mesh: Mesh, up: Upstream, call: () => Promise<unknown>, headers: Record<string, string>): Promise<http.IncomingHttpHeaders> {
  const s = await serve(mesh, call)
  try {
    const res = await request(s.url, { headers })
    assert.equal(await res.body.text(), 'ok')
    const seen = up.seen.at(-1)
    assert.ok(seen !== undefined, 'the upstream was called')
    return seen.headers
  } finally {
    s.close()
  }
}

/** Header names as the upstream received them, lower-cased, repeats kept. */
function rawNames(seen: Seen): string[] {
  return seen.rawHeaders.filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase())
}

const inbound = { traceparent: `00-${TRACE}-${CALLER_SPAN}-01`, tracestate: 'congo=t61rcWkgMzE', 'x-request-id': 'req-outbound-1' }

describe('propagation on every outbound path', () => {
  let mesh: Mesh
  before(() => {
    mesh = createMesh({ service: 'front', config: config() })
  })
  after(async () => {
    await mesh.close()
  })

  for (const [label, call] of [
    ['mesh.fetch', () => mesh.fetch(`${outside.address}/pass`).then((r) => r.text())],
    ['undici.request on mesh.dispatcher', () => request(`${outside.address}/pass`, { dispatcher: mesh.dispatcher }).then((r) => r.body.text())],
  ] as const) {
    test(`pass-through (${label}): traceparent, tracestate, x-request-id and a client span`, async () => {
      const seen = await through(mesh, outside, call, inbound)
      const m = /^00-([0-9a-f]{32})-([0-9a-f]{16})-01$/.exec(String(seen.traceparent))
      assert.ok(m !== null, `traceparent: ${String(seen.traceparent)}`)
      assert.equal(m[1], TRACE, "the caller's trace continues")
      assert.notEqual(m[2], CALLER_SPAN, 'a span of its own')
      assert.equal(seen.tracestate, 'congo=t61rcWkgMzE')
      assert.equal(seen['x-request-id'], 'req-outbound-1')
      assert.equal(seen.host, `127.0.0.1:${outside.port}`)
      const spans = mesh.tracing.recent().filter((s) => s.traceId === TRACE)
      const client = spans.find((s) => s.kind === 'client' && s.spanId === m[2])
      const server = spans.filter((s) => s.kind === 'server').at(-1)
      assert.ok(client !== undefined, `a client span for the pass-through call: ${JSON.stringify(spans.map((s) => [s.kind, s.spanId]))}`)
      assert.equal(client.parentSpanId, server?.spanId, 'parented by the server span')
      assert.equal(client.attributes['sidecarless.cluster'], 'PassthroughCluster')
      assert.equal(client.attributes['server.port'], outside.port)
    })
  }

  test("pass-through replaces a caller's stale traceparent, never appends to it", async () => {
    const stale = `00-${'1'.repeat(32)}-${'2'.repeat(16)}-01`
    const seen = await through(mesh, outside, () => mesh.fetch(`${outside.address}/stale`, { headers: { traceparent: stale } }).then((r) => r.text()), inbound)
    assert.equal(typeof seen.traceparent, 'string')
    assert.match(String(seen.traceparent), new RegExp(`^00-${TRACE}-`))
  })

  test('retries: every try continues the trace with a span id of its own, and carries the request id', async () => {
    const before = flaky.seen.length
    await through(mesh, flaky, () => mesh.fetch('http://flaky/x').then((r) => r.text()), inbound)
    const tries = flaky.seen.slice(before)
    assert.equal(tries.length, 3)
    const spans = tries.map((t) => /^00-([0-9a-f]{32})-([0-9a-f]{16})-01$/.exec(String(t.headers.traceparent)))
    for (const [i, m] of spans.entries()) {
      assert.ok(m !== null, `try ${i}: ${String(tries[i]?.headers.traceparent)}`)
      assert.equal(m[1], TRACE)
      assert.equal(tries[i]?.headers['x-request-id'], 'req-outbound-1')
      assert.equal(tries[i]?.headers.tracestate, 'congo=t61rcWkgMzE')
      assert.deepEqual(rawNames(tries[i]).filter((n) => n === 'traceparent' || n === 'host' || n === 'x-request-id').sort(), ['host', 'traceparent', 'x-request-id'], 'each once: a try never inherits the last one\'s headers')
    }
    assert.equal(new Set(spans.map((m) => m?.[2])).size, 3, 'three tries, three span ids')
    const clientSpans = mesh.tracing.recent().filter((s) => s.kind === 'client' && s.attributes['sidecarless.cluster'] === 'flaky')
    assert.deepEqual(clientSpans.slice(-3).map((s) => s.attributes['http.request.resend_count'] ?? 0), [0, 1, 2])
  })

  test('mirrored copies: their own span in the same trace, tracestate and the request id', async () => {
    const shadow = await startUpstream('shadow')
    const mirrored = createMesh({
      config: {
        ...config(),
        clusters: [...config().clusters!, { name: 'shadow', endpoints: [{ address: shadow.address }] }],
        virtualHosts: [{ name: 'inside', domains: ['inside'], routes: [{ match: { prefix: '/' }, route: { cluster: 'inside', requestMirrorPolicies: [{ cluster: 'shadow' }] } }] }],
      },
    })
    try {
      const seen = await through(mirrored, inside, () => request('http://inside/m', { dispatcher: mirrored.dispatcher }).then((r) => r.body.text()), inbound)
      for (let i = 0; i < 100 && shadow.seen.length === 0; i++) await new Promise((r) => setTimeout(r, 10))
      const copy = shadow.seen[0]?.headers
      assert.ok(copy !== undefined, 'the copy arrived')
      assert.match(String(copy.traceparent), new RegExp(`^00-${TRACE}-[0-9a-f]{16}-01$`))
      assert.notEqual(copy.traceparent, seen.traceparent, 'a span of its own')
      assert.equal(copy.tracestate, 'congo=t61rcWkgMzE')
      assert.equal(copy['x-request-id'], 'req-outbound-1')
      for (const seenBy of [shadow.seen[0]!, inside.seen.at(-1)!]) {
        assert.deepEqual(rawNames(seenBy).filter((n) => n === 'traceparent' || n === 'host').sort(), ['host', 'traceparent'], 'the copy and the original each carry their own, once')
      }
    } finally {
      await mirrored.close()
      await shadow.close()
    }
  })
})

describe('W3C Trace Context Level 2: the random-trace-id flag', () => {
  const flagsOf = (traceparent: unknown): number => Number.parseInt(String(traceparent).slice(-2), 16)

  for (const sampling of [100, 0]) {
    test(`a trace the mesh starts sets the random flag (sampling ${sampling}%: sampled bit ${sampling > 0 ? 1 : 0})`, async () => {
      const mesh = createMesh({ config: config({ tracing: { sampling, recentSpans: 10 } }) })
      try {
        // Started at the inbound side (no traceparent), then outbound: cluster and pass-through.
        for (const [up, call] of [[inside, () => mesh.fetch('http://inside/a').then((r) => r.text())], [outside, () => mesh.fetch(`${outside.address}/b`).then((r) => r.text())]] as const) {
          const seen = await through(mesh, up, call, {})
          assert.equal(flagsOf(seen.traceparent), sampling > 0 ? 0x03 : 0x02, `traceparent ${String(seen.traceparent)}`)
        }
        // Started at the outbound side (no inbound request).
        await (await mesh.fetch('http://inside/c')).text()
        assert.equal(flagsOf(inside.seen.at(-1)?.headers.traceparent), sampling > 0 ? 0x03 : 0x02)
      } finally {
        await mesh.close()
      }
    })
  }

  for (const flags of ['00', '01', '02', '03']) {
    test(`a caller's trace-flags ${flags} are kept as received (the flag belongs to the trace id)`, async () => {
      const mesh = createMesh({ config: config({ tracing: { sampling: 50, recentSpans: 10 } }) })
      try {
        const seen = await through(mesh, inside, () => mesh.fetch('http://inside/k').then((r) => r.text()), { traceparent: `00-${TRACE}-${CALLER_SPAN}-${flags}` })
        assert.match(String(seen.traceparent), new RegExp(`^00-${TRACE}-[0-9a-f]{16}-${flags}$`))
      } finally {
        await mesh.close()
      }
    })
  }

  test('a B3 trace continued as W3C does not claim a random trace id', async () => {
    const mesh = createMesh({ config: config({ tracing: { extract: ['b3'], inject: ['w3c'], sampling: 100, recentSpans: 10 } }) })
    try {
      const seen = await through(mesh, inside, () => mesh.fetch('http://inside/b3').then((r) => r.text()), { b3: `${TRACE}-${CALLER_SPAN}-1` })
      assert.match(String(seen.traceparent), new RegExp(`^00-${TRACE}-[0-9a-f]{16}-01$`))
    } finally {
      await mesh.close()
    }
  })
})
