/**
 * Every error code and config issue code is documented in docs/errors.md (as fastify checks
 * its error table), and the document names no code that does not exist.
 */
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { describe, it } from 'node:test'
import { ConfigIssueCodes, ConfigWarningCodes, ErrorCodes } from '../src/index.js'

// Compiled to build/test/, so the repository root is two levels up.
const doc = readFileSync(new URL('../../docs/errors.md', import.meta.url), 'utf8')

/** The first cells of the rows of the table that follows `heading`. */
function tableCodes(heading: string): string[] {
  const start = doc.indexOf(`\n${heading}\n`)
  assert.notEqual(start, -1, `docs/errors.md has a "${heading}" section`)
  const rest = doc.slice(start + heading.length + 2)
  const next = rest.search(/\n#{1,6} /)
  const section = next === -1 ? rest : rest.slice(0, next)
  const codes: string[] = []
  for (const line of section.split('\n')) {
    const m = /^\|\s*`([A-Z0-9_]+)`\s*\|/.exec(line)
    if (m !== null) codes.push(m[1] as string)
  }
  return codes
}

describe('docs/errors.md', () => {
  const errorRows = tableCodes('## Error codes')
  const issueRows = tableCodes('## Config issue codes')

  for (const code of Object.keys(ErrorCodes)) {
    it(`documents ${code}`, () => {
      assert.ok(doc.includes(code), `${code} is not mentioned in docs/errors.md`)
      assert.ok(errorRows.includes(code), `${code} has no row in the "Error codes" table`)
    })
  }

  for (const code of Object.keys(ConfigIssueCodes)) {
    it(`documents ${code}`, () => {
      assert.ok(doc.includes(code), `${code} is not mentioned in docs/errors.md`)
      assert.ok(issueRows.includes(code), `${code} has no row in the "Config issue codes" table`)
    })
  }

  it('documents no code that does not exist, and each code once', () => {
    assert.deepEqual([...errorRows].sort(), Object.keys(ErrorCodes).sort())
    assert.deepEqual([...issueRows].sort(), Object.keys(ConfigIssueCodes).sort())
  })

  it('documents every config warning code, and no other', () => {
    assert.deepEqual(tableCodes('## Config warnings').sort(), Object.keys(ConfigWarningCodes).sort())
  })

  it('every table row has the same number of cells as its header', () => {
    for (const heading of ['## Error codes', '## Config issue codes']) {
      const start = doc.indexOf(`\n${heading}\n`)
      const lines = doc.slice(start).split('\n').slice(1)
      const table = lines.slice(lines.findIndex((l) => l.startsWith('|')))
      const end = table.findIndex((l) => !l.startsWith('|'))
      const rows = end === -1 ? table : table.slice(0, end)
      // Cells are split on `|` outside backticks.
      const cells = (row: string): number => row.replace(/`[^`]*`/g, '``').split('|').length - 2
      const width = cells(rows[0] as string)
      for (const row of rows) assert.equal(cells(row), width, `${heading}: ${row.slice(0, 80)}`)
    }
  })
})
