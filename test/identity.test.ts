/** SPIFFE IDs: parsing, matching, and reading them from certificates (ours and openssl's). */
import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { after, before, describe, it } from 'node:test'
import {
  compileIdentityMatcher,
  createCertificateAuthority,
  isMeshError,
  isSpiffeId,
  parseSpiffeId,
  spiffeIdOfCertificate,
  SpiffeIdError,
  workloadSpiffeId,
  type SpiffeIdReason,
} from '../src/index.js'
import { subjectAltNames } from '../src/security/identity.js'
import { opensslCert, tempDir } from './helpers/pki.js'

// Vectors ported from go-spiffe v2 `spiffeid` tests (github.com/spiffe/go-spiffe, Apache-2.0),
// which implement the SPIFFE ID spec (github.com/spiffe/spiffe standards/SPIFFE-ID.md).
const INVALID: readonly (readonly [string, SpiffeIdReason])[] = [
  ['', 'EMPTY'],
  ['192.168.2.2:6688', 'WRONG_SCHEME'],
  ['http://domain.test/path/element', 'WRONG_SCHEME'],
  ['spiffe:path/element', 'WRONG_SCHEME'],
  ['spiffe:/path/element', 'WRONG_SCHEME'],
  ['SPIFFE://path/element', 'WRONG_SCHEME'],
  ['spiffe:///path/element', 'MISSING_TRUST_DOMAIN'],
  ['spiffe://', 'MISSING_TRUST_DOMAIN'],
  ['spiffe://domain.test/path/element?query=1', 'BAD_PATH_CHAR'],
  ['spiffe://domain.test/path/element#fragment-1', 'BAD_PATH_CHAR'],
  ['spiffe://domain.test:8080/path/element', 'BAD_TRUST_DOMAIN_CHAR'],
  ['spiffe://user:password@test.org/path/element', 'BAD_TRUST_DOMAIN_CHAR'],
  ['spiffe://domain.test/path/elem%5uent', 'BAD_PATH_CHAR'],
  ['spiffe://domain.test/path//element', 'EMPTY_SEGMENT'],
  ['spiffe://domain.test//', 'EMPTY_SEGMENT'],
  ['spiffe://domain.test/path/./element', 'DOT_SEGMENT'],
  ['spiffe://domain.test/path/../element', 'DOT_SEGMENT'],
  ['spiffe://domain.test/..', 'DOT_SEGMENT'],
  ['spiffe://domain.test/path/', 'TRAILING_SLASH'],
  ['spiffe://domain.test/', 'TRAILING_SLASH'],
  ['spiffe://DOMAIN.test/path', 'BAD_TRUST_DOMAIN_CHAR'],
  ['spiffe://domain.test/pa th', 'BAD_PATH_CHAR'],
  ['spiffe://domain.test/é', 'BAD_PATH_CHAR'],
  [`spiffe://domain.test/${'a'.repeat(2040)}`, 'TOO_LONG'],
]

const VALID = [
  'spiffe://trustdomain',
  'spiffe://trustdomain/path',
  'spiffe://trustdomain/path/element',
  'spiffe://domain.test/PATH/Element',
  'spiffe://a-b_c.d/x.y-z_W/...',
  'spiffe://cluster.local/ns/default/sa/reviews',
]

describe('SPIFFE IDs', () => {
  for (const [input, reason] of INVALID) {
    it(`refuses ${JSON.stringify(input.slice(0, 60))} (${reason})`, () => {
      assert.equal(isSpiffeId(input), false)
      assert.throws(() => parseSpiffeId(input), (err: unknown) => {
        assert.ok(err instanceof SpiffeIdError)
        assert.ok(isMeshError(err, 'SIDECARLESS_ERR_INVALID_SPIFFE_ID'))
        assert.equal(err.reason, reason)
        return true
      })
    })
  }

  for (const input of VALID) {
    it(`accepts ${input}`, () => {
      assert.equal(isSpiffeId(input), true)
      assert.equal(parseSpiffeId(input).id, input)
    })
  }

  it('parses trust domain, path, segments and the Istio ns/sa form', () => {
    const id = parseSpiffeId('spiffe://cluster.local/ns/default/sa/reviews')
    assert.equal(id.trustDomain, 'cluster.local')
    assert.equal(id.path, '/ns/default/sa/reviews')
    assert.deepEqual(id.segments, ['ns', 'default', 'sa', 'reviews'])
    assert.equal(id.namespace, 'default')
    assert.equal(id.serviceAccount, 'reviews')
    const other = parseSpiffeId('spiffe://example.org/workload/web')
    assert.equal(other.namespace, undefined)
    assert.equal(other.serviceAccount, undefined)
    assert.equal(parseSpiffeId('spiffe://example.org').path, '')
    assert.equal(workloadSpiffeId('cluster.local', 'prod', 'api'), 'spiffe://cluster.local/ns/prod/sa/api')
    assert.throws(() => workloadSpiffeId('cluster.local', 'a/b', 'api'), SpiffeIdError)
  })

  it('matches exact IDs and /* prefixes, and nothing else', () => {
    const m = compileIdentityMatcher(['spiffe://td/ns/prod/sa/api', 'spiffe://td/ns/dev/*'])
    assert.equal(m('spiffe://td/ns/prod/sa/api'), true)
    assert.equal(m('spiffe://td/ns/prod/sa/api2'), false)
    assert.equal(m('spiffe://td/ns/dev/sa/x'), true)
    assert.equal(m('spiffe://td/ns/dev'), false)
    assert.equal(m('spiffe://td/ns/devil/sa/x'), false)
    assert.equal(m('spiffe://other/ns/dev/sa/x'), false)
    assert.throws(() => compileIdentityMatcher(['spiffe://td/ns/*/sa/x']), SpiffeIdError)
    assert.throws(() => compileIdentityMatcher(['https://td/x']), SpiffeIdError)
  })
})

describe('SPIFFE ID of a certificate', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>
  before(async () => {
    dir = await tempDir()
  })
  after(() => dir.dispose())

  it('reads the single URI SAN of our CA and of openssl certificates', async () => {
    const ca = createCertificateAuthority({ trustDomain: 'cluster.local' })
    const issued = ca.issue({ namespace: 'default', serviceAccount: 'reviews', dnsNames: ['reviews.default.svc'] })
    assert.equal(spiffeIdOfCertificate(issued.certificate), 'spiffe://cluster.local/ns/default/sa/reviews')
    const root = await opensslCert(dir.path, 'root', { ca: true })
    const leaf = await opensslCert(dir.path, 'leaf', { issuer: root, san: 'DNS:x.test,URI:spiffe://example.org/web,DNS:y.test' })
    assert.equal(spiffeIdOfCertificate(await readFile(leaf.cert, 'utf8')), 'spiffe://example.org/web')
  })

  it('has no identity with no URI SAN, two URI SANs, a non-SPIFFE URI, or a URI smuggling a second one', async () => {
    const root = await opensslCert(dir.path, 'root2', { ca: true })
    const none = await opensslCert(dir.path, 'none', { issuer: root, san: 'DNS:x.test' })
    const two = await opensslCert(dir.path, 'two', { issuer: root, san: 'URI:spiffe://td/a,URI:spiffe://td/b' })
    const http = await opensslCert(dir.path, 'http', { issuer: root, san: 'URI:https://td/a' })
    // One URI whose text looks like two names in Node's `subjectaltname` string.
    const smuggled = await opensslCert(dir.path, 'smuggled', { issuer: root, sanSection: 'URI.1 = spiffe://td/a, URI:spiffe://td/b' })
    for (const c of [none, two, http, smuggled]) assert.equal(spiffeIdOfCertificate(await readFile(c.cert, 'utf8')), undefined, c.cert)
    const { X509Certificate } = await import('node:crypto')
    const raw = new X509Certificate(await readFile(smuggled.cert, 'utf8')).raw
    assert.deepEqual(subjectAltNames(raw).uris, ['spiffe://td/a, URI:spiffe://td/b'])
  })

  it('never throws on garbage', () => {
    assert.equal(spiffeIdOfCertificate(Buffer.from([0x30, 0x82, 0xff, 0xff, 1, 2])), undefined)
    assert.equal(spiffeIdOfCertificate('not a certificate'), undefined)
    assert.equal(spiffeIdOfCertificate(Buffer.alloc(0)), undefined)
  })
})
