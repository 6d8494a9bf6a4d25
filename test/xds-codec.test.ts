/**
 * The xDS codec and its prebuilt descriptor: the descriptor is what the build script makes
 * from the protos @grpc/grpc-js-xds ships; objects survive encode → decode in proto3-JSON
 * form; what we encode decodes the same in grpc-js-xds's own decoder (an independent
 * reading of the same protos); bad input fails with a coded error naming the path.
 */
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { createRequire } from 'node:module'
import { describe, it } from 'node:test'
import { isMeshError } from '../src/index.js'
import { durationFromMs, type XdsCodec, type XdsObject } from '../src/xds/codec.js'
import { loadXdsCodec } from '../src/xds/protos.js'
import { CLUSTER_TYPE_URL, LISTENER_TYPE_URL, typeUrlOf } from '../src/xds/type-urls.js'
import { root } from './helpers/spawned.js'

const require = createRequire(import.meta.url)
// grpc-js-xds's decoded objects are untyped.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Any = any

/** grpc-js-xds's resource decoder (proto-loader over the full .proto files), or undefined. */
function grpcJsXdsDecoder(): ((typeUrl: string, bytes: Uint8Array) => Record<string, unknown>) | undefined {
  try {
    const resources = require('@grpc/grpc-js-xds/build/src/resources') as { decodeSingleResource: (u: string, b: Uint8Array) => Record<string, unknown> }
    return resources.decodeSingleResource
  } catch {
    return undefined
  }
}

const CLUSTER: XdsObject = {
  name: 'outbound|9080|v1|reviews',
  type: 'EDS',
  eds_cluster_config: { eds_config: { ads: {}, resource_api_version: 'V3' }, service_name: 'outbound|9080|v1|reviews' },
  connect_timeout: '0.250s',
  lb_policy: 'RING_HASH',
  ring_hash_lb_config: { minimum_ring_size: '1024', maximum_ring_size: '8388608' },
  circuit_breakers: { thresholds: [{ max_requests: 100, max_retries: 3 }] },
  outlier_detection: { consecutive_5xx: 7, interval: '10s', base_ejection_time: '30s', max_ejection_percent: 10 },
  common_lb_config: { healthy_panic_threshold: { value: 40 } },
  transport_socket: {
    name: 'envoy.transport_sockets.tls',
    typed_config: {
      '@type': typeUrlOf('envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext'),
      sni: 'reviews.default.svc.cluster.local',
      common_tls_context: {
        tls_certificate_provider_instance: { instance_name: 'default', certificate_name: 'default' },
        combined_validation_context: {
          default_validation_context: {
            match_subject_alt_names: [{ exact: 'spiffe://cluster.local/ns/default/sa/reviews' }, { prefix: 'spiffe://cluster.local/ns/prod/' }],
            ca_certificate_provider_instance: { instance_name: 'default', certificate_name: 'ROOTCA' },
          },
        },
      },
    },
  },
}

describe('xDS descriptor', () => {
  it('is what scripts/build-xds-descriptor.mjs makes from the protos @grpc/grpc-js-xds ships', (t) => {
    try {
      require.resolve('@grpc/grpc-js-xds/package.json')
    } catch {
      t.skip('@grpc/grpc-js-xds (a devDependency) is not installed: cannot regenerate the descriptor')
      return
    }
    const run = spawnSync(process.execPath, ['scripts/build-xds-descriptor.mjs', '--check'], { cwd: root, encoding: 'utf8' })
    assert.equal(run.status, 0, `${run.stdout}${run.stderr}`)
  })

  it('holds every type the control plane and the client need', async () => {
    const codec = await loadXdsCodec()
    for (const name of [
      'envoy.service.discovery.v3.DiscoveryRequest', 'envoy.service.discovery.v3.DiscoveryResponse',
      'envoy.config.listener.v3.Listener', 'envoy.config.route.v3.RouteConfiguration', 'envoy.config.cluster.v3.Cluster',
      'envoy.config.endpoint.v3.ClusterLoadAssignment', 'envoy.extensions.transport_sockets.tls.v3.Secret',
      'envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
      'envoy.extensions.filters.http.fault.v3.HTTPFault', 'envoy.extensions.filters.http.rbac.v3.RBAC',
      'envoy.service.status.v3.ClientStatusResponse',
    ]) assert.ok(codec.hasType(name), name)
    assert.equal(codec.hasType('envoy.config.bootstrap.v3.Bootstrap'), false)
  })
})

describe('xDS codec', () => {
  let codec: XdsCodec
  it('loads', async () => {
    codec = await loadXdsCodec()
    assert.equal(await loadXdsCodec(), codec, 'one codec per process')
  })

  it('round-trips a Cluster in proto3-JSON form (snake_case, enums by name, 64-bit as strings, Any expanded)', () => {
    const bytes = codec.encode('envoy.config.cluster.v3.Cluster', CLUSTER)
    const back = codec.decode('envoy.config.cluster.v3.Cluster', bytes)
    // A Percent is a message, not a wrapper: it stays { value }.
    assert.deepEqual(back, CLUSTER)
  })

  it('keeps oneof members and wrappers at their default values, drops other defaults', () => {
    const route = {
      name: 'r',
      virtual_hosts: [{
        name: 'vh',
        domains: ['a'],
        routes: [{ match: { prefix: '', case_sensitive: false }, route: { cluster: 'c', timeout: '0s' } }],
      }],
    }
    const back = codec.decode('envoy.config.route.v3.RouteConfiguration', codec.encode('envoy.config.route.v3.RouteConfiguration', { ...route, validate_clusters: false, internal_only_headers: [] }))
    // validate_clusters is a BoolValue: present at false.
    assert.deepEqual(back, { ...route, validate_clusters: false })
  })

  it('keeps enum values that are not the zero value, whatever their name sorts as', () => {
    // ConfigStatus: UNKNOWN = 0 ... ERROR = 4; ERROR sorts first alphabetically.
    const config = { node: { id: 'n' }, generic_xds_configs: [{ name: 'a', config_status: 'ERROR', client_status: 'NACKED' }, { name: 'b', config_status: 'UNKNOWN' }] }
    const back = codec.decode('envoy.service.status.v3.ClientConfig', codec.encode('envoy.service.status.v3.ClientConfig', config))
    assert.deepEqual(back, { node: { id: 'n' }, generic_xds_configs: [{ name: 'a', config_status: 'ERROR', client_status: 'NACKED' }, { name: 'b' }] })
  })

  it('accepts { seconds, nanos } durations, { value } wrappers and camelCase names when encoding', () => {
    const bytes = codec.encode('envoy.config.cluster.v3.Cluster', {
      name: 'c',
      connectTimeout: { seconds: 1, nanos: 500_000_000 },
      per_connection_buffer_limit_bytes: { value: 1024 },
    })
    assert.deepEqual(codec.decode('envoy.config.cluster.v3.Cluster', bytes), { name: 'c', connect_timeout: '1.500s', per_connection_buffer_limit_bytes: 1024 })
  })

  it('writes Struct metadata as plain JSON', () => {
    const cla = {
      cluster_name: 'c',
      endpoints: [{
        locality: {},
        load_balancing_weight: 1,
        lb_endpoints: [{
          endpoint: { address: { socket_address: { address: '10.0.0.1', port_value: 9080 } } },
          metadata: { filter_metadata: { 'envoy.lb': { version: 'v1', canary: true, n: 2, none: null, list: ['a', 1] } } },
          load_balancing_weight: 3,
        }],
      }],
    }
    assert.deepEqual(codec.decode('envoy.config.endpoint.v3.ClusterLoadAssignment', codec.encode('envoy.config.endpoint.v3.ClusterLoadAssignment', cla)), cla)
  })

  it('decodes an Any of a type it does not hold as @bytes, and encodes it back unchanged', () => {
    const any = { type_url: 'type.googleapis.com/example.Unknown', value: new Uint8Array([8, 1]) }
    const obj = codec.decodeAny(any)
    assert.deepEqual(obj, { '@type': 'type.googleapis.com/example.Unknown', '@bytes': 'CAE=' })
    assert.deepEqual(codec.encodeAny(obj), { type_url: any.type_url, value: Buffer.from([8, 1]) })
  })

  it('writes an Any of a well-known type as { @type, value }', () => {
    const obj = { '@type': typeUrlOf('google.protobuf.Duration'), value: '2.500s' }
    assert.deepEqual(codec.decodeAny(codec.encodeAny(obj)), obj)
  })

  it('formats durations as proto3 JSON', () => {
    assert.equal(durationFromMs(0), '0s')
    assert.equal(durationFromMs(250), '0.250s')
    assert.equal(durationFromMs(15_000), '15s')
    assert.equal(durationFromMs(1), '0.001s')
  })

  it('refuses an unknown field, a wrong type and an unknown enum name, naming the path', () => {
    const cases: [XdsObject, RegExp][] = [
      [{ name: 'c', lb_polcy: 'ROUND_ROBIN' }, /Cluster\.lb_polcy.*no field "lb_polcy"/],
      [{ name: 'c', lb_policy: 'ROUNDROBIN' }, /Cluster\.lb_policy.*"ROUNDROBIN" is not one of/],
      [{ name: 7 }, /Cluster\.name.*expected a string/],
      [{ name: 'c', circuit_breakers: { thresholds: [{ max_requests: -1 }] } }, /circuit_breakers\.thresholds\[0\]\.max_requests.*-1/],
      [{ name: 'c', connect_timeout: '5 sec' }, /connect_timeout.*duration/],
      [{ name: 'c', type: 'EDS', cluster_type: { name: 'x' } }, /cluster_type.*one of cluster_discovery_type/],
      [{ name: 'c', transport_socket: { name: 't', typed_config: { '@type': 'type.googleapis.com/no.Such' } } }, /no message type no\.Such/],
    ]
    for (const [obj, re] of cases) {
      assert.throws(() => codec.encode('envoy.config.cluster.v3.Cluster', obj), (err: unknown) => isMeshError(err, 'SIDECARLESS_ERR_XDS_RESOURCE') && re.test(err.message), JSON.stringify(obj))
    }
  })

  it('refuses bytes that are not the type, with a coded error', () => {
    assert.throws(() => codec.decode('envoy.config.cluster.v3.Cluster', new Uint8Array([0x0a, 0xff, 0xff, 0xff])), (err: unknown) => isMeshError(err, 'SIDECARLESS_ERR_XDS_RESOURCE'))
  })

  it('bounds nesting', () => {
    let value: unknown = 1
    for (let i = 0; i < 200; i++) value = [value]
    assert.throws(() => codec.encode('envoy.config.endpoint.v3.ClusterLoadAssignment', { cluster_name: 'c', endpoints: [{ lb_endpoints: [{ metadata: { filter_metadata: { x: { deep: value } } } }] }] }), /nested deeper/)
  })

  it('writes what grpc-js-xds reads the same way (its decoder over the full protos)', (t) => {
    const decode = grpcJsXdsDecoder()
    if (decode === undefined) {
      t.skip('@grpc/grpc-js-xds (a devDependency) is not installed')
      return
    }
    const cluster = decode(CLUSTER_TYPE_URL, codec.encode('envoy.config.cluster.v3.Cluster', CLUSTER)) as Record<string, Any>
    assert.equal(cluster['name'], 'outbound|9080|v1|reviews')
    assert.equal(cluster['lb_policy'], 'RING_HASH')
    assert.equal(cluster['ring_hash_lb_config'].minimum_ring_size.value, '1024')
    assert.equal(cluster['circuit_breakers'].thresholds[0].max_requests.value, 100)
    assert.deepEqual(cluster['connect_timeout'], { seconds: '0', nanos: 250_000_000 })
    assert.equal(cluster['transport_socket'].typed_config.type_url, typeUrlOf('envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext'))

    const listener = {
      name: 'reviews:9080',
      api_listener: {
        api_listener: {
          '@type': typeUrlOf('envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager'),
          rds: { config_source: { ads: {}, resource_api_version: 'V3' }, route_config_name: 'reviews' },
          http_filters: [{ name: 'envoy.filters.http.router', typed_config: { '@type': typeUrlOf('envoy.extensions.filters.http.router.v3.Router') } }],
        },
      },
    }
    const decoded = decode(LISTENER_TYPE_URL, codec.encode('envoy.config.listener.v3.Listener', listener)) as Record<string, Any>
    assert.equal(decoded['name'], 'reviews:9080')
    const hcm = decode(decoded['api_listener'].api_listener.type_url as string, decoded['api_listener'].api_listener.value as Uint8Array) as Record<string, Any>
    assert.equal(hcm['rds'].route_config_name, 'reviews')
    assert.equal(hcm['http_filters'][0].typed_config.type_url, typeUrlOf('envoy.extensions.filters.http.router.v3.Router'))
  })
})
