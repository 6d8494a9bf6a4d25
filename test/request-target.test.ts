/**
 * One authority and one path for every filter: an absolute-form request target
 * (`GET http://app/admin HTTP/1.1`) is split into Host + path before any filter runs (RFC 9112
 * §3.2.2, as Envoy does), so authorization, limits, routes and the app all read the same
 * request. Raw sockets: ordinary clients never send these request lines to a server.
 */
import assert from 'node:assert/strict'
import { once } from 'node:events'
import type http from 'node:http'
import type { AddressInfo } from 'node:net'
import { after, before, describe, test } from 'node:test'
import { createMesh, type Mesh } from '../src/index.js'
import { exchange, parseResponse } from './helpers/raw-http.js'

describe('absolute-form and other request targets, in process', () => {
  let mesh: Mesh
  let server: http.Server
  let port: number
  const seen: { url: string; host: string | undefined; rawHost: string[]; route: string | undefined }[] = []
  before(async () => {
    mesh = createMesh({
      service: 'app',
      config: {
        listener: {
          authorization: [
            { name: 'no-admin', action: 'DENY', rules: [{ to: [{ operation: { paths: ['/admin*'] } }] }] },
            { name: 'no-internal', action: 'DENY', rules: [{ to: [{ operation: { hosts: ['internal.svc'] } }] }] },
          ],
          routes: [{ name: 'api', match: { prefix: '/api' } }],
        },
      },
    })
    server = mesh.createServer((req, res) => {
      const rawHost: string[] = []
      for (let i = 0; i < req.rawHeaders.length; i += 2) if (req.rawHeaders[i]?.toLowerCase() === 'host') rawHost.push(req.rawHeaders[i + 1] as string)
      seen.push({ url: req.url ?? '', host: req.headers.host, rawHost, route: mesh.context()?.route })
      res.end(JSON.stringify(seen.at(-1)))
    })
    server.listen(0, '127.0.0.1')
    await once(server, 'listening')
    port = (server.address() as AddressInfo).port
  })
  after(async () => {
    server.closeAllConnections()
    await new Promise<void>((resolve) => server.close(() => resolve()))
    await mesh.close()
  })

  const send = async (line: string, host = 'app'): Promise<{ status: number; body: string }> => {
    const r = parseResponse(await exchange(port, `${line} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`))
    return { status: r.status, body: r.body }
  }

  test('GET http://app/admin is /admin to authorization: 403, the app never sees it', async () => {
    const before = seen.length
    for (const line of ['GET http://app/admin', 'GET http://app/admin/users?x=1', 'GET HTTP://APP/admin', 'GET http://app//admin', 'GET https://app/admin']) {
      const r = await send(line)
      assert.equal(r.status, 403, line)
      assert.equal(r.body, 'RBAC: access denied')
    }
    assert.equal(seen.length, before)
  })

  test("the target's authority wins over Host (RFC 9112 §3.2.2): a DENY on hosts holds", async () => {
    const r = await send('GET http://internal.svc/', 'svc')
    assert.equal(r.status, 403)
    assert.equal((await send('GET http://INTERNAL.svc:8080/x', 'svc')).status, 403, 'case and port do not dodge it')
  })

  test('an allowed absolute-form request reaches the app as origin-form, with the target authority as its one Host', async () => {
    const r = await send('GET http://other.example:8080/api/items?q=1', 'app')
    assert.equal(r.status, 200)
    assert.deepEqual(JSON.parse(r.body), { url: '/api/items?q=1', host: 'other.example:8080', rawHost: ['other.example:8080'], route: 'api' })
    assert.deepEqual(JSON.parse((await send('GET http://app', 'app')).body).url, '/')
    assert.deepEqual(JSON.parse((await send('GET http://app?x=1', 'app')).body).url, '/?x=1')
    assert.deepEqual(JSON.parse((await send('GET http://[::1]:80/v6', 'app')).body).host, '[::1]:80')
  })

  test('asterisk-form stays for OPTIONS; malformed targets are refused with 400 before any filter or the app', async () => {
    const opts = await send('OPTIONS *')
    assert.equal(opts.status, 200)
    assert.equal(JSON.parse(opts.body).url, '*')
    const before = seen.length
    for (const line of ['GET *', 'GET http://user:pw@app/', 'GET http:///admin', 'GET ftp://app/admin', 'GET http://app:99999/', 'GET http://app/#frag', 'GET http://a%2fb/']) {
      const r = await send(line)
      assert.equal(r.status, 400, line)
      assert.match(r.body, /^bad request: /, line)
    }
    assert.equal(seen.length, before)
    const snap = mesh.metrics.snapshot().inbound.routes['(default)']
    assert.ok((snap?.responses['4xx'] ?? 0) >= 7, 'counted as 4xx responses')
  })
})
