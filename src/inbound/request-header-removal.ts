/**
 * Takes a header out of an inbound request before the app sees it: the mesh's own
 * `x-sidecarless-peer` (a calling mesh's word on who it is, for Istio's source labels).
 *
 * node:http builds `req.headers` (and `headersDistinct`) lazily, on first read, from
 * `req.rawHeaders` and a count of them it keeps under a private symbol. When nothing has
 * read them yet, the header is cut from `rawHeaders` and the count lowered, so the objects
 * are built without it. `delete req.headers[name]` instead costs about a microsecond per
 * request (V8 deletes a property through the runtime) and left the header in `rawHeaders`.
 * When the headers were already built (an instrumentation read them first), or node's
 * symbols are not found (a future node), the header is deleted from the built objects and
 * cut from `rawHeaders` as a new array.
 */
import type http from 'node:http'

interface Internals {
  /** node's `kHeadersCount`: how many `rawHeaders` entries `headers` is built from. */
  readonly count: symbol
  /** node's `kHeaders`: the built `headers` object, `null` until read. */
  readonly headers: symbol
}

/** Found on the first request (`undefined`: not looked for yet; `null`: not there). */
let internals: Internals | null | undefined

function internalsOf(req: http.IncomingMessage): Internals | null {
  if (internals !== undefined) return internals
  let count: symbol | undefined
  let headers: symbol | undefined
  for (const s of Object.getOwnPropertySymbols(req)) {
    if (s.description === 'kHeadersCount') count = s
    else if (s.description === 'kHeaders') headers = s
  }
  internals = count !== undefined && headers !== undefined ? { count, headers } : null
  return internals
}

/**
 * Removes every `name` header (lower case) from `req` and returns its value as
 * `req.headers[name]` would have given it (several joined by `, `), or `undefined`.
 */
export function takeRequestHeader(req: http.IncomingMessage, name: string): string | undefined {
  const raw = req.rawHeaders
  let value: string | undefined
  let found = -1
  for (let i = 0; i < raw.length; i += 2) {
    const n = raw[i] as string
    if (n.length === name.length && n.toLowerCase() === name) {
      if (found === -1) found = i
      value = value === undefined ? raw[i + 1] as string : `${value}, ${raw[i + 1] as string}`
    }
  }
  if (value === undefined) return undefined
  const r = req as http.IncomingMessage & Record<symbol, unknown>
  const k = internalsOf(req)
  if (k !== null && r[k.headers] == null && r[k.count] === raw.length) {
    // Not built yet: cut in place (nearly always the last pair: a mesh writes it last).
    let w = found
    for (let i = found; i < raw.length; i += 2) {
      const n = raw[i] as string
      if (n.length === name.length && n.toLowerCase() === name) continue
      raw[w] = n
      raw[w + 1] = raw[i + 1] as string
      w += 2
    }
    raw.length = w
    r[k.count] = w
    return value
  }
  const kept: string[] = []
  for (let i = 0; i < raw.length; i += 2) {
    const n = raw[i] as string
    if (!(n.length === name.length && n.toLowerCase() === name)) kept.push(n, raw[i + 1] as string)
  }
  req.rawHeaders = kept
  if (k !== null && typeof r[k.count] === 'number') r[k.count] = kept.length
  delete req.headers[name]
  const distinct = (req as { headersDistinct?: Record<string, string[]> }).headersDistinct
  if (distinct !== undefined) delete distinct[name]
  return value
}
