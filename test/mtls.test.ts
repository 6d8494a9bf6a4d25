/**
 * Inbound and outbound mutual TLS with real certificates (our CA's and openssl's), real
 * servers on port 0, curl and the mesh as clients.
 */
import assert from 'node:assert/strict'
import http from 'node:http'
import net from 'node:net'
import { rename, writeFile } from 'node:fs/promises'
import tls from 'node:tls'
import { after, before, describe, it } from 'node:test'
import { ConfigError, createCertificateAuthority, createMesh, isMeshError, type IssuedCertificate, type Mesh, type MeshConfig } from '../src/index.js'
import { RESPONSE_FLAGS_HEADER } from '../src/response-headers.js'
import { curl, opensslCert, tempDir } from './helpers/pki.js'

const TD = 'cluster.local'
const ca = createCertificateAuthority({ trustDomain: TD })
const serverId = `spiffe://${TD}/ns/default/sa/reviews`
const clientId = `spiffe://${TD}/ns/default/sa/productpage`
const serverCert = ca.issue({ spiffeId: serverId })
const clientCert = ca.issue({ spiffeId: clientId })

const identityOf = (c: IssuedCertificate): NonNullable<MeshConfig['identity']> => ({ certificate: c.certificate, privateKey: c.privateKey, trustBundle: c.trustBundle })

interface Served {
  readonly mesh: Mesh
  readonly server: http.Server
  readonly port: number
  /** The peer identity the handler saw, one per request that reached it. */
  readonly seen: (string | undefined)[]
  close(): Promise<void>
}

async function serve(config: MeshConfig, wrap = false): Promise<Served> {
  const mesh = createMesh({ config })
  const seen: (string | undefined)[] = []
  const handler = (_req: http.IncomingMessage, res: http.ServerResponse): void => {
    const id = mesh.context()?.peer?.identity
    seen.push(id)
    res.end(`hello ${id ?? 'anonymous'}`)
  }
  const server = wrap ? mesh.wrap(http.createServer(handler)) : mesh.createServer(handler)
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as net.AddressInfo).port
  return {
    mesh, server, port, seen,
    close: async () => {
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
      await mesh.close()
    },
  }
}

async function waitFor(test: () => boolean | Promise<boolean>, ms = 5_000): Promise<void> {
  const end = Date.now() + ms
  while (!(await test())) {
    if (Date.now() > end) throw new Error('condition not met in time')
    await new Promise((r) => setTimeout(r, 20))
  }
}

/** Opens a raw connection, optionally writes `bytes`, and resolves when the server closes it (ms taken). */
function closedAfter(port: number, bytes?: Buffer, halfClose = false): Promise<number> {
  return new Promise((resolve) => {
    const start = Date.now()
    const s = net.connect(port, '127.0.0.1', () => {
      if (bytes !== undefined) s.write(bytes)
      if (halfClose) s.end()
    })
    s.on('error', () => undefined)
    s.on('close', () => resolve(Date.now() - start))
    s.resume()
  })
}

describe('inbound mTLS', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>
  const files: Record<string, string> = {}
  before(async () => {
    dir = await tempDir()
    files['ca'] = await dir.write('ca.pem', ca.trustBundle)
    files['cert'] = await dir.write('client.pem', clientCert.certificate)
    files['key'] = await dir.write('client.key', clientCert.privateKey)
    await ca.save(dir.file('ca'))
    const ourRoot = { cert: dir.file('ca/ca-cert.pem'), key: dir.file('ca/ca-key.pem') }
    const rogueRoot = await opensslCert(dir.path, 'rogue-root', { ca: true })
    const rogue = await opensslCert(dir.path, 'rogue', { issuer: rogueRoot, san: `URI:${clientId}` })
    files['rogueCert'] = rogue.cert
    files['rogueKey'] = rogue.key
    const expired = await opensslCert(dir.path, 'expired', { issuer: ourRoot, san: `URI:${clientId}`, dates: { start: '20200101000000Z', end: '20200102000000Z' } })
    files['expiredCert'] = expired.cert
    files['expiredKey'] = expired.key
    const noId = await opensslCert(dir.path, 'noid', { issuer: ourRoot, san: 'DNS:productpage.default.svc' })
    files['noIdCert'] = noId.cert
    files['noIdKey'] = noId.key
  })
  after(() => dir.dispose())

  const withCert = (cert: string, key: string): string[] => ['-k', '--cacert', files['ca'] as string, '--cert', cert, '--key', key]

  it('STRICT: plain HTTP and TLS without a client certificate are refused; a mesh certificate is served, its SPIFFE ID in mesh.context()', async () => {
    const s = await serve({ identity: identityOf(serverCert), listener: { mtls: { mode: 'STRICT' } } })
    try {
      const plain = await curl(`http://127.0.0.1:${s.port}/`)
      assert.notEqual(plain.code, 0, plain.stdout)
      const noCert = await curl(`https://127.0.0.1:${s.port}/`, ['-k'])
      assert.notEqual(noCert.code, 0, noCert.stdout)
      assert.deepEqual(s.seen, [])
      const ok = await curl(`https://127.0.0.1:${s.port}/`, withCert(files['cert'] as string, files['key'] as string))
      assert.equal(ok.code, 0, ok.stderr)
      assert.equal(ok.stdout, `hello ${clientId}`)
      assert.deepEqual(s.seen, [clientId])
    } finally {
      await s.close()
    }
  })

  it('STRICT: a certificate from another CA, an expired one, or one without a SPIFFE ID is refused', async () => {
    const s = await serve({ identity: identityOf(serverCert), listener: { mtls: { mode: 'STRICT' } } })
    try {
      for (const [cert, key] of [['rogueCert', 'rogueKey'], ['expiredCert', 'expiredKey'], ['noIdCert', 'noIdKey']] as const) {
        const r = await curl(`https://127.0.0.1:${s.port}/`, withCert(files[cert] as string, files[key] as string))
        assert.notEqual(r.code, 0, `${cert}: ${r.stdout}`)
      }
      assert.deepEqual(s.seen, [])
    } finally {
      await s.close()
    }
  })

  for (const wrap of [false, true]) {
    it(`PERMISSIVE (${wrap ? 'mesh.wrap(http.createServer())' : 'mesh.createServer()'}): plain HTTP and mTLS on one port`, async () => {
      const s = await serve({ identity: identityOf(serverCert), listener: { mtls: {} } }, wrap)
      try {
        const plain = await curl(`http://127.0.0.1:${s.port}/`)
        assert.equal(plain.code, 0, plain.stderr)
        assert.equal(plain.stdout, 'hello anonymous')
        const mtls = await curl(`https://127.0.0.1:${s.port}/`, withCert(files['cert'] as string, files['key'] as string))
        assert.equal(mtls.stdout, `hello ${clientId}`)
        const rogue = await curl(`https://127.0.0.1:${s.port}/`, withCert(files['rogueCert'] as string, files['rogueKey'] as string))
        assert.notEqual(rogue.code, 0)
        assert.deepEqual(s.seen, [undefined, clientId])
      } finally {
        await s.close()
      }
    })
  }

  it('portLevelMtls picks the mode by the local port, and a config update changes it for new connections', async () => {
    const s = await serve({ identity: identityOf(serverCert), listener: { mtls: { mode: 'STRICT' } } })
    try {
      assert.notEqual((await curl(`http://127.0.0.1:${s.port}/`)).code, 0)
      await s.mesh.update({ identity: identityOf(serverCert), listener: { mtls: { mode: 'STRICT', portLevelMtls: { [String(s.port)]: { mode: 'DISABLE' } } } } })
      const plain = await curl(`http://127.0.0.1:${s.port}/`)
      assert.equal(plain.stdout, 'hello anonymous')
      // DISABLE: a TLS client gets no TLS.
      assert.notEqual((await curl(`https://127.0.0.1:${s.port}/`, withCert(files['cert'] as string, files['key'] as string))).code, 0)
      await s.mesh.update({ identity: identityOf(serverCert), listener: { mtls: { mode: 'PERMISSIVE', portLevelMtls: { [String(s.port)]: { mode: 'STRICT' } } } } })
      assert.notEqual((await curl(`http://127.0.0.1:${s.port}/`)).code, 0)
      assert.deepEqual(s.seen, [undefined])
    } finally {
      await s.close()
    }
  })

  it('hostile clients: silence, garbage, and a broken handshake are closed; the server keeps serving', async () => {
    const s = await serve({ identity: identityOf(serverCert), listener: { mtls: { mode: 'STRICT', handshakeTimeout: '300ms' } } })
    try {
      const silent = await closedAfter(s.port)
      assert.ok(silent >= 250 && silent < 3_000, `silent connection closed after ${silent} ms`)
      const ended = await closedAfter(s.port, undefined, true)
      assert.ok(ended < 200, `a connection that ended without a byte was closed after ${ended} ms`)
      assert.ok(await closedAfter(s.port, Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n')) < 3_000)
      assert.ok(await closedAfter(s.port, Buffer.from([0x16, 0x03, 0x01, 0xff, 0xff, 1, 2, 3, 4])) < 3_000)
      assert.ok(await closedAfter(s.port, Buffer.from([0x16])) < 3_000)
      assert.ok(await closedAfter(s.port, Buffer.concat([Buffer.from([0x16, 3, 3, 0, 8]), Buffer.alloc(8, 0xee)])) < 3_000)
      const ok = await curl(`https://127.0.0.1:${s.port}/`, withCert(files['cert'] as string, files['key'] as string))
      assert.equal(ok.stdout, `hello ${clientId}`)
    } finally {
      await s.close()
    }
  })

  for (const mode of ['STRICT', 'PERMISSIVE'] as const) {
    it(`${mode}: a client that ends its side in the middle of its handshake is closed then, not at the handshake timeout`, async () => {
      // The timeout is far beyond the wait below: only the end itself can close the connection in time.
      const s = await serve({ identity: identityOf(serverCert), listener: { mtls: { mode, handshakeTimeout: '120s' } } })
      try {
        // The first bytes of a TLS record carrying a ClientHello, then FIN.
        const partialHello = Buffer.from([0x16, 0x03, 0x01, 0x00, 0x60, 0x01, 0x00, 0x00, 0x5c, 0x03, 0x03])
        const closed = await Promise.race([closedAfter(s.port, partialHello, true), new Promise<'open'>((resolve) => setTimeout(() => resolve('open'), 20_000).unref())])
        assert.notEqual(closed, 'open', 'the half-closed handshake was still open after 20 s')
        const ok = await curl(`https://127.0.0.1:${s.port}/`, withCert(files['cert'] as string, files['key'] as string))
        assert.equal(ok.stdout, `hello ${clientId}`)
      } finally {
        await s.close()
      }
    })
  }
})

describe('outbound mTLS', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>
  before(async () => {
    dir = await tempDir()
  })
  after(() => dir.dispose())

  const clusterConfig = (port: number, tlsConfig: NonNullable<MeshConfig['clusters']>[number]['tls'], idleTimeout?: string): MeshConfig => ({
    identity: identityOf(clientCert),
    clusters: [{ name: 'reviews', endpoints: [{ address: `127.0.0.1:${port}` }], tls: tlsConfig, ...(idleTimeout === undefined ? {} : { idleTimeout }) }],
    virtualHosts: [{ name: 'reviews', domains: ['reviews'], routes: [{ match: { prefix: '/' }, route: { cluster: 'reviews' } }] }],
  })

  it('mesh → mesh over mTLS: exact and prefix identities accepted; the server sees the client identity', async () => {
    const s = await serve({ identity: identityOf(serverCert), listener: { mtls: { mode: 'STRICT' } } })
    for (const ids of [[serverId], [`spiffe://${TD}/ns/default/*`], undefined]) {
      const client = createMesh({ config: clusterConfig(s.port, { mode: 'ISTIO_MUTUAL', ...(ids === undefined ? {} : { verifyIdentities: ids }) }) })
      try {
        const res = await client.fetch('http://reviews/')
        assert.equal(res.status, 200)
        assert.equal(await res.text(), `hello ${clientId}`)
      } finally {
        await client.close()
      }
    }
    // The caller's identity is in the server's metrics (Istio's source_principal).
    assert.equal(s.mesh.metrics.snapshot().inbound.sources[clientId]?.requests, 3)
    assert.ok(s.mesh.metrics.prometheus().includes(`sidecarless_http_downstream_source_rq_total{source_principal="${clientId}"} 3`))
    await s.close()
  })

  it('a verifyIdentities mismatch fails before any request byte reaches the server: 503, flag UF, SIDECARLESS_ERR_PEER_IDENTITY', async () => {
    const s = await serve({ identity: identityOf(serverCert), listener: { mtls: { mode: 'STRICT' } } })
    const client = createMesh({ config: clusterConfig(s.port, { mode: 'mutual', verifyIdentities: [`spiffe://${TD}/ns/prod/*`, `spiffe://${TD}/ns/default/sa/details`] }) })
    try {
      const res = await client.fetch('http://reviews/secret?token=1')
      assert.equal(res.status, 503)
      assert.equal(res.headers.get(RESPONSE_FLAGS_HEADER), 'UF')
      const body = await res.text()
      assert.match(body, /SIDECARLESS_ERR_PEER_IDENTITY/)
      assert.match(body, /ns\/default\/sa\/reviews/)
      assert.deepEqual(s.seen, [])
    } finally {
      await client.close()
      await s.close()
    }
  })

  it('refuses a server whose certificate is from another CA, or expired', async () => {
    await ca.save(dir.file('ca'))
    const rogueRoot = await opensslCert(dir.path, 'rogue-root', { ca: true })
    const rogue = await opensslCert(dir.path, 'rogue-server', { issuer: rogueRoot, san: `URI:${serverId}` })
    const expired = await opensslCert(dir.path, 'expired-server', { issuer: { cert: dir.file('ca/ca-cert.pem'), key: dir.file('ca/ca-key.pem') }, san: `URI:${serverId}`, dates: { start: '20200101000000Z', end: '20200102000000Z' } })
    for (const [cert, key, root] of [[rogue.cert, rogue.key, rogueRoot.cert], [expired.cert, expired.key, dir.file('ca/ca-cert.pem')]] as const) {
      const served: string[] = []
      // A plain node:tls + http server trusting our CA for clients, so only the server side is wrong.
      const server = http.createServer((_q, r) => { served.push('x'); r.end('x') })
      const front = tls.createServer({ cert: await readText(cert), key: await readText(key), ca: [ca.trustBundle, await readText(root)], requestCert: false })
      front.on('secureConnection', (t) => server.emit('connection', t))
      await new Promise<void>((resolve) => front.listen(0, '127.0.0.1', resolve))
      const port = (front.address() as net.AddressInfo).port
      const client = createMesh({ config: clusterConfig(port, { mode: 'mutual', verifyIdentities: [serverId] }) })
      try {
        const res = await client.fetch('http://reviews/')
        assert.equal(res.status, 503)
        assert.equal(res.headers.get(RESPONSE_FLAGS_HEADER), 'UF')
        assert.match(await res.text(), /TLS_error/)
        assert.deepEqual(served, [])
      } finally {
        await client.close()
        await new Promise<void>((resolve) => front.close(() => resolve()))
      }
    }
  })

  it('clusters with different TLS settings do not share a pool', () => {
    const m = createMesh({
      config: {
        identity: identityOf(clientCert),
        clusters: [
          { name: 'a', endpoints: [{ address: '127.0.0.1:9' }], tls: { mode: 'mutual', verifyIdentities: [serverId] } },
          { name: 'b', endpoints: [{ address: '127.0.0.1:9' }], tls: { mode: 'mutual', verifyIdentities: [clientId] } },
          { name: 'c', endpoints: [{ address: '127.0.0.1:9' }] },
        ],
      },
    })
    const keys = ['a', 'b', 'c'].map((n) => m.snapshot.clusters.get(n)?.hosts[0]?.key)
    assert.equal(new Set(keys).size, 3)
    return m.close()
  })
})

describe('tls config', () => {
  it('needs an identity for listener.mtls and for mutual clusters; checks identities, sni and pairs', async () => {
    const { validateConfig } = await import('../src/index.js')
    const issues = validateConfig({
      listener: { mtls: { mode: 'STRICT', portLevelMtls: { abc: { mode: 'DISABLE' }, 8080: { mode: 'LOOSE' } } } },
      clusters: [
        { name: 'a', tls: { mode: 'mutual', verifyIdentities: ['spiffe://td/ok', 'spiffe://TD/bad', 'https://x/*'] } },
        { name: 'b', tls: { mode: 'simple', certificate: '/x.pem', sni: 'bad sni' } },
        { name: 'c', tls: { mode: 'ISTIO_MUTUAL', trustBundle: '/ca.pem' } },
        { name: 'd', tls: { mode: 'disable', verifyIdentities: ['spiffe://td/x'] } },
        { name: 'e', tls: { mode: 'bogus' } },
      ],
    })
    assert.deepEqual(issues.map((i) => [i.path, i.code]), [
      ['identity', 'REQUIRED'],
      ['listener.mtls.portLevelMtls.8080.mode', 'INVALID_VALUE'],
      ['listener.mtls.portLevelMtls.abc', 'INVALID_VALUE'],
      ['clusters[0].tls.certificate', 'REQUIRED'],
      ['clusters[0].tls.verifyIdentities[1]', 'INVALID_VALUE'],
      ['clusters[0].tls.verifyIdentities[2]', 'INVALID_VALUE'],
      ['clusters[1].tls.privateKey', 'REQUIRED'],
      ['clusters[1].tls.sni', 'INVALID_VALUE'],
      ['clusters[2].tls', 'INVALID_VALUE'],
      ['clusters[2].tls.mode', 'REQUIRED'],
      ['clusters[3].tls.verifyIdentities', 'INVALID_VALUE'],
      ['clusters[4].tls.mode', 'INVALID_VALUE'],
    ])
    assert.match(issues[4]?.message ?? '', /BAD_TRUST_DOMAIN_CHAR/)
  })

  it('rejects missing files and bad PEM by path, never echoing PEM contents', () => {
    const key = clientCert.privateKey
    const secretLine = key.split('\n')[1] as string
    const cases: [MeshConfig, string][] = [
      [{ identity: { certificate: '/nonexistent/cert.pem', privateKey: key, trustBundle: ca.trustBundle } }, 'identity.certificate'],
      [{ identity: { certificate: clientCert.certificate, privateKey: '-----BEGIN PRIVATE KEY-----\ngarbage\n-----END PRIVATE KEY-----\n', trustBundle: ca.trustBundle } }, 'identity.privateKey'],
      [{ identity: { certificate: serverCert.certificate, privateKey: key, trustBundle: ca.trustBundle } }, 'identity.privateKey'],
      [{ identity: { certificate: clientCert.certificate, privateKey: key, trustBundle: '-----BEGIN nothing' } }, 'identity.trustBundle'],
    ]
    for (const [config, path] of cases) {
      assert.throws(() => createMesh({ config }), (err: unknown) => {
        assert.ok(err instanceof ConfigError, String(err))
        assert.ok(isMeshError(err, 'SIDECARLESS_ERR_INVALID_CONFIG'))
        assert.equal(err.issues[0]?.path, path, err.message)
        assert.ok(!err.message.includes(secretLine) && !err.message.includes('garbage'), err.message)
        return true
      })
    }
  })
})

describe('rotation', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>
  before(async () => {
    dir = await tempDir()
  })
  after(() => dir.dispose())

  async function replace(name: string, data: string): Promise<void> {
    await writeFile(dir.file(`${name}.tmp`), data)
    await rename(dir.file(`${name}.tmp`), dir.file(name))
  }

  it('replaced files reach new connections on both sides; keep-alive requests in flight never fail', async () => {
    await replace('server.pem', serverCert.certificate)
    await replace('server.key', serverCert.privateKey)
    await replace('client.pem', clientCert.certificate)
    await replace('client.key', clientCert.privateKey)
    await replace('ca.pem', ca.trustBundle)
    const s = await serve({ identity: { certificate: dir.file('server.pem'), privateKey: dir.file('server.key'), trustBundle: dir.file('ca.pem') }, listener: { mtls: { mode: 'STRICT' } } })
    const client = createMesh({
      config: {
        identity: { certificate: dir.file('client.pem'), privateKey: dir.file('client.key'), trustBundle: dir.file('ca.pem') },
        clusters: [{ name: 'reviews', endpoints: [{ address: `127.0.0.1:${s.port}` }], tls: { mode: 'mutual', verifyIdentities: [`spiffe://${TD}/ns/default/*`] }, idleTimeout: '150ms' }],
        virtualHosts: [{ name: 'reviews', domains: ['reviews'], routes: [{ match: { prefix: '/' }, route: { cluster: 'reviews' } }] }],
      },
    })
    const statuses = new Map<number, number>()
    const bodies = new Set<string>()
    let running = true
    const loop = async (): Promise<void> => {
      while (running) {
        const res = await client.fetch('http://reviews/')
        statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1)
        bodies.add(await res.text())
      }
    }
    const warnings: string[] = []
    const onWarning = (w: Error & { code?: string }): void => {
      if (w.code !== undefined) warnings.push(w.code)
    }
    process.on('warning', onWarning)
    try {
      const loops = [loop(), loop(), loop()]
      await waitFor(() => (statuses.get(200) ?? 0) > 20)
      // Half-written first: the key file is garbage for a while; the last good credentials stay.
      const newServer = ca.issue({ spiffeId: `spiffe://${TD}/ns/default/sa/reviews-v2` })
      await replace('server.key', '-----BEGIN PRIVATE KEY-----\ntrunc')
      await waitFor(() => warnings.includes('SIDECARLESS_TLS_RELOAD_FAILED'))
      await replace('server.key', newServer.privateKey)
      await replace('server.pem', newServer.certificate)
      const newClient = ca.issue({ spiffeId: `spiffe://${TD}/ns/default/sa/productpage-v2` })
      await replace('client.pem', newClient.certificate)
      await replace('client.key', newClient.privateKey)
      // A new connection (plain node:tls) is served the new server certificate.
      await waitFor(async () => (await servedSpiffeId(s.port)) === `spiffe://${TD}/ns/default/sa/reviews-v2`)
      // Pauses let idle client connections expire, so the pool opens new ones with the new client certificate.
      running = false
      await Promise.all(loops)
      await waitFor(async () => {
        await new Promise((r) => setTimeout(r, 200))
        const res = await client.fetch('http://reviews/')
        statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1)
        const text = await res.text()
        bodies.add(text)
        return text === `hello spiffe://${TD}/ns/default/sa/productpage-v2`
      })
      assert.deepEqual([...statuses.keys()], [200], JSON.stringify([...statuses]))
      assert.ok(bodies.has(`hello ${clientId}`))
    } finally {
      running = false
      process.off('warning', onWarning)
      await client.close()
      await s.close()
    }
  })

  function servedSpiffeId(port: number): Promise<string | undefined> {
    return new Promise((resolve) => {
      const sock = tls.connect({ port, host: '127.0.0.1', cert: clientCert.certificate, key: clientCert.privateKey, ca: ca.trustBundle, checkServerIdentity: () => undefined }, () => {
        const san = sock.getPeerX509Certificate()?.subjectAltName
        sock.destroy()
        resolve(san?.replace(/^URI:/, ''))
      })
      sock.on('error', () => resolve(undefined))
    })
  }
})

async function readText(path: string): Promise<string> {
  const { readFile } = await import('node:fs/promises')
  return readFile(path, 'utf8')
}
