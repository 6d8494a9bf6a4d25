/**
 * The connections to collectors: one undici Pool per collector origin, made on the first
 * export to it. Export requests never go through the mesh (no routing, no retries, no
 * span, no metrics): a collector is the mesh's own infrastructure, not the app's traffic.
 */
import { context, createContextKey, ROOT_CONTEXT } from '@opentelemetry/api'
import { Pool } from 'undici'

/**
 * OpenTelemetry's "suppress tracing" flag (`@opentelemetry/core` `suppressTracing`, whose
 * key is this `Symbol.for`): HTTP instrumentations an app may load (undici, http) do not
 * trace a request made under it. Set without depending on `@opentelemetry/core`.
 */
const SUPPRESSED = ROOT_CONTEXT.setValue(createContextKey('OpenTelemetry SDK Context Key SUPPRESS_TRACING'), true)

/** Pools to collectors, by origin. */
export class CollectorClients {
  readonly #pools = new Map<string, Pool>()
  readonly #timeoutMs: number
  #closed = false

  constructor(timeoutMs: number) {
    this.#timeoutMs = timeoutMs
  }

  /**
   * POSTs a JSON body; resolves with the response status (the body is discarded), rejects
   * on a network error, on `signal`, or once the client is closed.
   */
  async post(url: URL, body: string, signal: AbortSignal): Promise<number> {
    const pool = this.#pool(url.origin)
    const res = await context.with(SUPPRESSED, () => pool.request({
      method: 'POST',
      path: `${url.pathname}${url.search}`,
      headers: { 'content-type': 'application/json' },
      body,
      signal,
    }))
    await res.body.dump()
    return res.statusCode
  }

  /** Closes every pool: gracefully before `deadline` (epoch ms), at once after it. */
  async close(deadline: number): Promise<void> {
    this.#closed = true
    const pools = [...this.#pools.values()]
    this.#pools.clear()
    await Promise.all(pools.map(async (pool) => {
      const left = deadline - Date.now()
      if (left <= 0) return pool.destroy().catch(() => undefined)
      let timer: NodeJS.Timeout | undefined
      const late = new Promise<'late'>((resolve) => {
        timer = setTimeout(() => resolve('late'), left)
        timer.unref()
      })
      const done = await Promise.race([pool.close().then(() => 'closed' as const, () => 'closed' as const), late])
      clearTimeout(timer)
      if (done === 'late') await pool.destroy().catch(() => undefined)
    }))
  }

  #pool(origin: string): Pool {
    if (this.#closed) throw new Error('the tracing exporters are closed')
    let pool = this.#pools.get(origin)
    if (pool === undefined) {
      // Two connections: a Zipkin and an OTLP exporter may share a collector; each has at
      // most one request in flight.
      pool = new Pool(origin, {
        connections: 2,
        connect: { timeout: this.#timeoutMs },
        headersTimeout: this.#timeoutMs,
        bodyTimeout: this.#timeoutMs,
      })
      this.#pools.set(origin, pool)
    }
    return pool
  }
}
