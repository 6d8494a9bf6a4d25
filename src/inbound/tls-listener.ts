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
import { createServer, type Server as TlsServer, type TLSSocket } from 'node:tls'
import type { Duplex } from 'node:stream'
import type { InboundTls } from '../security/compile.js'
import { peerIdentity } from '../security/identity.js'
import type { MtlsMode } from '../config/types.js'
import type { CredentialStore } from '../security/tls.js'

/** The first byte of a TLS handshake record (ContentType handshake, RFC 8446 §5.1). */
const TLS_HANDSHAKE = 0x16

/** The mode for a connection accepted on `localPort`. */
export function modeFor(inbound: InboundTls, localPort: number | undefined): MtlsMode {
  return (localPort === undefined ? undefined : inbound.ports.get(localPort)) ?? inbound.mode
}

/**
 * The TLS side of one wrapped server: a node:tls Server that never listens, to which
 * mTLS connections are handed. node:tls does the handshake, the handshake timeout and the
 * client chain verification (`authorized`, which only a tls.Server computes); we add the
 * SPIFFE ID check. Its credentials follow the store: a new generation, a new context.
 */
export class MtlsFront {
  readonly #deliver: (s: Duplex) => void
  #server: TlsServer | undefined
  #inbound: InboundTls | undefined
  #generation = -1

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
    // Until a server owns the socket, errors (resets, garbage) are ours to swallow.
    const onError = (): void => {
      socket.destroy()
    }
    socket.on('error', onError)
    const timer = setTimeout(() => socket.destroy(), inbound.handshakeTimeoutMs)
    timer.unref()
    socket.once('close', () => clearTimeout(timer))
    socket.once('data', (chunk: Buffer) => {
      socket.pause()
      socket.unshift(chunk)
      if (chunk[0] !== TLS_HANDSHAKE) {
        if (mode === 'STRICT') {
          socket.destroy()
          return
        }
        clearTimeout(timer)
        socket.removeListener('error', onError)
        this.#deliver(socket)
        // The server may read the socket's handle directly; the bytes we read and unshifted
        // wait in the stream's buffer, which flows again only once resumed.
        socket.resume()
        return
      }
      // The timer stays: it bounds the handshake too (tls.Server's own timeout is longer).
      this.#tlsServer(inbound).emit('connection', socket)
    })
  }

  #tlsServer(inbound: InboundTls): TlsServer {
    const store = inbound.identity as CredentialStore
    const creds = store.current
    if (this.#server === undefined || this.#inbound !== inbound) {
      const server = createServer({
        cert: creds.certificate,
        key: creds.privateKey,
        ca: creds.trustBundle,
        requestCert: true,
        rejectUnauthorized: true,
        ALPNProtocols: ['http/1.1'],
        handshakeTimeout: inbound.handshakeTimeoutMs,
      })
      server.on('secureConnection', (tls: TLSSocket) => {
        // The chain is verified (rejectUnauthorized); now the identity: exactly one SPIFFE ID.
        if (!tls.authorized || peerIdentity(tls) === undefined) {
          tls.destroy()
          return
        }
        this.#deliver(tls)
        tls.resume()
      })
      server.on('tlsClientError', (_err, tls) => tls.destroy())
      this.#server = server
      this.#inbound = inbound
      this.#generation = creds.generation
    } else if (this.#generation !== creds.generation) {
      this.#server.setSecureContext({ cert: creds.certificate, key: creds.privateKey, ca: creds.trustBundle })
      this.#generation = creds.generation
    }
    return this.#server
  }
}
