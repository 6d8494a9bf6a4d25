/**
 * `sidecarless proxy -c <file>`: runs {@link startProxy} until SIGINT/SIGTERM, then drains
 * and exits 0. Prints the bound addresses on stdout (`listening on http://host:port`,
 * `admin on http://host:port`) so scripts and tests can use port 0.
 *
 * @module
 */
import { parseArgs } from 'node:util'
import { parseDuration } from '../config/duration.js'
import type { ListenAddress } from '../config/listen-address.js'
import { startProxy } from '../proxy/proxy.js'
import { describeProblem } from '../zerocode/report.js'
import { adminAddressArg, Exit, listenAddressArg, runUntilSignal, strictly, usageFailure, UsageError } from './args.js'
import { version } from './version.js'

const USAGE = `Usage: sidecarless proxy -c <file> [--listen host:port] [--admin host:port] [--service name] [--drain-timeout 10s]

Serves a listener through the mesh: inbound filter chain, then routed by the virtual hosts
and forwarded to the clusters. <file> is a mesh config (YAML or JSON) or an Envoy v3
bootstrap (its first listener's address, its routes, clusters and admin).

Options:
  -c, --config <file>        the config (required); watched for changes
  --listen <host:port>       where to listen (overrides listener.address; port 0: any free port)
  --admin <host:port>        admin endpoint on a loopback address (overrides admin.address)
  --service <name>           service name in metrics and spans (default sidecarless-proxy)
  --drain-timeout <duration> how long SIGINT/SIGTERM waits for requests in flight (default 10s)
  -h, --help                 show this help
`

/** Runs `sidecarless proxy`. */
export async function run(args: string[]): Promise<number> {
  let config: string
  let listen: ListenAddress | undefined
  let admin: ListenAddress | undefined
  let service: string | undefined
  let drainTimeoutMs = 10_000
  try {
    const { values, positionals } = strictly(() => parseArgs({
      args,
      strict: true,
      allowPositionals: true,
      options: {
        config: { type: 'string', short: 'c' },
        listen: { type: 'string' },
        admin: { type: 'string' },
        service: { type: 'string' },
        'drain-timeout': { type: 'string' },
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
    listen = values.listen === undefined ? undefined : listenAddressArg('--listen', values.listen)
    admin = values.admin === undefined ? undefined : adminAddressArg('--admin', values.admin)
    service = values.service
    if (values['drain-timeout'] !== undefined) {
      const ms = parseDuration(values['drain-timeout'])
      if (ms === undefined) throw new UsageError(`--drain-timeout ${values['drain-timeout']} is not a duration like 10s`)
      drainTimeoutMs = ms
    }
  } catch (err) {
    if (err instanceof UsageError) return usageFailure('proxy', err, USAGE)
    throw err
  }

  let proxy
  try {
    proxy = await startProxy({
      configPath: config,
      ...(listen === undefined ? {} : { listen }),
      ...(admin === undefined ? {} : { admin }),
      ...(service === undefined ? {} : { service }),
      drainTimeoutMs,
      version: version(),
    })
  } catch (err) {
    process.stderr.write(describeProblem('sidecarless proxy: cannot start', err))
    return Exit.FAILED
  }
  process.stdout.write(`sidecarless proxy: listening on http://${proxy.address}\n`)
  if (proxy.adminAddress !== undefined) process.stdout.write(`sidecarless proxy: admin on http://${proxy.adminAddress}\n`)

  const running = proxy
  await runUntilSignal('proxy', 'draining', () => running.stop())
  return Exit.OK
}
