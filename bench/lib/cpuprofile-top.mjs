/**
 * Summarises a V8 .cpuprofile (from `node --cpu-prof`): the top functions by self time, and
 * the inclusive time of every function in our own code (dist/). Usage:
 *
 *   node --cpu-prof --cpu-prof-dir=/tmp/prof bench/route-match.mjs
 *   node bench/lib/cpuprofile-top.mjs /tmp/prof/CPU.*.cpuprofile [--top=25] [--filter=dist/]
 */
import { readFileSync } from 'node:fs'

const args = process.argv.slice(2)
const files = args.filter((a) => !a.startsWith('--'))
const opt = Object.fromEntries(args.filter((a) => a.startsWith('--')).map((a) => a.slice(2).split('=')))
const TOP = Number(opt.top ?? 25)
const FILTER = opt.filter ?? '/dist/'
if (files.length === 0) {
  console.error('usage: node bench/lib/cpuprofile-top.mjs <file.cpuprofile> [--top=25] [--filter=/dist/]')
  process.exit(2)
}

for (const file of files) {
  const prof = JSON.parse(readFileSync(file, 'utf8'))
  const nodes = new Map(prof.nodes.map((n) => [n.id, n]))
  const parent = new Map()
  for (const n of prof.nodes) for (const c of n.children ?? []) parent.set(c, n.id)
  // Sample counts per node, weighted by time deltas.
  const selfUs = new Map()
  for (let i = 0; i < prof.samples.length; i++) {
    const id = prof.samples[i]
    selfUs.set(id, (selfUs.get(id) ?? 0) + (prof.timeDeltas[i] ?? 0))
  }
  const total = [...selfUs.values()].reduce((a, b) => a + b, 0)
  const key = (n) => {
    const cf = n.callFrame
    const url = cf.url.replace(/^file:\/\/.*?\/(dist|bench|node_modules)\//, '$1/')
    return `${cf.functionName || '(anonymous)'} ${url}${url ? `:${cf.lineNumber + 1}` : ''}`
  }
  const self = new Map()
  const inclusive = new Map()
  for (const [id, us] of selfUs) {
    const n = nodes.get(id)
    const k = key(n)
    self.set(k, (self.get(k) ?? 0) + us)
    // Inclusive: charge every distinct function on the stack once.
    const seen = new Set()
    for (let cur = id; cur !== undefined; cur = parent.get(cur)) {
      const ck = key(nodes.get(cur))
      if (seen.has(ck)) continue
      seen.add(ck)
      inclusive.set(ck, (inclusive.get(ck) ?? 0) + us)
    }
  }
  const pct = (us) => `${((us / total) * 100).toFixed(1).padStart(5)}%`
  console.log(`\n== ${file}: ${(total / 1000).toFixed(0)} ms sampled`)
  console.log(`-- top ${TOP} by self time`)
  for (const [k, us] of [...self].sort((a, b) => b[1] - a[1]).slice(0, TOP)) console.log(`${pct(us)}  ${k}`)
  console.log(`-- functions matching "${FILTER}" by inclusive time`)
  for (const [k, us] of [...inclusive].filter(([k]) => k.includes(FILTER.replace(/^\//, ''))).sort((a, b) => b[1] - a[1]).slice(0, TOP)) {
    console.log(`${pct(us)}  ${k}  (self ${pct(self.get(k) ?? 0).trim()})`)
  }
}
