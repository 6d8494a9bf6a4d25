/**
 * An incremental HTTP/1.1 response parser, strict per RFC 9112: what the mesh's upstream
 * connections ({@link H1Connection}) read responses with. It is the security-critical part
 * of the transport: whatever it accepts, the mesh hands to its callers as the upstream's
 * answer, so anything ambiguous is refused (an `HTTPParserError`, which the mesh answers as
 * Envoy does a broken upstream: 503 `UPE`).
 *
 * What it accepts:
 * - a status line `HTTP/1.<digit> <3 digits>[ <reason>]` ending in CRLF;
 * - header lines `name: value` with the name a token, no whitespace before the colon, the
 *   value HTAB/SP/VCHAR/obs-text (no NUL, no other control), CRLF line ends (a bare LF is
 *   refused, and so is a bare CR), no obs-fold (a line starting with whitespace);
 * - a head of at most `maxHeadBytes` (16 KiB, Node's and undici's default): beyond,
 *   `HeadersOverflowError`;
 * - framing (RFC 9112 §6.3): no body for a HEAD request, a 1xx, 204 or 304; else
 *   `Transfer-Encoding` whose last coding is `chunked` (a `Content-Length` beside it is
 *   refused), else `Content-Length` (digits only; repeated, the values must agree), else
 *   the body runs until the connection closes (so does a `Transfer-Encoding` without
 *   `chunked` last). A `Transfer-Encoding` in an HTTP/1.0 response is refused (§6.1: its
 *   framing is faulty).
 * - chunks: a hex size of at most 13 digits, extensions (`;name[=value]`, the value a token
 *   or a quoted string, whitespace around each part) checked and skipped within
 *   {@link MAX_CHUNK_LINE} bytes, CRLF after the data, then trailers parsed
 *   as header lines within the head limit (a Content-Length or Transfer-Encoding among them
 *   is refused). A Transfer-Encoding with no coding, or with a tab in it, is refused too, and
 *   so is an interim (1xx) head in HTTP/1.0: llhttp, the parser of Node's and undici's
 *   clients, frames those otherwise (test/h1-response-parser-llhttp.test.ts).
 *
 * It never copies the body: the chunks it hands over are views of the buffer it was given.
 * Header names and values are views too; a head split across reads is gathered into a
 * buffer of its own (never reused, so earlier views stay valid).
 *
 * The parser calls its {@link ResponseSink} for each head (interim 1xx ones included) and
 * each piece of body; either may ask it to pause. The end of a response is not a callback:
 * `execute` returns where it stopped with {@link ResponseParser.state} `Done`, so that the
 * connection decides what to do with any bytes left over before anyone is told.
 */
import { errors } from 'undici'
import { BACKSLASH, bytes, COLON, CR, DQUOTE, EQUALS, equalsLower, HEX, HTAB, LF, SEMI, SP, TEXT, TOKEN } from './chars.js'

/** Where a response is being read. */
export const enum ParseState {
  /** No response expected (between requests). */
  Idle,
  StatusLine,
  Fields,
  /** A body framed by Content-Length. */
  Fixed,
  ChunkSize,
  /** Whitespace after a chunk size, before its `;`. */
  ChunkSizeBws,
  /** A chunk extension (RFC 9112 §7.1.1): after its `;`, whitespace, then its name. */
  ChunkExtStart,
  ChunkExtName,
  /** Whitespace after the name: `=`, `;` or the line's end follow. */
  ChunkExtAfterName,
  /** After `=`: whitespace, then a token or a quoted string. */
  ChunkExtValueStart,
  ChunkExtValue,
  ChunkExtQuoted,
  /** After a backslash in a quoted value. */
  ChunkExtEscape,
  /** After the value: whitespace, then `;` or the line's end. */
  ChunkExtAfterValue,
  ChunkSizeLf,
  ChunkData,
  ChunkDataCr,
  ChunkDataLf,
  Trailers,
  /** A body delimited by the close of the connection. */
  UntilClose,
  /** The response is complete. */
  Done,
  /** A parse error occurred: nothing more is read. */
  Failed,
}

/** What a parser tells as it reads. */
export interface ResponseSink {
  /** A head was read (interim ones too). Returns false to pause the parser after it. */
  onResponseHead(statusCode: number, rawHeaders: Buffer[], statusText: string): boolean
  /** A piece of body, a view of the buffer being parsed. Returns false to pause. */
  onResponseBody(chunk: Buffer): boolean
}

/** The longest chunk-size line (size, extensions and CRLF) accepted. */
export const MAX_CHUNK_LINE = 4096
/** Hex digits of a chunk size, at most: 13 digits stay below 2^53. */
const MAX_CHUNK_DIGITS = 13
/** Digits of a Content-Length, at most (below 2^53). */
const MAX_LENGTH_DIGITS = 15

const HTTP_1_ = bytes('HTTP/1.')
const CONTENT_LENGTH = bytes('content-length')
const TRANSFER_ENCODING = bytes('transfer-encoding')
const CONNECTION = bytes('connection')
const KEEP_ALIVE = bytes('keep-alive')
const CLOSE = bytes('close')

/** undici's `util.parseKeepAliveTimeout`. */
const KEEPALIVE_TIMEOUT = /timeout=(\d+)/

function latin1(b: Buffer, start: number, end: number): string {
  return b.toString('latin1', start, end)
}

const HTTPParserError = errors.HTTPParserError as unknown as new (message: string, code?: string, data?: string) => Error

function parseError(message: string, code: string, buf?: Buffer, at?: number): Error {
  const data = buf === undefined ? undefined : latin1(buf, Math.max(0, (at ?? 0) - 16), Math.min(buf.length, (at ?? 0) + 16))
  return new HTTPParserError(message, code, data)
}

/** Whether `b` holds `bytes` at `at` (a JS loop: a few bytes cost less than a call into C++). */
function sameBytes(b: Buffer, at: number, bytes: Buffer): boolean {
  for (let k = 0; k < bytes.length; k++) if (b[at + k] !== bytes[k]) return false
  return true
}

/**
 * A trailer field that would frame the message (RFC 9110 §6.5.1: Content-Length and
 * Transfer-Encoding cannot be processed outside the header section) is refused, as llhttp
 * refuses it: a peer that reads it as framing would end the message elsewhere.
 */
function refuseFramingTrailer(b: Buffer, s: number, nameLen: number): void {
  if (nameLen === 14 && equalsLower(b, s, CONTENT_LENGTH)) throw parseError('Content-Length in the trailer section', 'INVALID_CONTENT_LENGTH', b, s)
  if (nameLen === 17 && equalsLower(b, s, TRANSFER_ENCODING)) throw parseError('Transfer-Encoding in the trailer section', 'INVALID_TRANSFER_ENCODING', b, s)
}

/** One response at a time; {@link start} before each. */
export class ResponseParser {
  readonly #sink: ResponseSink
  readonly #maxHeadBytes: number

  state = ParseState.Idle
  /** Set while the sink asked for a pause (the rest waits in the caller's buffer). */
  paused = false
  statusCode = 0
  statusText = ''
  /** The minor version of the last head (0 for HTTP/1.0). */
  minor = 1
  /** Whether the connection may carry another request after this response (as its head says). */
  keepAlive = true
  /** The server's `Keep-Alive: timeout=` in ms, or -1. */
  keepAliveTimeout = -1
  /** The final response's body length announced by Content-Length, or -1. */
  contentLength = -1
  /** Body bytes of the final response delivered so far. */
  bodyBytes = 0
  /** The trailers of a chunked response, once complete. */
  trailers: Buffer[] | null = null

  /** The request was HEAD: no response to it has a body. */
  #noBody = false
  #raw: Buffer[] = []
  /** Bytes of the current head or trailer section seen so far (complete lines). */
  #sectionBytes = 0
  #chunked = false
  #transferEncoding = false
  #connectionClose = false
  #connectionKeepAlive = false
  /** Set by a line when it was the empty line ending a section. */
  #sectionEnd = false
  /** Bytes of a head or trailer section split across reads, gathered; null when none. */
  #acc: Buffer | null = null
  #accLen = 0
  /** Where the next line starts in {@link #acc}. */
  #accPos = 0
  /** Left of the current chunk or Content-Length body. */
  #remaining = 0
  #chunkDigits = 0
  #chunkLine = 0
  /** The last Keep-Alive value seen and its parse (servers send the same one every time). */
  #lastKeepAlive: Buffer | null = null
  #lastKeepAliveTimeout = -1

  constructor(sink: ResponseSink, maxHeadBytes = 16 * 1024) {
    this.#sink = sink
    this.#maxHeadBytes = maxHeadBytes
  }

  /** Expects the response to a new request; `noBody` for HEAD. */
  start(noBody: boolean): void {
    this.state = ParseState.StatusLine
    this.#noBody = noBody
    this.paused = false
    this.bodyBytes = 0
    this.contentLength = -1
    this.trailers = null
    this.#newHead()
  }

  #newHead(): void {
    this.statusCode = 0
    this.#raw = []
    this.#sectionBytes = 0
    this.#chunked = false
    this.#transferEncoding = false
    this.#connectionClose = false
    this.#connectionKeepAlive = false
    this.keepAliveTimeout = -1
    this.contentLength = -1
  }

  /** No more responses are read (the connection is going). */
  stop(): void {
    this.state = ParseState.Failed
    this.#acc = null
  }

  /**
   * Reads `buf` from `at`. Returns where it stopped: `buf.length` once all was read, or
   * earlier when the response is complete (`state` Done: the rest is not this response's),
   * or the sink paused it (`paused`: call again from there). Throws an `HTTPParserError` or
   * a `HeadersOverflowError` on a response that breaks HTTP/1.1 (`state` is then Failed).
   */
  execute(buf: Buffer, at: number): number {
    try {
      return this.#execute(buf, at)
    } catch (err) {
      this.stop()
      throw err
    }
  }

  /**
   * The connection closed: completes a response delimited by the close. Returns true when
   * the close ended a response well (so it is not an error).
   */
  finish(): boolean {
    if (this.state === ParseState.UntilClose) {
      this.state = ParseState.Done
      return true
    }
    return false
  }

  #execute(buf: Buffer, at: number): number {
    const end = buf.length
    let pos = at
    this.paused = false
    while (pos < end) {
      switch (this.state) {
        case ParseState.StatusLine:
        case ParseState.Fields:
        case ParseState.Trailers: {
          const next = this.#section(buf, pos, end)
          if (next === -1) return end
          pos = next
          if (this.state === ParseState.Trailers) {
            this.trailers = this.#raw
            this.state = ParseState.Done
            return pos
          }
          if (!this.#headDone()) {
            this.paused = true
            return pos
          }
          if ((this.state as ParseState) === ParseState.Done) return pos
          break
        }
        case ParseState.Fixed: {
          const avail = end - pos
          const n = avail < this.#remaining ? avail : this.#remaining
          const chunk = pos === 0 && n === end ? buf : buf.subarray(pos, pos + n)
          pos += n
          this.#remaining -= n
          this.bodyBytes += n
          if (this.#remaining === 0) this.state = ParseState.Done
          if (!this.#sink.onResponseBody(chunk)) this.paused = true
          if (this.state === ParseState.Done || this.paused) return pos
          break
        }
        case ParseState.UntilClose: {
          const chunk = pos === 0 ? buf : buf.subarray(pos)
          this.bodyBytes += end - pos
          pos = end
          if (!this.#sink.onResponseBody(chunk)) this.paused = true
          return pos
        }
        case ParseState.ChunkData: {
          const avail = end - pos
          const n = avail < this.#remaining ? avail : this.#remaining
          const chunk = buf.subarray(pos, pos + n)
          pos += n
          this.#remaining -= n
          this.bodyBytes += n
          if (this.#remaining === 0) this.state = ParseState.ChunkDataCr
          if (!this.#sink.onResponseBody(chunk)) {
            this.paused = true
            return pos
          }
          break
        }
        case ParseState.Idle:
        case ParseState.Done:
        case ParseState.Failed:
          return pos
        default:
          pos = this.#chunkFraming(buf, pos, end)
      }
    }
    return pos
  }

  /**
   * The byte `c` after an extension's name (`afterName`) or value, or after whitespace that
   * followed it: whitespace (more may come); `=` starts the value, after a name only; `;` the
   * next extension; CR the line's end. Anything else is refused.
   */
  #afterExtPart(c: number, afterName: boolean, buf: Buffer, pos: number): void {
    if (c === SP || c === HTAB) this.state = afterName ? ParseState.ChunkExtAfterName : ParseState.ChunkExtAfterValue
    else if (c === EQUALS && afterName) this.state = ParseState.ChunkExtValueStart
    else if (c === SEMI) this.state = ParseState.ChunkExtStart
    else if (c === CR) this.state = ParseState.ChunkSizeLf
    else throw parseError('Invalid character in chunk extensions', 'STRICT', buf, pos)
  }

  /** The framing bytes of chunked coding, byte by byte (they are few). */
  #chunkFraming(buf: Buffer, pos: number, end: number): number {
    while (pos < end) {
      const c = buf[pos] as number
      switch (this.state) {
        case ParseState.ChunkSize: {
          const v = HEX[c] as number
          if (v !== -1) {
            if (++this.#chunkDigits > MAX_CHUNK_DIGITS) throw parseError('Chunk size too large', 'INVALID_CHUNK_SIZE', buf, pos)
            this.#remaining = this.#remaining * 16 + v
          } else if (this.#chunkDigits === 0) {
            throw parseError('Invalid character in chunk size', 'INVALID_CHUNK_SIZE', buf, pos)
          } else if (c === CR) {
            this.state = ParseState.ChunkSizeLf
          } else if (c === SEMI) {
            this.state = ParseState.ChunkExtStart
          } else if (c === SP || c === HTAB) {
            this.state = ParseState.ChunkSizeBws
          } else {
            throw parseError('Invalid character in chunk size', 'INVALID_CHUNK_SIZE', buf, pos)
          }
          break
        }
        case ParseState.ChunkSizeBws:
          if (c === SEMI) this.state = ParseState.ChunkExtStart
          else if (c !== SP && c !== HTAB) throw parseError('Invalid character in chunk extensions', 'STRICT', buf, pos)
          break
        // Extensions (RFC 9112 §7.1.1) are skipped, but only as the grammar has them: llhttp
        // refuses the rest, and the two must agree on what they accept.
        case ParseState.ChunkExtStart:
          if (TOKEN[c] === 1) this.state = ParseState.ChunkExtName
          else if (c !== SP && c !== HTAB) throw parseError('Chunk extension without a name', 'STRICT', buf, pos)
          break
        case ParseState.ChunkExtName:
          if (TOKEN[c] !== 1) this.#afterExtPart(c, true, buf, pos)
          break
        case ParseState.ChunkExtAfterName:
          this.#afterExtPart(c, true, buf, pos)
          break
        case ParseState.ChunkExtValueStart:
          if (TOKEN[c] === 1) this.state = ParseState.ChunkExtValue
          else if (c === DQUOTE) this.state = ParseState.ChunkExtQuoted
          else if (c !== SP && c !== HTAB) throw parseError('Invalid chunk extension value', 'STRICT', buf, pos)
          break
        case ParseState.ChunkExtValue:
          if (TOKEN[c] !== 1) this.#afterExtPart(c, false, buf, pos)
          break
        case ParseState.ChunkExtQuoted:
          if (c === DQUOTE) this.state = ParseState.ChunkExtAfterValue
          else if (c === BACKSLASH) this.state = ParseState.ChunkExtEscape
          else if (TEXT[c] !== 1) throw parseError('Invalid character in a quoted chunk extension', 'STRICT', buf, pos)
          break
        case ParseState.ChunkExtEscape:
          if (TEXT[c] !== 1) throw parseError('Invalid character in a quoted chunk extension', 'STRICT', buf, pos)
          this.state = ParseState.ChunkExtQuoted
          break
        case ParseState.ChunkExtAfterValue:
          this.#afterExtPart(c, false, buf, pos)
          break
        case ParseState.ChunkSizeLf:
          if (c !== LF) throw parseError('Expected LF after chunk size', 'LF_EXPECTED', buf, pos)
          this.#chunkLine = 0
          this.#chunkDigits = 0
          if (this.#remaining === 0) {
            // The last chunk: trailers follow (or the empty line).
            this.state = ParseState.Trailers
            this.#raw = []
            this.#sectionBytes = 0
            return pos + 1
          }
          this.state = ParseState.ChunkData
          return pos + 1
        case ParseState.ChunkDataCr:
          if (c !== CR) throw parseError('Expected CRLF after chunk data', 'STRICT', buf, pos)
          this.state = ParseState.ChunkDataLf
          break
        case ParseState.ChunkDataLf:
          if (c !== LF) throw parseError('Expected LF after chunk data', 'LF_EXPECTED', buf, pos)
          this.state = ParseState.ChunkSize
          this.#remaining = 0
          this.#chunkDigits = 0
          this.#chunkLine = 0
          return pos + 1
        default:
          return pos
      }
      pos++
      if (++this.#chunkLine > MAX_CHUNK_LINE) throw parseError('Chunk size line too long', 'STRICT', buf, pos)
    }
    return pos
  }

  /**
   * Reads lines of a head (status line and fields) or a trailer section. Returns where the
   * section ends in `buf`, or -1 when `buf` ended first (the incomplete part is kept).
   */
  #section(buf: Buffer, at: number, end: number): number {
    let src = buf
    let pos = at
    let srcEnd = end
    /** Where `buf[at]` is in `src`. */
    let base = at
    const acc = this.#acc
    if (acc !== null) {
      const room = acc.length - this.#accLen
      const n = end - at < room ? end - at : room
      buf.copy(acc, this.#accLen, at, at + n)
      base = this.#accLen
      this.#accLen += n
      src = acc
      pos = this.#accPos
      srcEnd = this.#accLen
    }
    this.#sectionEnd = false
    while (pos < srcEnd) {
      const lineStart = pos
      pos = this.state === ParseState.StatusLine ? this.#statusLine(src, pos, srcEnd) : this.#fieldLine(src, pos, srcEnd)
      if (pos === -1) {
        // The line is not complete yet.
        if (this.#sectionBytes + (srcEnd - lineStart) > this.#maxHeadBytes) throw new errors.HeadersOverflowError()
        if (src !== acc) {
          const gathered = Buffer.allocUnsafe(this.#maxHeadBytes + 4)
          this.#accLen = buf.copy(gathered, 0, lineStart, end)
          this.#acc = gathered
        }
        this.#accPos = src === acc ? lineStart : 0
        return -1
      }
      this.#sectionBytes += pos - lineStart
      if (this.#sectionBytes > this.#maxHeadBytes) throw new errors.HeadersOverflowError()
      if (this.#sectionEnd) {
        this.#acc = null
        // Back to `buf`'s offsets: the section ended within the bytes just added.
        return src === acc ? at + (pos - base) : pos
      }
    }
    if (src === acc) {
      this.#accPos = pos
      if (this.#accLen === acc.length) throw new errors.HeadersOverflowError()
    }
    return -1
  }

  /** The status line from `s`: the index after its LF, or -1 if not all there. */
  #statusLine(b: Buffer, s: number, end: number): number {
    const avail = end - s
    for (let k = 0; k < 7 && k < avail; k++) {
      if (b[s + k] !== HTTP_1_[k]) throw parseError('Expected HTTP/1.x', 'INVALID_CONSTANT', b, s + k)
    }
    if (avail < 13) {
      this.#checkPartialStatus(b, s, end)
      return -1
    }
    const minor = (b[s + 7] as number) - 0x30
    if (minor < 0 || minor > 9) throw parseError('Invalid HTTP version', 'INVALID_VERSION', b, s + 7)
    if (b[s + 8] !== SP) throw parseError('Expected space after HTTP version', 'INVALID_VERSION', b, s + 8)
    const d0 = (b[s + 9] as number) - 0x30
    const d1 = (b[s + 10] as number) - 0x30
    const d2 = (b[s + 11] as number) - 0x30
    if (d0 < 1 || d0 > 9 || d1 < 0 || d1 > 9 || d2 < 0 || d2 > 9) throw parseError('Invalid status code', 'INVALID_STATUS', b, s + 9)
    let i = s + 12
    let reasonStart = i
    const after = b[i] as number
    if (after === SP) {
      reasonStart = ++i
      while (i < end && TEXT[b[i] as number] === 1) i++
    } else if (after !== CR) {
      throw parseError('Invalid status code', 'INVALID_STATUS', b, i)
    }
    if (i + 1 >= end) {
      if (i < end && b[i] !== CR) throw parseError('Invalid character in reason phrase', 'STRICT', b, i)
      return -1
    }
    if (b[i] !== CR) throw parseError(b[i] === LF ? 'Expected CRLF, got a bare LF' : 'Invalid character in reason phrase', 'CR_EXPECTED', b, i)
    if (b[i + 1] !== LF) throw parseError('Expected LF after CR', 'LF_EXPECTED', b, i + 1)
    this.minor = minor
    this.statusCode = d0 * 100 + d1 * 10 + d2
    const len = i - reasonStart
    this.statusText = len === 2 && b[reasonStart] === 0x4f && b[reasonStart + 1] === 0x4b ? 'OK' : len === 0 ? '' : latin1(b, reasonStart, i)
    this.state = ParseState.Fields
    return i + 2
  }

  /** Refuses a short status line already known to be wrong (so junk is refused before more comes). */
  #checkPartialStatus(b: Buffer, s: number, end: number): void {
    for (let i = s + 7; i < end; i++) {
      const c = b[i] as number
      if (c === LF || (c === CR && i < s + 12)) throw parseError('Invalid status line', 'INVALID_STATUS', b, i)
    }
  }

  /** One field line (or the empty line) from `s`: the index after its LF, or -1 if not all there. */
  #fieldLine(b: Buffer, s: number, end: number): number {
    const c0 = b[s] as number
    if (c0 === CR) {
      if (s + 1 >= end) return -1
      if (b[s + 1] !== LF) throw parseError('Expected LF after CR', 'LF_EXPECTED', b, s + 1)
      this.#sectionEnd = true
      return s + 2
    }
    let i = s
    while (i < end && TOKEN[b[i] as number] === 1) i++
    if (i === end) return -1
    if (i === s) {
      throw parseError(c0 === SP || c0 === HTAB ? 'Unexpected whitespace (obs-fold)' : c0 === LF ? 'Expected CRLF, got a bare LF' : 'Invalid header field name', 'INVALID_HEADER_TOKEN', b, i)
    }
    if (b[i] !== COLON) throw parseError('Invalid header field name', 'INVALID_HEADER_TOKEN', b, i)
    const nameEnd = i++
    while (i < end && (b[i] === SP || b[i] === HTAB)) i++
    const valueStart = i
    while (i < end && TEXT[b[i] as number] === 1) i++
    if (i + 1 >= end) {
      if (i < end && b[i] !== CR) throw parseError('Invalid header value char', 'INVALID_HEADER_TOKEN', b, i)
      return -1
    }
    if (b[i] !== CR) throw parseError(b[i] === LF ? 'Expected CRLF, got a bare LF' : 'Invalid header value char', b[i] === LF ? 'CR_EXPECTED' : 'INVALID_HEADER_TOKEN', b, i)
    if (b[i + 1] !== LF) throw parseError('Expected LF after CR', 'LF_EXPECTED', b, i + 1)
    let valueEnd = i
    while (valueEnd > valueStart && (b[valueEnd - 1] === SP || b[valueEnd - 1] === HTAB)) valueEnd--
    const nameLen = nameEnd - s
    if (this.state === ParseState.Fields) {
      if (nameLen === 14 || nameLen === 17 || nameLen === 10) this.#framingField(b, s, nameLen, valueStart, valueEnd, i)
    } else if (nameLen === 14 || nameLen === 17) {
      refuseFramingTrailer(b, s, nameLen)
    }
    this.#raw.push(b.subarray(s, nameEnd), b.subarray(valueStart, valueEnd))
    return i + 2
  }

  /** Notes the fields that frame the message or govern the connection (`ve` is the value's end without trailing whitespace, `cr` the line's). */
  #framingField(b: Buffer, s: number, nameLen: number, vs: number, ve: number, cr: number): void {
    if (nameLen === 14) {
      if (!equalsLower(b, s, CONTENT_LENGTH)) return
      const digits = ve - vs
      if (digits === 0 || digits > MAX_LENGTH_DIGITS) throw parseError('Invalid Content-Length', 'INVALID_CONTENT_LENGTH', b, vs)
      let n = 0
      for (let i = vs; i < ve; i++) {
        const d = (b[i] as number) - 0x30
        if (d < 0 || d > 9) throw parseError('Invalid Content-Length', 'INVALID_CONTENT_LENGTH', b, i)
        n = n * 10 + d
      }
      if (this.contentLength !== -1 && this.contentLength !== n) throw parseError('Conflicting Content-Length', 'UNEXPECTED_CONTENT_LENGTH', b, vs)
      this.contentLength = n
    } else if (nameLen === 17) {
      if (!equalsLower(b, s, TRANSFER_ENCODING)) return
      if (ve === vs) throw parseError('Transfer-Encoding without a coding', 'INVALID_TRANSFER_ENCODING', b, vs)
      // A tab is whitespace to RFC 9110, but llhttp reads `chunked<TAB>` as another coding
      // (the body then runs to the close): peers would frame the message differently.
      for (let k = vs; k < cr; k++) if (b[k] === HTAB) throw parseError('Tab in Transfer-Encoding', 'INVALID_TRANSFER_ENCODING', b, k)
      this.#transferEncoding = true
      // The last coding of the last Transfer-Encoding line decides (RFC 9112 §6.3).
      const codings = latin1(b, vs, ve).toLowerCase()
      const comma = codings.lastIndexOf(',')
      this.#chunked = (comma === -1 ? codings : codings.slice(comma + 1)).trim() === 'chunked'
    } else if (equalsLower(b, s, CONNECTION)) {
      const len = ve - vs
      if (len === 10 && equalsLower(b, vs, KEEP_ALIVE)) this.#connectionKeepAlive = true
      else if (len === 5 && equalsLower(b, vs, CLOSE)) this.#connectionClose = true
      else {
        for (const token of latin1(b, vs, ve).toLowerCase().split(',')) {
          const t = token.trim()
          if (t === 'close') this.#connectionClose = true
          else if (t === 'keep-alive') this.#connectionKeepAlive = true
        }
      }
    } else if (equalsLower(b, s, KEEP_ALIVE)) {
      const last = this.#lastKeepAlive
      if (last !== null && last.length === ve - vs && sameBytes(b, vs, last)) {
        this.keepAliveTimeout = this.#lastKeepAliveTimeout
        return
      }
      const m = KEEPALIVE_TIMEOUT.exec(latin1(b, vs, ve))
      this.keepAliveTimeout = m === null ? -1 : Number.parseInt(m[1] as string, 10) * 1000
      this.#lastKeepAlive = Buffer.from(b.subarray(vs, ve))
      this.#lastKeepAliveTimeout = this.keepAliveTimeout
    }
  }

  /**
   * A head is complete: tells the sink, then sets how its body is read. Returns false when
   * the sink paused.
   */
  #headDone(): boolean {
    const status = this.statusCode
    const raw = this.#raw
    if (this.#transferEncoding) {
      if (this.contentLength !== -1) throw parseError('Content-Length beside Transfer-Encoding', 'UNEXPECTED_CONTENT_LENGTH')
      if (this.minor === 0) throw parseError('Transfer-Encoding in an HTTP/1.0 response', 'INVALID_TRANSFER_ENCODING')
    }
    this.keepAlive = this.minor === 0 ? this.#connectionKeepAlive && !this.#connectionClose : !this.#connectionClose
    if (status < 200) {
      // HTTP/1.0 has no interim responses (RFC 9110 §15.2); llhttp takes the connection as
      // closed after one, so a final response after it would be read by one peer only.
      if (this.minor === 0) throw parseError('An interim response in HTTP/1.0', 'INVALID_STATUS')
      // An interim response: another head follows, for the same request.
      const go = this.#sink.onResponseHead(status, raw, this.statusText)
      if (this.state !== ParseState.Fields) return go
      this.state = ParseState.StatusLine
      this.#newHead()
      return go
    }
    if (this.#noBody || status === 204 || status === 304) {
      this.state = ParseState.Done
    } else if (this.#transferEncoding) {
      if (this.#chunked) {
        this.state = ParseState.ChunkSize
        this.#remaining = 0
        this.#chunkDigits = 0
        this.#chunkLine = 0
      } else {
        this.state = ParseState.UntilClose
        this.keepAlive = false
      }
    } else if (this.contentLength !== -1) {
      this.#remaining = this.contentLength
      this.state = this.contentLength === 0 ? ParseState.Done : ParseState.Fixed
    } else {
      this.state = ParseState.UntilClose
      this.keepAlive = false
    }
    const state = this.state
    const go = this.#sink.onResponseHead(status, raw, this.statusText)
    // The sink may have stopped the parser (an abort): leave its state as it set it.
    if (this.state !== state) return go
    return go
  }
}
