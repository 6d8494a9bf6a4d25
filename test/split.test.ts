import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { request } from 'undici'
import { ConfigError, createMesh, isMeshError, type MeshConfig } from '../src/index.js'
import { reviewsCluster, startUpstream, type Upstream } from './helpers/upstream.js'

let v1: Upstream
let v2: Upstream
let v3: Upstream

before(async () => {
  v1 = await startUpstream('v1')
  v2 = await startUpstream('v2')
  v3 = await startUpstream('v3')
})
after(async () => {
  await Promise.all([v1.close(), v2.close(), v3.close()])
})

function config(hashPolicy = false): MeshConfig {
  const cluster = reviewsCluster(v1, v2)
  cluster.endpoints.push({ address: v3.address, labels: { version: 'v3' } })
  cluster.subsets.push({ name: 'v3', labels: { version: 'v3' } })
  return {
    clusters: [cluster],
    virtualHosts: [{
      name: 'reviews',
      domains: ['reviews'],
      routes: [
        { match: { prefix: '/', headers: [{ name: 'end-user', exact: 'jason' }] }, route: { cluster: 'reviews', subset: 'v3' } },
        { match: { prefix: '/' }, route: { cluster: 'reviews', subset: 'v1', ...(hashPolicy ? { hashPolicy: [{ header: { name: 'x-user' } }] } : {}) } },
      ],
    }],
  }
}

/** Sends n requests, `concurrency` at a time; counts the subsets that served them. */
async function sample(mesh: ReturnType<typeof createMesh>, n: number, headers: (i: number) => Record<string, string> = () => ({}), concurrency = 16) {
  const counts: Record<string, number> = {}
  const bySender = new Map<string, string>()
  let next = 0
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < n) {
      const i = next++
      const h = headers(i)
      const res = await request('http://reviews/', { dispatcher: mesh.dispatcher, headers: h })
      await res.body.dump()
      const subset = String(res.headers['x-sidecarless-subset'])
      counts[subset] = (counts[subset] ?? 0) + 1
      if (h['x-user'] !== undefined) bySender.set(h['x-user'], subset)
    }
  }))
  return { counts, bySender }
}

describe('mesh.traffic.split', () => {
  test('10,000 requests at 90/10 land within ±2 points', async () => {
    const mesh = createMesh({ config: config() })
    try {
      const applied = await mesh.traffic.split('reviews', { v1: 90, v2: 10 })
      assert.equal(applied.version, 2)
      const { counts } = await sample(mesh, 10_000)
      const v2share = ((counts['v2'] ?? 0) / 10_000) * 100
      assert.ok(Math.abs(v2share - 10) <= 2, `v2 got ${v2share.toFixed(2)}%`)
      assert.equal((counts['v1'] ?? 0) + (counts['v2'] ?? 0), 10_000, 'subsets not named get nothing')
    } finally {
      await mesh.close()
    }
  })

  test('get() reports the weights; subsets not named get 0; the header route is untouched', async () => {
    const mesh = createMesh({ config: config() })
    try {
      assert.deepEqual(mesh.traffic.get('reviews'), { v1: 100 })
      await mesh.traffic.split('reviews', { v1: 50, v2: 50 })
      assert.deepEqual(mesh.traffic.get('reviews'), { v1: 50, v2: 50, v3: 0 })
      const jason = await request('http://reviews/', { dispatcher: mesh.dispatcher, headers: { 'end-user': 'jason' } })
      await jason.body.dump()
      assert.equal(jason.headers['x-sidecarless-subset'], 'v3')
      await mesh.traffic.split('reviews', { v2: 1 })
      assert.deepEqual(mesh.traffic.get('reviews'), { v1: 0, v2: 100, v3: 0 })
      const { counts } = await sample(mesh, 50)
      assert.deepEqual(counts, { v2: 50 })
    } finally {
      await mesh.close()
    }
  })

  test('a cluster name splits every catch-all route that sends to it', async () => {
    const mesh = createMesh({
      config: {
        ...config(),
        virtualHosts: [
          { name: 'a', domains: ['a'], routes: [{ match: { prefix: '/' }, route: { cluster: 'reviews' } }] },
          { name: 'b', domains: ['b'], routes: [{ match: { prefix: '/' }, route: { cluster: 'reviews', subset: 'v1' } }] },
        ],
      },
    })
    try {
      await mesh.traffic.split('reviews', { v3: 100 })
      for (const host of ['a', 'b']) {
        const res = await request(`http://${host}/`, { dispatcher: mesh.dispatcher })
        await res.body.dump()
        assert.equal(res.headers['x-sidecarless-subset'], 'v3', host)
      }
    } finally {
      await mesh.close()
    }
  })

  test('unknown subset: rejected by validation with a coded error; the running split stays', async () => {
    const mesh = createMesh({ config: config() })
    try {
      await mesh.traffic.split('reviews', { v1: 80, v2: 20 })
      const rejected = new Promise<ConfigError>((resolve) => mesh.once('configRejected', resolve))
      await assert.rejects(mesh.traffic.split('reviews', { v1: 50, v9: 50 }), (err: unknown) => {
        assert.ok(err instanceof ConfigError)
        assert.equal(err.code, 'SIDECARLESS_ERR_INVALID_CONFIG')
        const issue = err.issues.find((i) => i.code === 'UNKNOWN_SUBSET')
        assert.ok(issue, 'an UNKNOWN_SUBSET issue')
        assert.match(issue.path, /^virtualHosts\[0\]\.routes\[1\]\.route\.weightedClusters\[\d\]\.subset$/)
        assert.match(issue.message, /v9/)
        return true
      })
      assert.ok((await rejected) instanceof ConfigError)
      assert.deepEqual(mesh.traffic.get('reviews'), { v1: 80, v2: 20, v3: 0 })
      assert.equal(mesh.version, 2)
    } finally {
      await mesh.close()
    }
  })

  test('unknown names and bad weights are coded errors', async () => {
    const mesh = createMesh({ config: config() })
    try {
      await assert.rejects(mesh.traffic.split('ratings', { v1: 100 }), (e: unknown) => isMeshError(e, 'SIDECARLESS_ERR_UNKNOWN_TARGET'))
      assert.throws(() => mesh.traffic.get('ratings'), (e: unknown) => isMeshError(e, 'SIDECARLESS_ERR_UNKNOWN_TARGET'))
      await assert.rejects(mesh.traffic.split('reviews', { v1: -1, v2: 101 }), (e: unknown) => isMeshError(e, 'SIDECARLESS_ERR_INVALID_ARGUMENT'))
      await assert.rejects(mesh.traffic.split('reviews', { v1: 0, v2: 0 }), (e: unknown) => isMeshError(e, 'SIDECARLESS_ERR_INVALID_ARGUMENT'))
      await assert.rejects(mesh.traffic.split('reviews', { v1: 12.5 }), (e: unknown) => isMeshError(e, 'SIDECARLESS_ERR_INVALID_ARGUMENT'))
      await assert.rejects(mesh.traffic.split('reviews', null as never), (e: unknown) => isMeshError(e, 'SIDECARLESS_ERR_INVALID_ARGUMENT'))
      assert.equal(mesh.version, 1)
    } finally {
      await mesh.close()
    }
  })

  test('with a hash policy the split is sticky, and a weight change moves only the users it must', async () => {
    const mesh = createMesh({ config: config(true) })
    try {
      await mesh.traffic.split('reviews', { v1: 90, v2: 10 })
      const users = (i: number) => ({ 'x-user': `user-${i % 500}` })
      const first = await sample(mesh, 2000, users)
      const second = await sample(mesh, 2000, users)
      assert.deepEqual(second.bySender, first.bySender, 'every user kept their version while the weights held')
      const onV2 = [...first.bySender.values()].filter((s) => s === 'v2').length
      assert.ok(onV2 > 25 && onV2 < 75, `about 10% of 500 users on v2 (${onV2})`)

      await mesh.traffic.split('reviews', { v1: 80, v2: 20 })
      const third = await sample(mesh, 2000, users)
      for (const [user, subset] of first.bySender) {
        if (subset === 'v2') assert.equal(third.bySender.get(user), 'v2', `${user} stayed on v2 when its share grew`)
      }
      const nowV2 = [...third.bySender.values()].filter((s) => s === 'v2').length
      assert.ok(nowV2 > onV2, 'more users on v2 after the shift')
    } finally {
      await mesh.close()
    }
  })
})
