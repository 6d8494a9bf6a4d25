/**
 * Request bodies that can be sent more than once, for retries. Strings and buffers are
 * replayable as they are. A streamed body (an async iterable, which is what undici's fetch
 * and Node streams give) is read through a recorder that keeps up to a bound of bytes: each
 * try gets a fresh view that first replays what was recorded, then reads on from the
 * source. A body larger than the bound can still be sent once; it cannot be retried once
 * more than the bound of it has been read.
 */
import { defaults } from '../config/defaults.js'

type Body = unknown

/** A body, and whether another try can send it again from the start. */
export interface ReplayableBody {
  /** The body for the next try. */
  forTry(): Body
  /** Whether a new try could send the whole body again now. */
  readonly replayable: boolean
  /** The request is over: let go of the source if nobody read it to its end. */
  close(): void
}

/** A body sent as it is on every try: none, a string or bytes. */
class StaticBody implements ReplayableBody {
  readonly replayable = true
  constructor(readonly body: Body) {}
  forTry(): Body {
    return this.body
  }
  close(): void {}
}

/** No body (most retried requests): one shared object. */
const NO_BODY = new StaticBody(undefined)
const NULL_BODY = new StaticBody(null)

/** Wraps a request body for retries, or returns undefined when it can never be replayed. */
export function replayableBody(body: Body, limit = defaults.retryBodyBufferBytes): ReplayableBody | undefined {
  if (body === undefined) return NO_BODY
  if (body === null) return NULL_BODY
  if (typeof body === 'string' || body instanceof Uint8Array) return new StaticBody(body)
  if (typeof (body as AsyncIterable<unknown>)[Symbol.asyncIterator] === 'function') {
    return new RecordedBody(body as AsyncIterable<unknown>, limit)
  }
  // FormData, Blob and the like: undici serialises them itself; sent once, never retried.
  return undefined
}

class RecordedBody implements ReplayableBody {
  readonly #source: AsyncIterable<unknown>
  readonly #limit: number
  #iterator: AsyncIterator<unknown> | undefined
  #chunks: Buffer[] | null = []
  #bytes = 0
  #readCount = 0
  #done = false
  /** A read from the source in progress: views share it rather than read twice. */
  #reading: Promise<IteratorResult<unknown>> | undefined

  constructor(source: AsyncIterable<unknown>, limit: number) {
    this.#source = source
    this.#limit = limit
    // A stream may fail before any try reads it (the request still waits for a connection).
    // Plain undici listens for a stream body's errors from the start; so do we, or the
    // caller's error would become the process's uncaught exception. The first read still
    // sees the error: the stream keeps it (`errored`) and its iterator throws it.
    if (isEmitter(source)) source.on('error', ignoreError)
  }

  get replayable(): boolean {
    // Whole (or untouched) and recorded within the bound.
    return this.#chunks !== null && this.#reading === undefined
  }

  forTry(): AsyncIterable<Buffer> {
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const self = this
    let index = 0
    return {
      [Symbol.asyncIterator]() {
        return {
          async next(): Promise<IteratorResult<Buffer>> {
            const chunks = self.#chunks
            if (chunks !== null && index < chunks.length) return { done: false, value: chunks[index++] as Buffer }
            // Only a view that has seen every chunk read so far may read on from the source.
            if (index !== self.#readCount) throw new Error('the request body is no longer available for this try')
            if (self.#done) return { done: true, value: undefined }
            const r = await self.#read()
            if (r.done === true) return { done: true, value: undefined }
            index++
            return { done: false, value: r.value }
          },
          // A try that stops reading (it failed) leaves the source to the next try.
          return(): Promise<IteratorResult<Buffer>> {
            return Promise.resolve({ done: true, value: undefined })
          },
        }
      },
    }
  }

  async #read(): Promise<IteratorResult<Buffer>> {
    this.#iterator ??= this.#source[Symbol.asyncIterator]()
    const reading = this.#iterator.next()
    this.#reading = reading
    let r: IteratorResult<unknown>
    try {
      r = await reading
    } finally {
      this.#reading = undefined
    }
    if (r.done === true) {
      this.#done = true
      return { done: true, value: undefined }
    }
    const chunk = toBuffer(r.value)
    this.#readCount++
    if (this.#chunks !== null) {
      this.#bytes += chunk.length
      if (this.#bytes > this.#limit) this.#chunks = null
      else this.#chunks.push(chunk)
    }
    return { done: false, value: chunk }
  }

  close(): void {
    if (isEmitter(this.#source)) this.#source.off('error', ignoreError)
    if (this.#done || this.#iterator === undefined) return
    this.#done = true
    void this.#iterator.return?.()?.catch(() => undefined)
  }
}

interface Emitter {
  on(event: 'error', listener: (err: unknown) => void): unknown
  off(event: 'error', listener: (err: unknown) => void): unknown
}

function isEmitter(source: object): source is Emitter {
  return typeof (source as Partial<Emitter>).on === 'function' && typeof (source as Partial<Emitter>).off === 'function'
}

/** Kept by the stream itself (`errored`); the reading try reports it. */
function ignoreError(): void {}

function toBuffer(value: unknown): Buffer {
  if (Buffer.isBuffer(value)) return value
  if (value instanceof Uint8Array) return Buffer.from(value.buffer, value.byteOffset, value.byteLength)
  if (typeof value === 'string') return Buffer.from(value)
  throw new TypeError('a request body chunk must be a string or bytes')
}
