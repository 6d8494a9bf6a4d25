/**
 * The head of a request as undici 7's HTTP/1.1 client writes it (lib/dispatcher/client-h1.js
 * `writeH1`, lib/core/request.js `processHeader`): request line, `host`, `connection:
 * keep-alive` (or `close`), then the caller's headers in order, one line per value of a
 * list. The framing lines (`content-length`, `transfer-encoding: chunked`) are added by the
 * writer once the body's length is known.
 *
 * Validation: the mesh's door (`outbound/request-check.ts`) already refused what undici's
 * `Request` would (invalid names and values, a header undici sets itself, a bad
 * Content-Length), so header names and values are not checked again here. What the door
 * does not see (headers the mesh adds, the Host it routes by) is guarded cheaply: the
 * finished head must hold exactly one CR and one LF per line it was built with, so a value
 * carrying a line break can never start a header or a request of its own. The headers
 * undici refuses outright (`transfer-encoding`, `keep-alive`, `upgrade`, `expect`, a
 * `connection` other than a token list) are refused here as undici refuses them, for
 * callers that do not come through the door (health checks, tests, direct pool users).
 */
import { errors, type Dispatcher } from 'undici'

/** What the head says about the request, besides its text. */
export class RequestHead {
  /** The head without its final empty line (and without framing lines). */
  text = ''
  /** The caller's Content-Length, or -1. */
  contentLength = -1
  /** The caller's Content-Type was given (a Blob's type is then not added). */
  hasContentType = false
  /** `connection: close` was asked, or `reset: true`: the connection is closed after the response. */
  reset = false
}

/** A header value as undici coerces it (`processHeader`); undefined: no line. */
function valueOf(v: unknown): string | undefined {
  if (typeof v === 'string') return v
  if (v === undefined) return undefined
  if (v === null) return ''
  if (typeof v === 'object') throw new errors.InvalidArgumentError('invalid header value')
  return `${v as string | number | boolean | bigint}`
}

/**
 * Builds the head for `opts` to an origin whose Host is `defaultHost` (`name[:port]`).
 * Throws undici's `InvalidArgumentError` (or `NotSupportedError` for `expect`) where undici
 * would refuse the request.
 */
export function buildHead(opts: Dispatcher.DispatchOptions, defaultHost: string, out: RequestHead): void {
  out.contentLength = -1
  out.hasContentType = false
  out.reset = (opts as { reset?: boolean | null }).reset === true
  host = undefined
  lines = 0
  fields = ''
  const headers = opts.headers as unknown
  if (headers != null) {
    if (Array.isArray(headers)) {
      if (headers.length > 0 && Array.isArray(headers[0])) {
        for (const pair of headers as unknown[][]) add(String(pair[0]), pair[1], out)
      } else {
        if ((headers.length & 1) !== 0) throw new errors.InvalidArgumentError('headers array must be even')
        for (let i = 0; i < headers.length; i += 2) {
          const name = headers[i] as string
          const value: unknown = headers[i + 1]
          const len = name.length
          if (typeof value === 'string' && len !== 4 && len !== 6 && len !== 7 && len !== 10 && len !== 12 && len !== 14 && len !== 17) {
            // The common case: an ordinary header with one string value.
            fields += `${name}: ${value}\r\n`
            lines++
            continue
          }
          add(name, value, out)
        }
      }
    } else if (typeof headers === 'object') {
      const h = headers as Record<string, unknown> & { [Symbol.iterator]?: unknown }
      if (typeof h[Symbol.iterator] === 'function') {
        for (const pair of h as unknown as Iterable<unknown>) {
          if (!Array.isArray(pair) || pair.length !== 2) throw new errors.InvalidArgumentError('headers must be in key-value pair format')
          add(String(pair[0]), pair[1], out)
        }
      } else {
        for (const name of Object.keys(h)) add(name, h[name], out)
      }
    } else {
      throw new errors.InvalidArgumentError('headers must be an object or an array')
    }
  }
  const path = opts.path
  const text = `${opts.method} ${path} HTTP/1.1\r\nhost: ${host ?? defaultHost}\r\n${out.reset ? 'connection: close\r\n' : 'connection: keep-alive\r\n'}${fields}`
  const expected = lines + 3
  fields = ''
  if (!exactLines(text, expected)) throw new errors.InvalidArgumentError('invalid request: a line break in the method, path, Host or a header value')
  out.text = text
}

// The head being built: {@link buildHead} runs to its end synchronously, so one set of
// accumulators serves every call without a closure or an object per request.
/** The caller's header lines so far. */
let fields = ''
/** How many lines `fields` holds. */
let lines = 0
/** The caller's Host header, when it gave one. */
let host: string | undefined

/** One caller header through {@link field}: its lines appended, or its value taken as the Host. */
function add(name: string, value: unknown, out: RequestHead): void {
  const r = field(name, value, out)
  if (r === HOST) host = valueOf(value)
  else if (r !== null) {
    fields += r
    lines += lineCount
  }
}

/** Marks the Host header in {@link field}'s answer. */
const HOST = '\u0000host'
/** Lines in the last answer of {@link field}. */
let lineCount = 0

/**
 * One caller header: its lines, {@link HOST} for Host, or null when it adds no line
 * (undefined values, `connection`, `content-length`: undici sends those its own way).
 */
function field(name: string, value: unknown, out: RequestHead): string | null {
  if (value === undefined) return null
  if (value !== null && typeof value === 'object' && !Array.isArray(value)) throw new errors.InvalidArgumentError(`invalid ${name} header`)
  const lower = name.toLowerCase()
  switch (lower) {
    case 'host':
      if (typeof value !== 'string') throw new errors.InvalidArgumentError('invalid host header')
      return HOST
    case 'content-length': {
      const v = valueOf(value)
      if (v === undefined || !/^\d+$/.test(v)) throw new errors.InvalidArgumentError('invalid content-length header')
      if (out.contentLength !== -1) throw new errors.InvalidArgumentError('duplicate content-length header')
      out.contentLength = Number.parseInt(v, 10)
      return null
    }
    case 'transfer-encoding':
    case 'keep-alive':
    case 'upgrade':
      throw new errors.InvalidArgumentError(`invalid ${lower} header`)
    case 'expect':
      throw new errors.NotSupportedError('expect header not supported')
    case 'connection': {
      if (typeof value !== 'string') throw new errors.InvalidArgumentError('invalid connection header')
      for (const token of value.toLowerCase().split(',')) if (token.trim() === 'close') out.reset = true
      return null
    }
    case 'content-type':
      out.hasContentType = true
      break
  }
  if (Array.isArray(value)) {
    let s = ''
    for (const v of value) s += `${name}: ${v === null ? '' : valueOf(v) ?? ''}\r\n`
    lineCount = value.length
    return s
  }
  lineCount = 1
  return `${name}: ${valueOf(value) as string}\r\n`
}

/** Whether `text` holds exactly `lines` CRs and `lines` LFs (one CRLF per line built). */
function exactLines(text: string, lines: number): boolean {
  let n = 0
  for (let i = text.indexOf('\n'); i !== -1; i = text.indexOf('\n', i + 1)) n++
  if (n !== lines) return false
  n = 0
  for (let i = text.indexOf('\r'); i !== -1; i = text.indexOf('\r', i + 1)) n++
  return n === lines
}
