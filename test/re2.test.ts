/**
 * safeRegex is RE2, as in Envoy. The vectors in test/fixtures/re2/vectors.json are RE2's
 * own test cases (search_test.cc, re2_test.cc; BSD-3-Clause, The RE2 Authors) plus patterns
 * Envoy route tables carry, each with the verdict C++ RE2 gave (see generate.py there):
 * whether the pattern compiles, whether the text matches in full, and what GlobalReplace
 * makes of it. We must agree on every one, except the documented `\C` difference.
 */
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { describe, it } from 'node:test'
import { compileRegex, regexProblem, rewriteProblem } from '../src/config/regex.js'
import { createMesh, validateConfig } from '../src/index.js'

interface Vector {
  readonly from: string
  readonly pattern: string
  readonly text: string
  readonly error?: string
  readonly full?: boolean
  readonly partial?: boolean
  readonly rewrite?: string
  readonly replaced?: string
  readonly rewriteError?: string
}

const fixture = JSON.parse(readFileSync(new URL('../../test/fixtures/re2/vectors.json', import.meta.url), 'utf8')) as {
  header: string
  source: { license: string }
  vectors: Vector[]
}

/**
 * `\C` is one byte in RE2 and one character here: the same on ASCII, different on a
 * multi-byte character. These are the vectors where that shows (documented in regex.ts).
 */
const ONE_BYTE = new Set(['^\\C\\C\\C$ 本', '^\\C$ 本', '^\\C\\C\\C$ 日本語'])

/** The text as it arrives on the wire: UTF-8 bytes, which Node hands over one character per byte. */
const wire = (s: string): string => Buffer.from(s, 'utf8').toString('latin1')

describe('RE2 (safeRegex) agrees with C++ RE2', () => {
  it('credits its sources and holds enough vectors', () => {
    assert.match(fixture.header, /google\/re2/)
    assert.equal(fixture.source.license, 'BSD-3-Clause')
    assert.ok(fixture.vectors.length >= 300, `${fixture.vectors.length} vectors`)
    assert.ok(fixture.vectors.filter((v) => v.error !== undefined).length >= 15)
    assert.ok(fixture.vectors.filter((v) => v.replaced !== undefined).length >= 15)
  })

  it('accepts exactly the patterns RE2 accepts', () => {
    const wrong: string[] = []
    for (const v of fixture.vectors) {
      const problem = regexProblem(v.pattern)
      if ((problem === undefined) !== (v.error === undefined)) wrong.push(`${JSON.stringify(v.pattern)}: RE2 says ${v.error ?? 'ok'}, we say ${problem ?? 'ok'}`)
    }
    assert.deepEqual(wrong, [])
  })

  it('full-matches the same texts, given as strings and as wire bytes', () => {
    const wrong: string[] = []
    for (const v of fixture.vectors) {
      if (v.full === undefined) continue
      const re = compileRegex(v.pattern)
      const want = ONE_BYTE.has(`${v.pattern} ${v.text}`) ? !v.full : v.full
      for (const text of [v.text, wire(v.text)]) {
        if (re.fullMatch(text) !== want) wrong.push(`${JSON.stringify(v.pattern)} on ${JSON.stringify(text)}: RE2 ${String(v.full)}`)
      }
    }
    assert.deepEqual(wrong, [])
  })

  it('rewrites as RE2::GlobalReplace does, and refuses the rewrites RE2 refuses', () => {
    const wrong: string[] = []
    for (const v of fixture.vectors) {
      if (v.rewrite === undefined) continue
      const problem = rewriteProblem(v.pattern, v.rewrite)
      if ((problem === undefined) !== (v.rewriteError === undefined)) wrong.push(`${v.rewrite}: ${problem ?? 'ok'} vs ${v.rewriteError ?? 'ok'}`)
      if (v.replaced === undefined) continue
      const got = compileRegex(v.pattern).replaceAll(v.text, v.rewrite)
      if (got !== v.replaced) wrong.push(`${JSON.stringify(v.pattern)} / ${JSON.stringify(v.rewrite)} on ${JSON.stringify(v.text)}: ${JSON.stringify(got)}, RE2 ${JSON.stringify(v.replaced)}`)
    }
    assert.deepEqual(wrong, [])
  })

  it('a rewrite naming a group the pattern lacks is refused', () => {
    assert.match(rewriteProblem('(a)', '\\2') ?? '', /group \\2/)
    assert.equal(rewriteProblem('(a)(b)', '\\2\\1\\0\\\\'), undefined)
    assert.match(rewriteProblem('a', '\\x') ?? '', /backslash/)
  })

  it('patterns that backtrack exponentially in JavaScript match in linear time', () => {
    // No timing assertion: these would not finish in a backtracking engine.
    assert.equal(compileRegex('(a+)+$').fullMatch(`${'a'.repeat(100_000)}b`), false)
    assert.equal(compileRegex('(a|aa)*c').fullMatch('a'.repeat(100_000)), false)
    assert.equal(compileRegex('(.*)*x(.*)*y').fullMatch(`${'x'.repeat(50_000)}z`), false)
  })

  it('valid RE2 route patterns are accepted by validation (JavaScript syntax refused them)', () => {
    const config = {
      clusters: [{ name: 'c', endpoints: [{ address: '127.0.0.1:1' }] }],
      virtualHosts: [{
        name: 'vh',
        domains: ['*'],
        routes: [
          { name: '0', match: { safeRegex: '/api\\-v1/\\d+' }, route: { cluster: 'c' } },
          { name: '1', match: { safeRegex: '(?i)/Users/\\pL+' }, route: { cluster: 'c' } },
          { name: '2', match: { safeRegex: '\\Q/a.b\\E/[[:digit:]]+' }, route: { cluster: 'c' } },
          { name: '3', match: { prefix: '/', headers: [{ name: 'x-v', safeRegex: '\\p{Greek}+\\z' }] }, route: { cluster: 'c' } },
        ],
      }],
    }
    assert.deepEqual(validateConfig(config), [])
    const mesh = createMesh({ config })
    try {
      const at = (path: string, headers: Record<string, string> = {}): string | undefined => {
        const d = mesh.route({ url: `http://svc${path}`, headers })
        return d.kind === 'cluster' ? d.route : d.kind
      }
      assert.equal(at('/api-v1/42'), '0')
      assert.equal(at('/USERS/Zoe'), '1')
      // The URL is percent-encoded, as on the wire: %C3%AB is not a letter to RE2 either.
      assert.equal(at('/users/Zoë'), 'no_route')
      assert.equal(at('/a.b/12'), '2')
      assert.equal(at('/axb/12'), 'no_route')
      assert.equal(at('/x', { 'x-v': 'αβγ' }), '3')
      assert.equal(at('/x', { 'x-v': 'abc' }), 'no_route')
    } finally {
      void mesh.close()
    }
  })

  it('invalid RE2 is refused with RE2\'s reason', () => {
    const issues = validateConfig({
      clusters: [{ name: 'c', endpoints: [{ address: '127.0.0.1:1' }] }],
      virtualHosts: [{ name: 'vh', domains: ['*'], routes: [{ match: { safeRegex: '(a)\\1' }, route: { cluster: 'c' } }] }],
    })
    assert.equal(issues.length, 1)
    assert.equal(issues[0]?.code, 'INVALID_REGEX')
    assert.match(issues[0]?.message ?? '', /invalid escape sequence/)
  })
})
