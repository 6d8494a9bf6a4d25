/**
 * The mesh's upstream mTLS connections read into the shared buffer (`h1/shared-read.ts`,
 * `tls.connect`'s `onread`): bodies over many reads arrive whole, also while several
 * connections read at once; a request only undici's `Client` serves (an upgrade, or any
 * while undici's request diagnostics are listened to) gets a stream-mode TLS connection of
 * its own, which resumes the session of the first. A real https server with a certificate
 * of our CA, asking for the client's; the mesh as the client (ISTIO_MUTUAL).
 */
import assert from 'node:assert/strict'
import https from 'node:https'
import type { AddressInfo, Socket } from 'node:net'
import type { TLSSocket } from 'node:tls'
import { after, before, describe, it } from 'node:test'
import { request, upgrade } from 'undici'
import { createCertificateAuthority, createMesh, type Mesh } from '../src/index.js'
import { bigBody, readSlowly, sendBigBody, sha } from './helpers/big-body.js'
import { requireClientCert } from './helpers/mtls.js'
import { assertEchoes, serveEcho, watchRequestPaths } from './helpers/undici-client-only.js'

const TD = 'cluster.local'
const ca = createCertificateAuthority({ trustDomain: TD })
const serverCert = ca.issue({ spiffeId: `spiffe://${TD}/ns/default/sa/reviews` })
const clientCert = ca.issue({ spiffeId: `spiffe://${TD}/ns/default/sa/productpage` })

let server: https.Server
let mesh: Mesh
/** The server side socket of each request, by path, and whether its session was resumed. */
const socketOf = new Map<string, Socket>()
const resumed = new Map<string, boolean>()

before(async () => {
  server = https.createServer(requireClientCert(serverCert), (req, res) => {
    socketOf.set(req.url ?? '', req.socket)
    resumed.set(req.url ?? '', (req.socket as TLSSocket).isSessionReused())
    // Several reads' worth (over the shared 64 KiB buffer).
    if (sendBigBody(req.url, res)) return
    res.end(`ok ${req.url}`)
  })
  server.on('upgrade', (req, socket: Socket) => {
    socketOf.set(req.url ?? '', socket)
    serveEcho(socket)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as AddressInfo).port
  mesh = createMesh({
    config: {
      identity: { certificate: clientCert.certificate, privateKey: clientCert.privateKey, trustBundle: clientCert.trustBundle },
      clusters: [{ name: 'reviews', endpoints: [{ address: `127.0.0.1:${port}` }], tls: { mode: 'ISTIO_MUTUAL' }, circuitBreakers: { maxConnections: 2 } }],
      virtualHosts: [{ name: 'reviews', domains: ['reviews'], routes: [{ match: { prefix: '/' }, route: { cluster: 'reviews' } }] }],
    },
  })
})

after(async () => {
  await mesh.close()
  server.closeAllConnections()
  await new Promise<void>((resolve) => server.close(() => resolve()))
})

async function text(path: string): Promise<string> {
  const r = await request(`http://reviews${path}`, { dispatcher: mesh.dispatcher })
  return `${r.statusCode} ${await r.body.text()}`
}

describe('upstream mTLS connections that read into the shared buffer', () => {
  it('bodies over many reads arrive whole, one after another and two at once', async () => {
    for (const n of [1, 70_000, 250_001]) {
      const r = await request(`http://reviews/big/${n}`, { dispatcher: mesh.dispatcher })
      assert.equal(sha(Buffer.from(await r.body.arrayBuffer())), sha(bigBody(n)), `body of ${n} bytes`)
    }
    const sizes = [180_001, 180_002]
    const bodies = await Promise.all(sizes.map(async (n) => {
      const r = await request(`http://reviews/big/${n}`, { dispatcher: mesh.dispatcher })
      return readSlowly(r.body)
    }))
    sizes.forEach((n, i) => assert.equal(sha(bodies[i] as Buffer), sha(bigBody(n)), `body of ${n} bytes`))
  })

  it('an upgrade gets a TLS connection of its own (resuming the session); bytes go both ways; requests go on after', async () => {
    assert.equal(await text('/first'), '200 ok /first')
    const { socket, headers } = await upgrade('http://reviews/up', { dispatcher: mesh.dispatcher, protocol: 'echo' })
    assert.equal(headers['upgrade'], 'echo')
    assert.notEqual(socketOf.get('/up')?.remotePort, socketOf.get('/first')?.remotePort)
    await assertEchoes(socket)
    assert.equal(await text('/after'), '200 ok /after')
  })

  it('while undici\'s request diagnostics are listened to, requests go on stream-mode TLS connections, which resume', async () => {
    assert.equal(await text('/quiet'), '200 ok /quiet')
    const watch = watchRequestPaths()
    try {
      assert.equal(await text('/watched'), '200 ok /watched')
      const r = await request('http://reviews/big/100000', { dispatcher: mesh.dispatcher })
      assert.equal(sha(Buffer.from(await r.body.arrayBuffer())), sha(bigBody(100_000)))
    } finally {
      watch.stop()
    }
    assert.deepEqual(watch.paths, ['/watched', '/big/100000'])
    assert.equal(resumed.get('/watched'), true, 'the stream-mode connection resumed the session of the first')
    assert.equal(await text('/quiet-again'), '200 ok /quiet-again')
  })
})
