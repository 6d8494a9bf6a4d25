/**
 * Upgrade (WebSocket handshakes, h2c) and CONNECT requests: node:http hands them to the app
 * with the raw socket and no `ServerResponse` (`'upgrade'` and `'connect'` events). The
 * inbound chain still decides on them, as Envoy runs its filters on upgrade and CONNECT
 * requests: a {@link Tunnel} gives the filters a `ServerResponse` bound to the socket, so a
 * refusal (401, 403, 429, 503, a fault abort, a 400) is written on the socket as a plain
 * HTTP response, and the socket is closed after it. When the chain lets the request on,
 * the socket is handed back to the app untouched; the exchange then lasts as long as the
 * socket, and its status is the one the app writes (`101` for an accepted WebSocket).
 */
import http from 'node:http'
import type { Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import { currentContext } from '../observability/context.js'
import { bindToContext } from './context-binding.js'

/** Taken at load, before `sidecarless/register` patches node:http (it never patches this class). */
const ServerResponse = http.ServerResponse

const STATUS_LINE = /^HTTP\/1\.[01] (\d{3})/

// An upgraded socket has no error listener until the app adds one; while the chain holds
// it, a reset by the peer must not become an uncaught 'error'.
const ignore = (): void => {}

/** One upgrade or CONNECT request while the inbound chain runs on it. */
export class Tunnel {
  /** Where the chain's filters answer a refusal. */
  readonly res: http.ServerResponse
  readonly #socket: Duplex
  #handedOver = false
  #status: number | undefined

  /** `undefined` when the socket cannot carry a response of ours (see {@link open}). */
  private constructor(req: http.IncomingMessage, socket: Duplex) {
    this.#socket = socket
    const res = new ServerResponse(req)
    // Sends `Connection: close`: after a refusal the connection ends.
    res.shouldKeepAlive = false
    res.assignSocket(socket as Socket)
    res.once('finish', () => {
      if (!this.#handedOver) closeSoon(socket)
    })
    socket.on('error', ignore)
    this.res = res
  }

  /**
   * Takes `socket` for the chain, or `undefined` when it already carries a response (a
   * pipelined request still being answered): the request is then refused by closing it.
   */
  static open(req: http.IncomingMessage, socket: Duplex): Tunnel | undefined {
    if ((socket as { _httpMessage?: unknown })._httpMessage != null) return undefined
    // `this`, not the class's name: a class that names itself in its body is renamed by the
    // bundler (`class _Tunnel`), and its `.name` with it.
    return new this(req, socket)
  }

  /** True once the app has the socket. */
  get handedOver(): boolean {
    return this.#handedOver
  }

  /** The status the app wrote on the socket (`101`, or its own refusal), if it wrote one. */
  get status(): number | undefined {
    return this.#status
  }

  /**
   * Gives the socket back to the app: detached from our response, its first bytes read for
   * the status line, and `close` of our response emitted when it closes (metrics, span,
   * limits' slots). Returns false when the peer has gone meanwhile.
   */
  handOver(): boolean {
    const socket = this.#socket
    if (socket.destroyed) return false
    this.#handedOver = true
    this.res.detachSocket(socket as Socket)
    socket.off('error', ignore)
    this.#sniffStatus()
    // Called inside the request context: the socket's events (every WebSocket message) run in it.
    const ctx = currentContext()
    if (ctx !== undefined) bindToContext(socket, ctx)
    socket.once('close', () => {
      this.res.destroyed = true
      this.res.emit('close')
    })
    return true
  }

  /**
   * Reads the status line of the first bytes the app writes, then steps aside: `write` and
   * `end` are wrapped as own properties of the socket until that first write only.
   */
  #sniffStatus(): void {
    const socket = this.#socket as Duplex & { write: Duplex['write']; end: Duplex['end'] }
    const ownWrite = Object.getOwnPropertyDescriptor(socket, 'write')
    const ownEnd = Object.getOwnPropertyDescriptor(socket, 'end')
    // eslint-disable-next-line @typescript-eslint/unbound-method -- called below with the socket as `this`
    const write = socket.write
    // eslint-disable-next-line @typescript-eslint/unbound-method -- likewise
    const end = socket.end
    const restore = (): void => {
      if (ownWrite === undefined) delete (socket as { write?: unknown }).write
      else Object.defineProperty(socket, 'write', ownWrite)
      if (ownEnd === undefined) delete (socket as { end?: unknown }).end
      else Object.defineProperty(socket, 'end', ownEnd)
    }
    const read = (chunk: unknown): void => {
      restore()
      const head = typeof chunk === 'string' ? chunk.slice(0, 12) : chunk instanceof Uint8Array ? Buffer.from(chunk.buffer, chunk.byteOffset, Math.min(12, chunk.byteLength)).toString('latin1') : ''
      const m = STATUS_LINE.exec(head)
      if (m !== null) this.#status = Number(m[1])
    }
    socket.write = function (this: Duplex, chunk: unknown, ...rest: unknown[]): boolean {
      read(chunk)
      return (write as (...a: unknown[]) => boolean).call(this, chunk, ...rest)
    } as Duplex['write']
    socket.end = function (this: Duplex, ...args: unknown[]): Duplex {
      if (args[0] != null && typeof args[0] !== 'function') read(args[0])
      return (end as (...a: unknown[]) => Duplex).apply(this, args)
    } as Duplex['end']
  }
}

/** Ends `socket` once what was written is flushed. */
function closeSoon(socket: Duplex): void {
  const s = socket as Duplex & { destroySoon?: () => void }
  if (typeof s.destroySoon === 'function') s.destroySoon()
  else socket.end(() => socket.destroy())
}
