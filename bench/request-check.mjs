/**
 * Cost of the door's caller-error check (`checkRequest`, src/outbound/request-check.ts) on
 * the outbound hot path, per request: the header work a request does from `dispatch` to
 * its upstream headers.
 *
 *   baseline   as before the check existed: `findHeader(headers, 'host')` for routing, then
 *              `upstreamHeaders(opts.headers, …)` walking the caller's headers again, trace
 *              headers replaced (both copied below as they were)
 *   candidate  `checkRequest(opts, replaced)` (method, path, options and every header as
 *              undici's Request checks them, flattened once, Host and trace headers taken
 *              out), then `upstreamHeaders(caller, …)` extending that list (a lone try)
 *
 * Three request shapes: undici.request with an object of 4 headers; a fetch-like object of
 * 10 lower-case headers (traceparent, cookie, user-agent, …); a flat list of 8 headers.
 * Values that differ per request in real traffic (x-request-id, traceparent, B3 ids) differ
 * here too: each shape cycles through 4,096 requests with fresh ids.
 * Each round runs every (shape, variant) pair for BENCH_ITERATIONS calls, interleaved
 * A B B A, and the median ns per call over rounds is printed with the added cost
 * (candidate − baseline) — the number the hot path pays.
 *
 * Target: the added cost is below 1 µs per request for every shape (the issue asks for
 * "well under 1 µs"; a retry pays no more: it reuses the flat list). Knobs: BENCH_ROUNDS (15), BENCH_ITERATIONS (200000).
 */
import { checkRequest } from '../build/src/outbound/request-check.js'
import { replacedBy, upstreamHeaders } from '../build/src/outbound/request-headers.js'
import { inject } from '../build/src/observability/propagation.js'
import { emitResult, envNumber, fmt, header, median, pad, padEnd, verdict } from './lib/common.mjs'

const ROUNDS = envNumber('BENCH_ROUNDS', 15)
const ITERATIONS = envNumber('BENCH_ITERATIONS', 200_000)

header('request-check: the door\'s caller-error check + upstream headers vs the header passes they replaced', { BENCH_ROUNDS: ROUNDS, BENCH_ITERATIONS: ITERATIONS })

/** The Host lookup dispatch made before (src/outbound/request-headers.ts `findHeader`, as it was). */
function findHeader(raw, name) {
  if (raw === null || raw === undefined) return undefined
  if (Array.isArray(raw)) {
    if (raw.length > 0 && Array.isArray(raw[0])) {
      for (const [k, v] of raw) if (String(k).toLowerCase() === name) return String(v)
      return undefined
    }
    for (let i = 0; i + 1 < raw.length; i += 2) if (String(raw[i]).toLowerCase() === name) return String(raw[i + 1])
    return undefined
  }
  if (typeof raw[Symbol.iterator] === 'function') {
    for (const [k, v] of raw) if (String(k).toLowerCase() === name) return String(v)
    return undefined
  }
  const direct = raw[name]
  if (direct !== undefined) return Array.isArray(direct) ? String(direct[0]) : String(direct)
  for (const k in raw) {
    if (k.length === name.length && k.toLowerCase() === name) {
      const v = raw[k]
      if (v !== undefined && v !== null) return Array.isArray(v) ? String(v[0]) : String(v)
    }
  }
  return undefined
}

/** The upstream headers as they were built before (src/outbound/request-headers.ts, no mutations). */
function oldUpstreamHeaders(raw, host, outgoing) {
  const out = []
  const replaced = replacedBy(outgoing.formats)
  let hasRequestId = false
  forEachHeader(raw, (k, v) => {
    const lower = k.toLowerCase()
    if (lower === 'host') return
    if (replaced.has(lower)) return
    if (lower === 'x-request-id') hasRequestId = true
    out.push(k, v)
  })
  out.push('host', host)
  inject(outgoing.trace, outgoing.formats, (name, value) => out.push(name, value))
  if (!hasRequestId && outgoing.requestId !== undefined) out.push('x-request-id', outgoing.requestId)
  return out
}

/** This call's trace, as the dispatcher passes it (default formats: W3C). */
const FORMATS = Object.freeze(['w3c'])
const REPLACED = replacedBy(FORMATS)
const outgoing = {
  trace: { traceId: '4bf92f3577b34da6a3ce929d0e0e4736', spanId: '00f067aa0ba902b7', parentSpanId: undefined, sampled: true, traceState: undefined, random: true },
  formats: FORMATS,
  requestId: 'f81d4fae-7dec-11d0-a765-00a0c91e6bf6',
}

function forEachHeader(raw, fn) {
  const push = (k, v) => {
    if (v === undefined || v === null) return
    if (Array.isArray(v)) for (const x of v) fn(String(k), String(x))
    else fn(String(k), String(v))
  }
  if (raw === null || raw === undefined) return
  if (Array.isArray(raw)) {
    if (raw.length > 0 && Array.isArray(raw[0])) for (const [k, v] of raw) push(k, v)
    else for (let i = 0; i + 1 < raw.length; i += 2) push(raw[i], raw[i + 1])
  } else if (typeof raw[Symbol.iterator] === 'function') {
    for (const [k, v] of raw) push(k, v)
  } else {
    for (const k of Object.keys(raw)) push(k, raw[k])
  }
}

const shapes = {
  'request, 4 headers': {
    origin: 'http://reviews', path: '/reviews/1?x=1', method: 'GET',
    headers: { accept: 'application/json', 'user-agent': 'bench/1.0', 'x-request-id': 'f81d4fae-7dec-11d0-a765-00a0c91e6bf6', 'end-user': 'jason' },
  },
  'fetch, 10 headers': {
    origin: 'http://reviews', path: '/reviews/1', method: 'POST', body: 'x',
    headers: {
      accept: '*/*', 'accept-encoding': 'gzip, deflate', 'accept-language': '*', 'content-type': 'application/json',
      'sec-fetch-mode': 'cors', 'user-agent': 'node', traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
      tracestate: 'rojo=00f067aa0ba902b7', cookie: 'session=abcdefghijklmnopqrstuvwxyz0123456789', 'x-request-id': 'f81d4fae-7dec-11d0-a765-00a0c91e6bf6',
    },
  },
  'flat list, 8 headers': {
    origin: 'http://reviews', path: '/reviews/1', method: 'GET',
    headers: ['Accept', 'text/html', 'User-Agent', 'curl/8', 'X-Request-Id', 'abc', 'Authorization', 'Bearer eyJhbGciOiJIUzI1NiJ9.e30.abc', 'Cache-Control', 'no-cache', 'X-B3-TraceId', '463ac35c9f6413ad', 'X-B3-SpanId', 'a2fb4a1d1a96d312', 'Host', 'reviews'],
  },
}

/** 4,096 copies of a shape, with per-request values made fresh (as strings parsed per request are). */
function variantsOf(opts) {
  const hex = (n, i) => (BigInt(i + 1) * 0x9e3779b97f4a7c15n).toString(16).padStart(n, '0').slice(-n)
  return Array.from({ length: 4096 }, (_, i) => {
    const fresh = (name, value) => {
      const n = name.toLowerCase()
      if (n === 'x-request-id') return `${hex(8, i)}-7dec-11d0-a765-${hex(12, i * 7)}`
      if (n === 'traceparent') return `00-${hex(32, i)}-${hex(16, i * 3)}-01`
      if (n === 'x-b3-traceid' || n === 'x-b3-spanid') return hex(16, i * 5)
      return value
    }
    if (Array.isArray(opts.headers)) {
      const h = [...opts.headers]
      for (let k = 0; k < h.length; k += 2) h[k + 1] = fresh(h[k], h[k + 1])
      return { ...opts, headers: h }
    }
    const h = {}
    for (const [k, v] of Object.entries(opts.headers)) h[k] = fresh(k, v)
    return { ...opts, headers: h }
  })
}

let sink = 0
const variants = {
  baseline: (list) => {
    for (let i = 0; i < ITERATIONS; i++) {
      const opts = list[i & 4095]
      const host = findHeader(opts.headers, 'host') ?? 'reviews'
      sink += oldUpstreamHeaders(opts.headers, host, outgoing).length
    }
  },
  candidate: (list) => {
    for (let i = 0; i < ITERATIONS; i++) {
      const caller = checkRequest(list[i & 4095], REPLACED)
      sink += upstreamHeaders(caller, caller.host ?? 'reviews', null, outgoing, true).length
    }
  },
}

// Sanity: the check passes every shape (a refused shape would measure the error path).
const lists = {}
for (const [name, opts] of Object.entries(shapes)) {
  lists[name] = variantsOf(opts)
  for (const o of lists[name]) {
    const r = checkRequest(o, REPLACED)
    if (r instanceof Error) throw new Error(`${name} is refused: ${r.message}`)
  }
}

const results = {}
for (const name of Object.keys(shapes)) results[name] = { baseline: [], candidate: [] }
// Warm up both variants on every shape.
for (const list of Object.values(lists)) for (const v of Object.values(variants)) v(list)

for (let round = 0; round < ROUNDS; round++) {
  for (const [name, list] of Object.entries(lists)) {
    const order = round % 2 === 0 ? ['baseline', 'candidate', 'candidate', 'baseline'] : ['candidate', 'baseline', 'baseline', 'candidate']
    const total = { baseline: 0, candidate: 0 }
    for (const v of order) {
      const t = process.hrtime.bigint()
      variants[v](list)
      total[v] += Number(process.hrtime.bigint() - t)
    }
    for (const v of ['baseline', 'candidate']) results[name][v].push(total[v] / (2 * ITERATIONS))
  }
}

console.log(`${padEnd('shape', 24)}${pad('before ns', 14)}${pad('after ns', 12)}${pad('added ns', 12)}`)
const verdicts = []
const medians = {}
for (const [name, r] of Object.entries(results)) {
  const base = median(r.baseline)
  const cand = median(r.candidate)
  const added = median(r.candidate.map((c, i) => c - r.baseline[i]))
  medians[name] = { beforeNs: base, afterNs: cand, addedNs: added }
  console.log(`${padEnd(name, 24)}${pad(fmt(base, 1), 14)}${pad(fmt(cand, 1), 12)}${pad(fmt(added, 1), 12)}`)
  verdicts.push(verdict(`added cost per request (${name})`, added / 1000, '<=', 1, ' µs'))
}
if (sink === -1) console.log('unreachable')
emitResult('request-check', { medians, targets: verdicts, knobs: { ROUNDS, ITERATIONS } })
