/**
 * The admin endpoint of a control plane: `/clients` (every connected client: node,
 * versions sent and ACKed, last NACK, connected since), `/config_dump` (the resources
 * served, decoded), `/stats`, `/ready`, `/server_info`. GET only, no authentication, so it
 * is only ever bound to a loopback address (as `sidecarless proxy`'s).
 *
 * @module
 */
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import type { ControlPlaneServer } from './control-plane-server.js'

/** A running admin endpoint. */
export interface ControlPlaneAdmin {
  /** `host:port` it is bound to. */
  readonly address: string
  close(): Promise<void>
}

const ENDPOINTS = ['/clients', '/config_dump', '/stats', '/ready', '/server_info']

/** Starts the admin endpoint of `cp` on `host:port` (the caller checked `host` is loopback). */
export async function startControlPlaneAdmin(cp: ControlPlaneServer, host: string, port: number, info: { configPath: string | undefined }): Promise<ControlPlaneAdmin> {
  let closing = false
  const server = http.createServer({ maxHeaderSize: 8192 }, (req, res) => {
    req.resume()
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      send(res, 405, 'text/plain', 'method not allowed: the admin endpoint is GET only\n', { allow: 'GET, HEAD' })
      return
    }
    switch ((req.url ?? '/').split('?')[0]) {
      case '/ready':
        if (closing) send(res, 503, 'text/plain', 'DRAINING\n')
        else send(res, 200, 'text/plain', 'LIVE\n')
        return
      case '/clients':
        send(res, 200, 'application/json', json({ version: cp.version, versions: cp.versions, clients: cp.clients() }))
        return
      case '/config_dump':
        send(res, 200, 'application/json', json({ version: cp.version, versions: cp.versions, config: withoutSecrets(cp.config), resources: cp.resources() }))
        return
      case '/stats':
        send(res, 200, 'text/plain', `${Object.entries(cp.stats()).map(([k, v]) => `control_plane.${k}: ${v}`).join('\n')}\n`)
        return
      case '/server_info':
        send(res, 200, 'application/json', json({
          state: closing ? 'DRAINING' : 'LIVE',
          uptime_current_epoch: `${Math.floor((Date.now() - cp.startedAt) / 1000)}s`,
          node: process.version,
          pid: process.pid,
          memory: { rss: process.memoryUsage.rss(), heap_used: process.memoryUsage().heapUsed },
          cpu_us: process.cpuUsage(),
          address: cp.address,
          version: cp.version,
          versions: cp.versions,
          command_line_options: { config_path: info.configPath ?? null },
        }))
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
  return {
    address: bound.family === 'IPv6' ? `[${bound.address}]:${bound.port}` : `${bound.address}:${bound.port}`,
    close: () => {
      closing = true
      return new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      })
    },
  }
}

function send(res: http.ServerResponse, status: number, type: string, body: string, extra: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': type, 'content-length': String(Buffer.byteLength(body)), 'cache-control': 'no-store', ...extra })
  res.end(body)
}

function json(value: unknown): string {
  return `${JSON.stringify(value, null, 2)}\n`
}

const SECRET_KEY = /secret|password|passphrase|token|private|credential|^key$|apikey|api_key/i

/** The config with values under secret-sounding keys (private keys, tokens) replaced. */
function withoutSecrets(value: unknown, key = '', depth = 0): unknown {
  if (depth > 32) return '[redacted]'
  if (typeof value === 'string') return SECRET_KEY.test(key) ? '[redacted]' : value
  if (Array.isArray(value)) return value.map((v) => withoutSecrets(v, key, depth + 1))
  if (typeof value === 'object' && value !== null) {
    const out: Record<string, unknown> = {}
    for (const [k, v] of Object.entries(value)) out[k] = withoutSecrets(v, k, depth + 1)
    return out
  }
  return value
}
