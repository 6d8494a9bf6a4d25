/**
 * Validation, as Istio's Galley does it: the whole config is checked before use, and every
 * problem is reported at once with its path, a stable code and a sentence. Two passes: the
 * structural pass walks the schema (types, required and unknown fields); the semantic pass
 * checks names, references, patterns, addresses and weights. The semantic pass reads only
 * values the structural pass found well-typed, so one mistake is reported once.
 */
import type { ConfigIssue, ConfigIssueCode } from '../errors.js'
import { parseAddress } from './address.js'
import { parseListenAddress } from './listen-address.js'
import { defaults, limits } from './defaults.js'
import { parseDomain } from './domain.js'
import { parseDuration } from './duration.js'
import { isHeaderName, isHeaderValue } from './http-token.js'
import { collectorUrlProblem } from './collector-url.js'
import { regexProblem, rewriteProblem } from './regex.js'
import { headerFormatProblem } from './header-format.js'
import { describeThrown, preallocated } from './plain-data.js'
import { pathLink, spellPath, type PathLink } from './config-path.js'
import { meshConfigFields, type Fields, type Spec } from './schema.js'
import type { MeshConfig } from './types.js'
import { checkSecurity } from './validate-security.js'
import { checkAuthorization, checkRequestAuthentication } from './validate-auth.js'
import { checkClusterDns } from './validate-dns.js'

type Obj = Record<string, unknown>
/** Where a value sits (`undefined`: the root) and its key; see config-path.ts. */
type At = PathLink | undefined
type Key = string | number

/** Past this many problems, validation stops listing them (a hostile file could hold millions). */
const MAX_ISSUES = 1_000

/**
 * Stands, in the copy validation makes, for a value that is not plain data or could not be
 * read (a function, a Map, a getter that threw). It is "present" but of no usable type, so
 * the semantic pass neither reads it nor reports it a second time as missing.
 */
const NOT_DATA: unique symbol = Symbol('sidecarless.notData')

class Issues {
  readonly list: ConfigIssue[] = []
  #dropped = 0
  /** Values visited; bounded, because shared references can make a small object a huge tree. */
  visited = 0
  /** Object fields copied as null or undefined ("not set"); the compiler drops them. */
  empty = 0
  overBudget = false
  add(path: string, code: ConfigIssueCode, message: string): void {
    if (this.list.length < MAX_ISSUES) this.list.push({ path, code, message })
    else this.#dropped++
  }

  /** True once no more issues will be listed (callers may skip costly messages). */
  get full(): boolean {
    return this.list.length >= MAX_ISSUES
  }

  get dropped(): number {
    return this.#dropped
  }
}

/** What {@link checkConfig} found: every problem, and the config as plain data when there is none. */
export interface CheckedConfig {
  readonly issues: ConfigIssue[]
  /**
   * A copy of the input made of plain objects, lists and primitives, read once; `undefined`
   * when there are issues. Compile this, never the input: a getter or a Proxy could answer
   * differently the second time it is read.
   */
  readonly config: MeshConfig | undefined
}

/**
 * Checks a config and returns every problem found, in document order; an empty list means
 * it is valid. Never throws, whatever `input` is: getters that throw, Proxies whose traps
 * throw, cycles, deep nesting and non-data values (functions, Maps, Dates, class
 * instances) are reported as issues at their paths.
 */
export function validateConfig(input: unknown): ConfigIssue[] {
  return checkConfig(input).issues
}

/**
 * {@link validateConfig}, and the copy to compile: the structural pass reads every value
 * of the input once, by the schema, and builds a plain copy as it goes; the semantic pass
 * and the compiler read only that copy.
 */
export function checkConfig(input: unknown): CheckedConfig {
  // A copy this function made and froze cannot have changed since: it is valid as it is.
  if (isCheckedCopy(input)) return { issues: [], config: input as MeshConfig }
  const issues = new Issues()
  if (input === undefined || input === null) {
    issues.add('', 'EMPTY_CONFIG', `the config is empty (${input === null ? 'null' : 'undefined'}); an empty document is refused so that a blank or truncated file cannot remove every policy. Write {} for a config with nothing in it`)
    return { issues: issues.list, config: undefined }
  }
  let copy: Obj | undefined
  try {
    const kind = kindOf(input, undefined, undefined, issues)
    if (kind !== 'object') {
      if (kind !== 'unreadable') issues.add('', 'INVALID_TYPE', `the config must be an object, not ${describe(input)}`)
      return { issues: issues.list, config: undefined }
    }
    copy = checkFields(input as Obj, meshConfigFields, undefined, issues)
    if (copy !== undefined) checkSemantics(copy, issues)
  } catch (err) {
    // Not expected (every read of the input is guarded); a last line so that validation never throws.
    issues.add('', 'INVALID_VALUE', `the config could not be read: ${describeThrown(err)}`)
    return { issues: issues.list, config: undefined }
  }
  if (issues.list.length === 0) return { issues: issues.list, config: copy === undefined ? undefined : finish(copy, issues.empty > 0) }
  let ordered: ConfigIssue[]
  try {
    ordered = copy === undefined ? issues.list : inDocumentOrder(copy, issues.list)
  } catch {
    ordered = issues.list
  }
  if (issues.dropped > 0) ordered.push({ path: '', code: 'TOO_LARGE', message: `${issues.dropped} more problems were not listed` })
  return { issues: ordered, config: undefined }
}

/** Copies of valid configs made by {@link checkConfig}: deep-frozen plain data, so safe to compile as they are. */
const checkedCopies = new WeakSet<object>()

/**
 * True for the config {@link checkConfig} returned: plain data it made, deep-frozen, with
 * no field set to null or undefined. The compiler uses it as the snapshot's config instead
 * of making a third copy; nothing can have changed it since it was checked.
 */
export function isCheckedCopy(value: unknown): boolean {
  return typeof value === 'object' && value !== null && checkedCopies.has(value)
}

/**
 * The copy of a valid config as the snapshot keeps it, frozen and marked. Fields set to
 * null (YAML's empty value) or undefined are dropped, as the compiler wants them (null
 * means "not set" throughout the model).
 *
 * It is rebuilt by a JSON round trip: a valid copy is JSON data (strings, finite numbers,
 * booleans, lists and plain objects, nothing else passes the structural pass), and V8's JSON
 * parser gives each object exactly the room its fields take, where an object grown field by
 * field from `{}` keeps room for four in itself (56 bytes for one field) and puts the fifth
 * and later ones in a separate property array. Measured on the 100-cluster config of
 * bench/lib/mesh-config.mjs: ~0.1 MB less heap for as long as the config is in force, for a
 * few milliseconds of compile. (A `-0` becomes `0`, the only value JSON does not keep as
 * it is; no field of the model tells them apart.)
 */
function finish(copy: Obj, empty: boolean): Obj {
  const text = JSON.stringify(copy, empty ? dropEmptyFields : undefined)
  const done = deepFreeze(JSON.parse(text) as unknown) as Obj
  checkedCopies.add(done)
  return done
}

/** A JSON.stringify replacer that leaves out null fields of objects (list items stay). */
function dropEmptyFields(this: unknown, _key: string, value: unknown): unknown {
  return value === null && !Array.isArray(this) ? undefined : value
}

function deepFreeze(value: unknown): unknown {
  if (typeof value !== 'object' || value === null) return value
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) deepFreeze(value[i])
  } else {
    for (const key in value) deepFreeze((value as Obj)[key])
  }
  return Object.freeze(value)
}

/** What a value is, as data. Reading it may run a Proxy trap; a throw is reported at the value's path. */
function kindOf(value: unknown, at: At, key: Key | undefined, issues: Issues): 'object' | 'array' | 'other' | 'unreadable' {
  if (typeof value !== 'object' || value === null) return 'other'
  try {
    if (Array.isArray(value)) return 'array'
    // Plain objects only: a Map, Set, Date or class instance would be read as its own
    // enumerable fields (usually none), silently dropping what the caller meant.
    const proto: unknown = Object.getPrototypeOf(value)
    return proto === null || Object.getPrototypeOf(proto) === null ? 'object' : 'other'
  } catch (err) {
    issues.add(spellPath(at, key), 'INVALID_VALUE', `could not be read: ${describeThrown(err)}`)
    return 'unreadable'
  }
}

/** Sets an own property, even one named `__proto__` (plain assignment would set the prototype). */
function setOwn(obj: Obj, key: string, value: unknown): void {
  if (key === '__proto__') Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true })
  else obj[key] = value
}

/** A value's own enumerable keys, or undefined (reported at `at`) when the object will not say. */
function keysOf(obj: object, at: At, issues: Issues): string[] | undefined {
  try {
    return Object.keys(obj)
  } catch (err) {
    issues.add(spellPath(at), 'INVALID_VALUE', `could not be read: ${describeThrown(err)}`)
    return undefined
  }
}

/** Reads one property; NOT_DATA (reported) when a getter or trap throws. */
function readProp(obj: object, key: Key, parent: At, issues: Issues): unknown {
  try {
    return (obj as Record<Key, unknown>)[key]
  } catch (err) {
    issues.add(spellPath(parent, key), 'INVALID_VALUE', `could not be read: ${describeThrown(err)}`)
    return NOT_DATA
  }
}

/** What the copy holds for a value of the wrong type: primitives as they are, anything else NOT_DATA. */
function inert(value: unknown): unknown {
  return (typeof value === 'object' && value !== null) || typeof value === 'function' ? NOT_DATA : value
}

/**
 * Sorts issues by where their path appears in the input, so the list reads top to bottom
 * like the file. The structural and semantic passes each walk in order; this merges them.
 * Runs only when there are issues, so a valid config pays nothing for it.
 */
function inDocumentOrder(input: Obj, issues: readonly ConfigIssue[]): ConfigIssue[] {
  const rank = new Map<string, number>()
  let next = 0
  const walk = (value: unknown, path: string, depth: number): void => {
    rank.set(path, next++)
    if (depth > 16 || next > 2_000_000 || typeof value !== 'object' || value === null) return
    if (Array.isArray(value)) {
      for (let i = 0; i < value.length && i <= limits.listItems; i++) walk(value[i], `${path}[${i}]`, depth + 1)
    } else {
      for (const key of Object.keys(value)) walk((value as Obj)[key], join(path, key), depth + 1)
    }
  }
  walk(input, '', 0)
  const rankOf = (path: string): number => {
    // A path that is not in the input (a missing required field) sorts right after its parent.
    for (let p = path; ; ) {
      const r = rank.get(p)
      if (r !== undefined) return p === path ? r : r + 0.5
      const cut = Math.max(p.lastIndexOf('.'), p.lastIndexOf('['))
      if (cut <= 0) return rank.get('') ?? 0
      p = p.slice(0, cut)
    }
  }
  return issues
    .map((issue, i) => ({ issue, i, r: rankOf(issue.path) }))
    .sort((a, b) => a.r - b.r || a.i - b.i)
    .map((x) => x.issue)
}

// ---------------------------------------------------------------- structural pass

/** Checks an object's fields; returns its plain copy (unknown fields as NOT_DATA), or undefined when it cannot be read. */
function checkFields(obj: Obj, fields: Fields, at: At, issues: Issues): Obj | undefined {
  const keys = keysOf(obj, at, issues)
  if (keys === undefined) return undefined
  const out: Obj = {}
  // Indexed loops: for-of allocates an iterator result per step in code that runs once (not optimised).
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i] as string
    const spec = Object.hasOwn(fields, key) ? fields[key] : undefined
    if (spec === undefined) {
      setOwn(out, key, NOT_DATA)
      if (issues.full) {
        issues.add(spellPath(at, key), 'UNKNOWN_FIELD', '')
        continue
      }
      const hint = didYouMean(key, Object.keys(fields))
      issues.add(spellPath(at, key), 'UNKNOWN_FIELD', `unknown field ${quote(key)}${hint === undefined ? '' : `; did you mean "${hint}"?`}`)
      continue
    }
    const value = readProp(obj, key, at, issues)
    if (value === undefined || value === null) {
      if (spec.required === true) issues.add(spellPath(at, key), 'REQUIRED', `"${key}" is required`)
      out[key] = value
      issues.empty++
      continue
    }
    out[key] = value === NOT_DATA ? NOT_DATA : checkValue(value, spec, at, key, issues)
  }
  const required = requiredOf(fields)
  for (let i = 0; i < required.length; i++) {
    const key = required[i] as string
    if (!Object.hasOwn(out, key)) issues.add(spellPath(at, key), 'REQUIRED', `"${key}" is required`)
  }
  return out
}

/** The required fields of a schema object, listed once per schema object. */
const requiredFields = new WeakMap<Fields, readonly string[]>()

function requiredOf(fields: Fields): readonly string[] {
  let list = requiredFields.get(fields)
  if (list === undefined) {
    list = Object.keys(fields).filter((key) => (fields[key] as Spec).required === true)
    requiredFields.set(fields, list)
  }
  return list
}

/**
 * Checks one value against its spec and returns its plain copy (NOT_DATA for a value that
 * is not data, a wrongly typed primitive as it is). The value's path is `parent` + `key` (a
 * field name, or a list index as a number); it is spelled out only when there is a problem
 * to report, and a container descended into gets a {@link PathLink}, because building every
 * path of a large config was most of the cost of a valid one.
 */
function checkValue(value: unknown, spec: Spec, parent: At, key: Key, issues: Issues): unknown {
  if (++issues.visited > limits.configValues) {
    if (!issues.overBudget) {
      issues.overBudget = true
      issues.add(spellPath(parent, key), 'TOO_LARGE', `the config holds more than ${limits.configValues} values (shared references count each time they are used); the rest was not read`)
    }
    return NOT_DATA
  }
  switch (spec.t) {
    case 'string':
      if (typeof value !== 'string') issues.add(spellPath(parent, key), 'INVALID_TYPE', `expected a string, got ${describe(value)}`)
      else if (value.length > limits.stringLength) issues.add(spellPath(parent, key), 'TOO_LARGE', `longer than ${limits.stringLength} characters`)
      return inert(value)
    case 'boolean':
      if (typeof value !== 'boolean') issues.add(spellPath(parent, key), 'INVALID_TYPE', `expected true or false, got ${describe(value)}`)
      return inert(value)
    case 'number':
      if (typeof value !== 'number' || !Number.isFinite(value)) {
        issues.add(spellPath(parent, key), 'INVALID_TYPE', `expected a number, got ${describe(value)}`)
      } else if (spec.int === true && !Number.isInteger(value)) {
        issues.add(spellPath(parent, key), 'INVALID_VALUE', `expected an integer, got ${value}`)
      } else if ((spec.min !== undefined && value < spec.min) || (spec.max !== undefined && value > spec.max)) {
        issues.add(spellPath(parent, key), 'INVALID_VALUE', `${value} is outside ${spec.min ?? '-∞'}..${spec.max ?? '∞'}`)
      }
      return inert(value)
    case 'duration':
      if (parseDuration(value) === undefined) {
        issues.add(spellPath(parent, key), 'INVALID_DURATION', `${describe(value)} is not a duration (a number of milliseconds, or a string like "250ms", "3s", "1m30s", "1d")`)
      }
      return inert(value)
    case 'enum':
      if (typeof value !== 'string' || !spec.values.includes(value)) {
        const hint = typeof value === 'string' ? didYouMean(value, spec.values) : undefined
        issues.add(spellPath(parent, key), 'INVALID_VALUE', `${describe(value)} is not one of ${spec.values.join(', ')}${hint === undefined ? '' : `; did you mean "${hint}"?`}`)
      }
      return inert(value)
    case 'enumList': {
      if (typeof value === 'string') {
        const list = value.split(',')
        if (list.length > spec.values.length * 4) {
          issues.add(spellPath(parent, key), 'TOO_LARGE', `${list.length} items; at most ${spec.values.length * 4} are accepted`)
          return value
        }
        const item: Spec = { t: 'enum', values: spec.values }
        const here = pathLink(parent, key)
        for (let i = 0; i < list.length; i++) checkValue((list[i] as string).trim(), item, here, i, issues)
        return value
      }
      const kind = kindOf(value, parent, key, issues)
      if (kind === 'unreadable') return NOT_DATA
      if (kind !== 'array') {
        issues.add(spellPath(parent, key), 'INVALID_TYPE', `expected a list (or a comma-separated string), got ${describe(value)}`)
        return inert(value)
      }
      return checkList(value as unknown[], { t: 'enum', values: spec.values }, spec.values.length * 4, parent, key, issues)
    }
    case 'labels':
    case 'map': {
      const what = spec.t === 'labels' ? 'a map of label names to strings' : 'a map'
      const kind = kindOf(value, parent, key, issues)
      if (kind === 'unreadable') return NOT_DATA
      if (kind !== 'object') {
        issues.add(spellPath(parent, key), 'INVALID_TYPE', `expected ${what}, got ${describe(value)}`)
        return inert(value)
      }
      const here = pathLink(parent, key)
      const keys = keysOf(value as object, here, issues)
      if (keys === undefined) return NOT_DATA
      if (keys.length > MAX_LABELS) {
        issues.add(spellPath(here), 'TOO_LARGE', `${keys.length} ${spec.t === 'labels' ? 'labels' : 'entries'}; at most ${MAX_LABELS} are accepted`)
        return NOT_DATA
      }
      const out: Obj = {}
      for (let i = 0; i < keys.length; i++) {
        const k = keys[i] as string
        const v = readProp(value as object, k, here, issues)
        if (v === NOT_DATA) {
          setOwn(out, k, NOT_DATA)
          continue
        }
        if (spec.t === 'labels') {
          if (k.length > limits.stringLength) issues.add(spellPath(here), 'TOO_LARGE', `a label name is longer than ${limits.stringLength} characters`)
          else if (typeof v !== 'string') issues.add(spellPath(here, k), 'INVALID_TYPE', `label values are strings, got ${describe(v)}`)
          else if (v.length > limits.stringLength) issues.add(spellPath(here, k), 'TOO_LARGE', `longer than ${limits.stringLength} characters`)
          setOwn(out, k, inert(v))
        } else if (v === undefined || v === null) {
          issues.add(spellPath(here, k), 'INVALID_TYPE', 'an entry is empty')
          setOwn(out, k, v)
        } else {
          setOwn(out, k, checkValue(v, spec.of, here, k, issues))
        }
      }
      return out
    }
    case 'pem':
      if (typeof value !== 'string') issues.add(spellPath(parent, key), 'INVALID_TYPE', `expected PEM text or a file path, got ${describe(value)}`)
      else if (value.length > limits.pemLength) issues.add(spellPath(parent, key), 'TOO_LARGE', `longer than ${limits.pemLength} characters`)
      return inert(value)
    case 'object': {
      const kind = kindOf(value, parent, key, issues)
      if (kind === 'unreadable') return NOT_DATA
      if (kind !== 'object') {
        issues.add(spellPath(parent, key), 'INVALID_TYPE', `expected an object, got ${describe(value)}`)
        return inert(value)
      }
      return checkFields(value as Obj, spec.fields, pathLink(parent, key), issues) ?? NOT_DATA
    }
    case 'array': {
      const kind = kindOf(value, parent, key, issues)
      if (kind === 'unreadable') return NOT_DATA
      if (kind !== 'array') {
        issues.add(spellPath(parent, key), 'INVALID_TYPE', `expected a list, got ${describe(value)}`)
        return inert(value)
      }
      return checkList(value as unknown[], spec.of, limits.listItems, parent, key, issues)
    }
  }
}

/** Checks the items of a list (bounded); returns the plain copy. */
function checkList(list: unknown[], of: Spec, max: number, parent: At, key: Key, issues: Issues): unknown {
  let length: number
  try {
    length = list.length
  } catch (err) {
    issues.add(spellPath(parent, key), 'INVALID_VALUE', `could not be read: ${describeThrown(err)}`)
    return NOT_DATA
  }
  if (length > max) {
    issues.add(spellPath(parent, key), 'TOO_LARGE', `${length} items; at most ${max} are accepted`)
    return NOT_DATA
  }
  const here = pathLink(parent, key)
  const out: unknown[] = preallocated(length)
  for (let i = 0; i < length; i++) {
    const item = readProp(list, i, here, issues)
    if (item === NOT_DATA) out[i] = NOT_DATA
    else if (item === undefined || item === null) {
      issues.add(spellPath(here, i), 'INVALID_TYPE', 'a list item is empty')
      out[i] = item
    } else out[i] = checkValue(item, of, here, i, issues)
  }
  return out
}

/** Labels on one endpoint or subset (Kubernetes objects rarely carry more than a few dozen). */
const MAX_LABELS = 256

// ---------------------------------------------------------------- semantic pass

interface ClusterInfo {
  subsets: Set<string>
}

function checkSemantics(config: Obj, issues: Issues): void {
  const clusters = new Map<string, ClusterInfo>()
  for (let i = 0, cs = listOf(config['clusters']); i < cs.length; i++) {
    const c = cs[i]
    if (!isObject(c)) continue
    const path = `clusters[${i}]`
    const name = str(c['name'])
    const subsets = new Set<string>()
    for (let j = 0, sList = listOf(c['subsets']); j < sList.length; j++) {
      const s = sList[j]
      if (!isObject(s)) continue
      const sname = str(s['name'])
      if (sname === undefined) continue
      if (subsets.has(sname)) issues.add(`${path}.subsets[${j}].name`, 'DUPLICATE_NAME', `subset "${sname}" is defined twice in cluster "${name ?? ''}"`)
      subsets.add(sname)
    }
    if (name !== undefined) {
      if (name.length === 0) issues.add(`${path}.name`, 'INVALID_VALUE', 'a cluster name is empty')
      if (clusters.has(name)) issues.add(`${path}.name`, 'DUPLICATE_NAME', `cluster "${name}" is defined twice`)
      else clusters.set(name, { subsets })
    }
    for (let j = 0, es = listOf(c['endpoints']); j < es.length; j++) {
      const e = es[j]
      if (!isObject(e)) continue
      const address = str(e['address'])
      if (address === undefined) continue
      const parsed = parseAddress(address)
      if (typeof parsed === 'string') issues.add(`${path}.endpoints[${j}].address`, 'INVALID_ADDRESS', parsed)
    }
    const ring = c['ringHash']
    if (isObject(ring)) {
      const min = ring['minimumRingSize']
      const max = ring['maximumRingSize']
      if (typeof min === 'number' && typeof max === 'number' && min > max) {
        issues.add(`${path}.ringHash`, 'INVALID_VALUE', `minimumRingSize ${min} is above maximumRingSize ${max}`)
      }
    }
  }

  const vhostNames = new Set<string>()
  const domainOwner = new Map<string, string>()
  for (let i = 0, vhs = listOf(config['virtualHosts']); i < vhs.length; i++) {
    const vh = vhs[i]
    if (!isObject(vh)) continue
    const path = `virtualHosts[${i}]`
    const name = str(vh['name'])
    if (name !== undefined) {
      if (vhostNames.has(name)) issues.add(`${path}.name`, 'DUPLICATE_NAME', `virtual host "${name}" is defined twice`)
      vhostNames.add(name)
    }
    for (let j = 0, domains = listOf(vh['domains']); j < domains.length; j++) {
      const domain = domains[j]
      if (typeof domain !== 'string') continue
      const parsed = parseDomain(domain)
      const here = `${path}.domains[${j}]`
      if (typeof parsed === 'string') {
        issues.add(here, 'INVALID_DOMAIN', parsed)
        continue
      }
      const key = `${parsed.kind}:${parsed.host}:${parsed.port ?? ''}`
      const owner = domainOwner.get(key)
      if (owner !== undefined) issues.add(here, 'DUPLICATE_DOMAIN', `domain "${domain}" is already claimed by ${owner}`)
      else domainOwner.set(key, `virtual host "${name ?? path}"`)
    }
    checkHeaderMutations(vh, path, issues)
    const vcNames = new Set<string>()
    for (let k = 0, vcs = listOf(vh['virtualClusters']); k < vcs.length; k++) {
      const vc = vcs[k]
      if (!isObject(vc)) continue
      const vcName = str(vc['name'])
      if (vcName !== undefined && vcNames.has(vcName)) issues.add(`${path}.virtualClusters[${k}].name`, 'DUPLICATE_NAME', `virtual cluster "${vcName}" is defined twice in virtual host "${name ?? path}"`)
      if (vcName !== undefined) vcNames.add(vcName)
      for (let j = 0, hs = listOf(vc['headers']); j < hs.length; j++) {
        const h = hs[j]
        if (!isObject(h)) continue
        checkStringMatcher(h, `${path}.virtualClusters[${k}].headers[${j}]`, true, issues)
      }
    }
    const routeNames = new Set<string>()
    for (let j = 0, rs = listOf(vh['routes']); j < rs.length; j++) {
      const r = rs[j]
      if (!isObject(r)) continue
      const rname = str(r['name'])
      if (rname !== undefined) {
        // Route names label metrics and `mesh.context().route`; two routes sharing one would blur them.
        if (routeNames.has(rname)) issues.add(`${path}.routes[${j}].name`, 'DUPLICATE_NAME', `route "${rname}" is defined twice in virtual host "${name ?? path}"`)
        routeNames.add(rname)
      }
      checkRoute(r, `${path}.routes[${j}]`, clusters, issues)
    }
  }

  for (let i = 0, cs = listOf(config['clusters']); i < cs.length; i++) {
    const c = cs[i]
    if (!isObject(c)) continue
    // Paths are built only for what is there (each check returns at once on an absent field).
    if (isObject(c['rateLimit'])) checkRateLimit(c['rateLimit'], `clusters[${i}].rateLimit`, issues)
    if (isObject(c['circuitBreakers'])) checkCircuitBreakers(c['circuitBreakers'], `clusters[${i}].circuitBreakers`, issues)
  }
  for (let i = 0, vhs = listOf(config['virtualHosts']); i < vhs.length; i++) {
    const vh = vhs[i]
    if (!isObject(vh)) continue
    if (isObject(vh['retryPolicy'])) checkRetryPolicy(vh['retryPolicy'], `virtualHosts[${i}].retryPolicy`, issues)
    for (let j = 0, rs = listOf(vh['routes']); j < rs.length; j++) {
      const r = rs[j]
      if (!isObject(r)) continue
      const action = r['route']
      if (isObject(action) && isObject(action['retryPolicy'])) checkRetryPolicy(action['retryPolicy'], `virtualHosts[${i}].routes[${j}].route.retryPolicy`, issues)
    }
  }
  for (let i = 0, cs = listOf(config['clusters']); i < cs.length; i++) {
    const c = cs[i]
    if (!isObject(c)) continue
    if (present(c['outlierDetection']) || present(c['healthChecks'])) checkHealthConfig(c, `clusters[${i}]`, issues)
  }
  const add = (path: string, code: ConfigIssueCode, message: string): void => issues.add(path, code, message)
  for (let i = 0, cs = listOf(config['clusters']); i < cs.length; i++) {
    const c = cs[i]
    if (!isObject(c)) continue
    if (present(c['dnsRefreshRate']) || present(c['dnsFailureRefreshRate']) || present(c['dnsResolvers'])) checkClusterDns(c, `clusters[${i}]`, add)
  }
  for (let i = 0, vhs = listOf(config['virtualHosts']); i < vhs.length; i++) {
    const vh = vhs[i]
    if (!isObject(vh)) continue
    for (let j = 0, rs = listOf(vh['routes']); j < rs.length; j++) {
      const r = rs[j]
      if (!isObject(r)) continue
      const action = r['route']
      if (isObject(action) && isObject(action['rateLimit'])) checkRateLimit(action['rateLimit'], `virtualHosts[${i}].routes[${j}].route.rateLimit`, issues)
    }
  }

  const tracing = config['tracing']
  if (isObject(tracing)) {
    for (const key of ['zipkin', 'otlp']) {
      const url = str(tracing[key])
      const problem = url === undefined ? undefined : collectorUrlProblem(url)
      if (problem !== undefined) issues.add(`tracing.${key}`, 'INVALID_VALUE', problem)
    }
  }

  const listener = config['listener']
  if (isObject(listener)) {
    checkRateLimit(listener['rateLimit'], 'listener.rateLimit', issues)
    for (let j = 0, rs = listOf(listener['routes']); j < rs.length; j++) {
      const r = rs[j]
      if (!isObject(r)) continue
      checkRateLimit(r['rateLimit'], `listener.routes[${j}].rateLimit`, issues)
    }
    for (let j = 0, rs = listOf(listener['routes']); j < rs.length; j++) {
      const r = rs[j]
      if (!isObject(r)) continue
      const match = r['match']
      if (isObject(match)) checkMatch(match, `listener.routes[${j}].match`, issues)
    }
    checkListenAddress(listener['address'], 'listener.address', issues)
    // [security-auth] JWT rules and authorization policies.
    checkRequestAuthentication(listener['requestAuthentication'], 'listener.requestAuthentication', add)
    checkAuthorization(listener['authorization'], 'listener.authorization', add)
  }
  checkFaultsAndMirrors(config, clusters, issues)
  checkSecurity(config, add)
  const admin = config['admin']
  if (isObject(admin)) checkListenAddress(admin['address'], 'admin.address', issues)
  const drain = config['drain']
  if (isObject(drain)) {
    for (const key of ['timeout', 'delay'] as const) {
      const ms = parseDuration(drain[key])
      if (ms !== undefined && ms > limits.drainMs) issues.add(`drain.${key}`, 'INVALID_DURATION', `${ms}ms is above the ${limits.drainMs}ms maximum drain ${key}`)
    }
  }
}

/** Fault injection (outbound and inbound routes) and request mirror policies. */
function checkFaultsAndMirrors(config: Obj, clusters: Map<string, ClusterInfo>, issues: Issues): void {
  for (let i = 0, vhs = listOf(config['virtualHosts']); i < vhs.length; i++) {
    const vh = vhs[i]
    if (!isObject(vh)) continue
    for (let j = 0, rs = listOf(vh['routes']); j < rs.length; j++) {
      const r = rs[j]
      if (!isObject(r)) continue
      const action = r['route']
      const mirrors = isObject(action) ? action['requestMirrorPolicies'] : undefined
      if (!present(r['fault']) && !Array.isArray(mirrors)) continue
      const path = `virtualHosts[${i}].routes[${j}]`
      if (present(r['fault'])) {
        checkFault(r['fault'], `${path}.fault`, issues)
        if (!present(r['route']) && (present(r['redirect']) || present(r['directResponse']))) {
          issues.add(`${path}.fault`, 'INVALID_ACTION', 'fault applies to routes that forward (route), not to redirect or directResponse')
        }
      }
      for (let k = 0, ms = listOf(mirrors); k < ms.length; k++) {
        const m = ms[k]
        if (!isObject(m)) continue
        const c = str(m['cluster'])
        const here = `${path}.route.requestMirrorPolicies[${k}]`
        if (c !== undefined) checkDestination(c, str(m['subset']), here, clusters, issues)
      }
    }
  }
  const listener = config['listener']
  if (isObject(listener)) {
    for (let j = 0, rs = listOf(listener['routes']); j < rs.length; j++) {
      const r = rs[j]
      if (!isObject(r) || !isObject(r['fault'])) continue
      checkFault(r['fault'], `listener.routes[${j}].fault`, issues)
    }
  }
}

function checkFault(value: unknown, path: string, issues: Issues): void {
  if (!isObject(value)) return
  const delay = value['delay']
  const abort = value['abort']
  if (!present(delay) && !present(abort)) issues.add(path, 'REQUIRED', 'a fault needs delay, abort or both')
  if (isObject(delay)) {
    const fixed = present(delay['fixedDelay'])
    const header = delay['headerDelay'] === true
    if (fixed === header) {
      issues.add(`${path}.delay`, 'INVALID_VALUE', fixed ? 'a delay has fixedDelay or headerDelay: true, not both' : 'a delay needs fixedDelay, or headerDelay: true to take it from x-envoy-fault-delay-request')
    }
    const ms = parseDuration(delay['fixedDelay'])
    if (ms !== undefined && ms > limits.faultFixedDelayMs) {
      issues.add(`${path}.delay.fixedDelay`, 'INVALID_DURATION', `${ms}ms is above the ${limits.faultFixedDelayMs}ms maximum fault delay`)
    }
  }
  if (isObject(abort)) {
    const status = present(abort['httpStatus'])
    const header = abort['headerAbort'] === true
    if (status === header) {
      issues.add(`${path}.abort`, 'INVALID_VALUE', status ? 'an abort has httpStatus or headerAbort: true, not both' : 'an abort needs httpStatus, or headerAbort: true to take it from x-envoy-fault-abort-request')
    }
  }
}

/** A `host:port` to listen on (the proxy's listener and admin endpoint). */
function checkListenAddress(value: unknown, path: string, issues: Issues): void {
  const address = str(value)
  if (address === undefined) return
  const parsed = parseListenAddress(address)
  if (typeof parsed === 'string') issues.add(path, 'INVALID_ADDRESS', parsed)
}

function checkRoute(route: Obj, path: string, clusters: Map<string, ClusterInfo>, issues: Issues): void {
  const match = route['match']
  if (isObject(match)) checkMatch(match, `${path}.match`, issues)

  const actionCount = (present(route['route']) ? 1 : 0) + (present(route['redirect']) ? 1 : 0) + (present(route['directResponse']) ? 1 : 0)
  if (actionCount !== 1) {
    const actions = presentKeys(route, ROUTE_ACTIONS)
    issues.add(path, 'INVALID_ACTION', actions.length === 0
      ? 'a route needs one action: route, redirect or directResponse'
      : `a route has one action, not ${actions.join(' and ')}`)
  }
  checkHeaderMutations(route, path, issues)

  const action = route['route']
  if (isObject(action)) checkRouteAction(action, `${path}.route`, match, clusters, issues)

  const redirect = route['redirect']
  if (isObject(redirect)) {
    const code = redirect['responseCode']
    if (typeof code === 'number' && ![301, 302, 303, 307, 308].includes(code)) {
      issues.add(`${path}.redirect.responseCode`, 'INVALID_VALUE', `${code} is not a redirect code (301, 302, 303, 307, 308)`)
    }
    const scheme = redirect['schemeRedirect']
    if (typeof scheme === 'string' && !/^[a-z][a-z0-9+.-]*$/i.test(scheme)) {
      issues.add(`${path}.redirect.schemeRedirect`, 'INVALID_VALUE', `"${scheme}" is not a URL scheme`)
    }
    if (countPresent(redirect, REDIRECT_PATHS) > 1) {
      issues.add(`${path}.redirect`, 'INVALID_VALUE', 'only one of pathRedirect, prefixRewrite and regexRewrite can be set')
    }
    const regexRewrite = redirect['regexRewrite']
    if (isObject(regexRewrite)) {
      const pattern = str(regexRewrite['pattern'])
      checkRegex(pattern, `${path}.redirect.regexRewrite.pattern`, issues)
      const substitution = str(regexRewrite['substitution'])
      const bad = pattern === undefined || substitution === undefined ? undefined : rewriteProblem(pattern, substitution)
      if (bad !== undefined) issues.add(`${path}.redirect.regexRewrite.substitution`, 'INVALID_VALUE', bad)
      else if (substitution !== undefined && !isHeaderValue(substitution)) issues.add(`${path}.redirect.regexRewrite.substitution`, 'INVALID_VALUE', 'contains characters a Location header cannot carry')
    }
    for (let k = 0; k < REDIRECT_STRINGS.length; k++) {
      const key = REDIRECT_STRINGS[k] as string
      const v = redirect[key]
      if (typeof v === 'string' && !isHeaderValue(v)) issues.add(`${path}.redirect.${key}`, 'INVALID_VALUE', 'contains characters a Location header cannot carry')
    }
  }
  const direct = route['directResponse']
  if (isObject(direct)) {
    const body = direct['body']
    if (typeof body === 'string' && Buffer.byteLength(body) > limits.directResponseBody) {
      issues.add(`${path}.directResponse.body`, 'TOO_LARGE', `the body is over ${limits.directResponseBody} bytes`)
    }
  }
}

function checkRouteAction(action: Obj, path: string, match: unknown, clusters: Map<string, ClusterInfo>, issues: Issues): void {
  const cluster = str(action['cluster'])
  const weighted = action['weightedClusters']
  const hasCluster = present(action['cluster'])
  const specifierCount = countPresent(action, CLUSTER_SPECIFIERS)
  if (specifierCount > 1) {
    issues.add(path, 'INVALID_ACTION', `a route action has one of cluster, weightedClusters, clusterHeader, not ${presentKeys(action, CLUSTER_SPECIFIERS).join(' and ')}`)
  } else if (specifierCount === 0) {
    issues.add(path, 'INVALID_ACTION', 'a route action needs cluster, weightedClusters or clusterHeader')
  }
  const clusterHeader = str(action['clusterHeader'])
  if (clusterHeader !== undefined && !isHeaderName(clusterHeader) && !/^:(authority|method|path|scheme)$/i.test(clusterHeader)) {
    issues.add(`${path}.clusterHeader`, 'INVALID_HEADER', `"${clusterHeader}" is not a header name`)
  }
  const notFound = action['clusterNotFoundResponseCode']
  if (typeof notFound === 'number' && ![503, 404, 500].includes(notFound)) {
    issues.add(`${path}.clusterNotFoundResponseCode`, 'INVALID_VALUE', `${notFound} is not one of 503, 404, 500 (Envoy's cluster_not_found_response_code)`)
  }
  if (cluster !== undefined) checkDestination(cluster, str(action['subset']), path, clusters, issues)
  else if (!hasCluster && present(action['subset'])) issues.add(`${path}.subset`, 'INVALID_ACTION', 'subset needs cluster (with weightedClusters, put subset on each entry)')

  if (Array.isArray(weighted)) {
    if (weighted.length === 0) issues.add(`${path}.weightedClusters`, 'INVALID_WEIGHTS', 'weightedClusters is empty')
    let total = 0
    let allNumbers = true
    for (let i = 0, ws = listOf(weighted); i < ws.length; i++) {
      const w = ws[i]
      if (!isObject(w)) continue
      const here = `${path}.weightedClusters[${i}]`
      const c = str(w['cluster'])
      if (c !== undefined) checkDestination(c, str(w['subset']), here, clusters, issues)
      const weight = w['weight']
      if (typeof weight === 'number' && Number.isFinite(weight)) {
        if (weight < 0) issues.add(`${here}.weight`, 'INVALID_WEIGHTS', `weight ${weight} is negative`)
        else total += weight
      } else {
        allNumbers = false
      }
      checkHeaderMutations(w, here, issues)
    }
    if (allNumbers && weighted.length > 0 && total === 0) {
      issues.add(`${path}.weightedClusters`, 'INVALID_WEIGHTS', 'the weights add up to 0; at least one must be positive')
    }
    if (total > 0xffffffff) issues.add(`${path}.weightedClusters`, 'INVALID_WEIGHTS', 'the weights add up to more than 2^32-1')
  }

  const regexRewrite = action['regexRewrite']
  if (isObject(regexRewrite)) {
    const pattern = str(regexRewrite['pattern'])
    checkRegex(pattern, `${path}.regexRewrite.pattern`, issues)
    const substitution = str(regexRewrite['substitution'])
    const bad = pattern === undefined || substitution === undefined ? undefined : rewriteProblem(pattern, substitution)
    if (bad !== undefined) issues.add(`${path}.regexRewrite.substitution`, 'INVALID_VALUE', bad)
    if (present(action['prefixRewrite'])) issues.add(path, 'INVALID_VALUE', 'prefixRewrite and regexRewrite cannot both be set')
  }
  const prefixRewrite = str(action['prefixRewrite'])
  if (prefixRewrite !== undefined && isObject(match) && present(match['safeRegex'])) {
    issues.add(`${path}.prefixRewrite`, 'INVALID_VALUE', 'prefixRewrite needs a prefix, path or pathSeparatedPrefix match, not safeRegex')
  }
  const hostRewrite = str(action['hostRewrite'])
  if (hostRewrite !== undefined && (hostRewrite.length === 0 || !isHeaderValue(hostRewrite) || /[\s/]/.test(hostRewrite))) {
    issues.add(`${path}.hostRewrite`, 'INVALID_VALUE', `"${hostRewrite}" is not an authority`)
  }
  for (let i = 0, ps = listOf(action['hashPolicy']); i < ps.length; i++) {
    const p = ps[i]
    if (!isObject(p)) continue
    if (countPresent(p, HASH_POLICY_KINDS) !== 1) issues.add(`${path}.hashPolicy[${i}]`, 'INVALID_VALUE', 'a hash policy has exactly one of header, cookie, queryParameter')
    const header = p['header']
    if (isObject(header)) {
      const n = str(header['name'])
      if (n !== undefined && !isHeaderName(n)) issues.add(`${path}.hashPolicy[${i}].header.name`, 'INVALID_HEADER', `"${n}" is not a header name`)
    }
  }
}

/** A cluster (and subset) a route sends to; `path` is the object holding `cluster` and `subset`. */
function checkDestination(cluster: string, subset: string | undefined, path: string, clusters: Map<string, ClusterInfo>, issues: Issues): void {
  const info = clusters.get(cluster)
  if (info === undefined) {
    const hint = didYouMean(cluster, [...clusters.keys()])
    issues.add(`${path}.cluster`, 'UNKNOWN_CLUSTER', `cluster "${cluster}" is not defined${hint === undefined ? '' : `; did you mean "${hint}"?`}`)
    return
  }
  if (subset !== undefined && !info.subsets.has(subset)) {
    const hint = didYouMean(subset, [...info.subsets])
    const known = info.subsets.size === 0 ? 'it defines none' : `it has ${[...info.subsets].join(', ')}`
    issues.add(`${path}.subset`, 'UNKNOWN_SUBSET', `cluster "${cluster}" has no subset "${subset}" (${known})${hint === undefined ? '' : `; did you mean "${hint}"?`}`)
  }
}

function checkMatch(match: Obj, path: string, issues: Issues): void {
  const specifierCount = (present(match['prefix']) ? 1 : 0) + (present(match['path']) ? 1 : 0) +
    (present(match['safeRegex']) ? 1 : 0) + (present(match['pathSeparatedPrefix']) ? 1 : 0)
  if (specifierCount !== 1) {
    const specifiers = presentKeys(match, PATH_SPECIFIERS)
    issues.add(path, 'INVALID_MATCH', specifiers.length === 0
      ? 'a match needs one of prefix, path, safeRegex, pathSeparatedPrefix'
      : `a match has one path specifier, not ${specifiers.join(' and ')}`)
  }
  for (let k = 1; k < PATH_SPECIFIERS.length; k += 2) {
    const key = PATH_SPECIFIERS[k] as string
    const v = str(match[key])
    if (v !== undefined && !v.startsWith('/')) issues.add(`${path}.${key}`, 'INVALID_VALUE', `"${v}" must start with /`)
  }
  const psp = str(match['pathSeparatedPrefix'])
  if (psp !== undefined && (psp.endsWith('/') || /[?#]/.test(psp))) {
    issues.add(`${path}.pathSeparatedPrefix`, 'INVALID_VALUE', `"${psp}" must not end with / nor contain ? or #`)
  }
  checkRegex(str(match['safeRegex']), `${path}.safeRegex`, issues)
  checkMatcherList(match['headers'], `${path}.headers`, true, issues)
  checkMatcherList(match['queryParameters'], `${path}.queryParameters`, false, issues)
  checkMethodList(match['methods'], `${path}.methods`, issues)
}

/** Each object of a list of string matchers (header matchers when `header`). */
function checkMatcherList(list: unknown, path: string, header: boolean, issues: Issues): void {
  for (let i = 0, ms = listOf(list); i < ms.length; i++) {
    const m = ms[i]
    if (isObject(m)) checkStringMatcher(m, `${path}[${i}]`, header, issues)
  }
}

/** Each string of a list of HTTP methods: an upper-case token. */
function checkMethodList(list: unknown, path: string, issues: Issues): void {
  for (let i = 0, ms = listOf(list); i < ms.length; i++) {
    const m = ms[i]
    if (typeof m !== 'string') continue
    if (!isHeaderName(m) || m !== m.toUpperCase()) issues.add(`${path}[${i}]`, 'INVALID_VALUE', `"${m}" is not an upper-case HTTP method`)
  }
}

function checkRetryPolicy(policy: unknown, path: string, issues: Issues): void {
  if (!isObject(policy)) return
  const retryOn = policy['retryOn']
  const conditions = typeof retryOn === 'string' ? retryOn.split(',').map((v) => v.trim()) : Array.isArray(retryOn) ? retryOn : []
  const codes = policy['retriableStatusCodes']
  if (conditions.includes('retriable-status-codes') && !(Array.isArray(codes) && codes.length > 0)) {
    issues.add(`${path}.retriableStatusCodes`, 'REQUIRED', 'retryOn names retriable-status-codes: list the codes in retriableStatusCodes')
  }
  const headers = policy['retriableHeaders']
  if (conditions.includes('retriable-headers') && !(Array.isArray(headers) && headers.length > 0)) {
    issues.add(`${path}.retriableHeaders`, 'REQUIRED', 'retryOn names retriable-headers: list the matchers in retriableHeaders')
  }
  checkMatcherList(headers, `${path}.retriableHeaders`, true, issues)
  checkMatcherList(policy['retriableRequestHeaders'], `${path}.retriableRequestHeaders`, true, issues)
  checkMethodList(policy['retriableMethods'], `${path}.retriableMethods`, issues)
  const backOff = policy['retryBackOff']
  if (isObject(backOff)) {
    const base = parseDuration(backOff['baseInterval'])
    const max = parseDuration(backOff['maxInterval'])
    if (base !== undefined && base <= 0) issues.add(`${path}.retryBackOff.baseInterval`, 'INVALID_VALUE', 'the base interval must be above 0 (Envoy)')
    if (base !== undefined && max !== undefined && max < base) {
      issues.add(`${path}.retryBackOff.maxInterval`, 'INVALID_VALUE', `maxInterval ${String(backOff['maxInterval'])} is below baseInterval ${String(backOff['baseInterval'])}`)
    }
  }
}

function checkCircuitBreakers(cb: unknown, path: string, issues: Issues): void {
  if (!isObject(cb)) return
  const errorRate = cb['errorRate']
  if (!isObject(errorRate)) return
  const open = parseDuration(errorRate['openDuration'])
  if (open !== undefined && open <= 0) issues.add(`${path}.errorRate.openDuration`, 'INVALID_VALUE', 'the open duration must be above 0')
  const window = parseDuration(errorRate['rollingWindow'])
  if (window !== undefined && window <= 0) issues.add(`${path}.errorRate.rollingWindow`, 'INVALID_VALUE', 'the rolling window must be above 0')
  const buckets = errorRate['rollingWindowBuckets']
  if (window !== undefined && typeof buckets === 'number' && window / buckets < 1) {
    issues.add(`${path}.errorRate.rollingWindowBuckets`, 'INVALID_VALUE', `${buckets} buckets over ${String(errorRate['rollingWindow'])} is less than 1ms per bucket`)
  }
  for (let i = 0, rs = listOf(errorRate['failureStatuses']); i < rs.length; i++) {
    const r = rs[i]
    if (!isObject(r)) continue
    const start = r['start']
    const end = r['end']
    if (typeof start === 'number' && typeof end === 'number' && start >= end) {
      issues.add(`${path}.errorRate.failureStatuses[${i}]`, 'INVALID_VALUE', `the range ${start}..${end} is empty (end is exclusive)`)
    }
  }
}

function checkStringMatcher(m: Obj, path: string, isHeader: boolean, issues: Issues): void {
  const name = str(m['name'])
  if (name !== undefined && isHeader && !isHeaderName(name) && !/^:(authority|method|path|scheme)$/.test(name)) {
    issues.add(`${path}.name`, 'INVALID_HEADER', `"${name}" is not a header name`)
  }
  if (countPresent(m, MATCHER_KINDS) > 1) issues.add(path, 'INVALID_MATCH', `a matcher has at most one of exact, prefix, suffix, contains, safeRegex, present, rangeMatch; got ${presentKeys(m, MATCHER_KINDS).join(', ')}`)
  checkRegex(str(m['safeRegex']), `${path}.safeRegex`, issues)
}

/** A duration field within the bounds of health timers; returns its value in ms when valid. */
function checkHealthDuration(obj: Obj, key: string, path: string, min: number, issues: Issues): number | undefined {
  const ms = parseDuration(obj[key])
  if (ms === undefined) return undefined
  if (ms < min) {
    issues.add(`${path}.${key}`, 'INVALID_DURATION', min === 0 ? `${ms}ms is negative` : `${ms}ms is below the ${min}ms minimum`)
  } else if (ms > limits.maxHealthDurationMs) {
    issues.add(`${path}.${key}`, 'INVALID_DURATION', `${ms}ms is above the ${limits.maxHealthDurationMs}ms maximum (one day)`)
  }
  return ms
}

/** Outlier detection and active health checks of one cluster: timer bounds, ranges, paths. */
function checkHealthConfig(c: Obj, path: string, issues: Issues): void {
  const od = c['outlierDetection']
  if (isObject(od)) {
    const here = `${path}.outlierDetection`
    checkHealthDuration(od, 'interval', here, limits.minHealthIntervalMs, issues)
    const base = checkHealthDuration(od, 'baseEjectionTime', here, 1, issues)
    const max = checkHealthDuration(od, 'maxEjectionTime', here, 1, issues)
    if (base !== undefined && max !== undefined && base > max) {
      issues.add(`${here}.baseEjectionTime`, 'INVALID_VALUE', `baseEjectionTime (${base}ms) is above maxEjectionTime (${max}ms)`)
    }
  }
  const checks = c['healthChecks']
  if (Array.isArray(checks) && checks.length > 1) {
    issues.add(`${path}.healthChecks`, 'INVALID_VALUE', `${checks.length} health checks; a cluster has at most one (as in Envoy)`)
  }
  for (let j = 0, hcs = listOf(checks); j < hcs.length; j++) {
    const hc = hcs[j]
    if (!isObject(hc)) continue
    const here = `${path}.healthChecks[${j}]`
    checkHealthDuration(hc, 'timeout', here, 1, issues)
    checkHealthDuration(hc, 'interval', here, limits.minHealthIntervalMs, issues)
    checkHealthDuration(hc, 'intervalJitter', here, 0, issues)
    checkHealthDuration(hc, 'noTrafficInterval', here, limits.minHealthIntervalMs, issues)
    const http = hc['httpHealthCheck']
    if (!isObject(http)) continue
    const at = `${here}.httpHealthCheck`
    const p = str(http['path'])
    if (p !== undefined && (!p.startsWith('/') || !isHeaderValue(p) || /[\s#]/.test(p))) {
      issues.add(`${at}.path`, 'INVALID_VALUE', `${quote(p)} is not a request path (it starts with / and has no spaces or #)`)
    }
    const host = str(http['host'])
    if (host !== undefined && (host.length === 0 || !isHeaderValue(host) || /[\s/]/.test(host))) {
      issues.add(`${at}.host`, 'INVALID_VALUE', `${quote(host)} is not an authority`)
    }
    for (const key of ['expectedStatuses', 'retriableStatuses']) {
      for (let k = 0, rs = listOf(http[key]); k < rs.length; k++) {
        const r = rs[k]
        if (!isObject(r)) continue
        const start = r['start']
        const end = r['end']
        if (typeof start === 'number' && typeof end === 'number' && start >= end) {
          issues.add(`${at}.${key}[${k}]`, 'INVALID_VALUE', `the range [${start}, ${end}) is empty; end is excluded and must be above start`)
        }
      }
    }
    checkHeaderMutations(http, at, issues)
  }
}

/** Rate limits: Envoy's 50ms floor on fill intervals, header descriptors named, Redis URLs. */
function checkRateLimit(value: unknown, path: string, issues: Issues): void {
  if (!isObject(value)) return
  const buckets: [Obj, string][] = [[value, path]]
  for (let i = 0, ds = listOf(value['descriptors']); i < ds.length; i++) {
    const d = ds[i]
    if (!isObject(d)) continue
    buckets.push([d, `${path}.descriptors[${i}]`])
    checkDescriptorKey(d, `${path}.descriptors[${i}]`, issues)
  }
  for (const [b, at] of buckets) {
    const interval = parseDuration(b['fillInterval'])
    if (interval !== undefined && interval < defaults.minFillIntervalMs) {
      issues.add(`${at}.fillInterval`, 'INVALID_DURATION', `${interval}ms is below the ${defaults.minFillIntervalMs}ms minimum fill interval`)
    }
  }
  const global = value['global']
  if (isObject(global)) {
    const redis = str(global['redis'])
    if (redis !== undefined && !isRedisUrl(redis)) {
      issues.add(`${path}.global.redis`, 'INVALID_ADDRESS', 'expected redis://host:port or rediss://host:port (credentials, if any, are never logged)')
    }
    const d = global['descriptor']
    if (isObject(d)) checkDescriptorKey(d, `${path}.global.descriptor`, issues)
  }
}

function checkDescriptorKey(d: Obj, path: string, issues: Issues): void {
  const name = str(d['name'])
  if (d['key'] === 'header') {
    if (name === undefined) issues.add(`${path}.name`, 'REQUIRED', 'a header descriptor names its header')
    else if (!isHeaderName(name)) issues.add(`${path}.name`, 'INVALID_HEADER', `"${name}" is not a header name`)
  } else if (name !== undefined && typeof d['key'] === 'string') {
    issues.add(`${path}.name`, 'INVALID_VALUE', `name applies only to header descriptors, not ${d['key']}`)
  }
}

function isRedisUrl(value: string): boolean {
  try {
    const url = new URL(value)
    return (url.protocol === 'redis:' || url.protocol === 'rediss:') && url.hostname !== ''
  } catch {
    return false
  }
}

/** Checks a regex unless the structural pass already refused it as too long. */
function checkRegex(pattern: string | undefined, path: string, issues: Issues): void {
  if (pattern === undefined || pattern.length > limits.stringLength) return
  const why = regexProblem(pattern)
  if (why !== undefined) issues.add(path, 'INVALID_REGEX', why)
}

function checkHeaderMutations(obj: Obj, path: string, issues: Issues): void {
  if (obj['requestHeadersToAdd'] === undefined && obj['responseHeadersToAdd'] === undefined &&
    obj['requestHeadersToRemove'] === undefined && obj['responseHeadersToRemove'] === undefined) return
  for (const key of ['requestHeadersToAdd', 'responseHeadersToAdd']) {
    for (let i = 0, opts = listOf(obj[key]); i < opts.length; i++) {
      const opt = opts[i]
      if (!isObject(opt)) continue
      const header = opt['header']
      if (!isObject(header)) continue
      const k = str(header['key'])
      const v = str(header['value'])
      const here = `${path}.${key}[${i}].header`
      if (k !== undefined && (!isHeaderName(k) || isProtectedHeader(k))) {
        issues.add(`${here}.key`, 'INVALID_HEADER', isHeaderName(k) ? `"${k}" cannot be set by header mutation (use hostRewrite for host)` : `"${k}" is not a header name`)
      }
      if (v !== undefined && !isHeaderValue(v)) issues.add(`${here}.value`, 'INVALID_HEADER', 'the value contains CR, LF, NUL or another control character')
      const format = v === undefined ? undefined : headerFormatProblem(v)
      if (format !== undefined) issues.add(`${here}.value`, 'INVALID_VALUE', format)
    }
  }
  for (const key of ['requestHeadersToRemove', 'responseHeadersToRemove']) {
    for (let i = 0, names = listOf(obj[key]); i < names.length; i++) {
      const name = names[i]
      if (typeof name !== 'string') continue
      if (!isHeaderName(name) || isProtectedHeader(name)) issues.add(`${path}.${key}[${i}]`, 'INVALID_HEADER', `"${name}" cannot be removed`)
    }
  }
}

/** Headers whose framing or routing role forbids config from touching them (as in Envoy). */
function isProtectedHeader(name: string): boolean {
  const n = name.toLowerCase()
  return n === 'host' || n === 'content-length' || n === 'transfer-encoding' || n === 'connection' || n === 'upgrade'
}

// ---------------------------------------------------------------- helpers

function isObject(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

/** YAML writes an empty field as null; null means "not set" everywhere in the model. */
function present(v: unknown): boolean {
  return v !== undefined && v !== null
}

/** A name for a message: quoted, and cut short when hostile input makes it long. */
function quote(s: string): string {
  return JSON.stringify(s.length > 64 ? `${s.slice(0, 64)}…` : s)
}

function str(v: unknown): string | undefined {
  return typeof v === 'string' ? v : undefined
}

const NO_ITEMS: readonly unknown[] = Object.freeze([])

// Field names checked together (one list each, not an array literal per value checked).
const ROUTE_ACTIONS = ['route', 'redirect', 'directResponse'] as const
const REDIRECT_PATHS = ['pathRedirect', 'prefixRewrite', 'regexRewrite'] as const
const REDIRECT_STRINGS = ['hostRedirect', 'pathRedirect', 'prefixRewrite'] as const
const CLUSTER_SPECIFIERS = ['cluster', 'weightedClusters', 'clusterHeader'] as const
const HASH_POLICY_KINDS = ['header', 'cookie', 'queryParameter'] as const
/** Indexes 1 and 3 (`path`, `pathSeparatedPrefix`) start with `/`. */
const PATH_SPECIFIERS = ['prefix', 'path', 'safeRegex', 'pathSeparatedPrefix'] as const
const MATCHER_KINDS = ['exact', 'prefix', 'suffix', 'contains', 'safeRegex', 'present', 'rangeMatch'] as const

/** How many of `keys` are set on `obj`. */
function countPresent(obj: Obj, keys: readonly string[]): number {
  let n = 0
  for (let i = 0; i < keys.length; i++) if (present(obj[keys[i] as string])) n++
  return n
}

/** Which of `keys` are set on `obj`, for a message. */
function presentKeys(obj: Obj, keys: readonly string[]): string[] {
  return keys.filter((k) => present(obj[k]))
}

/**
 * A list to iterate by index, or an empty one when the value is not a list or is over the
 * limit (the structural pass reported it). The semantic pass loops with indexes rather than
 * a generator of [item, index] pairs: on a large config those pairs and iterator results
 * were a third of what validation allocated.
 */
function listOf(list: unknown): readonly unknown[] {
  return Array.isArray(list) && list.length <= limits.listItems ? list : NO_ITEMS
}

function join(path: string, key: string): string {
  return path === '' ? key : `${path}.${key}`
}

function describe(v: unknown): string {
  if (v === null) return 'null'
  if (v === undefined) return 'nothing'
  if (v === NOT_DATA) return 'a value that is not data'
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v)
  if (typeof v === 'function') return 'a function'
  if (typeof v === 'symbol') return 'a symbol'
  if (typeof v === 'object') {
    try {
      if (Array.isArray(v)) return 'a list'
      const proto: unknown = Object.getPrototypeOf(v)
      if (proto === null || Object.getPrototypeOf(proto) === null) return 'an object'
      const name = (proto as { constructor?: { name?: unknown } }).constructor?.name
      return typeof name === 'string' && /^[A-Za-z_$][\w$]{0,63}$/.test(name) ? `an instance of ${name} (not plain data)` : 'an object that is not plain data'
    } catch {
      return 'an object that cannot be read'
    }
  }
  return `${typeof v} ${String(v)}`
}

/**
 * The closest known name, when close enough to be a likely typo. `load_balancer` finds
 * `loadBalancer`: case and separators are ignored first, then edit distance decides.
 */
export function didYouMean(name: string, known: readonly string[]): string | undefined {
  const norm = (s: string): string => s.toLowerCase().replace(/[_-]/g, '')
  const n = norm(name)
  let best: string | undefined
  let bestDistance = Infinity
  for (const k of known) {
    if (norm(k) === n) return k
    const d = editDistance(n, norm(k))
    if (d < bestDistance) {
      bestDistance = d
      best = k
    }
  }
  return bestDistance <= Math.max(2, Math.floor(n.length / 3)) ? best : undefined
}

function editDistance(a: string, b: string): number {
  if (Math.abs(a.length - b.length) > 8) return Infinity
  let prev = Array.from({ length: b.length + 1 }, (_, i) => i)
  for (let i = 1; i <= a.length; i++) {
    const cur = [i]
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1
      cur[j] = Math.min((prev[j] as number) + 1, (cur[j - 1] as number) + 1, (prev[j - 1] as number) + cost)
    }
    prev = cur
  }
  return prev[b.length] as number
}
