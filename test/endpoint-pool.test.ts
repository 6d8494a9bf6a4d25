/**
 * The endpoint connection pool (src/upstream/endpoint-pool.ts) against real servers: a
 * burst of requests queued at once opens connections a few at a time (the handshake storm
 * of issue 17), a request whose route timeout fires while it waits for a connection never
 * costs one, a failed connection attempt fails the requests waiting for it, and
 * `maxConnections` still caps the connections.
 */
import assert from 'node:assert/strict'
import { once } from 'node:events'
import http from 'node:http'
import https from 'node:https'
import net, { type AddressInfo, type Socket } from 'node:net'
import { after, before, describe, it } from 'node:test'
import { request } from 'undici'
import { createCertificateAuthority, createMesh, type Mesh, type MeshConfig } from '../src/index.js'
import { defaults } from '../src/config/defaults.js'
import { requireClientCert } from './helpers/mtls.js'
import { startUpstream, type Upstream } from './helpers/upstream.js'

const TD = 'cluster.local'
const ca = createCertificateAuthority({ trustDomain: TD })
const serverId = `spiffe://${TD}/ns/default/sa/reviews`
const serverCert = ca.issue({ spiffeId: serverId, dnsNames: ['reviews'] })
const clientCert = ca.issue({ spiffeId: `spiffe://${TD}/ns/default/sa/productpage` })

/** An https server asking for client certificates, counting completed handshakes. */
async function startTlsServer(): Promise<{ port: number; handshakes: () => number; close: () => Promise<void> }> {
  let secured = 0
  const sockets = new Set<Socket>()
  const server = https.createServer(requireClientCert(serverCert), (req, res) => {
    req.resume()
    res.end('ok')
  })
  server.on('connection', (s: Socket) => {
    sockets.add(s)
    s.on('close', () => sockets.delete(s))
  })
  server.on('secureConnection', () => secured++)
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  return {
    port: (server.address() as AddressInfo).port,
    handshakes: () => secured,
    close: async () => {
      for (const s of sockets) s.destroy()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}

/**
 * A TCP front that accepts connections and holds them, forwarding nothing until the test
 * releases them one by one to `port`: a connection held here is a handshake the client
 * has started and cannot finish, so `held` is the client's connection attempts in progress.
 */
async function startGate(port: number): Promise<{ port: number; held: () => number; accepted: () => number; releaseOne: () => boolean; close: () => Promise<void> }> {
  const waiting: Socket[] = []
  const open = new Set<Socket>()
  let accepted = 0
  const server = net.createServer((s) => {
    accepted++
    open.add(s)
    s.on('close', () => open.delete(s))
    s.on('error', () => s.destroy())
    s.pause()
    waiting.push(s)
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  return {
    port: (server.address() as AddressInfo).port,
    held: () => waiting.length,
    accepted: () => accepted,
    releaseOne: () => {
      const s = waiting.shift()
      if (s === undefined) return false
      const up = net.connect(port, '127.0.0.1')
      open.add(up)
      up.on('close', () => {
        open.delete(up)
        s.destroy()
      })
      up.on('error', () => up.destroy())
      s.on('close', () => up.destroy())
      s.pipe(up).pipe(s)
      s.resume()
      return true
    },
    close: async () => {
      for (const s of open) s.destroy()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}

describe('endpoint pool', () => {
  it('200 requests queued at once over mTLS: at most maxConnectingPerEndpoint handshakes in progress, every request answered', async () => {
    const server = await startTlsServer()
    const gate = await startGate(server.port)
    const mesh = createMesh({
      service: 'productpage',
      config: {
        identity: { certificate: clientCert.certificate, privateKey: clientCert.privateKey, trustBundle: clientCert.trustBundle },
        clusters: [{ name: 'reviews', endpoints: [{ address: `http://127.0.0.1:${gate.port}` }], tls: { mode: 'ISTIO_MUTUAL', verifyIdentities: [serverId] } }],
        virtualHosts: [{ name: 'reviews', domains: ['reviews'], routes: [{ match: { prefix: '/' }, route: { cluster: 'reviews' } }] }],
      },
    })
    try {
      let done = 0
      const all = Promise.all(Array.from({ length: 200 }, async () => {
        const res = await request('http://reviews/', { dispatcher: mesh.dispatcher })
        await res.body.dump()
        done++
        return res.statusCode
      }))
      const n = defaults.maxConnectingPerEndpoint
      let most = 0
      // Let the client's attempts through one at a time; between two releases it may start
      // new ones, never more than the bound at once (undici's Pool opened one per request).
      while (done < 200) {
        await new Promise((r) => setTimeout(r, 2))
        most = Math.max(most, gate.held())
        assert.ok(gate.held() <= n, `at most ${n} connections being set up at once, saw ${gate.held()}`)
        gate.releaseOne()
      }
      const statuses = await all
      assert.deepEqual(new Set(statuses), new Set([200]), 'every request answered')
      assert.ok(most >= 1)
      const tls = mesh.metrics.snapshot().security.tls.upstream
      assert.ok(tls.full + tls.resumed >= 1 && server.handshakes() >= 1)
      assert.ok(tls.full + tls.resumed < 200, `fewer handshakes than requests: ${tls.full + tls.resumed}`)
    } finally {
      await mesh.close()
      await gate.close()
      await server.close()
    }
  })

  describe('a request that waits for a connection', () => {
    let upstream: Upstream
    let release: (() => void)[] = []
    let mesh: Mesh
    before(async () => {
      upstream = await startUpstream('held', (req, res) => {
        if (req.url === '/hold') release.push(() => res.end('held'))
        else res.end('quick')
      })
    })
    after(async () => {
      await upstream.close()
    })

    const config = (port: number): MeshConfig => ({
      clusters: [{ name: 'held', endpoints: [{ address: `http://127.0.0.1:${port}` }], circuitBreakers: { maxConnections: 1 } }],
      virtualHosts: [{
        name: 'held',
        domains: ['held'],
        routes: [
          { match: { prefix: '/hold' }, route: { cluster: 'held', timeout: '30s' } },
          { match: { prefix: '/quick' }, route: { cluster: 'held', timeout: '50ms' } },
        ],
      }],
    })

    it('and whose route timeout fires meanwhile is answered 504 and dropped: the connection it would have taken stays open', async () => {
      release = []
      upstream.seen.length = 0
      const before = upstream.connections
      mesh = createMesh({ service: 'productpage', config: config(upstream.port) })
      try {
        // The only connection (maxConnections: 1) is busy with a held request.
        const held = request('http://held/hold', { dispatcher: mesh.dispatcher })
        while (release.length === 0) await new Promise((r) => setTimeout(r, 5))
        // This one waits for the connection; its 50 ms route timeout fires while it waits.
        const waiting = await request('http://held/quick', { dispatcher: mesh.dispatcher })
        assert.equal(waiting.statusCode, 504)
        assert.equal(waiting.headers['x-sidecarless-response-flags'], 'UT')
        await waiting.body.dump()
        // The connection frees: the timed-out request's turn comes and it is dropped, unsent.
        release.shift()?.()
        const first = await held
        assert.equal(await first.body.text(), 'held')
        const next = await request('http://held/quick', { dispatcher: mesh.dispatcher })
        assert.equal(next.statusCode, 200)
        assert.equal(await next.body.text(), 'quick')
        assert.deepEqual(upstream.seen.map((s) => s.url), ['/hold', '/quick'], 'the timed-out request was never written')
        assert.equal(upstream.connections - before, 1, 'one connection served both; none was destroyed for the timed-out request')
      } finally {
        for (const r of release) r()
        await mesh.close()
      }
    })

    it('is capped by maxConnections: held requests beyond it wait, then all are answered on those connections', async () => {
      release = []
      const before = upstream.connections
      mesh = createMesh({
        service: 'productpage',
        config: { ...config(upstream.port), clusters: [{ name: 'held', endpoints: [{ address: `http://127.0.0.1:${upstream.port}` }], circuitBreakers: { maxConnections: 3 } }] },
      })
      try {
        const all = Array.from({ length: 12 }, () => request('http://held/hold', { dispatcher: mesh.dispatcher }).then(async (r) => ({ status: r.statusCode, body: await r.body.text() })))
        let answered = 0
        while (answered < 12) {
          while (release.length === 0) await new Promise((r) => setTimeout(r, 5))
          assert.ok(upstream.connections - before <= 3, `at most 3 connections, saw ${upstream.connections - before}`)
          release.shift()?.()
          answered++
        }
        const results = await Promise.all(all)
        assert.deepEqual(results.map((r) => r.status), Array(12).fill(200))
        assert.equal(upstream.connections - before, 3)
      } finally {
        for (const r of release) r()
        await mesh.close()
      }
    })
  })

  it('requests whose route timeout fires while their connections are being set up open no further connection once those are up', async () => {
    // mTLS, so a connection the gate holds is one whose handshake cannot finish: being set up.
    const server = await startTlsServer()
    const gate = await startGate(server.port)
    const mesh = createMesh({
      service: 'productpage',
      config: {
        identity: { certificate: clientCert.certificate, privateKey: clientCert.privateKey, trustBundle: clientCert.trustBundle },
        clusters: [{ name: 'reviews', endpoints: [{ address: `http://127.0.0.1:${gate.port}` }], connectTimeout: '30s', tls: { mode: 'ISTIO_MUTUAL', verifyIdentities: [serverId] } }],
        virtualHosts: [{
          name: 'reviews',
          domains: ['reviews'],
          routes: [
            { match: { prefix: '/later' }, route: { cluster: 'reviews', timeout: '10s' } },
            { match: { prefix: '/' }, route: { cluster: 'reviews', timeout: '50ms' } },
          ],
        }],
      },
    })
    try {
      const n = defaults.maxConnectingPerEndpoint
      // 3n requests wait while n connections are being set up (held by the gate); every one
      // of them times out while it waits.
      const statuses = await Promise.all(Array.from({ length: 3 * n }, async () => {
        const res = await request('http://reviews/', { dispatcher: mesh.dispatcher })
        await res.body.dump()
        return res.statusCode
      }))
      assert.deepEqual(new Set(statuses), new Set([504]))
      assert.equal(gate.accepted(), n, `${n} connections being set up for ${3 * n} waiting requests`)
      // The held attempts complete: nobody waits any more, so none opens another (before, each
      // took a timed-out request, dropped it, and the pool dialled again for the rest).
      while (gate.releaseOne()) await new Promise((r) => setTimeout(r, 50))
      await new Promise((r) => setTimeout(r, 200))
      assert.equal(gate.accepted(), n, `no connection opened for requests that timed out while waiting: ${gate.accepted()}`)
      // A connection that came up serves the next request.
      const res = await request('http://reviews/later', { dispatcher: mesh.dispatcher })
      assert.equal(res.statusCode, 200)
      assert.equal(await res.body.text(), 'ok')
      assert.equal(gate.accepted(), n)
    } finally {
      await mesh.close()
      await gate.close()
      await server.close()
    }
  })

  it('a failed connection attempt fails every request waiting for it (503 UF), none waits behind it', async () => {
    // A port nothing listens on: take one, then close it.
    const probe = http.createServer()
    probe.listen(0, '127.0.0.1')
    await once(probe, 'listening')
    const port = (probe.address() as AddressInfo).port
    await new Promise<void>((resolve) => probe.close(() => resolve()))
    const mesh = createMesh({
      service: 'productpage',
      config: {
        clusters: [{ name: 'gone', endpoints: [{ address: `http://127.0.0.1:${port}` }] }],
        virtualHosts: [{ name: 'gone', domains: ['gone'], routes: [{ match: { prefix: '/' }, route: { cluster: 'gone' } }] }],
      },
    })
    try {
      const results = await Promise.all(Array.from({ length: 50 }, async () => {
        const res = await request('http://gone/', { dispatcher: mesh.dispatcher })
        await res.body.dump()
        return `${res.statusCode} ${String(res.headers['x-sidecarless-response-flags'])}`
      }))
      assert.deepEqual(new Set(results), new Set(['503 UF']))
    } finally {
      await mesh.close()
    }
  })
})
