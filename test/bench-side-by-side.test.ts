// A smoke test of the side-by-side benchmark (bench/side-by-side.mjs): a broken harness —
// a process that does not start, an arm that does not run the path it names, a report that
// no longer renders — fails here instead of in the lead's benchmark run. No figure is
// asserted: timings on a shared machine are noise.
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, test } from 'node:test'
import { promisify } from 'node:util'
import { root } from './helpers/spawned.js'

const run = promisify(execFile)
const dir = mkdtempSync(join(tmpdir(), 'sbs-smoke-'))
after(() => rmSync(dir, { recursive: true, force: true }))

interface ArmResult { rps: number; rpsRatio: number; cpuPerReq: number; p50: number; p99: number }

test('bench/side-by-side.mjs --quick --arms=direct,mesh-both prints its table, targets, JSON and chart', async () => {
  const json = join(dir, 'out.json')
  const svg = join(dir, 'out.svg')
  const { stdout } = await run(process.execPath, ['bench/side-by-side.mjs', '--quick', '--arms=direct,mesh-both', '--json', json, '--svg', svg], {
    cwd: root,
    timeout: 120_000,
    maxBuffer: 16 * 1024 * 1024,
  }).catch((err: { code?: unknown; stdout?: string; stderr?: string }) => assert.fail(`exit ${String(err.code)}\n${err.stdout ?? ''}\n${err.stderr ?? ''}`))

  // The Markdown table: its header and one row per arm, every cell filled.
  assert.match(stdout, /^\| arm \| processes \| req\/s \| req\/s ÷ direct \| CPU µs\/req \|/m)
  for (const title of ['direct (undici Agent → node:http)', 'mesh on both sides']) {
    const row = stdout.split('\n').find((l) => l.startsWith(`| ${title} |`)) ?? assert.fail(`no row for ${title}:\n${stdout}`)
    assert.doesNotMatch(row, /NaN|undefined|—/, row)
  }
  assert.match(stdout, /^\| direct \(undici Agent → node:http\) \| 2 \| [\d,]+ \| 1\.00× \|/m)
  // The targets of issue 15 and the RSS one, each with a verdict.
  assert.match(stdout, /^(PASS|MISS) {2}\[v[\d.]+\] issue 15: mesh both sides ÷ direct, req\/s: /m)
  assert.match(stdout, /^(PASS|MISS) {2}\[v[\d.]+\] issue 15: mesh both sides ÷ direct, CPU µs\/req: /m)
  assert.match(stdout, /^(PASS|MISS) {2}\[v[\d.]+\] RSS added by the mesh, 100-cluster config: /m)

  // The RESULT line bench/run.mjs collects.
  const line = stdout.split('\n').find((l) => l.startsWith('RESULT ')) ?? assert.fail('no RESULT line')
  const result = JSON.parse(line.slice('RESULT '.length)) as { bench: string; node: string; arms: Record<string, ArmResult>; rssMB: number }
  assert.equal(result.bench, 'side-by-side')
  assert.equal(result.node, process.version)
  assert.deepEqual(Object.keys(result.arms), ['direct', 'mesh-both'])
  for (const a of Object.values(result.arms)) {
    for (const k of ['rps', 'rpsRatio', 'cpuPerReq', 'p50', 'p99'] as const) assert.ok(Number.isFinite(a[k]) && a[k] > 0, `${k} = ${a[k]}`)
  }
  assert.ok(Number.isFinite(result.rssMB))

  // The JSON file keeps every round; the chart is an SVG with a bar per arm.
  const data = JSON.parse(readFileSync(json, 'utf8')) as { versions: { version: string; arms: { name: string; rounds: unknown[] }[] }[] }
  assert.equal(data.versions.length, 1)
  assert.deepEqual(data.versions[0]!.arms.map((a) => [a.name, a.rounds.length]), [['direct', 1], ['mesh-both', 1]])
  const chart = readFileSync(svg, 'utf8')
  assert.match(chart, /^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"/)
  assert.match(chart, /<\/svg>\n$/)
  assert.equal(chart.match(/<rect x="\d+(\.\d+)?" y="[\d.]+" width="[\d.]+" height="11" fill="#4e79a7">/g)?.length, 4, 'two bars (throughput, CPU) per arm')
})

test('bench/side-by-side.mjs --rss-only runs the RSS probe alone and says what the RSS is made of', async () => {
  const { stdout } = await run(process.execPath, ['bench/side-by-side.mjs', '--rss-only', '--rss-samples=1'], {
    cwd: root,
    timeout: 120_000,
    maxBuffer: 16 * 1024 * 1024,
  }).catch((err: { code?: unknown; stdout?: string; stderr?: string }) => assert.fail(`exit ${String(err.code)}\n${err.stdout ?? ''}\n${err.stderr ?? ''}`))
  assert.doesNotMatch(stdout, /^\| arm \|/m, 'no arm was run')
  assert.match(stdout, /^RSS: [\d.]+ MB without the mesh, [\d.]+ MB with it \(100 clusters\): [+-][\d.]+ MB/m)
  const parts = stdout.split('\n').find((l) => l.startsWith('RSS added, made of (MB): ')) ?? assert.fail(`no breakdown:\n${stdout}`)
  for (const v of ['with', 'with-one', 'import-only']) assert.match(parts, new RegExp(`${v}: young generation [+-][\\d.]+, rest of the heap [+-][\\d.]+, native [+-][\\d.]+, file-backed [+-][\\d.]+`))
  assert.match(stdout, /^(PASS|MISS) {2}\[v[\d.]+\] RSS added by the mesh, 100-cluster config: /m)
  const line = stdout.split('\n').find((l) => l.startsWith('RESULT ')) ?? assert.fail('no RESULT line')
  const result = JSON.parse(line.slice('RESULT '.length)) as { arms: Record<string, unknown>; rssMB: number }
  assert.deepEqual(result.arms, {})
  assert.ok(Number.isFinite(result.rssMB))
})
