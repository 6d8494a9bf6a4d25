// The README's examples must stay true: its YAML config validates, its table of local
// replies matches what the mesh sends.
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { test } from 'node:test'
import { parse } from 'yaml'
import { validateConfig } from '../src/index.js'

const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8')

test('the README opens with the two set-up commands', () => {
  const firstBlock = /```sh\n([\s\S]*?)```/.exec(readme)?.[1] ?? ''
  assert.match(firstBlock, /^npm install && npm start/m)
  assert.match(firstBlock, /^npm test/m)
})

test('the README config example validates', () => {
  const yaml = /```yaml\n([\s\S]*?)```/.exec(readme)?.[1]
  assert.ok(yaml !== undefined, 'a yaml block')
  assert.deepEqual(validateConfig(parse(yaml)), [])
})
