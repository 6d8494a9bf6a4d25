/**
 * Mutual TLS as the control plane sends it (UpstreamTlsContext from certificate provider
 * instance `default`, SAN matchers from `verifyIdentities`), followed by an independent
 * client: grpc-js-xds with XdsChannelCredentials and a file_watcher certificate provider in
 * its bootstrap (istio-agent's layout: cert-chain.pem, key.pem, root-cert.pem), calling a
 * backend that requires a client certificate. The client presents its SPIFFE certificate,
 * checks the backend's against the matchers, and fails when they name someone else.
 */
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { createCertificateAuthority, createControlPlane, type ControlPlane, type MeshConfig } from '../src/index.js'
import { loadGrpc } from '../src/xds/optional-deps.js'
import { bootstrapFor, ECHO_METHOD, startXdsPeer, type XdsPeer } from './fixtures/xds/grpc-peers.js'
import { root } from './helpers/spawned.js'

const require = createRequire(import.meta.url)
const CLIENT = join(root, 'test/fixtures/xds/grpc_js_client.mjs')
const ECHO_ID = 'spiffe://cluster.local/ns/default/sa/echo'

function missingPeer(): string | undefined {
  try {
    require.resolve('@grpc/grpc-js-xds')
    return undefined
  } catch {
    return '@grpc/grpc-js-xds (a devDependency) is not installed'
  }
}

describe('interop: grpc-js-xds follows the control plane\'s mutual TLS', () => {
  const missing = missingPeer()
  let cp: ControlPlane
  let client: XdsPeer
  let dir: string
  let stopBackend: () => void
  let port = 0
  const seenClients: string[] = []

  const config = (verifyIdentities: string[]): MeshConfig => ({
    clusters: [{ name: 'echo', endpoints: [{ address: `127.0.0.1:${port}` }], tls: { mode: 'ISTIO_MUTUAL', verifyIdentities } }],
    virtualHosts: [{ name: 'echo', domains: ['echo'], routes: [{ match: { prefix: '/' }, route: { cluster: 'echo' } }] }],
  })

  before(async () => {
    if (missing !== undefined) return
    const grpc = await loadGrpc()
    const ca = createCertificateAuthority({ trustDomain: 'cluster.local' })
    const backendCert = ca.issue({ spiffeId: ECHO_ID })
    const clientCert = ca.issue({ namespace: 'default', serviceAccount: 'caller' })
    const server = new grpc.Server()
    server.addService({ Call: ECHO_METHOD }, {
      Call: (call: { getPeer(): string; getAuthContext?(): { sslPeerCertificate?: { subjectaltname?: string } } }, callback: (err: null, value: Buffer) => void) => {
        seenClients.push(call.getAuthContext?.().sslPeerCertificate?.subjectaltname ?? '')
        callback(null, Buffer.from('secure-echo'))
      },
    })
    const credentials = grpc.ServerCredentials.createSsl(Buffer.from(backendCert.trustBundle), [{ private_key: Buffer.from(backendCert.privateKey), cert_chain: Buffer.from(backendCert.certificate) }], true)
    port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', credentials, (err, p) => (err === null ? resolve(p) : reject(err))))
    stopBackend = () => server.forceShutdown()
    dir = mkdtempSync(join(tmpdir(), 'sidecarless-cp-mtls-'))
    writeFileSync(join(dir, 'cert-chain.pem'), clientCert.certificate)
    writeFileSync(join(dir, 'key.pem'), clientCert.privateKey)
    writeFileSync(join(dir, 'root-cert.pem'), clientCert.trustBundle)
    cp = await createControlPlane({ config: config([ECHO_ID]), listen: '127.0.0.1:0', log: () => undefined })
    const bootstrap = {
      ...bootstrapFor(cp.address, 'mtls-client'),
      certificate_providers: {
        default: {
          plugin_name: 'file_watcher',
          config: { certificate_file: join(dir, 'cert-chain.pem'), private_key_file: join(dir, 'key.pem'), ca_certificate_file: join(dir, 'root-cert.pem'), refresh_interval: '600s' },
        },
      },
    }
    client = startXdsPeer(process.execPath, [CLIENT, 'xds:///echo:9090'], bootstrap, dir, { XDS_CREDENTIALS: '1' })
  })
  after(async () => {
    await client?.close()
    await cp?.close()
    stopBackend?.()
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true })
  })

  it('calls over mTLS, presenting the workload certificate, when the backend is who verifyIdentities names', async (t) => {
    if (missing !== undefined) return t.skip(missing)
    assert.deepEqual(await client.ask('call 5'), { counts: { 'secure-echo': 5 }, errors: {} })
    assert.equal(cp.stats().nacks, 0)
    // The backend saw the caller's workload certificate.
    assert.deepEqual(seenClients, new Array(5).fill('URI:spiffe://cluster.local/ns/default/sa/caller'))
  })

  it('refuses the backend once verifyIdentities names someone else', async (t) => {
    if (missing !== undefined) return t.skip(missing)
    await cp.update(config(['spiffe://cluster.local/ns/default/sa/other']))
    const deadline = Date.now() + 10_000
    let last: Record<string, unknown> = {}
    while (Date.now() < deadline) {
      last = await client.ask('call 1')
      if (Object.keys(last['errors'] as object).length > 0) break
    }
    assert.deepEqual(last['counts'], {}, JSON.stringify(last))
    assert.ok((last['errors'] as Record<string, number>)['UNAVAILABLE'] !== undefined, JSON.stringify(last))
    // A prefix matcher (`…/ns/default/*`) takes it again.
    await cp.update(config(['spiffe://cluster.local/ns/default/*']))
    const again = Date.now() + 10_000
    while (Date.now() < again) {
      last = await client.ask('call 1')
      if ((last['counts'] as Record<string, number>)['secure-echo'] === 1) break
    }
    assert.deepEqual(last, { counts: { 'secure-echo': 1 }, errors: {} })
  })
})
