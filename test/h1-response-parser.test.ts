/**
 * The upstream HTTP/1.1 response parser (src/upstream/h1/response-parser.ts) on its own:
 * every response read whole however its bytes are split (at every byte, and one byte at a
 * time), and each thing RFC 9112 makes a recipient refuse, refused with undici's error
 * classes (the mesh tells a broken upstream by them: 503 `UPE`).
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { ParseState, ResponseParser, type ResponseSink } from '../src/upstream/h1/response-parser.js'

interface Head {
  readonly status: number
  readonly text: string
  readonly headers: string[]
}

/** Records what the parser tells; can pause after the n-th body piece. */
class Recorder implements ResponseSink {
  heads: Head[] = []
  body: Buffer[] = []
  pauseOnBody = false
  pauseOnHead = false

  onResponseHead(status: number, raw: Buffer[], text: string): boolean {
    assert.ok(raw.every((b) => Buffer.isBuffer(b)), 'raw headers are Buffers')
    this.heads.push({ status, text, headers: raw.map((b) => b.toString('latin1')) })
    return !this.pauseOnHead
  }

  onResponseBody(chunk: Buffer): boolean {
    this.body.push(Buffer.from(chunk))
    return !this.pauseOnBody
  }
}

interface Outcome {
  readonly heads: Head[]
  readonly body: string
  readonly trailers: string[] | null
  /** The bytes after the response, left unread. */
  readonly rest: string
  readonly done: boolean
  readonly keepAlive: boolean
  readonly keepAliveTimeout: number
}

/** Parses `parts` (each handed over as one read) as the response to a GET (or a HEAD). */
function parse(parts: readonly (string | Buffer)[], opts: { head?: boolean; close?: boolean } = {}): Outcome {
  const sink = new Recorder()
  const p = new ResponseParser(sink)
  p.start(opts.head === true)
  let rest = ''
  for (const part of parts) {
    const buf = typeof part === 'string' ? Buffer.from(part, 'latin1') : part
    if (p.state === ParseState.Done) {
      rest += buf.toString('latin1')
      continue
    }
    const at = p.execute(buf, 0)
    if ((p.state as ParseState) === ParseState.Done) rest += buf.toString('latin1', at)
    else assert.equal(at, buf.length, 'all read')
  }
  if (opts.close === true) p.finish()
  return {
    heads: sink.heads,
    body: Buffer.concat(sink.body).toString('latin1'),
    trailers: p.trailers === null ? null : p.trailers.map((b) => b.toString('latin1')),
    rest,
    done: p.state === ParseState.Done,
    keepAlive: p.keepAlive,
    keepAliveTimeout: p.keepAliveTimeout,
  }
}

/** `text` split at every byte into two reads, and one byte per read: every outcome equals the whole one. */
function everySplit(text: string, opts: { head?: boolean; close?: boolean } = {}): Outcome {
  const whole = parse([text], opts)
  for (let at = 1; at < text.length; at++) assert.deepEqual(parse([text.slice(0, at), text.slice(at)], opts), whole, `split at ${at}`)
  assert.deepEqual(parse([...text], opts), whole, 'one byte per read')
  return whole
}

/** The error parsing `parts` throws (in whichever read it comes). */
function refusal(parts: readonly string[], opts: { head?: boolean } = {}): Error & { code?: string } {
  const p = new ResponseParser(new Recorder())
  p.start(opts.head === true)
  try {
    for (const part of parts) p.execute(Buffer.from(part, 'latin1'), 0)
  } catch (err) {
    assert.equal(p.state, ParseState.Failed, 'a failed parser reads nothing more')
    return err as Error & { code?: string }
  }
  assert.fail(`accepted: ${JSON.stringify(parts.join('')).slice(0, 200)}`)
}

function assertParseError(parts: readonly string[], what: string): void {
  const err = refusal(parts)
  assert.equal(err.name, 'HTTPParserError', what)
  assert.match(err.code ?? '', /^HPE_/, what)
  // The same bytes one per read are refused too (never accepted because they came apart).
  const bytes = [...parts.join('')]
  assert.equal(refusal(bytes).name, 'HTTPParserError', `${what}, one byte per read`)
}

describe('h1 response parser: well-formed responses, however split', () => {
  it('a Content-Length response: status, text, raw headers trimmed, body, the bytes after left unread', () => {
    const o = everySplit('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 11\r\nX-Pad:  \t padded \t \r\nX-Empty:\r\n\r\nhello worldNEXT')
    assert.deepEqual(o.heads, [{ status: 200, text: 'OK', headers: ['Content-Type', 'text/plain', 'Content-Length', '11', 'X-Pad', 'padded', 'X-Empty', ''] }])
    assert.equal(o.body, 'hello world')
    assert.equal(o.rest, 'NEXT')
    assert.equal(o.done, true)
    assert.equal(o.trailers, null)
    assert.equal(o.keepAlive, true)
  })

  it('a chunked response with extensions (after whitespace) and trailers', () => {
    const o = everySplit('HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5 ;a=b;c="d e"\r\nhello\r\n6\r\n world\r\nA\r\n0123456789\r\n0\r\nx-sum: abc\r\nX-Two: 2\r\n\r\n')
    assert.equal(o.body, 'hello world0123456789')
    assert.deepEqual(o.trailers, ['x-sum', 'abc', 'X-Two', '2'])
    assert.equal(o.done, true)
    assert.equal(o.rest, '')
  })

  it('a chunked response without trailers ends at its last chunk\'s empty line', () => {
    const o = everySplit('HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nHTTP/1.1')
    assert.deepEqual([o.body, o.trailers, o.rest], ['abc', [], 'HTTP/1.1'])
  })

  it('interim responses (100, 102, 103) each reach the sink before the final one', () => {
    const o = everySplit('HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\nHTTP/1.1 102 Processing\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok')
    assert.deepEqual(o.heads.map((h) => h.status), [100, 103, 102, 201])
    assert.deepEqual(o.heads[1]?.headers, ['Link', '</a.css>; rel=preload'])
    assert.equal(o.body, 'ok')
  })

  it('HEAD, 204 and 304 have no body whatever their framing says; a 304 with a Content-Length is complete (RFC 9110 §8.6)', () => {
    for (const [text, head] of [
      ['HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n', true],
      ['HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n', true],
      ['HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n', false],
      ['HTTP/1.1 304 Not Modified\r\nContent-Length: 1234\r\n\r\n', false],
    ] as const) {
      const o = everySplit(`${text}NEXT`, { head })
      assert.deepEqual([o.done, o.body, o.rest], [true, '', 'NEXT'], text)
    }
  })

  it('a status line without a reason phrase, an empty one, and obs-text in it', () => {
    assert.equal(everySplit('HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n').heads[0]?.text, '')
    assert.equal(everySplit('HTTP/1.1 404 \r\nContent-Length: 0\r\n\r\n').heads[0]?.text, '')
    assert.equal(everySplit('HTTP/1.1 404 Nicht gefunden \xe4\r\nContent-Length: 0\r\n\r\n').heads[0]?.text, 'Nicht gefunden \xe4')
  })

  it('no framing: the body runs until the connection closes, and the connection is not kept', () => {
    const o = parse(['HTTP/1.1 200 OK\r\n\r\nuntil ', 'the end'], { close: true })
    assert.deepEqual([o.body, o.done, o.keepAlive], ['until the end', true, false])
    const notYet = parse(['HTTP/1.1 200 OK\r\n\r\nuntil '])
    assert.equal(notYet.done, false, 'not complete before the close')
  })

  it('Transfer-Encoding without chunked last: read until close (RFC 9112 §6.3)', () => {
    const o = parse(['HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n3\r\nabc'], { close: true })
    assert.deepEqual([o.body, o.done, o.keepAlive], ['3\r\nabc', true, false])
  })

  it('keep-alive: HTTP/1.1 by default, Connection: close (in a list too), HTTP/1.0 only with keep-alive; Keep-Alive timeout read', () => {
    assert.equal(parse(['HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n']).keepAlive, true)
    assert.equal(parse(['HTTP/1.1 200 OK\r\nConnection: CLOSE\r\nContent-Length: 0\r\n\r\n']).keepAlive, false)
    assert.equal(parse(['HTTP/1.1 200 OK\r\nConnection: x-custom, close\r\nContent-Length: 0\r\n\r\n']).keepAlive, false)
    assert.equal(parse(['HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n']).keepAlive, false)
    assert.equal(parse(['HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 0\r\n\r\n']).keepAlive, true)
    assert.equal(parse(['HTTP/1.1 200 OK\r\nKeep-Alive: timeout=5, max=100\r\nContent-Length: 0\r\n\r\n']).keepAliveTimeout, 5000)
    assert.equal(parse(['HTTP/1.1 200 OK\r\nKeep-Alive: max=100\r\nContent-Length: 0\r\n\r\n']).keepAliveTimeout, -1)
  })

  it('repeated Content-Length lines that agree are one length', () => {
    assert.equal(parse(['HTTP/1.1 200 OK\r\nContent-Length: 2\r\ncontent-length: 2\r\n\r\nok']).body, 'ok')
  })

  it('raw headers of a head split across reads stay intact after later reads', () => {
    const raws: Buffer[][] = []
    const q = new ResponseParser({ onResponseHead: (_s, raw) => raws.push(raw) > 0, onResponseBody: () => true })
    q.start(false)
    q.execute(Buffer.from('HTTP/1.1 200 OK\r\nX-A: one\r\nX-B: t'), 0)
    q.execute(Buffer.from('wo\r\nContent-Length: 3\r\n\r\nabc'), 0)
    q.start(false)
    q.execute(Buffer.from('HTTP/1.1 200 OK\r\nX-C: zzzzzzz\r\nContent-Length: 0\r\n\r\n'), 0)
    assert.deepEqual(raws[0]?.map((b) => b.toString()), ['X-A', 'one', 'X-B', 'two', 'Content-Length', '3'])
  })
})

describe('h1 response parser: pausing', () => {
  it('a sink that pauses on a body piece stops the parser there; it goes on from there', () => {
    const sink = new Recorder()
    sink.pauseOnBody = true
    const p = new ResponseParser(sink)
    p.start(false)
    const buf = Buffer.from('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n')
    let at = p.execute(buf, 0)
    let pauses = 0
    while (p.state !== ParseState.Done) {
      assert.equal(p.paused, true)
      pauses++
      at = p.execute(buf, at)
    }
    assert.equal(pauses, 2)
    assert.equal(Buffer.concat(sink.body).toString(), 'abcdef')
    assert.equal(at, buf.length)
  })

  it('a sink that pauses on the head stops before the body', () => {
    const sink = new Recorder()
    sink.pauseOnHead = true
    const p = new ResponseParser(sink)
    p.start(false)
    const buf = Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok')
    const at = p.execute(buf, 0)
    assert.deepEqual([p.paused, sink.body.length, buf.toString('latin1', at)], [true, 0, 'ok'])
    p.execute(buf, at)
    assert.deepEqual([p.state, Buffer.concat(sink.body).toString()], [ParseState.Done, 'ok'])
  })
})

/** Heads and bodies RFC 9112 makes a recipient refuse, each an `HTTPParserError`. */
const REFUSED: Record<string, string> = {
  'bare LF after the status line': 'HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n',
  'bare LF after a header': 'HTTP/1.1 200 OK\r\nContent-Length: 0\n\r\n',
  'bare LF ending the head': 'HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\n',
  'bare CR in a value': 'HTTP/1.1 200 OK\r\nX-A: a\rb\r\nContent-Length: 0\r\n\r\n',
  'CR not followed by LF ending the head': 'HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\rX',
  'space before the colon': 'HTTP/1.1 200 OK\r\nX-A : 1\r\n\r\n',
  'obs-fold': 'HTTP/1.1 200 OK\r\nX-A: 1\r\n 2\r\n\r\n',
  'obs-fold with HTAB': 'HTTP/1.1 200 OK\r\nX-A: 1\r\n\t2\r\n\r\n',
  'an empty header name': 'HTTP/1.1 200 OK\r\n: 1\r\n\r\n',
  'a name with a non-token byte': 'HTTP/1.1 200 OK\r\nX(A): 1\r\n\r\n',
  'a line without a colon': 'HTTP/1.1 200 OK\r\nX-A\r\n\r\n',
  'NUL in a value': 'HTTP/1.1 200 OK\r\nX-A: a\x00b\r\n\r\n',
  'DEL in a value': 'HTTP/1.1 200 OK\r\nX-A: a\x7fb\r\n\r\n',
  'a control byte in the reason': 'HTTP/1.1 200 O\x01K\r\n\r\n',
  'a four-digit status': 'HTTP/1.1 2000 OK\r\n\r\n',
  'a two-digit status': 'HTTP/1.1 20 OK\r\n\r\n',
  'a status from 0': 'HTTP/1.1 099 OK\r\n\r\n',
  'a status with a letter': 'HTTP/1.1 2x0 OK\r\n\r\n',
  'no space after the version': 'HTTP/1.1200 OK\r\n\r\n',
  'HTTP/2.0': 'HTTP/2.0 200 OK\r\n\r\n',
  'lower-case http': 'http/1.1 200 OK\r\n\r\n',
  'a minor version that is not a digit': 'HTTP/1.x 200 OK\r\n\r\n',
  'not HTTP at all': 'SSH-2.0-OpenSSH_9.6\r\n\r\n',
  'a negative Content-Length': 'HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n',
  'a Content-Length with a sign': 'HTTP/1.1 200 OK\r\nContent-Length: +1\r\n\r\n',
  'an empty Content-Length': 'HTTP/1.1 200 OK\r\nContent-Length: \r\n\r\n',
  'a Content-Length list': 'HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\nok',
  'a Content-Length of 16 digits': 'HTTP/1.1 200 OK\r\nContent-Length: 1234567890123456\r\n\r\n',
  'two different Content-Lengths': 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!',
  'Content-Length beside Transfer-Encoding': 'HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
  'Transfer-Encoding beside Content-Length (other order)': 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n',
  'Transfer-Encoding in HTTP/1.0': 'HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
  'a chunk size that is not hex': 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nxyz\r\n',
  'an empty chunk size': 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\r\n',
  'a chunk size that overflows': 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffffff\r\nhello\r\n',
  'a chunk size of 14 hex digits': 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n00000000000001\r\nx\r\n',
  'a chunk size with a sign': 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n',
  'whitespace after a chunk size, not before ;': 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5 x\r\nhello\r\n',
  'a bare LF after the chunk size': 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n',
  'a control byte in a chunk extension': 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;a\x00b\r\nhello\r\n',
  'chunk data longer than its size': 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello!\r\n0\r\n\r\n',
  'chunk data followed by a bare LF': 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\n0\r\n\r\n',
  'a broken trailer': 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nx-sum : 1\r\n\r\n',
  'a trailer with a bare LF': 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nx-sum: 1\n\r\n',
  // Found by test/h1-response-parser-llhttp.test.ts: llhttp frames these otherwise or refuses them.
  'a Content-Length among the trailers': 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nContent-Length: 3\r\n\r\n',
  'a Transfer-Encoding among the trailers': 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\ntransfer-encoding: chunked\r\n\r\n',
  'a Transfer-Encoding without a coding': 'HTTP/1.1 200 OK\r\nTransfer-Encoding: \r\n\r\nhello',
  'a tab after chunked (llhttp reads the body to the close)': 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\t\r\n\r\n0\r\n\r\n',
  'a tab inside Transfer-Encoding': 'HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip,\tchunked\r\n\r\n0\r\n\r\n',
  'an interim response in HTTP/1.0': 'HTTP/1.0 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok',
  'a chunk extension without a name': 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0;\r\n\r\n',
  'a chunk extension with an empty name before =': 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;=b\r\nhello\r\n',
  'a chunk extension name that is not a token': 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0;a:=b\r\n\r\n',
  'a chunk extension value in two words': 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;a=b c\r\nhello\r\n',
  'a chunk extension with an unterminated quote': 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;a="open\r\nhello\r\n',
}

describe('h1 response parser: what it refuses', () => {
  for (const [what, text] of Object.entries(REFUSED)) {
    it(`${what}: HTTPParserError (whole, and one byte per read)`, () => assertParseError([text], what))
  }

  it('junk is refused from its first bytes, before a whole line came', () => {
    assert.equal(refusal(['SSH']).name, 'HTTPParserError')
    assert.equal(refusal(['HTTP/1.1 2\n']).name, 'HTTPParserError')
  })

  it('a 101 to a request that asked for no upgrade is told to the sink (the connection refuses it)', () => {
    assert.equal(parse(['HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n']).heads[0]?.status, 101)
  })

  it('a chunk-size line with extensions past the bound is refused', () => {
    const err = refusal([`HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;${'a'.repeat(5000)}\r\nhello\r\n`])
    assert.equal(err.name, 'HTTPParserError')
  })

  it('extension values quoted: a `;` inside, and an escaped quote, are part of the value', () => {
    const o = everySplit('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;a="x;y";b="q\\"r";c\r\nhello\r\n0;d=e\r\n\r\n')
    assert.equal(o.body, 'hello')
    assert.equal(o.done, true)
  })

  it('extensions within the bound are skipped', () => {
    assert.equal(parse([`HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;${'a'.repeat(4000)}\r\nhello\r\n0\r\n\r\n`]).body, 'hello')
  })
})

describe('h1 response parser: size limits', () => {
  const big = (n: number): string => `HTTP/1.1 200 OK\r\nX-Big: ${'a'.repeat(n)}\r\nContent-Length: 2\r\n\r\nok`

  it('a head of 16 KiB is read; one byte more is HeadersOverflowError (whole, in two reads, one byte per read)', () => {
    const fits = big(16 * 1024 - 'HTTP/1.1 200 OK\r\nX-Big: \r\nContent-Length: 2\r\n\r\n'.length)
    assert.equal(Buffer.byteLength(fits) - 2, 16 * 1024)
    assert.equal(parse([fits]).body, 'ok')
    assert.equal(parse([fits.slice(0, 9000), fits.slice(9000)]).body, 'ok')
    const over = big(16 * 1024 - 'HTTP/1.1 200 OK\r\nX-Big: \r\nContent-Length: 2\r\n\r\n'.length + 1)
    for (const parts of [[over], [over.slice(0, 9000), over.slice(9000)], [...over]]) {
      const err = refusal(parts)
      assert.equal(err.name, 'HeadersOverflowError')
      assert.equal(err.code, 'UND_ERR_HEADERS_OVERFLOW')
    }
  })

  it('a head that never ends is refused once past the limit, not buffered on', () => {
    const p = new ResponseParser(new Recorder())
    p.start(false)
    p.execute(Buffer.from('HTTP/1.1 200 OK\r\n'), 0)
    let err: Error | undefined
    for (let i = 0; i < 100 && err === undefined; i++) {
      try {
        p.execute(Buffer.from(`X-${i}: ${'v'.repeat(500)}\r\n`), 0)
      } catch (e) {
        err = e as Error
      }
    }
    assert.equal(err?.name, 'HeadersOverflowError')
  })

  it('a 70 KB header in one read is HeadersOverflowError', () => {
    assert.equal(refusal([big(70_000)]).name, 'HeadersOverflowError')
  })

  it('trailers past the limit are HeadersOverflowError', () => {
    const err = refusal([`HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nx-big: ${'a'.repeat(17 * 1024)}\r\n\r\n`])
    assert.equal(err.name, 'HeadersOverflowError')
  })

  it('a large Content-Length body is handed over in the pieces it came in, never copied', () => {
    const head = Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 200000\r\n\r\n')
    const piece = Buffer.alloc(100_000, 1)
    const seen: Buffer[] = []
    const s2: ResponseSink = { onResponseHead: () => true, onResponseBody: (c) => { seen.push(c); return true } }
    const q = new ResponseParser(s2)
    q.start(false)
    q.execute(head, 0)
    q.execute(piece, 0)
    q.execute(piece, 0)
    assert.equal(q.state, ParseState.Done)
    assert.equal(seen[0], piece, 'the same buffer, not a copy')
  })
})
