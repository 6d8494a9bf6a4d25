/**
 * Our config → xDS resources, shaped as istiod's grpcgen writes them for proxyless gRPC
 * (pilot/pkg/networking/grpcgen: lds.go, rds.go, cds.go, grpcgen.go), and snapshots built
 * from them: content versions, consistency, listeners served on request.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import type { MeshConfig } from '../src/index.js'
import { ConfigError } from '../src/index.js'
import type { XdsObject } from '../src/xds/codec.js'
import { routesToNowhere } from '../src/xds/consistency.js'
import { emitResources } from '../src/xds/emit/index.js'
import { loadXdsCodec } from '../src/xds/protos.js'
import { Problems, translateRouteConfiguration } from '../src/config/envoy/index.js'
import { buildSnapshot } from '../src/xds/snapshot.js'
import { typeUrlOf } from '../src/xds/type-urls.js'

const TLS = typeUrlOf('envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext')
const HCM = typeUrlOf('envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager')

function config(): MeshConfig {
  return {
    clusters: [
      {
        name: 'reviews',
        endpoints: [
          { address: 'http://10.0.0.1:9080', labels: { version: 'v1' } },
          { address: '10.0.0.2:9080', labels: { version: 'v2' }, weight: 2 },
          { address: '10.0.0.3:9081', labels: { version: 'v3' } },
        ],
        subsets: [{ name: 'v1', labels: { version: 'v1' } }, { name: 'v2', labels: { version: 'v2' } }, { name: 'v3', labels: { version: 'v3' } }],
        loadBalancer: 'ring_hash',
        ringHash: { minimumRingSize: 2048 },
        connectTimeout: '250ms',
        circuitBreakers: { maxRequests: 100, maxRetries: 4 },
        outlierDetection: { consecutive5xx: 7, interval: '5s', maxEjectionPercent: 50 },
        tls: { mode: 'ISTIO_MUTUAL', verifyIdentities: ['spiffe://cluster.local/ns/default/sa/reviews', 'spiffe://cluster.local/ns/prod/*'], sni: 'reviews.default.svc' },
      },
      { name: 'ratings', endpoints: [{ address: '10.0.1.1:9080' }], loadBalancer: 'least_request', leastRequest: { choiceCount: 3 } },
      { name: 'details', endpoints: [{ address: '10.0.2.1:9080' }], loadBalancer: 'maglev' },
    ],
    virtualHosts: [
      {
        name: 'reviews',
        domains: ['reviews', 'reviews.default.svc.cluster.local:9080'],
        retryPolicy: { retryOn: ['5xx', 'reset'], numRetries: 2 },
        routes: [
          {
            name: 'jason',
            match: { prefix: '/', headers: [{ name: 'end-user', exact: 'jason' }], methods: ['GET', 'HEAD'] },
            route: { cluster: 'reviews', subset: 'v2', timeout: '3s', hashPolicy: [{ header: { name: 'x-user' } }] },
            fault: { delay: { fixedDelay: '1s', percentage: 12.5 } },
          },
          {
            match: { prefix: '/' },
            route: {
              weightedClusters: [{ cluster: 'reviews', subset: 'v1', weight: 90 }, { cluster: 'reviews', subset: 'v2', weight: 10 }, { cluster: 'reviews', subset: 'v3', weight: 0 }],
              retryPolicy: { retryOn: '5xx,connect-failure', numRetries: 3, perTryTimeout: '500ms', retryBackOff: { maxInterval: '1s' } },
            },
          },
        ],
      },
      { name: 'ratings', domains: ['ratings:9080', '*.ratings.example'], routes: [{ match: { prefix: '/' }, route: { cluster: 'ratings' } }] },
    ],
  }
}

describe('xDS resources from a mesh config (grpcgen-shaped)', () => {
  const emitted = emitResources(config())

  it('serves each domain as an API listener of that name, with HCM [fault, router] and RDS over ADS', () => {
    assert.deepEqual([...emitted.listeners.keys()], ['reviews', 'reviews.default.svc.cluster.local:9080', 'ratings:9080', '*.ratings.example'])
    const l = emitted.listeners.get('reviews') as XdsObject
    const hcm = (l['api_listener'] as XdsObject)['api_listener'] as XdsObject
    assert.equal(hcm['@type'], HCM)
    assert.deepEqual(hcm['rds'], { config_source: { ads: {}, resource_api_version: 'V3' }, route_config_name: 'reviews' })
    assert.deepEqual((hcm['http_filters'] as XdsObject[]).map((f) => f['name']), ['envoy.filters.http.fault', 'envoy.filters.http.router'])
  })

  it('names clusters outbound|<port>|<subset>|<name>, one EDS cluster per subset, endpoints filtered by labels', () => {
    assert.deepEqual([...emitted.clusters.keys()], [
      'outbound|9080||reviews', 'outbound|9080|v1|reviews', 'outbound|9080|v2|reviews', 'outbound|9080|v3|reviews',
      'outbound|9080||ratings', 'outbound|9080||details',
    ])
    const v2 = emitted.clusters.get('outbound|9080|v2|reviews') as XdsObject
    assert.equal(v2['type'], 'EDS')
    assert.deepEqual(v2['eds_cluster_config'], { eds_config: { ads: {}, resource_api_version: 'V3' }, service_name: 'outbound|9080|v2|reviews' })
    const cla = emitted.endpoints.get('outbound|9080|v2|reviews') as XdsObject
    assert.deepEqual(cla, {
      cluster_name: 'outbound|9080|v2|reviews',
      endpoints: [{
        locality: {},
        load_balancing_weight: 1,
        lb_endpoints: [{
          endpoint: { address: { socket_address: { address: '10.0.0.2', port_value: 9080 } } },
          metadata: { filter_metadata: { 'envoy.lb': { version: 'v2' } } },
          load_balancing_weight: 2,
        }],
      }],
    })
    const all = emitted.endpoints.get('outbound|9080||reviews') as XdsObject
    assert.equal(((all['endpoints'] as XdsObject[])[0]?.['lb_endpoints'] as XdsObject[]).length, 3)
  })

  it('carries the policies gRPC honours on every cluster of a service: ring hash, max_requests, outlier detection, mTLS', () => {
    const c = emitted.clusters.get('outbound|9080|v1|reviews') as XdsObject
    assert.equal(c['connect_timeout'], '0.250s')
    assert.equal(c['lb_policy'], 'RING_HASH')
    assert.deepEqual(c['ring_hash_lb_config'], { minimum_ring_size: '2048', hash_function: 'XX_HASH' })
    assert.deepEqual(c['circuit_breakers'], { thresholds: [{ max_requests: 100, max_retries: 4 }] })
    assert.deepEqual(c['outlier_detection'], { consecutive_5xx: 7, max_ejection_percent: 50, interval: '5s' })
    const socket = c['transport_socket'] as XdsObject
    assert.equal(socket['name'], 'envoy.transport_sockets.tls')
    const tls = socket['typed_config'] as XdsObject
    assert.equal(tls['@type'], TLS)
    assert.equal(tls['sni'], 'reviews.default.svc')
    const common = tls['common_tls_context'] as XdsObject
    // Both the current provider-instance fields and the deprecated ones older gRPC reads.
    assert.deepEqual(common['tls_certificate_provider_instance'], { instance_name: 'default', certificate_name: 'default' })
    assert.deepEqual(common['tls_certificate_certificate_provider_instance'], { instance_name: 'default', certificate_name: 'default' })
    const combined = common['combined_validation_context'] as XdsObject
    assert.deepEqual(combined['validation_context_certificate_provider_instance'], { instance_name: 'default', certificate_name: 'ROOTCA' })
    assert.deepEqual(combined['default_validation_context'], {
      ca_certificate_provider_instance: { instance_name: 'default', certificate_name: 'ROOTCA' },
      match_subject_alt_names: [{ exact: 'spiffe://cluster.local/ns/default/sa/reviews' }, { prefix: 'spiffe://cluster.local/ns/prod/' }],
    })
  })

  it('gives policies gRPC does not implement a load_balancing_policy list ending in one it does', () => {
    const ratings = emitted.clusters.get('outbound|9080||ratings') as XdsObject
    assert.equal(ratings['lb_policy'], 'LEAST_REQUEST')
    assert.deepEqual(ratings['least_request_lb_config'], { choice_count: 3 })
    const names = ((ratings['load_balancing_policy'] as XdsObject)['policies'] as XdsObject[]).map((p) => (p['typed_extension_config'] as XdsObject)['name'])
    assert.deepEqual(names, ['envoy.load_balancing_policies.least_request', 'envoy.load_balancing_policies.round_robin'])
    const details = emitted.clusters.get('outbound|9080||details') as XdsObject
    assert.equal(details['lb_policy'], 'MAGLEV')
    const fallback = ((details['load_balancing_policy'] as XdsObject)['policies'] as XdsObject[]).map((p) => ((p['typed_extension_config'] as XdsObject)['typed_config'] as XdsObject)['@type'])
    assert.deepEqual(fallback, [typeUrlOf('envoy.extensions.load_balancing_policies.maglev.v3.Maglev'), typeUrlOf('envoy.extensions.load_balancing_policies.ring_hash.v3.RingHash')])
  })

  it('writes routes as gRPC reads them: weights with their total, timeouts as max_stream_duration, retries, hash policy, per-route fault', () => {
    const rc = emitted.routes.get('reviews') as XdsObject
    const vh = (rc['virtual_hosts'] as XdsObject[])[0] as XdsObject
    // A domain without a port serves every port: gRPC matches `reviews:9080` against `reviews:*`.
    assert.deepEqual(vh['domains'], ['reviews', 'reviews:*', 'reviews.default.svc.cluster.local:9080'])
    assert.deepEqual(vh['retry_policy'], { retry_on: '5xx,reset', num_retries: 2 })
    const [jason, split] = vh['routes'] as XdsObject[]
    assert.deepEqual(jason?.['match'], {
      prefix: '/',
      headers: [{ name: 'end-user', string_match: { exact: 'jason' } }, { name: ':method', string_match: { safe_regex: { regex: 'GET|HEAD' } } }],
    })
    assert.deepEqual(jason?.['route'], {
      cluster: 'outbound|9080|v2|reviews',
      timeout: '3s',
      max_stream_duration: { max_stream_duration: '3s' },
      hash_policy: [{ header: { header_name: 'x-user' } }],
    })
    const fault = (jason?.['typed_per_filter_config'] as XdsObject)['envoy.filters.http.fault'] as XdsObject
    assert.deepEqual(fault['delay'], { fixed_delay: '1s', percentage: { numerator: 1250, denominator: 'TEN_THOUSAND' } })
    const action = split?.['route'] as XdsObject
    assert.deepEqual(action['weighted_clusters'], {
      clusters: [{ name: 'outbound|9080|v1|reviews', weight: 90 }, { name: 'outbound|9080|v2|reviews', weight: 10 }, { name: 'outbound|9080|v3|reviews', weight: 0 }],
      total_weight: 100,
    })
    // gRPC requires base_interval whenever retry_back_off is set.
    assert.deepEqual(action['retry_policy'], { retry_on: '5xx,connect-failure', num_retries: 3, per_try_timeout: '0.500s', retry_back_off: { base_interval: '0.025s', max_interval: '1s' } })
  })

  it('writes pathSeparatedPrefix as a regex, since gRPC clients refuse path_separated_prefix', () => {
    const e = emitResources({
      clusters: [{ name: 'c', endpoints: [{ address: '10.0.0.1:1' }] }],
      virtualHosts: [{ name: 'v', domains: ['v'], routes: [
        { match: { pathSeparatedPrefix: '/a.pi' }, route: { cluster: 'c' } },
        { match: { pathSeparatedPrefix: '/Api', caseSensitive: false }, route: { cluster: 'c' } },
      ] }],
    })
    const routes = (((e.routes.get('v') as XdsObject)['virtual_hosts'] as XdsObject[])[0]?.['routes'] as XdsObject[]).map((r) => r['match'] as XdsObject)
    assert.deepEqual(routes, [{ safe_regex: { regex: '/a\\.pi|/a\\.pi/.*' } }, { safe_regex: { regex: '/[aA][pP][iI]|/[aA][pP][iI]/.*' } }])
    // RE2 full match, as Envoy and gRPC apply a route's safe_regex.
    const matches = (regex: string, path: string): boolean => new RegExp(`^(?:${regex})$`).test(path)
    const [exact, folded] = routes.map((m) => (m['safe_regex'] as XdsObject)['regex'] as string)
    assert.deepEqual(['/a.pi', '/a.pi/', '/a.pi/x/y', '/a.pix', '/aXpi', '/A.pi'].map((p) => matches(exact as string, p)), [true, true, true, false, false, false])
    assert.deepEqual(['/api', '/API/x', '/apix'].map((p) => matches(folded as string, p)), [true, true, false])
  })

  it('writes redirect regex rewrites and most_specific_header_mutations_wins, and reads them back the same', () => {
    const e = emitResources({
      clusters: [{ name: 'c', endpoints: [{ address: '10.0.0.1:1' }] }],
      virtualHosts: [{
        name: 'v',
        domains: ['v'],
        mostSpecificHeaderMutationsWins: true,
        requestHeadersToAdd: [{ header: { key: 'x-vh', value: 'vh' } }],
        routes: [
          { match: { prefix: '/old/' }, redirect: { regexRewrite: { pattern: '^/old/(.*)$', substitution: '/new/\\1' }, stripQuery: true } },
          { match: { prefix: '/' }, route: { cluster: 'c' } },
        ],
      }],
    })
    const rc = e.routes.get('v') as XdsObject
    assert.equal(rc['most_specific_header_mutations_wins'], true)
    const first = ((rc['virtual_hosts'] as XdsObject[])[0]?.['routes'] as XdsObject[])[0] as XdsObject
    assert.deepEqual(first['redirect'], { regex_rewrite: { pattern: { regex: '^/old/(.*)$' }, substitution: '/new/\\1' }, strip_query: true })
    const p = new Problems()
    const back = translateRouteConfiguration(rc, 'rds', p)
    assert.deepEqual(p.list(), [])
    const vh = back.virtualHosts[0]?.config
    assert.equal(vh?.mostSpecificHeaderMutationsWins, true)
    assert.deepEqual(vh?.routes[0]?.redirect, { regexRewrite: { pattern: '^/old/(.*)$', substitution: '/new/\\1' }, stripQuery: true })
  })

  it('lists what xDS does not carry, by config path', () => {
    const e = emitResources({ ...config(), clusters: [{ name: 'c', endpoints: [{ address: '10.0.0.1:1' }], rateLimit: { maxTokens: 1, fillInterval: '1s' }, circuitBreakers: { errorRate: {} } }], virtualHosts: [], tracing: { sampling: 1 } })
    assert.deepEqual(e.omitted.map((o) => o.path), ['clusters[0].circuitBreakers.errorRate', 'clusters[0].rateLimit', 'tracing'])
  })
})

describe('xDS snapshots', () => {
  it('encodes every resource, with a content version per type', async () => {
    const codec = await loadXdsCodec()
    const a = buildSnapshot(codec, 1, emitResources(config()), undefined, undefined)
    const b = buildSnapshot(codec, 2, emitResources(config()), undefined, a)
    assert.deepEqual(b.versions, a.versions, 'the same config gives the same versions')
    const changed = config()
    const route = changed.virtualHosts?.[0]?.routes[1]?.route
    assert.ok(route?.weightedClusters !== undefined)
    route.weightedClusters = [{ cluster: 'reviews', subset: 'v1', weight: 50 }, { cluster: 'reviews', subset: 'v2', weight: 50 }]
    const c = buildSnapshot(codec, 3, emitResources(changed), undefined, b)
    assert.notEqual(c.versions.route, b.versions.route, 'a split changes the routes')
    assert.equal(c.versions.cluster, b.versions.cluster)
    assert.equal(c.versions.endpoint, b.versions.endpoint)
    assert.equal(c.versions.listener, b.versions.listener)
    assert.equal(c.get('cluster', 'outbound|9080|v1|reviews'), b.get('cluster', 'outbound|9080|v1|reviews'), 'unchanged resources keep their encoding')
  })

  it('serves a listener name on request when a domain matches it as gRPC matches virtual hosts', async () => {
    const codec = await loadXdsCodec()
    const s = buildSnapshot(codec, 1, emitResources(config()), undefined, undefined)
    const routeOf = (name: string): unknown => {
      const l = s.get('listener', name)
      return l === undefined ? undefined : (((l.resource['api_listener'] as XdsObject)['api_listener'] as XdsObject)['rds'] as XdsObject)['route_config_name']
    }
    assert.equal(routeOf('reviews:9080'), 'reviews', 'a port on a domain without one')
    assert.equal(routeOf('REVIEWS:80'), 'reviews', 'case-insensitive')
    assert.equal(routeOf('a.ratings.example'), 'ratings', 'suffix wildcard')
    assert.equal(routeOf('reviews.default.svc.cluster.local:9080'), 'reviews')
    assert.equal(routeOf('reviews.default.svc.cluster.local:9081'), undefined, 'a domain with a port serves that port only')
    assert.equal(routeOf('ratings'), undefined)
    assert.equal(s.get('listener', 'reviews:9080')?.resource['name'], 'reviews:9080')
    assert.deepEqual(s.names('listener'), ['reviews', 'reviews.default.svc.cluster.local:9080', 'ratings:9080', '*.ratings.example'])
  })

  it('refuses a snapshot that names what it does not hold, listing every problem', async () => {
    const codec = await loadXdsCodec()
    const emitted = emitResources(config())
    const routes = new Map(emitted.routes)
    routes.delete('ratings')
    const endpoints = new Map(emitted.endpoints)
    endpoints.delete('outbound|9080||details')
    const clusters = new Map(emitted.clusters)
    clusters.delete('outbound|9080|v1|reviews')
    assert.throws(() => buildSnapshot(codec, 1, { ...emitted, routes, endpoints, clusters }, undefined, undefined), (err: unknown) => {
      assert.ok(err instanceof ConfigError)
      assert.deepEqual(err.issues.map((i) => [i.path, i.code]), [
        ['xds.listeners["ratings:9080"].rds.route_config_name', 'INVALID_VALUE'],
        ['xds.listeners["*.ratings.example"].rds.route_config_name', 'INVALID_VALUE'],
        ['xds.routes["reviews"].virtual_hosts[0].routes[1].route.weighted_clusters.clusters[0].name', 'UNKNOWN_CLUSTER'],
        ['xds.clusters["outbound|9080||details"].eds_cluster_config.service_name', 'INVALID_VALUE'],
      ])
      return true
    })
  })

  it('refuses routes that send traffic to a subset without endpoints (weight 0 is fine)', () => {
    const c = config()
    const reviews = c.clusters?.[0]
    assert.ok(reviews !== undefined)
    reviews.endpoints = reviews.endpoints?.filter((e) => e.labels?.['version'] !== 'v2' && e.labels?.['version'] !== 'v3')
    const issues = routesToNowhere(c)
    assert.deepEqual(issues.map((i) => i.path), ['virtualHosts[0].routes[0].route', 'virtualHosts[0].routes[1].route.weightedClusters[1]'])
    assert.match(issues[1]?.message ?? '', /subset "v2" of cluster "reviews" has no endpoints \(no endpoint carries version=v2\); the route sends it 10% of the traffic/)
  })
})
