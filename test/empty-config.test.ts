/**
 * An empty config is refused like any invalid one (issue 11, item 2): `mesh.update(null)`,
 * `update(undefined)`, `createMesh({ config: null })`, and a file with no document (empty,
 * blank, comment-only YAML, blank JSON) are ConfigErrors with `EMPTY_CONFIG` at the root;
 * the last good config stays, `configRejected` fires, the register hook and
 * `sidecarless validate` report it. `createMesh()` without a `config` option still starts
 * with the empty config `{}`, and `{}` itself stays a valid config.
 */
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync, truncateSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { ConfigError, createMesh, type Mesh, type MeshConfig } from '../src/index.js'
import { start, stopAll } from './helpers/spawned.js'

let dir: string
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'sidecarless-empty-'))
})
after(() => {
  stopAll()
  rmSync(dir, { recursive: true, force: true })
})

function file(name: string, text: string): string {
  const path = join(dir, name)
  writeFileSync(path, text)
  return path
}

/** A config whose listener denies /admin*. */
const denyAdmin: MeshConfig = {
  listener: { authorization: [{ name: 'no-admin', action: 'DENY', rules: [{ to: [{ operation: { paths: ['/admin*'] } }] }] }] },
}

function isEmptyConfigError(err: unknown): boolean {
  assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${String(err)}`)
  assert.equal(err.code, 'SIDECARLESS_ERR_INVALID_CONFIG')
  assert.deepEqual(err.issues.map((i) => [i.path, i.code]), [['', 'EMPTY_CONFIG']])
  assert.match(err.issues[0]!.message, /\{\}/, 'the message says how to write a config with nothing in it')
  return true
}

describe('mesh.update with an empty config', () => {
  let mesh: Mesh
  before(() => {
    mesh = createMesh({ config: denyAdmin })
  })
  after(async () => {
    await mesh.close()
  })

  const empties: [string, () => unknown][] = [
    ['null', () => null],
    ['undefined', () => undefined],
    ['an empty file', () => file('empty.yaml', '')],
    ['a blank file', () => file('blank.yaml', '\n   \n\t\n')],
    ['a comment-only YAML file', () => file('comments.yaml', '# the config moved\n# see mesh-v2.yaml\n')],
    ['a YAML file holding only a document marker', () => file('marker.yaml', '---\n')],
    ['a YAML file holding null', () => file('null.yaml', 'null\n')],
    ['an empty JSON file', () => file('empty.json', '')],
    ['a JSON file holding null', () => file('null.json', 'null')],
  ]
  for (const [label, make] of empties) {
    test(`${label}: rejected with EMPTY_CONFIG, configRejected emitted, the last good config stays`, async () => {
      const version = mesh.version
      const config = mesh.config
      const rejected: ConfigError[] = []
      const onRejected = (err: ConfigError): void => { rejected.push(err) }
      mesh.on('configRejected', onRejected)
      try {
        await assert.rejects(mesh.update(make() as MeshConfig), isEmptyConfigError)
        assert.equal(rejected.length, 1)
        assert.equal(mesh.version, version)
        assert.equal(mesh.config, config)
        assert.equal(mesh.config.listener?.authorization?.[0]?.name, 'no-admin')
      } finally {
        mesh.off('configRejected', onRejected)
      }
    })
  }

  test('a file with no document names the file in the error', async () => {
    const path = file('named.yaml', '# nothing\n')
    await assert.rejects(mesh.update(path), (err: unknown) => isEmptyConfigError(err) && (err as Error).message.includes(path))
  })

  test('{} is a config with nothing in it: applied', async () => {
    const applied = await mesh.update({})
    assert.deepEqual(applied.config, {})
    await mesh.update(denyAdmin)
  })
})

describe('createMesh and an empty config', () => {
  test('no config option: the documented empty start (every request passes through)', async () => {
    for (const mesh of [createMesh(), createMesh({}), createMesh({ service: 'a' })]) {
      assert.deepEqual(mesh.config, {})
      assert.equal(mesh.route({ url: 'http://anything/x' }).kind, 'passthrough')
      await mesh.close()
    }
  })

  test('config: null, config: undefined, an empty file: a ConfigError', () => {
    assert.throws(() => createMesh({ config: null as unknown as MeshConfig }), isEmptyConfigError)
    assert.throws(() => createMesh({ config: undefined }), isEmptyConfigError)
    assert.throws(() => createMesh({ config: file('start-empty.yaml', '') }), isEmptyConfigError)
    assert.throws(() => createMesh({ config: file('start-comments.yml', '# todo\n') }), isEmptyConfigError)
  })
})

describe('sidecarless validate and the register hook refuse an empty file', () => {
  test('sidecarless validate: invalid, EMPTY_CONFIG at <root>, exit 1', async () => {
    const path = file('validate-empty.yaml', '# only a comment\n')
    const cli = start(process.execPath, ['dist/cli/main.js', 'validate', path])
    const { code } = await cli.exited()
    assert.equal(code, 1, cli.stdout() + cli.stderr())
    assert.match(cli.stdout(), /<root>: EMPTY_CONFIG /)
    assert.match(cli.stdout(), /invalid: 1 problem/)
  })

  test('register: an empty config at start exits 1 with EMPTY_CONFIG on stderr', async () => {
    const path = file('register-empty.yaml', '')
    const app = start(process.execPath, ['--import', 'sidecarless/register', 'test/fixtures/apps/esm-http.mjs'], { SIDECARLESS_CONFIG: path })
    const { code } = await app.exited()
    assert.equal(code, 1)
    assert.match(app.stderr(), /<root>: EMPTY_CONFIG /)
  })

  test('register: truncating the watched file is rejected; the DENY stays in force (403, not 200)', async () => {
    const path = file('watched.yaml', `listener:
  authorization:
    - name: no-admin
      action: DENY
      rules: [ { to: [ { operation: { paths: [ "/admin*" ] } } ] } ]
`)
    const app = start(process.execPath, ['--import', 'sidecarless/register', 'test/fixtures/apps/esm-http.mjs'], { SIDECARLESS_CONFIG: path })
    try {
      const port = Number((await app.waitFor(/"port":(\d+)/))[1])
      const admin = async (): Promise<number> => {
        const res = await fetch(`http://127.0.0.1:${port}/admin`)
        await res.arrayBuffer()
        return res.status
      }
      assert.equal(await admin(), 403)
      truncateSync(path, 0)
      await app.waitFor(/watched\.yaml rejected; the previous config stays in force/, 20_000, 'stderr')
      assert.match(app.stderr(), /<root>: EMPTY_CONFIG /)
      assert.doesNotMatch(app.stderr(), /applied \(version 2\)/)
      assert.equal(await admin(), 403, 'the authorization policy is still in force')
    } finally {
      app.child.kill('SIGKILL')
    }
  })
})
