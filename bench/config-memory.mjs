/**
 * What a config keeps in the heap: bytes per cluster and per route of a mesh built from
 * bench/lib/mesh-config.mjs's synthetic config (two endpoints and two subsets per cluster,
 * nine route shapes). An Istio control plane sends every sidecar every cluster of the mesh,
 * so these figures, times thousands, are what a large mesh costs each process.
 *
 * Each sample is a fresh process (`--expose-gc`): it builds and closes a small mesh of every
 * shape first (so code and hidden classes are in place, and are not counted), then the mesh
 * measured, and reads `heapUsed` after full GCs; the config's input object is dropped first.
 * Per cluster: the difference between BENCH_CLUSTERS_A and BENCH_CLUSTERS_B clusters (one
 * virtual host of 10 routes). Per route: the difference between BENCH_VHOSTS_A and
 * BENCH_VHOSTS_B virtual hosts of 10 routes (BENCH_CLUSTERS_A clusters), the virtual host's
 * share included. Medians of BENCH_SAMPLES processes per point, interleaved.
 *
 * Informational (no target of its own; the RSS target of issue 15 is bench/side-by-side.mjs's).
 *
 *   node bench/config-memory.mjs
 *
 * Knobs: BENCH_SAMPLES (5), BENCH_CLUSTERS_A (5), BENCH_CLUSTERS_B (105), BENCH_VHOSTS_A (1),
 * BENCH_VHOSTS_B (21).
 */
import { execFileSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { emitResult, envNumber, fmt, header, median } from './lib/common.mjs'

const point = process.argv.indexOf('--point')
if (point !== -1) {
  const [clusters, vhosts] = process.argv.slice(point + 1, point + 3).map(Number)
  const { buildConfig } = await import('./lib/mesh-config.mjs')
  const { createMesh } = await import('../dist/index.js')
  // Every shape once, so its code and hidden classes are not counted below.
  const warm = createMesh({ service: 'warm', config: buildConfig({ clusters: 5, vhosts: 2, perVhost: 10 }) })
  await warm.close()
  const gc = globalThis.gc
  gc()
  gc()
  const before = process.memoryUsage().heapUsed
  const mesh = createMesh({ service: 'measured', config: buildConfig({ clusters, vhosts, perVhost: 10 }) })
  await new Promise((resolve) => setTimeout(resolve, 20))
  gc()
  gc()
  const after = process.memoryUsage().heapUsed
  process.stdout.write(`${JSON.stringify({ bytes: after - before })}\n`)
  await mesh.close()
  process.exit(0)
}

const SAMPLES = envNumber('BENCH_SAMPLES', 5)
const CA = envNumber('BENCH_CLUSTERS_A', 5)
const CB = envNumber('BENCH_CLUSTERS_B', 105)
const VA = envNumber('BENCH_VHOSTS_A', 1)
const VB = envNumber('BENCH_VHOSTS_B', 21)
if (!(CB > CA) || !(VB > VA)) throw new Error('BENCH_CLUSTERS_B must exceed BENCH_CLUSTERS_A, and BENCH_VHOSTS_B BENCH_VHOSTS_A')

header('config memory: heap bytes a mesh keeps per cluster and per route', {
  BENCH_SAMPLES: SAMPLES, BENCH_CLUSTERS_A: CA, BENCH_CLUSTERS_B: CB, BENCH_VHOSTS_A: VA, BENCH_VHOSTS_B: VB,
})

const self = fileURLToPath(import.meta.url)
function measure(clusters, vhosts) {
  const out = execFileSync(process.execPath, ['--expose-gc', self, '--point', String(clusters), String(vhosts)], { encoding: 'utf8' })
  return JSON.parse(out.trim().split('\n').pop()).bytes
}

const points = { c: [CA, VA], cc: [CB, VA], vv: [CA, VB] }
const got = { c: [], cc: [], vv: [] }
for (let i = 0; i < SAMPLES; i++) {
  for (const k of i % 2 === 0 ? ['c', 'cc', 'vv'] : ['vv', 'cc', 'c']) got[k].push(measure(...points[k]))
}
const base = median(got.c)
const perCluster = (median(got.cc) - base) / (CB - CA)
const perRoute = (median(got.vv) - base) / ((VB - VA) * 10)
console.log(`mesh of ${CA} clusters, ${VA} virtual host(s) of 10 routes: ${fmt(base / 1024, 1)} KB of heap (median of ${SAMPLES})`)
console.log(`per cluster: ${fmt(perCluster)} bytes   (${CB} vs ${CA} clusters)`)
console.log(`per route:   ${fmt(perRoute)} bytes   (${VB} vs ${VA} virtual hosts of 10 routes, the virtual host's share included)`)
console.log(`so 1,000 clusters and 10,000 routes keep ~${fmt((perCluster * 1000 + perRoute * 10000) / 1048576, 1)} MB`)
emitResult('config-memory', { perClusterBytes: perCluster, perRouteBytes: perRoute, baseBytes: base, samples: SAMPLES })
