/**
 * Takes a header out of an inbound request before the app sees it: the mesh's own
 * `x-sidecarless-peer` (a calling mesh's word on who it is, for Istio's source labels).
 *
 * By the time a server emits `request`, node:http has built `req.headers` (it reads
 * `expect` and `connection` there); `headersDistinct` is built later, on first read, from
 * `req.rawHeaders` and a count node keeps under a private symbol. So the header is cut
 * from `rawHeaders` in place (and the count lowered), and `req.headers` is replaced by a
 * copy without it: `delete req.headers[name]` costs about a microsecond per request (V8
 * deletes through its runtime and gives up the object's fast shape), a copy of a dozen
 * headers a fraction of that. Until now the header stayed in `rawHeaders` for the app.
 */
import http from 'node:http'

/** node's private symbols of an IncomingMessage, by their descriptions (`undefined` where not found). */
interface Internals {
  /** `kHeadersCount`: how many `rawHeaders` entries the lazy header objects are built from. */
  count: symbol | undefined
  /** `kHeadersDistinct`: the built `headersDistinct`, when something read it. */
  readonly distinct: symbol | undefined
}

let internals: Internals | undefined

/** Looked up once: `headersDistinct`'s symbol on a bare probe, the count's on the first request. */
function internalsOf(req: http.IncomingMessage): Internals {
  if (internals === undefined) {
    const probe = Object.create(http.IncomingMessage.prototype) as http.IncomingMessage
    probe.rawHeaders = []
    let distinct: symbol | undefined
    try {
      void probe.headersDistinct
      distinct = Object.getOwnPropertySymbols(probe).find((s) => s.description === 'kHeadersDistinct')
    } catch {
      distinct = undefined
    }
    internals = { count: Object.getOwnPropertySymbols(req).find((s) => s.description === 'kHeadersCount'), distinct }
  }
  return internals
}

function isName(raw: string, name: string): boolean {
  // A mesh writes it in lower case: compared as it came before any case folding.
  return raw === name || (raw.length === name.length && raw.toLowerCase() === name)
}

/**
 * Removes every `name` header (lower case) from `req` and returns its value as
 * `req.headers[name]` gave it (several joined by `, `), or `undefined` when absent.
 */
export function takeRequestHeader(req: http.IncomingMessage, name: string): string | undefined {
  const raw = req.rawHeaders
  let value: string | undefined
  let found = -1
  for (let i = 0; i < raw.length; i += 2) {
    if (isName(raw[i] as string, name)) {
      if (found === -1) found = i
      value = value === undefined ? raw[i + 1] : `${value}, ${raw[i + 1] as string}`
    }
  }
  if (value === undefined) return undefined
  // Cut in place (nearly always the last pair: a mesh writes it last).
  let w = found
  for (let i = found; i < raw.length; i += 2) {
    const n = raw[i] as string
    if (isName(n, name)) continue
    raw[w] = n
    raw[w + 1] = raw[i + 1] as string
    w += 2
  }
  const cut = raw.length - w
  // `pop` rather than setting `length`, which goes through the runtime (measured: the
  // costliest line of this function when it did).
  for (let i = 0; i < cut; i++) raw.pop()
  const r = req as http.IncomingMessage & Record<symbol, unknown>
  const k = internalsOf(req)
  if (k.count !== undefined && typeof r[k.count] === 'number') r[k.count] = (r[k.count] as number) - cut
  const headers = req.headers
  if (headers[name] !== undefined) {
    const copy: http.IncomingHttpHeaders = {}
    for (const h in headers) if (h !== name) copy[h] = headers[h]
    req.headers = copy
  }
  const distinct = k.distinct === undefined ? undefined : r[k.distinct] as Record<string, string[]> | null | undefined
  if (distinct != null) delete distinct[name]
  return value
}
