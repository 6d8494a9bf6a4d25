/**
 * One VirtualService `http` rule → routes of our model, as pilot `route.translateRoute` builds
 * them: one route per match block (a rule without match is one catch-all route); the action
 * (forward, redirect or direct response) with its rewrite, timeout (none unless set), retry
 * policy (Istio's default unless set), fault, mirrors and header operations.
 *
 * A match that cannot be honoured in-process (a JWT-claim header) drops its route rather than
 * widening it; a match that selects other workloads (`sourceLabels`, `sourceNamespace`,
 * `gateways` without `mesh`) is left out, as istiod leaves it out of this workload's config.
 */
import type {
  FaultConfig,
  HeaderMatcher,
  HeaderValueOption,
  QueryParameterMatcher,
  RequestMirrorPolicy,
  RetryOn,
  RetryPolicyConfig,
  RouteConfig,
  RouteMatch,
  WeightedClusterConfig,
} from '../types.js'
import { RETRY_ON } from '../schema.js'
import { istioDefaults } from './defaults.js'
import { resolveHost } from './names.js'
import type { Registry, Target } from './registry.js'
import { duration } from './traffic-policy.js'
import { at, bool, formatLabels, isObject, isSet, list, num, object, selects, str, stringMap, strings, type Obj, type Translation } from './state.js'

/** One match block of a rule, translated. */
export interface TranslatedMatch {
  readonly match: RouteMatch
  /** The service port the block is limited to (Istio `port`). */
  readonly port: number | undefined
  readonly name: string | undefined
  /** Prefix `/` and nothing else: routes after it are never reached. */
  readonly catchAll: boolean
}

/** A rule, translated: its match blocks and its action (built per port, which destinations default to). */
export interface HttpRule {
  readonly name: string | undefined
  readonly matches: readonly TranslatedMatch[]
  readonly action: (port: number | undefined) => Omit<RouteConfig, 'match' | 'name'> | undefined
  readonly path: string
}

/** Context of the VirtualService a rule belongs to. */
export interface RuleContext {
  readonly t: Translation
  readonly registry: Registry
  /** The namespace short destination hosts resolve in. */
  readonly namespace: string
}

const RULE_FIELDS = ['name', 'match', 'route', 'redirect', 'directResponse', 'delegate', 'rewrite', 'timeout', 'retries', 'fault', 'mirror', 'mirrors', 'mirrorPercentage', 'mirrorPercent', 'mirror_percent', 'corsPolicy', 'headers']

/** Translates one `http` rule; undefined when it yields no route for this workload. */
export function readHttpRule(ctx: RuleContext, rule: Obj, path: string): HttpRule | undefined {
  const { t } = ctx
  t.fields(rule, path, RULE_FIELDS)
  if (isSet(rule['delegate'])) {
    t.report(at(path, 'delegate'), 'delegate VirtualServices are not translated; the rule is left out (requests it would take fall through to the next rule)')
    return undefined
  }
  if (isSet(rule['corsPolicy'])) t.report(at(path, 'corsPolicy'), 'CORS is not implemented by the mesh; handle it in the app; not translated')
  const name = str(t, rule, 'name', path)
  const rawMatches = list(t, rule, 'match', path)
  const matches: TranslatedMatch[] = []
  if (rawMatches.length === 0) {
    matches.push({ match: { prefix: '/' }, port: undefined, name: undefined, catchAll: true })
  } else {
    rawMatches.forEach((m, i) => {
      const here = `${at(path, 'match')}[${i}]`
      if (!isObject(m)) {
        t.report(here, 'expected an object; the match block is left out')
        return
      }
      const translated = readMatch(ctx, m, here)
      if (translated !== undefined) matches.push(translated)
    })
    if (matches.length === 0) return undefined
  }
  const action = readAction(ctx, rule, path)
  if (action === undefined) return undefined
  return { name, matches, action, path }
}

// ---------------------------------------------------------------- matches

const MATCH_FIELDS = ['name', 'uri', 'scheme', 'method', 'authority', 'headers', 'port', 'sourceLabels', 'gateways', 'queryParams', 'ignoreUriCase', 'withoutHeaders', 'sourceNamespace', 'statPrefix']

function readMatch(ctx: RuleContext, m: Obj, path: string): TranslatedMatch | undefined {
  const { t } = ctx
  const w = t.workload
  t.fields(m, path, MATCH_FIELDS)
  // Selectors of the client workload: istiod evaluates them when it builds this workload's config.
  const gateways = strings(t, m, 'gateways', path)
  if (gateways.length > 0 && !gateways.includes('mesh')) {
    t.report(at(path, 'gateways'), `applies to gateways ${gateways.join(', ')}, not to sidecars (mesh); left out`)
    return undefined
  }
  if (gateways.length === 0) {
    const sourceLabels = stringMap(t, m, 'sourceLabels', path)
    if (sourceLabels !== undefined && !selects(sourceLabels, w.labels)) {
      t.report(at(path, 'sourceLabels'), `selects workloads labelled ${formatLabels(sourceLabels)}; this one has ${formatLabels(w.labels)}; left out`)
      return undefined
    }
    const sourceNamespace = str(t, m, 'sourceNamespace', path)
    if (sourceNamespace !== undefined && sourceNamespace !== '' && sourceNamespace !== w.namespace) {
      t.report(at(path, 'sourceNamespace'), `selects workloads of namespace ${sourceNamespace}; this one is in ${w.namespace}; left out`)
      return undefined
    }
  }
  if (isSet(m['statPrefix'])) t.report(at(path, 'statPrefix'), 'route statistics are labelled by route name; not translated')
  const match: RouteMatch = {}
  const uri = object(t, m, 'uri', path)
  let catchAll = true
  if (uri === undefined) match.prefix = '/'
  else {
    const sm = stringMatch(t, uri, at(path, 'uri'))
    if (sm === undefined) return undefined
    if ('exact' in sm) {
      match.path = sm.exact
      catchAll = false
    } else if ('prefix' in sm) {
      match.prefix = sm.prefix
      catchAll = sm.prefix === '/'
    } else if ('safeRegex' in sm) {
      match.safeRegex = sm.safeRegex
      catchAll = sm.safeRegex === '.*'
    } else {
      match.prefix = '/'
    }
  }
  if (bool(t, m, 'ignoreUriCase', path) === true) match.caseSensitive = false
  const headers: HeaderMatcher[] = []
  const method = object(t, m, 'method', path)
  if (method !== undefined) {
    const sm = stringMatch(t, method, at(path, 'method'))
    if (sm === undefined) return undefined
    if ('exact' in sm && /^[A-Z]+$/.test(sm.exact)) match.methods = [sm.exact]
    else headers.push({ name: ':method', ...sm })
  }
  for (const [key, name] of [['authority', ':authority'], ['scheme', ':scheme']] as const) {
    const o = object(t, m, key, path)
    if (o === undefined) continue
    const sm = stringMatch(t, o, at(path, key))
    if (sm === undefined) return undefined
    headers.push({ name, ...sm })
  }
  for (const [key, invert] of [['headers', false], ['withoutHeaders', true]] as const) {
    const map = object(t, m, key, path)
    if (map === undefined) continue
    for (const [name, value] of Object.entries(map)) {
      const here = at(at(path, key), name)
      if (name.startsWith('@request.auth.claims')) {
        t.report(here, 'routing on JWT claims needs the claims of the request being routed, which an outbound request of the app does not carry; the route is left out (never widened)')
        return undefined
      }
      const sm = isObject(value) ? stringMatch(t, value, here) : value === null ? { present: true as const } : undefined
      if (sm === undefined) {
        if (!isObject(value) && value !== null) t.report(here, 'expected a string match (exact, prefix or regex); the route is left out')
        return undefined
      }
      headers.push({ name: name.toLowerCase(), ...sm, ...(invert ? { invert: true } : {}) })
    }
  }
  if (headers.length > 0) {
    match.headers = headers
    catchAll = false
  }
  if (match.methods !== undefined) catchAll = false
  const query = object(t, m, 'queryParams', path)
  if (query !== undefined) {
    const params: QueryParameterMatcher[] = []
    for (const [name, value] of Object.entries(query)) {
      const here = at(at(path, 'queryParams'), name)
      const sm = isObject(value) ? stringMatch(t, value, here) : value === null ? { present: true as const } : undefined
      if (sm === undefined) {
        if (!isObject(value) && value !== null) t.report(here, 'expected a string match (exact, prefix or regex); the route is left out')
        return undefined
      }
      params.push({ name, ...sm })
    }
    if (params.length > 0) {
      match.queryParameters = params
      catchAll = false
    }
  }
  const port = num(t, m, 'port', path)
  const name = str(t, m, 'name', path)
  return { match, port: port !== undefined && port > 0 ? port : undefined, name, catchAll }
}

type StringMatch = { exact: string } | { prefix: string } | { safeRegex: string } | { present: true }

/** Istio `StringMatch` → one matcher; `{}` and `regex: "*"` mean "present" (pilot `canBeConvertedToPresentMatch`). */
function stringMatch(t: Translation, o: Obj, path: string): StringMatch | undefined {
  t.fields(o, path, ['exact', 'prefix', 'regex'])
  const kinds = ['exact', 'prefix', 'regex'].filter((k) => isSet(o[k]))
  if (kinds.length > 1) {
    t.report(path, `a string match has one of exact, prefix, regex, not ${kinds.join(' and ')}; the route is left out`)
    return undefined
  }
  const exact = str(t, o, 'exact', path)
  if (exact !== undefined) return { exact }
  const prefix = str(t, o, 'prefix', path)
  if (prefix !== undefined) return prefix === '' ? { present: true } : { prefix }
  const regex = str(t, o, 'regex', path)
  if (regex !== undefined) return regex === '*' ? { present: true } : { safeRegex: regex }
  if (kinds.length === 1) return undefined
  return { present: true }
}

// ---------------------------------------------------------------- actions

function readAction(ctx: RuleContext, rule: Obj, path: string): HttpRule['action'] | undefined {
  const { t } = ctx
  const redirect = object(t, rule, 'redirect', path)
  const direct = object(t, rule, 'directResponse', path)
  const routes = list(t, rule, 'route', path)
  const actions = [redirect !== undefined, direct !== undefined, routes.length > 0].filter(Boolean).length
  if (actions !== 1) {
    t.report(path, actions === 0 ? 'a rule needs route, redirect or directResponse; left out' : 'a rule has one of route, redirect, directResponse; left out')
    return undefined
  }
  const headers = object(t, rule, 'headers', path)
  const ops = headers === undefined ? EMPTY_OPS : headerOperations(t, headers, at(path, 'headers'))
  const mutations = mutationFields(ops)
  const fault = object(t, rule, 'fault', path)
  if (redirect !== undefined || direct !== undefined) {
    for (const key of ['rewrite', 'timeout', 'retries', 'mirror', 'mirrors']) {
      if (isSet(rule[key])) t.report(at(path, key), `applies to rules that forward (route), not to ${redirect !== undefined ? 'redirect' : 'directResponse'}; not translated`)
    }
    if (fault !== undefined) t.report(at(path, 'fault'), 'the mesh injects faults on routes that forward; not translated')
    if (ops.authority !== undefined) t.report(at(path, 'headers'), 'an authority rewrite applies to routes that forward; not translated')
  }
  if (redirect !== undefined) {
    const r = readRedirect(t, redirect, at(path, 'redirect'))
    if (r === undefined) return undefined
    return (port) => {
      const red = r(port)
      return red === undefined ? undefined : { redirect: red, ...mutations }
    }
  }
  if (direct !== undefined) {
    const d = readDirectResponse(t, direct, at(path, 'directResponse'))
    if (d === undefined) return undefined
    return () => ({ directResponse: d, ...mutations })
  }
  return readForward(ctx, rule, routes, path, ops, fault)
}

function readForward(ctx: RuleContext, rule: Obj, routes: unknown[], path: string, ops: HeaderOps, fault: Obj | undefined): HttpRule['action'] | undefined {
  const { t, registry } = ctx
  const dests: { host: string; subset: string | undefined; port: number | undefined; weight: number; ops: HeaderOps; path: string }[] = []
  routes.forEach((d, i) => {
    const here = `${at(path, 'route')}[${i}]`
    if (!isObject(d)) {
      t.report(here, 'expected an object; not translated')
      return
    }
    t.fields(d, here, ['destination', 'weight', 'headers'])
    const dest = readDestination(ctx, d, here)
    if (dest === undefined) return
    const weight = num(t, d, 'weight', here) ?? 0
    const h = object(t, d, 'headers', here)
    dests.push({ ...dest, weight, ops: h === undefined ? EMPTY_OPS : headerOperations(t, h, at(here, 'headers')), path: here })
  })
  if (dests.length === 0) {
    t.report(at(path, 'route'), 'no destination could be translated; the rule is left out')
    return undefined
  }
  // With several destinations, a weight of 0 takes no traffic (pilot skips them).
  const weighted = dests.length === 1 ? dests : dests.filter((d) => d.weight !== 0)
  const rewrite = object(t, rule, 'rewrite', path)
  let prefixRewrite: string | undefined
  let regexRewrite: { pattern: string; substitution: string } | undefined
  let authority = ops.authority
  if (rewrite !== undefined) {
    const rp = at(path, 'rewrite')
    t.fields(rewrite, rp, ['uri', 'authority', 'uriRegexRewrite'])
    const uri = str(t, rewrite, 'uri', rp)
    const rx = object(t, rewrite, 'uriRegexRewrite', rp)
    if (rx !== undefined) {
      t.fields(rx, at(rp, 'uriRegexRewrite'), ['match', 'rewrite'])
      const pattern = str(t, rx, 'match', at(rp, 'uriRegexRewrite'))
      const substitution = str(t, rx, 'rewrite', at(rp, 'uriRegexRewrite'))
      if (pattern !== undefined && substitution !== undefined) regexRewrite = { pattern, substitution }
      else t.report(at(rp, 'uriRegexRewrite'), 'needs match and rewrite; not translated')
      if (uri !== undefined) t.report(at(rp, 'uri'), 'uri and uriRegexRewrite are exclusive; uri is not translated')
    } else if (uri !== undefined && uri !== '') {
      prefixRewrite = uri
    }
    const auth = str(t, rewrite, 'authority', rp)
    if (auth !== undefined && auth !== '') authority = auth
  }
  const timeout = duration(t, rule, 'timeout', path)
  const faultConfig = fault === undefined ? undefined : readFault(t, fault, at(path, 'fault'))
  const mirrorsIn = readMirrors(ctx, rule, path)
  const retriesPath = at(path, 'retries')
  const retriesObj = object(t, rule, 'retries', path)
  return (port) => {
    let hostRewrite = authority
    const targets = weighted.map((d) => ({ d, target: registry.target(registry.destination(d.host, `${d.path}.destination.host`), d.port ?? port, d.subset, `${d.path}.destination.subset`) }))
    const hashPolicy = targets.map((x) => x.target.hashPolicy).filter((h) => h !== undefined)
    const consistentHash = hashPolicy.length > 0
    const action: NonNullable<RouteConfig['route']> = { timeout: timeout ?? istioDefaults.routeTimeoutMs }
    const route: Omit<RouteConfig, 'match' | 'name'> = { route: action, ...mutationFields(ops) }
    if (targets.length === 1) {
      const [only] = targets as [{ d: (typeof dests)[number]; target: Target }]
      action.cluster = only.target.cluster
      if (only.target.subset !== undefined) action.subset = only.target.subset
      // A single destination's header operations join the rule's (pilot processDestination).
      appendMutations(route, only.d.ops)
      if (hostRewrite === undefined && only.d.ops.authority !== undefined) hostRewrite = only.d.ops.authority
    } else {
      action.weightedClusters = targets.map(({ d, target }): WeightedClusterConfig => {
        if (d.ops.authority !== undefined) t.report(`${d.path}.headers`, 'a per-destination authority rewrite of a weighted destination is not translated')
        return {
          cluster: target.cluster,
          ...(target.subset === undefined ? {} : { subset: target.subset }),
          weight: Math.max(0, Math.trunc(d.weight)),
          ...mutationFields(d.ops),
        }
      })
    }
    if (hashPolicy.length > 0) action.hashPolicy = hashPolicy
    if (prefixRewrite !== undefined) action.prefixRewrite = prefixRewrite
    if (regexRewrite !== undefined) action.regexRewrite = regexRewrite
    if (hostRewrite !== undefined) action.hostRewrite = hostRewrite
    const retry = readRetries(t, retriesObj, retriesPath, consistentHash)
    if (retry !== undefined) action.retryPolicy = retry
    const mirrors = mirrorsIn(port)
    if (mirrors.length > 0) action.requestMirrorPolicies = mirrors
    if (faultConfig !== undefined) route.fault = faultConfig
    return route
  }
}

/** A regex-matched path rewritten by `rewrite.uri` is replaced whole (Envoy's prefix_rewrite on a regex route). */
export function wholePathRewrite(uri: string): { pattern: string; substitution: string } {
  return { pattern: '^.*$', substitution: uri.replace(/\\/g, '\\\\') }
}

function readDestination(ctx: RuleContext, d: Obj, path: string): { host: string; subset: string | undefined; port: number | undefined } | undefined {
  const { t } = ctx
  const dest = object(t, d, 'destination', path)
  if (dest === undefined) {
    t.report(path, 'a route destination needs destination.host; not translated')
    return undefined
  }
  const here = at(path, 'destination')
  t.fields(dest, here, ['host', 'subset', 'port'])
  const host = str(t, dest, 'host', here)
  if (host === undefined || host === '') {
    t.report(here, 'a destination needs a host; not translated')
    return undefined
  }
  const subset = str(t, dest, 'subset', here)
  const portObj = object(t, dest, 'port', here)
  let port: number | undefined
  if (portObj !== undefined) {
    t.fields(portObj, at(here, 'port'), ['number'])
    port = num(t, portObj, 'number', at(here, 'port'))
  }
  return { host: resolveHost(host, ctx.namespace, t.workload), subset: subset === '' ? undefined : subset, port }
}

function readMirrors(ctx: RuleContext, rule: Obj, path: string): (port: number | undefined) => RequestMirrorPolicy[] {
  const { t, registry } = ctx
  const specs: { host: string; subset: string | undefined; port: number | undefined; percentage: number; path: string }[] = []
  const mirror = object(t, rule, 'mirror', path)
  if (mirror !== undefined) {
    const here = at(path, 'mirror')
    const dest = readDestination(ctx, { destination: mirror }, here)
    let percentage = 100
    const mp = object(t, rule, 'mirrorPercentage', path)
    if (mp !== undefined) {
      t.fields(mp, at(path, 'mirrorPercentage'), ['value'])
      percentage = num(t, mp, 'value', at(path, 'mirrorPercentage')) ?? 0
    } else {
      const legacy = num(t, rule, 'mirrorPercent', path) ?? num(t, rule, 'mirror_percent', path)
      if (legacy !== undefined) percentage = legacy
    }
    if (dest !== undefined && percentage > 0) specs.push({ ...dest, percentage: Math.min(percentage, 100), path: here })
  } else if (isSet(rule['mirrorPercentage'])) {
    t.report(at(path, 'mirrorPercentage'), 'applies to mirror, which is not set; not translated')
  }
  list(t, rule, 'mirrors', path).forEach((m, i) => {
    const here = `${at(path, 'mirrors')}[${i}]`
    if (!isObject(m)) {
      t.report(here, 'expected an object; not translated')
      return
    }
    t.fields(m, here, ['destination', 'percentage'])
    const dest = readDestination(ctx, m, here)
    let percentage = 100
    const p = object(t, m, 'percentage', here)
    if (p !== undefined) {
      t.fields(p, at(here, 'percentage'), ['value'])
      percentage = num(t, p, 'value', at(here, 'percentage')) ?? 0
    }
    if (dest !== undefined && percentage > 0) specs.push({ ...dest, percentage: Math.min(percentage, 100), path: `${here}.destination` })
  })
  return (port) => specs.map((s) => {
    const target = registry.target(registry.destination(s.host, `${s.path}.host`), s.port ?? port, s.subset, `${s.path}.subset`)
    return { cluster: target.cluster, ...(target.subset === undefined ? {} : { subset: target.subset }), ...(s.percentage === 100 ? {} : { percentage: s.percentage }) }
  })
}

/** Envoy retry conditions the mesh implements; Istio's `retryOn` may name more. */
const SUPPORTED_RETRY_ON = new Set<string>(RETRY_ON)

/**
 * Istio `retries` → a retry policy (pilot `retry.ConvertPolicy`): unset → Istio's default
 * policy; `attempts: 0` → none; `retryOn` numbers are status codes.
 */
function readRetries(t: Translation, r: Obj | undefined, path: string, consistentHash: boolean): RetryPolicyConfig | undefined {
  const defaults: RetryPolicyConfig = {
    retryOn: [...istioDefaults.retryOn],
    numRetries: istioDefaults.retryNumRetries,
    retriableStatusCodes: [...istioDefaults.retriableStatusCodes],
    hostSelectionRetryMaxAttempts: istioDefaults.hostSelectionRetryMaxAttempts,
  }
  if (r === undefined) return defaults
  t.fields(r, path, ['attempts', 'perTryTimeout', 'retryOn', 'retryRemoteLocalities', 'retryIgnorePreviousHosts', 'backoff'])
  const attempts = num(t, r, 'attempts', path) ?? 0
  if (attempts <= 0) return undefined
  const policy: RetryPolicyConfig = { ...defaults, numRetries: Math.min(Math.trunc(attempts), 100) }
  if (attempts > 100) t.report(at(path, 'attempts'), `${attempts} is above the mesh's 100; 100 is used`)
  const retryOn = str(t, r, 'retryOn', path)
  if (retryOn !== undefined && retryOn.trim() !== '') {
    const conditions: RetryOn[] = []
    const codes: number[] = []
    const dropped: string[] = []
    for (const part of retryOn.split(',').map((p) => p.trim()).filter((p) => p !== '')) {
      if (/^\d{3}$/.test(part) && Number(part) >= 100 && Number(part) <= 599) codes.push(Number(part))
      else if (SUPPORTED_RETRY_ON.has(part)) conditions.push(part as RetryOn)
      else dropped.push(part)
    }
    if (codes.length > 0 && !conditions.includes('retriable-status-codes')) conditions.push('retriable-status-codes')
    if (dropped.length > 0) t.report(at(path, 'retryOn'), `${dropped.join(', ')}: not retry conditions the mesh implements (it retries on ${RETRY_ON.join(', ')}); not translated`)
    if (conditions.length === 0) {
      t.report(at(path, 'retryOn'), 'no retry condition is left: the route is not retried')
      return undefined
    }
    policy.retryOn = conditions
    if (codes.length > 0) policy.retriableStatusCodes = codes
    else delete policy.retriableStatusCodes
  }
  const perTry = duration(t, r, 'perTryTimeout', path)
  if (perTry !== undefined) policy.perTryTimeout = perTry
  const backoff = duration(t, r, 'backoff', path)
  if (backoff !== undefined && backoff > 0) policy.retryBackOff = { baseInterval: backoff }
  if (bool(t, r, 'retryRemoteLocalities', path) === true) t.report(at(path, 'retryRemoteLocalities'), 'the mesh has no localities; not translated')
  if (bool(t, r, 'retryIgnorePreviousHosts', path) === false && !consistentHash) {
    t.report(at(path, 'retryIgnorePreviousHosts'), 'the mesh always prefers an endpoint not tried yet; false is not translated')
  }
  return policy
}

function readFault(t: Translation, f: Obj, path: string): FaultConfig | undefined {
  t.fields(f, path, ['delay', 'abort'])
  const out: FaultConfig = {}
  const delay = object(t, f, 'delay', path)
  if (delay !== undefined) {
    const here = at(path, 'delay')
    t.fields(delay, here, ['fixedDelay', 'exponentialDelay', 'percentage', 'percent'])
    const fixed = duration(t, delay, 'fixedDelay', here)
    if (isSet(delay['exponentialDelay'])) t.report(at(here, 'exponentialDelay'), 'exponential delays are not implemented (by istiod either); not translated')
    if (fixed !== undefined) out.delay = { fixedDelay: fixed, percentage: percentageOf(t, delay, here) }
  }
  const abort = object(t, f, 'abort', path)
  if (abort !== undefined) {
    const here = at(path, 'abort')
    t.fields(abort, here, ['httpStatus', 'grpcStatus', 'http2Error', 'percentage'])
    const status = num(t, abort, 'httpStatus', here)
    for (const key of ['grpcStatus', 'http2Error']) {
      if (isSet(abort[key])) t.report(at(here, key), 'the mesh aborts with an HTTP status only; not translated')
    }
    if (status !== undefined) out.abort = { httpStatus: status, percentage: percentageOf(t, abort, here) }
  }
  if (out.delay === undefined && out.abort === undefined) {
    t.report(path, 'no delay or abort could be translated; no fault is injected')
    return undefined
  }
  return out
}

/** A fault's `percentage.value`; unset means no request (Istio's documented default), or the deprecated integer `percent`. */
function percentageOf(t: Translation, o: Obj, path: string): number {
  const p = object(t, o, 'percentage', path)
  if (p !== undefined) {
    t.fields(p, at(path, 'percentage'), ['value'])
    return Math.min(100, Math.max(0, num(t, p, 'value', at(path, 'percentage')) ?? 0))
  }
  return Math.min(100, Math.max(0, num(t, o, 'percent', path) ?? 0))
}

function readRedirect(t: Translation, r: Obj, path: string): ((port: number | undefined) => NonNullable<RouteConfig['redirect']> | undefined) | undefined {
  t.fields(r, path, ['uri', 'authority', 'port', 'derivePort', 'scheme', 'redirectCode', 'prefixRewrite'])
  const uri = str(t, r, 'uri', path)
  const authority = str(t, r, 'authority', path)
  const scheme = str(t, r, 'scheme', path)
  const prefixRewrite = str(t, r, 'prefixRewrite', path)
  const code = num(t, r, 'redirectCode', path) ?? 301
  if (![301, 302, 303, 307, 308].includes(code)) {
    t.report(at(path, 'redirectCode'), `${code} is not a redirect code istiod supports (301, 302, 303, 307, 308); the rule is left out`)
    return undefined
  }
  const fixedPort = num(t, r, 'port', path)
  const derive = str(t, r, 'derivePort', path)
  return (listenerPort) => {
    const out: NonNullable<RouteConfig['redirect']> = {}
    if (uri !== undefined && uri !== '') out.pathRedirect = uri
    if (prefixRewrite !== undefined && prefixRewrite !== '') out.prefixRewrite = prefixRewrite
    if (authority !== undefined && authority !== '') out.hostRedirect = authority
    if (scheme !== undefined && scheme !== '') out.schemeRedirect = scheme
    let port = fixedPort
    if (derive === 'FROM_REQUEST_PORT') {
      if (listenerPort === undefined) t.report(at(path, 'derivePort'), 'the request port is not known for this host (give the service its port in a ServiceEntry); not translated')
      port = listenerPort
    }
    if (port !== undefined) {
      const s = scheme ?? 'http'
      if (!((port === 80 && s === 'http') || (port === 443 && s === 'https'))) out.portRedirect = port
    }
    if (code !== 301) out.responseCode = code
    return out
  }
}

function readDirectResponse(t: Translation, d: Obj, path: string): NonNullable<RouteConfig['directResponse']> | undefined {
  t.fields(d, path, ['status', 'body'])
  const status = num(t, d, 'status', path)
  if (status === undefined) {
    t.report(path, 'a direct response needs a status; the rule is left out')
    return undefined
  }
  const out: NonNullable<RouteConfig['directResponse']> = { status }
  const body = object(t, d, 'body', path)
  if (body !== undefined) {
    const here = at(path, 'body')
    t.fields(body, here, ['string', 'bytes'])
    const text = str(t, body, 'string', here)
    const bytes = str(t, body, 'bytes', here)
    if (text !== undefined) out.body = text
    else if (bytes !== undefined) {
      const buf = Buffer.from(bytes, 'base64')
      const decoded = buf.toString('utf8')
      if (Buffer.from(decoded, 'utf8').equals(buf)) out.body = decoded
      else t.report(at(here, 'bytes'), 'a binary body is not translated (the mesh answers text bodies); the response has no body')
    }
  }
  return out
}

// ---------------------------------------------------------------- header operations

interface HeaderOps {
  readonly requestHeadersToAdd: HeaderValueOption[]
  readonly requestHeadersToRemove: string[]
  readonly responseHeadersToAdd: HeaderValueOption[]
  readonly responseHeadersToRemove: string[]
  /** `host` / `:authority` set or added: a host rewrite (pilot TranslateHeadersOperations). */
  readonly authority: string | undefined
}

const EMPTY_OPS: HeaderOps = { requestHeadersToAdd: [], requestHeadersToRemove: [], responseHeadersToAdd: [], responseHeadersToRemove: [], authority: undefined }

/** Headers whose framing role the mesh does not let config touch. */
const PROTECTED = new Set(['content-length', 'transfer-encoding', 'connection', 'upgrade'])

/** Istio `Headers` → header mutations: `set` overwrites, `add` appends, `remove` removes. */
function headerOperations(t: Translation, h: Obj, path: string): HeaderOps {
  t.fields(h, path, ['request', 'response'])
  const out = { requestHeadersToAdd: [] as HeaderValueOption[], requestHeadersToRemove: [] as string[], responseHeadersToAdd: [] as HeaderValueOption[], responseHeadersToRemove: [] as string[], authority: undefined as string | undefined }
  for (const side of ['request', 'response'] as const) {
    const ops = object(t, h, side, path)
    if (ops === undefined) continue
    const here = at(path, side)
    t.fields(ops, here, ['set', 'add', 'remove'])
    let setAuthority: string | undefined
    let addAuthority: string | undefined
    for (const [key, action] of [['set', 'OVERWRITE_IF_EXISTS_OR_ADD'], ['add', 'APPEND_IF_EXISTS_OR_ADD']] as const) {
      const map = stringMap(t, ops, key, here)
      if (map === undefined) continue
      // pilot sorts by key so the order is stable.
      for (const name of Object.keys(map).sort()) {
        const value = map[name] as string
        const lower = name.toLowerCase()
        if (lower === 'host' || lower === ':authority') {
          if (side === 'request') {
            if (key === 'set') setAuthority = value
            else addAuthority = value
          } else t.report(at(at(here, key), name), 'a response has no authority; not translated')
          continue
        }
        if (name.startsWith(':')) {
          t.report(at(at(here, key), name), 'pseudo-headers cannot be set; not translated (as in istiod)')
          continue
        }
        if (PROTECTED.has(lower)) {
          t.report(at(at(here, key), name), 'framing headers cannot be set by config; not translated')
          continue
        }
        const option: HeaderValueOption = { header: { key: name, value }, appendAction: action }
        ;(side === 'request' ? out.requestHeadersToAdd : out.responseHeadersToAdd).push(option)
      }
    }
    if (side === 'request') out.authority = setAuthority ?? addAuthority
    strings(t, ops, 'remove', here).forEach((name, i) => {
      const lower = name.toLowerCase()
      if (lower === 'host' || name.startsWith(':') || PROTECTED.has(lower)) {
        t.report(`${at(here, 'remove')}[${i}]`, `${JSON.stringify(name)} cannot be removed; not translated`)
        return
      }
      ;(side === 'request' ? out.requestHeadersToRemove : out.responseHeadersToRemove).push(name)
    })
  }
  return out
}

function mutationFields(ops: HeaderOps): Partial<Pick<RouteConfig, 'requestHeadersToAdd' | 'requestHeadersToRemove' | 'responseHeadersToAdd' | 'responseHeadersToRemove'>> {
  return {
    ...(ops.requestHeadersToAdd.length === 0 ? {} : { requestHeadersToAdd: ops.requestHeadersToAdd.map((o) => ({ ...o, header: { ...o.header } })) }),
    ...(ops.requestHeadersToRemove.length === 0 ? {} : { requestHeadersToRemove: [...ops.requestHeadersToRemove] }),
    ...(ops.responseHeadersToAdd.length === 0 ? {} : { responseHeadersToAdd: ops.responseHeadersToAdd.map((o) => ({ ...o, header: { ...o.header } })) }),
    ...(ops.responseHeadersToRemove.length === 0 ? {} : { responseHeadersToRemove: [...ops.responseHeadersToRemove] }),
  }
}

function appendMutations(route: Omit<RouteConfig, 'match' | 'name'>, ops: HeaderOps): void {
  const m = mutationFields(ops)
  if (m.requestHeadersToAdd !== undefined) route.requestHeadersToAdd = [...(route.requestHeadersToAdd ?? []), ...m.requestHeadersToAdd]
  if (m.requestHeadersToRemove !== undefined) route.requestHeadersToRemove = [...(route.requestHeadersToRemove ?? []), ...m.requestHeadersToRemove]
  if (m.responseHeadersToAdd !== undefined) route.responseHeadersToAdd = [...(route.responseHeadersToAdd ?? []), ...m.responseHeadersToAdd]
  if (m.responseHeadersToRemove !== undefined) route.responseHeadersToRemove = [...(route.responseHeadersToRemove ?? []), ...m.responseHeadersToRemove]
}
