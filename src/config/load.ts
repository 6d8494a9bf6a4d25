/**
 * Where a config comes from: an object, a JSON file or a YAML file. An Envoy v3 bootstrap
 * (recognised by its `static_resources` key) and Kubernetes manifests (recognised by
 * `apiVersion` and `kind`: Istio's VirtualService, DestinationRule, … in a multi-document
 * file or a `kind: List`; see `load-documents.ts`) are translated into our model on the way in.
 */
import { readFileSync, statSync } from 'node:fs'
import { extname } from 'node:path'
import { ConfigError, MeshError, type ConfigIssue } from '../errors.js'
import { limits } from './defaults.js'
import { isEnvoyBootstrap, isManifest } from './formats.js'
import { envoyImporter } from './importers.js'
import { lintConfig } from './lint.js'
import { loadDocuments, parseYamlDocuments, refuseInvalid, type LoadedConfig, type LoadOptions } from './load-documents.js'
import { plainCopy, type PlainCopy } from './plain-data.js'
import { checkConfig, validateConfig } from './validate.js'
import { rememberSource } from './source-location.js'
import type { MeshConfig } from './types.js'

export { reportLoaded, type LoadedConfig, type LoadOptions } from './load-documents.js'

/**
 * Reads and parses a JSON or YAML file (bounded in size); a YAML file of several documents
 * gives the list of them. Throws `SIDECARLESS_ERR_CONFIG_LOAD`.
 */
export function readConfigFile(path: string): unknown {
  let text: string
  try {
    const size = statSync(path).size
    if (size > limits.configFileBytes) {
      throw new MeshError('SIDECARLESS_ERR_CONFIG_LOAD', `config file ${path} is ${size} bytes; the limit is ${limits.configFileBytes}`)
    }
    text = readFileSync(path, 'utf8')
  } catch (err) {
    if (err instanceof MeshError) throw err
    throw new MeshError('SIDECARLESS_ERR_CONFIG_LOAD', `cannot read config file ${path}: ${(err as Error).message}`, { cause: err })
  }
  // No document at all (an empty file, whitespace): undefined, which loading refuses as an
  // empty config — the same answer YAML gives for a comment-only file (null).
  if (text.trim() === '') return undefined
  let value: unknown
  try {
    // YAML (several documents give a list of them; see parseYamlDocuments), or JSON.
    value = extname(path).toLowerCase() === '.json' ? JSON.parse(text) as unknown : parseYamlDocuments(text)
  } catch (err) {
    throw new MeshError('SIDECARLESS_ERR_CONFIG_LOAD', `cannot parse config file ${path}: ${(err as Error).message}`, { cause: err })
  }
  // Kept (weakly) so a problem can be reported with its line; parsed again only then.
  rememberSource(value, { file: path, text })
  return value
}

/**
 * Normalises a config source: a path is read and parsed; an Envoy bootstrap or Istio
 * manifests are translated, and what the translation could not carry is returned in
 * `unsupported` (the mesh reports it as a process warning and on `mesh.unsupported`; it is
 * never dropped silently). A list is a list of documents (manifests and mesh configs).
 *
 * A config read from a file is validated here, so that each problem carries its
 * `file:line:column` (`ConfigIssue.location`): it throws a `ConfigError` then. The config
 * comes back as plain data of your own to change (fields set to `null` or `undefined` left
 * out); an invalid config given in code is returned as its plain copy, which the mesh refuses
 * with every problem listed.
 *
 * An empty source — `null`, `undefined`, a file with no document (empty, blank, or only
 * comments) — throws a {@link ConfigError} (`EMPTY_CONFIG` at the root): applying it as `{}`
 * would remove every policy, so a truncated file must not. `{}` itself is a config.
 *
 * @param options - the workload an Istio translation is for (see {@link LoadOptions}).
 */
export function loadConfig(source: MeshConfig | string | readonly unknown[] | undefined | null, options: LoadOptions = {}): LoadedConfig {
  const loaded = loadCheckedConfig(source, options)
  // Validation's frozen copy is the mesh's; the caller gets one to change.
  return Object.isFrozen(loaded.config) ? { ...loaded, config: structuredClone<MeshConfig>(loaded.config) } : loaded
}

/**
 * @internal {@link loadConfig} for the mesh, the proxy and the control plane: a valid config
 * in our own format (from a file or given in code) comes back as the copy validation made —
 * frozen plain data, without the fields set to `null` or `undefined` — which the mesh applies
 * without copying or checking it again.
 */
export function loadCheckedConfig(source: MeshConfig | string | readonly unknown[] | undefined | null, options: LoadOptions = {}): LoadedConfig {
  if (source === undefined || source === null) throw emptyConfig(source, undefined)
  const file = typeof source === 'string' ? source : undefined
  let raw: unknown
  if (file === undefined) {
    // A config built in code is read once: its top level into a shallow object (to tell the
    // format), and the rest by validation or by a plain copy; the format checks, the
    // importers, the lint and validation then all see the same values (a getter or Proxy
    // cannot answer one of them differently, nor throw into an importer).
    const own = ownConfig(source)
    if (own.config !== undefined) return { config: own.config, unsupported: [], source: undefined, format: 'mesh', warnings: lintConfig(own.config) }
    raw = plainConfig(own.top, own.issues)
  } else {
    raw = readConfigFile(file)
  }
  if (raw === null || raw === undefined) throw emptyConfig(raw, file)
  if (isEnvoyBootstrap(raw)) {
    const { config, unsupported } = envoyImporter().fromEnvoy(raw)
    return { config, unsupported, source: file, format: 'envoy', warnings: lintConfig(config) }
  }
  if (Array.isArray(raw) || isManifest(raw)) return loadDocuments(raw, file, options)
  const config = file === undefined ? raw : refuseInvalid(raw, raw, file, undefined)
  return { config, unsupported: [], source: file, format: 'mesh', warnings: lintConfig(config) }
}

/** What {@link ownConfig} made of a config given in code. */
interface OwnConfig {
  /** The config, valid: validation's frozen copy, which the mesh applies as it is. */
  readonly config?: MeshConfig
  /** Otherwise what to copy to plain data: the shallow object when the top level was read, else the source. */
  readonly top: unknown
  /** The problems validation found, when it ran. */
  readonly issues?: readonly ConfigIssue[]
}

/**
 * A config object in our own format is validated as it is read, and validation's copy is
 * the config (one walk and one copy, where a plain copy and then validation's copy of it
 * used to make two). Envoy bootstraps and manifests, lists, non-plain objects and invalid
 * configs go the way they went before: copied to plain data, and an invalid config refused
 * by the mesh with every problem listed (copying it reads its nested values a second time;
 * it is never applied).
 */
function ownConfig(source: unknown): OwnConfig {
  const top = shallowCopy(source)
  if (top === undefined) return { top: source }
  if (isEnvoyBootstrap(top) || isManifest(top)) return { top }
  const checked = checkConfig(top)
  return checked.config !== undefined ? { config: checked.config, top } : { top, issues: checked.issues }
}

/**
 * The top level of a plain object, each field read once (nested values are shared, not
 * copied); `undefined` for anything else or when reading it throws (the caller then copies
 * the source whole and reports the problem at its path).
 */
function shallowCopy(source: unknown): Record<string, unknown> | undefined {
  if (typeof source !== 'object' || source === null) return undefined
  try {
    if (Array.isArray(source)) return undefined
    const proto: unknown = Object.getPrototypeOf(source)
    if (proto !== null && Object.getPrototypeOf(proto) !== null) return undefined
    const keys = Object.keys(source)
    const out: Record<string, unknown> = {}
    for (let i = 0; i < keys.length; i++) {
      const key = keys[i] as string
      const value = (source as Record<string, unknown>)[key]
      if (key === '__proto__') Object.defineProperty(out, key, { value, enumerable: true, writable: true, configurable: true })
      else out[key] = value
    }
    return out
  } catch {
    return undefined
  }
}

/** The issue that refuses an empty config (a value, or a file with no document). */
export function emptyConfigIssue(value: null | undefined, file: string | undefined): ConfigIssue {
  const message = file === undefined
    ? `the config is ${value === null ? 'null' : 'undefined'}: pass a config object or a file path (an empty config is refused, so a missing value cannot remove every policy; {} is a config with nothing in it)`
    : `the file has no document (it is empty or holds only comments); an empty file is refused so that a truncated or half-written file cannot remove every policy. Write {} for a config with nothing in it`
  return { path: '', code: 'EMPTY_CONFIG', message }
}

function emptyConfig(value: null | undefined, file: string | undefined): ConfigError {
  return new ConfigError([emptyConfigIssue(value, file)], file === undefined ? undefined : { source: file })
}

/**
 * The plain copy of a config built in code; a ConfigError listing every problem when it
 * cannot be copied (`known`: what validation found already).
 */
function plainConfig(source: unknown, known: readonly ConfigIssue[] | undefined): unknown {
  const plain: PlainCopy = plainCopy(source)
  if (plain.issue === undefined) return plain.value
  // The copy stops at the first problem; for our own format, validation lists them all (it
  // never throws). Manifests and bootstraps are not our format: their first problem is it.
  let ours: boolean
  try {
    ours = !Array.isArray(source) && !isManifest(source) && !isEnvoyBootstrap(source)
  } catch {
    ours = false
  }
  const issues = !ours ? [] : known ?? validateConfig(source)
  throw new ConfigError(issues.length > 0 ? issues : [plain.issue])
}
