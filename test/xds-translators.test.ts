/**
 * The translators the xDS client adds to the Envoy import: RBAC (as istiod generates it for
 * AuthorizationPolicies, pilot/pkg/security/authz/model) into our `listener.authorization`,
 * DownstreamTlsContext, `load_balancing_policy`; and the bootstrap reader (gRPC's rules,
 * istio-agent's file).
 */
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, test } from 'node:test'
import { isMeshError } from '../src/index.js'
import { Problems, translateCluster, translateClusterLoadAssignment, translateDownstreamTlsContext, translateRbac } from '../src/config/envoy/index.js'
import { grpcTarget, parseBootstrap, readBootstrap } from '../src/xds/client/bootstrap.js'
import { listenerDomains, listenerNameOf } from '../src/xds/client/compose.js'
import { agentBootstrap, commonTls, rbacPolicy } from './helpers/istiod.js'

function rbac(rules: unknown) {
  const p = new Problems()
  const t = translateRbac(p, { key: 'typed_config', name: 'typed_config', value: rules, path: 'rbac' })
  return { t, problems: p.list() }
}

describe('RBAC filter → listener.authorization', () => {
  test('istiod\'s shape: one rule per policy, operations from permissions, sources from principals', () => {
    const { t, problems } = rbac({
      rules: {
        action: 'ALLOW',
        policies: {
          'ns-reader-0': rbacPolicy({ methods: ['GET', 'HEAD'], paths: ['/api/*'], notPaths: ['/api/admin'], principals: ['cluster.local/ns/default/sa/a', 'cluster.local/ns/other/*'] }),
        },
      },
    })
    assert.deepEqual(problems, [])
    assert.deepEqual(t, {
      action: 'ALLOW',
      policies: [{
        name: 'ns-reader-0',
        action: 'ALLOW',
        rules: [{
          from: [{ source: { principals: ['cluster.local/ns/default/sa/a', 'cluster.local/ns/other/*'] } }],
          to: [{ operation: { methods: ['GET', 'HEAD'], paths: ['/api/*'], notPaths: ['/api/admin'] } }],
        }],
      }],
    })
  })

  test('namespaces (istiod\'s regex), IP blocks, ports, headers and SNI', () => {
    const { t } = rbac({
      rules: {
        action: 'DENY',
        policies: {
          p: {
            permissions: [{ and_rules: { rules: [{ destination_port: 8080 }, { requested_server_name: { exact: 'x.example' } }] } }],
            principals: [{ and_ids: { ids: [
              { or_ids: { ids: [{ authenticated: { principal_name: { safe_regex: { regex: '.*/ns/prod/.*' } } } }] } },
              { direct_remote_ip: { address_prefix: '10.0.0.0', prefix_len: 8 } },
              { not_id: { header: { name: 'x-canary', string_match: { exact: 'yes' } } } },
            ] } }],
          },
        },
      },
    })
    assert.deepEqual(t?.policies[0]?.rules, [{
      from: [{ source: { namespaces: ['prod'], ipBlocks: ['10.0.0.0/8'] } }],
      to: [{ operation: { ports: ['8080'] } }],
      when: [{ key: 'connection.sni', values: ['x.example'] }, { key: 'request.headers[x-canary]', notValues: ['yes'] }],
    }])
  })

  test('several permissions and principals: every pair is one rule (the policy matches any permission with any principal)', () => {
    const { t } = rbac({
      rules: { policies: { p: { permissions: [{ header: { name: ':method', string_match: { exact: 'GET' } } }, { url_path: { path: { prefix: '/x' } } }], principals: [{ any: true }, { remote_ip: { address_prefix: '1.2.3.4', prefix_len: 32 } }] } } },
    })
    assert.equal(t?.action, 'ALLOW')
    assert.equal(t?.policies[0]?.rules?.length, 4)
  })

  test('not (a and b) is (not a) or (not b): two rules', () => {
    const { t } = rbac({
      rules: { action: 'DENY', policies: { p: { permissions: [{ not_rule: { and_rules: { rules: [{ destination_port: 1 }, { destination_port: 2 }] } } }], principals: [{ any: true }] } } },
    })
    assert.deepEqual(t?.policies[0]?.rules, [{ to: [{ operation: { notPorts: ['1'] } }] }, { to: [{ operation: { notPorts: ['2'] } }] }])
  })

  test('ALLOW without policies denies everything; no rules at all enforces nothing', () => {
    assert.deepEqual(rbac({ rules: { action: 'ALLOW' } }).t?.policies, [{ name: 'deny-all', action: 'ALLOW', rules: [] }])
    assert.equal(rbac({}).t, null)
  })

  test('what cannot be enforced exactly makes the filter unusable, never approximated', () => {
    for (const principal of [
      { metadata: { filter: 'envoy.filters.http.jwt_authn', path: [{ key: 'payload' }] } },
      { authenticated: { principal_name: { safe_regex: { regex: 'spiffe://.+/sa/x' } } } },
      { authenticated: { principal_name: { exact: 'not-a-spiffe-id' } } },
      { header: { name: 'x', string_match: { contains: 'y' } } },
    ]) {
      assert.equal(rbac({ rules: { policies: { p: { permissions: [{ any: true }], principals: [principal] } } } }).t, undefined, JSON.stringify(principal))
    }
    assert.equal(rbac({ rules: { policies: { p: { permissions: [{ destination_port_range: { start: 1, end: 9 } }], principals: [{ any: true }] } } } }).t, undefined)
    assert.equal(rbac({ rules: { policies: { p: { permissions: [{ any: true }], principals: [{ any: true }], condition: { id: '1' } } } } }).t, undefined)
  })
})

describe('DownstreamTlsContext and load_balancing_policy', () => {
  test('istiod\'s mTLS chain: provider instance default, client certificates required', () => {
    const p = new Problems()
    const t = translateDownstreamTlsContext(p, { key: 't', name: 't', value: { common_tls_context: commonTls([]), require_client_certificate: true }, path: 't' })
    assert.equal(t?.requireClientCertificate, true)
    assert.equal(t?.certificateProvider, 'default')
    assert.equal(t?.validationProvider, 'default')
    assert.deepEqual(p.list(), [])
  })

  test('the extension form of the load-balancing policy (gRFC A52), wrr_locality around ring hash', () => {
    const p = new Problems()
    const c = translateCluster({
      name: 'c',
      type: 'EDS',
      load_balancing_policy: { policies: [{ typed_extension_config: { name: 'x', typed_config: {
        '@type': 'type.googleapis.com/envoy.extensions.load_balancing_policies.wrr_locality.v3.WrrLocality',
        endpoint_picking_policy: { policies: [{ typed_extension_config: { name: 'rh', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.load_balancing_policies.ring_hash.v3.RingHash', minimum_ring_size: '512' } } }] },
      } } }] },
    }, 'cluster', p)
    assert.equal(c?.config.loadBalancer, 'ring_hash')
    assert.deepEqual(c?.config.ringHash, { minimumRingSize: 512 })
    assert.deepEqual(p.list(), [])
  })
})

describe('ClusterLoadAssignment localities', () => {
  const group = (weight: number, port: number) => ({ locality: { zone: `z${port}` }, load_balancing_weight: weight, lb_endpoints: [{ endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: port } } } }] })
  test('one locality with its weight (as istiod sends it) is no warning; different weights between localities are', () => {
    const one = new Problems()
    assert.equal(translateClusterLoadAssignment({ cluster_name: 'c', endpoints: [group(1, 1)] }, 'cla', one).endpoints.length, 1)
    assert.deepEqual(one.list(), [])
    const two = new Problems()
    assert.equal(translateClusterLoadAssignment({ cluster_name: 'c', endpoints: [group(1, 1), group(3, 2)] }, 'cla', two).endpoints.length, 2)
    assert.match(two.list()[0]?.message ?? '', /locality weights are not supported/)
  })
})

describe('the gRPC xDS bootstrap', () => {
  test('istio-agent\'s file: server, node with GENERATOR, the default file_watcher provider, the server listener template', () => {
    const b = parseBootstrap(agentBootstrap('unix:////etc/istio/proxy/XDS', { certDir: '/var/lib/istio/data' }), 'test')
    assert.equal(b.server.target, 'unix:/etc/istio/proxy/XDS')
    assert.equal(b.server.credentials.type, 'insecure')
    assert.equal(b.node.metadata['GENERATOR'], 'grpc')
    const provider = b.certificateProviders.get('default')
    assert.equal(provider?.certificateFile, '/var/lib/istio/data/cert-chain.pem')
    assert.equal(provider?.refreshIntervalMs, 900_000)
    assert.equal(b.serverListenerTemplate, 'xds.istio.io/grpc/lds/inbound/%s')
  })

  test('unix targets as gRPC reads them', () => {
    assert.equal(grpcTarget('unix:///etc/istio/proxy/XDS'), 'unix:/etc/istio/proxy/XDS')
    assert.equal(grpcTarget('unix:////etc/istio/proxy/XDS'), 'unix:/etc/istio/proxy/XDS')
    assert.equal(grpcTarget('unix:///./etc/istio/proxy/XDS'), 'unix:/etc/istio/proxy/XDS')
    assert.equal(grpcTarget('unix:/run/xds.sock'), 'unix:/run/xds.sock')
    assert.equal(grpcTarget('unix:relative.sock'), 'unix:relative.sock')
    assert.equal(grpcTarget('istiod.istio-system.svc:15010'), 'istiod.istio-system.svc:15010')
  })

  test('the first server with supported credentials; tls credentials (gRFC A65)', () => {
    const b = parseBootstrap({
      xds_servers: [
        { server_uri: 'a:1', channel_creds: [{ type: 'google_default' }] },
        { server_uri: 'b:2', channel_creds: [{ type: 'fake' }, { type: 'tls', config: { ca_certificate_file: '/ca.pem' } }], server_features: ['xds_v3', 'ignore_resource_deletion'] },
      ],
    }, 't')
    assert.equal(b.server.uri, 'b:2')
    assert.deepEqual(b.server.credentials, { type: 'tls', caCertificateFile: '/ca.pem', certificateFile: undefined, privateKeyFile: undefined })
    assert.equal(b.server.ignoreResourceDeletion, true)
  })

  test('GRPC_XDS_BOOTSTRAP (a file) before GRPC_XDS_BOOTSTRAP_CONFIG (JSON); neither is a coded error', () => {
    const dir = mkdtempSync(join(tmpdir(), 'sidecarless-bootstrap-'))
    try {
      const file = join(dir, 'grpc-bootstrap.json')
      writeFileSync(file, JSON.stringify(agentBootstrap('from-file:1')))
      const env = { GRPC_XDS_BOOTSTRAP: file, GRPC_XDS_BOOTSTRAP_CONFIG: JSON.stringify(agentBootstrap('from-env:1')) }
      assert.equal(readBootstrap(undefined, env).server.uri, 'from-file:1')
      assert.equal(readBootstrap(undefined, { GRPC_XDS_BOOTSTRAP_CONFIG: env.GRPC_XDS_BOOTSTRAP_CONFIG }).server.uri, 'from-env:1')
      assert.throws(() => readBootstrap(undefined, {}), (e) => isMeshError(e, 'SIDECARLESS_ERR_XDS_BOOTSTRAP') && /GRPC_XDS_BOOTSTRAP/.test(e.message))
      assert.throws(() => readBootstrap(join(dir, 'missing.json'), {}), (e) => isMeshError(e, 'SIDECARLESS_ERR_XDS_BOOTSTRAP'))
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  test('what gRPC refuses is refused, the field named', () => {
    const bad: [unknown, RegExp][] = [
      [{}, /xds_servers/],
      [{ xds_servers: [{ server_uri: 'a:1', channel_creds: [{ type: 'google_default' }] }] }, /channel_creds type the mesh supports/],
      [{ xds_servers: [{ server_uri: 'a:1' }] }, /channel_creds/],
      [{ xds_servers: [{ server_uri: 'a:1', channel_creds: [{ type: 'insecure' }] }], node: { id: 3 } }, /node\.id/],
      [{ xds_servers: [{ server_uri: 'a:1', channel_creds: [{ type: 'insecure' }] }], certificate_providers: { d: { plugin_name: 'x', config: {} } } }, /plugin_name/],
      [{ xds_servers: [{ server_uri: 'a:1', channel_creds: [{ type: 'insecure' }] }], certificate_providers: { d: { plugin_name: 'file_watcher', config: { certificate_file: '/c' } } } }, /together/],
    ]
    for (const [json, message] of bad) assert.throws(() => parseBootstrap(json, 't'), (e) => isMeshError(e, 'SIDECARLESS_ERR_XDS_BOOTSTRAP') && message.test(e.message), JSON.stringify(json))
  })

  test('Listener names of authorities: the scheme\'s default port is added, as the domains allow it back', () => {
    assert.equal(listenerNameOf('Echo.svc', 'http'), 'echo.svc:80')
    assert.equal(listenerNameOf('echo.svc', 'https'), 'echo.svc:443')
    assert.equal(listenerNameOf('echo.svc:8080', 'http'), 'echo.svc:8080')
    assert.equal(listenerNameOf('[::1]:9', 'http'), '[::1]:9')
    assert.deepEqual(listenerDomains('echo.svc:80'), ['echo.svc:80', 'echo.svc'])
    assert.deepEqual(listenerDomains('echo.svc:8080'), ['echo.svc:8080'])
  })
})
