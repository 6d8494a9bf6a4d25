/**
 * The collectors the mesh's own spans go to, each through OpenTelemetry's own exporter
 * (`@opentelemetry/exporter-trace-otlp-proto`, `-otlp-http`, `-otlp-grpc`,
 * `@opentelemetry/exporter-zipkin`) behind the SDK's BatchSpanProcessor: protobuf or JSON,
 * gzip, headers, retries with back-off on 429/502/503/504, and every standard
 * `OTEL_EXPORTER_OTLP_*` / `OTEL_EXPORTER_ZIPKIN_*` / `OTEL_BSP_*` variable, as an app's own
 * SDK would send them. An exporter package is loaded the first time a collector that needs
 * it is configured: importing the mesh loads none.
 *
 * Export traffic is the mesh's own infrastructure, never the app's: the exporters speak
 * node:http(s) (or gRPC) with their own agents, which `mesh.installGlobal()` (undici's
 * global dispatcher) does not capture, and the batch processor exports under OTel's
 * "suppress tracing" context, so no HTTP instrumentation traces an export.
 */
import type { AsyncResource } from 'node:async_hooks'
import { createRequire } from 'node:module'
import type { Attributes, Meter, MeterProvider } from '@opentelemetry/api'
import type * as Sdk from '@opentelemetry/sdk-trace-base'
import { defaults } from '../../config/defaults.js'
import type { OtlpProtocol } from '../../config/types.js'
import { otelApi } from '../otel-api.js'

/** A collector: a format, its transport, and its URL (`undefined`: from `OTEL_*`, else the exporter's default). */
export interface CollectorSpec {
  readonly format: 'otlp' | 'zipkin'
  /** OTLP only. */
  readonly protocol: OtlpProtocol | undefined
  readonly url: string | undefined
}

/** Counters of one collector, as `mesh.tracing.exporters()` returns them. */
export interface ExporterStats {
  /** `zipkin` or `otlp`. */
  readonly format: 'zipkin' | 'otlp'
  /** The OTLP transport (`http/protobuf`, `http/json`, `grpc`); absent for Zipkin. */
  readonly protocol?: OtlpProtocol
  /** The collector URL, without its query string; `(from OTEL_* environment)` when the environment names it. */
  readonly url: string
  /** Spans waiting in the batch queue. */
  readonly queued: number
  /** Spans the collector accepted. */
  readonly exported: number
  /** Spans dropped because the queue was full. */
  readonly dropped: number
  /** Spans in exports that failed for good (after the exporter's retries): refused, timed out, unreachable. */
  readonly failed: number
}

/** The key of a collector in the tracer's map. */
export function collectorKey(spec: CollectorSpec): string {
  return `${spec.format} ${spec.protocol ?? ''} ${spec.url ?? ''}`
}

const require = createRequire(import.meta.url)

/** Package of the exporter of each transport. */
const PACKAGES = {
  'http/protobuf': '@opentelemetry/exporter-trace-otlp-proto',
  'http/json': '@opentelemetry/exporter-trace-otlp-http',
  grpc: '@opentelemetry/exporter-trace-otlp-grpc',
  zipkin: '@opentelemetry/exporter-zipkin',
} as const

type ExporterClass = new (config?: { url?: string }) => Sdk.SpanExporter
const warnedMissing = new Set<string>()

/** Loads (once) and makes the OTel exporter of `spec`; `undefined` (with one warning) when its optional package is not installed. */
function makeExporter(spec: CollectorSpec): Sdk.SpanExporter | undefined {
  const pkg = spec.format === 'zipkin' ? PACKAGES.zipkin : PACKAGES[spec.protocol ?? 'http/protobuf']
  let mod: Record<string, unknown>
  try {
    mod = require(pkg) as Record<string, unknown>
  } catch (err) {
    if ((err as { code?: unknown }).code !== 'MODULE_NOT_FOUND') throw err
    if (!warnedMissing.has(pkg)) {
      warnedMissing.add(pkg)
      process.emitWarning(`span export over ${spec.protocol ?? spec.format} needs the package ${pkg} (npm install ${pkg}@^0.223); spans are not exported there`,
        { code: 'SIDECARLESS_TRACING_EXPORTER_MISSING' })
    }
    return undefined
  }
  const Exporter = (spec.format === 'zipkin' ? mod['ZipkinExporter'] : mod['OTLPTraceExporter']) as ExporterClass
  return new Exporter(spec.url === undefined ? {} : { url: spec.url })
}

/** The URL of an OTLP/HTTP collector as sent: one without a path gets the traces path (`/v1/traces`). */
export function otlpUrl(url: string, protocol: OtlpProtocol | undefined): string {
  if (protocol === 'grpc') return url
  const u = new URL(url)
  if (u.pathname === '/' || u.pathname === '') u.pathname = '/v1/traces'
  return u.href
}

/** Counts what a processor's own metrics report: spans processed (by outcome) and its queue. */
class ProcessorCounters {
  dropped = 0

  constructor(readonly shown: string) {}

  #queue: ((result: { observe(value: number): void }) => void) | undefined

  /** A MeterProvider for the processor's self-observability metrics (`otel.sdk.processor.span.*`). */
  readonly meterProvider: MeterProvider = {
    getMeter: (): Meter => {
      // The SDK these processors belong to has loaded the API already.
      const noop = otelApi().createNoopMeter()
      return Object.assign(noop, {
        createCounter: () => ({
          add: (n: number, attrs?: Attributes) => {
            if (attrs?.['error.type'] !== 'queue_full') return
            if (this.dropped === 0) {
              process.emitWarning(`the span export queue of ${this.shown} is full: new spans are dropped (counted in mesh.tracing.exporters()). This warning is not repeated.`,
                { code: 'SIDECARLESS_TRACING_EXPORT_DROPPED' })
            }
            this.dropped += n
          },
        }),
        createObservableUpDownCounter: () => ({
          addCallback: (cb: (result: { observe(value: number): void }) => void) => (this.#queue = cb),
          removeCallback: () => undefined,
        }),
      })
    },
  }

  get queued(): number {
    let n = 0
    this.#queue?.({ observe: (v) => (n = v) })
    return n
  }
}

/**
 * One collector: an OTel exporter behind a BatchSpanProcessor, with counters and one
 * warning on the first failed export (never one per span, and without the URL's query,
 * which may hold a token).
 */
export class Collector {
  readonly #spec: CollectorSpec
  readonly #shown: string
  readonly #exporter: Sdk.SpanExporter
  readonly #processor: Sdk.SpanProcessor
  readonly #counters: ProcessorCounters
  readonly #scope: AsyncResource
  #exported = 0
  #failed = 0
  #warned = false

  private constructor(spec: CollectorSpec, exporter: Sdk.SpanExporter, sdk: typeof Sdk, scope: AsyncResource) {
    this.#spec = spec
    this.#exporter = exporter
    this.#scope = scope
    this.#shown = spec.url === undefined ? '(from OTEL_* environment)' : shownUrl(spec.url)
    this.#counters = new ProcessorCounters(this.#shown)
    const env = process.env
    // The mesh's defaults (a shorter delay, so traces show up quickly; a 10 s bound, which
    // `mesh.close()` documents) unless the standard OTEL_BSP_* variables say otherwise.
    // The processor's exporter: ours counts, then hands on. Its shutdown is the OTel
    // exporter's own (the processor calls it last): not this Collector's, which shuts the
    // processor down and would wait on itself until the deadline.
    const counted: Sdk.SpanExporter = {
      export: (spans, done) => this.export(spans, done),
      shutdown: () => this.#exporter.shutdown(),
      forceFlush: () => this.#exporter.forceFlush?.() ?? Promise.resolve(),
    }
    this.#processor = new sdk.BatchSpanProcessor(counted, {
      ...(env['OTEL_BSP_SCHEDULE_DELAY'] === undefined ? { scheduledDelayMillis: defaults.traceExportDelayMs } : {}),
      ...(env['OTEL_BSP_EXPORT_TIMEOUT'] === undefined ? { exportTimeoutMillis: defaults.traceExportTimeoutMs } : {}),
      selfObsMeterProvider: this.#counters.meterProvider,
    } as Sdk.BufferConfig)
  }

  /** The collector of `spec`, or `undefined` when its exporter package is not installed. */
  static create(spec: CollectorSpec, sdk: typeof Sdk, scope: AsyncResource): Collector | undefined {
    const exporter = makeExporter(spec)
    // `this`, not the class's name: see Tunnel.open (the bundle would rename the class).
    return exporter === undefined ? undefined : new this(spec, exporter, sdk, scope)
  }

  /** A finished span (sampled ones only reach here). */
  onEnd(span: Sdk.ReadableSpan): void {
    // The processor's timer starts here: in the mesh's scope, not in the request whose span
    // filled the batch (which it would otherwise carry and keep alive until the export).
    this.#scope.runInAsyncScope(() => this.#processor.onEnd(span))
  }

  export(spans: Sdk.ReadableSpan[], done: (result: { code: number; error?: Error }) => void): void {
    this.#exporter.export(spans, (result) => {
      // ExportResultCode.SUCCESS is 0.
      if ((result.code as number) === 0) this.#exported += spans.length
      else this.#fail(spans.length, result.error)
      done(result)
    })
  }

  /** Sends what is queued, bounded by `deadline` (epoch ms). */
  async flush(deadline: number): Promise<void> {
    await bounded(this.#processor.forceFlush(), deadline)
  }

  /** Flushes what is queued (bounded by `deadline`) and closes the exporter; with `force`, does not wait. */
  async shutdown(deadline = Date.now() + defaults.traceExportTimeoutMs, force = false): Promise<void> {
    const done = this.#processor.shutdown().catch(() => undefined)
    if (!force) await bounded(done, deadline)
  }

  forceFlush(): Promise<void> {
    return this.#exporter.forceFlush?.() ?? Promise.resolve()
  }

  stats(): ExporterStats {
    const base = { format: this.#spec.format, url: this.#shown, queued: this.#counters.queued, exported: this.#exported, dropped: this.#counters.dropped, failed: this.#failed }
    return this.#spec.format === 'otlp' ? { ...base, protocol: this.#spec.protocol ?? 'http/protobuf' } : base
  }

  #fail(spans: number, error: Error | undefined): void {
    this.#failed += spans
    if (this.#warned) return
    this.#warned = true
    process.emitWarning(
      `exporting spans to the ${this.#spec.format} collector ${this.#shown} failed: ${error?.message ?? 'unknown error'}. ` +
        'Spans are dropped while it fails; requests are not affected. This warning is not repeated.',
      { code: 'SIDECARLESS_TRACING_EXPORT_FAILED' },
    )
  }
}

/** Resolves when `p` settles or at `deadline`, whichever is first; never rejects. */
async function bounded(p: Promise<unknown>, deadline: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, Math.max(0, deadline - Date.now()))
    timer.unref()
  })
  await Promise.race([p.then(() => undefined, () => undefined), late])
  clearTimeout(timer)
}

/** The collector without its query string or fragment, which may hold a token. */
function shownUrl(url: string): string {
  try {
    const u = new URL(url)
    return `${u.origin}${u.pathname}`
  } catch {
    return url
  }
}
