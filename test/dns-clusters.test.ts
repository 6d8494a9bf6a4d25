// strict_dns and logical_dns clusters: background resolution with Envoy's semantics, against a
// real DNS server (test/helpers/dns-server.ts) named by the clusters' `dnsResolvers`.
import assert from 'node:assert/strict'
import dns from 'node:dns'
import { mkdtempSync, writeFileSync } from 'node:fs'
import http from 'node:http'
import https from 'node:https'
import type { AddressInfo, Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { TLSSocket } from 'node:tls'
import { after, before, describe, test } from 'node:test'
import { request } from 'undici'
import { createMesh, validateConfig, type MeshConfig } from '../src/index.js'
import type { ClusterConfig } from '../src/config/types.js'
import type { Cluster } from '../src/upstream/cluster.js'
import { JitteredExponentialBackOff } from '../src/upstream/dns/backoff.js'
import { HostsFile, parseHosts } from '../src/upstream/dns/hosts-file.js'
import { DnsResolver } from '../src/upstream/dns/resolver.js'
import { ResolveTarget, type RefreshPolicy } from '../src/upstream/dns/resolve-target.js'
import { TestDnsServer } from './helpers/dns-server.js'
import { opensslCert, tempDir } from './helpers/pki.js'

/** An HTTP(S) server on `host` (any 127.x address on Linux) that answers `<name> <path>` and counts connections. */
interface Server {
  readonly name: string
  readonly host: string
  readonly port: number
  connections: number
  /** Connections closed so far. */
  closed: number
  /** SNI of each TLS connection. */
  readonly servernames: (string | false)[]
  readonly hostHeaders: string[]
  /** Requests held until released (`hold` mode). */
  readonly held: (() => void)[]
  hold: boolean
  dropConnections(): void
  close(): Promise<void>
}

async function serve(name: string, host: string, port = 0, tls?: { cert: string; key: string }): Promise<Server> {
  const sockets = new Set<Socket>()
  const s: Server = {
    name, host, port: 0, connections: 0, closed: 0, servernames: [], hostHeaders: [], held: [], hold: false,
    dropConnections: () => {
      for (const so of sockets) so.destroy()
    },
    close: () => new Promise<void>((resolve) => {
      for (const so of sockets) so.destroy()
      server.close(() => resolve())
    }),
  }
  const handler = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    s.hostHeaders.push(req.headers.host ?? '')
    req.resume()
    const answer = (): void => {
      res.end(`${name} ${req.url}`)
    }
    if (s.hold) s.held.push(answer)
    else answer()
  }
  const server = tls === undefined ? http.createServer(handler) : https.createServer(tls, handler)
  server.on(tls === undefined ? 'connection' : 'secureConnection', (so: Socket) => {
    s.connections++
    if (tls !== undefined) s.servernames.push((so as TLSSocket).servername ?? false)
    sockets.add(so)
    so.on('close', () => {
      sockets.delete(so)
      s.closed++
    })
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, host, () => resolve())
  })
  ;(s as { port: number }).port = (server.address() as AddressInfo).port
  return s
}

/** Polls `check` until it holds (up to ~10 s on a loaded machine). */
async function until(check: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 500; i++) {
    if (check()) return
    await new Promise((r) => setTimeout(r, 20))
  }
  assert.fail(`timed out waiting until ${what}`)
}

async function get(mesh: ReturnType<typeof createMesh>, url: string): Promise<{ status: number; body: string; flags: string | undefined }> {
  const res = await request(url, { dispatcher: mesh.dispatcher })
  const body = await res.body.text()
  const flags = res.headers['x-sidecarless-response-flags']
  return { status: res.statusCode, body, flags: typeof flags === 'string' ? flags : undefined }
}

function cluster(mesh: ReturnType<typeof createMesh>, name: string): Cluster {
  return mesh.snapshot.clusters.get(name) as Cluster
}

function meshConfig(clusters: ClusterConfig[]): MeshConfig {
  return {
    clusters,
    virtualHosts: clusters.map((c) => ({ name: c.name, domains: [c.name], routes: [{ match: { prefix: '/' }, route: { cluster: c.name } }] })),
  }
}

/** A DNS cluster of one endpoint, asking the test DNS server. */
function dnsCluster(name: string, type: 'strict_dns' | 'logical_dns', address: string, extra: Partial<ClusterConfig> = {}): ClusterConfig {
  return { name, type, dnsResolvers: [dnsServer.address], endpoints: [{ address }], ...extra }
}

let dnsServer: TestDnsServer
// Linux routes all of 127/8 to lo, so servers can listen on 127.0.0.2, .3, .4; elsewhere the tests that need them skip.
let noLoopbackAliases: string | false = false

before(async () => {
  dnsServer = await TestDnsServer.start()
  try {
    await (await serve('probe', '127.0.0.4')).close()
  } catch (err) {
    noLoopbackAliases = `this system cannot listen on 127.0.0.2-4 (${(err as NodeJS.ErrnoException).code ?? String(err)})`
  }
})
after(async () => {
  await dnsServer.close()
})

describe('DNS answers', () => {
  test('the hosts file: names case-insensitive, comments, every address of a name once', () => {
    const table = parseHosts([
      '# comment', '127.0.0.1 localhost Local.Test', '::1 localhost ip6-localhost # v6', '', '10.0.0.1',
      '10.0.0.2 local.test', '10.0.0.2 local.test', 'not-an-ip foo', '',
    ].join('\n'))
    assert.deepEqual(table.get('localhost'), [{ address: '127.0.0.1', family: 4 }, { address: '::1', family: 6 }])
    assert.deepEqual(table.get('local.test'), [{ address: '127.0.0.1', family: 4 }, { address: '10.0.0.2', family: 4 }])
    assert.equal(table.get('foo'), undefined)
  })

  test('lookup families: auto prefers IPv6, v4_preferred IPv4, all gives both (IPv6 first), *_only one', async () => {
    dnsServer.set('both.fam.test', { a: ['10.1.0.1', '10.1.0.2'], aaaa: ['fd00::1'], ttl: 7 })
    dnsServer.set('v4.fam.test', { a: ['10.1.0.3'], ttl: 9 })
    const r = new DnsResolver([dnsServer.address], new HostsFile(join(tmpdir(), 'sidecarless-no-such-hosts-file')))
    const addrs = async (name: string, family: Parameters<DnsResolver['resolve']>[1]) => (await r.resolve(name, family)).addresses.map((x) => x.address)
    assert.deepEqual(await addrs('both.fam.test', 'auto'), ['fd00::1'])
    assert.deepEqual(await addrs('v4.fam.test', 'auto'), ['10.1.0.3'])
    assert.deepEqual(await addrs('both.fam.test', 'v4_preferred'), ['10.1.0.1', '10.1.0.2'])
    assert.deepEqual(await addrs('both.fam.test', 'all'), ['fd00::1', '10.1.0.1', '10.1.0.2'])
    assert.deepEqual(await addrs('both.fam.test', 'v4_only'), ['10.1.0.1', '10.1.0.2'])
    assert.deepEqual(await addrs('v4.fam.test', 'v6_only'), [])
    const answer = await r.resolve('both.fam.test', 'v4_only')
    assert.equal(answer.source, 'dns')
    assert.deepEqual(answer.addresses.map((x) => x.ttl), [7, 7])
  })

  test('a name that does not exist is an empty answer; a server failure is an error with its code', async () => {
    dnsServer.set('broken.fam.test', { rcode: 'SERVFAIL' })
    const r = new DnsResolver([dnsServer.address], new HostsFile(join(tmpdir(), 'sidecarless-no-such-hosts-file')))
    assert.deepEqual((await r.resolve('nothing-here.invalid', 'auto')).addresses, [])
    await assert.rejects(r.resolve('broken.fam.test', 'v4_only'), (err: NodeJS.ErrnoException) => err.code === 'ESERVFAIL')
  })

  test('close() abandons a resolution under way: no fallback question to the other family', async () => {
    dnsServer.set('halfway.fam.test', { a: ['10.3.0.1'], drop: 'AAAA' })
    const r = new DnsResolver([dnsServer.address], new HostsFile(join(tmpdir(), 'sidecarless-no-such-hosts-file')))
    const pending = r.resolve('halfway.fam.test', 'auto')
    await until(() => dnsServer.count('halfway.fam.test', 'AAAA') > 0, 'the AAAA question was asked')
    r.close()
    await assert.rejects(pending, (err: NodeJS.ErrnoException) => err.code === 'ECANCELLED')
    await new Promise((resolve) => setTimeout(resolve, 50)) // a question sent would arrive by now
    assert.equal(dnsServer.count('halfway.fam.test', 'A'), 0)
    await assert.rejects(r.resolve('halfway.fam.test', 'v4_only'), (err: NodeJS.ErrnoException) => err.code === 'ECANCELLED')
    assert.equal(dnsServer.count('halfway.fam.test', 'A'), 0, 'a closed resolver asks nothing')
  })

  test('the hosts file answers before DNS; an IP literal answers itself', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sidecarless-hosts-'))
    const file = join(dir, 'hosts')
    writeFileSync(file, '127.0.0.9 pinned.fam.test\n')
    dnsServer.set('pinned.fam.test', { a: ['10.9.9.9'] })
    const before = dnsServer.count('pinned.fam.test')
    const r = new DnsResolver([dnsServer.address], new HostsFile(file))
    const answer = await r.resolve('PINNED.fam.test', 'auto')
    assert.deepEqual(answer, { addresses: [{ address: '127.0.0.9', family: 4, ttl: undefined }], source: 'hosts' })
    assert.equal(dnsServer.count('pinned.fam.test'), before, 'no DNS question for a name the hosts file lists')
    assert.deepEqual(await r.resolve('10.0.0.7', 'v6_only'), { addresses: [{ address: '10.0.0.7', family: 4, ttl: undefined }], source: 'literal' })
  })

  test('the next refresh: the refresh rate plus jitter; the TTL with respectDnsTtl; the back-off after a failure', async () => {
    dnsServer.set('sched.fam.test', { a: ['10.2.0.1'], ttl: 30 })
    dnsServer.set('schedfail.fam.test', { rcode: 'SERVFAIL' })
    const r = new DnsResolver([dnsServer.address], new HostsFile(join(tmpdir(), 'sidecarless-no-such-hosts-file')))
    const counters = { attempt: 0, success: 0, failure: 0, noRebuild: 0 }
    const due = async (name: string, policy: RefreshPolicy): Promise<number> => {
      const target = new ResolveTarget(name, 'v4_only', false, r, policy, counters, () => undefined)
      await target.start()
      const inMs = (target.nextAt ?? NaN) - performance.now()
      target.stop()
      return inMs
    }
    const jittered = await due('sched.fam.test', { refreshMs: 10_000, respectTtl: false, jitterMs: 5_000, failure: null })
    assert.ok(jittered > 5_000 && jittered <= 15_000, `refresh 10s + jitter < 5s: ${jittered}`)
    const ttl = await due('sched.fam.test', { refreshMs: 10_000, respectTtl: true, jitterMs: 0, failure: null })
    assert.ok(ttl > 25_000 && ttl <= 30_000, `the 30s TTL: ${ttl}`)
    const backedOff = await due('schedfail.fam.test', { refreshMs: 10_000, respectTtl: true, jitterMs: 0, failure: { baseMs: 1_000, maxMs: 4_000 } })
    assert.ok(backedOff < 1_000, `the first back-off is below baseInterval: ${backedOff}`)
    const fixed = await due('schedfail.fam.test', { refreshMs: 10_000, respectTtl: false, jitterMs: 0, failure: null })
    assert.ok(fixed > 5_000 && fixed <= 10_000, `no dnsFailureRefreshRate: the refresh rate: ${fixed}`)
    assert.deepEqual(counters, { attempt: 4, success: 2, failure: 2, noRebuild: 0 })
  })

  test('failure back-off: full jitter, doubling from baseInterval up to maxInterval, reset by a success', () => {
    const top = new JitteredExponentialBackOff(100, 500, () => 0.999999)
    assert.deepEqual([top.next(), top.next(), top.next(), top.next(), top.next()], [99, 199, 399, 499, 499])
    top.reset()
    assert.equal(top.next(), 99)
    const bottom = new JitteredExponentialBackOff(100, 500, () => 0)
    assert.equal(bottom.next(), 0)
  })
})

describe('strict_dns', () => {
  test('every address is an endpoint; a changed answer adds and removes endpoints, unchanged ones keep their pools', async (t) => {
    if (noLoopbackAliases !== false) return t.skip(noLoopbackAliases)
    const shared = await sharedPort(['127.0.0.2', '127.0.0.3', '127.0.0.4'])
    const [x, y, z] = shared.servers as [Server, Server, Server]
    dnsServer.set('pool.strict.test', { a: ['127.0.0.2', '127.0.0.3'] })
    const mesh = createMesh({
      config: meshConfig([dnsCluster('pool', 'strict_dns', `pool.strict.test:${shared.port}`, { dnsRefreshRate: '30ms', dnsLookupFamily: 'v4_only' })]),
    })
    try {
      await until(() => cluster(mesh, 'pool').hosts.length === 2, 'the first answer is in')
      const seen = new Set<string>()
      for (let i = 0; i < 6; i++) seen.add((await get(mesh, 'http://pool/')).body.split(' ')[0] as string)
      assert.deepEqual([...seen].sort(), [x.name, y.name])
      const hostsBefore = cluster(mesh, 'pool').hosts
      assert.deepEqual(hostsBefore.map((h) => h.address.hostPort).sort(), [`127.0.0.2:${shared.port}`, `127.0.0.3:${shared.port}`])
      // Several refreshes with the same answer: same hosts, same keep-alive connections.
      const attempts = cluster(mesh, 'pool').dnsStats()?.updateAttempt ?? 0
      await until(() => (cluster(mesh, 'pool').dnsStats()?.updateAttempt ?? 0) >= attempts + 3, 'three more refreshes')
      for (let i = 0; i < 6; i++) assert.equal((await get(mesh, 'http://pool/')).status, 200)
      assert.deepEqual(cluster(mesh, 'pool').hosts, hostsBefore, 'the same Host objects (pools)')
      assert.equal(x.closed + y.closed, 0, 'no connection closed across refreshes')
      assert.ok((cluster(mesh, 'pool').dnsStats()?.updateNoRebuild ?? 0) >= 3)

      // .2 goes, .4 comes; a request in flight to .2 finishes (the endpoint drains).
      x.hold = true
      const inFlight = (async () => {
        for (;;) {
          const r = await get(mesh, 'http://pool/slow')
          if (r.body.startsWith(x.name)) return r
        }
      })()
      await until(() => x.held.length > 0, 'a request waits at .2')
      dnsServer.set('pool.strict.test', { a: ['127.0.0.4', '127.0.0.3'] })
      await until(() => cluster(mesh, 'pool').hosts.map((h) => h.address.hostname).sort().join() === '127.0.0.3,127.0.0.4', 'the new answer is in')
      const kept = cluster(mesh, 'pool').hosts.find((h) => h.address.hostname === '127.0.0.3')
      assert.equal(kept, hostsBefore.find((h) => h.address.hostname === '127.0.0.3'), 'the endpoint in both answers keeps its host')
      for (const release of x.held.splice(0)) release()
      const drained = await inFlight
      assert.equal(drained.status, 200, 'the request in flight to the removed endpoint completed')
      const seenAfter = new Set<string>()
      for (let i = 0; i < 6; i++) seenAfter.add((await get(mesh, 'http://pool/')).body.split(' ')[0] as string)
      assert.deepEqual([...seenAfter].sort(), [y.name, z.name])
    } finally {
      await mesh.close()
      await shared.close()
    }
  })
})

describe('strict_dns under churn', () => {
  test('answers changing every few milliseconds under load: every request ends once, with 200; nothing is left open', async (t) => {
    if (noLoopbackAliases !== false) return t.skip(noLoopbackAliases)
    const shared = await sharedPort(['127.0.0.2', '127.0.0.3', '127.0.0.4'])
    const answers = [['127.0.0.2', '127.0.0.3'], ['127.0.0.3', '127.0.0.4'], ['127.0.0.4'], ['127.0.0.2', '127.0.0.4']]
    dnsServer.set('churn.strict.test', { a: answers[0] })
    const mesh = createMesh({ config: meshConfig([dnsCluster('churn', 'strict_dns', `churn.strict.test:${shared.port}`, { dnsRefreshRate: '5ms' })]) })
    let flips = 0
    const flipper = setInterval(() => dnsServer.set('churn.strict.test', { a: answers[++flips % answers.length] }), 7)
    try {
      await until(() => cluster(mesh, 'churn').hosts.length > 0, 'the first answer is in')
      const outcomes = new Map<string, number>()
      await Promise.all(Array.from({ length: 40 }, async () => {
        for (let i = 0; i < 50; i++) {
          const r = await get(mesh, 'http://churn/')
          const key = `${r.status} ${r.flags ?? ''}`
          outcomes.set(key, (outcomes.get(key) ?? 0) + 1)
        }
      }))
      clearInterval(flipper)
      assert.deepEqual([...outcomes], [['200 ', 2000]])
      assert.ok(shared.servers.every((sv) => sv.hostHeaders.length > 0), 'the answers changed during the run: every address served')
      assert.ok(flips > 3)
    } finally {
      clearInterval(flipper)
      await mesh.close()
    }
    const open = () => shared.servers.reduce((n, s) => n + s.connections - s.closed, 0)
    await until(() => open() === 0, 'every upstream connection closed after close()')
    await shared.close()
  })
})

/** Servers on several loopback addresses sharing one port (a DNS answer carries addresses, not ports). */
async function sharedPort(hosts: readonly string[]): Promise<{ port: number; servers: Server[]; close(): Promise<void> }> {
  for (let attempt = 0; ; attempt++) {
    const servers = [await serve('s0', hosts[0] as string)]
    const port = (servers[0] as Server).port
    try {
      for (let i = 1; i < hosts.length; i++) servers.push(await serve(`s${i}`, hosts[i] as string, port))
      return { port, servers, close: () => Promise.all(servers.map((s) => s.close())).then(() => undefined) }
    } catch (err) {
      await Promise.all(servers.map((s) => s.close()))
      if (attempt === 20) throw err
    }
  }
}

describe('strict_dns refresh', () => {
  test('respectDnsTtl refreshes on the record TTL; without it, on dnsRefreshRate', async () => {
    dnsServer.set('ttl.strict.test', { a: ['127.0.0.1'], ttl: 1 })
    dnsServer.set('rate.strict.test', { a: ['127.0.0.1'], ttl: 1 })
    const common = { type: 'strict_dns' as const, dnsRefreshRate: '1h', dnsLookupFamily: 'V4_ONLY' as const, dnsResolvers: [dnsServer.address] }
    const mesh = createMesh({
      config: meshConfig([
        { name: 'ttl', ...common, respectDnsTtl: true, endpoints: [{ address: 'ttl.strict.test:1' }] },
        { name: 'rate', ...common, endpoints: [{ address: 'rate.strict.test:1' }] },
      ]),
    })
    try {
      await until(() => (cluster(mesh, 'ttl').dnsStats()?.updateNoRebuild ?? 0) >= 2, 'the TTL cluster had two more answers')
      assert.ok(dnsServer.count('ttl.strict.test') >= 3)
      assert.equal(dnsServer.count('rate.strict.test'), 1, 'the other asked once: its next refresh is an hour away')
    } finally {
      await mesh.close()
    }
  })

  test('a failed lookup keeps the endpoints and backs off; a name that stops existing leaves none (503 UH)', async () => {
    dnsServer.set('flaky.strict.test', { a: ['127.0.0.1'] })
    const up = await serve('flaky', '127.0.0.1')
    const mesh = createMesh({
      config: meshConfig([{
        name: 'flaky', type: 'strict_dns', dnsRefreshRate: '20ms', dnsFailureRefreshRate: { baseInterval: '20ms', maxInterval: '40ms' },
        dnsResolvers: [dnsServer.address], dnsLookupFamily: 'v4_only', endpoints: [{ address: `flaky.strict.test:${up.port}` }],
      }]),
    })
    try {
      await until(() => cluster(mesh, 'flaky').hosts.length === 1, 'the first answer is in')
      dnsServer.set('flaky.strict.test', { rcode: 'SERVFAIL' })
      const failures = cluster(mesh, 'flaky').dnsStats()?.updateFailure ?? 0
      await until(() => (cluster(mesh, 'flaky').dnsStats()?.updateFailure ?? 0) >= failures + 3, 'three failed refreshes')
      const stats = cluster(mesh, 'flaky').dnsStats()
      assert.equal(stats?.targets[0]?.lastFailure, 'ESERVFAIL')
      assert.deepEqual(stats?.targets[0]?.addresses, ['127.0.0.1'], 'the last answer stays')
      assert.equal((await get(mesh, 'http://flaky/x')).body, 'flaky /x')
      dnsServer.delete('flaky.strict.test')
      await until(() => cluster(mesh, 'flaky').hosts.length === 0, 'NXDOMAIN removed the endpoint')
      const r = await get(mesh, 'http://flaky/x')
      assert.deepEqual([r.status, r.body, r.flags], [503, 'no healthy upstream', 'UH'])
      assert.equal(cluster(mesh, 'flaky').dnsStats()?.targets[0]?.lastFailure, undefined, 'NXDOMAIN is an answer, not a failure (as Envoy)')
    } finally {
      await mesh.close()
      await up.close()
    }
  })

  test('metrics: snapshot().dns and the cluster update series count attempts, successes, failures and unchanged answers', async () => {
    dnsServer.set('counted.strict.test', { a: ['127.0.0.1', '127.0.0.2'] })
    const mesh = createMesh({
      config: meshConfig([
        {
          name: 'counted', type: 'strict_dns', dnsRefreshRate: '20ms', dnsFailureRefreshRate: { baseInterval: '20ms', maxInterval: '40ms' },
          dnsResolvers: [dnsServer.address], dnsLookupFamily: 'v4_only', endpoints: [{ address: 'counted.strict.test:1' }],
        },
        { name: 'static', endpoints: [{ address: '127.0.0.1:1' }] },
      ]),
    })
    try {
      await until(() => (mesh.metrics.snapshot().dns?.['counted']?.updateNoRebuild ?? 0) >= 2, 'two unchanged answers')
      dnsServer.set('counted.strict.test', { rcode: 'SERVFAIL' })
      await until(() => (mesh.metrics.snapshot().dns?.['counted']?.updateFailure ?? 0) >= 1, 'a failed refresh')
      const dns = mesh.metrics.snapshot().dns
      assert.deepEqual(Object.keys(dns ?? {}), ['counted'], 'a static cluster resolves nothing')
      const c = dns?.['counted']
      assert.ok(c !== undefined && c.updateAttempt >= c.updateSuccess + c.updateFailure && c.updateSuccess >= 3, JSON.stringify(c))
      assert.deepEqual(c.targets.map((t) => [t.endpoint, t.addresses, t.lastFailure]), [['counted.strict.test:1', ['127.0.0.1', '127.0.0.2'], 'ESERVFAIL']])
      const text = mesh.metrics.prometheus()
      const value = (series: string): number => Number(new RegExp(`^${series}\\{cluster_name="counted"\\} (\\d+)$`, 'm').exec(text)?.[1] ?? NaN)
      for (const series of ['update_attempt', 'update_success', 'update_failure', 'update_no_rebuild']) {
        assert.ok(value(`sidecarless_cluster_${series}_total`) >= 1, `sidecarless_cluster_${series}_total in\n${text}`)
      }
      assert.match(text, /^sidecarless_cluster_dns_addresses\{cluster_name="counted",endpoint="counted\.strict\.test:1"\} 2$/m)
      assert.doesNotMatch(text, /cluster_update_attempt_total\{cluster_name="static"/)
    } finally {
      await mesh.close()
    }
  })
})

describe('logical_dns', () => {
  test('new connections go to the first address of the latest answer; open ones keep theirs; one host throughout', async (t) => {
    if (noLoopbackAliases !== false) return t.skip(noLoopbackAliases)
    const shared = await sharedPort(['127.0.0.2', '127.0.0.3'])
    const [x, y] = shared.servers as [Server, Server]
    dnsServer.set('moving.logical.test', { a: ['127.0.0.2', '127.0.0.3'] })
    const mesh = createMesh({
      config: meshConfig([dnsCluster('moving', 'logical_dns', `moving.logical.test:${shared.port}`, { dnsRefreshRate: '20ms', dnsLookupFamily: 'v4_only' })]),
    })
    try {
      await until(() => cluster(mesh, 'moving').hosts.length === 1, 'the first answer is in')
      const host = cluster(mesh, 'moving').hosts[0]
      assert.equal(host?.address.hostPort, `moving.logical.test:${shared.port}`, 'the logical host keeps the name')
      assert.equal(host?.connectAddress, '127.0.0.2')
      for (let i = 0; i < 4; i++) assert.equal((await get(mesh, 'http://moving/')).body, `${x.name} /`)
      assert.deepEqual([...new Set(x.hostHeaders)], ['moving'], 'Host is the caller\'s authority')

      dnsServer.set('moving.logical.test', { a: ['127.0.0.3'] })
      await until(() => host?.connectAddress === '127.0.0.3', 'the new answer is in')
      assert.equal((await get(mesh, 'http://moving/')).body, `${x.name} /`, 'the open connection keeps its address')
      x.dropConnections()
      await until(() => host?.pool.stats.connected === 0, 'the pool saw the connection close')
      assert.equal((await get(mesh, 'http://moving/')).body, `${y.name} /`, 'a new connection goes to the new address')
      assert.equal(cluster(mesh, 'moving').hosts[0], host, 'the same host (and pool) throughout')
    } finally {
      await mesh.close()
      await shared.close()
    }
  })

  test('once resolved, a name that stops resolving keeps its last address (a failure, as Envoy)', async () => {
    const up = await serve('sticky', '127.0.0.1')
    dnsServer.set('sticky.logical.test', { a: ['127.0.0.1'] })
    const mesh = createMesh({
      config: meshConfig([dnsCluster('sticky', 'logical_dns', `sticky.logical.test:${up.port}`, { dnsRefreshRate: '20ms' })]),
    })
    try {
      await until(() => cluster(mesh, 'sticky').hosts.length === 1, 'the first answer is in')
      dnsServer.delete('sticky.logical.test')
      const failures = cluster(mesh, 'sticky').dnsStats()?.updateFailure ?? 0
      await until(() => (cluster(mesh, 'sticky').dnsStats()?.updateFailure ?? 0) > failures, 'a refresh found nothing')
      assert.equal(cluster(mesh, 'sticky').dnsStats()?.targets[0]?.lastFailure, 'ENOTFOUND')
      assert.equal((await get(mesh, 'http://sticky/')).body, 'sticky /')
    } finally {
      await mesh.close()
      await up.close()
    }
  })

  test('a name that does not resolve: a burst of requests answers 503 UH at once, with no lookup on the request path', async () => {
    const config = meshConfig([dnsCluster('gone', 'logical_dns', 'reviews-v2.invalid:9080', { dnsRefreshRate: '1h' })])
    const mesh = createMesh({ config })
    const lookup = dns.lookup
    let lookups = 0
    try {
      await until(() => cluster(mesh, 'gone').dnsStats()?.targets[0]?.lastFailure === 'ENOTFOUND', 'the name was found not to exist')
      const questions = dnsServer.count('reviews-v2.invalid')
      dns.lookup = ((...args: Parameters<typeof lookup>) => {
        lookups++
        return (lookup as (...a: unknown[]) => unknown)(...args)
      }) as typeof lookup
      const replies = await Promise.all(Array.from({ length: 1000 }, () => get(mesh, 'http://gone/')))
      dns.lookup = lookup
      assert.deepEqual([...new Set(replies.map((r) => `${r.status} ${r.body} ${r.flags ?? ''}`))], ['503 no healthy upstream UH'])
      assert.equal(dnsServer.count('reviews-v2.invalid'), questions, 'no DNS question during the burst')
      assert.equal(lookups, 0, 'no getaddrinfo during the burst')
    } finally {
      dns.lookup = lookup
      await mesh.close()
    }
  })

  test('before the first answer there is no endpoint (UH at once); close() abandons the lookup', async () => {
    dnsServer.set('silent.logical.test', { drop: true })
    const mesh = createMesh({
      config: meshConfig([{ name: 'silent', type: 'logical_dns', dnsResolvers: [dnsServer.address], endpoints: [{ address: 'silent.logical.test:80' }] }]),
    })
    try {
      await until(() => dnsServer.count('silent.logical.test') > 0, 'the question was asked')
      const r = await get(mesh, 'http://silent/')
      assert.deepEqual([r.status, r.flags], [503, 'UH'])
    } finally {
      await mesh.close()
    }
    assert.deepEqual(process.getActiveResourcesInfo().filter((n) => n === 'QueryReqWrap' || n === 'GetAddrInfoReqWrap'), [], 'no DNS query left pending')
  })
})

describe('TLS to DNS endpoints', () => {
  test('strict and logical: the connection goes to the IP, SNI and the certificate check use the name', async () => {
    const dir = await tempDir()
    try {
      const ca = await opensslCert(dir.path, 'ca', { ca: true })
      const leaf = await opensslCert(dir.path, 'svc', { san: 'DNS:svc.tls.test', issuer: ca })
      const { readFile } = await import('node:fs/promises')
      const up = await serve('tls', '127.0.0.1', 0, { cert: await readFile(leaf.cert, 'utf8'), key: await readFile(leaf.key, 'utf8') })
      dnsServer.set('svc.tls.test', { a: ['127.0.0.1'] })
      const extra = { dnsLookupFamily: 'v4_only' as const, tls: { mode: 'simple' as const, trustBundle: ca.cert } }
      const mesh = createMesh({
        config: meshConfig([
          dnsCluster('strict', 'strict_dns', `https://svc.tls.test:${up.port}`, extra),
          dnsCluster('logical', 'logical_dns', `https://svc.tls.test:${up.port}`, extra),
        ]),
      })
      try {
        await until(() => cluster(mesh, 'strict').hosts.length === 1 && cluster(mesh, 'logical').hosts.length === 1, 'both clusters resolved')
        assert.equal(cluster(mesh, 'strict').hosts[0]?.address.hostname, '127.0.0.1')
        assert.equal((await get(mesh, 'http://strict/s')).body, 'tls /s')
        assert.equal((await get(mesh, 'http://logical/l')).body, 'tls /l')
        assert.deepEqual(up.servernames, ['svc.tls.test', 'svc.tls.test'])
        assert.deepEqual(up.hostHeaders, ['strict', 'logical'])
      } finally {
        await mesh.close()
        await up.close()
      }
    } finally {
      await dir.dispose()
    }
  })
})

describe('DNS cluster config', () => {
  test('validation: Envoy spellings accepted; bad families, intervals and resolvers refused with their path', () => {
    const base = { name: 'd', type: 'strict_dns', endpoints: [{ address: 'x.test:80' }] }
    const issues = (extra: Record<string, unknown>) => validateConfig({ clusters: [{ ...base, ...extra }] }).map((i) => `${i.code} ${i.path}`)
    assert.deepEqual(issues({
      dnsLookupFamily: 'V4_PREFERRED', respectDnsTtl: true, dnsJitter: '1s', dnsFailureRefreshRate: { baseInterval: '1s' },
      dnsResolvers: ['10.0.0.1', '10.0.0.2:5353', '[::1]:53', 'fd00::53'],
    }), [])
    assert.deepEqual(issues({ dnsLookupFamily: 'v5' }), ['INVALID_VALUE clusters[0].dnsLookupFamily'])
    assert.deepEqual(issues({ respectDnsTtl: 'yes' }), ['INVALID_TYPE clusters[0].respectDnsTtl'])
    assert.deepEqual(issues({ dnsRefreshRate: 0 }), ['INVALID_VALUE clusters[0].dnsRefreshRate'])
    assert.deepEqual(issues({ dnsFailureRefreshRate: { maxInterval: '1s' } }), ['REQUIRED clusters[0].dnsFailureRefreshRate.baseInterval'])
    assert.deepEqual(issues({ dnsFailureRefreshRate: { baseInterval: '2s', maxInterval: '1s' } }),
      ['INVALID_VALUE clusters[0].dnsFailureRefreshRate.maxInterval'])
    assert.deepEqual(issues({ dnsResolvers: ['dns.example:53', '10.0.0.1:0'] }),
      ['INVALID_ADDRESS clusters[0].dnsResolvers[0]', 'INVALID_ADDRESS clusters[0].dnsResolvers[1]'])
    assert.deepEqual(issues({ dnsResolvers: [] }), ['INVALID_VALUE clusters[0].dnsResolvers'])
  })

  test('a config update keeps an unchanged DNS cluster as it is; a changed one starts with the answers it replaces', async () => {
    dnsServer.set('swap.dns.test', { a: ['127.0.0.1'] })
    const up = await serve('swap', '127.0.0.1')
    const swap = dnsCluster('swap', 'strict_dns', `swap.dns.test:${up.port}`, { dnsRefreshRate: '1h', dnsLookupFamily: 'v4_only' })
    const other: ClusterConfig = { name: 'other', endpoints: [{ address: `127.0.0.1:${up.port}` }] }
    const mesh = createMesh({ config: meshConfig([swap, other]) })
    try {
      await until(() => cluster(mesh, 'swap').hosts.length === 1, 'the first answer is in')
      assert.equal((await get(mesh, 'http://swap/')).status, 200)
      const runtime = cluster(mesh, 'swap')
      const host = runtime.hosts[0]
      const asked = dnsServer.count('swap.dns.test')
      await mesh.update(meshConfig([swap, { ...other, connectTimeout: '2s' }]))
      assert.equal(cluster(mesh, 'swap'), runtime, 'the unchanged cluster is the same runtime')
      assert.equal(dnsServer.count('swap.dns.test'), asked, 'and asked nothing again')

      dnsServer.set('swap.dns.test', { drop: true }) // the new cluster's own first lookup never answers
      await mesh.update(meshConfig([{ ...swap, dnsRefreshRate: '2h' }, other]))
      const changed = cluster(mesh, 'swap')
      assert.notEqual(changed, runtime)
      assert.deepEqual(changed.hosts.map((h) => h.address.hostname), ['127.0.0.1'], 'the answer carried over')
      assert.equal(changed.hosts[0], host, 'and with it the host and its pool')
      assert.equal((await get(mesh, 'http://swap/')).body, 'swap /')
    } finally {
      await mesh.close()
      await up.close()
    }
  })

  test('close() stops every refresh', async () => {
    dnsServer.set('closing.dns.test', { a: ['127.0.0.1'] })
    const mesh = createMesh({
      config: meshConfig([dnsCluster('closing', 'strict_dns', 'closing.dns.test:80', { dnsRefreshRate: '10ms' })]),
    })
    await until(() => dnsServer.count('closing.dns.test') >= 3, 'refreshes run')
    await mesh.close()
    await new Promise((r) => setTimeout(r, 50)) // questions sent just before close() may still be arriving
    const asked = dnsServer.count('closing.dns.test')
    await new Promise((r) => setTimeout(r, 200))
    assert.equal(dnsServer.count('closing.dns.test'), asked, 'no question after close()')
  })
})
