/**
 * Envoy's RBAC HTTP filter (`envoy.extensions.filters.http.rbac.v3.RBAC`) as our
 * `listener.authorization` (Istio `AuthorizationPolicy` form). istiod writes it for
 * proxyless gRPC servers from AuthorizationPolicies (pilot/pkg/security/authz/model): per
 * Istio rule one Envoy policy, whose permissions are the rule's `to` operations and whose
 * principals are its `from` sources, each an `and` of field matchers, a field an `or` of its
 * values and its `not` values under a `not`; `when` conditions are folded into both.
 *
 * The translation inverts that shape, and takes any other RBAC tree the model can express
 * exactly: an Envoy policy matches when one permission and one principal match, so it
 * becomes one of our policies whose rules are the pairs (permission alternative, principal
 * alternative), each an operation, a source and `when` conditions.
 *
 * Authorization is never approximated: a matcher the model cannot express exactly (regex
 * other than Istio's namespace and "present" forms, metadata, CEL conditions, port ranges,
 * case-insensitive paths) makes the whole filter unusable (`undefined`), since dropping it
 * would allow (ALLOW) or stop denying (DENY) requests Envoy would refuse.
 */
import type { AuthorizationAction, AuthorizationCondition, AuthorizationOperation, AuthorizationPolicyConfig, AuthorizationRule, AuthorizationSource, HeaderMatcher } from '../types.js'
import { translateHeaderMatcher } from './match.js'
import {
  asBool,
  asEnum,
  asList,
  asMap,
  asString,
  asUint,
  clip,
  firstOf,
  isObject,
  present,
  readField,
  type Field,
  type Problems,
  type Shape,
} from './reader.js'

/** The result of {@link translateRbac}. */
export interface RbacTranslation {
  /** The filter's action. Envoy's LOG is our AUDIT. */
  readonly action: AuthorizationAction
  /**
   * One policy per Envoy policy, in name order. For ALLOW with no policy, one policy that
   * matches nothing (Envoy then denies every request).
   */
  readonly policies: AuthorizationPolicyConfig[]
}

const RBAC_FILTER: Shape = {
  use: ['rules'],
  drop: ['rules_stat_prefix', 'shadow_rules_stat_prefix', 'track_per_rule_stats'],
  why: {
    shadow_rules: 'shadow rules only log; they are not evaluated',
    matcher: 'the generic matcher form of RBAC is not supported',
    shadow_matcher: 'the generic matcher form of RBAC is not supported',
  },
}
const RBAC_RULES: Shape = { use: ['action', 'policies'], why: { audit_logging_options: 'RBAC audit logging is not supported' } }
const POLICY: Shape = {
  use: ['permissions', 'principals'],
  why: { condition: 'CEL conditions are not supported', checked_condition: 'CEL conditions are not supported' },
}
const PERMISSION: Shape = {
  use: ['and_rules', 'or_rules', 'any', 'header', 'url_path', 'destination_ip', 'destination_port', 'not_rule', 'requested_server_name'],
  why: {
    destination_port_range: 'port ranges are not supported',
    metadata: 'metadata matchers are not supported',
    matcher: 'extension matchers are not supported',
    uri_template: 'URI template paths are not supported',
  },
}
const PERMISSION_KINDS = ['and_rules', 'or_rules', 'any', 'header', 'url_path', 'destination_ip', 'destination_port', 'not_rule', 'requested_server_name']
const PRINCIPAL: Shape = {
  use: ['and_ids', 'or_ids', 'any', 'authenticated', 'source_ip', 'direct_remote_ip', 'remote_ip', 'header', 'not_id'],
  why: {
    url_path: 'paths are matched by permissions',
    metadata: 'metadata matchers (JWT claims) are not supported',
    filter_state: 'filter state matchers are not supported',
    sourced_metadata: 'metadata matchers are not supported',
    custom: 'extension matchers are not supported',
  },
}
const PRINCIPAL_KINDS = ['and_ids', 'or_ids', 'any', 'authenticated', 'source_ip', 'direct_remote_ip', 'remote_ip', 'header', 'not_id']
const SET: Shape = { use: ['rules', 'ids'] }
const AUTHENTICATED: Shape = { use: ['principal_name'] }
const PATH_MATCHER: Shape = { use: ['path'] }
const STRING_MATCHER: Shape = { use: ['exact', 'prefix', 'suffix', 'contains', 'safe_regex', 'ignore_case'] }
const REGEX: Shape = { use: ['regex'], drop: ['google_re2'] }
const CIDR: Shape = { use: ['address_prefix', 'prefix_len'] }
const ACTIONS = ['ALLOW', 'DENY', 'LOG']
const SPIFFE = 'spiffe://'
/** More alternatives than this in one policy: not expanded. */
const MAX_ALTERNATIVES = 256

/** What one literal constrains: a field of the operation or source, or a `when` key. */
type Target =
  | { readonly side: 'operation'; readonly field: 'hosts' | 'methods' | 'paths' | 'ports' }
  | { readonly side: 'source'; readonly field: 'principals' | 'namespaces' | 'ipBlocks' | 'remoteIpBlocks' }
  | { readonly side: 'when'; readonly key: string }

/** A field matching any of `values` (Istio's value patterns), or, negated, none of them. */
interface Literal {
  readonly target: Target
  readonly values: string[]
  readonly negated: boolean
}

/** A conjunction of literals; a list of them is a disjunction. */
type Alternative = Literal[]

/** The `when` key that expresses a second literal on a field, when there is one. */
const WHEN_KEY: Readonly<Record<string, string>> = {
  principals: 'source.principal', namespaces: 'source.namespace', ipBlocks: 'source.ip', remoteIpBlocks: 'remote.ip', ports: 'destination.port',
}

class Unsupported extends Error {}

/**
 * Translates the typed config of an RBAC HTTP filter: `null` when it has no `rules` (Envoy's
 * filter then passes every request: nothing to enforce), `undefined` (reported) when some
 * part cannot be enforced exactly.
 */
export function translateRbac(p: Problems, f: Field): RbacTranslation | null | undefined {
  const m = readField(p, f, RBAC_FILTER)
  if (m === undefined) return undefined
  if (isObject(f.value) && f.value['matcher'] !== undefined && f.value['matcher'] !== null) return undefined
  const rulesField = m.get('rules')
  // No rules: the filter enforces nothing (Envoy's RBAC filter passes every request).
  if (!present(rulesField)) return null
  const rules = readField(p, rulesField, RBAC_RULES)
  if (rules === undefined || (rules.unsupported ?? 0) > 0) return undefined
  const actionField = rules.get('action')
  const envoyAction = present(actionField) ? asEnum(p, actionField, ACTIONS) : 'ALLOW'
  if (envoyAction === undefined) return undefined
  const action: AuthorizationAction = envoyAction === 'LOG' ? 'AUDIT' : envoyAction as AuthorizationAction
  const entries = asMap(p, rules.get('policies')).sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
  const policies: AuthorizationPolicyConfig[] = []
  try {
    for (const entry of entries) {
      const rulesOf = policyRules(p, entry)
      policies.push({ name: entry.key, action, rules: rulesOf })
    }
  } catch (err) {
    if (err instanceof Unsupported) {
      p.report(f.path, 'the RBAC filter cannot be enforced exactly, so the listener is refused rather than authorizing other requests than Envoy would')
      return undefined
    }
    throw err
  }
  if (policies.length === 0 && action === 'ALLOW') policies.push({ name: 'deny-all', action: 'ALLOW', rules: [] })
  return { action, policies }
}

function policyRules(p: Problems, f: Field): AuthorizationRule[] {
  const m = readField(p, f, POLICY)
  if (m === undefined || (m.unsupported ?? 0) > 0) throw new Unsupported()
  const permissions: Alternative[] = []
  for (const item of asList(p, m.get('permissions'))) permissions.push(...permission(p, item, false))
  const principals: Alternative[] = []
  for (const item of asList(p, m.get('principals'))) principals.push(...principal(p, item, false))
  if (permissions.length * principals.length > MAX_ALTERNATIVES) {
    p.report(f.path, `${permissions.length} × ${principals.length} alternatives are more than the ${MAX_ALTERNATIVES} the mesh expands`)
    throw new Unsupported()
  }
  const out: AuthorizationRule[] = []
  for (const to of permissions) {
    for (const from of principals) out.push(ruleOf(p, f.path, [...to, ...from]))
  }
  return out
}

// ---------------------------------------------------------------- boolean structure

/** A permission in disjunctive normal form; `negate` pushes a `not_rule` down (De Morgan). */
function permission(p: Problems, f: Field, negate: boolean): Alternative[] {
  const m = readField(p, f, PERMISSION)
  if (m === undefined || (m.unsupported ?? 0) > 0) throw new Unsupported()
  const kind = firstOf(p, m, PERMISSION_KINDS)
  if (kind === undefined) {
    p.report(f.path, 'a permission needs a rule')
    throw new Unsupported()
  }
  switch (kind.name) {
    case 'and_rules':
    case 'or_rules': {
      const children = asList(p, readField(p, kind, SET)?.get('rules')).map((c) => permission(p, c, negate))
      return (kind.name === 'and_rules') !== negate ? and(p, f, children) : or(children)
    }
    case 'not_rule':
      return permission(p, kind, !negate)
    case 'any':
      return anyOf(p, kind, negate)
    case 'header': {
      const h = translateHeaderMatcher(p, kind)
      if (h === undefined) throw new Unsupported()
      return literal(headerLiteral(p, kind, h), negate)
    }
    case 'url_path':
      return literal({ target: { side: 'operation', field: 'paths' }, values: [pathValue(p, kind)], negated: false }, negate)
    case 'destination_port': {
      const port = asUint(p, kind, 0, 65535)
      if (port === undefined) throw new Unsupported()
      return literal({ target: { side: 'operation', field: 'ports' }, values: [String(port)], negated: false }, negate)
    }
    case 'destination_ip':
      return literal({ target: { side: 'when', key: 'destination.ip' }, values: [cidr(p, kind)], negated: false }, negate)
    default: // requested_server_name
      return literal({ target: { side: 'when', key: 'connection.sni' }, values: [stringValue(p, kind, '')], negated: false }, negate)
  }
}

/** A principal in disjunctive normal form. */
function principal(p: Problems, f: Field, negate: boolean): Alternative[] {
  const m = readField(p, f, PRINCIPAL)
  if (m === undefined || (m.unsupported ?? 0) > 0) throw new Unsupported()
  const kind = firstOf(p, m, PRINCIPAL_KINDS)
  if (kind === undefined) {
    p.report(f.path, 'a principal needs an identifier')
    throw new Unsupported()
  }
  switch (kind.name) {
    case 'and_ids':
    case 'or_ids': {
      const children = asList(p, readField(p, kind, SET)?.get('ids')).map((c) => principal(p, c, negate))
      return (kind.name === 'and_ids') !== negate ? and(p, f, children) : or(children)
    }
    case 'not_id':
      return principal(p, kind, !negate)
    case 'any':
      return anyOf(p, kind, negate)
    case 'authenticated':
      return literal(authenticated(p, kind), negate)
    case 'header': {
      const h = translateHeaderMatcher(p, kind)
      if (h === undefined) throw new Unsupported()
      return literal(headerLiteral(p, kind, h), negate)
    }
    case 'remote_ip':
      return literal({ target: { side: 'source', field: 'remoteIpBlocks' }, values: [cidr(p, kind)], negated: false }, negate)
    default: // source_ip, direct_remote_ip: the connection's peer
      return literal({ target: { side: 'source', field: 'ipBlocks' }, values: [cidr(p, kind)], negated: false }, negate)
  }
}

function anyOf(p: Problems, f: Field, negate: boolean): Alternative[] {
  if (asBool(p, f) !== true) {
    p.report(f.path, '"any" must be true')
    throw new Unsupported()
  }
  // any: one empty conjunction (always true); not any: no alternative (never true).
  return negate ? [] : [[]]
}

function literal(l: Literal, negate: boolean): Alternative[] {
  return [[negate ? { ...l, negated: !l.negated } : l]]
}

/**
 * A disjunction. Single literals on the same field, all positive or all negated, merge
 * into one literal of several values (Istio's `or` of a field's values): positive, any of
 * them; negated (`not (a or b)` pushed down as `not a and not b`), none of them.
 */
function or(children: Alternative[][]): Alternative[] {
  const flat = children.flat()
  const first = flat[0]?.[0]
  if (flat.length > 1 && first !== undefined && flat.every((a) => a.length === 1 && sameTarget((a[0] as Literal).target, first.target) && (a[0] as Literal).negated === first.negated && !first.negated)) {
    return [[{ target: first.target, values: flat.flatMap((a) => (a[0] as Literal).values), negated: false }]]
  }
  return flat
}

/** A conjunction: the cross product of the children's alternatives. */
function and(p: Problems, f: Field, children: Alternative[][]): Alternative[] {
  // A negated `or` of values arrives here as several negated single literals of one field: keep them apart, they are ANDed.
  let out: Alternative[] = [[]]
  for (const alternatives of children) {
    const next: Alternative[] = []
    for (const a of out) for (const b of alternatives) next.push([...a, ...b])
    if (next.length > MAX_ALTERNATIVES) {
      p.report(f.path, `the rule expands to more than ${MAX_ALTERNATIVES} alternatives`)
      throw new Unsupported()
    }
    out = next
  }
  return out
}

function sameTarget(a: Target, b: Target): boolean {
  if (a.side === 'when' || b.side === 'when') return a.side === b.side && (a as { key: string }).key === (b as { key: string }).key
  return a.side === b.side && a.field === b.field
}

// ---------------------------------------------------------------- one rule

/** One alternative as an Istio rule: an operation, a source and `when` conditions. */
function ruleOf(p: Problems, path: string, alternative: Alternative): AuthorizationRule {
  const operation: AuthorizationOperation = {}
  const source: AuthorizationSource = {}
  const when: AuthorizationCondition[] = []
  for (const l of alternative) {
    const t = l.target
    if (t.side === 'when') {
      when.push(l.negated ? { key: t.key, notValues: [...l.values] } : { key: t.key, values: [...l.values] })
      continue
    }
    const obj = (t.side === 'operation' ? operation : source) as Record<string, string[] | undefined>
    const field = l.negated ? `not${t.field[0]?.toUpperCase() ?? ''}${t.field.slice(1)}` : t.field
    if (obj[field] === undefined) {
      obj[field] = [...l.values]
    } else if (l.negated) {
      // none of a and none of b: none of (a, b).
      obj[field] = [...(obj[field] ?? []), ...l.values]
    } else {
      // Two positive constraints on one field are ANDed: the second goes to `when`, where it can.
      const key = WHEN_KEY[t.field]
      if (key === undefined) {
        p.report(path, `two conditions on ${t.field} that must both hold cannot be expressed`)
        throw new Unsupported()
      }
      when.push({ key, values: [...l.values] })
    }
  }
  const rule: AuthorizationRule = {}
  if (Object.keys(source).length > 0) rule.from = [{ source }]
  if (Object.keys(operation).length > 0) rule.to = [{ operation }]
  if (when.length > 0) rule.when = when
  return rule
}

// ---------------------------------------------------------------- matchers

/** An Envoy HeaderMatcher as Istio's value pattern (exact, `prefix*`, `*suffix`, `*` for present). */
function headerLiteral(p: Problems, f: Field, h: HeaderMatcher): Literal {
  const name = h.name.toLowerCase()
  let value: string | undefined
  if (h.exact !== undefined) value = h.exact
  else if (h.prefix !== undefined && h.prefix !== '') value = `${h.prefix}*`
  else if (h.suffix !== undefined && h.suffix !== '') value = `*${h.suffix}`
  else if (h.present === true) value = '*'
  else if (h.safeRegex === '.+' || h.safeRegex === '.*') value = '*'
  // No criterion at all: the header must be present.
  else if (h.contains === undefined && h.safeRegex === undefined && h.present === undefined && h.rangeMatch === undefined && h.prefix === undefined && h.suffix === undefined) value = '*'
  const caseFree = name === ':authority' || name === 'host'
  if (value === undefined || (h.ignoreCase === true && !caseFree) || h.rangeMatch !== undefined || h.present === false || h.treatMissingHeaderAsEmpty === true) {
    p.report(f.path, `header matcher on "${clip(h.name)}" is not exact, prefix, suffix or present`)
    throw new Unsupported()
  }
  let target: Target
  if (name === ':method') target = { side: 'operation', field: 'methods' }
  else if (caseFree) target = { side: 'operation', field: 'hosts' }
  else if (name.startsWith(':')) {
    p.report(f.path, `pseudo-header "${clip(h.name)}" is not supported in RBAC`)
    throw new Unsupported()
  } else target = { side: 'when', key: `request.headers[${name}]` }
  return { target, values: [value], negated: h.invert === true }
}

function pathValue(p: Problems, f: Field): string {
  const m = readField(p, f, PATH_MATCHER)
  if (m === undefined || (m.unsupported ?? 0) > 0 || !present(m.get('path'))) throw new Unsupported()
  return stringValue(p, m.get('path') as Field, '')
}

/** A StringMatcher as a value pattern; `strip` is a prefix every exact and prefix value must carry (and loses). */
function stringValue(p: Problems, f: Field, strip: string): string {
  const m = readField(p, f, STRING_MATCHER)
  if (m === undefined || (m.unsupported ?? 0) > 0) throw new Unsupported()
  if (asBool(p, m.get('ignore_case')) === true) {
    p.report(f.path, 'case-insensitive string matching is not supported here')
    throw new Unsupported()
  }
  const c = firstOf(p, m, ['exact', 'prefix', 'suffix', 'contains', 'safe_regex'])
  const v = c === undefined || c.name === 'safe_regex' ? undefined : asString(p, c)
  if (c?.name === 'exact' && v !== undefined && v.startsWith(strip)) return v.slice(strip.length)
  if (c?.name === 'prefix' && v !== undefined && v.startsWith(strip)) return `${v.slice(strip.length)}*`
  if (c?.name === 'suffix' && v !== undefined && v !== '') return `*${v}`
  if (c?.name === 'safe_regex') {
    const re = asString(p, readField(p, c, REGEX)?.get('regex'))
    if (re === '.+' || re === '.*') return '*'
  }
  p.report(f.path, `string matcher ${c === undefined ? '' : `"${c.key}" `}is not exact${strip === '' ? '' : ` (${strip}…)`}, prefix, suffix or any`)
  throw new Unsupported()
}

// Istio's namespace matcher: the regex .*/ns/<namespace>/.* (a * in the namespace became .*).
const NAMESPACE_REGEX = /^\.\*\/ns\/([A-Za-z0-9.*_-]+)\/\.\*$/

function authenticated(p: Problems, f: Field): Literal {
  const m = readField(p, f, AUTHENTICATED)
  if (m === undefined || (m.unsupported ?? 0) > 0) throw new Unsupported()
  const name = m.get('principal_name')
  // Any authenticated peer.
  if (!present(name)) return { target: { side: 'source', field: 'principals' }, values: ['*'], negated: false }
  const s = readField(p, name, STRING_MATCHER)
  const re = s === undefined ? undefined : asString(p, readField(p, s.get('safe_regex'), REGEX)?.get('regex'))
  const ns = re === undefined ? null : NAMESPACE_REGEX.exec(re)
  if (ns !== null && s !== undefined && asBool(p, s.get('ignore_case')) !== true) {
    return { target: { side: 'source', field: 'namespaces' }, values: [(ns[1] as string).replaceAll('.*', '*')], negated: false }
  }
  return { target: { side: 'source', field: 'principals' }, values: [stringValue(p, name, SPIFFE)], negated: false }
}

function cidr(p: Problems, f: Field): string {
  const m = readField(p, f, CIDR)
  const address = asString(p, m?.get('address_prefix'))
  const len = present(m?.get('prefix_len')) ? asUint(p, m?.get('prefix_len'), 0, 128) : undefined
  if (m === undefined || (m.unsupported ?? 0) > 0 || address === undefined || address === '') {
    p.report(f.path, 'a CIDR range needs address_prefix')
    throw new Unsupported()
  }
  return len === undefined ? address : `${address}/${len}`
}
