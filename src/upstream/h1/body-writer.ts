/**
 * Writes a request body that is not in memory (a Node Readable, an iterable or async
 * iterable, a Blob's stream) after its head, as undici 7 does (client-h1.js `writeStream`,
 * `writeIterable`, `AsyncWriter`): chunked unless the length is known (the caller's
 * Content-Length, a Blob's size), then exactly that many bytes or
 * `RequestContentLengthMismatchError`; the head goes with the first chunk; the socket's
 * backpressure pauses the source. A body stream's own error fails the request with that
 * error (the mesh tells the caller's failure from the upstream's by it).
 *
 * The chunked framing is undici's: the head's last line is `transfer-encoding: chunked`
 * without the empty line, and every chunk is preceded by `\r\n<size>\r\n`, so the first
 * CRLF ends the head.
 */
import type { Socket } from 'node:net'
import type { Readable } from 'node:stream'
import { errors } from 'undici'

/** Who a writer reports to: the connection carrying the request. */
export interface BodyOwner {
  /** Every byte of the request went to the socket. */
  bodyWritten(writer: BodyWriter): void
  /** The body could not be written (its source failed, or its length was wrong). */
  bodyFailed(writer: BodyWriter, err: Error): void
}

export abstract class BodyWriter {
  readonly #socket: Socket
  readonly #owner: BodyOwner
  readonly #head: string
  /** The length to send, or -1 for chunked. */
  readonly #length: number
  readonly #expectsPayload: boolean
  #written = 0
  /** Set once the writer ended, well or not. */
  done = false

  constructor(socket: Socket, owner: BodyOwner, head: string, length: number, expectsPayload: boolean) {
    this.#socket = socket
    this.#owner = owner
    this.#head = head
    this.#length = length
    this.#expectsPayload = expectsPayload
  }

  /** Starts pulling from the source. */
  abstract start(): void
  /** The request ended otherwise (aborted, the connection failed): stop, and let the source go. */
  abstract destroy(err: Error | null): void

  /** Writes one chunk; returns false when the socket asks to wait for 'drain'. Throws on a length mismatch. */
  protected write(chunk: Buffer | Uint8Array | string): boolean {
    const socket = this.#socket
    if (socket.destroyed) return false
    const len = typeof chunk === 'string' ? Buffer.byteLength(chunk) : chunk.byteLength
    if (len === 0) return true
    if (this.#length !== -1 && this.#written + len > this.#length) throw new errors.RequestContentLengthMismatchError()
    socket.cork()
    if (this.#written === 0) {
      socket.write(this.#length === -1 ? `${this.#head}transfer-encoding: chunked\r\n` : `${this.#head}content-length: ${this.#length}\r\n\r\n`, 'latin1')
    }
    if (this.#length === -1) socket.write(`\r\n${len.toString(16)}\r\n`, 'latin1')
    this.#written += len
    const ok = socket.write(chunk)
    socket.uncork()
    return ok
  }

  /**
   * The source ended: the last framing bytes. Throws on a length mismatch, before writing
   * anything: a body shorter than its Content-Length never reaches the upstream as a whole
   * request (an empty one would otherwise go as a complete `content-length: 0` request, and
   * the caller be told it failed; undici sends it so).
   */
  protected end(): void {
    const socket = this.#socket
    if (socket.destroyed) return
    if (this.#length !== -1 && this.#written !== this.#length) throw new errors.RequestContentLengthMismatchError()
    if (this.#written === 0) {
      socket.write(this.#expectsPayload || this.#length === 0 ? `${this.#head}content-length: 0\r\n\r\n` : `${this.#head}\r\n`, 'latin1')
    } else if (this.#length === -1) {
      socket.write('\r\n0\r\n\r\n', 'latin1')
    }
  }

  protected finished(err: Error | null): void {
    if (this.done) return
    this.done = true
    if (err === null) {
      try {
        this.end()
      } catch (e) {
        err = e as Error
      }
    }
    if (err === null) this.#owner.bodyWritten(this)
    else this.#owner.bodyFailed(this, err)
  }

  protected get socket(): Socket {
    return this.#socket
  }
}

/** A Node Readable (client-h1.js `writeStream`). */
export class StreamBodyWriter extends BodyWriter {
  readonly #body: Readable

  constructor(socket: Socket, owner: BodyOwner, head: string, length: number, expectsPayload: boolean, body: Readable) {
    super(socket, owner, head, length, expectsPayload)
    this.#body = body
  }

  readonly #onData = (chunk: Buffer | string): void => {
    if (this.done) return
    try {
      if (!this.write(chunk)) this.#body.pause()
    } catch (err) {
      this.#stop(err as Error)
    }
  }

  readonly #onDrain = (): void => {
    if (!this.done) this.#body.resume()
  }

  readonly #onEnd = (): void => this.#stop(null)

  readonly #onError = (err: Error): void => this.#stop(err ?? new errors.RequestAbortedError())

  readonly #onClose = (): void => {
    // 'close' may come before 'error' for a broken stream: wait a tick to hear the error.
    if (!this.done) queueMicrotask(() => this.#stop(this.#body.errored ?? new errors.RequestAbortedError()))
  }

  start(): void {
    const body = this.#body
    body.on('data', this.#onData).on('end', this.#onEnd).on('error', this.#onError).on('close', this.#onClose)
    this.socket.on('drain', this.#onDrain)
    body.resume()
    const state = body as Readable & { errorEmitted?: boolean; endEmitted?: boolean; closeEmitted?: boolean }
    if (state.errorEmitted ?? body.errored) setImmediate(() => this.#stop(body.errored ?? new errors.RequestAbortedError()))
    else if (state.endEmitted ?? body.readableEnded) setImmediate(() => this.#stop(null))
    else if (state.closeEmitted ?? body.closed) setImmediate(this.#onClose)
  }

  #stop(err: Error | null): void {
    if (this.done) return
    this.#detach()
    this.finished(err)
    // undici destroys the source once written (or with the error that stopped it).
    if (err !== null) this.#body.destroy(err)
    else this.#body.destroy()
  }

  #detach(): void {
    this.socket.off('drain', this.#onDrain)
    // The 'error' listener stays (it does nothing once done): the source is destroyed with an
    // error just after, and an 'error' nobody hears would end the process.
    this.#body.off('data', this.#onData).off('end', this.#onEnd).off('close', this.#onClose)
  }

  destroy(err: Error | null): void {
    if (this.done) return
    this.done = true
    this.#detach()
    // undici: a connection reset after an early response lets the source go without an error.
    if (err !== null && (err as { code?: string }).code !== 'UND_ERR_INFO') this.#body.destroy(err)
    else this.#body.destroy()
  }
}

/** An iterable or async iterable, or a Blob's stream (client-h1.js `writeIterable`). */
export class IterableBodyWriter extends BodyWriter {
  readonly #body: AsyncIterable<unknown> | Iterable<unknown>
  #waiting: (() => void) | null = null

  constructor(socket: Socket, owner: BodyOwner, head: string, length: number, expectsPayload: boolean, body: AsyncIterable<unknown> | Iterable<unknown>) {
    super(socket, owner, head, length, expectsPayload)
    this.#body = body
  }

  readonly #wake = (): void => {
    const w = this.#waiting
    this.#waiting = null
    w?.()
  }

  start(): void {
    this.socket.on('drain', this.#wake).on('close', this.#wake)
    void this.#run()
  }

  async #run(): Promise<void> {
    let err: Error | null = null
    try {
      for await (const chunk of this.#body as AsyncIterable<unknown>) {
        if (this.done) return
        if (this.socket.destroyed) throw new errors.SocketError('other side closed')
        const bytes = typeof chunk === 'string' || chunk instanceof Uint8Array ? chunk : Buffer.from(chunk as ArrayBuffer)
        if (!this.write(bytes)) await new Promise<void>((resolve) => (this.#waiting = resolve))
        if (this.done) return
      }
    } catch (e) {
      err = e as Error
    } finally {
      this.socket.off('drain', this.#wake).off('close', this.#wake)
    }
    this.finished(err)
  }

  destroy(): void {
    if (this.done) return
    this.done = true
    this.#wake()
  }
}
