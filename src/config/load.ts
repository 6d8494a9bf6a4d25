/**
 * Where a config comes from: an object, a JSON file or a YAML file. An Envoy v3 bootstrap
 * (recognised by its `static_resources` key) is translated into our model on the way in.
 */
import { readFileSync, statSync } from 'node:fs'
import { extname } from 'node:path'
import { parse as parseYaml } from 'yaml'
import { ConfigError, MeshError, type ConfigIssue } from '../errors.js'
import { limits } from './defaults.js'
import { fromEnvoy, isEnvoyBootstrap, type UnsupportedField } from './envoy/index.js'
import { plainCopy, type PlainCopy } from './plain-data.js'
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
  // No document at all (an empty file, whitespace): undefined, which loading refuses as an
  // empty config — the same answer YAML gives for a comment-only file (null).
  if (text.trim() === '') return undefined
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
 *
 * An empty source — `null`, `undefined`, a file with no document (empty, blank, or only
 * comments) — throws a {@link ConfigError} (`EMPTY_CONFIG` at the root): applying it as `{}`
 * would remove every policy, so a truncated file must not. `{}` itself is a config.
 */
export function loadConfig(source: MeshConfig | string | undefined | null): LoadedConfig {
  if (source === undefined || source === null) throw emptyConfig(source, undefined)
  const file = typeof source === 'string' ? source : undefined
  const raw: unknown = file === undefined ? source : readConfigFile(file)
  if (raw === null || raw === undefined) throw emptyConfig(raw, file)
  if (isEnvoyBootstrap(raw)) {
    // A bootstrap built in code is copied to plain data first: the importer would report a
    // getter that throws as an untranslated field and go on, applying what it had read.
    const plain: PlainCopy = file === undefined ? plainCopy(raw) : { value: raw }
    if (plain.issue !== undefined) throw new ConfigError([plain.issue])
    const { config, unsupported } = fromEnvoy(plain.value)
    return { config, unsupported, source: file }
  }
  return { config: raw, unsupported: [], source: file }
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
