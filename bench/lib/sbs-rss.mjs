/**
 * Memory probe of bench/side-by-side.mjs, run with `--expose-gc`, one process per sample.
 * Both variants are the same small service: an http server of its own, called 200 times
 * over keep-alive, and 200 calls to an upstream. `without` uses node:http and a plain
 * undici Agent for its calls; `with` creates a mesh from a 100-cluster config (100 virtual
 * hosts of 10 routes each, lib/mesh-config.mjs; one cluster points to the upstream),
 * serves with `mesh.createServer` and calls through `mesh.dispatcher`. After the calls, a
 * few full GCs, then `process.memoryUsage()`: the difference between the variants is what
 * the library adds to a process (its code, its compiled config, its pools and metrics).
 * Two more split it: `import-only` is `without` plus `import('sidecarless')` (the code
 * alone), `with-one` is `with` on a config of the one cluster the calls use (the code and a
 * mesh, without the 100-cluster config's weight).
 *
 * Each reading also says what the RSS is made of: the resident pages of V8's young
 * generation (`new`: it grows when much of what it collects survives, as at module loading),
 * of its old generation (objects, bytecode and code spaces, large objects), the rest of the
 * anonymous memory (`native`: malloc, mostly the optimizing compilers' zones and Node's own)
 * and file-backed pages (`file`: the node binary's code run for the first time).
 */
import { readFileSync } from 'node:fs'
import { createServer } from 'node:http'
import { getHeapSpaceStatistics } from 'node:v8'
import { Agent, request } from 'undici'
import { serve } from './ipc.mjs'
import { buildConfig } from './mesh-config.mjs'

const BODY = Buffer.from('{"id":1,"reviews":[{"reviewer":"jason","text":"ok"}]}\n')
const CALLS = 200

const handler = (req, res) => {
  if (req.readableLength > 0 || !req.complete) req.resume()
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(BODY.length) })
  res.end(BODY)
}

function listen(server) {
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => resolve(server.address().port))
  })
}

async function calls(url, dispatcher) {
  for (let i = 0; i < CALLS; i++) {
    const { statusCode, body } = await request(url, { dispatcher })
    await body.dump()
    if (statusCode !== 200) throw new Error(`${url}: status ${statusCode}`)
  }
}

/**
 * The 100-cluster config: 99 synthetic clusters and 100 virtual hosts of 10 routes, plus
 * `local`, the one the calls use (`one`: `local` alone).
 */
export function clusterConfig(upstreamPort, one) {
  const config = one ? { clusters: [], virtualHosts: [] } : buildConfig({ clusters: 99, vhosts: 100, perVhost: 10 })
  config.clusters.push({ name: 'local', endpoints: [{ address: `http://127.0.0.1:${upstreamPort}` }] })
  config.virtualHosts.push({ name: 'local', domains: ['local'], routes: [{ name: 'local', match: { prefix: '/' }, route: { cluster: 'local', timeout: '3s', retryPolicy: { retryOn: '5xx,reset,connect-failure', numRetries: 2 } } }] })
  return config
}

/**
 * The resident bytes of V8's spaces (young generation apart), the rest of the anonymous
 * memory, and the file-backed pages (Linux's /proc/self/status; `undefined` elsewhere).
 */
function breakdown() {
  let young = 0
  let old = 0
  for (const s of getHeapSpaceStatistics()) {
    if (s.space_name === 'new_space' || s.space_name === 'new_large_object_space') young += s.physical_space_size
    else old += s.physical_space_size
  }
  let anon
  let file
  try {
    const status = readFileSync('/proc/self/status', 'utf8')
    const kb = (k) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(status)?.[1]) * 1024
    anon = kb('RssAnon')
    file = kb('RssFile') + kb('RssShmem')
  } catch {
    // not Linux
  }
  const native = anon === undefined || Number.isNaN(anon) ? undefined : anon - young - old
  return { heapNew: young, heapOld: old, native, file: Number.isNaN(file) ? undefined : file }
}

async function settle() {
  if (typeof globalThis.gc !== 'function') throw new Error('run with --expose-gc')
  for (let i = 0; i < 4; i++) {
    globalThis.gc()
    await new Promise((r) => setTimeout(r, 50))
  }
}

serve({
  async measure({ variant }) {
    const upstream = createServer(handler)
    upstream.keepAliveTimeout = 60_000
    const upstreamPort = await listen(upstream)
    const agent = new Agent()
    let own
    let mesh
    if (variant === 'with' || variant === 'with-one') {
      const { createMesh } = await import('../../dist/index.js')
      mesh = createMesh({ service: 'productpage', config: clusterConfig(upstreamPort, variant === 'with-one') })
      own = mesh.createServer(handler)
      const port = await listen(own)
      await calls(`http://127.0.0.1:${port}/reviews/1`, agent)
      await calls('http://local/reviews/1', mesh.dispatcher)
    } else if (variant === 'without' || variant === 'import-only') {
      if (variant === 'import-only') mesh = await import('../../dist/index.js')
      own = createServer(handler)
      const port = await listen(own)
      await calls(`http://127.0.0.1:${port}/reviews/1`, agent)
      await calls(`http://127.0.0.1:${upstreamPort}/reviews/1`, agent)
    } else {
      throw new Error(`unknown variant ${variant}`)
    }
    await settle()
    const m = process.memoryUsage()
    const parts = breakdown()
    // Keep everything reachable until after the reading.
    void [own, mesh, agent, upstream]
    return { rss: m.rss, heapUsed: m.heapUsed, external: m.external, arrayBuffers: m.arrayBuffers, ...parts }
  },
})
