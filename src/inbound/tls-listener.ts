/**
 * Inbound mTLS on a plain node:http server (Istio `PeerAuthentication`). The server's
 * `connection` events pass through here first. Per connection, the mode is the one of the
 * server's local port (`portLevelMtls`) or the listener's:
 *
 * - `DISABLE`: the connection goes to the server untouched.
 * - `PERMISSIVE`: the first byte decides (Envoy's `tls_inspector`): 0x16, a TLS handshake
 *   record, means mTLS; anything else is plain HTTP, handed to the server as it came.
 * - `STRICT`: only mTLS; a plain first byte closes the connection.
 *
 * mTLS connections must present a client certificate that chains to the trust bundle and
 * carries a SPIFFE ID; otherwise the handshake fails or the connection is closed. A
 * connection that sends nothing, or does not finish its handshake, is closed after the
 * handshake timeout. Each new connection takes the credentials current at that moment, so
 * rotation needs no `setSecureContext`: open connections keep theirs.
 */
import type { Socket } from 'node:net'
import { createServer, TLSSocket, type Server as TlsServer } from 'node:tls'
import type { Duplex } from 'node:stream'
import type { InboundTls } from '../security/compile.js'
import { peerIdentity } from '../security/identity.js'
import type { MtlsMode } from '../config/types.js'

/** The first byte of a TLS handshake record (ContentType handshake, RFC 8446 §5.1). */
const TLS_HANDSHAKE = 0x16

/** The mode for a connection accepted on `localPort`. */
export function modeFor(inbound: InboundTls, localPort: number | undefined): MtlsMode {
  return (localPort === undefined ? undefined : inbound.ports.get(localPort)) ?? inbound.mode
}

/**
 * Whether the client chain of a server-side TLS socket failed verification. node:tls
 * computes `authorized` only for sockets a listening tls.Server made; ours are made here,
 * so we ask the handle as node:tls itself does. Fails closed if that ever goes away.
 */
function chainError(tls: TLSSocket): unknown {
  const ssl = (tls as unknown as { ssl?: { verifyError?: () => unknown } }).ssl
  if (typeof ssl?.verifyError !== 'function') return new Error('client certificate cannot be verified')
  return ssl.verifyError() ?? null
}

/**
 * The TLS side of one wrapped server. Each mTLS connection gets a server-side TLSSocket
 * over the raw socket; after the handshake the client chain must verify against the trust
 * bundle and carry a SPIFFE ID. On any failure both sockets are closed (the raw socket is
 * the one the http server counts; its close() waits for it). Connections still sniffing or
 * in their handshake are tracked, so `closePending()` can end them when the server closes.
 */
export class MtlsFront {
  readonly #deliver: (s: Duplex) => void
  #server: TlsServer | undefined
  readonly #pending = new Set<Socket>()

  constructor(deliver: (s: Duplex) => void) {
    this.#deliver = deliver
  }

  /**
   * Takes a new connection of the plain http server and hands the server either the socket
   * itself (plain HTTP) or a verified TLS socket; drops it otherwise.
   */
  accept(socket: Socket, inbound: InboundTls): void {
    const mode = modeFor(inbound, socket.localPort)
    if (mode === 'DISABLE' || inbound.identity === null) {
      this.#deliver(socket)
      return
    }
    const store = inbound.identity
    // Until a server owns the socket, errors (resets, garbage) are ours to swallow.
    const onError = (): void => {
      socket.destroy()
    }
    socket.on('error', onError)
    let tls: TLSSocket | undefined
    const timer = setTimeout(() => {
      // Silence, a slow handshake, or one node:tls left hanging: close both.
      tls?.destroy()
      socket.destroy()
    }, inbound.handshakeTimeoutMs)
    timer.unref()
    this.#pending.add(socket)
    const settled = (): void => {
      clearTimeout(timer)
      this.#pending.delete(socket)
    }
    socket.once('close', settled)
    // http servers allow half-open sockets: one that ends before its first byte is done with.
    const onEnd = (): void => {
      socket.destroy()
    }
    socket.once('end', onEnd)
    socket.once('data', (chunk: Buffer) => {
      socket.removeListener('end', onEnd)
      socket.pause()
      socket.unshift(chunk)
      if (chunk[0] !== TLS_HANDSHAKE) {
        if (mode === 'STRICT') {
          socket.destroy()
          return
        }
        settled()
        socket.removeListener('error', onError)
        this.#deliver(socket)
        // The server may read the socket's handle directly; the bytes we read and unshifted
        // wait in the stream's buffer, which flows again only once resumed.
        socket.resume()
        return
      }
      // The timer stays: it bounds the handshake too.
      this.#server ??= createServer()
      tls = new TLSSocket(socket, {
        isServer: true,
        server: this.#server,
        secureContext: store.current.secureContext,
        requestCert: true,
        rejectUnauthorized: true,
        ALPNProtocols: ['http/1.1'],
      })
      const t = tls
      const drop = (): void => {
        t.destroy()
        socket.destroy()
      }
      t.on('error', drop)
      t.once('close', () => socket.destroy())
      t.once('secure', () => {
        if (chainError(t) !== null) {
          drop()
          return
        }
        // `peerIdentity` reads `authorized`, which only a listening tls.Server would set.
        t.authorized = true
        if (peerIdentity(t) === undefined) {
          // A trusted chain without a (single, valid) SPIFFE ID: no identity, no mTLS.
          drop()
          return
        }
        settled()
        this.#deliver(t)
        t.resume()
      })
    })
  }

  /** Closes connections not yet handed to the http server (called when it closes). */
  closePending(): void {
    for (const s of this.#pending) s.destroy()
    this.#pending.clear()
  }
}
