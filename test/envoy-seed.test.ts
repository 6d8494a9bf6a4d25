// The seed's Envoy demo, run through createMesh: a listener whose route splits 50/50 between
// a reachable v1 cluster and a v2 cluster that cannot be reached.
import assert from 'node:assert/strict'
import dns from 'node:dns'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { request } from 'undici'
import { createMesh, fromEnvoy } from '../src/index.js'
import { closedPort, startUpstream } from './helpers/upstream.js'

function bootstrap(v1Port: number, v2: string): string {
  return `
static_resources:
  listeners:
  - name: listener_0
    address:
      socket_address: { address: 0.0.0.0, port_value: 8080 }
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress_http
          route_config:
            name: local_route
            virtual_hosts:
            - name: reviews
              domains: ["*"]
              routes:
              - match: { prefix: "/" }
                route:
                  weighted_clusters:
                    clusters:
                    - { name: reviews_v1, weight: 50 }
                    - { name: reviews_v2, weight: 50 }
          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
  - name: reviews_v1
    connect_timeout: 0.25s
    type: STATIC
    lb_policy: ROUND_ROBIN
    load_assignment:
      cluster_name: reviews_v1
      endpoints:
      - lb_endpoints:
        - endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: ${v1Port} } } }
${v2}
`
}

async function shares(config: string, n: number) {
  const dir = mkdtempSync(join(tmpdir(), 'sidecarless-seed-'))
  const file = join(dir, 'envoy.yaml')
  writeFileSync(file, config)
  const mesh = createMesh({ config: file })
  const bodies = new Map<string, number>()
  try {
    assert.deepEqual(mesh.unsupported, [], 'the seed bootstrap translates completely')
    for (let i = 0; i < n; i++) {
      const res = await request('http://localhost:8080/productpage', { dispatcher: mesh.dispatcher })
      const text = `${res.statusCode} ${(await res.body.text()).split('.')[0]}`
      bodies.set(text, (bodies.get(text) ?? 0) + 1)
    }
  } finally {
    await mesh.close()
  }
  return bodies
}

test('50/50 split, v2 name does not resolve: half v1, half 503 no healthy upstream', async () => {
  const v1 = await startUpstream('v1')
  try {
    const v2 = `
  - name: reviews_v2
    connect_timeout: 0.25s
    type: STRICT_DNS
    load_assignment:
      cluster_name: reviews_v2
      endpoints:
      - lb_endpoints:
        - endpoint: { address: { socket_address: { address: reviews-v2.invalid, port_value: 9080 } } }`
    const got = await shares(bootstrap(v1.port, v2), 400)
    const ok = got.get('200 v1 /productpage') ?? 0
    const unhealthy = got.get('503 no healthy upstream') ?? 0
    assert.equal(ok + unhealthy, 400, JSON.stringify([...got]))
    assert.ok(ok > 140 && ok < 260, `about half served by v1: ${ok}`)
  } finally {
    await v1.close()
  }
})

test('50/50 split, v2 a LOGICAL_DNS name that does not resolve: a burst answers 503 UH at once, no lookup per request', async () => {
  const v1 = await startUpstream('v1')
  const dir = mkdtempSync(join(tmpdir(), 'sidecarless-seed-'))
  const file = join(dir, 'envoy.yaml')
  writeFileSync(file, bootstrap(v1.port, `
  - name: reviews_v2
    connect_timeout: 1s
    type: LOGICAL_DNS
    dns_refresh_rate: 3600s
    load_assignment:
      cluster_name: reviews_v2
      endpoints:
      - lb_endpoints:
        - endpoint: { address: { socket_address: { address: reviews-v2.invalid, port_value: 9080 } } }`))
  const mesh = createMesh({ config: file })
  const lookup = dns.lookup
  let lookups = 0
  try {
    assert.deepEqual(mesh.unsupported, [], 'the seed bootstrap translates completely')
    // The cluster resolves in the background, once (the refresh rate is an hour). Before its
    // answer and after it (the name does not exist; without a reachable DNS server, the
    // lookup fails) the cluster has no endpoint, so the burst need not wait for it.
    dns.lookup = ((...args: Parameters<typeof lookup>) => {
      lookups++
      return (lookup as (...a: unknown[]) => unknown)(...args)
    }) as typeof lookup
    const got = new Map<string, number>()
    // 1000 requests, 50 at a time: v2's answers need no connection; v1's half should not
    // open hundreds of sockets at once (a listen backlog overflow is not what this tests).
    await Promise.all(Array.from({ length: 50 }, async () => {
      for (let i = 0; i < 20; i++) {
        const res = await request('http://localhost:8080/productpage', { dispatcher: mesh.dispatcher })
        const text = `${res.statusCode} ${(await res.body.text()).split('.')[0]} ${String(res.headers['x-sidecarless-response-flags'] ?? '-')}`
        got.set(text, (got.get(text) ?? 0) + 1)
      }
    }))
    dns.lookup = lookup
    const ok = got.get('200 v1 /productpage -') ?? 0
    const unhealthy = got.get('503 no healthy upstream UH') ?? 0
    assert.equal(ok + unhealthy, 1000, JSON.stringify([...got]))
    assert.ok(ok > 400 && ok < 600, `about half served by v1: ${ok}`)
    assert.equal(lookups, 0, 'no DNS lookup on the request path')
  } finally {
    dns.lookup = lookup
    await mesh.close()
    await v1.close()
  }
})

test('50/50 split, v2 refuses connections: half v1, half 503 upstream connect error', async () => {
  const v1 = await startUpstream('v1')
  const port = await closedPort()
  try {
    const v2 = `
  - name: reviews_v2
    connect_timeout: 0.25s
    type: STATIC
    load_assignment:
      cluster_name: reviews_v2
      endpoints:
      - lb_endpoints:
        - endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: ${port} } } }`
    const got = await shares(bootstrap(v1.port, v2), 200)
    const ok = got.get('200 v1 /productpage') ?? 0
    const refused = got.get('503 upstream connect error or disconnect/reset before headers') ?? 0
    assert.equal(ok + refused, 200, JSON.stringify([...got]))
    assert.ok(ok > 60 && ok < 140, `about half served by v1: ${ok}`)
  } finally {
    await v1.close()
  }
})

test('fromEnvoy returns our model and what it could not translate', () => {
  const { config, unsupported } = fromEnvoy({
    admin: { access_log_path: '/dev/null', address: { socket_address: { address: '127.0.0.1', port_value: 9901 } } },
    static_resources: { clusters: [{ name: 'a', type: 'STATIC', dns_lookup_family: 'V4_ONLY' }] },
  })
  assert.equal(config.clusters?.[0]?.name, 'a')
  // The admin address is kept for `sidecarless proxy`'s admin endpoint.
  assert.deepEqual(config.admin, { address: '127.0.0.1:9901' })
  assert.deepEqual(unsupported.map((u) => u.path).sort(), ['admin.access_log_path', 'static_resources.clusters[0].dns_lookup_family'])
})
