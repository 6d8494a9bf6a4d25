/**
 * llhttp, the HTTP/1.1 parser of Node's own http module (and, as WebAssembly, of undici),
 * reached through node's `_http_common`: the reference the mesh's own HTTP/1.1 code is held
 * to in the differential tests. Strict, as Node runs it (no lenient flags).
 */
import { createRequire } from 'node:module'

/** Node's binding of one llhttp parser. */
export interface LlhttpParser {
  initialize(type: number, resource: object, maxHeaderSize?: number, lenient?: number): void
  execute(buf: Buffer): number | Error
  finish(): number | Error | undefined
  [callback: number]: unknown
}

interface LlhttpClass {
  new (): LlhttpParser
  REQUEST: number
  RESPONSE: number
  kOnHeaders: number
  kOnHeadersComplete: number
  kOnBody: number
  kOnMessageComplete: number
  kLenientNone: number
}

const common = createRequire(import.meta.url)('_http_common') as { HTTPParser: LlhttpClass; methods: string[] }

export const HTTPParser = common.HTTPParser
/** llhttp's method numbers, by index. */
export const METHODS = common.methods

/** The code of an error llhttp returned (`HPE_...`), or its message. */
export function llhttpCode(err: Error): string {
  return (err as Error & { code?: string }).code ?? err.message
}

/** A message head as llhttp reads it. */
export interface LlhttpHead {
  /** Header lines, name and value, as received (names not lower-cased). */
  readonly headers: string[]
  /** Requests: the method and the request target. */
  readonly method: string
  readonly url: string
  /** Responses: the status and the reason phrase. */
  readonly status: number
  readonly reason: string
  readonly keepAlive: boolean
}

/** What a parser made by {@link llhttpParser} tells. */
export interface LlhttpSink {
  head(head: LlhttpHead): void
  body?(chunk: Buffer): void
  complete(): void
}

/**
 * A strict llhttp parser of requests or responses, its callbacks wired to `sink` (the header
 * lines of a long head, which llhttp hands over in parts, gathered into one list).
 */
export function llhttpParser(kind: 'request' | 'response', sink: LlhttpSink, maxHeaderSize = 64 * 1024): LlhttpParser {
  const p = new HTTPParser()
  let pending: string[] = []
  p[HTTPParser.kOnHeaders] = (headers: string[]) => {
    pending.push(...headers)
  }
  p[HTTPParser.kOnHeadersComplete] = (_major: number, _minor: number, headers: string[] | undefined, method: number | undefined, url: string | undefined, status: number, reason: string | undefined, _upgrade: boolean, keepAlive: boolean) => {
    const all = [...pending, ...(headers ?? [])]
    pending = []
    sink.head({ headers: all, method: method === undefined ? '' : (METHODS[method] ?? `#${method}`), url: url ?? '', status, reason: reason ?? '', keepAlive })
    return 0
  }
  p[HTTPParser.kOnBody] = (chunk: Buffer) => sink.body?.(Buffer.from(chunk))
  p[HTTPParser.kOnMessageComplete] = () => sink.complete()
  p.initialize(kind === 'request' ? HTTPParser.REQUEST : HTTPParser.RESPONSE, {}, maxHeaderSize, HTTPParser.kLenientNone)
  return p
}
