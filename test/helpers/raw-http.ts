/**
 * HTTP/1.1 by hand, for what ordinary clients will not send or hide: request lines in
 * absolute form, `Expect: 100-continue` with the body held back, duplicate headers, and the
 * server half of a WebSocket handshake (RFC 6455 §4.2.2, §5.2: unfragmented frames only).
 */
import { createHash } from 'node:crypto'
import net from 'node:net'
import type http from 'node:http'
import type { Duplex } from 'node:stream'

/** A TCP connection whose bytes the test reads as text. */
export class RawConnection {
  readonly socket: net.Socket
  /** Everything received so far (latin1). */
  received = ''
  /** Resolves when the server closed the connection. */
  readonly closed: Promise<void>
  readonly #waiters = new Set<() => void>()

  private constructor(socket: net.Socket) {
    this.socket = socket
    socket.setEncoding('latin1')
    socket.on('data', (d: string) => {
      this.received += d
      for (const w of this.#waiters) w()
    })
    socket.on('error', () => {})
    this.closed = new Promise((resolve) => socket.once('close', () => {
      for (const w of this.#waiters) w()
      resolve()
    }))
  }

  /** Opens a connection to 127.0.0.1:`port`. */
  static async open(port: number): Promise<RawConnection> {
    const socket = net.connect(port, '127.0.0.1')
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve)
      socket.once('error', reject)
    })
    return new RawConnection(socket)
  }

  send(text: string | Buffer): void {
    this.socket.write(text)
  }

  /** Resolves with {@link received} once it matches `re` (rejects when the connection closes first, or after `ms`). */
  read(re: RegExp, ms = 10_000): Promise<string> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => done(new Error(`timed out waiting for ${re}; received: ${JSON.stringify(this.received)}`)), ms)
      const check = (): void => {
        if (re.test(this.received)) done()
        else if (this.socket.destroyed) done(new Error(`closed before ${re}; received: ${JSON.stringify(this.received)}`))
      }
      const done = (err?: Error): void => {
        clearTimeout(timer)
        this.#waiters.delete(check)
        if (err === undefined) resolve(this.received)
        else reject(err)
      }
      this.#waiters.add(check)
      check()
    })
  }

  /** Resolves with everything received once the server closes the connection. */
  async untilClosed(): Promise<string> {
    await this.closed
    return this.received
  }

  destroy(): void {
    this.socket.destroy()
  }
}

/** Sends `text` on a new connection and resolves with all the server sent until it closed. */
export async function exchange(port: number, text: string): Promise<string> {
  const c = await RawConnection.open(port)
  c.send(text)
  return c.untilClosed()
}

/** The status code and body of the first response in `text`. */
export function parseResponse(text: string): { status: number; head: string; body: string } {
  const end = text.indexOf('\r\n\r\n')
  const head = end === -1 ? text : text.slice(0, end)
  return { status: Number(/^HTTP\/1\.[01] (\d{3})/.exec(head)?.[1] ?? 0), head, body: end === -1 ? '' : text.slice(end + 4) }
}

const WS_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11'

/**
 * The server half of a WebSocket handshake on an `upgrade` event's socket: answers 101 with
 * `extra` headers, sends `message` as one text frame, answers each data frame the client
 * sends with `reply()` (when given), and ends the connection when the client closes.
 */
export function acceptWebSocket(req: http.IncomingMessage, socket: Duplex, message: string, extra: Record<string, string> = {}, reply?: () => string): void {
  const key = String(req.headers['sec-websocket-key'])
  const accept = createHash('sha1').update(key + WS_GUID).digest('base64')
  const lines = ['HTTP/1.1 101 Switching Protocols', 'Upgrade: websocket', 'Connection: Upgrade', `Sec-WebSocket-Accept: ${accept}`]
  for (const [k, v] of Object.entries(extra)) lines.push(`${k}: ${v}`)
  socket.on('error', () => {})
  socket.write(`${lines.join('\r\n')}\r\n\r\n`)
  socket.write(textFrame(message))
  socket.on('data', (d: Buffer) => {
    // A close frame from the client (opcode 8): answer it and end the connection.
    const opcode = (d[0] ?? 0) & 0x0f
    if (opcode === 0x8) socket.end(Buffer.from([0x88, 0x00]))
    else if (opcode === 0x1 && reply !== undefined) socket.write(textFrame(reply()))
  })
}

/** One unmasked text frame (a server's), with a 7- or 16-bit length. */
function textFrame(text: string): Buffer {
  const payload = Buffer.from(text)
  if (payload.length < 126) return Buffer.concat([Buffer.from([0x81, payload.length]), payload])
  const head = Buffer.from([0x81, 126, 0, 0])
  head.writeUInt16BE(payload.length, 2)
  return Buffer.concat([head, payload])
}
