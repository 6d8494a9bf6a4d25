/**
 * A small meshed topology for metrics tests: `productpage` (v1) calls the `reviews`
 * cluster, whose two endpoints are meshed servers of their own (reviews v1 and v2, each
 * with its own mesh and labels). Each mesh can serve its exposition on a metrics port.
 */
import { once } from 'node:events'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { createMesh, type Mesh } from '../../src/index.js'

export interface Workload {
  readonly mesh: Mesh
  readonly url: string
  close(): Promise<void>
}

async function listen(server: http.Server): Promise<string> {
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`
}

async function closeServer(server: http.Server): Promise<void> {
  server.closeAllConnections()
  await new Promise<void>((resolve) => server.close(() => resolve()))
}

/** A reviews workload: answers `reviews <version>`; `/fail` answers 503. */
export async function startReviews(version: string, config: object = {}): Promise<Workload & { headersSeen: http.IncomingHttpHeaders[] }> {
  const mesh = createMesh({ service: 'reviews', labels: { app: 'reviews', version, namespace: 'default' }, config })
  const headersSeen: http.IncomingHttpHeaders[] = []
  const server = mesh.createServer((req, res) => {
    headersSeen.push(req.headers)
    if (req.url === '/fail') res.writeHead(503).end('down')
    else res.end(`reviews ${version}`)
  })
  const url = await listen(server)
  return { mesh, url, headersSeen, close: async () => { await closeServer(server); await mesh.close() } }
}

/** productpage v1, calling reviews (endpoints labelled with their versions) through its mesh. */
export async function startProductpage(reviews: readonly { url: string; version: string }[], extra: object = {}): Promise<Workload> {
  const mesh = createMesh({
    service: 'productpage',
    labels: { app: 'productpage', version: 'v1', namespace: 'default' },
    config: {
      clusters: [{ name: 'reviews', endpoints: reviews.map((r) => ({ address: r.url, labels: { version: r.version } })) }],
      virtualHosts: [{ name: 'reviews', domains: ['reviews'], routes: [{ match: { prefix: '/' }, route: { cluster: 'reviews' } }] }],
      ...extra,
    },
  })
  const server = mesh.createServer(async (req, res) => {
    const r = await mesh.fetch(`http://reviews${req.url === '/fail' ? '/fail' : '/reviews/1'}`)
    res.writeHead(r.status).end(await r.text())
  })
  const url = await listen(server)
  return { mesh, url, close: async () => { await closeServer(server); await mesh.close() } }
}

/** Serves `mesh.metrics.prometheus()` on its own port, as a scrape target. */
export async function serveMetrics(mesh: Mesh): Promise<{ port: number; close(): Promise<void> }> {
  const server = http.createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' }).end(mesh.metrics.prometheus())
  })
  const url = await listen(server)
  return { port: Number(new URL(url).port), close: () => closeServer(server) }
}
