/**
 * Interop with the second independent xDS client: gRPC C-core, through Debian's
 * python3-grpcio (1.51, run with /usr/bin/python3). The same checks as with grpc-js-xds —
 * routing, a split within ±3 points over 2,000 calls, an edit of the watched YAML, a bad
 * edit refused, a NACK not answered again — and the client's own view read back through
 * CSDS (`grpc._cython.cygrpc.dump_xds_configs()`): the versions our control plane sent.
 *
 * C-core reads the ADS stream only while a call is in flight, so a change is awaited by
 * calling until the calls show it.
 */
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { stringify } from 'yaml'
import { createControlPlane, type ControlPlane, type ControlPlaneNack, type MeshConfig } from '../src/index.js'
import type { XdsObject } from '../src/xds/codec.js'
import { loadXdsCodec } from '../src/xds/protos.js'
import { bootstrapFor, everyFieldConfig, startEchoBackend, startXdsPeer, type EchoBackend, type XdsPeer } from './fixtures/xds/grpc-peers.js'
import { root } from './helpers/spawned.js'

const PYTHON = '/usr/bin/python3'
const CLIENT = join(root, 'test/fixtures/xds/python_client.py')
const CDS = 'type.googleapis.com/envoy.config.cluster.v3.Cluster'

/** Why the C-core client cannot run here, or undefined. */
function missingPeer(): string | undefined {
  if (!existsSync(PYTHON)) return `${PYTHON} is not installed (apt-get install python3-grpcio)`
  const probe = spawnSync(PYTHON, ['-c', 'import grpc; from grpc._cython import cygrpc; cygrpc.dump_xds_configs; print(grpc.__version__)'], { encoding: 'utf8' })
  if (probe.status !== 0) return `python3-grpcio with its xDS client is not installed (apt-get install python3-grpcio): ${probe.stderr.trim().split('\n').at(-1) ?? ''}`
  return undefined
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

type Calls = { counts: Record<string, number>; errors: Record<string, number> }

describe('interop: gRPC C-core (python3-grpcio) clients follow the control plane', () => {
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
    dir = mkdtempSync(join(tmpdir(), 'sidecarless-cp-py-'))
    file = join(dir, 'mesh.yaml')
    writeFileSync(file, stringify(meshConfig(v1, v2, { cluster: 'echo', subset: 'v1' })))
    cp = await createControlPlane({ config: file, watch: true, listen: '127.0.0.1:0', log: (l) => logs.push(l) })
    client = startXdsPeer(PYTHON, [CLIENT, 'xds:///echo:9090'], bootstrapFor(cp.address, 'python-client'), dir)
  })
  after(async () => {
    await client?.close()
    await cp?.close()
    v1?.close()
    v2?.close()
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true })
  })

  const call = async (n: number): Promise<Calls> => await client.ask(`call ${n}`) as Calls
  /** Calls until every answer comes from `backend` (C-core only reads updates during calls). */
  const until = async (backend: string): Promise<void> => {
    const deadline = Date.now() + 15_000
    while (Date.now() < deadline) {
      const r = await call(10)
      if (r.counts[backend] === 10) return
    }
    throw new Error(`calls never all went to ${backend}; stderr:\n${client.stderr()}`)
  }
  const inSync = (): boolean => cp.clients().length === 1 && cp.clients().every((c) => c.inSync)

  it('routes xds:///echo:9090 as the config says, and its CSDS view holds the versions we sent', async (t) => {
    if (missing !== undefined) return t.skip(missing)
    assert.deepEqual(await call(20), { counts: { v1: 20 }, errors: {} })
    assert.equal(cp.clients()[0]?.node?.id, 'python-client')
    assert.match(cp.clients()[0]?.node?.userAgent ?? '', /gRPC/)

    const answer = await client.ask('csds')
    const codec = await loadXdsCodec()
    const bytes = Buffer.from(answer['csds'] as string, 'base64')
    // 1.51 dumps one ClientConfig; later versions a ClientStatusResponse.
    let config: XdsObject
    try {
      config = codec.decode('envoy.service.status.v3.ClientConfig', bytes)
    } catch {
      config = (codec.decode('envoy.service.status.v3.ClientStatusResponse', bytes)['config'] as XdsObject[])[0] as XdsObject
    }
    const seen = new Map<string, XdsObject>()
    for (const g of config['generic_xds_configs'] as XdsObject[]) seen.set(`${String(g['type_url']).split('.').at(-1) ?? ''} ${String(g['name'])}`, g)
    const port = Math.min(v1.port, v2.port)
    const versions = cp.versions
    for (const [key, version] of [
      ['Listener echo:9090', versions.listeners], ['RouteConfiguration echo', versions.routes],
      [`Cluster outbound|${port}|v1|echo`, versions.clusters], [`ClusterLoadAssignment outbound|${port}|v1|echo`, versions.endpoints],
    ] as const) {
      const g = seen.get(key)
      assert.ok(g !== undefined, `${key} is in the client's view: ${[...seen.keys()].join(', ')}`)
      assert.equal(g['version_info'], version, key)
      assert.equal(g['client_status'], 'ACKED', key)
    }
    const listener = seen.get('Listener echo:9090')?.['xds_config'] as XdsObject
    assert.equal(listener['name'], 'echo:9090')
  })

  it('follows cp.traffic.split within ±3 points over 2,000 calls', async (t) => {
    if (missing !== undefined) return t.skip(missing)
    await cp.traffic.split('echo', { v1: 70, v2: 30 })
    // Calls (which make C-core read the stream) until it has ACKed the split.
    const deadline = Date.now() + 15_000
    while (!inSync() && Date.now() < deadline) await call(5)
    assert.ok(inSync(), JSON.stringify(cp.clients()))
    const { counts, errors } = await call(2_000)
    assert.deepEqual(errors, {})
    const share = ((counts['v2'] ?? 0) / 2_000) * 100
    assert.ok(Math.abs(share - 30) <= 3, `v2 got ${share.toFixed(1)}% of 2,000 calls, the split says 30%`)
  })

  it('takes an edit of the watched YAML to the client', async (t) => {
    if (missing !== undefined) return t.skip(missing)
    const before = cp.version
    writeFileSync(file, stringify(meshConfig(v1, v2, { cluster: 'echo', subset: 'v2' })))
    const deadline = Date.now() + 10_000
    while (cp.version === before && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20))
    assert.ok(cp.version > before, logs.join('\n'))
    await until('v2')
  })

  it('refuses a bad edit at the control plane; the client keeps the last good config', async (t) => {
    if (missing !== undefined) return t.skip(missing)
    const versions = cp.versions
    writeFileSync(file, stringify(meshConfig(v1, v2, { cluster: 'echo', subset: 'v9' })))
    const deadline = Date.now() + 10_000
    while (!logs.some((l) => l.includes('rejected')) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20))
    assert.ok(logs.some((l) => l.includes('UNKNOWN_SUBSET')), logs.join('\n'))
    assert.deepEqual(cp.versions, versions)
    assert.deepEqual(await call(20), { counts: { v2: 20 }, errors: {} })
  })

  it('gets a NACK for a cluster the client cannot accept, and does not send it again', async (t) => {
    if (missing !== undefined) return t.skip(missing)
    const nacks: ControlPlaneNack[] = []
    cp.on('nack', (n) => nacks.push(n))
    const tls = meshConfig(v1, v2, { cluster: 'echo', subset: 'v2' })
    const cluster = tls.clusters?.[0]
    assert.ok(cluster !== undefined)
    cluster.tls = { mode: 'ISTIO_MUTUAL' }
    await cp.update(tls)
    const deadline = Date.now() + 15_000
    while (nacks.length === 0 && Date.now() < deadline) await call(5)
    assert.equal(nacks[0]?.typeUrl, CDS, logs.join('\n'))
    assert.match(nacks[0]?.message ?? '', /certificate provider/i)
    const responses = cp.stats().responses
    // The client goes on with the cluster it accepted; nothing more is sent.
    assert.deepEqual(await call(100), { counts: { v2: 100 }, errors: {} })
    assert.equal(cp.stats().responses, responses, 'no response was sent after the NACK')
    assert.equal(nacks.length, 1)
    assert.equal(cp.clients()[0]?.resources.find((r) => r.typeUrl === CDS)?.status, 'ERROR')
    await cp.update(meshConfig(v1, v2, { cluster: 'echo', subset: 'v1' }))
    await until('v1')
  })

  it('accepts every field the control plane emits (C-core 1.51: round robin only)', async (t) => {
    if (missing !== undefined) return t.skip(missing)
    // C-core 1.51 refuses least_request, random and maglev clusters (no A52 fallback list
    // without GRPC_EXPERIMENTAL_XDS_CUSTOM_LB_CONFIG), and crashes (SIGSEGV) on any RING_HASH
    // cluster, our resources or a bare lb_policy alike; later C-core releases do not.
    const nacks: ControlPlaneNack[] = []
    cp.on('nack', (n) => nacks.push(n))
    await cp.update(everyFieldConfig(v1, v2))
    const deadline = Date.now() + 15_000
    while (!inSync() && Date.now() < deadline) await call(5)
    assert.ok(inSync(), JSON.stringify(cp.clients()))
    const { counts, errors } = await call(40)
    assert.deepEqual(errors, {})
    assert.ok((counts['v1'] ?? 0) > 0 && (counts['v2'] ?? 0) > 0, JSON.stringify(counts))
    assert.deepEqual(nacks.map((n) => n.message), [])
  })
})
