/**
 * Compiled header mutations (Envoy `request_headers_to_add/remove`,
 * `response_headers_to_add/remove`). Levels are merged at compile time, most specific
 * first (weighted cluster, route, virtual host) as Envoy applies them, so a request runs
 * one flat list or, most often, none (`null`).
 */
import type { HeaderAppendAction, HeaderValueOption } from '../config/types.js'
import { defaults } from '../config/defaults.js'

/** One header to add. */
export interface HeaderAdd {
  readonly name: string
  readonly value: string
  readonly action: HeaderAppendAction
}

/** Removals then additions, names lower-cased. */
export interface HeaderMutations {
  readonly remove: readonly string[]
  readonly add: readonly HeaderAdd[]
}

/** The mutations of one level of config. */
export interface MutationSource {
  readonly toAdd?: readonly HeaderValueOption[] | undefined
  readonly toRemove?: readonly string[] | undefined
}

/** Merges levels (most specific first) into one list, or `null` when there is nothing to do. */
export function compileMutations(levels: readonly MutationSource[]): HeaderMutations | null {
  if (levels.every((l) => (l.toAdd?.length ?? 0) === 0 && (l.toRemove?.length ?? 0) === 0)) return null
  const remove: string[] = []
  const add: HeaderAdd[] = []
  for (const level of levels) {
    for (const r of level.toRemove ?? []) remove.push(r.toLowerCase())
    for (const a of level.toAdd ?? []) {
      add.push({ name: a.header.key.toLowerCase(), value: a.header.value, action: a.appendAction ?? defaults.headerAppendAction })
    }
  }
  return remove.length === 0 && add.length === 0 ? null : Object.freeze({ remove: Object.freeze(remove), add: Object.freeze(add) })
}

/** Applies mutations to a header object with lower-cased keys (undici's response headers). */
export function mutateHeaderObject(headers: Record<string, string | string[] | undefined>, m: HeaderMutations): void {
  for (const name of m.remove) delete headers[name]
  for (const a of m.add) {
    const cur = headers[a.name]
    switch (a.action) {
      case 'APPEND_IF_EXISTS_OR_ADD':
        headers[a.name] = cur === undefined ? a.value : Array.isArray(cur) ? [...cur, a.value] : [cur, a.value]
        break
      case 'ADD_IF_ABSENT':
        if (cur === undefined) headers[a.name] = a.value
        break
      case 'OVERWRITE_IF_EXISTS_OR_ADD':
        headers[a.name] = a.value
        break
      case 'OVERWRITE_IF_EXISTS':
        if (cur !== undefined) headers[a.name] = a.value
        break
    }
  }
}
