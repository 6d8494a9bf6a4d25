/**
 * Security from xDS, as istiod gives it to proxyless workloads: the workload identity from
 * the bootstrap's `file_watcher` certificate provider (istio-agent's cert-chain.pem, key.pem,
 * root-cert.pem), ISTIO_MUTUAL clusters verifying SANs, and the inbound Listener of a
 * server (`xds.istio.io/grpc/lds/inbound/<ip>:<port>`) giving STRICT mTLS and RBAC
 * (DENY before ALLOW). Real certificates from our CA, real sockets.
 */
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { request } from 'undici'
import { createCertificateAuthority, createMesh, type Mesh } from '../src/index.js'
import type { XdsObject } from '../src/xds/codec.js'
import { ResourceTable, ScriptedAdsServer } from './helpers/ads-server.js'
import { agentBootstrap, apiListener, clusterKey, edsCluster, inboundListener, loadAssignment, rbacPolicy, routeConfig } from './helpers/istiod.js'

const HOST = 'ratings.default.svc.cluster.local'
const NAME = `${HOST}:9080`
const CLUSTER = clusterKey(HOST, 9080, 'v1')
const RATINGS_ID = 'spiffe://cluster.local/ns/default/sa/ratings'

let dir: string
let ads: ScriptedAdsServer
let table: ResourceTable
let serverMesh: Mesh
let port: number
const meshes: Mesh[] = []
let closeServer: () => Promise<void>

/** istio-agent's /var/lib/istio/data layout for one workload: cert-chain.pem, key.pem, root-cert.pem. */
function writeWorkload(ca: ReturnType<typeof createCertificateAuthority>, sa: string): string {
  const d = mkdtempSync(join(dir, `${sa}-`))
  const issued = ca.issue({ namespace: 'default', serviceAccount: sa })
  writeFileSync(join(d, 'cert-chain.pem'), issued.certificate)
  writeFileSync(join(d, 'key.pem'), issued.privateKey)
  writeFileSync(join(d, 'root-cert.pem'), issued.trustBundle)
  return d
}

function clientResources(sans: string[]): void {
  table
    .set('listener', apiListener(NAME, HOST, 9080))
    .set('route', routeConfig(HOST, 9080, [{ to: CLUSTER }]))
    .set('cluster', edsCluster(CLUSTER, { istioMutual: sans }))
    .set('endpoint', loadAssignment(CLUSTER, [{ address: '127.0.0.1', port }]))
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'sidecarless-xds-sec-'))
  const ca = createCertificateAuthority({ trustDomain: 'cluster.local' })
  const ratingsDir = writeWorkload(ca, 'ratings')
  ads = await ScriptedAdsServer.start()
  table = new ResourceTable(ads)
  serverMesh = createMesh({ service: 'ratings', xds: { bootstrap: agentBootstrap(ads.address, { certDir: ratingsDir, nodeId: 'sidecar~127.0.0.1~ratings-1.default~default.svc.cluster.local' }) } })
  const server = serverMesh.createServer((req, res) => {
    res.end(`ratings saw ${serverMesh.context()?.peer?.identity ?? 'nobody'} ${req.url ?? ''}`)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  port = (server.address() as AddressInfo).port
  closeServer = () => new Promise((resolve) => server.close(() => resolve()))
  // istiod's inbound Listener for this port: STRICT mTLS; DENY /admin*; ALLOW productpage only.
  const inbound = `xds.istio.io/grpc/lds/inbound/127.0.0.1:${port}`
  await ads.next((r) => r.type === 'listener' && r.names.includes(inbound))
  const applied = new Promise((resolve) => serverMesh.once('config', resolve))
  table.set('listener', inboundListener(inbound, port, {
    mtls: true,
    deny: { 'default-deny-admin-0': rbacPolicy({ paths: ['/admin*'] }) },
    allow: { 'default-allow-productpage-0': rbacPolicy({ principals: ['cluster.local/ns/default/sa/productpage'] }) },
  }))
  table.push('listener')
  await applied
  meshes.push(createMesh({ service: 'productpage', xds: { bootstrap: agentBootstrap(ads.address, { certDir: writeWorkload(ca, 'productpage') }), listeners: [NAME], resourceTimeout: '3s' } }))
  meshes.push(createMesh({ service: 'intruder', xds: { bootstrap: agentBootstrap(ads.address, { certDir: writeWorkload(ca, 'intruder') }), listeners: [NAME], resourceTimeout: '3s' } }))
  clientResources([RATINGS_ID])
  table.push()
})

after(async () => {
  await Promise.all(meshes.map((m) => m.close()))
  await closeServer()
  await serverMesh.close()
  await ads.stop()
  rmSync(dir, { recursive: true, force: true })
})

async function call(mesh: Mesh, path: string): Promise<string> {
  const res = await mesh.fetch(`http://${NAME}${path}`)
  return `${res.status} ${await res.text()}`
}

describe('xDS security: identity, ISTIO_MUTUAL, inbound mTLS and RBAC from istiod\'s resources', () => {
  test('the inbound Listener gives STRICT mTLS and RBAC (DENY, then ALLOW) on the server\'s port', () => {
    const listener = serverMesh.config.listener
    assert.equal(listener?.mtls?.portLevelMtls?.[String(port)]?.mode, 'STRICT')
    assert.deepEqual(listener?.authorization?.map((p) => [p.name, p.action]), [['default-deny-admin-0', 'DENY'], ['default-allow-productpage-0', 'ALLOW']])
    assert.ok(serverMesh.config.identity?.certificate.endsWith('cert-chain.pem'))
  })

  test('a caller with the allowed identity gets through over mTLS; the server sees its SPIFFE ID', async () => {
    const [productpage] = meshes as [Mesh]
    assert.equal(await productpage.xds?.ready(), true)
    assert.equal(productpage.config.clusters?.find((c) => c.name === CLUSTER)?.tls?.mode, 'ISTIO_MUTUAL')
    assert.equal(await call(productpage, '/ratings/1'), '200 ratings saw spiffe://cluster.local/ns/default/sa/productpage /ratings/1')
  })

  test('DENY comes before ALLOW: the allowed caller is refused /admin', async () => {
    const [productpage] = meshes as [Mesh]
    assert.match(await call(productpage, '/admin/reset'), /^403 /)
  })

  test('a caller whose identity no ALLOW policy names is refused', async () => {
    const intruder = meshes[1] as Mesh
    await intruder.xds?.ready()
    assert.match(await call(intruder, '/ratings/1'), /^403 /)
  })

  test('plain HTTP is refused by the STRICT listener', async () => {
    await assert.rejects(request(`http://127.0.0.1:${port}/ratings/1`).then((r) => r.body.text()))
  })

  test('a SAN matcher the server does not satisfy fails the call (503 UF) before any byte is sent', async () => {
    const [productpage] = meshes as [Mesh]
    const applied = new Promise((resolve) => productpage.once('config', resolve))
    clientResources(['spiffe://cluster.local/ns/default/sa/someone-else'])
    table.push('cluster')
    await applied
    const res = await productpage.fetch(`http://${NAME}/ratings/1`)
    assert.equal(res.status, 503)
    assert.equal(res.headers.get('x-sidecarless-response-flags'), 'UF')
    assert.match(await res.text(), /SIDECARLESS_ERR_PEER_IDENTITY/)
    clientResources([RATINGS_ID])
    table.push('cluster')
  })

  test('an RBAC filter the mesh cannot enforce exactly is NACKed; the authorization in force stays', async () => {
    const inbound = `xds.istio.io/grpc/lds/inbound/127.0.0.1:${port}`
    const metadataPolicy: XdsObject = { permissions: [{ any: true }], principals: [{ metadata: { filter: 'envoy.filters.http.jwt_authn', path: [{ key: 'payload' }], value: { present_match: true } } }] }
    const nonce = ads.send('listener', 'bad', [inboundListener(inbound, port, { mtls: true, allow: { jwt: metadataPolicy } })], { stream: ads.requests.find((r) => r.names.includes(inbound))?.stream as number })
    const answer = await ads.answerTo(nonce)
    assert.match(answer.error ?? '', /metadata matchers/)
    assert.equal(serverMesh.config.listener?.authorization?.length, 2)
    const [productpage] = meshes as [Mesh]
    assert.match(await call(productpage, '/ratings/2'), /^200 /)
  })
})
