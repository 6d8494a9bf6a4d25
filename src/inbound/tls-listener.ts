/**
 * Inbound mTLS on a plain node:http server (Istio `PeerAuthentication`). The server's
 * `connection` events pass through here first. Per connection, the mode is the one of the
 * server's local port (`portLevelMtls`) or the listener's:
 *
 * - `DISABLE`: the connection goes to the server untouched.
 * - `PERMISSIVE`: the first byte decides (Envoy's `tls_inspector`): 0x16, a TLS handshake
 *   record, means mTLS; anything else is plain HTTP, handed to the server as it came.
 * - `STRICT`: only mTLS. The connection is wrapped in TLS at once, as node's tls.Server does
 *   (no sniff: it cost a read, pause, unshift and resume per connection); a plain first
 *   byte fails the handshake and closes the connection.
 *
 * mTLS connections must present a client certificate that chains to the trust bundle and
 * carries a SPIFFE ID; otherwise the handshake fails or the connection is closed. A
 * connection that sends nothing, or does not finish its handshake, is closed after the
 * handshake timeout. Each new connection takes the credentials current at that moment, so
 * rotation needs no `setSecureContext`: open connections keep theirs.
 *
 * Sessions resume (tickets, TLS 1.2 and 1.3): the secure context carries a session id context
 * and rotating ticket keys (`security/server-context.ts`). A resumed session brings the
 * client certificate verified when it was made, under the same trust bundle; it is refused
 * if that certificate has expired since. ALPN follows `selectServerAlpn`: HTTP/1.1 for
 * standard clients and for Istio sidecars (`istio-http/1.1`, `istio`). Handshakes are
 * counted, full and resumed, in `snapshot().security.tls.downstream`.
 */
import type { Socket } from 'node:net'
import { createServer, TLSSocket, type Server as TlsServer } from 'node:tls'
import type { Duplex } from 'node:stream'
import type { InboundTls } from '../security/compile.js'
import { peerCertificateInForce, peerIdentity } from '../security/identity.js'
import { selectServerAlpn } from '../security/istio-tls.js'
import { serverContextOf } from '../security/server-context.js'
import { TlsCounters } from '../security/tls-stats.js'
import type { MtlsMode } from '../config/types.js'

/** The first byte of a TLS handshake record (ContentType handshake, RFC 8446 §5.1). */
const TLS_HANDSHAKE = 0x16

/** Node's ALPN hook: one function for every connection. */
const alpnCallback = ({ protocols }: { protocols: string[] }): string | undefined => selectServerAlpn(protocols)

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
  readonly #stats: TlsCounters
  #server: TlsServer | undefined
  readonly #pending = new Set<Socket>()

  /**
   * @param deliver hands a connection (plain or verified TLS) to the http server
   * @param stats where handshakes are counted (the mesh's metrics)
   */
  constructor(deliver: (s: Duplex) => void, stats: TlsCounters = new TlsCounters()) {
    this.#deliver = deliver
    this.#stats = stats
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
    const stats = this.#stats.downstream
    const timer = setTimeout(() => {
      // Silence, a slow handshake, or one node:tls left hanging: close both.
      if (tls !== undefined) stats.failed++
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
    if (mode === 'STRICT') {
      // Only TLS may come: wrap at once, as node's own tls.Server does. A plain first byte
      // fails the handshake (OpenSSL: wrong version number) and closes the connection, as the
      // sniff did, without the sniff's extra read, pause, unshift and resume per connection.
      tls = this.#secure(socket, store, settled)
      return
    }
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
        settled()
        socket.removeListener('error', onError)
        this.#deliver(socket)
        // The server may read the socket's handle directly; the bytes we read and unshifted
        // wait in the stream's buffer, which flows again only once resumed.
        socket.resume()
        return
      }
      // The timer stays: it bounds the handshake too.
      tls = this.#secure(socket, store, settled)
    })
  }

  /**
   * Runs the server side of the TLS handshake over `socket` and delivers the TLS socket once
   * the client chain verified and carries a SPIFFE ID; closes both sockets otherwise.
   * `settled` ends the connection's handshake timeout, which bounds the handshake too.
   */
  #secure(socket: Socket, store: NonNullable<InboundTls['identity']>, settled: () => void): TLSSocket {
    const stats = this.#stats.downstream
    this.#server ??= createServer()
    const t = new TLSSocket(socket, {
      isServer: true,
      server: this.#server,
      secureContext: serverContextOf(store),
      requestCert: true,
      rejectUnauthorized: true,
      ALPNCallback: alpnCallback,
    })
    let delivered = false
    let dropped = false
    const drop = (): void => {
      // Errors after delivery are the http server's connection errors, not handshake failures.
      if (!delivered && !dropped) stats.failed++
      dropped = true
      t.destroy()
      socket.destroy()
    }
    t.on('error', drop)
    t.once('close', () => socket.destroy())
    // http servers allow half-open sockets, and the TLS socket inherits that; a client that
    // ended before its handshake finished cannot finish it (a TCP probe, a client giving up).
    const ended = (): void => {
      dropped = true
      t.destroy()
      socket.destroy()
    }
    t.once('end', ended)
    t.once('secure', () => {
      t.removeListener('end', ended)
      if (chainError(t) !== null) {
        drop()
        return
      }
      // `peerIdentity` reads `authorized`, which only a listening tls.Server would set.
      t.authorized = true
      const resumed = t.isSessionReused()
      // A resumed session skips verification: its certificate was verified under this trust
      // bundle (the session id context says so), but may have expired since.
      if (resumed && !peerCertificateInForce(t)) {
        drop()
        return
      }
      if (peerIdentity(t) === undefined) {
        // A trusted chain without a (single, valid) SPIFFE ID: no identity, no mTLS.
        drop()
        return
      }
      stats.handshake(resumed)
      delivered = true
      settled()
      this.#deliver(t)
      t.resume()
    })
    return t
  }

  /** Closes connections not yet handed to the http server (called when it closes). */
  closePending(): void {
    for (const s of this.#pending) s.destroy()
    this.#pending.clear()
  }
}
