import assert from 'node:assert/strict'
import { once } from 'node:events'
import type http from 'node:http'
import type { AddressInfo } from 'node:net'
import { after, before, describe, test } from 'node:test'
import { request } from 'undici'
import { createMesh, isMeshError, type MeshConfig } from '../src/index.js'
import { echo, startUpstream, type Upstream } from './helpers/upstream.js'
import { redisServerAvailable, startRedis } from './helpers/redis.js'

async function listen(server: http.Server): Promise<string> {
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`
}

async function closeServer(server: http.Server): Promise<void> {
  server.closeAllConnections()
  await new Promise<void>((resolve) => server.close(() => resolve()))
}

describe('inbound rate limits', () => {
  test('the listener bucket answers 429 local_rate_limited with x-ratelimit headers; the app never sees refused requests', async () => {
    const mesh = createMesh({ config: { listener: { rateLimit: { maxTokens: 3, fillInterval: '1h', responseHeaders: true } } } })
    let served = 0
    const server = mesh.createServer((_req, res) => {
      served++
      res.end('ok')
    })
    const url = await listen(server)
    try {
      const statuses: number[] = []
      let limited: Awaited<ReturnType<typeof request>> | undefined
      for (let i = 0; i < 5; i++) {
        const res = await request(url)
        statuses.push(res.statusCode)
        if (res.statusCode === 429) limited ??= res
        if (i === 0) {
          assert.equal(res.headers['x-ratelimit-limit'], '3')
          assert.equal(res.headers['x-ratelimit-remaining'], '2')
        }
        if (res !== limited) await res.body.dump()
      }
      assert.deepEqual(statuses, [200, 200, 200, 429, 429])
      assert.equal(served, 3)
      assert.ok(limited)
      assert.equal(await limited.body.text(), 'local_rate_limited')
      assert.equal(limited.headers['x-sidecarless-response-flags'], 'RL')
      assert.equal(limited.headers['x-ratelimit-remaining'], '0')
      const snap = mesh.metrics.snapshot()
      assert.equal(snap.limits['listener']?.allowed, 3)
      assert.equal(snap.limits['listener']?.limited, 2)
      assert.equal(snap.inbound.routes['(default)']?.errors.rate_limited, 2)
      assert.match(mesh.metrics.prometheus(), /^sidecarless_ratelimit_limited_total\{limiter="listener"\} 2$/m)
    } finally {
      await closeServer(server)
      await mesh.close()
    }
  })

  test('descriptors give each client (by header) its own bucket; routes have their own limits', async () => {
    const mesh = createMesh({
      config: {
        listener: {
          routes: [{
            name: 'api',
            match: { prefix: '/api' },
            rateLimit: { maxTokens: 100, fillInterval: '1h', descriptors: [{ key: 'header', name: 'x-user', maxTokens: 2, fillInterval: '1h' }] },
          }],
        },
      },
    })
    const server = mesh.createServer((_req, res) => res.end('ok'))
    const url = await listen(server)
    try {
      const status = async (path: string, user?: string): Promise<number> => {
        const res = await request(`${url}${path}`, { headers: user === undefined ? {} : { 'x-user': user } })
        await res.body.dump()
        return res.statusCode
      }
      assert.deepEqual([await status('/api', 'alice'), await status('/api', 'alice'), await status('/api', 'alice')], [200, 200, 429])
      assert.deepEqual([await status('/api', 'bob'), await status('/api', 'bob')], [200, 200], 'bob has a bucket of his own')
      assert.equal(await status('/other'), 200, 'other routes are not limited')
    } finally {
      await closeServer(server)
      await mesh.close()
    }
  })

  test('a bucket refills from elapsed time, with no timer', async () => {
    const mesh = createMesh({ config: { listener: { rateLimit: { maxTokens: 1, fillInterval: '100ms' } } } })
    const server = mesh.createServer((_req, res) => res.end('ok'))
    const url = await listen(server)
    try {
      const code = async (): Promise<number> => {
        const r = await request(url)
        await r.body.dump()
        return r.statusCode
      }
      assert.equal(await code(), 200)
      assert.equal(await code(), 429)
      await new Promise((r) => setTimeout(r, 150))
      assert.equal(await code(), 200)
    } finally {
      await closeServer(server)
      await mesh.close()
    }
  })

  test('a route concurrency limit queues, then refuses with 503 UO; slots free when responses close', async () => {
    const mesh = createMesh({ config: { listener: { routes: [{ name: 'slow', match: { prefix: '/' }, concurrencyLimit: { maxConcurrent: 1, maxQueue: 1, queueTimeout: '2s' } }] } } })
    let release: () => void = () => undefined
    const gate = new Promise<void>((r) => { release = r })
    const server = mesh.createServer((_req, res) => {
      void gate.then(() => res.end('done'))
    })
    const url = await listen(server)
    try {
      const first = request(url)
      const second = request(url)
      await new Promise((r) => setTimeout(r, 50))
      const third = await request(url)
      assert.equal(third.statusCode, 503)
      assert.equal(third.headers['x-sidecarless-response-flags'], 'UO')
      await third.body.dump()
      release()
      assert.equal((await first).statusCode, 200)
      assert.equal((await second).statusCode, 200, 'the queued request ran when the slot freed')
      await (await first).body.dump()
      await (await second).body.dump()
      const stats = mesh.metrics.snapshot().limits['listener.route[slow]']
      assert.equal(stats?.concurrency?.active, 0)
      assert.equal(stats?.concurrency?.rejectedFull, 1)
    } finally {
      await closeServer(server)
      await mesh.close()
    }
  })
})

describe('outbound limits', () => {
  let up: Upstream
  let slow: Upstream
  before(async () => {
    up = await startUpstream('up')
    slow = await startUpstream('slow', (req, res, name) => setTimeout(() => echo(req, res, name), 100))
  })
  after(async () => {
    await up.close()
    await slow.close()
  })

  function config(extra: Partial<MeshConfig> = {}): MeshConfig {
    return {
      clusters: [
        { name: 'up', endpoints: [{ address: up.address }], rateLimit: { maxTokens: 2, fillInterval: '1h' } },
        { name: 'slow', endpoints: [{ address: slow.address }], concurrencyLimit: { maxConcurrent: 1, maxQueue: 1, queueTimeout: '1s' } },
      ],
      virtualHosts: [
        { name: 'up', domains: ['up'], routes: [{ match: { prefix: '/' }, route: { cluster: 'up' } }] },
        { name: 'limited', domains: ['limited'], routes: [{ match: { prefix: '/' }, route: { cluster: 'slow', rateLimit: { maxTokens: 1, fillInterval: '1h' } } }] },
        { name: 'slow', domains: ['slow'], routes: [{ match: { prefix: '/' }, route: { cluster: 'slow' } }] },
      ],
      ...extra,
    }
  }

  test('a cluster rate limit answers 429 local_rate_limited (flag RL), like Envoy, and the request is never sent', async () => {
    const mesh = createMesh({ config: config() })
    try {
      const before = up.seen.length
      assert.equal((await mesh.fetch('http://up/1')).status, 200)
      assert.equal((await mesh.fetch('http://up/2')).status, 200)
      const refused = await mesh.fetch('http://up/3')
      assert.equal(refused.status, 429)
      assert.equal(refused.headers.get('x-sidecarless-response-flags'), 'RL')
      assert.equal(refused.headers.get('x-sidecarless-cluster'), 'up')
      assert.equal(await refused.text(), 'local_rate_limited')
      const viaUndici = await request('http://up/4', { dispatcher: mesh.dispatcher })
      assert.equal(viaUndici.statusCode, 429)
      assert.equal(viaUndici.headers['x-sidecarless-response-flags'], 'RL')
      await viaUndici.body.text()
      assert.equal(up.seen.length - before, 2)
      const snap = mesh.metrics.snapshot()
      assert.equal(snap.limits['cluster[up]']?.limited, 2)
      assert.equal(snap.outbound.clusters['up']?.errors.rate_limited, 2)
    } finally {
      await mesh.close()
    }
  })

  test('a route rate limit applies to that route only', async () => {
    const mesh = createMesh({ config: config() })
    try {
      assert.equal((await mesh.fetch('http://limited/a')).status, 200)
      const refused = await mesh.fetch('http://limited/b')
      assert.equal(refused.status, 429)
      assert.equal(refused.headers.get('x-sidecarless-response-flags'), 'RL')
      await refused.text()
      assert.equal((await mesh.fetch('http://slow/c')).status, 200, 'the same cluster through another route')
    } finally {
      await mesh.close()
    }
  })

  test('with responseHeaders, a refused outbound request carries x-ratelimit-* like an inbound one', async () => {
    const c = config()
    c.clusters![0]!.rateLimit = { maxTokens: 1, fillInterval: '1h', responseHeaders: true }
    const mesh = createMesh({ config: c })
    try {
      await (await mesh.fetch('http://up/1')).text()
      const refused = await mesh.fetch('http://up/2')
      assert.equal(refused.status, 429)
      assert.equal(refused.headers.get('x-ratelimit-remaining'), '0')
      await refused.text()
    } finally {
      await mesh.close()
    }
  })

  test('a cluster bulkhead queues one and answers the rest 503 (flag UO, x-sidecarless-overflow: concurrency_limit)', async () => {
    const mesh = createMesh({ config: config() })
    try {
      const results = await Promise.all([1, 2, 3].map((i) => mesh.fetch(`http://slow/${i}`).then(async (r) => ({ status: r.status, flags: r.headers.get('x-sidecarless-response-flags'), overflow: r.headers.get('x-sidecarless-overflow'), body: await r.text() }))))
      const ok = results.filter((r) => r.status === 200)
      const refused = results.filter((r) => r.status !== 200)
      assert.equal(ok.length, 2)
      assert.deepEqual(refused, [{ status: 503, flags: 'UO', overflow: 'concurrency_limit', body: 'concurrency limit exceeded' }])
      const snap = mesh.metrics.snapshot()
      assert.equal(snap.limits['cluster[slow]']?.concurrency?.active, 0)
      assert.equal(snap.outbound.clusters['slow']?.errors.overflow, 1)
    } finally {
      await mesh.close()
    }
  })

  test('a bulkhead queue wait that times out is 503 UO too', async () => {
    const c = config()
    c.clusters![1]!.concurrencyLimit = { maxConcurrent: 1, maxQueue: 1, queueTimeout: '20ms' }
    const mesh = createMesh({ config: c })
    try {
      const [first, second] = await Promise.all([mesh.fetch('http://slow/1'), mesh.fetch('http://slow/2')])
      assert.equal(first.status, 200)
      assert.equal(second.status, 503)
      assert.equal(second.headers.get('x-sidecarless-overflow'), 'concurrency_limit')
      assert.equal(await second.text(), 'concurrency limit queue timeout')
      await first.text()
    } finally {
      await mesh.close()
    }
  })

  test('an abort while queued gives the place up; limiter state survives an unrelated config change', async () => {
    const mesh = createMesh({ config: config() })
    try {
      const first = mesh.fetch('http://slow/x')
      const ac = new AbortController()
      const queued = mesh.fetch('http://slow/y', { signal: ac.signal })
      await new Promise((r) => setTimeout(r, 20))
      ac.abort()
      await assert.rejects(queued, (err: unknown) => isMeshError(err, 'SIDECARLESS_ERR_ABORTED'))
      assert.equal((await first).status, 200)
      assert.equal((await mesh.fetch('http://up/1')).status, 200)
      await mesh.update({ ...config(), outboundTrafficPolicy: { mode: 'ALLOW_ANY' } })
      assert.equal((await mesh.fetch('http://up/2')).status, 200)
      assert.equal((await mesh.fetch('http://up/3')).status, 429, 'the bucket was kept, not refilled, by the update')
    } finally {
      await mesh.close()
    }
  })
})

describe('a quota shared through Redis', { skip: redisServerAvailable() ? false : 'redis-server not installed' }, () => {
  test('two meshes share one inbound quota; with Redis down the local bucket decides; it recovers', async () => {
    const redis = await startRedis()
    const config = (): MeshConfig => ({
      listener: {
        rateLimit: {
          maxTokens: 1000,
          fillInterval: '1h',
          global: { redis: redis.url, requestsPerUnit: 30, unit: 'hour', timeout: '500ms', prefix: `sidecarless:test:${process.pid}:`, descriptor: { key: 'header', name: 'x-user' } },
        },
      },
    })
    const meshes = [createMesh({ config: config() }), createMesh({ config: config() })]
    const servers = meshes.map((m) => m.createServer((_req, res) => res.end('ok')))
    const urls = await Promise.all(servers.map(listen))
    try {
      const counts = { 200: 0, 429: 0 }
      for (let i = 0; i < 60; i++) {
        const res = await request(urls[i % 2] as string, { headers: { 'x-user': 'alice' } })
        await res.body.dump()
        counts[res.statusCode as 200 | 429]++
      }
      assert.deepEqual(counts, { 200: 30, 429: 30 }, 'the quota of 30 held across both instances')
      const global = meshes[0]?.metrics.snapshot().limits['listener']?.global
      assert.equal(global?.state, 'ok')
      assert.ok((global?.limited ?? 0) > 0)

      await redis.kill()
      const started = Date.now()
      // alice is known to be over quota for this window; bob's quota has to be asked of Redis.
      const res = await request(urls[0] as string, { headers: { 'x-user': 'bob' } })
      await res.body.dump()
      assert.equal(res.statusCode, 200, 'with Redis down the local bucket (1000 tokens) admits')
      assert.ok(Date.now() - started < 10_000, 'no request waits on a dead Redis')
      assert.equal(meshes[0]?.metrics.snapshot().limits['listener']?.global?.state, 'fallback')

      await redis.restart()
      let state: string | undefined
      for (let i = 0; i < 100 && state !== 'ok'; i++) {
        const r = await request(urls[0] as string, { headers: { 'x-user': 'carol' } })
        await r.body.dump()
        state = meshes[0]?.metrics.snapshot().limits['listener']?.global?.state
        if (state !== 'ok') await new Promise((resolve) => setTimeout(resolve, 50))
      }
      assert.equal(state, 'ok', 'back on the shared quota once Redis returns')
    } finally {
      await Promise.all(servers.map(closeServer))
      await Promise.all(meshes.map((m) => m.close()))
      await redis.stop()
    }
  })

  test('an outbound shared quota used up answers 429 rate_limited (flag RL); the request is never sent', async () => {
    const redis = await startRedis()
    const up = await startUpstream('quota')
    const mesh = createMesh({
      config: {
        clusters: [{ name: 'quota', endpoints: [{ address: up.address }], rateLimit: { maxTokens: 1000, fillInterval: '1h', global: { redis: redis.url, requestsPerUnit: 2, unit: 'hour', timeout: '2s', prefix: `sidecarless:test:out:${process.pid}:` } } }],
        virtualHosts: [{ name: 'quota', domains: ['quota'], routes: [{ match: { prefix: '/' }, route: { cluster: 'quota' } }] }],
      },
    })
    try {
      for (let i = 0; i < 2; i++) assert.equal((await (await mesh.fetch('http://quota/x')).text()), `quota /x`)
      const refused = await mesh.fetch('http://quota/y')
      assert.equal(refused.status, 429)
      assert.equal(refused.headers.get('x-sidecarless-response-flags'), 'RL')
      assert.equal(await refused.text(), 'rate_limited')
      assert.equal(up.seen.length, 2)
    } finally {
      await mesh.close()
      await up.close()
      await redis.stop()
    }
  })
})
