/**
 * Debian's Prometheus scraping meshed services, queried with the PromQL of Istio's Grafana
 * dashboards: productpage → reviews (v1, v2), each workload's exposition served on a port of
 * its own, Prometheus started with a temporary config and data directory (scrape every 1s).
 * Skipped, with a message, where `prometheus` is not installed (CI installs it).
 */
import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { request } from 'undici'
import { serveMetrics, startProductpage, startReviews, type Workload } from './helpers/reviews-mesh.js'

const PROMETHEUS = ['/usr/bin/prometheus', '/usr/local/bin/prometheus'].find((p) => existsSync(p))
const skip = PROMETHEUS === undefined ? 'prometheus is not installed (apt-get install prometheus); .ci/run installs it' : false

async function freePort(): Promise<number> {
  const s = createServer()
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve))
  const port = (s.address() as { port: number }).port
  await new Promise<void>((resolve) => s.close(() => resolve()))
  return port
}

interface Vector { metric: Record<string, string>; value: [number, string] }

describe('Prometheus scrapes meshed workloads; Istio dashboard queries answer', { skip }, () => {
  let dir: string
  let prom: ChildProcess | undefined
  let promUrl: string
  let log = ''
  const workloads: Workload[] = []
  const targets: { close(): Promise<void> }[] = []
  let stop = false
  let traffic: Promise<void> | undefined

  before(async () => {
    const v1 = await startReviews('v1')
    const v2 = await startReviews('v2')
    const page = await startProductpage([{ url: v1.url, version: 'v1' }, { url: v2.url, version: 'v2' }])
    workloads.push(page, v1, v2)
    const ports: number[] = []
    for (const w of workloads) {
      const t = await serveMetrics(w.mesh)
      targets.push(t)
      ports.push(t.port)
    }
    dir = mkdtempSync(join(tmpdir(), 'sidecarless-prom-'))
    writeFileSync(join(dir, 'prometheus.yml'), [
      'global: { scrape_interval: 1s, evaluation_interval: 1s }',
      'scrape_configs:',
      '  - job_name: meshed',
      '    static_configs:',
      `      - targets: [${ports.map((p) => `'127.0.0.1:${p}'`).join(', ')}]`,
      '',
    ].join('\n'))
    const port = await freePort()
    promUrl = `http://127.0.0.1:${port}`
    prom = spawn(PROMETHEUS as string, [
      `--config.file=${join(dir, 'prometheus.yml')}`,
      `--storage.tsdb.path=${join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--log.level=warn',
    ], { stdio: ['ignore', 'ignore', 'pipe'] })
    prom.stderr?.setEncoding('utf8').on('data', (d: string) => (log += d))
    // Steady traffic through productpage while Prometheus scrapes.
    traffic = (async () => {
      while (!stop) {
        await (await request(`${page.url}/productpage`)).body.text()
        await new Promise((r) => setTimeout(r, 20))
      }
    })()
  })

  after(async () => {
    stop = true
    await traffic
    prom?.kill('SIGTERM')
    if (prom !== undefined && prom.exitCode === null) await new Promise((r) => prom!.once('exit', r))
    for (const t of targets) await t.close()
    for (const w of workloads) await w.close()
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true })
  })

  /** Runs an instant query until `accept` takes its result (Prometheus needs a few scrapes for rate()). */
  async function query(promql: string, accept: (v: Vector[]) => boolean, timeoutMs = 12_000): Promise<Vector[]> {
    const deadline = Date.now() + timeoutMs
    let last: unknown
    for (;;) {
      try {
        const res = await request(`${promUrl}/api/v1/query?query=${encodeURIComponent(promql)}`)
        const body = await res.body.json() as { status: string; data?: { result: Vector[] } }
        last = body
        if (body.status === 'success' && accept(body.data!.result)) return body.data!.result
      } catch (err) {
        last = err
      }
      if (Date.now() > deadline) assert.fail(`no acceptable answer to ${promql} within ${timeoutMs} ms; last: ${JSON.stringify(last)}; prometheus log: ${log.slice(-2000)}`)
      await new Promise((r) => setTimeout(r, 250))
    }
  }

  test('every target is up', async () => {
    const up = await query('up{job="meshed"}', (v) => v.length === 3 && v.every((s) => s.value[1] === '1'))
    assert.equal(up.length, 3)
  })

  test('sum(rate(istio_requests_total{reporter="destination"}[1m])) by (destination_version): both versions serve', async () => {
    const v = await query('sum(rate(istio_requests_total{reporter="destination"}[1m])) by (destination_version)',
      (r) => r.length === 2 && r.every((s) => Number(s.value[1]) > 0))
    assert.deepEqual(v.map((s) => s.metric.destination_version).sort(), ['v1', 'v2'])
  })

  test('the Istio service and workload dashboards\' queries: by source, success rate, latency quantile', async () => {
    const bySource = await query('sum(irate(istio_requests_total{reporter="destination",destination_service=~"reviews.default.svc.cluster.local"}[1m])) by (source_workload, source_workload_namespace)',
      (r) => r.length === 1 && Number(r[0]!.value[1]) > 0)
    assert.deepEqual(bySource[0]!.metric, { source_workload: 'productpage-v1', source_workload_namespace: 'default' })
    const success = await query('sum(rate(istio_requests_total{reporter="source",source_workload="productpage-v1",response_code!~"5.*"}[1m])) / sum(rate(istio_requests_total{reporter="source",source_workload="productpage-v1"}[1m]))',
      (r) => r.length === 1 && Number(r[0]!.value[1]) > 0)
    assert.equal(Number(success[0]!.value[1]), 1, 'every request succeeded')
    const p99 = await query('histogram_quantile(0.99, sum(rate(istio_request_duration_milliseconds_bucket{reporter="source",source_workload="productpage-v1"}[1m])) by (le, destination_version))',
      (r) => r.length === 2 && r.every((s) => Number.isFinite(Number(s.value[1]))))
    assert.deepEqual(p99.map((s) => s.metric.destination_version).sort(), ['v1', 'v2'])
    const mesh = await query('sum(rate(sidecarless_cluster_upstream_rq_total{cluster_name="reviews"}[1m]))', (r) => r.length === 1 && Number(r[0]!.value[1]) > 0)
    assert.ok(Number(mesh[0]!.value[1]) > 0)
    const cpu = await query('rate(process_cpu_seconds_total{job="meshed"}[1m])', (r) => r.length === 3)
    assert.equal(cpu.length, 3)
  })
})
