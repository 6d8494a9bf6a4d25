/**
 * Synthetic mesh configs for the benchmarks: N clusters (two endpoints each, subsets v1/v2)
 * and V virtual hosts of R routes each. Every virtual host repeats nine route shapes
 * (exact path, header-gated prefixes, full regex, prefix with rewrite, path-separated
 * prefix with methods, header-prefix matcher, exact path with method, plain prefix) under
 * /k1, /k2, ... namespaces, and ends with a 90/10 weighted catch-all (even vhosts) or a
 * /fallback/ prefix (odd vhosts, so some requests get no route). Route names are
 * `vh<v>-r<j>`; `requestFor` builds a request that the first matching route is route j.
 */

export const TEMPLATES = 9

/** The path namespace of route j: routes repeat the nine shapes under /k1, /k2, ... */
export function ns(j) {
  const k = Math.floor(j / TEMPLATES)
  return k === 0 ? '' : `/k${k}`
}

/** Route j of vhost vh; `cluster(vh, j)` names the cluster it sends to. */
export function routeFor(vh, j, perVhost, cluster, weights = [90, 10]) {
  const name = `vh${vh}-r${j}`
  const c = cluster(vh, j)
  const to = { cluster: c }
  if (j === perVhost - 1) {
    return vh % 2 === 0
      ? { name, match: { prefix: '/' }, route: { weightedClusters: [{ cluster: c, subset: 'v1', weight: weights[0] }, { cluster: c, subset: 'v2', weight: weights[1] }], timeout: '3s' } }
      : { name, match: { prefix: '/fallback/' }, route: to }
  }
  const p = ns(j)
  switch (j % TEMPLATES) {
    case 0: return { name, match: { path: `${p}/health` }, directResponse: { status: 200, body: 'ok' } }
    case 1: return { name, match: { prefix: `${p}/api/v2/`, headers: [{ name: 'x-canary', exact: 'true' }] }, route: { cluster: c, subset: 'v2' } }
    case 2: return { name, match: { prefix: `${p}/api/`, headers: [{ name: 'end-user', exact: 'jason' }] }, route: { cluster: c, subset: 'v2' } }
    case 3: return { name, match: { safeRegex: `${p}/items/[0-9]+` }, route: to }
    case 4: return { name, match: { prefix: `${p}/static/` }, route: { ...to, prefixRewrite: '/assets/' } }
    case 5: return { name, match: { pathSeparatedPrefix: `${p}/admin`, methods: ['GET', 'HEAD'] }, route: to }
    case 6: return { name, match: { prefix: `${p}/users/`, headers: [{ name: 'x-tenant', prefix: 't-' }] }, route: to, requestHeadersToAdd: [{ header: { key: 'x-routed-by', value: 'mesh' } }] }
    case 7: return { name, match: { path: `${p}/login`, methods: ['POST'] }, route: to }
    case 8: return { name, match: { prefix: `${p}/reviews/` }, route: { cluster: c, subset: 'v1' } }
  }
  throw new Error('unreachable')
}

/**
 * A whole config. Options: clusters (count), vhosts, perVhost, cluster(vh, j) → cluster
 * name (default: spread over the clusters), clusterExtra (fields merged into every
 * cluster), weights of the catch-all split.
 */
export function buildConfig({ clusters: n, vhosts, perVhost, cluster, clusterExtra = {}, weights }) {
  const clusterOf = cluster ?? ((vh, j) => `c${(vh + j) % n}`)
  const clusters = []
  for (let i = 0; i < n; i++) {
    const a = `10.${(i >> 8) & 255}.${i & 255}`
    clusters.push({
      name: `c${i}`,
      endpoints: [
        { address: `http://${a}.1:9080`, labels: { version: 'v1' } },
        { address: `http://${a}.2:9080`, labels: { version: 'v2' }, weight: 2 },
      ],
      subsets: [{ name: 'v1', labels: { version: 'v1' } }, { name: 'v2', labels: { version: 'v2' } }],
      loadBalancer: i % 4 === 3 ? 'least_request' : 'round_robin',
      connectTimeout: '250ms',
      ...clusterExtra,
    })
  }
  const virtualHosts = []
  for (let v = 0; v < vhosts; v++) {
    const routes = []
    for (let j = 0; j < perVhost; j++) routes.push(routeFor(v, j, perVhost, clusterOf, weights))
    virtualHosts.push({ name: `vh${v}`, domains: [`svc-${v}`, `svc-${v}.ns.svc.cluster.local`], routes })
  }
  return { clusters, virtualHosts }
}

const BASE_HEADERS = Object.freeze({ 'user-agent': 'bench/1', accept: 'application/json', 'x-request-id': '7f3c2a' })
const H = {
  base: BASE_HEADERS,
  canary: { ...BASE_HEADERS, 'x-canary': 'true' },
  jason: { ...BASE_HEADERS, 'end-user': 'jason' },
  tenant: { ...BASE_HEADERS, 'x-tenant': 't-42' },
}
export { H as HEADERS }

/** [method, path, headers] of a request whose first matching route is route j of vhost vh. */
export function requestFor(j, perVhost, vh) {
  if (j === perVhost - 1) return vh % 2 === 0 ? ['GET', '/', H.base] : ['GET', '/fallback/x?y=1', H.base]
  const p = ns(j)
  switch (j % TEMPLATES) {
    case 0: return ['GET', `${p}/health`, H.base]
    case 1: return ['GET', `${p}/api/v2/products?id=7`, H.canary]
    case 2: return ['GET', `${p}/api/ratings/1`, H.jason]
    case 3: return ['GET', `${p}/items/12345`, H.base]
    case 4: return ['GET', `${p}/static/app.js?v=3`, H.base]
    case 5: return ['GET', `${p}/admin/users`, H.base]
    case 6: return ['GET', `${p}/users/42`, H.tenant]
    case 7: return ['POST', `${p}/login`, H.base]
    case 8: return ['GET', `${p}/reviews/1`, H.base]
  }
  throw new Error('unreachable')
}
