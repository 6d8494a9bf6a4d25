/**
 * A finished span as the recent-span store keeps it (`mesh.tracing.recent()`, the admin
 * page), whichever tracer recorded it: the SDK's (`tracing.ts`) or the store's own
 * (`recording-span.ts`).
 */
import type { Attributes } from '@opentelemetry/api'

/** A finished span, as the recent-span store keeps it. */
export interface FinishedSpan {
  readonly traceId: string
  readonly spanId: string
  readonly parentSpanId: string | undefined
  readonly name: string
  readonly kind: 'server' | 'client' | 'internal' | 'producer' | 'consumer'
  /** Epoch milliseconds. */
  readonly startTime: number
  readonly durationMs: number
  /** Start, in nanoseconds since the epoch, as a decimal string (exact: a number cannot hold it). */
  readonly startTimeUnixNano: string
  /** End, in nanoseconds since the epoch, as a decimal string. */
  readonly endTimeUnixNano: string
  readonly attributes: Readonly<Attributes>
  readonly status: 'unset' | 'ok' | 'error'
  /** The status description, when one was set. */
  readonly statusMessage: string | undefined
  /** The W3C tracestate carried with the trace, if any. */
  readonly traceState: string | undefined
  /** True when the parent span is in another process (a server span continuing a caller's trace). */
  readonly parentIsRemote: boolean
}

/** Nanoseconds since the epoch of an OTel HrTime, exactly, as a decimal string. */
export function unixNano([seconds, nanos]: readonly [number, number]): string {
  const ns = Math.min(999_999_999, Math.max(0, Math.round(nanos)))
  return seconds === 0 ? String(ns) : `${seconds}${String(ns).padStart(9, '0')}`
}
