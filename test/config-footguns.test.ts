/**
 * Config footguns seen on first use (issue 16, item 6): Envoy's upper-case enum spellings,
 * a route prefix without a slash, durations in days, `file:line:column` for problems in a
 * config file (createMesh, mesh.update, register, validate), `sidecarless ca --help`, and a
 * committed lockfile that `npm install` would rewrite.
 */
import assert from 'node:assert/strict'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { ConfigError, createMesh, lintConfig, loadConfig, validateConfig, type MeshConfig } from '../src/index.js'
import { root, start, stopAll } from './helpers/spawned.js'
import { startUpstream, type Upstream } from './helpers/upstream.js'

let dir: string
const ups: Upstream[] = []
before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'sidecarless-footguns-'))
  for (const n of ['a', 'b', 'c']) ups.push(await startUpstream(n))
})
after(async () => {
  stopAll()
  for (const u of ups) await u.close()
  rmSync(dir, { recursive: true, force: true })
})

function file(name: string, text: string): string {
  const path = join(dir, name)
  writeFileSync(path, text)
  return path
}

describe("Envoy's spellings of enums", () => {
  const cluster = (extra: Record<string, unknown>): MeshConfig => ({
    clusters: [{ name: 'c', endpoints: ups.map((u) => ({ address: u.address })), ...extra }],
    virtualHosts: [{ name: 'c', domains: ['c'], routes: [{ match: { prefix: '/' }, route: { cluster: 'c', hashPolicy: [{ header: { name: 'x-user' } }] } }] }],
  })

  test('ROUND_ROBIN, LEAST_REQUEST, RANDOM, RING_HASH, MAGLEV, STATIC, STRICT_DNS, LOGICAL_DNS and SECOND validate as the lower case does', () => {
    for (const lb of ['ROUND_ROBIN', 'LEAST_REQUEST', 'RANDOM', 'RING_HASH', 'MAGLEV']) assert.deepEqual(validateConfig(cluster({ loadBalancer: lb })), [], lb)
    for (const type of ['STATIC', 'STRICT_DNS', 'LOGICAL_DNS']) assert.deepEqual(validateConfig(cluster({ type })), [], type)
    assert.deepEqual(validateConfig({ listener: { rateLimit: { maxTokens: 1, fillInterval: '1s', global: { redis: 'redis://127.0.0.1:6379', requestsPerUnit: 1, unit: 'SECOND' } } } }), [])
    // Mixed case is neither spelling.
    assert.equal(validateConfig(cluster({ loadBalancer: 'Round_Robin' }))[0]?.code, 'INVALID_VALUE')
  })

  test('the mesh runs them as the lower case: RING_HASH is sticky per hash key, ROUND_ROBIN takes turns', async () => {
    const hashed = createMesh({ config: cluster({ loadBalancer: 'RING_HASH', type: 'STATIC' }) })
    try {
      assert.deepEqual([hashed.config.clusters?.[0]?.loadBalancer, hashed.config.clusters?.[0]?.type], ['ring_hash', 'static'])
      for (const user of ['ann', 'bob', 'cid', 'dee']) {
        const seen = new Set<string>()
        for (let i = 0; i < 6; i++) {
          const res = await hashed.fetch('http://c/', { headers: { 'x-user': user } })
          seen.add(await res.text())
        }
        assert.equal(seen.size, 1, `${user} always lands on one endpoint`)
      }
    } finally {
      await hashed.close()
    }
    const rr = createMesh({ config: cluster({ loadBalancer: 'ROUND_ROBIN' }) })
    try {
      const got: string[] = []
      for (let i = 0; i < 6; i++) got.push((await (await rr.fetch('http://c/')).text()).split(' ')[0] as string)
      assert.equal(new Set(got.slice(0, 3)).size, 3, `three endpoints in turn: ${got.join(',')}`)
      assert.deepEqual(got.slice(3), got.slice(0, 3))
    } finally {
      await rr.close()
    }
  })
})

describe('a route prefix without a leading slash', () => {
  test('is valid (Envoy accepts it) but warned about: lintConfig, a process warning, sidecarless validate', async () => {
    const config: MeshConfig = { virtualHosts: [{ name: 'v', domains: ['v'], routes: [{ match: { prefix: 'api' }, directResponse: { status: 200 } }] }] }
    assert.deepEqual(validateConfig(config), [])
    assert.deepEqual(lintConfig(config), [{ path: 'virtualHosts[0].routes[0].match.prefix', code: 'PREFIX_WITHOUT_SLASH', message: '"api" does not start with /, so no request path matches it; did you mean "/api"?' }])
    const warnings: { code?: string; message: string }[] = []
    const listen = (w: Error & { code?: string }): void => {
      warnings.push({ code: w.code, message: w.message })
    }
    process.on('warning', listen)
    try {
      const mesh = createMesh({ config })
      await new Promise((r) => setImmediate(r))
      await mesh.close()
    } finally {
      process.off('warning', listen)
    }
    const w = warnings.find((x) => x.code === 'SIDECARLESS_CONFIG_WARNING')
    assert.ok(w !== undefined, JSON.stringify(warnings))
    assert.match(w.message, /virtualHosts\[0\]\.routes\[0\]\.match\.prefix: PREFIX_WITHOUT_SLASH "api" does not start with \//)

    const path = file('prefix.yaml', 'virtualHosts:\n  - name: v\n    domains: [ v ]\n    routes:\n      - match: { prefix: api }\n        directResponse: { status: 200 }\n')
    const cli = start(process.execPath, ['dist/cli/main.js', 'validate', path])
    assert.equal((await cli.exited()).code, 0, cli.stdout())
    assert.match(cli.stdout(), new RegExp(`${path}:5:18: warning: virtualHosts\\[0\\]\\.routes\\[0\\]\\.match\\.prefix: PREFIX_WITHOUT_SLASH`))
    const strict = start(process.execPath, ['dist/cli/main.js', 'validate', '--strict', path])
    assert.equal((await strict.exited()).code, 1, 'with --strict a warning fails the file')
  })
})

describe('durations', () => {
  test('days: 1d, 1d12h; a bare number is milliseconds', async () => {
    const mesh = createMesh({ config: { clusters: [{ name: 'c', endpoints: [{ address: ups[0]!.address }], outlierDetection: { baseEjectionTime: '12h', maxEjectionTime: '1d' }, idleTimeout: '1d12h', connectTimeout: 250 }] } })
    assert.deepEqual(mesh.config.clusters?.[0]?.outlierDetection, { baseEjectionTime: '12h', maxEjectionTime: '1d' })
    await mesh.close()
    assert.deepEqual(validateConfig({ clusters: [{ name: 'c', idleTimeout: '2d' }] }), [])
  })
})

describe('file:line:column for problems in a config file', () => {
  const BAD = 'clusters:\n  - name: c\n    endpoints: [ { address: "127.0.0.1:9" } ]\n    loadBalancer: roundRobin\nvirtualHosts:\n  - name: v\n    domains: [ v ]\n    routes:\n      - match: { prefix: / }\n        route: { cluster: nope }\n'

  test('createMesh and mesh.update: each issue carries its location, and the message shows it', async () => {
    const path = file('bad.yaml', BAD)
    assert.throws(() => createMesh({ config: path }), (err: unknown) => {
      assert.ok(err instanceof ConfigError)
      assert.deepEqual(err.issues.map((i) => [i.path, i.location?.line, i.location?.column]), [
        ['clusters[0].loadBalancer', 4, 5],
        ['virtualHosts[0].routes[0].route.cluster', 10, 18],
      ])
      assert.match(err.message, new RegExp(`${path}:4:5: clusters\\[0\\]\\.loadBalancer: INVALID_VALUE`))
      return true
    })
    const mesh = createMesh({})
    try {
      await assert.rejects(mesh.update(path), (err: unknown) => err instanceof ConfigError && err.issues[0]?.location?.line === 4)
    } finally {
      await mesh.close()
    }
    // A config given as an object has no file to point into.
    assert.throws(() => createMesh({ config: { clusters: [{ name: 'c', loadBalancer: 'x' as 'random' }] } }), (err: unknown) => err instanceof ConfigError && err.issues[0]?.location === undefined)
  })

  test('JSON files too, and a valid file loads as before', () => {
    const json = file('bad.json', '{\n  "clusters": [\n    { "name": "c", "connectTimeout": "5 sec" }\n  ]\n}\n')
    assert.throws(() => loadConfig(json), (err: unknown) => err instanceof ConfigError && err.issues[0]?.location?.line === 3 && err.issues[0]?.location?.column === 20)
    const ok = file('ok.yaml', 'clusters:\n  - { name: c, endpoints: [ { address: "127.0.0.1:9" } ] }\n')
    assert.equal(loadConfig(ok).config.clusters?.[0]?.name, 'c')
  })

  test('under sidecarless/register, the refused config is printed with its lines', async () => {
    const path = file('register-bad.yaml', BAD)
    const app = start(process.execPath, ['--import', 'sidecarless/register', 'test/fixtures/apps/esm-http.mjs'], { SIDECARLESS_CONFIG: path })
    assert.equal((await app.exited()).code, 1)
    assert.match(app.stderr(), new RegExp(`${path}:4:5: clusters\\[0\\]\\.loadBalancer: INVALID_VALUE`))
    assert.match(app.stderr(), new RegExp(`${path}:10:18: virtualHosts\\[0\\]\\.routes\\[0\\]\\.route\\.cluster: UNKNOWN_CLUSTER`))
  })
})

describe('the command line', () => {
  test('sidecarless ca --help (and -h) prints the usage and exits 0, like every subcommand', async () => {
    for (const args of [['ca', '--help'], ['ca', '-h'], ['ca', 'help'], ['validate', '--help'], ['proxy', '--help']]) {
      const p = start(process.execPath, ['dist/cli/main.js', ...args])
      assert.equal((await p.exited()).code, 0, `${args.join(' ')}: ${p.stderr()}`)
      assert.match(p.stdout(), /^Usage: sidecarless /, args.join(' '))
    }
    const none = start(process.execPath, ['dist/cli/main.js', 'ca'])
    assert.equal((await none.exited()).code, 2, 'no subcommand is still a usage error')
  })
})

describe('package-lock.json', () => {
  test('its root package entry says what package.json says, so npm install leaves it unchanged', () => {
    const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as Record<string, unknown>
    const lock = JSON.parse(readFileSync(join(root, 'package-lock.json'), 'utf8')) as { name: string; version: string; packages: Record<string, Record<string, unknown>> }
    const entry = lock.packages[''] ?? {}
    assert.equal(lock.name, pkg['name'])
    assert.equal(lock.version, pkg['version'])
    for (const key of ['name', 'version', 'license', 'engines', 'dependencies', 'devDependencies', 'peerDependencies', 'optionalDependencies', 'bin']) {
      assert.deepEqual(entry[key], pkg[key], `packages[""].${key} of package-lock.json differs from package.json (run npm install and commit the lockfile)`)
    }
  })
})
