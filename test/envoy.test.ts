import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { parse } from 'yaml'
import { fromEnvoy, isEnvoyBootstrap, type EnvoyImport } from '../src/config/envoy/index.js'
import { validateConfig } from '../src/config/validate.js'

/** Imports a YAML bootstrap as a user would paste it. */
function importYaml(text: string): EnvoyImport {
  return fromEnvoy(parse(text))
}

function paths(result: EnvoyImport): string[] {
  return result.unsupported.map((u) => u.path)
}

function messageAt(result: EnvoyImport, path: string): string {
  const found = result.unsupported.find((u) => u.path === path)
  assert.ok(found, `expected a report at ${path}; got ${JSON.stringify(result.unsupported, null, 2)}`)
  return found.message
}

function assertValid(result: EnvoyImport): void {
  assert.deepEqual(validateConfig(result.config), [])
}

/** Wraps routes in a bootstrap with one listener, one virtual host and the named clusters. */
function withRoutes(routes: string, clusters: string[] = ['backend']): string {
  const indented = routes.trim().split('\n').map((l) => `              ${l}`).join('\n')
  return `
static_resources:
  listeners:
  - name: listener_0
    address: { socket_address: { address: 0.0.0.0, port_value: 8080 } }
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress_http
          route_config:
            virtual_hosts:
            - name: backend
              domains: ["*"]
              routes:
${indented}
          http_filters:
          - name: envoy.filters.http.router
  clusters:
${clusters.map((c) => `  - name: ${c}
    type: STATIC
    load_assignment:
      cluster_name: ${c}
      endpoints:
      - lb_endpoints:
        - endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: 9000 } } }`).join('\n')}
`
}

function routesOf(result: EnvoyImport): unknown[] {
  return result.config.virtualHosts?.[0]?.routes ?? []
}

const FRONT_PROXY = `
static_resources:
  listeners:
  - name: listener_0
    address:
      socket_address:
        address: 0.0.0.0
        port_value: 8080
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress_http
          codec_type: AUTO
          route_config:
            name: local_route
            virtual_hosts:
            - name: local_service
              domains: ["*"]
              routes:
              - match:
                  prefix: "/"
                route:
                  host_rewrite_literal: www.envoyproxy.io
                  cluster: service_envoyproxy_io
          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
  - name: service_envoyproxy_io
    type: STRICT_DNS
    connect_timeout: 0.25s
    dns_refresh_rate: 10s
    lb_policy: ROUND_ROBIN
    load_assignment:
      cluster_name: service_envoyproxy_io
      endpoints:
      - lb_endpoints:
        - endpoint:
            address:
              socket_address:
                address: www.envoyproxy.io
                port_value: 80
`

describe('fromEnvoy: front proxy', () => {
  it('translates listener routes and a STRICT_DNS cluster, with nothing unsupported', () => {
    const result = importYaml(FRONT_PROXY)
    assert.deepEqual(result.unsupported, [])
    assert.deepEqual(result.config, {
      clusters: [
        {
          name: 'service_envoyproxy_io',
          type: 'strict_dns',
          connectTimeout: '250ms',
          dnsRefreshRate: '10s',
          loadBalancer: 'round_robin',
          endpoints: [{ address: 'http://www.envoyproxy.io:80' }],
        },
      ],
      virtualHosts: [
        {
          name: 'local_service',
          domains: ['*'],
          routes: [
            { match: { prefix: '/' }, route: { cluster: 'service_envoyproxy_io', hostRewrite: 'www.envoyproxy.io' } },
          ],
        },
      ],
      // Where `sidecarless proxy` listens; the in-process mesh ignores it.
      listener: { address: '0.0.0.0:8080' },
    })
    assertValid(result)
  })

  it('accepts the proto3-JSON camelCase spelling of the same bootstrap', () => {
    const camel = (v: unknown): unknown => {
      if (Array.isArray(v)) return v.map(camel)
      if (typeof v !== 'object' || v === null) return v
      return Object.fromEntries(Object.entries(v).map(([k, x]) => [k.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase()), camel(x)]))
    }
    const json = camel(parse(FRONT_PROXY))
    assert.ok(isEnvoyBootstrap(json))
    const result = fromEnvoy(json)
    assert.deepEqual(result.unsupported, [])
    assert.deepEqual(result.config, importYaml(FRONT_PROXY).config)
  })
})

describe('fromEnvoy: weighted clusters', () => {
  it('imports a 50/50 split over two STATIC clusters', () => {
    const result = importYaml(`
static_resources:
  listeners:
  - address: { socket_address: { address: 0.0.0.0, port_value: 10000 } }
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: split
          route_config:
            virtual_hosts:
            - name: app
              domains: [app, "app:10000"]
              routes:
              - match: { prefix: / }
                route:
                  timeout: 3s
                  weighted_clusters:
                    total_weight: 100
                    clusters:
                    - name: app_v1
                      weight: 50
                    - name: app_v2
                      weight: { value: 50 }
                      request_headers_to_add:
                      - header: { key: x-version, value: v2 }
                        append: false
          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
  - name: app_v1
    type: STATIC
    connect_timeout: 5s
    load_assignment:
      cluster_name: app_v1
      endpoints:
      - lb_endpoints:
        - endpoint: { address: { socket_address: { address: 10.0.0.1, port_value: 8080 } } }
          load_balancing_weight: 3
          metadata: { filter_metadata: { envoy.lb: { version: v1, canary: "false" } } }
        - endpoint: { address: { socket_address: { address: "::1", port_value: 8080 } } }
  - name: app_v2
    type: STATIC
    connect_timeout: 5s
    load_assignment:
      cluster_name: app_v2
      endpoints:
      - lb_endpoints:
        - endpoint: { address: { socket_address: { address: 10.0.0.2, port_value: 8080 } } }
`)
    assert.deepEqual(result.unsupported, [])
    assert.deepEqual(result.config.clusters, [
      {
        name: 'app_v1',
        type: 'static',
        connectTimeout: '5s',
        endpoints: [
          { address: 'http://10.0.0.1:8080', labels: { version: 'v1', canary: 'false' }, weight: 3 },
          { address: 'http://[::1]:8080' },
        ],
      },
      { name: 'app_v2', type: 'static', connectTimeout: '5s', endpoints: [{ address: 'http://10.0.0.2:8080' }] },
    ])
    assert.deepEqual(result.config.virtualHosts, [
      {
        name: 'app',
        domains: ['app', 'app:10000'],
        routes: [
          {
            match: { prefix: '/' },
            route: {
              weightedClusters: [
                { cluster: 'app_v1', weight: 50 },
                {
                  cluster: 'app_v2',
                  weight: 50,
                  requestHeadersToAdd: [{ header: { key: 'x-version', value: 'v2' }, appendAction: 'OVERWRITE_IF_EXISTS_OR_ADD' }],
                },
              ],
              timeout: '3s',
            },
          },
        ],
      },
    ])
    assertValid(result)
  })
})

describe('fromEnvoy: unsupported fields', () => {
  const result = importYaml(`
admin:
  address: { socket_address: { address: 127.0.0.1, port_value: 9901 } }
static_resources:
  secrets: []
  listeners:
  - name: one
    address: { socket_address: { address: 0.0.0.0, port_value: 8080 } }
    listener_filters:
    - name: envoy.filters.listener.tls_inspector
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: one
          access_log:
          - name: envoy.access_loggers.stdout
          route_config:
            virtual_hosts:
            - name: web
              domains: [web, "*.example.com"]
              cors: { allow_origin_string_match: [{ exact: "*" }] }
              routes:
              - match: { prefix: /grpc, grpc: {} }
                route: { cluster: web, retry_policy: { retry_on: 5xx } }
              - match: { prefix: /mirror }
                route: { cluster_header: x-cluster }
              - match: { prefix: /, foo: bar }
                route: { cluster: web }
          http_filters:
          - name: envoy.filters.http.cors
          - name: envoy.filters.http.router
  - name: two
    filter_chains:
    - filters:
      - name: envoy.filters.network.tcp_proxy
        typed_config: { stat_prefix: tcp, cluster: web }
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          rds: { route_config_name: dynamic }
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          route_config:
            virtual_hosts:
            - name: web
              domains: [web, other]
              routes:
              - match: { path: /x }
                direct_response: { status: 204 }
  clusters:
  - name: web
    type: STRICT_DNS
    dns_lookup_family: V4_ONLY
    health_checks: [{ timeout: 1s }]
    circuit_breakers: { thresholds: [{ max_connections: 10 }] }
    outlier_detection: { consecutive_5xx: 3 }
    lb_subset_config: { subset_selectors: [{ keys: [version] }] }
    transport_socket:
      name: envoy.transport_sockets.tls
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
        sni: web.example.com
        common_tls_context:
          validation_context: { trusted_ca: { filename: /etc/ca.pem } }
    load_assignment:
      endpoints:
      - locality: { zone: a }
        lb_endpoints:
        - endpoint: { address: { socket_address: { address: web.internal, port_value: 443 } } }
          metadata: { filter_metadata: { istio: { workload: web } } }
  - name: discovered
    type: EDS
    eds_cluster_config: { eds_config: { ads: {} } }
`)

  it('reports each unsupported field at its exact path', () => {
    const L = 'static_resources.listeners'
    const HCM = `${L}[0].filter_chains[0].filters[0].typed_config`
    const VH = `${HCM}.route_config.virtual_hosts[0]`
    const C = 'static_resources.clusters[0]'
    const TLS = `${C}.transport_socket.typed_config`
    assert.deepEqual(paths(result).sort(), [
      `${C}.health_checks[0]`,
      `${C}.lb_subset_config.subset_selectors`,
      'static_resources.clusters[1]',
      `${L}[0].listener_filters`,
      `${HCM}.access_log`,
      `${HCM}.http_filters[0]`,
      `${VH}.cors`,
      `${VH}.routes[2].match.foo`,
      `${VH}.routes[2]`,
      `${L}[1].filter_chains[0].filters[0]`,
      `${L}[1].filter_chains[0].filters[1].typed_config`,
      `${L}[1].filter_chains[1].filters[0].typed_config.route_config.virtual_hosts[0].domains[0]`,
    ].sort())
    void TLS
  })

  it('says why, in the user\'s own field names', () => {
    const VH = 'static_resources.listeners[0].filter_chains[0].filters[0].typed_config.route_config.virtual_hosts[0]'
    assert.equal(messageAt(result, `${VH}.routes[2].match.foo`), 'unsupported field "foo": a match criterion the mesh cannot honour')
    assert.match(messageAt(result, `${VH}.routes[2]`), /route dropped: its match cannot be honoured in full/)
    assert.match(messageAt(result, 'static_resources.clusters[0].health_checks[0]'), /a health check needs timeout, interval/)
    assert.match(messageAt(result, 'static_resources.clusters[1]'), /EDS.*needs xDS/)
    assert.match(messageAt(result, 'static_resources.listeners[1].filter_chains[0].filters[1].typed_config'), /RDS.*need xDS/)
    assert.match(messageAt(result, 'static_resources.listeners[0].filter_chains[0].filters[0].typed_config.http_filters[0]'), /envoy\.filters\.http\.cors/)
    assert.match(
      messageAt(result, 'static_resources.listeners[1].filter_chains[1].filters[0].typed_config.route_config.virtual_hosts[0].domains[0]'),
      /already served by virtual host "web"/,
    )
  })

  it('keeps what it can: TLS with its validation context and SNI, circuit breakers, gRPC and cluster_header routes; repeated virtual host names get a suffix', () => {
    const [web, discovered] = result.config.clusters ?? []
    assert.deepEqual(web, {
      name: 'web',
      type: 'strict_dns',
      dnsLookupFamily: 'v4_only',
      circuitBreakers: { maxConnections: 10 },
      outlierDetection: { consecutive5xx: 3 },
      tls: { mode: 'simple', sni: 'web.example.com', trustBundle: '/etc/ca.pem' },
      endpoints: [{ address: 'https://web.internal:443' }],
    })
    assert.deepEqual(discovered, { name: 'discovered' })
    const vhosts = result.config.virtualHosts ?? []
    assert.deepEqual(vhosts.map((v) => [v.name, v.domains, v.routes.length]), [
      ['web', ['web', '*.example.com'], 2],
      ['web-2', ['other'], 1],
    ])
    assert.deepEqual(vhosts[0]?.routes.map((r) => r.match), [
      { prefix: '/grpc', headers: [{ name: 'content-type', safeRegex: 'application/grpc([+;].*)?' }] },
      { prefix: '/mirror' },
    ])
    assert.deepEqual(vhosts[0]?.routes.map((r) => r.route), [
      { cluster: 'web', retryPolicy: { retryOn: ['5xx'] } },
      { clusterHeader: 'x-cluster' },
    ])
  })

  it('reports plain TLS, which the mesh verifies and Envoy would not', () => {
    const r = importYaml(`
static_resources:
  clusters:
  - name: tls
    transport_socket:
      name: envoy.transport_sockets.tls
    load_assignment:
      endpoints:
      - lb_endpoints:
        - endpoint: { address: { socket_address: { address: "2001:db8::1", port_value: 8443 } } }
`)
    assert.deepEqual(paths(r), ['static_resources.clusters[0].transport_socket'])
    assert.deepEqual(r.config.clusters?.[0]?.endpoints, [{ address: 'https://[2001:db8::1]:8443' }])
    assertValid(r)
  })
})

describe('fromEnvoy: matchers', () => {
  it('imports header matchers of each kind', () => {
    const result = importYaml(withRoutes(`
- name: headers
  match:
    prefix: /
    case_sensitive: { value: false }
    headers:
    - { name: x-exact, exact_match: a }
    - { name: x-prefix, prefix_match: b }
    - { name: x-suffix, suffix_match: c }
    - { name: x-contains, contains_match: d }
    - { name: x-regex, safe_regex_match: { google_re2: {}, regex: "v[0-9]+" } }
    - { name: x-present, present_match: true }
    - { name: x-absent, present_match: false }
    - { name: x-sm-exact, string_match: { exact: e, ignore_case: true } }
    - { name: x-sm-prefix, string_match: { prefix: f } }
    - { name: x-sm-suffix, string_match: { suffix: g } }
    - { name: x-sm-contains, string_match: { contains: h } }
    - { name: x-sm-regex, string_match: { safe_regex: { regex: "[a-z]+" }, ignore_case: true } }
    - { name: x-not, exact_match: i, invert_match: true }
    - { name: ":method", exact_match: POST }
    - { name: x-bare }
  route: { cluster: backend }
`))
    assert.deepEqual(result.unsupported, [])
    assert.deepEqual(routesOf(result), [
      {
        name: 'headers',
        match: {
          prefix: '/',
          caseSensitive: false,
          headers: [
            { name: 'x-exact', exact: 'a' },
            { name: 'x-prefix', prefix: 'b' },
            { name: 'x-suffix', suffix: 'c' },
            { name: 'x-contains', contains: 'd' },
            { name: 'x-regex', safeRegex: 'v[0-9]+' },
            { name: 'x-present', present: true },
            { name: 'x-absent', present: false },
            { name: 'x-sm-exact', exact: 'e', ignoreCase: true },
            { name: 'x-sm-prefix', prefix: 'f' },
            { name: 'x-sm-suffix', suffix: 'g' },
            { name: 'x-sm-contains', contains: 'h' },
            { name: 'x-sm-regex', safeRegex: '[a-z]+' },
            { name: 'x-not', exact: 'i', invert: true },
            { name: ':method', exact: 'POST' },
            { name: 'x-bare' },
          ],
        },
        route: { cluster: 'backend' },
      },
    ])
    assertValid(result)
  })

  it('imports query parameter matchers and every path specifier', () => {
    const result = importYaml(withRoutes(`
- match:
    path: /exact
    case_sensitive: true
    query_parameters:
    - { name: a, string_match: { exact: "1" } }
    - { name: b, string_match: { prefix: p, ignore_case: true } }
    - { name: c, present_match: true }
    - { name: d }
  route: { cluster: backend }
- match: { safe_regex: { google_re2: {}, regex: "/v[12]/.*" } }
  route: { cluster: backend, regex_rewrite: { pattern: { google_re2: {}, regex: "^/v[12]/(.*)$" }, substitution: "/\\\\1" } }
- match: { path_separated_prefix: /api }
  route: { cluster: backend, prefix_rewrite: /internal }
`))
    assert.deepEqual(result.unsupported, [])
    assert.deepEqual(routesOf(result), [
      {
        match: {
          path: '/exact',
          caseSensitive: true,
          queryParameters: [
            { name: 'a', exact: '1' },
            { name: 'b', prefix: 'p', ignoreCase: true },
            { name: 'c' },
            { name: 'd' },
          ],
        },
        route: { cluster: 'backend' },
      },
      {
        match: { safeRegex: '/v[12]/.*' },
        route: { cluster: 'backend', regexRewrite: { pattern: '^/v[12]/(.*)$', substitution: '/\\1' } },
      },
      { match: { pathSeparatedPrefix: '/api' }, route: { cluster: 'backend', prefixRewrite: '/internal' } },
    ])
    assertValid(result)
  })

  it('drops a route whose matcher cannot be kept, rather than match more than it should', () => {
    const result = importYaml(withRoutes(`
- match: { prefix: /range, headers: [{ name: x-n, range_match: { start: 1, end: 5 } }] }
  route: { cluster: backend }
- match: { prefix: /backref, headers: [{ name: x-r, safe_regex_match: { regex: "(a)\\\\1" } }] }
  route: { cluster: backend }
- match: { path_match_policy: { name: envoy.path.match.uri_template.uri_template_matcher } }
  route: { cluster: backend }
- match: { prefix: /ok }
  route: { cluster: backend }
`))
    const R = 'static_resources.listeners[0].filter_chains[0].filters[0].typed_config.route_config.virtual_hosts[0].routes'
    assert.deepEqual(paths(result), [
      `${R}[1].match.headers[0].safe_regex_match.regex`,
      `${R}[1]`,
      `${R}[2].match.path_match_policy`,
      `${R}[2]`,
    ])
    assert.deepEqual(routesOf(result), [
      { match: { prefix: '/range', headers: [{ name: 'x-n', rangeMatch: { start: 1, end: 5 } }] }, route: { cluster: 'backend' } },
      { match: { prefix: '/ok' }, route: { cluster: 'backend' } },
    ])
    assertValid(result)
  })
})

describe('fromEnvoy: redirect, direct response and header mutations', () => {
  it('imports redirects with every option and each response code name', () => {
    const result = importYaml(withRoutes(`
- match: { prefix: /a }
  redirect: { https_redirect: true, host_redirect: example.com, port_redirect: 8443, path_redirect: /new, response_code: FOUND, strip_query: true }
- match: { prefix: /b }
  redirect: { scheme_redirect: http, prefix_rewrite: /b2, response_code: SEE_OTHER }
- match: { prefix: /c }
  redirect: { host_redirect: c.example.com, response_code: TEMPORARY_REDIRECT }
- match: { prefix: /d }
  redirect: { host_redirect: d.example.com, response_code: PERMANENT_REDIRECT }
- match: { prefix: /e }
  redirect: { host_redirect: e.example.com, response_code: MOVED_PERMANENTLY }
`))
    assert.deepEqual(result.unsupported, [])
    assert.deepEqual(routesOf(result), [
      {
        match: { prefix: '/a' },
        redirect: { httpsRedirect: true, hostRedirect: 'example.com', portRedirect: 8443, pathRedirect: '/new', responseCode: 302, stripQuery: true },
      },
      { match: { prefix: '/b' }, redirect: { schemeRedirect: 'http', prefixRewrite: '/b2', responseCode: 303 } },
      { match: { prefix: '/c' }, redirect: { hostRedirect: 'c.example.com', responseCode: 307 } },
      { match: { prefix: '/d' }, redirect: { hostRedirect: 'd.example.com', responseCode: 308 } },
      { match: { prefix: '/e' }, redirect: { hostRedirect: 'e.example.com', responseCode: 301 } },
    ])
    assertValid(result)
  })

  it('imports direct responses, and drops bodies it cannot read with the route', () => {
    const result = importYaml(withRoutes(`
- match: { path: /healthz }
  direct_response: { status: 200, body: { inline_string: ok } }
- match: { path: /gone }
  direct_response: { status: 410 }
- match: { path: /file }
  direct_response: { status: 200, body: { filename: /etc/motd } }
`))
    const R = 'static_resources.listeners[0].filter_chains[0].filters[0].typed_config.route_config.virtual_hosts[0].routes'
    assert.deepEqual(paths(result), [`${R}[2].direct_response.body.filename`, `${R}[2]`])
    assert.deepEqual(routesOf(result), [
      { match: { path: '/healthz' }, directResponse: { status: 200, body: 'ok' } },
      { match: { path: '/gone' }, directResponse: { status: 410 } },
    ])
    assertValid(result)
  })

  it('imports header mutations at virtual host and route level, with append and append_action', () => {
    const text = withRoutes(`
- match: { prefix: / }
  route: { cluster: backend }
  request_headers_to_add:
  - header: { key: x-a, value: "1" }
    append: true
  - header: { key: x-b, value: "2" }
    append_action: ADD_IF_ABSENT
  - header: { key: x-c, value: "100%%" }
  - header: { key: x-d, value: "%DOWNSTREAM_REMOTE_ADDRESS%" }
  - header: { key: x-f, value: "%DYNAMIC_METADATA([\\"a\\"])%" }
  request_headers_to_remove: [x-secret]
  response_headers_to_add:
  - header: { key: x-e, value: "3" }
    append_action: OVERWRITE_IF_EXISTS
  response_headers_to_remove: [server, host]
`).replace('domains: ["*"]', `domains: ["*"]
              response_headers_to_add: [{ header: { key: x-vh, value: yes }, append: false }]
              request_headers_to_remove: [x-internal]`)
    const result = importYaml(text)
    const R = 'static_resources.listeners[0].filter_chains[0].filters[0].typed_config.route_config.virtual_hosts[0]'
    // Command operators are kept (the mesh evaluates them); one it lacks drops its header, never sent literally.
    assert.deepEqual(paths(result), [
      `${R}.routes[0].request_headers_to_add[4].header.value`,
      `${R}.routes[0].response_headers_to_remove[1]`,
    ])
    assert.match(messageAt(result, `${R}.routes[0].request_headers_to_add[4].header.value`), /%DYNAMIC_METADATA% is not supported/)
    const vh = result.config.virtualHosts?.[0]
    assert.deepEqual(vh?.responseHeadersToAdd, [{ header: { key: 'x-vh', value: 'yes' }, appendAction: 'OVERWRITE_IF_EXISTS_OR_ADD' }])
    assert.deepEqual(vh?.requestHeadersToRemove, ['x-internal'])
    assert.deepEqual(routesOf(result), [
      {
        match: { prefix: '/' },
        route: { cluster: 'backend' },
        requestHeadersToAdd: [
          { header: { key: 'x-a', value: '1' }, appendAction: 'APPEND_IF_EXISTS_OR_ADD' },
          { header: { key: 'x-b', value: '2' }, appendAction: 'ADD_IF_ABSENT' },
          { header: { key: 'x-c', value: '100%%' } },
          { header: { key: 'x-d', value: '%DOWNSTREAM_REMOTE_ADDRESS%' } },
        ],
        requestHeadersToRemove: ['x-secret'],
        responseHeadersToAdd: [{ header: { key: 'x-e', value: '3' }, appendAction: 'OVERWRITE_IF_EXISTS' }],
        responseHeadersToRemove: ['server'],
      },
    ])
    assertValid(result)
  })
})

describe('fromEnvoy: load balancing', () => {
  it('imports hash policies and the options of each lb_policy', () => {
    const text = withRoutes(`
- match: { prefix: / }
  route:
    cluster: ring
    hash_policy:
    - header: { header_name: x-user }
      terminal: true
    - cookie: { name: session }
    - query_parameter: { name: uid }
    - connection_properties: { source_ip: true }
`, []).replace('  clusters:\n', `  clusters:
  - name: ring
    lb_policy: RING_HASH
    ring_hash_lb_config: { minimum_ring_size: 512, maximum_ring_size: "4096" }
  - name: mag
    lb_policy: MAGLEV
    maglev_lb_config: { table_size: 65537 }
  - name: lr
    lb_policy: LEAST_REQUEST
    least_request_lb_config: { choice_count: 3 }
  - name: rnd
    lb_policy: RANDOM
`)
    const result = importYaml(text)
    const R = 'static_resources.listeners[0].filter_chains[0].filters[0].typed_config.route_config.virtual_hosts[0].routes[0].route.hash_policy[3]'
    assert.deepEqual(paths(result), [`${R}.connection_properties`, R])
    assert.deepEqual(routesOf(result), [
      {
        match: { prefix: '/' },
        route: {
          cluster: 'ring',
          hashPolicy: [{ header: { name: 'x-user' }, terminal: true }, { cookie: { name: 'session' } }, { queryParameter: { name: 'uid' } }],
        },
      },
    ])
    assert.deepEqual(result.config.clusters, [
      { name: 'ring', loadBalancer: 'ring_hash', ringHash: { minimumRingSize: 512, maximumRingSize: 4096 } },
      { name: 'mag', loadBalancer: 'maglev', maglev: { tableSize: 65537 } },
      { name: 'lr', loadBalancer: 'least_request', leastRequest: { choiceCount: 3 } },
      { name: 'rnd', loadBalancer: 'random' },
    ])
    assertValid(result)
  })
})

describe('fromEnvoy: bad and hostile input', () => {
  it('reports a non-object input at the root', () => {
    for (const input of [null, undefined, 42, 'static_resources', [], true]) {
      const result = fromEnvoy(input)
      assert.deepEqual(result.config, {})
      assert.equal(result.unsupported.length, 1)
      assert.equal(result.unsupported[0]?.path, '')
      assert.equal(isEnvoyBootstrap(input), false)
    }
  })

  it('reports an object without static_resources', () => {
    const result = fromEnvoy({ admin: {} })
    assert.deepEqual(result.config, {})
    assert.deepEqual(paths(result), [''])
  })

  it('tells a bootstrap from a mesh config', () => {
    assert.equal(isEnvoyBootstrap({ static_resources: {} }), true)
    assert.equal(isEnvoyBootstrap({ staticResources: {} }), true)
    assert.equal(isEnvoyBootstrap({ clusters: [] }), false)
  })

  it('reports wrong types instead of throwing', () => {
    const result = fromEnvoy({
      static_resources: {
        clusters: [5, { name: 7 }, { name: 'c', connect_timeout: 5, lb_policy: 'FASTEST', load_assignment: { endpoints: 'x' } }],
        listeners: { not: 'a list' },
      },
    })
    assert.deepEqual(paths(result), [
      'static_resources.clusters[0]',
      'static_resources.clusters[1].name',
      'static_resources.clusters[1]',
      'static_resources.clusters[2].connect_timeout',
      'static_resources.clusters[2].lb_policy',
      'static_resources.clusters[2].load_assignment.endpoints',
      'static_resources.listeners',
    ])
    assert.deepEqual(result.config, { clusters: [{ name: 'c' }] })
    assertValid(result)
  })

  it('survives deep nesting, huge lists, shared references, cycles and throwing getters', () => {
    let deep: unknown = 'bottom'
    for (let i = 0; i < 100_000; i++) deep = { route_config: { virtual_hosts: [deep] } }
    const endpoint = { endpoint: { address: { socket_address: { address: '10.0.0.1', port_value: 80 } } } }
    const manyEndpoints = Array.from({ length: 100_001 }, () => endpoint)
    const cyclic: Record<string, unknown> = { name: 'cyc' }
    cyclic['load_assignment'] = { endpoints: [{ lb_endpoints: [cyclic] }] }
    const throwing = new Proxy({}, { ownKeys: () => { throw new Error('no keys for you') } })
    const route = { match: { prefix: '/', headers: Array.from({ length: 100_000 }, () => ({ name: 'x', exact_match: 'y' })) }, route: { cluster: 'c' } }
    const hostile = {
      static_resources: {
        clusters: [
          { name: 'big', load_assignment: { endpoints: [{ lb_endpoints: manyEndpoints }] } },
          cyclic,
          { name: 'deep', deep },
        ],
        listeners: [
          { filter_chains: [{ filters: [{ name: 'envoy.filters.network.http_connection_manager', typed_config: deep }] }] },
          {
            filter_chains: [{
              filters: [{
                name: 'envoy.filters.network.http_connection_manager',
                typed_config: { route_config: { virtual_hosts: [{ name: 'h', domains: ['h'], routes: Array.from({ length: 200 }, () => route) }] } },
              }],
            }],
          },
        ],
      },
    }
    const started = Date.now()
    const result = fromEnvoy(hostile)
    assert.ok(Date.now() - started < 20_000)
    assert.ok(result.unsupported.some((u) => u.path === 'static_resources.clusters[0].load_assignment.endpoints[0].lb_endpoints' && /100001 items/.test(u.message)))
    assert.equal(result.config.clusters?.[0]?.endpoints?.length, 100_000)
    assert.ok(result.unsupported.some((u) => /too large/.test(u.message)))

    assert.doesNotThrow(() => fromEnvoy({ static_resources: { clusters: [throwing] } }))
    assert.match(fromEnvoy({ static_resources: throwing }).unsupported.at(-1)?.message ?? '', /no keys for you/)
    const huge = fromEnvoy({ static_resources: { clusters: Array.from({ length: 150_000 }, (_, i) => ({ name: `c${i}`, bogus: 1 })) } })
    assert.equal(huge.config.clusters?.length, 100_000)
    assert.ok(huge.unsupported.length <= 10_001)
    assert.match(huge.unsupported.at(-1)?.message ?? '', /more problems/)
  })

  it('keeps a label called __proto__ as a label', () => {
    const result = fromEnvoy(JSON.parse(`{"static_resources":{"clusters":[{"name":"c","load_assignment":{"endpoints":[{"lb_endpoints":[
      {"endpoint":{"address":{"socket_address":{"address":"a","port_value":1}}},"metadata":{"filter_metadata":{"envoy.lb":{"__proto__":"x","v":"1"}}}}]}]}}]}}`))
    const labels = result.config.clusters?.[0]?.endpoints?.[0]?.labels
    assert.equal(Object.getPrototypeOf(labels), Object.prototype)
    assert.deepEqual(Object.keys(labels ?? {}), ['__proto__', 'v'])
  })
})
