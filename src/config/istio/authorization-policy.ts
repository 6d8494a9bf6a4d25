/**
 * AuthorizationPolicy → `listener.authorization`: one entry per policy that applies to this
 * workload. What cannot be honoured never widens access, following Istio's own rule for
 * fields a proxy cannot evaluate: in an ALLOW policy the rule holding it is dropped (it allows
 * nothing); in a DENY policy the field is dropped (the rule denies more). A CUSTOM policy
 * delegates to an external authorizer the mesh cannot call: it becomes a DENY of every
 * request it would have sent there.
 */
import type { AuthorizationCondition, AuthorizationOperation, AuthorizationPolicyConfig, AuthorizationRule, AuthorizationSource } from '../types.js'
import type { Resource } from './documents.js'
import { policyApplies } from './request-authentication.js'
import { at, isObject, list, object, str, type Obj, type Translation } from './state.js'

const SOURCE_FIELDS = ['principals', 'requestPrincipals', 'namespaces', 'ipBlocks', 'remoteIpBlocks'] as const
const OPERATION_FIELDS = ['hosts', 'ports', 'methods', 'paths'] as const
const SIMPLE_KEYS = new Set(['source.ip', 'remote.ip', 'destination.ip', 'source.namespace', 'source.principal', 'request.auth.principal', 'request.auth.audiences', 'request.auth.presenter', 'destination.port', 'connection.sni'])

/** A `when` key the mesh evaluates (see `AuthorizationCondition`). */
function knownConditionKey(key: string): boolean {
  return SIMPLE_KEYS.has(key) || /^request\.headers\[[^\][]+\]$/.test(key) || /^request\.auth\.claims(\[[^\][]+\])+$/.test(key)
}

type Action = 'ALLOW' | 'DENY' | 'AUDIT'

/** The policies that apply, translated, with where each came from. */
export function readAuthorizationPolicies(t: Translation, resources: readonly Resource[]): { policy: AuthorizationPolicyConfig; r: Resource }[] {
  const out: { policy: AuthorizationPolicyConfig; r: Resource }[] = []
  for (const r of resources) {
    const path = `${r.label}.spec`
    t.fields(r.spec, path, ['selector', 'targetRef', 'targetRefs', 'rules', 'action', 'provider'])
    if (!policyApplies(t, r)) continue
    const actionName = str(t, r.spec, 'action', path) ?? 'ALLOW'
    let action: Action
    if (actionName === 'ALLOW' || actionName === 'DENY' || actionName === 'AUDIT') action = actionName
    else if (actionName === 'CUSTOM') {
      const provider = object(t, r.spec, 'provider', path)
      const name = provider === undefined ? undefined : str(t, provider, 'name', at(path, 'provider'))
      t.report(at(path, 'action'), `CUSTOM sends matching requests to the external authorizer ${JSON.stringify(name ?? '')}, which the mesh cannot call: every request this policy matches is denied instead (403)`)
      action = 'DENY'
    } else {
      t.report(at(path, 'action'), `${JSON.stringify(actionName)} is not an action (ALLOW, DENY, AUDIT, CUSTOM); the policy is read as DENY, so it cannot widen access`)
      action = 'DENY'
    }
    const rules: AuthorizationRule[] = []
    const rawRules = r.spec['rules']
    if (rawRules !== undefined && rawRules !== null && !Array.isArray(rawRules)) {
      // Unreadable rules must not make a DENY policy deny nothing.
      t.report(at(path, 'rules'), action === 'ALLOW' ? 'expected a list; the policy allows nothing' : `expected a list; the ${action} policy matches every request`)
      if (action !== 'ALLOW') rules.push({})
    }
    list(t, r.spec, 'rules', path).forEach((raw, i) => {
      const here = `${at(path, 'rules')}[${i}]`
      if (!isObject(raw)) {
        t.report(here, action === 'ALLOW' ? 'expected an object; the rule is left out' : `expected an object; read as a rule that matches every request (the ${action} policy matches more, never fewer)`)
        if (action !== 'ALLOW') rules.push({})
        return
      }
      const rule = readRule(t, raw, here, action)
      if (rule !== undefined) rules.push(rule)
    })
    out.push({ policy: { name: `${r.namespace}/${r.name}`, action, rules }, r })
  }
  return out
}

/**
 * One rule. For ALLOW, an untranslatable field drops the rule (returns undefined); for DENY
 * and AUDIT, it drops the field.
 */
function readRule(t: Translation, o: Obj, path: string, action: Action): AuthorizationRule | undefined {
  const lossy = { lost: false }
  const loss = (where: string, what: string): void => {
    lossy.lost = true
    t.report(where, action === 'ALLOW'
      ? `${what}; the ALLOW rule is left out (it allows nothing rather than more)`
      : `${what}; the ${action} rule is kept without it (it matches more requests, never fewer)`)
  }
  unknownFields(o, path, ['from', 'to', 'when'], loss)
  const rule: AuthorizationRule = {}
  // `from` and `to` entries are alternatives: one that cannot be read makes the whole list
  // unusable for DENY (fewer alternatives would deny less), so the list is dropped.
  let fromBroken = notList(o, 'from', path, loss)
  const from: { source: AuthorizationSource }[] = []
  items(o['from']).forEach((f, i) => {
    const here = `${at(path, 'from')}[${i}]`
    const source = isObject(f) ? object(t, f, 'source', here) : undefined
    if (!isObject(f) || source === undefined) {
      loss(here, 'a from entry needs a source')
      fromBroken = true
      return
    }
    unknownFields(f, here, ['source'], loss)
    from.push({ source: readSource(t, source, at(here, 'source'), loss) })
  })
  if (from.length > 0 && !fromBroken) rule.from = from
  let toBroken = notList(o, 'to', path, loss)
  const to: { operation: AuthorizationOperation }[] = []
  items(o['to']).forEach((x, i) => {
    const here = `${at(path, 'to')}[${i}]`
    const operation = isObject(x) ? object(t, x, 'operation', here) : undefined
    if (!isObject(x) || operation === undefined) {
      loss(here, 'a to entry needs an operation')
      toBroken = true
      return
    }
    unknownFields(x, here, ['operation'], loss)
    to.push({ operation: readOperation(t, operation, at(here, 'operation'), loss) })
  })
  if (to.length > 0 && !toBroken) rule.to = to
  const when: AuthorizationCondition[] = []
  notList(o, 'when', path, loss)
  items(o['when']).forEach((c, i) => {
    const here = `${at(path, 'when')}[${i}]`
    if (!isObject(c)) {
      loss(here, 'a condition must be an object')
      return
    }
    unknownFields(c, here, ['key', 'values', 'notValues'], loss)
    const key = typeof c['key'] === 'string' ? c['key'] : undefined
    if (key === undefined || !knownConditionKey(key)) {
      loss(here, `condition key ${JSON.stringify(key ?? '')} is not one the mesh evaluates`)
      return
    }
    const values = stringList(c, 'values', here, loss)
    const notValues = stringList(c, 'notValues', here, loss)
    if (values === undefined || notValues === undefined) return
    when.push({ key, ...(values.length > 0 ? { values } : {}), ...(notValues.length > 0 ? { notValues } : {}) })
  })
  if (when.length > 0) rule.when = when
  if (lossy.lost && action === 'ALLOW') return undefined
  return rule
}

type Loss = (where: string, what: string) => void

function readSource(_t: Translation, s: Obj, path: string, loss: Loss): AuthorizationSource {
  const known = [...SOURCE_FIELDS, ...SOURCE_FIELDS.map(negated), 'serviceAccounts', 'notServiceAccounts', 'trustDomains', 'notTrustDomains']
  unknownFields(s, path, known, loss)
  const out: AuthorizationSource = {}
  for (const f of [...SOURCE_FIELDS, ...SOURCE_FIELDS.map(negated)] as (keyof AuthorizationSource)[]) {
    const v = stringList(s, f, path, loss)
    if (v !== undefined && v.length > 0) out[f] = v
  }
  // Service accounts and trust domains are parts of the peer's SPIFFE ID: as principal
  // patterns they translate exactly, unless principals are also given (both must hold).
  const accounts = (stringList(s, 'serviceAccounts', path, loss) ?? []).map((a) => (a.includes('/') ? `*/ns/${a.slice(0, a.indexOf('/'))}/sa/${a.slice(a.indexOf('/') + 1)}` : undefined))
  const domains = (stringList(s, 'trustDomains', path, loss) ?? []).map((d) => `${d}/*`)
  if (accounts.some((a) => a === undefined)) loss(at(path, 'serviceAccounts'), 'a service account is written <namespace>/<name>')
  const positive = [accounts.length > 0 ? 'serviceAccounts' : undefined, domains.length > 0 ? 'trustDomains' : undefined, out.principals !== undefined ? 'principals' : undefined].filter((x) => x !== undefined)
  if (positive.length > 1) loss(path, `${positive.join(' and ')} together cannot be expressed (both would have to match the one principal)`)
  else if (accounts.length > 0 && accounts.every((a) => a !== undefined)) out.principals = accounts
  else if (domains.length > 0) out.principals = domains
  const notAccounts = stringList(s, 'notServiceAccounts', path, loss) ?? []
  const notDomains = stringList(s, 'notTrustDomains', path, loss) ?? []
  // "None of these" lists combine by union.
  const not = [
    ...(out.notPrincipals ?? []),
    ...notAccounts.filter((a) => a.includes('/')).map((a) => `*/ns/${a.slice(0, a.indexOf('/'))}/sa/${a.slice(a.indexOf('/') + 1)}`),
    ...notDomains.map((d) => `${d}/*`),
  ]
  if (notAccounts.some((a) => !a.includes('/'))) loss(at(path, 'notServiceAccounts'), 'a service account is written <namespace>/<name>')
  if (not.length > 0) out.notPrincipals = not
  return out
}

function readOperation(_t: Translation, o: Obj, path: string, loss: Loss): AuthorizationOperation {
  unknownFields(o, path, [...OPERATION_FIELDS, ...OPERATION_FIELDS.map(negated)], loss)
  const out: AuthorizationOperation = {}
  for (const f of [...OPERATION_FIELDS, ...OPERATION_FIELDS.map(negated)] as (keyof AuthorizationOperation)[]) {
    const v = stringList(o, f, path, loss)
    if (v !== undefined && v.length > 0) out[f] = v
  }
  return out
}

function items(v: unknown): unknown[] {
  return Array.isArray(v) ? v.slice(0, 100_000) : []
}

/** True (and a loss) when `o[key]` is set but not a list. */
function notList(o: Obj, key: string, path: string, loss: Loss): boolean {
  const v = o[key]
  if (v === undefined || v === null || Array.isArray(v)) return false
  loss(at(path, key), 'expected a list')
  return true
}

/** Fields of a rule the mesh does not know: each is a loss (it may have narrowed the rule). */
function unknownFields(o: Obj, path: string, known: readonly string[], loss: Loss): void {
  for (const key of Object.keys(o)) {
    if (!known.includes(key) && o[key] !== null && o[key] !== undefined) loss(at(path, key), `field ${JSON.stringify(key)} is not translated`)
  }
}

/** A list of strings, or undefined (a loss) when any item is not one: a partial list could widen access. */
function stringList(o: Obj, key: string, path: string, loss: Loss): string[] | undefined {
  const v = o[key]
  if (v === undefined || v === null) return []
  if (!Array.isArray(v) || v.some((x) => typeof x !== 'string') || v.length > 100_000) {
    loss(at(path, key), 'expected a list of strings')
    return undefined
  }
  return v as string[]
}

function negated(f: string): string {
  return `not${f[0]?.toUpperCase() ?? ''}${f.slice(1)}`
}
