// mesh.close() drains the servers the mesh wrapped (Envoy's drain: connection: close, idle
// keep-alive connections closed, the listener closed, requests in flight finished within the
// drain timeout, then cut), with the outbound side serving the requests being drained.
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import http from 'node:http'
import net from 'node:net'
import { describe, test } from 'node:test'
import tls from 'node:tls'
import { Pool } from 'undici'
import { parse } from 'yaml'
import { createCertificateAuthority, createMesh, isMeshError, parseDuration, type Mesh, type MeshConfig } from '../src/index.js'
import { RawConnection } from './helpers/raw-http.js'
import { startUpstream } from './helpers/upstream.js'

type ResourceCounts = Record<'TCPSocketWrap' | 'TCPServerWrap' | 'Timeout', number>

function resources(): ResourceCounts {
  const counts: ResourceCounts = { TCPSocketWrap: 0, TCPServerWrap: 0, Timeout: 0 }
  for (const r of process.getActiveResourcesInfo()) if (r in counts) counts[r as keyof ResourceCounts]++
  return counts
}

/** Polls up to ~2 s for sockets, servers and timers to fall back to `baseline` (or below), and asserts they did. */
async function assertSettled(baseline: ResourceCounts): Promise<void> {
  const within = (now: ResourceCounts): boolean => now.TCPSocketWrap <= baseline.TCPSocketWrap && now.TCPServerWrap <= baseline.TCPServerWrap && now.Timeout <= baseline.Timeout
  let now = resources()
  for (let i = 0; i < 40 && !within(now); i++) {
    await new Promise((resolve) => setTimeout(resolve, 50))
    now = resources()
  }
  assert.ok(within(now), `leaked: ${JSON.stringify(now)} > ${JSON.stringify(baseline)}`)
}

function listen(server: http.Server): Promise<number> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as net.AddressInfo).port)))
}

/** A GET on a connection of its own (no pool: nothing is left open). */
function get(url: string): Promise<{ status: number; body: string; headers: http.IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    http.get(url, { agent: false }, (res) => {
      let body = ''
      res.setEncoding('utf8').on('data', (d: string) => (body += d)).on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }))
    }).on('error', reject)
  })
}

/** Resolves with the error code of a connection attempt (`ECONNREFUSED` once the server stopped accepting). */
function connectError(port: number): Promise<string> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1')
    socket.once('connect', () => {
      socket.destroy()
      resolve('connected')
    })
    socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message))
  })
}

/** A gate a handler waits on, and a signal that it got there. */
function gate(): { reached: Promise<void>; arrive: () => void; open: () => void; opened: Promise<void> } {
  let arrive!: () => void
  let open!: () => void
  const reached = new Promise<void>((r) => (arrive = r))
  const opened = new Promise<void>((r) => (open = r))
  return { reached, arrive, open, opened }
}

describe('mesh.close() drains the servers it wrapped', () => {
  test('in flight: finished with connection: close; idle keep-alive: closed at once; new connections: refused; /ready: 503 while draining; nothing leaks', async () => {
    const baseline = resources()
    const mesh = createMesh({ config: { admin: { address: '127.0.0.1:0' } } })
    const admin = await mesh.adminAddress()
    assert.match(admin ?? '', /^127\.0\.0\.1:\d+$/)
    const slow = gate()
    const created = mesh.createServer(async (req, res) => {
      if (req.url === '/slow') {
        slow.arrive()
        await slow.opened
      }
      res.end(`done ${req.url}`)
    })
    const wrapped = mesh.wrap(http.createServer((req, res) => res.end(`wrapped ${req.url}`)))
    const port = await listen(created)
    const wrappedPort = await listen(wrapped)

    const idle = await RawConnection.open(port)
    idle.send('GET /a HTTP/1.1\r\nhost: x\r\n\r\n')
    assert.match(await idle.read(/done \/a$/), /connection: keep-alive/i)
    const idleWrapped = await RawConnection.open(wrappedPort)
    idleWrapped.send('GET /b HTTP/1.1\r\nhost: x\r\n\r\n')
    await idleWrapped.read(/wrapped \/b$/)
    const busy = await RawConnection.open(port)
    busy.send('GET /slow HTTP/1.1\r\nhost: x\r\n\r\n')
    await slow.reached

    assert.equal(mesh.state, 'LIVE')
    assert.deepEqual(await get(`http://${admin}/ready`).then((r) => [r.status, r.body]), [200, 'LIVE\n'])
    const closing = mesh.close()
    assert.equal(mesh.state, 'DRAINING')
    await idle.closed
    await idleWrapped.closed
    assert.deepEqual(await get(`http://${admin}/ready`).then((r) => [r.status, r.body]), [503, 'DRAINING\n'])
    assert.equal((await get(`http://${admin}/healthz`)).status, 200, 'liveness holds while draining')
    assert.equal(await connectError(port), 'ECONNREFUSED')
    assert.equal(await connectError(wrappedPort), 'ECONNREFUSED')

    slow.open()
    const answer = await busy.untilClosed()
    assert.match(answer, /^HTTP\/1\.1 200 OK/)
    assert.match(answer, /\r\nconnection: close\r\n/i)
    assert.match(answer, /done \/slow$/)
    await closing
    assert.equal(mesh.state, 'CLOSED')
    assert.equal(await connectError(Number(admin?.split(':')[1])), 'ECONNREFUSED', 'the admin endpoint closed last')
    await assertSettled(baseline)
  })

  test('drain.timeout cuts a request that does not finish; close() still resolves and nothing leaks', async () => {
    const baseline = resources()
    const mesh = createMesh({ config: { drain: { timeout: '200ms' } } })
    const hung = gate()
    const server = mesh.createServer((req) => {
      if (req.url === '/hang') hung.arrive()
    })
    const port = await listen(server)
    const c = await RawConnection.open(port)
    c.send('GET /hang HTTP/1.1\r\nhost: x\r\n\r\n')
    await hung.reached
    await mesh.close()
    assert.equal(await c.untilClosed(), '', 'the hung request got no answer: its connection was cut')
    assert.equal(server.listening, false)
    await assertSettled(baseline)
  })

  test('drain.delay: the servers keep accepting meanwhile, every answer says connection: close; then they refuse', async () => {
    const mesh = createMesh({ config: { drain: { delay: '1500ms' } } })
    const server = mesh.createServer((req, res) => res.end(`ok ${req.url}`))
    const port = await listen(server)
    const closing = mesh.close()
    const during = await RawConnection.open(port)
    during.send('GET /late HTTP/1.1\r\nhost: x\r\n\r\n')
    const answer = await during.untilClosed()
    assert.match(answer, /^HTTP\/1\.1 200[\s\S]*\r\nconnection: close\r\n[\s\S]*ok \/late$/i)
    await closing
    assert.equal(await connectError(port), 'ECONNREFUSED')
  })

  test('the requests being drained still reach their upstreams; other outbound requests are refused at once', async () => {
    const backend = await startUpstream('backend')
    const mesh = createMesh({
      config: {
        clusters: [{ name: 'backend', endpoints: [{ address: backend.address }] }],
        virtualHosts: [{ name: 'backend', domains: ['backend'], routes: [{ match: { prefix: '/' }, route: { cluster: 'backend' } }] }],
      },
    })
    const held = gate()
    const server = mesh.createServer(async (req, res) => {
      held.arrive()
      await held.opened
      const r = await mesh.fetch(`http://backend${req.url}`)
      res.end(await r.text())
    })
    const port = await listen(server)
    const answer = get(`http://127.0.0.1:${port}/inside`)
    await held.reached
    const closing = mesh.close()
    await assert.rejects(mesh.fetch('http://backend/outside'), (err: unknown) => isMeshError(err, 'SIDECARLESS_ERR_CLOSED'))
    held.open()
    assert.deepEqual(await answer.then((r) => [r.status, r.body]), [200, 'backend /inside'])
    await closing
    await assert.rejects(mesh.fetch('http://backend/after'), (err: unknown) => isMeshError(err, 'SIDECARLESS_ERR_CLOSED'))
    assert.deepEqual(backend.seen.map((s) => s.url), ['/inside'])
    await backend.close()
  })

  test("the app's own server.close() is graceful too: the response in flight says connection: close, and its connection closes", async () => {
    const mesh = createMesh()
    try {
      const slow = gate()
      const server = mesh.createServer(async (req, res) => {
        slow.arrive()
        await slow.opened
        res.end(`ok ${req.url}`)
      })
      const port = await listen(server)
      const c = await RawConnection.open(port)
      c.send('GET /one HTTP/1.1\r\nhost: x\r\n\r\n')
      await slow.reached
      const closed = new Promise<void>((resolve) => server.close(() => resolve()))
      slow.open()
      const answer = await c.untilClosed()
      assert.match(answer, /^HTTP\/1\.1 200[\s\S]*\r\nconnection: close\r\n[\s\S]*ok \/one$/i)
      await closed
    } finally {
      await mesh.close()
    }
  })

  test('an upgraded connection (WebSocket) is left to the app until the drain timeout, then cut', async () => {
    const baseline = resources()
    const mesh = createMesh({ config: { drain: { timeout: '300ms' } } })
    const server = mesh.createServer()
    server.on('upgrade', (_req, socket: net.Socket) => {
      socket.write('HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\n')
    })
    const port = await listen(server)
    const c = await RawConnection.open(port)
    c.send('GET /ws HTTP/1.1\r\nhost: x\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\n')
    await c.read(/101 Switching Protocols/)
    await mesh.close()
    await c.closed
    assert.equal(server.listening, false)
    await assertSettled(baseline)
  })

  test('mTLS (listener.mtls STRICT): a hung request over a verified connection is cut at the drain timeout; nothing leaks', async () => {
    const ca = createCertificateAuthority({ trustDomain: 'cluster.local' })
    const serverId = ca.issue({ spiffeId: 'spiffe://cluster.local/ns/default/sa/server' })
    const caller = ca.issue({ spiffeId: 'spiffe://cluster.local/ns/default/sa/caller' })
    const baseline = resources()
    const mesh = createMesh({ config: { identity: { certificate: serverId.certificate, privateKey: serverId.privateKey, trustBundle: serverId.trustBundle }, listener: { mtls: { mode: 'STRICT' } }, drain: { timeout: '300ms' } } })
    const hung = gate()
    const server = mesh.createServer(() => hung.arrive())
    const port = await listen(server)
    const socket = tls.connect({ host: '127.0.0.1', port, cert: caller.certificate, key: caller.privateKey, ca: caller.trustBundle, checkServerIdentity: () => undefined })
    socket.on('error', () => undefined)
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()))
    await new Promise<void>((resolve) => socket.once('secureConnect', () => resolve()))
    // A second connection still in its handshake when the drain starts: it is ended too.
    const pending = net.connect(port, '127.0.0.1')
    pending.on('error', () => undefined)
    const pendingClosed = new Promise<void>((resolve) => pending.once('close', () => resolve()))
    socket.write('GET /hang HTTP/1.1\r\nhost: x\r\n\r\n')
    await hung.reached
    await mesh.close()
    await closed
    await pendingClosed
    await assertSettled(baseline)
  })

  test('close() of a mesh whose servers were closed already, or never listened, resolves at once', async () => {
    const mesh = createMesh()
    mesh.createServer()
    const server = mesh.createServer((_req, res) => res.end())
    await listen(server)
    await new Promise<void>((resolve) => server.close(() => resolve()))
    await mesh.close()
    assert.equal(mesh.state, 'CLOSED')
  })

  test('chaos: 300 keep-alive requests with close() in the middle: every request the app received got its whole answer; each client request ends once', async () => {
    const baseline = resources()
    const mesh = createMesh()
    let received = 0
    let answered = 0
    let closing: Promise<void> | undefined
    const server = mesh.createServer((req, res) => {
      received++
      // Mid-stream: 8 connections busy, the rest queued in the pool.
      if (received === 100) closing = mesh.close()
      res.once('finish', () => answered++)
      setTimeout(() => res.end(`ok ${req.url}`), (received % 7) * 5)
    })
    const port = await listen(server)
    const pool = new Pool(`http://127.0.0.1:${port}`, { connections: 8, pipelining: 1 })
    const outcomes: string[] = []
    const calls = Array.from({ length: 300 }, async (_, i) => {
      try {
        const r = await pool.request({ path: `/r${i}`, method: 'GET' })
        const body = await r.body.text()
        assert.equal(body, `ok /r${i}`)
        outcomes.push(`status ${r.statusCode}`)
      } catch (err) {
        // A connection refused, or closed by the drain before the request went out.
        outcomes.push(`error ${(err as { code?: string }).code ?? String(err)}`)
      }
    })
    await Promise.all(calls)
    await closing
    await pool.close()
    assert.equal(outcomes.length, 300, 'each request ended exactly once')
    const ok = outcomes.filter((o) => o === 'status 200').length
    assert.ok(ok >= 100, `the requests before close() were served: ${ok}`)
    assert.ok(ok < 300, 'the drain refused the rest')
    assert.equal(received, answered, 'no request the app received was cut')
    assert.equal(ok, answered, 'each answer the app finished reached the client')
    for (const o of outcomes) assert.match(o, /^(status 200|error (ECONNREFUSED|UND_ERR_SOCKET|ECONNRESET|EPIPE))$/)
    await assertSettled(baseline)
  })
})

describe('mesh.wrap() and the register hook', () => {
  test("a server wrapped implicitly (the register hook's wrap) is taken over by an app's explicit wrap; two explicit wraps are refused", async () => {
    const register = createMesh({ config: { listener: { authorization: [{ name: 'r', action: 'DENY', rules: [{ to: [{ operation: { paths: ['/register-denied'] } }] }] }] } } })
    const app = createMesh({ config: { listener: { authorization: [{ name: 'a', action: 'DENY', rules: [{ to: [{ operation: { paths: ['/app-denied'] } }] }] }] } } })
    const other = createMesh()
    try {
      const server = http.createServer((req, res) => res.end(`ok ${req.url}`))
      register.wrapImplicitly(server)
      assert.equal(app.wrap(server), server)
      register.wrapImplicitly(server) // the hook never takes it back
      const port = await listen(server)
      assert.equal((await get(`http://127.0.0.1:${port}/app-denied`)).status, 403)
      assert.equal((await get(`http://127.0.0.1:${port}/register-denied`)).status, 200)
      assert.throws(() => other.wrap(server), (err: unknown) => isMeshError(err, 'SIDECARLESS_ERR_INVALID_ARGUMENT') && /wrap it with that mesh only/.test(err.message))
      // Its new owner drains it.
      await app.close()
      assert.equal(server.listening, false)
    } finally {
      await Promise.all([register.close(), app.close(), other.close()])
    }
  })
})

describe('drain options', () => {
  test('a drain option that is not a duration is refused; the option overrides the config', async () => {
    assert.throws(() => createMesh({ drain: { timeout: 'soon' } }), (err: unknown) => isMeshError(err, 'SIDECARLESS_ERR_INVALID_ARGUMENT') && /options\.drain\.timeout/.test(err.message))
    const mesh: Mesh = createMesh({ config: { drain: { timeout: '5s', delay: '1s' } }, drain: { timeout: '2s' } })
    assert.deepEqual(mesh.drainTimes(), { timeoutMs: 2000, delayMs: 1000 }, 'per field: the config keeps the delay')
    await mesh.close()
    const byConfig = createMesh({ config: { drain: { timeout: '5s', delay: '1s' } } })
    assert.deepEqual(byConfig.drainTimes(), { timeoutMs: 5000, delayMs: 1000 })
    await byConfig.close()
    const plain = createMesh()
    assert.deepEqual(plain.drainTimes(), { timeoutMs: 20_000, delayMs: 0 })
    await plain.close()
  })

  test("the README's Deployment gives the drain room: grace period ≥ preStop + delay + timeout + 10 s; probes on the admin port", () => {
    const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8')
    const section = readme.slice(readme.indexOf('## On Kubernetes'), readme.indexOf('\n## ', readme.indexOf('## On Kubernetes') + 5))
    const meshConfig = parse(/```yaml\n([\s\S]*?)```/.exec(section)?.[1] ?? '') as MeshConfig
    const deployment = parse(/```yml\n([\s\S]*?)```/.exec(section)?.[1] ?? '') as {
      spec: { template: { spec: { terminationGracePeriodSeconds: number; containers: Array<{ ports: Array<{ name: string; containerPort: number }>; readinessProbe: { httpGet: { path: string; port: string } }; livenessProbe: { httpGet: { path: string; port: string } }; lifecycle: { preStop: { sleep: { seconds: number } } } }> } } }
    }
    const pod = deployment.spec.template.spec
    const container = pod.containers[0]!
    const adminPort = Number(meshConfig.admin?.address.split(':').at(-1))
    const statusPort = container.ports.find((p) => p.name === container.readinessProbe.httpGet.port)
    assert.equal(statusPort?.containerPort, adminPort)
    assert.deepEqual([container.readinessProbe.httpGet.path, container.livenessProbe.httpGet.path], ['/ready', '/healthz'])
    const needMs = container.lifecycle.preStop.sleep.seconds * 1000 + (parseDuration(meshConfig.drain?.delay) ?? 0) + (parseDuration(meshConfig.drain?.timeout) ?? 20_000) + 10_000
    assert.ok(pod.terminationGracePeriodSeconds * 1000 >= needMs, `${pod.terminationGracePeriodSeconds}s < ${needMs}ms`)
  })
})
