/**
 * Batches finished spans for one collector, as OpenTelemetry's BatchSpanProcessor does: a
 * bounded queue (the oldest spans are dropped when it is full, and counted), a batch sent
 * after a delay or as soon as it is full, at most one request in flight, each request
 * bounded by a timeout. Nothing here throws into the request path: `enqueue` is the only
 * call made there, and it only stores the span. A failing collector is reported once with
 * a process warning, not per span.
 */
import type { AsyncResource } from 'node:async_hooks'
import { defaults } from '../../config/defaults.js'
import type { FinishedSpan } from '../tracing.js'
import type { ExportResource, SpanEncoder } from './encoder.js'

/** The wire formats the mesh can export. */
export type ExportFormat = 'zipkin' | 'otlp'

/** Sends one body; resolves with the HTTP status. */
export type ExportTransport = (url: URL, body: string, signal: AbortSignal) => Promise<number>

/** Options of a {@link BatchExporter}; the bounds default to those in `defaults.ts`. */
export interface BatchExporterOptions {
  readonly format: ExportFormat
  readonly url: string
  readonly encode: SpanEncoder
  readonly resource: ExportResource
  readonly transport: ExportTransport
  /** Timers and requests run in this async scope, not in that of the request whose span filled a batch. */
  readonly scope: AsyncResource
  readonly maxQueueSize?: number
  readonly maxBatchSize?: number
  readonly delayMs?: number
  readonly timeoutMs?: number
}

/** Counters of one exporter, as `mesh.tracing.exporters()` returns them. */
export interface ExporterStats {
  /** `zipkin` or `otlp`. */
  readonly format: ExportFormat
  /** The collector URL. */
  readonly url: string
  /** Spans waiting to be sent. */
  readonly queued: number
  /** Spans the collector accepted (2xx). */
  readonly exported: number
  /** Spans dropped before sending: the oldest when the queue was full, or left over at close. */
  readonly dropped: number
  /** Spans in requests that failed (network error, timeout, non-2xx answer). */
  readonly failed: number
}

/** The export queue and sender of one collector. */
export class BatchExporter {
  readonly format: ExportFormat
  readonly url: string
  readonly #target: URL
  readonly #encode: SpanEncoder
  readonly #resource: ExportResource
  readonly #transport: ExportTransport
  readonly #scope: AsyncResource
  readonly #maxQueue: number
  readonly #maxBatch: number
  readonly #delayMs: number
  readonly #timeoutMs: number
  /** A ring of `#maxQueue` slots, allocated on the first span. */
  #ring: (FinishedSpan | undefined)[] = []
  #head = 0
  #size = 0
  #timer: NodeJS.Timeout | undefined
  #timerDelay = 0
  #inFlight: Promise<void> | undefined
  #controller: AbortController | undefined
  #closed = false
  #warnedFailure = false
  #warnedDrop = false
  #exported = 0
  #dropped = 0
  #failed = 0

  constructor(options: BatchExporterOptions) {
    this.format = options.format
    this.url = options.url
    this.#target = new URL(options.url)
    this.#encode = options.encode
    this.#resource = options.resource
    this.#transport = options.transport
    this.#scope = options.scope
    this.#maxQueue = Math.max(1, options.maxQueueSize ?? defaults.traceExportQueueSize)
    this.#maxBatch = Math.max(1, Math.min(this.#maxQueue, options.maxBatchSize ?? defaults.traceExportBatchSize))
    this.#delayMs = options.delayMs ?? defaults.traceExportDelayMs
    this.#timeoutMs = options.timeoutMs ?? defaults.traceExportTimeoutMs
  }

  /** Queues a finished span. Cheap, synchronous, never throws. */
  enqueue(span: FinishedSpan): void {
    if (this.#closed) {
      this.#dropped++
      return
    }
    if (this.#ring.length === 0) this.#ring = new Array<FinishedSpan | undefined>(this.#maxQueue)
    if (this.#size === this.#maxQueue) {
      // Full: the newest span replaces the oldest, which is the least useful to a reader now.
      this.#ring[this.#head] = span
      this.#head = (this.#head + 1) % this.#maxQueue
      this.#dropped++
      this.#warnDrop()
    } else {
      this.#ring[(this.#head + this.#size) % this.#maxQueue] = span
      this.#size++
    }
    // While a request is in flight, its end schedules the next one.
    if (this.#inFlight !== undefined) return
    if (this.#size >= this.#maxBatch) this.#schedule(0)
    else this.#schedule(this.#delayMs)
  }

  /** The counters. */
  stats(): ExporterStats {
    return { format: this.format, url: this.url, queued: this.#size, exported: this.#exported, dropped: this.#dropped, failed: this.#failed }
  }

  /**
   * Sends everything queued, one request at a time, and waits for it; stops at `deadline`
   * (epoch ms), aborting the request then in flight.
   */
  flush(deadline: number): Promise<void> {
    return this.#scope.runInAsyncScope(() => this.#drain(deadline))
  }

  /**
   * Stops taking spans and flushes what is queued (bounded by `deadline`); with `force`,
   * aborts the request in flight and drops the queue instead. Spans ended later are
   * counted as dropped.
   */
  async shutdown(deadline: number, force = false): Promise<void> {
    this.#closed = true
    this.#clearTimer()
    if (force) {
      this.#controller?.abort(new Error('the mesh was destroyed'))
      this.#dropQueue()
      await this.#inFlight
      return
    }
    await this.flush(deadline)
    this.#dropQueue()
  }

  async #drain(deadline: number): Promise<void> {
    const abortAt = setTimeout(() => this.#controller?.abort(new Error('the flush deadline passed')), Math.max(0, deadline - Date.now()))
    abortAt.unref()
    try {
      while (true) {
        if (this.#inFlight !== undefined) {
          await this.#inFlight
          continue
        }
        if (this.#size === 0 || Date.now() >= deadline) return
        this.#clearTimer()
        this.#startExport(deadline)
      }
    } finally {
      clearTimeout(abortAt)
    }
  }

  #schedule(delayMs: number): void {
    if (this.#timer !== undefined) {
      if (delayMs >= this.#timerDelay) return
      clearTimeout(this.#timer)
    }
    this.#timerDelay = delayMs
    this.#timer = this.#scope.runInAsyncScope(() => setTimeout(() => {
      this.#timer = undefined
      if (this.#inFlight === undefined && this.#size > 0) this.#startExport(Infinity)
    }, delayMs))
    // Exporting never keeps the process alive; `mesh.close()` flushes.
    this.#timer.unref()
  }

  #clearTimer(): void {
    if (this.#timer === undefined) return
    clearTimeout(this.#timer)
    this.#timer = undefined
  }

  #startExport(deadline: number): void {
    const batch = this.#take(this.#maxBatch)
    const run = this.#send(batch, Math.min(deadline, Date.now() + this.#timeoutMs)).finally(() => {
      this.#inFlight = undefined
      if (this.#closed || this.#size === 0) return
      this.#schedule(this.#size >= this.#maxBatch ? 0 : this.#delayMs)
    })
    this.#inFlight = run
  }

  async #send(batch: FinishedSpan[], deadline: number): Promise<void> {
    const controller = new AbortController()
    this.#controller = controller
    const ms = Math.max(0, deadline - Date.now())
    const timer = setTimeout(() => controller.abort(new Error(`no answer within ${this.#timeoutMs} ms`)), ms)
    timer.unref()
    try {
      const body = this.#encode(batch, this.#resource)
      const status = await this.#transport(this.#target, body, controller.signal)
      if (status >= 200 && status < 300) this.#exported += batch.length
      else this.#fail(batch.length, `the collector answered HTTP ${status}`)
    } catch (err) {
      const reason = controller.signal.aborted ? controller.signal.reason as unknown : err
      this.#fail(batch.length, reason instanceof Error ? reason.message : String(reason))
    } finally {
      clearTimeout(timer)
      if (this.#controller === controller) this.#controller = undefined
    }
  }

  #take(n: number): FinishedSpan[] {
    const count = Math.min(n, this.#size)
    const out = new Array<FinishedSpan>(count)
    for (let i = 0; i < count; i++) {
      out[i] = this.#ring[this.#head] as FinishedSpan
      this.#ring[this.#head] = undefined
      this.#head = (this.#head + 1) % this.#maxQueue
    }
    this.#size -= count
    return out
  }

  #dropQueue(): void {
    this.#dropped += this.#size
    this.#take(this.#size)
  }

  #fail(spans: number, reason: string): void {
    this.#failed += spans
    if (this.#warnedFailure) return
    this.#warnedFailure = true
    process.emitWarning(
      `exporting spans to the ${this.format} collector ${this.#shown()} failed: ${reason}. ` +
        'Spans are dropped while it fails; requests are not affected. This warning is not repeated.',
      { code: 'SIDECARLESS_TRACING_EXPORT_FAILED' },
    )
  }

  #warnDrop(): void {
    if (this.#warnedDrop) return
    this.#warnedDrop = true
    process.emitWarning(
      `the ${this.format} span export queue for ${this.#shown()} is full (${this.#maxQueue} spans): the oldest spans are dropped ` +
        '(counted in mesh.tracing.exporters()). This warning is not repeated.',
      { code: 'SIDECARLESS_TRACING_EXPORT_DROPPED' },
    )
  }

  /** The collector without its query string, which may hold a token. */
  #shown(): string {
    return `${this.#target.origin}${this.#target.pathname}`
  }
}
