/**
 * Where a config comes from: an object, a JSON file or a YAML file. An Envoy v3 bootstrap
 * (recognised by its `static_resources` key) is translated into our model on the way in.
 */
import { readFileSync, statSync } from 'node:fs'
import { extname } from 'node:path'
import { parse as parseYaml } from 'yaml'
import { MeshError } from '../errors.js'
import { limits } from './defaults.js'
import { fromEnvoy, isEnvoyBootstrap, type UnsupportedField } from './envoy/index.js'
import type { MeshConfig } from './types.js'

/** A config ready to validate, with what an Envoy import could not translate. */
export interface LoadedConfig {
  readonly config: MeshConfig
  /** Fields of an Envoy bootstrap the import did not translate (empty for our own format). */
  readonly unsupported: readonly UnsupportedField[]
  /** The file it came from, if any. */
  readonly source: string | undefined
}

/** Reads and parses a JSON or YAML file (bounded in size). Throws `SIDECARLESS_ERR_CONFIG_LOAD`. */
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
  try {
    if (extname(path).toLowerCase() === '.json') return JSON.parse(text) as unknown
    // YAML 1.2 is a superset of JSON; aliases are bounded so a "billion laughs" file fails fast.
    return parseYaml(text, { maxAliasCount: 100, prettyErrors: true }) as unknown
  } catch (err) {
    throw new MeshError('SIDECARLESS_ERR_CONFIG_LOAD', `cannot parse config file ${path}: ${(err as Error).message}`, { cause: err })
  }
}

/**
 * Normalises a config source: a path is read and parsed; an Envoy bootstrap is translated,
 * and what the translation could not carry is returned in `unsupported` (the mesh reports
 * it as a process warning and on `mesh.unsupported`; it is never dropped silently).
 */
export function loadConfig(source: MeshConfig | string | undefined | null): LoadedConfig {
  if (source === undefined || source === null) return { config: {}, unsupported: [], source: undefined }
  const file = typeof source === 'string' ? source : undefined
  const raw: unknown = file === undefined ? source : readConfigFile(file)
  if (raw === null || raw === undefined) return { config: {}, unsupported: [], source: file }
  if (isEnvoyBootstrap(raw)) {
    const { config, unsupported } = fromEnvoy(raw)
    return { config, unsupported, source: file }
  }
  return { config: raw, unsupported: [], source: file }
}
