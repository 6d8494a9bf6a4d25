/**
 * Authorization policies on the inbound side (Istio AuthorizationPolicy semantics): real
 * wrapped servers and clients, tokens signed here, client certificates made with openssl.
 */
import assert from 'node:assert/strict'
import { once } from 'node:events'
import type http from 'node:http'
import type https from 'node:https'
import type { AddressInfo } from 'node:net'
import { after, before, describe, test } from 'node:test'
import { Agent, request } from 'undici'
import { createMesh, validateConfig, type AuthorizationPolicyConfig, type Mesh, type MeshConfig } from '../src/index.js'
import { makeKey, now, sign, type TestKey } from './helpers/tokens.js'
import { makePki, type TestPki } from './helpers/certs.js'

const ISS = 'https://issuer.test'
let key: TestKey
const client = new Agent()

before(async () => {
  key = await makeKey('ES256', 'k1')
})
after(() => client.close())

async function start(config: MeshConfig, tls?: https.ServerOptions): Promise<{ mesh: Mesh; url: string; port: number; close: () => Promise<void> }> {
  const mesh = createMesh({ service: 'api', config })
  const app = (_req: http.IncomingMessage, res: http.ServerResponse): void => {
    res.end('ok')
  }
  const server = tls === undefined ? mesh.createServer(app) : mesh.createServer(tls, app)
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const port = (server.address() as AddressInfo).port
  return {
    mesh,
    port,
    url: `${tls === undefined ? 'http' : 'https'}://127.0.0.1:${port}`,
    close: async () => {
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
      await mesh.close()
    },
  }
}

const policies = (authorization: AuthorizationPolicyConfig[], extra: Record<string, unknown> = {}): MeshConfig => ({ listener: { authorization, ...extra } })

async function status(url: string, init: { method?: string; headers?: Record<string, string>; dispatcher?: Agent } = {}): Promise<number> {
  const res = await request(url, { method: (init.method ?? 'GET') as 'GET', headers: init.headers ?? {}, dispatcher: init.dispatcher ?? client })
  const body = await res.body.text()
  if (res.statusCode === 403) assert.equal(body, 'RBAC: access denied')
  return res.statusCode
}

/** Runs `fn` against a server with `config`, then closes it. */
async function withServer(config: MeshConfig, fn: (s: Awaited<ReturnType<typeof start>>) => Promise<void>): Promise<void> {
  const s = await start(config)
  try {
    await fn(s)
  } finally {
    await s.close()
  }
}

describe('authorization: evaluation order and rule semantics', () => {
  test('DENY is evaluated before ALLOW; the policy name goes to metrics, not the body', async () => {
    await withServer(policies([
      { name: 'allow-all', rules: [{}] },
      { name: 'no-admin', action: 'DENY', rules: [{ to: [{ operation: { paths: ['/admin*'] } }] }] },
    ]), async (s) => {
      assert.equal(await status(`${s.url}/admin/users`), 403)
      assert.equal(await status(`${s.url}/x`), 200)
      const sec = s.mesh.metrics.snapshot().security.rbac
      assert.equal(sec.denied['no-admin'], 1)
      assert.equal(sec.allowed, 1)
      const prom = s.mesh.metrics.prometheus()
      assert.match(prom, /sidecarless_rbac_denied_total\{service="api",policy="no-admin"\} 1/)
      assert.match(prom, /sidecarless_http_downstream_rq_error_total\{service="api",route="\(default\)",error_kind="denied"\} 1/)
    })
  })

  test('with an ALLOW policy, a request matching none is refused', async () => {
    await withServer(policies([{ name: 'public', rules: [{ to: [{ operation: { paths: ['/public/*'] } }] }] }]), async (s) => {
      assert.equal(await status(`${s.url}/public/a`), 200)
      assert.equal(await status(`${s.url}/private`), 403)
      assert.equal(s.mesh.metrics.snapshot().security.rbac.denied['(no ALLOW policy matched)'], 1)
    })
  })

  test('an ALLOW policy without rules matches nothing; rules: [{}] matches everything', async () => {
    await withServer(policies([{ name: 'nothing' }]), async (s) => {
      assert.equal(await status(`${s.url}/`), 403)
    })
    await withServer(policies([{ name: 'nothing' }, { name: 'everything', rules: [{}] }]), async (s) => {
      assert.equal(await status(`${s.url}/`), 200)
    })
    // A DENY policy without rules denies nothing.
    await withServer(policies([{ action: 'DENY' }]), async (s) => {
      assert.equal(await status(`${s.url}/`), 200)
    })
  })

  test('methods, not-forms (a field and its not-form are ANDed), several operations ORed', async () => {
    await withServer(policies([{ rules: [{ to: [{ operation: { methods: ['GET', 'POST'], notPaths: ['/secret*'] } }, { operation: { methods: ['DELETE'], paths: ['/trash'] } }] }] }]), async (s) => {
      assert.equal(await status(`${s.url}/x`), 200)
      assert.equal(await status(`${s.url}/x`, { method: 'POST' }), 200)
      assert.equal(await status(`${s.url}/secret/1`), 403)
      assert.equal(await status(`${s.url}/x`, { method: 'DELETE' }), 403)
      assert.equal(await status(`${s.url}/trash`, { method: 'DELETE' }), 200)
    })
  })

  test('paths: exact, prefix and suffix wildcards, on the normalised path', async () => {
    await withServer(policies([{ rules: [{}] }, { action: 'DENY', rules: [{ to: [{ operation: { paths: ['*.php', '/internal/*', '/exact'] } }] }] }]), async (s) => {
      for (const [path, want] of [
        ['/a/b.php', 403], ['/a/b.php?x=1', 403], ['/internal/x', 403], ['/exact', 403],
        ['/internalx', 200], ['/exact/more', 200], ['/a/b.phpx', 200], ['/', 200],
        // Normalisation: the DENY cannot be dodged.
        ['//internal/x', 403], ['/public/../internal/x', 403], ['/%69nternal/x', 403], ['/./exact', 403], ['/internal/./x', 403],
      ] as const) {
        assert.equal(await status(`${s.url}${path}`), want, path)
      }
    })
  })

  test('hosts match case-insensitively, with or without the port', async () => {
    await withServer(policies([{ rules: [{ to: [{ operation: { hosts: ['api.example.com', '*.internal'] } }] }] }]), async (s) => {
      assert.equal(await status(`${s.url}/`, { headers: { host: 'API.example.com' } }), 200)
      assert.equal(await status(`${s.url}/`, { headers: { host: `api.example.com:${s.port}` } }), 200)
      assert.equal(await status(`${s.url}/`, { headers: { host: 'db.internal:1' } }), 200)
      assert.equal(await status(`${s.url}/`, { headers: { host: 'evil.com' } }), 403)
    })
  })

  test('ipBlocks and notIpBlocks with CIDRs (the client is 127.0.0.1)', async () => {
    await withServer(policies([{ rules: [{}] }, { action: 'DENY', rules: [{ from: [{ source: { ipBlocks: ['127.0.0.0/8'] } }] }] }]), async (s) => {
      assert.equal(await status(`${s.url}/`), 403)
    })
    await withServer(policies([{ rules: [{ from: [{ source: { ipBlocks: ['10.0.0.0/8', '127.0.0.1'] } }] }] }]), async (s) => {
      assert.equal(await status(`${s.url}/`), 200)
    })
    await withServer(policies([{ rules: [{ from: [{ source: { notIpBlocks: ['127.0.0.0/24'] } }] }] }]), async (s) => {
      assert.equal(await status(`${s.url}/`), 403)
    })
    await withServer(policies([{ rules: [{ from: [{ source: { remoteIpBlocks: ['::1/128', '2001:db8::/32'] } }] }] }]), async (s) => {
      assert.equal(await status(`${s.url}/`), 403)
    })
  })

  test('ports and when: destination.port, source.ip, request.headers', async () => {
    await withServer(policies([{ rules: [{ to: [{ operation: { ports: ['1'] } }] }] }]), async (s) => {
      assert.equal(await status(`${s.url}/`), 403)
    })
    const s = await start({})
    try {
      await s.mesh.update(policies([{ rules: [{ to: [{ operation: { ports: [String(s.port)] } }], when: [{ key: 'source.ip', values: ['127.0.0.0/8'] }, { key: 'destination.port', values: [String(s.port)] }, { key: 'request.headers[x-env]', values: ['prod*'], notValues: ['production-eu'] }] }] }]))
      assert.equal(await status(`${s.url}/`, { headers: { 'x-env': 'prod' } }), 200)
      assert.equal(await status(`${s.url}/`, { headers: { 'x-env': 'production-eu' } }), 403, 'notValues')
      assert.equal(await status(`${s.url}/`), 403, 'every condition must match')
    } finally {
      await s.close()
    }
  })

  test('AUDIT policies count matches and never block', async () => {
    await withServer(policies([{ name: 'watch', action: 'AUDIT', rules: [{ to: [{ operation: { paths: ['/audit*'] } }] }] }]), async (s) => {
      assert.equal(await status(`${s.url}/audit/1`), 200)
      assert.equal(await status(`${s.url}/other`), 200)
      assert.deepEqual(s.mesh.metrics.snapshot().security.rbac.audited, { watch: 1 })
    })
  })
})

describe('authorization with JWT: request principals and claims', () => {
  const rules = (): Record<string, unknown> => ({ requestAuthentication: { jwtRules: [{ issuer: ISS, jwks: JSON.stringify({ keys: [key.jwk] }) }] } })
  const bearer = async (claims: Record<string, unknown>): Promise<Record<string, string>> => ({ authorization: `Bearer ${await sign(key, { iss: ISS, exp: now() + 600, ...claims })}` })

  test('requestPrincipals: exact, and "*" (any verified token)', async () => {
    await withServer(policies([{ rules: [{ from: [{ source: { requestPrincipals: [`${ISS}/alice`] } }] }] }], rules()), async (s) => {
      assert.equal(await status(`${s.url}/`, { headers: await bearer({ sub: 'alice' }) }), 200)
      assert.equal(await status(`${s.url}/`, { headers: await bearer({ sub: 'bob' }) }), 403)
      assert.equal(await status(`${s.url}/`), 403)
    })
    await withServer(policies([{ rules: [{ from: [{ source: { requestPrincipals: ['*'] } }] }] }], rules()), async (s) => {
      assert.equal(await status(`${s.url}/`, { headers: await bearer({ sub: 'anyone' }) }), 200)
      assert.equal(await status(`${s.url}/`), 403, 'no token, no principal')
    })
    await withServer(policies([{ rules: [{}] }, { action: 'DENY', rules: [{ from: [{ source: { notRequestPrincipals: ['*'] } }] }] }], rules()), async (s) => {
      assert.equal(await status(`${s.url}/`), 403, 'Istio: require a token with DENY notRequestPrincipals *')
      assert.equal(await status(`${s.url}/`, { headers: await bearer({ sub: 'x' }) }), 200)
    })
  })

  test('claims in when: lists match any element, nested claims, audiences and presenter', async () => {
    await withServer(policies([{ rules: [{ when: [
      { key: 'request.auth.claims[groups]', values: ['admin'] },
      { key: 'request.auth.claims[realm][role]', values: ['oper*'] },
      { key: 'request.auth.audiences', values: ['api'] },
      { key: 'request.auth.presenter', notValues: ['bad-client'] },
      { key: 'request.auth.principal', values: [`${ISS}/*`] },
    ] }] }], rules()), async (s) => {
      const ok = { sub: 'a', groups: ['dev', 'admin'], realm: { role: 'operator' }, aud: ['web', 'api'], azp: 'good-client' }
      assert.equal(await status(`${s.url}/`, { headers: await bearer(ok) }), 200)
      assert.equal(await status(`${s.url}/`, { headers: await bearer({ ...ok, groups: ['dev'] }) }), 403)
      assert.equal(await status(`${s.url}/`, { headers: await bearer({ ...ok, realm: { role: 'dev' } }) }), 403)
      assert.equal(await status(`${s.url}/`, { headers: await bearer({ ...ok, aud: 'web' }) }), 403)
      assert.equal(await status(`${s.url}/`, { headers: await bearer({ ...ok, azp: 'bad-client' }) }), 403)
      assert.equal(await status(`${s.url}/`), 403)
    })
  })

  test('an invalid token is 401 before authorization runs', async () => {
    await withServer(policies([{ rules: [{}] }], rules()), async (s) => {
      assert.equal(await status(`${s.url}/`, { headers: { authorization: 'Bearer x.y.z' } }), 401)
      assert.equal(s.mesh.metrics.snapshot().security.rbac.allowed, 0)
    })
  })
})

describe('authorization with mutual TLS: principals and namespaces from the client certificate', () => {
  const FOO = 'spiffe://cluster.local/ns/foo/sa/bar'
  const OTHER = 'spiffe://cluster.local/ns/other/sa/bar'
  let pki: TestPki
  before(() => {
    pki = makePki([FOO, OTHER])
  })

  test('principals (Istio form, without spiffe://) and namespaces', async () => {
    const tls = { key: pki.server.key, cert: pki.server.cert, ca: pki.ca, requestCert: true, rejectUnauthorized: true }
    const s = await start(policies([
      { rules: [{ from: [{ source: { principals: ['cluster.local/ns/foo/sa/bar'] } }, { source: { namespaces: ['other'] } }] }] },
      { action: 'DENY', rules: [{ from: [{ source: { namespaces: ['other'] } }], to: [{ operation: { paths: ['/admin'] } }] }] },
    ]), tls)
    const agentFor = (id: string): Agent => new Agent({ connect: { ca: pki.ca, cert: pki.clients[id]?.cert, key: pki.clients[id]?.key, servername: 'localhost' } })
    const foo = agentFor(FOO)
    const other = agentFor(OTHER)
    try {
      assert.equal(await status(`${s.url}/admin`, { dispatcher: foo }), 200)
      assert.equal(await status(`${s.url}/x`, { dispatcher: other }), 200)
      assert.equal(await status(`${s.url}/admin`, { dispatcher: other }), 403)
      await s.mesh.update(policies([{ rules: [{ when: [{ key: 'source.principal', values: ['cluster.local/ns/foo/*'] }, { key: 'source.namespace', values: ['foo'] }, { key: 'connection.sni', values: ['localhost'] }] }] }]))
      assert.equal(await status(`${s.url}/x`, { dispatcher: foo }), 200)
      assert.equal(await status(`${s.url}/x`, { dispatcher: other }), 403)
    } finally {
      await foo.close()
      await other.close()
      await s.close()
    }
  })

  test('plain-text requests have no principal', async () => {
    await withServer(policies([{ rules: [{ from: [{ source: { principals: ['*'] } }] }] }]), async (s) => {
      assert.equal(await status(`${s.url}/`), 403)
    })
  })
})

describe('validation of requestAuthentication and authorization', () => {
  const issues = (listener: unknown): { path: string; code: string }[] => validateConfig({ listener }).map(({ path, code }) => ({ path, code }))

  test('JWT rules: key sources, inline JWKS, header names', () => {
    const jwk = JSON.stringify({ keys: [{ kty: 'EC', crv: 'P-256', x: 'f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU', y: 'x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0' }] })
    assert.deepEqual(issues({ requestAuthentication: { jwtRules: [{ issuer: 'a', jwks: jwk }] } }), [])
    assert.deepEqual(issues({ requestAuthentication: { jwtRules: [
      { issuer: 'a' },
      { issuer: 'b', jwks: jwk, jwksUri: 'http://x/jwks' },
      { issuer: 'c', jwks: '{not json' },
      { issuer: 'd', jwks: '{"keys": []}' },
      { issuer: 'e', jwks: JSON.stringify({ keys: [{ kty: 'oct', k: 'c2VjcmV0' }] }) },
      { issuer: 'f', jwksUri: 'ftp://x/jwks', fromHeaders: [{ name: 'bad header' }], outputClaimToHeaders: [{ header: 'host', claim: 'sub' }] },
      { issuer: 'g', jwksUri: 'http://user:pw@x/jwks', clockSkew: 'soon' },
    ] } }), [
      { path: 'listener.requestAuthentication.jwtRules[0]', code: 'REQUIRED' },
      { path: 'listener.requestAuthentication.jwtRules[1]', code: 'INVALID_VALUE' },
      { path: 'listener.requestAuthentication.jwtRules[2].jwks', code: 'INVALID_VALUE' },
      { path: 'listener.requestAuthentication.jwtRules[3].jwks', code: 'INVALID_VALUE' },
      { path: 'listener.requestAuthentication.jwtRules[4].jwks', code: 'INVALID_VALUE' },
      { path: 'listener.requestAuthentication.jwtRules[5].jwksUri', code: 'INVALID_ADDRESS' },
      { path: 'listener.requestAuthentication.jwtRules[5].fromHeaders[0].name', code: 'INVALID_HEADER' },
      { path: 'listener.requestAuthentication.jwtRules[5].outputClaimToHeaders[0].header', code: 'INVALID_HEADER' },
      { path: 'listener.requestAuthentication.jwtRules[6].jwksUri', code: 'INVALID_ADDRESS' },
      { path: 'listener.requestAuthentication.jwtRules[6].clockSkew', code: 'INVALID_DURATION' },
    ])
    const privateKey = validateConfig({ listener: { requestAuthentication: { jwtRules: [{ issuer: 'a', jwks: JSON.stringify({ keys: [{ kty: 'EC', crv: 'P-256', x: 'f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU', y: 'x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0', d: 'jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI' }] }) }] } } })
    assert.equal(privateKey.length, 1)
    assert.match(privateKey[0]?.message ?? '', /private key/)
    assert.doesNotMatch(privateKey[0]?.message ?? '', /jpsQnn/, 'the key material is not echoed')
  })

  test('policies: patterns, IP blocks, ports, condition keys, empty sources, spiffe:// principals', () => {
    const found = issues({ authorization: [
      { name: 'p', action: 'ALLOW', rules: [{
        from: [{ source: { ipBlocks: ['10.0.0.0/33', '300.1.1.1', '10.0.0.0/8', '::1/129', 'fe80::1/64'] } }, { source: {} }, { source: { principals: ['spiffe://cluster.local/ns/a/sa/b', 'a*b'] } }],
        to: [{ operation: { ports: ['0', '8080', 'http'], paths: ['admin', '/ok*'], methods: ['GET', 'G T'] } }],
        when: [{ key: 'request.nope', values: ['x'] }, { key: 'request.auth.claims[a][b]', values: ['x'] }, { key: 'source.ip', values: ['1.2.3.4/40'] }, { key: 'request.headers[x-a]' }, { key: 'destination.port', values: ['99999'] }],
      }] },
      { name: 'p', action: 'REJECT' },
    ] })
    const r = 'listener.authorization[0].rules[0]'
    assert.deepEqual(found, [
      { path: `${r}.from[0].source.ipBlocks[0]`, code: 'INVALID_VALUE' },
      { path: `${r}.from[0].source.ipBlocks[1]`, code: 'INVALID_VALUE' },
      { path: `${r}.from[0].source.ipBlocks[3]`, code: 'INVALID_VALUE' },
      { path: `${r}.from[1].source`, code: 'INVALID_VALUE' },
      { path: `${r}.from[2].source.principals[0]`, code: 'INVALID_VALUE' },
      { path: `${r}.from[2].source.principals[1]`, code: 'INVALID_VALUE' },
      { path: `${r}.to[0].operation.ports[0]`, code: 'INVALID_VALUE' },
      { path: `${r}.to[0].operation.ports[2]`, code: 'INVALID_VALUE' },
      { path: `${r}.to[0].operation.paths[0]`, code: 'INVALID_VALUE' },
      { path: `${r}.to[0].operation.methods[1]`, code: 'INVALID_VALUE' },
      { path: `${r}.when[0].key`, code: 'INVALID_VALUE' },
      { path: `${r}.when[2].values[0]`, code: 'INVALID_VALUE' },
      { path: `${r}.when[3]`, code: 'REQUIRED' },
      { path: `${r}.when[4].values[0]`, code: 'INVALID_VALUE' },
      { path: 'listener.authorization[1].name', code: 'DUPLICATE_NAME' },
      { path: 'listener.authorization[1].action', code: 'INVALID_VALUE' },
    ])
  })

  test('an unknown field in a source gets a did-you-mean; a bad config is refused by createMesh', () => {
    const found = validateConfig({ listener: { authorization: [{ rules: [{ from: [{ source: { principal: ['a'] } }] }] }] } })
    const unknown = found.find((i) => i.code === 'UNKNOWN_FIELD')
    assert.equal(unknown?.path, 'listener.authorization[0].rules[0].from[0].source.principal')
    assert.match(unknown?.message ?? '', /did you mean "principals"/)
    assert.throws(() => createMesh({ config: { listener: { authorization: [{ rules: [{ when: [{ key: 'x', values: ['y'] }] }] }] } } }), /SIDECARLESS_ERR_INVALID_CONFIG|unknown condition key/)
  })
})
