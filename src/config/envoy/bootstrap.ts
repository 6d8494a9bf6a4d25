/**
 * Envoy v3 bootstrap (`static_resources`) into one mesh config, composed from the
 * per-resource translators: clusters (with their inline load assignments and the static
 * secrets their TLS contexts name), every listener's connection managers and inline route
 * configurations, the first listener's address and the admin address.
 *
 * Composing is where the mesh differs from Envoy's scoping: Envoy scopes virtual hosts and
 * domains to a route configuration, the mesh has one namespace of virtual hosts and one
 * domain space. Repeated virtual host names get a `-2`, `-3`, … suffix (not reported); a
 * domain an earlier virtual host claimed is dropped here and reported.
 */
import { parseDomain } from '../domain.js'
export { isEnvoyBootstrap } from '../formats.js'
import type { ClusterConfig, MeshConfig, VirtualHostConfig } from '../types.js'
import { listenAddress } from './address.js'
import { resolveUpstreamTls, translateCluster, type ClusterTranslation } from './cluster.js'
import { translateListener } from './listener.js'
import {
  asList,
  clip,
  describe,
  errorText,
  isObject,
  OutOfBudget,
  present,
  Problems,
  readField,
  readObject,
  WORK_BUDGET,
  type Field,
  type Shape,
  type UnsupportedField,
} from './reader.js'
import type { TranslatedVirtualHost } from './route.js'
import { translateSecret, type SecretTranslation } from './secret.js'

/** The result of {@link fromEnvoy}. */
export interface EnvoyImport {
  /** The translated config. Run `validateConfig` on it before use, as on any config. */
  readonly config: MeshConfig
  /** Everything in the input that is not in `config`, in document order. */
  readonly unsupported: readonly UnsupportedField[]
}

/**
 * Translates an Envoy v3 bootstrap (its `static_resources`) into our model.
 *
 * Clusters become `clusters` (endpoints from `load_assignment`, labels from the `envoy.lb`
 * metadata, TLS from the `UpstreamTlsContext` and the static secrets it names); the route
 * configurations of every listener's `http_connection_manager` become `virtualHosts`; the
 * first listener's `address.socket_address` becomes `listener.address` and the bootstrap's
 * `admin.address` becomes `admin.address` (both used by `sidecarless proxy`). Field names
 * may be snake_case (Envoy YAML) or proto3-JSON camelCase. Routes whose match the mesh
 * cannot honour in full are dropped, never kept with a broader match.
 *
 * Never throws on bad input: problems go into `unsupported` (or, for a non-object, one
 * entry at path `''`).
 *
 * @param bootstrap - a parsed Envoy bootstrap (from YAML or JSON).
 */
export function fromEnvoy(bootstrap: unknown): EnvoyImport {
  const p = new Problems(WORK_BUDGET)
  const out = new Composer(p)
  try {
    importBootstrap(p, out, bootstrap)
  } catch (err) {
    // Hostile objects (throwing getters, proxies) and the work budget end up here; what
    // was translated before stays, so the report still shows how far the import got.
    if (err instanceof OutOfBudget) p.report(err.path, `the input is too large: the import stopped here after ${WORK_BUDGET} items`)
    else p.report('', `the input could not be read: ${errorText(err)}`)
  }
  return { config: out.config(), unsupported: p.list() }
}

/** One mesh config built from translated resources: one virtual host namespace, one domain space. */
export class Composer {
  readonly clusters: ClusterConfig[] = []
  readonly virtualHosts: VirtualHostConfig[] = []
  readonly #clusterNames = new Set<string>()
  readonly #virtualHostNames = new Set<string>()
  /** Normalised domain → the virtual host that claimed it first. */
  readonly #domainOwners = new Map<string, string>()
  listenerAddress: string | undefined
  adminAddress: string | undefined

  constructor(private readonly p: Problems) {}

  /** Adds a cluster unless one of that name is already there. */
  addCluster(c: ClusterConfig, path: string): void {
    if (this.#clusterNames.has(c.name)) {
      this.p.report(path, `cluster "${clip(c.name)}" is defined twice; this one is dropped`)
      return
    }
    this.#clusterNames.add(c.name)
    this.clusters.push(c)
  }

  /** Adds a virtual host under a unique name, with the domains no earlier one claimed. */
  addVirtualHost(t: TranslatedVirtualHost): void {
    let base = t.config.name
    if (base === '') {
      base = 'virtual-host'
      this.p.report(t.path, `a virtual host needs a name; imported as "${uniqueName(this.#virtualHostNames, base)}"`)
    }
    const name = uniqueName(this.#virtualHostNames, base)
    const domains: string[] = []
    t.config.domains.forEach((domain, i) => {
      const at = t.domainPaths[i] ?? t.path
      const parsed = parseDomain(domain)
      if (typeof parsed === 'string') {
        this.p.report(at, `${parsed}; dropped`)
        return
      }
      const key = `${parsed.kind}:${parsed.host}:${parsed.port ?? ''}`
      const prior = this.#domainOwners.get(key)
      if (prior !== undefined) {
        this.p.report(at, `domain "${clip(domain)}" is already served by virtual host "${prior}"; the mesh has one domain space for all listeners, so it is dropped here`)
        return
      }
      this.#domainOwners.set(key, name)
      domains.push(domain)
    })
    if (domains.length === 0) {
      this.p.report(t.path, `virtual host "${name}" has no usable domain; dropped`)
      return
    }
    this.#virtualHostNames.add(name)
    this.virtualHosts.push({ ...t.config, name, domains })
  }

  config(): MeshConfig {
    const config: MeshConfig = {}
    if (this.clusters.length > 0) config.clusters = this.clusters
    if (this.virtualHosts.length > 0) config.virtualHosts = this.virtualHosts
    if (this.listenerAddress !== undefined) config.listener = { address: this.listenerAddress }
    if (this.adminAddress !== undefined) config.admin = { address: this.adminAddress }
    return config
  }
}

/** `base`, or `base-2`, `base-3`, ... : the first not yet taken. */
function uniqueName(taken: ReadonlySet<string>, base: string): string {
  if (!taken.has(base)) return base
  let i = 2
  while (taken.has(`${base}-${i}`)) i++
  return `${base}-${i}`
}

const BOOTSTRAP: Shape = {
  use: ['static_resources', 'admin'],
  // node identifies the proxy to a control plane; nothing to import.
  drop: ['node'],
  why: {
    dynamic_resources: 'xDS is configured on the mesh (createMesh({ xds })), not imported from a bootstrap',
    layered_runtime: 'runtime overrides are not supported',
    stats_sinks: 'stats sinks are not imported; use mesh.metrics',
    tracing: 'tracing is configured on the mesh (tracing), not imported',
    overload_manager: 'the overload manager is not supported',
  },
  other: 'only static_resources and admin are imported',
}
const STATIC_RESOURCES: Shape = { use: ['listeners', 'clusters', 'secrets'] }
const ADMIN: Shape = {
  use: ['address'],
  why: {
    access_log_path: 'admin access logs are not imported',
    access_log: 'admin access logs are not imported',
    profile_path: 'profiling is not supported',
    socket_options: 'socket options are not supported',
    ignore_global_conn_limit: 'connection limits are not supported',
  },
}

function importBootstrap(p: Problems, out: Composer, input: unknown): void {
  if (!isObject(input)) {
    p.report('', `expected an Envoy bootstrap object, got ${describe(input)}`)
    return
  }
  const top = readObject(p, input, '', BOOTSTRAP)
  const staticResources = top.get('static_resources')
  if (!present(staticResources)) {
    p.report('', 'not an Envoy bootstrap: it has no static_resources')
    return
  }
  const res = readField(p, staticResources, STATIC_RESOURCES)
  if (res === undefined) return
  // Secrets first: clusters' TLS contexts name them.
  const secrets = new Map<string, SecretTranslation>()
  for (const item of asList(p, res.get('secrets'))) {
    const s = translateSecret(item.value, item.path, p)
    if (s?.name === undefined || s.name === '') {
      if (s !== undefined) p.report(item.path, 'a secret needs a name; dropped')
      continue
    }
    secrets.set(s.name, s)
  }
  // Clusters in the order written, so the output reads like the input.
  for (const item of asList(p, res.get('clusters'))) {
    const c = translateCluster(item.value, item.path, p)
    if (c !== undefined) out.addCluster(withTls(p, c, secrets, item), item.path)
  }
  for (const item of asList(p, res.get('listeners'))) {
    const l = translateListener(item.value, item.path, p)
    if (l === undefined) continue
    const address = (item.value as Record<string, unknown>)['address']
    if (l.address !== undefined) {
      if (out.listenerAddress === undefined) out.listenerAddress = l.address
      else p.report(`${item.path}.address`, `sidecarless proxy serves one listener, on ${out.listenerAddress}; this address is not used (its routes are imported)`)
    } else if (address !== undefined && address !== null && out.listenerAddress === undefined) {
      // listenAddress already reported why.
    }
    for (const hcm of l.connectionManagers) {
      if (hcm.routeConfig === undefined && hcm.routeConfigName !== undefined) {
        p.report(hcm.path, `routes by RDS ("${clip(hcm.routeConfigName)}") need xDS; write the route_config inline`)
      }
      for (const vh of hcm.routeConfig?.virtualHosts ?? []) out.addVirtualHost(vh)
    }
  }
  const admin = readField(p, top.get('admin'), ADMIN)
  if (admin !== undefined) {
    const address = listenAddress(p, admin.get('address'))
    if (address === undefined) p.report((top.get('admin') as Field).path, 'no usable address.socket_address; the admin endpoint is not imported')
    else out.adminAddress = address
  }
}

/** The cluster with its TLS secrets resolved, and EDS noted (a bootstrap has no EDS server). */
function withTls(p: Problems, c: ClusterTranslation, secrets: ReadonlyMap<string, SecretTranslation>, item: Field): ClusterConfig {
  if (c.edsServiceName !== undefined) {
    p.report(item.path, `cluster "${clip(c.config.name)}" takes its endpoints from EDS ("${clip(c.edsServiceName)}"), which needs xDS; imported without endpoints`)
  }
  if (c.tls === undefined) return c.config
  if (c.tls.certificateProvider !== undefined || c.tls.validationProvider !== undefined) {
    p.report(c.tls.path, 'certificate provider instances come with xDS; the workload identity (top-level identity) is used instead')
  }
  const tls = resolveUpstreamTls(c.tls, secrets, p)
  return tls === undefined ? c.config : { ...c.config, tls }
}
