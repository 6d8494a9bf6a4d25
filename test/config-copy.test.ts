/**
 * The copies a config goes through on its way to a snapshot: a config given in code is read
 * once and copied once (validation's copy, frozen, is what the mesh compiles), fields set to
 * null or undefined are dropped from it, and a Proxy cannot slip values past the copy.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { createMesh, loadConfig, validateConfig } from '../src/index.js'
import type { MeshConfig } from '../src/index.js'

function deepFrozen(value: unknown): boolean {
  if (typeof value !== 'object' || value === null) return true
  if (!Object.isFrozen(value)) return false
  return Object.values(value).every(deepFrozen)
}

describe('config copies', () => {
  it('a config from code is read once; the mesh applies a deep-frozen copy without the fields set to null or undefined', async () => {
    let reads = 0
    const cluster = { get name(): string { reads++; return 'a' }, type: null, loadBalancer: undefined }
    const config = { clusters: [cluster], virtualHosts: [{ name: 'v', domains: ['v'], routes: [{ match: { prefix: '/' }, route: { cluster: 'a', timeout: null } }] }] }
    const mesh = createMesh({ config: config as unknown as MeshConfig })
    try {
      assert.equal(reads, 1, 'each value of the input is read once')
      const applied = mesh.config.clusters?.[0] as Record<string, unknown>
      assert.deepEqual(Object.keys(applied), ['name'])
      assert.equal('timeout' in (mesh.config.virtualHosts?.[0]?.routes[0]?.route as object), false)
      assert.ok(deepFrozen(mesh.config), 'the applied config is frozen throughout')
      // The input is untouched.
      assert.equal(cluster.type, null)
      assert.equal(Object.isFrozen(config), false)
    } finally {
      await mesh.close()
    }
  })

  it('loadConfig gives a valid config as plain data the caller may change, which validates and applies', async () => {
    const loaded = loadConfig({ clusters: [{ name: 'a', endpoints: [{ address: 'http://127.0.0.1:1' }], type: null }] } as unknown as MeshConfig)
    assert.equal(Object.isFrozen(loaded.config), false)
    // A user's edit before the mesh starts, as the README's examples do.
    loaded.config.clusters?.[0]?.endpoints?.push({ address: 'http://127.0.0.1:2' })
    loaded.config.clusters?.[0]?.endpoints?.pop()
    assert.deepEqual(validateConfig(loaded.config), [])
    const mesh = createMesh({ config: loaded.config })
    try {
      assert.deepEqual(mesh.config, { clusters: [{ name: 'a', endpoints: [{ address: 'http://127.0.0.1:1' }] }] })
      const applied = await mesh.update(mesh.config)
      assert.equal(applied.version, 2)
      assert.deepEqual(applied.config, loaded.config)
      assert.ok(deepFrozen(mesh.config), 'the mesh keeps its own frozen copy')
    } finally {
      await mesh.close()
    }
  })

  it('an invalid config object is still refused with every problem, its values read by validation', () => {
    let reads = 0
    const config = { clusters: [{ get name(): string { reads++; return '' } }], bogus: 1 }
    assert.throws(() => createMesh({ config: config as unknown as MeshConfig }), (err: unknown) => {
      const issues = (err as { issues?: { path: string; code: string }[] }).issues ?? []
      assert.deepEqual(issues.map((i) => [i.path, i.code]), [['clusters[0].name', 'INVALID_VALUE'], ['bogus', 'UNKNOWN_FIELD']])
      return true
    })
    assert.ok(reads >= 1)
  })

  it('a list Proxy that claims a length that is not a count is copied as the items it gives (none), not as that value', async () => {
    const lying = new Proxy([], { get: (t, k) => (k === 'length' ? 'x' : Reflect.get(t, k) as unknown) })
    const mesh = createMesh({ config: { clusters: lying } as unknown as MeshConfig })
    try {
      assert.deepEqual(mesh.config.clusters, [])
    } finally {
      await mesh.close()
    }
  })
})
