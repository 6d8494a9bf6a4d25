/**
 * The control plane's ADS protocol, driven by a raw stream that sends exactly the requests
 * a test means (ACK, NACK, stale nonce, new names), against a real control plane on
 * loopback: responses hold what exists and never wait for what does not, NACKed versions
 * are not sent again, pushes go out clusters → endpoints → listeners → routes, removed
 * clusters stay until the routes that used them are ACKed; and the API around it: update
 * refusals, traffic split, clients(), CSDS, the admin endpoint, close().
 */
import assert from 'node:assert/strict'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, it } from 'node:test'
import { createControlPlane, isMeshError, type ControlPlane, type ControlPlaneNack, type MeshConfig } from '../src/index.js'
import { ConfigError } from '../src/index.js'
import type { XdsObject } from '../src/xds/codec.js'
import { fetchClientStatus, openRawAds, type RawAds, type RawResponse } from './fixtures/xds/grpc-peers.js'

const LDS = 'type.googleapis.com/envoy.config.listener.v3.Listener'
const RDS = 'type.googleapis.com/envoy.config.route.v3.RouteConfiguration'
const CDS = 'type.googleapis.com/envoy.config.cluster.v3.Cluster'
const EDS = 'type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment'

function config(weights: [number, number] = [100, 0]): MeshConfig {
  return {
    clusters: [
      {
        name: 'reviews',
        endpoints: [{ address: '10.0.0.1:9080', labels: { version: 'v1' } }, { address: '10.0.0.2:9080', labels: { version: 'v2' } }],
        subsets: [{ name: 'v1', labels: { version: 'v1' } }, { name: 'v2', labels: { version: 'v2' } }],
      },
      { name: 'ratings', endpoints: [{ address: '10.0.1.1:9080' }] },
    ],
    virtualHosts: [
      {
        name: 'reviews',
        domains: ['reviews'],
        routes: [{ match: { prefix: '/' }, route: { weightedClusters: [{ cluster: 'reviews', subset: 'v1', weight: weights[0] }, { cluster: 'reviews', subset: 'v2', weight: weights[1] }] } }],
      },
      { name: 'ratings', domains: ['ratings:9080'], routes: [{ match: { prefix: '/' }, route: { cluster: 'ratings' } }] },
    ],
  }
}

const planes: ControlPlane[] = []
const streams: RawAds[] = []
after(async () => {
  for (const s of streams) s.close()
  await Promise.all(planes.map((p) => p.close()))
})

async function start(options: Partial<Parameters<typeof createControlPlane>[0]> = {}): Promise<{ cp: ControlPlane; logs: string[] }> {
  const logs: string[] = []
  const cp = await createControlPlane({ config: config(), listen: '127.0.0.1:0', log: (l) => logs.push(l), ...options })
  planes.push(cp)
  return { cp, logs }
}

async function open(cp: ControlPlane, node = 'raw'): Promise<RawAds> {
  const s = await openRawAds(cp.address, node)
  streams.push(s)
  return s
}

function ack(s: RawAds, r: RawResponse, names: string[]): void {
  s.send({ type_url: r.type_url, version_info: r.version_info, response_nonce: r.nonce, resource_names: names })
}

function waitFor(check: () => boolean, ms = 5_000): Promise<void> {
  const until = Date.now() + ms
  return new Promise((resolve, reject) => {
    const poll = (): void => {
      if (check()) resolve()
      else if (Date.now() > until) reject(new Error('condition not met in time'))
      else setTimeout(poll, 10)
    }
    poll()
  })
}

describe('ADS protocol', () => {
  it('answers with the requested names it has, never holding them back for one it lacks, and stays quiet on an ACK', async () => {
    const { cp } = await start()
    const s = await open(cp)
    s.send({ type_url: LDS, resource_names: ['reviews:9080', 'nowhere:80'] })
    const r = await s.next()
    assert.equal(r.type_url, LDS)
    assert.deepEqual(r.names, ['reviews:9080'])
    assert.equal(r.version_info, cp.versions.listeners)
    ack(s, r, ['reviews:9080', 'nowhere:80'])
    await s.quiet(150)
    // A new name: the whole state of the world for listeners.
    s.send({ type_url: LDS, version_info: r.version_info, response_nonce: r.nonce, resource_names: ['reviews:9080', 'nowhere:80', 'ratings:9080'] })
    const r2 = await s.next()
    assert.deepEqual(r2.names.sort(), ['ratings:9080', 'reviews:9080'])
    assert.notEqual(r2.nonce, r.nonce)
    ack(s, r2, ['reviews:9080', 'nowhere:80', 'ratings:9080'])
    await waitFor(() => cp.clients()[0]?.inSync === true)
    const [client] = cp.clients()
    assert.equal(client?.node?.id, 'raw')
    assert.deepEqual(client?.resources.map((t) => [t.typeUrl, t.status, t.ackedVersion]), [[LDS, 'SYNCED', cp.versions.listeners]])
  })

  it('ignores a request whose nonce is stale', async () => {
    const { cp } = await start()
    const s = await open(cp)
    s.send({ type_url: CDS, resource_names: ['outbound|9080||ratings'] })
    const r = await s.next()
    s.send({ type_url: CDS, version_info: r.version_info, response_nonce: 'stale', resource_names: ['outbound|9080||ratings', 'outbound|9080|v1|reviews'] })
    await s.quiet(150)
    assert.equal(cp.stats().ignoredRequests, 1)
    ack(s, r, ['outbound|9080||ratings', 'outbound|9080|v1|reviews'])
    assert.deepEqual((await s.next()).names.sort(), ['outbound|9080|v1|reviews', 'outbound|9080||ratings'])
  })

  it('after a NACK sends nothing more of that type until there is a new version; logs and counts it with its reasons', async () => {
    const { cp, logs } = await start()
    const nacks: ControlPlaneNack[] = []
    cp.on('nack', (n) => nacks.push(n))
    const s = await open(cp, 'picky')
    s.send({ type_url: RDS, resource_names: ['reviews'] })
    const r = await s.next()
    s.send({ type_url: RDS, version_info: '', response_nonce: r.nonce, resource_names: ['reviews'], error_detail: { code: 3, message: 'route reviews: weights refused; and another reason' } })
    await s.quiet(200)
    assert.equal(cp.stats().nacks, 1)
    assert.equal(nacks[0]?.message, 'route reviews: weights refused; and another reason')
    assert.equal(nacks[0]?.version, r.version_info)
    assert.equal(nacks[0]?.client.node?.id, 'picky')
    assert.ok(logs.some((l) => l.includes('NACK from picky') && l.includes('weights refused; and another reason')), logs.join('\n'))
    const status = cp.clients()[0]?.resources[0]
    assert.equal(status?.status, 'ERROR')
    assert.equal(status?.lastNack?.message, 'route reviews: weights refused; and another reason')
    // An update that leaves the routes alone sends nothing.
    const moved = config()
    moved.clusters?.[1]?.endpoints?.push({ address: '10.0.1.2:9080' })
    await cp.update(moved)
    await s.quiet(150)
    // A new version of the routes is sent.
    await cp.traffic.split('reviews', { v1: 50, v2: 50 })
    const r2 = await s.next()
    assert.notEqual(r2.version_info, r.version_info)
    ack(s, r2, ['reviews'])
    await waitFor(() => cp.clients()[0]?.resources[0]?.status === 'SYNCED')
    assert.equal(cp.clients()[0]?.resources[0]?.lastNack?.message, 'route reviews: weights refused; and another reason', 'the last NACK stays visible')
  })

  it('subscribes to every listener and cluster when the first request names none (wildcard), and answers unknown types empty', async () => {
    const { cp } = await start()
    const s = await open(cp)
    s.send({ type_url: CDS })
    assert.deepEqual((await s.next()).names, ['outbound|9080||reviews', 'outbound|9080|v1|reviews', 'outbound|9080|v2|reviews', 'outbound|9080||ratings'])
    s.send({ type_url: LDS, resource_names: ['*'] })
    assert.deepEqual((await s.next()).names, ['reviews', 'ratings:9080'])
    s.send({ type_url: 'type.googleapis.com/envoy.config.example.v3.Unknown' })
    const unknown = await s.next()
    assert.deepEqual(unknown.names, [])
  })

  it('pushes a change in make-before-break order: clusters, endpoints, listeners, routes', async () => {
    const { cp } = await start()
    const s = await open(cp)
    const subscribe = async (type: string, names: string[]): Promise<void> => {
      s.send({ type_url: type, resource_names: names })
      ack(s, await s.next(), names)
    }
    await subscribe(RDS, ['reviews'])
    await subscribe(LDS, [])
    await subscribe(EDS, ['outbound|9080|v1|reviews'])
    await subscribe(CDS, [])
    const next = config()
    const reviews = next.clusters?.[0]
    assert.ok(reviews !== undefined)
    reviews.connectTimeout = '1s'
    reviews.endpoints?.push({ address: '10.0.0.3:9080', labels: { version: 'v1' } })
    next.virtualHosts?.[1]?.domains.push('ratings.example')
    const vh = next.virtualHosts?.[0]
    assert.ok(vh !== undefined)
    vh.routes.unshift({ match: { prefix: '/new' }, route: { cluster: 'ratings' } })
    await cp.update(next)
    const order = [(await s.next()).type_url, (await s.next()).type_url, (await s.next()).type_url, (await s.next()).type_url]
    assert.deepEqual(order, [CDS, EDS, LDS, RDS])
  })

  it('keeps a removed cluster until the client ACKed the routes that stopped using it', async () => {
    const { cp } = await start()
    const s = await open(cp)
    s.send({ type_url: CDS })
    const c1 = await s.next()
    ack(s, c1, [])
    s.send({ type_url: RDS, resource_names: ['reviews'] })
    const r1 = await s.next()
    ack(s, r1, ['reviews'])
    await waitFor(() => cp.clients()[0]?.inSync === true)
    // Remove subset v2: the routes change first, the cluster stays.
    const next = config()
    const reviews = next.clusters?.[0]
    assert.ok(reviews !== undefined)
    reviews.subsets = reviews.subsets?.filter((x) => x.name !== 'v2')
    const vh = next.virtualHosts?.[0]
    assert.ok(vh !== undefined)
    vh.routes = [{ match: { prefix: '/' }, route: { cluster: 'reviews', subset: 'v1' } }]
    await cp.update(next)
    const r2 = await s.next()
    assert.equal(r2.type_url, RDS)
    assert.ok(cp.resources().clusters.some((c) => c.name === 'outbound|9080|v2|reviews'), 'still published')
    await s.quiet(100)
    ack(s, r2, ['reviews'])
    const c2 = await s.next()
    assert.equal(c2.type_url, CDS)
    assert.deepEqual(c2.names, ['outbound|9080||reviews', 'outbound|9080|v1|reviews', 'outbound|9080||ratings'])
  })

  it('drops a removed cluster after retireTimeout when a client never ACKs', async () => {
    const { cp } = await start({ retireTimeout: '200ms' })
    const s = await open(cp)
    s.send({ type_url: RDS, resource_names: ['reviews'] })
    await s.next()
    await cp.update({ ...config(), virtualHosts: [], clusters: [config().clusters?.[1] as NonNullable<MeshConfig['clusters']>[number]] })
    assert.equal(cp.resources().clusters.length, 4)
    await waitFor(() => cp.resources().clusters.length === 1)
    assert.deepEqual(cp.resources().clusters.map((c) => c.name), ['outbound|9080||ratings'])
  })
})

describe('control plane API', () => {
  it('refuses an invalid config, and one routing to a subset without endpoints, listing every problem; the config served stays', async () => {
    const { cp } = await start()
    const rejected: unknown[] = []
    cp.on('configRejected', (e) => rejected.push(e))
    const before = cp.versions
    const bad = config()
    bad.virtualHosts?.push({ name: 'x', domains: ['x'], routes: [{ match: { prefix: '/' }, route: { cluster: 'nope' } }] })
    await assert.rejects(cp.update(bad), (err: unknown) => err instanceof ConfigError && err.issues.some((i) => i.code === 'UNKNOWN_CLUSTER'))
    const empty = config([50, 50])
    const reviews = empty.clusters?.[0]
    assert.ok(reviews !== undefined)
    reviews.endpoints = reviews.endpoints?.filter((e) => e.labels?.['version'] === 'v1')
    await assert.rejects(cp.update(empty), (err: unknown) => {
      assert.ok(err instanceof ConfigError)
      assert.deepEqual(err.issues.map((i) => [i.path, i.code]), [['virtualHosts[0].routes[0].route.weightedClusters[1]', 'INVALID_VALUE']])
      return true
    })
    await assert.rejects(cp.update('/nonexistent/mesh.yaml'), (err: unknown) => isMeshError(err, 'SIDECARLESS_ERR_CONFIG_LOAD'))
    assert.deepEqual(cp.versions, before)
    assert.equal(rejected.length, 3)
    assert.equal(cp.stats().configsRejected, 3)
  })

  it('splits traffic with the mesh API rules', async () => {
    const { cp } = await start()
    await assert.rejects(cp.traffic.split('nope', { v1: 1 }), (err: unknown) => isMeshError(err, 'SIDECARLESS_ERR_UNKNOWN_TARGET'))
    await assert.rejects(cp.traffic.split('reviews', { v1: -1 }), (err: unknown) => isMeshError(err, 'SIDECARLESS_ERR_INVALID_ARGUMENT'))
    await assert.rejects(cp.traffic.split('reviews', { v9: 1 }), (err: unknown) => err instanceof ConfigError)
    const applied = await cp.traffic.split('reviews', { v1: 25, v2: 75 })
    assert.equal(applied.version, cp.version)
    assert.deepEqual(cp.traffic.get('reviews'), { v1: 25, v2: 75 })
  })

  it('listens on a port number or { host, port } (on loopback), or a unix socket', async () => {
    const byPort = await createControlPlane({ config: config(), listen: 0, log: () => undefined })
    planes.push(byPort)
    assert.match(byPort.address, /^127\.0\.0\.1:\d+$/)
    const byObject = await createControlPlane({ config: config(), listen: { port: 0 }, log: () => undefined })
    planes.push(byObject)
    assert.match(byObject.address, /^127\.0\.0\.1:\d+$/)
    const socket = join(mkdtempSync(join(tmpdir(), 'sidecarless-cp-sock-')), 'cp.sock')
    const byUnix = await createControlPlane({ config: config(), listen: `unix:${socket}`, log: () => undefined })
    planes.push(byUnix)
    assert.equal(byUnix.address, `unix:${socket}`)
    const s = await open(byUnix)
    s.send({ type_url: LDS, resource_names: ['reviews'] })
    assert.deepEqual((await s.next()).names, ['reviews'])
    await assert.rejects(createControlPlane({ config: config(), listen: 70000 }), (err: unknown) => isMeshError(err, 'SIDECARLESS_ERR_INVALID_ARGUMENT'))
    await assert.rejects(createControlPlane({ config: config(), listen: 'nowhere' }), (err: unknown) => isMeshError(err, 'SIDECARLESS_ERR_INVALID_ARGUMENT'))
  })

  it('resolves host names in endpoint addresses to the IPs clients dial', async () => {
    const { cp } = await start({ config: { clusters: [{ name: 'local', endpoints: [{ address: 'localhost:9999' }] }] } })
    const cla = cp.resources().endpoints[0]?.resource
    const ip = ((((cla?.['endpoints'] as XdsObject[])[0]?.['lb_endpoints'] as XdsObject[])[0]?.['endpoint'] as XdsObject)['address'] as XdsObject)['socket_address'] as XdsObject
    assert.ok(ip['address'] === '127.0.0.1' || ip['address'] === '::1', JSON.stringify(ip))
    assert.equal(ip['port_value'], 9999)
  })

  it('reports each client over CSDS: node, resources, versions, status and the NACK details', async () => {
    const { cp } = await start()
    const s = await open(cp, 'csds-node')
    s.send({ type_url: CDS, resource_names: ['outbound|9080||ratings'] })
    const r = await s.next()
    s.send({ type_url: CDS, version_info: '', response_nonce: r.nonce, resource_names: ['outbound|9080||ratings'], error_detail: { message: 'no thanks' } })
    await waitFor(() => cp.stats().nacks === 1)
    const status = await fetchClientStatus(cp.address)
    const [client] = status['config'] as XdsObject[]
    assert.equal((client?.['node'] as XdsObject)['id'], 'csds-node')
    const [item] = client?.['generic_xds_configs'] as XdsObject[]
    assert.equal(item?.['name'], 'outbound|9080||ratings')
    assert.equal(item?.['config_status'], 'ERROR')
    assert.equal(item?.['version_info'], r.version_info)
    assert.equal((item?.['error_state'] as XdsObject)['details'], 'no thanks')
    assert.equal((item?.['xds_config'] as XdsObject)['name'], 'outbound|9080||ratings')
    const none = await fetchClientStatus(cp.address, { node_matchers: [{ node_id: { exact: 'other' } }] })
    assert.deepEqual(none['config'] ?? [], [])
  })

  it('has a loopback admin endpoint when asked, and refuses any other address', async () => {
    await assert.rejects(createControlPlane({ config: config(), listen: '127.0.0.1:0', admin: '0.0.0.0:0' }), (err: unknown) => isMeshError(err, 'SIDECARLESS_ERR_INVALID_ARGUMENT'))
    const { cp } = await start({ admin: '127.0.0.1:0' })
    const s = await open(cp, 'admin-node')
    s.send({ type_url: LDS, resource_names: ['reviews'] })
    await s.next()
    const base = `http://${cp.adminAddress ?? ''}`
    const clients = await (await fetch(`${base}/clients`)).json() as { clients: { node: { id: string } }[] }
    assert.deepEqual(clients.clients.map((c) => c.node.id), ['admin-node'])
    assert.equal((await fetch(`${base}/ready`)).status, 200)
    assert.match(await (await fetch(`${base}/stats`)).text(), /control_plane\.responses: 1/)
    const dump = await (await fetch(`${base}/config_dump`)).json() as { resources: { listeners: { name: string }[] } }
    assert.deepEqual(dump.resources.listeners.map((l) => l.name), ['reviews', 'ratings:9080'])
    assert.equal((await fetch(`${base}/clients`, { method: 'POST' })).status, 405)
  })

  it('close() ends every stream and refuses later updates', async () => {
    const { cp } = await start()
    const s = await open(cp)
    s.send({ type_url: LDS, resource_names: ['reviews'] })
    await s.next()
    await cp.close()
    await assert.rejects(s.next(1_000))
    await assert.rejects(cp.update(config()), (err: unknown) => isMeshError(err, 'SIDECARLESS_ERR_CLOSED'))
  })

  it('ends a stream that sends what is not a DiscoveryRequest, or one without a type, and serves the others', async () => {
    const { cp, logs } = await start()
    const { loadGrpc } = await import('../src/xds/optional-deps.js')
    const grpc = await loadGrpc()
    const raw = { serialize: (b: Buffer) => b, deserialize: (b: Buffer) => b }
    const Client = grpc.makeGenericClientConstructor({
      StreamAggregatedResources: {
        path: '/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources',
        requestStream: true, responseStream: true,
        requestSerialize: raw.serialize, requestDeserialize: raw.deserialize, responseSerialize: raw.serialize, responseDeserialize: raw.deserialize,
      },
    }, 'ADS')
    const client = new Client(cp.address, grpc.credentials.createInsecure())
    const statusOf = (bytes: Buffer): Promise<{ code: number; details: string }> => new Promise((resolve) => {
      const call = (client as unknown as { StreamAggregatedResources(): NodeJS.EventEmitter & { write(v: Buffer): void } }).StreamAggregatedResources()
      call.on('error', resolve)
      call.on('data', () => undefined)
      call.write(bytes)
    })
    // A field tag and nothing after it: not a protobuf message.
    assert.equal((await statusOf(Buffer.from([0x0a]))).code, grpc.status.INTERNAL)
    // A request naming resource "x" (field 3) but no type_url (field 4): ADS cannot answer it.
    const noType = await statusOf(Buffer.from([0x1a, 0x01, 0x78]))
    assert.deepEqual([noType.code, noType.details], [grpc.status.INVALID_ARGUMENT, 'a DiscoveryRequest on an ADS stream needs a type_url'])
    client.close()
    assert.ok(logs.some((l) => l.includes('needs a type_url; stream ended')), logs.join('\n'))
    const s = await open(cp)
    s.send({ type_url: LDS, resource_names: ['reviews'] })
    assert.deepEqual((await s.next()).names, ['reviews'])
  })

  it('answers delta xDS with UNIMPLEMENTED', async () => {
    const { cp } = await start()
    const { loadGrpc } = await import('../src/xds/optional-deps.js')
    const { loadXdsCodec } = await import('../src/xds/protos.js')
    const { adsService } = await import('../src/xds/services.js')
    const [grpc, codec] = await Promise.all([loadGrpc(), loadXdsCodec()])
    const Client = grpc.makeGenericClientConstructor(adsService(codec), 'ADS')
    const client = new Client(cp.address, grpc.credentials.createInsecure())
    const call = (client as unknown as { DeltaAggregatedResources(): NodeJS.EventEmitter & { write(v: object): void } }).DeltaAggregatedResources()
    const code = await new Promise<number>((resolve) => {
      call.on('error', (err: { code: number }) => resolve(err.code))
      call.on('data', () => undefined)
      call.write({ type_url: LDS })
    })
    client.close()
    assert.equal(code, grpc.status.UNIMPLEMENTED)
  })
})
