/**
 * `sidecarless control-plane`: prints where it listens (port 0 works), serves ADS, pushes an
 * edit of the file it watches, logs a refused edit, stops on SIGTERM with exit code 0;
 * usage errors exit 2, a config that cannot start exits 1 listing every problem.
 */
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, it } from 'node:test'
import { openRawAds, type RawAds } from './fixtures/xds/grpc-peers.js'
import { start, stopAll } from './helpers/spawned.js'

const dir = mkdtempSync(join(tmpdir(), 'sidecarless-cp-cli-'))
const streams: RawAds[] = []
after(() => {
  for (const s of streams) s.close()
  stopAll()
  rmSync(dir, { recursive: true, force: true })
})

function yaml(subset: string): string {
  return `clusters:
  - name: reviews
    endpoints:
      - { address: '10.0.0.1:9080', labels: { version: v1 } }
      - { address: '10.0.0.2:9080', labels: { version: v2 } }
    subsets: [ { name: v1, labels: { version: v1 } }, { name: v2, labels: { version: v2 } } ]
virtualHosts:
  - name: reviews
    domains: [ reviews ]
    routes: [ { match: { prefix: / }, route: { cluster: reviews, subset: ${subset} } } ]
`
}

const RDS = 'type.googleapis.com/envoy.config.route.v3.RouteConfiguration'

describe('sidecarless control-plane', () => {
  it('serves the file over ADS, pushes its edits, logs a refused one, and stops on SIGTERM', async () => {
    const file = join(dir, 'mesh.yaml')
    writeFileSync(file, yaml('v1'))
    const p = start(process.execPath, ['dist/cli/main.js', 'control-plane', '-c', file, '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0'])
    const [, address] = await p.waitFor(/sidecarless control-plane: listening on (\S+)\n/)
    const [, admin] = await p.waitFor(/sidecarless control-plane: admin on (http:\/\/\S+)\n/)
    const s = await openRawAds(address as string, 'cli-client')
    streams.push(s)
    s.send({ type_url: RDS, resource_names: ['reviews'] })
    const r1 = await s.next()
    const cluster = (r: typeof r1): unknown => ((((r.resources[0]?.['virtual_hosts'] as Record<string, unknown>[])[0]?.['routes'] as Record<string, unknown>[])[0]?.['route'] as Record<string, unknown>)['cluster'])
    assert.equal(cluster(r1), 'outbound|9080|v1|reviews')
    s.send({ type_url: RDS, version_info: r1.version_info, response_nonce: r1.nonce, resource_names: ['reviews'] })

    writeFileSync(file, yaml('v2'))
    const r2 = await s.next(10_000)
    assert.equal(cluster(r2), 'outbound|9080|v2|reviews')
    await p.waitFor(/config .*mesh\.yaml applied \(version 2\)/, 10_000, 'stderr')
    await p.waitFor(/client cli-client connected/, 10_000, 'stderr')

    writeFileSync(file, yaml('v7'))
    await p.waitFor(/rejected; the previous config stays in force[\s\S]*UNKNOWN_SUBSET/, 10_000, 'stderr')
    const clients = await (await fetch(`${admin as string}/clients`)).json() as { version: number; clients: { node: { id: string } }[] }
    assert.equal(clients.version, 2)
    assert.deepEqual(clients.clients.map((c) => c.node.id), ['cli-client'])

    p.child.kill('SIGTERM')
    assert.deepEqual(await p.exited(), { code: 0, signal: null })
    assert.match(p.stderr(), /SIGTERM: closing[\s\S]*stopped/)
  })

  it('exits 2 on a usage error and 1 on a config that cannot start, listing every problem', async () => {
    const noFile = start(process.execPath, ['dist/cli/main.js', 'control-plane'])
    assert.equal((await noFile.exited()).code, 2)
    assert.match(noFile.stderr(), /-c <file> is required/)
    const publicAdmin = start(process.execPath, ['dist/cli/main.js', 'control-plane', '-c', 'x.yaml', '--admin', '0.0.0.0:9901'])
    assert.equal((await publicAdmin.exited()).code, 2)
    assert.match(publicAdmin.stderr(), /loopback only/)
    const file = join(dir, 'bad.yaml')
    writeFileSync(file, 'clusters: [ { name: a }, { name: a } ]\nvirtualHosts: [ { name: v, domains: [ v ], routes: [ { match: { prefix: / }, route: { cluster: b } } ] } ]\n')
    const bad = start(process.execPath, ['dist/cli/main.js', 'control-plane', '-c', file, '--listen', '127.0.0.1:0'])
    assert.equal((await bad.exited()).code, 1)
    assert.match(bad.stderr(), /cannot start: 2 problems[\s\S]*DUPLICATE_NAME[\s\S]*UNKNOWN_CLUSTER/)
    const help = start(process.execPath, ['dist/cli/main.js', '--help'])
    await help.exited()
    assert.match(help.stdout(), /control-plane +serve a mesh config to a fleet over xDS/)
  })
})
