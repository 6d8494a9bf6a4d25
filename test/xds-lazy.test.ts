/**
 * xDS's dependencies are optional and lazy: importing the package (and creating a mesh)
 * loads neither @grpc/grpc-js nor protobufjs; they load when xDS is used. Checked in a
 * fresh process, from the CommonJS module cache those imports fill.
 */
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import { describe, it } from 'node:test'
import { fileURLToPath } from 'node:url'

const index = fileURLToPath(new URL('../src/index.js', import.meta.url))

/** Runs `body` (an ES module) in a fresh node; returns the packages in its CommonJS cache. */
function loadedPackages(body: string): string[] {
  const script = `
import { createRequire } from 'node:module'
${body}
const cache = Object.keys(createRequire(import.meta.url).cache)
const names = new Set()
for (const file of cache) {
  const m = /node_modules\\/((?:@[^/]+\\/)?[^/]+)/.exec(file)
  if (m) names.add(m[1])
}
console.log(JSON.stringify([...names]))
`
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' })
  return JSON.parse(out.trim().split('\n').at(-1) as string) as string[]
}

describe('xDS dependencies are optional and loaded lazily', () => {
  it('importing sidecarless and creating a mesh loads neither @grpc/grpc-js nor protobufjs', () => {
    const loaded = loadedPackages(`
const { createMesh } = await import(${JSON.stringify(index)})
const mesh = createMesh({ config: { clusters: [{ name: 'c', endpoints: [{ address: '127.0.0.1:1' }] }] } })
await mesh.close()`)
    assert.ok(loaded.includes('undici'), `the probe sees CommonJS packages: ${loaded.join(', ')}`)
    assert.ok(!loaded.includes('@grpc/grpc-js'), `@grpc/grpc-js was loaded: ${loaded.join(', ')}`)
    assert.ok(!loaded.includes('protobufjs'), `protobufjs was loaded: ${loaded.join(', ')}`)
  })

  it('creating a control plane loads them', () => {
    const loaded = loadedPackages(`
const { createControlPlane } = await import(${JSON.stringify(index)})
const cp = await createControlPlane({ config: { clusters: [{ name: 'c', endpoints: [{ address: '127.0.0.1:1' }] }] }, listen: '127.0.0.1:0', log: () => {} })
await cp.close()`)
    assert.ok(loaded.includes('@grpc/grpc-js'), loaded.join(', '))
    assert.ok(loaded.includes('protobufjs'), loaded.join(', '))
  })

  it('the package\'s type declarations never name @grpc/grpc-js or protobufjs', () => {
    // Users who skip the optional dependencies and check library types must still compile.
    const seen = new Set<string>()
    const named: string[] = []
    const walk = (file: string): void => {
      if (seen.has(file)) return
      seen.add(file)
      for (const m of readFileSync(file, 'utf8').matchAll(/from '([^']+)'/g)) {
        const spec = m[1] as string
        if (spec.startsWith('.')) walk(resolve(dirname(file), spec.replace(/\.js$/, '.d.ts')))
        else if (/^(@grpc\/|protobufjs)/.test(spec)) named.push(`${file}: ${spec}`)
      }
    }
    walk(index.replace(/\.js$/, '.d.ts'))
    assert.ok(seen.size > 20, `walked ${seen.size} declaration files`)
    assert.deepEqual(named, [])
  })
})
