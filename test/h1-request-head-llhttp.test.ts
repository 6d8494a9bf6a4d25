/**
 * The request head the mesh writes upstream (src/upstream/h1/request-head.ts) against llhttp,
 * the parser of Node's http servers, on generated requests whose header names and values
 * carry what an attacker would put in them: CR, LF and CRLF (to start a header or a request
 * of their own), NUL and other controls, obs-text, whitespace at the ends, lists, a Host of
 * the caller's, and the headers undici sets itself.
 *
 * The property: `buildHead` either refuses the request, or the head it writes is read by
 * llhttp as exactly one request — the method and path given, the Host (the caller's, else
 * the origin's), `connection`, then each of the caller's header lines in order, with the
 * values given — ending on its last byte. A value or a Host that smuggled a line of its own
 * would show as a header (or a request) nobody asked for. The mesh's door
 * (`outbound/request-check.ts`) refuses controls in values before this point, and
 * `buildHead` guards only line breaks, so llhttp may refuse a head for another control
 * byte; that is allowed, and counted.
 *
 * Seeded (SIDECARLESS_FUZZ_SEED, SIDECARLESS_FUZZ_CASES to run more).
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import type { Dispatcher } from 'undici'
import { buildHead, RequestHead } from '../src/upstream/h1/request-head.js'
import { prng } from './helpers/prng.js'
import { llhttpCode, llhttpParser } from './helpers/llhttp.js'

interface Parsed {
  method: string
  path: string
  headers: string[]
  end: number
}

/** llhttp's reading of a request (head and body), one byte per read. */
function llhttp(head: Buffer): Parsed | string {
  let parsed: Omit<Parsed, 'end'> | undefined
  let end = -1
  let at = 0
  const p = llhttpParser('request', {
    head: (h) => {
      parsed ??= { method: h.method, path: h.url, headers: h.headers }
    },
    complete: () => {
      if (end === -1) end = at + 1
    },
  })
  for (; at < head.length; at++) {
    const r = p.execute(head.subarray(at, at + 1))
    if (r instanceof Error) return `refused at byte ${at}: ${llhttpCode(r)}`
  }
  if (parsed === undefined || end === -1) return 'no complete request'
  return { ...parsed, end }
}

const NAMES = ['x-a', 'X-Trace', 'accept', 'content-type', 'cookie', 'host', 'Host', 'connection', 'content-length', 'x-b']
const VALUE_PARTS = ['v', 'a b', ' ', '\t', '\r', '\n', '\r\n', '\r\n\r\nGET /smuggled HTTP/1.1\r\nhost: evil', '\r\nx-injected: 1', '\x00', '\x01', '\x7f', 'caf\xe9', ',', ';', ':', 'keep-alive', 'close']
const PATHS = ['/', '/a?b=c', '/a%20b', '/\xe9']
const METHOD_NAMES = ['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'HEAD']

/** A value as `buildHead` coerces it (undici's `processHeader`). */
function coerce(v: unknown): string {
  return v === null ? '' : String(v)
}

const SEED = Number(process.env['SIDECARLESS_FUZZ_SEED'] ?? 0x5eed)
const CASES = Number(process.env['SIDECARLESS_FUZZ_CASES'] ?? 3000)
/** A control byte other than HTAB (CR and LF included), or DEL. */
const isControl = (c: string): boolean => (c < ' ' && c !== '\t') || c === '\x7f'

test(`a request head the mesh writes is read by llhttp as exactly the request asked for, or refused before it is written (${CASES} generated cases)`, () => {
  const r = prng(SEED)
  const int = (n: number): number => Math.floor(r() * n)
  const pick = <T>(a: readonly T[]): T => a[int(a.length)] as T
  const value = (): unknown => {
    const k = int(20)
    if (k === 0) return null
    if (k === 1) return 42
    if (k === 2) return [pick(['a', 'b', 'c\r\nx: y']), pick(['d', 'e'])]
    let s = ''
    for (let i = 1 + int(3); i > 0; i--) s += r() < 0.7 ? pick(['v', 'text/plain', 'a=1', 'x y']) : pick(VALUE_PARTS)
    return s
  }
  let written = 0
  let refusedByUs = 0
  let controlsForLlhttp = 0
  const problems: string[] = []
  for (let i = 0; i < CASES; i++) {
    const headers: unknown[] = []
    for (let n = int(5); n > 0; n--) headers.push(pick(NAMES), value())
    const method = pick(METHOD_NAMES)
    const path = pick(PATHS)
    const origin = r() < 0.9 ? 'up.example:8080' : pick(['up\r\nx: y', 'up:80'])
    const out = new RequestHead()
    try {
      buildHead({ method, path, headers: headers as Dispatcher.DispatchOptions['headers'] }, origin, out)
    } catch {
      refusedByUs++
      continue
    }
    written++
    // The writer's framing line for a body of the caller's Content-Length, and the body.
    const head = Buffer.from(`${out.text}${out.contentLength > 0 ? `content-length: ${out.contentLength}\r\n\r\n${'x'.repeat(out.contentLength)}` : '\r\n'}`, 'latin1')
    const where = `case ${i}: ${JSON.stringify({ method, path, origin, headers })} wrote ${JSON.stringify(head.toString('latin1'))}`
    const parsed = llhttp(head)
    if (typeof parsed === 'string') {
      // buildHead guards line breaks only; the door refuses other controls before it runs.
      // Allowed only when llhttp stopped at such a byte (never at a CR or LF).
      const at = /^refused at byte (\d+): HPE_(INVALID_HEADER_TOKEN|INVALID_URL)$/.exec(parsed)
      const byte = at === null ? '' : head.toString('latin1', Number(at[1]), Number(at[1]) + 1)
      if (byte !== '' && byte !== '\r' && byte !== '\n' && (isControl(byte) || byte >= '\x80')) controlsForLlhttp++
      else problems.push(`llhttp ${parsed} (${where})`)
      continue
    }
    // What was asked for: the Host first, connection, then each caller line in order.
    let host = origin
    const lines: string[] = []
    for (let k = 0; k < headers.length; k += 2) {
      const name = headers[k] as string
      const v = headers[k + 1]
      const lower = name.toLowerCase()
      if (lower === 'host') host = coerce(v)
      else if (lower === 'connection' || lower === 'content-length') continue
      else if (Array.isArray(v)) for (const x of v) lines.push(name, coerce(x).trim())
      else lines.push(name, coerce(v).trim())
    }
    const expected = { method, path, headers: ['host', host.trim(), 'connection', out.reset ? 'close' : 'keep-alive', ...lines, ...(out.contentLength > 0 ? ['content-length', String(out.contentLength)] : [])], end: head.length }
    try {
      assert.deepEqual(parsed, expected)
    } catch {
      problems.push(`read as ${JSON.stringify(parsed)}, asked for ${JSON.stringify(expected)} (${where})`)
    }
  }
  assert.deepEqual(problems.slice(0, 10), [], `seed ${SEED}: ${problems.length} head(s) llhttp reads otherwise than asked`)
  assert.ok(written > CASES / 4 && refusedByUs > CASES / 10, `both outcomes reached: ${written} written, ${refusedByUs} refused`)
  console.log(`seed ${SEED}: of ${CASES} generated requests, ${refusedByUs} refused by buildHead, ${written - controlsForLlhttp} written and read by llhttp as asked, ${controlsForLlhttp} written and refused by llhttp at a control or non-ASCII byte (which the door refuses first)`)
})
