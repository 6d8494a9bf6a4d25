/**
 * Reading Envoy v3 messages in every form they arrive in: YAML or JSON as Envoy users write
 * them (snake_case), proto3 JSON (lowerCamelCase), and protobufjs `toObject` output as the
 * xDS client decodes it (either case, `oneofs: true` discriminators, 64-bit integers as
 * strings, wrappers as `{ value }`, Durations as `{ seconds, nanos }`, enums by name or
 * number, `google.protobuf.Any` as `{ '@type', ...fields }`).
 *
 * The translators are not validators: they read what they understand and list everything
 * else, with the path as written, in a {@link Problems}. Work is bounded by the shape of
 * Envoy's model (a translator only descends into fields it knows) and by a global budget,
 * so inputs built from shared references cannot multiply the work.
 *
 * @module
 */
import { limits } from '../defaults.js'
import { parseDuration } from '../duration.js'

/** One part of the Envoy input that was not imported, and why. */
export interface UnsupportedField {
  /**
   * Where it is, with the field names as written in the input, e.g.
   * `static_resources.clusters[0].health_checks`; `''` for the input as a whole.
   */
  readonly path: string
  /** What was not imported and why, e.g. `unsupported field "foo"`. */
  readonly message: string
}

/**
 * Upper bound on fields and list items visited. A bootstrap with 100k endpoints takes about
 * 600k; the bound only bites on inputs that repeat shared objects to multiply the work.
 */
export const WORK_BUDGET = 2_000_000
/** Reports beyond this are counted, not listed, so a hostile input cannot flood memory. */
const MAX_REPORTS = 10_000

/** Thrown when the work budget is spent; translators let it through to their caller. */
export class OutOfBudget extends Error {
  constructor(readonly path: string) {
    super('work budget exhausted')
  }
}

/**
 * Where a translation reports what it did not import, and its work budget. One per
 * import (a bootstrap) or per xDS response.
 */
export class Problems {
  readonly #reports: UnsupportedField[] = []
  #omitted = 0
  #work = 0
  readonly #budget: number

  constructor(budget = WORK_BUDGET) {
    this.#budget = budget
  }

  /** Records a problem at `path`. */
  report(path: string, message: string): void {
    if (this.#reports.length < MAX_REPORTS) this.#reports.push({ path, message })
    else this.#omitted++
  }

  /** Counts one unit of work; throws {@link OutOfBudget} past the budget. */
  step(path: string): void {
    if (++this.#work > this.#budget) throw new OutOfBudget(path)
  }

  /** How many problems were recorded so far (listed or not). */
  get count(): number {
    return this.#reports.length + this.#omitted
  }

  /** The problems, in the order found (a final entry counts those not listed). */
  list(): UnsupportedField[] {
    const out = [...this.#reports]
    if (this.#omitted > 0) out.push({ path: '', message: `${this.#omitted} more problems were found and not listed` })
    return out
  }

  /** The problems recorded since `mark` (a `count` taken earlier), for one resource's NACK. */
  since(mark: number): UnsupportedField[] {
    return this.#reports.slice(Math.min(mark, this.#reports.length))
  }
}

export type Obj = Record<string, unknown>

/** A field of an Envoy object: its key as written, its snake_case name, value and path. */
export interface Field {
  readonly key: string
  readonly name: string
  readonly value: unknown
  readonly path: string
}

/** What a translator does with each field of one Envoy message type. */
export interface Shape {
  /** Fields translated (snake_case names). */
  readonly use: readonly string[]
  /** Fields dropped without a report: no meaning in-process, or a restated default. */
  readonly drop?: readonly string[]
  /** Fields Envoy knows and the mesh does not support, with the reason shown to the user. */
  readonly why?: Readonly<Record<string, string>>
  /** The reason given for any other field. */
  readonly other?: string
}

/** A message read with a shape: its used fields by snake_case name, and how many others it had. */
export type Fields = Map<string, Field> & { unsupported?: number }

/**
 * The fields of `obj` that `shape` uses, by snake_case name; every other field is
 * reported unless the shape drops it. Keys keep their input order, which `firstOf` uses.
 * `fields.unsupported` counts the fields reported, for translators that must drop a whole
 * message rather than use it without them (matchers: never broaden a match).
 */
export function readObject(p: Problems, obj: Obj, path: string, shape: Shape): Fields {
  const out: Fields = new Map<string, Field>()
  const keys = Object.keys(obj)
  let unsupported = 0
  for (const key of keys) {
    p.step(path)
    const name = fieldName(key, shape)
    const here = seg(path, key)
    if (shape.use.includes(name)) {
      const prior = out.get(name)
      if (prior === undefined) out.set(name, { key, name, value: obj[key], path: here })
      else p.report(here, `"${clip(key)}" repeats "${prior.key}"; ignored`)
    } else if (name === '@type' || shape.drop?.includes(name) === true || isDiscriminator(obj, keys, key)) {
      continue
    } else if (obj[key] === undefined || obj[key] === null || isEmptyDefault(obj[key])) {
      // protobufjs writes every field of a decoded message: unset ones are null, empty lists
      // and maps, or a message's defaults. Only set fields mean something.
      continue
    } else {
      unsupported++
      const why = shape.why !== undefined && Object.hasOwn(shape.why, name) ? shape.why[name] : shape.other
      p.report(here, `unsupported field "${clip(key)}"${why === undefined ? '' : `: ${why}`}`)
    }
  }
  if (unsupported > 0) out.unsupported = unsupported
  return out
}

/** Reads an object-valued field with `shape`; `undefined` (reported) when it is not an object. */
export function readField(p: Problems, f: Field | undefined, shape: Shape): Fields | undefined {
  const obj = asObject(p, f)
  return obj === undefined || f === undefined ? undefined : readObject(p, obj, f.path, shape)
}

/**
 * The first present field among `names` (a protobuf oneof), in input order; the others
 * are reported, since Envoy would reject the config.
 */
export function firstOf(p: Problems, fields: Map<string, Field>, names: readonly string[]): Field | undefined {
  let first: Field | undefined
  for (const f of fields.values()) {
    if (!names.includes(f.name) || !present(f)) continue
    if (first === undefined) first = f
    else p.report(f.path, `"${f.key}" and "${first.key}" cannot both be set; "${f.key}" ignored`)
  }
  return first
}

export function present(f: Field | undefined): f is Field {
  return f !== undefined && f.value !== undefined && f.value !== null
}

export function asObject(p: Problems, f: Field | undefined): Obj | undefined {
  if (!present(f)) return undefined
  if (isObject(f.value)) return f.value
  p.report(f.path, `expected an object, got ${describe(f.value)}; dropped`)
  return undefined
}

export function asString(p: Problems, f: Field | undefined): string | undefined {
  if (!present(f)) return undefined
  const v = unwrap(f.value)
  if (typeof v === 'string') return v
  p.report(f.path, `expected a string, got ${describe(v)}; dropped`)
  return undefined
}

/** A bool, or a protobuf BoolValue written as `{ value: bool }`. */
export function asBool(p: Problems, f: Field | undefined): boolean | undefined {
  if (!present(f)) return undefined
  const v = unwrap(f.value)
  if (typeof v === 'boolean') return v
  // Envoy loads YAML through protobuf's JSON parser, which takes "true" and "false" as strings too.
  if (v === 'true' || v === 'false') return v === 'true'
  p.report(f.path, `expected true or false, got ${describe(v)}; dropped`)
  return undefined
}

/**
 * A non-negative integer within `min..max`: a number, a decimal string (proto3 JSON and
 * protobufjs write 64-bit integers as strings), a Long-like `{ low, high }`, or a wrapper
 * `{ value: n }`.
 */
export function asUint(p: Problems, f: Field | undefined, min: number, max: number): number | undefined {
  if (!present(f)) return undefined
  const v = unwrap(f.value)
  const n = toInteger(v)
  if (n === undefined || n < 0) {
    p.report(f.path, `expected a non-negative integer, got ${describe(v)}; dropped`)
    return undefined
  }
  if (n < min || n > max) {
    p.report(f.path, `${n} is outside ${min}..${max}, the range the mesh accepts; dropped`)
    return undefined
  }
  return n
}

/** A signed integer (Int64Range bounds), in the same forms as {@link asUint}. */
export function asInt(p: Problems, f: Field | undefined): number | undefined {
  if (!present(f)) return undefined
  const v = unwrap(f.value)
  const n = toInteger(v)
  if (n === undefined) p.report(f.path, `expected an integer, got ${describe(v)}; dropped`)
  return n
}

/** A number (DoubleValue, Percent), bare or wrapped. */
export function asNumber(p: Problems, f: Field | undefined, min: number, max: number): number | undefined {
  if (!present(f)) return undefined
  const v = unwrap(f.value)
  const n = typeof v === 'string' && v.trim() !== '' ? Number(v) : v
  if (typeof n !== 'number' || !Number.isFinite(n) || n < min || n > max) {
    p.report(f.path, `${describe(v)} is not a number within ${min}..${max}; dropped`)
    return undefined
  }
  return n
}

function toInteger(v: unknown): number | undefined {
  if (typeof v === 'number') return Number.isSafeInteger(v) ? v : undefined
  if (typeof v === 'string' && /^-?\d{1,16}$/.test(v)) return Number(v)
  if (typeof v === 'bigint') return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : undefined
  if (isObject(v) && typeof v['low'] === 'number' && typeof v['high'] === 'number') {
    // A Long from protobufjs without the long-to-string option.
    const n = v['high'] * 0x1_0000_0000 + (v['low'] >>> 0)
    return Number.isSafeInteger(n) ? n : undefined
  }
  return undefined
}

/**
 * A protobuf Duration in milliseconds: the JSON string form (`"0.25s"`) or the object form
 * `{ seconds, nanos }` (seconds a number or a decimal string). A positive duration below a
 * millisecond is 1ms, since 0 would mean "no timeout".
 */
export function asDurationMs(p: Problems, f: Field | undefined): number | undefined {
  if (!present(f)) return undefined
  const v = f.value
  let ms: number | undefined
  if (typeof v === 'string') {
    ms = parseDuration(v)
  } else if (isObject(v) && Object.keys(v).every((k) => k === 'seconds' || k === 'nanos')) {
    const seconds = toInteger(v['seconds'] ?? 0)
    const nanos = toInteger(v['nanos'] ?? 0)
    if (seconds !== undefined && nanos !== undefined && seconds >= 0 && nanos >= 0 && nanos < 1e9) ms = seconds * 1000 + nanos / 1e6
  }
  if (ms === undefined || !Number.isFinite(ms) || ms < 0 || parseDuration(Math.round(ms)) === undefined) {
    p.report(f.path, `${describe(v)} is not a duration like "5s" or "0.25s"; dropped`)
    return undefined
  }
  return ms > 0 && ms < 1 ? 1 : Math.round(ms)
}

/**
 * A Duration as our model writes it, the same whichever form it came in: whole seconds as
 * `"5s"`, anything else in milliseconds (`"250ms"`).
 */
export function asDuration(p: Problems, f: Field | undefined): string | undefined {
  const ms = asDurationMs(p, f)
  if (ms === undefined) return undefined
  return ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`
}

/**
 * An enum written by name (`"ROUND_ROBIN"`) or number; `names[i]` is the name of value i.
 * Returns the name, or `undefined` (reported) when it is neither.
 */
export function asEnum(p: Problems, f: Field | undefined, names: readonly (string | undefined)[]): string | undefined {
  if (!present(f)) return undefined
  const v = f.value
  const name = typeof v === 'number' ? names[v] : typeof v === 'string' ? v.toUpperCase() : undefined
  if (name !== undefined && names.includes(name)) return name
  p.report(f.path, `${describe(v)} is not one of ${names.filter((n) => n !== undefined).join(', ')}; dropped`)
  return undefined
}

/** The items of a list field, each as a Field; over-long lists are reported and truncated. */
export function asList(p: Problems, f: Field | undefined): Field[] {
  if (!present(f)) return []
  const v = f.value
  if (!Array.isArray(v)) {
    p.report(f.path, `expected a list, got ${describe(v)}; dropped`)
    return []
  }
  let length = v.length
  if (length > limits.listItems) {
    p.report(f.path, `${length} items; only the first ${limits.listItems} are imported`)
    length = limits.listItems
  }
  const out: Field[] = []
  for (let i = 0; i < length; i++) {
    const path = `${f.path}[${i}]`
    p.step(path)
    out.push({ key: `${f.key}[${i}]`, name: f.name, value: v[i] as unknown, path })
  }
  return out
}

/** The string items of a list field; other items are reported. */
export function asStrings(p: Problems, f: Field | undefined): Field[] {
  return asList(p, f).filter((item) => asString(p, item) !== undefined)
}

/** The entries of a map field (`typed_per_filter_config`, `filter_metadata`), each as a Field. */
export function asMap(p: Problems, f: Field | undefined): Field[] {
  const obj = asObject(p, f)
  if (obj === undefined || f === undefined) return []
  const out: Field[] = []
  for (const key of Object.keys(obj)) {
    p.step(f.path)
    out.push({ key, name: key, value: obj[key], path: seg(f.path, key) })
  }
  return out
}

/** A protobuf wrapper (`{ value: x }`) as protobufjs and hand-written YAML give it; proto3 JSON writes plain `x`. */
export function unwrap(v: unknown): unknown {
  if (isObject(v)) {
    const keys = Object.keys(v)
    if (keys.length === 1 && keys[0] === 'value') return v['value']
  }
  return v
}

/**
 * The message type of a `google.protobuf.Any` (`typed_config`): the part of `@type` after
 * the last `/`, or `''`. protobufjs without `json: true` leaves the payload as bytes
 * (`type_url` and `value`), which no translator can read; that form is reported.
 */
export function typeName(p: Problems, f: Field | undefined): string {
  const v = f?.value
  if (!isObject(v)) return ''
  const t = v['@type']
  if (typeof t === 'string') return t.slice(t.lastIndexOf('/') + 1)
  const url = v['type_url'] ?? v['typeUrl']
  if (typeof url === 'string' && f !== undefined) {
    p.report(f.path, `the ${url.slice(url.lastIndexOf('/') + 1)} is still encoded (an Any without @type); decode Any payloads (protobufjs toObject with json: true)`)
    return `!${url.slice(url.lastIndexOf('/') + 1)}`
  }
  return ''
}

/** The name a protobuf field goes by in a shape: snake_case, whatever case it was written in. */
function fieldName(key: string, shape: Shape): string {
  const snake = /[A-Z]/.test(key) ? key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`) : key
  if (shape.use.includes(snake) || shape.drop?.includes(snake) === true || (shape.why !== undefined && Object.hasOwn(shape.why, snake))) return snake
  if (!/[A-Za-z][0-9]/.test(key) && snake === key) return key
  // lowerCamelCase drops the underscore before a digit (consecutive_5xx → consecutive5xx):
  // find the snake_case name that folds to the same letters.
  const folded = key.toLowerCase()
  const all = [...shape.use, ...(shape.drop ?? []), ...Object.keys(shape.why ?? {})]
  return all.find((n) => n.replaceAll('_', '') === folded) ?? snake
}

/**
 * protobufjs `toObject({ oneofs: true })` adds, for each set oneof, a field named after the
 * oneof whose value is the name of the member that is set (`path_specifier: 'prefix'`).
 */
function isDiscriminator(obj: Obj, keys: readonly string[], key: string): boolean {
  const v = obj[key]
  if (typeof v !== 'string' || v === '' || v.length > 64) return false
  const want = v.replaceAll('_', '').toLowerCase()
  return keys.some((k) => k !== key && k.replaceAll('_', '').toLowerCase() === want)
}

/**
 * An empty list, as protobufjs writes an unset repeated field. Scalars are not skipped:
 * false, 0 and '' written by hand (or a BoolValue set to false) mean something; decode xDS
 * resources without `defaults: true` so unset scalars stay absent. Nor is an empty object
 * skipped: a message that is set with no fields (`grpc: {}`) means something by being there.
 */
function isEmptyDefault(v: unknown): boolean {
  return Array.isArray(v) && v.length === 0
}

// ---------------------------------------------------------------- small helpers

export function isObject(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !ArrayBuffer.isView(v)
}

/**
 * Sets `obj[key]` when `value` is defined; returns whether it did, so a caller can tell a
 * translated field from a dropped one in one expression.
 */
export function put<T extends object, K extends keyof T>(obj: T, key: K, value: T[K] | undefined): boolean {
  if (value === undefined) return false
  obj[key] = value
  return true
}

/** Appends a key to a path: dotted when it reads as a name, bracketed and quoted otherwise. */
export function seg(path: string, key: string): string {
  if (/^[A-Za-z_@][A-Za-z0-9_@]*$/.test(key)) return path === '' ? key : `${path}.${key}`
  return `${path}[${JSON.stringify(clip(key))}]`
}

/** Bounds what a hostile key or value can add to a message. */
export function clip(s: string): string {
  return s.length > 64 ? `${s.slice(0, 64)}…` : s
}

export function describe(v: unknown): string {
  if (v === null) return 'null'
  if (v === undefined) return 'nothing'
  if (Array.isArray(v)) return 'a list'
  if (typeof v === 'string') return JSON.stringify(clip(v))
  if (typeof v === 'object') return 'an object'
  if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint') return `${typeof v} ${String(v)}`
  return `a ${typeof v}`
}

export function errorText(err: unknown): string {
  try {
    return clip(err instanceof Error ? err.message : String(err))
  } catch {
    return 'unknown error'
  }
}

/** A non-empty string field; an empty one is reported. */
export function nonEmpty(p: Problems, f: Field | undefined): string | undefined {
  const value = asString(p, f)
  if (value === '' && f !== undefined) p.report(f.path, 'an empty name; dropped')
  return value === '' ? undefined : value
}

const DENOMINATORS = ['HUNDRED', 'TEN_THOUSAND', 'MILLION']
const FRACTIONAL_PERCENT: Shape = { use: ['numerator', 'denominator'] }

/** An Envoy FractionalPercent as a 0–100 percentage (a numerator above the denominator is 100%, as in Envoy). */
export function fractionalPercent(p: Problems, f: Field | undefined): number | undefined {
  const m = readField(p, f, FRACTIONAL_PERCENT)
  if (m === undefined) return undefined
  const numerator = present(m.get('numerator')) ? asUint(p, m.get('numerator'), 0, 0xffffffff) : 0
  if (numerator === undefined) return undefined
  const denominator = present(m.get('denominator')) ? asEnum(p, m.get('denominator'), DENOMINATORS) : 'HUNDRED'
  if (denominator === undefined) return undefined
  const scale = denominator === 'HUNDRED' ? 100 : denominator === 'TEN_THOUSAND' ? 10_000 : 1_000_000
  return Math.min(100, (numerator * 100) / scale)
}
