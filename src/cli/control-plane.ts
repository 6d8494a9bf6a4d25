/**
 * `sidecarless control-plane -c <file>`: serves the config to a fleet over ADS (see
 * `createControlPlane`) until SIGINT/SIGTERM, watching the file for changes. Prints the
 * bound address on stdout (`sidecarless control-plane: listening on <address>`) so scripts
 * and tests can use port 0.
 *
 * @module
 */
import { parseArgs } from 'node:util'
import { createControlPlane } from '../xds/control-plane.js'
import type { ControlPlane } from '../xds/control-plane-api.js'
import { describeProblem } from '../zerocode/report.js'
import { adminAddressArg, Exit, listenAddressArg, runUntilSignal, strictly, usageFailure, UsageError } from './args.js'

const USAGE = `Usage: sidecarless control-plane -c <file> [--listen host:port | --listen unix:/path] [--admin host:port]

Serves the mesh config in <file> to a fleet over xDS (state-of-the-world ADS, and CSDS):
Google's proxyless gRPC clients (xds:///<authority> targets), Envoy, and meshes created
with xds: true. Each virtual host domain is a listener of that name; each cluster and
subset an EDS cluster named outbound|<port>|<subset>|<cluster>. The file is watched: an
edit that validates is pushed to every client; one that does not is refused and logged.

<file> is a mesh config (YAML or JSON) or an Envoy v3 bootstrap.

Options:
  -c, --config <file>         the config (required); watched for changes
  --listen <host:port>        where ADS is served (default 127.0.0.1:15010; port 0: any free port),
                              or unix:/path/to/socket
  --admin <host:port>         admin endpoint on a loopback address: /clients /config_dump /stats /ready
  --retire-timeout <duration> how long removed clusters stay published for clients that
                              have not ACKed the new routes (default 10s)
  -h, --help                  show this help
`

/** Runs `sidecarless control-plane`. */
export async function run(args: string[]): Promise<number> {
  let config: string
  let listen: string | undefined
  let admin: string | undefined
  let retireTimeout: string | undefined
  try {
    const { values, positionals } = strictly(() => parseArgs({
      args,
      strict: true,
      allowPositionals: true,
      options: {
        config: { type: 'string', short: 'c' },
        listen: { type: 'string' },
        admin: { type: 'string' },
        'retire-timeout': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    }))
    if (values.help === true) {
      process.stdout.write(USAGE)
      return Exit.OK
    }
    if (positionals.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(positionals[0])}`)
    if (values.config === undefined) throw new UsageError('-c <file> is required')
    config = values.config
    listen = values.listen
    // Checked here for a usage error; passed on as written (a unix: path is the control plane's to check).
    if (listen !== undefined && !listen.startsWith('unix:')) listenAddressArg('--listen', listen)
    admin = values.admin
    if (admin !== undefined) adminAddressArg('--admin', admin)
    retireTimeout = values['retire-timeout']
  } catch (err) {
    if (err instanceof UsageError) return usageFailure('control-plane', err, USAGE)
    throw err
  }

  let cp: ControlPlane
  try {
    cp = await createControlPlane({
      config,
      watch: true,
      ...(listen === undefined ? {} : { listen }),
      ...(admin === undefined ? {} : { admin }),
      ...(retireTimeout === undefined ? {} : { retireTimeout }),
    })
  } catch (err) {
    process.stderr.write(describeProblem('sidecarless control-plane: cannot start', err))
    return Exit.FAILED
  }
  process.stdout.write(`sidecarless control-plane: listening on ${cp.address}\n`)
  if (cp.adminAddress !== undefined) process.stdout.write(`sidecarless control-plane: admin on http://${cp.adminAddress}\n`)
  cp.on('clientConnected', (c) => process.stderr.write(`sidecarless control-plane: client ${c.node?.id ?? '?'} connected (${c.peer}${c.node?.userAgent ? `, ${c.node.userAgent}` : ''})\n`))
  cp.on('clientDisconnected', (c) => process.stderr.write(`sidecarless control-plane: client ${c.node?.id ?? '?'} disconnected\n`))

  const running = cp
  await runUntilSignal('control-plane', 'closing', () => running.close())
  return Exit.OK
}
