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
