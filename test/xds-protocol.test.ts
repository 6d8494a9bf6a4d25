/**
 * The ADS protocol as the client runs it, step by step against a scripted server: ACK,
 * NACK with every reason and the last good resources kept, partial acceptance (gRFC A46),
 * nonces, full-state deletion and make-before-break, the does-not-exist timer (gRFC A57),
 * and a server restart with the stream resumed.
 */
import assert from 'node:assert/strict'
import { after, afterEach, before, describe, test } from 'node:test'
import { type ConfigError, createMesh, type Mesh } from '../src/index.js'
import { ResourceTable, ScriptedAdsServer, type SeenRequest } from './helpers/ads-server.js'
import { agentBootstrap, apiListener, clusterKey, edsCluster, loadAssignment, routeConfig } from './helpers/istiod.js'
import { startUpstream, type Upstream } from './helpers/upstream.js'

const HOST = 'ratings.default.svc.cluster.local'
const NAME = `${HOST}:9080`
const RDS = clusterKey(HOST, 9080)
const C1 = clusterKey(HOST, 9080, 'v1')
const C2 = clusterKey(HOST, 9080, 'v2')

let up1: Upstream
let up2: Upstream
const open: Mesh[] = []
const servers: ScriptedAdsServer[] = []

before(async () => {
  up1 = await startUpstream('v1')
  up2 = await startUpstream('v2')
})
after(async () => {
  await Promise.all([up1.close(), up2.close()])
})
afterEach(async () => {
  await Promise.all(open.splice(0).map((m) => m.close()))
  await Promise.all(servers.splice(0).map((s) => s.stop()))
})

async function serverAndMesh(options: { timeout?: string; listeners?: string[] } = {}): Promise<{ server: ScriptedAdsServer; mesh: Mesh }> {
  const server = await ScriptedAdsServer.start()
  servers.push(server)
  const mesh = createMesh({ xds: { bootstrap: agentBootstrap(server.address), resourceTimeout: options.timeout ?? '2s', listeners: options.listeners ?? [NAME] } })
  open.push(mesh)
  return { server, mesh }
}

/** Sends the whole tree of NAME (to `cluster`) in the order a client asks for it, answering each request. */
async function serveTree(server: ScriptedAdsServer, cluster: string, port: number, version = '1'): Promise<void> {
  await server.next((r) => r.type === 'listener', 5_000, 0)
  server.send('listener', version, [apiListener(NAME, HOST, 9080)])
  await server.next((r) => r.type === 'route' && r.names.includes(RDS), 5_000, 0)
  server.send('route', version, [routeConfig(HOST, 9080, [{ to: cluster }])])
  await server.next((r) => r.type === 'cluster' && r.names.includes(cluster), 5_000, 0)
  server.send('cluster', version, [edsCluster(cluster)])
  await server.next((r) => r.type === 'endpoint' && r.names.includes(cluster), 5_000, 0)
  server.send('endpoint', version, [loadAssignment(cluster, [{ address: '127.0.0.1', port }])])
}

async function body(mesh: Mesh, url = `http://${NAME}/`): Promise<string> {
  const res = await mesh.fetch(url)
  return `${res.status} ${await res.text()}`
}

function status(mesh: Mesh, type: string, name: string) {
  return mesh.xds?.status().resources.find((r) => r.type === type && r.name === name)
}

describe('ADS protocol', () => {
  test('ACK: each response is acknowledged with its version and nonce; the node goes on the first request only', async () => {
    const { server, mesh } = await serverAndMesh()
    await serveTree(server, C1, up1.port, 'v-1')
    assert.equal(await mesh.xds?.ready(), true)
    assert.equal(await body(mesh), '200 v1 /')
    for (const type of ['listener', 'route', 'cluster', 'endpoint'] as const) {
      const responseNonce = server.requests.filter((r) => r.type === type).at(-1) as SeenRequest
      assert.equal(responseNonce.version, 'v-1', type)
      assert.equal(responseNonce.error, undefined, type)
      assert.notEqual(responseNonce.nonce, '', type)
    }
    const withNode = server.requests.filter((r) => r.node !== undefined)
    assert.equal(withNode.length, 1)
    assert.equal(withNode[0]?.type, 'listener')
    assert.equal(withNode[0]?.node?.['user_agent_name'], 'sidecarless')
    assert.equal(status(mesh, 'cluster', C1)?.version, 'v-1')
  })

  test('NACK: every reason in error_detail; the version and the routes in force stay', async () => {
    const { server, mesh } = await serverAndMesh()
    await serveTree(server, C1, up1.port)
    await mesh.xds?.ready()
    const rejected: ConfigError[] = []
    mesh.on('configRejected', (e) => rejected.push(e))
    const bad1 = { ...edsCluster(C1), type: 'ORIGINAL_DST' }
    const bad2 = { ...edsCluster(C2), lb_policy: 'CLUSTER_PROVIDED' }
    const nonce = server.send('cluster', '2', [bad1, bad2])
    const nack = await server.answerTo(nonce)
    assert.equal(nack.version, '1', 'nothing was valid: the version stays')
    assert.match(nack.error ?? '', /resource index 0 \("outbound\|9080\|v1\|ratings[^"]*"\): cluster type ORIGINAL_DST is not supported/)
    assert.match(nack.error ?? '', /resource index 1 \("outbound\|9080\|v2\|ratings[^"]*"\): lb_policy CLUSTER_PROVIDED is not supported/)
    assert.equal(rejected.length, 1)
    assert.equal(rejected[0]?.issues.length, 2)
    const c1 = status(mesh, 'cluster', C1)
    assert.equal(c1?.status, 'NACKED')
    assert.equal(c1?.version, '1', 'the last good version is in use')
    assert.match(c1?.error?.message ?? '', /ORIGINAL_DST/)
    assert.equal(await body(mesh), '200 v1 /')
  })

  test('partial acceptance: the valid resources of a response are used, the invalid one NACKed', async () => {
    const { server, mesh } = await serverAndMesh()
    await serveTree(server, C1, up1.port)
    await mesh.xds?.ready()
    // The route moves to C2, whose cluster is valid; a broken listener for another name rides along.
    const applied = new Promise((resolve) => mesh.once('config', resolve))
    const routeNonce = server.send('route', '2', [routeConfig(HOST, 9080, [{ to: C2 }]), { name: 'broken', virtual_hosts: [{ name: 'x', domains: ['*.a.*'], routes: [] }] }])
    const answer = await server.answerTo(routeNonce)
    assert.equal(answer.version, '2', 'a valid resource moves the version on')
    assert.match(answer.error ?? '', /"broken"/)
    await server.next((r) => r.type === 'cluster' && r.names.includes(C2), 5_000, 0)
    server.send('cluster', '2', [edsCluster(C1), edsCluster(C2)])
    await server.next((r) => r.type === 'endpoint' && r.names.includes(C2), 5_000, 0)
    server.send('endpoint', '2', [loadAssignment(C1, [{ address: '127.0.0.1', port: up1.port }]), loadAssignment(C2, [{ address: '127.0.0.1', port: up2.port }])])
    await applied
    assert.equal(await body(mesh), '200 v2 /')
    assert.equal(status(mesh, 'route', RDS)?.status, 'ACKED')
  })

  test('a response that cannot be decoded is one NACK reason; the others of it are used', async () => {
    const { server, mesh } = await serverAndMesh()
    await serveTree(server, C1, up1.port)
    await mesh.xds?.ready()
    const nonce = server.send('endpoint', '2', [
      { '@type': 'type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment', '@bytes': Buffer.from([0x0a, 0xff, 0xff]).toString('base64') },
      loadAssignment(C1, [{ address: '127.0.0.1', port: up2.port }]),
    ])
    const answer = await server.answerTo(nonce)
    assert.match(answer.error ?? '', /resource index 0: .*cannot decode/)
    assert.equal(answer.version, '2')
    await new Promise((r) => setTimeout(r, 50))
    assert.equal(await body(mesh), '200 v2 /')
  })

  test('nonces: each request answers the newest response; the server may ignore a stale one', async () => {
    const { server, mesh } = await serverAndMesh()
    const table = new ResourceTable(server)
    table.held.add('route')
    table.set('listener', apiListener(NAME, HOST, 9080)).set('route', routeConfig(HOST, 9080, [{ to: C1 }]))
      .set('cluster', edsCluster(C1)).set('endpoint', loadAssignment(C1, [{ address: '127.0.0.1', port: up1.port }]))
    await server.next((r) => r.type === 'route', 5_000, 0)
    // Two route responses back to back: the client's requests name them in order.
    table.held.delete('route')
    const a = server.send('route', 'r1', [routeConfig(HOST, 9080, [{ to: C2 }])])
    const b = server.send('route', 'r2', [routeConfig(HOST, 9080, [{ to: C1 }])])
    const ackA = await server.answerTo(a)
    const ackB = await server.answerTo(b)
    assert.equal(ackA.version, 'r1')
    assert.equal(ackB.version, 'r2')
    assert.ok(server.requests.indexOf(ackA) < server.requests.indexOf(ackB))
    // The table server ignores requests with a nonce older than its last response; the client still converges.
    assert.equal(await mesh.xds?.ready(), true)
    assert.equal(await body(mesh), '200 v1 /')
  })

  test('deletion: a Listener missing from a full-state response is gone; a Cluster still routed to stays until nothing routes to it', async () => {
    const { server, mesh } = await serverAndMesh()
    await serveTree(server, C1, up1.port)
    await mesh.xds?.ready()
    // CDS drops C1 while the route still names it: make-before-break keeps it.
    const n1 = server.send('cluster', '2', [])
    await server.answerTo(n1)
    assert.equal(status(mesh, 'cluster', C1)?.status, 'DOES_NOT_EXIST')
    assert.equal(await body(mesh), '200 v1 /')
    // The route moves to C2: C1 is unsubscribed once nothing routes to it.
    const moved = new Promise((resolve) => mesh.once('config', resolve))
    server.send('route', '2', [routeConfig(HOST, 9080, [{ to: C2 }])])
    await server.next((r) => r.type === 'cluster' && r.names.includes(C2), 5_000, 0)
    server.send('cluster', '3', [edsCluster(C2)])
    await server.next((r) => r.type === 'endpoint' && r.names.includes(C2), 5_000, 0)
    server.send('endpoint', '2', [loadAssignment(C2, [{ address: '127.0.0.1', port: up2.port }])])
    await moved
    assert.equal(await body(mesh), '200 v2 /')
    const cds = server.requests.filter((r) => r.type === 'cluster').at(-1)
    assert.deepEqual(cds?.names, [C2])
    assert.equal(mesh.config.clusters?.some((c) => c.name === C1), false)
    // LDS without the listener: the authority leaves the mesh (ALLOW_ANY: passed through, here to nothing).
    const gone = new Promise((resolve) => mesh.once('config', resolve))
    server.send('listener', '2', [])
    await gone
    assert.equal(status(mesh, 'listener', NAME)?.status, 'DOES_NOT_EXIST')
    assert.equal(mesh.config.virtualHosts?.some((v) => v.name === NAME) ?? false, false)
  })

  test('does-not-exist timer: a Listener never sent is taken not to exist after the timeout; the request routes as without xDS', async () => {
    const { server, mesh } = await serverAndMesh({ timeout: '400ms', listeners: [] })
    const authority = `127.0.0.1:${up1.port}`
    const res = await mesh.fetch(`http://${authority}/direct`)
    assert.equal(res.status, 200, 'ALLOW_ANY: passed through once the Listener is known not to exist')
    assert.equal(await res.text(), 'v1 /direct')
    assert.equal(status(mesh, 'listener', authority)?.status, 'DOES_NOT_EXIST')
    assert.ok(server.requests.some((r) => r.type === 'listener' && r.names.includes(authority)))
    // Known not to exist: the next request routes at once, asking nothing more.
    const asked = server.requests.length
    assert.equal(await (await mesh.fetch(`http://${authority}/again`)).text(), 'v1 /again')
    assert.equal(server.requests.length, asked)
  })

  test('no timer while disconnected (gRFC A57): a request waits at most the timeout and gets 503; nothing is declared missing', async () => {
    const dead = await ScriptedAdsServer.start()
    const address = dead.address
    await dead.stop()
    const mesh = createMesh({ xds: { bootstrap: agentBootstrap(address), resourceTimeout: '300ms' } })
    open.push(mesh)
    const res = await mesh.fetch(`http://${NAME}/`)
    assert.equal(res.status, 503)
    assert.equal(res.headers.get('x-sidecarless-response-flags'), 'UH')
    assert.equal(await res.text(), 'no healthy upstream')
    assert.equal(status(mesh, 'listener', NAME)?.status, 'REQUESTED')
    assert.notEqual(mesh.xds?.status().state, 'CONNECTED')
  })

  test('server restart: the client reconnects and asks again for every name, with the versions it holds; routes stay in force meanwhile', async () => {
    const { server, mesh } = await serverAndMesh()
    await serveTree(server, C1, up1.port, '7')
    await mesh.xds?.ready()
    const events: string[] = []
    mesh.on('xdsDisconnected', () => events.push('down'))
    mesh.on('xdsConnected', () => events.push('up'))
    await server.stop()
    assert.equal(await body(mesh), '200 v1 /', 'the last good config stays while the server is away')
    const before = server.requests.length
    await server.listen()
    const resumed = await server.next((r) => r.type === 'listener', 10_000, before)
    assert.equal(resumed.version, '7')
    assert.equal(resumed.nonce, '')
    assert.deepEqual(resumed.names, [NAME])
    assert.ok(resumed.node !== undefined, 'a new stream starts with the node')
    for (const [type, name] of [['route', RDS], ['cluster', C1], ['endpoint', C1]] as const) {
      const again = await server.next((r) => r.type === type, 5_000, before)
      assert.deepEqual(again.names, [name])
      assert.equal(again.version, '7')
    }
    assert.deepEqual(events.slice(0, 2), ['down', 'up'])
    assert.equal(mesh.xds?.status().counters.streams, 2)
  })
})
