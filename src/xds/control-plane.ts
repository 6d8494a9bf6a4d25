/**
 * `createControlPlane`: the fleet's control plane, istiod's role for users without Istio —
 * one process that holds the mesh config of a fleet, validates it (as Istio's Galley did)
 * and serves it over ADS to every instance: Google's proxyless gRPC clients, Envoy, and
 * the mesh's own xDS client. A traffic split changed in one place reaches every caller.
 *
 * ```ts
 * import { createControlPlane } from 'sidecarless'
 * const cp = await createControlPlane({ config: 'mesh.yaml', listen: '0.0.0.0:15010' })
 * await cp.traffic.split('reviews', { v1: 90, v2: 10 })
 * cp.clients()   // node id, versions ACKed, last NACK, connected since
 * await cp.close()
 * ```
 *
 * Each config becomes an immutable snapshot (see `snapshot.ts`); a change is pushed to
 * every stream in make-before-break order, and resources it removes stay published until
 * every client has ACKed the routes that stopped using them (or `retireTimeout` passed).
 * `@grpc/grpc-js` and `protobufjs` are loaded here, not when the package is imported.
 *
 * @module
 */
import { hostname } from 'node:os'
import type { Server, ServerDuplexStream, ServerUnaryCall, sendUnaryData } from '@grpc/grpc-js'
import { parseDuration } from '../config/duration.js'
import { isLoopback, parseListenAddress } from '../config/listen-address.js'
import { loadCheckedConfig } from '../config/load.js'
import type { Duration, MeshConfig } from '../config/types.js'
import { watchConfigFile, type ConfigWatch } from '../config/watch.js'
import { ConfigError, MeshError } from '../errors.js'
import type { WireDiscoveryResponse } from './ads-stream.js'
import type { XdsObject } from './codec.js'
import { startControlPlaneAdmin, type ControlPlaneAdmin } from './control-plane-admin.js'
import type { ControlPlane, ControlPlaneOptions } from './control-plane-api.js'
import { checkConfig, ControlPlaneServer } from './control-plane-server.js'
import { emitResources } from './emit/index.js'
import { loadGrpc, type Grpc } from './optional-deps.js'
import { loadXdsCodec } from './protos.js'
import { hostNamesOf, resolveHostNames } from './resolve.js'
import { adsService, csdsService } from './services.js'
import { buildSnapshot } from './snapshot.js'

const DEFAULT_LISTEN = '127.0.0.1:15010'
const DEFAULT_RETIRE_TIMEOUT_MS = 10_000
const DEFAULT_DNS_REFRESH_MS = 5_000

/**
 * Starts a control plane serving `options.config` over ADS (and CSDS) on `options.listen`.
 * Rejects with a {@link ConfigError} for an invalid config, with
 * `SIDECARLESS_ERR_XDS_UNAVAILABLE` when `@grpc/grpc-js` or `protobufjs` is not installed,
 * and with `SIDECARLESS_ERR_INVALID_ARGUMENT` for an address it cannot listen on.
 */
export async function createControlPlane(options: ControlPlaneOptions): Promise<ControlPlane> {
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`))
  const listen = listenText(options.listen ?? DEFAULT_LISTEN)
  const bindTarget = listenTarget(listen)
  const admin = options.admin === undefined ? undefined : adminAddress(options.admin)
  const retireTimeoutMs = durationOption('retireTimeout', options.retireTimeout, DEFAULT_RETIRE_TIMEOUT_MS)
  const [grpc, codec] = await Promise.all([loadGrpc(), loadXdsCodec()])

  const loaded = loadCheckedConfig(options.config)
  for (const u of loaded.unsupported) log(`sidecarless control-plane: ${loaded.source ?? 'the config'}: ${u.path}: ${u.message}`)
  const issues = checkConfig(loaded.config)
  if (issues !== undefined) throw loaded.source === undefined ? issues : new ConfigError(issues.issues, { source: loaded.source })
  const resolved = await resolveHostNames(hostNamesOf(loaded.config), (name, err) => {
    log(`sidecarless control-plane: cannot resolve ${name}: ${err.message}; its endpoints are left out until it resolves`)
  })
  const emitted = emitResources(loaded.config, resolved)
  const snapshot = buildSnapshot(codec, 1, emitted, undefined, undefined)

  const server = new grpc.Server({
    // Find dead clients (a pod gone without a FIN) so their streams do not pile up.
    'grpc.keepalive_time_ms': 30_000,
    'grpc.keepalive_timeout_ms': 10_000,
    'grpc.max_receive_message_length': 16 * 1024 * 1024,
  })
  const address = await bind(grpc, server, bindTarget, listen)
  const cp = new ControlPlaneServer({
    codec, server, address, log, retireTimeoutMs, config: loaded.config, resolved, emitted, snapshot,
    identifier: options.identifier ?? `sidecarless/${hostname()}/${process.pid}`,
  })
  server.addService(adsService(codec), {
    StreamAggregatedResources: (call: ServerDuplexStream<XdsObject, WireDiscoveryResponse>) => cp.handleAds(call),
    DeltaAggregatedResources: (call: ServerDuplexStream<XdsObject, XdsObject>) => {
      call.emit('error', { code: grpc.status.UNIMPLEMENTED, details: 'delta xDS is not implemented; use state-of-the-world ADS' })
    },
  })
  server.addService(csdsService(codec), {
    FetchClientStatus: (call: ServerUnaryCall<XdsObject, XdsObject>, callback: sendUnaryData<XdsObject>) => cp.handleCsds(call, callback),
    StreamClientStatus: (call: ServerDuplexStream<XdsObject, XdsObject>) => cp.handleCsdsStream(call),
  })

  let adminServer: ControlPlaneAdmin | undefined
  try {
    if (admin !== undefined) adminServer = await startControlPlaneAdmin(cp, admin.host, admin.port, { configPath: loaded.source })
  } catch (err) {
    server.forceShutdown()
    throw new MeshError('SIDECARLESS_ERR_INVALID_ARGUMENT', `cannot start the admin endpoint on ${options.admin ?? ''}: ${(err as Error).message}`, { cause: err })
  }
  const watch = options.watch === true && typeof options.config === 'string' ? watchFile(cp, options.config, log) : undefined
  // Always on (a config without host names makes each tick a no-op): a later config may add some.
  const dnsRefreshMs = durationOption('dnsRefreshRate', options.dnsRefreshRate, shortestDnsRefresh(loaded.config))
  cp.attach(adminServer, watch, dnsRefreshMs)
  cp.reportOmitted(emitted.omitted)
  return cp
}

function watchFile(cp: ControlPlane, path: string, log: (line: string) => void): ConfigWatch {
  return watchConfigFile(path, () => {
    cp.update(path).then(
      (applied) => log(`sidecarless control-plane: config ${path} applied (version ${applied.version})`),
      (err: unknown) => {
        const problem = err instanceof ConfigError ? new ConfigError(err.issues, { source: path }) : err
        log(`sidecarless control-plane: config ${path} rejected; the previous config stays in force: ${(problem as Error).message}`)
      },
    )
  }, {
    onError: (err) => log(`sidecarless control-plane: cannot read config ${path}: ${err.message}; the previous config stays in force`),
  })
}

/** The `listen` option as text: a port alone listens on loopback. */
function listenText(listen: string | number | { readonly host?: string; readonly port: number }): string {
  if (typeof listen === 'string') return listen
  const host = typeof listen === 'number' ? '127.0.0.1' : (listen.host ?? '127.0.0.1')
  const port = typeof listen === 'number' ? listen : listen.port
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new MeshError('SIDECARLESS_ERR_INVALID_ARGUMENT', `listen: the port must be 0 to 65535, got ${String(port)}`)
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`
}

/** `host:port` or `unix:/path` → what grpc-js binds. */
function listenTarget(listen: string): string {
  if (listen.startsWith('unix:')) {
    if (listen.length <= 'unix:'.length) throw new MeshError('SIDECARLESS_ERR_INVALID_ARGUMENT', `listen ${JSON.stringify(listen)}: a unix socket needs a path (unix:/run/cp.sock)`)
    return listen
  }
  const parsed = parseListenAddress(listen)
  if (typeof parsed === 'string') throw new MeshError('SIDECARLESS_ERR_INVALID_ARGUMENT', `listen: ${parsed}`)
  return parsed.host.includes(':') ? `[${parsed.host}]:${parsed.port}` : `${parsed.host}:${parsed.port}`
}

function adminAddress(text: string): { host: string; port: number } {
  const parsed = parseListenAddress(text)
  if (typeof parsed === 'string') throw new MeshError('SIDECARLESS_ERR_INVALID_ARGUMENT', `admin: ${parsed}`)
  if (!isLoopback(parsed.host)) throw new MeshError('SIDECARLESS_ERR_INVALID_ARGUMENT', `admin ${text}: the admin endpoint binds to loopback only (127.0.0.1, ::1, localhost)`)
  return parsed
}

async function bind(grpc: Grpc, server: Server, target: string, shown: string): Promise<string> {
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(target, grpc.ServerCredentials.createInsecure(), (err, p) => (err === null ? resolve(p) : reject(err)))
  }).catch((err: unknown) => {
    throw new MeshError('SIDECARLESS_ERR_INVALID_ARGUMENT', `cannot listen on ${shown}: ${(err as Error).message}`, { cause: err })
  })
  if (target.startsWith('unix:')) return target
  return `${target.slice(0, target.lastIndexOf(':'))}:${port}`
}

function durationOption(name: string, value: Duration | undefined, fallback: number): number {
  if (value === undefined) return fallback
  const ms = parseDuration(value)
  if (ms === undefined || ms <= 0) throw new MeshError('SIDECARLESS_ERR_INVALID_ARGUMENT', `${name} must be a positive duration like "10s", got ${JSON.stringify(value)}`)
  return ms
}

function shortestDnsRefresh(config: MeshConfig): number {
  let ms = DEFAULT_DNS_REFRESH_MS
  for (const c of config.clusters ?? []) {
    if (c.dnsRefreshRate !== undefined) ms = Math.min(ms, parseDuration(c.dnsRefreshRate) ?? ms)
  }
  return Math.max(ms, 100)
}
