// Fault injection, outbound (mesh.fetch / undici through the dispatcher) and inbound
// (mesh.createServer): aborts, delays, header-driven faults, maxActiveFaults, caller aborts.
import assert from 'node:assert/strict'
import { once } from 'node:events'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { Readable } from 'node:stream'
import { setTimeout as sleep } from 'node:timers/promises'
import { after, before, describe, test } from 'node:test'
import { request } from 'undici'
import { createMesh, isMeshError, validateConfig, type FaultConfig, type MeshConfig } from '../src/index.js'
import { compileFault } from '../src/policy/fault.js'
import { startUpstream, type Upstream } from './helpers/upstream.js'

let up: Upstream

before(async () => {
  up = await startUpstream('up')
})
after(async () => {
  await up.close()
})

function config(fault: FaultConfig, extra: Record<string, unknown> = {}): MeshConfig {
  return {
    clusters: [{ name: 'up', endpoints: [{ address: up.address }] }],
    virtualHosts: [{ name: 'up', domains: ['up'], routes: [{ match: { prefix: '/' }, route: { cluster: 'up', ...extra }, fault }] }],
  }
}

function timeouts(): number {
  return process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length
}

describe('outbound fault: abort', () => {
  test('abort 100%: the configured status, body `fault filter abort`, flag FI; the upstream is never called', async () => {
    const mesh = createMesh({ config: config({ abort: { httpStatus: 503 } }) })
    const before = up.seen.length
    try {
      for (let i = 0; i < 5; i++) {
        const res = await mesh.fetch('http://up/x', { method: 'POST', body: 'payload' })
        assert.equal(res.status, 503)
        assert.equal(res.headers.get('x-sidecarless-response-flags'), 'FI')
        assert.equal(await res.text(), 'fault filter abort')
      }
      const res = await request('http://up/y', { dispatcher: mesh.dispatcher })
      assert.equal(res.statusCode, 503)
      assert.equal(res.headers['x-sidecarless-response-flags'], 'FI')
      await res.body.dump()
      assert.equal(up.seen.length, before, 'no request reached the upstream')
    } finally {
      await mesh.close()
    }
  })

  test('abort 50% over 2,000 requests lands within ±4 points', async () => {
    const mesh = createMesh({ config: config({ abort: { httpStatus: 500, percentage: 50 } }) })
    try {
      const counts = new Map<number, number>()
      for (let batch = 0; batch < 40; batch++) {
        await Promise.all(Array.from({ length: 50 }, async () => {
          const res = await request('http://up/', { dispatcher: mesh.dispatcher })
          await res.body.dump()
          counts.set(res.statusCode, (counts.get(res.statusCode) ?? 0) + 1)
        }))
      }
      const aborted = counts.get(500) ?? 0
      assert.equal(aborted + (counts.get(200) ?? 0), 2000)
      assert.ok(Math.abs(aborted / 20 - 50) <= 4, `${aborted / 20}% aborted`)
      const action = mesh.snapshot.virtualHosts.get('up')?.routes[0]?.action
      assert.ok(action?.kind === 'cluster' && action.fault !== null)
      assert.equal(action.fault.stats().abortsInjected, aborted)
    } finally {
      await mesh.close()
    }
  })

  test('a fractional percentage (0.1) and 0 are honoured', () => {
    const zero = compileFault({ abort: { httpStatus: 500, percentage: 0 } })
    const tenth = compileFault({ abort: { httpStatus: 500, percentage: 0.1 } })
    let z = 0
    let t = 0
    for (let i = 0; i < 20_000; i++) {
      if (zero?.decide(() => undefined) !== null) z++
      if (tenth?.decide(() => undefined) !== null) t++
    }
    assert.equal(z, 0)
    assert.ok(t > 0 && t < 80, `${t} of 20,000 at 0.1% (expected ~20)`)
  })

  test('a streaming request body is released when the request is aborted by the fault', async () => {
    const mesh = createMesh({ config: config({ abort: { httpStatus: 418 } }) })
    try {
      const body = new Readable({ read() {} })
      const closed = once(body, 'close')
      const res = await request('http://up/', { dispatcher: mesh.dispatcher, method: 'POST', body })
      assert.equal(res.statusCode, 418)
      await res.body.dump()
      await closed
    } finally {
      await mesh.close()
    }
  })
})

describe('outbound fault: delay', () => {
  test('a fixed delay adds at least fixedDelay; the response carries DI and is the upstream\'s', async () => {
    const mesh = createMesh({ config: config({ delay: { fixedDelay: '120ms' } }) })
    try {
      const started = performance.now()
      const res = await mesh.fetch('http://up/d', { method: 'POST', body: 'hello' })
      const took = performance.now() - started
      assert.equal(res.status, 200)
      assert.equal(await res.text(), 'up /d')
      assert.equal(res.headers.get('x-sidecarless-response-flags'), 'DI')
      assert.equal(res.headers.get('x-sidecarless-cluster'), 'up')
      assert.ok(took >= 115, `took ${took}ms`)
    } finally {
      await mesh.close()
    }
  })

  test('delay and abort together: delayed, then aborted (DI,FI), the upstream never called', async () => {
    const mesh = createMesh({ config: config({ delay: { fixedDelay: 50 }, abort: { httpStatus: 502 } }) })
    const before = up.seen.length
    try {
      const started = performance.now()
      const res = await request('http://up/', { dispatcher: mesh.dispatcher })
      assert.ok(performance.now() - started >= 45)
      assert.equal(res.statusCode, 502)
      assert.equal(res.headers['x-sidecarless-response-flags'], 'DI,FI')
      assert.equal(await res.body.text(), 'fault filter abort')
      assert.equal(up.seen.length, before)
    } finally {
      await mesh.close()
    }
  })

  test('the caller aborts during the delay: coded error, upstream never called, no timer left behind', async () => {
    const mesh = createMesh({ config: config({ delay: { fixedDelay: '30s' } }) })
    const before = up.seen.length
    try {
      // Warm up so that lazily created timers (pools, deadline lists) are not counted.
      const baseline = timeouts()
      const ac = new AbortController()
      const pending = request('http://up/', { dispatcher: mesh.dispatcher, signal: ac.signal })
      await sleep(20)
      assert.equal(timeouts(), baseline + 1, 'the delay holds one timer')
      assert.equal(mesh.snapshot.virtualHosts.get('up')?.routes[0]?.action.kind, 'cluster')
      ac.abort()
      await assert.rejects(pending, (err: Error) => {
        assert.ok(isMeshError(err, 'SIDECARLESS_ERR_ABORTED'), String(err))
        assert.equal(err.name, 'AbortError')
        return true
      })
      assert.equal(timeouts(), baseline, 'the delay timer was cleared')
      const action = mesh.snapshot.virtualHosts.get('up')?.routes[0]?.action
      assert.ok(action?.kind === 'cluster' && action.fault !== null)
      assert.equal(action.fault.stats().active, 0)

      // mesh.fetch too.
      const ac2 = new AbortController()
      const p2 = mesh.fetch('http://up/', { signal: ac2.signal })
      await sleep(10)
      ac2.abort()
      await assert.rejects(p2, (err: Error) => isMeshError(err, 'SIDECARLESS_ERR_ABORTED'))
      await sleep(10)
      assert.equal(timeouts(), baseline)
      assert.equal(up.seen.length, before, 'the upstream never saw the aborted requests')
    } finally {
      await mesh.close()
    }
  })

  test('mesh.close() during a delay: the request still ends in a response and no timer is left', async () => {
    const mesh = createMesh({ config: config({ delay: { fixedDelay: '150ms' } }) })
    const baseline = timeouts()
    const pending = request('http://up/', { dispatcher: mesh.dispatcher })
    await sleep(20)
    await mesh.close()
    const res = await pending
    // The cluster was disposed with the mesh: the mesh answers for it.
    assert.equal(res.statusCode, 503)
    assert.equal(res.headers['x-sidecarless-response-flags'], 'DI,UH')
    await res.body.dump()
    assert.equal(timeouts(), baseline)
  })

  test('maxActiveFaults: beyond the bound, requests pass without a fault (overflow counted)', async () => {
    const mesh = createMesh({ config: config({ delay: { fixedDelay: '200ms' }, maxActiveFaults: 2 }) })
    try {
      const results = await Promise.all(Array.from({ length: 5 }, async () => {
        const res = await request('http://up/', { dispatcher: mesh.dispatcher })
        await res.body.dump()
        return res.headers['x-sidecarless-response-flags']
      }))
      assert.equal(results.filter((f) => f === 'DI').length, 2)
      assert.equal(results.filter((f) => f === undefined).length, 3)
      const action = mesh.snapshot.virtualHosts.get('up')?.routes[0]?.action
      assert.ok(action?.kind === 'cluster' && action.fault !== null)
      assert.deepEqual(action.fault.stats(), { delaysInjected: 2, abortsInjected: 0, active: 0, overflow: 3 })
    } finally {
      await mesh.close()
    }
  })
})

describe('outbound fault: header-controlled', () => {
  test('x-envoy-fault-* headers are ignored when headerAbort/headerDelay are off', async () => {
    const mesh = createMesh({ config: config({ abort: { httpStatus: 500, percentage: 0 }, delay: { fixedDelay: 1, percentage: 0 } }) })
    try {
      const res = await request('http://up/', {
        dispatcher: mesh.dispatcher,
        headers: { 'x-envoy-fault-abort-request': '418', 'x-envoy-fault-abort-request-percentage': '100', 'x-envoy-fault-delay-request': '5000' },
      })
      assert.equal(res.statusCode, 200)
      assert.equal(res.headers['x-sidecarless-response-flags'], undefined)
      await res.body.dump()
    } finally {
      await mesh.close()
    }
  })

  test('with headerAbort, the header chooses the status; without a valid header no abort', async () => {
    const mesh = createMesh({ config: config({ abort: { headerAbort: true } }) })
    try {
      const status = async (headers: Record<string, string>): Promise<[number, unknown]> => {
        const res = await request('http://up/', { dispatcher: mesh.dispatcher, headers })
        await res.body.dump()
        return [res.statusCode, res.headers['x-sidecarless-response-flags']]
      }
      assert.deepEqual(await status({ 'x-envoy-fault-abort-request': '418' }), [418, 'FI'])
      assert.deepEqual(await status({}), [200, undefined])
      assert.deepEqual(await status({ 'x-envoy-fault-abort-request': '418', 'x-envoy-fault-abort-request-percentage': '0' }), [200, undefined])
      for (const garbage of ['abc', '99', '600', '-500', '5e2', '500.0', ' ', '0x1f4', '1'.repeat(40), '418, 503']) {
        assert.deepEqual(await status({ 'x-envoy-fault-abort-request': garbage }), [200, undefined], `garbage ${JSON.stringify(garbage)}`)
      }
      // A garbage percentage is ignored: the config's (100) applies.
      assert.deepEqual(await status({ 'x-envoy-fault-abort-request': '503', 'x-envoy-fault-abort-request-percentage': 'lots' }), [503, 'FI'])
    } finally {
      await mesh.close()
    }
  })

  test('the header percentage is capped by the config percentage (Envoy: the lower applies)', () => {
    const fault = compileFault({ abort: { headerAbort: true, percentage: 0 } })
    const headers: Record<string, string> = { 'x-envoy-fault-abort-request': '500', 'x-envoy-fault-abort-request-percentage': '100' }
    for (let i = 0; i < 100; i++) assert.equal(fault?.decide((n) => headers[n]), null)
  })

  test('with headerDelay, the header chooses the delay (capped at 60s); garbage is ignored', async () => {
    const mesh = createMesh({ config: config({ delay: { headerDelay: true } }) })
    try {
      const started = performance.now()
      const res = await request('http://up/', { dispatcher: mesh.dispatcher, headers: { 'x-envoy-fault-delay-request': '80' } })
      assert.ok(performance.now() - started >= 75)
      assert.equal(res.headers['x-sidecarless-response-flags'], 'DI')
      await res.body.dump()
      for (const garbage of ['', 'soon', '1e9', '-1', '80ms', '1.5', 'NaN', 'Infinity']) {
        const r = await request('http://up/', { dispatcher: mesh.dispatcher, headers: { 'x-envoy-fault-delay-request': garbage } })
        assert.equal(r.headers['x-sidecarless-response-flags'], undefined, `garbage ${JSON.stringify(garbage)}`)
        await r.body.dump()
      }
    } finally {
      await mesh.close()
    }
    const fault = compileFault({ delay: { headerDelay: true } })
    assert.equal(fault?.decide((n) => (n === 'x-envoy-fault-delay-request' ? '99999999999' : undefined))?.delayMs, 60_000)
  })
})

// ---------------------------------------------------------------- inbound

async function listen(server: http.Server): Promise<string> {
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`
}

async function closeServer(server: http.Server): Promise<void> {
  server.closeAllConnections()
  await new Promise<void>((resolve) => server.close(() => resolve()))
}

describe('inbound fault', () => {
  test('abort: answered without calling the app, flag FI; metrics count the status as a response', async () => {
    const mesh = createMesh({ config: { listener: { routes: [{ name: 'api', match: { prefix: '/api' }, fault: { abort: { httpStatus: 503 } } }] } } })
    let served = 0
    const server = mesh.createServer((_req, res) => {
      served++
      res.end('app')
    })
    const url = await listen(server)
    try {
      const res = await request(`${url}/api/x`)
      assert.equal(res.statusCode, 503)
      assert.equal(res.headers['x-sidecarless-response-flags'], 'FI')
      assert.equal(await res.body.text(), 'fault filter abort')
      const other = await request(`${url}/other`)
      assert.equal(other.statusCode, 200)
      await other.body.dump()
      assert.equal(served, 1, 'only the request outside the faulted route reached the app')
      await sleep(20)
      const routes = mesh.metrics.snapshot().inbound.routes
      assert.equal(routes['api']?.responses['5xx'], 1)
      assert.equal(routes['api']?.requests, 1)
      const fault = mesh.snapshot.listenerRoutes[0]?.fault
      assert.equal(fault?.stats().abortsInjected, 1)
    } finally {
      await closeServer(server)
      await mesh.close()
    }
  })

  test('delay: the app runs only after fixedDelay; the response carries DI', async () => {
    const mesh = createMesh({ config: { listener: { routes: [{ match: { prefix: '/' }, fault: { delay: { fixedDelay: '100ms' } } }] } } })
    let calledAt = 0
    const server = mesh.createServer((req, res) => {
      calledAt = performance.now()
      let body = ''
      req.setEncoding('utf8')
      req.on('data', (c: string) => (body += c))
      req.on('end', () => res.end(`got ${body}`))
    })
    const url = await listen(server)
    try {
      const started = performance.now()
      const res = await request(url, { method: 'POST', body: 'the body' })
      assert.equal(res.statusCode, 200)
      assert.equal(await res.body.text(), 'got the body', 'the body waited, unread, for the app')
      assert.equal(res.headers['x-sidecarless-response-flags'], 'DI')
      assert.ok(calledAt - started >= 95, `app called after ${calledAt - started}ms`)
    } finally {
      await closeServer(server)
      await mesh.close()
    }
  })

  test('delay: a client that disconnects during the delay clears the timer; the app is never called', async () => {
    const mesh = createMesh({ config: { listener: { routes: [{ match: { prefix: '/' }, fault: { delay: { fixedDelay: '30s' } } }] } } })
    let served = 0
    const server = mesh.createServer((_req, res) => {
      served++
      res.end()
    })
    const url = await listen(server)
    try {
      const baseline = timeouts()
      const req = http.get(url)
      req.on('error', () => {})
      await sleep(50)
      assert.ok(timeouts() >= baseline + 1, 'the delay holds a timer')
      req.destroy()
      await sleep(50)
      assert.equal(timeouts(), baseline, 'no timer left')
      assert.equal(served, 0)
      assert.equal(mesh.snapshot.listenerRoutes[0]?.fault?.stats().active, 0)
    } finally {
      await closeServer(server)
      await mesh.close()
    }
  })

  test('header-driven inbound abort applies only with headerAbort', async () => {
    const mesh = createMesh({ config: { listener: { routes: [{ match: { prefix: '/h' }, fault: { abort: { headerAbort: true } } }] } } })
    const server = mesh.createServer((_req, res) => res.end('app'))
    const url = await listen(server)
    try {
      const a = await request(`${url}/h`, { headers: { 'x-envoy-fault-abort-request': '429' } })
      assert.equal(a.statusCode, 429)
      await a.body.dump()
      const b = await request(`${url}/h`, { headers: { 'x-envoy-fault-abort-request': 'nope' } })
      assert.equal(b.statusCode, 200)
      await b.body.dump()
      const c = await request(`${url}/x`, { headers: { 'x-envoy-fault-abort-request': '429' } })
      assert.equal(c.statusCode, 200, 'no fault outside the route')
      await c.body.dump()
    } finally {
      await closeServer(server)
      await mesh.close()
    }
  })
})

// ---------------------------------------------------------------- validation

describe('validation of fault and requestMirrorPolicies', () => {
  const base = (route: Record<string, unknown>, listenerFault?: unknown): unknown => ({
    clusters: [
      { name: 'reviews', endpoints: [{ address: '127.0.0.1:1' }], subsets: [{ name: 'v1', labels: { version: 'v1' } }] },
      { name: 'shadow', endpoints: [{ address: '127.0.0.1:2' }] },
    ],
    virtualHosts: [{ name: 'v', domains: ['v'], routes: [{ match: { prefix: '/' }, ...route }] }],
    ...(listenerFault === undefined ? {} : { listener: { routes: [{ match: { prefix: '/' }, fault: listenerFault }] } }),
  })
  const issues = (config: unknown): [string, string][] => validateConfig(config).map((i) => [i.path, i.code])

  test('valid faults and mirrors pass', () => {
    assert.deepEqual(issues(base({
      route: { cluster: 'reviews', requestMirrorPolicies: [{ cluster: 'shadow', percentage: 0.5 }, { cluster: 'reviews', subset: 'v1' }] },
      fault: { delay: { fixedDelay: '1s', percentage: 0.1 }, abort: { httpStatus: 503, percentage: 50 }, maxActiveFaults: 10 },
    }, { abort: { headerAbort: true }, delay: { headerDelay: true, percentage: 100 } })), [])
  })

  test('a fault needs delay or abort; each has exactly one of its two sources', () => {
    assert.deepEqual(issues(base({ route: { cluster: 'reviews' }, fault: {} })), [['virtualHosts[0].routes[0].fault', 'REQUIRED']])
    assert.deepEqual(issues(base({ route: { cluster: 'reviews' }, fault: { delay: { percentage: 5 } } })), [['virtualHosts[0].routes[0].fault.delay', 'INVALID_VALUE']])
    assert.deepEqual(issues(base({ route: { cluster: 'reviews' }, fault: { delay: { fixedDelay: 5, headerDelay: true } } })), [['virtualHosts[0].routes[0].fault.delay', 'INVALID_VALUE']])
    assert.deepEqual(issues(base({ route: { cluster: 'reviews' }, fault: { abort: { headerAbort: false } } })), [['virtualHosts[0].routes[0].fault.abort', 'INVALID_VALUE']])
    assert.deepEqual(issues(base({ route: { cluster: 'reviews' }, fault: { abort: { httpStatus: 500, headerAbort: true } } })), [['virtualHosts[0].routes[0].fault.abort', 'INVALID_VALUE']])
  })

  test('bounds: status 200–599, percentages 0–100, delay ≤ 1h, maxActiveFaults an integer', () => {
    assert.deepEqual(issues(base({
      route: { cluster: 'reviews' },
      fault: { delay: { fixedDelay: '2h', percentage: 101 }, abort: { httpStatus: 600, percentage: -1 }, maxActiveFaults: 1.5 },
    })), [
      ['virtualHosts[0].routes[0].fault.delay.fixedDelay', 'INVALID_DURATION'],
      ['virtualHosts[0].routes[0].fault.delay.percentage', 'INVALID_VALUE'],
      ['virtualHosts[0].routes[0].fault.abort.httpStatus', 'INVALID_VALUE'],
      ['virtualHosts[0].routes[0].fault.abort.percentage', 'INVALID_VALUE'],
      ['virtualHosts[0].routes[0].fault.maxActiveFaults', 'INVALID_VALUE'],
    ])
    assert.deepEqual(issues(base({ route: { cluster: 'reviews' } }, { delay: { fixedDelay: 'soon' } })), [['listener.routes[0].fault.delay.fixedDelay', 'INVALID_DURATION']], 'one mistake, reported once')
  })

  test('a fault on a redirect or direct response is refused', () => {
    assert.deepEqual(issues(base({ directResponse: { status: 200 }, fault: { abort: { httpStatus: 500 } } })), [['virtualHosts[0].routes[0].fault', 'INVALID_ACTION']])
  })

  test('mirror destinations must exist (did-you-mean), percentages are bounded, fields are known', () => {
    const found = validateConfig(base({ route: { cluster: 'reviews', requestMirrorPolicies: [{ cluster: 'shadw' }, { cluster: 'reviews', subset: 'v2' }, { cluster: 'shadow', percentage: 150 }, { cluster: 'shadow', percentge: 5 }, {}] } }))
    assert.deepEqual(found.map((i) => [i.path, i.code]), [
      ['virtualHosts[0].routes[0].route.requestMirrorPolicies[0].cluster', 'UNKNOWN_CLUSTER'],
      ['virtualHosts[0].routes[0].route.requestMirrorPolicies[1].subset', 'UNKNOWN_SUBSET'],
      ['virtualHosts[0].routes[0].route.requestMirrorPolicies[2].percentage', 'INVALID_VALUE'],
      ['virtualHosts[0].routes[0].route.requestMirrorPolicies[3].percentge', 'UNKNOWN_FIELD'],
      ['virtualHosts[0].routes[0].route.requestMirrorPolicies[4].cluster', 'REQUIRED'],
    ])
    assert.match(found[0]?.message ?? '', /did you mean "shadow"/)
    assert.match(found[3]?.message ?? '', /did you mean "percentage"/)
  })
})
