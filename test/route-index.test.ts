// The route index must never change which route wins: compare it with a full scan on
// random route tables and random requests.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { createMesh, type RouteConfig } from '../src/index.js'
import { RequestView } from '../src/http/request-view.js'
import { findRoute } from '../src/router/router.js'
import type { CompiledRoute } from '../src/router/route-action.js'
import { prng as rng } from './helpers/prng.js'


const SEGMENTS = ['a', 'b', 'api', 'k1', 'k10', 'A', 'x?y']

test('the segment index picks the same route as a full scan', () => {
  const r = rng(42)
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)] as T
  for (let table = 0; table < 40; table++) {
    const routes: RouteConfig[] = []
    const n = 16 + Math.floor(r() * 40)
    for (let i = 0; i < n; i++) {
      const seg = pick(SEGMENTS)
      const kind = Math.floor(r() * 7)
      const match: RouteConfig['match'] =
        kind === 0 ? { prefix: `/${seg}/` }
          : kind === 1 ? { prefix: `/${seg}` }
            : kind === 2 ? { path: `/${seg}` }
              : kind === 3 && !seg.includes('?') ? { pathSeparatedPrefix: `/${seg}` }
                : kind === 4 ? { safeRegex: `/${seg.replace('?', '\\?')}/[a-z]+` }
                  : kind === 5 ? { prefix: `/${seg}/`, caseSensitive: false }
                    : { prefix: '/' }
      if (r() < 0.2) match.headers = [{ name: 'x-h', exact: '1' }]
      routes.push({ name: `r${i}`, match, directResponse: { status: 200 } })
    }
    const mesh = createMesh({ config: { virtualHosts: [{ name: 'v', domains: ['v'], routes }] } })
    const vhost = mesh.snapshot.virtualHosts.get('v')!
    assert.ok(vhost.index !== null, 'large tables are indexed')
    const scan = (view: RequestView): CompiledRoute | undefined => vhost.routes.find((x) => x.match.matches(view))
    for (let q = 0; q < 300; q++) {
      const path = `/${pick(SEGMENTS)}${pick(['', '/', '/z', '/abc', '?q=1', 'x/y', '#f'])}`
      const headers = r() < 0.5 ? { 'x-h': '1' } : {}
      const view = new RequestView('GET', path, 'v', 'http', headers)
      assert.equal(findRoute(vhost, view)?.name, scan(view)?.name, `table ${table}, ${path}`)
    }
    void mesh.close()
  }
})
