/**
 * The other end of an inbound request's connection, as the chain and `mesh.context()` report it.
 */
import type http from 'node:http'
import type { TLSSocket } from 'node:tls'
import { peerIdentity } from '../security/identity.js'

/**
 * The peer of a request's connection: address, port and, over verified (m)TLS, the SPIFFE ID
 * of the client certificate (read once per connection and cached on the socket).
 */
export function peerOf(req: http.IncomingMessage): { address: string; port: number; identity?: string } | undefined {
  const s = req.socket as TLSSocket | undefined
  if (s?.remoteAddress === undefined) return undefined
  const identity = s.encrypted === true ? peerIdentity(s) : undefined
  return identity === undefined ? { address: s.remoteAddress, port: s.remotePort ?? 0 } : { address: s.remoteAddress, port: s.remotePort ?? 0, identity }
}
