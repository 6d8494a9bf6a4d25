/**
 * Families of our own code that most processes never use load on first use: `import
 * 'sidecarless'` and a mesh with a plain config (serving and calling, every request traced
 * into the recent-span store) load neither the Envoy nor the Istio importer, the xDS client,
 * the control plane, nor the OpenTelemetry SDK; each loads, and works, when it is used.
 * Checked in a fresh process that records every module it resolves (ES imports and
 * `require` alike), for both builds: tsc's per-file one (build/src/, what the tests import)
 * and the package's bundle (dist/, what users import: scripts/bundle.mjs), whose files are
 * told apart by the src/ files their source maps name.
 */
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'

const BUILDS = {
  'build/src': fileURLToPath(new URL('../src/index.js', import.meta.url)),
  dist: fileURLToPath(new URL('../../dist/index.js', import.meta.url)),
} as const
type Build = keyof typeof BUILDS

/** A family: the name, and how to tell its modules (a path under src/ or a package). */
const FAMILIES = {
  'Envoy importer': /\/src\/config\/envoy\//,
  'Istio importer': /\/src\/config\/istio\//,
  'xDS client': /\/src\/xds\/client\/(?!status|metrics)/,
  'control plane': /\/src\/(xds\/(control-plane\.|control-plane-server|emit\/|ads-stream))/,
  'OpenTelemetry SDK': /node_modules\/@opentelemetry\/(sdk-trace-base|resources)\//,
} as const
type Family = keyof typeof FAMILIES

/**
 * What a loaded file stands for: itself, or for a file of dist/, the src/ files its
 * source map names (`/repo/src/mesh.ts`), so one set of patterns serves both builds.
 */
function sourcesOf(url: string): string[] {
  if (!url.startsWith('file:') || !url.includes('/dist/') || url.includes('/node_modules/')) return [url]
  const map = `${fileURLToPath(url)}.map`
  if (!existsSync(map)) return [url]
  const { sources } = JSON.parse(readFileSync(map, 'utf8')) as { sources: string[] }
  // (esbuild's virtual modules, `builtin:node:http`, are no file.)
  return sources.map((s) => new URL(s, url)).filter((u) => u.protocol === 'file:').map((u) => fileURLToPath(u))
}

/** Runs `body` (an ES module) in a fresh node; returns the families it loaded and what it printed last. */
function run(build: Build, body: string): { loaded: Family[]; modules: number; result: unknown } {
  const script = `
import { registerHooks } from 'node:module'
const urls = new Set()
registerHooks({
  resolve(specifier, context, next) {
    const r = next(specifier, context)
    urls.add(r.url)
    return r
  },
})
const result = await (async () => { ${body.replace('INDEX', JSON.stringify(BUILDS[build]))} })()
console.log(JSON.stringify({ urls: [...urls], result }))
`
  const out = execFileSync(process.execPath, ['--disable-warning=SIDECARLESS_UNSUPPORTED_NODE', '--input-type=module', '-e', script], { encoding: 'utf8' })
  const { urls, result } = JSON.parse(out.trim().split('\n').at(-1) as string) as { urls: string[]; result: unknown }
  const paths = urls.flatMap(sourcesOf)
  const loaded = (Object.keys(FAMILIES) as Family[]).filter((f) => paths.some((u) => FAMILIES[f].test(u)))
  return { loaded, modules: paths.filter((u) => u.includes('/src/')).length, result }
}

const imports = 'const sc = await import(INDEX)'

/** One test per build. */
function both(name: string, fn: (build: Build) => void): void {
  for (const build of Object.keys(BUILDS) as Build[]) test(`${name} (${build})`, () => fn(build))
}

both('import and a mesh with a plain config, serving traced requests, load none of the lazy families', (build) => {
  const { loaded, modules, result } = run(build, `${imports}
const http = await import('node:http')
const upstream = http.createServer((req, res) => res.end('ok')).listen(0, '127.0.0.1')
await new Promise((r) => upstream.once('listening', r))
const mesh = sc.createMesh({ config: {
  clusters: [{ name: 'c', endpoints: [{ address: 'http://127.0.0.1:' + upstream.address().port }] }],
  virtualHosts: [{ name: 'c', domains: ['c'], routes: [{ match: { prefix: '/' }, route: { cluster: 'c' } }] }],
  tracing: { sampling: 100 },
} })
const server = mesh.createServer(async (req, res) => res.end(await (await mesh.fetch('http://c/')).text())).listen(0, '127.0.0.1')
await new Promise((r) => server.once('listening', r))
const body = await (await fetch('http://127.0.0.1:' + server.address().port + '/')).text()
const spans = mesh.tracing.recent().map((s) => s.kind).sort()
server.close(); upstream.close()
await mesh.close()
return { body, spans }`)
  assert.deepEqual(result, { body: 'ok', spans: ['client', 'server'] }, 'the request went through and both spans are in the store')
  assert.ok(modules > 50, `the probe sees our modules (${modules})`)
  assert.deepEqual(loaded, [], `loaded: ${loaded.join(', ')}`)
})

both('fromEnvoy loads the Envoy importer, and only it', (build) => {
  const { loaded, result } = run(build, `${imports}
const r = sc.fromEnvoy({ static_resources: { clusters: [{ name: 'svc', type: 'STATIC', load_assignment: { cluster_name: 'svc', endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: 8080 } } } }] }] } }] } })
return r.config.clusters.map((c) => c.name)`)
  assert.deepEqual(result, ['svc'])
  assert.deepEqual(loaded, ['Envoy importer'])
})

both('an Envoy bootstrap given as the config loads the Envoy importer', (build) => {
  const { loaded, result } = run(build, `${imports}
const mesh = sc.createMesh({ config: { static_resources: { clusters: [{ name: 'svc', type: 'STATIC', load_assignment: { cluster_name: 'svc', endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: 8080 } } } }] }] } }] } } })
const names = mesh.config.clusters.map((c) => c.name)
await mesh.close()
return names`)
  assert.deepEqual(result, ['svc'])
  assert.deepEqual(loaded, ['Envoy importer'])
})

both('fromIstio, and Istio manifests given as the config, load the Istio importer', (build) => {
  const manifest = {
    apiVersion: 'networking.istio.io/v1', kind: 'ServiceEntry', metadata: { name: 'ext', namespace: 'default' },
    spec: { hosts: ['api.example.com'], ports: [{ number: 443, name: 'https', protocol: 'TLS' }], resolution: 'DNS', location: 'MESH_EXTERNAL' },
  }
  const { loaded, result } = run(build, `${imports}
const r = sc.fromIstio([${JSON.stringify(manifest)}])
const mesh = sc.createMesh({ config: [${JSON.stringify(manifest)}] })
const n = mesh.config.clusters.length
await mesh.close()
return [r.config.clusters.length > 0, n > 0]`)
  assert.deepEqual(result, [true, true])
  assert.deepEqual(loaded, ['Istio importer'])
})

both('a control plane, and a mesh with xds, load the control plane and the xDS client', (build) => {
  const { loaded, result } = run(build, `${imports}
const cp = await sc.createControlPlane({ config: { clusters: [{ name: 'c', endpoints: [{ address: 'http://127.0.0.1:1' }] }] }, listen: '127.0.0.1:0', log: () => {} })

const mesh = sc.createMesh({ xds: { bootstrap: { xds_servers: [{ server_uri: cp.address, channel_creds: [{ type: 'insecure' }] }] }, resourceTimeout: '5s' } })
const status = mesh.xds.status()
await mesh.close()
await cp.close()
return { server: status.server === cp.address, prometheus: typeof mesh.metrics.prometheus() }`)
  assert.deepEqual(result, { server: true, prometheus: 'string' })
  assert.ok(loaded.includes('control plane'), loaded.join(', '))
  assert.ok(loaded.includes('xDS client'), loaded.join(', '))
})

both('a configured collector loads the OpenTelemetry SDK', (build) => {
  const { loaded, result } = run(build, `${imports}
const mesh = sc.createMesh({ config: {
  clusters: [{ name: 'c', endpoints: [{ address: 'http://127.0.0.1:1' }] }],
  virtualHosts: [{ name: 'c', domains: ['c'], routes: [{ match: { prefix: '/' }, route: { cluster: 'c' } }] }],
  tracing: { sampling: 100, zipkin: 'http://127.0.0.1:1/api/v2/spans' },
} })
const status = await mesh.fetch('http://c/').then((r) => r.status, (e) => e.code)
const exporters = mesh.tracing.exporters().map((e) => e.format)
await mesh.close(true)
return { status, exporters, spans: mesh.tracing.recent().length }`)
  assert.deepEqual(loaded, ['OpenTelemetry SDK'])
  assert.deepEqual((result as { exporters: string[] }).exporters, ['zipkin'])
  assert.equal((result as { spans: number }).spans, 1, 'the client span is in the store too')
})
