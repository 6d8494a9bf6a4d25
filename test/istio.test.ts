/**
 * The Istio import, kind by kind: what each field becomes in the mesh model (following
 * istiod's translation in pilot/pkg/networking/core), what is left out and reported by path,
 * and — where the model alone cannot show it — what real requests through a mesh get.
 */
import assert from 'node:assert/strict'
import { once } from 'node:events'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import type http from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { stringify } from 'yaml'
import { ConfigError, createMesh, fromIstio, isMeshError, loadConfig, validateConfig, type IstioTranslateOptions, type MeshConfig, type RouteConfig, type UnsupportedField } from '../src/index.js'
import { startUpstream, type Upstream } from './helpers/upstream.js'

let dir: string
let up: Upstream
before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'sidecarless-istio-'))
  up = await startUpstream('up')
})
after(async () => {
  await up.close()
  rmSync(dir, { recursive: true, force: true })
})

type Doc = Record<string, unknown>
const vs = (name: string, spec: Doc, meta: Doc = {}): Doc => ({ apiVersion: 'networking.istio.io/v1', kind: 'VirtualService', metadata: { name, ...meta }, spec })
const dr = (name: string, spec: Doc, meta: Doc = {}): Doc => ({ apiVersion: 'networking.istio.io/v1beta1', kind: 'DestinationRule', metadata: { name, ...meta }, spec })
const se = (name: string, spec: Doc, meta: Doc = {}): Doc => ({ apiVersion: 'networking.istio.io/v1alpha3', kind: 'ServiceEntry', metadata: { name, ...meta }, spec })
const pa = (name: string, spec: Doc, meta: Doc = {}): Doc => ({ apiVersion: 'security.istio.io/v1', kind: 'PeerAuthentication', metadata: { name, ...meta }, spec })
const ra = (name: string, spec: Doc, meta: Doc = {}): Doc => ({ apiVersion: 'security.istio.io/v1beta1', kind: 'RequestAuthentication', metadata: { name, ...meta }, spec })
const ap = (name: string, spec: Doc, meta: Doc = {}): Doc => ({ apiVersion: 'security.istio.io/v1', kind: 'AuthorizationPolicy', metadata: { name, ...meta }, spec })
const to = (host: string, subset?: string): Doc => ({ destination: { host, ...(subset === undefined ? {} : { subset }) } })
/** Our own document with a `reviews` cluster of three versions. */
const endpoints = (address = 'http://127.0.0.1:9'): Doc => ({
  clusters: [{ name: 'reviews', endpoints: ['v1', 'v2', 'v3'].map((v) => ({ address, labels: { version: v } })) }],
})
const subsets = dr('reviews', { host: 'reviews', subsets: ['v1', 'v2', 'v3'].map((v) => ({ name: v, labels: { version: v } })) })

function translate(docs: unknown[], options: IstioTranslateOptions = {}): { config: MeshConfig; unsupported: readonly UnsupportedField[] } {
  const r = fromIstio(docs, options)
  assert.deepEqual(validateConfig(r.config), [], 'the translated config is valid')
  return r
}
const vhost = (c: MeshConfig, name: string) => {
  const v = c.virtualHosts?.find((x) => x.name === name)
  assert.ok(v !== undefined, `virtual host ${name} in ${JSON.stringify(c.virtualHosts?.map((x) => x.name))}`)
  return v
}
const cluster = (c: MeshConfig, name: string) => {
  const x = c.clusters?.find((y) => y.name === name)
  assert.ok(x !== undefined, `cluster ${name} in ${JSON.stringify(c.clusters?.map((y) => y.name))}`)
  return x
}
const reported = (u: readonly UnsupportedField[], path: string, words: RegExp): void => {
  assert.ok(u.some((x) => x.path === path && words.test(x.message)), `expected ${path} ${String(words)} in\n${u.map((x) => `${x.path}: ${x.message}`).join('\n')}`)
}
const REVIEWS = 'reviews.default.svc.cluster.local'

describe('names: short names, namespaces, domains', () => {
  test('a short host in namespace default is reviews.default.svc.cluster.local, served under the names istiod generates', () => {
    const { config } = translate([endpoints(), vs('reviews', { hosts: ['reviews'], http: [{ route: [to('reviews')] }] })])
    assert.deepEqual(vhost(config, REVIEWS).domains, ['reviews', 'reviews.default', 'reviews.default.svc', REVIEWS])
  })

  test('from another namespace, a service has no bare name; metadata.namespace resolves short names', () => {
    const { config } = translate([
      { clusters: [{ name: 'ratings.prod', endpoints: [{ address: 'http://127.0.0.1:9' }] }] },
      vs('ratings', { hosts: ['ratings'], http: [{ route: [to('ratings')] }] }, { namespace: 'prod' }),
    ])
    assert.deepEqual(vhost(config, 'ratings.prod.svc.cluster.local').domains, ['ratings.prod', 'ratings.prod.svc', 'ratings.prod.svc.cluster.local'])
    assert.equal(vhost(config, 'ratings.prod.svc.cluster.local').routes[0]?.route?.cluster, 'ratings.prod')
  })

  test('the workload namespace, cluster domain and root namespace are options', () => {
    const { config } = translate([{ clusters: [{ name: 'reviews', endpoints: [{ address: 'http://127.0.0.1:9' }] }] }, vs('r', { hosts: ['reviews'], http: [{ route: [to('reviews')] }] })], { namespace: 'shop', clusterDomain: 'corp.example' })
    assert.deepEqual(vhost(config, 'reviews.shop.svc.corp.example').domains, ['reviews', 'reviews.shop', 'reviews.shop.svc', 'reviews.shop.svc.corp.example'])
  })

  test('a host with a known port: each name also with :port; several ports: a virtual host per port, names without a port on 80', () => {
    const one = translate([se('r', { hosts: ['reviews.default.svc.cluster.local'], ports: [{ number: 9080, name: 'http', protocol: 'HTTP' }], resolution: 'STATIC', endpoints: [{ address: '127.0.0.1' }] })]).config
    assert.deepEqual(vhost(one, REVIEWS).domains, ['reviews', 'reviews.default', 'reviews.default.svc', REVIEWS, 'reviews:9080', 'reviews.default:9080', 'reviews.default.svc:9080', `${REVIEWS}:9080`])
    const two = translate([
      se('api', { hosts: ['api.example.com'], addresses: ['10.0.0.7'], ports: [{ number: 80, name: 'http', protocol: 'HTTP' }, { number: 8080, name: 'admin', protocol: 'HTTP' }], resolution: 'DNS' }),
      vs('api', { hosts: ['api.example.com'], http: [{ match: [{ port: 8080 }], route: [to('api.example.com')] }, { route: [to('api.example.com')] }] }),
    ]).config
    assert.deepEqual(vhost(two, 'api.example.com:80').domains, ['api.example.com', '10.0.0.7', 'api.example.com:80', '10.0.0.7:80'])
    assert.deepEqual(vhost(two, 'api.example.com:8080').domains, ['api.example.com:8080', '10.0.0.7:8080'])
    // The port-limited rule goes only to its port; a destination without a port takes the virtual host's.
    assert.deepEqual(vhost(two, 'api.example.com:80').routes.map((r) => r.route?.cluster), ['api.example.com:80'])
    assert.deepEqual(vhost(two, 'api.example.com:8080').routes.map((r) => r.route?.cluster), ['api.example.com:8080'])
    assert.deepEqual(cluster(two, 'api.example.com:8080').endpoints, [{ address: 'http://api.example.com:8080' }])
  })

  test('a rule limited to a port never takes a request for another port', async () => {
    const { config } = translate([endpoints(), subsets, vs('r', { hosts: ['reviews'], http: [
      { match: [{ port: 9080 }], route: [to('reviews', 'v2')] },
      { route: [to('reviews', 'v1')] },
    ] })])
    assert.deepEqual(vhost(config, `${REVIEWS}:9080`).domains, ['reviews:9080', 'reviews.default:9080', 'reviews.default.svc:9080', `${REVIEWS}:9080`])
    const mesh = createMesh({ config })
    try {
      const subset = (url: string): string | undefined => {
        const d = mesh.route({ url })
        return d.kind === 'cluster' ? d.targets[0]?.subset : d.kind
      }
      assert.equal(subset('http://reviews:9080/'), 'v2')
      assert.equal(subset('http://reviews.default.svc.cluster.local:9080/'), 'v2')
      assert.equal(subset('http://reviews/'), 'v1')
      assert.equal(subset('http://reviews:7000/'), 'v1')
    } finally {
      await mesh.close()
    }
  })

  test('exportTo and gateways decide whether a resource applies to this workload', () => {
    const { config, unsupported } = translate([
      endpoints(),
      vs('private', { hosts: ['reviews'], exportTo: ['.'], http: [{ route: [to('reviews')] }] }, { namespace: 'other' }),
      vs('gw', { hosts: ['reviews'], gateways: ['istio-system/ingress'], http: [{ route: [to('reviews')] }] }),
    ])
    reported(unsupported, 'VirtualService other/private (doc 2).spec.exportTo', /not exported to the workload's namespace default/)
    reported(unsupported, 'VirtualService gw (doc 3).spec.gateways', /applies to gateways istio-system\/ingress, not to sidecars/)
    // reviews keeps istiod's default route.
    assert.deepEqual(vhost(config, REVIEWS).routes.map((r) => r.name), ['default'])
  })
})

describe('VirtualService http routes', () => {
  test('matches: uri exact/prefix/regex, ignoreUriCase, headers, withoutHeaders, queryParams, method, authority, scheme', () => {
    const { config, unsupported } = translate([endpoints(), vs('m', {
      hosts: ['reviews'],
      http: [{
        name: 'r',
        match: [
          { name: 'a', uri: { exact: '/x' }, ignoreUriCase: true, method: { exact: 'POST' } },
          { uri: { prefix: '/api' }, headers: { 'End-User': { exact: 'jason' }, 'x-any': {}, 'x-star': { regex: '*' } }, withoutHeaders: { 'x-debug': { prefix: 'on' } } },
          { uri: { regex: '/v[0-9]+/.*' }, queryParams: { q: { exact: '' }, p: { regex: '\\d+' } }, method: { regex: 'GET|HEAD' }, authority: { prefix: 'reviews' }, scheme: { exact: 'http' } },
        ],
        route: [to('reviews')],
      }],
    })])
    assert.deepEqual(unsupported, [])
    const routes = vhost(config, REVIEWS).routes
    assert.deepEqual(routes.map((r) => [r.name, r.match]), [
      ['r.a', { path: '/x', caseSensitive: false, methods: ['POST'] }],
      ['r', { prefix: '/api', headers: [{ name: 'end-user', exact: 'jason' }, { name: 'x-any', present: true }, { name: 'x-star', present: true }, { name: 'x-debug', prefix: 'on', invert: true }] }],
      ['r-2', { safeRegex: '/v[0-9]+/.*', headers: [{ name: ':method', safeRegex: 'GET|HEAD' }, { name: ':authority', prefix: 'reviews' }, { name: ':scheme', exact: 'http' }], queryParameters: [{ name: 'q', exact: '' }, { name: 'p', safeRegex: '\\d+' }] }],
    ])
  })

  test('sourceLabels and sourceNamespace select the calling workload (as istiod does per proxy); a JWT-claim match drops its route', () => {
    const spec = { hosts: ['reviews'], http: [
      { match: [{ sourceLabels: { app: 'productpage' } }], route: [to('reviews', 'v2')] },
      { match: [{ sourceNamespace: 'other' }], route: [to('reviews', 'v3')] },
      { match: [{ headers: { '@request.auth.claims.group': { exact: 'admin' } } }], route: [to('reviews', 'v3')] },
      { route: [to('reviews', 'v1')] },
    ] }
    // For productpage the first rule matches every request: as in istiod, nothing after it is reached.
    const pp = translate([endpoints(), subsets, vs('reviews', spec)], { labels: { app: 'productpage', version: 'v1' } })
    assert.deepEqual(vhost(pp.config, REVIEWS).routes.map((r) => r.route?.subset), ['v2'])
    const other = translate([endpoints(), subsets, vs('reviews', spec)], { labels: { app: 'reviews' } })
    assert.deepEqual(vhost(other.config, REVIEWS).routes.map((r) => r.route?.subset), ['v1'])
    reported(other.unsupported, 'VirtualService reviews (doc 3).spec.http[1].match[0].sourceNamespace', /selects workloads of namespace other; this one is in default/)
    reported(other.unsupported, 'VirtualService reviews (doc 3).spec.http[2].match[0].headers["@request.auth.claims.group"]', /left out \(never widened\)/)
    reported(other.unsupported, 'VirtualService reviews (doc 3).spec.http[0].match[0].sourceLabels', /selects workloads labelled app=productpage; this one has app=reviews/)
  })

  test('rules are tried in order; nothing after a catch-all; a request no rule matches gets 404', async () => {
    const { config } = translate([{ clusters: [{ name: 'reviews', endpoints: [{ address: up.address }] }] }, vs('r', { hosts: ['reviews'], http: [
      { match: [{ uri: { prefix: '/api' } }], route: [to('reviews')] },
      { match: [{ uri: { prefix: '/' } }, { uri: { prefix: '/never' } }], directResponse: { status: 204 } },
      { route: [to('reviews')] },
    ] })])
    assert.deepEqual(vhost(config, REVIEWS).routes.map((r) => r.match), [{ prefix: '/api' }, { prefix: '/' }])
    const narrow = translate([{ clusters: [{ name: 'reviews', endpoints: [{ address: up.address }] }] }, vs('r', { hosts: ['reviews'], http: [{ match: [{ uri: { prefix: '/api' } }], route: [to('reviews')] }] })]).config
    const mesh = createMesh({ config: narrow })
    try {
      const ok = await mesh.fetch('http://reviews:9080/api/x')
      assert.equal(ok.status, 200)
      assert.equal(await ok.text(), 'up /api/x')
      const none = await mesh.fetch('http://reviews:9080/other')
      await none.arrayBuffer()
      assert.equal(none.status, 404)
      assert.equal(none.headers.get('x-sidecarless-response-flags'), 'NR')
    } finally {
      await mesh.close()
    }
  })

  test('forward: timeout (none unless set), rewrite, weights (0 left out), per-destination and rule headers', () => {
    const { config, unsupported } = translate([endpoints(), subsets, vs('r', { hosts: ['reviews'], http: [
      { match: [{ uri: { prefix: '/old' } }], rewrite: { uri: '/new', authority: 'reviews.internal' }, timeout: '1.5s', route: [to('reviews', 'v1')],
        headers: { request: { set: { 'x-a': '1', host: 'ignored-by-rewrite' }, add: { 'x-b': '2' }, remove: ['x-c', 'content-length'] }, response: { set: { 'x-d': '4' }, remove: ['server'] } } },
      { match: [{ uri: { regex: '/v[0-9]+/.*' } }], rewrite: { uri: '/flat' }, route: [to('reviews', 'v1')] },
      { match: [{ uri: { prefix: '/rx' } }], rewrite: { uriRegexRewrite: { match: '^/rx/(.*)$', rewrite: '/\\1' } }, route: [to('reviews', 'v1')] },
      { route: [{ ...to('reviews', 'v1'), weight: 75, headers: { response: { set: { 'x-v': '1' } } } }, { ...to('reviews', 'v2'), weight: 25 }, { ...to('reviews', 'v3'), weight: 0 }] },
    ] })])
    const [r0, r1, r2, r3] = vhost(config, REVIEWS).routes as [RouteConfig, RouteConfig, RouteConfig, RouteConfig]
    assert.equal(r0.route?.timeout, 1500)
    assert.equal(r0.route?.prefixRewrite, '/new')
    assert.equal(r0.route?.hostRewrite, 'reviews.internal')
    assert.deepEqual(r0.requestHeadersToAdd, [
      { header: { key: 'x-a', value: '1' }, appendAction: 'OVERWRITE_IF_EXISTS_OR_ADD' },
      { header: { key: 'x-b', value: '2' }, appendAction: 'APPEND_IF_EXISTS_OR_ADD' },
    ])
    assert.deepEqual(r0.requestHeadersToRemove, ['x-c'])
    assert.deepEqual(r0.responseHeadersToAdd, [{ header: { key: 'x-d', value: '4' }, appendAction: 'OVERWRITE_IF_EXISTS_OR_ADD' }])
    assert.deepEqual(r0.responseHeadersToRemove, ['server'])
    reported(unsupported, 'VirtualService r (doc 3).spec.http[0].headers.request.remove[1]', /cannot be removed/)
    // A regex-matched path is replaced whole (Envoy's prefix_rewrite on a regex route).
    assert.deepEqual(r1.route?.regexRewrite, { pattern: '^.*$', substitution: '/flat' })
    assert.equal(r1.route?.timeout, 0)
    assert.deepEqual(r2.route?.regexRewrite, { pattern: '^/rx/(.*)$', substitution: '/\\1' })
    assert.deepEqual(r3.route?.weightedClusters, [
      { cluster: 'reviews', subset: 'v1', weight: 75, responseHeadersToAdd: [{ header: { key: 'x-v', value: '1' }, appendAction: 'OVERWRITE_IF_EXISTS_OR_ADD' }] },
      { cluster: 'reviews', subset: 'v2', weight: 25 },
    ])
  })

  test('retries: Istio\'s default policy when unset, none with attempts 0, retryOn with status codes', () => {
    const { config, unsupported } = translate([endpoints(), vs('r', { hosts: ['reviews'], http: [
      { match: [{ uri: { prefix: '/a' } }], route: [to('reviews')] },
      { match: [{ uri: { prefix: '/b' } }], retries: { attempts: 0 }, route: [to('reviews')] },
      { match: [{ uri: { prefix: '/c' } }], retries: { attempts: 3, perTryTimeout: '2s', retryOn: 'gateway-error,connect-failure,503,reset-before-request,unavailable', backoff: '50ms' }, route: [to('reviews')] },
      { retries: { attempts: 4 }, route: [to('reviews')] },
    ] })])
    const [a, b, c, d] = vhost(config, REVIEWS).routes.map((r) => r.route?.retryPolicy)
    assert.deepEqual(a, { retryOn: ['connect-failure', 'refused-stream', 'retriable-status-codes'], numRetries: 2, retriableStatusCodes: [503], hostSelectionRetryMaxAttempts: 5 })
    assert.equal(b, undefined)
    assert.deepEqual(c, { retryOn: ['gateway-error', 'connect-failure', 'retriable-status-codes'], numRetries: 3, retriableStatusCodes: [503], hostSelectionRetryMaxAttempts: 5, perTryTimeout: 2000, retryBackOff: { baseInterval: 50 } })
    assert.deepEqual(d, { ...(a as object), numRetries: 4 })
    reported(unsupported, 'VirtualService r (doc 2).spec.http[2].retries.retryOn', /reset-before-request, unavailable: not retry conditions the mesh implements/)
  })

  test('redirect, direct response, fault (no request unless a percentage is given), mirror, CORS and delegate', () => {
    const { config, unsupported } = translate([endpoints(), subsets, vs('r', { hosts: ['reviews'], http: [
      { match: [{ uri: { exact: '/moved' } }], redirect: { uri: '/new', authority: 'new.example.com', redirectCode: 308, scheme: 'https', port: 443 } },
      { match: [{ uri: { exact: '/text' } }], directResponse: { status: 503, body: { string: 'unknown error' } } },
      { match: [{ uri: { exact: '/bytes' } }], directResponse: { status: 200, body: { bytes: Buffer.from('hello').toString('base64') } } },
      { match: [{ uri: { prefix: '/fault' } }], fault: { delay: { fixedDelay: '5s' }, abort: { httpStatus: 418, percentage: { value: 12.5 } } }, route: [to('reviews', 'v1')] },
      { match: [{ uri: { prefix: '/grpc' } }], fault: { abort: { grpcStatus: 'UNAVAILABLE' } }, route: [to('reviews', 'v1')] },
      { match: [{ uri: { prefix: '/mirror' } }], mirror: { host: 'reviews', subset: 'v3' }, mirrorPercentage: { value: 20 }, mirrors: [{ destination: { host: 'reviews', subset: 'v2' } }], route: [to('reviews', 'v1')] },
      { match: [{ uri: { prefix: '/cors' } }], corsPolicy: { allowOrigins: [{ exact: 'https://a' }] }, route: [to('reviews', 'v1')] },
      { match: [{ uri: { prefix: '/delegated' } }], delegate: { name: 'other' } },
      { route: [to('reviews', 'v1')] },
    ] })])
    const routes = vhost(config, REVIEWS).routes
    assert.deepEqual(routes[0]?.redirect, { pathRedirect: '/new', hostRedirect: 'new.example.com', schemeRedirect: 'https', responseCode: 308 })
    assert.deepEqual(routes[1]?.directResponse, { status: 503, body: 'unknown error' })
    assert.deepEqual(routes[2]?.directResponse, { status: 200, body: 'hello' })
    assert.deepEqual(routes[3]?.fault, { delay: { fixedDelay: 5000, percentage: 0 }, abort: { httpStatus: 418, percentage: 12.5 } })
    assert.equal(routes[4]?.fault, undefined)
    reported(unsupported, 'VirtualService r (doc 3).spec.http[4].fault.abort.grpcStatus', /HTTP status only/)
    assert.deepEqual(routes[5]?.route?.requestMirrorPolicies, [{ cluster: 'reviews', subset: 'v3', percentage: 20 }, { cluster: 'reviews', subset: 'v2' }])
    reported(unsupported, 'VirtualService r (doc 3).spec.http[6].corsPolicy', /CORS is not implemented/)
    reported(unsupported, 'VirtualService r (doc 3).spec.http[7].delegate', /delegate VirtualServices are not translated/)
    assert.deepEqual(routes.map((r) => r.match.prefix ?? r.match.path), ['/moved', '/text', '/bytes', '/fault', '/grpc', '/mirror', '/cors', '/'])
  })

  test('every untranslated field is listed by path, with the resource and document', () => {
    const { unsupported } = translate([endpoints(), vs('reviews', { hosts: ['reviews'], tcp: [{ route: [to('reviews')] }], http: [{ route: [to('reviews')], websocketUpgrade: true, match: [{ uri: { prefix: '/' }, statPrefix: 'x', colour: 'red' }] }] })])
    assert.deepEqual(unsupported.map((u) => u.path), [
      'VirtualService reviews (doc 2).spec.http[0].websocketUpgrade',
      'VirtualService reviews (doc 2).spec.tcp',
      'VirtualService reviews (doc 2).spec.http[0].match[0].colour',
      'VirtualService reviews (doc 2).spec.http[0].match[0].statPrefix',
    ].sort((a, b) => unsupported.findIndex((u) => u.path === a) - unsupported.findIndex((u) => u.path === b)))
    assert.equal(unsupported.length, 4)
  })

  test('a destination with no endpoints in the file: the route stays and answers 503 no healthy upstream', async () => {
    const { config, unsupported } = translate([vs('r', { hosts: ['reviews'], http: [{ route: [to('reviews')] }] })])
    reported(unsupported, 'VirtualService r (doc 1).spec.http[0].route[0].destination.host', /no endpoints for reviews\.default\.svc\.cluster\.local in this file/)
    assert.deepEqual(cluster(config, REVIEWS).endpoints, [])
    const mesh = createMesh({ config })
    try {
      const res = await mesh.fetch('http://reviews/')
      assert.equal(res.status, 503)
      assert.equal(await res.text(), 'no healthy upstream')
    } finally {
      await mesh.close()
    }
  })

  test('a subset no DestinationRule defines selects nothing: 503, reported', async () => {
    const { config, unsupported } = translate([{ clusters: [{ name: 'reviews', endpoints: [{ address: up.address, labels: { version: 'v1' } }] }] }, vs('r', { hosts: ['reviews'], http: [{ route: [to('reviews', 'v9')] }] })])
    reported(unsupported, 'VirtualService r (doc 2).spec.http[0].route[0].destination.subset', /subset "v9" of reviews\.default\.svc\.cluster\.local is not defined/)
    const mesh = createMesh({ config })
    try {
      const res = await mesh.fetch('http://reviews/')
      await res.arrayBuffer()
      assert.equal(res.status, 503)
    } finally {
      await mesh.close()
    }
  })

  test('two VirtualServices for one host: the oldest applies (creationTimestamp, else file order)', () => {
    const { config, unsupported } = translate([endpoints(), subsets,
      vs('newer', { hosts: ['reviews'], http: [{ route: [to('reviews', 'v2')] }] }, { creationTimestamp: '2024-05-02T00:00:00Z' }),
      vs('older', { hosts: ['reviews'], http: [{ route: [to('reviews', 'v1')] }] }, { creationTimestamp: '2024-05-01T00:00:00Z' }),
    ])
    assert.equal(vhost(config, REVIEWS).routes[0]?.route?.subset, 'v1')
    reported(unsupported, 'VirtualService newer (doc 3).spec.hosts[0]', /already has a VirtualService; istiod uses the oldest/)
  })
})

describe('DestinationRule', () => {
  test('load balancer, connection pool, outlier detection and TLS become the cluster\'s', () => {
    const identity = { identity: { certificate: '/c.pem', privateKey: '/k.pem', trustBundle: '/r.pem' } }
    const { config, unsupported } = translate([{ ...endpoints(), ...identity }, dr('reviews', {
      host: 'reviews.default.svc.cluster.local',
      trafficPolicy: {
        loadBalancer: { simple: 'ROUND_ROBIN', localityLbSetting: { enabled: true } },
        connectionPool: { tcp: { maxConnections: 100, connectTimeout: '30ms', tcpKeepalive: { time: '7200s' } }, http: { http1MaxPendingRequests: 10, http2MaxRequests: 1000, maxRetries: 3, idleTimeout: '2s', maxRequestsPerConnection: 10 } },
        outlierDetection: { consecutive5xxErrors: 7, consecutiveGatewayErrors: 3, interval: '5m', baseEjectionTime: '15m', maxEjectionPercent: 50 },
        tls: { mode: 'ISTIO_MUTUAL', subjectAltNames: ['spiffe://cluster.local/ns/default/sa/reviews', 'reviews.example.com'] },
      },
    })])
    assert.deepEqual({ ...cluster(config, 'reviews'), endpoints: undefined }, {
      name: 'reviews',
      endpoints: undefined,
      loadBalancer: 'round_robin',
      circuitBreakers: { maxPendingRequests: 10, maxRequests: 1000, maxRetries: 3, maxConnections: 100 },
      connectTimeout: 30,
      idleTimeout: 2000,
      outlierDetection: { enforcingSuccessRate: 0, consecutive5xx: 7, enforcingConsecutive5xx: 100, consecutiveGatewayFailure: 3, enforcingConsecutiveGatewayFailure: 100, interval: 300_000, baseEjectionTime: 900_000, maxEjectionPercent: 50 },
      commonLbConfig: { healthyPanicThreshold: 0 },
      tls: { mode: 'ISTIO_MUTUAL', verifyIdentities: ['spiffe://cluster.local/ns/default/sa/reviews'] },
    })
    const base = 'DestinationRule reviews (doc 2).spec.trafficPolicy'
    reported(unsupported, `${base}.loadBalancer.localityLbSetting`, /not translated/)
    reported(unsupported, `${base}.connectionPool.tcp.tcpKeepalive`, /not configurable/)
    reported(unsupported, `${base}.connectionPool.http.maxRequestsPerConnection`, /not translated/)
    reported(unsupported, `${base}.tls.subjectAltNames`, /only SPIFFE IDs/)
  })

  test('clusters istiod builds get its defaults: LEAST_REQUEST, 10s connect timeout, no circuit breaking', () => {
    const { config } = translate([se('api', { hosts: ['api.example.com'], ports: [{ number: 80, name: 'http', protocol: 'HTTP' }], resolution: 'DNS' })])
    assert.deepEqual(cluster(config, 'api.example.com'), {
      name: 'api.example.com',
      loadBalancer: 'least_request',
      connectTimeout: 10_000,
      circuitBreakers: { maxConnections: 1e9, maxPendingRequests: 1e9, maxRequests: 1e9, maxRetries: 1e9 },
      type: 'strict_dns',
      endpoints: [{ address: 'http://api.example.com:80' }],
    })
  })

  test('consistent hash: ring hash (or maglev) on the cluster, the hash policy on every route to it', () => {
    const { config } = translate([endpoints(), dr('reviews', { host: 'reviews', trafficPolicy: { loadBalancer: { consistentHash: { httpHeaderName: 'X-User' } } }, subsets: [{ name: 'v1', labels: { version: 'v1' }, trafficPolicy: { loadBalancer: { consistentHash: { httpQueryParameterName: 'u', maglev: { tableSize: 65537 } } } } }] }),
      vs('r', { hosts: ['reviews'], http: [{ match: [{ uri: { prefix: '/v1' } }], route: [to('reviews', 'v1')] }, { route: [to('reviews')] }] })])
    assert.deepEqual([cluster(config, 'reviews').loadBalancer, cluster(config, 'reviews').ringHash], ['ring_hash', { minimumRingSize: 1024 }])
    // A subset with a policy of its own gets a cluster of its own (as istiod builds one per subset).
    assert.deepEqual([cluster(config, 'reviews|v1').loadBalancer, cluster(config, 'reviews|v1').maglev], ['maglev', { tableSize: 65537 }])
    const routes = vhost(config, REVIEWS).routes
    assert.deepEqual(routes.map((r) => [r.route?.cluster, r.route?.subset, r.route?.hashPolicy]), [
      ['reviews|v1', 'v1', [{ queryParameter: { name: 'u' } }]],
      ['reviews', undefined, [{ header: { name: 'x-user' } }]],
    ])
  })

  test('port-level settings replace the whole policy for their port (unset parts take the defaults)', () => {
    const { config } = translate([
      se('g', { hosts: ['www.googleapis.com'], ports: [{ number: 80, name: 'http', protocol: 'HTTP' }, { number: 443, name: 'https', protocol: 'HTTPS' }], resolution: 'DNS' }),
      dr('g', { host: 'www.googleapis.com', trafficPolicy: { loadBalancer: { simple: 'ROUND_ROBIN' }, portLevelSettings: [{ port: { number: 443 }, tls: { mode: 'SIMPLE' } }] } }),
    ])
    assert.deepEqual([cluster(config, 'www.googleapis.com:80').loadBalancer, cluster(config, 'www.googleapis.com:80').tls], ['round_robin', undefined])
    assert.deepEqual([cluster(config, 'www.googleapis.com:443').loadBalancer, cluster(config, 'www.googleapis.com:443').tls], ['least_request', { mode: 'simple' }])
    assert.deepEqual(cluster(config, 'www.googleapis.com:443').endpoints, [{ address: 'https://www.googleapis.com:443' }])
  })

  test('which rule applies: the workload namespace first, then the service\'s, then the root; a workloadSelector must select this workload', () => {
    const docs = [endpoints(),
      dr('root', { host: 'reviews.default.svc.cluster.local', trafficPolicy: { loadBalancer: { simple: 'RANDOM' } } }, { namespace: 'istio-system' }),
      dr('mine', { host: 'reviews', trafficPolicy: { loadBalancer: { simple: 'ROUND_ROBIN' } } }),
      dr('selected', { host: 'reviews', workloadSelector: { matchLabels: { app: 'productpage' } }, trafficPolicy: { loadBalancer: { simple: 'LEAST_REQUEST' } } }),
    ]
    assert.equal(cluster(translate(docs, { labels: { app: 'productpage' } }).config, 'reviews').loadBalancer, 'least_request')
    const other = translate(docs, { labels: { app: 'ratings' } })
    assert.equal(cluster(other.config, 'reviews').loadBalancer, 'round_robin')
    reported(other.unsupported, 'DestinationRule selected (doc 4).spec.workloadSelector', /selects other workloads/)
    assert.equal(cluster(translate(docs.slice(0, 2)).config, 'reviews').loadBalancer, 'random')
  })
})

describe('ServiceEntry', () => {
  test('STATIC endpoints: addresses, named ports, labels and weights (scaled into 1–128)', () => {
    const { config, unsupported } = translate([se('db', {
      hosts: ['db.internal'], location: 'MESH_INTERNAL', resolution: 'STATIC',
      ports: [{ number: 8080, name: 'http', protocol: 'HTTP', targetPort: 9090 }, { number: 5432, name: 'pg', protocol: 'TCP' }],
      endpoints: [{ address: '10.0.0.1', ports: { http: 8081 }, labels: { version: 'v1' }, weight: 300 }, { address: '10.0.0.2', weight: 100, locality: 'us-east1' }, { address: '2001:db8::1' }],
    })])
    assert.deepEqual(cluster(config, 'db.internal').endpoints, [
      { address: 'http://10.0.0.1:8081', labels: { version: 'v1' }, weight: 128 },
      { address: 'http://10.0.0.2:9090', weight: 43 },
      { address: 'http://[2001:db8::1]:9090' },
    ])
    reported(unsupported, 'ServiceEntry db (doc 1).spec.ports[1]', /port 5432 is TCP; the mesh routes HTTP only/)
    reported(unsupported, 'ServiceEntry db (doc 1).spec.endpoints', /scaled by/)
    reported(unsupported, 'ServiceEntry db (doc 1).spec.endpoints[1].locality', /no networks or localities/)
  })

  test('DNS, DNS_ROUND_ROBIN and NONE', () => {
    const { config } = translate([
      se('a', { hosts: ['a.example.com'], ports: [{ number: 443, name: 'tls', protocol: 'TLS' }], resolution: 'DNS_ROUND_ROBIN' }),
      se('b', { hosts: ['b.example.com'], ports: [{ number: 80, name: 'http', protocol: 'HTTP' }], resolution: 'DNS', endpoints: [{ address: 'b1.example.com' }, { address: 'b2.example.com' }] }),
      se('c', { hosts: ['c.example.com'], ports: [{ number: 80, name: 'http', protocol: 'HTTP' }] }),
    ])
    assert.deepEqual([cluster(config, 'a.example.com').type, cluster(config, 'a.example.com').endpoints], ['logical_dns', [{ address: 'https://a.example.com:443' }]])
    assert.deepEqual([cluster(config, 'b.example.com').type, cluster(config, 'b.example.com').endpoints], ['strict_dns', [{ address: 'http://b1.example.com:80' }, { address: 'http://b2.example.com:80' }]])
    assert.deepEqual([cluster(config, 'c.example.com').type, cluster(config, 'c.example.com').endpoints], [undefined, [{ address: 'http://c.example.com:80' }]])
    assert.deepEqual(vhost(config, 'c.example.com').domains, ['c.example.com', 'c.example.com:80'])
  })

  test('a ServiceEntry\'s endpoints serve real requests, routed by a VirtualService', async () => {
    const config = translate([
      se('local', { hosts: ['svc.local.test'], ports: [{ number: up.port, name: 'http', protocol: 'HTTP' }], resolution: 'STATIC', endpoints: [{ address: '127.0.0.1' }] }),
      vs('local', { hosts: ['svc.local.test'], http: [{ match: [{ uri: { prefix: '/a' } }], rewrite: { uri: '/b' }, route: [to('svc.local.test')] }] }),
    ]).config
    const mesh = createMesh({ config })
    try {
      const res = await mesh.fetch(`http://svc.local.test:${up.port}/a/x`)
      assert.equal(await res.text(), 'up /b/x')
    } finally {
      await mesh.close()
    }
  })
})

describe('security policies', () => {
  const identity = { identity: { certificate: '/c.pem', privateKey: '/k.pem', trustBundle: '/r.pem' } }

  test('PeerAuthentication: mesh, namespace and workload policies compose; UNSET inherits; port-level modes', () => {
    const docs = [identity,
      pa('mesh', { mtls: { mode: 'STRICT' } }, { namespace: 'istio-system' }),
      pa('ns', { mtls: { mode: 'UNSET' } }),
      pa('workload', { selector: { matchLabels: { app: 'reviews' } }, mtls: { mode: 'PERMISSIVE' }, portLevelMtls: { 8080: { mode: 'DISABLE' }, 9090: { mode: 'UNSET' } } }),
      pa('root-selector', { selector: { matchLabels: { app: 'reviews' } }, mtls: { mode: 'DISABLE' } }, { namespace: 'istio-system' }),
      pa('elsewhere', { mtls: { mode: 'DISABLE' } }, { namespace: 'other' }),
    ]
    const reviews = fromIstio(docs, { labels: { app: 'reviews' } })
    assert.deepEqual(reviews.config.listener?.mtls, { mode: 'PERMISSIVE', portLevelMtls: { 8080: { mode: 'DISABLE' }, 9090: { mode: 'PERMISSIVE' } } })
    reported(reviews.unsupported, 'PeerAuthentication istio-system/root-selector (doc 5).spec.selector', /ignored \(as by istiod\)/)
    reported(reviews.unsupported, 'PeerAuthentication other/elsewhere (doc 6)', /applies to namespace other/)
    assert.deepEqual(fromIstio(docs, { labels: { app: 'ratings' } }).config.listener?.mtls, { mode: 'STRICT' })
  })

  test('PERMISSIVE without an identity is reported (plain HTTP); STRICT without one is refused at the PeerAuthentication\'s line', () => {
    const permissive = fromIstio([pa('default', { mtls: { mode: 'PERMISSIVE' } })])
    assert.equal(permissive.config.listener, undefined)
    reported(permissive.unsupported, 'PeerAuthentication default (doc 1).spec.mtls', /without an identity in the file: the workload serves plain HTTP/)
    const file = join(dir, 'strict.yaml')
    writeFileSync(file, ['clusters: []', stringify(pa('default', { mtls: { mode: 'STRICT' } }))].join('\n---\n'))
    assert.throws(() => loadConfig(file), (err: unknown) => {
      assert.ok(err instanceof ConfigError)
      assert.ok(err.issues.some((i) => i.path === 'identity' && i.code === 'REQUIRED' && /listener\.mtls serves the workload identity/.test(i.message)), err.message)
      return true
    })
  })

  test('RequestAuthentication: the JWT rules of every policy that applies', () => {
    const { config, unsupported } = fromIstio([
      ra('all', { jwtRules: [{ issuer: 'https://a', jwksUri: 'https://a/jwks', audiences: ['x'], fromHeaders: [{ name: 'x-jwt', prefix: 'Bearer ' }], fromParams: ['t'], forwardOriginalToken: true, outputClaimToHeaders: [{ header: 'x-sub', claim: 'sub' }], outputPayloadToHeader: 'x-payload', timeout: '3s', fromCookies: ['session'] }] }, { namespace: 'istio-system' }),
      ra('mine', { selector: { matchLabels: { app: 'reviews' } }, jwtRules: [{ issuer: 'https://b', jwks: '{"keys":[]}' }, { issuer: 'https://oidc' }] }),
      ra('gateway', { targetRefs: [{ kind: 'Gateway', name: 'gw' }], jwtRules: [{ issuer: 'https://c', jwksUri: 'https://c/jwks' }] }),
    ], { labels: { app: 'reviews' } })
    assert.deepEqual(config.listener?.requestAuthentication?.jwtRules, [
      { issuer: 'https://a', jwksUri: 'https://a/jwks', audiences: ['x'], fromHeaders: [{ name: 'x-jwt', prefix: 'Bearer ' }], fromParams: ['t'], outputPayloadToHeader: 'x-payload', forwardOriginalToken: true, outputClaimToHeaders: [{ header: 'x-sub', claim: 'sub' }], jwksTimeout: 3000 },
      { issuer: 'https://b', jwks: '{"keys":[]}' },
    ])
    reported(unsupported, 'RequestAuthentication istio-system/all (doc 1).spec.jwtRules[0].fromCookies', /treated as carrying no token/)
    reported(unsupported, 'RequestAuthentication mine (doc 2).spec.jwtRules[1]', /tokens of this issuer are refused \(401\)/)
    reported(unsupported, 'RequestAuthentication gateway (doc 3).spec.targetRefs', /does not apply to a workload/)
  })

  test('AuthorizationPolicy: never wider — an ALLOW rule with what cannot be honoured is dropped, a DENY rule loses the field, CUSTOM denies', () => {
    const { config, unsupported } = fromIstio([
      ap('allow', { action: 'ALLOW', rules: [
        { from: [{ source: { serviceAccounts: ['default/sleep'], notTrustDomains: ['evil.org'] } }], to: [{ operation: { methods: ['GET'], paths: ['/api/*'] } }] },
        { when: [{ key: 'experimental.envoy.filters.foo', values: ['x'] }] },
        { from: [{ source: { principals: ['a'], serviceAccounts: ['ns/b'] } }] },
      ] }),
      ap('deny', { action: 'DENY', rules: [{ to: [{ operation: { paths: ['/admin'] } }], when: [{ key: 'experimental.envoy.filters.foo', values: ['x'] }, { key: 'request.headers[x-debug]', values: ['1'] }] }] }),
      ap('ext', { action: 'CUSTOM', provider: { name: 'opa' }, rules: [{ to: [{ operation: { paths: ['/secure/*'] } }] }] }),
      ap('other', { selector: { matchLabels: { app: 'nope' } }, rules: [{}] }),
    ], { labels: { app: 'reviews' } })
    assert.deepEqual(config.listener?.authorization, [
      { name: 'default/allow', action: 'ALLOW', rules: [{ from: [{ source: { principals: ['*/ns/default/sa/sleep'], notPrincipals: ['evil.org/*'] } }], to: [{ operation: { methods: ['GET'], paths: ['/api/*'] } }] }] },
      { name: 'default/deny', action: 'DENY', rules: [{ to: [{ operation: { paths: ['/admin'] } }], when: [{ key: 'request.headers[x-debug]', values: ['1'] }] }] },
      { name: 'default/ext', action: 'DENY', rules: [{ to: [{ operation: { paths: ['/secure/*'] } }] }] },
    ])
    reported(unsupported, 'AuthorizationPolicy allow (doc 1).spec.rules[1].when[0]', /the ALLOW rule is left out/)
    reported(unsupported, 'AuthorizationPolicy allow (doc 1).spec.rules[2].from[0].source', /together cannot be expressed/)
    reported(unsupported, 'AuthorizationPolicy deny (doc 2).spec.rules[0].when[0]', /the DENY rule is kept without it \(it matches more requests, never fewer\)/)
    reported(unsupported, 'AuthorizationPolicy ext (doc 3).spec.action', /external authorizer "opa".*denied instead/)
    reported(unsupported, 'AuthorizationPolicy other (doc 4).spec.selector', /selects other workloads/)
  })

  test('a translated AuthorizationPolicy refuses real requests on the inbound side', async () => {
    const mesh = createMesh({ service: 'reviews', labels: { app: 'reviews' }, config: [ap('deny-admin', { action: 'DENY', rules: [{ to: [{ operation: { paths: ['/admin*'] } }] }] })] })
    const server = mesh.createServer((_req: http.IncomingMessage, res: http.ServerResponse) => res.end('ok'))
    server.listen(0, '127.0.0.1')
    await once(server, 'listening')
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
    try {
      const denied = await fetch(`${base}/admin/users`)
      assert.equal([denied.status, await denied.text()].join(' '), '403 RBAC: access denied')
      const ok = await fetch(`${base}/public`)
      assert.equal([ok.status, await ok.text()].join(' '), '200 ok')
    } finally {
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
      await mesh.close()
    }
  })
})

describe('documents and files', () => {
  test('a kind: List, our own documents merged, and a section set twice refused', () => {
    const list = { apiVersion: 'v1', kind: 'List', items: [vs('r', { hosts: ['reviews'], http: [{ route: [to('reviews')] }] }), { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'reviews' } }] }
    const { config, unsupported } = translate([endpoints(), { tracing: { sampling: 5 } }, list])
    assert.equal(config.tracing?.sampling, 5)
    assert.equal(vhost(config, REVIEWS).routes.length, 1)
    reported(unsupported, 'Deployment reviews (doc 3, items[1])', /a Kubernetes Deployment \(apps\/v1\), not mesh config; ignored/)
    const file = join(dir, 'twice.yaml')
    writeFileSync(file, 'tracing: { sampling: 1 }\n---\ntracing: { sampling: 2 }\n---\n' + stringify(vs('r', { hosts: ['reviews'], http: [{ route: [to('reviews')] }] })))
    assert.throws(() => loadConfig(file), (err: unknown) => err instanceof ConfigError && /tracing is set by doc 1 and doc 2/.test(err.message) && /twice\.yaml:1:1: tracing/.test(err.message))
  })

  test('a file of manifests none of which is mesh config says what it holds', () => {
    const file = join(dir, 'deploy.yaml')
    writeFileSync(file, stringify({ apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'reviews' }, spec: {} }))
    assert.throws(() => createMesh({ config: file }), (err: unknown) => isMeshError(err, 'SIDECARLESS_ERR_CONFIG_LOAD') && /holds no mesh config/.test(err.message) && /Deployment reviews \(doc 1\)/.test(err.message))
  })

  test('a problem in a translated manifest is reported at the manifest\'s line', () => {
    const file = join(dir, 'weights.yaml')
    writeFileSync(file, [stringify(endpoints()), stringify(subsets), stringify(vs('reviews', { hosts: ['reviews'], http: [{ route: [{ ...to('reviews', 'v1'), weight: 0 }, { ...to('reviews', 'v2'), weight: 0 }] }] }))].join('---\n'))
    assert.throws(() => createMesh({ config: file }), (err: unknown) => {
      assert.ok(err instanceof ConfigError, String(err))
      assert.equal(err.issues[0]?.code, 'INVALID_WEIGHTS')
      // The http rule of the VirtualService, in the third document.
      assert.deepEqual(err.issues[0]?.location, { file, line: 39, column: 7 })
      return true
    })
  })

  test('the mesh reports what was left out: mesh.unsupported and one SIDECARLESS_ISTIO_UNSUPPORTED warning', async () => {
    const warnings: (Error & { code?: string })[] = []
    const listen = (w: Error & { code?: string }): void => {
      warnings.push(w)
    }
    process.on('warning', listen)
    try {
      const mesh = createMesh({ config: [endpoints(), vs('reviews', { hosts: ['reviews'], http: [{ corsPolicy: { allowOrigins: [{ exact: 'https://a' }] }, route: [to('reviews')] }] })] })
      await new Promise((r) => setImmediate(r))
      assert.deepEqual(mesh.unsupported.map((u) => u.path), ['VirtualService reviews (doc 2).spec.http[0].corsPolicy'])
      await mesh.close()
    } finally {
      process.off('warning', listen)
    }
    const w = warnings.filter((x) => x.code === 'SIDECARLESS_ISTIO_UNSUPPORTED')
    assert.equal(w.length, 1)
    assert.match(w[0]!.message, /^the Istio manifests have 1 field\(s\) the mesh does not translate; they are ignored:\n {2}VirtualService reviews \(doc 2\)\.spec\.http\[0\]\.corsPolicy: CORS/)
  })

  test('hostile input does not throw, and a loader refuses it', () => {
    const evil = { apiVersion: 'networking.istio.io/v1', kind: 'VirtualService', metadata: { name: 'x' }, get spec(): never { throw new Error('boom') } }
    const r = fromIstio([evil])
    assert.ok(r.unsupported.some((u) => /could not be read: boom/.test(u.message)))
    assert.throws(() => loadConfig([evil]), (err: unknown) => err instanceof ConfigError && /boom/.test(err.message))
    // Shared references multiply the work: 50 documents × 100,000 rules is stopped by the budget.
    const rule = { route: [to('reviews')] }
    const big = vs('big', { hosts: ['reviews'], http: new Array<unknown>(100_000).fill(rule) })
    const huge = fromIstio(new Array<unknown>(50).fill(big))
    assert.ok(huge.unsupported.some((u) => /too large: the import stopped after 2000000 items/.test(u.message)), JSON.stringify(huge.unsupported.slice(-2)))
    assert.deepEqual(huge.config, {})
  })
})
