/**
 * The arms of bench/side-by-side.mjs and the processes (roles) they run on. An arm is one
 * way for the calling service to reach the called one; it names its client, its server and
 * its proxies, how the client addresses the server, and what the server must see (a
 * traceparent from a meshed client, the client's SPIFFE ID over mTLS) for the arm to count.
 *
 * Processes are shared between arms that run identical code in them (the plain server
 * serves `direct`, `mesh-client` and both sidecar pairs); only one arm is loaded at a time,
 * so an arm's CPU is the CPU of its own processes over its own slices. A process imports
 * the mesh only if one of its roles uses it.
 */

export const SERVICE_PATH = '/reviews/1'
export const CLIENT_ID = 'spiffe://cluster.local/ns/default/sa/productpage'
export const SERVER_ID = 'spiffe://cluster.local/ns/default/sa/reviews'

/**
 * Roles: `client` and `server` roles are Node processes (lib/sbs-client.mjs,
 * lib/sbs-server.mjs) of a kind; `sidecar` roles are HAProxy (lib/sbs-haproxy.mjs) in front
 * of `to` (another role's port).
 */
export const ROLES = {
  'plain-client': { type: 'client', kind: 'plain' },
  'http2-client': { type: 'client', kind: 'http2' },
  'mesh-client': { type: 'client', kind: 'mesh' },
  'plain-server': { type: 'server', kind: 'plain' },
  'mesh-server': { type: 'server', kind: 'mesh' },
  'strict-server': { type: 'server', kind: 'mesh-strict' },
  'https-server': { type: 'server', kind: 'https-mtls' },
  'h2-server': { type: 'server', kind: 'h2-mtls' },
  'sidecar-in': { type: 'sidecar', side: 'inbound', to: 'plain-server', tls: false },
  'sidecar-out': { type: 'sidecar', side: 'outbound', to: 'sidecar-in', tls: false },
  'sidecar-mtls-in': { type: 'sidecar', side: 'inbound', to: 'plain-server', tls: true },
  'sidecar-mtls-out': { type: 'sidecar', side: 'outbound', to: 'sidecar-mtls-in', tls: true },
}

/** The route policy of every meshed call, as issue 15 measures it. */
export const ARMED_ROUTE = Object.freeze({ timeout: '3s', retryPolicy: { retryOn: '5xx,reset,connect-failure', numRetries: 2 } })

/**
 * `title` names the arm in tables, `label` (shorter) in the chart; with `--profile`, the
 * arm's profiles are compared with those of `profileBaseline` when it is profiled too.
 * `target(ports, creds)`: what the client calls — `{ url }` (+ `tls` connect options for a
 * plain TLS client), or `{ url, cluster }` for the mesh client, whose config gets
 * `meshCluster(ports)` (a cluster and a virtual host of that name).
 * `expect`: what the server's first request of the arm must show (`traceparent`, `peer`: the
 * client's SPIFFE ID, `xfcc`: the inbound sidecar's x-forwarded-client-cert).
 * `unsupported`: why the arm cannot run yet (it is then skipped with that message).
 */
export const ARMS = [
  {
    name: 'direct',
    group: 'plain',
    title: 'direct (undici Agent → node:http)',
    label: 'direct (undici → node:http)',
    client: 'plain-client',
    server: 'plain-server',
    proxies: [],
    target: (p) => ({ url: `http://127.0.0.1:${p['plain-server']}${SERVICE_PATH}` }),
    expect: { traceparent: false },
  },
  {
    name: 'sidecars',
    group: 'plain',
    title: 'two sidecar proxies (HAProxy out → HAProxy in)',
    label: 'HAProxy sidecar pair',
    profileBaseline: 'direct',
    client: 'plain-client',
    server: 'plain-server',
    proxies: ['sidecar-out', 'sidecar-in'],
    target: (p) => ({ url: `http://127.0.0.1:${p['sidecar-out']}${SERVICE_PATH}` }),
    expect: { traceparent: false },
  },
  {
    name: 'mesh-both',
    group: 'plain',
    title: 'mesh on both sides',
    label: 'mesh on both sides',
    profileBaseline: 'direct',
    client: 'mesh-client',
    server: 'mesh-server',
    proxies: [],
    target: () => ({ url: `http://reviews${SERVICE_PATH}`, cluster: 'reviews' }),
    meshCluster: (p) => ({ name: 'reviews', endpoints: [{ address: `http://127.0.0.1:${p['mesh-server']}` }], outlierDetection: {} }),
    expect: { traceparent: true },
  },
  {
    name: 'mesh-client',
    group: 'plain',
    title: 'mesh on the client only',
    label: 'mesh on the client only',
    profileBaseline: 'direct',
    client: 'mesh-client',
    server: 'plain-server',
    proxies: [],
    target: () => ({ url: `http://reviews-plain${SERVICE_PATH}`, cluster: 'reviews-plain' }),
    meshCluster: (p) => ({ name: 'reviews-plain', endpoints: [{ address: `http://127.0.0.1:${p['plain-server']}` }], outlierDetection: {} }),
    expect: { traceparent: true },
  },
  {
    name: 'mesh-server',
    group: 'plain',
    title: 'mesh on the server only',
    label: 'mesh on the server only',
    profileBaseline: 'direct',
    client: 'plain-client',
    server: 'mesh-server',
    proxies: [],
    target: (p) => ({ url: `http://127.0.0.1:${p['mesh-server']}${SERVICE_PATH}` }),
    expect: { traceparent: false },
  },
  {
    name: 'node-mtls',
    group: 'mtls',
    title: 'plain Node mTLS (undici Agent + client cert → https.createServer)',
    label: 'mTLS: plain Node (undici → https)',
    profileBaseline: 'direct',
    client: 'plain-client',
    server: 'https-server',
    proxies: [],
    target: (p, creds) => ({
      url: `https://127.0.0.1:${p['https-server']}${SERVICE_PATH}`,
      tls: { ca: creds.client.trustBundle, cert: creds.client.certificate, key: creds.client.privateKey, servername: 'reviews' },
    }),
    expect: { traceparent: false, peer: CLIENT_ID },
  },
  {
    name: 'sidecars-mtls',
    group: 'mtls',
    title: 'HAProxy pair, mTLS between them',
    label: 'mTLS: HAProxy sidecar pair',
    profileBaseline: 'node-mtls',
    client: 'plain-client',
    server: 'plain-server',
    proxies: ['sidecar-mtls-out', 'sidecar-mtls-in'],
    target: (p) => ({ url: `http://127.0.0.1:${p['sidecar-mtls-out']}${SERVICE_PATH}` }),
    expect: { traceparent: false, xfcc: 'Used=1;Verify=0' },
  },
  {
    name: 'mesh-mtls',
    group: 'mtls',
    title: 'mesh both sides, STRICT mTLS',
    label: 'mTLS: mesh both sides, STRICT',
    profileBaseline: 'node-mtls',
    client: 'mesh-client',
    server: 'strict-server',
    proxies: [],
    target: () => ({ url: `http://reviews-mtls${SERVICE_PATH}`, cluster: 'reviews-mtls' }),
    meshCluster: (p) => ({
      name: 'reviews-mtls',
      endpoints: [{ address: `http://127.0.0.1:${p['strict-server']}` }],
      outlierDetection: {},
      tls: { mode: 'ISTIO_MUTUAL', verifyIdentities: [SERVER_ID] },
    }),
    expect: { traceparent: true, peer: CLIENT_ID },
  },
  {
    // Diagnostic (not run by default): which side of mesh-mtls costs what.
    name: 'mesh-client-mtls',
    group: 'mtls',
    optional: true,
    title: 'mesh client (ISTIO_MUTUAL) → https.createServer with client certs',
    label: 'mTLS: mesh on the client only',
    profileBaseline: 'node-mtls',
    client: 'mesh-client',
    server: 'https-server',
    proxies: [],
    target: () => ({ url: `http://reviews-https${SERVICE_PATH}`, cluster: 'reviews-https' }),
    meshCluster: (p) => ({
      name: 'reviews-https',
      endpoints: [{ address: `http://127.0.0.1:${p['https-server']}` }],
      outlierDetection: {},
      tls: { mode: 'ISTIO_MUTUAL', verifyIdentities: [SERVER_ID] },
    }),
    expect: { traceparent: true, peer: CLIENT_ID },
  },
  {
    // Diagnostic (not run by default): which side of mesh-mtls costs what.
    name: 'mesh-server-mtls',
    group: 'mtls',
    optional: true,
    title: 'undici Agent + client cert → mesh server, STRICT mTLS',
    label: 'mTLS: mesh on the server only',
    profileBaseline: 'node-mtls',
    client: 'plain-client',
    server: 'strict-server',
    proxies: [],
    target: (p, creds) => ({
      url: `https://127.0.0.1:${p['strict-server']}${SERVICE_PATH}`,
      tls: { ca: creds.client.trustBundle, cert: creds.client.certificate, key: creds.client.privateKey, servername: 'reviews' },
    }),
    expect: { traceparent: false, peer: CLIENT_ID },
  },
  {
    // HTTP/2 with Node's own parts, as the mesh would use them between meshes (issue 17):
    // undici's `allowH2` outbound, a node:http2 compat server inbound. Not run by default.
    name: 'node-h2-mtls',
    group: 'mtls',
    optional: true,
    title: 'HTTP/2 mTLS: undici Agent allowH2 + client cert → http2.createSecureServer (compat API)',
    label: 'mTLS HTTP/2: undici allowH2 → node:http2',
    profileBaseline: 'node-mtls',
    client: 'plain-client',
    server: 'h2-server',
    proxies: [],
    target: (p, creds) => ({
      url: `https://127.0.0.1:${p['h2-server']}${SERVICE_PATH}`,
      tls: { ca: creds.client.trustBundle, cert: creds.client.certificate, key: creds.client.privateKey, servername: 'reviews' },
      allowH2: true,
    }),
    expect: { traceparent: false, peer: CLIENT_ID },
  },
  {
    // The best case for HTTP/2: node:http2's own client (requests coalesced into few writes on
    // one session), the same compat server. Not run by default.
    name: 'http2-mtls',
    group: 'mtls',
    optional: true,
    title: 'HTTP/2 mTLS: node:http2 client session + client cert → http2.createSecureServer (compat API)',
    label: 'mTLS HTTP/2: node:http2 both sides',
    profileBaseline: 'node-mtls',
    client: 'http2-client',
    server: 'h2-server',
    proxies: [],
    target: (p, creds) => ({
      url: `https://127.0.0.1:${p['h2-server']}${SERVICE_PATH}`,
      tls: { ca: creds.client.trustBundle, cert: creds.client.certificate, key: creds.client.privateKey, servername: 'reviews' },
    }),
    expect: { traceparent: false, peer: CLIENT_ID },
  },
  {
    // HTTP/2 between meshes was measured (node-h2-mtls, http2-mtls above) and not built:
    // through undici's allowH2 it costs about 3× the CPU of HTTP/1.1 keep-alive; node:http2's
    // own client costs less, but the mesh has no node:http2 transport outbound and refuses
    // http2 servers inbound (docs/security.md, "What mTLS costs"). The arm is the hook.
    name: 'mesh-h2-mtls',
    group: 'mtls',
    optional: true,
    title: 'mesh both sides, STRICT mTLS over HTTP/2',
    label: 'mTLS: mesh both sides, HTTP/2',
    profileBaseline: 'mesh-mtls',
    client: 'mesh-client',
    server: 'strict-server',
    proxies: [],
    unsupported: 'the mesh speaks HTTP/1.1 between meshes: HTTP/2 through undici (allowH2) measured about 3x the CPU per request of HTTP/1.1 keep-alive; node:http2 both sides measured less, but the mesh has no node:http2 transport (arms node-h2-mtls and http2-mtls; docs/security.md)',
  },
]

/** The arms run when none are named: every arm but the optional ones. */
export const DEFAULT_ARMS = ARMS.filter((a) => !a.optional).map((a) => a.name)

export function armNamed(name) {
  return ARMS.find((a) => a.name === name)
}

/** The roles an arm runs on, client first. */
export function rolesOf(arm) {
  return [arm.client, arm.server, ...arm.proxies]
}
