/**
 * A CONNECT or an upgrade the mesh answers itself (no route: 404 `NR`) is given to the
 * caller's handler through `onHeaders`. undici's own CONNECT and upgrade handlers throw there
 * ("bad connect", "bad upgrade"), and undici fails the request with that error: so must the
 * mesh, instead of an uncaught exception and a promise that never settles (found by the
 * endpoint pool review; red before the fix in local-reply.ts).
 */
import assert from 'node:assert/strict'
import { once } from 'node:events'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { describe, it } from 'node:test'
import { upgrade } from 'undici'
import { createMesh } from '../src/index.js'

async function settles<T>(p: Promise<T>, what: string, ms = 5_000): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  try {
    return await Promise.race([p, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what} did not settle within ${ms} ms`)), ms)))])
  } finally {
    clearTimeout(timer)
  }
}

describe('a CONNECT or upgrade the mesh answers itself (no route)', () => {
  it('rejects the caller\'s connect() and upgrade(), with no uncaught exception', async () => {
    const uncaught: Error[] = []
    const onUncaught = (err: Error): void => {
      uncaught.push(err)
    }
    process.on('uncaughtException', onUncaught)
    const server = http.createServer((req, res) => res.end('plain'))
    server.listen(0, '127.0.0.1')
    await once(server, 'listening')
    const mesh = createMesh({
      service: 'productpage',
      config: {
        clusters: [{ name: 'up', endpoints: [{ address: `http://127.0.0.1:${(server.address() as AddressInfo).port}` }] }],
        // Only "/" paths route: an authority-form CONNECT target and "/nowhere" find none.
        virtualHosts: [{ name: 'up', domains: ['up', 'up:443'], routes: [{ match: { path: '/' }, route: { cluster: 'up' } }] }],
      },
    })
    try {
      const failsAlone = (err: Error): boolean => !/did not settle/.test(err.message)
      await assert.rejects(settles(mesh.dispatcher.connect({ origin: 'http://up', path: 'up:443' }), 'connect()'), failsAlone)
      await assert.rejects(settles(upgrade('http://up/nowhere', { dispatcher: mesh.dispatcher, protocol: 'echo' }), 'upgrade()'), failsAlone)
      await new Promise((r) => setImmediate(r))
      assert.deepEqual(uncaught.map((e) => e.message), [])
    } finally {
      process.off('uncaughtException', onUncaught)
      await mesh.close()
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    }
  })
})
