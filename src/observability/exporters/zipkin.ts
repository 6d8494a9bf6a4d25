/**
 * Zipkin v2 JSON (`POST /api/v2/spans`, a list of spans), mapped from OTel spans as the
 * OpenTelemetry spec's Zipkin transformation says: kind SERVER/CLIENT (omitted for
 * internal), times in whole microseconds, attributes as string tags, `otel.status_code`
 * and an `error` tag for error status, a remote endpoint when the attributes name one.
 */
import { isIP } from 'node:net'
import type { AttributeValue } from '@opentelemetry/api'
import type { FinishedSpan } from '../tracing.js'
import type { ExportResource } from './encoder.js'

interface ZipkinEndpoint {
  serviceName?: string
  ipv4?: string
  ipv6?: string
  port?: number
}

interface ZipkinSpan {
  traceId: string
  id: string
  parentId?: string
  name: string
  kind?: 'SERVER' | 'CLIENT' | 'PRODUCER' | 'CONSUMER'
  timestamp: number
  duration: number
  localEndpoint: ZipkinEndpoint
  remoteEndpoint?: ZipkinEndpoint
  tags: Record<string, string>
}

const KINDS = { server: 'SERVER', client: 'CLIENT', producer: 'PRODUCER', consumer: 'CONSUMER', internal: undefined } as const

/** Encodes spans as a Zipkin v2 JSON body. */
export function encodeZipkin(spans: readonly FinishedSpan[], resource: ExportResource): string {
  const localEndpoint: ZipkinEndpoint = { serviceName: resource.serviceName }
  return JSON.stringify(spans.map((s) => zipkinSpan(s, localEndpoint)))
}

function zipkinSpan(s: FinishedSpan, localEndpoint: ZipkinEndpoint): ZipkinSpan {
  const tags: Record<string, string> = {}
  for (const key of Object.keys(s.attributes)) {
    const v = s.attributes[key]
    if (v !== undefined) tags[key] = tagValue(v)
  }
  // A boolean `error` attribute would make Zipkin mark the span failed whatever its value.
  if (s.status !== 'error') delete tags['error']
  if (s.status === 'ok') tags['otel.status_code'] = 'OK'
  if (s.status === 'error') {
    tags['otel.status_code'] = 'ERROR'
    // Zipkin marks a span failed when it has an `error` tag; the value is shown as the reason.
    tags['error'] = s.statusMessage ?? tags['error.type'] ?? ''
  }
  const z: ZipkinSpan = {
    traceId: s.traceId,
    id: s.spanId,
    name: s.name,
    timestamp: micros(s.startTimeUnixNano),
    // Zipkin wants at least 1µs; a span that short is rounded up rather than dropped.
    duration: Math.max(1, Math.round(Number(BigInt(s.endTimeUnixNano) - BigInt(s.startTimeUnixNano)) / 1000)),
    localEndpoint,
    tags,
  }
  if (s.parentSpanId !== undefined) z.parentId = s.parentSpanId
  const kind = KINDS[s.kind]
  if (kind !== undefined) z.kind = kind
  const remote = remoteEndpoint(s)
  if (remote !== undefined) z.remoteEndpoint = remote
  return z
}

/** Whole microseconds since the epoch, from an exact nanosecond string. */
function micros(unixNano: string): number {
  return unixNano.length <= 3 ? 0 : Number(unixNano.slice(0, -3))
}

/** The other end: the server a client span called, or the client of a server span. */
function remoteEndpoint(s: FinishedSpan): ZipkinEndpoint | undefined {
  const a = s.attributes
  let host: AttributeValue | undefined
  let port: AttributeValue | undefined
  if (s.kind === 'client' || s.kind === 'producer') {
    host = a['peer.service'] ?? a['server.address']
    port = a['server.port']
  } else if (s.kind === 'server' || s.kind === 'consumer') {
    host = a['client.address']
    port = a['client.port']
  }
  if (typeof host !== 'string' || host === '') return undefined
  const e: ZipkinEndpoint = {}
  const bare = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host
  const family = isIP(bare)
  if (family === 4) e.ipv4 = bare
  else if (family === 6) e.ipv6 = bare
  else e.serviceName = host.toLowerCase()
  if (typeof port === 'number' && Number.isInteger(port) && port > 0 && port < 65536) e.port = port
  return e
}

/** A tag value: primitives as text (booleans lower case), lists as a JSON list. */
function tagValue(v: AttributeValue): string {
  if (typeof v === 'string') return v
  if (Array.isArray(v)) return JSON.stringify(v)
  return String(v)
}
