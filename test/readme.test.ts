// The README's examples must stay true: its YAML config validates, its TypeScript examples
// type-check and run.
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { runInNewContext } from 'node:vm'
import ts from 'typescript'
import { parse, parseAllDocuments } from 'yaml'
import { fromIstio, validateConfig } from '../src/index.js'
import { startUpstream, type Seen } from './helpers/upstream.js'

const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8')
const root = fileURLToPath(new URL('../../', import.meta.url))
const run = promisify(execFile)

test('the README opens with the two set-up commands', () => {
  const firstBlock = /```sh\n([\s\S]*?)```/.exec(readme)?.[1] ?? ''
  assert.match(firstBlock, /^npm install && npm start/m)
  assert.match(firstBlock, /^npm install && npm test/m)
})

test('every config example in the README validates', () => {
  const blocks = [...readme.matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => m[1] as string)
  assert.ok(blocks.length >= 3, 'the README shows its config examples')
  for (const yaml of blocks) {
    if (!/^apiVersion:/m.test(yaml)) {
      assert.deepEqual(validateConfig(parse(yaml)), [], yaml)
      continue
    }
    // "Coming from Istio": manifests beside a mesh-config document, translated with nothing left out.
    const { config, unsupported } = fromIstio(parseAllDocuments(yaml).map((d) => d.toJS() as unknown))
    assert.deepEqual(unsupported, [], yaml)
    assert.deepEqual(validateConfig(config), [], yaml)
    assert.ok((config.virtualHosts ?? []).length > 0, 'the Istio example routes something')
  }
})

// ---------------------------------------------------------------- TypeScript examples
//
// Every ```ts block of the README is type-checked (strict, against the built package's
// types, as a user's `import ... from 'sidecarless'` sees them) and run in a child process
// against real upstream servers. A block is named by the `<!-- readme-test: NAME -->`
// comment above it; its harness below supplies what the prose around it assumes (a `mesh`,
// a config file, a server to call) and checks what it claims. A line whose comment starts
// with a JavaScript value (`expr   // 'v1' — who served it`, `// { v1: 90, v2: 10 }`) is
// checked: the expression must equal that value. A block that cannot run says why in its
// marker (`<!-- readme-test: not runnable: REASON -->`); it is still type-checked.

interface Harness {
  /** Code before the block (imports, the objects the prose assumes). */
  readonly before: string
  /** Code after it: drive it (send a request) and check it. */
  readonly after: string
  /** Checks in the test process, after the child exited 0. */
  readonly check: (seen: readonly Seen[]) => void
}

const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736'

const harnesses: Record<string, Harness> = {
  'prom-client': {
    before: `
import { createMesh } from 'sidecarless'
const mesh = createMesh({ service: 'productpage', labels: { version: 'v1' }, config: 'mesh.yaml' })
`,
    after: `
const res = await mesh.fetch('http://reviews/reviews/7')
assert.equal(res.status, 200)
await res.text()
const text = await register.metrics()
assert.match(text, /^istio_requests_total\\{[^}]*reporter="source"[^}]*destination_service_name="reviews"[^}]*\\} 1$/m)
assert.match(text, /^sidecarless_cluster_upstream_rq_total\\{[^}]*\\} 1$/m)
assert.match(text, /^process_cpu_seconds_total /m)
await mesh.close()
`,
    check: (seen) => {
      assert.ok(seen.some((s) => s.url === '/reviews/7'), 'the prom-client example called reviews')
    },
  },
  'quick-start': {
    before: '',
    after: '',
    check: (seen) => {
      assert.ok(seen.some((s) => s.url === '/reviews/1'), 'the quick start reached reviews')
    },
  },
  inbound: {
    before: `
import http from 'node:http'
import { createMesh } from 'sidecarless'
const mesh = createMesh({ service: 'productpage', config: 'mesh.yaml' })
const existingServer = http.createServer((_req, res) => res.end('existing'))
`,
    after: `
server.listen(0, '127.0.0.1')
await once(server, 'listening')
const port = (server.address() as import('node:net').AddressInfo).port
const answer = await fetch(\`http://127.0.0.1:\${port}/\`, { headers: { traceparent: '00-${TRACE_ID}-00f067aa0ba902b7-01', 'x-request-id': 'readme-1' } })
assert.equal(answer.status, 200)
assert.equal(await answer.text(), 'v1 /reviews/1')
server.closeAllConnections()
server.close()
existingServer.close()
await mesh.close()
`,
    check: (seen) => {
      const call = seen.find((s) => s.headers['x-request-id'] === 'readme-1')
      assert.ok(call !== undefined, 'the call made while serving carried the inbound x-request-id')
      assert.match(String(call.headers.traceparent), new RegExp(`^00-${TRACE_ID}-[0-9a-f]{16}-01$`), 'and continued the trace')
    },
  },
}

/** The blocks, each with the name its marker gives (or the reason it cannot run). */
function tsBlocks(): { name: string; code: string; notRunnable: string | undefined }[] {
  return [...readme.matchAll(/(?:<!--\s*readme-test:\s*([^\n]*?)\s*-->\n)?```ts\n([\s\S]*?)```/g)].map((m, i) => {
    const marker = m[1]
    const notRunnable = marker?.startsWith('not runnable:') === true ? marker.slice('not runnable:'.length).trim() : undefined
    return { name: marker === undefined ? `#${i + 1} (unmarked)` : marker.split(' ')[0] as string, code: m[2] as string, notRunnable }
  })
}

/** `expr   // <value> …` lines become assertions that `expr` equals `<value>`. */
function withValueChecks(code: string): string {
  return code.split('\n').map((line) => {
    const m = /^(\s*)([^/]*?\S)\s*\/\/\s*(.*)$/.exec(line)
    if (m === null || /^(const|let|var|await|import|export|return|if|for)\b/.test(m[2] as string) || /[;{(,]$/.test(m[2] as string)) return line
    const comment = m[3] as string
    const literal = /^('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|\{[^{}]*\}|\[[^[\]]*\]|-?\d+(?:\.\d+)?|true|false|null|undefined)(?=\s|$)/.exec(comment)?.[1]
    if (literal === undefined) return line
    try {
      runInNewContext(`(${literal})`, {})
    } catch {
      return line // `{ traceId, spanId, … }` describes a shape; it is not a value
    }
    return `${m[1] as string}assert.deepStrictEqual(${m[2] as string}, (${literal}))   // README: ${comment}`
  }).join('\n')
}

test('every TypeScript example in the README is marked, type-checks and runs against real servers', async () => {
  const blocks = tsBlocks()
  assert.ok(blocks.length >= 2, 'the README shows its TypeScript examples')
  for (const b of blocks) {
    assert.ok(b.notRunnable !== undefined || harnesses[b.name] !== undefined, `README ts block ${b.name} has no <!-- readme-test: NAME --> marker with a harness in test/readme.test.ts, nor a "not runnable: REASON" marker`)
    if (b.notRunnable !== undefined) assert.ok(b.notRunnable.length > 10, `block ${b.name}: say why it cannot run`)
  }
  const v1 = await startUpstream('v1')
  const v2 = await startUpstream('v2')
  const dir = mkdtempSync(join(root, 'build', 'readme-'))
  try {
    writeFileSync(join(dir, 'mesh.yaml'), `clusters:
  - name: reviews
    endpoints:
      - { address: "${v1.address}", labels: { version: v1 } }
      - { address: "${v2.address}", labels: { version: v2 } }
    subsets: [ { name: v1, labels: { version: v1 } }, { name: v2, labels: { version: v2 } } ]
virtualHosts:
  - name: reviews
    domains: [ reviews ]
    routes: [ { match: { prefix: / }, route: { cluster: reviews, subset: v1 } } ]
`)
    const files = blocks.map((b, i) => {
      const h = harnesses[b.name]
      const source = [
        "import assert from 'node:assert/strict'",
        "import { once } from 'node:events'",
        'void once',
        h?.before ?? '',
        b.notRunnable === undefined ? withValueChecks(b.code) : b.code,
        h?.after ?? '',
        'export {}',
      ].join('\n')
      const file = join(dir, `block-${i + 1}.ts`)
      writeFileSync(file, source)
      return { block: b, file, source }
    })

    // Type-check them all at once, as a user's strict NodeNext project would.
    const program = ts.createProgram(files.map((f) => f.file), {
      target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext,
      lib: ['lib.es2023.d.ts', 'lib.dom.d.ts'], types: ['node'], strict: true, noUncheckedIndexedAccess: true, skipLibCheck: true, noEmit: true,
      typeRoots: [join(root, 'node_modules', '@types')],
    })
    const diagnostics = ts.getPreEmitDiagnostics(program).map((d) => ts.formatDiagnostic(d, { getCanonicalFileName: (f) => f, getCurrentDirectory: () => dir, getNewLine: () => '\n' }))
    assert.deepEqual(diagnostics, [], 'the README examples type-check')

    for (const { block, file, source } of files) {
      if (block.notRunnable !== undefined) continue
      const js = ts.transpileModule(source, { compilerOptions: { target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.ESNext } }).outputText
      const mjs = file.replace(/\.ts$/, '.mjs')
      writeFileSync(mjs, js)
      v1.seen.length = 0
      v2.seen.length = 0
      const { stderr } = await run(process.execPath, [mjs], { cwd: dir, timeout: 30_000 })
        .catch((err: { code?: unknown; stdout?: string; stderr?: string; signal?: unknown }) => assert.fail(`README block ${block.name} failed (exit ${String(err.code)}, signal ${String(err.signal)}):\n${err.stdout ?? ''}\n${err.stderr ?? ''}\n--- code\n${source}`))
      assert.equal(stderr, '', `README block ${block.name} wrote to stderr`)
      harnesses[block.name]?.check([...v1.seen, ...v2.seen])
    }
  } finally {
    rmSync(dir, { recursive: true, force: true })
    await v1.close()
    await v2.close()
  }
})
