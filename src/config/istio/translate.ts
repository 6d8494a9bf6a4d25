/**
 * Istio's YAML as input (Galley's role): VirtualService, DestinationRule, ServiceEntry,
 * PeerAuthentication, RequestAuthentication and AuthorizationPolicy manifests — mixed, in one
 * multi-document file, with documents in the mesh's own format that give the endpoints —
 * translated into the mesh model for one workload, the way istiod computes one proxy's config.
 *
 * Like the Envoy import it is a translator, not a validator: what it cannot carry is listed
 * by path (`VirtualService reviews (doc 2).spec.http[0].corsPolicy`) and left out, never
 * dropped silently; a match or policy it cannot honour is left out so that nothing is widened.
 * The result is validated like any config before use.
 *
 * @module
 */
import type { ConfigIssue } from '../../errors.js'
import { splitPath } from '../source-location.js'
import type { UnsupportedField } from '../envoy/index.js'
import type { ClusterConfig, ListenerConfig, MeshConfig, VirtualHostConfig } from '../types.js'
import { readAuthorizationPolicies } from './authorization-policy.js'
import { istioDefaults } from './defaults.js'
import { DestinationRules, readDestinationRule, type DestinationRuleInfo } from './destination-rule.js'
import { readDocuments, type OwnDocument, type Resource } from './documents.js'
import { composePeerAuthentication } from './peer-authentication.js'
import { Registry } from './registry.js'
import { readRequestAuthentications } from './request-authentication.js'
import { readServiceEntry } from './service-entry.js'
import { OutOfBudget, Translation, isObject, type IstioTranslateOptions, type Origin, type Workload } from './state.js'
import { readVirtualService, VirtualHostBuilder } from './virtual-service.js'

export type { IstioTranslateOptions } from './state.js'
export { hasManifests, isManifest } from './documents.js'

/** The result of {@link fromIstio}. */
export interface IstioImport {
  /** The translated config. Run `validateConfig` on it before use, as on any config. */
  readonly config: MeshConfig
  /** Everything in the input that is not in `config`, and why, in input order. */
  readonly unsupported: readonly UnsupportedField[]
}

/** The import with what a loader needs beyond the public result. */
export interface IstioTranslation extends IstioImport {
  /** Conflicts between documents (the same setting twice) that make the config invalid. */
  readonly issues: readonly ConfigIssue[]
  /** The source of a translated path: the document and path there, and whether paths below it mirror the source. */
  readonly origin: (path: string) => { doc: number; path: (string | number)[] } | undefined
  readonly workload: Workload
  /** How many documents were translated: Istio resources, and documents in the mesh's own format. */
  readonly counts: { readonly resources: number; readonly own: number }
}

/**
 * Translates Istio manifests (and documents in the mesh's own format beside them) into the
 * mesh model, for the workload `options` describes.
 *
 * `documents` is a list of parsed YAML/JSON documents, or one document (a manifest, or a
 * `kind: List`). Never throws on bad input: problems go into `unsupported`.
 *
 * @param documents - parsed documents, e.g. from `yaml`'s `parseAllDocuments(text).map(d => d.toJS())`.
 * @param options - the workload: namespace (default `default`), labels, cluster domain, root namespace.
 */
export function fromIstio(documents: unknown, options: IstioTranslateOptions = {}): IstioImport {
  const { config, unsupported } = translateIstio(documents, options)
  return { config, unsupported }
}

/** The options with their defaults (see {@link IstioTranslateOptions}). */
export function resolveWorkload(options: IstioTranslateOptions): Workload {
  const ns = options.namespace
  return {
    namespace: typeof ns === 'string' && ns !== '' ? ns : istioDefaults.namespace,
    labels: { ...(options.labels ?? {}) },
    clusterDomain: typeof options.clusterDomain === 'string' && options.clusterDomain !== '' ? options.clusterDomain.toLowerCase() : istioDefaults.clusterDomain,
    rootNamespace: typeof options.rootNamespace === 'string' && options.rootNamespace !== '' ? options.rootNamespace : istioDefaults.rootNamespace,
  }
}

/** {@link fromIstio} with the origins of translated paths and the conflicts found. */
export function translateIstio(documents: unknown, options: IstioTranslateOptions = {}): IstioTranslation {
  const workload = resolveWorkload(options)
  const t = new Translation(workload)
  const docs = Array.isArray(documents) ? documents : [documents]
  const mirrors = new Map<string, Origin>()
  let config: MeshConfig = {}
  const counts = { resources: 0, own: 0 }
  try {
    config = translate(t, docs, mirrors, counts)
  } catch (err) {
    // Hostile objects (throwing getters, proxies, shared references that multiply the work)
    // end up here; the config stays empty and the report says why.
    const message = err instanceof OutOfBudget ? err.message : `the input could not be read: ${err instanceof Error ? err.message : String(err)}`
    t.report('', message)
    // A loader must refuse it rather than apply the empty config.
    t.issues.push({ path: '', code: 'INVALID_VALUE', message })
  }
  const origin = (path: string): { doc: number; path: (string | number)[] } | undefined => {
    const segments = splitPath(path)
    for (let n = segments.length; n >= 0; n--) {
      const prefix = joinPath(segments.slice(0, n))
      const m = mirrors.get(prefix)
      if (m !== undefined) return { doc: m.doc, path: [...m.path, ...segments.slice(n)] }
      const o = t.origins.get(prefix)
      if (o !== undefined) return { doc: o.doc, path: [...o.path] }
    }
    return undefined
  }
  return { config, unsupported: t.finish(), issues: t.issues, origin, workload, counts }
}

function translate(t: Translation, docs: readonly unknown[], mirrors: Map<string, Origin>, counts: { resources: number; own: number }): MeshConfig {
  const { resources, own } = readDocuments(t, docs)
  counts.resources = resources.length
  counts.own = own.length
  const base = mergeOwn(t, own, mirrors)
  if (resources.length === 0) {
    // No Istio resource: the documents are the mesh's own format, merged, nothing more.
    const only: MeshConfig = { ...base.config }
    if (base.clusters.length > 0) only.clusters = base.clusters as ClusterConfig[]
    base.clusterOrigins.forEach((o, i) => mirrors.set(`clusters[${i}]`, o))
    if (base.virtualHosts.length > 0) only.virtualHosts = base.virtualHosts as VirtualHostConfig[]
    return only
  }
  const byKind = (kind: Resource['kind']): Resource[] => resources.filter((r) => r.kind === kind).sort(byAge)

  const rules = byKind('DestinationRule').map((r) => readDestinationRule(t, r)).filter((r): r is DestinationRuleInfo => r !== undefined)
  const drs = new DestinationRules(t, rules)
  const registry = new Registry(t, drs)
  // Mesh-config clusters that are not objects with a name stay as written (validation reports them).
  const named: { c: ClusterConfig; origin: Origin }[] = []
  const malformed: unknown[] = []
  base.clusters.forEach((c, i) => {
    if (isObject(c) && typeof c['name'] === 'string') named.push({ c: c as unknown as ClusterConfig, origin: base.clusterOrigins[i] as Origin })
    else malformed.push(c)
  })
  named.forEach(({ c, origin }, i) => registry.addOwn(c, i, origin))
  for (const r of byKind('ServiceEntry')) for (const s of readServiceEntry(t, r)) registry.addEntry(s)

  const ownVhosts = base.virtualHosts as VirtualHostConfig[]
  const vhosts = new VirtualHostBuilder(t, registry, ownVhosts.filter((v) => isObject(v) && typeof v.name === 'string'))
  for (const r of byKind('VirtualService')) {
    const vs = readVirtualService(t, r, registry)
    if (vs !== undefined) vhosts.addVirtualService(vs)
  }
  vhosts.addDefaults()
  const built = registry.clusters(named.length)
  drs.reportUnused()

  const out: MeshConfig = { ...base.config }
  const clusters = [...built.clusters, ...(malformed as ClusterConfig[])]
  if (clusters.length > 0) out.clusters = clusters
  built.origins.forEach((o, i) => {
    // A mesh-config cluster mirrors its document (paths below it are the same); a translated one does not.
    if (o !== undefined) (i < named.length ? mirrors : t.origins).set(`clusters[${i}]`, o)
  })
  const allVhosts = [...ownVhosts, ...vhosts.virtualHosts]
  if (allVhosts.length > 0) out.virtualHosts = allVhosts
  vhosts.origins.forEach((o, i) => {
    const at = ownVhosts.length + i
    if (o !== undefined) t.origins.set(`virtualHosts[${at}]`, o)
    ;(vhosts.routeOrigins.get(i) ?? []).forEach((ro, j) => {
      if (ro !== undefined) t.origins.set(`virtualHosts[${at}].routes[${j}]`, ro)
    })
  })
  const listener = security(t, base.config, byKind)
  if (listener !== undefined) out.listener = listener
  return out
}

/** Translates the security policies into the listener, merged with the mesh-config documents' own. */
function security(t: Translation, own: MeshConfig, byKind: (k: Resource['kind']) => Resource[]): ListenerConfig | undefined {
  const listener: ListenerConfig = isObject(own.listener) ? { ...own.listener } : {}
  const hasListener = isObject(own.listener)
  let changed = false
  const peer = composePeerAuthentication(t, byKind('PeerAuthentication'))
  if (peer !== undefined) {
    const origin = { doc: peer.from.doc, path: [...peer.from.docPath, 'spec', 'mtls'] }
    const strictAnywhere = peer.mtls.mode === 'STRICT' || Object.values(peer.mtls.portLevelMtls ?? {}).some((p) => p.mode === 'STRICT')
    if (listener.mtls !== undefined) {
      t.issues.push({ path: 'listener.mtls', code: 'INVALID_VALUE', message: `set both by a mesh-config document and by ${peer.from.label}; keep one` })
    } else if (own.identity === undefined && !strictAnywhere && peer.mtls.mode !== 'DISABLE') {
      // Without a workload certificate, PERMISSIVE can only serve plain HTTP: say so rather than refuse the file.
      t.report(`${peer.from.label}.spec.mtls`, `${peer.mtls.mode ?? 'PERMISSIVE'} without an identity in the file: the workload serves plain HTTP until a mesh-config document sets identity (certificate, key, trust bundle)`)
    } else {
      listener.mtls = peer.mtls
      t.origins.set('listener.mtls', origin)
      changed = true
    }
  }
  const jwt = readRequestAuthentications(t, byKind('RequestAuthentication'))
  if (jwt.length > 0) {
    const existing = listener.requestAuthentication?.jwtRules ?? []
    listener.requestAuthentication = { jwtRules: [...existing, ...jwt.map((j) => j.rule)] }
    jwt.forEach((j, i) => t.origins.set(`listener.requestAuthentication.jwtRules[${existing.length + i}]`, { doc: j.r.doc, path: [...j.r.docPath, 'spec', 'jwtRules', j.index] }))
    changed = true
  }
  const authz = readAuthorizationPolicies(t, byKind('AuthorizationPolicy'))
  if (authz.length > 0) {
    const existing = Array.isArray(listener.authorization) ? listener.authorization : []
    listener.authorization = [...existing, ...authz.map((a) => a.policy)]
    authz.forEach((a, i) => t.origins.set(`listener.authorization[${existing.length + i}]`, { doc: a.r.doc, path: [...a.r.docPath, 'spec'] }))
    changed = true
  }
  return changed || hasListener ? listener : undefined
}

/** The mesh-config documents merged: lists concatenated, other sections from the one document that sets them. */
interface OwnMerged {
  /** Every section but `clusters` and `virtualHosts`. */
  readonly config: MeshConfig
  readonly clusters: unknown[]
  readonly clusterOrigins: Origin[]
  readonly virtualHosts: unknown[]
}

function mergeOwn(t: Translation, own: readonly OwnDocument[], mirrors: Map<string, Origin>): OwnMerged {
  const config: Record<string, unknown> = {}
  const setBy = new Map<string, number>()
  const clusters: unknown[] = []
  const clusterOrigins: Origin[] = []
  const virtualHosts: unknown[] = []
  for (const { value, doc } of own) {
    for (const [key, v] of Object.entries(value)) {
      if ((key === 'clusters' || key === 'virtualHosts') && Array.isArray(v)) {
        v.forEach((item, j) => {
          if (key === 'clusters') {
            clusterOrigins.push({ doc, path: [key, j] })
            clusters.push(item)
          } else {
            mirrors.set(`virtualHosts[${virtualHosts.length}]`, { doc, path: [key, j] })
            virtualHosts.push(item)
          }
        })
        continue
      }
      const first = setBy.get(key)
      if (first !== undefined) {
        t.issues.push({ path: key, code: 'INVALID_VALUE', message: `${key} is set by doc ${first} and doc ${doc}; a file sets each section once` })
        continue
      }
      setBy.set(key, doc)
      config[key] = v
      mirrors.set(key, { doc, path: [key] })
    }
  }
  return { config: config, clusters, clusterOrigins, virtualHosts }
}

function byAge(a: Resource, b: Resource): number {
  if (a.created !== undefined && b.created !== undefined && a.created !== b.created) return a.created - b.created
  return a.order - b.order
}

function joinPath(segments: readonly (string | number)[]): string {
  let out = ''
  for (const s of segments) out = typeof s === 'number' ? `${out}[${s}]` : out === '' ? s : `${out}.${s}`
  return out
}
