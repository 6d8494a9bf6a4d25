/**
 * The admin endpoint, after Envoy's, served by the mesh (`admin:` in its config) and by
 * `sidecarless proxy`: `/ready`, `/healthz`, `/stats`, `/stats/prometheus`, `/clusters`,
 * `/config_dump`, `/server_info`. GET only; it changes nothing.
 *
 * It has no authentication, so it binds to loopback ({@link adminBindAddress}). Bound to
 * another address (`allowNonLoopback`), it answers the probes and the metrics to anyone
 * who reaches it — the kubelet, Prometheus — and what shows the config to loopback peers
 * only, as Istio splits its status port from Envoy's admin. It never keeps the process
 * alive.
 *
 * @module
 */
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { formatListenAddress, isLoopback, parseListenAddress, type ListenAddress } from '../config/listen-address.js'
import type { AdminConfig } from '../config/types.js'
import { MeshError } from '../errors.js'
import type { Mesh } from '../mesh.js'

/** What the admin endpoint reports about the process around it. */
export interface AdminInfo {
  readonly version: string
  readonly startedAt: number
  /** The config file, when there is one. */
  readonly configPath: string | undefined
  /** Where the listener(s) are bound (the proxy's listener, the mesh's servers). */
  readonly listener: () => string
  /**
   * Envoy's server state: `LIVE` answers `/ready` with 200; any other (`DRAINING` once a
   * drain began) with 503.
   */
  readonly state: () => string
}

/** A running admin endpoint. */
export interface AdminServer {
  /** `host:port` it is bound to. */
  readonly address: string
  close(): Promise<void>
}

const ENDPOINTS = ['/ready', '/healthz', '/stats', '/stats/prometheus', '/clusters', '/config_dump', '/server_info']

/** What any peer may read on a non-loopback bind: probes and Prometheus' scrape. */
const PUBLIC = new Set(['/ready', '/healthz', '/stats/prometheus'])

/**
 * Where to bind the admin endpoint of `config`: its address when it is loopback or
 * `allowNonLoopback` says so; otherwise 127.0.0.1 on the same port, and `warn` says so.
 */
export function adminBindAddress(config: AdminConfig, warn: (message: string) => void): ListenAddress {
  const parsed = parseListenAddress(config.address)
  // Validation refused a bad address already; this guards direct callers.
  if (typeof parsed === 'string') throw new MeshError('SIDECARLESS_ERR_INVALID_ARGUMENT', `admin.address: ${parsed}`)
  if (isLoopback(parsed.host) || config.allowNonLoopback === true) return parsed
  warn(`the admin endpoint is bound to 127.0.0.1:${parsed.port}, not ${formatListenAddress(parsed.host, parsed.port)}: it has no authentication, so it stays on loopback (set admin.allowNonLoopback: true to serve probes and metrics on it)`)
  return { host: '127.0.0.1', port: parsed.port }
}

/** Starts the admin endpoint on `host:port` ({@link adminBindAddress} decides which). */
export async function startAdmin(mesh: Mesh, host: string, port: number, info: AdminInfo): Promise<AdminServer> {
  const restricted = !isLoopback(host)
  const server = http.createServer({ maxHeaderSize: 8192 }, (req, res) => {
    req.resume()
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      send(res, 405, 'text/plain', 'method not allowed: the admin endpoint is GET only\n', { allow: 'GET, HEAD' })
      return
    }
    const path = (req.url ?? '/').split('?')[0] ?? '/'
    if (restricted && !PUBLIC.has(path) && !isLoopback(peerHost(req))) {
      send(res, 403, 'text/plain', `forbidden: ${path} answers loopback peers only; from elsewhere: ${[...PUBLIC].join(' ')}\n`)
      return
    }
    switch (path) {
      case '/ready': {
        const state = info.state()
        if (state === 'LIVE') send(res, 200, 'text/plain', 'LIVE\n')
        else send(res, 503, 'text/plain', `${state}\n`)
        return
      }
      case '/healthz':
        // Liveness: the event loop answers. It stays 200 while draining, or the kubelet
        // would kill a pod that is finishing its requests.
        send(res, 200, 'text/plain', 'OK\n')
        return
      case '/stats':
        send(res, 200, 'text/plain', stats(mesh))
        return
      case '/stats/prometheus':
        send(res, 200, 'text/plain; version=0.0.4', mesh.metrics.prometheus())
        return
      case '/clusters':
        send(res, 200, 'text/plain', clusters(mesh))
        return
      case '/config_dump':
        send(res, 200, 'application/json', `${JSON.stringify({ version: mesh.version, config: redact(mesh.config), unsupported: mesh.unsupported }, null, 2)}\n`)
        return
      case '/server_info':
        send(res, 200, 'application/json', `${JSON.stringify(serverInfo(mesh, info), null, 2)}\n`)
        return
      default:
        send(res, 404, 'text/plain', `not found; endpoints: ${ENDPOINTS.join(' ')}\n`)
    }
  })
  server.headersTimeout = 10_000
  server.requestTimeout = 10_000
  // Probes use short connections; an idle one must not hold a closing process.
  server.keepAliveTimeout = 1_000
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, host, () => {
      server.off('error', reject)
      resolve()
    })
  })
  // The app decides when the process ends; the admin endpoint never holds it.
  server.unref()
  const bound = server.address() as AddressInfo
  const address = bound.family === 'IPv6' ? `[${bound.address}]:${bound.port}` : `${bound.address}:${bound.port}`
  return {
    address,
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections()
      server.close(() => resolve())
    }),
  }
}

/** The peer's address, IPv4-mapped IPv6 (`::ffff:127.0.0.1`) unmapped. */
function peerHost(req: http.IncomingMessage): string {
  const a = req.socket.remoteAddress ?? ''
  return a.startsWith('::ffff:') ? a.slice(7) : a
}

function send(res: http.ServerResponse, status: number, type: string, body: string, extra: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': type, 'content-length': String(Buffer.byteLength(body)), 'cache-control': 'no-store', ...extra })
  res.end(body)
}

/** Envoy's `/stats` text: `name: value`, one numeric metric a line, names from the metrics snapshot. */
function stats(mesh: Mesh): string {
  const lines: string[] = []
  const walk = (value: unknown, name: string): void => {
    if (typeof value === 'number') lines.push(`${name}: ${value}`)
    else if (typeof value === 'object' && value !== null) {
      for (const [k, v] of Object.entries(value)) walk(v, name === '' ? k : `${name}.${k}`)
    }
  }
  const snapshot: Record<string, unknown> = { ...mesh.metrics.snapshot() }
  delete snapshot['takenAt']
  walk(snapshot, '')
  return `${lines.join('\n')}\n`
}

/** Envoy's `/clusters` text: `cluster::host:port::field::value`. */
function clusters(mesh: Mesh): string {
  const lines: string[] = []
  for (const c of mesh.config.clusters ?? []) {
    lines.push(`${c.name}::default_priority::type::${c.type ?? 'static'}`)
    for (const e of c.endpoints ?? []) {
      const hostPort = e.address.replace(/^https?:\/\//, '')
      lines.push(`${c.name}::${hostPort}::weight::${e.weight ?? 1}`)
      for (const [k, v] of Object.entries(e.labels ?? {})) lines.push(`${c.name}::${hostPort}::label::${k}=${v}`)
    }
  }
  return `${lines.join('\n')}\n`
}

function serverInfo(mesh: Mesh, info: AdminInfo): Record<string, unknown> {
  return {
    version: info.version,
    state: info.state(),
    uptime_current_epoch: `${Math.floor((Date.now() - info.startedAt) / 1000)}s`,
    node: process.version,
    pid: process.pid,
    service: mesh.service ?? null,
    listener: info.listener(),
    config_version: mesh.version,
    command_line_options: { config_path: info.configPath ?? null },
  }
}

const SECRET_KEY = /secret|password|passphrase|token|private|credential|^key$|apikey|api_key/i
const SECRET_HEADER = /^(authorization|proxy-authorization|cookie|set-cookie|x-api-key)$|token|secret|password/i
/** A PEM private key block, wherever it appears (`-----BEGIN [RSA |EC |ENCRYPTED ]PRIVATE KEY-----`). */
const PEM_PRIVATE_KEY = /-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----/

/**
 * A copy of the config safe to show: values under secret-sounding keys, values of
 * credential headers the config adds, any string holding a PEM private key, and passwords
 * in URLs (`redis://:pw@host`) are replaced by `[redacted]`.
 */
export function redact(value: unknown, key = '', depth = 0): unknown {
  if (depth > 32) return '[redacted]'
  if (typeof value === 'string') {
    if (SECRET_KEY.test(key) || PEM_PRIVATE_KEY.test(value)) return '[redacted]'
    return value.replace(/^([a-z][a-z0-9+.-]*:\/\/)([^/@\s]*)@/i, '$1[redacted]@')
  }
  if (Array.isArray(value)) return value.map((v) => redact(v, key, depth + 1))
  if (typeof value === 'object' && value !== null) {
    const obj = value as Record<string, unknown>
    const out: Record<string, unknown> = {}
    const header = key === 'header' && typeof obj['key'] === 'string' && SECRET_HEADER.test(obj['key'])
    for (const [k, v] of Object.entries(obj)) {
      if (header && k === 'value') out[k] = '[redacted]'
      else if (k === 'key' && key === 'header') out[k] = v
      else out[k] = redact(v, k, depth + 1)
    }
    return out
  }
  return value
}
