/**
 * `yaml` and `re2js` load on first use: importing the package and running a mesh whose
 * config is built in code, with no `safeRegex`, loads neither (each costs a process about
 * 0.8 MB of RSS); reading a YAML file loads `yaml`, and a regex route `re2js`. Checked in a
 * fresh process that records every module it resolves (ES and CommonJS alike).
 */
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, test } from 'node:test'
import { fileURLToPath } from 'node:url'

const index = fileURLToPath(new URL('../src/index.js', import.meta.url))
const dir = mkdtempSync(join(tmpdir(), 'lazy-deps-'))
after(() => rmSync(dir, { recursive: true, force: true }))

/** Runs `body` (an ES module) in a fresh node; returns the packages it loaded. */
function loadedPackages(body: string): string[] {
  const script = `
import { registerHooks } from 'node:module'
const names = new Set()
registerHooks({
  resolve(specifier, context, next) {
    const r = next(specifier, context)
    const m = /node_modules\\/((?:@[^/]+\\/)?[^/]+)/.exec(r.url)
    if (m) names.add(m[1])
    return r
  },
})
${body}
console.log(JSON.stringify([...names]))
`
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' })
  return JSON.parse(out.trim().split('\n').at(-1) as string) as string[]
}

const cluster = "{ name: 'c', endpoints: [{ address: 'http://127.0.0.1:1' }] }"

test('a mesh built in code, without safeRegex, loads neither yaml nor re2js', () => {
  const loaded = loadedPackages(`
const { createMesh } = await import(${JSON.stringify(index)})
const mesh = createMesh({ config: { clusters: [${cluster}], virtualHosts: [{ name: 'c', domains: ['c'], routes: [{ match: { prefix: '/' }, route: { cluster: 'c' } }] }] } })
await mesh.close()`)
  assert.ok(loaded.includes('undici'), `the probe sees packages: ${loaded.join(', ')}`)
  assert.ok(!loaded.includes('yaml'), `yaml was loaded: ${loaded.join(', ')}`)
  assert.ok(!loaded.includes('re2js'), `re2js was loaded: ${loaded.join(', ')}`)
})

test('a YAML config file loads yaml; a safeRegex route loads re2js', () => {
  const file = join(dir, 'mesh.yaml')
  writeFileSync(file, `clusters: [ { name: c, endpoints: [ { address: "http://127.0.0.1:1" } ] } ]
virtualHosts:
  - { name: c, domains: [ c ], routes: [ { match: { safeRegex: "/items/(a|b)+" }, route: { cluster: c } } ] }
`)
  const loaded = loadedPackages(`
const { createMesh } = await import(${JSON.stringify(index)})
const mesh = createMesh({ config: ${JSON.stringify(file)} })
await mesh.close()`)
  assert.ok(loaded.includes('yaml'), loaded.join(', '))
  assert.ok(loaded.includes('re2js'), loaded.join(', '))
})
