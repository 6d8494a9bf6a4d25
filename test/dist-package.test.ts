/**
 * The package as users get it (run after `npm run build`): dist/ holds esbuild's bundle of
 * src/ (scripts/bundle.mjs) and tsc's declarations. What the bundle must keep: every
 * entry point of package.json, the version check before anything else, a source map per
 * file that points into src/, our function names in stack traces, and the TSDoc in the
 * declarations; what it is for: few files, no comments, one-byte source text (each of
 * these costs a process memory at import: docs/memory.md).
 */
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { SourceMap, type SourceMapPayload } from 'node:module'
import { join, relative } from 'node:path'
import { test } from 'node:test'
import { pathToFileURL } from 'node:url'
import { root } from './helpers/spawned.js'

const dist = join(root, 'dist')

function files(dir: string, ext: string): string[] {
  const out: string[] = []
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, e.name)
    if (e.isDirectory()) out.push(...files(path, ext))
    else if (e.name.endsWith(ext)) out.push(path)
  }
  return out
}

/** Runs an ES module body in a fresh node (cwd: the package root); returns what it printed last, parsed. */
function run(body: string): unknown {
  const out = execFileSync(process.execPath, ['--disable-warning=SIDECARLESS_UNSUPPORTED_NODE', '--input-type=module', '-e', body], { cwd: root, encoding: 'utf8' })
  return JSON.parse(out.trim().split('\n').at(-1) as string)
}

test('every entry point and type of package.json is in dist/', () => {
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { exports: Record<string, string | Record<string, string>>; bin: Record<string, string>; types: string; main: string }
  const targets = [pkg.main, pkg.types, ...Object.values(pkg.bin)]
  for (const e of Object.values(pkg.exports)) targets.push(...(typeof e === 'string' ? [e] : Object.values(e)))
  for (const t of targets) assert.ok(existsSync(join(root, t)), `${t} is missing`)
})

test('package.json `sideEffects` keeps every file whose import does something (the version check, the chunks)', () => {
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { sideEffects: string[] }
  // Bundlers read the patterns as globs; ours use `*` only.
  const listed = (file: string) => pkg.sideEffects.some((p) => new RegExp(`^${p.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*')}$`).test(file))
  const needed = ['./dist/runtime-check.js', './dist/register.js', './dist/fetch-entry.js', './dist/cli/main.js']
  for (const f of readdirSync(dist)) if (f.startsWith('chunk-') && f.endsWith('.js')) needed.push(`./dist/${f}`)
  for (const f of needed) assert.ok(listed(f), `${f} is not in package.json sideEffects: a bundler would drop \`import '${f}'\``)
})

test('each entry point runs the Node.js version check before it imports anything else', () => {
  for (const entry of ['index.js', 'register.js', 'fetch-entry.js']) {
    const text = readFileSync(join(dist, entry), 'utf8')
    assert.ok(text.startsWith('import "./runtime-check.js";'), `dist/${entry} starts with ${JSON.stringify(text.slice(0, 60))}`)
  }
  // The check is a file of its own: it imports nothing (nothing of ours, no package).
  assert.doesNotMatch(readFileSync(join(dist, 'runtime-check.js'), 'utf8'), /^\s*import\b/m)
})

test('`import \'sidecarless\'` loads a few files, not one per source module', () => {
  const result = run(`
import { registerHooks } from 'node:module'
const urls = new Set()
registerHooks({ resolve(s, c, next) { const r = next(s, c); urls.add(r.url); return r } })
await import('./dist/index.js')
console.log(JSON.stringify([...urls].filter((u) => u.includes('/dist/'))))
`) as string[]
  // 148 modules before the bundle; 17 files of it today (chunks shared with other entry points).
  assert.ok(result.length >= 2 && result.length <= 30, `${result.length} files: ${result.join(', ')}`)
})

test('dist/ JavaScript is ASCII and carries no comments but esbuild\'s file markers', () => {
  for (const file of files(dist, '.js')) {
    const text = readFileSync(file, 'utf8')
    const name = relative(root, file)
    // A single non-Latin-1 character makes V8 keep the whole source as a two-byte string.
    assert.ok([...text].every((c) => c.charCodeAt(0) < 0x80), `${name} has a non-ASCII character`)
    for (const line of text.split('\n')) {
      const t = line.trimStart()
      if (t.startsWith('/*') || (t.startsWith('//') && !/^\/\/ (src\/|builtin:)|^\/\/# sourceMappingURL=/.test(t))) assert.fail(`${name}: a comment: ${t.slice(0, 80)}`)
    }
  }
})

test('every dist/ file has a source map into src/, and a position maps back to its source line', () => {
  const js = files(dist, '.js')
  assert.ok(js.length > 5)
  for (const file of js) {
    const text = readFileSync(file, 'utf8')
    const m = /\/\/# sourceMappingURL=(\S+)\s*$/.exec(text)
    assert.ok(m, `${relative(root, file)} names no source map`)
    const mapFile = join(file, '..', m[1] as string)
    const payload = JSON.parse(readFileSync(mapFile, 'utf8')) as SourceMapPayload
    for (const s of payload.sources) {
      if (s.startsWith('builtin:')) continue
      const src = new URL(s, pathToFileURL(mapFile))
      assert.ok(existsSync(src), `${relative(root, mapFile)} names ${s}, which does not exist`)
    }
  }
  // createMesh's definition, wherever the bundle put it, maps to its line in src/mesh.ts.
  const chunk = js.find((f) => readFileSync(f, 'utf8').includes('\nfunction createMesh('))
  assert.ok(chunk, 'no dist/ file defines createMesh')
  const lines = readFileSync(chunk, 'utf8').split('\n')
  const line = lines.findIndex((l) => l.startsWith('function createMesh('))
  const map = new SourceMap(JSON.parse(readFileSync(`${chunk}.map`, 'utf8')) as SourceMapPayload)
  const entry = map.findEntry(line, 0) as { originalSource?: string; originalLine?: number }
  assert.match(entry.originalSource ?? '', /\/src\/mesh\.ts$/)
  const src = readFileSync(join(root, 'src', 'mesh.ts'), 'utf8').split('\n')
  assert.match(src[entry.originalLine as number] ?? '', /export function createMesh\(/)
})

test('a stack trace through dist/ names our functions', () => {
  const stack = run(`
const { createMesh } = await import('./dist/index.js')
try { createMesh({ config: { clusters: 'not a list' } }) } catch (err) { console.log(JSON.stringify(err.stack)) }
`) as string
  assert.match(stack, /ConfigError/)
  assert.match(stack, /at (new Mesh|createMesh) \(file:\/\/.*\/dist\//)
})

test('every class in dist/ keeps its own name (a class naming itself in its body is renamed by the bundler)', () => {
  const renamed: string[] = []
  for (const f of files(dist, '.js')) {
    for (const m of readFileSync(f, 'utf8').matchAll(/\bvar (\w+) = class (?!extends\b)(\w+)/g)) {
      if (m[1] !== m[2]) renamed.push(`${relative(dist, f)}: ${m[1]} is class ${m[2]}`)
    }
  }
  assert.deepEqual(renamed, [])
})

test('the declarations keep the TSDoc (editors and the API site read it)', () => {
  const mesh = readFileSync(join(dist, 'mesh.d.ts'), 'utf8')
  assert.match(mesh, /\/\*\* Creates a mesh\. Throws a \{@link ConfigError\}/)
  assert.ok(files(dist, '.d.ts').length > 100)
  assert.ok(existsSync(join(dist, 'mesh.d.ts.map')), 'declaration maps (go to definition lands in src/)')
})

test('the CLI and the package version work from the bundle', () => {
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }
  const out = execFileSync(process.execPath, ['--disable-warning=SIDECARLESS_UNSUPPORTED_NODE', join(dist, 'cli', 'main.js'), '--version'], { encoding: 'utf8' })
  assert.match(out, new RegExp(pkg.version.replaceAll('.', '\\.')))
})
