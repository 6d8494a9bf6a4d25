/**
 * The four xDS resource types of a proxyless client, each decoded through the same
 * translators as the Envoy bootstrap import (`src/config/envoy/*`) and judged the way
 * gRPC's decoders judge them (`@grpc/grpc-js-xds` src/xds-resource-type/*):
 *
 * - a resource the mesh cannot use is invalid and NACKed, with every reason: no name, a
 *   Listener without the shape its role needs, an HTTP filter that is neither optional nor
 *   supported, a Cluster type or load-balancing policy the mesh lacks, a certificate
 *   provider instance the bootstrap does not define, SDS secrets, a virtual host, route or
 *   endpoint the translator had to drop (routing would differ from what the server meant),
 *   and anything the config validation refuses, checked on the resource alone;
 * - fields the mesh does not apply but that change no routing decision are warnings: the
 *   resource is ACKed and the warnings are shown in `mesh.xds.status()`.
 *
 * @module
 */
import { parseDomain } from '../../config/domain.js'
import {
  Problems,
  translateCluster,
  translateClusterLoadAssignment,
  translateDownstreamTlsContext,
  translateListener,
  translateRbac,
  translateRouteConfiguration,
  type ClusterTranslation,
  type HttpFilters,
  type RouteConfigurationTranslation,
  type UnsupportedField,
} from '../../config/envoy/index.js'
import type { AuthorizationPolicyConfig, ClusterConfig, ClusterTlsConfig, EndpointConfig, MeshConfig, MtlsMode } from '../../config/types.js'
import { validateConfig } from '../../config/validate.js'
import type { XdsObject } from '../types.js'
import type { FileWatcherProvider } from './bootstrap.js'

import type { XdsResourceType } from './status.js'

export type { XdsResourceType } from './status.js'

/** A decoded resource, or why it is refused. */
export type DecodeResult<V> =
  | { readonly ok: true; readonly name: string; readonly value: V; readonly warnings: readonly UnsupportedField[] }
  | { readonly ok: false; readonly name: string | undefined; readonly errors: readonly string[] }

/** What decoding needs from the bootstrap. */
export interface DecodeContext {
  readonly certificateProviders: ReadonlyMap<string, FileWatcherProvider>
}

/** A client-side Listener (`api_listener`): where its routes come from. */
export interface ClientListener {
  readonly role: 'client'
  /** `rds.route_config_name`, when the routes come by RDS. */
  readonly rdsName: string | undefined
  /** The inline `route_config`, raw (translated with `filters` when composed). */
  readonly inlineRoutes: XdsObject | undefined
  readonly filters: HttpFilters
}

/** A server-side Listener (istiod's inbound listener for a proxyless server). */
export interface ServerListener {
  readonly role: 'server'
  /** The port, from `address` (or the name). */
  readonly port: number | undefined
  /** DISABLE (a plaintext chain), STRICT (an mTLS chain), PERMISSIVE (both). */
  readonly mtls: MtlsMode
  /** The certificate provider instance serving the mTLS chain. */
  readonly provider: string | undefined
  /** DENY policies then ALLOW policies; undefined when the filter chain has no RBAC filter. */
  readonly authorization: AuthorizationPolicyConfig[] | undefined
}

export type ListenerValue = ClientListener | ServerListener

/** A RouteConfiguration, translated as served by a connection manager with the fault filter. */
export interface RouteValue {
  readonly raw: XdsObject
  readonly translation: RouteConfigurationTranslation
}

/** A Cluster as our model's ClusterConfig, and what it still waits for. */
export interface ClusterValue {
  /** The cluster without endpoints (an EDS cluster) or with its inline ones. */
  readonly config: ClusterConfig
  /** The ClusterLoadAssignment it waits for (EDS). */
  readonly edsServiceName: string | undefined
  /** Endpoints are `https://` (simple or mutual TLS with own certificates); ISTIO_MUTUAL dials TLS anyway. */
  readonly endpointScheme: 'http' | 'https'
  /** The certificate provider instance of its workload identity, if it uses one. */
  readonly provider: string | undefined
}

/** A ClusterLoadAssignment's endpoints, written `http://host:port`. */
export interface EndpointValue {
  readonly endpoints: readonly EndpointConfig[]
}

/** Decodes one resource of a type from its object form (Any expanded). */
export type Decoder<V> = (resource: XdsObject, context: DecodeContext) => DecodeResult<V>

/** Istio's proxyless connection managers carry the fault filter: route-level faults apply. */
export const WITH_FAULT_FILTER: HttpFilters = Object.freeze({ fault: null })

const HCM_TYPE = 'envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager'
const ROUTER_TYPE = 'envoy.extensions.filters.http.router.v3.Router'
const FAULT_TYPE = 'envoy.extensions.filters.http.fault.v3.HTTPFault'
const RBAC_TYPE = 'envoy.extensions.filters.http.rbac.v3.RBAC'
const DOWNSTREAM_TLS_TYPE = 'envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext'
const CLUSTER_TYPES = ['STATIC', 'STRICT_DNS', 'LOGICAL_DNS', 'EDS']

// ---------------------------------------------------------------- Listener

export const decodeListener: Decoder<ListenerValue> = (resource, context) => {
  const name = stringField(resource, 'name')
  if (name === undefined || name === '') return refused(undefined, ['a Listener needs a name'])
  const api = obj(resource['api_listener'])
  return api === undefined ? decodeServerListener(name, resource, context) : decodeClientListener(name, resource, api)
}

function decodeClientListener(name: string, resource: XdsObject, api: XdsObject): DecodeResult<ListenerValue> {
  const errors: string[] = []
  const hcm = obj(api['api_listener'])
  if (hcm === undefined || typeOf(hcm) !== HCM_TYPE) return refused(name, [`api_listener.api_listener must be an ${HCM_TYPE}`])
  const p = new Problems()
  const translated = translateListener(resource, 'listener', p)
  const cm = translated?.connectionManagers[0]
  const rds = obj(hcm['rds'])
  const inline = obj(hcm['route_config'])
  if (rds === undefined && inline === undefined) errors.push('the HttpConnectionManager needs rds or route_config')
  if (rds !== undefined && inline !== undefined) errors.push('the HttpConnectionManager has both rds and route_config')
  let rdsName: string | undefined
  if (rds !== undefined) {
    rdsName = stringField(rds, 'route_config_name')
    if (rdsName === undefined || rdsName === '') errors.push('rds.route_config_name is empty')
    const source = obj(rds['config_source'])
    if (source === undefined || (obj(source['ads']) === undefined && obj(source['self']) === undefined)) {
      errors.push('rds.config_source must be ads or self (the routes come over this ADS stream)')
    }
  }
  errors.push(...httpFilterErrors(hcm, 'client', []))
  if (cm === undefined) errors.push('the HttpConnectionManager could not be read')
  if (errors.length > 0) return refused(name, [...errors, ...p.list().map(line)])
  const filters = cm?.filters ?? WITH_FAULT_FILTER
  // The inline routes are checked like an RDS resource, with this connection manager's filters.
  if (inline !== undefined) {
    const checked = checkRoutes(inline, filters)
    if (checked.errors.length > 0) return refused(name, checked.errors)
  }
  return accepted(name, { role: 'client', rdsName, inlineRoutes: inline, filters }, p.list())
}

/**
 * The HTTP filters gRPC accepts on each side, and the errors of the others: the router
 * must be there and last; a filter the mesh does not apply is an error unless it is
 * `is_optional` (gRFC A39); RBAC is a server filter.
 */
function httpFilterErrors(hcm: XdsObject, side: 'client' | 'server', rbac: XdsObject[]): string[] {
  const errors: string[] = []
  const filters = Array.isArray(hcm['http_filters']) ? (hcm['http_filters'] as unknown[]) : []
  let router = -1
  filters.forEach((f, i) => {
    const filter = obj(f)
    if (filter === undefined) return
    if (filter['disabled'] === true) return
    const typed = obj(filter['typed_config'])
    let type = typed === undefined ? '' : typeOf(typed)
    // A TypedStruct names the type it carries.
    if ((type === 'udpa.type.v1.TypedStruct' || type === 'xds.type.v3.TypedStruct') && typed !== undefined) {
      const url = typed['type_url']
      type = typeof url === 'string' ? url.slice(url.lastIndexOf('/') + 1) : type
    }
    const label = `http_filters[${i}] ("${String(filter['name'] ?? '')}")`
    if (type === ROUTER_TYPE) {
      router = i
      return
    }
    if (type === FAULT_TYPE) return
    if (type === RBAC_TYPE && side === 'server' && typed !== undefined) {
      rbac.push(typed)
      return
    }
    if (filter['is_optional'] === true) return
    errors.push(`${label}: ${type === '' ? 'no typed_config' : `${type} is not supported${type === RBAC_TYPE ? ' on a client Listener' : ''}`}, and the filter is not optional`)
  })
  if (router === -1) errors.push('no router filter (envoy.extensions.filters.http.router.v3.Router) in http_filters')
  else if (router !== filters.length - 1) errors.push(`the router filter must be the last of http_filters, not ${router + 1} of ${filters.length}`)
  return errors
}

function decodeServerListener(name: string, resource: XdsObject, context: DecodeContext): DecodeResult<ListenerValue> {
  const errors: string[] = []
  const warnings: UnsupportedField[] = []
  const chains = [...list(resource['filter_chains']), ...(obj(resource['default_filter_chain']) === undefined ? [] : [resource['default_filter_chain']])]
  if (chains.length === 0) return refused(name, ['a server Listener needs filter_chains (or api_listener for a client Listener)'])
  if (list(resource['listener_filters']).length > 0) errors.push('listener_filters are not supported')
  if (resource['use_original_dst'] === true) errors.push('use_original_dst is not supported')
  let plain = 0
  let mutual = 0
  let provider: string | undefined
  let authorization: AuthorizationPolicyConfig[] | undefined
  let authorizationKey: string | undefined
  chains.forEach((c, i) => {
    const chain = obj(c)
    const at = `filter_chains[${i}]`
    if (chain === undefined) {
      errors.push(`${at}: not an object`)
      return
    }
    const match = obj(chain['filter_chain_match'])
    if (match !== undefined) {
      const keys = Object.keys(match).filter((k) => k !== 'transport_protocol')
      if (keys.length > 0) errors.push(`${at}.filter_chain_match: matching on ${keys.join(', ')} is not supported`)
    }
    const tls = chainTls(chain, `${at}.transport_socket`, context, errors, warnings)
    if (tls === 'plain') plain++
    else if (tls !== undefined) {
      mutual++
      provider ??= tls.provider
    }
    const filters = list(chain['filters'])
    if (filters.length !== 1 || typeOf(obj(obj(filters[0])?.['typed_config']) ?? {}) !== HCM_TYPE) {
      errors.push(`${at}.filters: one HttpConnectionManager is expected`)
      return
    }
    const hcm = obj(obj(filters[0])?.['typed_config']) as XdsObject
    const rbac: XdsObject[] = []
    errors.push(...httpFilterErrors(hcm, 'server', rbac).map((e) => `${at}: ${e}`))
    const authz = serverAuthorization(rbac, `${at}`, errors, warnings)
    const key = JSON.stringify(authz ?? null)
    if (authorizationKey !== undefined && key !== authorizationKey) errors.push(`${at}: filter chains with different RBAC filters are not supported (one authorization applies to the port)`)
    authorizationKey = key
    authorization = authz
  })
  if (plain > 1 || mutual > 1) errors.push('two filter chains of the same kind (plaintext or mTLS) cannot be told apart by the mesh listener')
  if (errors.length > 0) return refused(name, errors)
  const mtls: MtlsMode = plain > 0 && mutual > 0 ? 'PERMISSIVE' : mutual > 0 ? 'STRICT' : 'DISABLE'
  return accepted(name, { role: 'server', port: listenerPort(resource, name), mtls, provider, authorization }, warnings)
}

/** `plain`, the mTLS chain's provider, or undefined (an error was recorded). */
function chainTls(chain: XdsObject, at: string, context: DecodeContext, errors: string[], warnings: UnsupportedField[]): 'plain' | { provider: string | undefined } | undefined {
  const socket = obj(chain['transport_socket'])
  if (socket === undefined) return 'plain'
  const typed = obj(socket['typed_config'])
  const type = typed === undefined ? '' : typeOf(typed)
  if (type === 'envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer') return 'plain'
  if (type !== DOWNSTREAM_TLS_TYPE || typed === undefined) {
    errors.push(`${at}: transport socket ${type === '' ? String(socket['name'] ?? '') : type} is not supported`)
    return undefined
  }
  const p = new Problems()
  const tls = translateDownstreamTlsContext(p, { key: 'typed_config', name: 'typed_config', value: typed, path: at })
  warnings.push(...p.list())
  if (tls === undefined) {
    errors.push(`${at}: not a DownstreamTlsContext`)
    return undefined
  }
  if (!tls.requireClientCertificate) {
    errors.push(`${at}: TLS without require_client_certificate is not supported; the mesh listener serves mutual TLS (STRICT or PERMISSIVE)`)
    return undefined
  }
  if (tls.certificateSecret !== undefined || tls.validationSecret !== undefined) {
    errors.push(`${at}: SDS secrets are not supported; use certificate provider instances`)
    return undefined
  }
  if (tls.certificate !== undefined || tls.validation?.trustedCa !== undefined) {
    errors.push(`${at}: inline certificates are not supported on the inbound listener; it serves the workload identity (certificate provider instances)`)
    return undefined
  }
  if (tls.validation?.verifyIdentities !== undefined) warnings.push({ path: at, message: 'SAN matchers on the server side are not applied (authorization policies check peers)' })
  const certificate = tls.certificateProvider
  const validation = tls.validationProvider
  if (certificate === undefined || validation === undefined) {
    errors.push(`${at}: mutual TLS needs a certificate provider instance for the certificate and for the validation context`)
    return undefined
  }
  if (certificate !== validation) {
    errors.push(`${at}: the certificate ("${certificate}") and the validation ("${validation}") come from different provider instances; the mesh serves one workload identity`)
    return undefined
  }
  const problem = providerProblem(context, certificate, true)
  if (problem !== undefined) {
    errors.push(`${at}: ${problem}`)
    return undefined
  }
  return { provider: certificate }
}

/** The chain's RBAC filters as our policies: DENY filters' policies, then the ALLOW filter's. */
function serverAuthorization(filters: XdsObject[], at: string, errors: string[], warnings: UnsupportedField[]): AuthorizationPolicyConfig[] | undefined {
  if (filters.length === 0) return undefined
  const deny: AuthorizationPolicyConfig[] = []
  const allow: AuthorizationPolicyConfig[] = []
  let allowFilters = 0
  filters.forEach((typed, i) => {
    const p = new Problems()
    const t = translateRbac(p, { key: 'typed_config', name: 'typed_config', value: typed, path: `${at}.rbac[${i}]` })
    if (t === undefined) {
      errors.push(...p.list().map(line))
      if (p.count === 0) errors.push(`${at}.rbac[${i}]: the RBAC filter cannot be enforced exactly`)
      return
    }
    warnings.push(...p.list())
    if (t === null) return
    if (t.action === 'ALLOW') {
      // Two ALLOW filters must both allow; our ALLOW policies are one disjunction.
      if (++allowFilters > 1) errors.push(`${at}: two ALLOW RBAC filters (a request must pass both) are not supported`)
      allow.push(...t.policies)
    } else {
      deny.push(...t.policies)
    }
  })
  const out = [...deny, ...allow]
  return out.length === 0 ? undefined : out
}

function listenerPort(resource: XdsObject, name: string): number | undefined {
  const socket = obj(obj(resource['address'])?.['socket_address'])
  const port = socket?.['port_value']
  if (typeof port === 'number' && port > 0) return port
  const m = /:(\d{1,5})$/.exec(name)
  return m === null ? undefined : Number(m[1])
}

// ---------------------------------------------------------------- RouteConfiguration

export const decodeRoute: Decoder<RouteValue> = (resource) => {
  const name = stringField(resource, 'name')
  if (name === undefined || name === '') return refused(undefined, ['a RouteConfiguration needs a name'])
  const checked = checkRoutes(resource, WITH_FAULT_FILTER)
  if (checked.errors.length > 0) return refused(name, checked.errors)
  return accepted(name, { raw: resource, translation: checked.translation }, checked.warnings)
}

/**
 * Translates a route configuration and judges it: every virtual host, route and weighted
 * cluster must survive the translation (one dropped would send its traffic elsewhere than
 * the server meant), every domain must be a valid pattern, and the result must validate.
 */
export function checkRoutes(raw: XdsObject, filters: HttpFilters): { translation: RouteConfigurationTranslation; errors: string[]; warnings: UnsupportedField[] } {
  const p = new Problems()
  const translation = translateRouteConfiguration(raw, 'route_config', p, filters)
  const problems = p.list()
  const errors: string[] = []
  const rawHosts = list(raw['virtual_hosts'])
  if (rawHosts.length !== translation.virtualHosts.length) {
    errors.push(`${rawHosts.length - translation.virtualHosts.length} virtual host(s) could not be used`)
  } else {
    translation.virtualHosts.forEach((vh, i) => {
      const rawRoutes = list(obj(rawHosts[i])?.['routes'])
      const routes = vh.config.routes
      if (rawRoutes.length !== routes.length) {
        errors.push(`virtual_hosts[${i}]: ${rawRoutes.length - routes.length} route(s) dropped`)
        return
      }
      routes.forEach((r, j) => {
        const rawWeighted = list(obj(obj(obj(rawRoutes[j])?.['route'])?.['weighted_clusters'])?.['clusters'])
        const weighted = r.route?.weightedClusters
        if (rawWeighted.length > 0 && (weighted === undefined || weighted.length !== rawWeighted.length)) {
          errors.push(`virtual_hosts[${i}].routes[${j}]: a weighted cluster was dropped`)
        }
      })
      vh.config.domains.forEach((d, k) => {
        const parsed = parseDomain(d)
        if (typeof parsed === 'string') errors.push(`virtual_hosts[${i}].domains[${k}]: ${parsed}`)
      })
    })
  }
  if (errors.length === 0) {
    // Validate the routes alone: every cluster they name stands in as an empty cluster.
    const clusters = new Set<string>()
    for (const vh of translation.virtualHosts) for (const r of vh.config.routes) for (const c of routeClusters(r.route)) clusters.add(c)
    const config: MeshConfig = {
      clusters: [...clusters].map((c) => ({ name: c })),
      virtualHosts: translation.virtualHosts.map((vh, i) => ({ ...vh.config, name: `virtual_hosts[${i}]`, domains: [`vh${i}.invalid`] })),
    }
    for (const issue of validateConfig(config)) {
      if (issue.path.startsWith('clusters')) continue
      errors.push(`${issue.path}: ${issue.code}: ${issue.message}`)
    }
  }
  if (errors.length > 0) errors.push(...problems.map(line))
  return { translation, errors, warnings: problems }
}

/** Every cluster a route action names (route, weighted clusters, mirrors). */
export function routeClusters(action: { cluster?: string; weightedClusters?: { cluster: string }[]; requestMirrorPolicies?: { cluster: string }[] } | undefined): string[] {
  if (action === undefined) return []
  const out: string[] = []
  if (action.cluster !== undefined) out.push(action.cluster)
  for (const w of action.weightedClusters ?? []) out.push(w.cluster)
  for (const m of action.requestMirrorPolicies ?? []) out.push(m.cluster)
  return out
}

// ---------------------------------------------------------------- Cluster

export const decodeCluster: Decoder<ClusterValue> = (resource, context) => {
  const name = stringField(resource, 'name')
  if (name === undefined || name === '') return refused(undefined, ['a Cluster needs a name'])
  const errors: string[] = []
  if (resource['cluster_type'] !== undefined) {
    const t = obj(obj(resource['cluster_type'])?.['typed_config'])
    errors.push(`custom cluster type ${t === undefined ? '' : typeOf(t)} is not supported (aggregate clusters neither)`)
  }
  const type = typeof resource['type'] === 'string' ? resource['type'] : 'STATIC'
  if (!CLUSTER_TYPES.includes(type)) errors.push(`cluster type ${type} is not supported`)
  if (type === 'EDS') {
    const source = obj(obj(resource['eds_cluster_config'])?.['eds_config'])
    if (source === undefined || (obj(source['ads']) === undefined && obj(source['self']) === undefined)) {
      errors.push('eds_cluster_config.eds_config must be ads or self (the endpoints come over this ADS stream)')
    }
  }
  const p = new Problems()
  const t = translateCluster(resource, 'cluster', p)
  if (t === undefined) return refused(name, [...errors, ...p.list().map(line)])
  const lb = resource['lb_policy']
  if (typeof lb === 'string' && lb !== 'ROUND_ROBIN' && t.config.loadBalancer === undefined) errors.push(`lb_policy ${lb} is not supported`)
  const rh = t.config.ringHash
  if (rh?.minimumRingSize !== undefined && rh.maximumRingSize !== undefined && rh.minimumRingSize > rh.maximumRingSize) {
    errors.push('ring_hash_lb_config.minimum_ring_size is above maximum_ring_size')
  }
  if (obj(resource['load_balancing_policy']) !== undefined && p.list().some((u) => u.path.startsWith('cluster.load_balancing_policy') && u.message.startsWith('no load-balancing policy'))) {
    errors.push('no policy of load_balancing_policy is supported')
  }
  const tls = clusterTls(t, context, errors)
  if (errors.length === 0) {
    const config: MeshConfig = { clusters: [{ ...t.config, ...(tls.config === undefined ? {} : { tls: tls.config }), endpoints: t.config.endpoints ?? [] }] }
    // ISTIO_MUTUAL needs the workload identity; validate as if the bootstrap gives it.
    if (tls.provider !== undefined) config.identity = { certificate: 'cert-chain.pem', privateKey: 'key.pem', trustBundle: 'root-cert.pem' }
    for (const issue of validateConfig(config)) errors.push(`${issue.path.replace(/^clusters\[0\]/, 'cluster')}: ${issue.code}: ${issue.message}`)
  }
  if (errors.length > 0) return refused(name, [...errors, ...p.list().map(line)])
  const config = tls.config === undefined ? t.config : { ...t.config, tls: tls.config }
  return accepted(name, { config, edsServiceName: t.edsServiceName, endpointScheme: tls.config?.mode === 'ISTIO_MUTUAL' ? 'http' : t.endpointScheme, provider: tls.provider }, p.list())
}

/**
 * A cluster's upstream TLS in our model. Certificate provider instances (gRPC A29, what
 * istiod writes for ISTIO_MUTUAL) mean the workload identity from the bootstrap:
 * `ISTIO_MUTUAL`, verifying the SAN matchers. Inline certificates are `mutual`/`simple`.
 */
function clusterTls(t: ClusterTranslation, context: DecodeContext, errors: string[]): { config: ClusterTlsConfig | undefined; provider: string | undefined } {
  const tls = t.tls
  if (tls === undefined) return { config: undefined, provider: undefined }
  if (tls.certificateSecret !== undefined || tls.validationSecret !== undefined) {
    errors.push('SDS secrets are not supported; use certificate provider instances (as istiod writes for proxyless clients)')
    return { config: undefined, provider: undefined }
  }
  const cert = tls.certificateProvider
  const validation = tls.validationProvider
  for (const [instance, needsKey] of [[cert, true], [validation, false]] as const) {
    if (instance === undefined) continue
    const problem = providerProblem(context, instance, needsKey)
    if (problem !== undefined) errors.push(problem)
  }
  if (cert !== undefined && validation !== undefined && cert !== validation) {
    errors.push(`the certificate ("${cert}") and the validation ("${validation}") come from different provider instances; the mesh presents one workload identity`)
  }
  if (cert === undefined && validation === undefined) {
    const config: ClusterTlsConfig = { mode: tls.certificate === undefined ? 'simple' : 'mutual' }
    if (tls.sni !== undefined && tls.sni !== '') config.sni = tls.sni
    if (tls.certificate !== undefined) {
      config.certificate = tls.certificate.certificate
      config.privateKey = tls.certificate.privateKey
    }
    if (tls.validation?.trustedCa !== undefined) config.trustBundle = tls.validation.trustedCa
    if (tls.validation?.verifyIdentities !== undefined) config.verifyIdentities = [...tls.validation.verifyIdentities]
    return { config, provider: undefined }
  }
  if (tls.certificate !== undefined || tls.validation?.trustedCa !== undefined) {
    errors.push('mixing certificate provider instances with inline certificates is not supported')
    return { config: undefined, provider: undefined }
  }
  if (cert === undefined && validation !== undefined) {
    // TLS without a client certificate (DestinationRule SIMPLE): the server is verified
    // against the provider's CA certificates (gRFC A29), and its SAN matchers when set.
    const config: ClusterTlsConfig = { mode: 'simple', trustBundle: context.certificateProviders.get(validation)?.caCertificateFile }
    if (tls.sni !== undefined && tls.sni !== '') config.sni = tls.sni
    if (tls.validation?.verifyIdentities !== undefined) config.verifyIdentities = [...tls.validation.verifyIdentities]
    return { config, provider: undefined }
  }
  if (cert === undefined) return { config: undefined, provider: undefined }
  const config: ClusterTlsConfig = { mode: 'ISTIO_MUTUAL' }
  if (tls.sni !== undefined && tls.sni !== '') config.sni = tls.sni
  if (tls.validation?.verifyIdentities !== undefined) config.verifyIdentities = [...tls.validation.verifyIdentities]
  return { config, provider: cert }
}

/** Why a provider instance cannot serve, or undefined. */
function providerProblem(context: DecodeContext, instance: string, needsKey: boolean): string | undefined {
  const p = context.certificateProviders.get(instance)
  if (p === undefined) {
    const known = [...context.certificateProviders.keys()]
    return `certificate provider instance "${instance}" is not in the bootstrap's certificate_providers${known.length === 0 ? '' : ` (${known.join(', ')})`}`
  }
  if (needsKey && (p.certificateFile === undefined || p.privateKeyFile === undefined)) return `certificate provider instance "${instance}" has no certificate_file and private_key_file`
  if (p.caCertificateFile === undefined) return `certificate provider instance "${instance}" has no ca_certificate_file`
  return undefined
}

// ---------------------------------------------------------------- ClusterLoadAssignment

export const decodeEndpoints: Decoder<EndpointValue> = (resource) => {
  const name = stringField(resource, 'cluster_name')
  if (name === undefined || name === '') return refused(undefined, ['a ClusterLoadAssignment needs a cluster_name'])
  const p = new Problems()
  const t = translateClusterLoadAssignment(resource, 'load_assignment', p, 'http')
  const errors: string[] = []
  // Endpoints of priority 0 the server meant to be used (healthy or unknown) must all survive.
  let usable = 0
  for (const group of list(resource['endpoints'])) {
    const g = obj(group)
    if (g === undefined || (typeof g['priority'] === 'number' && g['priority'] > 0)) continue
    for (const e of list(g['lb_endpoints'])) {
      const status = obj(e)?.['health_status']
      if (status === undefined || status === 'UNKNOWN' || status === 'HEALTHY' || status === 0 || status === 1) usable++
    }
  }
  if (t.endpoints.length < usable) errors.push(`${usable - t.endpoints.length} endpoint(s) could not be used`)
  if (errors.length === 0) {
    for (const issue of validateConfig({ clusters: [{ name, endpoints: t.endpoints }] })) {
      errors.push(`${issue.path.replace(/^clusters\[0\]\./, '')}: ${issue.code}: ${issue.message}`)
    }
  }
  if (errors.length > 0) return refused(name, [...errors, ...p.list().map(line)])
  return accepted(name, { endpoints: t.endpoints }, p.list())
}

/** The decoder of each type. */
export const DECODERS: { readonly [K in XdsResourceType]: Decoder<ResourceValue<K>> } = {
  listener: decodeListener,
  route: decodeRoute,
  cluster: decodeCluster,
  endpoint: decodeEndpoints,
}

/** The decoded value of each type. */
export type ResourceValue<K extends XdsResourceType> =
  K extends 'listener' ? ListenerValue : K extends 'route' ? RouteValue : K extends 'cluster' ? ClusterValue : EndpointValue

// ---------------------------------------------------------------- helpers

function accepted<V>(name: string, value: V, warnings: readonly UnsupportedField[]): DecodeResult<V> {
  return { ok: true, name, value, warnings }
}

function refused<V>(name: string | undefined, errors: readonly string[]): DecodeResult<V> {
  return { ok: false, name, errors: errors.length > 0 ? errors : ['refused'] }
}

function line(u: UnsupportedField): string {
  return u.path === '' ? u.message : `${u.path}: ${u.message}`
}

function obj(v: unknown): XdsObject | undefined {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as XdsObject) : undefined
}

function list(v: unknown): unknown[] {
  return Array.isArray(v) ? v : []
}

function stringField(o: XdsObject, key: string): string | undefined {
  const v = o[key]
  return typeof v === 'string' ? v : undefined
}

function typeOf(o: XdsObject): string {
  const t = o['@type']
  return typeof t === 'string' ? t.slice(t.lastIndexOf('/') + 1) : ''
}
