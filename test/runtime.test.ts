/**
 * Supported Node.js versions: the verdict per version, and what a user on an end-of-life
 * Node.js sees when a Node 20 binary is at hand (`.ci/run` passes the machine's own as
 * SIDECARLESS_TEST_NODE20 when it is one).
 */
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { test } from 'node:test'
import { promisify } from 'node:util'
import { runtimeSupport, SUPPORTED_NODE_LINES } from '../src/runtime.js'
import { isMeshError } from '../src/errors.js'
import { checkRuntime } from '../src/runtime.js'
import { root } from './helpers/spawned.js'

const run = promisify(execFile)

test('22.12+, 24 and 26 are supported; the suite runs on the version it is run by', () => {
  assert.deepEqual(SUPPORTED_NODE_LINES, [22, 24, 26])
  for (const v of ['22.12.0', '22.23.3', '24.0.0', '24.21.0', '26.10.0', '27.0.0']) assert.equal(runtimeSupport(v).level, 'supported', v)
  assert.equal(runtimeSupport(process.versions.node).level, process.versions.node.startsWith('20.') ? 'end-of-life' : 'supported')
})

test('Node 20.19+ and 22.0-22.11 run with a warning that names the supported lines', () => {
  for (const v of ['20.19.0', '20.20.2', '22.0.0', '22.11.9']) {
    const s = runtimeSupport(v)
    assert.equal(s.level, 'end-of-life', v)
    assert.match(s.message, /supported: 22, 24, 26/)
    assert.match(s.message, new RegExp(v.replaceAll('.', '\\.')))
  }
  assert.match(runtimeSupport('22.3.0').message, /--require sidecarless\/register/)
})

test('older Node.js is refused with a coded error, not a crash inside a dependency', () => {
  for (const v of ['20.18.3', '18.20.4', '16.0.0', 'garbage']) assert.equal(runtimeSupport(v).level, 'unsupported', v)
  assert.throws(() => checkRuntime('18.20.4'), (err: unknown) => isMeshError(err) && err.code === 'SIDECARLESS_ERR_UNSUPPORTED_RUNTIME' && /22\.12 or later/.test(err.message))
  assert.doesNotThrow(() => checkRuntime('24.0.0'))
})

const node20 = process.env['SIDECARLESS_TEST_NODE20']

test('on Node 20 the package loads, works and warns once', { skip: node20 === undefined ? 'SIDECARLESS_TEST_NODE20 is not set (.ci/run sets it to the machine\'s Node 20)' : false }, async () => {
  const script = `
    const { createMesh } = await import('./dist/index.js')
    await import('./dist/index.js')
    const mesh = createMesh({ config: { clusters: [] } })
    console.log('version', mesh.version)
    await mesh.close()
  `
  const { stdout, stderr } = await run(node20 as string, ['--input-type=module', '-e', script], { cwd: root })
  assert.match(stdout, /version 1/)
  const warnings = stderr.match(/SIDECARLESS_UNSUPPORTED_NODE/g) ?? []
  assert.equal(warnings.length, 1, stderr)
  assert.match(stderr, /past end of life/)
})
