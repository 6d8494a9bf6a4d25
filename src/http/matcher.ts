/**
 * Compiled route matchers. A RouteMatch becomes one object whose `matches` does the cheap
 * path test first and touches headers or the query only when the route has such matchers
 * (`null` lists mean "none", so the common route pays one comparison).
 */
import { compileRegex, type CompiledRegex } from '../config/regex.js'
import type { HeaderMatcher, QueryParameterMatcher, RouteMatch } from '../config/types.js'
import type { RequestView } from './request-view.js'

const enum PathKind { Prefix, Exact, Regex, Separated }

const enum ValueKind { Exact, Prefix, Suffix, Contains, Absent, Present, Test }

/**
 * A compiled string matcher on a header or query parameter value. The string kinds are
 * fields of the matcher, not closures over them: a config of many routes with header
 * matchers keeps one object per matcher instead of one and two closures with their scopes
 * (~160 bytes fewer each). Regex and range matchers keep their test function.
 */
class ValueMatcher {
  readonly #kind: ValueKind
  /** The value to compare with (lower-cased under `ignoreCase`). */
  readonly #want: string
  readonly #ignoreCase: boolean
  readonly #invert: boolean
  /** Envoy `treat_missing_header_as_empty`: an absent header is matched as "". */
  readonly #missingAsEmpty: boolean
  readonly #test: ((value: string | undefined) => boolean) | null

  constructor(readonly name: string, m: HeaderMatcher | QueryParameterMatcher, invert: boolean) {
    this.#invert = invert
    this.#missingAsEmpty = 'treatMissingHeaderAsEmpty' in m && m.treatMissingHeaderAsEmpty === true
    const ic = m.ignoreCase === true
    this.#ignoreCase = ic
    let kind = ValueKind.Present
    let want = ''
    let test: ((value: string | undefined) => boolean) | null = null
    if ('rangeMatch' in m && m.rangeMatch !== undefined) {
      kind = ValueKind.Test
      test = compileRangeTest(m.rangeMatch)
    } else if (m.exact !== undefined) {
      kind = ValueKind.Exact
      want = m.exact
    } else if (m.prefix !== undefined) {
      kind = ValueKind.Prefix
      want = m.prefix
    } else if (m.suffix !== undefined) {
      kind = ValueKind.Suffix
      want = m.suffix
    } else if (m.contains !== undefined) {
      kind = ValueKind.Contains
      want = m.contains
    } else if (m.safeRegex !== undefined) {
      kind = ValueKind.Test
      const re = compileRegex(m.safeRegex, ic)
      test = (v) => v !== undefined && re.fullMatch(v)
    } else if (m.present === false) {
      kind = ValueKind.Absent
    }
    this.#kind = kind
    this.#want = ic ? want.toLowerCase() : want
    this.#test = test
  }

  matches(value: string | undefined): boolean {
    return this.#matches(value === undefined && this.#missingAsEmpty ? '' : value) !== this.#invert
  }

  #matches(v: string | undefined): boolean {
    switch (this.#kind) {
      case ValueKind.Absent:
        return v === undefined
      case ValueKind.Present:
        return v !== undefined
      case ValueKind.Test:
        return (this.#test as (value: string | undefined) => boolean)(v)
    }
    if (v === undefined) return false
    const s = this.#ignoreCase ? v.toLowerCase() : v
    switch (this.#kind) {
      case ValueKind.Exact:
        return s === this.#want
      case ValueKind.Prefix:
        return s.startsWith(this.#want)
      case ValueKind.Suffix:
        return s.endsWith(this.#want)
      default:
        return s.includes(this.#want)
    }
  }
}

/** Envoy Int64Range on a header value: a whole decimal integer within [start, end). */
function compileRangeTest(range: { start: number; end: number }): (value: string | undefined) => boolean {
  return (v) => {
    if (v === undefined || !/^[+-]?\d{1,18}$/.test(v)) return false
    const n = Number(v)
    return n >= range.start && n < range.end
  }
}

/**
 * A list of header matchers as one test over a header lookup (all must match), for
 * headers that are not a request's: retriable response headers, for instance.
 */
export function compileHeaderMatchers(list: readonly HeaderMatcher[]): (header: (name: string) => string | undefined) => boolean {
  const matchers = list.map((h) => new ValueMatcher(h.name.toLowerCase(), h, h.invert === true))
  return (header) => {
    for (const m of matchers) if (!m.matches(header(m.name))) return false
    return true
  }
}

/** A compiled RouteMatch. */
export class CompiledMatch {
  readonly #kind: PathKind
  readonly #value: string
  readonly #regex: CompiledRegex | undefined
  readonly #caseInsensitive: boolean
  readonly #headers: readonly ValueMatcher[] | null
  readonly #query: readonly ValueMatcher[] | null
  /** A list, not a Set: routes name one to a few methods, and a Set costs ~170 bytes of table. */
  readonly #methods: readonly string[] | null

  constructor(match: RouteMatch) {
    this.#caseInsensitive = match.caseSensitive === false
    const fold = (s: string): string => (this.#caseInsensitive ? s.toLowerCase() : s)
    if (match.path !== undefined) {
      this.#kind = PathKind.Exact
      this.#value = fold(match.path)
    } else if (match.safeRegex !== undefined) {
      this.#kind = PathKind.Regex
      this.#regex = compileRegex(match.safeRegex)
      // The literal every match starts with pins a segment for route indexes, as a prefix does.
      this.#value = this.#regex.literalPrefix
    } else if (match.pathSeparatedPrefix !== undefined) {
      this.#kind = PathKind.Separated
      this.#value = fold(match.pathSeparatedPrefix)
    } else {
      this.#kind = PathKind.Prefix
      this.#value = fold(match.prefix ?? '/')
    }
    this.#headers = match.headers?.length
      ? match.headers.map((h) => new ValueMatcher(h.name.toLowerCase(), h, h.invert === true))
      : null
    this.#query = match.queryParameters?.length
      ? match.queryParameters.map((q) => new ValueMatcher(q.name, q, false))
      : null
    // The config's own list when it is frozen (the snapshot's config always is): nothing new to keep.
    const methods = match.methods
    this.#methods = methods === undefined || methods.length === 0 ? null : Object.isFrozen(methods) ? methods : Object.freeze([...methods])
  }

  /** The literal prefix or path this match tests, for prefix rewrites; `undefined` for regex. */
  get matchedPrefix(): string | undefined {
    return this.#kind === PathKind.Regex ? undefined : this.#value
  }

  /**
   * The first path segment every request this match takes must have (`/api/x` → `api`),
   * or `undefined` when the match does not pin one. Route indexes rely on it.
   */
  get segment(): string | undefined {
    if (this.#caseInsensitive) return undefined
    const v = this.#value
    switch (this.#kind) {
      case PathKind.Prefix:
      case PathKind.Regex: {
        const slash = v.indexOf('/', 1)
        const seg = v.startsWith('/') && slash > 1 ? v.slice(1, slash) : undefined
        return seg === undefined || /[?#]/.test(seg) ? undefined : seg
      }
      case PathKind.Exact:
      case PathKind.Separated: {
        if (!v.startsWith('/') || v.length < 2) return undefined
        const slash = v.indexOf('/', 1)
        const seg = slash === -1 ? v.slice(1) : v.slice(1, slash)
        return /[?#]/.test(seg) || seg === '' ? undefined : seg
      }
    }
  }

  /** True for an exact `path` match (its rewrite replaces the whole path). */
  get isExactPath(): boolean {
    return this.#kind === PathKind.Exact
  }

  matches(req: RequestView): boolean {
    if (!this.#matchesPath(req)) return false
    if (this.#methods !== null && !this.#methods.includes(req.method)) return false
    if (this.#headers !== null) {
      for (const h of this.#headers) if (!h.matches(req.header(h.name))) return false
    }
    if (this.#query !== null) {
      for (const q of this.#query) if (!q.matches(req.queryParameter(q.name))) return false
    }
    return true
  }

  #matchesPath(req: RequestView): boolean {
    const want = this.#value
    switch (this.#kind) {
      case PathKind.Prefix: {
        // Envoy tests a prefix against the whole :path, query string included.
        const p = req.fullPath
        if (!this.#caseInsensitive) return p.startsWith(want)
        return p.length >= want.length && p.slice(0, want.length).toLowerCase() === want
      }
      case PathKind.Exact: {
        const p = req.path
        return this.#caseInsensitive ? p.length === want.length && p.toLowerCase() === want : p === want
      }
      case PathKind.Regex:
        return (this.#regex as CompiledRegex).fullMatch(req.path)
      case PathKind.Separated: {
        const p = req.path
        if (p.length < want.length) return false
        const head = this.#caseInsensitive ? p.slice(0, want.length).toLowerCase() : p.slice(0, want.length)
        return head === want && (p.length === want.length || p.charCodeAt(want.length) === 47 /* / */)
      }
    }
  }
}
