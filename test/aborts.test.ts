/**
 * A caller's abort surfaces the same way on every outbound path and at every stage (issue 11
 * item 9): `SIDECARLESS_ERR_ABORTED`, named `AbortError`, the caller's reason as `cause` —
 * while waiting for the upstream, in a fault delay, queued at a bulkhead, waiting for a
 * shared (Redis) quota, in a retry back-off, while the response body streams, and to a
 * host outside the registry. Through `mesh.fetch` and `undici.request` on `mesh.dispatcher`;
 * nothing is left behind (bulkhead slots, in-flight counts) and nothing counts against
 * the upstream.
 */
import assert from 'node:assert/strict'
import type http from 'node:http'
import { after, before, describe, test } from 'node:test'
import { request } from 'undici'
import { createMesh, isMeshError, type Mesh, type MeshConfig } from '../src/index.js'
import { redisServerAvailable, startRedis, type RedisServer } from './helpers/redis.js'
import { startUpstream, type Upstream } from './helpers/upstream.js'

/** Never answers until the test ends (the request is aborted first). */
const hang = (_req: http.IncomingMessage, res: http.ServerResponse): void => {
  res.on('close', () => undefined)
}

/** Sends the headers and a first chunk, then stalls. */
const stall = (_req: http.IncomingMessage, res: http.ServerResponse): void => {
  res.writeHead(200, { 'content-type': 'text/plain' })
  res.write('first chunk')
}

let slow: Upstream
let streaming: Upstream
let failing: Upstream
let fast: Upstream
before(async () => {
  slow = await startUpstream('slow', hang)
  streaming = await startUpstream('streaming', stall)
  failing = await startUpstream('failing', (_req, res) => {
    res.statusCode = 503
    res.end('down')
  })
  fast = await startUpstream('fast')
})
after(async () => {
  await Promise.all([slow.close(), streaming.close(), failing.close(), fast.close()])
})

function config(): MeshConfig {
  const cluster = (name: string, up: Upstream, extra: Record<string, unknown> = {}): NonNullable<MeshConfig['clusters']>[number] => ({ name, endpoints: [{ address: up.address }], ...extra })
  const vhost = (name: string, route: Record<string, unknown>, extra: Record<string, unknown> = {}): NonNullable<MeshConfig['virtualHosts']>[number] =>
    ({ name, domains: [name], routes: [{ match: { prefix: '/' }, route: route, ...extra }] })
  return {
    clusters: [
      cluster('slow', slow),
      cluster('streaming', streaming),
      cluster('failing', failing),
      cluster('bulkhead', slow, { concurrencyLimit: { maxConcurrent: 1, maxQueue: 4, queueTimeout: '30s' } }),
      cluster('fast', fast),
    ],
    virtualHosts: [
      vhost('slow', { cluster: 'slow' }),
      vhost('streaming', { cluster: 'streaming' }),
      vhost('retrying', { cluster: 'failing', retryPolicy: { retryOn: ['5xx'], numRetries: 3, retryBackOff: { baseInterval: '20s', maxInterval: '30s' } } }),
      vhost('bulkhead', { cluster: 'bulkhead' }),
      vhost('delayed', { cluster: 'fast' }, { fault: { delay: { fixedDelay: '30s' } } }),
    ],
  }
}

/** The one shape of a caller abort. */
function isCallerAbort(err: unknown, reason: unknown): boolean {
  assert.ok(isMeshError(err, 'SIDECARLESS_ERR_ABORTED'), `expected SIDECARLESS_ERR_ABORTED, got ${String(err)}`)
  assert.equal((err as Error).name, 'AbortError')
  assert.equal((err as Error).cause, reason, "the caller's reason is the cause")
  return true
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

/** Both ways of calling through the mesh, each aborting with its own reason after `waitMs`. */
async function abortBoth(mesh: Mesh, url: string, waitMs: number, onAbort?: () => void): Promise<void> {
  const ac1 = new AbortController()
  const viaRequest = request(url, { dispatcher: mesh.dispatcher, signal: ac1.signal })
  const ac2 = new AbortController()
  const viaFetch = mesh.fetch(url, { signal: ac2.signal })
  await sleep(waitMs)
  onAbort?.()
  const r1 = new Error('caller gave up (request)')
  const r2 = new Error('caller gave up (fetch)')
  ac1.abort(r1)
  ac2.abort(r2)
  await assert.rejects(viaRequest, (err: unknown) => isCallerAbort(err, r1))
  await assert.rejects(viaFetch, (err: unknown) => isCallerAbort(err, r2))
}

describe('a caller abort, on every outbound path', () => {
  let mesh: Mesh
  before(() => {
    mesh = createMesh({ config: config() })
  })
  after(async () => {
    await mesh.close()
  })

  test('while waiting for the upstream', async () => {
    await abortBoth(mesh, 'http://slow/x', 50)
    const cluster = mesh.metrics.snapshot().outbound.clusters['slow']
    assert.equal(cluster?.inFlight, 0)
    assert.equal(cluster?.errors.aborted, 2)
  })

  test('while a fault delay runs', async () => {
    await abortBoth(mesh, 'http://delayed/x', 30)
    assert.equal(fast.seen.length, 0, 'the upstream never saw the delayed requests')
  })

  test('while queued at a bulkhead (the slot and the queue place are given back)', async () => {
    const holder = new AbortController()
    const holding = request('http://bulkhead/hold', { dispatcher: mesh.dispatcher, signal: holder.signal })
    await sleep(30)
    await abortBoth(mesh, 'http://bulkhead/queued', 30)
    const limits = mesh.metrics.snapshot().limits['cluster[bulkhead]']?.concurrency
    assert.equal(limits?.queued, 0, 'the queued places were given up')
    const reason = new Error('holder done')
    holder.abort(reason)
    await assert.rejects(holding, (err: unknown) => isCallerAbort(err, reason))
    assert.equal(mesh.metrics.snapshot().limits['cluster[bulkhead]']?.concurrency?.active, 0, 'the slot was released')
  })

  test('during a retry back-off', async () => {
    const before = failing.seen.length
    const retriesBefore = mesh.metrics.snapshot().resilience['failing']?.retries ?? 0
    // The back-off is jittered in [0, 20 s): a retry may (rarely) go before the abort; none may after.
    let atAbort = 0
    await abortBoth(mesh, 'http://retrying/x', 150, () => {
      atAbort = failing.seen.length
    })
    await sleep(50)
    const tries = atAbort - before
    assert.ok(tries >= 2, `each request was tried (${tries})`)
    assert.equal(failing.seen.length, atAbort, 'nothing was sent after the abort: the pending retries were never sent')
    assert.equal((mesh.metrics.snapshot().resilience['failing']?.retries ?? 0) - retriesBefore, tries, 'each failed try scheduled one retry')
  })

  test('while the response body streams', async () => {
    // mesh.fetch: the body read fails with the mesh's abort error.
    const ac = new AbortController()
    const res = await mesh.fetch('http://streaming/x', { signal: ac.signal })
    assert.equal(res.status, 200)
    const reader = res.body!.getReader()
    assert.equal(new TextDecoder().decode((await reader.read()).value), 'first chunk')
    const reason = new Error('enough')
    ac.abort(reason)
    await assert.rejects(reader.read(), (err: unknown) => isCallerAbort(err, reason))

    // A raw dispatch: the handler's onResponseError gets the same error.
    const reason2 = new Error('enough (dispatch)')
    const error = await new Promise<Error>((resolve) => {
      mesh.dispatcher.dispatch({ origin: 'http://streaming', path: '/y', method: 'GET' }, {
        onRequestStart() {},
        onResponseStart() {},
        onResponseData(controller) {
          controller.abort(reason2)
        },
        onResponseEnd() {
          resolve(new Error('ended without the abort'))
        },
        onResponseError(_c, err) {
          resolve(err)
        },
      })
    })
    isCallerAbort(error, reason2)
    await sleep(20)
    assert.equal(mesh.metrics.snapshot().outbound.clusters['streaming']?.inFlight, 0)
  })

  test('to a host outside the registry (pass-through)', async () => {
    await abortBoth(mesh, `${slow.address}/passthrough`, 50)
  })

  test('an abort before the request starts', async () => {
    const ac = new AbortController()
    const reason = new Error('never mind')
    ac.abort(reason)
    await assert.rejects(mesh.fetch('http://slow/x', { signal: ac.signal }), (err: unknown) => isCallerAbort(err, reason))
  })
})

describe('a caller abort while waiting for a shared (Redis) quota', { skip: redisServerAvailable() ? false : 'redis-server not installed' }, () => {
  let redis: RedisServer
  before(async () => {
    redis = await startRedis()
  })
  after(async () => {
    redis.resume()
    await redis.stop()
  })

  test('Redis hung: the request waits for the quota; the abort ends it at once with the coded error', async () => {
    const mesh = createMesh({
      config: {
        clusters: [{ name: 'fast', endpoints: [{ address: fast.address }], rateLimit: { maxTokens: 1000, fillInterval: '1s', global: { redis: redis.url, requestsPerUnit: 1000, unit: 'minute', timeout: '20s', prefix: `abort-${process.pid}` } } }],
        virtualHosts: [{ name: 'quota', domains: ['quota'], routes: [{ match: { prefix: '/' }, route: { cluster: 'fast' } }] }],
      },
    })
    try {
      // Warm until Redis answers the quota: a first connect slower than the limiter's
      // connect bound (a loaded machine) leaves it in fallback, which decides at once.
      const quotaState = (): string | undefined => Object.values(mesh.metrics.snapshot().limits).find((l) => l.global !== undefined)?.global?.state
      for (let i = 0; i < 50; i++) {
        const warm = await mesh.fetch('http://quota/warm')
        assert.equal(warm.status, 200)
        await warm.text()
        if (quotaState() === 'ok') break
        await sleep(100)
      }
      assert.equal(quotaState(), 'ok', 'Redis answers the quota before it hangs')
      redis.pause()
      const before = fast.seen.length
      await abortBoth(mesh, 'http://quota/x', 50)
      assert.equal(fast.seen.length, before, 'the aborted requests were never sent')
    } finally {
      redis.resume()
      await mesh.close()
    }
  })
})
