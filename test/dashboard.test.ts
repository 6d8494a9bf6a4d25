/**
 * dashboards/sidecarless.json: a Grafana dashboard for the `sidecarless_*` series. It must
 * parse, and every series it queries must exist in what a mesh exposes, with the labels the
 * queries select and group by (a renamed metric would otherwise leave a blank panel).
 */
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { after, before, describe, test } from 'node:test'
import { request } from 'undici'
import { createMesh, type Mesh } from '../src/index.js'
import { parseExposition, type ParsedFamily } from './helpers/exposition.js'
import { startUpstream, type Upstream } from './helpers/upstream.js'

const dashboard = JSON.parse(readFileSync(new URL('../../dashboards/sidecarless.json', import.meta.url), 'utf8')) as {
  title: string
  uid: string
  panels: { id: number; type: string; gridPos: { w: number; h: number; x: number; y: number }; targets?: { expr: string }[] }[]
  templating: { list: { name: string; definition?: string }[] }
}

/** Every PromQL expression of the dashboard: panel targets and template variables. */
const exprs = [
  ...dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr)),
  ...dashboard.templating.list.flatMap((v) => (v.definition === undefined ? [] : [v.definition])),
]

/** Labels Prometheus adds at scrape (not in the exposition) and histogram bucket bounds. */
const SCRAPE_LABELS = new Set(['job', 'instance', 'le'])

describe('dashboards/sidecarless.json', () => {
  let backend: Upstream
  let mesh: Mesh
  let families: Map<string, ParsedFamily>

  before(async () => {
    backend = await startUpstream('backend', (req, res) => {
      if (req.url === '/fail') res.writeHead(503).end('down')
      else res.end('ok')
    })
    mesh = createMesh({
      service: 'shop',
      labels: { version: 'v1' },
      config: {
        clusters: [{
          name: 'backend',
          endpoints: [{ address: backend.address, labels: { version: 'v1' } }],
          subsets: [{ name: 'v1', labels: { version: 'v1' } }],
          outlierDetection: { consecutive5xx: 100 },
          circuitBreakers: { errorRate: { volumeThreshold: 1000 } },
        }],
        virtualHosts: [{ name: 'backend', domains: ['backend'], routes: [{ match: { prefix: '/' }, route: { cluster: 'backend', subset: 'v1', retryPolicy: { retryOn: ['5xx'], numRetries: 1 } } }] }],
        listener: { routes: [{ name: 'api', match: { prefix: '/api' } }], rateLimit: { maxTokens: 4, fillInterval: '1h' } },
      },
    })
    const server = mesh.createServer(async (req, res) => {
      const r = await mesh.fetch(`http://backend${req.url === '/api/fail' ? '/fail' : '/ok'}`)
      res.writeHead(r.status).end(await r.text())
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    const url = `http://127.0.0.1:${(server.address() as { port: number }).port}`
    for (const p of ['/api/1', '/api/fail', '/other', '/api/2', '/api/3', '/api/4']) await (await request(`${url}${p}`)).body.text()
    await new Promise((r) => setTimeout(r, 20))
    families = parseExposition(mesh.metrics.prometheus())
    server.closeAllConnections()
    server.close()
  })
  after(async () => {
    await mesh.close()
    await backend.close()
  })

  test('parses as a Grafana dashboard: unique panel ids, a grid, a query per panel, templated data source', () => {
    assert.equal(dashboard.uid, 'sidecarless-mesh')
    const ids = dashboard.panels.map((p) => p.id)
    assert.equal(new Set(ids).size, ids.length, 'unique panel ids')
    for (const p of dashboard.panels) {
      assert.ok(p.gridPos.x + p.gridPos.w <= 24, `panel ${p.id} fits the 24-column grid`)
      if (p.type !== 'row') assert.ok((p.targets ?? []).length > 0, `panel ${p.id} queries something`)
    }
    assert.ok(dashboard.templating.list.some((v) => v.name === 'datasource'))
    assert.ok(exprs.length >= 20)
  })

  test('every metric it queries is in the exposition, with the labels it uses', () => {
    const checked = new Set<string>()
    for (const expr of exprs) {
      // metric{selectors} or metric[range] or metric followed by a space/paren/comma.
      for (const m of expr.matchAll(/\b((?:sidecarless|istio|process|nodejs)_[a-z0-9_]+)(\{[^}]*\})?/g)) {
        const sample = m[1] as string
        const family = families.get(sample) ?? families.get(sample.replace(/_(bucket|sum|count)$/, ''))
        assert.ok(family, `${sample} (in ${expr}) is not exposed; families: ${[...families.keys()].join(', ')}`)
        checked.add(family.name)
        const selected = [...(m[2] ?? '').matchAll(/([a-z_]+)\s*(?:=~|!~|!=|=)/g)].map((x) => x[1] as string)
        const grouped = [...expr.matchAll(/by \(([^)]*)\)/g)].flatMap((x) => (x[1] as string).split(',').map((s) => s.trim()))
        const samples = family.samples.filter((s) => s.name === sample || family.type !== 'histogram')
        assert.ok(samples.length > 0, `${sample} has samples after the traffic`)
        const have = new Set(samples.flatMap((s) => Object.keys(s.labels)))
        for (const label of [...selected, ...grouped]) {
          if (SCRAPE_LABELS.has(label)) continue
          assert.ok(have.has(label), `${sample} has no label ${label} (used in ${expr}); it has ${[...have].join(', ')}`)
        }
      }
    }
    assert.ok(checked.size >= 18, `${checked.size} families checked`)
  })
})
