/**
 * The xDS client end to end against a scripted ADS server replaying istiod-shaped
 * resources (test/helpers/istiod.ts): a mesh created with an istio-agent bootstrap and no
 * config file routes, splits, retries and balances as the resources say; subscriptions
 * grow as the app calls new authorities.
 */
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { createMesh, isMeshError, type Mesh } from '../src/index.js'
import { ResourceTable, ScriptedAdsServer } from './helpers/ads-server.js'
import { agentBootstrap, apiListener, clusterKey, edsCluster, loadAssignment, routeConfig } from './helpers/istiod.js'
import { startAdmin } from '../src/admin/admin.js'
import { makePki } from './helpers/certs.js'
import { start, stopAll } from './helpers/spawned.js'
import { startUpstream, type Upstream } from './helpers/upstream.js'

const HOST = 'echo.default.svc.cluster.local'
let server: ScriptedAdsServer
let table: ResourceTable
let v1: Upstream
let v2: Upstream

before(async () => {
  server = await ScriptedAdsServer.start()
  table = new ResourceTable(server)
  v1 = await startUpstream('v1')
  v2 = await startUpstream('v2')
})
after(async () => {
  stopAll()
  await server.stop()
  await Promise.all([v1.close(), v2.close()])
})

function echoResources(to: Record<string, number> | string): void {
  const v1Key = clusterKey(HOST, 8080, 'v1')
  const v2Key = clusterKey(HOST, 8080, 'v2')
  table
    .set('listener', apiListener(`${HOST}:8080`, HOST, 8080), apiListener('echo:8080', HOST, 8080))
    .set('route', routeConfig(HOST, 8080, [{ to }]))
    .set('cluster', edsCluster(v1Key), edsCluster(v2Key))
    .set('endpoint', loadAssignment(v1Key, [{ address: '127.0.0.1', port: v1.port, labels: { version: 'v1' } }]), loadAssignment(v2Key, [{ address: '127.0.0.1', port: v2.port, labels: { version: 'v2' } }]))
}

async function count(mesh: Mesh, url: string, n: number): Promise<Record<string, number>> {
  const out: Record<string, number> = {}
  for (let i = 0; i < n; i++) {
    const res = await mesh.fetch(url)
    const body = await res.text()
    const key = res.status === 200 ? body.split(' ')[0] as string : String(res.status)
    out[key] = (out[key] ?? 0) + 1
  }
  return out
}

describe('xDS client: a mesh joins as a proxyless client', () => {
  test('the first request to an authority subscribes to its Listener, waits for the tree and is routed', async () => {
    echoResources(clusterKey(HOST, 8080, 'v1'))
    const mesh = createMesh({ service: 'client', xds: { bootstrap: agentBootstrap(server.address), resourceTimeout: '3s' } })
    try {
      const res = await mesh.fetch(`http://${HOST}:8080/hello`)
      assert.equal(res.status, 200)
      assert.equal(await res.text(), 'v1 /hello')
      const lds = server.requests.find((r) => r.type === 'listener')
      assert.deepEqual(lds?.names, [`${HOST}:8080`])
      assert.equal((lds?.node?.['metadata'] as Record<string, unknown>)['GENERATOR'], 'grpc')
      const status = mesh.xds?.status()
      assert.equal(status?.state, 'CONNECTED')
      const byType = Object.fromEntries((status?.resources ?? []).map((r) => [`${r.type}:${r.name}`, r.status]))
      assert.equal(byType[`listener:${HOST}:8080`], 'ACKED')
      assert.equal(byType[`route:${clusterKey(HOST, 8080)}`], 'ACKED')
      assert.equal(byType[`cluster:${clusterKey(HOST, 8080, 'v1')}`], 'ACKED')
      assert.equal(byType[`endpoint:${clusterKey(HOST, 8080, 'v1')}`], 'ACKED')
      // Istio's cluster names are kept as ours.
      assert.ok(mesh.config.clusters?.some((c) => c.name === clusterKey(HOST, 8080, 'v1')))
      // A second authority grows the subscription; the short name is its own Listener.
      const short = await mesh.fetch('http://echo:8080/x')
      assert.equal(short.status, 200)
      await short.text()
      const last = server.requests.filter((r) => r.type === 'listener').at(-1)
      assert.deepEqual([...(last?.names ?? [])].sort(), [`${HOST}:8080`, 'echo:8080'])
    } finally {
      await mesh.close()
    }
  })

  test('a split moved at the server changes what the caller sees; traffic.split refuses xDS routes', async () => {
    echoResources({ [clusterKey(HOST, 8080, 'v1')]: 100, [clusterKey(HOST, 8080, 'v2')]: 0 })
    const mesh = createMesh({ xds: { bootstrap: agentBootstrap(server.address), listeners: [`${HOST}:8080`], resourceTimeout: '3s' } })
    try {
      assert.equal(await mesh.xds?.ready(), true)
      assert.deepEqual(await count(mesh, `http://${HOST}:8080/`, 10), { v1: 10 })
      const applied = new Promise((resolve) => mesh.once('config', resolve))
      echoResources({ [clusterKey(HOST, 8080, 'v1')]: 0, [clusterKey(HOST, 8080, 'v2')]: 100 })
      table.push('route')
      await applied
      assert.deepEqual(await count(mesh, `http://${HOST}:8080/`, 10), { v2: 10 })
      await assert.rejects(mesh.traffic.split(`${HOST}:8080`, { v1: 50, v2: 50 }), (err) => isMeshError(err, 'SIDECARLESS_ERR_XDS_MANAGED'))
      // The admin endpoint's /config_dump shows the same per-resource state as mesh.xds.status().
      const admin = await startAdmin(mesh, '127.0.0.1', 0, { version: 't', startedAt: Date.now(), configPath: '-', listener: () => '-', state: () => 'LIVE' })
      try {
        const dump = await (await fetch(`http://${admin.address}/config_dump`)).json() as { xds: { state: string; resources: { type: string; name: string; status: string; version: string }[] } }
        assert.equal(dump.xds.state, 'CONNECTED')
        assert.deepEqual(dump.xds.resources.find((r) => r.type === 'route'), JSON.parse(JSON.stringify(mesh.xds?.status().resources.find((r) => r.type === 'route'))))
        const prometheus = mesh.metrics.prometheus()
        assert.match(prometheus, /^sidecarless_xds_connected_state\{server="127\.0\.0\.1:\d+"\} 1$/m)
        assert.match(prometheus, /^sidecarless_xds_update_success_total\{type="route"\} [1-9]/m)
      } finally {
        await admin.close()
      }
    } finally {
      await mesh.close()
    }
  })

  test('istio-agent\'s unix socket target (unix:/// + an absolute path) is reached', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sidecarless-uds-'))
    const uds = await ScriptedAdsServer.start(`unix:${join(dir, 'XDS')}`)
    const udsTable = new ResourceTable(uds)
    udsTable.set('listener', apiListener(`${HOST}:8080`, HOST, 8080)).set('route', routeConfig(HOST, 8080, [{ to: clusterKey(HOST, 8080, 'v1') }]))
      .set('cluster', edsCluster(clusterKey(HOST, 8080, 'v1'))).set('endpoint', loadAssignment(clusterKey(HOST, 8080, 'v1'), [{ address: '127.0.0.1', port: v1.port }]))
    const mesh = createMesh({ xds: { bootstrap: agentBootstrap(`unix:///${join(dir, 'XDS')}`), resourceTimeout: '3s' } })
    try {
      const res = await mesh.fetch(`http://${HOST}:8080/uds`)
      assert.equal(await res.text(), 'v1 /uds')
    } finally {
      await mesh.close()
      await uds.stop()
      rmSync(dir, { recursive: true, force: true })
    }
  })

  test('tls channel credentials (gRFC A65): the ADS stream over TLS, the server verified against ca_certificate_file', async () => {
    const pki = makePki([])
    const dir = mkdtempSync(join(tmpdir(), 'sidecarless-xds-tls-'))
    const secure = await ScriptedAdsServer.start('127.0.0.1:0', pki.server)
    const secureTable = new ResourceTable(secure)
    secureTable.set('listener', apiListener(`${HOST}:8080`, HOST, 8080)).set('route', routeConfig(HOST, 8080, [{ to: clusterKey(HOST, 8080, 'v1') }]))
      .set('cluster', edsCluster(clusterKey(HOST, 8080, 'v1'))).set('endpoint', loadAssignment(clusterKey(HOST, 8080, 'v1'), [{ address: '127.0.0.1', port: v1.port }]))
    writeFileSync(join(dir, 'ca.pem'), pki.ca)
    // By host name: grpc-js 1.14 sends an IP target as TLS servername, which Node 26 refuses.
    const uri = secure.address.replace('127.0.0.1', 'localhost')
    const bootstrap = { ...agentBootstrap(uri), xds_servers: [{ server_uri: uri, channel_creds: [{ type: 'tls', config: { ca_certificate_file: join(dir, 'ca.pem') } }] }] }
    const mesh = createMesh({ xds: { bootstrap, resourceTimeout: '3s' } })
    try {
      const res = await mesh.fetch(`http://${HOST}:8080/tls`)
      assert.equal(await res.text(), 'v1 /tls')
      assert.equal(mesh.xds?.status().state, 'CONNECTED')
    } finally {
      await mesh.close()
      await secure.stop()
      rmSync(dir, { recursive: true, force: true })
    }
  })

  test('zero code change: an unmodified app under --import sidecarless/register with GRPC_XDS_BOOTSTRAP and no SIDECARLESS_CONFIG', async () => {
    const backend = clusterKey('backend', 80)
    table.set('listener', apiListener('backend:80', 'backend', 80)).set('route', routeConfig('backend', 80, [{ to: backend }]))
      .set('cluster', edsCluster(backend)).set('endpoint', loadAssignment(backend, [{ address: '127.0.0.1', port: v2.port }]))
    const dir = mkdtempSync(join(tmpdir(), 'sidecarless-register-'))
    try {
      const file = join(dir, 'grpc-bootstrap.json')
      writeFileSync(file, JSON.stringify(agentBootstrap(server.address)))
      const app = start(process.execPath, ['--import', 'sidecarless/register', 'test/fixtures/apps/esm-http.mjs'], { GRPC_XDS_BOOTSTRAP: file })
      const port = Number((await app.waitFor(/"port":(\d+)/))[1])
      const got = await (await fetch(`http://127.0.0.1:${port}/call`)).json() as { fetch: { status: number; cluster: string; body: string }; undici: { body: string } }
      assert.equal(got.fetch.status, 200, app.stderr())
      assert.equal(got.fetch.cluster, backend)
      assert.equal(got.fetch.body, 'v2 /call')
      assert.equal(got.undici.body, 'v2 /undici')
    } finally {
      stopAll()
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
