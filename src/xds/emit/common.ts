/**
 * Pieces shared by the emitters (our config → Envoy xDS objects in the codec's object form):
 * durations, percentages, matchers, header mutations, and the record of what could not be
 * carried.
 *
 * @module
 */
import { parseDuration } from '../../config/duration.js'
import type { Duration, HeaderMatcher, HeaderValueOption, QueryParameterMatcher } from '../../config/types.js'
import { durationFromMs } from '../codec.js'
import type { OmittedField, XdsObject } from '../types.js'
import { typeUrlOf } from '../type-urls.js'

export type { OmittedField } from '../types.js'

/** Collects the parts of a config xDS cannot carry (by config path), once each. */
export class Omissions {
  readonly #list: OmittedField[] = []
  readonly #seen = new Set<string>()

  add(path: string, message: string): void {
    const key = `${path}\n${message}`
    if (this.#seen.has(key)) return
    this.#seen.add(key)
    this.#list.push({ path, message })
  }

  get list(): readonly OmittedField[] {
    return this.#list
  }
}

/** A validated config duration as proto3 JSON (`"0.250s"`). */
export function duration(d: Duration): string {
  return durationFromMs(parseDuration(d) ?? 0)
}

/** An Any in object form. */
export function typed(typeName: string, fields: XdsObject = {}): XdsObject {
  return { '@type': typeUrlOf(typeName), ...fields }
}

/**
 * A 0–100 percentage (fractions allowed) as an Envoy FractionalPercent, with the smallest
 * denominator that holds it exactly (or a millionth, rounded).
 */
export function fractionalPercent(percent: number): XdsObject {
  if (Number.isInteger(percent)) return { numerator: percent, denominator: 'HUNDRED' }
  const tenThousandths = percent * 100
  if (Math.abs(tenThousandths - Math.round(tenThousandths)) < 1e-9) return { numerator: Math.round(tenThousandths), denominator: 'TEN_THOUSAND' }
  return { numerator: Math.round(percent * 10_000), denominator: 'MILLION' }
}

/** The string criterion of a header or query matcher, as an Envoy StringMatcher (or undefined: none set). */
function stringMatcher(m: HeaderMatcher | QueryParameterMatcher): XdsObject | undefined {
  let out: XdsObject | undefined
  if (m.exact !== undefined) out = { exact: m.exact }
  else if (m.prefix !== undefined) out = { prefix: m.prefix }
  else if (m.suffix !== undefined) out = { suffix: m.suffix }
  else if (m.contains !== undefined) out = { contains: m.contains }
  else if (m.safeRegex !== undefined) return { safe_regex: { regex: m.safeRegex } }
  if (out !== undefined && m.ignoreCase === true) out['ignore_case'] = true
  return out
}

/** Envoy `HeaderMatcher` (string_match form; present_match when there is no string criterion). */
export function headerMatcher(m: HeaderMatcher): XdsObject {
  const out: XdsObject = { name: m.name }
  const s = stringMatcher(m)
  if (s !== undefined) out['string_match'] = s
  else out['present_match'] = m.present ?? true
  if (m.invert === true) out['invert_match'] = true
  return out
}

/** Envoy `QueryParameterMatcher`. */
export function queryMatcher(m: QueryParameterMatcher): XdsObject {
  const out: XdsObject = { name: m.name }
  const s = stringMatcher(m)
  if (s !== undefined) out['string_match'] = s
  else out['present_match'] = m.present ?? true
  return out
}

/**
 * Envoy `HeaderValueOption`. Envoy expands `%COMMAND%` in header values; ours are literal,
 * so `%` is written `%%`.
 */
export function headerValueOption(h: HeaderValueOption): XdsObject {
  const out: XdsObject = { header: { key: h.header.key, value: h.header.value.replaceAll('%', '%%') } }
  if (h.appendAction !== undefined) out['append_action'] = h.appendAction
  return out
}

/** The four header-mutation lists of a virtual host, route or weighted cluster. */
export function headerMutations(m: {
  requestHeadersToAdd?: HeaderValueOption[]
  requestHeadersToRemove?: string[]
  responseHeadersToAdd?: HeaderValueOption[]
  responseHeadersToRemove?: string[]
}): XdsObject {
  const out: XdsObject = {}
  if (m.requestHeadersToAdd?.length) out['request_headers_to_add'] = m.requestHeadersToAdd.map(headerValueOption)
  if (m.requestHeadersToRemove?.length) out['request_headers_to_remove'] = [...m.requestHeadersToRemove]
  if (m.responseHeadersToAdd?.length) out['response_headers_to_add'] = m.responseHeadersToAdd.map(headerValueOption)
  if (m.responseHeadersToRemove?.length) out['response_headers_to_remove'] = [...m.responseHeadersToRemove]
  return out
}

/** An object with only the defined values of `fields`. */
export function defined(fields: Record<string, unknown>): XdsObject {
  const out: XdsObject = {}
  for (const [k, v] of Object.entries(fields)) if (v !== undefined) out[k] = v
  return out
}
