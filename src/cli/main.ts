#!/usr/bin/env node
/**
 * The `sidecarless` command: a table of subcommands, each a module exporting
 * `run(args): Promise<number>` (the exit code), loaded only when named.
 *
 * @module
 */
import { Exit } from './args.js'
import { runtimeSupport } from '../runtime.js'
import { version } from './version.js'

/** A subcommand module. */
export interface Subcommand {
  /** Runs the subcommand with the arguments after its name; resolves with the exit code. */
  run(args: string[]): Promise<number>
}

interface Entry {
  readonly summary: string
  readonly load: () => Promise<Subcommand>
}

/** Every subcommand, in the order `--help` lists them. */
const commands: Readonly<Record<string, Entry>> = {
  validate: {
    summary: 'check mesh configs and Envoy bootstraps; every problem by path and code',
    load: () => import('./validate.js'),
  },
  proxy: {
    summary: 'serve a listener on a socket through the mesh (gateway, non-Node services)',
    load: () => import('./proxy.js'),
  },
  ca: {
    summary: 'a development workload CA: `ca init` makes a root, `ca issue` a SPIFFE certificate',
    load: () => import('./ca.js'),
  },
  'control-plane': {
    summary: 'serve a mesh config to a fleet over xDS (ADS): gRPC proxyless clients, Envoy, meshes',
    load: () => import('./control-plane.js'),
  },
}

function usage(): string {
  const width = Math.max(...Object.keys(commands).map((c) => c.length))
  const lines = Object.entries(commands).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`)
  return `Usage: sidecarless <command> [options]

Commands:
${lines.join('\n')}

Options:
  -h, --help     show this help (also: sidecarless <command> --help)
  -v, --version  print the version
`
}

/** Runs the command line `argv` (without `node` and the script); resolves with the exit code. */
export async function main(argv: string[]): Promise<number> {
  const support = runtimeSupport(process.versions.node)
  if (support.level === 'unsupported') {
    process.stderr.write(`sidecarless: ${support.message}\n`)
    return Exit.FAILED
  }
  if (support.level === 'end-of-life') process.emitWarning(support.message, { code: 'SIDECARLESS_UNSUPPORTED_NODE' })
  const [first, ...rest] = argv
  if (first === undefined) {
    process.stderr.write(usage())
    return Exit.USAGE
  }
  if (first === '-h' || first === '--help' || first === 'help') {
    process.stdout.write(usage())
    return Exit.OK
  }
  if (first === '-v' || first === '--version') {
    process.stdout.write(`${version()}\n`)
    return Exit.OK
  }
  const entry = Object.hasOwn(commands, first) ? commands[first] : undefined
  if (entry === undefined) {
    process.stderr.write(`sidecarless: unknown command ${JSON.stringify(first)}\n\n${usage()}`)
    return Exit.USAGE
  }
  const command = await entry.load()
  return command.run(rest)
}

/** Process warnings (e.g. SIDECARLESS_ENVOY_UNSUPPORTED) once each, in the command's own words. */
function printWarningsOnce(): void {
  const seen = new Set<string>()
  process.removeAllListeners('warning')
  process.on('warning', (w: Error & { code?: string }) => {
    const key = `${w.code ?? w.name}\n${w.message}`
    if (seen.has(key)) return
    seen.add(key)
    process.stderr.write(`sidecarless: warning ${w.code ?? w.name}: ${w.message}\n`)
  })
}

printWarningsOnce()
main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code
  },
  (err: unknown) => {
    process.stderr.write(`sidecarless: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`)
    process.exitCode = Exit.FAILED
  },
)
