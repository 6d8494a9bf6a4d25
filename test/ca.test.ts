/** The workload CA and `sidecarless ca`: certificates checked by openssl itself. */
import assert from 'node:assert/strict'
import { X509Certificate } from 'node:crypto'
import { readFile, stat } from 'node:fs/promises'
import { inspect } from 'node:util'
import { after, before, describe, it } from 'node:test'
import { createCertificateAuthority, isMeshError, loadCertificateAuthority, spiffeIdOfCertificate } from '../src/index.js'
import { run as caCli } from '../src/cli/ca.js'
import { run, tempDir } from './helpers/pki.js'

describe('certificate authority', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>
  before(async () => {
    dir = await tempDir()
  })
  after(() => dir.dispose())

  it('makes a root and workload certificates that openssl verifies for client and server use', async () => {
    const ca = createCertificateAuthority({ trustDomain: 'cluster.local' })
    const issued = ca.issue({ namespace: 'default', serviceAccount: 'reviews', dnsNames: ['reviews.default.svc'] })
    const root = await dir.write('root.pem', issued.trustBundle)
    const leaf = await dir.write('leaf.pem', issued.certificate)
    for (const purpose of ['sslclient', 'sslserver']) {
      const v = await run('openssl', ['verify', '-CAfile', root, '-purpose', purpose, leaf])
      assert.equal(v.code, 0, v.stderr)
      assert.match(v.stdout, /leaf\.pem: OK/)
    }
    const rootText = (await run('openssl', ['x509', '-in', root, '-noout', '-text'])).stdout
    assert.match(rootText, /Basic Constraints: critical\s+CA:TRUE/)
    assert.match(rootText, /Key Usage: critical\s+Certificate Sign, CRL Sign/)
    assert.match(rootText, /ASN1 OID: prime256v1/)
    assert.match(rootText, /URI:spiffe:\/\/cluster\.local\n/)
    const text = (await run('openssl', ['x509', '-in', leaf, '-noout', '-text'])).stdout
    assert.match(text, /Signature Algorithm: ecdsa-with-SHA256/)
    assert.match(text, /ASN1 OID: prime256v1/)
    assert.match(text, /Key Usage: critical\s+Digital Signature\n/)
    assert.match(text, /Extended Key Usage: \s*\n\s+TLS Web Server Authentication, TLS Web Client Authentication/)
    assert.match(text, /Basic Constraints: critical\s+CA:FALSE/)
    assert.match(text, /Subject Alternative Name: critical\s+URI:spiffe:\/\/cluster\.local\/ns\/default\/sa\/reviews, DNS:reviews\.default\.svc/)
    const x = new X509Certificate(issued.certificate)
    const lifetime = Date.parse(x.validTo) - Date.parse(x.validFrom)
    // Default 24h (Istio), backdated 5 minutes for clock skew.
    assert.ok(Math.abs(lifetime - (24 * 3600_000 + 5 * 60_000)) <= 2_000, `lifetime ${lifetime}`)
    assert.ok(Date.parse(x.validFrom) <= Date.now() - 4 * 60_000)
    assert.equal(issued.notAfter.getTime(), Date.parse(x.validTo))
    assert.equal(x.checkIssued(new X509Certificate(ca.trustBundle)), true)
    const key = await dir.write('leaf.key', issued.privateKey)
    assert.equal((await run('openssl', ['pkey', '-in', key, '-noout'])).code, 0)
  })

  it('issues with a TTL and a SPIFFE ID; refuses other trust domains, bad IDs and TTLs beyond 90 days', () => {
    const ca = createCertificateAuthority({ trustDomain: 'example.org', ttl: '2h' })
    const a = ca.issue({ spiffeId: 'spiffe://example.org/web' })
    assert.ok(Math.abs(a.notAfter.getTime() - Date.now() - 2 * 3600_000) < 5_000)
    const b = ca.issue({ spiffeId: 'spiffe://example.org/web', ttl: '90m' })
    assert.ok(Math.abs(b.notAfter.getTime() - Date.now() - 90 * 60_000) < 5_000)
    assert.equal(spiffeIdOfCertificate(b.certificate), 'spiffe://example.org/web')
    assert.throws(() => ca.issue({ spiffeId: 'spiffe://other.org/web' }), (e: unknown) => isMeshError(e, 'SIDECARLESS_ERR_INVALID_ARGUMENT'))
    assert.throws(() => ca.issue({ spiffeId: 'spiffe://example.org/a/../b' }), (e: unknown) => isMeshError(e, 'SIDECARLESS_ERR_INVALID_SPIFFE_ID'))
    assert.throws(() => ca.issue({ spiffeId: 'spiffe://example.org/web', ttl: '91d' }), (e: unknown) => isMeshError(e, 'SIDECARLESS_ERR_INVALID_ARGUMENT'))
    assert.throws(() => ca.issue({ spiffeId: 'spiffe://example.org/web', dnsNames: ['bad name'] }), (e: unknown) => isMeshError(e, 'SIDECARLESS_ERR_INVALID_ARGUMENT'))
    assert.throws(() => createCertificateAuthority({ trustDomain: 'Bad.Domain' }), (e: unknown) => isMeshError(e, 'SIDECARLESS_ERR_INVALID_ARGUMENT'))
  })

  it('saves and loads; the key is 0600 and never shown by inspect or JSON', async () => {
    const ca = createCertificateAuthority({ trustDomain: 'cluster.local' })
    await ca.save(dir.file('saved'))
    const keyPem = await readFile(dir.file('saved/ca-key.pem'), 'utf8')
    assert.equal((await stat(dir.file('saved/ca-key.pem'))).mode & 0o777, 0o600)
    const loaded = await loadCertificateAuthority(dir.file('saved'))
    assert.equal(loaded.trustDomain, 'cluster.local')
    assert.equal(loaded.trustBundle, ca.trustBundle)
    const issued = loaded.issue({ namespace: 'ns', serviceAccount: 'sa' })
    assert.equal(new X509Certificate(issued.certificate).verify(new X509Certificate(ca.trustBundle).publicKey), true)
    const body = keyPem.split('\n')[1] as string
    assert.ok(!inspect(loaded).includes(body) && !JSON.stringify(loaded).includes(body))
    await assert.rejects(loadCertificateAuthority(dir.file('missing')), (e: unknown) => isMeshError(e, 'SIDECARLESS_ERR_CA'))
  })

  it('refuses a key that does not match, without quoting it', async () => {
    const a = createCertificateAuthority({ trustDomain: 'cluster.local' })
    const b = createCertificateAuthority({ trustDomain: 'cluster.local' })
    await a.save(dir.file('mix'))
    await b.save(dir.file('other'))
    const otherKey = await readFile(dir.file('other/ca-key.pem'), 'utf8')
    await dir.write('mix/ca-key.pem', otherKey)
    await assert.rejects(loadCertificateAuthority(dir.file('mix')), (e: unknown) => {
      assert.ok(isMeshError(e, 'SIDECARLESS_ERR_CA'))
      assert.match(e.message, /does not match/)
      assert.ok(!e.message.includes(otherKey.split('\n')[1] as string))
      return true
    })
  })
})

describe('sidecarless ca', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>
  before(async () => {
    dir = await tempDir()
  })
  after(() => dir.dispose())

  const io = (): { out: string[]; err: string[]; io: { out: (l: string) => void; err: (l: string) => void } } => {
    const out: string[] = []
    const err: string[] = []
    return { out, err, io: { out: (l) => out.push(l), err: (l) => err.push(l) } }
  }

  it('init then issue writes files openssl verifies; keys are not printed', async () => {
    const a = io()
    assert.equal(await caCli(['init', '--dir', dir.file('ca'), '--trust-domain', 'mesh.test'], a.io), 0, a.err.join('\n'))
    const b = io()
    assert.equal(await caCli(['issue', '--dir', dir.file('ca'), '--namespace', 'default', '--service-account', 'reviews', '--ttl', '1h', '--out', dir.file('reviews')], b.io), 0, b.err.join('\n'))
    assert.match(b.out.join('\n'), /issued spiffe:\/\/mesh\.test\/ns\/default\/sa\/reviews/)
    const key = await readFile(dir.file('reviews/key.pem'), 'utf8')
    assert.ok(![...a.out, ...b.out].join('\n').includes(key.split('\n')[1] as string))
    assert.equal((await stat(dir.file('reviews/key.pem'))).mode & 0o777, 0o600)
    const v = await run('openssl', ['verify', '-CAfile', dir.file('reviews/root-cert.pem'), dir.file('reviews/cert-chain.pem')])
    assert.equal(v.code, 0, v.stderr)
    const c = io()
    assert.equal(await caCli(['issue', '--dir', dir.file('ca'), '--spiffe-id', 'spiffe://mesh.test/web', '--dns', 'localhost', '--out', dir.file('web')], c.io), 0, c.err.join('\n'))
    const text = (await run('openssl', ['x509', '-in', dir.file('web/cert-chain.pem'), '-noout', '-ext', 'subjectAltName'])).stdout
    assert.match(text, /URI:spiffe:\/\/mesh\.test\/web, DNS:localhost/)
  })

  it('refuses to replace a CA without --force, and reports usage errors with exit code 2', async () => {
    const a = io()
    assert.equal(await caCli(['init', '--dir', dir.file('ca2')], a.io), 0)
    const b = io()
    assert.equal(await caCli(['init', '--dir', dir.file('ca2')], b.io), 1)
    assert.match(b.err.join('\n'), /--force/)
    assert.equal(await caCli(['init', '--dir', dir.file('ca2'), '--force'], io().io), 0)
    assert.equal(await caCli(['issue', '--dir', dir.file('ca2'), '--out', dir.file('x')], io().io), 2)
    assert.equal(await caCli(['issue', '--dir', dir.file('ca2'), '--namespace', 'a', '--out', dir.file('x')], io().io), 2)
    assert.equal(await caCli(['issue', '--dir', dir.file('ca2'), '--spiffe-id', 'spiffe://cluster.local/a', '--namespace', 'a', '--service-account', 'b', '--out', dir.file('x')], io().io), 2)
    assert.equal(await caCli(['frobnicate', '--dir', 'x'], io().io), 2)
    assert.equal(await caCli(['init', '--bogus'], io().io), 2)
    assert.equal(await caCli([], io().io), 2)
    const e = io()
    assert.equal(await caCli(['issue', '--dir', dir.file('ca2'), '--spiffe-id', 'spiffe://other/a', '--out', dir.file('x')], e.io), 1)
    assert.match(e.err.join('\n'), /SIDECARLESS_ERR_INVALID_ARGUMENT/)
    const f = io()
    assert.equal(await caCli(['issue', '--dir', dir.file('nothing'), '--spiffe-id', 'spiffe://cluster.local/a', '--out', dir.file('x')], f.io), 1)
    assert.match(f.err.join('\n'), /SIDECARLESS_ERR_CA/)
  })
})
