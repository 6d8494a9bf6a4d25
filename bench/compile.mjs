/**
 * Config compile time: 1,000 clusters (two endpoints, two subsets each) and 10,000 routes
 * (1,000 virtual hosts × 10 routes of nine shapes: exact, prefix, regex, header and method
 * matchers, weighted split, rewrites, header mutations, direct responses).
 *
 *   baseline     structuredClone(config)                  (a floor: compile clones it too)
 *   validate     validateConfig(config)                   (informational: part of create and update)
 *   compile      compileConfig(config) from build/src/ (informational: create minus validation;
 *                                                         clone, matchers, clusters and their pools)
 *   create       createMesh({ config })                   validation + compile + pools; closed after
 *   update       await mesh.update(config')               routes changed (every split's weights),
 *                                                         clusters unchanged and so reused
 *   update-all   await mesh.update(config'')              every cluster changed too (connectTimeout),
 *                                                         so every cluster and pool is rebuilt
 *
 * One round runs each once, in an order rotated per round; medians over rounds.
 * Targets: create ≤ 100 ms, update ≤ 100 ms, update-all ≤ 100 ms.
 *
 * Knobs: BENCH_ROUNDS (11), BENCH_CLUSTERS (1000), BENCH_VHOSTS (1000), BENCH_ROUTES_PER_VHOST (10),
 * BENCH_STEPS (comma list of validate,compile,create,update,update-all; clone always runs; for profiling).
 */
/* global structuredClone */
import { compileConfig } from '../build/src/snapshot/build.js'
import { createMesh, validateConfig } from '../build/src/index.js'
import { HostRegistry } from '../build/src/upstream/host.js'
import { LimitRegistry } from '../build/src/policy/limits.js'
import { buildConfig } from './lib/mesh-config.mjs'
import { emitResult, envNumber, fmt, header, median, pad, padEnd, rotate, verdict } from './lib/common.mjs'

const ROUNDS = envNumber('BENCH_ROUNDS', 11)
const CLUSTERS = envNumber('BENCH_CLUSTERS', 1000)
const VHOSTS = envNumber('BENCH_VHOSTS', 1000)
const PER_VHOST = envNumber('BENCH_ROUTES_PER_VHOST', 10)

header('compile: createMesh / mesh.update with a large config', {
  BENCH_ROUNDS: ROUNDS, BENCH_CLUSTERS: CLUSTERS, BENCH_VHOSTS: VHOSTS, BENCH_ROUTES_PER_VHOST: PER_VHOST,
})

// Each vhost sends to "its" cluster, its even routes to the next one: every cluster is used.
const clusterOf = (vh, j) => `c${(vh + (j % 2)) % CLUSTERS}`
const base = { clusters: CLUSTERS, vhosts: VHOSTS, perVhost: PER_VHOST, cluster: clusterOf }
// Configs differing in route weights only, and in every cluster too; all built up front.
const configs = {
  a: buildConfig({ ...base, weights: [90, 10] }),
  b: buildConfig({ ...base, weights: [50, 50] }),
  allA: buildConfig({ ...base, weights: [90, 10], clusterExtra: { connectTimeout: '300ms' } }),
  allB: buildConfig({ ...base, weights: [90, 10], clusterExtra: { connectTimeout: '350ms' } }),
}
const json = JSON.stringify(configs.a)
const routes = configs.a.virtualHosts.reduce((n, v) => n + v.routes.length, 0)
const endpoints = configs.a.clusters.reduce((n, c) => n + c.endpoints.length, 0)
console.log(`config: ${fmt(configs.a.clusters.length)} clusters, ${fmt(endpoints)} endpoints, ${fmt(configs.a.virtualHosts.length)} vhosts, ${fmt(routes)} routes; ${fmt(json.length / 1024)} KiB as JSON`)
{
  const issues = validateConfig(configs.a)
  if (issues.length > 0) throw new Error(`the synthetic config is invalid: ${JSON.stringify(issues.slice(0, 5))}`)
}

// A long-lived mesh for the updates (as in production: one mesh, many updates).
const live = createMesh({ config: configs.a })
let routesFlip = false
let allFlip = false

let sink = 0
const steps = {
  clone: async () => {
    const t0 = performance.now()
    const c = structuredClone(configs.a)
    const ms = performance.now() - t0
    sink += c.clusters.length
    return ms
  },
  validate: async () => {
    const t0 = performance.now()
    const issues = validateConfig(configs.a)
    const ms = performance.now() - t0
    sink += issues.length
    return ms
  },
  compile: async () => {
    const registry = new HostRegistry()
    const limits = new LimitRegistry()
    const t0 = performance.now()
    limits.begin()
    const { snapshot } = compileConfig(configs.a, 1, registry, limits)
    const ms = performance.now() - t0
    sink += snapshot.version
    limits.abort()
    await registry.closeAll()
    return ms
  },
  create: async () => {
    const t0 = performance.now()
    const mesh = createMesh({ config: configs.a })
    const ms = performance.now() - t0
    sink += mesh.version
    await mesh.close()
    return ms
  },
  update: async () => {
    routesFlip = !routesFlip
    const t0 = performance.now()
    await live.update(routesFlip ? configs.b : configs.a)
    return performance.now() - t0
  },
  'update-all': async () => {
    allFlip = !allFlip
    const t0 = performance.now()
    await live.update(allFlip ? configs.allA : configs.allB)
    const ms = performance.now() - t0
    // Back to config a (not timed), so the next "update" again reuses every cluster.
    await live.update(configs.a)
    routesFlip = false
    return ms
  },
}
const order = process.env.BENCH_STEPS === undefined
  ? Object.keys(steps)
  : Object.keys(steps).filter((k) => k === 'clone' || process.env.BENCH_STEPS.split(',').includes(k))

// Warm up (JIT, first-use costs) once each.
for (const k of order) await steps[k]()

const samples = Object.fromEntries(order.map((k) => [k, []]))
for (let r = 0; r < ROUNDS; r++) {
  for (const k of rotate(order, r)) samples[k].push(await steps[k]())
}

console.log('\nms per step, per round:')
console.log(padEnd('step', 12) + samples.clone.map((_, i) => pad(i + 1, 7)).join(''))
for (const k of order) console.log(padEnd(k, 12) + samples[k].map((x) => pad(fmt(x, 1), 7)).join(''))

const med = Object.fromEntries(order.map((k) => [k, median(samples[k])]))
const pairedToClone = (k) => median(samples[k].map((x, i) => x / samples.clone[i]))
console.log(`\nmedians over ${ROUNDS} rounds:`)
for (const k of order) {
  console.log(`  ${padEnd(k, 11)} ${pad(fmt(med[k], 1), 8)} ms${k === 'clone' ? '   (baseline)' : `   ×${fmt(pairedToClone(k), 1)} structuredClone (paired)`}`)
}
console.log('')
const targets = [
  med.create !== undefined && verdict(`createMesh (validate + compile), ${fmt(CLUSTERS)} clusters / ${fmt(routes)} routes`, med.create, '<=', 100, ' ms'),
  med.update !== undefined && verdict('mesh.update, routes changed, clusters reused', med.update, '<=', 100, ' ms'),
  med['update-all'] !== undefined && verdict('mesh.update, every cluster changed', med['update-all'], '<=', 100, ' ms'),
].filter(Boolean)
emitResult('compile', { medians: med, ratiosToClone: Object.fromEntries(order.map((k) => [k, pairedToClone(k)])), targets, knobs: { ROUNDS, CLUSTERS, VHOSTS, PER_VHOST } })

await live.close()
if (sink === -1) console.log(sink)
