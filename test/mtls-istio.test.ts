/**
 * Interop with Istio sidecars during a migration, both directions, with real TLS:
 *
 * - inbound: clients offering what a sidecar's outbound cluster offers (ALPN `istio-http/1.1`,
 *   `istio`, `istio-peer-exchange`; SNI `outbound_.<port>_.<subset>_.<host>`) are served
 *   HTTP/1.1 by STRICT and PERMISSIVE listeners, and resume their sessions;
 * - outbound: a server set up as a sidecar's inbound listener is (mutual TLS required; mTLS
 *   terminated only for a ClientHello offering one of Istio's ALPN values, as the filter
 *   chain match of a PERMISSIVE port; server ALPN h2, http/1.1) accepts the mesh's
 *   ISTIO_MUTUAL connections, which send Istio's ALPN and, for Istio-named clusters, Istio's SNI.
 *
 * ALPN lists and SNI form from istio/istio: pilot/pkg/networking/core (mtlsHTTPALPNs,
 * allIstioMtlsALPNs, the inbound filter-chain match options), pilot/pkg/xds/filters
 * (mtlsHTTP11ALPN), pilot/pkg/model (BuildDNSSrvSubsetKey).
 */
import assert from 'node:assert/strict'
import https from 'node:https'
import type net from 'node:net'
import type { TLSSocket } from 'node:tls'
import { describe, it } from 'node:test'
import { createCertificateAuthority, createMesh, validateConfig, type IssuedCertificate, type MeshConfig } from '../src/index.js'
import { RESPONSE_FLAGS_HEADER } from '../src/response-headers.js'
import { istioSniOf, selectServerAlpn } from '../src/security/istio-tls.js'
import { CLOSE_HEADER, listenerConfig, serveMesh, tlsRequest } from './helpers/mtls.js'

const TD = 'cluster.local'
const ca = createCertificateAuthority({ trustDomain: TD })
const serverId = `spiffe://${TD}/ns/default/sa/reviews`
const clientId = `spiffe://${TD}/ns/default/sa/productpage`
const serverCert = ca.issue({ spiffeId: serverId })
const clientCert = ca.issue({ spiffeId: clientId })
const identityOf = (c: IssuedCertificate): NonNullable<MeshConfig['identity']> => ({ certificate: c.certificate, privateKey: c.privateKey, trustBundle: c.trustBundle })
const asClient = (c: IssuedCertificate): { cert: string; key: string; ca: string } => ({ cert: c.certificate, key: c.privateKey, ca: c.trustBundle })

/** Istio's ALPN values a sidecar's inbound listener terminates mTLS for (allIstioMtlsALPNs). */
const ALL_ISTIO_MTLS_ALPNS = ['istio', 'istio-peer-exchange', 'istio-http/1.0', 'istio-http/1.1', 'istio-h2']
const ISTIO_SNI = 'outbound_.9080_.v1_.reviews.default.svc.cluster.local'

describe('Istio sidecars calling the mesh', () => {
  // [what a client offers, what the listener selects (undefined: refused)]
  const offers: [string[], string | undefined][] = [
    [['istio-http/1.1'], 'istio-http/1.1'],
    [['istio-http/1.1', 'istio'], 'istio-http/1.1'], // a sidecar's HTTP/1.1 (mtlsHTTP11ALPN)
    [['istio-http/1.0', 'istio'], 'istio-http/1.0'],
    [['istio-peer-exchange', 'istio', 'http/1.1'], 'http/1.1'],
    [['istio-peer-exchange', 'istio'], 'istio'], // a sidecar proxying our port as TCP: never select peer exchange
    [['h2', 'http/1.1'], 'http/1.1'],
    [['istio-h2', 'istio'], undefined], // HTTP/2 only: the listener speaks HTTP/1.x
    [['h2'], undefined],
  ]
  for (const mode of ['STRICT', 'PERMISSIVE'] as const) {
    it(`${mode}: Istio's ALPN lists and SNI are served HTTP/1.1 (HTTP/2-only lists refused with no_application_protocol)`, async () => {
      const s = await serveMesh(listenerConfig(identityOf(serverCert), mode))
      try {
        for (const [ALPNProtocols, selected] of offers) {
          const r = await tlsRequest({ port: s.port, ...asClient(clientCert), ALPNProtocols, servername: ISTIO_SNI })
          if (selected === undefined) {
            assert.equal(r.error, 'ERR_SSL_TLSV1_ALERT_NO_APPLICATION_PROTOCOL', ALPNProtocols.join())
            assert.equal(r.body, '')
          } else {
            assert.equal(r.error, undefined, ALPNProtocols.join())
            assert.equal(r.alpn, selected, ALPNProtocols.join())
            assert.equal(r.body, `hello ${clientId}`, ALPNProtocols.join())
          }
        }
        const served = offers.filter(([, selected]) => selected !== undefined).length
        assert.deepEqual(s.seen, Array(served).fill(clientId))
        assert.equal(s.mesh.metrics.snapshot().security.tls.downstream.failed, offers.length - served)
      } finally {
        await s.close()
      }
    })
  }

  it('a sidecar-like client resumes its session, with its ALPN and SNI', async () => {
    const s = await serveMesh(listenerConfig(identityOf(serverCert), 'PERMISSIVE'))
    try {
      const sidecar = { port: s.port, ...asClient(clientCert), ALPNProtocols: ['istio-http/1.1', 'istio'], servername: ISTIO_SNI }
      const first = await tlsRequest(sidecar)
      const second = await tlsRequest({ ...sidecar, session: first.session })
      assert.equal(second.reused, true)
      assert.equal(second.alpn, 'istio-http/1.1')
      assert.equal(second.body, `hello ${clientId}`)
    } finally {
      await s.close()
    }
  })

  it('selectServerAlpn: the listener\'s choice, in order', () => {
    assert.equal(selectServerAlpn(['istio-http/1.1', 'http/1.1']), 'http/1.1')
    assert.equal(selectServerAlpn(['http/1.0', 'istio-http/1.1']), 'istio-http/1.1')
    assert.equal(selectServerAlpn(['istio-peer-exchange']), undefined)
    assert.equal(selectServerAlpn(['acme-tls/1']), undefined)
    assert.equal(selectServerAlpn(['istio', 'h2']), undefined)
  })
})

/**
 * A server configured as a sidecar's inbound listener on a PERMISSIVE port: mTLS with client
 * certificates required, terminated only for ClientHellos offering an Istio ALPN value
 * (anything else matches no mTLS filter chain and is closed here), server ALPN h2, http/1.1.
 */
async function sidecarInbound(): Promise<{ port: number; hellos: { servername: string | false; protocols: string[] }[]; resumed: boolean[]; close(): Promise<void> }> {
  const hellos: { servername: string | false; protocols: string[] }[] = []
  const resumed: boolean[] = []
  const server = https.createServer({
    cert: serverCert.certificate,
    key: serverCert.privateKey,
    ca: ca.trustBundle,
    requestCert: true,
    rejectUnauthorized: true,
    ALPNCallback: ({ servername, protocols }) => {
      hellos.push({ servername, protocols })
      if (!protocols.some((p) => ALL_ISTIO_MTLS_ALPNS.includes(p))) return undefined
      // Envoy selects from its own list (h2, http/1.1); with none in common it selects nothing, which
      // Node cannot express: it selects the client's first value then.
      return protocols.includes('http/1.1') ? 'http/1.1' : protocols[0]
    },
  }, (req, res) => {
    resumed.push((req.socket as TLSSocket).isSessionReused())
    if (req.headers[CLOSE_HEADER] !== undefined) res.setHeader('connection', 'close')
    res.end('from the sidecar')
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    port: (server.address() as net.AddressInfo).port,
    hellos,
    resumed,
    close: async () => {
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}

function clientConfig(port: number, cluster: string, tls: NonNullable<MeshConfig['clusters']>[number]['tls']): MeshConfig {
  return {
    identity: identityOf(clientCert),
    clusters: [{ name: cluster, endpoints: [{ address: `127.0.0.1:${port}` }], tls }],
    virtualHosts: [{ name: 'reviews', domains: ['reviews'], routes: [{ match: { prefix: '/' }, route: { cluster } }] }],
  }
}

describe('the mesh calling Istio sidecars', () => {
  it('ISTIO_MUTUAL offers Istio\'s ALPN and, for an Istio-named cluster, Istio\'s SNI; the sidecar terminates mTLS; sessions resume', async () => {
    const sidecar = await sidecarInbound()
    const client = createMesh({ config: clientConfig(sidecar.port, 'outbound|9080|v1|reviews.default.svc.cluster.local', { mode: 'ISTIO_MUTUAL', verifyIdentities: [serverId] }) })
    try {
      for (let i = 0; i < 3; i++) {
        const res = await client.fetch('http://reviews/', { headers: { [CLOSE_HEADER]: '1' } })
        assert.equal(res.status, 200)
        assert.equal(await res.text(), 'from the sidecar')
      }
      assert.deepEqual(sidecar.hellos[0], { servername: ISTIO_SNI, protocols: ['istio-http/1.1', 'istio', 'http/1.1'] })
      assert.equal(sidecar.hellos.length, 3)
      // The mesh's session cache works against other servers too.
      assert.deepEqual(sidecar.resumed, [false, true, true])
      assert.deepEqual(client.metrics.snapshot().security.tls.upstream, { full: 1, resumed: 2, failed: 0 })
    } finally {
      await client.close()
      await sidecar.close()
    }
  })

  it('an explicit tls.sni is sent as given; a cluster not named in Istio\'s form sends none to an IP', async () => {
    const sidecar = await sidecarInbound()
    const explicit = createMesh({ config: clientConfig(sidecar.port, 'reviews', { mode: 'ISTIO_MUTUAL', sni: 'outbound_.9080_._.reviews.default.svc.cluster.local' }) })
    const plain = createMesh({ config: clientConfig(sidecar.port, 'reviews', { mode: 'ISTIO_MUTUAL' }) })
    try {
      assert.equal((await explicit.fetch('http://reviews/')).status, 200)
      assert.equal((await plain.fetch('http://reviews/')).status, 200)
      assert.deepEqual(sidecar.hellos.map((h) => h.servername), ['outbound_.9080_._.reviews.default.svc.cluster.local', false])
    } finally {
      await explicit.close()
      await plain.close()
      await sidecar.close()
    }
  })

  it('mode mutual offers only http/1.1: a sidecar\'s PERMISSIVE port does not terminate it (503 UF), as it would not for any non-Istio client', async () => {
    const sidecar = await sidecarInbound()
    const client = createMesh({ config: clientConfig(sidecar.port, 'reviews', { mode: 'mutual' }) })
    try {
      const res = await client.fetch('http://reviews/')
      assert.equal(res.status, 503)
      assert.equal(res.headers.get(RESPONSE_FLAGS_HEADER), 'UF')
      assert.deepEqual(sidecar.hellos.map((h) => h.protocols), [['http/1.1']])
      assert.deepEqual(sidecar.resumed, [])
      assert.deepEqual(client.metrics.snapshot().security.tls.upstream, { full: 0, resumed: 0, failed: 1 })
    } finally {
      await client.close()
      await sidecar.close()
    }
  })

  it('ISTIO_MUTUAL to a mesh listener: served (the listener accepts what it sends)', async () => {
    const s = await serveMesh(listenerConfig(identityOf(serverCert), 'STRICT'))
    const client = createMesh({ config: clientConfig(s.port, 'outbound|9080||reviews.default.svc.cluster.local', { mode: 'ISTIO_MUTUAL' }) })
    try {
      const res = await client.fetch('http://reviews/')
      assert.equal(await res.text(), `hello ${clientId}`)
    } finally {
      await client.close()
      await s.close()
    }
  })

  it('Istio\'s SNI form: from the cluster name, and accepted as tls.sni', () => {
    assert.equal(istioSniOf('outbound|9080|v1|reviews.default.svc.cluster.local'), ISTIO_SNI)
    assert.equal(istioSniOf('outbound|9080||reviews.default.svc.cluster.local'), 'outbound_.9080_._.reviews.default.svc.cluster.local')
    assert.equal(istioSniOf('reviews'), undefined)
    assert.equal(istioSniOf('inbound|9080||'), undefined)
    const config = clientConfig(9, 'reviews', { mode: 'ISTIO_MUTUAL', sni: ISTIO_SNI })
    assert.deepEqual(validateConfig(config), [])
    const bad = validateConfig(clientConfig(9, 'reviews', { mode: 'ISTIO_MUTUAL', sni: 'outbound|9080|v1|reviews' }))
    assert.deepEqual(bad.map((i) => [i.path, i.code]), [['clusters[0].tls.sni', 'INVALID_VALUE']])
  })
})
