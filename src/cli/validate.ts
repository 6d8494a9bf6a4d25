/**
 * `sidecarless validate <file...>`: Galley's role. Each file (a mesh config in YAML or
 * JSON, an Envoy v3 bootstrap, or Kubernetes manifests — Istio's VirtualService,
 * DestinationRule, ServiceEntry, PeerAuthentication, RequestAuthentication,
 * AuthorizationPolicy — with mesh-config documents in the same file) is read, translated when
 * it is not our format, and validated; every problem is printed as
 * `file:line:column: path: CODE message`. Fields the mesh does not translate and config
 * warnings are printed as warnings (`--strict`: errors).
 *
 * Exit codes: 0 all valid, 1 a file is invalid, 2 a usage error or an unreadable file.
 *
 * @module
 */
import { accessSync, constants, statSync } from 'node:fs'
import { parseArgs } from 'node:util'
import type { ConfigLocation, ConfigWarning } from '../errors.js'
import { fromEnvoy, isEnvoyBootstrap, type UnsupportedField } from '../config/envoy/index.js'
import { isManifest, translateIstio } from '../config/istio/translate.js'
import { lintConfig } from '../config/lint.js'
import { emptyConfigIssue, readConfigFile } from '../config/load.js'
import { formatLocation, locateIssues, sourceOf, type Origin } from '../config/source-location.js'
import type { MeshConfig } from '../config/types.js'
import { validateConfig } from '../config/validate.js'
import { Exit, strictly, usageFailure, UsageError } from './args.js'

const USAGE = `Usage: sidecarless validate [--strict] [--json] [--namespace <ns>] [--labels k=v,...] <file...>

Checks mesh configs (YAML or JSON), Envoy v3 bootstraps and Istio manifests
(VirtualService, DestinationRule, ServiceEntry, PeerAuthentication,
RequestAuthentication, AuthorizationPolicy; multi-document YAML, mesh-config documents
beside them give the endpoints). Prints every problem as
"file:line:column: path: CODE message"; fields that are not translated and settings that
are likely mistakes are listed as warnings.

Options:
  --strict           untranslated fields and warnings are errors
  --json             machine-readable output on stdout
  --namespace <ns>   the workload's namespace, for Istio manifests (default:
                     SIDECARLESS_NAMESPACE, POD_NAMESPACE, else "default")
  --labels <k=v,...> the workload's labels, for workload selectors (default:
                     SIDECARLESS_LABELS)
  -h, --help         show this help

Exit codes: 0 valid, 1 invalid, 2 usage error or unreadable file.
`

/** A problem or warning of a file, where it can be found. */
export interface Finding {
  readonly path: string
  readonly code: string
  readonly message: string
  /** Where in the file (`file`, 1-based `line` and `column`), when it can be found. */
  readonly location?: ConfigLocation
}

/** What `validate --json` prints for one file. */
export interface FileReport {
  readonly file: string
  /** `mesh` (our model), `envoy` (an Envoy bootstrap), `istio` (Kubernetes manifests), or `unreadable`. */
  readonly format: 'mesh' | 'envoy' | 'istio' | 'unreadable'
  readonly valid: boolean
  /**
   * Validation problems (paths in our model; for a bootstrap or manifests, in the translated
   * config), each with its `location` in the file where it can be found.
   */
  readonly issues: readonly Finding[]
  /** Fields of a bootstrap or manifests not translated (paths as written). */
  readonly unsupported: readonly UnsupportedField[]
  /** Settings that are valid but likely mistakes (see `ConfigWarningCodes`). */
  readonly warnings: readonly Finding[]
  /** Counts of the (translated) config. */
  readonly summary: { readonly clusters: number; readonly virtualHosts: number; readonly routes: number; readonly listener?: string }
  /** Why the file could not be read, when `format` is `unreadable`. */
  readonly error?: string
}

/** Runs `sidecarless validate`. */
export function run(args: string[]): Promise<number> {
  return Promise.resolve(validate(args))
}

/** Who Istio manifests are translated for. */
interface Workload {
  readonly namespace?: string
  readonly labels: Readonly<Record<string, string>>
}

function validate(args: string[]): number {
  let values: { strict?: boolean; json?: boolean; help?: boolean; namespace?: string; labels?: string }
  let files: string[]
  let workload: Workload
  try {
    const parsed = strictly(() => parseArgs({
      args,
      strict: true,
      allowPositionals: true,
      options: {
        strict: { type: 'boolean' },
        json: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
        namespace: { type: 'string' },
        labels: { type: 'string' },
      },
    }))
    values = parsed.values
    files = parsed.positionals
    if (values.help !== true && files.length === 0) throw new UsageError('no file given')
    const namespace = values.namespace ?? process.env['SIDECARLESS_NAMESPACE'] ?? process.env['POD_NAMESPACE']
    workload = { ...(namespace === undefined || namespace === '' ? {} : { namespace }), labels: parseLabels(values.labels ?? process.env['SIDECARLESS_LABELS'] ?? '') }
  } catch (err) {
    if (err instanceof UsageError) return usageFailure('validate', err, USAGE)
    throw err
  }
  if (values.help === true) {
    process.stdout.write(USAGE)
    return Exit.OK
  }
  const strict = values.strict === true
  const reports = files.map((file) => check(file, strict, workload))
  if (values.json === true) {
    process.stdout.write(`${JSON.stringify({ valid: reports.every((r) => r.valid), files: reports }, null, 2)}\n`)
  } else {
    for (const r of reports) print(r, strict)
  }
  if (reports.some((r) => r.format === 'unreadable')) return Exit.USAGE
  return reports.every((r) => r.valid) ? Exit.OK : Exit.FAILED
}

function check(file: string, strict: boolean, workload: Workload): FileReport {
  const empty = { clusters: 0, virtualHosts: 0, routes: 0 }
  try {
    if (!statSync(file).isFile()) throw new Error('not a regular file')
    accessSync(file, constants.R_OK)
  } catch (err) {
    return { file, format: 'unreadable', valid: false, issues: [], unsupported: [], warnings: [], summary: empty, error: (err as Error).message }
  }
  let raw: unknown
  try {
    raw = readConfigFile(file)
  } catch (err) {
    // Readable, but not YAML/JSON (or over the size bound): the file is invalid.
    const issue = { path: '', code: 'SIDECARLESS_ERR_CONFIG_LOAD', message: (err as Error).message }
    return { file, format: 'mesh', valid: false, issues: [issue], unsupported: [], warnings: [], summary: empty }
  }
  if (raw === null || raw === undefined) {
    // The mesh refuses an empty document (a truncated file must not remove every policy).
    return { file, format: 'mesh', valid: false, issues: [emptyConfigIssue(raw, file)], unsupported: [], warnings: [], summary: empty }
  }
  const source = sourceOf(raw)
  let format: FileReport['format'] = 'mesh'
  let config: unknown = raw
  let unsupported: readonly UnsupportedField[] = []
  let issues: Finding[]
  let origin: Origin | undefined
  if (isEnvoyBootstrap(raw)) {
    format = 'envoy'
    const imported = fromEnvoy(raw)
    config = imported.config
    unsupported = imported.unsupported
    issues = validateConfig(config)
  } else if (Array.isArray(raw) || isManifest(raw)) {
    const documents = Array.isArray(raw) ? raw : [raw]
    const tr = translateIstio(documents, workload)
    origin = tr.origin
    if (documents.some(isManifest)) format = 'istio'
    config = tr.config
    unsupported = tr.unsupported
    const found = [...tr.issues, ...validateConfig(config)]
    issues = source !== undefined && found.length > 0 ? locateIssues(found, source, tr.origin) : found
    if (tr.counts.resources === 0 && tr.counts.own === 0) {
      issues.unshift({ path: '', code: 'SIDECARLESS_ERR_CONFIG_LOAD', message: 'the file holds no mesh config: none of its documents is a VirtualService, DestinationRule, ServiceEntry, PeerAuthentication, RequestAuthentication, AuthorizationPolicy or mesh config' })
    }
  } else {
    const found = validateConfig(config)
    issues = source !== undefined && found.length > 0 ? locateIssues(found, source) : found
  }
  const warnings = lintConfig(config)
  return {
    file,
    format,
    valid: issues.length === 0 && !(strict && (unsupported.length > 0 || warnings.length > 0)),
    issues,
    unsupported,
    warnings: source !== undefined && warnings.length > 0 && format !== 'envoy' ? locateWarnings(warnings, source, origin) : warnings,
    summary: summarise(config),
  }
}

/** Config warnings with their file positions (found as issues are). */
function locateWarnings(warnings: readonly ConfigWarning[], source: NonNullable<ReturnType<typeof sourceOf>>, origin: Origin | undefined): Finding[] {
  return locateIssues(warnings.map((w) => ({ ...w, code: 'INVALID_VALUE' as const })), source, origin).map((l, i) => ({ ...l, code: (warnings[i] as ConfigWarning).code }))
}

/** `k=v,k=v` (Kubernetes label syntax) → labels; anything else is a usage error. */
function parseLabels(text: string): Record<string, string> {
  const labels: Record<string, string> = {}
  for (const part of text.split(',').map((p) => p.trim()).filter((p) => p !== '')) {
    const m = /^([A-Za-z0-9]([-A-Za-z0-9_./]*[A-Za-z0-9])?)=([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$/.exec(part)
    if (m === null) throw new UsageError(`--labels: ${JSON.stringify(part)} is not key=value`)
    labels[m[1] as string] = m[3] ?? ''
  }
  return labels
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
  const at = (i: Finding): string => (i.location === undefined ? r.file : formatLocation(i.location))
  for (const u of r.unsupported) {
    out.push(`${r.file}: ${strict ? '' : 'warning: '}${u.path === '' ? '<root>' : u.path}: UNSUPPORTED ${u.message}`)
  }
  for (const w of r.warnings) out.push(`${at(w)}: ${strict ? '' : 'warning: '}${w.path}: ${w.code} ${w.message}`)
  for (const i of r.issues) out.push(`${at(i)}: ${i.path === '' ? '<root>' : i.path}: ${i.code} ${i.message}`)
  const s = r.summary
  const counts = `${plural(s.clusters, 'cluster')}, ${plural(s.virtualHosts, 'virtual host')}, ${plural(s.routes, 'route')}`
  const extra = [
    r.format === 'envoy' ? 'Envoy bootstrap' : r.format === 'istio' ? 'Istio manifests' : undefined,
    s.listener === undefined ? undefined : `listener ${s.listener}`,
    r.unsupported.length > 0 ? `${r.format === 'istio' ? r.unsupported.length : plural(r.unsupported.length, 'field')} not translated` : undefined,
  ].filter((x) => x !== undefined)
  const tail = extra.length > 0 ? ` (${extra.join('; ')})` : ''
  if (r.warnings.length > 0) extra.push(plural(r.warnings.length, 'warning'))
  const problems = r.issues.length + (strict ? r.unsupported.length + r.warnings.length : 0)
  out.push(r.valid ? `${r.file}: valid: ${counts}${tail}` : `${r.file}: invalid: ${plural(problems, 'problem')}${tail}`)
  process.stdout.write(`${out.join('\n')}\n`)
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`
}
