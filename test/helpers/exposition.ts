/**
 * A strict parser of the Prometheus text exposition format 0.0.4, for tests: every family
 * typed and documented once, valid names, escapes, histograms well-formed.
 */
import assert from 'node:assert/strict'

// ---------------------------------------------------------------- a strict parser of the text format

/**
 * A strict parser of the Prometheus text exposition format 0.0.4, written from the format's
 * specification and the rules of the reference parser (Go's expfmt): a character-level
 * tokenizer, not pattern matching on our own output. It rejects what Prometheus rejects
 * (bad names, bad escapes, unterminated quotes, duplicate labels, a second TYPE or HELP, TYPE
 * after samples, a family split in two groups, duplicate series, malformed histograms) and a
 * little more (leading blanks, missing final newline).
 */
export interface ParsedSample {
  readonly name: string
  readonly labels: Readonly<Record<string, string>>
  readonly value: number
}
export interface ParsedFamily {
  readonly name: string
  type: string | undefined
  help: string | undefined
  readonly samples: ParsedSample[]
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/
const TYPES = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped'])

class ExpositionError extends Error {
  constructor(line: number, message: string) {
    super(`line ${line}: ${message}`)
  }
}

function parseValue(token: string, line: number): number {
  if (token === 'NaN') return NaN
  if (token === '+Inf' || token === 'Inf') return Infinity
  if (token === '-Inf') return -Infinity
  if (!/^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/.test(token)) throw new ExpositionError(line, `invalid value ${JSON.stringify(token)}`)
  return Number(token)
}

export function parseExposition(text: string): Map<string, ParsedFamily> {
  if (text.length > 0 && !text.endsWith('\n')) throw new ExpositionError(0, 'the exposition must end with a line feed')
  const families = new Map<string, ParsedFamily>()
  const finished = new Set<string>()
  const seenSeries = new Set<string>()
  let current: ParsedFamily | undefined
  const family = (name: string): ParsedFamily => {
    let f = families.get(name)
    if (f === undefined) {
      f = { name, type: undefined, help: undefined, samples: [] }
      families.set(name, f)
    }
    return f
  }
  const enter = (f: ParsedFamily, line: number): void => {
    if (current === f) return
    if (finished.has(f.name)) throw new ExpositionError(line, `family ${f.name} appears in two separate groups`)
    if (current !== undefined) finished.add(current.name)
    current = f
  }
  const lines = text.split('\n')
  lines.pop()
  lines.forEach((raw, index) => {
    const line = index + 1
    if (raw === '') return
    if (raw[0] === ' ' || raw[0] === '\t') throw new ExpositionError(line, 'leading blank')
    if (raw[0] === '#') {
      const m = /^# (HELP|TYPE) (\S+)(?: (.*))?$/.exec(raw)
      if (m === null) return // a plain comment
      const [, keyword, name, rest] = m as unknown as [string, 'HELP' | 'TYPE', string, string | undefined]
      if (!METRIC_NAME.test(name)) throw new ExpositionError(line, `invalid metric name ${JSON.stringify(name)}`)
      const f = family(name)
      enter(f, line)
      if (keyword === 'TYPE') {
        if (f.type !== undefined) throw new ExpositionError(line, `second TYPE for ${name}`)
        if (f.samples.length > 0) throw new ExpositionError(line, `TYPE for ${name} after its samples`)
        if (rest === undefined || !TYPES.has(rest)) throw new ExpositionError(line, `invalid type ${JSON.stringify(rest)}`)
        f.type = rest
      } else {
        if (f.help !== undefined) throw new ExpositionError(line, `second HELP for ${name}`)
        f.help = unescape(rest ?? '', false, line)
      }
      return
    }
    const sample = parseSampleLine(raw, line)
    const f = familyOf(sample.name, families) ?? family(sample.name)
    enter(f, line)
    const key = `${sample.name}${JSON.stringify(Object.entries(sample.labels).sort())}`
    if (seenSeries.has(key)) throw new ExpositionError(line, `duplicate series ${key}`)
    seenSeries.add(key)
    f.samples.push(sample)
  })
  for (const f of families.values()) if (f.type === 'histogram') checkHistogram(f)
  return families
}

/** The family a sample belongs to: its own name, or a histogram's/summary's base name. */
function familyOf(name: string, families: ReadonlyMap<string, ParsedFamily>): ParsedFamily | undefined {
  const own = families.get(name)
  if (own !== undefined) return own
  for (const suffix of ['_bucket', '_sum', '_count']) {
    if (!name.endsWith(suffix)) continue
    const base = families.get(name.slice(0, -suffix.length))
    if (base?.type === 'histogram' || (base?.type === 'summary' && suffix !== '_bucket')) return base
  }
  return undefined
}

function unescape(s: string, inLabel: boolean, line: number): string {
  let out = ''
  for (let i = 0; i < s.length; i++) {
    const ch = s[i]!
    if (ch !== '\\') {
      out += ch
      continue
    }
    const next = s[++i]
    if (next === '\\') out += '\\'
    else if (next === 'n') out += '\n'
    else if (next === '"' && inLabel) out += '"'
    else throw new ExpositionError(line, `invalid escape \\${next ?? ''}`)
  }
  return out
}

function parseSampleLine(raw: string, line: number): ParsedSample {
  let i = 0
  const isNameChar = (c: string): boolean => /[a-zA-Z0-9_:]/.test(c)
  while (i < raw.length && isNameChar(raw[i]!)) i++
  const name = raw.slice(0, i)
  if (!METRIC_NAME.test(name)) throw new ExpositionError(line, `invalid metric name ${JSON.stringify(name)}`)
  const labels: Record<string, string> = {}
  const skipBlanks = (): void => {
    while (raw[i] === ' ' || raw[i] === '\t') i++
  }
  if (raw[i] === '{') {
    i++
    skipBlanks()
    while (raw[i] !== '}') {
      const start = i
      while (i < raw.length && /[a-zA-Z0-9_]/.test(raw[i]!)) i++
      const label = raw.slice(start, i)
      if (!LABEL_NAME.test(label) || label.startsWith('__')) throw new ExpositionError(line, `invalid label name ${JSON.stringify(label)}`)
      if (Object.hasOwn(labels, label)) throw new ExpositionError(line, `duplicate label ${label}`)
      skipBlanks()
      if (raw[i++] !== '=') throw new ExpositionError(line, `expected = after ${label}`)
      skipBlanks()
      if (raw[i++] !== '"') throw new ExpositionError(line, `expected " to open the value of ${label}`)
      let value = ''
      for (;;) {
        const ch = raw[i++]
        if (ch === undefined) throw new ExpositionError(line, `unterminated value of ${label}`)
        if (ch === '"') break
        if (ch === '\\') {
          const next = raw[i++]
          if (next === undefined) throw new ExpositionError(line, `unterminated value of ${label}`)
          value += '\\' + next
        } else {
          value += ch
        }
      }
      labels[label] = unescape(value, true, line)
      skipBlanks()
      if (raw[i] === ',') {
        i++
        skipBlanks()
      } else if (raw[i] !== '}') {
        throw new ExpositionError(line, `expected , or } after the value of ${label}`)
      }
    }
    i++
  }
  if (raw[i] !== ' ' && raw[i] !== '\t') throw new ExpositionError(line, 'expected a blank before the value')
  const tokens = raw.slice(i).trim().split(/[ \t]+/)
  if (tokens.length < 1 || tokens.length > 2 || tokens[0] === '') throw new ExpositionError(line, 'expected a value and an optional timestamp')
  const value = parseValue(tokens[0]!, line)
  if (tokens[1] !== undefined && !/^-?\d+$/.test(tokens[1])) throw new ExpositionError(line, `invalid timestamp ${tokens[1]}`)
  return { name, labels, value }
}

function withoutLe(labels: Readonly<Record<string, string>>): string {
  return JSON.stringify(Object.entries(labels).filter(([k]) => k !== 'le').sort())
}

/** A histogram's buckets ascend in `le`, counts never decrease, and `+Inf` equals `_count`. */
function checkHistogram(f: ParsedFamily): void {
  const series = new Map<string, { buckets: [number, number][]; sum?: number; count?: number }>()
  for (const s of f.samples) {
    const key = withoutLe(s.labels)
    let h = series.get(key)
    if (h === undefined) series.set(key, (h = { buckets: [] }))
    if (s.name === `${f.name}_bucket`) {
      const le = s.labels.le
      if (le === undefined) throw new Error(`${f.name}: bucket without le`)
      h.buckets.push([parseValue(le, 0), s.value])
    } else if (s.name === `${f.name}_sum`) {
      h.sum = s.value
    } else if (s.name === `${f.name}_count`) {
      h.count = s.value
    } else {
      throw new Error(`${f.name}: unexpected sample ${s.name} in a histogram`)
    }
  }
  for (const [key, h] of series) {
    assert.ok(h.buckets.length > 0, `${f.name}${key}: no buckets`)
    for (let i = 1; i < h.buckets.length; i++) {
      assert.ok(h.buckets[i]![0] > h.buckets[i - 1]![0], `${f.name}${key}: le not ascending`)
      assert.ok(h.buckets[i]![1] >= h.buckets[i - 1]![1], `${f.name}${key}: bucket counts not cumulative`)
    }
    const last = h.buckets.at(-1)!
    assert.equal(last[0], Infinity, `${f.name}${key}: last bucket is not +Inf`)
    assert.equal(h.count, last[1], `${f.name}${key}: +Inf bucket differs from _count`)
    assert.equal(typeof h.sum, 'number', `${f.name}${key}: no _sum`)
  }
}

/** The one sample of `name` whose labels include `labels`. */
export function sampleOf(families: Map<string, ParsedFamily>, family: string, name: string, labels: Record<string, string>): number {
  const f = families.get(family)
  assert.ok(f !== undefined, `no family ${family}`)
  const hits = f.samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
  assert.equal(hits.length, 1, `${name}${JSON.stringify(labels)}: ${hits.length} samples`)
  return hits[0]!.value
}
