/**
 * A caller's bad input never counts against an upstream (issue 11 item 3, issue 18 item 2).
 * Requests undici would refuse — CR/LF in a header value, the path or the method; headers
 * undici sets itself (`transfer-encoding`, `keep-alive`, `upgrade`, `expect`), bad
 * `connection` tokens, a malformed `content-length` — are refused before routing with
 * `SIDECARLESS_ERR_INVALID_REQUEST`, undici's own error as the cause, through `mesh.fetch`,
 * `undici.request` / `stream` and a raw `dispatch` alike. Nothing reaches the endpoint's pool:
 * no 503 `UC`, no breaker, outlier or health outcome, no metrics on the cluster, no retry.
 */
import assert from 'node:assert/strict'
import { Readable, Writable } from 'node:stream'
import { after, before, describe, test } from 'node:test'
import { errors, Pool, request, stream, type Dispatcher } from 'undici'
import { createMesh, isMeshError, type Mesh, type MeshConfig } from '../src/index.js'
import { UpstreamRequest, PASSTHROUGH } from '../src/outbound/upstream-request.js'
import { Exchange } from '../src/outbound/exchange.js'
import { OutboundView } from '../src/outbound/request-headers.js'
import type { TracingSettings } from '../src/observability/tracing.js'
import { MetricsRegistry } from '../src/observability/metrics.js'
import { startUpstream, type Upstream } from './helpers/upstream.js'

let up: Upstream
before(async () => {
  up = await startUpstream('reviews')
})
after(async () => {
  await up.close()
})

/** A cluster with a sensitive error-rate breaker, outlier detection and a retry policy. */
function config(address = up.address): MeshConfig {
  return {
    clusters: [{
      name: 'reviews',
      endpoints: [{ address }],
      circuitBreakers: { errorRate: { volumeThreshold: 5, errorThreshold: 50, openDuration: '30s', countTransportErrors: true } },
      outlierDetection: { consecutive5xx: 3, consecutiveGatewayFailure: 3, interval: '10s', baseEjectionTime: '30s', maxEjectionPercent: 100 },
    }],
    virtualHosts: [{
      name: 'reviews',
      domains: ['reviews'],
      routes: [{ match: { prefix: '/' }, route: { cluster: 'reviews', retryPolicy: { retryOn: ['5xx', 'reset', 'connect-failure', 'refused-stream'], numRetries: 3 } } }],
    }],
  }
}

/** Asserts `err` is the coded caller error whose cause is undici's own argument error. */
function isInvalidRequest(err: unknown, undiciMessage?: RegExp): boolean {
  assert.ok(isMeshError(err, 'SIDECARLESS_ERR_INVALID_REQUEST'), `expected SIDECARLESS_ERR_INVALID_REQUEST, got ${String(err)}`)
  const cause = (err as Error).cause as { code?: string; message?: string } | undefined
  assert.ok(cause instanceof errors.InvalidArgumentError || cause instanceof errors.NotSupportedError, `cause: ${String(cause)}`)
  assert.ok(cause.code === 'UND_ERR_INVALID_ARG' || cause.code === 'UND_ERR_NOT_SUPPORTED')
  if (undiciMessage !== undefined) assert.match(String(cause.message), undiciMessage)
  return true
}

/** Nothing was counted against the upstream, and it saw nothing. */
function assertUntouched(mesh: Mesh, seenBefore: number): void {
  const snap = mesh.metrics.snapshot()
  const breaker = snap.resilience['reviews']?.breakers?.['(cluster)']
  assert.equal(breaker?.state, 'closed')
  assert.equal(breaker?.opened, 0)
  assert.equal(snap.resilience['reviews']?.retries ?? 0, 0, 'no retry of a caller error')
  assert.equal(snap.health?.['reviews']?.ejectionsActive ?? 0, 0)
  const cluster = snap.outbound.clusters['reviews']
  assert.equal(cluster?.requests ?? 0, 0, 'a request refused at the door never reached the cluster')
  assert.equal(up.seen.length, seenBefore, 'the upstream saw nothing')
}

/** A healthy request still gets a 200 from the upstream (not 503 UO). */
async function healthy(mesh: Mesh): Promise<void> {
  const res = await request('http://reviews/ok', { dispatcher: mesh.dispatcher })
  await res.body.text()
  assert.equal(res.statusCode, 200)
  assert.equal(res.headers['x-sidecarless-response-flags'], undefined)
}

/** Request options that override GET /x. */
type Opts = { path?: string; method?: string; headers?: unknown; body?: unknown }

const undiciRefuses: [string, Opts, RegExp][] = [
  ['CR/LF in a header value', { headers: { 'x-user': 'a\r\nx-admin: true' } }, /invalid x-user header/],
  ['LF alone in a header value', { headers: ['x-user', 'a\nb'] }, /invalid x-user header/],
  ['NUL in a header value', { headers: { 'x-user': 'a\0b' } }, /invalid x-user header/],
  ['CR/LF in the path', { path: '/a\r\nx-admin: true' }, /invalid request path/],
  ['a space in the path', { path: '/a b' }, /invalid request path/],
  ['CR/LF in the method', { method: 'GET\r\nX' }, /invalid request method/],
  ['an invalid header name', { headers: { 'x user': 'a' } }, /invalid header key/],
  ['transfer-encoding', { method: 'POST', body: 'x', headers: { 'transfer-encoding': 'chunked' } }, /invalid transfer-encoding header/],
  ['Transfer-Encoding in a flat list', { method: 'POST', body: 'x', headers: ['Transfer-Encoding', 'chunked'] }, /invalid transfer-encoding header/],
  ['keep-alive', { headers: { 'keep-alive': 'timeout=5' } }, /invalid keep-alive header/],
  ['upgrade', { headers: { upgrade: 'websocket' } }, /invalid upgrade header/],
  ['expect', { method: 'POST', body: 'x', headers: { expect: '100-continue' } }, /expect header not supported/],
  ['a connection header that is not a token list', { headers: { connection: 'close, a b' } }, /invalid connection header/],
  ['a content-length that is not a number', { method: 'POST', body: 'x', headers: { 'content-length': '1x' } }, /invalid content-length header/],
  ['two content-length headers', { method: 'POST', body: 'x', headers: ['content-length', '1', 'Content-Length', '1'] }, /duplicate content-length header/],
  ['two host headers', { headers: ['host', 'reviews', 'Host', 'reviews'] }, /duplicate host header/],
  ['an object as a header value', { headers: { 'x-user': { a: 1 } } }, /invalid x-user header/],
  ['an odd flat header list', { headers: ['x-a', 'b', 'x-c'] }, /headers array must be even/],
  ['a body undici cannot send', { method: 'POST', body: 42 }, /body must be/],
]

describe('undici.request through mesh.dispatcher: refused before routing, never counted', () => {
  for (const [label, opts, undiciMessage] of undiciRefuses) {
    test(`${label}: plain undici refuses it, and so does the mesh, with undici's error as the cause`, async () => {
      // What plain undici does with the same request (the behaviour the mesh mirrors).
      const pool = new Pool(up.address)
      try {
        await assert.rejects(pool.request({ path: '/x', method: 'GET', ...opts } as Dispatcher.RequestOptions), (err: unknown) => {
          assert.ok(err instanceof errors.InvalidArgumentError || err instanceof errors.NotSupportedError, String(err))
          assert.match(err.message, undiciMessage)
          return true
        })
      } finally {
        await pool.destroy()
      }
      const mesh = createMesh({ config: config() })
      try {
        const seen = up.seen.length
        for (let i = 0; i < 25; i++) {
          await assert.rejects(
            mesh.dispatcher.request({ origin: 'http://reviews', path: '/x', method: 'GET', ...opts } as Dispatcher.RequestOptions),
            (err: unknown) => isInvalidRequest(err, undiciMessage),
          )
        }
        assertUntouched(mesh, seen)
        await healthy(mesh)
      } finally {
        await mesh.close()
      }
    })
  }

  test('the message names the header, never its value (values may be secrets)', async () => {
    const mesh = createMesh({ config: config() })
    try {
      await assert.rejects(request('http://reviews/x', { dispatcher: mesh.dispatcher, headers: { authorization: 'Bearer s3cret\r\n' } }), (err: unknown) => {
        isInvalidRequest(err)
        assert.match((err as Error).message, /"authorization"/)
        assert.doesNotMatch((err as Error).message, /s3cret/)
        return true
      })
    } finally {
      await mesh.close()
    }
  })

  test('valid unusual requests still go through: null and numeric header values, connection: close, a CONNECT-less absolute path', async () => {
    const mesh = createMesh({ config: config() })
    try {
      const res = await request('http://reviews/ok', { dispatcher: mesh.dispatcher, headers: { 'x-n': 5 as unknown as string, 'x-list': ['a', 'b'], connection: 'close', 'content-type': 'text/plain' } })
      await res.body.text()
      assert.equal(res.statusCode, 200)
    } finally {
      await mesh.close()
    }
  })
})

describe('mesh.fetch, undici.stream and a raw dispatch follow the same rule', () => {
  let mesh: Mesh
  before(() => {
    mesh = createMesh({ config: config() })
  })
  after(async () => {
    await mesh.close()
  })

  test('25 mesh.fetch POSTs forwarding transfer-encoding: chunked do not open the breaker; a healthy GET is 200', async () => {
    const seen = up.seen.length
    for (let i = 0; i < 25; i++) {
      await assert.rejects(mesh.fetch('http://reviews/upload', { method: 'POST', body: 'payload', headers: { 'transfer-encoding': 'chunked' } }),
        (err: unknown) => isInvalidRequest(err, /invalid transfer-encoding header/))
    }
    assertUntouched(mesh, seen)
    await healthy(mesh)
  })

  test("fetch's own refusals (a CR/LF header value, a body on GET) are INVALID_REQUEST too, with fetch's TypeError as the cause", async () => {
    await assert.rejects(mesh.fetch('http://reviews/x', { headers: { 'x-user': 'a\r\nb' } }), (err: unknown) => {
      assert.ok(isMeshError(err, 'SIDECARLESS_ERR_INVALID_REQUEST'), String(err))
      assert.ok((err as Error).cause instanceof TypeError)
      return true
    })
    await assert.rejects(mesh.fetch('http://reviews/x', { method: 'GET', body: 'x' }), (err: unknown) => isMeshError(err, 'SIDECARLESS_ERR_INVALID_REQUEST'))
  })

  test('undici.stream', async () => {
    await assert.rejects(
      stream('http://reviews/x', { dispatcher: mesh.dispatcher, method: 'GET', headers: { 'keep-alive': 'timeout=5' } }, () => new Writable({ write(_c, _e, cb) { cb() } })),
      (err: unknown) => isInvalidRequest(err, /invalid keep-alive header/),
    )
  })

  test('a raw dispatch: onResponseError with the coded error, dispatch returns false, a streamed body is released', async () => {
    const body = new Readable({ read() {} })
    let error: Error | undefined
    const done = new Promise<void>((resolve) => {
      const returned = mesh.dispatcher.dispatch({ origin: 'http://reviews', path: '/x', method: 'POST', body, headers: { 'transfer-encoding': 'chunked' } }, {
        onRequestStart() {},
        onResponseStart() { throw new Error('no response expected') },
        onResponseError(_c, err) {
          error = err
          resolve()
        },
      })
      assert.equal(returned, false)
    })
    await done
    isInvalidRequest(error)
    assert.ok(body.destroyed, 'the request body was released')
  })

  test('a host outside the registry (pass-through) is refused the same way, before any connection', async () => {
    const connections = up.connections
    await assert.rejects(request(`${up.address}/x`, { dispatcher: mesh.dispatcher, headers: { 'x-a': 'b\r\nc' } }), (err: unknown) => isInvalidRequest(err))
    assert.equal(up.connections, connections)
    assert.equal(mesh.metrics.snapshot().outbound.clusters['PassthroughCluster']?.requests ?? 0, 0)
  })
})

describe('the backstop: an argument error from the pool is the caller error, not an upstream failure', () => {
  test('UpstreamRequest answers INVALID_REQUEST (not 503 UC) when the pool refuses the request before sending it', async () => {
    const pool = new Pool(up.address)
    const metrics = new MetricsRegistry()
    try {
      let error: Error | undefined
      let status: number | undefined
      const done = new Promise<void>((resolve) => {
        const options: Dispatcher.DispatchOptions = { origin: up.address, path: '/x', method: 'GET', headers: ['transfer-encoding', 'chunked'] }
        const endpoint = `127.0.0.1:${up.port}`
        const caller = { flat: [], host: undefined, hasRequestId: false }
        const handler: Dispatcher.DispatchHandler = {
          onRequestStart() {},
          onResponseStart(_c, s) {
            status = s
            resolve()
          },
          onResponseError(_c, err) {
            error = err
            resolve()
          },
        }
        const ex = new Exchange({ nextTry: () => false }, options, handler, new OutboundView('GET', '/x', endpoint, 'http', options.headers, caller), endpoint, '/x', {} as TracingSettings, null)
        const req = new UpstreamRequest({
          exchange: ex,
          dest: PASSTHROUGH,
          endpoint,
          host: undefined,
          recorder: metrics.upstream('PassthroughCluster', undefined, endpoint),
          span: undefined,
          traceContext: undefined,
          cluster: null,
          resources: null,
          breaker: null,
          trial: false,
          deadlines: undefined,
          pool,
          // Bypasses the door: undici's own Request constructor refuses this.
          options,
        })
        ex.trying(req)
        req.dispatch()
      })
      await done
      assert.equal(status, undefined, 'no local 503')
      isInvalidRequest(error, /invalid transfer-encoding header/)
    } finally {
      await pool.destroy()
    }
  })
})

describe("the caller's request body failing while it is sent is the caller's failure, not the upstream's", () => {
  // An upstream that answers once it has the whole body (a failed body never gets an answer).
  let uploads: Upstream
  before(async () => {
    uploads = await startUpstream('uploads', (req, res, name) => req.on('end', () => res.end(name)))
  })
  after(async () => {
    await uploads.close()
  })

  /** A body that sends a first chunk, then errors with `err`. */
  function failingBody(err: Error): Readable {
    const body = new Readable({ read() {} })
    body.push('partial ')
    setTimeout(() => body.destroy(err), 10)
    return body
  }

  for (const [label, method] of [['POST (sent once)', 'POST'], ['PUT (replayable under the retry policy)', 'PUT']] as const) {
    test(`${label}: 10 bodies that fail reject with the body's own error; no 503, no retry, breaker closed, no ejection`, async () => {
      const mesh = createMesh({ config: config(uploads.address) })
      try {
        for (let i = 0; i < 10; i++) {
          const err = new Error(`caller body failed ${i}`)
          await assert.rejects(mesh.dispatcher.request({ origin: 'http://reviews', path: '/upload', method, body: failingBody(err) }), (got: unknown) => {
            assert.equal(got, err, `the caller's own error, as plain undici gives it: ${String(got)}`)
            return true
          })
        }
        const snap = mesh.metrics.snapshot()
        const breaker = snap.resilience['reviews']?.breakers?.['(cluster)']
        assert.equal(breaker?.state, 'closed')
        assert.equal(breaker?.opened, 0)
        assert.equal(snap.resilience['reviews']?.retries ?? 0, 0, 'no retry of a caller failure')
        assert.equal(snap.health?.['reviews']?.ejectionsActive ?? 0, 0)
        const cluster = snap.outbound.clusters['reviews']
        assert.equal(cluster?.errors.reset, 0)
        assert.equal(cluster?.errors.connect_failure, 0)
        assert.equal(cluster?.responses['5xx'], 0)
        assert.equal(cluster?.errors.aborted, 10, 'counted as the caller giving up')
        const res = await mesh.dispatcher.request({ origin: 'http://reviews', path: '/upload', method, body: 'whole' })
        assert.equal(res.statusCode, 200)
        assert.equal(await res.body.text(), 'uploads')
      } finally {
        await mesh.close()
      }
    })

    test(`${label}: a body that fails before a byte of it is read rejects with its own error, never an uncaught exception`, async () => {
      // The stream errors while the request still waits for its connection: nobody reads it
      // yet. Plain undici listens for a stream body's errors from the start; so must the mesh,
      // or the caller's error becomes the process's uncaught exception.
      const uncaught: unknown[] = []
      const onUncaught = (err: unknown): void => {
        uncaught.push(err)
      }
      process.on('uncaughtException', onUncaught)
      const mesh = createMesh({ config: config(uploads.address) })
      try {
        for (let i = 0; i < 5; i++) {
          const err = new Error(`caller body failed early ${i}`)
          const body = new Readable({ read() {} })
          const pending = mesh.dispatcher.request({ origin: 'http://reviews', path: '/upload', method, body })
          body.destroy(err)
          await assert.rejects(pending, (got: unknown) => {
            assert.equal(got, err, `the caller's own error: ${String(got)}`)
            return true
          })
        }
        await new Promise((resolve) => setTimeout(resolve, 20))
        assert.deepEqual(uncaught, [], 'no uncaught exception')
        const cluster = mesh.metrics.snapshot().outbound.clusters['reviews']
        assert.equal(cluster?.errors.reset ?? 0, 0)
        assert.equal(cluster?.responses['5xx'] ?? 0, 0)
      } finally {
        process.off('uncaughtException', onUncaught)
        await mesh.close()
      }
    })
  }
})
