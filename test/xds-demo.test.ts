/**
 * Three services in one process, driven entirely by our control plane over ADS, with no
 * config file on any of them: productpage calls reviews (v1 and v2), each reviews calls
 * ratings. A split moved at the control plane changes what productpage sees.
 */
import assert from 'node:assert/strict'
import type http from 'node:http'
import type { AddressInfo } from 'node:net'
import { after, before, describe, test } from 'node:test'
import { createControlPlane, createMesh, type ControlPlane, type Mesh, type MeshConfig } from '../src/index.js'

let cp: ControlPlane
const meshes: Mesh[] = []
const servers: http.Server[] = []

function bootstrap(node: string): object {
  return { xds_servers: [{ server_uri: cp.address, channel_creds: [{ type: 'insecure' }] }], node: { id: node, metadata: { GENERATOR: 'grpc' } } }
}

/** A service: a mesh with xDS, wrapping a server on 127.0.0.1:0. */
async function service(name: string, handler: (mesh: Mesh, req: http.IncomingMessage) => Promise<string>): Promise<{ mesh: Mesh; port: number }> {
  const mesh = createMesh({ service: name, xds: { bootstrap: bootstrap(name), resourceTimeout: '5s' } })
  meshes.push(mesh)
  const server = mesh.createServer((req, res) => {
    handler(mesh, req).then((body) => res.end(body), (err: Error) => {
      res.statusCode = 500
      res.end(err.message)
    })
  })
  servers.push(server)
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return { mesh, port: (server.address() as AddressInfo).port }
}

function fleet(ratings: number, v1: number, v2: number, weights: { v1: number; v2: number }): MeshConfig {
  return {
    clusters: [
      {
        name: 'reviews',
        endpoints: [{ address: `127.0.0.1:${v1}`, labels: { version: 'v1' } }, { address: `127.0.0.1:${v2}`, labels: { version: 'v2' } }],
        subsets: [{ name: 'v1', labels: { version: 'v1' } }, { name: 'v2', labels: { version: 'v2' } }],
      },
      { name: 'ratings', endpoints: [{ address: `127.0.0.1:${ratings}` }] },
    ],
    virtualHosts: [
      {
        name: 'reviews',
        domains: ['reviews'],
        routes: [{ match: { prefix: '/' }, route: { weightedClusters: [{ cluster: 'reviews', subset: 'v1', weight: weights.v1 }, { cluster: 'reviews', subset: 'v2', weight: weights.v2 }] } }],
      },
      { name: 'ratings', domains: ['ratings'], routes: [{ match: { prefix: '/' }, route: { cluster: 'ratings', retryPolicy: { retryOn: ['5xx'], numRetries: 1 } } }] },
    ],
  }
}

let productpage: Mesh

before(async () => {
  // The control plane starts with a placeholder fleet; the real ports come once the services listen.
  cp = await createControlPlane({ config: { clusters: [{ name: 'boot', endpoints: [{ address: '127.0.0.1:1' }] }] }, listen: '127.0.0.1:0', log: () => undefined })
  const ratings = await service('ratings', () => Promise.resolve('stars:5'))
  const reviews = async (version: string) => service(`reviews-${version}`, async (mesh) => {
    const res = await mesh.fetch('http://ratings/stars')
    return `reviews-${version} (${await res.text()})`
  })
  const v1 = await reviews('v1')
  const v2 = await reviews('v2')
  await cp.update(fleet(ratings.port, v1.port, v2.port, { v1: 100, v2: 0 }))
  productpage = createMesh({ service: 'productpage', xds: { bootstrap: bootstrap('productpage'), listeners: ['reviews:80'], resourceTimeout: '5s' } })
  meshes.push(productpage)
})

after(async () => {
  await Promise.all(meshes.map((m) => m.close()))
  for (const s of servers) {
    s.closeAllConnections()
    s.close()
  }
  await cp.close()
})

/** Until productpage's config in force has the control plane's weights (the ACK goes out before the swap). */
async function settled(v1: number): Promise<void> {
  const deadline = Date.now() + 5_000
  for (;;) {
    const route = productpage.config.virtualHosts?.find((v) => v.name === 'reviews:80')?.routes.at(-1)?.route
    const first = route?.weightedClusters?.find((w) => w.cluster.includes('|v1|'))
    if (first?.weight === v1 && cp.clients().every((c) => c.inSync)) return
    if (Date.now() > deadline) assert.fail(`productpage did not get the split: ${JSON.stringify(route)}`)
    await new Promise((r) => setTimeout(r, 20))
  }
}

async function counts(n: number): Promise<Record<string, number>> {
  const out: Record<string, number> = {}
  for (let i = 0; i < n; i++) {
    const body = await (await productpage.fetch('http://reviews/product')).text()
    out[body] = (out[body] ?? 0) + 1
  }
  return out
}

describe('three services driven by the control plane, no config file', () => {
  test('productpage → reviews → ratings, every hop routed by what the control plane serves', async () => {
    assert.equal(await productpage.xds?.ready(), true)
    assert.deepEqual(await counts(5), { 'reviews-v1 (stars:5)': 5 })
    assert.equal(productpage.xds?.status().state, 'CONNECTED')
    const clients = cp.clients()
    assert.ok(clients.length >= 4, `every mesh is a client of the control plane (${clients.length})`)
  })

  test('a split moved at the control plane changes what productpage sees', async () => {
    await cp.traffic.split('reviews', { v1: 0, v2: 100 })
    await settled(0)
    assert.deepEqual(await counts(5), { 'reviews-v2 (stars:5)': 5 })
    await cp.traffic.split('reviews', { v1: 50, v2: 50 })
    await settled(50)
    const c = await counts(200)
    const v1 = c['reviews-v1 (stars:5)'] ?? 0
    assert.equal(v1 + (c['reviews-v2 (stars:5)'] ?? 0), 200)
    // 50/50 over 200 calls: 100 ± 35 is a 5-sigma band.
    assert.ok(v1 > 65 && v1 < 135, JSON.stringify(c))
  })
})
