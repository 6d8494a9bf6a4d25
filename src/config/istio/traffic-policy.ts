/**
 * DestinationRule `trafficPolicy` → cluster settings. Each of the four components
 * (loadBalancer, connectionPool, outlierDetection, tls) is read once, reported once, and
 * kept as a fragment of our cluster model; `effectivePolicy` then combines the top-level,
 * port-level and subset-level fragments the way istiod does (pilot `MergeTrafficPolicy`:
 * a subset's component replaces the rule's; a port-level entry replaces all four, its unset
 * ones falling back to defaults).
 */
import { parseDuration } from '../duration.js'
import type { CircuitBreakersConfig, ClusterTlsConfig, HashPolicy, LoadBalancerPolicy, OutlierDetectionConfig } from '../types.js'
import { at, bool, isSet, list, num, object, str, strings, type Obj, type Translation } from './state.js'

/** The load-balancing fragment: a policy, its options, and the hash the routes use. */
export interface LoadBalancerPart {
  readonly loadBalancer?: LoadBalancerPolicy
  readonly ringHash?: { minimumRingSize: number }
  readonly maglev?: { tableSize: number }
  /** The route hash policy of a consistent-hash balancer (Istio puts it on every route to the cluster). */
  readonly hashPolicy?: HashPolicy
}

/** The connection-pool fragment. */
export interface ConnectionPoolPart {
  readonly circuitBreakers: CircuitBreakersConfig
  readonly connectTimeout?: number
  readonly idleTimeout?: number
}

/** The outlier-detection fragment, with the panic threshold Istio sets beside it. */
export interface OutlierPart {
  readonly outlierDetection: OutlierDetectionConfig
  readonly healthyPanicThreshold: number
}

/** One parsed TrafficPolicy (components absent when the manifest leaves them unset). */
export interface TrafficPolicyParts {
  readonly loadBalancer?: LoadBalancerPart
  readonly connectionPool?: ConnectionPoolPart
  readonly outlierDetection?: OutlierPart
  readonly tls?: ClusterTlsConfig
  readonly retryBudget?: { budgetPercent?: number; minRetryConcurrency?: number }
  /** Port-level overrides, by port number. */
  readonly ports: ReadonlyMap<number, TrafficPolicyParts>
}

export const EMPTY_POLICY: TrafficPolicyParts = Object.freeze({ ports: new Map() })

/** Reads a DestinationRule `trafficPolicy` (or a subset's, or a port-level entry when `portLevel`). */
export function readTrafficPolicy(t: Translation, tp: Obj, path: string, portLevel = false): TrafficPolicyParts {
  const known = portLevel
    ? ['port', 'loadBalancer', 'connectionPool', 'outlierDetection', 'tls']
    : ['loadBalancer', 'connectionPool', 'outlierDetection', 'tls', 'portLevelSettings', 'retryBudget']
  t.fields(tp, path, known)
  const lb = object(t, tp, 'loadBalancer', path)
  const pool = object(t, tp, 'connectionPool', path)
  const outlier = object(t, tp, 'outlierDetection', path)
  const tls = object(t, tp, 'tls', path)
  const budget = portLevel ? undefined : object(t, tp, 'retryBudget', path)
  const ports = new Map<number, TrafficPolicyParts>()
  if (!portLevel) {
    list(t, tp, 'portLevelSettings', path).forEach((entry, i) => {
      const here = `${at(path, 'portLevelSettings')}[${i}]`
      if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) {
        t.report(here, 'expected an object; not translated')
        return
      }
      const port = object(t, entry as Obj, 'port', here)
      const number = port === undefined ? undefined : num(t, port, 'number', `${here}.port`)
      if (number === undefined || !Number.isInteger(number) || number < 1 || number > 65535) {
        t.report(here, 'a port-level setting needs port.number (1–65535); not translated')
        return
      }
      if (port !== undefined) t.fields(port, `${here}.port`, ['number'])
      if (ports.has(number)) {
        t.report(here, `port ${number} already has port-level settings; not translated`)
        return
      }
      ports.set(number, readTrafficPolicy(t, entry as Obj, here, true))
    })
  }
  return {
    ...(lb === undefined ? {} : { loadBalancer: readLoadBalancer(t, lb, at(path, 'loadBalancer')) }),
    ...(pool === undefined ? {} : { connectionPool: readConnectionPool(t, pool, at(path, 'connectionPool')) }),
    ...(outlier === undefined ? {} : { outlierDetection: readOutlierDetection(t, outlier, at(path, 'outlierDetection')) }),
    ...(tls === undefined ? {} : readTls(t, tls, at(path, 'tls'))),
    ...(budget === undefined ? {} : { retryBudget: readRetryBudget(t, budget, at(path, 'retryBudget')) }),
    ports,
  }
}

/**
 * The policy in force for one cluster: the rule's top-level components, replaced wholesale
 * by the rule's port-level entry for `port`, then by the subset's components, then by the
 * subset's port-level entry (pilot `MergeTrafficPolicy`).
 */
export function effectivePolicy(rule: TrafficPolicyParts, subset: TrafficPolicyParts | undefined, port: number | undefined): TrafficPolicyParts {
  let out = portOverride(rule, port)
  if (subset !== undefined) {
    out = {
      loadBalancer: subset.loadBalancer ?? out.loadBalancer,
      connectionPool: subset.connectionPool ?? out.connectionPool,
      outlierDetection: subset.outlierDetection ?? out.outlierDetection,
      tls: subset.tls ?? out.tls,
      retryBudget: subset.retryBudget ?? out.retryBudget,
      ports: subset.ports,
    }
    out = portOverride(out, port)
  }
  return out
}

function portOverride(policy: TrafficPolicyParts, port: number | undefined): TrafficPolicyParts {
  const p = port === undefined ? undefined : policy.ports.get(port)
  if (p === undefined) return policy
  // Port-level settings do not inherit: unset components fall back to the defaults.
  return { ...p, ...(policy.retryBudget === undefined ? {} : { retryBudget: policy.retryBudget }), ports: new Map() }
}

const SIMPLE: Readonly<Record<string, LoadBalancerPolicy | undefined>> = {
  ROUND_ROBIN: 'round_robin',
  LEAST_REQUEST: 'least_request',
  LEAST_CONN: 'least_request',
  RANDOM: 'random',
  UNSPECIFIED: undefined,
}

function readLoadBalancer(t: Translation, lb: Obj, path: string): LoadBalancerPart {
  t.fields(lb, path, ['simple', 'consistentHash'])
  // localityLbSetting, zoneAwareLbSetting and warmup are reported by `fields`: the mesh has
  // no localities and no slow start.
  const simple = str(t, lb, 'simple', path)
  const hash = object(t, lb, 'consistentHash', path)
  if (simple !== undefined && hash !== undefined) {
    t.report(at(path, 'consistentHash'), 'simple and consistentHash are exclusive; consistentHash is not translated')
  }
  if (simple !== undefined) {
    if (simple === 'PASSTHROUGH') {
      t.report(at(path, 'simple'), 'PASSTHROUGH (connect to the address the caller resolved) has no in-process equivalent; the default balancer is used')
      return {}
    }
    if (!Object.hasOwn(SIMPLE, simple)) {
      t.report(at(path, 'simple'), `${JSON.stringify(simple)} is not an Istio load balancer (ROUND_ROBIN, LEAST_REQUEST, RANDOM, PASSTHROUGH); the default is used`)
      return {}
    }
    const policy = SIMPLE[simple]
    return policy === undefined ? {} : { loadBalancer: policy }
  }
  if (hash === undefined) return {}
  return readConsistentHash(t, hash, at(path, 'consistentHash'))
}

function readConsistentHash(t: Translation, h: Obj, path: string): LoadBalancerPart {
  t.fields(h, path, ['httpHeaderName', 'httpCookie', 'useSourceIp', 'httpQueryParameterName', 'ringHash', 'maglev', 'minimumRingSize'])
  let hashPolicy: HashPolicy | undefined
  const header = str(t, h, 'httpHeaderName', path)
  const cookie = object(t, h, 'httpCookie', path)
  const query = str(t, h, 'httpQueryParameterName', path)
  const sourceIp = bool(t, h, 'useSourceIp', path)
  if (header !== undefined) hashPolicy = { header: { name: header.toLowerCase() } }
  else if (cookie !== undefined) {
    const cpath = at(path, 'httpCookie')
    t.fields(cookie, cpath, ['name', 'path', 'ttl', 'attributes'])
    const name = str(t, cookie, 'name', cpath)
    for (const key of ['path', 'ttl', 'attributes']) {
      if (isSet(cookie[key])) t.report(at(cpath, key), 'the mesh hashes on a cookie the client sends and never sets one; not translated')
    }
    if (name !== undefined && name !== '') hashPolicy = { cookie: { name } }
    else t.report(cpath, 'httpCookie needs a name; no hash policy')
  } else if (query !== undefined) hashPolicy = { queryParameter: { name: query } }
  else if (sourceIp === true) {
    t.report(at(path, 'useSourceIp'), 'in-process, every outbound request comes from the app itself: there is no source address to hash; requests are balanced without a hash')
  }
  const ring = object(t, h, 'ringHash', path)
  const maglev = object(t, h, 'maglev', path)
  const deprecatedMin = num(t, h, 'minimumRingSize', path)
  if (maglev !== undefined) {
    t.fields(maglev, at(path, 'maglev'), ['tableSize'])
    const size = num(t, maglev, 'tableSize', at(path, 'maglev'))
    return { loadBalancer: 'maglev', ...(size !== undefined && size > 0 ? { maglev: { tableSize: bounded(t, size, 2, 5_000_011, at(at(path, 'maglev'), 'tableSize')) } } : {}), ...(hashPolicy === undefined ? {} : { hashPolicy }) }
  }
  let min: number | undefined
  if (ring !== undefined) {
    t.fields(ring, at(path, 'ringHash'), ['minimumRingSize'])
    min = num(t, ring, 'minimumRingSize', at(path, 'ringHash'))
  } else if (deprecatedMin !== undefined && deprecatedMin > 0) min = deprecatedMin
  return {
    loadBalancer: 'ring_hash',
    ...(min !== undefined && min > 0 ? { ringHash: { minimumRingSize: bounded(t, min, 1, 8_388_608, at(path, 'ringHash.minimumRingSize')) } } : {}),
    ...(hashPolicy === undefined ? {} : { hashPolicy }),
  }
}

function readConnectionPool(t: Translation, pool: Obj, path: string): ConnectionPoolPart {
  t.fields(pool, path, ['tcp', 'http'])
  const cb: CircuitBreakersConfig = {}
  let connectTimeout: number | undefined
  let idleTimeout: number | undefined
  const tcp = object(t, pool, 'tcp', path)
  const http = object(t, pool, 'http', path)
  if (http !== undefined) {
    const h = at(path, 'http')
    t.fields(http, h, ['http1MaxPendingRequests', 'http2MaxRequests', 'maxRetries', 'idleTimeout', 'maxRequestsPerConnection', 'h2UpgradePolicy', 'useClientProtocol', 'maxConcurrentStreams', 'http2KeepAlive'])
    // Istio reads 0 as "unset" (pilot applyConnectionPool): only positive values override.
    const pending = positive(t, http, 'http1MaxPendingRequests', h)
    if (pending !== undefined) cb.maxPendingRequests = pending
    const requests = positive(t, http, 'http2MaxRequests', h)
    if (requests !== undefined) cb.maxRequests = requests
    const retries = positive(t, http, 'maxRetries', h)
    if (retries !== undefined) cb.maxRetries = retries
    idleTimeout = duration(t, http, 'idleTimeout', h)
    const perConn = num(t, http, 'maxRequestsPerConnection', h)
    if (perConn !== undefined && perConn > 0) t.report(at(h, 'maxRequestsPerConnection'), 'connections are reused without a per-connection request cap; not translated')
    const upgrade = str(t, http, 'h2UpgradePolicy', h)
    if (upgrade !== undefined && upgrade !== 'DEFAULT' && upgrade !== 'DO_NOT_UPGRADE') t.report(at(h, 'h2UpgradePolicy'), 'the mesh speaks HTTP/1.1 to endpoints; UPGRADE is not translated')
    if (bool(t, http, 'useClientProtocol', h) === true) t.report(at(h, 'useClientProtocol'), 'the mesh speaks HTTP/1.1 to endpoints; not translated')
    const streams = num(t, http, 'maxConcurrentStreams', h)
    if (streams !== undefined && streams > 0) t.report(at(h, 'maxConcurrentStreams'), 'HTTP/2 settings are not translated (HTTP/1.1 to endpoints)')
    if (isSet(http['http2KeepAlive'])) t.report(at(h, 'http2KeepAlive'), 'HTTP/2 settings are not translated (HTTP/1.1 to endpoints)')
  }
  if (tcp !== undefined) {
    const p = at(path, 'tcp')
    t.fields(tcp, p, ['maxConnections', 'connectTimeout', 'idleTimeout', 'tcpKeepalive', 'maxConnectionDuration'])
    const conns = positive(t, tcp, 'maxConnections', p)
    // Envoy bounds connections per cluster; the mesh pools per endpoint (a documented difference).
    if (conns !== undefined) cb.maxConnections = conns
    connectTimeout = duration(t, tcp, 'connectTimeout', p)
    idleTimeout ??= duration(t, tcp, 'idleTimeout', p)
    if (isSet(tcp['tcpKeepalive'])) t.report(at(p, 'tcpKeepalive'), 'TCP keep-alive probes are not configurable through the mesh; not translated')
    if (isSet(tcp['maxConnectionDuration'])) t.report(at(p, 'maxConnectionDuration'), 'connections are not closed by age; not translated')
  }
  return {
    circuitBreakers: cb,
    ...(connectTimeout === undefined ? {} : { connectTimeout }),
    ...(idleTimeout === undefined ? {} : { idleTimeout }),
  }
}

function readOutlierDetection(t: Translation, o: Obj, path: string): OutlierPart {
  t.fields(o, path, ['consecutive5xxErrors', 'consecutiveGatewayErrors', 'interval', 'baseEjectionTime', 'maxEjectionPercent', 'minHealthPercent', 'consecutiveErrors', 'splitExternalLocalOriginErrors', 'consecutiveLocalOriginFailures', 'outlierDetectionHttpErrorCodes'])
  // Istio turns success-rate ejection off and enforces what it sets (pilot applyOutlierDetection).
  const out: OutlierDetectionConfig = { enforcingSuccessRate: 0 }
  const c5xx = num(t, o, 'consecutive5xxErrors', path)
  if (c5xx !== undefined) {
    out.consecutive5xx = bounded(t, Math.trunc(c5xx), 0, 1e9, at(path, 'consecutive5xxErrors'))
    out.enforcingConsecutive5xx = c5xx > 0 ? 100 : 0
  }
  const gw = num(t, o, 'consecutiveGatewayErrors', path)
  if (gw !== undefined) {
    out.consecutiveGatewayFailure = bounded(t, Math.trunc(gw), 0, 1e9, at(path, 'consecutiveGatewayErrors'))
    out.enforcingConsecutiveGatewayFailure = gw > 0 ? 100 : 0
  }
  if (isSet(o['consecutiveErrors'])) t.report(at(path, 'consecutiveErrors'), 'deprecated, and ignored by istiod too; use consecutive5xxErrors or consecutiveGatewayErrors')
  const interval = duration(t, o, 'interval', path)
  if (interval !== undefined) out.interval = interval
  const base = duration(t, o, 'baseEjectionTime', path)
  if (base !== undefined) out.baseEjectionTime = base
  const maxPercent = num(t, o, 'maxEjectionPercent', path)
  if (maxPercent !== undefined && maxPercent > 0) out.maxEjectionPercent = bounded(t, maxPercent, 0, 100, at(path, 'maxEjectionPercent'))
  const minHealth = num(t, o, 'minHealthPercent', path)
  if (bool(t, o, 'splitExternalLocalOriginErrors', path) === true) {
    t.report(at(path, 'splitExternalLocalOriginErrors'), 'the mesh counts local failures (connect, reset, timeout) as 5xx and gateway errors; not translated')
  }
  if (isSet(o['consecutiveLocalOriginFailures'])) t.report(at(path, 'consecutiveLocalOriginFailures'), 'needs splitExternalLocalOriginErrors, which is not translated')
  if (isSet(o['outlierDetectionHttpErrorCodes'])) t.report(at(path, 'outlierDetectionHttpErrorCodes'), 'custom error codes for ejection are not translated')
  return { outlierDetection: out, healthyPanicThreshold: minHealth !== undefined && minHealth >= 0 ? Math.min(minHealth, 100) : 0 }
}

const TLS_MODES: Readonly<Record<string, ClusterTlsConfig['mode']>> = {
  DISABLE: 'disable',
  SIMPLE: 'simple',
  MUTUAL: 'mutual',
  ISTIO_MUTUAL: 'ISTIO_MUTUAL',
}

function readTls(t: Translation, o: Obj, path: string): { tls?: ClusterTlsConfig } {
  t.fields(o, path, ['mode', 'clientCertificate', 'privateKey', 'caCertificates', 'subjectAltNames', 'sni', 'credentialName', 'insecureSkipVerify', 'caCrl'])
  const mode = str(t, o, 'mode', path) ?? 'DISABLE'
  if (!Object.hasOwn(TLS_MODES, mode)) {
    t.report(at(path, 'mode'), `${JSON.stringify(mode)} is not an Istio TLS mode (DISABLE, SIMPLE, MUTUAL, ISTIO_MUTUAL); not translated`)
    return {}
  }
  const tls: ClusterTlsConfig = { mode: TLS_MODES[mode] as ClusterTlsConfig['mode'] }
  const sni = str(t, o, 'sni', path)
  if (sni !== undefined && sni !== '') tls.sni = sni
  const sans = strings(t, o, 'subjectAltNames', path)
  const spiffe = sans.filter((s) => s.startsWith('spiffe://'))
  if (spiffe.length > 0) tls.verifyIdentities = spiffe
  if (spiffe.length < sans.length) {
    t.report(at(path, 'subjectAltNames'), 'only SPIFFE IDs (spiffe://…) are verified by the mesh; DNS and other names are not translated (the server name is still checked by SIMPLE TLS)')
  }
  if (mode === 'SIMPLE' || mode === 'MUTUAL') {
    const ca = str(t, o, 'caCertificates', path)
    if (ca !== undefined && ca !== '' && ca !== 'system') tls.trustBundle = ca
    const crl = str(t, o, 'caCrl', path)
    if (crl !== undefined && crl !== '') t.report(at(path, 'caCrl'), 'certificate revocation lists are not checked; not translated')
  }
  if (mode === 'MUTUAL') {
    const cert = str(t, o, 'clientCertificate', path)
    const key = str(t, o, 'privateKey', path)
    if (cert !== undefined && cert !== '') tls.certificate = cert
    if (key !== undefined && key !== '') tls.privateKey = key
  }
  if (isSet(o['credentialName'])) t.report(at(path, 'credentialName'), 'a Kubernetes secret cannot be read in-process; give clientCertificate, privateKey and caCertificates as files')
  if (bool(t, o, 'insecureSkipVerify', path) === true) {
    t.report(at(path, 'insecureSkipVerify'), 'the mesh always verifies the server certificate; not translated (connections to a server with an untrusted certificate fail)')
  }
  return { tls }
}

function readRetryBudget(t: Translation, o: Obj, path: string): { budgetPercent?: number; minRetryConcurrency?: number } {
  t.fields(o, path, ['percent', 'minRetryConcurrency', 'budgetInterval'])
  const out: { budgetPercent?: number; minRetryConcurrency?: number } = {}
  const percent = num(t, o, 'percent', path)
  if (percent !== undefined) out.budgetPercent = bounded(t, percent, 0, 100, at(path, 'percent'))
  const min = num(t, o, 'minRetryConcurrency', path)
  if (min !== undefined) out.minRetryConcurrency = bounded(t, Math.trunc(min), 0, 1e9, at(path, 'minRetryConcurrency'))
  if (isSet(o['budgetInterval'])) t.report(at(path, 'budgetInterval'), 'the budget counts retries in flight; an interval is not translated')
  return out
}

/** A positive integer field (Istio reads 0 as unset). */
function positive(t: Translation, o: Obj, key: string, path: string): number | undefined {
  const v = num(t, o, key, path)
  if (v === undefined || v <= 0) return undefined
  return bounded(t, Math.trunc(v), 1, 1e9, at(path, key))
}

/** An Istio duration (`1h`, `1m`, `1s`, `1ms`, or combinations), in ms. */
export function duration(t: Translation, o: Obj, key: string, path: string): number | undefined {
  const v = o[key]
  if (!isSet(v)) return undefined
  const ms = typeof v === 'string' ? parseDuration(v) : undefined
  if (ms === undefined) {
    t.report(at(path, key), `${typeof v === 'string' ? JSON.stringify(v) : String(v)} is not a duration the mesh reads (e.g. 250ms, 1.5s, 1m, 1h); not translated`)
    return undefined
  }
  return ms
}

function bounded(t: Translation, v: number, min: number, max: number, path: string): number {
  if (v < min || v > max) {
    const clamped = Math.min(max, Math.max(min, v))
    t.report(path, `${v} is outside the mesh's range ${min}..${max}; ${clamped} is used`)
    return clamped
  }
  return v
}
