/**
 * The mesh's dispatcher (built on undici 7) in the hands of other undici majors: the global
 * `fetch` of each Node.js line (undici 6 on Node 22, 7 on 24, 8 on 26) and an app's own
 * undici 8 (`undici8` here, an npm alias of undici@8) passing `mesh.dispatcher` to its
 * `request`/`fetch`, composing its interceptors on it, or making it global with its own
 * `setGlobalDispatcher` (which wraps it for older majors).
 */
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { Readable } from 'node:stream'
import * as undici from 'undici'
import { createMesh, type Mesh } from '../src/index.js'
import { startUpstream, type Upstream } from './helpers/upstream.js'

const [major = 0, minor = 0] = process.versions.node.split('.').map(Number)
/** undici 8 runs on Node.js 22.19 and later. */
const undici8Runs = major > 22 || (major === 22 && minor >= 19)

let up: Upstream
let mesh: Mesh

before(async () => {
  up = await startUpstream('reviews-v1', (req, res, name) => {
    let body = ''
    req.setEncoding('utf8').on('data', (c: string) => (body += c)).on('end', () => {
      res.setHeader('x-upstream', name)
      if (req.url === '/slow') {
        res.writeHead(200)
        res.write('start')
        return // never ends: the caller aborts
      }
      res.end(`${name} ${req.method} ${req.url} ${body}`)
    })
  })
  mesh = createMesh({
    config: {
      clusters: [{ name: 'reviews', endpoints: [{ address: up.address }] }, { name: 'empty', endpoints: [] }],
      virtualHosts: [
        { name: 'reviews', domains: ['reviews'], routes: [{ match: { prefix: '/' }, route: { cluster: 'reviews' } }] },
        { name: 'empty', domains: ['empty'], routes: [{ match: { prefix: '/' }, route: { cluster: 'empty' } }] },
        {
          name: 'decorated',
          domains: ['decorated'],
          responseHeadersToAdd: [{ header: { key: 'x-decorated', value: 'yes' } }],
          routes: [{ match: { prefix: '/' }, route: { cluster: 'reviews' }, fault: { delay: { fixedDelay: '1ms' } } }],
        },
      ],
    },
  })
})

after(async () => {
  await mesh.close()
  await up.close()
})

describe(`global fetch of Node.js ${process.versions.node} (undici ${process.versions['undici'] ?? '?'})`, () => {
  test('fetch(url, { dispatcher: mesh.dispatcher }) is routed, streams a body, and gets local replies', async () => {
    const res = await fetch('http://reviews/a', {
      method: 'POST',
      body: Readable.toWeb(Readable.from(['x', 'y'])) as ReadableStream,
      duplex: 'half',
      dispatcher: mesh.dispatcher,
    } as unknown as RequestInit)
    assert.equal(res.status, 200)
    assert.equal(res.headers.get('x-sidecarless-cluster'), 'reviews')
    assert.equal(await res.text(), 'reviews-v1 POST /a xy')
    const none = await fetch('http://empty/', { dispatcher: mesh.dispatcher } as unknown as RequestInit)
    assert.equal(none.status, 503)
    assert.equal(none.headers.get('x-sidecarless-response-flags'), 'UH')
    assert.equal(await none.text(), 'no healthy upstream')
  })

  test('headers the mesh adds or changes reach fetch: response mutations, fault flags', async () => {
    const res = await fetch('http://decorated/d', { dispatcher: mesh.dispatcher } as unknown as RequestInit)
    assert.equal(await res.text(), 'reviews-v1 GET /d ')
    assert.equal(res.headers.get('x-decorated'), 'yes')
    assert.equal(res.headers.get('x-sidecarless-response-flags'), 'DI')
    assert.equal(res.headers.get('x-sidecarless-cluster'), 'reviews')
    assert.equal(res.headers.get('x-upstream'), 'reviews-v1')
  })

  test('a caller abort mid-body ends the global fetch with an AbortError', async () => {
    const ac = new AbortController()
    const res = await fetch('http://reviews/slow', { dispatcher: mesh.dispatcher, signal: ac.signal } as unknown as RequestInit)
    const reader = (res.body as ReadableStream<Uint8Array>).getReader()
    await reader.read()
    ac.abort()
    await assert.rejects(reader.read(), (err: Error) => err.name === 'AbortError')
  })

  test('mesh.fetch takes the global Request and FormData of this Node.js line (another copy of undici than the mesh\'s)', async () => {
    // Before: "Failed to parse URL from [object Request]", and the form sent as the text "[object FormData]".
    const ac = new AbortController()
    const req = new Request('http://reviews/req', { method: 'PUT', body: 'request body', headers: { 'x-caller': 'yes' }, signal: ac.signal })
    const res = await mesh.fetch(req)
    assert.equal(res.status, 200)
    assert.equal(await res.text(), 'reviews-v1 PUT /req request body')
    const bodiless = await mesh.fetch(new Request('http://reviews/plain', { headers: { 'x-caller': 'yes' } }), { method: 'DELETE' })
    assert.equal(await bodiless.text(), 'reviews-v1 DELETE /plain ', 'init overrides what the Request says')
    const form = new FormData()
    form.set('field', 'value')
    form.set('file', new File(['file content'], 'f.txt', { type: 'text/plain' }))
    const posted = await mesh.fetch('http://reviews/form', { method: 'POST', body: form })
    const text = await posted.text()
    assert.match(text, /^reviews-v1 POST \/form -+formdata-undici-\d+\r\nContent-Disposition: form-data; name="field"\r\n\r\nvalue\r\n/)
    assert.match(text, /name="file"; filename="f\.txt"\r\nContent-Type: text\/plain\r\n\r\nfile content\r\n/)
    // The caller's signal on the Request still aborts the call.
    ac.abort()
    await assert.rejects(mesh.fetch(new Request('http://reviews/slow', { signal: ac.signal })), (err: Error) => err.name === 'AbortError')
  })

  test('mesh.fetch answers with the global Response (instanceof holds, as frameworks check), and takes the undici package\'s Request and FormData', async () => {
    // Before: mesh.fetch was the undici package's fetch, whose Response, Headers and Request are other classes.
    const res = await mesh.fetch('http://reviews/instance')
    assert.ok(res instanceof Response, 'a global Response')
    assert.ok(res.headers instanceof Headers, 'global Headers')
    assert.equal(await res.text(), 'reviews-v1 GET /instance ')
    const form = new undici.FormData()
    form.set('field', 'from the undici package')
    const posted = await mesh.fetch(new undici.Request('http://reviews/package', { method: 'POST', body: 'package request' }))
    assert.equal(await posted.text(), 'reviews-v1 POST /package package request')
    const formed = await mesh.fetch('http://reviews/package-form', { method: 'POST', body: form })
    assert.match(await formed.text(), /name="field"\r\n\r\nfrom the undici package\r\n/)
  })

  test('installGlobal() captures the global fetch of this Node.js line, and restore() gives it back', async () => {
    const restore = mesh.installGlobal()
    try {
      const res = await fetch('http://reviews/global')
      assert.equal(res.headers.get('x-sidecarless-cluster'), 'reviews')
      assert.equal(await res.text(), 'reviews-v1 GET /global ')
    } finally {
      restore()
    }
    await assert.rejects(fetch('http://reviews/global'), TypeError)
  })
})

describe('an app\'s own undici 8 with the mesh dispatcher', { skip: undici8Runs ? false : `undici 8 needs Node.js 22.19+, this is ${process.versions.node}` }, () => {
  test('undici8.request and undici8.fetch route through mesh.dispatcher', async () => {
    const u8 = await import('undici8')
    const r = await u8.request('http://reviews/r8', { method: 'PUT', body: 'b', dispatcher: mesh.dispatcher as never })
    assert.equal(r.statusCode, 200)
    assert.equal(r.headers['x-sidecarless-cluster'], 'reviews')
    assert.equal(await r.body.text(), 'reviews-v1 PUT /r8 b')
    const f = await u8.fetch('http://reviews/f8', { dispatcher: mesh.dispatcher as never })
    assert.equal(await f.text(), 'reviews-v1 GET /f8 ')
    const none = await u8.request('http://empty/', { dispatcher: mesh.dispatcher as never })
    assert.equal(none.statusCode, 503)
    await none.body.dump()
  })

  test('undici 8 interceptors composed on mesh.dispatcher run in front of the mesh', async () => {
    const u8 = await import('undici8')
    let seen = 0
    const count = (dispatch: (o: unknown, h: unknown) => boolean) => (opts: unknown, handler: unknown) => {
      seen++
      return dispatch(opts, handler)
    }
    const composed = mesh.dispatcher.compose(count as never, u8.interceptors.responseError() as never)
    const r = await u8.request('http://reviews/composed', { dispatcher: composed as never })
    assert.equal(await r.body.text(), 'reviews-v1 GET /composed ')
    assert.equal(seen, 1)
    // The responseError interceptor turns the mesh's 503 into undici 8's own error.
    await assert.rejects(u8.request('http://empty/', { dispatcher: composed as never }), (err: Error & { statusCode?: number }) => err.statusCode === 503)
  })

  test('undici8.setGlobalDispatcher(mesh.dispatcher) serves both undici 8 and the older global fetch', async () => {
    const u8 = await import('undici8')
    const previous = u8.getGlobalDispatcher()
    u8.setGlobalDispatcher(mesh.dispatcher as never)
    try {
      const r = await u8.request('http://reviews/g8')
      assert.equal(r.headers['x-sidecarless-cluster'], 'reviews')
      await r.body.dump()
      // Node's bundled fetch reads the slot of its own major: undici 8 wrapped the mesh for the older one.
      const res = await fetch('http://reviews/gfetch')
      assert.equal(res.headers.get('x-sidecarless-cluster'), 'reviews')
      assert.equal(await res.text(), 'reviews-v1 GET /gfetch ')
    } finally {
      u8.setGlobalDispatcher(previous)
    }
  })
})
