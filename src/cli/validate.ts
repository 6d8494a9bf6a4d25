/**
 * `sidecarless validate <file...>`: Galley's role. Each file (a mesh config in YAML or
 * JSON, or an Envoy v3 bootstrap) is read, an Envoy bootstrap translated, and the result
 * validated; every problem is printed as `file: path: CODE message`. Fields of an Envoy
 * bootstrap the mesh does not translate are warnings (`--strict`: errors).
 *
 * Exit codes: 0 all valid, 1 a file is invalid, 2 a usage error or an unreadable file.
 *
 * @module
 */
import { accessSync, constants, statSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { fromEnvoy, isEnvoyBootstrap, type UnsupportedField } from '../config/envoy/index.js'
import { emptyConfigIssue, readConfigFile } from '../config/load.js'
import type { MeshConfig } from '../config/types.js'
import { validateConfig } from '../config/validate.js'
import { Exit, strictly, usageFailure, UsageError } from './args.js'

const USAGE = `Usage: sidecarless validate [--strict] [--json] <file...>

Checks mesh configs (YAML or JSON) and Envoy v3 bootstraps. Prints every problem as
"file: path: CODE message"; fields of an Envoy bootstrap that are not translated are
listed as warnings.

Options:
  --strict   untranslated Envoy fields are errors
  --json     machine-readable output on stdout
  -h, --help show this help

Exit codes: 0 valid, 1 invalid, 2 usage error or unreadable file.
`

/** What `validate --json` prints for one file. */
export interface FileReport {
  readonly file: string
  /** `mesh` (our model), `envoy` (an Envoy bootstrap), or `unreadable`. */
  readonly format: 'mesh' | 'envoy' | 'unreadable'
  readonly valid: boolean
  /** Validation problems (paths in our model; for a bootstrap, in the translated config). */
  readonly issues: readonly { readonly path: string; readonly code: string; readonly message: string }[]
  /** Envoy fields not translated (paths in the bootstrap as written). */
  readonly unsupported: readonly UnsupportedField[]
  /** Counts of the (translated) config. */
  readonly summary: { readonly clusters: number; readonly virtualHosts: number; readonly routes: number; readonly listener?: string }
  /** Why the file could not be read, when `format` is `unreadable`. */
  readonly error?: string
}

/** Runs `sidecarless validate`. */
export function run(args: string[]): Promise<number> {
  return Promise.resolve(validate(args))
}

function validate(args: string[]): number {
  let values: { strict?: boolean; json?: boolean; help?: boolean }
  let files: string[]
  try {
    const parsed = strictly(() => parseArgs({
      args,
      strict: true,
      allowPositionals: true,
      options: { strict: { type: 'boolean' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
    }))
    values = parsed.values
    files = parsed.positionals
    if (values.help !== true && files.length === 0) throw new UsageError('no file given')
  } catch (err) {
    if (err instanceof UsageError) return usageFailure('validate', err, USAGE)
    throw err
  }
  if (values.help === true) {
    process.stdout.write(USAGE)
    return Exit.OK
  }
  const strict = values.strict === true
  const reports = files.map((file) => check(file, strict))
  if (values.json === true) {
    process.stdout.write(`${JSON.stringify({ valid: reports.every((r) => r.valid), files: reports }, null, 2)}\n`)
  } else {
    for (const r of reports) print(r, strict)
  }
  if (reports.some((r) => r.format === 'unreadable')) return Exit.USAGE
  return reports.every((r) => r.valid) ? Exit.OK : Exit.FAILED
}

function check(file: string, strict: boolean): FileReport {
  const empty = { clusters: 0, virtualHosts: 0, routes: 0 }
  try {
    if (!statSync(file).isFile()) throw new Error('not a regular file')
    accessSync(file, constants.R_OK)
  } catch (err) {
    return { file, format: 'unreadable', valid: false, issues: [], unsupported: [], summary: empty, error: (err as Error).message }
  }
  let raw: unknown
  try {
    raw = readConfigFile(file)
  } catch (err) {
    // Readable, but not YAML/JSON (or over the size bound): the file is invalid.
    const issue = { path: '', code: 'SIDECARLESS_ERR_CONFIG_LOAD', message: (err as Error).message }
    return { file, format: 'mesh', valid: false, issues: [issue], unsupported: [], summary: empty }
  }
  if (raw === null || raw === undefined) {
    // The mesh refuses an empty document (a truncated file must not remove every policy).
    return { file, format: 'mesh', valid: false, issues: [emptyConfigIssue(raw, file)], unsupported: [], summary: empty }
  }
  const envoy = isEnvoyBootstrap(raw)
  let config: unknown = raw
  let unsupported: readonly UnsupportedField[] = []
  if (envoy) {
    const imported = fromEnvoy(raw)
    config = imported.config
    unsupported = imported.unsupported
  }
  const issues = validateConfig(config)
  return {
    file,
    format: envoy ? 'envoy' : 'mesh',
    valid: issues.length === 0 && !(strict && unsupported.length > 0),
    issues,
    unsupported,
    summary: summarise(config),
  }
}

function summarise(config: unknown): FileReport['summary'] {
  const c = (typeof config === 'object' && config !== null ? config : {}) as MeshConfig
  const list = <T>(v: T[] | undefined): T[] => (Array.isArray(v) ? v : [])
  const vhosts = list(c.virtualHosts)
  const routes = vhosts.reduce((n, vh) => n + list(vh?.routes).length, 0)
  const listener = typeof c.listener?.address === 'string' ? c.listener.address : undefined
  return { clusters: list(c.clusters).length, virtualHosts: vhosts.length, routes, ...(listener === undefined ? {} : { listener }) }
}

function print(r: FileReport, strict: boolean): void {
  if (r.format === 'unreadable') {
    process.stderr.write(`${r.file}: cannot read: ${r.error ?? ''}\n`)
    return
  }
  const out: string[] = []
  for (const u of r.unsupported) {
    out.push(`${r.file}: ${strict ? '' : 'warning: '}${u.path === '' ? '<root>' : u.path}: UNSUPPORTED ${u.message}`)
  }
  for (const i of r.issues) out.push(`${r.file}: ${i.path === '' ? '<root>' : i.path}: ${i.code} ${i.message}`)
  const s = r.summary
  const counts = `${plural(s.clusters, 'cluster')}, ${plural(s.virtualHosts, 'virtual host')}, ${plural(s.routes, 'route')}`
  const extra = [
    r.format === 'envoy' ? 'Envoy bootstrap' : undefined,
    s.listener === undefined ? undefined : `listener ${s.listener}`,
    r.unsupported.length > 0 ? `${plural(r.unsupported.length, 'field')} not translated` : undefined,
  ].filter((x) => x !== undefined)
  const tail = extra.length > 0 ? ` (${extra.join('; ')})` : ''
  const problems = r.issues.length + (strict ? r.unsupported.length : 0)
  out.push(r.valid ? `${r.file}: valid: ${counts}${tail}` : `${r.file}: invalid: ${plural(problems, 'problem')}${tail}`)
  process.stdout.write(`${out.join('\n')}\n`)
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`
}
