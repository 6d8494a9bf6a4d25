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

/** Deeper than any Envoy bootstrap nests (typed_config inside filters inside chains: ~20). */
const MAX_DEPTH = 128
/** Values copied at most (shared references count each time). */
const MAX_VALUES = 5_000_000

/** The copy, or the first problem found (with its path). */
export type PlainCopy = { readonly value: unknown; readonly issue?: undefined } | { readonly value?: undefined; readonly issue: ConfigIssue }

/** Copies `input` into plain objects, lists and primitives; see the module comment. */
export function plainCopy(input: unknown): PlainCopy {
  let count = 0
  const ancestors = new Set<object>()
  const copy = (value: unknown, path: string, depth: number): unknown => {
    if (++count > MAX_VALUES) throw problem(path, 'TOO_LARGE', `the config holds more than ${MAX_VALUES} values (shared references count each time they are used)`)
    if (typeof value === 'function') throw problem(path, 'INVALID_TYPE', 'a function is not config data')
    if (typeof value !== 'object' || value === null) return value
    if (depth > MAX_DEPTH) throw problem(path, 'TOO_LARGE', `nested deeper than ${MAX_DEPTH} levels`)
    if (ancestors.has(value)) throw problem(path, 'INVALID_VALUE', 'the config refers to itself here (a cycle)')
    ancestors.add(value)
    try {
      if (Array.isArray(value)) {
        const out: unknown[] = []
        const length = value.length
        for (let i = 0; i < length; i++) out.push(copy(read(value, i, `${path}[${i}]`), `${path}[${i}]`, depth + 1))
        return out
      }
      const proto: unknown = Object.getPrototypeOf(value)
      if (proto !== null && Object.getPrototypeOf(proto) !== null) throw problem(path, 'INVALID_TYPE', 'an object that is not plain data (a Map, Date, class instance, …)')
      const out: Record<string, unknown> = {}
      for (const key of Object.keys(value)) {
        const at = path === '' ? key : `${path}.${key}`
        const v = copy(read(value, key, at), at, depth + 1)
        Object.defineProperty(out, key, { value: v, enumerable: true, writable: true, configurable: true })
      }
      return out
    } catch (err) {
      if (err instanceof Problem) throw err
      throw problem(path, 'INVALID_VALUE', `could not be read: ${describeThrown(err)}`)
    } finally {
      ancestors.delete(value)
    }
  }
  try {
    return { value: copy(input, '', 0) }
  } catch (err) {
    if (err instanceof Problem) return { issue: err.issue }
    return { issue: { path: '', code: 'INVALID_VALUE', message: `could not be read: ${describeThrown(err)}` } }
  }
}

/** One property, read; a getter or trap that throws is a problem at the property's path. */
function read(obj: object, key: string | number, path: string): unknown {
  try {
    return (obj as Record<string | number, unknown>)[key]
  } catch (err) {
    throw problem(path, 'INVALID_VALUE', `could not be read: ${describeThrown(err)}`)
  }
}

class Problem extends Error {
  constructor(readonly issue: ConfigIssue) {
    super(issue.message)
  }
}

function problem(path: string, code: ConfigIssue['code'], message: string): Problem {
  return new Problem({ path, code, message })
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
