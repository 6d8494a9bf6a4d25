/**
 * Builds dist/'s JavaScript: src/ bundled by esbuild, a few files instead of ~150.
 *
 * Why (measured with bench/side-by-side.mjs's RSS probe, Node 24): `import 'sidecarless'`
 * as ~150 modules added ~9 MB RSS to a process, half of it because V8 grew its young
 * generation: every module's source text, its records in Node's ES loader and its
 * top-level objects are allocated young and all survive, and V8 doubles the young
 * generation when more survives a scavenge than it holds. A few large files do not do that
 * (a large source text is allocated apart, in the large-object space), carry no comments
 * (the .d.ts keep the TSDoc; tsc writes them) and are one-byte strings (`charset: ascii`
 * escapes the odd `…` of a message, which made its whole file a two-byte string). Details
 * and figures: docs/memory.md.
 *
 * What stays as it was: identifiers are not minified (stack traces read as the source; a
 * few helpers whose names collide across modules get a digit, `isObject2`, as esbuild
 * renames them: `keepNames` would restore those names at the cost of ~0.3 MB of heap, one
 * property per function), source maps point into src/, and the families most processes never use (the
 * Envoy and Istio importers, the xDS client, the control plane) stay apart and load on
 * first use. Those are found here, not listed: a module that loads one does it with
 * `createRequire(import.meta.url)('./relative/path.js')` (synchronous, see
 * src/config/importers.ts) or `import('./relative/path.js')`; each such target becomes an
 * entry point of its own, and a relative `require` is rewritten to the target's path from
 * dist/'s root, where the code that calls it lands (checked below: the build fails
 * otherwise).
 *
 *   node scripts/bundle.mjs            writes dist/**.js and .js.map (tsc writes the .d.ts)
 */
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { dirname, join, relative, resolve, sep } from 'node:path'
import { fileURLToPath } from 'node:url'
import { build } from 'esbuild'
import ts from 'typescript'

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const SRC = join(ROOT, 'src')
const OUT = join(ROOT, 'dist')

/** The package's entry points (package.json `exports` and `bin`). */
const ENTRIES = ['index.ts', 'register.ts', 'fetch-entry.ts', 'cli/main.ts']

/** `createRequire(import.meta.url)('./x.js')`, or `require('./x.js')` in a file that made `require` so. */
const LAZY_REQUIRE = /\b(require|createRequire\(import\.meta\.url\))\(\s*(['"])(\.{1,2}\/[^'"]+\.js)\2\s*\)/g

function sources(dir) {
  const out = []
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, e.name)
    if (e.isDirectory()) out.push(...sources(path))
    else if (e.name.endsWith('.ts') && !e.name.endsWith('.d.ts')) out.push(path)
  }
  return out
}

/** Files that load one of ours with a relative `require`: file → the targets (absolute .ts paths). */
function lazyRequires() {
  const found = new Map()
  for (const file of sources(SRC)) {
    const text = readFileSync(file, 'utf8')
    if (!text.includes('createRequire(import.meta.url)')) continue
    const targets = [...text.matchAll(LAZY_REQUIRE)].map((m) => resolve(dirname(file), m[3]).replace(/\.js$/, '.ts'))
    if (targets.length > 0) found.set(file, targets)
  }
  return found
}

const toPosix = (p) => p.split(sep).join('/')

/**
 * What src/ imports from each Node.js built-in (`node:http` → default and/or names); type-only
 * imports left out.
 */
function builtinImports() {
  const found = new Map()
  for (const file of sources(SRC)) {
    const sf = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.Latest, false, ts.ScriptKind.TS)
    for (const st of sf.statements) {
      if (!ts.isImportDeclaration(st) && !ts.isExportDeclaration(st)) continue
      const spec = st.moduleSpecifier
      if (spec === undefined || !ts.isStringLiteral(spec) || !spec.text.startsWith('node:')) continue
      const entry = found.get(spec.text) ?? { default: false, names: new Set() }
      found.set(spec.text, entry)
      if (ts.isExportDeclaration(st)) throw new Error(`${relative(ROOT, file)}: re-exports from ${spec.text} are not handled by scripts/bundle.mjs`)
      const clause = st.importClause
      if (clause === undefined || clause.isTypeOnly) continue
      if (clause.name !== undefined) entry.default = true
      const bindings = clause.namedBindings
      if (bindings === undefined) continue
      if (ts.isNamespaceImport(bindings)) throw new Error(`${relative(ROOT, file)}: \`import * as\` from ${spec.text} is not handled by scripts/bundle.mjs; import names, or the default`)
      for (const el of bindings.elements) if (!el.isTypeOnly) entry.names.add((el.propertyName ?? el.name).text)
    }
  }
  return found
}

export async function bundle() {
  const lazy = lazyRequires()
  const lazyTargets = [...new Set([...lazy.values()].flat())]
  const entryPoints = [...ENTRIES.map((e) => join(SRC, e)), ...lazyTargets]

  const compilerOptions = { ...ts.getParsedCommandLineOfConfigFile(join(ROOT, 'tsconfig.build.json'), {}, { ...ts.sys, onUnRecoverableConfigFileDiagnostic: () => {} }).options }
  Object.assign(compilerOptions, { module: ts.ModuleKind.ESNext, moduleResolution: ts.ModuleResolutionKind.Bundler, removeComments: true, sourceMap: false, inlineSourceMap: true, inlineSources: false, declaration: false, declarationMap: false, noEmit: false })
  // Each file through TypeScript's own per-file emit, with no comments (esbuild keeps those
  // on class members, and one `…` in a comment makes a whole file's text two bytes a
  // character); relative requires of lazy modules become paths from dist/'s root
  // (`./envoy/index.js` in src/config/importers.ts is `./config/envoy/index.js`).
  const emit = {
    name: 'typescript-emit',
    setup(b) {
      b.onLoad({ filter: /\.ts$/ }, (args) => {
        let text = readFileSync(args.path, 'utf8')
        if (lazy.has(args.path)) {
          text = text.replace(LAZY_REQUIRE, (_all, callee, quote, spec) => {
            const target = relative(SRC, resolve(dirname(args.path), spec))
            return `${callee}(${quote}./${toPosix(target)}${quote})`
          })
        }
        const out = ts.transpileModule(text, { compilerOptions, fileName: args.path, reportDiagnostics: false })
        return { contents: out.outputText, loader: 'js' }
      })
    },
  }

  // The Node.js version check runs before anything else is loaded (undici 7 itself fails
  // on an old Node): a file of its own, imported first by each entry point, and bundled
  // apart (esbuild's chunks would hoist other imports above it).
  const runtimeCheck = {
    name: 'runtime-check-first',
    setup(b) {
      b.onResolve({ filter: /^\.\/runtime-check\.js$/ }, (args) => (dirname(args.importer) === SRC ? { path: './runtime-check.js', external: true } : undefined))
    },
  }
  // An ES import of a built-in makes Node build the module's ES facade, which reads every
  // export, lazy getters included: `node:crypto` loads WebCrypto, `node:tls` the root
  // certificates, `node:module` the source-map support, `node:net` BlockList (~0.5 MB heap
  // for ours, measured). `process.getBuiltinModule` hands the CommonJS module as it is; the
  // names are read once, when the module is evaluated, as the facade does.
  const builtins = builtinImports()
  const builtinModules = {
    name: 'builtin-modules',
    setup(b) {
      b.onResolve({ filter: /^node:/ }, (args) => (builtins.has(args.path) ? { path: args.path, namespace: 'builtin' } : undefined))
      b.onLoad({ filter: /.*/, namespace: 'builtin' }, (args) => {
        const { default: withDefault, names } = builtins.get(args.path)
        const m = args.path.replace(/\W/g, '_')
        const lines = [`const ${m} = process.getBuiltinModule(${JSON.stringify(args.path)})`]
        if (withDefault) lines.push(`export default ${m}`)
        for (const n of [...names].sort()) lines.push(`export const ${n} = ${m}.${n}`)
        return { contents: lines.join('\n'), loader: 'js' }
      })
    },
  }
  const common = {
    bundle: true,
    format: 'esm',
    platform: 'node',
    target: 'node22',
    packages: 'external',
    sourcemap: 'linked',
    sourcesContent: false,
    charset: 'ascii',
    legalComments: 'none',
    // Our own package.json's `sideEffects` describes dist/ for users' bundlers; here every
    // module is kept for what it does when imported.
    ignoreAnnotations: true,
    tsconfig: join(ROOT, 'tsconfig.build.json'),
    logLevel: 'warning',
  }

  rmSync(OUT, { recursive: true, force: true })
  await build({ ...common, entryPoints: [join(SRC, 'runtime-check.ts')], outfile: join(OUT, 'runtime-check.js'), plugins: [emit] })
  const result = await build({
    ...common,
    entryPoints,
    outdir: OUT,
    outbase: SRC,
    entryNames: '[dir]/[name]',
    chunkNames: 'chunk-[hash]',
    splitting: true,
    metafile: true,
    plugins: [runtimeCheck, builtinModules, emit],
  })

  // Paths relative to `import.meta.url` (the rewritten requires, package.json found from
  // src/version.ts) hold only where that code lands: dist/'s root, as src/'s root files.
  const problems = []
  for (const [out, meta] of Object.entries(result.metafile.outputs)) {
    if (!out.endsWith('.js') || dirname(resolve(ROOT, out)) === OUT) continue
    for (const input of Object.keys(meta.inputs)) {
      const abs = resolve(ROOT, input)
      if (abs.startsWith(SRC) && readFileSync(abs, 'utf8').includes('import.meta')) problems.push(`${toPosix(relative(ROOT, abs))} reads import.meta, but its code landed in ${out}, not at dist/'s root`)
    }
  }
  // esbuild writes an entry's imports of its chunks before its external ones: the version
  // check's import goes to the head of line 1 (its own line left empty, so no line moves
  // and the source map holds).
  const CHECK = 'import "./runtime-check.js";'
  for (const out of Object.keys(result.metafile.outputs)) {
    if (!out.endsWith('.js')) continue
    const file = resolve(ROOT, out)
    const lines = readFileSync(file, 'utf8').split('\n')
    const at = lines.indexOf(CHECK)
    if (at <= 0) continue
    lines[at] = ''
    lines[0] = `${CHECK} ${lines[0]}`
    writeFileSync(file, lines.join('\n'))
  }
  for (const entry of ['index.js', 'register.js', 'fetch-entry.js']) {
    if (!readFileSync(join(OUT, entry), 'utf8').startsWith(CHECK)) problems.push(`dist/${entry} does not import the version check first`)
  }
  if (problems.length > 0) throw new Error(`bundle: ${problems.join('; ')}`)
  return result
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const result = await bundle()
  const files = Object.keys(result.metafile.outputs).filter((f) => f.endsWith('.js'))
  console.log(`bundle: ${files.length} files in dist/`)
}
