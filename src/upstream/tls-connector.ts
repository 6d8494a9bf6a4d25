/**
 * The connector of clusters with `tls`: it dials TLS whatever the endpoint URL's scheme
 * (Istio's DestinationRule upgrades plain endpoints the same way), with the cluster's
 * current credentials, so a rotation reaches every NEW connection while open ones finish
 * on theirs. After the handshake, and before undici gets the socket (so before any request
 * byte is written), the server's SPIFFE ID is checked against `verifyIdentities`; a
 * mismatch destroys the socket and fails the connect with `SIDECARLESS_ERR_PEER_IDENTITY`.
 */
import { connect as tlsConnect, type ConnectionOptions, type SecureContext, type TLSSocket } from 'node:tls'
import { checkServerIdentity } from 'node:tls'
import type { buildConnector } from 'undici'
import { MeshError } from '../errors.js'
import { peerIdentity } from '../security/identity.js'

/** The TLS settings of a cluster's connections, compiled. */
export interface UpstreamTls {
  /** Distinguishes pools: two clusters with different TLS never share connections. */
  readonly key: string
  /** SNI to send; undefined: the endpoint host name when it is not an IP. */
  readonly sni: string | undefined
  /** Tests the server's SPIFFE ID; null: no identity check. */
  readonly verify: ((id: string) => boolean) | null
  /** Verify the server's host name (standard HTTPS); off when identities are verified instead, or for mutual. */
  readonly checkHostname: boolean
  /** The secure context for a new connection (the current credentials). */
  context(): SecureContext
}

const IPV4 = /^\d{1,3}(\.\d{1,3}){3}$/

/** How a host of a DNS cluster is dialled (see `HostDial`). */
export interface TlsDial {
  /** The host's SNI when its address is a resolved IP (strict_dns): the endpoint's DNS name. */
  readonly servername?: string | undefined
  /** A logical_dns host's lookup, answering from its cluster's latest DNS answer. */
  readonly lookup?: NonNullable<ConnectionOptions['lookup']>
  readonly autoSelectFamily?: boolean
}

/** An undici `connect` function for `tls`, with a connect (and handshake) timeout. */
export function createTlsConnector(tls: UpstreamTls, timeoutMs: number, dial: TlsDial = {}): buildConnector.connector {
  return (opts, callback) => {
    let done = false
    const finish = (err: Error | null, socket?: TLSSocket): void => {
      if (done) return
      done = true
      clearTimeout(timer)
      if (err === null) callback(null, socket as TLSSocket)
      else callback(err, null)
    }
    const hostname = opts.hostname.startsWith('[') ? opts.hostname.slice(1, -1) : opts.hostname
    const named = IPV4.test(hostname) || hostname.includes(':') ? dial.servername : hostname
    const servername = tls.sni ?? named
    const options: ConnectionOptions & { localAddress?: string; autoSelectFamily?: boolean } = {
      host: hostname,
      port: Number(opts.port) || 443,
      secureContext: tls.context(),
      rejectUnauthorized: true,
      ALPNProtocols: ['http/1.1'],
      checkServerIdentity: tls.checkHostname ? (host, cert) => checkServerIdentity(servername ?? host, cert) : () => undefined,
    }
    if (servername !== undefined) options.servername = servername
    if (opts.localAddress != null) options.localAddress = opts.localAddress
    if (dial.lookup !== undefined) options.lookup = dial.lookup
    if (dial.autoSelectFamily !== undefined) options.autoSelectFamily = dial.autoSelectFamily
    const socket = tlsConnect(options)
    socket.setNoDelay(true)
    socket.setKeepAlive(true, 60_000)
    const timer = setTimeout(() => {
      socket.destroy()
      finish(Object.assign(new Error(`connect timeout (${timeoutMs}ms, TLS)`), { code: 'UND_ERR_CONNECT_TIMEOUT' }))
    }, timeoutMs)
    socket.once('secureConnect', () => {
      if (tls.verify !== null) {
        const id = peerIdentity(socket)
        if (id === undefined || !tls.verify(id)) {
          socket.destroy()
          finish(new MeshError('SIDECARLESS_ERR_PEER_IDENTITY', id === undefined
            ? `the upstream ${hostname}:${opts.port} presented no SPIFFE ID`
            : `the upstream ${hostname}:${opts.port} is ${id}, not an identity tls.verifyIdentities allows`))
          return
        }
      }
      finish(null, socket)
    })
    // Kept for the socket's life: once undici has the socket it handles errors itself.
    socket.on('error', (err: Error) => finish(err))
  }
}
