// The import rule of ARCHITECTURE.md ("Layout"): imports run one way, with no cycles.
// scripts/check-layers.mjs checks it in `npm run lint`; this runs the same check in the suite
// (so a tree that breaks the rule fails here too) and shows, on a small tree made here, that
// the check reports an upward import, a cycle of files or of folders and a file in no
// layer: it cannot pass by reading nothing.
import assert from 'node:assert/strict'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { after, test } from 'node:test'
import { pathToFileURL } from 'node:url'
import { root } from './helpers/spawned.js'

interface LayerCheck {
  check(this: void, root?: string): { files: string[]; problems: string[] }
}

const script = pathToFileURL(join(root, 'scripts/check-layers.mjs')).href
const { check } = (await import(script)) as LayerCheck

const dir = mkdtempSync(join(tmpdir(), 'layers-'))
after(() => rmSync(dir, { recursive: true, force: true }))

function write(files: Record<string, string>): string {
  const base = mkdtempSync(join(dir, 'tree-'))
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(dirname(join(base, path)), { recursive: true })
    writeFileSync(join(base, path), text)
  }
  return base
}

test('the source tree keeps the layer rule: no upward import, no cycle, every file in a layer', () => {
  const { files, problems } = check()
  assert.ok(files.length > 100, `read ${files.length} files`)
  assert.deepEqual(problems, [])
})

test('an upward import is reported with both files and the layers', () => {
  const base = write({
    'src/config/types.ts': "import type { Pool } from '../outbound/pool.js'\nexport type T = Pool\n",
    'src/outbound/pool.ts': 'export interface Pool { size: number }\n',
  })
  const { problems } = check(base)
  assert.equal(problems.length, 1, problems.join('\n'))
  assert.match(problems[0]!, /^src\/config\/types\.ts: imports src\/outbound\/pool\.ts, a layer above it/)
})

test('a cycle inside one layer is reported with its path, type-only imports included', () => {
  const base = write({
    'src/router/a.ts': "import type { B } from './b.js'\nexport interface A { b: B }\n",
    'src/router/b.ts': "import { c } from './c.js'\nexport interface B { n: number }\nexport const b = c\n",
    'src/router/c.ts': "import type { A } from './a.js'\nexport const c = 1 as unknown as A\n",
  })
  const { problems } = check(base)
  assert.deepEqual(problems, ['import cycle of 3 files: src/router/a.ts → src/router/b.ts → src/router/c.ts → src/router/a.ts'])
})

test('a file in no layer, and an import of a missing file, are reported', () => {
  const base = write({
    'src/elsewhere/x.ts': 'export const x = 1\n',
    'src/policy/y.ts': "export { z } from './z.js'\n",
  })
  const { problems } = check(base)
  assert.deepEqual(problems.sort(), [
    'src/elsewhere/x.ts: in no layer (add its folder to LAYERS in scripts/check-layers.mjs and to ARCHITECTURE.md)',
    'src/policy/y.ts: imports src/policy/z.ts (not found)',
  ])
})

test('two folders of one layer that import each other are reported, even without a file cycle', () => {
  const base = write({
    'src/inbound/a.ts': "import { b } from '../outbound/b.js'\nexport const a = b\n",
    'src/outbound/b.ts': 'export const b = 1\n',
    'src/outbound/c.ts': "import { d } from '../inbound/d.js'\nexport const c = d\n",
    'src/inbound/d.ts': 'export const d = 2\n',
  })
  const { problems } = check(base)
  assert.deepEqual(problems, [
    'folders importing each other: src/inbound/ → src/outbound/ → src/inbound/ (src/inbound/a.ts → src/outbound/b.ts; src/outbound/c.ts → src/inbound/d.ts)',
  ])
})
