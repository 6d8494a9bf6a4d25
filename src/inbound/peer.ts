/**
 * The other end of an inbound request's connection, as the chain and `mesh.context()` report it.
 */
import type http from 'node:http'
import type { TLSSocket } from 'node:tls'
import type { Peer } from '../observability/context.js'
import { peerIdentity } from '../security/identity.js'

const PEER = Symbol('sidecarless.peer')

/**
 * The peer of a request's connection: address, port and, over verified (m)TLS, the SPIFFE ID
 * of the client certificate. Made once per connection (frozen, and kept on the socket): the
 * requests of a keep-alive connection share it.
 */
export function peerOf(req: http.IncomingMessage): Peer | undefined {
  const s = req.socket as (TLSSocket & { [PEER]?: Peer }) | undefined
  if (s === undefined) return undefined
  const cached = s[PEER]
  if (cached !== undefined) return cached
  if (s.remoteAddress === undefined) return undefined
  const identity = s.encrypted === true ? peerIdentity(s) : undefined
  const peer: Peer = Object.freeze(identity === undefined ? { address: s.remoteAddress, port: s.remotePort ?? 0 } : { address: s.remoteAddress, port: s.remotePort ?? 0, identity })
  s[PEER] = peer
  return peer
}
