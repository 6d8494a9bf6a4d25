/**
 * Loading documents beyond one config object: a YAML file of several documents, Kubernetes
 * manifests (translated by the Istio import), the workload options of that translation, the
 * `file:line:column` of problems in a config read from a file, and the process warnings of
 * what a load found. `load.ts` calls in here; it keeps the single-object paths.
 */
import { istioImporter } from './importers.js'
import { yaml } from './lazy-modules.js'
import { ConfigError, MeshError, type ConfigIssue, type ConfigWarning } from '../errors.js'
import type { UnsupportedField } from './envoy/index.js'
import { isManifest } from './formats.js'
import type { IstioTranslateOptions } from './istio/translate.js'
import { lintConfig } from './lint.js'
import { locateIssues, sourceOf, type Origin } from './source-location.js'
import type { MeshConfig } from './types.js'
import { checkConfig } from './validate.js'

/** A config ready to validate, with what an Envoy import could not translate. */
export interface LoadedConfig {
  readonly config: MeshConfig
  /** Fields of an Envoy bootstrap the import did not translate (empty for our own format). */
  readonly unsupported: readonly UnsupportedField[]
  /** The file it came from, if any. */
  readonly source: string | undefined
  /** What the input was: the mesh's own format, an Envoy bootstrap, or Kubernetes (Istio) manifests. */
  readonly format?: 'mesh' | 'envoy' | 'istio'
  /** Settings that are valid but almost surely mistakes (see `ConfigWarningCodes`). */
  readonly warnings?: readonly ConfigWarning[]
}

/**
 * Who the config is for, when it holds Istio manifests: Istio computes each workload's config
 * from the mesh-wide manifests by its namespace and labels. Unset fields fall back to the
 * environment — `SIDECARLESS_NAMESPACE` (else `POD_NAMESPACE`, which Kubernetes' downward
 * API and Istio's injector set), `SIDECARLESS_CLUSTER_DOMAIN`, `SIDECARLESS_ROOT_NAMESPACE` —
 * and then to `default`, `cluster.local` and `istio-system`.
 */
export type LoadOptions = IstioTranslateOptions

/**
 * YAML 1.2 (a superset of JSON), every document: several give the list of documents (empty
 * ones as `null`, so document numbers match the file), one gives that document. Aliases are
 * bounded so a "billion laughs" file fails fast.
 */
export function parseYamlDocuments(text: string): unknown {
  const docs = yaml().parseAllDocuments(text, { prettyErrors: true })
  if (!Array.isArray(docs)) return null
  for (const d of docs) if (d.errors.length > 0) throw d.errors[0] as Error
  const values = docs.map((d) => d.toJS({ maxAliasCount: 100 }) as unknown)
  const present = values.filter((v) => v !== null && v !== undefined)
  if (present.length <= 1) return present[0] ?? null
  return values
}

/** Loads a list of documents (or one manifest): Istio manifests translated, mesh-config documents merged. */
export function loadDocuments(raw: unknown, file: string | undefined, options: LoadOptions): LoadedConfig {
  const documents = Array.isArray(raw) ? raw : [raw]
  const tr = istioImporter().translateIstio(documents, withEnvironment(options))
  const manifests = documents.some(isManifest)
  const source = sourceOf(raw)
  if (tr.issues.length > 0) {
    throw new ConfigError(source === undefined ? tr.issues : locateIssues(tr.issues, source, tr.origin), file === undefined ? undefined : { source: file })
  }
  if (tr.counts.resources === 0 && tr.counts.own === 0) {
    const what = tr.unsupported.slice(0, 5).map((u) => `${u.path}: ${u.message}`).join('; ')
    throw new MeshError('SIDECARLESS_ERR_CONFIG_LOAD', `${file === undefined ? 'the config' : `config file ${file}`} holds no mesh config${manifests ? ' (Kubernetes manifests, none of them VirtualService, DestinationRule, ServiceEntry, PeerAuthentication, RequestAuthentication or AuthorizationPolicy)' : ''}: ${what}`)
  }
  const config = file === undefined ? tr.config : refuseInvalid(tr.config, raw, file, tr.origin)
  return { config, unsupported: tr.unsupported, source: file, format: manifests ? 'istio' : 'mesh', warnings: lintConfig(tr.config) }
}

/**
 * Validates a config read from a file and throws its problems with their file positions;
 * returns the checked copy (frozen plain data the mesh applies without checking it again).
 */
export function refuseInvalid(config: MeshConfig, raw: unknown, file: string, origin: Origin | undefined): MeshConfig {
  const checked = checkConfig(config)
  if (checked.config !== undefined) return checked.config
  const issues: ConfigIssue[] = checked.issues
  const source = sourceOf(raw)
  throw new ConfigError(source === undefined ? issues : locateIssues(issues, source, origin), { source: file })
}

/** The options, with the environment's namespace, cluster domain and root namespace where unset. */
function withEnvironment(options: LoadOptions): LoadOptions {
  const env = process.env
  const pick = (...values: (string | undefined)[]): string | undefined => values.find((v) => v !== undefined && v !== '')
  const namespace = pick(options.namespace, env['SIDECARLESS_NAMESPACE'], env['POD_NAMESPACE'])
  const clusterDomain = pick(options.clusterDomain, env['SIDECARLESS_CLUSTER_DOMAIN'])
  const rootNamespace = pick(options.rootNamespace, env['SIDECARLESS_ROOT_NAMESPACE'])
  return {
    ...options,
    ...(namespace === undefined ? {} : { namespace }),
    ...(clusterDomain === undefined ? {} : { clusterDomain }),
    ...(rootNamespace === undefined ? {} : { rootNamespace }),
  }
}

/**
 * Reports what loading found, once, as process warnings: fields an import did not translate
 * (`SIDECARLESS_ENVOY_UNSUPPORTED` / `SIDECARLESS_ISTIO_UNSUPPORTED`, also on
 * `mesh.unsupported`) and config warnings (`SIDECARLESS_CONFIG_WARNING`).
 */
export function reportLoaded(loaded: LoadedConfig): void {
  const where = loaded.source === undefined ? '' : ` ${loaded.source}`
  if (loaded.unsupported.length > 0) {
    const lines = loaded.unsupported.map((u) => `  ${u.path}: ${u.message}`).join('\n')
    const envoy = loaded.format === 'envoy'
    const what = envoy ? 'the Envoy bootstrap' : loaded.format === 'istio' ? 'the Istio manifests' : 'the config documents'
    process.emitWarning(
      `${what}${where} ${envoy ? 'has' : 'have'} ${loaded.unsupported.length} field(s) the mesh does not translate; they are ignored:\n${lines}`,
      { code: envoy ? 'SIDECARLESS_ENVOY_UNSUPPORTED' : 'SIDECARLESS_ISTIO_UNSUPPORTED' },
    )
  }
  const warnings = loaded.warnings ?? []
  if (warnings.length > 0) {
    const lines = warnings.map((w) => `  ${w.path}: ${w.code} ${w.message}`).join('\n')
    process.emitWarning(`the config${where} has ${warnings.length} setting(s) that are valid but likely mistakes:\n${lines}`, { code: 'SIDECARLESS_CONFIG_WARNING' })
  }
}
