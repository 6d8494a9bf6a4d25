/**
 * Caller errors found at the door, before routing. A request undici would refuse to send
 * (CR/LF in a header value, the path or the method; a header it sets itself, such as
 * `transfer-encoding`; a malformed `content-length`) is the caller's mistake: plain undici
 * throws `UND_ERR_INVALID_ARG` and fetch a TypeError. Let through, the endpoint's pool
 * refused it after the mesh had picked a host, and the refusal read as the upstream
 * failing — a 503 `UC` counted by the error-rate breaker and outlier detection, so twenty
 * bad calls could shed healthy traffic. These are the checks of undici 7's `Request`
 * constructor (lib/core/request.js, `processHeader`; lib/core/util.js), made once here;
 * the error carries undici's own error as its `cause`.
 *
 * The same walk flattens the headers for the upstream hop and takes out `Host` (routing
 * reads it): a request pays one walk of its headers for the checks and the rewrite, and a
 * retry reuses it.
 *
 * @module
 */
import { errors, type Dispatcher } from 'undici'
import { MeshError } from '../errors.js'
import type { CallerHeaders } from './request-headers.js'

type DispatchOptions = Dispatcher.DispatchOptions

/** What the door found: the caller's headers, checked and flattened, or why the request is refused. */
export type DoorCheck = CallerHeaders | MeshError

/** Bytes of an HTTP token (RFC 9110 §5.6.2), as undici's `isValidHTTPToken`. */
const TOKEN = new Uint8Array(128)
for (const c of "!#$%&'*+-.^_`|~") TOKEN[c.charCodeAt(0)] = 1
for (let c = 0x30; c <= 0x39; c++) TOKEN[c] = 1
for (let c = 0x41; c <= 0x5a; c++) TOKEN[c] = 1
for (let c = 0x61; c <= 0x7a; c++) TOKEN[c] = 1

/** A request target undici refuses: controls, space, DEL... anything outside \x21-\xff. */
const BAD_PATH = /[^\u0021-\u00ff]/

/** Methods undici knows without checking (its `normalizedMethodRecords`). */
const KNOWN_METHODS: Readonly<Record<string, true>> = Object.assign(Object.create(null) as Record<string, true>, {
  GET: true, HEAD: true, POST: true, PUT: true, DELETE: true, OPTIONS: true, PATCH: true,
  get: true, head: true, post: true, put: true, delete: true, options: true, patch: true,
})

/**
 * Checks a dispatch's method, path, upgrade, body, options and headers the way undici's
 * `Request` would. Returns the caller's headers, flattened, without Host and without the
 * headers named in `replaced` (those the mesh's trace formats write), or the coded error.
 */
export function checkRequest(opts: DispatchOptions, replaced: ReadonlySet<string>): DoorCheck {
  const method = opts.method
  if (KNOWN_METHODS[method] !== true && lowerToken(method) === undefined) return refused(`the method ${describe(method)} is not an HTTP token`, 'invalid request method')
  const path = opts.path
  if (path.charCodeAt(0) !== 0x2f && !path.startsWith('http://') && !path.startsWith('https://') && method !== 'CONNECT') {
    return refused('the path must start with / (or be an absolute http(s) URL)', 'path must be an absolute URL or start with a slash')
  }
  const at = path.search(BAD_PATH)
  if (at !== -1) return refused(`the path holds a ${charName(path.charCodeAt(at))} at offset ${at} (encode it)`, 'invalid request path')
  if (opts.upgrade != null && (typeof opts.upgrade !== 'string' || !isFieldValue(opts.upgrade))) {
    return refused('upgrade must be a string holding a valid header value', typeof opts.upgrade === 'string' ? 'invalid upgrade header' : 'upgrade must be a string')
  }
  if (opts.body != null && !isBody(opts.body)) {
    return refused('the body must be a string, a Buffer or other byte view, a Readable stream, an iterable, an async iterable, a Blob or FormData', 'body must be a string, a Buffer, a Readable stream, an iterable, or an async iterable')
  }
  const o = opts as DispatchOptions & { expectContinue?: unknown; throwOnError?: unknown; maxRedirections?: unknown; typeOfService?: unknown }
  // Rarely set: one test for the common case where none is.
  if (o.headersTimeout != null || o.bodyTimeout != null || o.reset != null || o.expectContinue != null ||
    o.throwOnError != null || o.maxRedirections != null || o.typeOfService != null) {
    const problem = optionProblem(o)
    if (problem !== undefined) return problem
  }
  return readHeaders(opts.headers, replaced)
}

function optionProblem(o: DispatchOptions & { expectContinue?: unknown; throwOnError?: unknown; maxRedirections?: unknown; typeOfService?: unknown }): MeshError | undefined {
  const finite = (v: unknown): boolean => typeof v === 'number' && Number.isFinite(v) && v >= 0
  if (o.headersTimeout != null && !finite(o.headersTimeout)) return refused('headersTimeout must be a non-negative number', 'invalid headersTimeout')
  if (o.bodyTimeout != null && !finite(o.bodyTimeout)) return refused('bodyTimeout must be a non-negative number', 'invalid bodyTimeout')
  if (o.reset != null && typeof o.reset !== 'boolean') return refused('reset must be a boolean', 'invalid reset')
  if (o.expectContinue != null && typeof o.expectContinue !== 'boolean') return refused('expectContinue must be a boolean', 'invalid expectContinue')
  if (o.throwOnError != null) return refused('throwOnError is not supported (use the responseError interceptor)', 'invalid throwOnError')
  if (o.maxRedirections != null && o.maxRedirections !== 0) return refused('maxRedirections is not supported (use the redirect interceptor)', 'maxRedirections is not supported, use the redirect interceptor')
  const tos = o.typeOfService
  if (tos != null && (typeof tos !== 'number' || !Number.isInteger(tos) || tos < 0 || tos > 255)) return refused('typeOfService must be an integer from 0 to 255', 'typeOfService must be an integer between 0 and 255')
  return undefined
}

/** What undici accepts as a body (`Request`'s constructor). */
function isBody(body: unknown): boolean {
  if (typeof body === 'string') return true
  if (typeof body !== 'object' || body === null) return false
  const b = body as { pipe?: unknown; on?: unknown; [Symbol.iterator]?: unknown; [Symbol.asyncIterator]?: unknown; [Symbol.toStringTag]?: unknown }
  return (typeof b.pipe === 'function' && typeof b.on === 'function') || ArrayBuffer.isView(body) || body instanceof ArrayBuffer ||
    typeof b[Symbol.iterator] === 'function' || typeof b[Symbol.asyncIterator] === 'function' ||
    body instanceof Blob || b[Symbol.toStringTag] === 'FormData' || b[Symbol.toStringTag] === 'File' || b[Symbol.toStringTag] === 'Blob'
}

/** Collects the caller's headers as the walk accepts them. */
class Walk implements CallerHeaders {
  readonly flat: string[] = []
  host: string | undefined = undefined
  hasRequestId = false
  hosts = 0
  contentLengths = 0
  /** Header names the mesh writes itself (its trace formats): checked, then left out. */
  readonly replaced: ReadonlySet<string>

  constructor(replaced: ReadonlySet<string>) {
    this.replaced = replaced
  }
}

function readHeaders(headers: DispatchOptions['headers'], replaced: ReadonlySet<string>): CallerHeaders | MeshError {
  const walk = new Walk(replaced)
  if (headers == null) return walk
  if (Array.isArray(headers)) {
    if (headers.length > 0 && Array.isArray(headers[0])) {
      // Pairs in an array (undici's iterable form).
      for (const pair of headers as unknown as unknown[]) {
        if (!Array.isArray(pair) || pair.length !== 2) return refused('headers must be name/value pairs', 'headers must be in key-value pair format')
        const problem = addHeader(walk, pair[0], pair[1])
        if (problem !== undefined) return problem
      }
      return walk
    }
    if (headers.length % 2 !== 0) return refused('a flat header list must hold name, value pairs (its length is odd)', 'headers array must be even')
    for (let i = 0; i < headers.length; i += 2) {
      const problem = addHeader(walk, headers[i], headers[i + 1])
      if (problem !== undefined) return problem
    }
    return walk
  }
  if (typeof headers !== 'object') return refused('headers must be an object or an array', 'headers must be an object or an array')
  if (hasSafeIterator(headers)) {
    for (const pair of headers as Iterable<unknown>) {
      if (!Array.isArray(pair) || pair.length !== 2) return refused('headers must be name/value pairs', 'headers must be in key-value pair format')
      const problem = addHeader(walk, pair[0], pair[1])
      if (problem !== undefined) return problem
    }
    return walk
  }
  const record = headers as Record<string, unknown>
  const keys = Object.keys(record)
  for (let i = 0; i < keys.length; i++) {
    const name = keys[i] as string
    const problem = addHeader(walk, name, record[name])
    if (problem !== undefined) return problem
  }
  return walk
}

/** undici's test: an own iterator, or one inherited from something other than Object.prototype (not a polluted one). */
function hasSafeIterator(obj: object): boolean {
  if (Object.hasOwn(obj, Symbol.iterator)) return true
  const proto: unknown = Object.getPrototypeOf(obj)
  return proto !== null && proto !== Object.prototype && typeof (obj as { [Symbol.iterator]?: unknown })[Symbol.iterator] === 'function'
}

/**
 * One header, checked as undici's `processHeader` checks it, and added to the walk: every
 * value (a list gives one line per item; null and undefined none), Host kept apart.
 */
function addHeader(walk: Walk, key: unknown, value: unknown): MeshError | undefined {
  if (value === undefined || value === null) return undefined
  const name = typeof key === 'string' ? key : String(key)
  const lower = lowerName(name)
  if (lower === undefined) return refused(`${describe(name)} is not a header name (an HTTP token)`, 'invalid header key')
  if (typeof value === 'string') {
    if (!isFieldValue(value)) return badValue(name)
    if (isSpecial(lower)) return special(walk, lower, value) ?? push(walk, name, lower, value)
    return push(walk, name, lower, value)
  }
  if (Array.isArray(value)) {
    if (isSpecial(lower)) return refused(`header ${describe(name)} has a list of values`, `invalid ${lower} header`)
    for (const v of value as unknown[]) {
      if (v === null || v === undefined) continue
      if (typeof v === 'object' || typeof v === 'function' || typeof v === 'symbol') return refused(`a value of header ${describe(name)} is not a string`, `invalid ${name} header`)
      const text = typeof v === 'string' ? v : String(v)
      if (!isFieldValue(text)) return badValue(name)
      push(walk, name, lower, text)
    }
    return undefined
  }
  if (typeof value === 'object' || typeof value === 'function' || typeof value === 'symbol') return refused(`the value of header ${describe(name)} is not a string`, `invalid ${name} header`)
  const text = String(value)
  if (!isFieldValue(text)) return badValue(name)
  return (isSpecial(lower) ? special(walk, lower, text) : undefined) ?? push(walk, name, lower, text)
}

function push(walk: Walk, name: string, lower: string, value: string): undefined {
  if (lower === 'host' || walk.replaced.has(lower)) return undefined
  if (lower === 'x-request-id') walk.hasRequestId = true
  walk.flat.push(name, value)
  return undefined
}

/** Names with rules of their own (undici's `processHeader`); found by length first, cheaply. */
function isSpecial(lower: string): boolean {
  switch (lower.length) {
    case 4: return lower === 'host'
    case 6: return lower === 'expect'
    case 7: return lower === 'upgrade'
    case 10: return lower === 'keep-alive' || lower === 'connection'
    case 14: return lower === 'content-length'
    case 17: return lower === 'transfer-encoding'
    default: return false
  }
}

/** The rules of the special names; undefined when the header is fine (or not special). */
function special(walk: Walk, lower: string, value: string): MeshError | undefined {
  switch (lower) {
    case 'host':
      if (++walk.hosts > 1) return refused('the request has two Host headers', 'duplicate host header')
      walk.host = value
      return undefined
    case 'content-length':
      if (++walk.contentLengths > 1) return refused('the request has two Content-Length headers', 'duplicate content-length header')
      if (!/^\d+$/.test(value)) return refused('Content-Length must be a decimal number', 'invalid content-length header')
      return undefined
    case 'transfer-encoding':
    case 'keep-alive':
    case 'upgrade':
      // undici frames the message and manages the connection itself; a caller copying
      // inbound headers onto an outbound call (a common proxy habit) sends these.
      return refused(`the ${lower} header cannot be set on a request (undici sets framing and connection headers itself${lower === 'upgrade' ? '; use the upgrade option' : ''})`, `invalid ${lower} header`)
    case 'connection':
      for (const token of value.toLowerCase().split(',')) {
        if (lowerToken(token.trim()) === undefined) return refused('the Connection header must be a comma-separated list of tokens', 'invalid connection header')
      }
      return undefined
    case 'expect':
      return refused('the Expect header is not supported (undici does not send 100-continue requests over HTTP/1.1)', 'expect header not supported', true)
    default:
      return undefined
  }
}

/**
 * Header names seen, with their lower-case form ('' for a name that is not a token). Names
 * repeat from request to request, and a map hit costs less than a scan (bounded: a caller
 * inventing names cannot grow it).
 */
const names = new Map<string, string>()

/** The lower-case form of a header name, or undefined when it is not an HTTP token. */
function lowerName(s: string): string | undefined {
  let lower = names.get(s)
  if (lower === undefined) {
    lower = lowerToken(s) ?? ''
    if (names.size >= 1024) names.clear()
    names.set(s, lower)
  }
  return lower === '' ? undefined : lower
}

/**
 * The lower-case form of a token, or undefined when it is not an HTTP token. One scan does
 * both; a token already in lower case is returned as it is, without a copy.
 */
function lowerToken(s: string): string | undefined {
  const n = s.length
  if (n === 0) return undefined
  let upper = false
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i)
    if (c >= 128 || TOKEN[c] !== 1) return undefined
    if (c <= 0x5a && c >= 0x41) upper = true
  }
  return upper ? s.toLowerCase() : s
}

/** undici's `isValidHeaderValue`: HTAB, SP, VCHAR and obs-text only (no CR, LF, NUL, DEL). */
function isFieldValue(s: string): boolean {
  const n = s.length
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i)
    if (c > 0x7e) {
      if (c === 0x7f || c > 0xff) return false
    } else if (c < 0x20 && c !== 0x09) {
      return false
    }
  }
  return true
}

function badValue(name: string): MeshError {
  return refused(`the value of header ${describe(name)} holds CR, LF, NUL or another control character`, `invalid ${name} header`)
}

/** The mesh's error, with the error undici would have raised for the same request as its cause. */
function refused(why: string, undiciMessage: string, notSupported = false): MeshError {
  const cause = notSupported ? new errors.NotSupportedError(undiciMessage) : new errors.InvalidArgumentError(undiciMessage)
  return new MeshError('SIDECARLESS_ERR_INVALID_REQUEST', `invalid request: ${why}; it was not sent`, { cause })
}

/** A header name or method for a message: quoted and bounded (never a header value: values may be secrets). */
function describe(s: string): string {
  return JSON.stringify(s.length > 64 ? `${s.slice(0, 64)}…` : s)
}

function charName(c: number): string {
  if (c === 0x0d) return 'CR'
  if (c === 0x0a) return 'LF'
  if (c === 0x20) return 'space'
  if (c === 0) return 'NUL'
  return `character U+${c.toString(16).toUpperCase().padStart(4, '0')}`
}
