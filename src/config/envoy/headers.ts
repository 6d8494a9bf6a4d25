/**
 * Envoy header mutations (`HeaderValueOption` lists and header names to remove), shared by
 * route configurations, virtual hosts, routes, weighted clusters and health checks.
 * Values keep Envoy's command operators, which the mesh evaluates with Envoy's meaning;
 * one it does not evaluate drops its header (reported), never sent literally.
 */
import { headerFormatProblem } from '../header-format.js'
import { isHeaderName, isHeaderValue } from '../http-token.js'
import type { HeaderAppendAction, HeaderValueOption, VirtualHostConfig } from '../types.js'
import { asBool, asEnum, asList, asString, asStrings, clip, firstOf, present, put, readField, type Field, type Problems, type Shape } from './reader.js'

/** The objects that carry header mutations in our model. */
export type Mutable = Pick<VirtualHostConfig, 'requestHeadersToAdd' | 'requestHeadersToRemove' | 'responseHeadersToAdd' | 'responseHeadersToRemove'>

/** The four mutation fields of Envoy's route messages. */
export const MUTATIONS = ['request_headers_to_add', 'request_headers_to_remove', 'response_headers_to_add', 'response_headers_to_remove']

const HEADER_VALUE_OPTION: Shape = { use: ['header', 'append', 'append_action', 'keep_empty_value'] }
const HEADER_VALUE: Shape = { use: ['key', 'value'], why: { raw_value: 'raw (binary) header values are not supported; use value' } }
const APPEND_ACTIONS: readonly HeaderAppendAction[] = ['APPEND_IF_EXISTS_OR_ADD', 'ADD_IF_ABSENT', 'OVERWRITE_IF_EXISTS_OR_ADD', 'OVERWRITE_IF_EXISTS']
/** Headers the mesh will not let config touch, as its validation says (framing and routing). */
const PROTECTED_HEADERS: readonly string[] = ['host', 'content-length', 'transfer-encoding', 'connection', 'upgrade']

/** Reads the four mutation fields of `m` into `target`; `plain` for places that do not format values (health checks). */
export function translateMutations(p: Problems, m: Map<string, Field>, target: Mutable, plain = false): void {
  put(target, 'requestHeadersToAdd', headersToAdd(p, m.get('request_headers_to_add'), plain))
  put(target, 'requestHeadersToRemove', headersToRemove(p, m.get('request_headers_to_remove')))
  put(target, 'responseHeadersToAdd', headersToAdd(p, m.get('response_headers_to_add'), plain))
  put(target, 'responseHeadersToRemove', headersToRemove(p, m.get('response_headers_to_remove')))
}

/** A list of HeaderValueOption. */
export function headersToAdd(p: Problems, f: Field | undefined, plain = false): HeaderValueOption[] | undefined {
  const out: HeaderValueOption[] = []
  for (const item of asList(p, f)) {
    const option = headerValueOption(p, item, plain)
    if (option !== undefined) out.push(option)
  }
  return out.length > 0 ? out : undefined
}

function headersToRemove(p: Problems, f: Field | undefined): string[] | undefined {
  const out: string[] = []
  for (const item of asStrings(p, f)) {
    const name = item.value as string
    if (mutableHeader(name)) out.push(name)
    else p.report(item.path, `header "${clip(name)}" cannot be removed; dropped`)
  }
  return out.length > 0 ? out : undefined
}

function headerValueOption(p: Problems, f: Field, plain: boolean): HeaderValueOption | undefined {
  const m = readField(p, f, HEADER_VALUE_OPTION)
  const h = readField(p, m?.get('header'), HEADER_VALUE)
  if (m === undefined || h === undefined) {
    if (m !== undefined) p.report(f.path, 'a header to add needs header.key; dropped')
    return undefined
  }
  const keyField = h.get('key')
  const key = asString(p, keyField)
  if (key === undefined || keyField === undefined) {
    p.report(f.path, 'a header to add needs header.key; dropped')
    return undefined
  }
  if (!mutableHeader(key)) {
    p.report(keyField.path, `header "${clip(key)}" cannot be set by a header mutation; dropped`)
    return undefined
  }
  const value = plain ? plainValue(p, h.get('value')) : formattedValue(p, h.get('value'))
  if (value === undefined) return undefined
  const option: HeaderValueOption = { header: { key, value } }
  put(option, 'appendAction', appendAction(p, m))
  if (asBool(p, m.get('keep_empty_value')) === true) option.keepEmptyValue = true
  return option
}

/** A value with Envoy's `%…%` operators, kept for the mesh to evaluate. */
function formattedValue(p: Problems, f: Field | undefined): string | undefined {
  if (!present(f)) return ''
  const value = asString(p, f)
  if (value === undefined) return undefined
  if (!isHeaderValue(value)) {
    p.report(f.path, 'the value contains characters a header cannot carry; header dropped')
    return undefined
  }
  const problem = headerFormatProblem(value)
  if (problem !== undefined) {
    p.report(f.path, `${problem}; header dropped`)
    return undefined
  }
  return value
}

/** A value for a place that adds values verbatim: `%%` is unescaped, operators are reported. */
function plainValue(p: Problems, f: Field | undefined): string | undefined {
  if (!present(f)) return ''
  const value = asString(p, f)
  if (value === undefined) return undefined
  if (value.replaceAll('%%', '').includes('%')) {
    p.report(f.path, 'command operators (%…%) are not evaluated here; header dropped')
    return undefined
  }
  const literal = value.replaceAll('%%', '%')
  if (!isHeaderValue(literal)) {
    p.report(f.path, 'the value contains characters a header cannot carry; header dropped')
    return undefined
  }
  // Our model formats values: a literal % is written %% there too.
  return value
}

/** append_action, or the legacy `append` bool (true: append, false: overwrite). */
function appendAction(p: Problems, m: Map<string, Field>): HeaderAppendAction | undefined {
  const f = firstOf(p, m, ['append_action', 'append'])
  if (f?.name === 'append_action') return asEnum(p, f, APPEND_ACTIONS) as HeaderAppendAction | undefined
  const append = asBool(p, f)
  if (append === undefined) return undefined
  return append ? 'APPEND_IF_EXISTS_OR_ADD' : 'OVERWRITE_IF_EXISTS_OR_ADD'
}

function mutableHeader(name: string): boolean {
  return isHeaderName(name) && !PROTECTED_HEADERS.includes(name.toLowerCase())
}
