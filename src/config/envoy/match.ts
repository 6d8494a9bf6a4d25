/**
 * Envoy `RouteMatch` and its matchers (`HeaderMatcher`, `StringMatcher`,
 * `QueryParameterMatcher`, `RegexMatcher`) as our `RouteMatch`.
 *
 * Never broaden a match: a criterion the mesh cannot honour (a `runtime_fraction`, a
 * `tls_context`, dynamic metadata, filter state, a custom string matcher, a header kind it
 * does not know, a regex RE2 refuses, …) makes the whole match unusable, and the caller
 * drops its route — kept without that criterion, the route would take traffic meant for the
 * routes after it. gRPC's xDS client refuses such routes the same way.
 */
import { regexProblem } from '../regex.js'
import { isHeaderName } from '../http-token.js'
import type { HeaderMatcher, QueryParameterMatcher, RouteMatch } from '../types.js'
import { asBool, asInt, asList, asString, clip, firstOf, present, put, readField, type Field, type Fields, type Problems, type Shape } from './reader.js'

const CRITERION = 'a match criterion the mesh cannot honour'
const ROUTE_MATCH: Shape = {
  use: ['prefix', 'path', 'safe_regex', 'path_separated_prefix', 'case_sensitive', 'headers', 'query_parameters', 'grpc'],
  why: {
    runtime_fraction: `${CRITERION} (runtime fractions)`,
    tls_context: `${CRITERION} (the downstream TLS context)`,
    dynamic_metadata: `${CRITERION} (dynamic metadata)`,
    path_match_policy: `${CRITERION} (URI templates)`,
    connect_matcher: `${CRITERION} (CONNECT requests are not routed)`,
    filter_state: `${CRITERION} (filter state)`,
  },
  other: CRITERION,
}
const PATH_SPECIFIERS = ['prefix', 'path', 'safe_regex', 'path_separated_prefix']
// google_re2 only says which engine to use, and RE2 is what safe regexes mean anyway.
const REGEX_MATCHER: Shape = { use: ['regex'], drop: ['google_re2'], other: CRITERION }
const HEADER_MATCHER: Shape = {
  use: [
    'name', 'exact_match', 'prefix_match', 'suffix_match', 'contains_match', 'safe_regex_match',
    'present_match', 'string_match', 'range_match', 'invert_match', 'treat_missing_header_as_empty',
  ],
  other: CRITERION,
}
const HEADER_CRITERIA = ['exact_match', 'prefix_match', 'suffix_match', 'contains_match', 'safe_regex_match', 'present_match', 'string_match', 'range_match']
const STRING_MATCHER: Shape = { use: ['exact', 'prefix', 'suffix', 'contains', 'safe_regex', 'custom', 'ignore_case'], other: CRITERION }
const STRING_CRITERIA = ['exact', 'prefix', 'suffix', 'contains', 'safe_regex', 'custom']
const QUERY_MATCHER: Shape = { use: ['name', 'string_match', 'present_match'], other: CRITERION }
const INT64_RANGE: Shape = { use: ['start', 'end'], other: CRITERION }
const GRPC_OPTIONS: Shape = { use: [], other: CRITERION }
/** Pseudo-headers the mesh's matcher understands. */
const PSEUDO_HEADERS: readonly string[] = [':method', ':authority', ':path', ':scheme']
/**
 * Envoy's `grpc` match: content-type `application/grpc`, alone or followed by `+` or `;`
 * (Grpc::Common::hasGrpcContentType).
 */
const GRPC_CONTENT_TYPE: HeaderMatcher = Object.freeze({ name: 'content-type', safeRegex: 'application/grpc([+;].*)?' })

/** Read a message whose every field must be honoured: `undefined` when any is not. */
function readStrict(p: Problems, f: Field | undefined, shape: Shape): Fields | undefined {
  const m = readField(p, f, shape)
  return m === undefined || (m.unsupported ?? 0) > 0 ? undefined : m
}

/** A RouteMatch, or `undefined` (reported) when some criterion cannot be honoured: the route must then be dropped. */
export function translateRouteMatch(p: Problems, f: Field): RouteMatch | undefined {
  const m = readStrict(p, f, ROUTE_MATCH)
  if (m === undefined) return undefined
  const spec = firstOf(p, m, PATH_SPECIFIERS)
  if (spec === undefined) {
    p.report(f.path, 'a match needs one of prefix, path, safe_regex, path_separated_prefix')
    return undefined
  }
  const match: RouteMatch = {}
  if (!pathSpecifier(p, spec, match)) return undefined
  put(match, 'caseSensitive', asBool(p, m.get('case_sensitive')))
  const headers: HeaderMatcher[] = []
  for (const item of asList(p, m.get('headers'))) {
    const h = translateHeaderMatcher(p, item)
    if (h === undefined) return undefined
    headers.push(h)
  }
  const grpc = m.get('grpc')
  if (present(grpc)) {
    if (readStrict(p, grpc, GRPC_OPTIONS) === undefined) return undefined
    headers.push({ ...GRPC_CONTENT_TYPE })
  }
  if (headers.length > 0) match.headers = headers
  const query: QueryParameterMatcher[] = []
  for (const item of asList(p, m.get('query_parameters'))) {
    const q = queryMatcher(p, item)
    if (q === undefined) return undefined
    query.push(q)
  }
  if (query.length > 0) match.queryParameters = query
  return match
}

function pathSpecifier(p: Problems, f: Field, match: RouteMatch): boolean {
  if (f.name === 'safe_regex') return put(match, 'safeRegex', regexOf(p, f))
  const value = asString(p, f)
  if (value === undefined) return false
  if (f.name === 'prefix') return put(match, 'prefix', value)
  if (!value.startsWith('/')) {
    p.report(f.path, `"${clip(value)}" must start with /`)
    return false
  }
  if (f.name === 'path') return put(match, 'path', value)
  if (value.endsWith('/') || /[?#]/.test(value)) {
    p.report(f.path, `"${clip(value)}" must not end with / nor contain ? or #`)
    return false
  }
  return put(match, 'pathSeparatedPrefix', value)
}

/** The `regex` of an Envoy RegexMatcher, if RE2 accepts it. */
export function regexOf(p: Problems, f: Field | undefined): string | undefined {
  const m = readStrict(p, f, REGEX_MATCHER)
  const regexField = m?.get('regex')
  const regex = asString(p, regexField)
  if (regex === undefined || regexField === undefined) {
    if (m !== undefined && regexField === undefined && f !== undefined) p.report(f.path, 'a regex matcher needs regex')
    return undefined
  }
  const why = regexProblem(regex)
  if (why !== undefined) {
    p.report(regexField.path, `not a valid RE2 pattern: ${why}`)
    return undefined
  }
  return regex
}

/** Envoy HeaderMatcher, or `undefined` (reported) when it cannot be honoured. */
export function translateHeaderMatcher(p: Problems, f: Field): HeaderMatcher | undefined {
  const m = readStrict(p, f, HEADER_MATCHER)
  if (m === undefined) return undefined
  const nameField = m.get('name')
  const raw = asString(p, nameField)
  if (raw === undefined || nameField === undefined) {
    p.report(f.path, 'a header matcher needs a name')
    return undefined
  }
  // Envoy matches header names case-insensitively, and Host is :authority to it.
  const lower = raw.toLowerCase()
  const name = lower === 'host' ? ':authority' : raw
  if (!isHeaderName(name) && !PSEUDO_HEADERS.includes(name.toLowerCase())) {
    p.report(nameField.path, `cannot match on header "${clip(raw)}"`)
    return undefined
  }
  const matcher: HeaderMatcher = { name: name.startsWith(':') ? name.toLowerCase() : name }
  const criterion = firstOf(p, m, HEADER_CRITERIA)
  if (criterion !== undefined && !headerCriterion(p, criterion, matcher)) return undefined
  if (asBool(p, m.get('invert_match')) === true) matcher.invert = true
  if (asBool(p, m.get('treat_missing_header_as_empty')) === true) matcher.treatMissingHeaderAsEmpty = true
  return matcher
}

function headerCriterion(p: Problems, f: Field, matcher: HeaderMatcher): boolean {
  switch (f.name) {
    case 'exact_match': return put(matcher, 'exact', asString(p, f))
    case 'prefix_match': return put(matcher, 'prefix', asString(p, f))
    case 'suffix_match': return put(matcher, 'suffix', asString(p, f))
    case 'contains_match': return put(matcher, 'contains', asString(p, f))
    case 'safe_regex_match': return put(matcher, 'safeRegex', regexOf(p, f))
    case 'present_match': return put(matcher, 'present', asBool(p, f))
    case 'string_match': return stringMatcher(p, f, matcher)
    default: {
      const r = readStrict(p, f, INT64_RANGE)
      const start = present(r?.get('start')) ? asInt(p, r?.get('start')) : 0
      const end = present(r?.get('end')) ? asInt(p, r?.get('end')) : 0
      if (r === undefined || start === undefined || end === undefined) return false
      matcher.rangeMatch = { start, end }
      return true
    }
  }
}

/** Envoy StringMatcher → the string fields shared by header and query matchers. */
function stringMatcher(p: Problems, f: Field, into: HeaderMatcher | QueryParameterMatcher): boolean {
  const m = readStrict(p, f, STRING_MATCHER)
  if (m === undefined) return false
  const c = firstOf(p, m, STRING_CRITERIA)
  let ok: boolean
  switch (c?.name) {
    case 'exact': ok = put(into, 'exact', asString(p, c)); break
    case 'prefix': ok = put(into, 'prefix', asString(p, c)); break
    case 'suffix': ok = put(into, 'suffix', asString(p, c)); break
    case 'contains': ok = put(into, 'contains', asString(p, c)); break
    case 'safe_regex': ok = put(into, 'safeRegex', regexOf(p, c)); break
    case 'custom':
      p.report(c.path, `unsupported field "${c.key}": ${CRITERION} (custom string matchers)`)
      return false
    default:
      p.report(f.path, 'a string matcher needs one of exact, prefix, suffix, contains, safe_regex')
      return false
  }
  // Envoy ignores ignore_case for safe_regex; the mesh would not, so it is left out there.
  const ignoreCase = asBool(p, m.get('ignore_case'))
  if (ok && ignoreCase === true && c.name !== 'safe_regex') into.ignoreCase = true
  return ok
}

function queryMatcher(p: Problems, f: Field): QueryParameterMatcher | undefined {
  const m = readStrict(p, f, QUERY_MATCHER)
  if (m === undefined) return undefined
  const name = asString(p, m.get('name'))
  if (name === undefined || name === '') {
    p.report(f.path, 'a query parameter matcher needs a name')
    return undefined
  }
  const matcher: QueryParameterMatcher = { name }
  const c = firstOf(p, m, ['string_match', 'present_match'])
  if (c?.name === 'string_match' && !stringMatcher(p, c, matcher)) return undefined
  // Envoy: without a string matcher, the parameter must be present (present_match: false included).
  if (c?.name === 'present_match' && asBool(p, c) === undefined) return undefined
  return matcher
}
