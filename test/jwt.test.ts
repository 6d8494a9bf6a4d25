/**
 * JWT authentication on the inbound side (Istio RequestAuthentication semantics): real keys
 * made here (RS256, ES256), a real JWKS server on port 0, a real wrapped server and client.
 */
import assert from 'node:assert/strict'
import { once } from 'node:events'
import type http from 'node:http'
import type { AddressInfo } from 'node:net'
import { after, before, describe, test } from 'node:test'
import { Agent, request } from 'undici'
import { createMesh, type Mesh, type MeshConfig } from '../src/index.js'
import { hmacWithPublicKey, makeKey, now, sign, startJwksServer, unsigned, type JwksServer, type TestKey } from './helpers/tokens.js'

const ISS = 'https://issuer.test'

let rsa: TestKey
let ec: TestKey
let stranger: TestKey
let jwks: JwksServer

before(async () => {
  rsa = await makeKey('RS256', 'r1')
  ec = await makeKey('ES256', 'e1')
  stranger = await makeKey('RS256', 'zz')
  jwks = await startJwksServer([rsa.jwk, ec.jwk])
})
after(async () => {
  await jwks.close()
})

/** A mesh with one JWT rule, and a server that echoes what the app saw. */
async function start(config: MeshConfig, options: http.ServerOptions = {}): Promise<{ mesh: Mesh; url: string; close: () => Promise<void> }> {
  const mesh = createMesh({ service: 'api', config })
  const server = mesh.createServer(options, (req, res) => {
    res.setHeader('content-type', 'application/json')
    res.end(JSON.stringify({ headers: req.headers, rawHeaders: req.rawHeaders, auth: mesh.context()?.auth ?? null }))
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  return {
    mesh,
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: async () => {
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
      await mesh.close()
    },
  }
}

// jwksTimeout is generous: a JWKS fetch slowed by a loaded machine must not start the failure
// pause that fails every later test (the timeout itself is tested with a hanging endpoint below).
function ruleConfig(extra: Record<string, unknown> = {}): MeshConfig {
  return {
    listener: {
      requestAuthentication: {
        jwtRules: [{ issuer: ISS, audiences: ['api'], jwksUri: jwks.url, jwksTimeout: '10s', outputClaimToHeaders: [{ header: 'x-user', claim: 'sub' }, { header: 'x-tier', claim: 'plan.tier' }], ...extra }],
      },
    },
  }
}

/** The test's own client: never the global dispatcher, which a test installs the mesh as. */
const client = new Agent()
after(() => client.close())

async function get(url: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: Record<string, unknown>; text: string }> {
  const res = await request(url, { headers, dispatcher: client })
  return { status: res.statusCode, headers: res.headers, text: await res.body.text() }
}

const good = (extra: Record<string, unknown> = {}): Record<string, unknown> => ({ iss: ISS, sub: 'alice', aud: 'api', exp: now() + 600, ...extra })

describe('JWT authentication', () => {
  let s: Awaited<ReturnType<typeof start>>
  before(async () => {
    s = await start(ruleConfig())
  })
  after(async () => {
    await s.close()
  })

  test('a request without a token passes unauthenticated (authorization decides)', async () => {
    const r = await get(`${s.url}/x`)
    assert.equal(r.status, 200)
    assert.equal(JSON.parse(r.text).auth, null)
  })

  test('a good RS256 token passes: context().auth, claims to headers, token header removed', async () => {
    const token = await sign(rsa, good({ plan: { tier: 'gold' } }))
    const r = await get(`${s.url}/x`, { authorization: `Bearer ${token}` })
    assert.equal(r.status, 200, r.text)
    const body = JSON.parse(r.text)
    assert.equal(body.auth.principal, `${ISS}/alice`)
    assert.equal(body.auth.claims.sub, 'alice')
    assert.deepEqual(body.auth.audiences, ['api'])
    assert.equal(body.headers['x-user'], 'alice')
    assert.equal(body.headers['x-tier'], 'gold')
    assert.equal(body.headers.authorization, undefined, 'forwardOriginalToken defaults to false')
    assert.ok(!body.rawHeaders.map((h: string) => h.toLowerCase()).includes('authorization'))
  })

  test('a good ES256 token passes; the Bearer scheme is case-insensitive', async () => {
    const token = await sign(ec, good({ sub: 'bob' }))
    const r = await get(`${s.url}/x`, { authorization: `bearer ${token}` })
    assert.equal(r.status, 200, r.text)
    assert.equal(JSON.parse(r.text).auth.principal, `${ISS}/bob`)
  })

  test('the default locations include ?access_token=', async () => {
    const token = await sign(rsa, good({ sub: 'carol' }))
    const r = await get(`${s.url}/x?access_token=${token}`)
    assert.equal(r.status, 200, r.text)
    assert.equal(JSON.parse(r.text).auth.principal, `${ISS}/carol`)
  })

  test('headers the rule sets from claims cannot be forged by the client', async () => {
    const noToken = await get(`${s.url}/x`, { 'x-user': 'admin' })
    assert.equal(JSON.parse(noToken.text).headers['x-user'], undefined)
    const token = await sign(rsa, good({ sub: 'dave' }))
    const withToken = await get(`${s.url}/x`, { authorization: `Bearer ${token}`, 'x-user': 'admin', 'x-tier': 'platinum' })
    const body = JSON.parse(withToken.text)
    assert.equal(body.headers['x-user'], 'dave')
    assert.equal(body.headers['x-tier'], undefined, 'the token has no plan.tier claim')
  })

  test('claim values are sanitised: no CR/LF reaches a header', async () => {
    const token = await sign(rsa, good({ sub: 'eve\r\nx-admin: true' }))
    const r = await get(`${s.url}/x`, { authorization: `Bearer ${token}` })
    assert.equal(r.status, 200, r.text)
    const body = JSON.parse(r.text)
    assert.equal(body.headers['x-user'], 'evex-admin: true')
    assert.equal(body.headers['x-admin'], undefined)
  })

  test('the second request with the same token is served from the cache (no second verification)', async () => {
    const token = await sign(rsa, good({ sub: 'frank' }))
    const before = s.mesh.metrics.snapshot().security.jwt
    assert.equal((await get(`${s.url}/x`, { authorization: `Bearer ${token}` })).status, 200)
    const mid = s.mesh.metrics.snapshot().security.jwt
    assert.equal(mid.cacheMisses, before.cacheMisses + 1)
    assert.equal((await get(`${s.url}/x`, { authorization: `Bearer ${token}` })).status, 200)
    const end = s.mesh.metrics.snapshot().security.jwt
    assert.equal(end.cacheMisses, mid.cacheMisses, 'no signature check on the second request')
    assert.equal(end.cacheHits, mid.cacheHits + 1)
    assert.equal(end.allowed, before.allowed + 2)
    assert.equal(s.mesh.snapshot.requestAuthentication?.counters.verifications, end.cacheMisses)
  })

  test('concurrent requests with one new token share one signature check', async () => {
    const token = await sign(rsa, good({ sub: 'grace' }))
    const authn = s.mesh.snapshot.requestAuthentication
    const before = authn?.counters.verifications ?? 0
    const all = await Promise.all(Array.from({ length: 20 }, () => get(`${s.url}/x`, { authorization: `Bearer ${token}` })))
    assert.ok(all.every((r) => r.status === 200))
    assert.equal((authn?.counters.verifications ?? 0) - before, 1)
  })

  describe('attacks: every one gets 401 with an RFC 6750 challenge, none crashes the server', () => {
    const HOUR = 3600
    const cases: [string, () => Promise<Record<string, string>> | Record<string, string>, string][] = [
      ['alg none', () => ({ authorization: `Bearer ${unsigned(good(), 'r1')}` }), 'signature'],
      ['HS256 signed with the RSA public key as the HMAC secret', () => ({ authorization: `Bearer ${hmacWithPublicKey(rsa, good())}` }), 'signature'],
      ['expired', async () => ({ authorization: `Bearer ${await sign(rsa, good({ exp: now() - HOUR }))}` }), 'expired'],
      ['not yet valid', async () => ({ authorization: `Bearer ${await sign(rsa, good({ nbf: now() + HOUR }))}` }), 'not_yet_valid'],
      ['wrong issuer', async () => ({ authorization: `Bearer ${await sign(rsa, good({ iss: 'https://evil.test' }))}` }), 'unknown_issuer'],
      ['wrong audience', async () => ({ authorization: `Bearer ${await sign(rsa, good({ aud: 'other' }))}` }), 'audience'],
      ['unknown kid', async () => ({ authorization: `Bearer ${await sign(stranger, good())}` }), 'no_key'],
      ['a known kid, signed by another key', async () => ({ authorization: `Bearer ${await sign({ ...stranger, kid: 'r1' }, good())}` }), 'signature'],
      ['a tampered payload', async () => {
        const [h, , sig] = (await sign(rsa, good())).split('.')
        return { authorization: `Bearer ${h}.${Buffer.from(JSON.stringify(good({ sub: 'root' }))).toString('base64url')}.${sig}` }
      }, 'signature'],
      ['malformed token', () => ({ authorization: 'Bearer abc.def' }), 'bad_format'],
      ['garbage in every part', () => ({ authorization: 'Bearer %%%.!!!.***' }), 'bad_format'],
    ]
    for (const [name, headers, reason] of cases) {
      test(name, async () => {
        const before = s.mesh.metrics.snapshot().security.jwt.denied[reason as 'expired']
        const r = await get(`${s.url}/private?q=1`, await headers())
        assert.equal(r.status, 401, `${name}: ${r.text}`)
        assert.match(String(r.headers['www-authenticate']), /^Bearer realm="http:\/\/127\.0\.0\.1:\d+\/private", error="invalid_token"$/)
        assert.equal(s.mesh.metrics.snapshot().security.jwt.denied[reason as 'expired'], before + 1, `${name} counted as ${reason}`)
      })
    }

    test('a huge token (64 KiB, on a server that accepts 128 KiB of headers) is refused before parsing', async () => {
      const big = await start(ruleConfig(), { maxHeaderSize: 131_072 })
      try {
        const huge = `${(await sign(rsa, good())).split('.')[0]}.${'a'.repeat(65_536)}.sig`
        for (const r of [await get(`${big.url}/x`, { authorization: `Bearer ${huge}` }), await get(`${big.url}/x?access_token=${huge}`)]) {
          assert.equal(r.status, 401)
          assert.equal(r.text, 'Jwt is too large')
        }
        assert.equal(big.mesh.metrics.snapshot().security.jwt.denied.too_large, 2)
      } finally {
        await big.close()
      }
    })

    test('two different tokens in one request', async () => {
      const a = await sign(rsa, good({ sub: 'a' }))
      const b = await sign(rsa, good({ sub: 'b' }))
      const r = await get(`${s.url}/x?access_token=${b}`, { authorization: `Bearer ${a}` })
      assert.equal(r.status, 401)
      // The same token twice is one token.
      assert.equal((await get(`${s.url}/x?access_token=${a}`, { authorization: `Bearer ${a}` })).status, 200)
    })

    test('two Authorization headers (node keeps only the first): two different tokens are refused, the same token twice is one', async () => {
      const a = await sign(rsa, good({ sub: 'a' }))
      const b = await sign(rsa, good({ sub: 'b' }))
      const before = s.mesh.metrics.snapshot().security.jwt.denied.multiple_tokens
      const two = async (first: string, second: string): Promise<{ status: number; text: string }> => {
        const res = await request(`${s.url}/x`, { headers: ['authorization', first, 'Authorization', second], dispatcher: client })
        return { status: res.statusCode, text: await res.body.text() }
      }
      const r = await two(`Bearer ${a}`, `Bearer ${b}`)
      assert.deepEqual([r.status, r.text], [401, 'Jwt is present more than once with different values'])
      // A valid first token does not carry a second one past the check, whatever the second is.
      assert.equal((await two(`Bearer ${a}`, 'Bearer x.y.z')).status, 401)
      assert.equal(s.mesh.metrics.snapshot().security.jwt.denied.multiple_tokens, before + 2)
      const same = await two(`Bearer ${a}`, `Bearer ${a}`)
      assert.equal(same.status, 200)
      assert.equal(JSON.parse(same.text).auth.principal, `${ISS}/a`)
      // A second Authorization line of another scheme is no token.
      assert.equal((await two('Basic dXNlcjpwdw==', `Bearer ${a}`)).status, 200)
    })

    test('a custom token header sent twice (node joins the lines) is two tokens, not one malformed one', async () => {
      const custom = await start(ruleConfig({ fromHeaders: [{ name: 'x-jwt' }] }))
      try {
        const a = await sign(rsa, good({ sub: 'a' }))
        const b = await sign(rsa, good({ sub: 'b' }))
        const res = await request(`${custom.url}/x`, { headers: ['x-jwt', a, 'x-jwt', b], dispatcher: client })
        assert.equal(res.statusCode, 401)
        assert.equal(await res.body.text(), 'Jwt is present more than once with different values')
        assert.equal(custom.mesh.metrics.snapshot().security.jwt.denied.multiple_tokens, 1)
      } finally {
        await custom.close()
      }
    })

    test('the server still serves after all of them, and metrics count 401s as unauthenticated', async () => {
      assert.equal((await get(`${s.url}/x`)).status, 200)
      const prom = s.mesh.metrics.prometheus()
      assert.match(prom, /sidecarless_http_downstream_rq_error_total\{service="api",route="\(default\)",error_kind="unauthenticated"\} \d+/)
      assert.match(prom, /sidecarless_jwt_authn_denied_total\{service="api",reason="expired"\} 1/)
      assert.match(prom, /sidecarless_jwt_authn_jwt_cache_hit_total\{service="api"\} \d+/)
    })
  })
})

describe('JWT rule options', () => {
  test('forwardOriginalToken: true keeps the token header; fromHeaders with a custom prefix; outputPayloadToHeader', async () => {
    const s = await start(ruleConfig({ forwardOriginalToken: true, fromHeaders: [{ name: 'x-jwt', prefix: 'Token ' }], outputPayloadToHeader: 'x-jwt-payload' }))
    try {
      const token = await sign(rsa, good())
      const r = await get(`${s.url}/x`, { 'x-jwt': `Token ${token}` })
      assert.equal(r.status, 200, r.text)
      const body = JSON.parse(r.text)
      assert.equal(body.headers['x-jwt'], `Token ${token}`)
      assert.equal(JSON.parse(Buffer.from(body.headers['x-jwt-payload'], 'base64url').toString()).sub, 'alice')
      // Authorization: Bearer is not a location of this rule: such a token is not looked at.
      assert.equal(JSON.parse((await get(`${s.url}/x`, { authorization: `Bearer ${token}` })).text).auth, null)
    } finally {
      await s.close()
    }
  })

  test('an inline JWKS verifies without any fetch', async () => {
    const s = await start({ listener: { requestAuthentication: { jwtRules: [{ issuer: ISS, jwks: JSON.stringify({ keys: [ec.jwk] }) }] } } })
    try {
      const fetches = jwks.fetches
      assert.equal((await get(`${s.url}/x`, { authorization: `Bearer ${await sign(ec, good())}` })).status, 200)
      assert.equal((await get(`${s.url}/x`, { authorization: `Bearer ${await sign(rsa, good())}` })).status, 401)
      assert.equal(jwks.fetches, fetches)
    } finally {
      await s.close()
    }
  })

  test('a config swap that keeps the rules keeps the token cache', async () => {
    const s = await start(ruleConfig())
    try {
      const token = await sign(rsa, good())
      await get(`${s.url}/x`, { authorization: `Bearer ${token}` })
      const authn = s.mesh.snapshot.requestAuthentication
      await s.mesh.update({ ...ruleConfig(), tracing: { sampling: 50 } })
      assert.equal(s.mesh.snapshot.requestAuthentication, authn)
      const misses = s.mesh.metrics.snapshot().security.jwt.cacheMisses
      await get(`${s.url}/x`, { authorization: `Bearer ${token}` })
      assert.equal(s.mesh.metrics.snapshot().security.jwt.cacheMisses, misses)
    } finally {
      await s.close()
    }
  })
})

describe('JWKS endpoint failures: 401 for tokens that need it, never a hang, and no fetch per request', () => {
  test('endpoint answering 500, then garbage, then oversized; then recovering', async () => {
    const server = await startJwksServer([rsa.jwk])
    const s = await start({ listener: { requestAuthentication: { jwtRules: [{ issuer: ISS, jwksUri: server.url }] } } })
    try {
      const token = await sign(rsa, good())
      for (const mode of ['error', 'garbage', 'huge'] as const) {
        server.mode = mode
        // Let the pause after the previous failure run out.
        await new Promise((r) => setTimeout(r, 1_100))
        const r = await get(`${s.url}/x`, { authorization: `Bearer ${token}` })
        assert.equal(r.status, 401, mode)
        assert.equal(r.text, 'Jwks remote fetch is failed', mode)
      }
      // A burst while the endpoint is failing: no fetch per request.
      server.mode = 'error'
      await new Promise((r) => setTimeout(r, 1_100))
      const fetches = server.fetches
      const burst = await Promise.all(Array.from({ length: 20 }, () => get(`${s.url}/x`, { authorization: `Bearer ${token}` })))
      assert.ok(burst.every((r) => r.status === 401))
      assert.ok(server.fetches - fetches <= 1, `${server.fetches - fetches} fetches for 20 requests`)
      // A request without a token does not need the keys at all.
      assert.equal((await get(`${s.url}/x`)).status, 200)
      server.mode = 'ok'
      await new Promise((r) => setTimeout(r, 1_100))
      assert.equal((await get(`${s.url}/x`, { authorization: `Bearer ${token}` })).status, 200)
    } finally {
      await s.close()
      await server.close()
    }
  })

  test('endpoint refusing connections', async () => {
    const server = await startJwksServer([rsa.jwk])
    const url = server.url
    await server.close()
    const s = await start({ listener: { requestAuthentication: { jwtRules: [{ issuer: ISS, jwksUri: url }] } } })
    try {
      const r = await get(`${s.url}/x`, { authorization: `Bearer ${await sign(rsa, good())}` })
      assert.equal(r.status, 401)
    } finally {
      await s.close()
    }
  })

  test('endpoint hanging: 401 after jwksTimeout', async () => {
    const server = await startJwksServer([rsa.jwk])
    server.mode = 'hang'
    const s = await start({ listener: { requestAuthentication: { jwtRules: [{ issuer: ISS, jwksUri: server.url, jwksTimeout: '300ms' }] } } })
    try {
      const t0 = performance.now()
      const r = await get(`${s.url}/x`, { authorization: `Bearer ${await sign(rsa, good())}` })
      const ms = performance.now() - t0
      assert.equal(r.status, 401)
      assert.ok(ms >= 250 && ms < 3_000, `answered after ${ms.toFixed(0)} ms`)
    } finally {
      await s.close()
      await server.close()
    }
  })

  test('an unknown kid refetches the keys at most once per cooldown', async () => {
    const server = await startJwksServer([rsa.jwk])
    const s = await start({ listener: { requestAuthentication: { jwtRules: [{ issuer: ISS, jwksUri: server.url }] } } })
    try {
      assert.equal((await get(`${s.url}/x`, { authorization: `Bearer ${await sign(rsa, good())}` })).status, 200)
      const fetches = server.fetches
      for (let i = 0; i < 10; i++) {
        const r = await get(`${s.url}/x`, { authorization: `Bearer ${await sign(stranger, good({ jti: String(i) }))}` })
        assert.equal(r.status, 401)
      }
      assert.ok(server.fetches - fetches <= 1, `${server.fetches - fetches} fetches for 10 unknown kids`)
    } finally {
      await s.close()
      await server.close()
    }
  })

  test('JWKS fetches do not go through the mesh installed as the global dispatcher', async () => {
    const server = await startJwksServer([rsa.jwk])
    // REGISTRY_ONLY: a fetch through the mesh to 127.0.0.1 would be refused.
    const s = await start({ outboundTrafficPolicy: { mode: 'REGISTRY_ONLY' }, listener: { requestAuthentication: { jwtRules: [{ issuer: ISS, jwksUri: server.url }] } } })
    const restore = s.mesh.installGlobal()
    try {
      assert.equal((await get(`${s.url}/x`, { authorization: `Bearer ${await sign(rsa, good())}` })).status, 200)
      assert.equal(server.fetches, 1)
    } finally {
      restore()
      await s.close()
      await server.close()
    }
  })
})
