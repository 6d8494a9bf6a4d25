/**
 * Spans through the OpenTelemetry API. When the app registered a tracer provider, the mesh
 * uses it: our server and client spans go where the app's go, and the app's spans nest
 * under ours. When it did not, sampled spans go to a bounded store of recent spans, readable
 * with `mesh.tracing.recent()`: through a small tracer of the mesh's own
 * (`recording-span.ts`) while no collector is configured, and through a provider of
 * `@opentelemetry/sdk-trace-base` (loaded on first use) once one is, which also sends them to
 * the collectors named by `tracing.zipkin` / `tracing.otlp` or the standard `OTEL_*`
 * variables, through OpenTelemetry's own exporters (`exporters/collectors.ts`).
 *
 * When the app runs OpenTelemetry's HTTP instrumentation, who makes a hop's spans follows
 * `tracing.spans` (see `instrumentation.ts`): one server span, one client span, one trace.
 *
 * Unsampled requests create no span object at all: ids are generated and propagated, which
 * costs a few hundred nanoseconds. Recorded spans get start and end times with
 * sub-millisecond precision (`clock.ts`).
 */
import { AsyncResource } from 'node:async_hooks'
import { hostname } from 'node:os'
import { createRequire } from 'node:module'
import type { Attributes, Context, Span, SpanContext, SpanKind, TraceState, Tracer } from '@opentelemetry/api'
import type * as Resources from '@opentelemetry/resources'
import type * as Sdk from '@opentelemetry/sdk-trace-base'
import { defaults } from '../config/defaults.js'
import { envExport, type EnvExport } from '../config/otel-env.js'
import type { OtlpProtocol, SpanOwnership } from '../config/types.js'
import { spanTime } from './clock.js'
import { Collector, collectorKey, otlpUrl, type CollectorSpec, type ExporterStats } from './exporters/collectors.js'
import { newSpanId, newTraceId } from './ids.js'
import { RecordingTracer, spanLimitsSet } from './recording-span.js'
import { unixNano, type FinishedSpan } from './finished-span.js'
import { peerHeaderValue, workloadOf } from './istio-metrics.js'
import { version } from '../version.js'
import { appTracerRegistered, undiciInstrumented, withoutAppSpans } from './instrumentation.js'
import { otelApi, SPAN_KIND_CLIENT, SPAN_KIND_SERVER, STATUS_ERROR, STATUS_OK, TRACE_FLAGS_NONE, TRACE_FLAGS_SAMPLED } from './otel-api.js'
import { W3cTraceState } from './trace-state.js'
import type { PropagationFormat, TraceParent } from './propagation.js'

export type { ExporterStats } from './exporters/collectors.js'

export type { FinishedSpan } from './finished-span.js'

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
  /** The mesh's span, when it made one that records. */
  readonly span: Span | undefined
  /**
   * Client: the trace header formats the mesh writes on this try (none when the app's
   * undici instrumentation writes them).
   */
  readonly formats: readonly PropagationFormat[]
  /**
   * Client: the OTel context the try is dispatched in, when the app's undici instrumentation
   * must be silenced (`mesh`) or must nest under the mesh's span (`both`); else `undefined`.
   */
  readonly dispatchContext: Context | undefined
  /** Client: the `x-sidecarless-peer` value the mesh sends (this workload, for Istio's metrics at the destination). */
  readonly peer: string | undefined
}

const KIND_NAMES = ['internal', 'server', 'client', 'producer', 'consumer'] as const
const NO_FORMATS: readonly PropagationFormat[] = Object.freeze([])

/** Tracing settings as compiled from config. */
export interface TracingSettings {
  /** Formats read from inbound requests, in order. */
  readonly extract: readonly PropagationFormat[]
  /** Formats written on outbound requests. */
  readonly inject: readonly PropagationFormat[]
  /** Probability that a new trace is sampled, 0..1. */
  readonly samplingRatio: number
  /** Whether a caller's sampled flag decides (false only for `OTEL_TRACES_SAMPLER` samplers that are not parent-based). */
  readonly parentBased: boolean
  /** How many finished spans the built-in store keeps (0: none, and no SDK is loaded for it). */
  readonly recentSpans: number
  /** Zipkin v2 collector URL (normalised), when spans are exported there. */
  readonly zipkin: string | undefined
  /** OTLP collector URL (normalised), when spans are exported there. */
  readonly otlp: string | undefined
  /** `tracing.otlpProtocol`, when set. */
  readonly otlpProtocol: OtlpProtocol | undefined
  /** Who makes a hop's HTTP spans when the app runs OTel's HTTP instrumentation. */
  readonly spans: SpanOwnership
}

/** Options of a {@link MeshTracer}. */
export interface MeshTracerOptions {
  /** `service.name` of the mesh's own spans (the mesh's `service` option); default `sidecarless`. `OTEL_SERVICE_NAME` wins. */
  readonly serviceName?: string
  /** The workload's labels: `version` becomes `service.version` on the resource. */
  readonly labels?: Readonly<Record<string, string>>
  /** The standard environment (default `process.env`), read once. */
  readonly env?: Readonly<Record<string, string | undefined>>
}

/** The trace a span continues: its ids and, when in this process, the span itself. */
export interface ParentTrace {
  readonly traceId: string
  readonly spanId: string
  readonly sampled: boolean
  readonly traceState: string | undefined
  /** The W3C Level 2 random-trace-id flag of the trace, when known. */
  readonly random?: boolean
}

/** Starts spans for the mesh and keeps the recent ones. */
export class MeshTracer {
  #own: Tracer | undefined
  /** The SDK-free tracer of the store, while no collector is configured. */
  #recording: RecordingTracer | undefined
  #ring: FinishedSpan[] = []
  #ringNext = 0
  #capacity = 0
  #provider: { shutdown(): Promise<void> } | undefined
  #sdk: typeof Sdk | undefined
  readonly #serviceName: string
  readonly #labels: Readonly<Record<string, string>>
  /** This workload, as the `x-sidecarless-peer` header of outbound requests tells it. */
  readonly #peer: string
  /** Collectors the environment names when the config names none (read once, as the OTel SDK does). */
  readonly #envExport: EnvExport
  /** The settings the store and collectors were last configured from. */
  #settings: TracingSettings | undefined
  /** Active collectors, by {@link collectorKey}. */
  readonly #collectors = new Map<string, Collector>()
  /** Collectors a config change removed, still flushing. */
  readonly #retiring = new Set<Promise<void>>()
  /**
   * Export timers and requests run in this scope (that of the mesh's creation), so they
   * neither carry nor keep alive the context of the request whose span filled a batch.
   */
  readonly #scope = new AsyncResource('sidecarless.tracing.export')
  #warnedAppProvider = false
  #closed = false

  constructor(options: MeshTracerOptions = {}) {
    this.#serviceName = options.serviceName ?? 'sidecarless'
    this.#labels = options.labels ?? {}
    this.#peer = peerHeaderValue(workloadOf(options.serviceName, this.#labels))
    this.#envExport = envExport(options.env ?? process.env)
  }

  /**
   * Starts the span of an inbound request, continuing `parent` when the caller sent a
   * trace. `appSpan` is the server span of the app's HTTP instrumentation, when it runs
   * around the mesh's chain: with `spans` `app` (or `auto`) the mesh adopts it and makes
   * none; with `both` the mesh's span nests under it. `startTime` is the
   * `performance.now()` of the request's arrival.
   */
  startServer(parent: TraceParent | undefined, settings: TracingSettings, name: string, attributes: () => Attributes, startTime: number, appSpan?: Span): SpanStart {
    if (appSpan !== undefined && settings.spans !== 'mesh' && appSpan.spanContext().traceId !== INVALID_TRACE) {
      if (settings.spans !== 'both') return adopt(appSpan, parent)
      return this.#start(undefined, settings, name, SPAN_KIND_SERVER, attributes, appSpan, startTime, settings.inject, undefined)
    }
    // `app` without the instrumentation on this server: the trace goes on, the mesh records nothing.
    return this.#start(parent, settings, name, SPAN_KIND_SERVER, attributes, undefined, startTime, settings.inject, undefined, settings.spans !== 'app')
  }

  /**
   * Starts the span of an outbound attempt. `parentSpan` is the app's active span or the
   * server span; `parent` carries the trace facts when no span object exists (unsampled).
   * `startTime` is the `performance.now()` of the try's start.
   */
  startClient(parent: ParentTrace | undefined, parentSpan: Span | undefined, settings: TracingSettings, name: string, attributes: () => Attributes, startTime = performance.now()): SpanStart {
    const tp: TraceParent | undefined = parent === undefined
      ? undefined
      : { traceId: parent.traceId, spanId: parent.spanId, sampled: parent.sampled, traceState: parent.traceState, format: 'w3c', random: parent.random === true }
    const spans = settings.spans
    if (spans !== 'app' && (spans === 'mesh' || !undiciInstrumented())) {
      // The mesh's client span and trace headers; an app undici instrumentation (forced
      // `mesh`) is silenced for this try so that it adds neither a span nor a second traceparent.
      const silence = spans === 'mesh' && undiciInstrumented() ? withoutAppSpans(otelApi().context.active()) : undefined
      return this.#start(tp, settings, name, SPAN_KIND_CLIENT, attributes, parentSpan, startTime, settings.inject, silence, true, this.#peer)
    }
    if (spans === 'both') {
      // The mesh's span, then the instrumentation's under it: its traceparent is the one sent.
      const s = this.#start(tp, settings, name, SPAN_KIND_CLIENT, attributes, parentSpan, startTime, NO_FORMATS, undefined, true, this.#peer)
      const sc: SpanContext = { traceId: s.traceId, spanId: s.spanId, traceFlags: s.sampled ? TRACE_FLAGS_SAMPLED : TRACE_FLAGS_NONE }
      const { trace, context } = otelApi()
      return { ...s, dispatchContext: trace.setSpan(context.active(), s.span ?? trace.wrapSpanContext(sc)) }
    }
    if (undiciInstrumented()) {
      // `app`/`auto` with the app's undici instrumentation: it makes the span and the headers.
      return { traceId: tp?.traceId ?? '', spanId: tp?.spanId ?? '', parentSpanId: tp?.spanId, sampled: tp?.sampled ?? false, traceState: tp?.traceState, random: tp?.random === true, span: undefined, formats: NO_FORMATS, dispatchContext: undefined, peer: this.#peer }
    }
    // `app` without an undici instrumentation: no span of the mesh's, the trace passed on as it is.
    if (tp === undefined) return this.#start(undefined, settings, name, SPAN_KIND_CLIENT, attributes, parentSpan, startTime, settings.inject, undefined, false, this.#peer)
    return { traceId: tp.traceId, spanId: tp.spanId, parentSpanId: undefined, sampled: tp.sampled ?? false, traceState: tp.traceState, random: tp.random === true, span: undefined, formats: settings.inject, dispatchContext: undefined, peer: this.#peer }
  }

  #start(parent: TraceParent | undefined, settings: TracingSettings, name: string, kind: SpanKind, attributes: () => Attributes, parentSpan: Span | undefined,
    startTime: number, formats: readonly PropagationFormat[], dispatchContext: Context | undefined, record = true, peer: string | undefined = undefined): SpanStart {
    const inherited = parentSpan !== undefined ? (parentSpan.spanContext().traceFlags & 1) === 1 : parent?.sampled
    const sampled = (settings.parentBased ? inherited : undefined) ?? (settings.samplingRatio > 0 && Math.random() < settings.samplingRatio)
    const appTracer = appTracerRegistered()
    if (appTracer && !this.#warnedAppProvider && (settings.zipkin !== undefined || settings.otlp !== undefined)) this.#warnAppProvider()
    // W3C Level 2: the random-trace-id flag belongs to the trace id. A trace the mesh starts
    // has a random id (newTraceId, or our own SDK provider's generator, which is the same);
    // a continued trace keeps the caller's flag as received.
    if ((!sampled && !appTracer) || !record) {
      // The cheap path: no span object, only ids to propagate.
      const traceId = parentSpan?.spanContext().traceId ?? parent?.traceId ?? newTraceId()
      return {
        traceId,
        spanId: newSpanId(),
        parentSpanId: parentSpan?.spanContext().spanId ?? parent?.spanId,
        sampled,
        traceState: parent?.traceState,
        // Ours when the mesh starts the trace; the caller's when it continues it; unknown
        // (false) when the app's span chose the trace id.
        random: parent !== undefined && traceId === parent.traceId ? parent.random === true : parent === undefined && parentSpan === undefined,
        span: undefined,
        formats,
        dispatchContext,
        peer,
      }
    }
    const tracer = appTracer ? otelApi().trace.getTracer('sidecarless', version()) : this.#ownTracer(settings)
    if (tracer === undefined) {
      return { traceId: parent?.traceId ?? newTraceId(), spanId: newSpanId(), parentSpanId: parent?.spanId, sampled, traceState: parent?.traceState, random: parent === undefined ? true : parent.random === true, span: undefined, formats, dispatchContext, peer }
    }
    // An explicit start time: the SDK's own is Date.now(), whole milliseconds.
    const options = { kind, attributes: attributes(), startTime: spanTime(startTime) }
    // The mesh's own tracer takes the parent's span context; a tracer of the API (the app's
    // or the SDK's) an OTel context holding it.
    const span = tracer instanceof RecordingTracer
      ? tracer.startSpan(name, options, parentSpan?.spanContext() ?? remoteParent(parent, sampled, ownTraceState))
      : tracer.startSpan(name, options, apiContext(parentSpan, parent, sampled))
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
      formats,
      dispatchContext: dispatchContext === undefined ? undefined : otelApi().trace.setSpan(dispatchContext, span),
      peer,
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
      span.setStatus({ code: STATUS_ERROR })
    }
    // An explicit end too: a span given its start time would otherwise end at Date.now().
    span.end(spanTime())
  }

  /** The finished spans in the store, oldest first. */
  recent(): FinishedSpan[] {
    if (this.#ring.length < this.#capacity) return [...this.#ring]
    return [...this.#ring.slice(this.#ringNext), ...this.#ring.slice(0, this.#ringNext)]
  }

  /** Counters of the collectors spans are exported to (empty until the first sampled span; kept after shutdown). */
  exporters(): ExporterStats[] {
    return [...this.#collectors.values()].map((c) => c.stats())
  }

  /**
   * Sends the spans still queued for collectors (bounded by the export timeout), then stops
   * the mesh's own provider and the exporters. With `force`, does not wait for them.
   */
  async shutdown(force = false): Promise<void> {
    this.#closed = true
    const deadline = Date.now() + defaults.traceExportTimeoutMs
    // The collectors stay in the map, closed, so their counters can still be read.
    await Promise.all([...[...this.#collectors.values()].map((c) => c.shutdown(deadline, force)), ...this.#retiring])
    await this.#provider?.shutdown().catch(() => undefined)
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

  #ownTracer(settings: TracingSettings): RecordingTracer | Pick<Tracer, 'startSpan'> | undefined {
    if (settings !== this.#settings) this.#configure(settings)
    if (settings.recentSpans === 0 && this.#collectors.size === 0) return undefined
    // Only the store reads the spans: no SDK (unless the environment sets its span limits,
    // which only the SDK applies).
    if (this.#collectors.size === 0 && !spanLimitsSet(process.env)) {
      return (this.#recording ??= new RecordingTracer((s) => this.#keep(s)))
    }
    if (this.#own !== undefined) return this.#own
    const sdk = this.#loadSdk()
    const onEnd = (s: Sdk.ReadableSpan): void => {
      if (this.#capacity > 0) this.#keep(finished(s))
      for (const c of this.#collectors.values()) c.onEnd(s)
    }
    const provider = new sdk.BasicTracerProvider({
      // The mesh decided sampling before starting the span.
      // The mesh's own ids (CSPRNG, all bits random): a trace it starts may set the W3C
      // Level 2 random-trace-id flag.
      idGenerator: { generateTraceId: newTraceId, generateSpanId: newSpanId },
      sampler: new sdk.AlwaysOnSampler(),
      resource: this.#resource(),
      spanProcessors: [{
        onStart: () => undefined,
        onEnd,
        forceFlush: () => Promise.resolve(),
        shutdown: () => Promise.resolve(),
      }],
    })
    this.#provider = provider
    this.#own = provider.getTracer('sidecarless', version())
    return this.#own
  }

  /** Loaded on the first sampled span only: apps that never sample never load the SDK. */
  #loadSdk(): typeof Sdk {
    return (this.#sdk ??= createRequire(import.meta.url)('@opentelemetry/sdk-trace-base') as typeof Sdk)
  }

  /**
   * The resource of the mesh's own spans: the SDK's defaults (`telemetry.sdk.*`), the
   * workload (`service.name`, `service.version` from the `version` label, `host.name`,
   * `process.pid`), then `OTEL_RESOURCE_ATTRIBUTES` and `OTEL_SERVICE_NAME`, which win.
   */
  #resource(): Resources.Resource {
    const r = createRequire(import.meta.url)('@opentelemetry/resources') as typeof Resources
    const workload: Attributes = { 'service.name': this.#serviceName, 'host.name': hostname(), 'process.pid': process.pid }
    const version = this.#labels['version'] ?? this.#labels['service.istio.io/canonical-revision']
    if (version !== undefined) workload['service.version'] = version
    const fromEnv = r.detectResources({ detectors: [r.envDetector] })
    return r.defaultResource().merge(r.resourceFromAttributes(workload)).merge(fromEnv)
  }

  /** Applies a new snapshot's settings: the store's size, and which collectors get spans. */
  #configure(settings: TracingSettings): void {
    this.#settings = settings
    if (this.#capacity !== settings.recentSpans) {
      this.#capacity = settings.recentSpans
      this.#ring = []
      this.#ringNext = 0
    }
    const wanted = new Map<string, CollectorSpec>()
    const add = (spec: CollectorSpec): void => void wanted.set(collectorKey(spec), spec)
    const protocol = settings.otlpProtocol ?? this.#envExport.protocol
    // The config's collectors; where it names none, those of the OTEL_* environment.
    if (settings.otlp !== undefined) add({ format: 'otlp', protocol, url: otlpUrl(settings.otlp, protocol) })
    else if (this.#envExport.otlp) add({ format: 'otlp', protocol, url: undefined })
    if (settings.zipkin !== undefined) add({ format: 'zipkin', protocol: undefined, url: settings.zipkin })
    else if (this.#envExport.zipkin) add({ format: 'zipkin', protocol: undefined, url: undefined })
    for (const [key, collector] of this.#collectors) {
      if (wanted.has(key)) continue
      // Removed from the config: what it holds is still sent, then it is forgotten.
      this.#collectors.delete(key)
      const done = collector.shutdown().finally(() => this.#retiring.delete(done))
      this.#retiring.add(done)
    }
    if (this.#closed) return
    for (const [key, spec] of wanted) {
      if (this.#collectors.has(key)) continue
      const collector = Collector.create(spec, this.#loadSdk(), this.#scope)
      if (collector !== undefined) this.#collectors.set(key, collector)
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

const INVALID_TRACE = '00000000000000000000000000000000'

/**
 * Dispatches `opts` in the OTel context `ctx` (where the app's undici instrumentation reads
 * the active span as it creates the request): a client try under `tracing.spans` `mesh` or `both`.
 */
export function dispatchIn(ctx: Context, dispatcher: { dispatch(opts: never, handler: never): boolean }, opts: unknown, handler: unknown): boolean {
  return otelApi().context.with(ctx, () => dispatcher.dispatch(opts as never, handler as never))
}

/**
 * The span context of a parent in another process (the caller's trace headers), with its
 * `tracestate` parsed by `traceStateOf` (the API's `createTraceState`, or the mesh's own).
 */
function remoteParent(parent: TraceParent | undefined, sampled: boolean, traceStateOf: (raw: string) => TraceState): SpanContext | undefined {
  if (parent === undefined) return undefined
  return {
    traceId: parent.traceId,
    spanId: parent.spanId,
    traceFlags: sampled ? TRACE_FLAGS_SAMPLED : TRACE_FLAGS_NONE,
    isRemote: true,
    ...(parent.traceState === undefined ? {} : { traceState: traceStateOf(parent.traceState) }),
  }
}

/** The OTel context a span of an API tracer starts in: its parent, local or remote, on the root context. */
function apiContext(parentSpan: Span | undefined, parent: TraceParent | undefined, sampled: boolean): Context {
  const { trace, ROOT_CONTEXT, createTraceState } = otelApi()
  if (parentSpan !== undefined) return trace.setSpan(ROOT_CONTEXT, parentSpan)
  const remote = remoteParent(parent, sampled, createTraceState)
  return remote === undefined ? ROOT_CONTEXT : trace.setSpanContext(ROOT_CONTEXT, remote)
}

/** A `tracestate` for the mesh's own tracer, which does without the API. */
const ownTraceState = (raw: string): TraceState => new W3cTraceState(raw)

/** The trace facts of the app instrumentation's server span, which the mesh reports as its own. */
function adopt(appSpan: Span, parent: TraceParent | undefined): SpanStart {
  const sc = appSpan.spanContext()
  // SDK spans know their parent; through the bare API, the caller's span is the best answer.
  const parentSpanId = (appSpan as { parentSpanContext?: SpanContext }).parentSpanContext?.spanId ?? parent?.spanId
  return {
    traceId: sc.traceId,
    spanId: sc.spanId,
    parentSpanId,
    sampled: (sc.traceFlags & 1) === 1,
    traceState: sc.traceState?.serialize() ?? parent?.traceState,
    // The app's tracer chose the id unless it continued the caller's trace.
    random: parent !== undefined && sc.traceId === parent.traceId && parent.random === true,
    // Not the mesh's to end: the instrumentation ends it.
    span: undefined,
    formats: NO_FORMATS,
    dispatchContext: undefined,
    peer: undefined,
  }
}

/** A finished SDK span as the store keeps it. */
function finished(s: Sdk.ReadableSpan): FinishedSpan {
  const sc = s.spanContext()
  return {
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
    status: s.status.code === STATUS_ERROR ? 'error' : s.status.code === STATUS_OK ? 'ok' : 'unset',
    statusMessage: s.status.message,
    traceState: sc.traceState?.serialize(),
    parentIsRemote: s.parentSpanContext?.isRemote === true,
  }
}

