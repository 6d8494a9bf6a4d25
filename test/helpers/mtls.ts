/** Mesh servers with listener.mtls and raw TLS clients, for the resumption and interop tests. */
import type http from 'node:http'
import type https from 'node:https'
import type net from 'node:net'
import tls from 'node:tls'
import { createMesh, type Mesh, type MeshConfig } from '../../src/index.js'

/** A request carrying this header gets `Connection: close` back (each request a new connection). */
export const CLOSE_HEADER = 'x-test-close'

/** A mesh-wrapped server on port 0 that answers with the caller's identity. */
export interface ServedMesh {
  readonly mesh: Mesh
  readonly server: http.Server
  readonly port: number
  /** The peer identity the handler saw, one per request that reached it. */
  readonly seen: (string | undefined)[]
  close(): Promise<void>
}

/** Starts `mesh.createServer()` (or `mesh.wrap(http.createServer())` with `wrap`) with `config`. */
export async function serveMesh(config: MeshConfig, wrap = false, service?: string): Promise<ServedMesh> {
  const { default: httpModule } = await import('node:http')
  const mesh = createMesh(service === undefined ? { config } : { service, config })
  const seen: (string | undefined)[] = []
  const handler = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    const id = mesh.context()?.peer?.identity
    seen.push(id)
    if (req.headers[CLOSE_HEADER] !== undefined) res.setHeader('connection', 'close')
    res.end(`hello ${id ?? 'anonymous'}`)
  }
  const server = wrap ? mesh.wrap(httpModule.createServer(handler)) : mesh.createServer(handler)
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as net.AddressInfo).port
  return {
    mesh, server, port, seen,
    close: async () => {
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
      await mesh.close()
    },
  }
}

/** What one raw TLS request saw. */
export interface TlsExchange {
  /** The handshake resumed the offered session. */
  readonly reused: boolean
  /** The response body (empty on error). */
  readonly body: string
  /** The newest session the server gave (undefined if none came). */
  readonly session: Buffer | undefined
  /** The ALPN protocol the server selected (false: none). */
  readonly alpn: string | false
  /** The error code, when the connection failed. */
  readonly error: string | undefined
}

/** Options of {@link tlsRequest}: the client's certificate, and what goes in the ClientHello. */
export interface TlsRequestOptions {
  readonly port: number
  readonly cert: string
  readonly key: string
  readonly ca: string
  readonly session?: Buffer | undefined
  readonly maxVersion?: tls.SecureVersion
  readonly ALPNProtocols?: string[]
  readonly servername?: string
}

/**
 * One HTTP/1.1 request (`Connection: close`) over a new TLS connection, offering `session`
 * when given. Resolves when the server closes, whatever happened.
 */
export function tlsRequest(o: TlsRequestOptions): Promise<TlsExchange> {
  return new Promise((resolve) => {
    const socket = tls.connect({
      host: '127.0.0.1',
      port: o.port,
      cert: o.cert,
      key: o.key,
      ca: o.ca,
      // Mesh certificates name workloads, not hosts.
      checkServerIdentity: () => undefined,
      ...(o.session === undefined ? {} : { session: o.session }),
      ...(o.maxVersion === undefined ? {} : { maxVersion: o.maxVersion }),
      ...(o.ALPNProtocols === undefined ? {} : { ALPNProtocols: o.ALPNProtocols }),
      ...(o.servername === undefined ? {} : { servername: o.servername }),
    })
    let session: Buffer | undefined
    let data = ''
    let error: string | undefined
    let reused = false
    let alpn: string | false = false
    socket.on('session', (s: Buffer) => {
      session = s
    })
    socket.setEncoding('utf8')
    socket.on('data', (d: string) => {
      data += d
    })
    socket.once('secureConnect', () => {
      // Read now: a closed socket has no TLS handle left to ask.
      reused = socket.isSessionReused()
      alpn = socket.alpnProtocol ?? false
      socket.write('GET / HTTP/1.1\r\nHost: reviews\r\nConnection: close\r\n\r\n')
    })
    socket.on('error', (err: Error & { code?: string }) => {
      error = err.code ?? err.message
    })
    socket.on('close', () => {
      const body = data.includes('\r\n\r\n') ? data.slice(data.indexOf('\r\n\r\n') + 4) : ''
      resolve({ reused: error === undefined && reused, body, session, alpn, error })
    })
  })
}

/** A mesh config serving `identity` with `listener.mtls.mode`. */
export function listenerConfig(identity: NonNullable<MeshConfig['identity']>, mode: 'STRICT' | 'PERMISSIVE'): MeshConfig {
  return { identity, listener: { mtls: { mode } } }
}

/** Options of an https server presenting `identity` that requires a client certificate its trust bundle verifies. */
export function requireClientCert(identity: { readonly privateKey: string; readonly certificate: string; readonly trustBundle: string }): https.ServerOptions {
  return { key: identity.privateKey, cert: identity.certificate, ca: identity.trustBundle, requestCert: true, rejectUnauthorized: true }
}
