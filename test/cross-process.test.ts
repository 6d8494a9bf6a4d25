/**
 * Two processes: this test process runs a meshed frontend and a plain leaf upstream; a child
 * process (test/fixtures/services/meshed-service.mjs, importing the built dist/) runs a
 * meshed service in between. The trace and the request id must cross both hops and both
 * processes; killing the child mid-request must give the caller a 503, not a hang.
 *
 * Run from build/test after `npm run build` (the fixture imports repo-root/dist).
 */
import assert from 'node:assert/strict'
import { fork, type ChildProcess } from 'node:child_process'
import { EventEmitter, once } from 'node:events'
import type { AddressInfo } from 'node:net'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { after, before, describe, test } from 'node:test'
import { request } from 'undici'
import { createMesh, RESPONSE_FLAGS_HEADER, type FinishedSpan, type Mesh, type RequestContext } from '../src/index.js'
import { startUpstream, type Upstream } from './helpers/upstream.js'

// build/test/cross-process.test.js → repo root → test/fixtures/services (fixtures are not compiled).
const SERVICE = fileURLToPath(new URL('../../test/fixtures/services/meshed-service.mjs', import.meta.url))
const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-(0[0-3])$/
const B3_SINGLE = /^([0-9a-f]{32})-([0-9a-f]{16})-([01])(?:-([0-9a-f]{16}))?$/
const START_TIMEOUT = 10_000
const WAIT_TIMEOUT = 5_000

/** One JSON line the child wrote on stdout. */
interface ChildEvent {
  readonly event: string
  readonly port?: number
  readonly pid?: number
  readonly path?: string
  readonly context?: RequestContext
}

/** What the child answers for a non-hanging request. */
interface ChildAnswer {
  readonly service: string
  readonly pid: number
  readonly context: RequestContext
  readonly upstream: { status: number; body: string } | { error: string; code?: string }
  readonly spans: FinishedSpan[]
}

/** A running child service. */
interface Service {
  readonly proc: ChildProcess
  readonly port: number
  readonly address: string
  readonly events: ChildEvent[]
  stderr(): string
  /** Resolves with the first event (seen or to come) matching `pred`; rejects on timeout or exit. */
  waitFor(what: string, pred: (e: ChildEvent) => boolean, timeoutMs?: number): Promise<ChildEvent>
}

const children = new Set<ChildProcess>()
// Last resort if the test process exits without running its hooks: never leave a child behind.
process.on('exit', () => {
  for (const c of children) c.kill('SIGKILL')
})

function alive(proc: ChildProcess): boolean {
  return proc.exitCode === null && proc.signalCode === null
}

/** Kills a child (SIGKILL) and waits, bounded, until it has exited. */
async function stopChild(proc: ChildProcess): Promise<void> {
  if (alive(proc)) {
    const exited = once(proc, 'exit')
    proc.kill('SIGKILL')
    await withTimeout(exited, WAIT_TIMEOUT, `child ${proc.pid} to exit`)
  }
  children.delete(proc)
}

after(async () => {
  await Promise.all([...children].map(stopChild))
})

/** `promise`, or a rejection after `ms` naming `what`. */
async function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms)
  })
  try {
    return await Promise.race([promise, timeout])
  } finally {
    clearTimeout(timer)
  }
}

/** Starts the meshed child service with `config` and waits (bounded) for its port. */
async function startService(service: string, config: object): Promise<Service> {
  const env = { ...process.env }
  delete env['NODE_TEST_CONTEXT']
  const proc = fork(SERVICE, [JSON.stringify({ service, config })], {
    execPath: process.execPath,
    execArgv: [],
    env,
    silent: true, // stdout/stderr piped to us; the IPC channel tells the child when we are gone
  })
  children.add(proc)
  const events: ChildEvent[] = []
  const bus = new EventEmitter()
  let stderr = ''
  proc.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk
  })
  createInterface({ input: proc.stdout! }).on('line', (line) => {
    let e: ChildEvent
    try {
      e = JSON.parse(line) as ChildEvent
    } catch {
      stderr += `[stdout, not JSON] ${line}\n`
      return
    }
    events.push(e)
    bus.emit('event', e)
  })
  proc.on('exit', () => bus.emit('exit'))

  const waitFor = (what: string, pred: (e: ChildEvent) => boolean, timeoutMs = WAIT_TIMEOUT): Promise<ChildEvent> => {
    const found = events.find(pred)
    if (found !== undefined) return Promise.resolve(found)
    return new Promise<ChildEvent>((resolve, reject) => {
      const cleanup = (): void => {
        clearTimeout(timer)
        bus.off('event', onEvent)
        bus.off('exit', onExit)
      }
      const onEvent = (e: ChildEvent): void => {
        if (!pred(e)) return
        cleanup()
        resolve(e)
      }
      const onExit = (): void => {
        cleanup()
        reject(new Error(`child ${service} exited (${proc.exitCode ?? proc.signalCode}) while waiting for ${what}; stderr:\n${stderr}`))
      }
      const timer = setTimeout(() => {
        cleanup()
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what} from child ${service}; stderr:\n${stderr}`))
      }, timeoutMs)
      bus.on('event', onEvent)
      bus.on('exit', onExit)
      if (!alive(proc)) onExit()
    })
  }

  try {
    const listening = await waitFor('its port', (e) => e.event === 'listening', START_TIMEOUT)
    assert.equal(typeof listening.port, 'number', JSON.stringify(listening))
    assert.equal(listening.pid, proc.pid)
    const port = listening.port!
    return { proc, port, address: `http://127.0.0.1:${port}`, events, stderr: () => stderr, waitFor }
  } catch (err) {
    await stopChild(proc)
    throw err
  }
}

/** The child's config: its virtual host `upstream` is the leaf server in this process. */
function childConfig(leaf: Upstream, tracing: object = {}) {
  return {
    tracing,
    clusters: [{ name: 'upstream', endpoints: [{ address: leaf.address }] }],
    virtualHosts: [{ name: 'upstream', domains: ['upstream'], routes: [{ match: { prefix: '/' }, route: { cluster: 'upstream' } }] }],
  }
}

/** This process's mesh: virtual host `child` → cluster at the child's port. */
function parentMesh(child: Service, tracing: object = {}): Mesh {
  return createMesh({
    service: 'frontend',
    config: {
      tracing: { sampling: 100, ...tracing },
      clusters: [{ name: 'child', endpoints: [{ address: child.address }] }],
      virtualHosts: [{ name: 'child', domains: ['child'], routes: [{ match: { prefix: '/' }, route: { cluster: 'child' } }] }],
    },
  })
}

/** A meshed frontend in this process that calls the child through the mesh. */
async function startFrontend(mesh: Mesh): Promise<{ url: string; contexts: RequestContext[]; close(): Promise<void> }> {
  const contexts: RequestContext[] = []
  const server = mesh.createServer(async (req, res) => {
    contexts.push(mesh.context()!)
    const r = await mesh.fetch(`http://child${req.url ?? '/'}`)
    res.statusCode = r.status
    res.setHeader('content-type', r.headers.get('content-type') ?? 'text/plain')
    res.end(await r.text())
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    contexts,
    close: async () => {
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}

/** GET through undici with a bounded wait for the whole answer. */
async function get(url: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  return withTimeout((async () => {
    const res = await request(url, { headers })
    return { status: res.statusCode, body: await res.body.text() }
  })(), WAIT_TIMEOUT, `GET ${url}`)
}

function spanOf(spans: readonly FinishedSpan[], kind: FinishedSpan['kind'], traceId: string): FinishedSpan {
  const found = spans.filter((s) => s.kind === kind && s.traceId === traceId)
  assert.equal(found.length, 1, `one ${kind} span in trace ${traceId}: ${JSON.stringify(spans)}`)
  return found[0]!
}

let leaf: Upstream
before(async () => {
  leaf = await startUpstream('leaf')
})
after(async () => {
  await leaf?.close()
})

describe('trace continuity across processes', { timeout: 60_000 }, () => {
  test('W3C: test → frontend (this process) → child (other process) → leaf (this process)', async (t) => {
    const child = await startService('middle', childConfig(leaf))
    t.after(() => stopChild(child.proc))
    const mesh = parentMesh(child)
    const frontend = await startFrontend(mesh)
    t.after(async () => {
      await frontend.close()
      await mesh.close()
    })

    const cases = [
      { name: 'caller sent a trace and a request id', headers: { traceparent: `00-${'5e'.repeat(16)}-${'a1'.repeat(8)}-01`, 'x-request-id': 'xproc-42' } },
      { name: 'caller sent nothing: the frontend starts both', headers: {} as Record<string, string> },
    ]
    for (const c of cases) {
      const leafBefore = leaf.seen.length
      const res = await get(`${frontend.url}/chain`, c.headers)
      assert.equal(res.status, 200, `${c.name}: ${res.body}\nchild stderr: ${child.stderr()}`)
      const answer = JSON.parse(res.body) as ChildAnswer
      const front = frontend.contexts.at(-1)!

      // Hop 0: the caller → the frontend.
      if (c.headers.traceparent !== undefined) {
        assert.equal(front.traceId, '5e'.repeat(16), c.name)
        assert.equal(front.parentSpanId, 'a1'.repeat(8), c.name)
        assert.equal(front.requestId, 'xproc-42', c.name)
      } else {
        assert.equal(front.parentSpanId, undefined, c.name)
        assert.match(front.requestId, /^[0-9a-f-]{36}$/, c.name)
      }
      const traceId = front.traceId
      assert.equal(front.sampled, true)

      // Hop 1: the frontend's client span → the child's server span, in another process.
      assert.notEqual(answer.pid, process.pid, 'the middle service runs in another process')
      assert.equal(answer.pid, child.proc.pid)
      const frontClient = spanOf(mesh.tracing.recent(), 'client', traceId)
      assert.equal(frontClient.parentSpanId, front.spanId, `${c.name}: the frontend's client span is a child of its server span`)
      assert.equal(answer.context.traceId, traceId, `${c.name}: the child continues the trace`)
      assert.equal(answer.context.parentSpanId, frontClient.spanId, `${c.name}: the child's server span is a child of the frontend's client span`)
      assert.equal(answer.context.sampled, true, c.name)
      assert.equal(answer.context.requestId, front.requestId, `${c.name}: the request id crosses into the child`)

      // Hop 2: the child's client span → the leaf, back in this process.
      assert.deepEqual(answer.upstream, { status: 200, body: 'leaf /chain' }, c.name)
      const childClient = spanOf(answer.spans, 'client', traceId)
      const childServerId = answer.context.spanId
      assert.equal(childClient.parentSpanId, childServerId, `${c.name}: the child's client span is a child of its server span`)
      const seen = leaf.seen.slice(leafBefore)
      assert.equal(seen.length, 1, c.name)
      const m = TRACEPARENT.exec(String(seen[0]!.headers.traceparent))
      assert.ok(m, `${c.name}: traceparent at the leaf: ${String(seen[0]!.headers.traceparent)}`)
      assert.equal(m[1], traceId, `${c.name}: same trace id at the leaf`)
      assert.equal(m[2], childClient.spanId, `${c.name}: the leaf's parent is the child's client span`)
      assert.equal(Number.parseInt(m[3]!, 16) & 1, 1, `${c.name}: still sampled`)
      assert.equal(Number.parseInt(m[3]!, 16) & 2, c.headers.traceparent === undefined ? 2 : 0, `${c.name}: the random-trace-id flag is set on a trace the frontend started, and kept as received (unset) otherwise`)
      assert.equal(seen[0]!.headers['x-request-id'], front.requestId, `${c.name}: the request id reaches the leaf`)
      assert.equal(seen[0]!.headers.b3, undefined, 'no B3 unless configured')

      const ids = [c.headers.traceparent === undefined ? undefined : 'a1'.repeat(8), front.spanId, frontClient.spanId, childServerId, childClient.spanId].filter((x) => x !== undefined)
      assert.equal(new Set(ids).size, ids.length, `${c.name}: every hop has its own span id: ${ids.join(' ')}`)
    }
  })

  test('B3: the child injects b3 (single header) towards the leaf', async (t) => {
    const child = await startService('middle-b3', childConfig(leaf, { inject: ['b3'] }))
    t.after(() => stopChild(child.proc))
    const mesh = parentMesh(child)
    t.after(() => mesh.close())

    const leafBefore = leaf.seen.length
    const res = await withTimeout(mesh.fetch('http://child/b3', {
      headers: { 'x-request-id': 'xproc-b3' },
    }), WAIT_TIMEOUT, 'mesh.fetch to the child')
    assert.equal(res.status, 200, child.stderr())
    const answer = await res.json() as ChildAnswer
    // Outside any request the parent's mesh starts the trace with its client span.
    const parentClient = mesh.tracing.recent().find((s) => s.kind === 'client' && s.traceId === answer.context.traceId)
    assert.ok(parentClient, `the parent's client span: ${JSON.stringify(mesh.tracing.recent())}`)
    assert.equal(answer.context.parentSpanId, parentClient.spanId)
    assert.equal(answer.context.requestId, 'xproc-b3')

    const seen = leaf.seen.slice(leafBefore)
    assert.equal(seen.length, 1)
    const h = seen[0]!.headers
    assert.equal(h.traceparent, undefined, 'only the configured format is written')
    const m = B3_SINGLE.exec(String(h.b3))
    assert.ok(m, `b3 at the leaf: ${String(h.b3)}`)
    const childClient = spanOf(answer.spans, 'client', answer.context.traceId)
    assert.equal(m[1], answer.context.traceId, 'B3 trace id')
    assert.equal(m[2], childClient.spanId, 'B3 span id: the child\'s client span')
    assert.equal(m[3], '1', 'B3 sampled')
    assert.equal(m[4], answer.context.spanId, 'B3 parent span id: the child\'s server span')
    assert.equal(h['x-request-id'], 'xproc-b3')
  })

  test('B3 multi-header from this process is continued by the child', async (t) => {
    const child = await startService('middle-b3multi', childConfig(leaf))
    t.after(() => stopChild(child.proc))
    const mesh = parentMesh(child, { inject: ['b3multi'] })
    const frontend = await startFrontend(mesh)
    t.after(async () => {
      await frontend.close()
      await mesh.close()
    })

    const leafBefore = leaf.seen.length
    const res = await get(`${frontend.url}/b3multi`, { 'x-request-id': 'xproc-b3multi' })
    assert.equal(res.status, 200, child.stderr())
    const answer = JSON.parse(res.body) as ChildAnswer
    const front = frontend.contexts.at(-1)!
    const frontClient = spanOf(mesh.tracing.recent(), 'client', front.traceId)
    assert.equal(answer.context.traceId, front.traceId)
    assert.equal(answer.context.parentSpanId, frontClient.spanId)
    assert.equal(answer.context.sampled, true)
    assert.equal(answer.context.requestId, 'xproc-b3multi')
    const h = leaf.seen[leafBefore]!.headers
    const childClient = spanOf(answer.spans, 'client', front.traceId)
    assert.equal(TRACEPARENT.exec(String(h.traceparent))?.[2], childClient.spanId)
    assert.equal(TRACEPARENT.exec(String(h.traceparent))?.[1], front.traceId)
    assert.equal(h['x-request-id'], 'xproc-b3multi')
  })
})

describe('the child dies', { timeout: 60_000 }, () => {
  test('killing the child mid-request gives the parent a 503, not a hang or a rejection', async (t) => {
    const child = await startService('doomed', childConfig(leaf))
    t.after(() => stopChild(child.proc))
    const mesh = parentMesh(child)
    t.after(() => mesh.close())

    // Settle the outcome as soon as the fetch does, so a rejection is never unhandled.
    const pending = mesh.fetch('http://child/hang').then(
      async (r) => ({ ok: true as const, status: r.status, flags: r.headers.get(RESPONSE_FLAGS_HEADER), body: await r.text() }),
      (err: unknown) => ({ ok: false as const, err }),
    )
    const received = await child.waitFor('the request to reach the child', (e) => e.event === 'request' && e.path === '/hang')
    assert.match(received.context?.traceId ?? '', /^[0-9a-f]{32}$/)
    const exited = once(child.proc, 'exit')
    assert.equal(child.proc.kill('SIGKILL'), true)
    await withTimeout(exited, WAIT_TIMEOUT, 'the child to die')

    const outcome = await withTimeout(pending, WAIT_TIMEOUT, 'the parent\'s answer after the child died')
    assert.ok(outcome.ok, `mesh.fetch rejected instead of answering 503: ${String(outcome.ok ? '' : (outcome.err as Error)?.stack ?? outcome.err)}`)
    assert.equal(outcome.status, 503, outcome.body)
    assert.equal(outcome.flags, 'UC', 'upstream connection termination')
    assert.match(outcome.body, /reset before headers/)
    const client = mesh.tracing.recent().find((s) => s.kind === 'client' && s.traceId === received.context?.traceId)
    assert.equal(client?.status, 'error', 'the client span records the failure')

    // The child is gone for good: the next request is refused, again as a 503.
    const next = await withTimeout(mesh.fetch('http://child/after'), WAIT_TIMEOUT, 'a request to the dead child')
    assert.equal(next.status, 503)
    assert.equal(next.headers.get(RESPONSE_FLAGS_HEADER), 'UF', await next.text())
  })
})
