/**
 * The admin endpoint of `sidecarless proxy`, after Envoy's: `/ready`, `/stats`,
 * `/stats/prometheus`, `/clusters`, `/config_dump`, `/server_info`. GET only; it changes
 * nothing. It has no authentication, so it is only ever bound to a loopback address.
 *
 * @module
 */
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Mesh } from '../mesh.js'

/** What the admin endpoint reports about the proxy around it. */
export interface AdminInfo {
  readonly version: string
  readonly startedAt: number
  readonly configPath: string
  /** Where the proxy's listener is bound. */
  readonly listener: () => string
  /** LIVE, or DRAINING once a stop began. */
  readonly state: () => 'LIVE' | 'DRAINING'
}

/** A running admin endpoint. */
export interface AdminServer {
  /** `host:port` it is bound to. */
  readonly address: string
  close(): Promise<void>
}

const ENDPOINTS = ['/ready', '/stats', '/stats/prometheus', '/clusters', '/config_dump', '/server_info']

/** Starts the admin endpoint on `host:port` (the caller has made sure `host` is loopback). */
export async function startAdmin(mesh: Mesh, host: string, port: number, info: AdminInfo): Promise<AdminServer> {
  const server = http.createServer({ maxHeaderSize: 8192 }, (req, res) => {
    req.resume()
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      send(res, 405, 'text/plain', 'method not allowed: the admin endpoint is GET only\n', { allow: 'GET, HEAD' })
      return
    }
    const path = (req.url ?? '/').split('?')[0]
    switch (path) {
      case '/ready':
        if (info.state() === 'LIVE') send(res, 200, 'text/plain', 'LIVE\n')
        else send(res, 503, 'text/plain', 'DRAINING\n')
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
        // With xDS: every resource's version, ACK/NACK state and last refusal (CSDS's view), beside the config they made.
        send(res, 200, 'application/json', `${JSON.stringify({ version: mesh.version, config: redact(mesh.config), unsupported: mesh.unsupported, xds: mesh.xds === undefined ? undefined : redact(mesh.xds.status()) }, null, 2)}\n`)
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
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, host, () => {
      server.off('error', reject)
      resolve()
    })
  })
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
    listener: info.listener(),
    config_version: mesh.version,
    command_line_options: { config_path: info.configPath },
  }
}

const SECRET_KEY = /secret|password|passphrase|token|private|credential|^key$|apikey|api_key/i
const SECRET_HEADER = /^(authorization|proxy-authorization|cookie|set-cookie|x-api-key)$|token|secret|password/i

/**
 * A copy of the config safe to show: values under secret-sounding keys, values of
 * credential headers the config adds, and passwords in URLs (`redis://:pw@host`) are
 * replaced by `[redacted]`.
 */
export function redact(value: unknown, key = '', depth = 0): unknown {
  if (depth > 32) return '[redacted]'
  if (typeof value === 'string') {
    if (SECRET_KEY.test(key)) return '[redacted]'
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
