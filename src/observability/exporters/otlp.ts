/**
 * OTLP/HTTP JSON: an `ExportTraceServiceRequest` in the protobuf JSON mapping, with the
 * OTLP deviations: trace and span ids as hex strings (not base64), enums as integers,
 * lowerCamelCase keys. 64-bit integers (times, `intValue`) are decimal strings, as the
 * protobuf JSON mapping writes them.
 */
import type { AttributeValue, Attributes } from '@opentelemetry/api'
import type { FinishedSpan } from '../tracing.js'
import type { ExportResource } from './encoder.js'

/** `opentelemetry.proto.common.v1.AnyValue`: exactly one member set (none for an empty value). */
type AnyValue =
  | { stringValue: string }
  | { boolValue: boolean }
  | { intValue: string }
  | { doubleValue: number | string }
  | { arrayValue: { values: AnyValue[] } }
  | Record<string, never>

interface KeyValue {
  key: string
  value: AnyValue
}

/** `opentelemetry.proto.trace.v1.Span.SpanKind`. */
const KINDS = { internal: 1, server: 2, client: 3, producer: 4, consumer: 5 } as const
/** `opentelemetry.proto.trace.v1.Status.StatusCode`. */
const STATUS = { unset: 0, ok: 1, error: 2 } as const
/** `SpanFlags`: the low byte is the W3C trace flags; these say whether the parent is remote. */
const CONTEXT_HAS_IS_REMOTE = 0x100
const CONTEXT_IS_REMOTE = 0x200
const SAMPLED = 0x01

/** Encodes spans as an OTLP JSON `ExportTraceServiceRequest` body. */
export function encodeOtlp(spans: readonly FinishedSpan[], resource: ExportResource): string {
  const scope: { name: string; version?: string } = { name: resource.scopeName }
  if (resource.scopeVersion !== undefined) scope.version = resource.scopeVersion
  return JSON.stringify({
    resourceSpans: [{
      resource: { attributes: [{ key: 'service.name', value: { stringValue: resource.serviceName } }] },
      scopeSpans: [{ scope, spans: spans.map(otlpSpan) }],
    }],
  })
}

function otlpSpan(s: FinishedSpan): Record<string, unknown> {
  const span: Record<string, unknown> = { traceId: s.traceId, spanId: s.spanId }
  if (s.traceState !== undefined && s.traceState !== '') span['traceState'] = s.traceState
  if (s.parentSpanId !== undefined) span['parentSpanId'] = s.parentSpanId
  span['flags'] = SAMPLED | (s.parentSpanId === undefined ? 0 : CONTEXT_HAS_IS_REMOTE | (s.parentIsRemote ? CONTEXT_IS_REMOTE : 0))
  span['name'] = s.name
  span['kind'] = KINDS[s.kind]
  span['startTimeUnixNano'] = s.startTimeUnixNano
  span['endTimeUnixNano'] = s.endTimeUnixNano
  span['attributes'] = keyValues(s.attributes)
  const status: { code: number; message?: string } = { code: STATUS[s.status] }
  if (s.statusMessage !== undefined && s.statusMessage !== '') status.message = s.statusMessage
  span['status'] = status
  return span
}

function keyValues(attributes: Readonly<Attributes>): KeyValue[] {
  const out: KeyValue[] = []
  for (const key of Object.keys(attributes)) {
    const v = attributes[key]
    if (v !== undefined) out.push({ key, value: anyValue(v) })
  }
  return out
}

function anyValue(v: AttributeValue | null | undefined): AnyValue {
  switch (typeof v) {
    case 'string':
      return { stringValue: v }
    case 'boolean':
      return { boolValue: v }
    case 'number':
      // OTel JS keeps one number type; integers go out as int64 (what the SDK's exporter does).
      if (Number.isSafeInteger(v)) return { intValue: String(v) }
      // The JSON mapping spells the non-finite doubles as strings.
      if (Number.isNaN(v)) return { doubleValue: 'NaN' }
      if (!Number.isFinite(v)) return { doubleValue: v > 0 ? 'Infinity' : '-Infinity' }
      return { doubleValue: v }
    case 'object':
      if (Array.isArray(v)) return { arrayValue: { values: (v as readonly (AttributeValue | null | undefined)[]).map(anyValue) } }
      return {}
    default:
      return {}
  }
}
