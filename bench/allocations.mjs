/**
 * Bytes allocated per request by the mesh's data path, beside the plain path in the same
 * process: a measure that, unlike time, does not move with the load on the machine, so it
 * shows a hot-path change of a few hundred bytes on a shared 2-core box where req/s cannot.
 *
 *   client   undici.request through a plain Pool  vs  through mesh.dispatcher (a route with a
 *            3 s timeout and a retry policy, as bench/side-by-side.mjs arms it); the server is
 *            a forked node:http process
 *   server   node:http  vs  mesh.createServer, both in this process, called by a forked undici
 *            client that sends what a meshed caller sends (traceparent, x-request-id,
 *            x-sidecarless-peer)
 *
 * V8's sampling heap profiler runs while N requests go (objects collected by minor and major
 * GCs included), for each side and variant in turn, ROUNDS times; reported: bytes per request
 * (medians), the mesh's extra bytes and ratio, and where the mesh's extra allocations happen
 * (the innermost function of ours on the stack, and the allocating function).
 *
 *   node bench/allocations.mjs                 both sides, 3 rounds of 20,000 requests
 *   node bench/allocations.mjs --side=client --requests=50000 --top=20
 *   node bench/allocations.mjs --side=client --focus=push   where `push` allocates, by call path
 *
 * Informational: no target (the targets are issue 15's req/s and CPU in side-by-side.mjs).
 */
import { fork } from 'node:child_process'
import { createServer } from 'node:http'
import { Session } from 'node:inspector/promises'
import { fileURLToPath } from 'node:url'
import { Pool, request } from 'undici'
import { createMesh } from '../dist/index.js'
import { emitResult, median } from './lib/common.mjs'

const args = Object.fromEntries(process.argv.slice(2).map((a) => {
  const m = /^--([a-z]+)(?:=(.*))?$/.exec(a)
  if (m === null) {
    console.error(`unexpected argument ${a}; usage: node bench/allocations.mjs [--side=client|server] [--requests=N] [--rounds=N] [--top=N]`)
    process.exit(2)
  }
  return [m[1], m[2] ?? 'true']
}))
const SIDES = args.side === undefined ? ['client', 'server'] : [args.side]
const N = Number(args.requests ?? 20_000)
const ROUNDS = Number(args.rounds ?? 3)
const TOP = Number(args.top ?? 12)
/** `--focus=name`: also print the call paths (three frames up) of that allocating function. */
const FOCUS = args.focus
const CONCURRENCY = 8
const BODY = Buffer.from('{"id":1,"reviews":[{"reviewer":"jason","text":"ok"}]}\n')
const handler = (req, res) => {
  if (req.readableLength > 0 || !req.complete) req.resume()
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(BODY.length) })
  res.end(BODY)
}

/** A forked process running `role` ('server' or 'client'); resolves with its first message. */
function child(role, extra = {}) {
  const c = fork(fileURLToPath(import.meta.url), [], { env: { ...process.env, ALLOC_CHILD: role, ALLOC_ARGS: JSON.stringify(extra) } })
  return { c, first: new Promise((resolve) => c.once('message', resolve)) }
}

if (process.env.ALLOC_CHILD === 'server') {
  const s = createServer(handler)
  s.keepAliveTimeout = 120_000
  s.listen(0, '127.0.0.1', () => process.send(s.address().port))
} else if (process.env.ALLOC_CHILD === 'client') {
  // Sends `n` requests to the port it is told, with a meshed caller's headers, and reports.
  const headers = { traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00', 'x-request-id': 'd4c3e8a2-6f1b-4e0c-9a55-2b1f7c9d0e11', 'x-sidecarless-peer': 'app=productpage' }
  const pools = new Map()
  process.on('message', async ({ port, n }) => {
    let pool = pools.get(port)
    if (pool === undefined) pools.set(port, (pool = new Pool(`http://127.0.0.1:${port}`)))
    await load(`http://127.0.0.1:${port}/reviews/1`, { dispatcher: pool, headers }, n)
    process.send('done')
  })
  process.send('ready')
} else {
  await main()
}

async function load(url, options, n) {
  let left = n
  const worker = async () => {
    while (left-- > 0) {
      const { statusCode, body } = await request(url, options)
      await body.dump()
      if (statusCode !== 200) throw new Error(`${url}: status ${statusCode}`)
    }
  }
  await Promise.all(Array.from({ length: CONCURRENCY }, worker))
}

/** Runs `work` under the sampling heap profiler: bytes per request, by function. */
async function sampled(session, n, work) {
  await session.post('HeapProfiler.startSampling', { samplingInterval: 64, includeObjectsCollectedByMinorGC: true, includeObjectsCollectedByMajorGC: true })
  await work()
  const { profile } = await session.post('HeapProfiler.stopSampling')
  const bySelf = new Map()
  const byOurs = new Map()
  const focus = new Map()
  let total = 0
  const walk = (node, ours, path = []) => {
    const { functionName, url, lineNumber } = node.callFrame
    const name = `${functionName || '(anonymous)'} ${url.replace(/^.*\/(dist|node_modules)\//, '$1/').replace(/^file:\/\/.*\/bench\//, 'bench/')}:${lineNumber + 1}`
    const inner = url.includes('/dist/') ? name : ours
    const here = [...path.slice(-3), name]
    if (node.selfSize > 0) {
      total += node.selfSize
      bySelf.set(name, (bySelf.get(name) ?? 0) + node.selfSize)
      if (inner !== undefined) byOurs.set(inner, (byOurs.get(inner) ?? 0) + node.selfSize)
      if (FOCUS !== undefined && name.startsWith(`${FOCUS} `)) {
        const key = here.join(' < ')
        focus.set(key, (focus.get(key) ?? 0) + node.selfSize)
      }
    }
    for (const c of node.children) walk(c, inner, here)
  }
  walk(profile.head, undefined)
  const per = (m) => new Map([...m].map(([k, v]) => [k, v / n]))
  return { perRequest: total / n, bySelf: per(bySelf), byOurs: per(byOurs), focus: per(focus) }
}

async function clientSide(session) {
  const up = child('server')
  const port = await up.first
  const pool = new Pool(`http://127.0.0.1:${port}`)
  const mesh = createMesh({
    service: 'productpage',
    config: {
      clusters: [{ name: 'reviews', endpoints: [{ address: `http://127.0.0.1:${port}` }] }],
      virtualHosts: [{ name: 'reviews', domains: ['reviews'], routes: [{ match: { prefix: '/' }, route: { cluster: 'reviews', timeout: '3s', retryPolicy: { retryOn: '5xx,reset,connect-failure', numRetries: 2 } } }] }],
    },
  })
  const variants = {
    plain: () => load(`http://127.0.0.1:${port}/reviews/1`, { dispatcher: pool }, N),
    mesh: () => load('http://reviews/reviews/1', { dispatcher: mesh.dispatcher }, N),
  }
  try {
    return await measure(session, variants)
  } finally {
    await pool.close()
    await mesh.close()
    up.c.kill()
  }
}

async function serverSide(session) {
  const plain = createServer(handler)
  const mesh = createMesh({ service: 'reviews' })
  const meshed = mesh.createServer(handler)
  const ports = {}
  for (const [name, s] of [['plain', plain], ['mesh', meshed]]) {
    s.keepAliveTimeout = 120_000
    await new Promise((resolve) => s.listen(0, '127.0.0.1', resolve))
    ports[name] = s.address().port
  }
  const caller = child('client')
  await caller.first
  const drive = (port) => new Promise((resolve) => {
    caller.c.once('message', resolve)
    caller.c.send({ port, n: N })
  })
  try {
    return await measure(session, { plain: () => drive(ports.plain), mesh: () => drive(ports.mesh) })
  } finally {
    caller.c.kill()
    plain.closeAllConnections()
    plain.close()
    meshed.closeAllConnections()
    meshed.close()
    await mesh.close()
  }
}

/** Warms both variants, then ROUNDS alternating sampled runs of each. */
async function measure(session, variants) {
  for (const run of Object.values(variants)) await run()
  const runs = { plain: [], mesh: [] }
  for (let r = 0; r < ROUNDS; r++) {
    const order = r % 2 === 0 ? ['plain', 'mesh'] : ['mesh', 'plain']
    for (const v of order) runs[v].push(await sampled(session, N, variants[v]))
  }
  return runs
}

function top(map, k) {
  return [...map].sort((a, b) => b[1] - a[1]).slice(0, k).map(([name, bytes]) => `  ${bytes.toFixed(0).padStart(6)} B  ${name}`).join('\n')
}

/** Per function: the mesh run's bytes minus the plain run's (same function names). */
function diff(mesh, plain) {
  const out = new Map()
  for (const [k, v] of mesh) out.set(k, v - (plain.get(k) ?? 0))
  return out
}

async function main() {
  const session = new Session()
  session.connect()
  const result = { requests: N, rounds: ROUNDS, sides: {} }
  for (const side of SIDES) {
    const runs = side === 'client' ? await clientSide(session) : await serverSide(session)
    const plain = median(runs.plain.map((x) => x.perRequest))
    const mesh = median(runs.mesh.map((x) => x.perRequest))
    // The function tables come from the mesh run closest to the median.
    const pick = (list, m) => list.reduce((a, b) => (Math.abs(b.perRequest - m) < Math.abs(a.perRequest - m) ? b : a))
    const m = pick(runs.mesh, mesh)
    const p = pick(runs.plain, plain)
    console.log(`\n## ${side} (${process.version}, ${N} requests × ${ROUNDS} rounds, ${CONCURRENCY} in flight)`)
    console.log(`bytes allocated per request: plain ${plain.toFixed(0)}, mesh ${mesh.toFixed(0)}: +${(mesh - plain).toFixed(0)} B (${(mesh / plain).toFixed(2)}×)`)
    console.log(`  rounds: plain ${runs.plain.map((x) => x.perRequest.toFixed(0)).join(' ')}; mesh ${runs.mesh.map((x) => x.perRequest.toFixed(0)).join(' ')}`)
    console.log(`-- the mesh's allocations by the innermost function of ours on the stack\n${top(m.byOurs, TOP)}`)
    console.log(`-- allocating functions, mesh minus plain\n${top(diff(m.bySelf, p.bySelf), TOP)}`)
    if (FOCUS !== undefined) console.log(`-- where ${FOCUS} allocates (callers, outermost first): mesh\n${top(m.focus, TOP)}\n   plain\n${top(p.focus, TOP)}`)
    result.sides[side] = { plainBytesPerRequest: plain, meshBytesPerRequest: mesh, addedBytesPerRequest: mesh - plain, ratio: mesh / plain }
  }
  session.disconnect()
  emitResult('allocations', result)
  process.exit(0)
}
