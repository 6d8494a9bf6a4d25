/**
 * Runs the benchmarks one after another, each in its own child process, and prints a
 * summary of every target (PASS/MISS). Exits non-zero only when a benchmark crashes, times
 * out or prints no result; a missed target is reported, not an error.
 *
 *   node bench/run.mjs                                  every bench on this node
 *   node bench/run.mjs route-match compile              some of them
 *   node bench/run.mjs --node=node --node=/tmp/node24/node_modules/.bin/node
 *                                                       every bench on each node binary
 *
 * side-by-side runs once, last, with every --node given (it starts its own processes under
 * each binary and prints one table per version and a combined one); its timeout is
 * BENCH_TIMEOUT_SIDE_BY_SIDE (s per Node version, default 600).
 *
 * Build first (`npm run build`, or `npm run bench`, which builds and runs this).
 * Environment knobs (BENCH_ROUNDS, BENCH_DURATION, ...) pass through to every bench;
 * BENCH_TIMEOUT (s, default 180) bounds each one.
 */
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createInterface } from 'node:readline'

const here = dirname(fileURLToPath(import.meta.url))
const BENCHES = ['dispatcher', 'inbound', 'metrics', 'route-match', 'compile', 'config-memory', 'rate-limit', 'global-rate-limit', 'mtls', 'pool-storm', 'authz', 'resilience', 'request-check', 'allocations', 'transport', 'xds-descriptor', 'control-plane', 'xds-client', 'side-by-side']
/** Benches that take every --node at once rather than running under each. */
const MULTI_NODE = new Set(['side-by-side'])

const args = process.argv.slice(2)
const nodes = args.filter((a) => a.startsWith('--node=')).map((a) => a.slice('--node='.length))
const unknownFlags = args.filter((a) => a.startsWith('--') && !a.startsWith('--node='))
const names = args.filter((a) => !a.startsWith('--'))
if (unknownFlags.length > 0 || names.some((n) => !BENCHES.includes(n))) {
  console.error(`usage: node bench/run.mjs [--node=<path>]... [${BENCHES.join('|')}]...`)
  process.exit(2)
}
if (nodes.length === 0) nodes.push(process.execPath)
const selected = names.length === 0 ? BENCHES : names
const timeoutS = Number(process.env.BENCH_TIMEOUT ?? 180)

// The side-by-side and end-to-end benches load the package as users do (dist/, the bundle);
// the micro benches import internal modules, which only tsc's per-file build (build/src/) has.
if (!existsSync(join(here, '..', 'dist', 'index.js')) || !existsSync(join(here, '..', 'build', 'src', 'index.js'))) {
  console.error('dist/ or build/src/ is missing: run `npm run build && npm run build:test` first (or `npm run bench`).')
  process.exit(1)
}

function runOne(node, name, extraArgs = [], limitS = timeoutS) {
  return new Promise((resolve) => {
    const started = Date.now()
    const child = spawn(node, [join(here, `${name}.mjs`), ...extraArgs], { stdio: ['ignore', 'pipe', 'inherit'], env: process.env })
    const results = []
    createInterface({ input: child.stdout }).on('line', (line) => {
      console.log(line)
      if (line.startsWith('RESULT ')) {
        try {
          results.push(JSON.parse(line.slice('RESULT '.length)))
        } catch {
          // a malformed line counts as no result
        }
      }
    })
    let timedOut = false
    const timer = setTimeout(() => {
      timedOut = true
      child.kill('SIGTERM')
      setTimeout(() => child.kill('SIGKILL'), 5000).unref()
    }, limitS * 1000)
    child.on('error', (err) => {
      clearTimeout(timer)
      resolve({ node, name, ok: false, why: err.message, results, seconds: (Date.now() - started) / 1000 })
    })
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      const seconds = (Date.now() - started) / 1000
      if (timedOut) resolve({ node, name, ok: false, why: `timed out after ${limitS}s`, results, seconds })
      else if (code !== 0) resolve({ node, name, ok: false, why: `exited with ${code ?? signal}`, results, seconds })
      else if (results.length === 0) resolve({ node, name, ok: false, why: 'printed no RESULT line', results, seconds })
      else resolve({ node, name, ok: true, results, seconds })
    })
  })
}

const runs = []
for (const node of nodes) {
  for (const name of selected.filter((n) => !MULTI_NODE.has(n))) {
    console.log(`\n======== ${name} on ${node}`)
    runs.push(await runOne(node, name))
  }
}
if (selected.includes('side-by-side')) {
  console.log(`\n======== side-by-side on ${nodes.join(', ')}`)
  const perNodeS = Number(process.env.BENCH_TIMEOUT_SIDE_BY_SIDE ?? 600)
  runs.push(await runOne(process.execPath, 'side-by-side', nodes.map((n) => `--node=${n}`), perNodeS * nodes.length))
}

console.log('\n======== summary')
let crashed = 0
for (const r of runs) {
  const version = r.results[0]?.node ?? r.node
  if (!r.ok) {
    crashed++
    console.log(`CRASH ${r.name} on ${version}: ${r.why} (${r.seconds.toFixed(0)} s)`)
    continue
  }
  console.log(`${r.name} on ${version} (${r.seconds.toFixed(0)} s)`)
  for (const res of r.results) {
    if (r.results.length > 1) console.log(` ${res.node}`)
    for (const t of res.targets ?? []) {
      const digits = t.unit === '×' ? 3 : 2
      console.log(`  ${t.verdict}  ${t.label}: ${t.value.toFixed(digits)}${t.unit} (target ${t.cmp} ${t.target}${t.unit})`)
    }
  }
}
process.exitCode = crashed > 0 ? 1 : 0
