// Zero code change: unmodified apps (test/fixtures/apps) run under
// `node --import sidecarless/register`, and `sidecarless/fetch` from a spawned app.
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { start, stopAll, type Spawned } from './helpers/spawned.js'
import { startUpstream, type Upstream } from './helpers/upstream.js'
import { connectRequest, expectationRequest, expectContinue, upgradeRequest } from './helpers/event-clients.js'

let backend: Upstream
let canary: Upstream
let dir: string

function meshYaml(up: Upstream, cluster = 'backend'): string {
  return `clusters:
  - name: ${cluster}
    endpoints: [ { address: "${up.address}" } ]
virtualHosts:
  - name: backend
    domains: [ backend ]
    routes: [ { match: { prefix: / }, route: { cluster: ${cluster} } } ]
`
}

function configFile(name: string, text: string): string {
  const file = join(dir, name)
  writeFileSync(file, text)
  return file
}

async function startApp(app: string, env: Record<string, string>, nodeArgs: string[] = ['--import', 'sidecarless/register']): Promise<{ app: Spawned; port: number }> {
  const child = start(process.execPath, [...nodeArgs, `test/fixtures/apps/${app}`], env)
  const m = await child.waitFor(/"port":(\d+)/)
  return { app: child, port: Number(m[1]) }
}

interface CallResult {
  fetch: { status: number; cluster: string | null; body: string }
  undici?: { status: number; cluster: string | null; body: string }
  inbound: { requestId: string | null; traceparent: string | null }
}

async function call(port: number, headers: Record<string, string> = {}): Promise<CallResult> {
  const res = await fetch(`http://127.0.0.1:${port}/call`, { headers })
  assert.equal(res.status, 200, await res.clone().text())
  return (await res.json()) as CallResult
}

const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736'
const TRACEPARENT = `00-${TRACE_ID}-00f067aa0ba902b7-01`

before(async () => {
  backend = await startUpstream('backend')
  canary = await startUpstream('canary')
  dir = mkdtempSync(join(tmpdir(), 'sidecarless-zerocode-'))
})

after(async () => {
  stopAll()
  await backend.close()
  await canary.close()
  rmSync(dir, { recursive: true, force: true })
})

describe('node --import sidecarless/register, unmodified apps', () => {
  for (const app of ['esm-http.mjs', 'cjs-http.cjs', 'esm-express.mjs', 'cjs-fastify.cjs']) {
    test(`${app}: outbound routed by the mesh, inbound gets x-request-id, the trace propagates`, async () => {
      const config = configFile(`${app}.yaml`, meshYaml(backend))
      const { app: child, port } = await startApp(app, { SIDECARLESS_CONFIG: config, SIDECARLESS_SERVICE: 'app', SIDECARLESS_LABELS: 'version=v1,team=a' })
      try {
        const got = await call(port, { traceparent: TRACEPARENT })
        assert.equal(got.fetch.status, 200)
        assert.equal(got.fetch.cluster, 'backend', 'global fetch went through the mesh')
        assert.equal(got.fetch.body, 'backend /call')
        if (got.undici !== undefined) {
          assert.equal(got.undici.cluster, 'backend', "npm undici's global dispatcher is the mesh")
          assert.equal(got.undici.body, 'backend /undici')
        }
        assert.match(got.inbound.requestId ?? '', /^[0-9a-f-]{36}$/, 'the app was handed an x-request-id')
        assert.equal(got.inbound.traceparent, TRACEPARENT)
        const seen = backend.seen.find((s) => s.headers['x-request-id'] === got.inbound.requestId && s.url === '/call')
        assert.ok(seen !== undefined, 'the upstream got the same x-request-id')
        assert.match(String(seen.headers.traceparent), new RegExp(`^00-${TRACE_ID}-[0-9a-f]{16}-01$`), 'the trace continues upstream')
        assert.equal(child.stderr(), '', 'nothing on stderr')
      } finally {
        child.child.kill('SIGKILL')
      }
    })
  }

  test('every node:http event (request, checkContinue, checkExpectation, upgrade, connect) passes the chain: denied ones never reach the app, allowed ones carry the trace', async () => {
    const config = configFile('events.yaml', `${meshYaml(backend)}listener:
  authorization:
    - name: no-admin
      action: DENY
      rules:
        - to: [ { operation: { paths: [ "/admin*" ] } } ]
        - to: [ { operation: { hosts: [ "forbidden.example:443" ] } } ]
`)
    const { app, port } = await startApp('esm-events.mjs', { SIDECARLESS_CONFIG: config })
    try {
      const headers = { traceparent: TRACEPARENT }
      const denied = await Promise.all([
        fetch(`http://127.0.0.1:${port}/admin`).then((r) => r.status),
        expectContinue(port, '/admin/upload', 'body').then((r) => r.status),
        expectationRequest(port, '/admin', 'x-custom').then((r) => r.status),
        upgradeRequest(port, '/admin/ws').then((r) => r.status),
        connectRequest(port, 'forbidden.example:443').then((r) => r.status),
      ])
      assert.deepEqual(denied, [403, 403, 403, 403, 403])

      const allowed = {
        request: JSON.parse(await (await fetch(`http://127.0.0.1:${port}/ok`, { headers })).text()),
        checkContinue: JSON.parse((await expectContinue(port, '/upload', 'body', headers)).text),
        checkExpectation: JSON.parse((await expectationRequest(port, '/expect', 'x-custom', headers)).text),
        upgrade: JSON.parse(String((await upgradeRequest(port, '/ws', headers)).headers['x-info'])),
        connect: JSON.parse((await connectRequest(port, 'allowed.example:443', headers)).text),
      } as Record<string, { event: string; requestId: string | null }>
      for (const [event, info] of Object.entries(allowed)) {
        assert.equal(info.event, event)
        assert.match(info.requestId ?? '', /^[0-9a-f-]{36}$/, `${event}: the mesh handed the app an x-request-id`)
        const out = backend.seen.find((s) => s.url === `/${event}` && s.headers['x-request-id'] === info.requestId)
        assert.ok(out !== undefined, `${event}: the app's outbound call ran in its request context`)
        assert.match(String(out.headers.traceparent), new RegExp(`^00-${TRACE_ID}-[0-9a-f]{16}-01$`), `${event}: the trace continues`)
      }
      const served = app.stdout().split('\n').filter((l) => l.includes('"served"')).map((l) => JSON.parse(l) as { url: string })
      assert.equal(served.length, 5)
      assert.ok(!served.some((s) => s.url.includes('admin') || s.url.includes('forbidden')), app.stdout())
      assert.doesNotMatch(app.stderr(), /not wrapped|Error/)
    } finally {
      app.child.kill('SIGKILL')
    }
  })

  test('a config change is picked up; a bad one is rejected on stderr and the old one stays', async () => {
    const config = configFile('watched.yaml', meshYaml(backend))
    const { app, port } = await startApp('esm-http.mjs', { SIDECARLESS_CONFIG: config })
    try {
      assert.equal((await call(port)).fetch.body, 'backend /call')
      writeFileSync(config, meshYaml(canary, 'canary'))
      await app.waitFor(/config .*watched\.yaml applied \(version 2\)/, 20_000, 'stderr')
      const moved = await call(port)
      assert.equal(moved.fetch.cluster, 'canary')
      assert.equal(moved.fetch.body, 'canary /call')

      writeFileSync(config, meshYaml(backend).replace('route: { cluster: backend }', 'route: { cluster: backnd }'))
      await app.waitFor(/rejected; the previous config stays in force/, 20_000, 'stderr')
      assert.match(app.stderr(), /virtualHosts\[0\]\.routes\[0\]\.route\.cluster: UNKNOWN_CLUSTER cluster "backnd" is not defined/)
      assert.equal((await call(port)).fetch.cluster, 'canary', 'the previous config is still in force')
    } finally {
      app.child.kill('SIGKILL')
    }
  })

  test('a bad config at start: every issue on stderr with path and code, exit 1', async () => {
    const config = configFile('bad.yaml', `clusters:
  - name: backend
    endpoints: [ { address: "127.0.0.1:0" } ]
    loadBalancer: roundRobin
virtualHosts:
  - name: backend
    domains: [ backend ]
    routes: [ { match: { prefix: / }, route: { cluster: nope } } ]
`)
    const app = start(process.execPath, ['--import', 'sidecarless/register', 'test/fixtures/apps/esm-http.mjs'], { SIDECARLESS_CONFIG: config })
    const { code } = await app.exited()
    assert.equal(code, 1)
    const err = app.stderr()
    assert.match(err, /clusters\[0\]\.endpoints\[0\]\.address: INVALID_ADDRESS/)
    assert.match(err, /clusters\[0\]\.loadBalancer: INVALID_VALUE/)
    assert.match(err, /virtualHosts\[0\]\.routes\[0\]\.route\.cluster: UNKNOWN_CLUSTER/)
    assert.match(err, /SIDECARLESS_ON_CONFIG_ERROR=continue/)
    assert.doesNotMatch(app.stdout(), /"port"/, 'the app did not start')
  })

  test('SIDECARLESS_ON_CONFIG_ERROR=continue: the problem is printed and the app starts without the mesh', async () => {
    const config = configFile('bad-continue.yaml', 'clusters: [ { name: "" } ]\n')
    const { app, port } = await startApp('cjs-http.cjs', { SIDECARLESS_CONFIG: config, SIDECARLESS_ON_CONFIG_ERROR: 'continue' })
    try {
      assert.ok(port > 0)
      assert.match(app.stderr(), /clusters\[0\]\.name: INVALID_VALUE/)
      assert.match(app.stderr(), /starts WITHOUT the mesh/)
    } finally {
      app.child.kill('SIGKILL')
    }
  })

  test('SIDECARLESS_CONFIG unset, or SIDECARLESS_LABELS malformed: a clear message, exit 1', async () => {
    const unset = start(process.execPath, ['--import', 'sidecarless/register', 'test/fixtures/apps/esm-http.mjs'])
    assert.equal((await unset.exited()).code, 1)
    assert.match(unset.stderr(), /SIDECARLESS_ERR_ENVIRONMENT SIDECARLESS_CONFIG is not set: set SIDECARLESS_CONFIG to the path of/)

    const config = configFile('ok.yaml', meshYaml(backend))
    const labels = start(process.execPath, ['--import', 'sidecarless/register', 'test/fixtures/apps/esm-http.mjs'], { SIDECARLESS_CONFIG: config, SIDECARLESS_LABELS: 'version=v1,,team=a' })
    assert.equal((await labels.exited()).code, 1)
    assert.match(labels.stderr(), /SIDECARLESS_LABELS pair 2 \(""\) is not key=value/)

    const mode = start(process.execPath, ['--import', 'sidecarless/register', 'test/fixtures/apps/esm-http.mjs'], { SIDECARLESS_CONFIG: config, SIDECARLESS_ON_CONFIG_ERROR: 'ignore' })
    assert.equal((await mode.exited()).code, 1)
    assert.match(mode.stderr(), /SIDECARLESS_ON_CONFIG_ERROR is "ignore"; it must be "exit" \(the default\) or "continue"/)
  })

  test('SIGTERM: the process ends by the signal; an app with its own handler keeps it', async () => {
    const config = configFile('signals.yaml', meshYaml(backend))
    const plain = await startApp('esm-http.mjs', { SIDECARLESS_CONFIG: config })
    await call(plain.port)
    plain.app.child.kill('SIGTERM')
    assert.deepEqual(await plain.app.exited(), { code: null, signal: 'SIGTERM' })

    const own = await startApp('cjs-http.cjs', { SIDECARLESS_CONFIG: config, APP_OWN_SIGTERM: '1' })
    own.app.child.kill('SIGTERM')
    assert.deepEqual(await own.app.exited(), { code: 7, signal: null }, 'the app ran its own handler and chose its exit code')
    assert.match(own.app.stdout(), /app-sigterm/)
  })

  test('loaded twice (--require and --import of another URL), it registers once and works', async () => {
    const config = configFile('twice.yaml', meshYaml(backend))
    const { app, port } = await startApp('cjs-http.cjs', { SIDECARLESS_CONFIG: config }, ['--require', 'sidecarless/register', '--import', './dist/register.js?again'])
    try {
      const got = await call(port)
      assert.equal(got.fetch.cluster, 'backend')
      assert.match(got.inbound.requestId ?? '', /^[0-9a-f-]{36}$/)
      assert.doesNotMatch(app.stderr(), /not wrapped|already wrapped/)
    } finally {
      app.child.kill('SIGKILL')
    }
  })
})

describe("import { fetch } from 'sidecarless/fetch'", () => {
  test('routes by the config in SIDECARLESS_CONFIG and exposes the mesh', async () => {
    const config = configFile('fetch.yaml', meshYaml(backend))
    const app = start(process.execPath, ['test/fixtures/apps/esm-fetch.mjs'], { SIDECARLESS_CONFIG: config, SIDECARLESS_SERVICE: 'explicit' })
    assert.equal((await app.exited()).code, 0, app.stderr())
    assert.deepEqual(JSON.parse(app.stdout()), { status: 200, cluster: 'backend', body: 'backend /explicit', service: 'explicit', requests: 1 })
  })

  test('shares the one process mesh with the register hook', async () => {
    const config = configFile('fetch-shared.yaml', meshYaml(backend))
    const app = start(process.execPath, ['--import', 'sidecarless/register', 'test/fixtures/apps/esm-fetch.mjs'], { SIDECARLESS_CONFIG: config, ALSO_GLOBAL: '1' })
    assert.equal((await app.exited()).code, 0, app.stderr())
    const got = JSON.parse(app.stdout()) as { requests: number; cluster: string }
    assert.equal(got.cluster, 'backend')
    assert.equal(got.requests, 2, 'the global fetch and sidecarless/fetch counted in one mesh')
  })

  test('without SIDECARLESS_CONFIG: the import works, fetch rejects with a coded error saying what to set', async () => {
    const app = start(process.execPath, ['test/fixtures/apps/esm-fetch.mjs'])
    assert.equal((await app.exited()).code, 0, app.stderr())
    const got = JSON.parse(app.stdout()) as { error: string; message: string; mesh: null }
    assert.equal(got.error, 'SIDECARLESS_ERR_ENVIRONMENT')
    assert.match(got.message, /set SIDECARLESS_CONFIG to the path of a mesh config/)
    assert.equal(got.mesh, null)
  })
})
