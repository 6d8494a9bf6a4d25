/**
 * The `SIDECARLESS_*` environment read by `sidecarless/register` and `sidecarless/fetch`.
 * Parsing is strict: a variable that is set but malformed is an error, never guessed at.
 *
 * @module
 */
import { limits } from '../config/defaults.js'
import { parseDuration } from '../config/duration.js'
import type { DrainConfig } from '../config/types.js'
import { MeshError } from '../errors.js'

/** What `SIDECARLESS_ON_CONFIG_ERROR` says to do when the config cannot be used at start. */
export type OnConfigError = 'exit' | 'continue'

/** The process mesh's settings, from the environment. */
export interface ProcessEnvironment {
  /** `SIDECARLESS_CONFIG`: path of a mesh config (YAML or JSON) or an Envoy bootstrap; `undefined` when unset. */
  readonly config: string | undefined
  /** `SIDECARLESS_SERVICE`. */
  readonly service: string | undefined
  /** `SIDECARLESS_LABELS`, parsed. */
  readonly labels: Readonly<Record<string, string>>
  /** `SIDECARLESS_ON_CONFIG_ERROR`; default `exit`. */
  readonly onConfigError: OnConfigError
  /**
   * `SIDECARLESS_DRAIN_TIMEOUT` and `SIDECARLESS_DRAIN_DELAY` (durations such as `20s`),
   * overriding the config's `drain`; absent when neither is set.
   */
  readonly drain?: DrainConfig
}

/** What to set, named in every message about a missing config. */
export const CONFIG_HELP =
  'set SIDECARLESS_CONFIG to the path of a mesh config (YAML or JSON) or of an Envoy v3 bootstrap'

/**
 * Reads the environment. Throws a `SIDECARLESS_ERR_ENVIRONMENT` {@link MeshError} naming the
 * variable when one is malformed; an unset `SIDECARLESS_CONFIG` is returned as `undefined`
 * (callers decide what that means).
 */
export function readEnvironment(env: NodeJS.ProcessEnv = process.env): ProcessEnvironment {
  const config = env['SIDECARLESS_CONFIG']
  const service = env['SIDECARLESS_SERVICE']
  const onConfigError = env['SIDECARLESS_ON_CONFIG_ERROR'] ?? 'exit'
  if (onConfigError !== 'exit' && onConfigError !== 'continue') {
    throw envError(`SIDECARLESS_ON_CONFIG_ERROR is ${quote(onConfigError)}; it must be "exit" (the default) or "continue"`)
  }
  if (service !== undefined && !/^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,251}[A-Za-z0-9])?$/.test(service)) {
    throw envError(`SIDECARLESS_SERVICE is ${quote(service)}; a service name is letters, digits, ".", "_" and "-" (at most 253), starting and ending with a letter or digit`)
  }
  const drain = parseDrain(env)
  return Object.freeze({
    config: config === '' ? undefined : config,
    service,
    labels: parseLabels(env['SIDECARLESS_LABELS'] ?? ''),
    onConfigError,
    ...(drain === undefined ? {} : { drain }),
  })
}

function parseDrain(env: NodeJS.ProcessEnv): DrainConfig | undefined {
  const drain: { timeout?: string; delay?: string } = {}
  for (const [key, name] of [['timeout', 'SIDECARLESS_DRAIN_TIMEOUT'], ['delay', 'SIDECARLESS_DRAIN_DELAY']] as const) {
    const value = env[name]
    if (value === undefined || value === '') continue
    const ms = parseDuration(value)
    if (ms === undefined || ms > limits.drainMs) throw envError(`${name} is ${quote(value)}; it must be a duration such as "20s" or "500ms" (at most 1h)`)
    drain[key] = value
  }
  return drain.timeout === undefined && drain.delay === undefined ? undefined : Object.freeze(drain)
}

const LABEL_NAME = /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\/)?[A-Za-z0-9](?:[A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$/
const LABEL_VALUE = /^(?:[A-Za-z0-9](?:[A-Za-z0-9._-]{0,61}[A-Za-z0-9])?)?$/

/**
 * Parses `SIDECARLESS_LABELS`: `key=value` pairs separated by commas, Kubernetes label
 * syntax (`version=v1,app.kubernetes.io/name=reviews`). No spaces, no empty pairs, no
 * repeated keys; an empty string is no labels.
 */
export function parseLabels(text: string): Record<string, string> {
  const labels: Record<string, string> = Object.create(null) as Record<string, string>
  if (text === '') return { ...labels }
  if (text.length > 16_384) throw envError(`SIDECARLESS_LABELS is ${text.length} characters; at most 16384`)
  const pairs = text.split(',')
  for (const [i, pair] of pairs.entries()) {
    const eq = pair.indexOf('=')
    const where = `SIDECARLESS_LABELS pair ${i + 1} (${quote(pair)})`
    if (eq === -1) throw envError(`${where} is not key=value; write SIDECARLESS_LABELS=version=v1,team=a`)
    const key = pair.slice(0, eq)
    const value = pair.slice(eq + 1)
    if (!LABEL_NAME.test(key)) throw envError(`${where}: ${quote(key)} is not a label key (letters, digits, "-", "_", "." and an optional "prefix/")`)
    if (!LABEL_VALUE.test(value)) throw envError(`${where}: ${quote(value)} is not a label value (at most 63 letters, digits, "-", "_", ".")`)
    if (Object.hasOwn(labels, key)) throw envError(`${where}: the key ${quote(key)} is given twice`)
    labels[key] = value
  }
  return { ...labels }
}

function envError(message: string): MeshError {
  return new MeshError('SIDECARLESS_ERR_ENVIRONMENT', message)
}

function quote(s: string): string {
  return JSON.stringify(s.length > 64 ? `${s.slice(0, 64)}…` : s)
}
