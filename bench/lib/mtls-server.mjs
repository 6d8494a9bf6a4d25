/**
 * The upstream for bench/mtls.mjs, run as a forked child so its CPU is not charged to the
 * client: a mesh server (`mesh.createServer`) in PERMISSIVE mode, so plain HTTP and mTLS
 * reach the same server on the same port. Credentials come from the parent over IPC.
 */
import { createMesh } from '../../dist/index.js'

const BODY = Buffer.from('{"id":1,"reviews":[{"reviewer":"jason","text":"ok"}]}\n')
const HEADERS = { 'content-type': 'application/json', 'content-length': String(BODY.length) }

process.once('message', (m) => {
  const mesh = createMesh({ config: { identity: m.identity, listener: { mtls: { mode: 'PERMISSIVE' } } } })
  const server = mesh.createServer((req, res) => {
    if (req.readableLength > 0 || !req.complete) req.resume()
    res.writeHead(200, HEADERS)
    res.end(BODY)
  })
  server.keepAliveTimeout = 120_000
  server.headersTimeout = 130_000
  server.requestTimeout = 0
  server.listen(0, '127.0.0.1', () => process.send({ port: server.address().port }))
  process.on('message', (msg) => {
    if (msg?.cmd === 'cpu') process.send({ cpu: process.cpuUsage(), seq: msg.seq })
  })
})
process.on('disconnect', () => process.exit(0))
