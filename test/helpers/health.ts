/** Helpers for outlier-detection and health-check tests: controllable upstreams, event waits. */
import type http from 'node:http'
import type { Mesh } from '../../src/index.js'
import type { EndpointHealthEvent, OutlierEjectionEvent } from '../../src/index.js'
import { startUpstream, type Upstream } from './upstream.js'

/** How a controllable upstream answers: with a status, not at all (hangs), or 500 and 200 in turn. */
export type Mode = number | 'hang' | 'alternate'

/** An upstream whose answer (traffic and /healthz alike, or apart) can be changed at any time. */
export interface Controlled {
  readonly up: Upstream
  /** Status of ordinary requests. */
  traffic: Mode
  /** Status of `/healthz`. */
  health: Mode
  /** `/healthz` requests received. */
  checks: number
  /** The last `/healthz` request's headers. */
  lastCheck: http.IncomingHttpHeaders | undefined
  readonly endpoint: string
}

/** Starts a controllable upstream; both modes start at 200. */
export async function startControlled(name: string): Promise<Controlled> {
  const c = { traffic: 200, health: 200, checks: 0, lastCheck: undefined } as { -readonly [K in keyof Controlled]: Controlled[K] }
  let turn = 0
  c.up = await startUpstream(name, (req, res) => {
    const isCheck = req.url === '/healthz'
    if (isCheck) {
      c.checks++
      c.lastCheck = req.headers
    }
    const mode = isCheck ? c.health : c.traffic
    if (mode === 'hang') return
    res.statusCode = mode === 'alternate' ? (turn++ % 2 === 0 ? 500 : 200) : mode
    res.setHeader('x-upstream', name)
    res.end(`${name} ${mode}`)
  })
  c.endpoint = `127.0.0.1:${c.up.port}`
  return c
}

/** Every health event of a mesh, in order. */
export interface Watched {
  readonly ejections: OutlierEjectionEvent[]
  readonly health: EndpointHealthEvent[]
}

/** Records every `outlierEjection` and `endpointHealth` event of `mesh`. */
export function watch(mesh: Mesh): Watched {
  const w: Watched = { ejections: [], health: [] }
  mesh.on('outlierEjection', (e) => w.ejections.push(e))
  mesh.on('endpointHealth', (e) => w.health.push(e))
  return w
}

/** Polls `check` until it returns a value other than undefined/false, failing after `ms`. */
export async function until<T>(what: string, check: () => T | undefined | false, ms = 3_000): Promise<T> {
  const deadline = Date.now() + ms
  for (;;) {
    const v = check()
    if (v !== undefined && v !== false) return v
    if (Date.now() > deadline) throw new Error(`timed out after ${ms}ms waiting for ${what}`)
    await sleep(5)
  }
}

/** Sends `n` requests one after another; returns the endpoint and status of each. */
export async function send(mesh: Mesh, url: string, n: number): Promise<{ endpoint: string | null; status: number }[]> {
  const out: { endpoint: string | null; status: number }[] = []
  for (let i = 0; i < n; i++) {
    const res = await mesh.fetch(url)
    await res.arrayBuffer()
    out.push({ endpoint: res.headers.get('x-sidecarless-endpoint'), status: res.status })
  }
  return out
}

/** Resolves after `ms`. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}
