// Kubernetes-style shutdown of apps under `node --import sidecarless/register`: SIGTERM
// with requests in flight, the admin endpoint's probes, the drain timeout; an app that
// brings its own mesh; a config that was bad at start and is fixed later.
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import http from 'node:http'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { RawConnection } from './helpers/raw-http.js'
import { start, stopAll, type Spawned } from './helpers/spawned.js'
import { startUpstream, type Upstream } from './helpers/upstream.js'

let backend: Upstream
let dir: string

before(async () => {
  backend = await startUpstream('backend')
  dir = mkdtempSync(join(tmpdir(), 'sidecarless-drain-'))
})

after(async () => {
  stopAll()
  await backend.close()
  rmSync(dir, { recursive: true, force: true })
})

function meshYaml(extra = ''): string {
  return `clusters:
  - name: backend
    endpoints: [ { address: "${backend.address}" } ]
virtualHosts:
  - name: backend
    domains: [ backend ]
    routes: [ { match: { prefix: / }, route: { cluster: backend } } ]
${extra}`
}

function configFile(name: string, text: string): string {
  const file = join(dir, name)
  writeFileSync(file, text)
  return file
}

async function startApp(app: string, env: Record<string, string>, nodeArgs = ['--import', 'sidecarless/register']): Promise<{ app: Spawned; port: number }> {
  const child = start(process.execPath, [...nodeArgs, `test/fixtures/apps/${app}`], env)
  const m = await child.waitFor(/"port":(\d+)/)
  return { app: child, port: Number(m[1]) }
}

function get(url: string): Promise<{ status: number; body: string; headers: http.IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    http.get(url, { agent: false }, (res) => {
      let body = ''
      res.setEncoding('utf8').on('data', (d: string) => (body += d)).on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }))
    }).on('error', reject)
  })
}

function connectError(port: number): Promise<string> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1')
    socket.once('connect', () => {
      socket.destroy()
      resolve('connected')
    })
    socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message))
  })
}

/** Sends `GET path` on a new connection once the app says it received it. */
async function inFlight(app: Spawned, port: number, path: string): Promise<RawConnection> {
  const seen = app.stdout().split(`"received":"${path}"`).length - 1
  const c = await RawConnection.open(port)
  c.send(`GET ${path} HTTP/1.1\r\nhost: app\r\n\r\n`)
  await app.waitFor(new RegExp(`(?:"received":"${path.replace(/\//g, '\\/')}"[\\s\\S]*){${seen + 1}}`))
  return c
}

describe('SIGTERM under sidecarless/register', () => {
  test('a 2 s request in flight completes with 200 and connection: close; /ready answers 503 at once; new connections are refused; then the process ends by the signal (143)', async () => {
    const config = configFile('sigterm.yaml', meshYaml('admin:\n  address: 127.0.0.1:0\n'))
    const { app, port } = await startApp('esm-drain.mjs', { SIDECARLESS_CONFIG: config, SLOW_MS: '2000' })
    const admin = (await app.waitFor(/sidecarless: admin on http:\/\/(\S+)/, 20_000, 'stderr'))[1] as string
    assert.deepEqual(await get(`http://${admin}/ready`).then((r) => [r.status, r.body]), [200, 'LIVE\n'])
    const prom = await get(`http://${admin}/stats/prometheus`)
    assert.equal(prom.status, 200)

    // An idle keep-alive connection, and the slow request.
    const idle = await RawConnection.open(port)
    idle.send('GET /quick HTTP/1.1\r\nhost: app\r\n\r\n')
    assert.match(await idle.read(/ok \/quick$/), /connection: keep-alive/i)
    const slow = await inFlight(app, port, '/slow')

    app.child.kill('SIGTERM')
    // Not ready at once, while the slow request is still in flight.
    let ready = await get(`http://${admin}/ready`)
    for (let i = 0; i < 100 && ready.status === 200; i++) ready = await get(`http://${admin}/ready`)
    assert.deepEqual([ready.status, ready.body], [503, 'DRAINING\n'])
    assert.equal((await get(`http://${admin}/healthz`)).status, 200, 'liveness holds while draining')
    await idle.closed
    assert.equal(await connectError(port), 'ECONNREFUSED', 'new connections are refused')
    assert.equal(app.child.exitCode, null, 'still draining')

    const answer = await slow.untilClosed()
    assert.match(answer, /^HTTP\/1\.1 200 OK/)
    assert.match(answer, /\r\nconnection: close\r\n/i)
    assert.match(answer, /slow done \/slow$/)
    // Killed by SIGTERM: a shell or the kubelet reports 128 + 15 = 143.
    assert.deepEqual(await app.exited(), { code: null, signal: 'SIGTERM' })
    assert.doesNotMatch(app.stderr(), /Error|Warning/)
  })

  test('SIDECARLESS_DRAIN_TIMEOUT cuts a request that never finishes, then the process ends by the signal', async () => {
    const config = configFile('hang.yaml', meshYaml())
    const { app, port } = await startApp('esm-drain.mjs', { SIDECARLESS_CONFIG: config, SIDECARLESS_DRAIN_TIMEOUT: '300ms' })
    const hung = await inFlight(app, port, '/hang')
    app.child.kill('SIGTERM')
    assert.equal(await hung.untilClosed(), '', 'cut without an answer')
    assert.deepEqual(await app.exited(), { code: null, signal: 'SIGTERM' })
  })

  test('SIDECARLESS_DRAIN_DELAY: new connections are still taken for a while, each told connection: close', async () => {
    const config = configFile('delay.yaml', meshYaml('admin:\n  address: 127.0.0.1:0\n'))
    const { app, port } = await startApp('esm-drain.mjs', { SIDECARLESS_CONFIG: config, SIDECARLESS_DRAIN_DELAY: '2s' })
    const admin = (await app.waitFor(/admin on http:\/\/(\S+)/, 20_000, 'stderr'))[1] as string
    const slow = await inFlight(app, port, '/slow')
    app.child.kill('SIGTERM')
    // Once the drain began (not ready):
    let ready = await get(`http://${admin}/ready`)
    for (let i = 0; i < 100 && ready.status === 200; i++) ready = await get(`http://${admin}/ready`)
    assert.equal(ready.status, 503)
    // During the delay a new caller (an endpoint list not yet updated) still gets its answer.
    const late = await get(`http://127.0.0.1:${port}/late`)
    assert.deepEqual([late.status, late.body, late.headers.connection], [200, 'ok /late', 'close'])
    assert.match(await slow.untilClosed(), /^HTTP\/1\.1 200[\s\S]*connection: close/i)
    assert.deepEqual(await app.exited(), { code: null, signal: 'SIGTERM' })
  })

  test('a malformed SIDECARLESS_DRAIN_TIMEOUT is refused at start, naming the variable', async () => {
    const config = configFile('badenv.yaml', meshYaml())
    const app = start(process.execPath, ['--import', 'sidecarless/register', 'test/fixtures/apps/esm-drain.mjs'], { SIDECARLESS_CONFIG: config, SIDECARLESS_DRAIN_TIMEOUT: '30' })
    assert.equal((await app.exited()).code, 1)
    assert.match(app.stderr(), /SIDECARLESS_DRAIN_TIMEOUT is "30"; it must be a duration such as "20s"/)
  })

  test('an app with its own SIGTERM handler decides when to exit; the mesh turns not ready at once, and the app\'s server.close() answers in flight with connection: close', async () => {
    const slowBackend = await startUpstream('slow-backend', (req, res, name) => setTimeout(() => res.end(`${name} ${req.url}`), 1500))
    try {
      const config = configFile('own-handler.yaml', `clusters:
  - name: backend
    endpoints: [ { address: "${slowBackend.address}" } ]
virtualHosts:
  - name: backend
    domains: [ backend ]
    routes: [ { match: { prefix: / }, route: { cluster: backend } } ]
admin:
  address: 127.0.0.1:0
`)
      const { app, port } = await startApp('cjs-http.cjs', { SIDECARLESS_CONFIG: config, APP_OWN_SIGTERM: '1' })
      const admin = (await app.waitFor(/admin on http:\/\/(\S+)/, 20_000, 'stderr'))[1] as string
      assert.equal((await get(`http://${admin}/ready`)).status, 200)
      const c = await RawConnection.open(port)
      c.send('GET /call HTTP/1.1\r\nhost: app\r\n\r\n')
      for (let i = 0; i < 200 && slowBackend.seen.length === 0; i++) await new Promise((resolve) => setTimeout(resolve, 10))
      app.child.kill('SIGTERM')
      await app.waitFor(/app-sigterm/)
      assert.deepEqual(await get(`http://${admin}/ready`).then((r) => [r.status, r.body]), [503, 'DRAINING\n'])
      const answer = await c.untilClosed()
      assert.match(answer, /^HTTP\/1\.1 200[\s\S]*\r\nconnection: close\r\n[\s\S]*slow-backend \/call/i)
      assert.deepEqual(await app.exited(), { code: 7, signal: null }, 'the app ran its own handler and chose its exit code')
    } finally {
      await slowBackend.close()
    }
  })
})

describe("an app's own mesh under sidecarless/register", () => {
  test("mesh.wrap(server) takes the server over from the register hook (the app's policy applies), the global fetch stays the register mesh's, and SIGTERM drains the app's server", async () => {
    const registerConfig = configFile('register-mesh.yaml', meshYaml(`listener:
  authorization:
    - { name: reg, action: DENY, rules: [ { to: [ { operation: { paths: [ /register-denied ] } } ] } ] }
`))
    const appConfig = configFile('app-mesh.yaml', `listener:
  authorization:
    - { name: own, action: DENY, rules: [ { to: [ { operation: { paths: [ /app-denied ] } } ] } ] }
`)
    const { app, port } = await startApp('esm-own-mesh.mjs', { SIDECARLESS_CONFIG: registerConfig, APP_MESH_CONFIG: appConfig })
    assert.equal((await get(`http://127.0.0.1:${port}/app-denied`)).status, 403, "the app's mesh runs the server's requests")
    assert.equal((await get(`http://127.0.0.1:${port}/register-denied`)).status, 200, "the register mesh stepped aside")
    assert.match((await get(`http://127.0.0.1:${port}/ok`)).body, /^\/ok [0-9a-f-]{36}$/)
    assert.doesNotMatch(app.stderr(), /already wrapped|not wrapped|Error/)

    const slow = await inFlight(app, port, '/slow')
    app.child.kill('SIGTERM')
    const answer = await slow.untilClosed()
    assert.match(answer, /^HTTP\/1\.1 200[\s\S]*connection: close[\s\S]*\/slow [0-9a-f-]{36}$/i)
    assert.deepEqual(await app.exited(), { code: null, signal: 'SIGTERM' })
  })

  test('without the register hook, the same app runs as before', async () => {
    const appConfig = configFile('app-mesh-alone.yaml', 'listener:\n  authorization:\n    - { name: own, action: DENY, rules: [ { to: [ { operation: { paths: [ /app-denied ] } } ] } ] }\n')
    const { app, port } = await startApp('esm-own-mesh.mjs', { APP_MESH_CONFIG: appConfig }, [])
    try {
      assert.equal((await get(`http://127.0.0.1:${port}/app-denied`)).status, 403)
      assert.equal((await get(`http://127.0.0.1:${port}/ok`)).status, 200)
    } finally {
      app.child.kill('SIGKILL')
    }
  })
})

describe('SIDECARLESS_ON_CONFIG_ERROR=continue, then the file is fixed', () => {
  test('the mesh starts ("config applied (version 1)"), the server created meanwhile runs through it, the global fetch too, and its policies apply', async () => {
    const config = configFile('fixed-later.yaml', 'clusters: [ { name: "" } ]\n')
    const { app, port } = await startApp('esm-drain.mjs', { SIDECARLESS_CONFIG: config, SIDECARLESS_ON_CONFIG_ERROR: 'continue' })
    try {
      assert.match(app.stderr(), /starts WITHOUT the mesh .*fixed-later\.yaml is watched/)
      const without = JSON.parse((await get(`http://127.0.0.1:${port}/call`)).body) as { fetch: { error?: string }; inbound: { requestId: string | null } }
      assert.equal(without.inbound.requestId, null, 'no mesh yet: no request id')
      assert.ok(without.fetch.error !== undefined, 'no mesh yet: http://backend does not resolve')
      assert.equal((await get(`http://127.0.0.1:${port}/admin`)).status, 200)

      // Still bad: said, and the app goes on without the mesh.
      writeFileSync(config, 'clusters: [ { name: "" } ]\nvirtualHosts: []\n')
      await app.waitFor(/still cannot be used/, 20_000, 'stderr')

      writeFileSync(config, meshYaml(`listener:
  authorization:
    - { name: no-admin, action: DENY, rules: [ { to: [ { operation: { paths: [ "/admin*" ] } } ] } ] }
`))
      await app.waitFor(/config .*fixed-later\.yaml applied \(version 1\)/, 20_000, 'stderr')
      const withMesh = JSON.parse((await get(`http://127.0.0.1:${port}/call`)).body) as { fetch: { status: number; cluster: string; body: string }; inbound: { requestId: string | null } }
      assert.match(withMesh.inbound.requestId ?? '', /^[0-9a-f-]{36}$/, 'the inbound chain runs')
      assert.deepEqual(withMesh.fetch, { status: 200, cluster: 'backend', body: 'backend /call' }, 'the global fetch goes through the mesh')
      assert.equal((await get(`http://127.0.0.1:${port}/admin`)).status, 403, 'the policy applies')

      // From then on, changes are applied as usual.
      writeFileSync(config, meshYaml())
      await app.waitFor(/fixed-later\.yaml applied \(version 2\)/, 20_000, 'stderr')
      assert.equal((await get(`http://127.0.0.1:${port}/admin`)).status, 200)
    } finally {
      app.child.kill('SIGKILL')
    }
  })

  test('a missing file at start: the mesh starts when it appears', async () => {
    const config = join(dir, 'appears-later.yaml')
    const { app, port } = await startApp('esm-drain.mjs', { SIDECARLESS_CONFIG: config, SIDECARLESS_ON_CONFIG_ERROR: 'continue' })
    try {
      writeFileSync(config, meshYaml())
      await app.waitFor(/appears-later\.yaml applied \(version 1\)/, 20_000, 'stderr')
      const got = JSON.parse((await get(`http://127.0.0.1:${port}/call`)).body) as { fetch: { cluster: string } }
      assert.equal(got.fetch.cluster, 'backend')
    } finally {
      app.child.kill('SIGKILL')
    }
  })
})
