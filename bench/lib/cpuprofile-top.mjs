/**
 * Summarises a V8 .cpuprofile (from `node --cpu-prof`, or the inspector as
 * bench/side-by-side.mjs --profile writes them): the time per category (our code in dist/,
 * undici, Node's own JS, native bindings, GC, (program), idle, the profiler stopping), the top functions by self time, and the
 * inclusive time of every function in our own code (dist/). Usage:
 *
 *   node --cpu-prof --cpu-prof-dir=/tmp/prof bench/route-match.mjs
 *   node bench/lib/cpuprofile-top.mjs /tmp/prof/CPU.*.cpuprofile [--top=25] [--filter=dist/] [--requests=N]
 *   node bench/lib/cpuprofile-top.mjs --sum A-1.cpuprofile A-2.cpuprofile --requests=N   slices added up
 *   node bench/lib/cpuprofile-top.mjs --diff A-1.cpuprofile,A-2.cpuprofile:N B-1.cpuprofile:M
 *                                                      what A adds per request over B
 *
 * With `--requests=N` (the requests served while the profile ran) every figure is also
 * given in µs per request.
 */
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

/** Where a frame's code lives, for the per-category split. */
export function category(callFrame) {
  const { url, functionName } = callFrame
  if (url === '') {
    if (functionName === '(idle)') return 'idle'
    if (functionName === '(garbage collector)') return 'gc'
    // V8 and libuv work outside any JS function.
    if (functionName.startsWith('(')) return '(program)'
    // C++ bindings JS calls: socket writes (writev, writeLatin1String: TLS encrypts there), reads, timers.
    return 'native bindings'
  }
  if (url.includes('/dist/')) return 'sidecarless (dist/)'
  if (url.includes('/node_modules/undici/')) return 'undici'
  if (url.includes('/node_modules/')) return 'other packages'
  if (url.startsWith('node:')) return 'node internals'
  if (url.includes('/bench/')) return 'bench harness'
  return 'other'
}

/**
 * Self and inclusive time (µs) per function, and per category, of one profile or of several
 * added up (the slices of one arm, each profiled on its own).
 */
export function readProfile(fileOrFiles) {
  const files = Array.isArray(fileOrFiles) ? fileOrFiles : [fileOrFiles]
  const acc = { total: 0, self: new Map(), inclusive: new Map(), categories: new Map() }
  const add = (m, k, us) => m.set(k, (m.get(k) ?? 0) + us)
  for (const file of files) {
    const prof = JSON.parse(readFileSync(file, 'utf8'))
    const nodes = new Map(prof.nodes.map((n) => [n.id, n]))
    const parent = new Map()
    for (const n of prof.nodes) for (const c of n.children ?? []) parent.set(c, n.id)
    // Sample counts per node, weighted by time deltas.
    // A sample's delta is the wall time since the previous one: when the process waited for a
    // core (a loaded machine), one sample takes the whole wait, and whichever function it
    // landed in looks costly (measured: 5 samples of one constructor weighing 7 µs/req).
    // Deltas of busy samples are capped at 3× the median sampling interval (idle ones are
    // real waits for I/O and stay as they are).
    const sorted = prof.timeDeltas.filter((d) => d > 0).sort((x, y) => x - y)
    const cap = sorted.length === 0 ? Infinity : 3 * sorted[sorted.length >> 1]
    const selfUs = new Map()
    for (let i = 0; i < prof.samples.length; i++) {
      const d = prof.timeDeltas[i] ?? 0
      add(selfUs, prof.samples[i], nodes.get(prof.samples[i]).callFrame.functionName === '(idle)' ? d : Math.min(d, cap))
    }
    const key = (n) => {
      const cf = n.callFrame
      const url = cf.url.replace(/^file:\/\/.*?\/(dist|bench|node_modules)\//, '$1/')
      return `${cf.functionName || '(anonymous)'} ${url}${url ? `:${cf.lineNumber + 1}` : ''}`
    }
    // Samples under node:inspector are the profiler stopping (it builds the profile
    // synchronously inside Session.post), not the workload.
    const underInspector = (id) => {
      for (let cur = id; cur !== undefined; cur = parent.get(cur)) if (nodes.get(cur).callFrame.url.startsWith('node:inspector')) return true
      return false
    }
    for (const [id, us] of selfUs) {
      const n = nodes.get(id)
      acc.total += us
      add(acc.self, key(n), us)
      add(acc.categories, underInspector(id) ? 'profiler' : category(n.callFrame), us)
      // Inclusive: charge every distinct function on the stack once.
      const seen = new Set()
      for (let cur = id; cur !== undefined; cur = parent.get(cur)) {
        const ck = key(nodes.get(cur))
        if (seen.has(ck)) continue
        seen.add(ck)
        add(acc.inclusive, ck, us)
      }
    }
  }
  return acc
}

/** How a profile (or a set of slices) is named in the output. */
function nameOf(fileOrFiles) {
  if (!Array.isArray(fileOrFiles)) return fileOrFiles
  return fileOrFiles.length === 1 ? fileOrFiles[0] : `${fileOrFiles[0]} and ${fileOrFiles.length - 1} more slice(s)`
}

/**
 * Prints the summary of one profile (or several added up). `requests` (optional): requests served while it ran,
 * to print µs per request beside each share. Returns the data for callers that keep it.
 */
export function printProfile(file, { top = 25, filter = '/dist/', requests } = {}) {
  const p = readProfile(file)
  const busy = p.total - (p.categories.get('idle') ?? 0) - (p.categories.get('profiler') ?? 0)
  const pct = (us) => `${((us / p.total) * 100).toFixed(1).padStart(5)}%`
  const perReq = (us) => (requests > 0 ? `${(us / requests).toFixed(2).padStart(7)} µs/req  ` : '')
  console.log(`\n== ${nameOf(file)}: ${(p.total / 1000).toFixed(0)} ms sampled, ${(busy / 1000).toFixed(0)} ms of work (not idle, not the profiler)${requests > 0 ? `, ${requests} requests: ${(busy / requests).toFixed(2)} µs/req` : ''}`)
  console.log('-- by category (self time)')
  for (const [c, us] of [...p.categories].sort((a, b) => b[1] - a[1])) console.log(`${pct(us)}  ${perReq(us)}${c}`)
  console.log(`-- top ${top} by self time`)
  for (const [k, us] of [...p.self].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`${pct(us)}  ${perReq(us)}${k}`)
  console.log(`-- functions matching "${filter}" by inclusive time`)
  const f = filter.replace(/^\//, '')
  for (const [k, us] of [...p.inclusive].filter(([k]) => k.includes(f)).sort((a, b) => b[1] - a[1]).slice(0, top)) {
    console.log(`${pct(us)}  ${perReq(us)}${k}  (self ${pct(p.self.get(k) ?? 0).trim()})`)
  }
  return p
}

/**
 * What `file` spends per request beyond `baseFile`: per category and per function, self time
 * in µs per request (each profile divided by its own request count), largest differences
 * first. Functions named alike in both (Node's, undici's) line up; ours appear only in one.
 */
export function printDiff(file, requests, baseFile, baseRequests, { top = 25 } = {}) {
  const a = readProfile(file)
  const b = readProfile(baseFile)
  const per = (m, n) => new Map([...m].map(([k, us]) => [k, us / n]))
  const rows = (ma, mb) => {
    const out = []
    for (const k of new Set([...ma.keys(), ...mb.keys()])) out.push([k, (ma.get(k) ?? 0) - (mb.get(k) ?? 0), ma.get(k) ?? 0, mb.get(k) ?? 0])
    return out
  }
  const fmt = (x) => `${x >= 0 ? '+' : ''}${x.toFixed(2)}`.padStart(7)
  console.log(`\n== ${nameOf(file)} (${requests} requests) minus ${nameOf(baseFile)} (${baseRequests} requests), self time in µs per request`)
  const work = ([k]) => k !== 'idle' && k !== 'profiler'
  const cats = rows(per(a.categories, requests), per(b.categories, baseRequests)).filter(work).sort((x, y) => y[1] - x[1])
  const busy = (c) => [...c].filter(work).reduce((t, [, us]) => t + us, 0)
  console.log(`-- not idle: ${(busy(a.categories) / requests).toFixed(2)} vs ${(busy(b.categories) / baseRequests).toFixed(2)} µs/req (${fmt(busy(a.categories) / requests - busy(b.categories) / baseRequests)})`)
  for (const [k, d, x, y] of cats) console.log(`${fmt(d)}  (${x.toFixed(2)} vs ${y.toFixed(2)})  ${k}`)
  console.log(`-- top ${top} functions by added self time`)
  const fns = rows(per(a.self, requests), per(b.self, baseRequests)).filter(([k]) => !k.startsWith('(idle)') && !k.includes('node:inspector')).sort((x, y) => y[1] - x[1]).slice(0, top)
  for (const [k, d, x, y] of fns) console.log(`${fmt(d)}  (${x.toFixed(2)} vs ${y.toFixed(2)})  ${k}`)
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2)
  const files = args.filter((a) => !a.startsWith('--'))
  const opt = Object.fromEntries(args.filter((a) => a.startsWith('--')).map((a) => a.slice(2).split('=')))
  if ('diff' in opt) {
    const [a, b] = files.map((f) => /^(.*):(\d+)$/.exec(f))
    if (a === undefined || b === undefined || a === null || b === null) {
      console.error('usage: node bench/lib/cpuprofile-top.mjs --diff A.cpuprofile[,A2...]:REQUESTS B.cpuprofile[,B2...]:REQUESTS [--top=25]')
      process.exit(2)
    }
    printDiff(a[1].split(','), Number(a[2]), b[1].split(','), Number(b[2]), { top: Number(opt.top ?? 25) })
    process.exit(0)
  }
  if (files.length === 0) {
    console.error('usage: node bench/lib/cpuprofile-top.mjs <file.cpuprofile> [--top=25] [--filter=/dist/] [--requests=N]')
    process.exit(2)
  }
  const options = { top: Number(opt.top ?? 25), filter: opt.filter ?? '/dist/', requests: opt.requests === undefined ? undefined : Number(opt.requests) }
  if ('sum' in opt) printProfile(files, options)
  else for (const file of files) printProfile(file, options)
}
