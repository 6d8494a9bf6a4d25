/**
 * Authorization with Istio `AuthorizationPolicy` semantics, compiled once per config:
 * DENY policies first (any match refuses), then ALLOW (when any ALLOW policy exists, the
 * request must match one); AUDIT policies only count their matches. A policy matches when
 * any of its rules does; a rule when one of its sources, one of its operations and every
 * condition match; a source or operation when each field it sets matches, the `not` forms
 * included. A policy without rules matches nothing; `rules: [{}]` matches everything.
 */
import type { AuthorizationCondition, AuthorizationOperation, AuthorizationPolicyConfig, AuthorizationSource } from '../config/types.js'
import type { DeepReadonly } from '../config/deep-readonly.js'
import { isIpConditionKey, parseConditionKey, type ConditionKey } from '../config/authz-condition.js'
import type { AuthzRequest } from './authz-request.js'
import { compileIpBlocks } from '../config/ip-block.js'
import { claimAt } from './claims.js'
import { compilePatterns } from '../config/string-match.js'

type Predicate = (r: AuthzRequest) => boolean

/** A compiled policy. */
interface CompiledPolicy {
  readonly name: string
  readonly matches: Predicate
}

/** The verdict on one request: allowed, or refused by `policy`. */
export interface AuthzDecision {
  readonly allowed: boolean
  /** The DENY policy that matched, or {@link NO_ALLOW_MATCH}; `undefined` when allowed. */
  readonly policy: string | undefined
}

/** The `policy` label of requests refused because no ALLOW policy matched. */
export const NO_ALLOW_MATCH = '(no ALLOW policy matched)'

const ALLOWED: AuthzDecision = Object.freeze({ allowed: true, policy: undefined })

/** The compiled `listener.authorization`. */
export class Authorizer {
  readonly #deny: readonly CompiledPolicy[]
  readonly #allow: readonly CompiledPolicy[] | null
  readonly #audit: readonly CompiledPolicy[]
  readonly #noAllow: AuthzDecision = Object.freeze({ allowed: false, policy: NO_ALLOW_MATCH })
  readonly #denied = new Map<string, AuthzDecision>()
  /** Policy names, for metrics. */
  readonly policyNames: readonly string[]

  constructor(policies: DeepReadonly<AuthorizationPolicyConfig[]>) {
    const deny: CompiledPolicy[] = []
    const allow: CompiledPolicy[] = []
    const audit: CompiledPolicy[] = []
    policies.forEach((p, i) => {
      const name = p.name ?? `authorization[${i}]`
      const rules = (p.rules ?? []).map(compileRule)
      const matches: Predicate = rules.length === 0 ? () => false : rules.length === 1 ? (rules[0] as Predicate) : (r) => rules.some((m) => m(r))
      const compiled = Object.freeze({ name, matches })
      const action = p.action ?? 'ALLOW'
      if (action === 'DENY') {
        deny.push(compiled)
        this.#denied.set(name, Object.freeze({ allowed: false, policy: name }))
      } else if (action === 'AUDIT') audit.push(compiled)
      else allow.push(compiled)
    })
    this.#deny = Object.freeze(deny)
    this.#allow = allow.length === 0 ? null : Object.freeze(allow)
    this.#audit = Object.freeze(audit)
    this.policyNames = Object.freeze(policies.map((p, i) => p.name ?? `authorization[${i}]`))
  }

  /** Decides on one request; `onAudit` is told the name of every AUDIT policy that matched. */
  evaluate(r: AuthzRequest, onAudit: (policy: string) => void): AuthzDecision {
    for (let i = 0; i < this.#audit.length; i++) {
      const p = this.#audit[i] as CompiledPolicy
      if (p.matches(r)) onAudit(p.name)
    }
    for (let i = 0; i < this.#deny.length; i++) {
      const p = this.#deny[i] as CompiledPolicy
      if (p.matches(r)) return this.#denied.get(p.name) as AuthzDecision
    }
    const allow = this.#allow
    if (allow === null) return ALLOWED
    for (let i = 0; i < allow.length; i++) if ((allow[i] as CompiledPolicy).matches(r)) return ALLOWED
    return this.#noAllow
  }
}

function compileRule(rule: DeepReadonly<NonNullable<AuthorizationPolicyConfig['rules']>[number]>): Predicate {
  const parts: Predicate[] = []
  if (rule.from !== undefined && rule.from.length > 0) parts.push(anyOf(rule.from.map((f) => allOf(sourcePredicates(f.source)))))
  if (rule.to !== undefined && rule.to.length > 0) parts.push(anyOf(rule.to.map((t) => allOf(operationPredicates(t.operation)))))
  for (const c of rule.when ?? []) parts.push(conditionPredicate(c))
  return allOf(parts)
}

function anyOf(ps: Predicate[]): Predicate {
  if (ps.length === 1) return ps[0] as Predicate
  return (r) => {
    for (let i = 0; i < ps.length; i++) if ((ps[i] as Predicate)(r)) return true
    return false
  }
}

function allOf(ps: Predicate[]): Predicate {
  if (ps.length === 0) return () => true
  if (ps.length === 1) return ps[0] as Predicate
  return (r) => {
    for (let i = 0; i < ps.length; i++) if (!(ps[i] as Predicate)(r)) return false
    return true
  }
}

/** `values` and `notValues` of one field, over the string `read` returns. */
function field(values: readonly string[] | undefined, notValues: readonly string[] | undefined, read: (r: AuthzRequest) => string | undefined, out: Predicate[], ignoreCase = false): void {
  if (values !== undefined && values.length > 0) {
    const m = compilePatterns(values, ignoreCase)
    out.push((r) => m(read(r)))
  }
  if (notValues !== undefined && notValues.length > 0) {
    const m = compilePatterns(notValues, ignoreCase)
    out.push((r) => !m(read(r)))
  }
}

function ipField(values: readonly string[] | undefined, notValues: readonly string[] | undefined, read: (r: AuthzRequest) => string | undefined, out: Predicate[]): void {
  if (values !== undefined && values.length > 0) {
    const m = compileIpBlocks(values)
    out.push((r) => m(read(r)))
  }
  if (notValues !== undefined && notValues.length > 0) {
    const m = compileIpBlocks(notValues)
    out.push((r) => !m(read(r)))
  }
}

function sourcePredicates(s: DeepReadonly<AuthorizationSource>): Predicate[] {
  const out: Predicate[] = []
  field(s.principals, s.notPrincipals, (r) => r.principal, out)
  field(s.requestPrincipals, s.notRequestPrincipals, (r) => r.requestPrincipal, out)
  field(s.namespaces, s.notNamespaces, (r) => r.namespace, out)
  ipField(s.ipBlocks, s.notIpBlocks, (r) => r.sourceIp, out)
  ipField(s.remoteIpBlocks, s.notRemoteIpBlocks, (r) => r.sourceIp, out)
  return out
}

function operationPredicates(o: DeepReadonly<AuthorizationOperation>): Predicate[] {
  const out: Predicate[] = []
  hostField(o.hosts, o.notHosts, out)
  field(o.ports, o.notPorts, (r) => r.port, out)
  field(o.methods, o.notMethods, (r) => r.method, out)
  field(o.paths, o.notPaths, (r) => r.path, out)
  return out
}

/** Hosts match with or without the Host header's port, case-insensitively. */
function hostField(values: readonly string[] | undefined, notValues: readonly string[] | undefined, out: Predicate[]): void {
  const compile = (list: readonly string[]): Predicate => {
    const m = compilePatterns(list, true)
    return (r) => {
      const h = r.host
      if (h === undefined) return false
      if (m(h)) return true
      const colon = h.lastIndexOf(':')
      return colon > h.lastIndexOf(']') && m(h.slice(0, colon))
    }
  }
  if (values !== undefined && values.length > 0) out.push(compile(values))
  if (notValues !== undefined && notValues.length > 0) {
    const m = compile(notValues)
    out.push((r) => !m(r))
  }
}

function conditionPredicate(c: DeepReadonly<AuthorizationCondition>): Predicate {
  const key = parseConditionKey(c.key)
  // Validation refused unknown keys; a key that slipped through matches nothing.
  if (typeof key === 'string') return () => false
  const out: Predicate[] = []
  if (isIpConditionKey(key)) {
    const read = key.kind === 'destination.ip' ? (r: AuthzRequest) => r.destinationIp : (r: AuthzRequest) => r.sourceIp
    ipField(c.values, c.notValues, read, out)
    return allOf(out)
  }
  const read = readerOf(key)
  const any = (list: readonly string[]): Predicate => {
    const m = compilePatterns(list)
    return (r) => {
      const v = read(r)
      if (v === undefined) return false
      if (typeof v === 'string') return m(v)
      for (const x of v) if (m(x)) return true
      return false
    }
  }
  if (c.values !== undefined && c.values.length > 0) out.push(any(c.values))
  if (c.notValues !== undefined && c.notValues.length > 0) {
    const m = any(c.notValues)
    out.push((r) => !m(r))
  }
  return allOf(out)
}

function readerOf(key: ConditionKey): (r: AuthzRequest) => string | readonly string[] | undefined {
  switch (key.kind) {
    case 'header': {
      const name = key.name
      return (r) => r.header(name)
    }
    case 'claim': {
      const path = key.path
      return (r) => {
        const claims = r.auth?.claims
        return claims === undefined ? undefined : claimStrings(claimAt(claims, path))
      }
    }
    case 'source.namespace':
      return (r) => r.namespace
    case 'source.principal':
      return (r) => r.principal
    case 'request.auth.principal':
      return (r) => r.requestPrincipal
    case 'request.auth.audiences':
      return (r) => r.auth?.audiences
    case 'request.auth.presenter':
      return (r) => r.auth?.presenter
    case 'destination.port':
      return (r) => r.port
    case 'connection.sni':
      return (r) => r.sni
    default:
      return () => undefined
  }
}

/** A claim as strings: a string, a number or boolean as text, or the scalar elements of a list. */
function claimStrings(v: unknown): string | readonly string[] | undefined {
  if (typeof v === 'string') return v
  if (typeof v === 'number' || typeof v === 'boolean') return String(v)
  if (Array.isArray(v)) return v.filter((x) => typeof x === 'string' || typeof x === 'number' || typeof x === 'boolean').map(String)
  return undefined
}
