/** Real upstream servers for tests: each listens on port 0 and records what it received. */
import http from 'node:http'
import type { AddressInfo, Socket } from 'node:net'

/** What an upstream saw of one request. */
export interface Seen {
  readonly method: string
  readonly url: string
  readonly headers: http.IncomingHttpHeaders
  /** Names and values as received, repeats kept (`headers` joins or drops them). */
  readonly rawHeaders: string[]
}

/** A running upstream. */
export interface Upstream {
  readonly name: string
  readonly port: number
  readonly address: string
  readonly seen: Seen[]
  /** Connections accepted so far. */
  connections: number
  /** Connections open now. */
  readonly openSockets: number
  close(): Promise<void>
}

export type Behaviour = (req: http.IncomingMessage, res: http.ServerResponse, name: string) => void

/** Answers `<name> <path>` with the request's Host echoed in `x-upstream-host`. */
export const echo: Behaviour = (req, res, name) => {
  res.setHeader('x-upstream', name)
  res.setHeader('x-upstream-host', req.headers.host ?? '')
  res.setHeader('x-upstream-path', req.url ?? '')
  res.end(`${name} ${req.url}`)
}

/** Starts an upstream named `name` on 127.0.0.1, port 0. */
export async function startUpstream(name: string, behaviour: Behaviour = echo): Promise<Upstream> {
  const seen: Seen[] = []
  const sockets = new Set<Socket>()
  const server = http.createServer((req, res) => {
    seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, rawHeaders: req.rawHeaders })
    req.resume()
    behaviour(req, res, name)
  })
  const up = { name, port: 0, address: '', seen, connections: 0 } as { -readonly [K in keyof Upstream]: Upstream[K] }
  server.on('connection', (s: Socket) => {
    up.connections++
    sockets.add(s)
    s.on('close', () => sockets.delete(s))
  })
  Object.defineProperty(up, 'openSockets', { get: () => sockets.size })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  up.port = (server.address() as AddressInfo).port
  up.address = `http://127.0.0.1:${up.port}`
  up.close = () =>
    new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy()
      server.close(() => resolve())
    })
  return up
}

/** A port on which nothing listens (bound, then closed). */
export async function closedPort(): Promise<number> {
  const server = http.createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as AddressInfo).port
  await new Promise<void>((resolve) => server.close(() => resolve()))
  return port
}

/** Two labelled endpoints of one cluster with v1/v2 subsets. */
export function reviewsCluster(v1: Upstream, v2: Upstream, extra: Record<string, unknown> = {}) {
  return {
    name: 'reviews',
    endpoints: [
      { address: v1.address, labels: { version: 'v1' } },
      { address: v2.address, labels: { version: 'v2' } },
    ],
    subsets: [
      { name: 'v1', labels: { version: 'v1' } },
      { name: 'v2', labels: { version: 'v2' } },
    ],
    ...extra,
  }
}
