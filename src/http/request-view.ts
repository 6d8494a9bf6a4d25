/**
 * The parts of an outbound request that routing reads, taken from undici dispatch options
 * without copying: headers are indexed lazily, only when a matcher or hash policy asks.
 */
import type { Dispatcher } from 'undici'

type RawHeaders = Dispatcher.DispatchOptions['headers']

/** What request-side operators read. */
export interface RequestFacts {
  readonly view: RequestView
  /** When the request started (ms since the epoch). */
  readonly startTime: number
  readonly cluster: string | undefined
  readonly route: string | undefined
  readonly virtualCluster: string | undefined
}

/** What a route matcher sees of a request. */
export class RequestView {
  readonly method: string
  /** The `:path` as sent: path plus query string. */
  readonly fullPath: string
  /** Lower-cased authority (`host` or `host:port`). */
  readonly authority: string
  readonly scheme: string
  /** Outbound requests have no remote peer; rate-limit descriptors on it never match. */
  readonly remoteAddress: string | undefined = undefined
  /** Outbound requests carry this workload's identity, which descriptors do not key on. */
  readonly identity: string | undefined = undefined
  /**
   * The caller's `address:port` and the local `address:port` it reached, when the request
   * came over a socket the mesh saw (`%DOWNSTREAM_REMOTE_ADDRESS%` …); undefined for calls
   * made in-process, which have no downstream connection.
   */
  downstreamRemoteAddress: string | undefined = undefined
  downstreamLocalAddress: string | undefined = undefined
  #startTime = 0
  /**
   * When the request started (ms since the epoch), for `%START_TIME%`: read the first time
   * a formatter asks, which is while the request is dispatched (a clock read per request
   * would cost every request, formatters or not).
   */
  get startTime(): number {
    if (this.#startTime === 0) this.#startTime = Date.now()
    return this.#startTime
  }
  /** Set by routing: the name of the route taken, and the virtual cluster matched. */
  route: string | undefined = undefined
  virtualCluster: string | undefined = undefined
  readonly #raw: RawHeaders
  #headers: Map<string, string> | undefined
  #pathOnly: string | undefined
  #query: Map<string, string> | undefined

  constructor(method: string, fullPath: string, authority: string, scheme: string, headers: RawHeaders) {
    this.method = method
    this.fullPath = fullPath
    this.authority = authority
    this.scheme = scheme
    this.#raw = headers
  }

  /** What header formatters read of this request, sent to `cluster`. */
  facts(cluster: string | undefined): RequestFacts {
    return { view: this, startTime: this.startTime, cluster, route: this.route, virtualCluster: this.virtualCluster }
  }

  /** The path without query string or fragment. */
  get path(): string {
    if (this.#pathOnly === undefined) {
      const p = this.fullPath
      let end = p.length
      const q = p.indexOf('?')
      if (q !== -1) end = q
      const h = p.indexOf('#')
      if (h !== -1 && h < end) end = h
      this.#pathOnly = end === p.length ? p : p.slice(0, end)
    }
    return this.#pathOnly
  }

  /** The query string without `?` (empty when none). */
  get queryString(): string {
    const q = this.fullPath.indexOf('?')
    if (q === -1) return ''
    const h = this.fullPath.indexOf('#', q)
    return this.fullPath.slice(q + 1, h === -1 ? undefined : h)
  }

  /**
   * A header's value, several values joined with `,` as Envoy does; the pseudo-headers
   * `:method`, `:path`, `:authority` and `:scheme` are answered too.
   */
  header(name: string): string | undefined {
    if (name.charCodeAt(0) === 58 /* : */) {
      switch (name) {
        case ':method': return this.method
        case ':path': return this.fullPath
        case ':authority': return this.authority
        case ':scheme': return this.scheme
        default: return undefined
      }
    }
    this.#headers ??= indexHeaders(this.#raw)
    return this.#headers.get(name)
  }

  /** A query parameter's first value, percent-decoded; `undefined` when absent. */
  queryParameter(name: string): string | undefined {
    this.#query ??= parseQuery(this.queryString)
    return this.#query.get(name)
  }
}

/** Headers by lower-cased name, repeated headers joined with `,`. */
export function indexHeaders(raw: RawHeaders): Map<string, string> {
  const map = new Map<string, string>()
  const add = (k: string, v: unknown): void => {
    if (v === undefined || v === null) return
    const key = k.toLowerCase()
    const value = Array.isArray(v) ? v.map(String).join(',') : String(v)
    const prev = map.get(key)
    map.set(key, prev === undefined ? value : `${prev},${value}`)
  }
  if (raw === null || raw === undefined) return map
  if (Array.isArray(raw)) {
    if (raw.length > 0 && Array.isArray(raw[0])) {
      for (const pair of raw as unknown as [string, string][]) add(String(pair[0]), pair[1])
    } else {
      for (let i = 0; i + 1 < raw.length; i += 2) add(String(raw[i]), raw[i + 1])
    }
  } else if (typeof (raw as Iterable<unknown>)[Symbol.iterator] === 'function') {
    for (const pair of raw as Iterable<[string, string]>) add(String(pair[0]), pair[1])
  } else {
    for (const k of Object.keys(raw)) add(k, (raw as Record<string, unknown>)[k])
  }
  return map
}

function parseQuery(qs: string): Map<string, string> {
  const map = new Map<string, string>()
  if (qs === '') return map
  for (const part of qs.split('&', 1000)) {
    if (part === '') continue
    const eq = part.indexOf('=')
    const k = decode(eq === -1 ? part : part.slice(0, eq))
    if (!map.has(k)) map.set(k, eq === -1 ? '' : decode(part.slice(eq + 1)))
  }
  return map
}

function decode(s: string): string {
  if (!s.includes('%')) return s
  try {
    return decodeURIComponent(s)
  } catch {
    return s
  }
}
