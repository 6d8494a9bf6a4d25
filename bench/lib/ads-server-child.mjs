/**
 * A forked ADS server for bench/xds-client.mjs, so the client's CPU is measured alone. It
 * serves istiod-shaped resources for `n` services (svc-<i>:80): an api_listener with RDS,
 * a RouteConfiguration of `routes` routes, an EDS cluster, two endpoints each; it answers
 * each request with the resources named (state of the world for those names) and, on a
 * `bump` message, sends a new version of one RouteConfiguration.
 *
 * Messages in: { start: { services, routes, endpointPort } }, { bump: i }. Out: { address }.
 */
import { loadGrpc } from '../../build/src/xds/optional-deps.js'
import { loadXdsCodec } from '../../build/src/xds/protos.js'

const HCM = 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager'
const TYPE = {
  listener: 'type.googleapis.com/envoy.config.listener.v3.Listener',
  route: 'type.googleapis.com/envoy.config.route.v3.RouteConfiguration',
  cluster: 'type.googleapis.com/envoy.config.cluster.v3.Cluster',
  endpoint: 'type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment',
}
const FILTERS = [
  { name: 'envoy.filters.http.fault', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault' } },
  { name: 'envoy.filters.http.router', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router' } },
]

const [grpc, codec] = await Promise.all([loadGrpc(), loadXdsCodec()])
let spec
const encoded = { listener: new Map(), route: new Map(), cluster: new Map(), endpoint: new Map() }
const versions = { listener: 1, route: 1, cluster: 1, endpoint: 1 }
const bumps = new Map()
const streams = new Set()
let nonce = 0

const cluster = (i) => `outbound|80||svc-${i % spec.services}.bench.svc.cluster.local`

function route(i, weight) {
  const routes = []
  for (let j = 0; j < spec.routes; j++) {
    const last = j === spec.routes - 1
    routes.push({
      name: `r${j}`,
      match: last ? { prefix: '/' } : { prefix: `/p${j}/`, ...(j % 3 === 0 ? { headers: [{ name: 'x-user', string_match: { exact: `u${j}` } }] } : {}) },
      route: last
        ? { weighted_clusters: { clusters: [{ name: cluster(i), weight }, { name: cluster(i + 1), weight: 100 - weight }], total_weight: 100 }, timeout: '0s' }
        : { cluster: cluster(i + (j % 2)), timeout: '0s', ...(j % 4 === 0 ? { retry_policy: { retry_on: '5xx', num_retries: 2 } } : {}) },
    })
  }
  return { name: `route-${i}`, virtual_hosts: [{ name: `svc-${i}`, domains: [`svc-${i}:80`, `svc-${i}`], routes }] }
}

function build() {
  for (let i = 0; i < spec.services; i++) {
    encoded.listener.set(`svc-${i}:80`, codec.encodeAny({ '@type': TYPE.listener, name: `svc-${i}:80`, api_listener: { api_listener: { '@type': HCM, http_filters: FILTERS, rds: { config_source: { ads: {} }, route_config_name: `route-${i}` } } } }))
    encoded.route.set(`route-${i}`, codec.encodeAny({ '@type': TYPE.route, ...route(i, 90) }))
    encoded.cluster.set(cluster(i), codec.encodeAny({ '@type': TYPE.cluster, name: cluster(i), type: 'EDS', eds_cluster_config: { service_name: cluster(i), eds_config: { ads: {} } } }))
    encoded.endpoint.set(cluster(i), codec.encodeAny({
      '@type': TYPE.endpoint,
      cluster_name: cluster(i),
      endpoints: [{ locality: { zone: 'z' }, lb_endpoints: [0, 1].map((k) => ({ endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: spec.endpointPort + k } } } })) }],
    }))
  }
}

/** Sends `send` (default: every name subscribed) as the response to the subscription `names`. */
function respond(stream, type, names, send = names) {
  const resources = []
  for (const n of send) {
    const r = encoded[type].get(n)
    if (r !== undefined) resources.push(r)
  }
  const body = codec.encodeWire('envoy.service.discovery.v3.DiscoveryResponse', { version_info: String(versions[type]), type_url: TYPE[type], nonce: String(++nonce), resources })
  stream.call.write(Buffer.from(body))
  stream.last[type] = { nonce: String(nonce), names: names.join('\n'), version: versions[type] }
}

function onRequest(stream, bytes) {
  const r = codec.decode('envoy.service.discovery.v3.DiscoveryRequest', bytes)
  const type = Object.keys(TYPE).find((k) => TYPE[k] === r.type_url)
  if (type === undefined) return
  const names = r.resource_names ?? []
  stream.names[type] = names
  const last = stream.last[type]
  if (last !== undefined && (r.response_nonce ?? '') !== last.nonce) return
  if (last !== undefined && last.names === names.join('\n') && last.version === versions[type]) return
  respond(stream, type, names)
}

process.on('message', async (m) => {
  if (m.start !== undefined) {
    spec = m.start
    build()
    const server = new grpc.Server({ 'grpc.max_send_message_length': -1 })
    const bytes = (b) => b
    server.addService({
      StreamAggregatedResources: {
        path: '/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources',
        requestStream: true, responseStream: true,
        requestSerialize: bytes, requestDeserialize: bytes, responseSerialize: bytes, responseDeserialize: bytes,
      },
    }, {
      StreamAggregatedResources: (call) => {
        const stream = { call, names: {}, last: {} }
        streams.add(stream)
        call.on('data', (b) => onRequest(stream, b))
        call.on('error', () => undefined)
        call.on('end', () => {
          streams.delete(stream)
          call.end()
        })
      },
    })
    const port = await new Promise((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))))
    process.send({ address: `127.0.0.1:${port}` })
  } else if (m.bump !== undefined) {
    const i = m.bump
    const weight = (bumps.get(i) ?? 90) === 90 ? 10 : 90
    bumps.set(i, weight)
    encoded.route.set(`route-${i}`, codec.encodeAny({ '@type': TYPE.route, ...route(i, weight) }))
    versions.route++
    // RDS is not full state: only the changed RouteConfiguration is sent.
    for (const stream of streams) respond(stream, 'route', stream.names.route ?? [], [`route-${i}`])
    process.send({ bumped: i })
  }
})
