// Envoy import of the HTTP fault filter (filter-level and per-route) and of
// request_mirror_policies.
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { parse } from 'yaml'
import { fromEnvoy, type EnvoyImport } from '../src/config/envoy/index.js'
import { validateConfig } from '../src/config/validate.js'

function bootstrap(routes: string, filters: string): EnvoyImport {
  const indented = routes.trim().split('\n').map((l) => `              ${l}`).join('\n')
  const f = filters.trim().split('\n').map((l) => `          ${l}`).join('\n')
  return fromEnvoy(parse(`
static_resources:
  listeners:
  - name: listener_0
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
${f}
  clusters:
${['backend', 'shadow'].map((c) => `  - name: ${c}
    type: STATIC
    load_assignment:
      cluster_name: ${c}
      endpoints:
      - lb_endpoints:
        - endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: 9000 } } }`).join('\n')}
`))
}

const ROUTER = '- name: envoy.filters.http.router'
const routes = (r: EnvoyImport): Record<string, unknown>[] => (r.config.virtualHosts?.[0]?.routes ?? []) as unknown as Record<string, unknown>[]

describe('Envoy import: fault filter', () => {
  it('the filter-level config applies to every forwarding route; a per-route config replaces it', () => {
    const r = bootstrap(`
- match: { prefix: /a }
  route: { cluster: backend }
- match: { prefix: /b }
  route: { cluster: backend }
  typed_per_filter_config:
    envoy.filters.http.fault:
      "@type": type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault
      abort: { header_abort: {}, percentage: { numerator: 5, denominator: TEN_THOUSAND } }
`, `
- name: envoy.filters.http.fault
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault
    delay: { fixed_delay: 0.5s, percentage: { numerator: 10 } }
    abort: { http_status: 503, percentage: { numerator: 1, denominator: MILLION } }
    max_active_faults: 100
${ROUTER}`)
    assert.deepEqual(r.unsupported, [])
    assert.deepEqual(routes(r)[0]?.['fault'], { delay: { fixedDelay: '500ms', percentage: 10 }, abort: { httpStatus: 503, percentage: 0.0001 }, maxActiveFaults: 100 })
    assert.deepEqual(routes(r)[1]?.['fault'], { abort: { headerAbort: true, percentage: 0.05 } })
    assert.deepEqual(validateConfig(r.config), [])
  })

  it('without the fault filter in the chain, a per-route fault is reported and ignored (Envoy would not apply it)', () => {
    const r = bootstrap(`
- match: { prefix: / }
  route: { cluster: backend }
  typed_per_filter_config:
    envoy.filters.http.fault: { abort: { http_status: 500 } }
    envoy.filters.http.cors: {}
`, ROUTER)
    assert.equal(routes(r)[0]?.['fault'], undefined)
    assert.match(r.unsupported.map((u) => u.message).join('\n'), /no envoy.filters.http.fault filter/)
    assert.match(r.unsupported.map((u) => u.message).join('\n'), /per-filter config for "envoy.filters.http.cors" is not supported/)
  })

  it('scoped faults (headers, upstream_cluster, downstream_nodes) are dropped, not widened; gRPC aborts and runtime keys are reported', () => {
    const r = bootstrap(`
- match: { prefix: / }
  route: { cluster: backend }
`, `
- name: envoy.filters.http.fault
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault
    abort: { http_status: 500 }
    headers: [ { name: x-test, exact_match: "1" } ]
${ROUTER}`)
    assert.equal(routes(r)[0]?.['fault'], undefined)
    assert.match(r.unsupported.map((u) => u.message).join('\n'), /dropped rather than applied more widely/)

    const g = bootstrap(`
- match: { prefix: / }
  route: { cluster: backend }
`, `
- name: envoy.filters.http.fault
  typed_config:
    delay: { header_delay: {} }
    abort: { grpc_status: 14 }
    delay_percent_runtime: fault.delay
${ROUTER}`)
    assert.deepEqual(routes(g)[0]?.['fault'], { delay: { headerDelay: true } })
    assert.match(g.unsupported.map((u) => u.message).join('\n'), /gRPC aborts are not supported/)
    assert.match(g.unsupported.map((u) => u.message).join('\n'), /runtime overrides are not supported/)
  })
})

describe('Envoy import: request_mirror_policies', () => {
  it('cluster and runtime_fraction become cluster and percentage; unsupported fields are reported', () => {
    const r = bootstrap(`
- match: { prefix: / }
  route:
    cluster: backend
    request_mirror_policies:
    - cluster: shadow
      runtime_fraction: { default_value: { numerator: 25 }, runtime_key: mirror.share }
    - cluster: shadow
      runtime_fraction: { default_value: { numerator: 5000, denominator: TEN_THOUSAND } }
    - cluster: shadow
    - cluster: shadow
      trace_sampled: false
      runtime_fraction: {}
    - cluster_header: x-mirror
`, ROUTER)
    const action = routes(r)[0]?.['route'] as Record<string, unknown>
    assert.deepEqual(action['requestMirrorPolicies'], [
      { cluster: 'shadow', percentage: 25 },
      { cluster: 'shadow', percentage: 50 },
      { cluster: 'shadow' },
    ])
    const text = r.unsupported.map((u) => `${u.path}: ${u.message}`).join('\n')
    assert.match(text, /runtime_key.*runtime overrides are not supported/)
    assert.match(text, /trace_sampled/)
    assert.match(text, /needs a usable default_value/)
    assert.match(text, /cluster_header/)
    assert.deepEqual(validateConfig(r.config), [])
  })
})
