/**
 * The document reader of the Istio import: a multi-document file (or a list of objects) is
 * split into Kubernetes manifests (`apiVersion` + `kind`; a `kind: List` contributes its
 * `items`) and documents in the mesh's own format, and each manifest is classified: one of
 * the six Istio kinds the import translates, or something else it names and reports.
 */
import { hasManifests, isManifest } from '../formats.js'
import { at, isObject, type Obj, type Translation } from './state.js'

export { hasManifests, isManifest }

/** A manifest of a kind the import translates. */
export type TranslatedKind =
  | 'VirtualService'
  | 'DestinationRule'
  | 'ServiceEntry'
  | 'PeerAuthentication'
  | 'RequestAuthentication'
  | 'AuthorizationPolicy'

/** One Kubernetes object of the input, with where it sits. */
export interface Resource {
  readonly kind: TranslatedKind
  readonly name: string
  /** `metadata.namespace`, or the workload's namespace when unset. */
  readonly namespace: string
  readonly metadata: Obj
  readonly spec: Obj
  /** `metadata.creationTimestamp` in ms, when set (Istio prefers the oldest of conflicting policies). */
  readonly created: number | undefined
  /** The document it came from (1-based) and its path inside it (`[]`, or `['items', 3]`). */
  readonly doc: number
  readonly docPath: readonly (string | number)[]
  /** How reports name it: `VirtualService reviews (doc 2)`; `.spec.…` follows. */
  readonly label: string
  /** Position in the input, for "first wins" where Istio says "oldest wins". */
  readonly order: number
}

/** A document in the mesh's own format (no `apiVersion`). */
export interface OwnDocument {
  readonly value: Obj
  readonly doc: number
}

const NETWORKING_VERSIONS = ['v1', 'v1beta1', 'v1alpha3']
const SECURITY_VERSIONS = ['v1', 'v1beta1']

const TRANSLATED: Readonly<Record<string, { group: string; versions: readonly string[] }>> = {
  VirtualService: { group: 'networking.istio.io', versions: NETWORKING_VERSIONS },
  DestinationRule: { group: 'networking.istio.io', versions: NETWORKING_VERSIONS },
  ServiceEntry: { group: 'networking.istio.io', versions: NETWORKING_VERSIONS },
  PeerAuthentication: { group: 'security.istio.io', versions: SECURITY_VERSIONS },
  RequestAuthentication: { group: 'security.istio.io', versions: SECURITY_VERSIONS },
  AuthorizationPolicy: { group: 'security.istio.io', versions: SECURITY_VERSIONS },
}

/** Why a known but untranslated kind is left out. */
const NOT_TRANSLATED: Readonly<Record<string, string>> = {
  Gateway: 'an Istio Gateway configures ingress/egress gateway proxies; an in-process mesh has none (use `sidecarless proxy` with a listener)',
  Sidecar: 'an Istio Sidecar scopes what a sidecar proxy sees; the in-process mesh uses every service in the file',
  EnvoyFilter: 'an EnvoyFilter patches generated Envoy config, which the in-process mesh does not have',
  WorkloadEntry: 'a WorkloadEntry is selected by a ServiceEntry workloadSelector, which is not translated; list the endpoints in the ServiceEntry',
  WorkloadGroup: 'a WorkloadGroup templates WorkloadEntries for VMs; not translated',
  ProxyConfig: 'ProxyConfig tunes the Envoy process; not translated',
  Telemetry: 'Telemetry configures Istio telemetry providers; the mesh configures tracing with its own `tracing` section',
  WasmPlugin: 'a WasmPlugin extends Envoy with WebAssembly; not translated',
}

/**
 * Splits the documents into translated resources and the mesh's own documents; every other
 * manifest (Deployments, Gateways, unknown kinds and versions) is reported and left out.
 */
export function readDocuments(t: Translation, documents: readonly unknown[]): { resources: Resource[]; own: OwnDocument[] } {
  const resources: Resource[] = []
  const own: OwnDocument[] = []
  let order = 0
  const visit = (value: unknown, doc: number, docPath: (string | number)[], where: string): void => {
    t.spend(1)
    if (value === null || value === undefined) return
    if (!isObject(value)) {
      t.report(where, `a document must be an object (a Kubernetes manifest or a mesh config), not ${Array.isArray(value) ? 'a list' : typeof value}`)
      return
    }
    if (!isManifest(value)) {
      if (docPath.length > 0) {
        t.report(where, 'a List item without apiVersion and kind is not a Kubernetes object; not translated')
        return
      }
      own.push({ value, doc })
      return
    }
    const { apiVersion, kind } = value
    if (kind === 'List' || kind.endsWith('List')) {
      const items = value['items']
      if (!Array.isArray(items)) {
        t.report(at(where, 'items'), `a ${kind} needs a list of items`)
        return
      }
      items.slice(0, 10_000).forEach((item, i) => visit(item, doc, [...docPath, 'items', i], `${where}.items[${i}]`))
      if (items.length > 10_000) t.report(at(where, 'items'), `${items.length} items; only the first 10000 are read`)
      return
    }
    const resource = classify(t, value, apiVersion, kind, doc, docPath, order++)
    if (resource !== undefined) resources.push(resource)
  }
  documents.forEach((d, i) => visit(d, i + 1, [], `doc ${i + 1}`))
  return { resources, own }
}

function classify(
  t: Translation,
  value: Obj,
  apiVersion: string,
  kind: string,
  doc: number,
  docPath: (string | number)[],
  order: number,
): Resource | undefined {
  const metadata = isObject(value['metadata']) ? value['metadata'] : {}
  const name = typeof metadata['name'] === 'string' ? metadata['name'] : '<unnamed>'
  const ns = typeof metadata['namespace'] === 'string' && metadata['namespace'] !== '' ? metadata['namespace'] : undefined
  const where = docPath.length === 0 ? `doc ${doc}` : `doc ${doc}, ${docPath.map((p) => (typeof p === 'number' ? `[${p}]` : p)).join('').replace(/^items/, 'items')}`
  const label = `${kind} ${ns === undefined ? '' : `${ns}/`}${name} (${where})`
  const [group, version] = apiVersion.includes('/') ? apiVersion.split('/', 2) as [string, string] : ['', apiVersion]
  const known = Object.hasOwn(TRANSLATED, kind) ? TRANSLATED[kind] : undefined
  if (known !== undefined && group === known.group) {
    if (!known.versions.includes(version)) {
      t.report(label, `${apiVersion} is not a version of ${kind} the import reads (${known.versions.map((v) => `${group}/${v}`).join(', ')}); not translated`)
      return undefined
    }
    const spec = value['spec']
    if (!isObject(spec)) {
      t.report(`${label}.spec`, `a ${kind} needs a spec; not translated`)
      return undefined
    }
    for (const key of Object.keys(value)) {
      if (!['apiVersion', 'kind', 'metadata', 'spec', 'status'].includes(key)) t.report(at(label, key), `field ${JSON.stringify(key)} is not translated`)
    }
    const createdAt = typeof metadata['creationTimestamp'] === 'string' ? Date.parse(metadata['creationTimestamp']) : NaN
    return {
      kind: kind as TranslatedKind,
      name,
      namespace: ns ?? t.workload.namespace,
      metadata,
      spec,
      created: Number.isFinite(createdAt) ? createdAt : undefined,
      doc,
      docPath,
      label,
      order,
    }
  }
  t.report(label, describeManifest(apiVersion, group, kind))
  return undefined
}

/** What an untranslated manifest is, and why it is left out. */
function describeManifest(apiVersion: string, group: string, kind: string): string {
  if (group.endsWith('istio.io')) {
    const why = NOT_TRANSLATED[kind]
    return why === undefined ? `${apiVersion} ${kind} is an Istio resource the import does not translate` : `${why}; not translated`
  }
  if (group === 'gateway.networking.k8s.io') return `a Kubernetes Gateway API ${kind}; the import reads Istio's VirtualService and DestinationRule instead; not translated`
  if (group === '' && (kind === 'Service' || kind === 'Endpoints') || (group === 'discovery.k8s.io' && kind === 'EndpointSlice')) {
    return `a Kubernetes ${kind}; the mesh takes endpoints from ServiceEntry endpoints or from the clusters of a mesh config document in the same file (its cluster named after the service); not translated`
  }
  return `a Kubernetes ${kind} (${apiVersion}), not mesh config; ignored`
}
