/**
 * Connections that read into one shared buffer (`net.connect`'s and `tls.connect`'s `onread`), for
 * the connections the mesh's own HTTP/1.1 code drives (`connection.ts`).
 *
 * Why: a socket in stream mode hands each read to the Readable machinery (a buffer allocated
 * per read, `push`, `addChunk`, the `'data'` emit, `maybeReadMore`) before our parser sees
 * it. With `onread`, libuv reads into one buffer and the callback below hands a copy of the
 * bytes read straight to the connection. Measured on this machine (bench/transport.mjs, the
 * mesh arm, three interleaved pairs per line): 1.5–2 µs of user CPU less per request on
 * Node 26, ~1 µs on Node 24, the calling side's cost that limits a closed loop.
 *
 * The price: such a socket never emits `'data'`, so it cannot be handed to another reader
 * (undici's `Client` reads a socket through the stream). A request only undici's `Client`
 * serves (an upgrade, CONNECT, a FormData body, undici's rare options, or any while undici's
 * diagnostics channels are listened to) gets a connection of its own, opened in stream mode
 * (`EndpointPoolOptions.connectStreaming`). TLS sockets read the same way (`tls.connect`
 * takes `onread` too: the callback gets the decrypted bytes; `tls-connector.ts`).
 *
 * The buffer is shared by every such socket of the process: each read is copied out before
 * the callback returns (reads run one at a time on the event loop), so nothing the parser
 * keeps (header views, body chunks handed to a handler) points into it.
 */
import type { Socket } from 'node:net'
import { buildConnector } from 'undici'

/** Where a socket's reads go: the connection driving it. */
const READER = Symbol('sidecarless.reader')

type Reading = Socket & { [READER]?: ((chunk: Buffer) => void) | undefined }

/** libuv's read size for a stream socket (64 KiB): a read never needs more. */
const SHARED = Buffer.allocUnsafe(64 * 1024)

/**
 * One read of a socket opened by {@link leanConnector}. With no reader (an idle socket no
 * connection drives yet), bytes were sent unasked: HTTP/1.1 servers send nothing before a
 * request, so the socket is closed, as undici closes a connection that does.
 */
function onRead(this: Reading, nread: number, buf: Buffer): boolean {
  const reader = this[READER]
  if (reader === undefined) {
    this.destroy()
    return false
  }
  // A pooled allocation for small reads (the common case: a response head and a short body).
  const chunk = Buffer.allocUnsafe(nread)
  buf.copy(chunk, 0, 0, nread)
  reader(chunk)
  return true
}

/** `net.connect` / `tls.connect`'s `onread` option of a socket that reads into the shared buffer. */
export const SHARED_READ = Object.freeze({ buffer: SHARED, callback: onRead })

/**
 * A connector whose sockets read into the shared buffer, and `streaming`: the same
 * connections in stream mode, for undici's `Client` (`EndpointPoolOptions.connectStreaming`).
 */
export type SharedReadConnector = buildConnector.connector & { readonly streaming: buildConnector.connector }

/**
 * A connector (undici's, with its connect timeout, TCP keep-alive and no-delay) whose plain
 * TCP sockets read into the shared buffer. Only for `http:` origins (TLS: `tls-connector.ts`).
 * Its stream-mode twin is made on first use: most pools never need one.
 */
export function leanConnector(options: buildConnector.BuildOptions): SharedReadConnector {
  let streaming: buildConnector.connector | undefined
  return Object.assign(buildConnector({ ...options, onread: SHARED_READ }), {
    streaming: (opts: buildConnector.Options, callback: buildConnector.Callback) => (streaming ??= buildConnector(options))(opts, callback),
  })
}

/** Sends `socket`'s reads to `reader` (a stream-mode socket ignores it: its `'data'` events carry them). */
export function attachReader(socket: Socket, reader: (chunk: Buffer) => void): void {
  (socket as Reading)[READER] = reader
}

/** Stops sending `socket`'s reads anywhere: bytes that arrive after close it. */
export function detachReader(socket: Socket): void {
  (socket as Reading)[READER] = undefined
}
