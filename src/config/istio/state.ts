/**
 * The shared state of one Istio import: the options in force, the report of what was not
 * translated, and where each translated element came from (so a validation problem in the
 * translated config can be pointed back at the line of the manifest that produced it).
 *
 * The readers here never throw on bad input: a field of the wrong shape is reported by path
 * and left out, as the Envoy import does.
 */
import type { ConfigIssue } from '../../errors.js'
import type { UnsupportedField } from '../envoy/index.js'

/** Who the translated config is for: Istio picks the config that applies to one workload. */
export interface IstioTranslateOptions {
  /**
   * The workload's namespace: resources without `metadata.namespace` are taken to be in it,
   * short host names resolve in it, and policies of other namespaces do not apply to it.
   * Default `default`.
   */
  namespace?: string
  /** The workload's labels: workload selectors (`selector.matchLabels`, `sourceLabels`) are matched against them. */
  labels?: Readonly<Record<string, string>>
  /** The Kubernetes cluster domain short names resolve in (default `cluster.local`). */
  clusterDomain?: string
  /** Istio's root namespace: policies there apply to every namespace (default `istio-system`). */
  rootNamespace?: string
}

/** The options with their defaults filled in. */
export interface Workload {
  readonly namespace: string
  readonly labels: Readonly<Record<string, string>>
  readonly clusterDomain: string
  readonly rootNamespace: string
}

/** Where a translated element came from: a document (1-based) and a path inside it. */
export interface Origin {
  readonly doc: number
  readonly path: readonly (string | number)[]
}

export type Obj = Record<string, unknown>

/** Reports beyond this are counted, not listed, so a hostile input cannot flood memory. */
const MAX_REPORTS = 10_000

/**
 * Upper bound on list items read in one import. Real manifests stay far below it; it bites
 * only on objects built in code that repeat shared references to multiply the work.
 */
export const WORK_BUDGET = 2_000_000

/** Thrown when the work budget is spent; the import reports how far it got. */
export class OutOfBudget extends Error {
  constructor() {
    super(`the input is too large: the import stopped after ${WORK_BUDGET} items`)
  }
}

/** One import's report and bookkeeping. */
export class Translation {
  readonly unsupported: UnsupportedField[] = []
  /** Hard problems (conflicting settings) that make the translated config invalid. */
  readonly issues: ConfigIssue[] = []
  /** Translated path (`clusters[2]`, `virtualHosts[0].routes[1]`) → its source. */
  readonly origins = new Map<string, Origin>()
  readonly #seen = new Set<string>()
  #dropped = 0
  #work = 0

  constructor(readonly workload: Workload) {}

  /** Reports a field or resource not translated; the same report twice is listed once. */
  report(path: string, message: string): void {
    const key = `${path}\n${message}`
    if (this.#seen.has(key)) return
    this.#seen.add(key)
    if (this.unsupported.length < MAX_REPORTS) this.unsupported.push({ path, message })
    else this.#dropped++
  }

  /** Counts items read; throws {@link OutOfBudget} past {@link WORK_BUDGET}. */
  spend(items: number): void {
    this.#work += items
    if (this.#work > WORK_BUDGET) throw new OutOfBudget()
  }

  /** Reports every key of `obj` not in `known` (Kubernetes' `status` is never reported). */
  fields(obj: Obj, path: string, known: readonly string[]): void {
    for (const key of Object.keys(obj)) {
      if (known.includes(key)) continue
      if (obj[key] === null || obj[key] === undefined) continue
      this.report(at(path, key), `field ${JSON.stringify(key)} is not translated`)
    }
  }

  finish(): UnsupportedField[] {
    if (this.#dropped > 0) this.unsupported.push({ path: '', message: `${this.#dropped} more untranslated fields were not listed` })
    return this.unsupported
  }
}

/** `path.key`, or `path["key"]` when the key would not read as one path segment. */
export function at(path: string, key: string): string {
  if (/^[A-Za-z0-9_:@-]+$/.test(key)) return path === '' ? key : `${path}.${key}`
  return `${path}[${JSON.stringify(key)}]`
}

export function isObject(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

/** YAML writes an empty field as null; null means "not set". */
export function isSet(v: unknown): boolean {
  return v !== undefined && v !== null
}

/** A string field; a value of another type is reported. */
export function str(t: Translation, o: Obj, key: string, path: string): string | undefined {
  const v = o[key]
  if (!isSet(v)) return undefined
  if (typeof v === 'string') return v
  t.report(at(path, key), `expected a string, got ${describe(v)}; not translated`)
  return undefined
}

/** A number field (YAML may quote numbers: `"8080"` is read as 8080). */
export function num(t: Translation, o: Obj, key: string, path: string): number | undefined {
  const v = o[key]
  if (!isSet(v)) return undefined
  if (typeof v === 'number' && Number.isFinite(v)) return v
  if (typeof v === 'string' && /^-?\d+(\.\d+)?$/.test(v)) return Number(v)
  t.report(at(path, key), `expected a number, got ${describe(v)}; not translated`)
  return undefined
}

export function bool(t: Translation, o: Obj, key: string, path: string): boolean | undefined {
  const v = o[key]
  if (!isSet(v)) return undefined
  if (typeof v === 'boolean') return v
  t.report(at(path, key), `expected true or false, got ${describe(v)}; not translated`)
  return undefined
}

/** An object field; another type is reported. */
export function object(t: Translation, o: Obj, key: string, path: string): Obj | undefined {
  const v = o[key]
  if (!isSet(v)) return undefined
  if (isObject(v)) return v
  t.report(at(path, key), `expected an object, got ${describe(v)}; not translated`)
  return undefined
}

/** A list field, bounded; another type is reported. */
export function list(t: Translation, o: Obj, key: string, path: string): unknown[] {
  const v = o[key]
  if (!isSet(v)) return []
  if (!Array.isArray(v)) {
    t.report(at(path, key), `expected a list, got ${describe(v)}; not translated`)
    return []
  }
  if (v.length > LIST_LIMIT) {
    t.report(at(path, key), `${v.length} items; only the first ${LIST_LIMIT} are translated`)
    t.spend(LIST_LIMIT)
    return v.slice(0, LIST_LIMIT)
  }
  t.spend(v.length)
  return v
}

/** A list of strings; other items are reported. */
export function strings(t: Translation, o: Obj, key: string, path: string): string[] {
  const out: string[] = []
  list(t, o, key, path).forEach((item, i) => {
    if (typeof item === 'string') out.push(item)
    else t.report(`${at(path, key)}[${i}]`, `expected a string, got ${describe(item)}; not translated`)
  })
  return out
}

/** A map of strings to strings (labels, header sets); other values are reported. */
export function stringMap(t: Translation, o: Obj, key: string, path: string): Record<string, string> | undefined {
  const v = object(t, o, key, path)
  if (v === undefined) return undefined
  const out: Record<string, string> = {}
  for (const [k, val] of Object.entries(v)) {
    if (typeof val === 'string') out[k] = val
    else if (typeof val === 'number' || typeof val === 'boolean') out[k] = String(val)
    else t.report(at(at(path, key), k), `expected a string, got ${describe(val)}; not translated`)
  }
  return out
}

/** The bound on list items read from one field (the mesh model's own bound). */
export const LIST_LIMIT = 100_000

export function describe(v: unknown): string {
  if (v === null) return 'null'
  if (Array.isArray(v)) return 'a list'
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v)
  if (typeof v === 'object') return 'an object'
  return `${typeof v} ${String(v)}`
}

/** True when every label of `selector` is on the workload (Kubernetes `matchLabels`; an empty selector selects all). */
export function selects(selector: Readonly<Record<string, string>> | undefined, labels: Readonly<Record<string, string>>): boolean {
  if (selector === undefined) return true
  for (const [k, v] of Object.entries(selector)) if (labels[k] !== v) return false
  return true
}

/** `k=v,k=v` for messages. */
export function formatLabels(labels: Readonly<Record<string, string>>): string {
  const parts = Object.entries(labels).map(([k, v]) => `${k}=${v}`)
  return parts.length === 0 ? 'no labels' : parts.join(',')
}
