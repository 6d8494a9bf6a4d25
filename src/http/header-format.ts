/**
 * Evaluation of header values with Envoy command operators (parsed by
 * `config/header-format.ts`). Request headers are formatted once per request, when the
 * route is resolved (as Envoy's router finalizes them before choosing an endpoint, so
 * response-only operators are empty there); response headers once per response.
 * A value that comes out empty is not added, unless `keepEmptyValue` (Envoy's rule).
 */
import { hostname } from 'node:os'
import { parseHeaderFormat, type FormatOperator, type FormatPart } from '../config/header-format.js'
import type { RequestFacts } from './request-view.js'

export type { RequestFacts } from './request-view.js'


/** What response-side operators read. */
export interface ResponseFacts {
  readonly status: number
  readonly headers: Readonly<Record<string, string | readonly string[] | undefined>> | undefined
  /** `host:port` of the endpoint that answered; undefined for a local reply. */
  readonly upstreamAddress: string | undefined
  readonly flags: string | undefined
}

/** A formatted header value. */
export type HeaderValueFormat = (req: RequestFacts | undefined, res: ResponseFacts | undefined) => string

/** A header value's text, or its formatter when it has operators. Values that fail to parse are taken literally (validation refuses them first). */
export function compileHeaderFormat(value: string): string | HeaderValueFormat {
  const parts = parseHeaderFormat(value)
  if (typeof parts === 'string') return value
  if (parts.length === 1 && typeof parts[0] === 'string') return parts[0]
  if (parts.length === 0) return ''
  const steps = parts.map(compilePart)
  return (req, res) => {
    let out = ''
    for (const s of steps) out += typeof s === 'string' ? s : s(req, res)
    return out
  }
}

/** True when a formatter reads response facts (it must wait for the response). */
export function readsResponse(value: string): boolean {
  const parts = parseHeaderFormat(value)
  return typeof parts !== 'string' && parts.some((p) => typeof p !== 'string' && RESPONSE_OPERATORS.has(p.command))
}

const RESPONSE_OPERATORS = new Set(['RESP', 'RESPONSE_CODE', 'RESPONSE_FLAGS', 'UPSTREAM_REMOTE_ADDRESS', 'UPSTREAM_REMOTE_ADDRESS_WITHOUT_PORT', 'UPSTREAM_REMOTE_PORT', 'UPSTREAM_HOST'])

let host: string | undefined

function compilePart(part: FormatPart): string | HeaderValueFormat {
  if (typeof part === 'string') return part
  const op = part
  const read = operatorReader(op)
  if (op.maxLength === undefined) return read
  const max = op.maxLength
  return (req, res) => read(req, res).slice(0, max)
}

function operatorReader(op: FormatOperator): HeaderValueFormat {
  switch (op.command) {
    case 'DOWNSTREAM_REMOTE_ADDRESS':
    case 'DOWNSTREAM_DIRECT_REMOTE_ADDRESS':
      return (req) => req?.view.downstreamRemoteAddress ?? ''
    case 'DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT':
    case 'DOWNSTREAM_DIRECT_REMOTE_ADDRESS_WITHOUT_PORT':
      return (req) => withoutPort(req?.view.downstreamRemoteAddress)
    case 'DOWNSTREAM_REMOTE_PORT':
      return (req) => portOf(req?.view.downstreamRemoteAddress)
    case 'DOWNSTREAM_LOCAL_ADDRESS':
      return (req) => req?.view.downstreamLocalAddress ?? ''
    case 'DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT':
      return (req) => withoutPort(req?.view.downstreamLocalAddress)
    case 'DOWNSTREAM_LOCAL_PORT':
      return (req) => portOf(req?.view.downstreamLocalAddress)
    case 'START_TIME': {
      const format = op.arg ?? '%Y-%m-%dT%H:%M:%E3SZ'
      return (req) => (req === undefined ? '' : formatTime(format, req.startTime))
    }
    case 'REQ': {
      const [main, alt] = headerNames(op.arg as string)
      return (req) => req?.view.header(main) ?? (alt === undefined ? undefined : req?.view.header(alt)) ?? ''
    }
    case 'RESP': {
      const [main, alt] = headerNames(op.arg as string)
      return (_req, res) => firstValue(res?.headers?.[main]) ?? (alt === undefined ? undefined : firstValue(res?.headers?.[alt])) ?? ''
    }
    case 'PROTOCOL':
      return (req) => (req === undefined ? '' : 'HTTP/1.1')
    case 'HOSTNAME':
      return () => (host ??= hostname())
    case 'UPSTREAM_CLUSTER':
      return (req) => req?.cluster ?? ''
    case 'ROUTE_NAME':
      return (req) => req?.route ?? ''
    case 'VIRTUAL_CLUSTER_NAME':
      return (req) => req?.virtualCluster ?? ''
    case 'REQUESTED_SERVER_NAME':
      return () => ''
    case 'ENVIRONMENT': {
      const name = op.arg as string
      return () => process.env[name] ?? ''
    }
    case 'RESPONSE_CODE':
      return (_req, res) => (res === undefined ? '' : String(res.status))
    case 'RESPONSE_FLAGS':
      return (_req, res) => (res === undefined ? '' : res.flags ?? '-')
    case 'UPSTREAM_REMOTE_ADDRESS':
    case 'UPSTREAM_HOST':
      return (_req, res) => res?.upstreamAddress ?? ''
    case 'UPSTREAM_REMOTE_ADDRESS_WITHOUT_PORT':
      return (_req, res) => withoutPort(res?.upstreamAddress)
    case 'UPSTREAM_REMOTE_PORT':
      return (_req, res) => portOf(res?.upstreamAddress)
    default:
      return () => ''
  }
}

/** `REQ(a?b)`: the header, or its alternative; names lower-cased (`:PATH` is `:path`). */
function headerNames(arg: string): [string, string | undefined] {
  const q = arg.indexOf('?')
  return q === -1 ? [arg.toLowerCase(), undefined] : [arg.slice(0, q).toLowerCase(), arg.slice(q + 1).toLowerCase()]
}

function firstValue(v: string | readonly string[] | undefined): string | undefined {
  return v === undefined ? undefined : typeof v === 'string' ? v : v[0]
}

function withoutPort(address: string | undefined): string {
  if (address === undefined) return ''
  if (address.startsWith('[')) {
    const close = address.indexOf(']')
    return close === -1 ? address : address.slice(1, close)
  }
  const colon = address.lastIndexOf(':')
  return colon === -1 || address.indexOf(':') !== colon ? address : address.slice(0, colon)
}

function portOf(address: string | undefined): string {
  if (address === undefined) return ''
  const colon = address.lastIndexOf(':')
  if (colon === -1 || (!address.startsWith('[') && address.indexOf(':') !== colon)) return ''
  return address.slice(colon + 1)
}

const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat']
const DAYS_LONG = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday']
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec']
const MONTHS_LONG = ['January', 'February', 'March', 'April', 'May', 'June', 'July', 'August', 'September', 'October', 'November', 'December']

const pad = (n: number, w = 2): string => String(n).padStart(w, '0')

/**
 * Envoy's START_TIME formatting, in UTC: strftime specifiers, plus `%s` (seconds since the
 * epoch), `%Nf` (N digits of the second's fraction; `%f` is 9) and absl's `%E#S` (seconds
 * with # fraction digits). The clock has millisecond resolution: further digits are 0.
 */
export function formatTime(format: string, epochMs: number): string {
  const d = new Date(epochMs)
  const ms = ((epochMs % 1000) + 1000) % 1000
  const fraction = (digits: number): string => `${pad(Math.floor(ms), 3)}000000`.slice(0, digits)
  let out = ''
  for (let i = 0; i < format.length; i++) {
    const c = format[i] as string
    if (c !== '%' || i + 1 >= format.length) {
      out += c
      continue
    }
    let s = format[++i] as string
    if (s >= '1' && s <= '9' && format[i + 1] === 'f') {
      out += fraction(Number(s))
      i++
      continue
    }
    if (s === 'E') {
      const n = format[i + 1]
      const digits = n === '*' ? 9 : n !== undefined && n >= '1' && n <= '9' ? Number(n) : 0
      i += digits > 0 || n === '*' ? 2 : 1
      out += digits === 0 ? pad(d.getUTCSeconds()) : `${pad(d.getUTCSeconds())}.${fraction(digits)}`
      continue
    }
    switch (s) {
      case 'Y': out += String(d.getUTCFullYear()); break
      case 'y': out += pad(d.getUTCFullYear() % 100); break
      case 'm': out += pad(d.getUTCMonth() + 1); break
      case 'd': out += pad(d.getUTCDate()); break
      case 'e': out += String(d.getUTCDate()).padStart(2, ' '); break
      case 'H': out += pad(d.getUTCHours()); break
      case 'I': out += pad(((d.getUTCHours() + 11) % 12) + 1); break
      case 'M': out += pad(d.getUTCMinutes()); break
      case 'S': out += pad(d.getUTCSeconds()); break
      case 'p': out += d.getUTCHours() < 12 ? 'AM' : 'PM'; break
      case 'j': out += pad(Math.floor((Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate()) - Date.UTC(d.getUTCFullYear(), 0, 1)) / 86_400_000) + 1, 3); break
      case 'a': out += DAYS[d.getUTCDay()] as string; break
      case 'A': out += DAYS_LONG[d.getUTCDay()] as string; break
      case 'b': case 'h': out += MONTHS[d.getUTCMonth()] as string; break
      case 'B': out += MONTHS_LONG[d.getUTCMonth()] as string; break
      case 'Z': out += 'UTC'; break
      case 'z': out += '+0000'; break
      case 's': out += String(Math.floor(epochMs / 1000)); break
      case 'f': out += fraction(9); break
      case 'T': out += `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}`; break
      case 'D': out += `${pad(d.getUTCMonth() + 1)}/${pad(d.getUTCDate())}/${pad(d.getUTCFullYear() % 100)}`; break
      case 'F': out += `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}`; break
      case 'R': out += `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}`; break
      case 'n': out += '\n'; break
      case 't': out += '\t'; break
      case '%': out += '%'; break
      default: s = `%${s}`; out += s
    }
  }
  return out
}
