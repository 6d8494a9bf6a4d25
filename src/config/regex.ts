/**
 * `safeRegex` means RE2, as in Envoy: RE2's syntax (`\Q…\E`, `(?i)`, `\pL`, `\p{Greek}`,
 * `[[:alpha:]]`, `\z`, `\-`, …), RE2's matching (leftmost-first, Perl classes are ASCII, `$`
 * is the end of the text) and RE2's guarantee that a match takes time linear in the input,
 * whatever the pattern.
 *
 * The engine is `re2js`, a pure JavaScript port of RE2 (via RE2/J). Translating RE2 into
 * JavaScript's backtracking RegExp was the alternative; it was refused because no analysis
 * of the pattern makes a backtracking engine linear in general (`(a|aa)*`, `.*.*.*x`), and
 * the syntax differs in ways that change which strings match (`\s` has no `\v` in RE2, `(?i)`
 * scopes, `\p{Greek}`, `\Q…\E`). Measured on the development machine (loaded): a full
 * match costs 0.2–0.5 µs with re2js against 0.02–0.05 µs with a RegExp, and a compile about
 * 60 µs. Routes pay it rarely: a regex route is only run on requests whose path starts
 * with the pattern's literal prefix (`/api/v[0-9]+/…` → `/api/v`), compiled patterns are
 * shared by source, and route indexes file a regex route under the first path segment its
 * prefix pins.
 *
 * What differs from Envoy's RE2: `\C` (one byte) is taken as one character (the same on
 * ASCII text); RE2's program-size limit (Envoy's `re2.max_program_size.error_level`, 100 by
 * default) is not applied — larger patterns are accepted, and still match in linear time.
 *
 * @module
 */
import type { RE2JS } from 're2js'
import { re2js } from './lazy-modules.js'
import { limits } from './defaults.js'

/** A compiled RE2 pattern. */
export interface CompiledRegex {
  /** The pattern as written. */
  readonly source: string
  /**
   * A literal every match starts with (`''` when the pattern has none): a value that does
   * not start with it cannot match.
   */
  readonly literalPrefix: string
  /** True when the pattern is exactly the literal `literalPrefix`. */
  readonly isLiteral: boolean
  /** Number of capture groups. */
  readonly groups: number
  /** Whether the whole of `value` matches (RE2::FullMatch). */
  fullMatch(value: string): boolean
  /**
   * Every non-overlapping match of the pattern in `input` replaced by `rewrite`, as
   * RE2::GlobalReplace does (`\0`…`\9` are groups, `\\` a backslash); `rewrite` must have
   * passed {@link rewriteProblem}.
   */
  replaceAll(input: string, rewrite: string): string
}

/** Compiled patterns by source and flags: configs repeat patterns, and snapshots are rebuilt often. */
const cache = new Map<string, CompiledRegex>()
const CACHE_LIMIT = 10_000

/**
 * Why `pattern` is not a valid RE2 pattern (RE2's own error text), or `undefined` when it is.
 * Never throws.
 */
export function regexProblem(pattern: string): string | undefined {
  if (pattern.length > limits.regexLength) return `longer than ${limits.regexLength} characters`
  try {
    compileRegex(pattern)
    return undefined
  } catch (err) {
    return errorText(err)
  }
}

/** @deprecated the old name of {@link regexProblem}. */
export const unsafeRegexReason = regexProblem

/**
 * Compiles an RE2 pattern; throws (with RE2's message) when it is not valid. `ignoreCase`
 * is RE2's `(?i)` over the whole pattern.
 */
export function compileRegex(pattern: string, ignoreCase = false): CompiledRegex {
  const key = ignoreCase ? `i:${pattern}` : `-:${pattern}`
  let hit = cache.get(key)
  if (hit === undefined) {
    hit = new Re2Pattern(pattern, ignoreCase)
    if (cache.size >= CACHE_LIMIT) cache.clear()
    cache.set(key, hit)
  }
  return hit
}

/**
 * Why `rewrite` cannot be a substitution for `pattern` (RE2::CheckRewriteString), or
 * `undefined`: `\N` must name a group the pattern has, and a backslash is followed by a
 * digit or another backslash.
 */
export function rewriteProblem(pattern: string, rewrite: string): string | undefined {
  let groups: number
  try {
    groups = compileRegex(pattern).groups
  } catch {
    return undefined // the pattern's own problem is reported where the pattern is
  }
  for (let i = 0; i < rewrite.length; i++) {
    if (rewrite[i] !== '\\') continue
    const c = rewrite[++i]
    if (c === '\\') continue
    if (c === undefined || c < '0' || c > '9') return 'a backslash in a substitution is followed by a group number or another backslash (RE2)'
    if (Number(c) > groups) return `the substitution uses group \\${c}, but the pattern has ${groups === 0 ? 'no groups' : `only ${groups}`}`
  }
  return undefined
}

class Re2Pattern implements CompiledRegex {
  readonly source: string
  readonly literalPrefix: string
  readonly isLiteral: boolean
  readonly groups: number
  readonly #re: RE2JS
  /** The same pattern as a JavaScript RegExp, for ASCII text, when that is provably the same and linear ({@link jsEquivalent}). */
  readonly #js: RegExp | undefined
  /**
   * Whether the RegExp may say otherwise than RE2 on non-ASCII text (it has `.`, a negated
   * class, or folds case — RE2 folds `K` to the Kelvin sign); without those, no atom of it
   * can match a non-ASCII character in either engine, so the text need not be checked.
   */
  readonly #asciiOnly: boolean

  constructor(source: string, ignoreCase: boolean) {
    this.source = source
    const { RE2JS } = re2js()
    this.#re = RE2JS.compile(toRe2js(source), ignoreCase ? RE2JS.CASE_INSENSITIVE : 0)
    this.#js = jsEquivalent(source, ignoreCase)
    this.#asciiOnly = ignoreCase || /\.|\[\^/.test(source.replace(/\\./g, ''))
    this.groups = this.#re.groupCount()
    const [prefix, complete] = ignoreCase ? ['', false] : literalPrefixOf(this.#re, source)
    this.literalPrefix = prefix
    this.isLiteral = complete
  }

  fullMatch(value: string): boolean {
    if (this.isLiteral) return value === this.literalPrefix
    if (this.literalPrefix !== '' && !value.startsWith(this.literalPrefix)) return false
    if (this.#js !== undefined && (!this.#asciiOnly || !NON_ASCII.test(value))) return this.#js.test(value)
    return this.#re.testExact(asRe2Input(value))
  }

  replaceAll(input: string, rewrite: string): string {
    const m = this.#re.matcher(input)
    let out = ''
    let p = 0
    let lastEnd = -1
    let count = 0
    while (p <= input.length) {
      if (!m.find(p)) break
      const start = m.start()
      const end = m.end()
      if (start === end && start === lastEnd) {
        // RE2: no empty match right where the previous match ended; step one character on.
        if (p < input.length) {
          const step = stepOf(input, p)
          out += input.slice(p, p + step)
          p += step
        } else {
          p++
        }
        continue
      }
      out += input.slice(p, start)
      out += expand(rewrite, (g) => m.group(g) ?? '')
      p = end
      lastEnd = end
      count++
      if (start === end && p >= input.length) break
    }
    if (count === 0) return input
    return p < input.length ? out + input.slice(p) : out
  }
}

const NON_ASCII = /[\u0080-\uffff]/

/**
 * The pattern as a JavaScript RegExp (full match), when it is in a subset where RE2 and a
 * backtracking engine agree on ASCII text and the backtracking stays linear: literal ASCII,
 * escaped punctuation, `.` (as `[^\n]`), `\d`, `\w`, ASCII classes, and quantifiers on
 * single atoms — at most one unbounded (`*`, `+`, `{n,}`) and bounded ones whose ranges
 * multiply to at most 256; a leading `^` and a trailing `$` (no-ops in a full match). No
 * groups, alternation, flags, `\s` (RE2's has no `\v`), Unicode classes. Anything else:
 * `undefined`, and re2js runs. A route pattern such as `/api/v[0-9]+/items` is in it.
 */
function jsEquivalent(pattern: string, ignoreCase: boolean): RegExp | undefined {
  let body = pattern
  if (body.startsWith('^')) body = body.slice(1)
  if (body.endsWith('$') && !body.endsWith('\\$')) body = body.slice(0, -1)
  let out = ''
  let unbounded = 0
  let product = 1
  let atom = false
  let i = 0
  const punct = /[!-/:-@[-`{-~]/
  while (i < body.length) {
    const c = body[i] as string
    const code = c.charCodeAt(0)
    if (code < 0x20 || code > 0x7e) return undefined
    if (c === '\\') {
      const n = body[i + 1]
      if (n === undefined) return undefined
      if (n === 'd' || n === 'w' || punct.test(n)) out += `\\${n}`
      else return undefined
      i += 2
      atom = true
      continue
    }
    if (c === '.') {
      out += '[^\\n]'
      i++
      atom = true
      continue
    }
    if (c === '[') {
      const end = simpleClassEnd(body, i)
      if (end === undefined) return undefined
      out += body.slice(i, end)
      i = end
      atom = true
      continue
    }
    if (c === '*' || c === '+' || c === '?') {
      if (!atom) return undefined
      if (c === '?') product *= 2
      else unbounded++
      out += c
      i++
      if (body[i] === '?') {
        out += '?'
        i++
      }
      atom = false
      continue
    }
    if (c === '{') {
      const m = /^\{(\d{1,4})(,(\d{0,4}))?\}/.exec(body.slice(i))
      if (m === null || !atom) return undefined
      const min = Number(m[1])
      if (m[2] === undefined) {
        // {n}: fixed, nothing to backtrack
      } else if (m[3] === '') {
        unbounded++
      } else {
        const max = Number(m[3])
        if (max < min) return undefined
        product *= max - min + 1
      }
      out += m[0]
      i += m[0].length
      if (body[i] === '?') {
        out += '?'
        i++
      }
      atom = false
      continue
    }
    if ('()|^$'.includes(c)) return undefined
    out += c
    i++
    atom = true
  }
  if (unbounded > 1 || product > 256) return undefined
  try {
    return new RegExp(`^(?:${out})$`, ignoreCase ? 'i' : '')
  } catch {
    return undefined
  }
}

/** The end of an ASCII class with literal members, ranges, `\d`, `\w` and escaped punctuation; `undefined` otherwise. */
function simpleClassEnd(p: string, start: number): number | undefined {
  let i = start + 1
  if (p[i] === '^') i++
  if (p[i] === ']') return undefined
  while (i < p.length) {
    const c = p[i] as string
    const code = c.charCodeAt(0)
    if (code < 0x20 || code > 0x7e || c === '[') return undefined
    if (c === ']') return i + 1
    if (c === '\\') {
      const n = p[i + 1]
      if (n === undefined || !(n === 'd' || n === 'w' || /[!-/:-@[-`{-~]/.test(n))) return undefined
      i += 2
      continue
    }
    i++
  }
  return undefined
}

/** `\N` → group N, `\\` → `\`, in an RE2 rewrite string. */
function expand(rewrite: string, group: (n: number) => string): string {
  if (!rewrite.includes('\\')) return rewrite
  let out = ''
  for (let i = 0; i < rewrite.length; i++) {
    const c = rewrite[i] as string
    if (c !== '\\') {
      out += c
      continue
    }
    const next = rewrite[++i]
    if (next === '\\') out += '\\'
    else if (next !== undefined && next >= '0' && next <= '9') out += group(Number(next))
  }
  return out
}

/** Length in UTF-16 units of the character at `i`. */
function stepOf(s: string, i: number): number {
  const c = s.charCodeAt(i)
  return c >= 0xd800 && c <= 0xdbff && i + 1 < s.length ? 2 : 1
}

/**
 * The text RE2 would see. Node hands header values over as latin1 strings (one character
 * per byte); RE2 in Envoy reads the same bytes as UTF-8. A value with bytes above 0x7f and
 * no wider character is therefore given to the engine as bytes.
 */
function asRe2Input(value: string): string | Uint8Array {
  let wide = false
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i)
    if (c < 0x80) continue
    if (c > 0xff) return value
    wide = true
  }
  return wide ? new Uint8Array(Buffer.from(value, 'latin1')) : value
}

/**
 * RE2 syntax that re2js does not take, rewritten to what it means: `\C` (any byte in RE2;
 * any character here) becomes `(?s:.)`. Character classes and `\Q…\E` are copied as they
 * are, since `\C` means nothing there (and is an error inside a class, as in RE2).
 */
function toRe2js(pattern: string): string {
  if (!pattern.includes('\\C')) return pattern
  let out = ''
  let i = 0
  while (i < pattern.length) {
    const c = pattern[i] as string
    if (c === '\\') {
      const next = pattern[i + 1]
      if (next === 'C') {
        out += '(?s:.)'
        i += 2
        continue
      }
      if (next === 'Q') {
        const end = pattern.indexOf('\\E', i + 2)
        const stop = end === -1 ? pattern.length : end + 2
        out += pattern.slice(i, stop)
        i = stop
        continue
      }
      out += pattern.slice(i, i + 2)
      i += 2
      continue
    }
    if (c === '[') {
      const stop = classEnd(pattern, i)
      out += pattern.slice(i, stop)
      i = stop
      continue
    }
    out += c
    i++
  }
  return out
}

/** Index just past the character class opening at `start` (RE2's rules: `]` first is literal, `[:name:]` nests). */
function classEnd(p: string, start: number): number {
  let i = start + 1
  if (p[i] === '^') i++
  if (p[i] === ']') i++
  while (i < p.length) {
    const c = p[i]
    if (c === '\\') {
      i += 2
      continue
    }
    if (c === '[' && p[i + 1] === ':') {
      const close = p.indexOf(':]', i + 2)
      if (close !== -1) {
        i = close + 2
        continue
      }
    }
    if (c === ']') return i + 1
    i++
  }
  return p.length
}

/**
 * The literal prefix of every match, and whether it is the whole pattern. A leading `^`
 * changes nothing for a full match, so the prefix is read from the pattern without it.
 */
function literalPrefixOf(re: RE2JS, source: string): [string, boolean] {
  let inner = prefixFields(re)
  if (inner[0] === '' && source.startsWith('^') && source.length > 1) {
    try {
      inner = prefixFields(re2js().RE2JS.compile(toRe2js(source.slice(1))))
    } catch {
      return ['', false]
    }
  }
  return inner
}

function prefixFields(re: RE2JS): [string, boolean] {
  // re2js keeps the literal prefix RE2/J computes for its own searches; read it defensively.
  const internal = re.re2() as unknown as { prefix?: unknown; prefixComplete?: unknown }
  const prefix = typeof internal.prefix === 'string' ? internal.prefix : ''
  // Only the ASCII head: values with other bytes are matched as UTF-8 bytes (asRe2Input),
  // where a string comparison would not hold.
  let ascii = 0
  while (ascii < prefix.length && prefix.charCodeAt(ascii) < 0x80) ascii++
  return [prefix.slice(0, ascii), ascii > 0 && ascii === prefix.length && internal.prefixComplete === true]
}

function errorText(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err)
  return message.startsWith('error parsing regexp: ') ? message.slice('error parsing regexp: '.length) : message
}
