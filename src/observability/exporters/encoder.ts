/** What the span encoders share: who sent the spans, and the encoder's shape. */
import type { FinishedSpan } from '../tracing.js'

/** The process the spans come from (OTel's resource and instrumentation scope). */
export interface ExportResource {
  /** `service.name` / Zipkin `localEndpoint.serviceName`: the mesh's `service` option. */
  readonly serviceName: string
  /** The instrumentation scope: this library. */
  readonly scopeName: string
  readonly scopeVersion: string | undefined
}

/** Turns a batch of spans into one request body. */
export type SpanEncoder = (spans: readonly FinishedSpan[], resource: ExportResource) => string
