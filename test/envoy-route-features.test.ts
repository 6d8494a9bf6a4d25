/**
 * Route features Envoy users' configs carry, imported from Envoy YAML and run against real
 * upstreams: cluster_header (503 NC when absent or unknown), require_tls (301 to https),
 * virtual_clusters (names in metrics), header command operators (%REQ%, %START_TIME%,
 * %UPSTREAM_CLUSTER%, %UPSTREAM_REMOTE_ADDRESS%, %RESPONSE_CODE%), max_stream_duration and
 * grpc-timeout as the route timeout. Expected outcomes follow Envoy's docs and router
 * (source/common/router: config_impl.cc, router.cc, header_parser.cc).
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import YAML from 'yaml'
import { createMesh, fromEnvoy, type Mesh } from '../src/index.js'
import { startUpstream, type Upstream } from './helpers/upstream.js'

const FLAGS = 'x-sidecarless-response-flags'

function bootstrap(routes: string, clusters: readonly Upstream[], vhostExtra = ''): unknown {
  return YAML.parse(`
static_resources:
  listeners:
  - address: { socket_address: { address: 127.0.0.1, port_value: 0 } }
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: t
          http_filters: [{ name: envoy.filters.http.router, typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router } }]
          route_config:
            virtual_hosts:
            - name: svc
              domains: [svc]
${vhostExtra.replace(/^/gm, '              ')}
              routes:
${routes.replace(/^/gm, '              ')}
  clusters:
${clusters.map((u) => `  - name: ${u.name}
    connect_timeout: 1s
    load_assignment:
      endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: ${u.port} } } } }] }]`).join('\n')}
`)
}

function meshOf(input: unknown): Mesh {
  const imported = fromEnvoy(input)
  assert.deepEqual(imported.unsupported, [], JSON.stringify(imported.unsupported, null, 2))
  return createMesh({ config: imported.config })
}

describe('Envoy route features at run time', () => {
  let a: Upstream
  let b: Upstream
  let slow: Upstream
  before(async () => {
    a = await startUpstream('a')
    b = await startUpstream('b')
    slow = await startUpstream('slow', (req, res) => {
      const t = setTimeout(() => res.end('late'), 2_000)
      res.on('close', () => clearTimeout(t))
    })
  })
  after(async () => {
    await Promise.all([a.close(), b.close(), slow.close()])
  })

  it('cluster_header: the request names its cluster; absent or unknown is 503 NC, as Envoy answers', async () => {
    const mesh = meshOf(bootstrap(`- match: { prefix: / }
  route: { cluster_header: x-cluster }`, [a, b]))
    try {
      const toB = await mesh.fetch('http://svc/x', { headers: { 'x-cluster': 'b' } })
      assert.equal(toB.status, 200)
      assert.equal(await toB.text(), 'b /x')
      const toA = await mesh.fetch('http://svc/y', { headers: { 'x-cluster': 'a' } })
      assert.equal(await toA.text(), 'a /y')
      for (const headers of [{}, { 'x-cluster': 'nope' }]) {
        const res = await mesh.fetch('http://svc/z', { headers })
        assert.equal(res.status, 503)
        assert.equal(res.headers.get(FLAGS), 'NC')
        await res.arrayBuffer()
      }
      const d = mesh.route({ url: 'http://svc/z', headers: { 'x-cluster': 'nope' } })
      assert.equal(d.kind, 'cluster_not_found')
      assert.deepEqual(d.kind === 'cluster_not_found' ? d.clusterHeader : undefined, { name: 'x-cluster', value: 'nope' })
    } finally {
      await mesh.close()
    }
  })

  it('cluster_not_found_response_code NOT_FOUND answers 404', async () => {
    const mesh = meshOf(bootstrap(`- match: { prefix: / }
  route: { cluster_header: x-cluster, cluster_not_found_response_code: NOT_FOUND }`, [a]))
    try {
      const res = await mesh.fetch('http://svc/')
      assert.equal(res.status, 404)
      assert.equal(res.headers.get(FLAGS), 'NC')
      await res.arrayBuffer()
    } finally {
      await mesh.close()
    }
  })

  it('require_tls ALL: a plain-http request gets a 301 to the same Host and path over https, before any route', async () => {
    const mesh = meshOf(bootstrap(`- match: { prefix: / }
  route: { cluster: a }`, [a], 'require_tls: ALL'))
    try {
      const seen = a.seen.length
      const res = await mesh.fetch('http://svc/p?q=1', { redirect: 'manual' })
      assert.equal(res.status, 301)
      assert.equal(res.headers.get('location'), 'https://svc/p?q=1')
      await res.arrayBuffer()
      assert.equal(a.seen.length, seen, 'no route was tried')
      const d = mesh.route({ url: 'http://svc/p' })
      assert.ok(d.kind === 'redirect' && d.requireTls && d.status === 301)
    } finally {
      await mesh.close()
    }
  })

  it('require_tls EXTERNAL_ONLY: requests marked internal (x-envoy-internal: true) are routed', async () => {
    const mesh = meshOf(bootstrap(`- match: { prefix: / }
  route: { cluster: a }`, [a], 'require_tls: EXTERNAL_ONLY'))
    try {
      assert.equal(mesh.route({ url: 'http://svc/p' }).kind, 'redirect')
      const d = mesh.route({ url: 'http://svc/p', headers: { 'x-envoy-internal': 'true' } })
      assert.equal(d.kind, 'cluster')
    } finally {
      await mesh.close()
    }
  })

  it('header command operators: request values from the request, response values from the response', async () => {
    const mesh = meshOf(bootstrap(`- match: { prefix: / }
  route: { cluster: a }
  request_headers_to_add:
  - header: { key: x-user-copy, value: "%REQ(x-user)%" }
  - header: { key: x-alt, value: "%REQ(x-missing?x-user):3%" }
  - header: { key: x-cluster, value: "%UPSTREAM_CLUSTER%" }
  - header: { key: x-start, value: "%START_TIME(%s)%" }
  - header: { key: x-percent, value: "100%%" }
  - header: { key: x-empty, value: "%REQ(x-missing)%" }
  response_headers_to_add:
  - header: { key: x-upstream-address, value: "%UPSTREAM_REMOTE_ADDRESS%" }
  - header: { key: x-code, value: "%RESPONSE_CODE%" }
  - header: { key: x-echo, value: "%RESP(x-upstream)%-%REQ(x-user)%" }`, [a]))
    try {
      const before = Math.floor(Date.now() / 1000)
      const res = await mesh.fetch('http://svc/h', { headers: { 'x-user': 'jason' } })
      await res.arrayBuffer()
      const seen = a.seen.at(-1)?.headers ?? {}
      assert.equal(seen['x-user-copy'], 'jason')
      assert.equal(seen['x-alt'], 'jas')
      assert.equal(seen['x-cluster'], 'a')
      assert.equal(seen['x-percent'], '100%')
      assert.equal(seen['x-empty'], undefined, 'an empty value is not added (Envoy: keep_empty_value false)')
      const start = Number(seen['x-start'])
      assert.ok(start >= before && start <= Math.ceil(Date.now() / 1000), String(seen['x-start']))
      assert.equal(res.headers.get('x-upstream-address'), `127.0.0.1:${a.port}`)
      assert.equal(res.headers.get('x-code'), '200')
      assert.equal(res.headers.get('x-echo'), 'a-jason')
      const d = mesh.route({ url: 'http://svc/h', headers: { 'x-user': 'jason' } })
      assert.equal(d.kind, 'cluster')
      if (d.kind === 'cluster') {
        const t = d.targets[0]!
        assert.deepEqual(t.requestHeaders.add.map((h) => [h.name, h.value]).filter(([n]) => n !== 'x-start'), [
          ['x-user-copy', 'jason'], ['x-alt', 'jas'], ['x-cluster', 'a'], ['x-percent', '100%'],
        ])
        assert.deepEqual(t.responseHeaders.add.map((h) => [h.name, h.resolved]), [['x-upstream-address', false], ['x-code', false], ['x-echo', false]])
      }
    } finally {
      await mesh.close()
    }
  })

  it('virtual_clusters: matching requests are counted under the name, in the snapshot and in Prometheus', async () => {
    const mesh = meshOf(bootstrap(`- match: { prefix: / }
  route: { cluster: a }`, [a], `virtual_clusters:
- name: ride_request
  headers: [{ name: ":path", safe_regex_match: { regex: "^/rides$" } }, { name: ":method", exact_match: POST }]`))
    try {
      for (const method of ['POST', 'POST', 'GET']) {
        const res = await mesh.fetch('http://svc/rides', { method, body: method === 'POST' ? 'x' : undefined })
        await res.arrayBuffer()
      }
      const vc = mesh.metrics.snapshot().outbound.virtualClusters?.['svc/ride_request']
      assert.equal(vc?.requests, 2)
      assert.equal(vc?.responses['2xx'], 2)
      assert.match(mesh.metrics.prometheus(), /virtual_host="svc",virtual_cluster="ride_request"/)
      const d = mesh.route({ url: 'http://svc/rides', method: 'POST' })
      assert.equal(d.kind === 'cluster' ? d.virtualCluster : undefined, 'ride_request')
    } finally {
      await mesh.close()
    }
  })

  it('max_stream_duration bounds the request as its timeout (504); a gRPC request\'s grpc-timeout does under grpc_timeout_header_max', async () => {
    const mesh = meshOf(bootstrap(`- match: { prefix: /stream }
  route: { cluster: slow, max_stream_duration: { max_stream_duration: 0.1s } }
- match: { prefix: /grpc }
  route: { cluster: slow, timeout: 0s, max_stream_duration: { grpc_timeout_header_max: 0s } }`, [slow]))
    try {
      const res = await mesh.fetch('http://svc/stream')
      assert.equal(res.status, 504)
      await res.arrayBuffer()
      const d = mesh.route({ url: 'http://svc/stream' })
      assert.equal(d.kind === 'cluster' ? d.timeoutMs : -1, 100)
      const grpc = { 'content-type': 'application/grpc', 'grpc-timeout': '150m' }
      assert.equal((mesh.route({ url: 'http://svc/grpc', method: 'POST', headers: grpc }) as { timeoutMs: number }).timeoutMs, 150)
      assert.equal((mesh.route({ url: 'http://svc/grpc', method: 'POST' }) as { timeoutMs: number }).timeoutMs, 0, 'not gRPC: the route timeout (0s)')
      const g = await mesh.fetch('http://svc/grpc', { method: 'POST', headers: grpc, body: 'x' })
      assert.equal(g.status, 504)
      await g.arrayBuffer()
    } finally {
      await mesh.close()
    }
  })
})
