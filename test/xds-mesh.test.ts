/**
 * What the resources say is what the mesh does: retries, hash-based balancing and
 * circuit-breaker thresholds from istiod-shaped resources; a config file and xDS together
 * (the file first); `mesh.update` keeping the xDS part; and every request ending exactly
 * once while the server moves the routes under load.
 */
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { request } from 'undici'
import { createMesh, type Mesh, type MeshConfig } from '../src/index.js'
import { ResourceTable, ScriptedAdsServer } from './helpers/ads-server.js'
import { agentBootstrap, apiListener, clusterKey, edsCluster, loadAssignment, routeConfig } from './helpers/istiod.js'
import { startUpstream, type Upstream } from './helpers/upstream.js'

const HOST = 'reviews.default.svc.cluster.local'
const NAME = `${HOST}:9080`
const C1 = clusterKey(HOST, 9080, 'v1')
const C2 = clusterKey(HOST, 9080, 'v2')
let server: ScriptedAdsServer
let table: ResourceTable
let a: Upstream
let b: Upstream
let flaky: Upstream
let flakyCalls = 0

before(async () => {
  server = await ScriptedAdsServer.start()
  table = new ResourceTable(server)
  a = await startUpstream('a')
  b = await startUpstream('b')
  // Fails every odd request with 503: a retry on 5xx always succeeds.
  flaky = await startUpstream('flaky', (_req, res, name) => {
    flakyCalls++
    if (flakyCalls % 2 === 1) {
      res.statusCode = 503
      res.end('try again')
    } else {
      res.end(name)
    }
  })
})
after(async () => {
  await server.stop()
  await Promise.all([a.close(), b.close(), flaky.close()])
})

function mesh(extra: { config?: MeshConfig } = {}): Mesh {
  return createMesh({ ...extra, xds: { bootstrap: agentBootstrap(server.address), listeners: [NAME], resourceTimeout: '3s' } })
}

describe('xDS resources drive the data path', () => {
  test('retry_policy, ring hash with a hash policy, max_requests: as the resources say', async () => {
    table
      .set('listener', apiListener(NAME, HOST, 9080))
      .set('route', routeConfig(HOST, 9080, [
        { prefix: '/flaky', to: C2, retry: { retry_on: '5xx', num_retries: 2 } },
        { to: C1, hashHeader: 'x-user' },
      ]))
      .set('cluster', edsCluster(C1, { ringHash: { min: 1024 }, maxRequests: 1 }), edsCluster(C2))
      .set('endpoint', loadAssignment(C1, [{ address: '127.0.0.1', port: a.port }, { address: '127.0.0.1', port: b.port }]), loadAssignment(C2, [{ address: '127.0.0.1', port: flaky.port }]))
    const m = mesh()
    try {
      assert.equal(await m.xds?.ready(), true)
      const c1 = m.config.clusters?.find((c) => c.name === C1)
      assert.equal(c1?.loadBalancer, 'ring_hash')
      assert.equal(c1?.circuitBreakers?.maxRequests, 1)
      for (let i = 0; i < 6; i++) {
        const res = await m.fetch(`http://${NAME}/flaky/${i}`)
        assert.equal(res.status, 200, 'the first try got 503; the retry policy retried it')
        await res.text()
      }
      // The same user always lands on the same endpoint (ring hash on x-user).
      const seen = new Map<string, Set<string>>()
      for (let i = 0; i < 40; i++) {
        const user = `u${i % 8}`
        const res = await m.fetch(`http://${NAME}/r`, { headers: { 'x-user': user } })
        const who = (await res.text()).split(' ')[0] as string
        seen.set(user, (seen.get(user) ?? new Set()).add(who))
      }
      for (const [user, endpoints] of seen) assert.equal(endpoints.size, 1, `${user} went to ${[...endpoints].join(', ')}`)
      // max_requests 1: a second request while one is active is shed at once (503 UO).
      const slowHeaders = { 'x-user': 'u0' }
      const results = await Promise.all([0, 1, 2, 3].map(async () => {
        const res = await m.fetch(`http://${NAME}/r`, { headers: slowHeaders })
        await res.text()
        return res.headers.get('x-sidecarless-response-flags') ?? String(res.status)
      }))
      assert.ok(results.includes('200') && results.includes('UO'), JSON.stringify(results))
    } finally {
      await m.close()
    }
  })

  test('a config file and xDS together: the file\'s routes first, xDS for the authorities it does not name; update() keeps the xDS part', async () => {
    table
      .set('listener', apiListener(NAME, HOST, 9080), apiListener('other:80', 'other', 80))
      .set('route', routeConfig(HOST, 9080, [{ to: C1 }]), routeConfig('other', 80, [{ to: C2 }]))
      .set('cluster', edsCluster(C1), edsCluster(C2))
      .set('endpoint', loadAssignment(C1, [{ address: '127.0.0.1', port: a.port }]), loadAssignment(C2, [{ address: '127.0.0.1', port: b.port }]))
    table.push()
    const file: MeshConfig = {
      clusters: [{ name: 'local', endpoints: [{ address: flaky.address }] }],
      virtualHosts: [{ name: 'reviews-override', domains: [NAME], routes: [{ match: { prefix: '/' }, route: { cluster: 'local' } }] }],
    }
    const m = mesh({ config: file })
    try {
      await m.xds?.ready()
      const viaFile = await m.fetch(`http://${NAME}/x`)
      await viaFile.text()
      assert.equal(viaFile.headers.get('x-sidecarless-cluster'), 'local', 'the file names this authority')
      const viaXds = await m.fetch('http://other/y')
      assert.equal(await viaXds.text(), 'b /y', 'the file does not name other:80: xDS answers')
      assert.ok(m.xds?.status().notes.some((n) => n.includes(NAME)))
      // update() replaces the file's part; the xDS part stays.
      await m.update({
        clusters: [{ name: 'local', endpoints: [{ address: a.address }] }, { name: 'local2', endpoints: [{ address: b.address }] }],
        virtualHosts: [{ name: 'mine', domains: ['mine'], routes: [{ match: { prefix: '/' }, route: { weightedClusters: [{ cluster: 'local', weight: 100 }, { cluster: 'local2', weight: 0 }] } }] }],
      })
      assert.equal(await (await m.fetch('http://mine/z')).text(), 'a /z')
      assert.equal(await (await m.fetch('http://other/y')).text(), 'b /y')
      // The file's own virtual host is split locally; the xDS part stays.
      await m.traffic.split('mine', { local: 0, local2: 100 })
      assert.equal(await (await m.fetch('http://mine/z')).text(), 'b /z')
      assert.equal(await (await m.fetch('http://other/y')).text(), 'b /y')
      assert.ok(m.config.virtualHosts?.some((v) => v.name === 'other:80'))
    } finally {
      await m.close()
    }
  })

  test('every request ends exactly once while the server moves the split back and forth', async () => {
    table
      .set('listener', apiListener(NAME, HOST, 9080))
      .set('route', routeConfig(HOST, 9080, [{ to: { [C1]: 50, [C2]: 50 } }]))
      .set('cluster', edsCluster(C1), edsCluster(C2))
      .set('endpoint', loadAssignment(C1, [{ address: '127.0.0.1', port: a.port }]), loadAssignment(C2, [{ address: '127.0.0.1', port: b.port }]))
    table.push()
    const m = mesh()
    try {
      await m.xds?.ready()
      let flips = 0
      let stop = false
      const flipper = (async () => {
        while (!stop) {
          flips++
          table.set('route', routeConfig(HOST, 9080, [{ to: flips % 2 === 0 ? { [C1]: 90, [C2]: 10 } : { [C1]: 10, [C2]: 90 } }]))
          table.push('route')
          await new Promise((r) => setTimeout(r, 5))
        }
      })()
      const statuses = new Map<number, number>()
      let done = 0
      const total = 600
      let next = 0
      await Promise.all(Array.from({ length: 20 }, async () => {
        while (next < total) {
          next++
          const res = await request(`http://${NAME}/`, { dispatcher: m.dispatcher })
          await res.body.dump()
          statuses.set(res.statusCode, (statuses.get(res.statusCode) ?? 0) + 1)
          done++
        }
      }))
      stop = true
      await flipper
      assert.equal(done, total)
      assert.deepEqual([...statuses], [[200, total]])
      assert.ok(flips > 5 && (m.xds?.status().counters.configsApplied ?? 0) > 2, `flips ${flips}, applied ${m.xds?.status().counters.configsApplied}`)
    } finally {
      await m.close()
    }
  })
})
