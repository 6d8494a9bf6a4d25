/**
 * A trace collector stand-in, on port 0, that speaks what real collectors speak: OTLP/HTTP
 * with protobuf or JSON bodies (gzip or not), Zipkin v2 JSON, and OTLP over gRPC. It decodes
 * every request into one span shape, records the request headers, and can answer with a
 * given status for the next N requests (503 makes OTel exporters retry) or hold them.
 *
 * The protobuf messages are the OTLP trace protos (opentelemetry-proto v1, Apache-2.0,
 * https://github.com/open-telemetry/opentelemetry-proto), transcribed here with the field
 * numbers of `collector/trace/v1/trace_service.proto`, `trace/v1/trace.proto`,
 * `common/v1/common.proto` and `resource/v1/resource.proto`, read by protobufjs.
 */
import { once } from 'node:events'
import http from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import { gunzipSync } from 'node:zlib'
import protobuf from 'protobufjs'

const OTLP_PROTO = `
syntax = "proto3";
package opentelemetry.proto.collector.trace.v1;
message ExportTraceServiceRequest { repeated ResourceSpans resource_spans = 1; }
message ExportTraceServiceResponse { ExportTracePartialSuccess partial_success = 1; }
message ExportTracePartialSuccess { int64 rejected_spans = 1; string error_message = 2; }
message ResourceSpans { Resource resource = 1; repeated ScopeSpans scope_spans = 2; string schema_url = 3; }
message ScopeSpans { InstrumentationScope scope = 1; repeated Span spans = 2; string schema_url = 3; }
message Span {
  bytes trace_id = 1;
  bytes span_id = 2;
  string trace_state = 3;
  bytes parent_span_id = 4;
  fixed32 flags = 16;
  string name = 5;
  int32 kind = 6;
  fixed64 start_time_unix_nano = 7;
  fixed64 end_time_unix_nano = 8;
  repeated KeyValue attributes = 9;
  uint32 dropped_attributes_count = 10;
  Status status = 15;
}
message Status { string message = 2; int32 code = 3; }
message AnyValue {
  oneof value {
    string string_value = 1;
    bool bool_value = 2;
    int64 int_value = 3;
    double double_value = 4;
    ArrayValue array_value = 5;
    KeyValueList kvlist_value = 6;
    bytes bytes_value = 7;
  }
}
message ArrayValue { repeated AnyValue values = 1; }
message KeyValueList { repeated KeyValue values = 1; }
message KeyValue { string key = 1; AnyValue value = 2; }
message InstrumentationScope { string name = 1; string version = 2; repeated KeyValue attributes = 3; uint32 dropped_attributes_count = 4; }
message Resource { repeated KeyValue attributes = 1; uint32 dropped_attributes_count = 2; }
`
const root = protobuf.parse(OTLP_PROTO, { keepCase: false }).root
const Request = root.lookupType('opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest')
const Response = root.lookupType('opentelemetry.proto.collector.trace.v1.ExportTraceServiceResponse')

/** One span as received, whatever the wire format. */
export interface ReceivedSpan {
  readonly traceId: string
  readonly spanId: string
  readonly parentSpanId: string | undefined
  readonly name: string
  /** OTLP SpanKind number (2 server, 3 client); Zipkin's kind mapped to it. */
  readonly kind: number
  /** Nanoseconds since the epoch, exact. */
  readonly startTimeUnixNano: bigint
  readonly endTimeUnixNano: bigint
  readonly attributes: Readonly<Record<string, unknown>>
  /** OTLP status code (0 unset, 1 ok, 2 error). */
  readonly statusCode: number
  /** Resource attributes (Zipkin: `service.name` from localEndpoint). */
  readonly resource: Readonly<Record<string, unknown>>
  readonly scope: string | undefined
}

/** One request the collector received. */
export interface ReceivedRequest {
  readonly path: string
  readonly headers: http.IncomingHttpHeaders
  /** `protobuf`, `json`, `zipkin` or `grpc`. */
  readonly encoding: 'protobuf' | 'json' | 'zipkin' | 'grpc'
  readonly gzip: boolean
  readonly status: number
  readonly spans: readonly ReceivedSpan[]
}

export interface CollectorStandIn {
  /** `http://127.0.0.1:<port>` plus `path`. */
  url(path?: string): string
  readonly port: number
  readonly requests: ReceivedRequest[]
  /** Every span received by an accepted (2xx) request. */
  spans(): ReceivedSpan[]
  /** Answers the next `count` requests with `status` (then 200 again). */
  failNext(count: number, status: number): void
  /** Holds answers until `release()` (`hold(true)`), or stops holding. */
  hold(on: boolean): void
  release(): void
  /** Waits until `n` accepted spans arrived (polling; fails after `timeoutMs`). */
  waitForSpans(n: number, timeoutMs?: number): Promise<ReceivedSpan[]>
  close(): Promise<void>
}

type Attr = { key?: string; value?: AnyValueObj }
type AnyValueObj = { stringValue?: string; boolValue?: boolean; intValue?: string | number; doubleValue?: number | string; arrayValue?: { values?: AnyValueObj[] }; bytesValue?: unknown }

function anyValue(v: AnyValueObj | undefined): unknown {
  if (v === undefined || v === null) return undefined
  if (v.stringValue !== undefined) return v.stringValue
  if (v.boolValue !== undefined) return v.boolValue
  if (v.intValue !== undefined) return Number(v.intValue)
  if (v.doubleValue !== undefined) return Number(v.doubleValue)
  if (v.arrayValue !== undefined) return (v.arrayValue.values ?? []).map(anyValue)
  return undefined
}

function attributes(list: Attr[] | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const kv of list ?? []) if (kv.key !== undefined) out[kv.key] = anyValue(kv.value)
  return out
}

/** An id as hex: protobuf gives bytes, OTLP JSON hex strings (base64 in the plain protobuf JSON mapping). */
function hexId(v: unknown): string | undefined {
  if (v === undefined || v === null || v === '') return undefined
  if (typeof v === 'string') return /^[0-9a-f]+$/i.test(v) ? v.toLowerCase() : Buffer.from(v, 'base64').toString('hex')
  const b = Buffer.from(v as Uint8Array)
  return b.length === 0 ? undefined : b.toString('hex')
}

/** Normalises an `ExportTraceServiceRequest` (protobuf `toObject` or OTLP JSON) into spans. */
function otlpSpans(msg: { resourceSpans?: { resource?: { attributes?: Attr[] }; scopeSpans?: { scope?: { name?: string }; spans?: Record<string, unknown>[] }[] }[] }): ReceivedSpan[] {
  const out: ReceivedSpan[] = []
  for (const rs of msg.resourceSpans ?? []) {
    const resource = attributes(rs.resource?.attributes)
    for (const ss of rs.scopeSpans ?? []) {
      for (const s of ss.spans ?? []) {
        out.push({
          traceId: hexId(s['traceId']) ?? '',
          spanId: hexId(s['spanId']) ?? '',
          parentSpanId: hexId(s['parentSpanId']),
          name: String(s['name']),
          kind: Number(s['kind']),
          startTimeUnixNano: BigInt(String(s['startTimeUnixNano'])),
          endTimeUnixNano: BigInt(String(s['endTimeUnixNano'])),
          attributes: attributes(s['attributes'] as Attr[] | undefined),
          statusCode: Number((s['status'] as { code?: unknown } | undefined)?.code ?? 0),
          resource,
          scope: ss.scope?.name,
        })
      }
    }
  }
  return out
}

const ZIPKIN_KINDS: Record<string, number> = { SERVER: 2, CLIENT: 3, PRODUCER: 4, CONSUMER: 5 }

function zipkinSpans(list: Record<string, unknown>[]): ReceivedSpan[] {
  return list.map((z) => {
    const ts = BigInt(z['timestamp'] as number) * 1000n
    const tags = (z['tags'] ?? {}) as Record<string, string>
    return {
      traceId: String(z['traceId']),
      spanId: String(z['id']),
      parentSpanId: z['parentId'] === undefined ? undefined : String(z['parentId']),
      name: String(z['name']),
      kind: ZIPKIN_KINDS[String(z['kind'])] ?? 1,
      startTimeUnixNano: ts,
      endTimeUnixNano: ts + BigInt(z['duration'] as number) * 1000n,
      attributes: tags,
      statusCode: tags['otel.status_code'] === 'ERROR' ? 2 : tags['otel.status_code'] === 'OK' ? 1 : 0,
      resource: { 'service.name': (z['localEndpoint'] as { serviceName?: string } | undefined)?.serviceName },
      scope: tags['otel.scope.name'],
    }
  })
}

/** Decodes one OTLP or Zipkin HTTP body. */
export function decodeBody(path: string, contentType: string, body: Buffer): { encoding: ReceivedRequest['encoding']; spans: ReceivedSpan[] } {
  if (path.startsWith('/api/v2/spans')) return { encoding: 'zipkin', spans: zipkinSpans(JSON.parse(body.toString('utf8')) as Record<string, unknown>[]) }
  if (contentType.includes('protobuf')) {
    const msg = Request.toObject(Request.decode(body), { longs: String, enums: Number, bytes: Buffer, defaults: false })
    return { encoding: 'protobuf', spans: otlpSpans(msg) }
  }
  return { encoding: 'json', spans: otlpSpans(JSON.parse(body.toString('utf8')) as Parameters<typeof otlpSpans>[0]) }
}

/** Starts the stand-in: OTLP/HTTP on `/v1/traces` (and any path), Zipkin on `/api/v2/spans`. */
export async function startCollector(): Promise<CollectorStandIn> {
  const requests: ReceivedRequest[] = []
  const sockets = new Set<Socket>()
  const held: (() => void)[] = []
  let holding = false
  let failing = 0
  let failStatus = 503
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const gzip = req.headers['content-encoding'] === 'gzip'
      const raw = Buffer.concat(chunks)
      const body = gzip ? gunzipSync(raw) : raw
      const status = failing > 0 ? (failing--, failStatus) : 200
      const path = req.url ?? ''
      const { encoding, spans } = decodeBody(path, String(req.headers['content-type'] ?? ''), body)
      requests.push({ path, headers: req.headers, encoding, gzip, status, spans })
      const answer = (): void => {
        if (status !== 200) {
          res.writeHead(status, { 'content-type': 'text/plain' }).end('collector unavailable')
        } else if (encoding === 'zipkin') {
          res.writeHead(202).end()
        } else if (encoding === 'protobuf') {
          res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end(Buffer.from(Response.encode(Response.create({})).finish()))
        } else {
          res.writeHead(200, { 'content-type': 'application/json' }).end('{}')
        }
      }
      if (holding) held.push(answer)
      else answer()
    })
  })
  server.on('connection', (s: Socket) => {
    sockets.add(s)
    s.on('close', () => sockets.delete(s))
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const port = (server.address() as AddressInfo).port
  const accepted = (): ReceivedSpan[] => requests.filter((r) => r.status === 200).flatMap((r) => r.spans)
  return {
    url: (path = '') => `http://127.0.0.1:${port}${path}`,
    port,
    requests,
    spans: accepted,
    failNext(count, status) {
      failing = count
      failStatus = status
    },
    hold(on) {
      holding = on
    },
    release() {
      holding = false
      for (const a of held.splice(0)) a()
    },
    async waitForSpans(n, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs
      while (accepted().length < n) {
        if (Date.now() > deadline) throw new Error(`the collector got ${accepted().length} of ${n} spans within ${timeoutMs} ms: ${JSON.stringify(requests.map((r) => [r.path, r.encoding, r.status, r.spans.length]))}`)
        await new Promise((r) => setTimeout(r, 20))
      }
      return accepted()
    },
    async close() {
      for (const a of held.splice(0)) a()
      for (const s of sockets) s.destroy()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}

/** An OTLP/gRPC collector stand-in (grpc-js, the `TraceService/Export` method). */
export async function startGrpcCollector(): Promise<{ url: string; requests: ReceivedRequest[]; close(): Promise<void> }> {
  const grpc = await import('@grpc/grpc-js')
  const requests: ReceivedRequest[] = []
  const server = new grpc.Server()
  server.addService({
    Export: {
      path: '/opentelemetry.proto.collector.trace.v1.TraceService/Export',
      requestStream: false,
      responseStream: false,
      requestSerialize: (v: Buffer) => v,
      requestDeserialize: (b: Buffer) => b,
      responseSerialize: () => Buffer.from(Response.encode(Response.create({})).finish()),
      responseDeserialize: (b: Buffer) => b,
    },
  }, {
    Export: (call: { request: Buffer; metadata: { getMap(): Record<string, unknown> } }, done: (err: null, v: Buffer) => void) => {
      const msg = Request.toObject(Request.decode(call.request), { longs: String, enums: Number, bytes: Buffer, defaults: false })
      requests.push({ path: 'grpc', headers: call.metadata.getMap() as http.IncomingHttpHeaders, encoding: 'grpc', gzip: false, status: 200, spans: otlpSpans(msg) })
      done(null, Buffer.alloc(0))
    },
  })
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err === null ? resolve(p) : reject(err))))
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () => new Promise<void>((resolve) => server.tryShutdown(() => resolve())),
  }
}
