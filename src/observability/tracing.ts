/**
 * Spans through the OpenTelemetry API. When the app registered a tracer provider, the mesh
 * uses it: our server and client spans go where the app's go, and the app's spans nest
 * under ours. When it did not, sampled spans go to a provider of the mesh's own
 * (`@opentelemetry/sdk-trace-base`, loaded on first use) that keeps a bounded store of
 * recent spans, readable with `mesh.tracing.recent()`, and that sends them to the Zipkin
 * and OTLP collectors named by `tracing.zipkin` / `tracing.otlp`, in batches, over
 * connections of its own (never through the mesh, and never traced).
 *
 * Unsampled requests create no span object at all: ids are generated and propagated, which
 * costs a few hundred nanoseconds.
 */
import { AsyncResource } from 'node:async_hooks'
import { createRequire } from 'node:module'
import {
  createTraceState,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  trace,
  TraceFlags,
  type Attributes,
  type Context,
  type Span,
  type Tracer,
} from '@opentelemetry/api'
import type * as Sdk from '@opentelemetry/sdk-trace-base'
import { defaults } from '../config/defaults.js'
import { BatchExporter, type ExporterStats, type ExportFormat } from './exporters/batch-exporter.js'
import { CollectorClients } from './exporters/collector-clients.js'
import type { ExportResource } from './exporters/encoder.js'
import { encodeOtlp } from './exporters/otlp.js'
import { encodeZipkin } from './exporters/zipkin.js'
import { newSpanId, newTraceId } from './ids.js'
import type { PropagationFormat, TraceParent } from './propagation.js'

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

/** The trace facts of one new span (server or client), whether or not it is recorded. */
export interface SpanStart {
  readonly traceId: string
  readonly spanId: string
  readonly parentSpanId: string | undefined
  readonly sampled: boolean
  readonly traceState: string | undefined
  /**
   * The W3C Level 2 `random-trace-id` flag of this span's trace: true for a trace the mesh
   * started (its ids are all random, see ids.ts), the caller's flag as received when the
   * trace is continued, false when another id generator chose the trace id.
   */
  readonly random: boolean
  readonly span: Span | undefined
}

const OTEL_GLOBAL = Symbol.for('opentelemetry.js.api.1')
const KIND_NAMES = ['internal', 'server', 'client', 'producer', 'consumer'] as const

/** True when the app registered a global OpenTelemetry tracer provider. */
function appTracerRegistered(): boolean {
  const g = (globalThis as Record<symbol, { trace?: unknown } | undefined>)[OTEL_GLOBAL]
  return g?.trace !== undefined
}

/** Tracing settings as compiled from config. */
export interface TracingSettings {
  /** Formats read from inbound requests, in order. */
  readonly extract: readonly PropagationFormat[]
  /** Formats written on outbound requests. */
  readonly inject: readonly PropagationFormat[]
  /** Probability that a new trace is sampled, 0..1. */
  readonly samplingRatio: number
  /** How many finished spans the built-in store keeps (0: none, and no SDK is loaded for it). */
  readonly recentSpans: number
  /** Zipkin v2 collector URL (normalised), when spans are exported there. */
  readonly zipkin: string | undefined
  /** OTLP/HTTP JSON traces URL (normalised), when spans are exported there. */
  readonly otlp: string | undefined
}

/** Options of a {@link MeshTracer}. */
export interface MeshTracerOptions {
  /** `service.name` of exported spans (the mesh's `service` option); default `sidecarless`. */
  readonly serviceName?: string
}

/** Starts spans for the mesh and keeps the recent ones. */
export class MeshTracer {
  #own: Tracer | undefined
  #ring: FinishedSpan[] = []
  #ringNext = 0
  #capacity = 0
  #provider: { shutdown(): Promise<void> } | undefined
  readonly #serviceName: string
  /** The settings the store and exporters were last configured from. */
  #settings: TracingSettings | undefined
  /** Active exporters, by `format url`. */
  readonly #exporters = new Map<string, BatchExporter>()
  /** Exporters a config change removed, still flushing. */
  readonly #retiring = new Set<Promise<void>>()
  #clients: CollectorClients | undefined
  #resource: ExportResource | undefined
  /**
   * Export timers and requests run in this scope (that of the mesh's creation), so they
   * neither carry nor keep alive the context of the request whose span filled a batch.
   */
  readonly #scope = new AsyncResource('sidecarless.tracing.export')
  #warnedAppProvider = false
  #closed = false

  constructor(options: MeshTracerOptions = {}) {
    this.#serviceName = options.serviceName ?? 'sidecarless'
  }

  /** Starts the span of an inbound request, continuing `parent` when the caller sent a trace. */
  startServer(parent: TraceParent | undefined, settings: TracingSettings, name: string, attributes: () => Attributes): SpanStart {
    return this.#start(parent, settings, name, SpanKind.SERVER, attributes, undefined)
  }

  /**
   * Starts the span of an outbound attempt. `parentSpan` is the app's active span or the
   * server span; `parent` carries the trace facts when no span object exists (unsampled).
   */
  startClient(
    parent: { traceId: string; spanId: string; sampled: boolean; traceState: string | undefined; random?: boolean } | undefined,
    parentSpan: Span | undefined,
    settings: TracingSettings,
    name: string,
    attributes: () => Attributes,
  ): SpanStart {
    const tp: TraceParent | undefined = parent === undefined
      ? undefined
      : { traceId: parent.traceId, spanId: parent.spanId, sampled: parent.sampled, traceState: parent.traceState, format: 'w3c', random: parent.random === true }
    return this.#start(tp, settings, name, SpanKind.CLIENT, attributes, parentSpan)
  }

  #start(parent: TraceParent | undefined, settings: TracingSettings, name: string, kind: SpanKind, attributes: () => Attributes, parentSpan: Span | undefined): SpanStart {
    const sampled = parent?.sampled ?? (settings.samplingRatio > 0 && Math.random() < settings.samplingRatio)
    const appTracer = appTracerRegistered()
    if (appTracer && !this.#warnedAppProvider && (settings.zipkin !== undefined || settings.otlp !== undefined)) this.#warnAppProvider()
    // W3C Level 2: the random-trace-id flag belongs to the trace id. A trace the mesh starts
    // has a random id (newTraceId, or our own SDK provider's generator, which is the same);
    // a continued trace keeps the caller's flag as received.
    if (!sampled && !appTracer) {
      // The cheap path: no span object, only ids to propagate.
      return {
        traceId: parent?.traceId ?? newTraceId(),
        spanId: newSpanId(),
        parentSpanId: parent?.spanId,
        sampled: false,
        traceState: parent?.traceState,
        random: parent === undefined ? true : parent.random === true,
        span: undefined,
      }
    }
    const tracer = appTracer ? trace.getTracer('sidecarless') : this.#ownTracer(settings)
    if (tracer === undefined) {
      return { traceId: parent?.traceId ?? newTraceId(), spanId: newSpanId(), parentSpanId: parent?.spanId, sampled, traceState: parent?.traceState, random: parent === undefined ? true : parent.random === true, span: undefined }
    }
    let ctx: Context = ROOT_CONTEXT
    if (parentSpan !== undefined) {
      ctx = trace.setSpan(ROOT_CONTEXT, parentSpan)
    } else if (parent !== undefined) {
      ctx = trace.setSpanContext(ROOT_CONTEXT, {
        traceId: parent.traceId,
        spanId: parent.spanId,
        traceFlags: sampled ? TraceFlags.SAMPLED : TraceFlags.NONE,
        isRemote: true,
        ...(parent.traceState === undefined ? {} : { traceState: createTraceState(parent.traceState) }),
      })
    }
    const span = tracer.startSpan(name, { kind, attributes: attributes() }, ctx)
    const sc = span.spanContext()
    // The flag follows the trace id: the caller's when the span continues its trace; ours
    // when our own provider started a new one; unknown (false) when the app's tracer chose it.
    const random = parent !== undefined && sc.traceId === parent.traceId
      ? parent.random === true
      : !appTracer && parent === undefined && parentSpan === undefined
    return {
      traceId: sc.traceId,
      spanId: sc.spanId,
      parentSpanId: parentSpan?.spanContext().spanId ?? parent?.spanId,
      sampled: (sc.traceFlags & 1) === 1,
      traceState: sc.traceState?.serialize() ?? parent?.traceState,
      random,
      span,
    }
  }

  /** Ends a span with the HTTP status (and an error, when the request failed). */
  static end(span: Span | undefined, status: number | undefined, error: string | undefined, kind: 'server' | 'client'): void {
    if (span === undefined) return
    if (status !== undefined) span.setAttribute('http.response.status_code', status)
    // OTel HTTP semantic conventions: 5xx is an error on both sides; 4xx only on the client.
    const failed = error !== undefined || (status !== undefined && (status >= 500 || (kind === 'client' && status >= 400)))
    if (failed) {
      span.setAttribute('error.type', error ?? String(status))
      span.setStatus({ code: SpanStatusCode.ERROR })
    }
    span.end()
  }

  /** The finished spans in the store, oldest first. */
  recent(): FinishedSpan[] {
    if (this.#ring.length < this.#capacity) return [...this.#ring]
    return [...this.#ring.slice(this.#ringNext), ...this.#ring.slice(0, this.#ringNext)]
  }

  /** Counters of the collectors spans are exported to (empty until the first sampled span; kept after shutdown). */
  exporters(): ExporterStats[] {
    return [...this.#exporters.values()].map((e) => e.stats())
  }

  /**
   * Stops the mesh's own provider, if it was started, then sends the spans still queued
   * for collectors (bounded by the export timeout) and closes the connections to them.
   * With `force`, queued spans are dropped and requests in flight aborted.
   */
  async shutdown(force = false): Promise<void> {
    this.#closed = true
    await this.#provider?.shutdown().catch(() => undefined)
    const deadline = Date.now() + defaults.traceExportTimeoutMs
    // The exporters stay in the map, closed, so their counters can still be read.
    await Promise.all([...[...this.#exporters.values()].map((e) => e.shutdown(deadline, force)), ...this.#retiring])
    await this.#clients?.close(force ? 0 : deadline)
  }

  #keep(span: FinishedSpan): void {
    if (this.#capacity === 0) return
    if (this.#ring.length < this.#capacity) {
      this.#ring.push(span)
    } else {
      this.#ring[this.#ringNext] = span
      this.#ringNext = (this.#ringNext + 1) % this.#capacity
    }
  }

  #ownTracer(settings: TracingSettings): Tracer | undefined {
    if (settings !== this.#settings) this.#configure(settings)
    if (settings.recentSpans === 0 && this.#exporters.size === 0) return undefined
    if (this.#own !== undefined) return this.#own
    // Loaded on the first sampled span only: apps that never sample never load the SDK.
    const sdk = createRequire(import.meta.url)('@opentelemetry/sdk-trace-base') as typeof Sdk
    const keep = (s: Sdk.ReadableSpan): void => {
      const sc = s.spanContext()
      const finished: FinishedSpan = {
        traceId: sc.traceId,
        spanId: sc.spanId,
        parentSpanId: s.parentSpanContext?.spanId,
        name: s.name,
        kind: KIND_NAMES[s.kind] ?? 'internal',
        startTime: s.startTime[0] * 1000 + s.startTime[1] / 1e6,
        durationMs: s.duration[0] * 1000 + s.duration[1] / 1e6,
        startTimeUnixNano: unixNano(s.startTime),
        endTimeUnixNano: unixNano(s.endTime),
        attributes: s.attributes,
        status: s.status.code === SpanStatusCode.ERROR ? 'error' : s.status.code === SpanStatusCode.OK ? 'ok' : 'unset',
        statusMessage: s.status.message,
        traceState: sc.traceState?.serialize(),
        parentIsRemote: s.parentSpanContext?.isRemote === true,
      }
      this.#keep(finished)
      for (const e of this.#exporters.values()) e.enqueue(finished)
    }
    const provider = new sdk.BasicTracerProvider({
      // The mesh's own ids (CSPRNG, all bits random): a trace it starts may set the W3C
      // Level 2 random-trace-id flag.
      idGenerator: { generateTraceId: newTraceId, generateSpanId: newSpanId },
      sampler: new sdk.AlwaysOnSampler(),
      spanProcessors: [{
        onStart: () => undefined,
        onEnd: keep,
        forceFlush: () => Promise.resolve(),
        shutdown: () => Promise.resolve(),
      }],
    })
    this.#provider = provider
    this.#own = provider.getTracer('sidecarless')
    return this.#own
  }

  /** Applies a new snapshot's settings: the store's size, and which collectors get spans. */
  #configure(settings: TracingSettings): void {
    this.#settings = settings
    if (this.#capacity !== settings.recentSpans) {
      this.#capacity = settings.recentSpans
      this.#ring = []
      this.#ringNext = 0
    }
    const wanted = new Map<string, [ExportFormat, string]>()
    if (settings.zipkin !== undefined) wanted.set(`zipkin ${settings.zipkin}`, ['zipkin', settings.zipkin])
    if (settings.otlp !== undefined) wanted.set(`otlp ${settings.otlp}`, ['otlp', settings.otlp])
    for (const [key, exporter] of this.#exporters) {
      if (wanted.has(key)) continue
      // Removed from the config: what it holds is still sent, then it is forgotten.
      this.#exporters.delete(key)
      const done = exporter.shutdown(Date.now() + defaults.traceExportTimeoutMs).finally(() => this.#retiring.delete(done))
      this.#retiring.add(done)
    }
    if (this.#closed) return
    for (const [key, [format, url]] of wanted) {
      if (this.#exporters.has(key)) continue
      const clients = this.#clients ??= new CollectorClients(defaults.traceExportTimeoutMs)
      this.#exporters.set(key, new BatchExporter({
        format,
        url,
        encode: format === 'zipkin' ? encodeZipkin : encodeOtlp,
        resource: this.#resource ??= { serviceName: this.#serviceName, scopeName: 'sidecarless', scopeVersion: packageVersion() },
        transport: (target, body, signal) => clients.post(target, body, signal),
        scope: this.#scope,
      }))
    }
  }

  #warnAppProvider(): void {
    this.#warnedAppProvider = true
    process.emitWarning(
      'tracing.zipkin / tracing.otlp are ignored: the app registered an OpenTelemetry tracer provider, so the mesh\'s ' +
        'spans go through it and are exported by the app\'s own exporters.',
      { code: 'SIDECARLESS_TRACING_EXPORT_IGNORED' },
    )
  }
}

/** Nanoseconds since the epoch of an OTel HrTime, exactly, as a decimal string. */
function unixNano([seconds, nanos]: readonly [number, number]): string {
  const ns = Math.min(999_999_999, Math.max(0, Math.round(nanos)))
  return seconds === 0 ? String(ns) : `${seconds}${String(ns).padStart(9, '0')}`
}

/** This package's version, for the instrumentation scope; `undefined` when it cannot be read. */
function packageVersion(): string | undefined {
  try {
    const pkg = createRequire(import.meta.url)('sidecarless/package.json') as { version?: unknown }
    return typeof pkg.version === 'string' ? pkg.version : undefined
  } catch {
    return undefined
  }
}
