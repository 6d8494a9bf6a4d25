/**
 * Route matching cost: the decision only, no network. For each case a snapshot is built with
 * createMesh({ config }) and every timed operation does what MeshDispatcher.dispatch does
 * to route a request:
 *
 *   vhost = snapshot.domains.find(authority)
 *   route = findRoute(vhost, new RequestView(method, path, authority.toLowerCase(), 'http', headers))
 *
 * Cases (routes per virtual host × virtual hosts = total routes):
 *   10x1, 10x100, 10x1000    10, 1,000, 10,000 routes: vhost count grows, routes/vhost fixed;
 *                            the request mix spreads over every vhost
 *   10x1000h                 10,000 routes in 1,000 vhosts, but the mix addresses one vhost
 *                            (as 10x1's does): the cost of the vhost count alone
 *   100x100                  10,000 routes in 10× fewer vhosts (100 routes each)
 * Baseline: the same loop building the same RequestView for the same requests, without
 * finding anything.
 *
 * The request mix (1,024 requests, fixed seed) spreads over all virtual hosts and routes:
 * exact paths, prefixes, path-separated prefixes, full regexes, method and header
 * matchers (exact, prefix), query strings, authorities with and without port and in
 * the long form, no-route misses and unknown authorities. Every hit is checked against the
 * route it was built for before timing starts.
 *
 * Targets: ≤ 2 µs per match (gross, baseline included) with 10,000 routes (10x1000 and
 * 100x100), and flat in the number of virtual hosts: 10x1000h within 1.5× of 10x1 (same
 * mix, 1,000× the vhosts), and 10x1000 within 1.5× of 10x1 (traffic over all of them, so
 * the working set grows too).
 *
 * Knobs: BENCH_ROUNDS (15), BENCH_OPS (operations per timed sample, 200000),
 * BENCH_CASES (comma list of case ids, for profiling one case).
 */
import { createMesh } from '../build/src/index.js'
import { RequestView } from '../build/src/http/request-view.js'
import { findRoute } from '../build/src/router/router.js'
import { buildConfig, HEADERS, requestFor } from './lib/mesh-config.mjs'
import { emitResult, envNumber, fmt, header, median, pad, padEnd, prng, rotate, verdict } from './lib/common.mjs'

const ROUNDS = envNumber('BENCH_ROUNDS', 15)
const OPS = envNumber('BENCH_OPS', 200_000)
const MIX = 1024 // power of two

header('route-match: authority → virtual host → first matching route', { BENCH_ROUNDS: ROUNDS, BENCH_OPS: OPS, mix: MIX })

// ---------------------------------------------------------------- config and request mix

const CLUSTERS = 10
const BASE_HEADERS = HEADERS.base

/**
 * 1,024 requests: 85% built to hit a given route, 10% a path no route of an odd vhost takes
 * (an even vhost's catch-all takes it after every other route was tried), 5% an authority no
 * virtual host claims. `expect` is the route name, null (no route) or undefined (no vhost).
 */
function buildMix(vhosts, perVhost, spread) {
  const rand = prng(0x5eed + spread * 7 + perVhost)
  const mix = []
  for (let i = 0; i < MIX; i++) {
    const vh = Math.floor(rand() * spread)
    const form = rand()
    const authority = form < 0.5 ? `svc-${vh}` : form < 0.8 ? `svc-${vh}.ns.svc.cluster.local` : `svc-${vh}:8080`
    const kind = rand()
    if (kind < 0.05) {
      mix.push({ method: 'GET', path: '/reviews/1', authority: `unknown-${i % 97}.example.com`, headers: BASE_HEADERS, expect: undefined })
    } else if (kind < 0.15) {
      mix.push({ method: 'GET', path: '/nowhere/1', authority, headers: BASE_HEADERS, expect: vh % 2 === 0 ? `vh${vh}-r${perVhost - 1}` : null })
    } else {
      const j = Math.floor(rand() * perVhost)
      const [method, path, headers] = requestFor(j, perVhost, vh)
      mix.push({ method, path, authority, headers, expect: `vh${vh}-r${j}` })
    }
  }
  return mix
}

// ---------------------------------------------------------------- cases

const ALL_CASES = [
  { id: '10x1', perVhost: 10, vhosts: 1, spread: 1 },
  { id: '10x100', perVhost: 10, vhosts: 100, spread: 100 },
  { id: '10x1000', perVhost: 10, vhosts: 1000, spread: 1000 },
  // 1,000 vhosts, but the mix addresses only vh0, like 10x1's: the vhost count alone.
  { id: '10x1000h', perVhost: 10, vhosts: 1000, spread: 1 },
  { id: '100x100', perVhost: 100, vhosts: 100, spread: 100 },
]
const CASES = process.env.BENCH_CASES === undefined
  ? ALL_CASES
  : ALL_CASES.filter((c) => process.env.BENCH_CASES.split(',').includes(c.id))
const byId = (id) => CASES.find((c) => c.id === id)

for (const c of CASES) {
  const t0 = performance.now()
  c.mesh = createMesh({ config: buildConfig({ clusters: CLUSTERS, vhosts: c.vhosts, perVhost: c.perVhost }) })
  c.buildMs = performance.now() - t0
  c.snapshot = c.mesh.snapshot
  c.mix = buildMix(c.vhosts, c.perVhost, c.spread)
  c.total = c.vhosts * c.perVhost
  // Check every request of the mix routes as built, and count the outcomes.
  const outcome = { hit: 0, noRoute: 0, noVhost: 0, catchAll: 0 }
  for (const r of c.mix) {
    const vhost = c.snapshot.domains.find(r.authority)
    const route = vhost === undefined ? undefined : findRoute(vhost, new RequestView(r.method, r.path, r.authority.toLowerCase(), 'http', r.headers))
    const got = vhost === undefined ? undefined : route === undefined ? null : route.name
    if (got !== r.expect) throw new Error(`${c.id}: ${r.method} ${r.authority}${r.path} routed to ${got}, expected ${r.expect}`)
    if (vhost === undefined) outcome.noVhost++
    else if (route === undefined) outcome.noRoute++
    else if (r.path === '/nowhere/1') outcome.catchAll++
    else outcome.hit++
  }
  c.outcome = outcome
  console.log(`case ${padEnd(c.id, 9)} ${pad(fmt(c.total), 6)} routes in ${pad(fmt(c.vhosts), 5)} vhosts, mix over ${pad(fmt(c.spread), 5)}: built in ${fmt(c.buildMs, 1)} ms; mix: ${outcome.hit} hits, ${outcome.catchAll} catch-all after a full scan, ${outcome.noRoute} no route, ${outcome.noVhost} unknown authority`)
}

// ---------------------------------------------------------------- timed loops

let sink = 0
const keep = new Array(8)

/** What every operation pays before routing: reading the request and making the view. */
function baselineLoop(mix, ops) {
  let acc = 0
  for (let i = 0; i < ops; i++) {
    const r = mix[i & (MIX - 1)]
    const view = new RequestView(r.method, r.path, r.authority.toLowerCase(), 'http', r.headers)
    keep[i & 7] = view
    acc += view.fullPath.length
  }
  return acc
}

/** The router steps of MeshDispatcher.dispatch. */
function matchLoop(snapshot, mix, ops) {
  let acc = 0
  const domains = snapshot.domains
  for (let i = 0; i < ops; i++) {
    const r = mix[i & (MIX - 1)]
    const vhost = domains.find(r.authority)
    if (vhost === undefined) continue
    const view = new RequestView(r.method, r.path, r.authority.toLowerCase(), 'http', r.headers)
    keep[i & 7] = view
    const route = findRoute(vhost, view)
    if (route !== undefined) acc++
  }
  return acc
}

function timeIt(fn) {
  const t0 = process.hrtime.bigint()
  sink += fn()
  return Number(process.hrtime.bigint() - t0) / OPS // ns per op
}

const runners = [
  { id: 'baseline', run: () => timeIt(() => baselineLoop(CASES[CASES.length - 1].mix, OPS)) },
  ...CASES.map((c) => ({ id: c.id, run: () => timeIt(() => matchLoop(c.snapshot, c.mix, OPS)) })),
]

// Warm up every loop (JIT) before timing.
for (let w = 0; w < 3; w++) for (const r of runners) r.run()

const samples = Object.fromEntries(runners.map((r) => [r.id, []]))
for (let round = 0; round < ROUNDS; round++) {
  for (const r of rotate(runners, round)) samples[r.id].push(r.run())
}

// ---------------------------------------------------------------- report

console.log(`\nns per operation, per round:`)
console.log(padEnd('case', 10) + samples.baseline.map((_, i) => pad(i + 1, 7)).join(''))
for (const r of runners) console.log(padEnd(r.id, 10) + samples[r.id].map((x) => pad(fmt(x), 7)).join(''))

const base = median(samples.baseline)
const perRoundNet = (id) => samples[id].map((x, i) => x - samples.baseline[i])
console.log(`\nmedians over ${ROUNDS} rounds (net = minus the baseline of the same round, then median):`)
console.log(`  ${padEnd('baseline', 10)} ${pad(fmt(base, 1), 8)} ns  (RequestView setup only)`)
const med = {}
for (const c of CASES) {
  med[c.id] = { gross: median(samples[c.id]), net: median(perRoundNet(c.id)) }
  console.log(`  ${padEnd(c.id, 10)} ${pad(fmt(med[c.id].gross, 1), 8)} ns/match gross ${pad(fmt(med[c.id].net, 1), 8)} ns net   (${fmt(c.total)} routes, ${fmt(c.vhosts)} vhosts × ${c.perVhost} routes; ×${fmt(med[c.id].gross / base, 2)} baseline)`)
}

console.log('')
const ratio = (a, b) => (byId(a) && byId(b) ? med[a].gross / med[b].gross : NaN)
const targets = []
if (byId('10x1000')) targets.push(verdict('10,000 routes / 1,000 vhosts × 10: µs per match', med['10x1000'].gross / 1000, '<=', 2, ' µs'))
if (byId('100x100')) targets.push(verdict('10,000 routes / 100 vhosts × 100: µs per match', med['100x100'].gross / 1000, '<=', 2, ' µs'))
if (byId('10x1000h') && byId('10x1')) targets.push(verdict('flat in vhost count: 10x1000h / 10x1 (same mix, 1 vhost vs 1,000)', ratio('10x1000h', '10x1'), '<=', 1.5, '×'))
if (byId('10x1000') && byId('10x1')) targets.push(verdict('flat with traffic over all vhosts: 10x1000 / 10x1', ratio('10x1000', '10x1'), '<=', 1.5, '×'))
console.log(`(info) 10x100 / 10x1: ${fmt(ratio('10x100', '10x1'), 3)}×;  100x100 / 10x1000 (same total, 10× fewer vhosts, 10× more routes each): ${fmt(ratio('100x100', '10x1000'), 3)}×`)

emitResult('route-match', { baselineNs: base, medians: med, targets, knobs: { ROUNDS, OPS, MIX } })

await Promise.all(CASES.map((c) => c.mesh.close()))
if (sink === 0.5) console.log(keep) // keep the results alive
