/**
 * Envoy `virtual_clusters`: a request that matched one is counted, once, under its name
 * (whatever retries happen below), from dispatch to the end of the response.
 */
import type { Duplex } from 'node:stream'
import type { MetricsRegistry, Recorder } from '../observability/metrics.js'
import type { Resolution } from '../router/resolve.js'
import type { Controller, Handler } from './handler.js'

/** `h`, counting its request under the resolution's virtual cluster when there is one. */
export function virtualCluster(h: Handler, r: Extract<Resolution, { kind: 'cluster' }>, metrics: MetricsRegistry): Handler {
  const name = r.view.virtualCluster
  if (name === undefined) return h
  return new CountingHandler(h, metrics.virtualCluster(r.vhost.name, name))
}

class CountingHandler implements Handler {
  readonly #next: Handler
  readonly #recorder: Recorder
  readonly #started = performance.now()
  #status = 0
  #bytes = 0
  #done = false

  constructor(next: Handler, recorder: Recorder) {
    this.#next = next
    this.#recorder = recorder
    recorder.start()
  }

  onRequestStart(controller: Controller, context: object): void {
    this.#next.onRequestStart?.(controller, context)
  }

  onRequestUpgrade(controller: Controller, statusCode: number, headers: Record<string, string | string[] | undefined>, socket: Duplex): void {
    this.#end()
    this.#next.onRequestUpgrade?.(controller, statusCode, headers, socket)
  }

  onResponseStart(controller: Controller, statusCode: number, headers: Record<string, string | string[] | undefined>, statusMessage?: string): void {
    this.#status = statusCode
    this.#next.onResponseStart?.(controller, statusCode, headers, statusMessage)
  }

  onResponseData(controller: Controller, chunk: Buffer): void {
    this.#bytes += chunk.length
    this.#next.onResponseData?.(controller, chunk)
  }

  onResponseEnd(controller: Controller, trailers: Record<string, string | string[] | undefined>): void {
    this.#end()
    this.#next.onResponseEnd?.(controller, trailers)
  }

  onResponseError(controller: Controller, err: Error): void {
    if (!this.#done) {
      this.#done = true
      this.#recorder.fail('reset', performance.now() - this.#started)
    }
    this.#next.onResponseError?.(controller, err)
  }

  #end(): void {
    if (this.#done) return
    this.#done = true
    this.#recorder.end(this.#status, performance.now() - this.#started, this.#bytes, 0)
  }
}
