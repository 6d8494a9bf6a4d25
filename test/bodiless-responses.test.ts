/**
 * Responses that have no body whatever their Content-Length says (RFC 9110 §6.4.1, §8.6):
 * a 304 (its Content-Length announces the representation's length) and any response to
 * HEAD. Through the mesh they end complete, for `mesh.fetch` and `undici.request` alike,
 * and count as the responses they are: no reset, no 5xx, no outlier ejection, no retry.
 */
import assert from 'node:assert/strict'
import type http from 'node:http'
import { after, before, test } from 'node:test'
import { createMesh, type Mesh } from '../src/index.js'
import { startUpstream, type Upstream } from './helpers/upstream.js'

let up: Upstream
let mesh: Mesh

/** `/not-modified`: 304 with the Content-Length of the representation; otherwise 10 bytes (none to HEAD). */
function behaviour(req: http.IncomingMessage, res: http.ServerResponse): void {
  if (req.url === '/not-modified') {
    res.writeHead(304, { 'content-length': '10', etag: '"v1"' })
    res.end()
    return
  }
  res.writeHead(200, { 'content-length': '10' })
  res.end(req.method === 'HEAD' ? undefined : '0123456789')
}

before(async () => {
  up = await startUpstream('app', behaviour)
  mesh = createMesh({
    config: {
      clusters: [{
        name: 'app',
        endpoints: [{ address: up.address }],
        outlierDetection: { consecutive5xx: 2, consecutiveGatewayFailure: 2, interval: '10s', baseEjectionTime: '30s', maxEjectionPercent: 100 },
      }],
      virtualHosts: [{
        name: 'app',
        domains: ['app'],
        routes: [{ match: { prefix: '/' }, route: { cluster: 'app', retryPolicy: { retryOn: ['5xx', 'reset'], numRetries: 2 } } }],
      }],
    },
  })
})

after(async () => {
  await mesh.close()
  await up.close()
})

test('a 304 with Content-Length and a HEAD response end complete through mesh.fetch and undici.request, counted as responses', async () => {
  for (let i = 0; i < 3; i++) {
    const fetched = await mesh.fetch('http://app/not-modified', { headers: { 'if-none-match': '"v1"' } })
    assert.equal(fetched.status, 304)
    assert.equal(await fetched.text(), '')
    const requested = await mesh.dispatcher.request({ origin: 'http://app', path: '/not-modified', method: 'GET' })
    assert.equal(requested.statusCode, 304)
    assert.equal(requested.headers['etag'], '"v1"')
    assert.equal(await requested.body.text(), '', 'the body ends: no error after the headers')
    const head = await mesh.fetch('http://app/x', { method: 'HEAD' })
    assert.equal(head.status, 200)
    assert.equal(head.headers.get('content-length'), '10')
    assert.equal(await head.text(), '')
  }
  const snap = mesh.metrics.snapshot()
  const cluster = snap.outbound.clusters['app']
  assert.equal(cluster?.requests, 9)
  assert.equal(cluster?.errors.reset, 0, 'no reset')
  assert.equal(cluster?.responses['3xx'], 6)
  assert.equal(cluster?.responses['2xx'], 3)
  assert.equal(cluster?.responses['5xx'], 0)
  assert.equal(snap.resilience['app']?.retries ?? 0, 0)
  assert.equal(snap.health?.['app']?.ejectionsActive ?? 0, 0)
  assert.equal(up.seen.length, 9, 'each request went once')
})
