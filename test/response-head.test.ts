/**
 * Every kind of caller sees the same response head through the mesh: status, headers (the
 * upstream's in their order and case, repeats kept, then the mesh's), the raw list and the
 * trailers. A try hands its pool an old-style handler and keeps undici's raw header list; the
 * header object is built only when something reads it, and an old-style caller gets the raw
 * list as it came (upstream-request.ts). These tests hold every path to one answer: an
 * old-style and a new-style handler on `mesh.dispatcher.dispatch`, undici 7's `request`,
 * undici 8's `request` and `fetch`, `mesh.fetch`, and the global fetch under
 * `installGlobal()` — on a plain route, with response header mutations, behind a fault delay
 * (`DI`), and after a retry decided by a response header (`retriable-headers`).
 */
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { Pool, request, type Dispatcher } from 'undici'
import { createMesh, type Mesh } from '../src/index.js'

const [major = 0, minor = 0] = process.versions.node.split('.').map(Number)
/** undici 8 runs on Node.js 22.19 and later. */
const undici8Runs = major > 22 || (major === 22 && minor >= 19)

/** One response head, as a caller saw it: names in lower case, every value in order. */
interface Head {
  readonly status: number
  readonly headers: ReadonlyArray<readonly [string, string]>
  readonly trailers: ReadonlyArray<readonly [string, string]>
}

let server: http.Server
let origin: string
let mesh: Mesh
/** Requests per path, so `/retry-once` can answer differently the second time. */
const hits = new Map<string, number>()

before(async () => {
  server = http.createServer((req, res) => {
    const n = (hits.get(req.url ?? '') ?? 0) + 1
    hits.set(req.url ?? '', n)
    req.resume()
    req.on('end', () => {
      // 103 Early Hints first: informational, not the response.
      if (req.url?.startsWith('/early') === true) res.writeEarlyHints({ link: '</a.css>; rel=preload' })
      // Mixed case and a repeated name, as real servers send them; chunked, with a trailer.
      res.setHeader('X-Upstream', 'one')
      res.setHeader('Set-Cookie', ['a=1', 'b=2'])
      res.setHeader('X-Multi', ['first', 'second'])
      res.setHeader('Trailer', 'X-Checksum')
      if (req.url?.startsWith('/retry-once') === true && n === 1) res.setHeader('X-Retry-Me', 'yes')
      res.writeHead(200, 'Fine')
      res.write('hello ')
      res.addTrailers({ 'X-Checksum': 'c0ffee' })
      res.end('world')
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  mesh = createMesh({
    config: {
      clusters: [{ name: 'reviews', endpoints: [{ address: origin }] }],
      virtualHosts: [
        { name: 'plain', domains: ['plain'], routes: [{ match: { prefix: '/' }, route: { cluster: 'reviews', timeout: '3s' } }] },
        {
          name: 'mutated',
          domains: ['mutated'],
          responseHeadersToAdd: [{ header: { key: 'x-added', value: 'by-%UPSTREAM_HOST%' } }],
          responseHeadersToRemove: ['x-upstream'],
          routes: [{ match: { prefix: '/' }, route: { cluster: 'reviews' } }],
        },
        {
          name: 'delayed',
          domains: ['delayed'],
          routes: [{ match: { prefix: '/' }, route: { cluster: 'reviews' }, fault: { delay: { fixedDelay: '1ms' } } }],
        },
        {
          name: 'retried',
          domains: ['retried'],
          routes: [{
            match: { prefix: '/' },
            route: {
              cluster: 'reviews',
              retryPolicy: { retryOn: ['retriable-headers', '5xx'], numRetries: 1, retriableHeaders: [{ name: 'x-retry-me', exact: 'yes' }] },
            },
          }],
        },
      ],
    },
  })
})

after(async () => {
  await mesh.close()
  await new Promise<void>((resolve) => server.close(() => resolve()))
})

// ------------------------------------------------------------------ normalising what callers see

function str(v: Buffer | string): string {
  return typeof v === 'string' ? v : v.toString('latin1')
}

/** A raw `[name, value, ...]` list as (lower-case name, value) pairs, in order. */
function fromRaw(raw: ReadonlyArray<Buffer | string> | null | undefined): [string, string][] {
  const out: [string, string][] = []
  if (raw === null || raw === undefined) return out
  for (let i = 0; i < raw.length; i += 2) out.push([str(raw[i] as Buffer).toLowerCase(), str(raw[i + 1] as Buffer)])
  return out
}

/** A header object as pairs, in its key order (repeats from its arrays, in order). */
function fromObject(headers: Record<string, string | string[] | undefined> | null | undefined): [string, string][] {
  const out: [string, string][] = []
  for (const [k, v] of Object.entries(headers ?? {})) {
    if (v === undefined) continue
    for (const x of Array.isArray(v) ? v : [v]) out.push([k, x])
  }
  return out
}

/** Pairs grouped by name in first-seen order (what a header object keeps of a raw list). */
function grouped(pairs: ReadonlyArray<readonly [string, string]>): [string, string][] {
  const by = new Map<string, string[]>()
  for (const [k, v] of pairs) by.set(k, [...(by.get(k) ?? []), v])
  return [...by].flatMap(([k, vs]) => vs.map((v): [string, string] => [k, v]))
}

/** What a fetch Response shows of the pairs: one joined value per name, set-cookie apart. */
function asFetchSees(pairs: ReadonlyArray<readonly [string, string]>): [string, string][] {
  const h = new Headers()
  for (const [k, v] of pairs) h.append(k, v)
  return [...h]
}

// ------------------------------------------------------------------ callers

/** An old-style handler (onConnect/onHeaders/onData/onComplete/onError) on `dispatcher.dispatch`. */
function oldStyle(dispatcher: Dispatcher, opts: Dispatcher.DispatchOptions): Promise<Head & { raw: string[] }> {
  return new Promise((resolve, reject) => {
    let status = 0
    let raw: string[] = []
    const handler = {
      onConnect() {},
      onHeaders(statusCode: number, headers: Buffer[]) {
        status = statusCode
        raw = headers.map(str)
        return true
      },
      onData() {
        return true
      },
      onComplete(trailers: Buffer[] | null) {
        resolve({ status, headers: fromRaw(raw), trailers: fromRaw(trailers), raw })
      },
      onError: reject,
    }
    dispatcher.dispatch(opts, handler as unknown as Dispatcher.DispatchHandler)
  })
}

/** A new-style handler: the header object, and the controller's raw list beside it. */
function newStyle(dispatcher: Dispatcher, opts: Dispatcher.DispatchOptions): Promise<Head & { controllerRaw: [string, string][] }> {
  return new Promise((resolve, reject) => {
    let status = 0
    let headers: [string, string][] = []
    let controllerRaw: [string, string][] = []
    const handler: Dispatcher.DispatchHandler = {
      onRequestStart() {},
      onResponseStart(controller, statusCode, h) {
        status = statusCode
        headers = fromObject(h)
        controllerRaw = fromRaw(controller.rawHeaders as Buffer[] | undefined)
      },
      onResponseData() {},
      onResponseEnd(_controller, trailers) {
        resolve({ status, headers, trailers: fromObject(trailers), controllerRaw })
      },
      onResponseError(_controller, err) {
        reject(err)
      },
    }
    dispatcher.dispatch(opts, handler)
  })
}

const MESH_NAMES = /^x-sidecarless-/

/** A raw list with Date's value blanked: two responses differ there only. */
/** Header pairs without Date, whose value depends on the second a response was made. */
function withoutDate(pairs: ReadonlyArray<readonly [string, string]>): [string, string][] {
  return pairs.filter(([k]) => k !== 'date').map(([k, v]): [string, string] => [k, v])
}

function undated(raw: readonly string[]): string[] {
  return raw.map((s, i) => (i % 2 === 1 && raw[i - 1]?.toLowerCase() === 'date' ? 'DATE' : s))
}

function withoutMesh(pairs: ReadonlyArray<readonly [string, string]>): [string, string][] {
  return pairs.filter(([k]) => !MESH_NAMES.test(k)).map(([k, v]): [string, string] => [k, v])
}

function meshOnly(pairs: ReadonlyArray<readonly [string, string]>): [string, string][] {
  return pairs.filter(([k]) => MESH_NAMES.test(k)).map(([k, v]): [string, string] => [k, v])
}

// ------------------------------------------------------------------ tests

describe('one response head for every caller', () => {
  let direct: Head & { raw: string[] }
  const endpoint = (): string => origin.slice('http://'.length)

  before(async () => {
    const pool = new Pool(origin)
    direct = await oldStyle(pool, { origin, path: '/retry-once-direct', method: 'GET' })
    await pool.close()
  })

  test('plain route: an old-style handler gets the upstream\'s raw list as it came, then the mesh\'s headers; a new-style one the same as an object', async () => {
    const opts = { origin: 'http://plain', path: '/retry-once-plain', method: 'GET' } as const
    const old = await oldStyle(mesh.dispatcher, opts)
    const neu = await newStyle(mesh.dispatcher, { ...opts, path: '/retry-once-plain-new' })
    assert.equal(old.status, 200)
    assert.equal(neu.status, 200)
    // The upstream's list, case and order kept (only Date's value differs), then cluster and endpoint.
    assert.deepEqual(undated(old.raw.slice(0, direct.raw.length)), undated(direct.raw))
    assert.deepEqual(old.raw.slice(direct.raw.length), ['x-sidecarless-cluster', 'reviews', 'x-sidecarless-endpoint', endpoint()])
    // The object holds the same, grouped by name; the controller's raw list is the old-style
    // one. Two requests: only Date's value may differ (a second may pass between them).
    assert.deepEqual(withoutDate(neu.headers), withoutDate(grouped(old.headers)))
    assert.deepEqual(withoutDate(neu.controllerRaw), withoutDate(old.headers))
    assert.deepEqual(old.trailers, [['x-checksum', 'c0ffee']])
    assert.deepEqual(neu.trailers, [['x-checksum', 'c0ffee']])
  })

  for (const [host, expectMesh] of [
    ['mutated', (e: string) => [['x-sidecarless-cluster', 'reviews'], ['x-sidecarless-endpoint', e]]],
    ['delayed', (e: string) => [['x-sidecarless-cluster', 'reviews'], ['x-sidecarless-endpoint', e], ['x-sidecarless-response-flags', 'DI']]],
    ['retried', (e: string) => [['x-sidecarless-cluster', 'reviews'], ['x-sidecarless-endpoint', e]]],
  ] as const) {
    test(`${host} route: old-style and new-style handlers see the same status, headers, raw list and trailers`, async () => {
      const old = await oldStyle(mesh.dispatcher, { origin: `http://${host}`, path: `/retry-once-old-${host}`, method: 'GET' })
      const neu = await newStyle(mesh.dispatcher, { origin: `http://${host}`, path: `/retry-once-new-${host}`, method: 'GET' })
      assert.equal(old.status, 200)
      assert.equal(neu.status, 200)
      // Two requests: only Date's value may differ (a second may pass between them).
      assert.deepEqual(withoutDate(neu.headers), withoutDate(old.headers))
      assert.deepEqual(withoutDate(neu.controllerRaw), withoutDate(old.headers))
      assert.deepEqual(old.trailers, [['x-checksum', 'c0ffee']])
      assert.deepEqual(neu.trailers, old.trailers)
      assert.deepEqual(meshOnly(old.headers), expectMesh(endpoint()))
      const upstream = withoutMesh(old.headers).filter(([k]) => k !== 'date')
      if (host === 'mutated') {
        assert.ok(!upstream.some(([k]) => k === 'x-upstream'), 'x-upstream removed')
        assert.deepEqual(upstream.filter(([k]) => k === 'x-added'), [['x-added', `by-${endpoint()}`]])
      } else {
        // (The retried request's caller sees the second answer, without the header that asked for it.)
        assert.deepEqual(upstream, grouped(withoutMesh(direct.headers)).filter(([k]) => k !== 'date' && (host !== 'retried' || k !== 'x-retry-me')))
      }
      if (host === 'retried') {
        // The first answer asked for a retry by header; the caller saw only the second.
        assert.equal(hits.get(`/retry-once-old-${host}`), 2)
        assert.equal(hits.get(`/retry-once-new-${host}`), 2)
        assert.ok(!old.headers.some(([k]) => k === 'x-retry-me'))
      }
    })
  }

  for (const host of ['plain', 'mutated', 'delayed', 'retried']) {
    test(`${host} route: undici.request, mesh.fetch and the global fetch under installGlobal() see what the handlers see`, async () => {
      const reference = await newStyle(mesh.dispatcher, { origin: `http://${host}`, path: `/retry-once-ref-${host}`, method: 'GET' })
      const r = await request(`http://${host}/retry-once-req-${host}`, { dispatcher: mesh.dispatcher })
      assert.equal(r.statusCode, 200)
      assert.equal(await r.body.text(), 'hello world')
      const comparable = (pairs: ReadonlyArray<readonly [string, string]>): [string, string][] => pairs.filter(([k]) => k !== 'date').map(([k, v]): [string, string] => [k, v])
      assert.deepEqual(comparable(fromObject(r.headers as Record<string, string | string[]>)), comparable(reference.headers))
      assert.deepEqual(fromObject(r.trailers), reference.trailers)

      const viaMesh = await mesh.fetch(`http://${host}/retry-once-fetch-${host}`)
      assert.equal(viaMesh.status, 200)
      assert.equal(await viaMesh.text(), 'hello world')
      assert.deepEqual(comparable([...viaMesh.headers]), comparable(asFetchSees(reference.headers)))

      const restore = mesh.installGlobal()
      try {
        const res = await fetch(`http://${host}/retry-once-global-${host}`)
        assert.equal(res.status, 200)
        assert.equal(await res.text(), 'hello world')
        assert.deepEqual(comparable([...res.headers]), comparable(asFetchSees(reference.headers)))
      } finally {
        restore()
      }
    })
  }

  test('undici 8: request and fetch (new-style handlers reading the controller\'s raw list) see what the handlers see', { skip: undici8Runs ? false : `undici 8 needs Node.js 22.19+, this is ${process.versions.node}` }, async () => {
    const u8 = await import('undici8')
    for (const host of ['plain', 'mutated', 'delayed', 'retried']) {
      const reference = await newStyle(mesh.dispatcher, { origin: `http://${host}`, path: `/retry-once-ref8-${host}`, method: 'GET' })
      const comparable = (pairs: ReadonlyArray<readonly [string, string]>): [string, string][] => pairs.filter(([k]) => k !== 'date').map(([k, v]): [string, string] => [k, v])
      const r = await u8.request(`http://${host}/retry-once-r8-${host}`, { dispatcher: mesh.dispatcher as never })
      assert.equal(r.statusCode, 200, host)
      assert.equal(await r.body.text(), 'hello world')
      assert.deepEqual(comparable(fromObject(r.headers as Record<string, string | string[]>)), comparable(reference.headers), host)
      assert.deepEqual(fromObject(r.trailers), reference.trailers, host)
      const f = await u8.fetch(`http://${host}/retry-once-f8-${host}`, { dispatcher: mesh.dispatcher as never })
      assert.equal(f.status, 200)
      assert.equal(await f.text(), 'hello world')
      assert.deepEqual(comparable([...f.headers]), comparable(asFetchSees(reference.headers)), host)
    }
  })

  test('a 103 Early Hints before the response: both handler styles see only the final head, and a caller pausing at it resumes', async () => {
    const old = await oldStyle(mesh.dispatcher, { origin: 'http://plain', path: '/early-old', method: 'GET' })
    const neu = await newStyle(mesh.dispatcher, { origin: 'http://plain', path: '/early-new', method: 'GET' })
    assert.equal(old.status, 200)
    assert.equal(neu.status, 200)
    assert.ok(!old.headers.some(([k]) => k === 'link'), 'the hints are not the response')
    assert.deepEqual(withoutDate(neu.headers), withoutDate(grouped(old.headers)))
    assert.deepEqual(old.trailers, [['x-checksum', 'c0ffee']])
    const body = await new Promise<string>((resolve, reject) => {
      let text = ''
      mesh.dispatcher.dispatch({ origin: 'http://plain', path: '/early-paused', method: 'GET' }, {
        onConnect() {},
        onHeaders(_s: number, _h: Buffer[], resume: () => void) {
          setTimeout(resume, 20)
          return false
        },
        onData(chunk: Buffer) {
          text += chunk.toString()
          return true
        },
        onComplete() {
          resolve(text)
        },
        onError: reject,
      })
    })
    assert.equal(body, 'hello world')
  })

  test('a caller that pauses before any head and resumes later gets the response, a 103 before it or not', async () => {
    for (const path of ['/early-prepaused', '/prepaused']) {
      const body = await new Promise<string>((resolve, reject) => {
        let text = ''
        const timer = setTimeout(() => reject(new Error(`${path}: no response 2 s after resume`)), 2000)
        mesh.dispatcher.dispatch({ origin: 'http://plain', path, method: 'GET' }, {
          onRequestStart(controller) {
            controller.pause()
            setTimeout(() => controller.resume(), 50)
          },
          onResponseStart() {},
          onResponseData(_c, chunk) {
            text += chunk.toString()
          },
          onResponseEnd() {
            clearTimeout(timer)
            resolve(text)
          },
          onResponseError(_c, err) {
            clearTimeout(timer)
            reject(err)
          },
        })
      })
      assert.equal(body, 'hello world', path)
    }
  })

  test('a paused old-style caller gets the rest of the body once it resumes', async () => {
    const body = await new Promise<string>((resolve, reject) => {
      let resume: (() => void) | undefined
      let text = ''
      mesh.dispatcher.dispatch({ origin: 'http://plain', path: '/paused', method: 'GET' }, {
        onConnect() {},
        onHeaders(_s: number, _h: Buffer[], r: () => void) {
          resume = r
          // Paused at the head: nothing flows until resume().
          setTimeout(() => resume?.(), 20)
          return false
        },
        onData(chunk: Buffer) {
          text += chunk.toString()
          return true
        },
        onComplete() {
          resolve(text)
        },
        onError: reject,
      })
    })
    assert.equal(body, 'hello world')
  })
})

test('the undici the mesh\'s pools come from drives an old-style handler as it is (upstream-request.ts relies on it)', async () => {
  // undici 7 wraps a new-style handler and parses its headers first; an old-style one gets
  // the raw list. undici 8 takes new-style handlers only: moving the dependency to 8 means
  // giving UpstreamRequest a new-style face again (and this test says so).
  const { version } = (await import('undici/package.json', { with: { type: 'json' } })).default as { version: string }
  assert.equal(Number(version.split('.')[0]), 7, `the undici dependency is ${version}: UpstreamRequest faces its pool as an old-style handler, which undici 8 refuses`)
  const pool = new Pool(origin)
  try {
    const seen = await oldStyle(pool, { origin, path: '/retry-once-pin', method: 'GET' })
    assert.equal(seen.status, 200)
    assert.ok(seen.raw.includes('X-Upstream'), 'raw names keep their case: no parse and rebuild in between')
  } finally {
    await pool.close()
  }
})
