/**
 * The called service of bench/side-by-side.mjs, one process per kind:
 *
 *   plain        http.createServer(handler)                      (never imports the mesh)
 *   https-mtls   https.createServer({ requestCert, rejectUnauthorized }, handler)
 *   mesh         mesh.createServer(handler), default config (PERMISSIVE, no identity)
 *   mesh-strict  mesh.createServer(handler), identity + listener.mtls STRICT
 *   h2-mtls      http2.createSecureServer({ allowHTTP1, requestCert, rejectUnauthorized }, handler):
 *                HTTP/2 by ALPN (HTTP/1.1 otherwise), the compat API's req/res
 *
 * The handler is the same everywhere: a fixed 56-byte JSON body. It also notes, for the
 * first request after a `probe-reset`, whether a traceparent came in and which client
 * identity was seen, so the parent can check that an arm really runs the path it names.
 */
import { createServer as createHttpServer } from 'node:http'
import { createServer as createHttpsServer } from 'node:https'
import { createSecureServer as createHttp2Server } from 'node:http2'
import { serve } from './ipc.mjs'

const BODY = Buffer.from('{"id":1,"reviews":[{"reviewer":"jason","text":"ok"}]}\n')
const HEADERS = { 'content-type': 'application/json', 'content-length': String(BODY.length) }

let server
let mesh
let served = 0
let connections = 0
let probing = false
let probe

function handler(req, res) {
  served++
  if (probing) {
    probing = false
    probe = {
      traceparent: req.headers.traceparent !== undefined,
      xfcc: req.headers['x-forwarded-client-cert'],
      peer: mesh !== undefined ? mesh.context()?.peer?.identity : peerOfSocket(req.socket),
    }
  }
  if (req.readableLength > 0 || !req.complete) req.resume()
  res.writeHead(200, HEADERS)
  res.end(BODY)
}

/** The URI SAN of a node:https client certificate (the SPIFFE ID), if any. */
function peerOfSocket(socket) {
  const cert = typeof socket.getPeerCertificate === 'function' ? socket.getPeerCertificate() : undefined
  const uri = /URI:([^,\s]+)/.exec(cert?.subjectaltname ?? '')
  return uri?.[1]
}

serve({
  async start({ kind, credentials }) {
    if (kind === 'plain') {
      server = createHttpServer(handler)
    } else if (kind === 'https-mtls') {
      server = createHttpsServer({
        key: credentials.privateKey,
        cert: credentials.certificate,
        ca: credentials.trustBundle,
        requestCert: true,
        rejectUnauthorized: true,
      }, handler)
    } else if (kind === 'h2-mtls') {
      server = createHttp2Server({
        key: credentials.privateKey,
        cert: credentials.certificate,
        ca: credentials.trustBundle,
        requestCert: true,
        rejectUnauthorized: true,
        allowHTTP1: true,
      }, handler)
    } else if (kind === 'mesh' || kind === 'mesh-strict') {
      const { createMesh } = await import('../../dist/index.js')
      mesh = createMesh({
        service: 'reviews',
        config: kind === 'mesh' ? {} : { identity: credentials, listener: { mtls: { mode: 'STRICT' } } },
      })
      server = mesh.createServer(handler)
    } else {
      throw new Error(`unknown server kind ${kind}`)
    }
    // Keep connections across rounds; clients decide when to close them.
    server.keepAliveTimeout = 120_000
    server.headersTimeout = 130_000
    server.requestTimeout = 0
    server.on('connection', () => connections++)
    await new Promise((resolve, reject) => {
      server.once('error', reject)
      server.listen(0, '127.0.0.1', resolve)
    })
    return { port: server.address().port }
  },
  'probe-reset': () => {
    probing = true
    probe = undefined
    return {}
  },
  stats: () => ({ served, connections, probe, inbound: mesh === undefined ? undefined : inboundRequests() }),
}, {
  onDisconnect: async () => {
    server?.closeAllConnections?.()
    server?.close()
    await mesh?.close()
  },
})

/** Requests the mesh's inbound metrics counted (proof the mesh was on the path). */
function inboundRequests() {
  let n = 0
  for (const r of Object.values(mesh.metrics.snapshot().inbound?.routes ?? {})) n += r.requests ?? 0
  return n
}
