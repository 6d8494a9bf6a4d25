/**
 * Routes of one config that go to the same cluster share the compiled parts they have
 * alike (`SharedParts` in src/snapshot/build.ts: a target per cluster and subset, the action
 * of a plain route, a retry policy per distinct policy). What each route has of its own must
 * stay its own: its name, timeout, host and path rewrites, header changes, subset, limits and
 * retries, before and after a config update that changes one of them.
 */
import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import { request } from 'undici'
import { createMesh, type Mesh, type MeshConfig, type RouteDecision } from '../src/index.js'
import { startUpstream, type Upstream } from './helpers/upstream.js'

let backend: Upstream
let mesh: Mesh
/** Requests the backend saw, per path: the first of each path gets a 503. */
const hits = new Map<string, number>()

function config(loginTimeout: string): MeshConfig {
  const retryPolicy = { retryOn: '5xx', numRetries: 2, retryBackOff: { baseInterval: '1ms' } }
  return {
    clusters: [{
      name: 'svc',
      endpoints: [{ address: backend.address, labels: { version: 'v1' } }],
      subsets: [{ name: 'v1', labels: { version: 'v1' } }],
    }],
    virtualHosts: [{
      name: 'svc',
      domains: ['svc'],
      routes: [
        { name: 'plain-a', match: { prefix: '/a/' }, route: { cluster: 'svc' } },
        { name: 'plain-b', match: { prefix: '/b/' }, route: { cluster: 'svc' } },
        { name: 'login', match: { prefix: '/login' }, route: { cluster: 'svc', timeout: loginTimeout } },
        { name: 'host', match: { prefix: '/host/' }, route: { cluster: 'svc', hostRewrite: 'other.example' } },
        { name: 'rewrite', match: { prefix: '/old/' }, route: { cluster: 'svc', prefixRewrite: '/new/' } },
        { name: 'headers', match: { prefix: '/h/' }, route: { cluster: 'svc' }, requestHeadersToAdd: [{ header: { key: 'x-route', value: 'headers' } }] },
        { name: 'subset', match: { prefix: '/v1/' }, route: { cluster: 'svc', subset: 'v1' } },
        { name: 'retry-a', match: { prefix: '/retry-a/' }, route: { cluster: 'svc', retryPolicy } },
        { name: 'retry-b', match: { prefix: '/retry-b/' }, route: { cluster: 'svc', retryPolicy } },
        { name: 'no-retry', match: { prefix: '/flaky/' }, route: { cluster: 'svc' } },
      ],
    }],
  }
}

before(async () => {
  backend = await startUpstream('svc', (req, res) => {
    const n = (hits.get(req.url ?? '') ?? 0) + 1
    hits.set(req.url ?? '', n)
    res.statusCode = n === 1 && /^\/(retry-[ab]|flaky)\//.test(req.url ?? '') ? 503 : 200
    res.end(`${req.headers.host} ${req.url} ${String(req.headers['x-route'])}`)
  })
  mesh = createMesh({ config: config('2s') })
})

after(async () => {
  await mesh.close()
  await backend.close()
})

type ClusterDecision = Extract<RouteDecision, { kind: 'cluster' }>

function decide(path: string): ClusterDecision {
  const d = mesh.route({ url: `http://svc${path}` })
  if (d.kind !== 'cluster') assert.fail(`${path}: ${JSON.stringify(d)}`)
  return d
}

test('each route keeps its own name, timeout, rewrites, header changes and subset', () => {
  const plain = { targets: [{ cluster: 'svc', subset: undefined, weight: 100, requestHeaders: { add: [], remove: [] }, responseHeaders: { add: [], remove: [] } }], host: 'svc', timeoutMs: 15_000 }
  assert.deepEqual({ ...decide('/a/x'), virtualCluster: undefined }, { ...plain, virtualHost: 'svc', virtualCluster: undefined, kind: 'cluster', route: 'plain-a', path: '/a/x' })
  assert.equal(decide('/b/x').route, 'plain-b')
  assert.equal(decide('/login').timeoutMs, 2000)
  assert.equal(decide('/a/x').timeoutMs, 15_000, 'a shared action does not take another route\'s timeout')
  assert.equal(decide('/host/x').host, 'other.example')
  assert.equal(decide('/a/x').host, 'svc')
  assert.equal(decide('/old/x').path, '/new/x')
  assert.equal(decide('/b/old/x').path, '/b/old/x')
  assert.deepEqual(decide('/h/x').targets[0]?.requestHeaders.add.map((h) => [h.name, h.value]), [['x-route', 'headers']])
  assert.deepEqual(decide('/a/x').targets[0]?.requestHeaders.add, [])
  assert.equal(decide('/v1/x').targets[0]?.subset, 'v1')
  assert.equal(decide('/a/x').targets[0]?.subset, undefined)
})

test('routes that share a retry policy retry; the plain route to the same cluster does not', async () => {
  const call = async (path: string): Promise<[number, string]> => {
    const res = await request(`http://svc${path}`, { dispatcher: mesh.dispatcher })
    return [res.statusCode, await res.body.text()]
  }
  assert.deepEqual(await call('/retry-a/1'), [200, 'svc /retry-a/1 undefined'])
  assert.deepEqual(await call('/retry-b/1'), [200, 'svc /retry-b/1 undefined'])
  assert.deepEqual(await call('/flaky/1'), [503, 'svc /flaky/1 undefined'], 'no retry policy: the 503 is the answer')
  assert.deepEqual(await call('/host/1'), [200, 'other.example /host/1 undefined'])
  assert.deepEqual(await call('/h/1'), [200, 'svc /h/1 headers'])
  assert.deepEqual(await call('/a/1'), [200, 'svc /a/1 undefined'])
})

test('an update that changes one route leaves the routes it shared parts with as they were', async () => {
  await mesh.update(config('7s'))
  assert.equal(decide('/login').timeoutMs, 7000)
  assert.equal(decide('/a/x').timeoutMs, 15_000)
  assert.equal(decide('/b/x').timeoutMs, 15_000)
  assert.equal(decide('/host/x').host, 'other.example')
})
