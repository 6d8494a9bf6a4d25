/**
 * The connector of clusters with `tls`: it dials TLS whatever the endpoint URL's scheme
 * (Istio's DestinationRule upgrades plain endpoints the same way), with the cluster's
 * current credentials, so a rotation reaches every NEW connection while open ones finish
 * on theirs. After the handshake, and before undici gets the socket (so before any request
 * byte is written), the server's SPIFFE ID is checked against `verifyIdentities`; a
 * mismatch destroys the socket and fails the connect with `SIDECARLESS_ERR_PEER_IDENTITY`.
 *
 * Sessions resume: each connector (one per upstream host) keeps the newest session per
 * server name, tied to the credentials it was made with ({@link TlsSessionCache}), and
 * offers it on the next connection. A resumed connection has the server identity its
 * session's full handshake verified (Node shows no peer certificate on a resumed client
 * session), and `verifyIdentities` is checked against it as after a full handshake.
 */
import { connect as tlsConnect, type ConnectionOptions, type TLSSocket } from 'node:tls'
import { checkServerIdentity } from 'node:tls'
import type { buildConnector } from 'undici'
import { defaults } from '../config/defaults.js'
import { MeshError } from '../errors.js'
import { peerIdentity, spiffeIdOfCertificate } from '../security/identity.js'
import type { TlsCounters } from '../security/tls-stats.js'
import type { UpstreamTls } from '../security/upstream-tls.js'
import { TlsSessionCache, type CachedSession } from './tls-session-cache.js'
import { SHARED_READ, type SharedReadConnector } from './h1/shared-read.js'

const IPV4 = /^\d{1,3}(\.\d{1,3}){3}$/

/** How a host of a DNS cluster is dialled (see `HostDial`). */
export interface TlsDial {
  /** The host's SNI when its address is a resolved IP (strict_dns): the endpoint's DNS name. */
  readonly servername?: string | undefined
  /** A logical_dns host's lookup, answering from its cluster's latest DNS answer. */
  readonly lookup?: NonNullable<ConnectionOptions['lookup']>
  readonly autoSelectFamily?: boolean
}

/**
 * An undici `connect` function for `tls`, with a connect (and handshake) timeout; its sockets
 * read into the shared buffer, its `streaming` twin's do not (both share the session cache). `dial`
 * says how a host of a DNS cluster is dialled; `stats` gives where handshakes are counted
 * (read per handshake: the mesh sets it after its pools may exist).
 */
export function createTlsConnector(tls: UpstreamTls, timeoutMs: number, dial: TlsDial = {}, stats: () => TlsCounters | undefined = () => undefined): SharedReadConnector {
  const sessions = new TlsSessionCache(defaults.tlsClientSessionsPerHost)
  const alpn = [...tls.alpn]
  // One session cache for both kinds of socket: a stream-mode connection resumes too.
  return Object.assign(connector(true), { streaming: connector(false) })

  function connector(sharedRead: boolean): buildConnector.connector {
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
      const port = Number(opts.port) || 443
      const context = tls.context()
      const sessionKey = `${servername ?? ''}|${hostname}|${port}`
      const offered = sessions.get(context, sessionKey)
      let certified: Omit<CachedSession, 'session'> | undefined
      const options: ConnectionOptions & { localAddress?: string; autoSelectFamily?: boolean } = {
        host: hostname,
        port,
        secureContext: context,
        rejectUnauthorized: true,
        ALPNProtocols: alpn,
        // Node calls this after a full handshake whose chain verified (not on resumption), with the
        // certificate it has already decoded: what the handshake verified is taken from there.
        checkServerIdentity: (host, cert) => {
          certified = { identity: spiffeIdOfCertificate(cert.raw), notAfter: Date.parse(cert.valid_to) || 0 }
          return tls.checkHostname ? checkServerIdentity(servername ?? host, cert) : undefined
        },
      }
      if (servername !== undefined) options.servername = servername
      if (offered !== undefined) options.session = offered.session
      if (sharedRead) (options as ConnectionOptions & { onread?: unknown }).onread = SHARED_READ
      if (opts.localAddress != null) options.localAddress = opts.localAddress
      if (dial.lookup !== undefined) options.lookup = dial.lookup
      if (dial.autoSelectFamily !== undefined) options.autoSelectFamily = dial.autoSelectFamily
      const socket = tlsConnect(options)
      socket.setNoDelay(true)
      socket.setKeepAlive(true, 60_000)
      // A connection refused before TCP connected (refused, unreachable) is no TLS failure.
      let connected = false
      socket.once('connect', () => {
        connected = true
      })
      const failed = (): void => {
        const s = stats()
        if (s !== undefined && connected) s.upstream.failed++
        // A session from a connection that failed is not offered again.
        sessions.delete(sessionKey)
      }
      const timer = setTimeout(() => {
        socket.destroy()
        failed()
        finish(Object.assign(new Error(`connect timeout (${timeoutMs}ms, TLS)`), { code: 'UND_ERR_CONNECT_TIMEOUT' }))
      }, timeoutMs)
      // What this connection's handshake verified; sessions are stored only once it is known.
      let verified: Omit<CachedSession, 'session'> | undefined
      let pending: Buffer | undefined
      const store = (session: Buffer): void => {
        // Only while the credentials it was made with are still the current ones.
        if (verified !== undefined && tls.context() === context) sessions.set(context, sessionKey, { session, ...verified })
      }
      // TLS 1.3 sends tickets after the handshake, TLS 1.2 during it (before it is verified).
      socket.on('session', (session: Buffer) => {
        if (verified === undefined) pending = session
        else store(session)
      })
      socket.once('secureConnect', () => {
        const resumed = socket.isSessionReused()
        let id: string | undefined
        if (resumed) {
          // Node offered the session we gave it; its full handshake verified this identity.
          if (offered === undefined) {
            socket.destroy()
            failed()
            finish(new MeshError('SIDECARLESS_ERR_PEER_IDENTITY', `the upstream ${hostname}:${opts.port} resumed a session the mesh did not offer`))
            return
          }
          id = offered.identity
          verified = { identity: id, notAfter: offered.notAfter }
        } else {
          verified = certified ?? { identity: peerIdentity(socket), notAfter: 0 }
          id = verified.identity
        }
        if (tls.verify !== null) {
          if (id === undefined || !tls.verify(id)) {
            verified = undefined
            socket.destroy()
            failed()
            finish(new MeshError('SIDECARLESS_ERR_PEER_IDENTITY', id === undefined
              ? `the upstream ${hostname}:${opts.port} presented no SPIFFE ID`
              : `the upstream ${hostname}:${opts.port} is ${id}, not an identity tls.verifyIdentities allows`))
            return
          }
        }
        stats()?.upstream.handshake(resumed)
        if (pending !== undefined) store(pending)
        pending = undefined
        finish(null, socket)
      })
      // Kept for the socket's life: once undici has the socket it handles errors itself.
      socket.on('error', (err: Error) => {
        if (!done) failed()
        finish(err)
      })
    }
  }
}
