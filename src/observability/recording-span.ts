/**
 * The mesh's own spans when no collector is configured: they only feed the recent-span store
 * (`mesh.tracing.recent()`), so they need what a {@link FinishedSpan} shows and nothing of
 * the OpenTelemetry SDK (its provider, resource, processors and span class cost a process
 * ~1.4 MB of heap, measured here on Node 24). A span keeps what the SDK's `SpanImpl` would
 * show in that record, with the SDK's rules (sdk-trace 2.x, default span limits): the same
 * attribute checks (a key must be non-empty, a value a primitive or a homogeneous array; null
 * drops it; at most 128 attributes; arrays copied), the same status rules (`OK` is final,
 * `UNSET` ignored, a message kept only with `ERROR`), the same times. Events and links are
 * not in the record, so they are accepted and not kept. Once a collector is configured the
 * tracer switches to the SDK, which exporters need (`tracing.ts`).
 */
import type {
  Attributes,
  AttributeValue,
  HrTime,
  Span,
  SpanContext,
  SpanOptions,
  SpanStatus,
  TimeInput,
} from '@opentelemetry/api'
import { newSpanId, newTraceId } from './ids.js'
import { unixNano, type FinishedSpan } from './finished-span.js'
import { STATUS_ERROR, STATUS_OK, STATUS_UNSET, TRACE_FLAGS_SAMPLED } from './otel-api.js'

const KIND_NAMES = ['internal', 'server', 'client', 'producer', 'consumer'] as const
/** The SDK's default `spanLimits.attributeCountLimit`. */
const ATTRIBUTE_COUNT_LIMIT = 128
const SECOND_NS = 1e9

/**
 * The environment variables that change the SDK's span limits. When one is set, the SDK's
 * answer differs from ours (truncated values, another count): the mesh then uses the SDK.
 */
export const SPAN_LIMIT_VARIABLES = [
  'OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT',
  'OTEL_ATTRIBUTE_COUNT_LIMIT',
  'OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT',
  'OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT',
] as const

/** True when the environment sets a span limit of the SDK's (see {@link SPAN_LIMIT_VARIABLES}). */
export function spanLimitsSet(env: Readonly<Record<string, string | undefined>>): boolean {
  return SPAN_LIMIT_VARIABLES.some((name) => (env[name] ?? '').trim() !== '')
}

/**
 * Starts {@link RecordingSpan}s that report to `onEnd` when they end: the SDK's
 * `Tracer.startSpan`, always sampled, given the parent's span context rather than an OTel
 * `Context` (so that neither this tracer nor its caller needs the OpenTelemetry API:
 * `otel-api.ts`). The mesh starts its spans from a context it makes itself (no `root`
 * option, tracing never suppressed), so only the parent matters.
 */
export class RecordingTracer {
  readonly #onEnd: (span: FinishedSpan) => void

  constructor(onEnd: (span: FinishedSpan) => void) {
    this.#onEnd = onEnd
  }

  startSpan(name: string, options: SpanOptions, parent: SpanContext | undefined): Span {
    const spanId = newSpanId()
    const valid = parent !== undefined && isSpanContextValid(parent) ? parent : undefined
    const spanContext: SpanContext = { traceId: valid?.traceId ?? newTraceId(), spanId, traceFlags: TRACE_FLAGS_SAMPLED, traceState: valid?.traceState }
    return new RecordingSpan(spanContext, valid, name, options, this.#onEnd)
  }
}

const INVALID_TRACE = '00000000000000000000000000000000'
const INVALID_SPAN = '0000000000000000'
const TRACE_ID = /^[0-9a-f]{32}$/i
const SPAN_ID = /^[0-9a-f]{16}$/i

/** The API's `isSpanContextValid`: hex ids of the right length, not all zeros. */
function isSpanContextValid(sc: SpanContext): boolean {
  return TRACE_ID.test(sc.traceId) && sc.traceId !== INVALID_TRACE && SPAN_ID.test(sc.spanId) && sc.spanId !== INVALID_SPAN
}

/** A sampled span of the mesh's own tracer, kept for the recent-span store. */
class RecordingSpan implements Span {
  readonly #context: SpanContext
  readonly #parent: SpanContext | undefined
  readonly #kind: number
  readonly #attributes: Attributes = {}
  readonly #startTime: HrTime
  readonly #startTimeProvided: boolean
  readonly #performanceStart: number
  readonly #performanceOffset: number
  readonly #onEnd: (span: FinishedSpan) => void
  #attributeCount = 0
  #name: string
  #status: SpanStatus = { code: STATUS_UNSET }
  #ended = false

  constructor(context: SpanContext, parent: SpanContext | undefined, name: string, options: SpanOptions, onEnd: (span: FinishedSpan) => void) {
    const now = Date.now()
    this.#context = context
    this.#parent = parent
    this.#name = name
    this.#kind = options.kind ?? 0
    this.#onEnd = onEnd
    this.#performanceStart = performance.now()
    this.#performanceOffset = now - (this.#performanceStart + performance.timeOrigin)
    this.#startTimeProvided = options.startTime != null
    this.#startTime = this.#time(options.startTime ?? now)
    const initial = options.attributes
    if (initial != null) {
      for (const key in initial) {
        if (!Object.hasOwn(initial, key) || key === '') continue
        const value = initial[key]
        if (value != null && isAttributeValue(value)) this.setAttribute(key, Array.isArray(value) ? value.slice() : value)
      }
    }
  }

  spanContext(): SpanContext {
    return this.#context
  }

  setAttribute(key: string, value: AttributeValue): this {
    if (value == null || this.#ended || key.length === 0 || !isAttributeValue(value)) return this
    const isNew = !Object.hasOwn(this.#attributes, key)
    if (isNew && this.#attributeCount >= ATTRIBUTE_COUNT_LIMIT) return this
    // The SDK copies arrays here (its value-length truncation maps them).
    this.#attributes[key] = Array.isArray(value) ? value.map((v) => v) as AttributeValue : value
    if (isNew) this.#attributeCount++
    return this
  }

  setAttributes(attributes: Attributes): this {
    for (const key in attributes) {
      if (Object.hasOwn(attributes, key)) this.setAttribute(key, attributes[key] as AttributeValue)
    }
    return this
  }

  /** Events are not part of the recent-span record. */
  addEvent(): this {
    return this
  }

  /** Links are not part of the recent-span record. */
  addLink(): this {
    return this
  }

  addLinks(): this {
    return this
  }

  setStatus(status: SpanStatus): this {
    if (this.#ended || status.code === STATUS_UNSET || this.#status.code === STATUS_OK) return this
    this.#status = status.code === STATUS_ERROR && typeof status.message === 'string' ? { code: status.code, message: status.message } : { code: status.code }
    return this
  }

  updateName(name: string): this {
    if (!this.#ended) this.#name = name
    return this
  }

  end(endTime?: TimeInput): void {
    if (this.#ended) return
    let end = this.#time(endTime)
    let duration = hrTimeDuration(this.#startTime, end)
    if (duration[0] < 0) {
      end = [this.#startTime[0], this.#startTime[1]]
      duration = [0, 0]
    }
    this.#ended = true
    const start = this.#startTime
    this.#onEnd({
      traceId: this.#context.traceId,
      spanId: this.#context.spanId,
      parentSpanId: this.#parent?.spanId,
      name: this.#name,
      kind: KIND_NAMES[this.#kind] ?? 'internal',
      startTime: start[0] * 1000 + start[1] / 1e6,
      durationMs: duration[0] * 1000 + duration[1] / 1e6,
      startTimeUnixNano: unixNano(start),
      endTimeUnixNano: unixNano(end),
      attributes: this.#attributes,
      status: this.#status.code === STATUS_ERROR ? 'error' : this.#status.code === STATUS_OK ? 'ok' : 'unset',
      statusMessage: this.#status.message,
      traceState: this.#context.traceState?.serialize(),
      parentIsRemote: this.#parent?.isRemote === true,
    })
  }

  isRecording(): boolean {
    return !this.#ended
  }

  /** An exception is an event, which the record does not show. */
  recordException(): void {}

  /** The SDK's `SpanImpl._getTime`: a time input as an `HrTime`. */
  #time(input: TimeInput | undefined): HrTime {
    if (typeof input === 'number' && input <= performance.now()) return addHrTimes(millisToHrTime(performance.timeOrigin), millisToHrTime(input + this.#performanceOffset))
    if (typeof input === 'number') return millisToHrTime(input)
    if (input instanceof Date) return millisToHrTime(input.getTime())
    if (Array.isArray(input) && input.length === 2 && typeof input[0] === 'number' && typeof input[1] === 'number') return input
    if (this.#startTimeProvided) return millisToHrTime(Date.now())
    return addHrTimes(this.#startTime, millisToHrTime(performance.now() - this.#performanceStart))
  }
}

/** `@opentelemetry/core`'s `isAttributeValue`: null, a number, boolean or string, or a homogeneous array of them. */
function isAttributeValue(value: unknown): boolean {
  if (value == null) return true
  if (!Array.isArray(value)) return isPrimitive(typeof value)
  let type: string | undefined
  for (const element of value as unknown[]) {
    if (element == null) continue
    const t = typeof element
    if (t === type) continue
    if (type === undefined && isPrimitive(t)) {
      type = t
      continue
    }
    return false
  }
  return true
}

function isPrimitive(type: string): boolean {
  return type === 'number' || type === 'boolean' || type === 'string'
}

function millisToHrTime(epochMillis: number): HrTime {
  return [Math.trunc(epochMillis / 1000), Math.round((epochMillis % 1000) * 1e6)]
}

function addHrTimes(a: HrTime, b: HrTime): HrTime {
  const out: HrTime = [a[0] + b[0], a[1] + b[1]]
  if (out[1] >= SECOND_NS) {
    out[1] -= SECOND_NS
    out[0] += 1
  }
  return out
}

function hrTimeDuration(start: HrTime, end: HrTime): HrTime {
  let seconds = end[0] - start[0]
  let nanos = end[1] - start[1]
  if (nanos < 0) {
    seconds -= 1
    nanos += SECOND_NS
  }
  return [seconds, nanos]
}
