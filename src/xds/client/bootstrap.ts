/**
 * The xDS bootstrap, read as gRPC's proxyless clients read it (gRFC A27 and the gRPC
 * bootstrap format; `@grpc/grpc-js-xds` src/xds-bootstrap.ts; istio-agent's writer,
 * pkg/istio-agent/grpcxds/grpc_bootstrap.go): from `GRPC_XDS_BOOTSTRAP` (a file) or else
 * `GRPC_XDS_BOOTSTRAP_CONFIG` (its JSON), or given to `createMesh({ xds: { bootstrap } })`.
 *
 * What is read:
 * - `xds_servers`: the first server with a channel credential type the mesh supports
 *   (`insecure`; `tls` as gRFC A65 writes it). `server_features: ["ignore_resource_deletion"]`
 *   is honoured (gRFC A53). Target URIs pass to gRPC as written, except `unix:` targets,
 *   which are normalised: istio-agent writes `unix:///` + an absolute path (four slashes).
 * - `node`: `id`, `cluster`, `metadata` (istiod needs `GENERATOR: grpc`), `locality`.
 * - `certificate_providers`: `file_watcher` instances (istio-agent's `default`: the
 *   `/var/lib/istio/data` layout, `cert-chain.pem`, `key.pem`, `root-cert.pem`).
 * - `server_listener_resource_name_template`: the inbound Listener's name, `%s` replaced by
 *   the server's `ip:port`.
 *
 * Not read: `authorities` and `client_default_listener_resource_name_template` (xDS
 * federation, gRFC A47), call credentials. An invalid bootstrap is refused whole, as gRPC
 * refuses it, with the field named.
 *
 * @module
 */
import { readFileSync, statSync } from 'node:fs'
import { isAbsolute, posix } from 'node:path'
import { MeshError } from '../../errors.js'
import { parseDuration } from '../../config/duration.js'

/** Channel credentials for the xDS server. */
export type XdsChannelCredentials =
  | { readonly type: 'insecure' }
  | {
    readonly type: 'tls'
    /** CA certificates to verify the server with; absent: the system's roots. */
    readonly caCertificateFile: string | undefined
    /** A client certificate and key, both or neither. */
    readonly certificateFile: string | undefined
    readonly privateKeyFile: string | undefined
  }

/** The xDS server the client talks to. */
export interface XdsServer {
  /** `server_uri` as written. */
  readonly uri: string
  /** The target handed to gRPC (`unix:` forms normalised). */
  readonly target: string
  readonly credentials: XdsChannelCredentials
  /** `server_features` has `ignore_resource_deletion` (gRFC A53). */
  readonly ignoreResourceDeletion: boolean
}

/** The node the client presents (Envoy `config.core.v3.Node`). */
export interface XdsBootstrapNode {
  readonly id: string
  readonly cluster: string
  /** Plain JSON (a `google.protobuf.Struct`); istiod reads `GENERATOR`, `NAMESPACE`, ... */
  readonly metadata: Readonly<Record<string, unknown>>
  readonly locality: { readonly region?: string; readonly zone?: string; readonly sub_zone?: string } | undefined
}

/** A `file_watcher` certificate provider instance. */
export interface FileWatcherProvider {
  readonly name: string
  readonly certificateFile: string | undefined
  readonly privateKeyFile: string | undefined
  readonly caCertificateFile: string | undefined
  /** `refresh_interval` (default 10 minutes, as gRPC); files are also watched for changes. */
  readonly refreshIntervalMs: number
}

/** A parsed, valid bootstrap. */
export interface XdsBootstrap {
  /** Where it came from: a file path, `GRPC_XDS_BOOTSTRAP_CONFIG`, or `xds.bootstrap`. */
  readonly source: string
  readonly server: XdsServer
  readonly node: XdsBootstrapNode
  readonly certificateProviders: ReadonlyMap<string, FileWatcherProvider>
  /** `server_listener_resource_name_template`, or undefined. */
  readonly serverListenerTemplate: string | undefined
}

/** The channel credential types the mesh can use, in the order gRPC documents them. */
const SUPPORTED_CREDENTIALS = ['insecure', 'tls']
const MAX_BOOTSTRAP_BYTES = 1024 * 1024
const DEFAULT_REFRESH_MS = 10 * 60_000

/**
 * The bootstrap for `createMesh({ xds })`: `xds.bootstrap` when given (a file path or the
 * object), else the environment as gRPC reads it. Throws `SIDECARLESS_ERR_XDS_BOOTSTRAP`.
 */
export function readBootstrap(given: string | object | undefined, env: NodeJS.ProcessEnv = process.env): XdsBootstrap {
  if (typeof given === 'string') return parseBootstrap(readJsonFile(given), given)
  if (given !== undefined) return parseBootstrap(given, 'xds.bootstrap')
  const file = env['GRPC_XDS_BOOTSTRAP']
  if (file !== undefined && file !== '') return parseBootstrap(readJsonFile(file), file)
  const text = env['GRPC_XDS_BOOTSTRAP_CONFIG']
  if (text !== undefined && text !== '') {
    let json: unknown
    try {
      json = JSON.parse(text)
    } catch (err) {
      throw bootstrapError('GRPC_XDS_BOOTSTRAP_CONFIG', `is not JSON: ${(err as Error).message}`)
    }
    return parseBootstrap(json, 'GRPC_XDS_BOOTSTRAP_CONFIG')
  }
  throw new MeshError(
    'SIDECARLESS_ERR_XDS_BOOTSTRAP',
    'xDS needs a bootstrap: set GRPC_XDS_BOOTSTRAP to the path of a gRPC xDS bootstrap file (istio-agent writes one), or GRPC_XDS_BOOTSTRAP_CONFIG to its JSON, or pass createMesh({ xds: { bootstrap } })',
  )
}

function readJsonFile(path: string): unknown {
  let text: string
  try {
    const size = statSync(path).size
    if (size > MAX_BOOTSTRAP_BYTES) throw new Error(`${size} bytes; the limit is ${MAX_BOOTSTRAP_BYTES}`)
    text = readFileSync(path, 'utf8')
  } catch (err) {
    throw new MeshError('SIDECARLESS_ERR_XDS_BOOTSTRAP', `cannot read the xDS bootstrap ${path}: ${(err as Error).message}`, { cause: err })
  }
  try {
    return JSON.parse(text)
  } catch (err) {
    throw new MeshError('SIDECARLESS_ERR_XDS_BOOTSTRAP', `the xDS bootstrap ${path} is not JSON: ${(err as Error).message}`, { cause: err })
  }
}

/** Validates a bootstrap object. Throws `SIDECARLESS_ERR_XDS_BOOTSTRAP` naming the field at fault. */
export function parseBootstrap(json: unknown, source: string): XdsBootstrap {
  const fail = (field: string, message: string): never => {
    throw bootstrapError(source, `${field} ${message}`)
  }
  if (!isObject(json)) fail('the bootstrap', 'must be a JSON object')
  const b = json as Record<string, unknown>
  const servers = b['xds_servers']
  if (!Array.isArray(servers) || servers.length === 0) fail('xds_servers', 'must be a non-empty list')
  let server: XdsServer | undefined
  ;(servers as unknown[]).forEach((s, i) => {
    const parsed = parseServer(s, `xds_servers[${i}]`, fail)
    server ??= parsed
  })
  if (server === undefined) fail('xds_servers', `has no server with a channel_creds type the mesh supports (${SUPPORTED_CREDENTIALS.join(', ')})`)
  const node = parseNode(b['node'], fail)
  const certificateProviders = new Map<string, FileWatcherProvider>()
  const providers = b['certificate_providers']
  if (providers !== undefined) {
    if (!isObject(providers)) fail('certificate_providers', 'must be an object of provider instances')
    for (const [name, p] of Object.entries(providers as Record<string, unknown>)) {
      certificateProviders.set(name, parseProvider(name, p, fail))
    }
  }
  const template = b['server_listener_resource_name_template']
  if (template !== undefined && typeof template !== 'string') fail('server_listener_resource_name_template', 'must be a string')
  return Object.freeze({
    source,
    server: server as XdsServer,
    node,
    certificateProviders,
    serverListenerTemplate: template as string | undefined,
  })
}

type Fail = (field: string, message: string) => never

/** One `xds_servers` entry; undefined when none of its credential types is supported. */
function parseServer(s: unknown, at: string, fail: Fail): XdsServer | undefined {
  if (!isObject(s)) return fail(at, 'must be an object')
  const uri = s['server_uri']
  if (typeof uri !== 'string' || uri === '') fail(`${at}.server_uri`, 'must be a non-empty string')
  const creds = s['channel_creds']
  if (!Array.isArray(creds)) return fail(`${at}.channel_creds`, 'must be a list')
  let credentials: XdsChannelCredentials | undefined
  creds.forEach((c: unknown, j) => {
    const here = `${at}.channel_creds[${j}]`
    if (!isObject(c) || typeof c['type'] !== 'string') fail(`${here}.type`, 'must be a string')
    const config = (c)['config']
    if (config !== undefined && !isObject(config)) fail(`${here}.config`, 'must be an object')
    // gRPC stops at the first type it supports.
    if (credentials !== undefined) return
    const type = (c)['type']
    if (type === 'insecure') credentials = { type: 'insecure' }
    else if (type === 'tls') credentials = tlsCredentials((config ?? {}), `${here}.config`, fail)
  })
  const features = s['server_features']
  if (features !== undefined && !Array.isArray(features)) fail(`${at}.server_features`, 'must be a list')
  if (credentials === undefined) return undefined
  const ignoreResourceDeletion = Array.isArray(features) && features.includes('ignore_resource_deletion')
  return { uri: uri, target: grpcTarget(uri), credentials, ignoreResourceDeletion }
}

function tlsCredentials(config: Record<string, unknown>, at: string, fail: Fail): XdsChannelCredentials {
  const file = (key: string): string | undefined => {
    const v = config[key]
    if (v === undefined) return undefined
    if (typeof v !== 'string' || v === '') return fail(`${at}.${key}`, 'must be a file path')
    return v
  }
  const certificateFile = file('certificate_file')
  const privateKeyFile = file('private_key_file')
  if ((certificateFile === undefined) !== (privateKeyFile === undefined)) fail(at, 'needs certificate_file and private_key_file together')
  return { type: 'tls', caCertificateFile: file('ca_certificate_file'), certificateFile, privateKeyFile }
}

function parseNode(n: unknown, fail: Fail): XdsBootstrapNode {
  if (n === undefined) return { id: '', cluster: '', metadata: {}, locality: undefined }
  if (!isObject(n)) return fail('node', 'must be an object')
  const str = (key: string): string => {
    const v = n[key]
    if (v === undefined) return ''
    if (typeof v !== 'string') return fail(`node.${key}`, 'must be a string')
    return v
  }
  const metadata = n['metadata']
  if (metadata !== undefined && !isObject(metadata)) fail('node.metadata', 'must be an object')
  let locality: XdsBootstrapNode['locality']
  const l = n['locality']
  if (l !== undefined && l !== null) {
    if (!isObject(l)) fail('node.locality', 'must be an object')
    const out: Record<string, string> = {}
    for (const key of ['region', 'zone', 'sub_zone']) {
      const v = (l)[key]
      if (v === undefined) continue
      if (typeof v !== 'string') fail(`node.locality.${key}`, 'must be a string')
      out[key] = v
    }
    locality = out
  }
  return { id: str('id'), cluster: str('cluster'), metadata: (metadata ?? {}), locality }
}

function parseProvider(name: string, p: unknown, fail: Fail): FileWatcherProvider {
  const at = `certificate_providers.${name}`
  if (!isObject(p)) return fail(at, 'must be an object')
  const plugin = p['plugin_name']
  if (plugin !== 'file_watcher') fail(`${at}.plugin_name`, `is ${JSON.stringify(plugin)}; the mesh supports "file_watcher" (as gRPC)`)
  const config = p['config']
  if (!isObject(config)) return fail(`${at}.config`, 'must be an object')
  const file = (key: string): string | undefined => {
    const v = config[key]
    if (v === undefined) return undefined
    if (typeof v !== 'string' || v === '') return fail(`${at}.config.${key}`, 'must be a file path')
    return v
  }
  const certificateFile = file('certificate_file')
  const privateKeyFile = file('private_key_file')
  const caCertificateFile = file('ca_certificate_file')
  if ((certificateFile === undefined) !== (privateKeyFile === undefined)) fail(`${at}.config`, 'needs certificate_file and private_key_file together')
  if (certificateFile === undefined && caCertificateFile === undefined) fail(`${at}.config`, 'needs certificate_file and private_key_file, or ca_certificate_file')
  let refreshIntervalMs = DEFAULT_REFRESH_MS
  const refresh = config['refresh_interval']
  if (refresh !== undefined) {
    // A protobuf Duration in JSON: "600s", "1.5s" (istio-agent writes "900s").
    const ms = typeof refresh === 'string' && /^\d+(\.\d+)?s$/.test(refresh) ? parseDuration(refresh) : undefined
    if (ms === undefined || ms <= 0) fail(`${at}.config.refresh_interval`, `is ${JSON.stringify(refresh)}; write a duration like "600s"`)
    refreshIntervalMs = ms
  }
  return { name, certificateFile, privateKeyFile, caCertificateFile, refreshIntervalMs }
}

/**
 * The gRPC target of a `server_uri`. `unix:` targets become `unix:<absolute path>`: gRPC
 * reads `unix:///path` as an empty authority and `/path`, so istio-agent's
 * `unix:///` + `/etc/istio/proxy/XDS` (four slashes) and `unix:///./etc/...` are the same
 * socket; `unix:relative` stays relative. Other schemes (`dns:///`, `ipv4:`, `host:port`)
 * pass unchanged.
 */
export function grpcTarget(uri: string): string {
  if (!uri.startsWith('unix:')) return uri
  let rest = uri.slice('unix:'.length)
  if (rest.startsWith('//')) {
    // unix://authority/path: the authority must be empty (or localhost) for a local socket.
    const slash = rest.indexOf('/', 2)
    const authority = slash === -1 ? rest.slice(2) : rest.slice(2, slash)
    if (authority !== '' && authority !== 'localhost') return uri
    rest = slash === -1 ? '/' : `/${rest.slice(slash + 1)}`
  }
  if (!isAbsolute(rest)) return `unix:${rest}`
  return `unix:${posix.normalize(rest)}`
}

/** The inbound Listener's name for a server bound to `address` (`0.0.0.0:8080`, `[::]:8080`). */
export function serverListenerName(template: string, address: string): string {
  return template.replaceAll('%s', address)
}

function bootstrapError(source: string, message: string): MeshError {
  return new MeshError('SIDECARLESS_ERR_XDS_BOOTSTRAP', `invalid xDS bootstrap (${source}): ${message}`)
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}
