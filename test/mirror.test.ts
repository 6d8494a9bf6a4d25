// Request mirroring: copies reach the shadow cluster with a `-shadow` Host and the same body,
// and whatever the shadow does (hang, reset, be down) the original request is unaffected.
import assert from 'node:assert/strict'
import { once } from 'node:events'
import type http from 'node:http'
import type { AddressInfo } from 'node:net'
import { Readable } from 'node:stream'
import { setTimeout as sleep } from 'node:timers/promises'
import { after, before, describe, test } from 'node:test'
import { request } from 'undici'
import { createMesh, type Mesh, type MeshConfig, type RequestMirrorPolicy } from '../src/index.js'
import { shadowAuthority } from '../src/router/mirror.js'
import type { MirrorPolicy } from '../src/router/mirror.js'
import { closedPort, echo, startUpstream, type Upstream } from './helpers/upstream.js'

let primary: Upstream

before(async () => {
  primary = await startUpstream('primary')
})
after(async () => {
  await primary.close()
})

/** A shadow that records bodies too. */
async function startShadow(behaviour: (req: http.IncomingMessage, res: http.ServerResponse) => void = (req, res) => echo(req, res, 'shadow')): Promise<Upstream & { bodies: string[] }> {
  const bodies: string[] = []
  const up = await startUpstream('shadow', (req, res) => {
    let body = ''
    req.setEncoding('utf8')
    req.on('data', (c: string) => (body += c))
    req.on('end', () => bodies.push(body))
    behaviour(req, res)
  })
  return Object.assign(up, { bodies })
}

function config(shadowAddress: string, mirrors: RequestMirrorPolicy[] = [{ cluster: 'shadow' }], extra: Record<string, unknown> = {}): MeshConfig {
  return {
    clusters: [
      { name: 'reviews', endpoints: [{ address: primary.address }] },
      { name: 'shadow', endpoints: [{ address: shadowAddress, labels: { version: 'v2' } }], subsets: [{ name: 'v2', labels: { version: 'v2' } }] },
    ],
    virtualHosts: [{
      name: 'reviews',
      domains: ['reviews'],
      routes: [{ match: { prefix: '/' }, route: { cluster: 'reviews', requestMirrorPolicies: mirrors, ...extra } }],
    }],
  }
}

function policyOf(mesh: Mesh): MirrorPolicy {
  const action = mesh.snapshot.virtualHosts.get('reviews')?.routes[0]?.action
  assert.ok(action?.kind === 'cluster' && action.mirror !== null)
  return action.mirror
}

async function settled(policy: MirrorPolicy): Promise<void> {
  for (let i = 0; i < 500 && policy.inFlight > 0; i++) await sleep(10)
  assert.equal(policy.inFlight, 0, 'every copy finished')
}

describe('request mirroring', () => {
  test('shadowAuthority appends -shadow to the host part, keeping the port', () => {
    assert.equal(shadowAuthority('reviews:9080'), 'reviews-shadow:9080')
    assert.equal(shadowAuthority('reviews'), 'reviews-shadow')
    assert.equal(shadowAuthority('[::1]:80'), '[::1]-shadow:80')
    assert.equal(shadowAuthority('[::1]'), '[::1]-shadow')
  })

  test('the shadow receives each copy with a -shadow Host, the same method, path, body and trace', async () => {
    const shadow = await startShadow()
    const mesh = createMesh({ config: { ...config(shadow.address, [{ cluster: 'shadow', subset: 'v2' }]), tracing: { sampling: 100 } } })
    try {
      // Inside an inbound request, so the call continues the caller's trace. undici.request:
      // its string and Buffer bodies are replayable (fetch always streams its body).
      const server = mesh.createServer((_req, res) => {
        void request('http://reviews:9080/r/1?x=1', { dispatcher: mesh.dispatcher, method: 'POST', body: 'the body', headers: { 'x-user': 'jason' } })
          .then(async (r) => res.end(`${r.statusCode} ${await r.body.text()}`))
      })
      server.listen(0, '127.0.0.1')
      await once(server, 'listening')
      const res = await request(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`, { headers: { traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' } })
      assert.equal(await res.body.text(), '200 primary /r/1?x=1')
      server.closeAllConnections()
      server.close()
      await request('http://reviews:9080/bin', { dispatcher: mesh.dispatcher, method: 'PUT', body: Buffer.from([1, 2, 3]) }).then((r) => r.body.dump())
      await settled(policyOf(mesh))
      assert.equal(shadow.seen.length, 2)
      const [first, second] = shadow.seen
      assert.equal(first?.headers.host, 'reviews-shadow:9080')
      assert.equal(first?.method, 'POST')
      assert.equal(first?.url, '/r/1?x=1')
      assert.equal(first?.headers['x-user'], 'jason')
      assert.match(String(first?.headers.traceparent), /^00-0af7651916cd43dd8448eb211c80319c-[0-9a-f]{16}-01$/, 'the copy is part of the caller\'s trace')
      assert.equal(primary.seen.at(-2)?.headers.host, 'reviews:9080', 'the original keeps its Host')
      assert.match(String(primary.seen.at(-2)?.headers.traceparent), /^00-0af7651916cd43dd8448eb211c80319c-/)
      assert.notEqual(primary.seen.at(-2)?.headers.traceparent, first?.headers.traceparent, 'the copy has a span of its own')
      assert.equal(second?.method, 'PUT')
      assert.deepEqual(shadow.bodies, ['the body', '\u0001\u0002\u0003'])
      const stats = policyOf(mesh).stats()
      assert.deepEqual(stats, { mirrored: 2, skippedBody: 0, skippedOverflow: 0, inFlight: 0 })
      const m = mesh.metrics.snapshot().outbound.clusters['shadow']
      assert.equal(m?.responses['2xx'], 2, 'copies count in the shadow cluster\'s metrics')
      assert.equal(m?.subsets['v2']?.requests, 2)
    } finally {
      await mesh.close()
      await shadow.close()
    }
  })

  test('a shadow that hangs: the original completes while the copy is still hung; close() ends the copy', async () => {
    const hung: http.ServerResponse[] = []
    const shadow = await startShadow((_req, res) => hung.push(res))
    const mesh = createMesh({ config: config(shadow.address) })
    try {
      for (let i = 0; i < 3; i++) {
        const res = await mesh.fetch('http://reviews/hang')
        assert.equal(res.status, 200)
        assert.equal(await res.text(), 'primary /hang')
      }
      for (let i = 0; i < 100 && shadow.seen.length < 3; i++) await sleep(10)
      assert.equal(shadow.seen.length, 3)
      assert.equal(policyOf(mesh).inFlight, 3, 'the copies are still waiting on the shadow')
      assert.equal(hung.every((r) => !r.writableEnded), true)
      const started = performance.now()
      await mesh.close()
      assert.ok(performance.now() - started < 5000, 'close() does not wait for hung copies')
      assert.equal(policyOf(mesh).inFlight, 0)
      assert.equal(mesh.metrics.snapshot().outbound.clusters['shadow']?.errors.aborted, 3)
    } finally {
      await mesh.close()
      await shadow.close()
    }
  })

  test('copies end at the route timeout', async () => {
    const shadow = await startShadow(() => {})
    const mesh = createMesh({ config: config(shadow.address, [{ cluster: 'shadow' }], { timeout: '100ms' }) })
    try {
      const res = await mesh.fetch('http://reviews/t')
      assert.equal(res.status, 200)
      await res.text()
      await settled(policyOf(mesh))
      assert.equal(mesh.metrics.snapshot().outbound.clusters['shadow']?.errors.timeout, 1)
    } finally {
      await mesh.close()
      await shadow.close()
    }
  })

  test('a shadow that resets, or is down, changes nothing for the original; errors count as the shadow\'s', async () => {
    const resetting = await startShadow((req) => req.socket.destroy())
    const down = await closedPort()
    const cfg = config(resetting.address, [{ cluster: 'shadow' }, { cluster: 'dead' }])
    cfg.clusters?.push({ name: 'dead', endpoints: [{ address: `127.0.0.1:${down}` }] })
    const mesh = createMesh({ config: cfg })
    try {
      for (let i = 0; i < 4; i++) {
        const res = await request('http://reviews/r', { dispatcher: mesh.dispatcher, method: 'POST', body: 'x' })
        assert.equal(res.statusCode, 200)
        assert.equal(await res.body.text(), 'primary /r')
      }
      await settled(policyOf(mesh))
      const clusters = mesh.metrics.snapshot().outbound.clusters
      assert.equal(clusters['shadow']?.errors.reset, 4)
      assert.equal(clusters['dead']?.errors.connect_failure, 4)
      assert.equal(clusters['reviews']?.responses['2xx'], 4)
    } finally {
      await mesh.close()
      await resetting.close()
    }
  })

  test('percentage 50 over 1,000 requests lands within ±5 points', async () => {
    const shadow = await startShadow()
    const mesh = createMesh({ config: config(shadow.address, [{ cluster: 'shadow', percentage: 50 }]) })
    try {
      for (let batch = 0; batch < 20; batch++) {
        await Promise.all(Array.from({ length: 50 }, async () => {
          const res = await request('http://reviews/p', { dispatcher: mesh.dispatcher })
          await res.body.dump()
        }))
      }
      await settled(policyOf(mesh))
      const copies = shadow.seen.length
      assert.equal(policyOf(mesh).mirrored, copies)
      assert.ok(Math.abs(copies / 10 - 50) <= 5, `${copies / 10}% mirrored`)
    } finally {
      await mesh.close()
      await shadow.close()
    }
  })

  test('a streaming body is not mirrored (counted as skipped); the original still gets it', async () => {
    const shadow = await startShadow()
    const mesh = createMesh({ config: config(shadow.address) })
    try {
      const res = await request('http://reviews/s', { dispatcher: mesh.dispatcher, method: 'POST', body: Readable.from(['a', 'b', 'c']) })
      assert.equal(res.statusCode, 200)
      await res.body.dump()
      await sleep(50)
      assert.equal(shadow.seen.length, 0)
      assert.deepEqual(policyOf(mesh).stats(), { mirrored: 0, skippedBody: 1, skippedOverflow: 0, inFlight: 0 })
    } finally {
      await mesh.close()
      await shadow.close()
    }
  })

  test('copies in flight are bounded per route: beyond the bound they are skipped', async () => {
    const shadow = await startShadow(() => {})
    const mesh = createMesh({ config: config(shadow.address) })
    try {
      const policy = policyOf(mesh) as { maxInFlight: number } & MirrorPolicy
      Object.defineProperty(policy, 'maxInFlight', { value: 2 })
      for (let i = 0; i < 5; i++) {
        const res = await mesh.fetch('http://reviews/b')
        assert.equal(res.status, 200)
        await res.text()
      }
      assert.equal(policy.inFlight, 2)
      assert.equal(policy.skippedOverflow, 3)
    } finally {
      await mesh.close()
      await shadow.close()
    }
  })

  test('a request aborted by a fault is not mirrored; a delayed one is, after its delay', async () => {
    const shadow = await startShadow()
    const cfg = config(shadow.address)
    const route = cfg.virtualHosts?.[0]?.routes[0]
    assert.ok(route)
    route.fault = { abort: { headerAbort: true }, delay: { headerDelay: true } }
    const mesh = createMesh({ config: cfg })
    try {
      const a = await request('http://reviews/f', { dispatcher: mesh.dispatcher, headers: { 'x-envoy-fault-abort-request': '503' } })
      assert.equal(a.statusCode, 503)
      await a.body.dump()
      const d = await request('http://reviews/f', { dispatcher: mesh.dispatcher, headers: { 'x-envoy-fault-delay-request': '20' } })
      assert.equal(d.statusCode, 200)
      await d.body.dump()
      await settled(policyOf(mesh))
      assert.equal(shadow.seen.length, 1)
    } finally {
      await mesh.close()
      await shadow.close()
    }
  })
})
