/**
 * The upstream for bench/dispatcher.mjs, run as a forked child so its CPU is not charged to
 * the client being measured. One node:http server listening on two loopback ports (the
 * "v1" and "v2" endpoints), keep-alive, a small fixed body. It reports its ports over IPC,
 * answers `{ cmd: 'cpu' }` with its own process.cpuUsage() and its connection and request
 * counts, and exits when the parent goes.
 */
import { createServer } from 'node:http'

const BODY = Buffer.from('{"id":1,"reviews":[{"reviewer":"jason","text":"ok"}]}\n')
const HEADERS = { 'content-type': 'application/json', 'content-length': String(BODY.length) }

const server = createServer((req, res) => {
  // Drain any request body, then answer.
  if (req.readableLength > 0 || !req.complete) req.resume()
  res.writeHead(200, HEADERS)
  res.end(BODY)
})
// Keep connections across rounds; the client decides when to close them.
server.keepAliveTimeout = 120_000
server.headersTimeout = 130_000
server.requestTimeout = 0

const second = createServer(server.listeners('request')[0])
second.keepAliveTimeout = server.keepAliveTimeout
second.headersTimeout = server.headersTimeout
second.requestTimeout = 0

function listen(s) {
  return new Promise((resolve, reject) => {
    s.once('error', reject)
    s.listen(0, '127.0.0.1', () => resolve(s.address().port))
  })
}

let connections = 0
let requests = 0
for (const s of [server, second]) {
  s.on('connection', () => connections++)
  s.on('request', () => requests++)
}

const ports = [await listen(server), await listen(second)]
process.send({ ports })

process.on('message', (m) => {
  if (m?.cmd === 'cpu') process.send({ cpu: process.cpuUsage(), t: performance.now(), seq: m.seq, connections, requests })
})
process.on('disconnect', () => process.exit(0))
