/**
 * What an HTTP/1.1 client costs per request, layer by layer, on the side that calls: the
 * CPU one client process spends per request in a closed loop of 32 keep-alive connections to
 * a node:http server in another process, for
 *
 *   socket        the floor: a keep-alive socket per connection, the request written as one
 *                 string, the response framed by its Content-Length — no HTTP library
 *   undici-pool   undici.request through an undici Pool (one origin)
 *   undici-agent  undici.request through an undici Agent (what side-by-side's direct arm uses)
 *   mesh          undici.request through mesh.dispatcher (a route with a 3 s timeout and a
 *                 retry policy, as side-by-side arms it)
 *
 * each in a process of its own, the arms interleaved round by round, medians of the rounds.
 * On a 2-core machine the client process is what limits a closed loop, so its CPU per
 * request is what decides req/s (see side-by-side.mjs). The gap between `socket` and
 * `undici-pool` is what the client library costs; the gap between `undici-pool` and `mesh`
 * is what the mesh adds on top of it.
 *
 *   node bench/transport.mjs [--rounds=5] [--seconds=3] [--arms=socket,undici-pool,mesh]
 *
 * Informational: no target (issue 15's targets are side-by-side's).
 */
import { fork } from 'node:child_process'
import { createServer } from 'node:http'
import net from 'node:net'
import { fileURLToPath } from 'node:url'
import { emitResult, fmt, median, pad, padEnd, rotate } from './lib/common.mjs'

const ARMS = ['socket', 'undici-pool', 'undici-agent', 'mesh']
const CONNECTIONS = 32
const BODY = Buffer.from('{"id":1,"reviews":[{"reviewer":"jason","text":"ok"}]}\n')

if (process.env.TRANSPORT_ROLE === 'server') {
  const server = createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(BODY.length) })
    res.end(BODY)
  })
  server.keepAliveTimeout = 120_000
  server.listen(0, '127.0.0.1', () => process.send(server.address().port))
} else if (process.env.TRANSPORT_ROLE === 'client') {
  const { arm, port, seconds } = JSON.parse(process.env.TRANSPORT_ARGS)
  process.send(await measure(arm, port, seconds))
  process.exit(0)
} else {
  await main()
}

/** One arm for `seconds` after a warm-up: CPU µs of this process per request. */
async function measure(arm, port, seconds) {
  let n = 0
  let stop = false
  let loops
  if (arm === 'socket') {
    loops = Array.from({ length: CONNECTIONS }, () => socketLoop(port, () => stop, () => n++))
  } else {
    const undici = await import('undici')
    let dispatcher
    let url = `http://127.0.0.1:${port}/reviews/1`
    if (arm === 'undici-pool') dispatcher = new undici.Pool(`http://127.0.0.1:${port}`)
    else if (arm === 'undici-agent') dispatcher = new undici.Agent({ keepAliveTimeout: 120_000, keepAliveMaxTimeout: 120_000 })
    else {
      const { createMesh } = await import('../dist/index.js')
      const mesh = createMesh({
        service: 'productpage',
        config: {
          clusters: [{ name: 'reviews', endpoints: [{ address: `http://127.0.0.1:${port}` }] }],
          virtualHosts: [{ name: 'reviews', domains: ['reviews'], routes: [{ match: { prefix: '/' }, route: { cluster: 'reviews', timeout: '3s', retryPolicy: { retryOn: '5xx,reset,connect-failure', numRetries: 2 } } }] }],
        },
      })
      dispatcher = mesh.dispatcher
      url = 'http://reviews/reviews/1'
    }
    const worker = async () => {
      while (!stop) {
        const { body } = await undici.request(url, { dispatcher })
        await body.dump()
        n++
      }
    }
    loops = Array.from({ length: CONNECTIONS }, worker)
  }
  await new Promise((resolve) => setTimeout(resolve, 1500))
  const n0 = n
  const c0 = process.cpuUsage()
  await new Promise((resolve) => setTimeout(resolve, seconds * 1000))
  const c = process.cpuUsage(c0)
  const requests = n - n0
  stop = true
  await Promise.all(loops)
  return { requests, cpuUs: (c.user + c.system) / requests, userUs: c.user / requests, systemUs: c.system / requests }
}

/** The floor: one keep-alive connection sending a GET and reading its response (Content-Length framing), until told to stop. */
function socketLoop(port, stopped, done) {
  const request = 'GET /reviews/1 HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: keep-alive\r\n\r\n'
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1')
    socket.setNoDelay(true)
    let pending = null
    const send = () => {
      if (stopped()) {
        socket.destroy()
        resolve()
      } else socket.write(request, 'latin1')
    }
    socket.on('connect', send)
    socket.on('error', () => resolve())
    socket.on('data', (chunk) => {
      pending = pending === null ? chunk : Buffer.concat([pending, chunk])
      const head = pending.indexOf('\r\n\r\n')
      if (head === -1) return
      const at = pending.indexOf('content-length: ')
      const length = Number.parseInt(pending.latin1Slice(at + 16, pending.indexOf('\r', at)), 10)
      if (pending.length < head + 4 + length) return
      pending = null
      done()
      send()
    })
  })
}

function child(role, args) {
  const c = fork(fileURLToPath(import.meta.url), [], { env: { ...process.env, TRANSPORT_ROLE: role, TRANSPORT_ARGS: JSON.stringify(args ?? {}) } })
  return { c, first: new Promise((resolve) => c.once('message', resolve)) }
}

async function main() {
  const args = Object.fromEntries(process.argv.slice(2).map((a) => {
    const m = /^--([a-z]+)=(.*)$/.exec(a)
    if (m === null) {
      console.error(`unexpected argument ${a}; usage: node bench/transport.mjs [--rounds=N] [--seconds=N] [--arms=a,b]`)
      process.exit(2)
    }
    return [m[1], m[2]]
  }))
  const rounds = Number(args.rounds ?? 5)
  const seconds = Number(args.seconds ?? 3)
  const arms = args.arms === undefined ? ARMS : args.arms.split(',')
  for (const a of arms) {
    if (!ARMS.includes(a)) {
      console.error(`unknown arm ${a}; known: ${ARMS.join(', ')}`)
      process.exit(2)
    }
  }
  console.log(`# transport: client CPU per request, ${CONNECTIONS} keep-alive connections, ${rounds} rounds × ${seconds} s per arm`)
  console.log(`node ${process.version}; arms: ${arms.join(', ')}\n`)
  const server = child('server')
  const port = await server.first
  const results = Object.fromEntries(arms.map((a) => [a, []]))
  for (let round = 0; round < rounds; round++) {
    for (const arm of rotate(arms, round)) {
      const client = child('client', { arm, port, seconds })
      const r = await client.first
      results[arm].push(r)
      console.log(`round ${round + 1}  ${padEnd(arm, 13)} ${pad(fmt(r.cpuUs, 2), 6)} µs/req  (${fmt(r.requests)} requests)`)
    }
  }
  server.c.kill()
  const base = arms.includes('undici-pool') ? 'undici-pool' : arms[0]
  const floor = arms.includes('socket') ? median(results.socket.map((r) => r.cpuUs)) : NaN
  console.log(`\n| arm | CPU µs/req (median) | user / system | ÷ ${base} | above the socket floor |`)
  console.log('| --- | ---: | ---: | ---: | ---: |')
  const summary = {}
  for (const arm of arms) {
    const cpu = median(results[arm].map((r) => r.cpuUs))
    const ratios = results[arm].map((r, i) => r.cpuUs / results[base][i].cpuUs)
    summary[arm] = { cpuUs: cpu, ratio: median(ratios), aboveFloorUs: cpu - floor }
    console.log(`| ${arm} | ${fmt(cpu, 2)} | ${fmt(median(results[arm].map((r) => r.userUs)), 2)} / ${fmt(median(results[arm].map((r) => r.systemUs)), 2)} | ${fmt(median(ratios), 2)}× | ${fmt(cpu - floor, 2)} |`)
  }
  emitResult('transport', { rounds, seconds, arms: summary })
}
