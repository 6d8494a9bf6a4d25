/**
 * Interop with an independent xDS client: Google's @grpc/grpc-js-xds, in its own process
 * with GRPC_XDS_BOOTSTRAP pointing at our control plane, as a deployment runs it. Its
 * channel dials `xds:///echo:9090`; our control plane routes it to real gRPC backends. The
 * split it observes follows cp.traffic.split; an edit of the watched YAML reaches it; a bad
 * edit is refused at the control plane and changes nothing; a cluster the client cannot
 * accept (mTLS from a certificate provider its bootstrap lacks) is NACKed, and not sent again.
 */
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { stringify } from 'yaml'
import { createControlPlane, type ControlPlane, type ControlPlaneNack, type MeshConfig } from '../src/index.js'
import { bootstrapFor, everyFieldConfig, startEchoBackend, startXdsPeer, type EchoBackend, type XdsPeer } from './fixtures/xds/grpc-peers.js'
import { root } from './helpers/spawned.js'

const require = createRequire(import.meta.url)
const CDS = 'type.googleapis.com/envoy.config.cluster.v3.Cluster'
const CLIENT = join(root, 'test/fixtures/xds/grpc_js_client.mjs')

/** Why the peer cannot run here, or undefined. */
function missingPeer(): string | undefined {
  try {
    require.resolve('@grpc/grpc-js-xds')
    return undefined
  } catch {
    return '@grpc/grpc-js-xds (a devDependency) is not installed'
  }
}

function meshConfig(v1: EchoBackend, v2: EchoBackend, route: NonNullable<MeshConfig['virtualHosts']>[number]['routes'][number]['route']): MeshConfig {
  return {
    clusters: [{
      name: 'echo',
      endpoints: [{ address: `127.0.0.1:${v1.port}`, labels: { version: 'v1' } }, { address: `127.0.0.1:${v2.port}`, labels: { version: 'v2' } }],
      subsets: [{ name: 'v1', labels: { version: 'v1' } }, { name: 'v2', labels: { version: 'v2' } }],
    }],
    virtualHosts: [{ name: 'echo', domains: ['echo'], routes: [{ match: { prefix: '/' }, ...(route === undefined ? {} : { route }) }] }],
  }
}

function waitFor(check: () => boolean, what: string, ms = 10_000): Promise<void> {
  const until = Date.now() + ms
  return new Promise((resolve, reject) => {
    const poll = (): void => {
      if (check()) resolve()
      else if (Date.now() > until) reject(new Error(`timed out waiting for ${what}`))
      else setTimeout(poll, 20)
    }
    poll()
  })
}

describe('interop: @grpc/grpc-js-xds clients follow the control plane', () => {
  const missing = missingPeer()
  let v1: EchoBackend
  let v2: EchoBackend
  let cp: ControlPlane
  let client: XdsPeer
  let dir: string
  let file: string
  const logs: string[] = []

  before(async () => {
    if (missing !== undefined) return
    v1 = await startEchoBackend('v1')
    v2 = await startEchoBackend('v2')
    dir = mkdtempSync(join(tmpdir(), 'sidecarless-cp-'))
    file = join(dir, 'mesh.yaml')
    writeFileSync(file, stringify(meshConfig(v1, v2, { cluster: 'echo', subset: 'v1' })))
    cp = await createControlPlane({ config: file, watch: true, listen: '127.0.0.1:0', log: (l) => logs.push(l) })
    client = startXdsPeer(process.execPath, [CLIENT, 'xds:///echo:9090'], bootstrapFor(cp.address, 'grpc-js-client'), dir)
  })
  after(async () => {
    await client?.close()
    await cp?.close()
    v1?.close()
    v2?.close()
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true })
  })

  const inSync = (): boolean => cp.clients().length === 1 && cp.clients().every((c) => c.inSync)
  const call = (n: number, concurrency = 1): Promise<Record<string, unknown>> => client.ask(`call ${n} ${concurrency}`)

  it('routes xds:///echo:9090 as the config says', async (t) => {
    if (missing !== undefined) return t.skip(missing)
    assert.deepEqual(await call(20), { counts: { v1: 20 }, errors: {} })
    await waitFor(inSync, 'the client to ACK everything')
    const [c] = cp.clients()
    assert.equal(c?.node?.id, 'grpc-js-client')
    assert.match(c?.node?.userAgent ?? '', /gRPC Node/)
    const port = Math.min(v1.port, v2.port)
    assert.deepEqual(c?.resources.map((r) => [r.names, r.status]), [
      [['echo:9090'], 'SYNCED'], [['echo'], 'SYNCED'], [[`outbound|${port}|v1|echo`], 'SYNCED'], [[`outbound|${port}|v1|echo`], 'SYNCED'],
    ])
  })

  it('follows cp.traffic.split within ±3 points over 2,000 calls', async (t) => {
    if (missing !== undefined) return t.skip(missing)
    await cp.traffic.split('echo', { v1: 70, v2: 30 })
    await waitFor(inSync, 'the client to ACK the split')
    const { counts, errors } = await call(2_000, 16) as { counts: Record<string, number>; errors: Record<string, number> }
    assert.deepEqual(errors, {})
    const share = ((counts['v2'] ?? 0) / 2_000) * 100
    assert.ok(Math.abs(share - 30) <= 3, `v2 got ${share.toFixed(1)}% of 2,000 calls, the split says 30%`)
  })

  it('takes an edit of the watched YAML to every client', async (t) => {
    if (missing !== undefined) return t.skip(missing)
    const before = cp.version
    writeFileSync(file, stringify(meshConfig(v1, v2, { cluster: 'echo', subset: 'v2' })))
    await waitFor(() => cp.version > before, 'the edit to be applied')
    await waitFor(inSync, 'the client to ACK the edit')
    assert.deepEqual(await call(50), { counts: { v2: 50 }, errors: {} })
    assert.ok(logs.some((l) => l.includes(`config ${file} applied`)), logs.join('\n'))
  })

  it('refuses a bad edit at the control plane; clients keep the last good config', async (t) => {
    if (missing !== undefined) return t.skip(missing)
    const versions = cp.versions
    const responses = cp.stats().responses
    writeFileSync(file, stringify(meshConfig(v1, v2, { cluster: 'echo', subset: 'v9' })))
    await waitFor(() => logs.some((l) => l.includes('rejected')), 'the edit to be refused')
    assert.ok(logs.some((l) => l.includes('UNKNOWN_SUBSET')), logs.join('\n'))
    assert.deepEqual(cp.versions, versions)
    assert.equal(cp.stats().responses, responses, 'nothing was pushed')
    assert.deepEqual(await call(20), { counts: { v2: 20 }, errors: {} })
  })

  it('removes a subset while calls run, without failing one; the subset cluster goes once the routes are ACKed', async (t) => {
    if (missing !== undefined) return t.skip(missing)
    await cp.traffic.split('echo', { v1: 50, v2: 50 })
    await waitFor(inSync, 'the client to ACK the split')
    assert.deepEqual((await call(100, 4))['errors'], {})
    // v2 leaves the config: no subset, no endpoint, routes to v1 only. (grpc-js would also
    // survive the cluster going first; xds-ads.test.ts checks the order on the wire.)
    const onlyV1 = meshConfig(v1, v2, { cluster: 'echo', subset: 'v1' })
    const cluster = onlyV1.clusters?.[0]
    assert.ok(cluster !== undefined)
    cluster.subsets = cluster.subsets?.filter((x) => x.name === 'v1')
    cluster.endpoints = cluster.endpoints?.filter((e) => e.labels?.['version'] === 'v1')
    const during = call(600, 4)
    await new Promise((resolve) => setTimeout(resolve, 30))
    await cp.update(onlyV1)
    const { counts, errors } = await during as { counts: Record<string, number>; errors: Record<string, number> }
    assert.deepEqual(errors, {}, 'no call failed while v2 was removed')
    assert.ok((counts['v1'] ?? 0) > 0 && (counts['v2'] ?? 0) > 0, JSON.stringify(counts))
    await waitFor(() => inSync() && cp.resources().clusters.every((c) => !c.name.includes('|v2|')), 'v2 to be dropped once the routes were ACKed')
    assert.deepEqual(await call(20), { counts: { v1: 20 }, errors: {} })
    // Back to two subsets for the next test.
    await cp.update(meshConfig(v1, v2, { cluster: 'echo', subset: 'v2' }))
    await waitFor(inSync, 'the client to ACK v2 again')
  })

  it('gets a NACK for a cluster the client cannot accept, and does not send it again', async (t) => {
    if (missing !== undefined) return t.skip(missing)
    const nacks: ControlPlaneNack[] = []
    cp.on('nack', (n) => nacks.push(n))
    const tls = meshConfig(v1, v2, { cluster: 'echo', subset: 'v2' })
    const cluster = tls.clusters?.[0]
    assert.ok(cluster !== undefined)
    // Istio-style mTLS: the client must have certificate provider "default"; this one has none.
    cluster.tls = { mode: 'ISTIO_MUTUAL' }
    await cp.update(tls)
    await waitFor(() => nacks.length > 0, 'a NACK')
    assert.equal(nacks[0]?.typeUrl, CDS)
    assert.match(nacks[0]?.message ?? '', /certificate_provider_instance/)
    assert.equal(nacks[0]?.client.node?.id, 'grpc-js-client')
    const responses = cp.stats().responses
    // The client keeps calling on what it accepted before; nothing is sent again.
    assert.deepEqual(await call(100, 4), { counts: { v2: 100 }, errors: {} })
    await new Promise((resolve) => setTimeout(resolve, 300))
    assert.equal(cp.stats().responses, responses, 'no response was sent after the NACK')
    assert.equal(nacks.length, 1)
    const cds = cp.clients()[0]?.resources.find((r) => r.typeUrl === CDS)
    assert.equal(cds?.status, 'ERROR')
    assert.equal(cds?.lastNack?.message, nacks[0]?.message)
    // A version the client can take is sent, and ACKed.
    await cp.update(meshConfig(v1, v2, { cluster: 'echo', subset: 'v1' }))
    await waitFor(inSync, 'the client to ACK the fixed config')
    assert.deepEqual(await call(20), { counts: { v1: 20 }, errors: {} })
  })

  it('accepts every field the control plane emits, and a load-balancing policy it lacks through the fallback list', async (t) => {
    if (missing !== undefined) return t.skip(missing)
    const nacks: ControlPlaneNack[] = []
    cp.on('nack', (n) => nacks.push(n))
    for (const lb of ['round_robin', 'ring_hash', 'least_request', 'random', 'maglev'] as const) {
      await cp.update(everyFieldConfig(v1, v2, lb))
      await waitFor(inSync, `the client to ACK every field with ${lb}`)
      const { counts, errors } = await call(40, 4) as { counts: Record<string, number>; errors: Record<string, number> }
      assert.deepEqual(errors, {}, lb)
      assert.ok((counts['v1'] ?? 0) > 0 && (counts['v2'] ?? 0) > 0, `${lb}: ${JSON.stringify(counts)}`)
    }
    assert.deepEqual(nacks.map((n) => n.message), [])
  })
})
