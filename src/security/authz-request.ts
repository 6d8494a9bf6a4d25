/**
 * What authorization reads of an inbound request, computed only when a policy asks: the
 * normalised path, the peer's principal and namespace, the JWT facts, addresses and ports.
 */
import type http from 'node:http'
import type { TLSSocket } from 'node:tls'
import type { RequestAuth } from './jwt.js'
import { normalizePath } from './path-normalize.js'
import { namespaceOf, principalOf } from './spiffe.js'
import { unmapped } from '../config/ip-block.js'

/** One inbound request as authorization policies see it. */
export class AuthzRequest {
  readonly #req: http.IncomingMessage
  readonly #identity: string | undefined
  #path: string | undefined
  #peerResolved = false
  #principal: string | undefined
  #namespace: string | undefined

  /**
   * @param identity the peer's SPIFFE ID when the listener knows it (`peerOf(req).identity`);
   *   otherwise it is read from the TLS socket's verified peer certificate, if any.
   */
  constructor(req: http.IncomingMessage, identity: string | undefined, readonly auth: RequestAuth | undefined) {
    this.#req = req
    this.#identity = identity
  }

  get method(): string {
    return this.#req.method ?? 'GET'
  }

  /** The path without the query, normalised. */
  get path(): string {
    return (this.#path ??= normalizePath(this.#req.url ?? '/'))
  }

  /** The Host header (lower case), or `undefined`. */
  get host(): string | undefined {
    const h = this.#req.headers.host
    return h === undefined ? undefined : h.toLowerCase()
  }

  /** The local port the request arrived on, as a string. */
  get port(): string | undefined {
    const p = this.#req.socket.localPort
    return p === undefined ? undefined : String(p)
  }

  get sourceIp(): string | undefined {
    const a = this.#req.socket.remoteAddress
    return a === undefined ? undefined : unmapped(a)
  }

  get destinationIp(): string | undefined {
    const a = this.#req.socket.localAddress
    return a === undefined ? undefined : unmapped(a)
  }

  /** TLS SNI of the connection, when TLS. */
  get sni(): string | undefined {
    const s = this.#req.socket as Partial<TLSSocket>
    return typeof s.servername === 'string' ? s.servername : undefined
  }

  /** Istio principal of the mTLS peer (`td/ns/x/sa/y`). */
  get principal(): string | undefined {
    this.#resolvePeer()
    return this.#principal
  }

  get namespace(): string | undefined {
    this.#resolvePeer()
    return this.#namespace
  }

  get requestPrincipal(): string | undefined {
    return this.auth?.principal
  }

  /** A request header's value(s). */
  header(name: string): string | undefined {
    const v = this.#req.headers[name]
    return Array.isArray(v) ? v.join(', ') : v
  }

  #resolvePeer(): void {
    if (this.#peerResolved) return
    this.#peerResolved = true
    // The peer's SPIFFE ID as peerOf() read it (src/security/identity.ts: verified peers only).
    const id = this.#identity
    this.#principal = principalOf(id)
    this.#namespace = namespaceOf(id)
  }
}
