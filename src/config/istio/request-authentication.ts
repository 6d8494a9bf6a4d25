/**
 * RequestAuthentication → `listener.requestAuthentication`: the JWT rules of every policy
 * that applies to this workload (its namespace or the root namespace, selector matching,
 * no `targetRef`), in order. A rule the mesh cannot honour is left out, which makes a token of
 * its issuer fail as from an unknown issuer (401) — never accepted unverified.
 */
import type { JwtHeader, JwtRule } from '../types.js'
import type { Resource } from './documents.js'
import { duration } from './traffic-policy.js'
import { at, bool, formatLabels, isObject, isSet, list, object, selects, str, stringMap, strings, type Obj, type Translation } from './state.js'

/**
 * Whether a security policy (RequestAuthentication, AuthorizationPolicy) applies to this
 * workload: in its namespace or the root namespace, with a selector (if any) that matches,
 * and no `targetRef(s)` (those attach to gateways and waypoints). Reports why not.
 */
export function policyApplies(t: Translation, r: Resource): boolean {
  const w = t.workload
  const path = `${r.label}.spec`
  if (r.namespace !== w.namespace && r.namespace !== w.rootNamespace) {
    t.report(r.label, `applies to namespace ${r.namespace}; this workload is in ${w.namespace}; not applied`)
    return false
  }
  for (const key of ['targetRef', 'targetRefs']) {
    if (isSet(r.spec[key])) {
      t.report(at(path, key), 'a policy attached to a gateway or waypoint by targetRef does not apply to a workload; not applied')
      return false
    }
  }
  const selector = object(t, r.spec, 'selector', path)
  if (selector !== undefined) {
    t.fields(selector, at(path, 'selector'), ['matchLabels'])
    const labels = stringMap(t, selector, 'matchLabels', at(path, 'selector'))
    if (!selects(labels, w.labels)) {
      t.report(at(path, 'selector'), `selects other workloads (this one has ${formatLabels(w.labels)}); not applied`)
      return false
    }
  }
  return true
}

/** The JWT rules of the RequestAuthentications that apply, with where each came from. */
export function readRequestAuthentications(t: Translation, resources: readonly Resource[]): { rule: JwtRule; r: Resource; index: number }[] {
  const out: { rule: JwtRule; r: Resource; index: number }[] = []
  for (const r of resources) {
    const path = `${r.label}.spec`
    t.fields(r.spec, path, ['selector', 'targetRef', 'targetRefs', 'jwtRules'])
    if (!policyApplies(t, r)) continue
    list(t, r.spec, 'jwtRules', path).forEach((raw, i) => {
      const here = `${at(path, 'jwtRules')}[${i}]`
      if (!isObject(raw)) {
        t.report(here, 'expected an object; not translated')
        return
      }
      const rule = readJwtRule(t, raw, here)
      if (rule !== undefined) out.push({ rule, r, index: i })
    })
  }
  return out
}

function readJwtRule(t: Translation, o: Obj, path: string): JwtRule | undefined {
  t.fields(o, path, ['issuer', 'audiences', 'jwksUri', 'jwks', 'fromHeaders', 'fromParams', 'fromCookies', 'outputPayloadToHeader', 'forwardOriginalToken', 'outputClaimToHeaders', 'timeout', 'spaceDelimitedClaims'])
  const issuer = str(t, o, 'issuer', path)
  if (issuer === undefined || issuer === '') {
    t.report(path, 'a JWT rule needs an issuer; left out')
    return undefined
  }
  const jwksUri = str(t, o, 'jwksUri', path)
  const jwks = str(t, o, 'jwks', path)
  if ((jwksUri === undefined || jwksUri === '') && (jwks === undefined || jwks === '')) {
    t.report(path, 'neither jwksUri nor jwks: istiod would discover the keys through OpenID Connect, which the mesh does not; the rule is left out, so tokens of this issuer are refused (401)')
    return undefined
  }
  const rule: JwtRule = { issuer }
  if (jwks !== undefined && jwks !== '') rule.jwks = jwks
  else if (jwksUri !== undefined) rule.jwksUri = jwksUri
  if (jwks !== undefined && jwks !== '' && jwksUri !== undefined && jwksUri !== '') t.report(at(path, 'jwksUri'), 'jwks is given inline; jwksUri is not used (as by istiod)')
  const audiences = strings(t, o, 'audiences', path)
  if (audiences.length > 0) rule.audiences = audiences
  const headers: JwtHeader[] = []
  list(t, o, 'fromHeaders', path).forEach((h, i) => {
    const here = `${at(path, 'fromHeaders')}[${i}]`
    if (!isObject(h)) {
      t.report(here, 'expected an object; not translated')
      return
    }
    t.fields(h, here, ['name', 'prefix'])
    const name = str(t, h, 'name', here)
    if (name === undefined || name === '') {
      t.report(here, 'a token header needs a name; not translated')
      return
    }
    const prefix = str(t, h, 'prefix', here)
    headers.push({ name, ...(prefix === undefined || prefix === '' ? {} : { prefix }) })
  })
  if (headers.length > 0) rule.fromHeaders = headers
  const params = strings(t, o, 'fromParams', path)
  if (params.length > 0) rule.fromParams = params
  if (strings(t, o, 'fromCookies', path).length > 0) {
    t.report(at(path, 'fromCookies'), 'tokens in cookies are not read: such a request is treated as carrying no token (authorization policies that require one refuse it)')
  }
  const payload = str(t, o, 'outputPayloadToHeader', path)
  if (payload !== undefined && payload !== '') rule.outputPayloadToHeader = payload
  if (bool(t, o, 'forwardOriginalToken', path) === true) rule.forwardOriginalToken = true
  const claims: { header: string; claim: string }[] = []
  list(t, o, 'outputClaimToHeaders', path).forEach((c, i) => {
    const here = `${at(path, 'outputClaimToHeaders')}[${i}]`
    if (!isObject(c)) {
      t.report(here, 'expected an object; not translated')
      return
    }
    t.fields(c, here, ['header', 'claim'])
    const header = str(t, c, 'header', here)
    const claim = str(t, c, 'claim', here)
    if (header === undefined || claim === undefined || header === '' || claim === '') t.report(here, 'needs header and claim; not translated')
    else claims.push({ header, claim })
  })
  if (claims.length > 0) rule.outputClaimToHeaders = claims
  const timeout = duration(t, o, 'timeout', path)
  if (timeout !== undefined && timeout > 0) rule.jwksTimeout = timeout
  if (isSet(o['spaceDelimitedClaims'])) t.report(at(path, 'spaceDelimitedClaims'), 'claims are matched as JSON values; space-delimited claims are not split; not translated')
  return rule
}
