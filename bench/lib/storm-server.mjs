/**
 * The called service of bench/pool-storm.mjs: a mesh server with STRICT mTLS (`mesh-strict`)
 * or a plain node:http server (`plain`), the same 56-byte JSON body, and a way to make it
 * hiccup: `stalls` blocks its event loop for `ms` every `every` ms (a GC pause, a slow
 * synchronous handler, a neighbour taking the core), so the client's requests queue.
 * `stats` reports the connections it accepted and, for the mesh, its TLS handshakes.
 */
import { createServer as createHttpServer } from 'node:http'
import { clearInterval, setInterval } from 'node:timers'
import { serve } from './ipc.mjs'

const BODY = Buffer.from('{"id":1,"reviews":[{"reviewer":"jason","text":"ok"}]}\n')
const HEADERS = { 'content-type': 'application/json', 'content-length': String(BODY.length) }

let server
let mesh
let served = 0
let connections = 0
let stallTimer

function handler(req, res) {
  served++
  if (req.readableLength > 0 || !req.complete) req.resume()
  res.writeHead(200, HEADERS)
  res.end(BODY)
}

function block(ms) {
  const end = performance.now() + ms
  while (performance.now() < end) { /* a hiccup: nothing else runs */ }
}

serve({
  async start({ kind, credentials }) {
    if (kind === 'plain') {
      server = createHttpServer(handler)
    } else if (kind === 'mesh-strict') {
      const { createMesh } = await import('../../dist/index.js')
      mesh = createMesh({ service: 'reviews', config: { identity: credentials, listener: { mtls: { mode: 'STRICT' } } } })
      server = mesh.createServer(handler)
    } else {
      throw new Error(`unknown server kind ${kind}`)
    }
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
  /** Blocks the event loop for `ms` every `every` ms, `count` times (0: stop). */
  stalls({ ms, every, count }) {
    clearInterval(stallTimer)
    let left = count
    if (left > 0) {
      stallTimer = setInterval(() => {
        block(ms)
        if (--left <= 0) clearInterval(stallTimer)
      }, every)
    }
    return {}
  },
  stats: () => ({ served, connections, tls: mesh?.metrics.snapshot().security.tls.downstream }),
}, {
  onDisconnect: async () => {
    clearInterval(stallTimer)
    server?.closeAllConnections?.()
    server?.close()
    await mesh?.close()
  },
})
