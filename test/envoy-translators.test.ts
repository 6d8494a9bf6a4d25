/**
 * The per-resource translators (src/config/envoy/*), as the xDS client will call them:
 * the same resource written as Envoy YAML and as protobufjs `toObject` output (camelCase,
 * `oneofs: true` discriminators, Durations as { seconds, nanos }, wrappers as { value },
 * enums by number, 64-bit integers as strings, Any as { '@type', ... }) translates to the
 * same thing. And no route is ever widened: a match criterion that cannot be honoured
 * drops its route, so the request falls to the routes after it as Envoy would send a
 * request that does not match it.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import YAML from 'yaml'
import {
  Problems,
  translateCluster,
  translateClusterLoadAssignment,
  translateListener,
  translateRouteConfiguration,
} from '../src/config/envoy/index.js'
import { createMesh, fromEnvoy } from '../src/index.js'

const ROUTE_YAML = `
name: local_route
virtual_hosts:
- name: reviews
  domains: [reviews, "reviews:9080"]
  require_tls: EXTERNAL_ONLY
  virtual_clusters:
  - name: writes
    headers: [{ name: ":method", string_match: { exact: POST } }]
  routes:
  - name: canary
    match:
      prefix: /api
      case_sensitive: false
      headers: [{ name: x-canary, string_match: { exact: "yes", ignore_case: true } }, { name: x-n, range_match: { start: "1", end: "10" } }]
      query_parameters: [{ name: debug, present_match: true }]
    route:
      weighted_clusters:
        clusters:
        - { name: v1, weight: 90 }
        - { name: v2, weight: 10 }
      timeout: 1.5s
      retry_policy: { retry_on: "5xx,connect-failure", num_retries: 2, per_try_timeout: 0.5s }
      max_stream_duration: { max_stream_duration: 2s }
    response_headers_to_add:
    - header: { key: x-served-by, value: "%UPSTREAM_CLUSTER%" }
      append_action: OVERWRITE_IF_EXISTS_OR_ADD
  - match: { safe_regex: { regex: "/items/\\\\d+" } }
    route: { cluster_header: x-target, cluster_not_found_response_code: NOT_FOUND }
  - match: { prefix: / }
    redirect: { https_redirect: true, response_code: PERMANENT_REDIRECT }
`

/** The same RouteConfiguration as protobufjs toObject({ oneofs: true, longs: String, json: true }) gives it. */
const ROUTE_PROTO = {
  name: 'local_route',
  virtualHosts: [{
    name: 'reviews',
    domains: ['reviews', 'reviews:9080'],
    requireTls: 1,
    virtualClusters: [{ name: 'writes', headers: [{ name: ':method', stringMatch: { exact: 'POST', matchPattern: 'exact' }, headerMatchSpecifier: 'stringMatch' }] }],
    routes: [
      {
        name: 'canary',
        match: {
          prefix: '/api',
          pathSpecifier: 'prefix',
          caseSensitive: { value: false },
          headers: [
            { name: 'x-canary', stringMatch: { exact: 'yes', ignoreCase: true, matchPattern: 'exact' }, headerMatchSpecifier: 'stringMatch' },
            { name: 'x-n', rangeMatch: { start: '1', end: '10' }, headerMatchSpecifier: 'rangeMatch' },
          ],
          queryParameters: [{ name: 'debug', presentMatch: true, queryParameterMatchSpecifier: 'presentMatch' }],
        },
        route: {
          weightedClusters: { clusters: [{ name: 'v1', weight: { value: 90 } }, { name: 'v2', weight: { value: 10 } }] },
          clusterSpecifier: 'weightedClusters',
          timeout: { seconds: '1', nanos: 500_000_000 },
          retryPolicy: { retryOn: '5xx,connect-failure', numRetries: { value: 2 }, perTryTimeout: { seconds: '0', nanos: 500_000_000 } },
          maxStreamDuration: { maxStreamDuration: { seconds: 2 } },
        },
        action: 'route',
        responseHeadersToAdd: [{ header: { key: 'x-served-by', value: '%UPSTREAM_CLUSTER%' }, appendAction: 2 }],
      },
      {
        match: { safeRegex: { regex: '/items/\\d+' }, pathSpecifier: 'safeRegex' },
        route: { clusterHeader: 'x-target', clusterSpecifier: 'clusterHeader', clusterNotFoundResponseCode: 1 },
        action: 'route',
      },
      {
        match: { prefix: '/', pathSpecifier: 'prefix' },
        redirect: { httpsRedirect: true, schemeRewriteSpecifier: 'httpsRedirect', responseCode: 4 },
        action: 'redirect',
      },
    ],
  }],
}

const CLUSTER_YAML = `
name: reviews
type: EDS
eds_cluster_config: { service_name: "outbound|9080||reviews", eds_config: { ads: {} } }
connect_timeout: 0.25s
lb_policy: LEAST_REQUEST
least_request_lb_config: { choice_count: 3 }
circuit_breakers:
  thresholds: [{ max_connections: 100, max_pending_requests: 50, max_requests: 200, max_retries: 3, retry_budget: { budget_percent: { value: 20 }, min_retry_concurrency: 5 } }]
outlier_detection: { consecutive_5xx: 7, interval: 5s, base_ejection_time: 30s, max_ejection_percent: 50 }
common_lb_config: { healthy_panic_threshold: { value: 40 } }
typed_extension_protocol_options:
  envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
    "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
    common_http_protocol_options: { idle_timeout: 60s }
transport_socket:
  name: envoy.transport_sockets.tls
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
    sni: outbound_.9080_._.reviews.default.svc.cluster.local
    common_tls_context:
      tls_certificate_provider_instance: { instance_name: default, certificate_name: default }
      combined_validation_context:
        default_validation_context:
          match_subject_alt_names: [{ exact: spiffe://cluster.local/ns/default/sa/reviews }]
        validation_context_certificate_provider_instance: { instance_name: default, certificate_name: ROOTCA }
`

const CLUSTER_PROTO = {
  name: 'reviews',
  type: 3,
  clusterDiscoveryType: 'type',
  edsClusterConfig: { serviceName: 'outbound|9080||reviews', edsConfig: { ads: {} } },
  connectTimeout: { seconds: '0', nanos: 250_000_000 },
  lbPolicy: 1,
  leastRequestLbConfig: { choiceCount: { value: 3 } },
  circuitBreakers: {
    thresholds: [{ maxConnections: { value: 100 }, maxPendingRequests: { value: 50 }, maxRequests: { value: 200 }, maxRetries: { value: 3 }, retryBudget: { budgetPercent: { value: 20 }, minRetryConcurrency: { value: 5 } } }],
  },
  outlierDetection: { consecutive5xx: { value: 7 }, interval: { seconds: '5' }, baseEjectionTime: { seconds: '30' }, maxEjectionPercent: { value: 50 } },
  commonLbConfig: { healthyPanicThreshold: { value: 40 } },
  typedExtensionProtocolOptions: {
    'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': {
      '@type': 'type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions',
      commonHttpProtocolOptions: { idleTimeout: { seconds: '60' } },
    },
  },
  transportSocket: {
    name: 'envoy.transport_sockets.tls',
    typedConfig: {
      '@type': 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext',
      sni: 'outbound_.9080_._.reviews.default.svc.cluster.local',
      commonTlsContext: {
        tlsCertificateProviderInstance: { instanceName: 'default', certificateName: 'default' },
        combinedValidationContext: {
          defaultValidationContext: { matchSubjectAltNames: [{ exact: 'spiffe://cluster.local/ns/default/sa/reviews', matchPattern: 'exact' }] },
          validationContextCertificateProviderInstance: { instanceName: 'default', certificateName: 'ROOTCA' },
        },
        validationContextType: 'combinedValidationContext',
      },
    },
    configType: 'typedConfig',
  },
}

const CLA_YAML = `
cluster_name: "outbound|9080||reviews"
endpoints:
- locality: { region: us }
  lb_endpoints:
  - endpoint: { address: { socket_address: { address: 10.0.0.1, port_value: 9080 } } }
    metadata: { filter_metadata: { envoy.lb: { version: v1 }, istio: { workload: reviews-v1 } } }
    load_balancing_weight: 2
  - endpoint: { address: { socket_address: { address: "2001:db8::2", port_value: 9080 } } }
    health_status: HEALTHY
`

const CLA_PROTO = {
  clusterName: 'outbound|9080||reviews',
  endpoints: [{
    locality: { region: 'us' },
    lbEndpoints: [
      {
        endpoint: { address: { socketAddress: { address: '10.0.0.1', portValue: 9080, portSpecifier: 'portValue' }, address: 'socketAddress' } },
        hostIdentifier: 'endpoint',
        metadata: { filterMetadata: { 'envoy.lb': { version: 'v1' }, istio: { workload: 'reviews-v1' } } },
        loadBalancingWeight: { value: 2 },
      },
      {
        endpoint: { address: { socketAddress: { address: '2001:db8::2', portValue: 9080 } } },
        healthStatus: 1,
      },
    ],
  }],
}

/** An api_listener as istiod writes it for a proxyless client, RDS by name. */
const LISTENER_YAML = `
name: "reviews:9080"
api_listener:
  api_listener:
    "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
    rds: { route_config_name: "outbound|9080||reviews", config_source: { ads: {} } }
    http_filters:
    - name: envoy.filters.http.fault
      typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault }
    - name: envoy.filters.http.router
      typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }
`

const LISTENER_PROTO = {
  name: 'reviews:9080',
  apiListener: {
    apiListener: {
      '@type': 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
      rds: { routeConfigName: 'outbound|9080||reviews', configSource: { ads: {} } },
      routeSpecifier: 'rds',
      httpFilters: [
        { name: 'envoy.filters.http.fault', typedConfig: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault' }, configType: 'typedConfig' },
        { name: 'envoy.filters.http.router', typedConfig: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router' }, configType: 'typedConfig' },
      ],
    },
  },
}

/** The translation without the input paths it keeps for reports (those name the keys as written). */
function withoutPaths(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(withoutPaths)
  if (typeof v !== 'object' || v === null) return v
  return Object.fromEntries(Object.entries(v).filter(([k]) => k !== 'path' && k !== 'domainPaths').map(([k, x]) => [k, withoutPaths(x)]))
}

function both<T>(yaml: string, proto: unknown, translate: (resource: unknown, path: string, p: Problems) => T): [T, T] {
  const p1 = new Problems()
  const p2 = new Problems()
  const fromYaml = translate(YAML.parse(yaml), 'r', p1)
  const fromProto = translate(proto, 'r', p2)
  assert.deepEqual(p1.list(), [], 'YAML form: nothing unsupported')
  assert.deepEqual(p2.list(), [], 'protobuf form: nothing unsupported')
  return [withoutPaths(fromYaml) as T, withoutPaths(fromProto) as T]
}

describe('translators: YAML and protobuf-JSON forms mean the same', () => {
  it('RouteConfiguration', () => {
    const [y, j] = both(ROUTE_YAML, ROUTE_PROTO, (r, path, p) => translateRouteConfiguration(r, path, p))
    assert.deepEqual(j, y)
    assert.equal(y.name, 'local_route')
    const vh = y.virtualHosts[0]!.config
    assert.equal(vh.requireTls, 'EXTERNAL_ONLY')
    assert.deepEqual(vh.virtualClusters, [{ name: 'writes', headers: [{ name: ':method', exact: 'POST' }] }])
    assert.deepEqual(vh.routes[0]?.route, {
      weightedClusters: [{ cluster: 'v1', weight: 90 }, { cluster: 'v2', weight: 10 }],
      timeout: '1500ms',
      retryPolicy: { retryOn: ['5xx', 'connect-failure'], numRetries: 2, perTryTimeout: '500ms' },
      maxStreamDuration: { maxStreamDuration: '2s' },
    })
    assert.deepEqual(vh.routes[1]?.route, { clusterHeader: 'x-target', clusterNotFoundResponseCode: 404 })
    assert.deepEqual(vh.routes[2]?.redirect, { httpsRedirect: true, responseCode: 308 })
  })

  it('Cluster (EDS, proxyless TLS from certificate providers)', () => {
    const [y, j] = both(CLUSTER_YAML, CLUSTER_PROTO, translateCluster)
    assert.deepEqual(j, y)
    assert.equal(y?.edsServiceName, 'outbound|9080||reviews')
    assert.deepEqual(y?.config, {
      name: 'reviews',
      connectTimeout: '250ms',
      loadBalancer: 'least_request',
      leastRequest: { choiceCount: 3 },
      outlierDetection: { consecutive5xx: 7, interval: '5s', baseEjectionTime: '30s', maxEjectionPercent: 50 },
      commonLbConfig: { healthyPanicThreshold: 40 },
      circuitBreakers: { maxConnections: 100, maxPendingRequests: 50, maxRequests: 200, maxRetries: 3, retryBudget: { budgetPercent: 20, minRetryConcurrency: 5 } },
      idleTimeout: '60s',
      tls: { mode: 'mutual', sni: 'outbound_.9080_._.reviews.default.svc.cluster.local', verifyIdentities: ['spiffe://cluster.local/ns/default/sa/reviews'] },
    })
    assert.equal(y?.tls?.certificateProvider, 'default')
    assert.equal(y?.tls?.validationProvider, 'default')
  })

  it('ClusterLoadAssignment', () => {
    const [y, j] = both(CLA_YAML, CLA_PROTO, (r, path, p) => translateClusterLoadAssignment(r, path, p, 'https'))
    assert.deepEqual(j, y)
    assert.deepEqual(y, {
      clusterName: 'outbound|9080||reviews',
      endpoints: [
        { address: 'https://10.0.0.1:9080', labels: { version: 'v1' }, weight: 2 },
        { address: 'https://[2001:db8::2]:9080' },
      ],
    })
  })

  it('Listener with an api_listener (RDS by name, fault filter present)', () => {
    const [y, j] = both(LISTENER_YAML, LISTENER_PROTO, translateListener)
    assert.deepEqual(j, y)
    assert.equal(y?.name, 'reviews:9080')
    assert.equal(y?.connectionManagers[0]?.routeConfigName, 'outbound|9080||reviews')
    assert.equal(y?.connectionManagers[0]?.filters.fault, null)
  })

  it('every problem is collected with its path, in both forms', () => {
    const p = new Problems()
    translateCluster({ name: 'x', lbPolicy: 'ORIGINAL_DST_LB', http2ProtocolOptions: {}, outlierDetection: { consecutive5xx: 'many' } }, 'clusters[3]', p)
    // In the order written: http2ProtocolOptions is reported as the fields are read, lbPolicy when translated.
    assert.deepEqual(p.list().map((u) => u.path), ['clusters[3].http2ProtocolOptions', 'clusters[3].lbPolicy', 'clusters[3].outlierDetection.consecutive5xx'])
  })
})

// ---------------------------------------------------------------- never broaden a match

/** A route config whose first route carries `criterion`; the second catches everything else. */
function withCriterion(criterion: string): unknown {
  return YAML.parse(`
static_resources:
  clusters: [{ name: special }, { name: fallback }]
  listeners:
  - filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          http_filters: [{ name: envoy.filters.http.router }]
          route_config:
            virtual_hosts:
            - name: svc
              domains: [svc]
              routes:
              - match: { prefix: /, ${criterion} }
                route: { cluster: special }
              - match: { prefix: / }
                route: { cluster: fallback }
`)
}

describe('translators: a route is skipped, never widened', () => {
  const unhonoured: [string, string][] = [
    ['runtime_fraction', 'runtime_fraction: { default_value: { numerator: 50 }, runtime_key: k }'],
    ['tls_context', 'tls_context: { presented: true }'],
    ['dynamic_metadata', 'dynamic_metadata: [{ filter: f, path: [{ key: k }], value: { string_match: { exact: v } } }]'],
    ['filter_state', 'filter_state: [{ key: k, string_match: { exact: v } }]'],
    ['connect_matcher', 'connect_matcher: {}'],
    ['an unknown field', 'cel_expression: { expr: x }'],
    ['a custom string matcher', 'headers: [{ name: x-a, string_match: { custom: { name: c } } }]'],
    ['an unknown header-match kind', 'headers: [{ name: x-a, metadata_match: { x: 1 } }]'],
    ['a regex RE2 refuses', 'headers: [{ name: x-a, safe_regex_match: { regex: "(a)\\\\1" } }]'],
    ['an unknown field in a header matcher', 'headers: [{ name: x-a, exact_match: b, frobnicate: true }]'],
    ['an unknown field in a query matcher', 'query_parameters: [{ name: q, string_match: { exact: v }, regex: x }]'],
    ['a pseudo-header the mesh cannot read', 'headers: [{ name: ":protocol", exact_match: websocket }]'],
  ]
  for (const [what, criterion] of unhonoured) {
    it(`${what}: the route is dropped and reported; its traffic goes where the next route says`, async () => {
      const imported = fromEnvoy(withCriterion(criterion))
      const routes = imported.config.virtualHosts?.[0]?.routes ?? []
      assert.deepEqual(routes.map((r) => r.route?.cluster), ['fallback'], `${what}: ${JSON.stringify(routes)}`)
      assert.ok(imported.unsupported.some((u) => /route dropped/.test(u.message) && u.path.endsWith('routes[0]')), JSON.stringify(imported.unsupported))
      const mesh = createMesh({ config: imported.config })
      try {
        const d = mesh.route({ url: 'http://svc/x', headers: { 'x-a': 'b' } })
        assert.deepEqual(d.kind === 'cluster' ? d.targets.map((t) => t.cluster) : d.kind, ['fallback'])
      } finally {
        await mesh.close()
      }
    })
  }

  // A route action that would send traffic where Envoy does not: a share of a split that
  // picks its cluster from a header, or endpoints picked by metadata (within the cluster, or
  // within a share). Leaving the share out, or taking the whole cluster, would widen it.
  const widening: [string, string][] = [
    ['metadata_match on the route action', '{ cluster: special, metadata_match: { filter_metadata: { envoy.lb: { version: v2 } } } }'],
    ['a share choosing its cluster from a header', '{ weighted_clusters: { clusters: [{ cluster_header: x-c, weight: 30 }, { name: special, weight: 70 }] } }'],
    ['a share with metadata_match', '{ weighted_clusters: { clusters: [{ name: special, weight: 30, metadata_match: { filter_metadata: { envoy.lb: { version: v2 } } } }, { name: special, weight: 70 }] } }'],
    ['a share without a name', '{ weighted_clusters: { clusters: [{ weight: 30 }, { name: special, weight: 70 }] } }'],
  ]
  for (const [what, action] of widening) {
    it(`${what}: the route is dropped and reported, never sent elsewhere`, async () => {
      const doc = withCriterion('case_sensitive: true') as { static_resources: { listeners: { filter_chains: { filters: { typed_config: { route_config: { virtual_hosts: { routes: { route: unknown }[] }[] } } }[] }[] }[] } }
      const routes0 = doc.static_resources.listeners[0]!.filter_chains[0]!.filters[0]!.typed_config.route_config.virtual_hosts[0]!.routes
      routes0[0]!.route = YAML.parse(action)
      const imported = fromEnvoy(doc)
      const routes = imported.config.virtualHosts?.[0]?.routes ?? []
      assert.deepEqual(routes.map((r) => r.route?.cluster), ['fallback'], `${what}: ${JSON.stringify(routes)}`)
      assert.ok(imported.unsupported.some((u) => /the route is dropped/.test(u.message)), JSON.stringify(imported.unsupported))
      const mesh = createMesh({ config: imported.config })
      try {
        for (let i = 0; i < 20; i++) {
          const d = mesh.route({ url: 'http://svc/x', headers: { 'x-c': 'special' } })
          assert.deepEqual(d.kind === 'cluster' ? d.targets.map((t) => t.cluster) : d.kind, ['fallback'])
        }
      } finally {
        await mesh.close()
      }
    })
  }

  const honoured: [string, string, Record<string, string>, string][] = [
    ['grpc: {} (content-type application/grpc)', 'grpc: {}', { 'content-type': 'application/grpc+proto' }, 'special'],
    ['grpc: {} does not take plain requests', 'grpc: {}', { 'content-type': 'application/json' }, 'fallback'],
    ['range_match', 'headers: [{ name: x-n, range_match: { start: 1, end: 5 } }]', { 'x-n': '4' }, 'special'],
    ['range_match outside the range', 'headers: [{ name: x-n, range_match: { start: 1, end: 5 } }]', { 'x-n': '5' }, 'fallback'],
    ['treat_missing_header_as_empty', 'headers: [{ name: x-n, string_match: { exact: "" }, treat_missing_header_as_empty: true }]', {}, 'special'],
    ['a Host header matcher reads :authority', 'headers: [{ name: Host, exact_match: svc }]', {}, 'special'],
  ]
  for (const [what, criterion, headers, cluster] of honoured) {
    it(`honoured: ${what}`, async () => {
      const imported = fromEnvoy(withCriterion(criterion))
      assert.deepEqual(imported.unsupported, [])
      const mesh = createMesh({ config: imported.config })
      try {
        const d = mesh.route({ url: 'http://svc/x', headers })
        assert.deepEqual(d.kind === 'cluster' ? d.targets.map((t) => t.cluster) : d.kind, [cluster])
      } finally {
        await mesh.close()
      }
    })
  }
})

describe('translators: DNS settings of STRICT_DNS / LOGICAL_DNS clusters', () => {
  const cluster = {
    name: 'svc',
    type: 'LOGICAL_DNS',
    respect_dns_ttl: true,
    dns_lookup_family: 'V4_PREFERRED',
    dns_failure_refresh_rate: { base_interval: '2s', max_interval: '20s' },
    dns_jitter: '0.25s',
    dns_resolvers: [{ socket_address: { address: '127.0.0.1', port_value: 5353, protocol: 'UDP' } }],
    typed_dns_resolver_config: {
      name: 'envoy.network.dns_resolver.cares',
      typed_config: {
        '@type': 'type.googleapis.com/envoy.extensions.network.dns_resolver.cares.v3.CaresDnsResolverConfig',
        resolvers: [{ socket_address: { address: '::1' } }],
        dns_resolver_options: { use_tcp_for_dns_lookups: true },
      },
    },
    use_tcp_for_dns_lookups: true,
    load_assignment: { cluster_name: 'svc', endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: 'svc.invalid', port_value: 80 } } } }] }] },
  }
  const expected = {
    name: 'svc',
    type: 'logical_dns',
    respectDnsTtl: true,
    dnsLookupFamily: 'v4_preferred',
    dnsFailureRefreshRate: { baseInterval: '2s', maxInterval: '20s' },
    dnsJitter: '250ms',
    dnsResolvers: ['127.0.0.1:5353', '[::1]:53'],
    endpoints: [{ address: 'http://svc.invalid:80' }],
  }

  it('map to respectDnsTtl, dnsLookupFamily, dnsFailureRefreshRate, dnsJitter and dnsResolvers; TCP lookups are reported', () => {
    const p = new Problems()
    const t = translateCluster(cluster, 'c', p)
    assert.deepEqual(t?.config, expected)
    assert.deepEqual(p.list().map((x) => x.path), ['c.use_tcp_for_dns_lookups', 'c.typed_dns_resolver_config.typed_config.dns_resolver_options'])
  })

  it('the protobuf-JSON form means the same', () => {
    const proto = {
      ...cluster,
      type: 2,
      respect_dns_ttl: { value: true },
      dns_lookup_family: 'V4_PREFERRED',
      dns_failure_refresh_rate: { base_interval: { seconds: '2' }, max_interval: { seconds: 20, nanos: 0 } },
      dns_jitter: { seconds: '0', nanos: 250_000_000 },
      use_tcp_for_dns_lookups: false,
    }
    const t = translateCluster(proto, 'c', new Problems())
    assert.deepEqual(t?.config, expected)
  })

  it('a config from them validates and builds a mesh', async () => {
    const { config, unsupported } = fromEnvoy({ static_resources: { clusters: [cluster] } })
    assert.equal(unsupported.length, 2)
    const mesh = createMesh({ config })
    try {
      assert.equal(mesh.config.clusters?.[0]?.dnsLookupFamily, 'v4_preferred')
    } finally {
      await mesh.close()
    }
  })
})
