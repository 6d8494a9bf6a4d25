/**
 * A bounded copy of JSON-like data built in code, read once. Config objects handed to the
 * mesh in code may hold getters that throw, Proxies whose traps throw, cycles or shared
 * references that make a small object a huge tree; files never do. Our own model is copied
 * by validation as it walks the schema; an Envoy bootstrap given as an object is copied
 * here first, so the importer reads plain data and a read failure is a config error at its
 * path rather than a field quietly left out.
 *
 * @module
 */
import type { ConfigIssue } from '../errors.js'
import { pathLink, spellPath, type PathLink } from './config-path.js'

/** Deeper than any Envoy bootstrap nests (typed_config inside filters inside chains: ~20). */
const MAX_DEPTH = 128
/** Values copied at most (shared references count each time). */
const MAX_VALUES = 5_000_000

/** The copy, or the first problem found (with its path). */
export type PlainCopy = { readonly value: unknown; readonly issue?: undefined } | { readonly value?: undefined; readonly issue: ConfigIssue }

/** Copies `input` into plain objects, lists and primitives; see the module comment. */
export function plainCopy(input: unknown): PlainCopy {
  const state: CopyState = { count: 0, ancestors: new Set<object>() }
  try {
    return { value: copy(input, undefined, undefined, 0, state) }
  } catch (err) {
    if (err instanceof Problem) return { issue: err.issue }
    return { issue: { path: '', code: 'INVALID_VALUE', message: `could not be read: ${describeThrown(err)}` } }
  }
}

interface CopyState {
  count: number
  /** The objects being copied, root to here: one seen again is a cycle. */
  readonly ancestors: Set<object>
}

/**
 * The copy of `value`, found at `key` under `parent`. Its path is spelled only for a problem
 * (see config-path.ts), and loops are indexed: the copy of a large config from code used
 * to allocate as much in path strings, property descriptors and iterator results as in
 * the copy itself.
 */
function copy(value: unknown, parent: PathLink | undefined, key: string | number | undefined, depth: number, state: CopyState): unknown {
  if (++state.count > MAX_VALUES) throw problem(parent, key, 'TOO_LARGE', `the config holds more than ${MAX_VALUES} values (shared references count each time they are used)`)
  if (typeof value === 'function') throw problem(parent, key, 'INVALID_TYPE', 'a function is not config data')
  if (typeof value !== 'object' || value === null) return value
  if (depth > MAX_DEPTH) throw problem(parent, key, 'TOO_LARGE', `nested deeper than ${MAX_DEPTH} levels`)
  if (state.ancestors.has(value)) throw problem(parent, key, 'INVALID_VALUE', 'the config refers to itself here (a cycle)')
  state.ancestors.add(value)
  const here = key === undefined ? undefined : pathLink(parent, key)
  try {
    if (Array.isArray(value)) {
      const length = value.length
      const out: unknown[] = preallocated(length)
      for (let i = 0; i < length; i++) out[i] = copy(read(value, i, here), here, i, depth + 1, state)
      return out
    }
    const proto: unknown = Object.getPrototypeOf(value)
    if (proto !== null && Object.getPrototypeOf(proto) !== null) throw problem(parent, key, 'INVALID_TYPE', 'an object that is not plain data (a Map, Date, class instance, …)')
    const out: Record<string, unknown> = {}
    const keys = Object.keys(value)
    for (let i = 0; i < keys.length; i++) {
      const k = keys[i] as string
      const v = copy(read(value, k, here), here, k, depth + 1, state)
      // An own `__proto__` stays a field (assigning it would set the prototype).
      if (k === '__proto__') Object.defineProperty(out, k, { value: v, enumerable: true, writable: true, configurable: true })
      else out[k] = v
    }
    return out
  } catch (err) {
    if (err instanceof Problem) throw err
    throw problem(parent, key, 'INVALID_VALUE', `could not be read: ${describeThrown(err)}`)
  } finally {
    state.ancestors.delete(value)
  }
}

/**
 * An empty list of `length` slots to fill, when `length` is a sane count; otherwise `[]` (a
 * Proxy may claim any length: `new Array('3')` would be `['3']`, and the copy loop stops on
 * its own bounds).
 */
export function preallocated(length: unknown): unknown[] {
  return typeof length === 'number' && Number.isInteger(length) && length >= 0 && length <= MAX_PREALLOCATED ? new Array<unknown>(length) : []
}

/** Slots allocated ahead at most; longer lists grow as they are copied. */
const MAX_PREALLOCATED = 100_000

/** One property, read; a getter or trap that throws is a problem at the property's path. */
function read(obj: object, key: string | number, parent: PathLink | undefined): unknown {
  try {
    return (obj as Record<string | number, unknown>)[key]
  } catch (err) {
    throw problem(parent, key, 'INVALID_VALUE', `could not be read: ${describeThrown(err)}`)
  }
}

class Problem extends Error {
  constructor(readonly issue: ConfigIssue) {
    super(issue.message)
  }
}

function problem(parent: PathLink | undefined, key: string | number | undefined, code: ConfigIssue['code'], message: string): Problem {
  return new Problem({ path: spellPath(parent, key), code, message })
}

/** What a getter or trap threw, bounded; reading it may throw too. */
export function describeThrown(err: unknown): string {
  try {
    const text = err instanceof Error ? `${err.name}: ${err.message}` : typeof err === 'string' ? err : typeof err
    return text.length > 200 ? `${text.slice(0, 200)}…` : text
  } catch {
    return 'an error that cannot be described'
  }
}
