// The admin endpoint served by the mesh in-process (`admin:` in its config): Envoy's
// endpoints, loopback by default, the config dump without key material, Prometheus text
// that promtool accepts, and the restricted view on a non-loopback address.
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import http from 'node:http'
import net from 'node:net'
import { networkInterfaces } from 'node:os'
import { after, before, describe, test } from 'node:test'
import { createMesh, isMeshError, type Mesh } from '../src/index.js'
import { makePki } from './helpers/certs.js'
import { startUpstream, type Upstream } from './helpers/upstream.js'

const ID = 'spiffe://cluster.local/ns/default/sa/api'
const TOKEN = 'Bearer s3cr3t-token-value'

function get(url: string, options: { method?: string; localAddress?: string } = {}): Promise<{ status: number; body: string; headers: http.IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { agent: false, method: options.method ?? 'GET', ...(options.localAddress === undefined ? {} : { localAddress: options.localAddress }) }, (res) => {
      let body = ''
      res.setEncoding('utf8').on('data', (d: string) => (body += d)).on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }))
    })
    req.on('error', reject).end()
  })
}

/** Collects the warnings with `code` emitted while `run` runs. */
async function warningsOf<T>(code: string, run: () => Promise<T>): Promise<{ result: T; messages: string[] }> {
  const messages: string[] = []
  const on = (w: Error & { code?: string }): void => {
    if (w.code === code) messages.push(w.message)
  }
  process.on('warning', on)
  try {
    const result = await run()
    // Warnings are emitted on the next tick.
    await new Promise((resolve) => setImmediate(resolve))
    return { result, messages }
  } finally {
    process.off('warning', on)
  }
}

/** Runs promtool's own parser over Prometheus text; undefined when promtool is not installed. */
function promtoolCheck(text: string): Promise<{ code: number; output: string } | undefined> {
  return new Promise((resolve) => {
    const child = spawn('promtool', ['check', 'metrics'], { stdio: ['pipe', 'pipe', 'pipe'] })
    let output = ''
    child.stdout.on('data', (d: Buffer) => (output += d.toString()))
    child.stderr.on('data', (d: Buffer) => (output += d.toString()))
    child.once('error', () => resolve(undefined))
    child.once('close', (code) => resolve({ code: code ?? -1, output }))
    child.stdin.end(text)
  })
}

let backend: Upstream
before(async () => {
  backend = await startUpstream('backend')
})
after(async () => {
  await backend.close()
})

describe('admin endpoint in-process', () => {
  test("Envoy's endpoints: /ready, /healthz, /stats, /stats/prometheus, /clusters, /config_dump, /server_info; GET only", async (t) => {
    const pki = makePki([ID])
    const client = pki.clients[ID] as { key: string; cert: string }
    const mesh = createMesh({
      service: 'api',
      config: {
        admin: { address: '127.0.0.1:0' },
        identity: { certificate: client.cert, privateKey: client.key, trustBundle: pki.ca },
        clusters: [{ name: 'backend', endpoints: [{ address: backend.address, labels: { version: 'v1' } }] }],
        virtualHosts: [{
          name: 'backend',
          domains: ['backend'],
          routes: [{ match: { prefix: '/' }, route: { cluster: 'backend' }, requestHeadersToAdd: [{ header: { key: 'authorization', value: TOKEN } }] }],
        }],
      },
    })
    try {
      const admin = await mesh.adminAddress()
      assert.match(admin ?? '', /^127\.0\.0\.1:\d+$/)
      const server = mesh.createServer(async (_req, res) => res.end(await (await mesh.fetch('http://backend/x')).text()))
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
      const port = (server.address() as net.AddressInfo).port
      assert.equal((await get(`http://127.0.0.1:${port}/`)).body, 'backend /x')

      assert.deepEqual(await get(`http://${admin}/ready`).then((r) => [r.status, r.body]), [200, 'LIVE\n'])
      assert.deepEqual(await get(`http://${admin}/healthz`).then((r) => [r.status, r.body]), [200, 'OK\n'])
      assert.match((await get(`http://${admin}/stats`)).body, /^outbound\.clusters\.backend\.requests: 1$/m)
      const prom = await get(`http://${admin}/stats/prometheus`)
      assert.equal(prom.headers['content-type'], 'text/plain; version=0.0.4')
      assert.match(prom.body, /sidecarless_cluster_upstream_rq_total\{[^}]*cluster_name="backend"[^}]*\} 1/)
      const checked = await promtoolCheck(prom.body)
      if (checked === undefined) t.diagnostic('promtool is not installed: the Prometheus text was not checked by its parser')
      else {
        // Parse errors fail; of promtool's lint, only what it says of names the mesh keeps as
        // others define them is allowed: Istio's standard metrics (Istio's dashboards need them
        // as they are, unit suffix included) and prom-client's default process metrics.
        const kept = [
          /^istio_request_duration_milliseconds use base unit "seconds" instead of "milliseconds"$/,
          /^nodejs_active_(resources|handles|requests)_total non-counter metrics should not have "_total" suffix$/,
        ]
        const findings = checked.output.split('\n').filter((l) => l.trim() !== '')
        const others = findings.filter((l) => !kept.some((re) => re.test(l.trim())))
        assert.ok(checked.code === 0 || (others.length === 0 && findings.length > 0), `promtool check metrics:\n${checked.output}`)
      }
      assert.match((await get(`http://${admin}/clusters`)).body, new RegExp(`^backend::127\\.0\\.0\\.1:${backend.port}::label::version=v1$`, 'm'))

      const dump = await get(`http://${admin}/config_dump`)
      assert.equal(dump.status, 200)
      assert.doesNotMatch(dump.body, /PRIVATE KEY/, 'no private key PEM')
      assert.doesNotMatch(dump.body, /s3cr3t/, 'no token')
      const parsed = JSON.parse(dump.body) as { version: number; config: { identity: { privateKey: string; certificate: string }; admin: { address: string } } }
      assert.equal(parsed.config.identity.privateKey, '[redacted]')
      assert.match(parsed.config.identity.certificate, /BEGIN CERTIFICATE/, 'public certificates are shown')
      assert.equal(parsed.version, mesh.version)

      const info = JSON.parse((await get(`http://${admin}/server_info`)).body) as Record<string, unknown>
      assert.equal(info['state'], 'LIVE')
      assert.equal(info['service'], 'api')
      assert.equal(info['listener'], `127.0.0.1:${port}`, 'the servers the mesh wrapped')
      assert.equal(info['pid'], process.pid)

      assert.equal((await get(`http://${admin}/ready`, { method: 'POST' })).status, 405)
      assert.match((await get(`http://${admin}/nope`)).body, /endpoints: \/ready \/healthz/)
    } finally {
      await mesh.close()
    }
  })

  test('off unless configured; a non-loopback address is bound to 127.0.0.1 with a warning', async () => {
    const none = createMesh()
    assert.equal(await none.adminAddress(), undefined)
    await none.close()
    const { result: mesh, messages } = await warningsOf('SIDECARLESS_ADMIN_LOOPBACK', async () => {
      const m = createMesh({ config: { admin: { address: '0.0.0.0:0' } } })
      await m.adminAddress()
      return m
    })
    try {
      assert.match(await mesh.adminAddress() ?? '', /^127\.0\.0\.1:\d+$/)
      assert.equal(messages.length, 1)
      assert.match(messages[0] ?? '', /bound to 127\.0\.0\.1:0, not 0\.0\.0\.0:0.*allowNonLoopback/)
    } finally {
      await mesh.close()
    }
  })

  test('allowNonLoopback: probes and metrics answer any peer, the config only loopback peers', async (t) => {
    const external = Object.values(networkInterfaces()).flat().find((i) => i !== undefined && i.family === 'IPv4' && !i.internal)?.address
    if (external === undefined) {
      t.skip('this host has no non-loopback IPv4 address to connect from')
      return
    }
    const mesh = createMesh({ config: { admin: { address: '0.0.0.0:0', allowNonLoopback: true } } })
    try {
      const port = Number((await mesh.adminAddress())?.split(':')[1])
      const from = { localAddress: external }
      assert.equal((await get(`http://${external}:${port}/ready`, from)).status, 200)
      assert.equal((await get(`http://${external}:${port}/healthz`, from)).status, 200)
      assert.equal((await get(`http://${external}:${port}/stats/prometheus`, from)).status, 200)
      for (const path of ['/config_dump', '/clusters', '/stats', '/server_info']) {
        const r = await get(`http://${external}:${port}${path}`, from)
        assert.equal(r.status, 403, path)
        assert.match(r.body, /answers loopback peers only/)
      }
      assert.equal((await get(`http://127.0.0.1:${port}/config_dump`)).status, 200)
    } finally {
      await mesh.close()
    }
  })

  test('an address in use: adminAddress() rejects with SIDECARLESS_ERR_ADMIN_LISTEN, a warning says so, the mesh works on', async () => {
    const taken = net.createServer()
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve))
    const port = (taken.address() as net.AddressInfo).port
    let mesh: Mesh | undefined
    try {
      const { messages } = await warningsOf('SIDECARLESS_ADMIN_LISTEN_FAILED', async () => {
        mesh = createMesh({ config: { admin: { address: `127.0.0.1:${port}` } } })
        await assert.rejects(mesh.adminAddress(), (err: unknown) => isMeshError(err, 'SIDECARLESS_ERR_ADMIN_LISTEN') && err.message.includes(`127.0.0.1:${port}`))
      })
      assert.equal(messages.length, 1)
      assert.equal(mesh?.state, 'LIVE')
    } finally {
      await mesh?.close()
      await new Promise((resolve) => taken.close(resolve))
    }
  })

  test('a config change of admin is a warning: the endpoint keeps its address until a restart', async () => {
    const mesh = createMesh({ config: { admin: { address: '127.0.0.1:0' } } })
    try {
      const before = await mesh.adminAddress()
      const { messages } = await warningsOf('SIDECARLESS_ADMIN_RESTART', () => mesh.update({ admin: { address: '127.0.0.1:9' } }))
      assert.equal(messages.length, 1)
      assert.equal(await mesh.adminAddress(), before)
      assert.equal((await get(`http://${before}/ready`)).status, 200)
    } finally {
      await mesh.close()
    }
  })
})
