/**
 * `sidecarless proxy` at HTTP's edges, as clients and attackers send them: absolute-form
 * targets against authorization, responses without a body (HEAD, 204, 304, with and without
 * Content-Length), connection reuse on both sides, and `TE: trailers`. curl and node clients.
 */
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import http from 'node:http'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { promisify } from 'node:util'
import { Agent, request } from 'undici'
import { exchange, parseResponse } from './helpers/raw-http.js'
import { start, stopAll, type Spawned } from './helpers/spawned.js'
import { echo, startUpstream, type Upstream } from './helpers/upstream.js'

const run = promisify(execFile)
let dir: string
let upstream: Upstream
let proxy: Spawned
let address: string
let port: number

/** `/status/<code>[?cl=<n>]`: that status, with that Content-Length if given, and no body. */
function behaviour(req: http.IncomingMessage, res: http.ServerResponse, name: string): void {
  const m = /^\/status\/(\d{3})(?:\?cl=(\d+))?/.exec(req.url ?? '')
  if (m === null) {
    if (req.method === 'HEAD') res.setHeader('content-length', String(`${name} ${req.url}`.length))
    echo(req, res, name)
    return
  }
  const headers: Record<string, string> = { etag: '"v1"' }
  if (m[2] !== undefined) headers['content-length'] = m[2]
  res.writeHead(Number(m[1]), headers)
  res.end()
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'sidecarless-proxy-edges-'))
  upstream = await startUpstream('app', behaviour)
  const file = join(dir, 'mesh.yaml')
  writeFileSync(file, `listener:
  address: 127.0.0.1:0
  authorization:
    - { name: no-admin, action: DENY, rules: [ { to: [ { operation: { paths: [ "/admin*" ] } } ] } ] }
    - { name: no-internal, action: DENY, rules: [ { to: [ { operation: { hosts: [ internal.svc ] } } ] } ] }
clusters:
  - name: app
    endpoints: [ { address: "${upstream.address}" } ]
virtualHosts:
  - name: app
    domains: [ app, svc, internal.svc ]
    routes: [ { match: { prefix: / }, route: { cluster: app } } ]
`)
  proxy = start(process.execPath, ['dist/cli/main.js', 'proxy', '-c', file])
  address = (await proxy.waitFor(/listening on http:\/\/(\S+)/))[1] as string
  port = Number(address.split(':').at(-1))
})

after(async () => {
  stopAll()
  await upstream.close()
  rmSync(dir, { recursive: true, force: true })
})

async function curl(...args: string[]): Promise<{ stdout: string; code: number }> {
  try {
    const { stdout } = await run('curl', ['-sS', '--max-time', '20', ...args])
    return { stdout, code: 0 }
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string }
    return { stdout: `${e.stdout ?? ''}${e.stderr ?? ''}`, code: e.code ?? -1 }
  }
}

describe('absolute-form request targets through the proxy', () => {
  test('curl -x (a client using the proxy as its HTTP proxy): /admin is denied, other paths forwarded', async () => {
    const denied = await curl('-i', '-x', `http://${address}`, 'http://app/admin')
    assert.match(denied.stdout, /^HTTP\/1\.1 403/)
    assert.match(denied.stdout, /RBAC: access denied$/)
    const ok = await curl('-i', '-x', `http://${address}`, 'http://app/ok?x=1')
    assert.match(ok.stdout, /^HTTP\/1\.1 200/)
    const seen = upstream.seen.at(-1)!
    assert.deepEqual([seen.url, seen.headers.host], ['/ok?x=1', 'app'])
    assert.ok(!upstream.seen.some((s) => s.url.startsWith('/admin')))
  })

  test('GET http://internal.svc/ with Host: svc is decided on internal.svc (the Host is replaced before authorization)', async () => {
    const r = parseResponse(await exchange(port, 'GET http://internal.svc/ HTTP/1.1\r\nHost: svc\r\nConnection: close\r\n\r\n'))
    assert.equal(r.status, 403)
    const allowed = parseResponse(await exchange(port, 'GET http://svc/ HTTP/1.1\r\nHost: internal.svc\r\nConnection: close\r\n\r\n'))
    assert.equal(allowed.status, 200, 'and the other way round: Host is ignored')
    assert.equal(upstream.seen.at(-1)?.headers.host, 'svc')
    const https = parseResponse(await exchange(port, 'GET https://app/x HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n'))
    assert.deepEqual([https.status, https.body], [400, 'only http:// absolute URLs are forwarded'])
  })
})

describe('responses without a body through the proxy', () => {
  const cases: [string, string][] = [
    ['GET', '/status/304?cl=42'], ['GET', '/status/304'], ['GET', '/status/204'], ['GET', '/status/204?cl=0'],
    ['HEAD', '/status/200?cl=42'], ['HEAD', '/status/200'], ['HEAD', '/status/304?cl=42'], ['HEAD', '/status/204'],
  ]

  test('curl: each is forwarded with its headers, and the connection is reused after it', async () => {
    for (const [method, path] of cases) {
      // Two requests in one curl run: the second must reuse the first's connection.
      const url = `http://${address}${path}`
      const r = await curl('-i', '-X', method, ...(method === 'HEAD' ? ['-I'] : []), '-H', 'host: app', '-w', 'connects=%{num_connects}\n', url, url)
      assert.equal(r.code, 0, `${method} ${path}: curl exit ${r.code}: ${r.stdout}`)
      const status = path.slice(8, 11)
      assert.equal(r.stdout.match(new RegExp(`^HTTP/1\\.1 ${status}`, 'gm'))?.length, 2, `${method} ${path}: ${r.stdout}`)
      const cl = /cl=(\d+)/.exec(path)?.[1]
      if (cl !== undefined && status !== '204') assert.match(r.stdout, new RegExp(`content-length: ${cl}\\r?$`, 'im'), `${method} ${path} keeps Content-Length`)
      assert.match(r.stdout, /etag: "v1"/i)
      assert.deepEqual(r.stdout.match(/connects=\d/g), ['connects=1', 'connects=0'], `${method} ${path}: the connection is reused`)
    }
  })

  test('node clients (undici, node:http with keep-alive): each answered, the next request reuses the connection', async () => {
    const dispatcher = new Agent({ connections: 1 })
    const agents = [new http.Agent({ keepAlive: true, maxSockets: 1 }), new http.Agent({ keepAlive: true, maxSockets: 1 })]
    /** A request through `agent` to `to`: resolves with whether it reused a kept-alive socket. */
    const nodeRequest = (agent: http.Agent, to: number, method: string, path: string, status: number): Promise<boolean> => new Promise<boolean>((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port: to, path, method, agent, headers: { host: 'app' } }, (res) => {
        assert.equal(res.statusCode, status, `node:http ${method} ${path}`)
        res.resume().on('end', () => resolve(req.reusedSocket))
      })
      req.on('error', reject)
      req.end()
    })
    try {
      for (const [method, path] of cases) {
        const status = Number(path.slice(8, 11))
        // undici itself refuses a 304 whose Content-Length is not 0 (it expects that many body
        // bytes: UND_ERR_RES_CONTENT_LENGTH_MISMATCH), from any server: node:http covers that case.
        if (!(method === 'GET' && path === '/status/304?cl=42')) {
          const u = await request(`http://${address}${path}`, { method: method as 'GET', headers: { host: 'app' }, dispatcher })
          assert.equal(u.statusCode, status, `undici ${method} ${path}`)
          assert.equal(await u.body.text(), '')
        }
        // node:http: the same request, then a GET on the same agent, through the proxy and
        // straight to the upstream; the proxy keeps the connection whenever the origin does.
        const reused: boolean[] = []
        for (const [i, to] of [port, upstream.port].entries()) {
          const agent = agents[i] as http.Agent
          await nodeRequest(agent, to, 'GET', '/warm', 200)
          await nodeRequest(agent, to, method, path, status)
          reused.push(await nodeRequest(agent, to, 'GET', '/after', 200))
        }
        assert.equal(reused[0], reused[1], `node:http after ${method} ${path}: reuse through the proxy as with the origin`)
        // node's own client drops its socket after a HEAD answered without Content-Length, whoever answers.
        if (!(method === 'HEAD' && !path.includes('cl=') && status === 200)) assert.equal(reused[0], true, `node:http after ${method} ${path}`)
      }
      // undici's one connection still serves a request with a body.
      const after = await request(`http://${address}/tail`, { headers: { host: 'app' }, dispatcher })
      assert.equal(await after.body.text(), 'app /tail')
    } finally {
      for (const a of agents) a.destroy()
      await dispatcher.close()
    }
  })

  test('100 HEAD requests share the upstream connections a GET would use', async () => {
    const heads = Array.from({ length: 100 }, (_, i) => `http://${address}/h${i}`)
    const before = upstream.connections
    const r = await curl('-I', '-H', 'host: app', '-o', '/dev/null', '-w', '%{http_code}\n', ...heads)
    assert.equal(r.stdout.match(/^200$/gm)?.length, 100, r.stdout)
    const opened = upstream.connections - before
    assert.ok(opened <= 4, `100 HEADs opened ${opened} upstream connections`)
  })
})

test('TE: a client offering trailers among other codings gets te: trailers forwarded; others are dropped', async () => {
  for (const [te, expected] of [['deflate, trailers', 'trailers'], ['trailers;q=0.5', 'trailers'], ['TRAILERS', 'trailers'], ['deflate', undefined], ['gzip, chunked', undefined]] as const) {
    const r = await curl('-H', 'host: app', '-H', `te: ${te}`, `http://${address}/te`)
    assert.equal(r.stdout, 'app /te')
    assert.equal(upstream.seen.at(-1)?.headers.te, expected, `TE: ${te}`)
  }
})
