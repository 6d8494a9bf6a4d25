// The peer header (x-sidecarless-peer) goes to clusters in the mesh, not to services outside
// it: `peerMetadata: false` on a cluster, set by hand, by Istio's ServiceEntry with
// `location: MESH_EXTERNAL`, or by an Envoy cluster whose metadata says `istio.external`.
import assert from 'node:assert/strict'
import { once } from 'node:events'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { after, before, describe, test } from 'node:test'
import { request } from 'undici'
import YAML from 'yaml'
import { createMesh, fromEnvoy, fromIstio, type MeshConfig } from '../src/index.js'

let upstream: http.Server
let port = 0
const seen: (string | undefined)[] = []

before(async () => {
  upstream = http.createServer((req, res) => {
    const v = req.headers['x-sidecarless-peer']
    seen.push(typeof v === 'string' ? v : undefined)
    res.end('ok')
  })
  upstream.listen(0, '127.0.0.1')
  await once(upstream, 'listening')
  port = (upstream.address() as AddressInfo).port
})
after(() => new Promise<void>((resolve) => upstream.close(() => resolve())))

async function peerSeenBy(config: MeshConfig, url: string): Promise<string | undefined> {
  const mesh = createMesh({ service: 'productpage', labels: { app: 'productpage', version: 'v1' }, config })
  try {
    const before = seen.length
    const res = await request(url, { dispatcher: mesh.dispatcher })
    assert.equal(res.statusCode, 200)
    await res.body.text()
    assert.equal(seen.length, before + 1)
    return seen.at(-1)
  } finally {
    await mesh.close()
  }
}

function twoClusters(external: Partial<MeshConfig['clusters'] extends (infer C)[] | undefined ? C : never>): MeshConfig {
  return {
    clusters: [
      { name: 'inside', endpoints: [{ address: `127.0.0.1:${port}` }] },
      { name: 'outside', endpoints: [{ address: `127.0.0.1:${port}` }], ...external },
    ],
    virtualHosts: [
      { name: 'inside', domains: ['inside'], routes: [{ match: { prefix: '/' }, route: { cluster: 'inside' } }] },
      { name: 'outside', domains: ['api.example.com'], routes: [{ match: { prefix: '/' }, route: { cluster: 'outside' } }] },
    ],
  }
}

describe('peerMetadata', () => {
  test('a cluster in the mesh gets the peer header; one with peerMetadata: false does not', async () => {
    const config = twoClusters({ peerMetadata: false })
    const inside = await peerSeenBy(config, 'http://inside/x')
    assert.ok(inside !== undefined && inside.includes('productpage'), `the peer header names this workload: ${inside}`)
    assert.equal(await peerSeenBy(config, 'http://api.example.com/x'), undefined)
  })

  test('Istio: a ServiceEntry with location MESH_EXTERNAL is a cluster without the peer header; MESH_INTERNAL keeps it', async () => {
    const docs = (location: string): string => `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: payments, namespace: default }
spec:
  hosts: [payments.example.com]
  location: ${location}
  resolution: STATIC
  ports: [{ number: 80, name: http, protocol: HTTP }]
  endpoints: [{ address: 127.0.0.1, ports: { http: ${port} } }]
`
    const external = fromIstio(YAML.parse(docs('MESH_EXTERNAL')) as unknown)
    const cluster = external.config.clusters?.find((c) => (c.endpoints ?? []).length > 0)
    assert.equal(cluster?.peerMetadata, false, JSON.stringify(external.config.clusters))
    assert.equal(await peerSeenBy(external.config, 'http://payments.example.com/x'), undefined)
    const internal = fromIstio(YAML.parse(docs('MESH_INTERNAL')) as unknown)
    assert.equal(internal.config.clusters?.find((c) => (c.endpoints ?? []).length > 0)?.peerMetadata, undefined)
    assert.ok((await peerSeenBy(internal.config, 'http://payments.example.com/x'))?.includes('productpage'))
  })

  test('Envoy: cluster metadata filter_metadata.istio.external: true (as istiod writes it) turns it off; other namespaces are reported', () => {
    const bootstrap = (metadata: unknown): unknown => ({
      static_resources: {
        clusters: [{ name: 'ext', type: 'STATIC', metadata, load_assignment: { cluster_name: 'ext', endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: port } } } }] }] } }],
      },
    })
    const marked = fromEnvoy(bootstrap({ filter_metadata: { istio: { external: true, services: [{ host: 'x' }] } } }))
    assert.equal(marked.config.clusters?.[0]?.peerMetadata, false)
    assert.deepEqual(marked.unsupported, [], 'istio keys other than external are passed over quietly')
    const other = fromEnvoy(bootstrap({ filter_metadata: { 'acme.io': { team: 'payments' } } }))
    assert.equal(other.config.clusters?.[0]?.peerMetadata, undefined)
    assert.ok(other.unsupported.some((u) => u.path.includes('acme.io') && /not imported/.test(u.message)), JSON.stringify(other.unsupported))
  })
})
