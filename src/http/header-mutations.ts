/**
 * Compiled header mutations (Envoy `request_headers_to_add/remove`,
 * `response_headers_to_add/remove`). Levels are merged at compile time, most specific
 * first (weighted cluster, route, virtual host) as Envoy applies them, so a request runs
 * one flat list or, most often, none (`null`).
 *
 * Values with command operators (`%REQ(x-user)%`, `%START_TIME%`, …) are formatted per
 * request: {@link bindRequestMutations} gives the request's own list with every value
 * resolved, {@link bindResponseMutations} one whose values still wait for the response.
 * Lists without operators are used as they are.
 */
import type { HeaderAppendAction, HeaderValueOption } from '../config/types.js'
import { defaults } from '../config/defaults.js'
import { compileHeaderFormat, type HeaderValueFormat, type RequestFacts, type ResponseFacts } from './header-format.js'

/** One header to add. */
export interface HeaderAdd {
  readonly name: string
  /** The value, when it has no operator (or once formatted). */
  readonly value: string
  /** The formatter of a value with operators; `null` when `value` is final. */
  readonly format: HeaderValueFormat | null
  /** The value as configured (with its operators). */
  readonly source: string
  readonly action: HeaderAppendAction
  /** Add the header even when its formatted value is empty (Envoy `keep_empty_value`). */
  readonly keepEmpty: boolean
}

/** Removals then additions, names lower-cased. */
export interface HeaderMutations {
  readonly remove: readonly string[]
  /**
   * The additions whose value is final (callers that do not bind per request see these
   * only); after binding, every addition in order.
   */
  readonly add: readonly HeaderAdd[]
  /** Every addition in order, formatters included; `null` when no value has operators. */
  readonly formatted: readonly HeaderAdd[] | null
}

/** The mutations of one level of config. */
export interface MutationSource {
  readonly toAdd?: readonly HeaderValueOption[] | undefined
  readonly toRemove?: readonly string[] | undefined
}

/**
 * Merges levels, in the order they apply, into one list (removals, then additions), or
 * `null` when there is nothing to do. Envoy applies each level in turn, removing before
 * adding; a later level's removal therefore also takes out what earlier levels added, which
 * the merged list reproduces by dropping those additions.
 */
export function compileMutations(levels: readonly MutationSource[]): HeaderMutations | null {
  if (levels.every((l) => (l.toAdd?.length ?? 0) === 0 && (l.toRemove?.length ?? 0) === 0)) return null
  const remove: string[] = []
  let all: HeaderAdd[] = []
  let dynamic = false
  for (const level of levels) {
    const removed = (level.toRemove ?? []).map((r) => r.toLowerCase())
    if (removed.length > 0 && all.length > 0) all = all.filter((a) => !removed.includes(a.name))
    remove.push(...removed)
    for (const a of level.toAdd ?? []) {
      const compiled = compileHeaderFormat(a.header.value)
      if (typeof compiled !== 'string') dynamic = true
      all.push(Object.freeze({
        name: a.header.key.toLowerCase(),
        value: typeof compiled === 'string' ? compiled : '',
        format: typeof compiled === 'string' ? null : compiled,
        source: a.header.value,
        action: a.appendAction ?? defaults.headerAppendAction,
        keepEmpty: a.keepEmptyValue === true,
      }))
    }
  }
  if (remove.length === 0 && all.length === 0) return null
  return Object.freeze({
    remove: Object.freeze(remove),
    add: Object.freeze(dynamic ? all.filter((a) => a.format === null && (a.keepEmpty || a.value !== '')) : all.filter((a) => a.keepEmpty || a.value !== '')),
    formatted: dynamic ? Object.freeze(all) : null,
  })
}

/**
 * The request mutations of one request with every value formatted (empty ones left out,
 * unless kept): what is sent upstream. The same object when no value has operators.
 */
export function bindRequestMutations(m: HeaderMutations | null, req: RequestFacts): HeaderMutations | null {
  if (m === null || m.formatted === null) return m
  const add: HeaderAdd[] = []
  for (const a of m.formatted) {
    const value = a.format === null ? a.value : a.format(req, undefined)
    if (value !== '' || a.keepEmpty) add.push(a.format === null ? a : { ...a, value, format: null })
  }
  return { remove: m.remove, add, formatted: null }
}

/**
 * The response mutations of one request: request-side operators read this request,
 * response-side ones wait for the response ({@link mutateHeaderObject} gives it). The same
 * object when no value has operators.
 */
export function bindResponseMutations(m: HeaderMutations | null, req: RequestFacts): HeaderMutations | null {
  if (m === null || m.formatted === null) return m
  const formatted = m.formatted.map((a) => {
    const f = a.format
    return f === null ? a : { ...a, format: (_r: RequestFacts | undefined, res: ResponseFacts | undefined) => f(req, res) }
  })
  return { remove: m.remove, add: m.add, formatted }
}

/**
 * Applies mutations to a header object with lower-cased keys (undici's response headers).
 * `res` feeds response-side operators of a bound list.
 */
export function mutateHeaderObject(headers: Record<string, string | string[] | undefined>, m: HeaderMutations, res?: ResponseFacts): void {
  for (const name of m.remove) delete headers[name]
  const list = m.formatted ?? m.add
  // Formatters read the response as it came, before this list changes it (Envoy formats
  // every value first, then adds them).
  const snapshot = m.formatted === null || res === undefined ? res : { ...res, headers: { ...headers } }
  const values = m.formatted === null ? null : list.map((a) => (a.format === null ? a.value : a.format(undefined, snapshot)))
  for (let i = 0; i < list.length; i++) {
    const a = list[i] as HeaderAdd
    const value = values === null ? a.value : (values[i] as string)
    if (value === '' && !a.keepEmpty) continue
    const cur = headers[a.name]
    switch (a.action) {
      case 'APPEND_IF_EXISTS_OR_ADD':
        headers[a.name] = cur === undefined ? value : Array.isArray(cur) ? [...cur, value] : [cur, value]
        break
      case 'ADD_IF_ABSENT':
        if (cur === undefined) headers[a.name] = value
        break
      case 'OVERWRITE_IF_EXISTS_OR_ADD':
        headers[a.name] = value
        break
      case 'OVERWRITE_IF_EXISTS':
        if (cur !== undefined) headers[a.name] = value
        break
    }
  }
}
