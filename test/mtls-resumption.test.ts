/**
 * TLS session resumption on the inbound listener (STRICT and PERMISSIVE, createServer and
 * wrap, TLS 1.3 and 1.2) and on the mesh's own upstream connections, with real clients:
 * node:tls, undici, curl and openssl s_client. The identity of a resumed connection is the
 * one its session's full handshake verified; a session never outlives the trust bundle it
 * was verified under, nor its client certificate.
 */
import assert from 'node:assert/strict'
import { rename, writeFile } from 'node:fs/promises'
import net from 'node:net'
import tls from 'node:tls'
import { after, before, describe, it } from 'node:test'
import { inspect } from 'node:util'
import { Agent, request } from 'undici'
import { createCertificateAuthority, createMesh, loadCredentials, type IssuedCertificate, type MeshConfig } from '../src/index.js'
import { TicketKeyRing, ticketKeyCallbackSupported } from '../src/security/ticket-keys.js'
import { CLOSE_HEADER, listenerConfig, serveMesh, tlsRequest } from './helpers/mtls.js'
import { run, tempDir } from './helpers/pki.js'

const TD = 'cluster.local'
const ca = createCertificateAuthority({ trustDomain: TD })
const serverId = `spiffe://${TD}/ns/default/sa/reviews`
const clientId = `spiffe://${TD}/ns/default/sa/productpage`
const serverCert = ca.issue({ spiffeId: serverId })
const clientCert = ca.issue({ spiffeId: clientId })
const identityOf = (c: IssuedCertificate): NonNullable<MeshConfig['identity']> => ({ certificate: c.certificate, privateKey: c.privateKey, trustBundle: c.trustBundle })
const asClient = (c: IssuedCertificate): { cert: string; key: string; ca: string } => ({ cert: c.certificate, key: c.privateKey, ca: c.trustBundle })

/** Asks the test server to close the connection after its response, so each request is a new connection. */
const CLOSE = { [CLOSE_HEADER]: '1' }

async function waitFor(test: () => boolean, ms = 5_000): Promise<void> {
  const end = Date.now() + ms
  while (!test()) {
    if (Date.now() > end) throw new Error('condition not met in time')
    await new Promise((r) => setTimeout(r, 20))
  }
}

async function hasCommand(cmd: string): Promise<boolean> {
  return (await run(cmd, ['--version'])).code === 0 || (await run(cmd, ['version'])).code === 0
}

describe('inbound session resumption', () => {
  for (const mode of ['STRICT', 'PERMISSIVE'] as const) {
    for (const wrap of [false, true]) {
      for (const maxVersion of ['TLSv1.3', 'TLSv1.2'] as const) {
        it(`${mode}, ${wrap ? 'mesh.wrap' : 'mesh.createServer'}, ${maxVersion}: the second connection resumes and keeps the caller's identity`, async () => {
          const s = await serveMesh(listenerConfig(identityOf(serverCert), mode), wrap)
          try {
            const first = await tlsRequest({ port: s.port, ...asClient(clientCert), maxVersion })
            assert.equal(first.error, undefined)
            assert.equal(first.body, `hello ${clientId}`)
            assert.equal(first.reused, false)
            assert.ok(first.session !== undefined, 'a session ticket was received')
            const second = await tlsRequest({ port: s.port, ...asClient(clientCert), maxVersion, session: first.session })
            assert.equal(second.error, undefined, 'the resumed handshake succeeds')
            assert.equal(second.reused, true)
            assert.equal(second.body, `hello ${clientId}`)
            assert.deepEqual(s.seen, [clientId, clientId])
            const stats = s.mesh.metrics.snapshot()
            assert.deepEqual(stats.security.tls.downstream, { full: 1, resumed: 1, failed: 0 })
            // The resumed caller is counted by its principal like any other (Istio's source_principal).
            assert.equal(stats.inbound.sources[clientId]?.requests, 2)
            const text = s.mesh.metrics.prometheus()
            assert.ok(text.includes('sidecarless_downstream_ssl_handshakes_total{kind="full"} 1'), text)
            assert.ok(text.includes('sidecarless_downstream_ssl_handshakes_total{kind="resumed"} 1'), text)
          } finally {
            await s.close()
          }
        })
      }
    }
  }

  it('plain undici with a client certificate and a new connection per request: every request succeeds, sessions resume', async () => {
    const s = await serveMesh(listenerConfig(identityOf(serverCert), 'STRICT'), false, 'reviews')
    const agent = new Agent({ connect: { ...asClient(clientCert), checkServerIdentity: () => undefined } })
    try {
      const statuses: number[] = []
      for (let i = 0; i < 10; i++) {
        // reset: the connection closes after the response, so each request handshakes again.
        const res = await request(`https://127.0.0.1:${s.port}/`, { dispatcher: agent, reset: true })
        statuses.push(res.statusCode)
        assert.equal(await res.body.text(), `hello ${clientId}`)
      }
      assert.deepEqual(statuses, Array(10).fill(200))
      const hs = s.mesh.metrics.snapshot().security.tls.downstream
      assert.equal(hs.full + hs.resumed, 10)
      assert.equal(hs.failed, 0)
      // undici holds sessions through WeakRefs, so a GC may cost one a full handshake; most resume.
      assert.ok(hs.resumed >= 1, JSON.stringify(hs))
      assert.ok(s.mesh.metrics.prometheus().includes('sidecarless_downstream_ssl_handshakes_total{service="reviews",kind="resumed"}'))
    } finally {
      await agent.close()
      await s.close()
    }
  })

  describe('command-line clients', () => {
    let dir: Awaited<ReturnType<typeof tempDir>>
    const files: Record<string, string> = {}
    before(async () => {
      dir = await tempDir()
      files['ca'] = await dir.write('ca.pem', ca.trustBundle)
      files['cert'] = await dir.write('client.pem', clientCert.certificate)
      files['key'] = await dir.write('client.key', clientCert.privateKey)
      files['req'] = await dir.write('req.txt', 'GET / HTTP/1.1\r\nHost: reviews\r\nConnection: close\r\n\r\n')
    })
    after(() => dir.dispose())

    for (const mode of ['STRICT', 'PERMISSIVE'] as const) {
      it(`curl, two URLs in one invocation over new connections (TLS 1.3), ${mode}: the second resumes`, async (t) => {
        if (!(await hasCommand('curl'))) return t.skip('curl is not installed')
        const s = await serveMesh(listenerConfig(identityOf(serverCert), mode))
        try {
          const url = `https://127.0.0.1:${s.port}/`
          const r = await run('curl', ['-sS', '-v', '--max-time', '5', '-k', '--tlsv1.3', '--cacert', files['ca'] as string, '--cert', files['cert'] as string, '--key', files['key'] as string,
            '-H', 'Connection: close', `${url}a`, `${url}b`])
          assert.equal(r.code, 0, r.stderr)
          assert.equal(r.stdout, `hello ${clientId}hello ${clientId}`)
          assert.match(r.stderr, /SSL re-using session ID/)
          assert.deepEqual(s.mesh.metrics.snapshot().security.tls.downstream, { full: 1, resumed: 1, failed: 0 })
        } finally {
          await s.close()
        }
      })
    }

    it('openssl s_client: -sess_out / -sess_in (TLS 1.3) and -reconnect (TLS 1.2) resume', async (t) => {
      if (!(await hasCommand('openssl'))) return t.skip('openssl is not installed')
      const s = await serveMesh(listenerConfig(identityOf(serverCert), 'STRICT'))
      const base = ['s_client', '-connect', `127.0.0.1:${s.port}`, '-cert', files['cert'] as string, '-key', files['key'] as string, '-CAfile', files['ca'] as string]
      const withRequest = async (args: string[]): Promise<string> => {
        const { execFile } = await import('node:child_process')
        const { readFile } = await import('node:fs/promises')
        const input = await readFile(files['req'] as string)
        return new Promise((resolve) => {
          const child = execFile('openssl', [...base, ...args], { timeout: 15_000, encoding: 'utf8' }, (_err, stdout) => resolve(stdout))
          child.stdin?.end(input)
        })
      }
      try {
        const sess = dir.file('session.pem')
        const first = await withRequest(['-ign_eof', '-sess_out', sess])
        assert.match(first, /^New, TLSv1\.3/m)
        assert.ok(first.includes(`hello ${clientId}`), first)
        const second = await withRequest(['-ign_eof', '-sess_in', sess])
        assert.match(second, /^Reused, TLSv1\.3/m)
        assert.ok(second.includes(`hello ${clientId}`), second)
        // -reconnect reconnects five times with the first session (in TLS 1.3 s_client reads no ticket before it does).
        const reconnect = await withRequest(['-tls1_2', '-reconnect'])
        assert.equal(reconnect.match(/^Reused, TLSv1\.2/gm)?.length, 5, reconnect)
        // s_client may exit before the server has read its last Finished.
        await waitFor(() => s.mesh.metrics.snapshot().security.tls.downstream.resumed === 6)
        assert.deepEqual(s.mesh.metrics.snapshot().security.tls.downstream, { full: 2, resumed: 6, failed: 0 })
      } finally {
        await s.close()
      }
    })
  })
})

describe('what a resumed session may carry', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>
  before(async () => {
    dir = await tempDir()
  })
  after(() => dir.dispose())

  async function replace(name: string, data: string): Promise<string> {
    await writeFile(dir.file(`${name}.tmp`), data)
    await rename(dir.file(`${name}.tmp`), dir.file(name))
    return dir.file(name)
  }

  it('a new trust bundle invalidates earlier sessions: a still-trusted caller gets a full handshake, an untrusted one is refused', async () => {
    const other = createCertificateAuthority({ trustDomain: TD })
    const config: MeshConfig = {
      identity: { certificate: await replace('server.pem', serverCert.certificate), privateKey: await replace('server.key', serverCert.privateKey), trustBundle: await replace('ca.pem', ca.trustBundle), watch: false },
      listener: { mtls: { mode: 'STRICT' } },
    }
    const s = await serveMesh(config)
    try {
      const first = await tlsRequest({ port: s.port, ...asClient(clientCert) })
      assert.equal(first.body, `hello ${clientId}`)
      // Both CAs trusted (a CA migration's first step): the session does not resume, the caller is verified again and served.
      await replace('ca.pem', `${ca.trustBundle}${other.trustBundle}`)
      assert.equal(s.mesh.snapshot.identity?.reload(), true)
      const again = await tlsRequest({ port: s.port, ...asClient(clientCert), session: first.session })
      assert.equal(again.error, undefined)
      assert.equal(again.reused, false)
      assert.equal(again.body, `hello ${clientId}`)
      // Only the new CA: the old session must not let the caller in.
      const newServer = other.issue({ spiffeId: serverId })
      await replace('server.pem', newServer.certificate)
      await replace('server.key', newServer.privateKey)
      await replace('ca.pem', other.trustBundle)
      assert.equal(s.mesh.snapshot.identity?.reload(), true)
      const refused = await tlsRequest({ port: s.port, cert: clientCert.certificate, key: clientCert.privateKey, ca: other.trustBundle, session: again.session ?? first.session })
      // In TLS 1.3 the client finishes its handshake before the server has checked its certificate: the refusal is the missing response.
      assert.equal(refused.body, '', 'a caller the bundle no longer trusts is refused')
      assert.deepEqual(s.seen, [clientId, clientId])
      assert.deepEqual(s.mesh.metrics.snapshot().security.tls.downstream, { full: 2, resumed: 0, failed: 1 })
    } finally {
      await s.close()
    }
  })

  it('a session whose client certificate has expired since is refused', async () => {
    const shortLived = ca.issue({ spiffeId: clientId, ttl: '4s' })
    const s = await serveMesh(listenerConfig(identityOf(serverCert), 'STRICT'))
    try {
      const first = await tlsRequest({ port: s.port, ...asClient(shortLived) })
      assert.equal(first.body, `hello ${clientId}`)
      assert.ok(first.session !== undefined)
      const resumed = await tlsRequest({ port: s.port, ...asClient(shortLived), session: first.session })
      assert.equal(resumed.reused, true, 'resumes while the certificate is valid')
      // Wait until the certificate has expired (its notAfter is within 4s).
      const notAfter = new Date(new (await import('node:crypto')).X509Certificate(shortLived.certificate).validTo).getTime()
      await new Promise((r) => setTimeout(r, Math.max(0, notAfter - Date.now()) + 300))
      const late = await tlsRequest({ port: s.port, ...asClient(shortLived), session: resumed.session ?? first.session })
      assert.equal(late.body, '', 'no request is served on the expired certificate')
      assert.deepEqual(s.seen, [clientId, clientId])
      assert.equal(s.mesh.metrics.snapshot().security.tls.downstream.failed, 1)
    } finally {
      await s.close()
    }
  })
})

/** A server making a TLS socket by hand over each connection, as the listener does, answering `ok`. */
async function handBuiltServer(context: tls.SecureContext): Promise<{ server: net.Server; port: number }> {
  const owner = tls.createServer()
  const server = net.createServer((raw) => {
    const socket = new tls.TLSSocket(raw, { isServer: true, server: owner, secureContext: context, requestCert: true, rejectUnauthorized: true })
    socket.on('error', () => raw.destroy())
    socket.once('secure', () => socket.end('HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok'))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return { server, port: (server.address() as net.AddressInfo).port }
}

describe('ticket keys', () => {
  it('the public Credentials.secureContext resumes verified clients when it serves', async () => {
    const { server, port } = await handBuiltServer(loadCredentials(identityOf(serverCert)).secureContext)
    try {
      const first = await tlsRequest({ port, ...asClient(clientCert) })
      const second = await tlsRequest({ port, ...asClient(clientCert), session: first.session })
      assert.equal(second.error, undefined)
      assert.equal(second.reused, true)
      assert.equal(second.body, 'ok')
    } finally {
      server.close()
    }
  })

  it('this Node exposes the ticket-key hook the listener rotates keys with', () => {
    // If a Node release drops it, tickets still work (OpenSSL's key per context) but stop rotating hourly: this test says so.
    assert.equal(ticketKeyCallbackSupported(tls.createSecureContext({})), true)
  })

  it('rotate: the previous key still decrypts (and the ticket is renewed) for one more period, then not', async () => {
    let now = 0
    const ring = new TicketKeyRing(1000, () => now)
    const context = tls.createSecureContext({ cert: serverCert.certificate, key: serverCert.privateKey, ca: ca.trustBundle, sessionIdContext: 'ticket-test' })
    assert.equal(ring.install(context), true)
    const { server, port } = await handBuiltServer(context)
    try {
      for (const maxVersion of ['TLSv1.3', 'TLSv1.2'] as const) {
        now = 10_000 * (maxVersion === 'TLSv1.3' ? 1 : 2)
        const first = await tlsRequest({ port, ...asClient(clientCert), maxVersion })
        assert.equal(first.body, 'ok')
        now += 500
        const sameKey = await tlsRequest({ port, ...asClient(clientCert), maxVersion, session: first.session })
        assert.equal(sameKey.reused, true, `${maxVersion}: same key`)
        const renewedBefore = ring.renewed
        now += 1000 // a new key encrypts; the first one still decrypts
        const previousKey = await tlsRequest({ port, ...asClient(clientCert), maxVersion, session: first.session })
        assert.equal(previousKey.reused, true, `${maxVersion}: previous key`)
        assert.equal(ring.renewed, renewedBefore + 1)
        assert.equal(ring.size, 2)
        now += 1000 // the first key is two periods old: gone
        const expired = await tlsRequest({ port, ...asClient(clientCert), maxVersion, session: first.session })
        assert.equal(expired.error, undefined)
        assert.equal(expired.reused, false, `${maxVersion}: dropped key`)
      }
    } finally {
      // Every connection has ended by now; the raw sockets whose handles the TLS sockets took never report it.
      server.close()
    }
  })

  it('answers the native hook with whole, well-formed arrays; keys never show in inspect or JSON', () => {
    let now = 0
    const ring = new TicketKeyRing(1000, () => now)
    const enc = ring.answer(Buffer.alloc(16), true)
    assert.equal(enc[0], 1)
    assert.deepEqual(enc.slice(1).map((b) => (b as Buffer).length), [16, 16, 16, 16])
    const name = enc[3] as Buffer
    assert.deepEqual(ring.answer(name, false).slice(0, 1), [1])
    const unknown = ring.answer(Buffer.alloc(16, 7), false)
    assert.equal(unknown[0], 0)
    assert.equal((unknown[1]).length, 16)
    assert.equal((unknown[2]).length, 16)
    now = 1500
    ring.answer(Buffer.alloc(16), true)
    assert.equal(ring.answer(name, false)[0], 2)
    now = 2500
    assert.equal(ring.answer(name, false)[0], 0)
    const shown = `${inspect(ring)}${JSON.stringify(ring)}`
    for (const part of [enc[1], enc[2], name] as Buffer[]) {
      assert.ok(!shown.includes(part.toString('hex')) && !shown.includes(part.toString('base64')), shown)
    }
  })
})

describe('the mesh client resumes', () => {
  it('against a mesh server: one full handshake, then resumed ones; the identity is verified on each', async () => {
    const s = await serveMesh(listenerConfig(identityOf(serverCert), 'STRICT'))
    const client = createMesh({
      config: {
        identity: identityOf(clientCert),
        clusters: [{ name: 'reviews', endpoints: [{ address: `127.0.0.1:${s.port}` }], tls: { mode: 'ISTIO_MUTUAL', verifyIdentities: [serverId] } }],
        virtualHosts: [{ name: 'reviews', domains: ['reviews'], routes: [{ match: { prefix: '/' }, route: { cluster: 'reviews' } }] }],
      },
    })
    try {
      for (let i = 0; i < 5; i++) {
        const res = await client.fetch('http://reviews/', { headers: CLOSE })
        assert.equal(res.status, 200)
        assert.equal(await res.text(), `hello ${clientId}`)
      }
      assert.deepEqual(s.mesh.metrics.snapshot().security.tls.downstream, { full: 1, resumed: 4, failed: 0 })
      assert.deepEqual(client.metrics.snapshot().security.tls.upstream, { full: 1, resumed: 4, failed: 0 })
      assert.ok(client.metrics.prometheus().includes('sidecarless_upstream_ssl_handshakes_total{kind="resumed"} 4'))
    } finally {
      await client.close()
      await s.close()
    }
  })

  it('a rotated client certificate is never replaced by a session made with the old one', async () => {
    const dir = await tempDir()
    try {
      const write = async (name: string, data: string): Promise<string> => {
        await writeFile(dir.file(`${name}.tmp`), data)
        await rename(dir.file(`${name}.tmp`), dir.file(name))
        return dir.file(name)
      }
      const s = await serveMesh(listenerConfig(identityOf(serverCert), 'STRICT'))
      const client = createMesh({
        config: {
          identity: { certificate: await write('c.pem', clientCert.certificate), privateKey: await write('c.key', clientCert.privateKey), trustBundle: await write('ca.pem', ca.trustBundle), watch: false },
          clusters: [{ name: 'reviews', endpoints: [{ address: `127.0.0.1:${s.port}` }], tls: { mode: 'ISTIO_MUTUAL' } }],
          virtualHosts: [{ name: 'reviews', domains: ['reviews'], routes: [{ match: { prefix: '/' }, route: { cluster: 'reviews' } }] }],
        },
      })
      try {
        const get = async (): Promise<string> => (await client.fetch('http://reviews/', { headers: CLOSE })).text()
        assert.equal(await get(), `hello ${clientId}`)
        assert.equal(await get(), `hello ${clientId}`)
        const v2 = `spiffe://${TD}/ns/default/sa/productpage-v2`
        const rotated = ca.issue({ spiffeId: v2 })
        await write('c.pem', rotated.certificate)
        await write('c.key', rotated.privateKey)
        assert.equal(client.snapshot.identity?.reload(), true)
        // A resumed session would carry the old certificate, and the server would see the old identity.
        assert.equal(await get(), `hello ${v2}`)
        assert.equal(await get(), `hello ${v2}`)
        assert.deepEqual(client.metrics.snapshot().security.tls.upstream, { full: 2, resumed: 2, failed: 0 })
      } finally {
        await client.close()
        await s.close()
      }
    } finally {
      await dir.dispose()
    }
  })
})
