// The README's examples must stay true: its YAML config validates, its table of local
// replies matches what the mesh sends.
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { test } from 'node:test'
import { parse, parseAllDocuments } from 'yaml'
import { fromIstio, validateConfig } from '../src/index.js'

const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8')

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
