// `sidecarless proxy`: the seed's two Envoy demos served on a real socket, driven by curl,
// plus the admin endpoint, our own config format, and a graceful stop.
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, test } from 'node:test'
import { promisify } from 'node:util'
import { start, stopAll, type Spawned } from './helpers/spawned.js'
import { echo, startUpstream, type Upstream } from './helpers/upstream.js'

const run = promisify(execFile)
let dir: string
const upstreams: Upstream[] = []

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'sidecarless-proxy-'))
})

after(async () => {
  stopAll()
  await Promise.all(upstreams.map((u) => u.close()))
  rmSync(dir, { recursive: true, force: true })
})

async function upstream(name: string, behaviour = echo): Promise<Upstream> {
  const u = await startUpstream(name, behaviour)
  upstreams.push(u)
  return u
}

async function curl(...args: string[]): Promise<string> {
  const { stdout } = await run('curl', ['-sS', '--max-time', '20', ...args], { maxBuffer: 16 * 1024 * 1024 })
  return stdout
}

/** Starts the proxy on `file` and reads the addresses it prints. */
async function proxy(file: string, ...flags: string[]): Promise<{ p: Spawned; address: string; admin: string }> {
  const p = start(process.execPath, ['dist/cli/main.js', 'proxy', '-c', file, ...flags])
  const address = (await p.waitFor(/listening on http:\/\/(\S+)/))[1] as string
  const admin = (await p.waitFor(/admin on http:\/\/(\S+)/))[1] as string
  return { p, address, admin }
}

function write(name: string, text: string): string {
  const file = join(dir, name)
  writeFileSync(file, text)
  return file
}

const HCM = `name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress_http
          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router`

test('seed demo 1: a listener forwarding everything to one cluster with a host rewrite (curl)', async () => {
  const service = await upstream('service', (req, res, name) => {
    if (req.method === 'POST') {
      res.setHeader('x-upstream-host', req.headers.host ?? '')
      req.pipe(res)
      return
    }
    echo(req, res, name)
  })
  const file = write('demo1.yaml', `admin:
  address:
    socket_address: { address: 0.0.0.0, port_value: 0 }
static_resources:
  listeners:
  - name: listener_0
    address:
      socket_address: { address: 0.0.0.0, port_value: 10000 }
    filter_chains:
    - filters:
      - ${HCM}
          route_config:
            name: local_route
            virtual_hosts:
            - name: local_service
              domains: ["*"]
              routes:
              - match: { prefix: "/" }
                route: { host_rewrite_literal: www.envoyproxy.io, cluster: service_envoyproxy_io }
  clusters:
  - name: service_envoyproxy_io
    type: STATIC
    connect_timeout: 1s
    load_assignment:
      cluster_name: service_envoyproxy_io
      endpoints:
      - lb_endpoints:
        - endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: ${service.port} } } }
`)
  const { p, address, admin } = await proxy(file, '--listen', '127.0.0.1:0')
  assert.match(p.stderr(), /warning: the admin endpoint is bound to 127\.0\.0\.1:0, not 0\.0\.0\.0:0/)
  assert.match(address, /^127\.0\.0\.1:\d+$/)
  assert.match(admin, /^127\.0\.0\.1:\d+$/, 'the admin endpoint is on loopback')

  const head = await curl('-i', '-H', 'x-forwarded-for: 203.0.113.7', '-H', 'connection: keep-alive, x-hop', '-H', 'x-hop: secret', `http://${address}/some/path?q=1`)
  assert.match(head, /^HTTP\/1\.1 200/)
  assert.match(head, /x-upstream-host: www\.envoyproxy\.io/i)
  assert.match(head, /x-sidecarless-cluster: service_envoyproxy_io/i)
  assert.match(head, /service \/some\/path\?q=1$/)
  const seen = service.seen.at(-1)!
  assert.equal(seen.headers['x-forwarded-for'], '203.0.113.7, 127.0.0.1', 'the peer is appended to x-forwarded-for')
  assert.equal(seen.headers['x-forwarded-proto'], 'http')
  assert.equal(seen.headers['x-hop'], undefined, 'a header named in Connection is hop-by-hop')
  assert.match(String(seen.headers['x-request-id']), /^[0-9a-f-]{36}$/)
  assert.match(String(seen.headers.traceparent), /^00-[0-9a-f]{32}-[0-9a-f]{16}-0[23]$/, 'a trace the proxy starts sets the W3C random-trace-id flag')

  // A request body streams through, and the response body back.
  const body = 'x'.repeat(256 * 1024)
  const bodyFile = write('body.txt', body)
  const echoed = await curl('--data-binary', `@${bodyFile}`, `http://${address}/upload`)
  assert.equal(echoed.length, body.length)

  // Admin: GET only, Envoy's endpoints.
  assert.equal(await curl(`http://${admin}/ready`), 'LIVE\n')
  const prom = await curl(`http://${admin}/stats/prometheus`)
  assert.match(prom, /sidecarless_cluster_upstream_rq_total\{[^}]*cluster_name="service_envoyproxy_io"[^}]*\} 2/)
  assert.match(await curl(`http://${admin}/stats`), /^outbound\.clusters\.service_envoyproxy_io\.requests: 2$/m)
  assert.match(await curl(`http://${admin}/clusters`), new RegExp(`^service_envoyproxy_io::127\\.0\\.0\\.1:${service.port}::weight::1$`, 'm'))
  const dump = JSON.parse(await curl(`http://${admin}/config_dump`)) as { config: { listener: { address: string } } }
  assert.equal(dump.config.listener.address, '0.0.0.0:10000')
  const info = JSON.parse(await curl(`http://${admin}/server_info`)) as { state: string; listener: string }
  assert.deepEqual([info.state, info.listener], ['LIVE', address])
  assert.match(await curl('-i', '-X', 'POST', `http://${admin}/ready`), /^HTTP\/1\.1 405/)

  p.child.kill('SIGTERM')
  assert.deepEqual(await p.exited(), { code: 0, signal: null })
  assert.match(p.stderr(), /SIGTERM: draining[\s\S]*stopped/)
})

test('seed demo 2: 50/50 weighted_clusters, v2 unreachable: half v1, half 503 no healthy upstream (curl)', async () => {
  const v1 = await upstream('v1')
  const file = write('demo2.yaml', `static_resources:
  listeners:
  - name: listener_0
    address:
      socket_address: { address: 0.0.0.0, port_value: 8080 }
    filter_chains:
    - filters:
      - ${HCM}
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
  clusters:
  - name: reviews_v1
    connect_timeout: 0.25s
    type: STATIC
    lb_policy: ROUND_ROBIN
    load_assignment:
      cluster_name: reviews_v1
      endpoints:
      - lb_endpoints:
        - endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: ${v1.port} } } }
  - name: reviews_v2
    connect_timeout: 0.25s
    type: STRICT_DNS
    load_assignment:
      cluster_name: reviews_v2
      endpoints:
      - lb_endpoints:
        - endpoint: { address: { socket_address: { address: reviews-v2.invalid, port_value: 9080 } } }
`)
  const { p, address, admin } = await proxy(file, '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0')
  assert.equal(p.stderr(), '', 'the seed bootstrap translates completely')
  const n = 200
  const out = await curl('-w', '|%{http_code}\\n', ...Array.from({ length: n }, () => `http://${address}/productpage`))
  const v1Count = out.match(/^v1 \/productpage\|200$/gm)?.length ?? 0
  const unhealthy = out.match(/^no healthy upstream\|503$/gm)?.length ?? 0
  assert.equal(v1Count + unhealthy, n, out.slice(0, 500))
  assert.ok(v1Count > 60 && v1Count < 140, `about half served by v1: ${v1Count}`)
  const prom = await curl(`http://${admin}/stats/prometheus`)
  assert.match(prom, /cluster_name="reviews_v1"/)
  assert.match(prom, /cluster_name="reviews_v2"/)
  p.child.kill('SIGINT')
  assert.equal((await p.exited()).code, 0)
})

test('our format: listener.address from the config, unknown authorities get 404 NR, a stop drains requests in flight', async () => {
  const slow = await upstream('slow', (req, res, name) => {
    setTimeout(() => echo(req, res, name), 400)
  })
  const file = write('ours.yaml', `listener:
  address: 127.0.0.1:0
admin:
  address: 127.0.0.1:0
clusters:
  - name: slow
    endpoints: [ { address: "${slow.address}" } ]
virtualHosts:
  - name: slow
    domains: [ slow.example ]
    routes: [ { match: { prefix: / }, route: { cluster: slow } } ]
`)
  const { p, address, admin } = await proxy(file)
  const unknown = await curl('-i', '-H', 'host: elsewhere.example', `http://${address}/`)
  assert.match(unknown, /^HTTP\/1\.1 404/)
  assert.match(unknown, /x-sidecarless-response-flags: NR/i)

  const inFlight = curl('-i', '-H', 'host: slow.example', `http://${address}/long`)
  await new Promise((resolve) => setTimeout(resolve, 150))
  p.child.kill('SIGTERM')
  await p.waitFor(/draining/, 5000, 'stderr')
  const ready = await curl('-i', `http://${admin}/ready`)
  assert.match(ready, /^HTTP\/1\.1 503[\s\S]*DRAINING/)
  const answered = await inFlight
  assert.match(answered, /^HTTP\/1\.1 200[\s\S]*connection: close[\s\S]*slow \/long$/i)
  assert.equal((await p.exited()).code, 0)
})

test('usage errors exit 2; a config without a listener address exits 1 saying what to give', async () => {
  const noFile = start(process.execPath, ['dist/cli/main.js', 'proxy'])
  assert.equal((await noFile.exited()).code, 2)
  assert.match(noFile.stderr(), /-c <file> is required/)
  const publicAdmin = start(process.execPath, ['dist/cli/main.js', 'proxy', '-c', 'x.yaml', '--admin', '0.0.0.0:9901'])
  assert.equal((await publicAdmin.exited()).code, 2)
  assert.match(publicAdmin.stderr(), /binds to loopback only/)
  const file = write('nolistener.yaml', 'clusters: []\n')
  const none = start(process.execPath, ['dist/cli/main.js', 'proxy', '-c', file])
  assert.equal((await none.exited()).code, 1)
  assert.match(none.stderr(), /no listener address: give --listen host:port/)
})

test('the config file is watched: a change is applied, a bad one rejected with its issues, the old one kept', async () => {
  const a = await upstream('a')
  const b = await upstream('b')
  const ours = (up: Upstream, cluster: string): string => `clusters:
  - name: ${cluster}
    endpoints: [ { address: "${up.address}" } ]
virtualHosts:
  - name: svc
    domains: [ "*" ]
    routes: [ { match: { prefix: / }, route: { cluster: ${cluster} } } ]
`
  const file = write('watched.yaml', ours(a, 'a'))
  const { p, address } = await proxy(file, '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0')
  assert.equal(await curl(`http://${address}/x`), 'a /x')
  writeFileSync(file, ours(b, 'b'))
  await p.waitFor(/config .*watched\.yaml applied \(version 2\)/, 20_000, 'stderr')
  assert.equal(await curl(`http://${address}/x`), 'b /x')
  writeFileSync(file, ours(b, 'b').replace('cluster: b }', 'cluster: c }'))
  await p.waitFor(/rejected; the previous config stays in force/, 20_000, 'stderr')
  assert.match(p.stderr(), /virtualHosts\[0\]\.routes\[0\]\.route\.cluster: UNKNOWN_CLUSTER/)
  assert.equal(await curl(`http://${address}/x`), 'b /x')
  p.child.kill('SIGTERM')
  assert.equal((await p.exited()).code, 0)
})
