/**
 * `sidecarless proxy`: the mesh's engine serving a real listener, for services not written
 * in Node and as an ingress or egress gateway. Requests on the listener run through the
 * mesh's inbound filter chain (request id, trace, limits, metrics), then are routed by the
 * virtual hosts and forwarded to the clusters, as an Envoy listener with an
 * `http_connection_manager` would.
 *
 * Unless the config says otherwise (`outboundTrafficPolicy`), the proxy routes only the
 * authorities its virtual hosts serve (REGISTRY_ONLY): anything else gets Envoy's 404. A
 * gateway that passed unknown hosts through would be an open proxy.
 *
 * @module
 */
import type http from 'node:http'
import type { AddressInfo } from 'node:net'
import { loadCheckedConfig, type LoadedConfig } from '../config/load.js'
import { formatListenAddress, parseListenAddress, type ListenAddress } from '../config/listen-address.js'
import type { MeshConfig } from '../config/types.js'
import { watchConfigFile, type ConfigWatch } from '../config/watch.js'
import { ConfigError, MeshError } from '../errors.js'
import { createMesh, type Mesh } from '../mesh.js'
import { describeProblem } from '../zerocode/report.js'
import { adminBindAddress, startAdmin, type AdminServer } from '../admin/admin.js'
import { createForwarder } from './forward.js'

/** Options of {@link startProxy}. */
export interface ProxyOptions {
  /** Path of the config: ours (YAML/JSON) or an Envoy v3 bootstrap. */
  readonly configPath: string
  /** Overrides `listener.address`. */
  readonly listen?: ListenAddress
  /** Overrides `admin.address` (the CLI allows loopback only). */
  readonly admin?: ListenAddress
  /** The service name in metrics and spans (default `sidecarless-proxy`). */
  readonly service?: string
  /** How long a stop waits for requests in flight (default 10 s). */
  readonly drainTimeoutMs?: number
  /** The version shown by `/server_info`. */
  readonly version?: string
  /** Where messages go (default stderr). */
  readonly log?: (line: string) => void
}

/** A running proxy. */
export interface RunningProxy {
  readonly mesh: Mesh
  /** `host:port` the listener is bound to. */
  readonly address: string
  /** `host:port` of the admin endpoint, when there is one. */
  readonly adminAddress: string | undefined
  /** Stops taking connections, lets requests in flight finish (bounded), closes everything. */
  stop(): Promise<void>
}

/** Starts the proxy. Rejects with a coded error for a config that cannot be used. */
export async function startProxy(options: ProxyOptions): Promise<RunningProxy> {
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`))
  const loaded = load(options.configPath)
  let mesh: Mesh
  try {
    mesh = createMesh({ service: options.service ?? 'sidecarless-proxy', config: loaded.config, serveAdmin: false })
  } catch (err) {
    if (err instanceof ConfigError) throw new ConfigError(err.issues, { source: options.configPath })
    throw err
  }
  mesh.unsupported = loaded.unsupported
  // Validated by createMesh: both parse.
  const listen = options.listen ?? addressOf(loaded.config.listener?.address)
  if (listen === undefined) {
    await mesh.close()
    throw new MeshError('SIDECARLESS_ERR_INVALID_ARGUMENT', `no listener address: give --listen host:port, or set listener.address in ${options.configPath} (an Envoy listener's address.socket_address)`)
  }
  const configuredAdmin = loaded.config.admin
  const admin = options.admin ?? (configuredAdmin === undefined ? undefined : adminBindAddress(configuredAdmin, (m) => log(`sidecarless proxy: warning: ${m}`)))

  let state: 'LIVE' | 'DRAINING' = 'LIVE'
  let inFlight = 0
  let idle: (() => void) | undefined
  const forward = createForwarder(mesh, { draining: () => state === 'DRAINING' })
  const server = mesh.createServer((req: http.IncomingMessage, res: http.ServerResponse) => {
    inFlight++
    res.once('close', () => {
      if (--inFlight === 0) idle?.()
    })
    forward(req, res)
  })
  try {
    await listenOn(server, listen)
  } catch (err) {
    await mesh.close()
    throw new MeshError('SIDECARLESS_ERR_INVALID_ARGUMENT', `cannot listen on ${formatListenAddress(listen.host, listen.port)}: ${(err as Error).message}`, { cause: err })
  }
  const bound = server.address() as AddressInfo
  const address = formatListenAddress(bound.address, bound.port)

  let adminServer: AdminServer | undefined
  if (admin !== undefined) {
    try {
      adminServer = await startAdmin(mesh, admin.host, admin.port, {
        version: options.version ?? 'unknown',
        startedAt: Date.now(),
        configPath: options.configPath,
        listener: () => address,
        state: () => state,
      })
    } catch (err) {
      server.close()
      await mesh.close()
      throw new MeshError('SIDECARLESS_ERR_INVALID_ARGUMENT', `cannot start the admin endpoint on ${formatListenAddress(admin.host, admin.port)}: ${(err as Error).message}`, { cause: err })
    }
  }

  const watch: ConfigWatch = watchConfigFile(options.configPath, () => {
    void reload(mesh, options.configPath, loaded.config, log)
  }, {
    onError: (err) => log(`sidecarless proxy: cannot read config ${options.configPath}: ${err.message}; the previous config stays in force`),
  })

  let stopping: Promise<void> | undefined
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      state = 'DRAINING'
      watch.close()
      const closed = new Promise<void>((resolve) => server.close(() => resolve()))
      if (inFlight > 0) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, options.drainTimeoutMs ?? 10_000)
          idle = () => {
            clearTimeout(timer)
            resolve()
          }
        })
      }
      server.closeAllConnections()
      await closed
      await mesh.close()
      await adminServer?.close()
    })()
    return stopping
  }
  return { mesh, address, adminAddress: adminServer?.address, stop }
}

/** Reads the config file; the proxy's default of REGISTRY_ONLY applies when it says nothing. */
function load(path: string): LoadedConfig {
  const loaded = loadCheckedConfig(path)
  if (loaded.unsupported.length > 0) {
    const lines = loaded.unsupported.map((u) => `  ${u.path}: ${u.message}`).join('\n')
    process.emitWarning(`the Envoy bootstrap ${path} has ${loaded.unsupported.length} field(s) the mesh does not translate; they are ignored:\n${lines}`, { code: 'SIDECARLESS_ENVOY_UNSUPPORTED' })
  }
  const config: MeshConfig = { ...loaded.config }
  config.outboundTrafficPolicy ??= { mode: 'REGISTRY_ONLY' }
  return { ...loaded, config }
}

async function reload(mesh: Mesh, path: string, first: MeshConfig, log: (line: string) => void): Promise<void> {
  try {
    const loaded = load(path)
    const applied = await mesh.update(loaded.config)
    mesh.unsupported = loaded.unsupported
    log(`sidecarless proxy: config ${path} applied (version ${applied.version})`)
    for (const key of ['listener', 'admin'] as const) {
      const before = key === 'listener' ? first.listener?.address : first.admin?.address
      const after = key === 'listener' ? loaded.config.listener?.address : loaded.config.admin?.address
      if (before !== after) log(`sidecarless proxy: ${key} address changed to ${after ?? 'none'}; restart the proxy to apply it`)
    }
  } catch (err) {
    const problem = err instanceof ConfigError ? new ConfigError(err.issues, { source: path }) : err
    log(describeProblem(`sidecarless proxy: config ${path} rejected; the previous config stays in force`, problem).trimEnd())
  }
}

function addressOf(text: string | undefined): ListenAddress | undefined {
  if (text === undefined) return undefined
  const parsed = parseListenAddress(text)
  // Validation already refused a bad address; this is a guard, not a path users reach.
  if (typeof parsed === 'string') throw new MeshError('SIDECARLESS_ERR_INVALID_ARGUMENT', parsed)
  return parsed
}

function listenOn(server: http.Server, at: ListenAddress): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(at.port, at.host, () => {
      server.off('error', reject)
      resolve()
    })
  })
}
