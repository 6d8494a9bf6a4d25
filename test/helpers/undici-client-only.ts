/**
 * What the tests of requests only undici's `Client` serves share (an upgrade; any request
 * while undici's request diagnostics are listened to): an echo through an upgraded socket,
 * and the paths undici's `undici:request:create` channel reports while watched.
 */
import assert from 'node:assert/strict'
import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import type { Socket } from 'node:net'
import type { Duplex } from 'node:stream'

const REQUEST_CREATE = 'undici:request:create'

/** Watches undici's request diagnostics: `paths` of the requests it creates until `stop()` (idempotent). */
export function watchRequestPaths(): { readonly paths: string[]; stop(): void } {
  const paths: string[] = []
  const listener = (message: unknown): void => {
    paths.push((message as { request: { path: string } }).request.path)
  }
  subscribe(REQUEST_CREATE, listener)
  return { paths, stop: () => void unsubscribe(REQUEST_CREATE, listener) }
}

/** Sends `hello` through an upgraded `socket` to the echo server's upgrade, expects `HELLO` back, and closes it. */
export async function assertEchoes(socket: Duplex): Promise<void> {
  socket.write('hello')
  const echoed = await new Promise<string>((resolve) => socket.once('data', (d: Buffer) => resolve(d.toString())))
  assert.equal(echoed, 'HELLO')
  socket.destroy()
}

/** The server's side of an upgrade to protocol `echo`: 101, then every chunk back in upper case. */
export function serveEcho(socket: Socket): void {
  socket.write('HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: echo\r\n\r\n')
  socket.on('data', (d: Buffer) => socket.write(d.toString().toUpperCase()))
  // node:http's sockets are half-open: end ours when the client ends its side.
  socket.on('end', () => socket.end())
}
