/**
 * The import rule of ARCHITECTURE.md, checked: imports run one way, down the layers below,
 * and no set of files imports itself in a loop (type-only imports included: a type cycle
 * still ties the files together). Run by `npm run lint`.
 *
 * Why a script and not eslint-plugin-import's `no-cycle`: the rule needs the whole import
 * graph, and `no-cycle` rebuilds it through a resolver for every file it lints (measured
 * here on src/: seconds per run, growing with depth), while this reads every file once
 * with TypeScript's own `preProcessFile` (the scanner only, no type check) and runs
 * Tarjan's algorithm once: about 0.1 s for the whole tree, so lint stays fast in CI.
 *
 *   node scripts/check-layers.mjs          exits 1 and lists every upward import and cycle
 *   node scripts/check-layers.mjs --graph  prints the layer of every file and its imports
 */
import { readdirSync, readFileSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import ts from 'typescript'

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..')

/**
 * The layers, top first. A file may import files of its own layer (no cycle) and of any
 * layer below; never one above. An entry is a folder (`src/outbound/`) or a file. Two
 * entries of one layer may import each other's files, but never both ways (no cycle of
 * folders either): a folder is one part, read from the top down.
 *
 * The parts of the request path below the snapshot each have a layer of their own, in
 * the order they depend on each other: observability reads every part's counters; the
 * router (routes, their targets, retry, fault and mirror policies) sends to the upstream
 * (clusters, hosts, pools, health), which applies policies' decisions (breaker, limits,
 * retry, fault), dials with security's TLS and identities, and all of them use http's
 * request view, matchers, header formats and header mutations.
 */
export const LAYERS = [
  { name: 'entry points', parts: ['src/cli/', 'src/register.ts', 'src/fetch-entry.ts', 'src/index.ts', 'src/process-mesh.ts'] },
  { name: 'mesh, proxy, control plane', parts: ['src/mesh.ts', 'src/proxy/', 'src/xds/', 'src/admin/', 'src/traffic/', 'src/zerocode/'] },
  { name: 'inbound, outbound', parts: ['src/inbound/', 'src/outbound/'] },
  { name: 'snapshot', parts: ['src/snapshot/'] },
  { name: 'observability', parts: ['src/observability/'] },
  { name: 'router', parts: ['src/router/'] },
  { name: 'upstream', parts: ['src/upstream/'] },
  { name: 'policy', parts: ['src/policy/'] },
  { name: 'security', parts: ['src/security/'] },
  { name: 'http', parts: ['src/http/'] },
  { name: 'config', parts: ['src/config/'] },
  { name: 'leaves', parts: ['src/errors.ts', 'src/hash.ts', 'src/request-controller.ts', 'src/response-headers.ts', 'src/runtime.ts', 'src/runtime-check.ts', 'src/version.ts'] },
]

/** The LAYERS entry (folder or file) `file` belongs to, or `undefined`. */
function partOf(file) {
  for (const layer of LAYERS) {
    for (const p of layer.parts) if (p.endsWith('/') ? file.startsWith(p) : file === p) return p
  }
  return undefined
}

/** Each LAYERS entry's layer index. */
const LAYER_OF_PART = new Map(LAYERS.flatMap((layer, i) => layer.parts.map((p) => [p, i])))

/** The index in LAYERS of the layer `file` belongs to, or -1. */
function layerOf(file) {
  const part = partOf(file)
  return part === undefined ? -1 : LAYER_OF_PART.get(part)
}

function sources(root, dir) {
  const out = []
  for (const e of readdirSync(join(root, dir), { withFileTypes: true })) {
    const path = `${dir}/${e.name}`
    if (e.isDirectory()) out.push(...sources(root, path))
    else if (e.name.endsWith('.ts') && !e.name.endsWith('.d.ts')) out.push(path)
  }
  return out
}

/** The project files `file` imports (static, type-only, re-exports, literal `import()` and `require()`: a lazy load is an edge too). */
function importsOf(root, file, known) {
  const info = ts.preProcessFile(readFileSync(join(root, file), 'utf8'), true, true)
  const out = []
  for (const ref of info.importedFiles) {
    const spec = ref.fileName
    if (!spec.startsWith('.')) continue
    const target = relative(root, resolve(root, dirname(file), spec)).replace(/\.js$/, '.ts')
    if (known.has(target)) out.push(target)
    else if (known.has(`${target}/index.ts`)) out.push(`${target}/index.ts`)
    else out.push(`${target} (not found)`)
  }
  return out
}

/** Strongly connected components of more than one file, or a file importing itself (Tarjan). */
function cycles(graph) {
  let index = 0
  const idx = new Map()
  const low = new Map()
  const stack = []
  const on = new Set()
  const found = []
  const visit = (v) => {
    idx.set(v, index)
    low.set(v, index)
    index++
    stack.push(v)
    on.add(v)
    for (const w of graph.get(v) ?? []) {
      if (!graph.has(w)) continue
      if (!idx.has(w)) {
        visit(w)
        low.set(v, Math.min(low.get(v), low.get(w)))
      } else if (on.has(w)) {
        low.set(v, Math.min(low.get(v), idx.get(w)))
      }
    }
    if (low.get(v) === idx.get(v)) {
      const scc = []
      let w
      do {
        w = stack.pop()
        on.delete(w)
        scc.push(w)
      } while (w !== v)
      if (scc.length > 1 || (graph.get(v) ?? []).includes(v)) found.push(scc.sort())
    }
  }
  for (const v of graph.keys()) if (!idx.has(v)) visit(v)
  return found
}

/** One path around a cycle, for the message: `a → b → c → a`. */
function loopThrough(scc, graph) {
  const members = new Set(scc)
  const start = scc[0]
  const prev = new Map([[start, null]])
  const queue = [start]
  while (queue.length > 0) {
    const v = queue.shift()
    for (const w of graph.get(v) ?? []) {
      if (!members.has(w)) continue
      if (w === start) {
        const path = [start]
        for (let c = v; c !== start; c = prev.get(c)) path.splice(1, 0, c)
        return [...path, start].join(' → ')
      }
      if (!prev.has(w)) {
        prev.set(w, v)
        queue.push(w)
      }
    }
  }
  return scc.join(', ')
}

/**
 * Folders (LAYERS entries) that import each other, each loop with one import per step:
 * files may form no cycle and still tie two folders together both ways.
 */
function partCycles(graph) {
  const parts = new Map()
  const via = new Map()
  for (const [file, deps] of graph) {
    const from = partOf(file)
    if (from === undefined) continue
    if (!parts.has(from)) parts.set(from, new Set())
    for (const dep of deps) {
      const to = partOf(dep)
      if (to === undefined || to === from) continue
      parts.get(from).add(to)
      if (!via.has(`${from} ${to}`)) via.set(`${from} ${to}`, `${file} → ${dep}`)
    }
  }
  const partGraph = new Map([...parts].map(([p, to]) => [p, [...to]]))
  return cycles(partGraph).map((scc) => {
    const loop = loopThrough(scc, partGraph).split(' → ')
    const steps = loop.slice(1).map((to, i) => via.get(`${loop[i]} ${to}`))
    return `folders importing each other: ${loop.join(' → ')} (${steps.join('; ')})`
  })
}

/** Every layering problem of the `src/` tree under `root` (the package by default). */
export function check(root = ROOT) {
  const files = sources(root, 'src')
  const known = new Set(files)
  const graph = new Map(files.map((f) => [f, importsOf(root, f, known)]))
  const problems = []
  for (const [file, deps] of graph) {
    const from = layerOf(file)
    if (from === -1) {
      problems.push(`${file}: in no layer (add its folder to LAYERS in scripts/check-layers.mjs and to ARCHITECTURE.md)`)
      continue
    }
    for (const dep of deps) {
      if (dep.endsWith('(not found)')) {
        problems.push(`${file}: imports ${dep}`)
        continue
      }
      const to = layerOf(dep)
      if (to !== -1 && to < from) {
        problems.push(`${file}: imports ${dep}, a layer above it (${LAYERS[from].name} may import only ${LAYERS[from].name} and the layers below)`)
      }
    }
  }
  for (const scc of cycles(graph)) problems.push(`import cycle of ${scc.length} files: ${loopThrough(scc, graph)}`)
  problems.push(...partCycles(graph))
  return { files, graph, problems }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { graph, problems } = check()
  if (process.argv.includes('--graph')) {
    for (const [file, deps] of graph) console.log(`${LAYERS[layerOf(file)]?.name ?? '?'}  ${file}\n${deps.map((d) => `    → ${d}`).join('\n')}`)
  }
  for (const p of problems) console.error(p)
  if (problems.length > 0) {
    console.error(`\n${problems.length} layering problem(s): imports run one way (ARCHITECTURE.md, "Layout"), with no cycles.`)
    process.exit(1)
  }
}
