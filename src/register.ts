/**
 * Zero-code registration: `node --import sidecarless/register app.js`.
 *
 * Reads the `SIDECARLESS_*` environment, creates the process mesh, and, without any change
 * to the app: wraps every node:http/https server the app creates (plain, Express, Koa,
 * Fastify) in the mesh's inbound filter chain, routes the global `fetch` and undici's
 * global dispatcher through the mesh, watches the config file, and closes the mesh when
 * the process ends.
 *
 * A config that cannot be used at start (unset, unreadable, invalid) is printed to stderr
 * with every problem by path and code; then the process exits with code 1, unless
 * `SIDECARLESS_ON_CONFIG_ERROR=continue`, which starts the app without the mesh. Refusing
 * is the default because a workload that expects the mesh's policy (mTLS, authorization,
 * routing) is safer stopped than running without it. With `continue`, the file is watched:
 * once it is valid the mesh starts, takes the global `fetch`, and every server the app
 * created meanwhile runs through it from its next request (they were wrapped from the
 * start, passing requests straight to the app until then).
 *
 * An app that creates its own mesh and calls `mesh.wrap(server)` keeps that server: the
 * app's explicit wrap takes it over from the register hook (whose mesh keeps the global
 * `fetch`). Servers made by an app mesh's `createServer()` are never the hook's.
 *
 * With `admin` in the config, the admin endpoint's address is printed on stderr
 * (`sidecarless: admin on http://127.0.0.1:9901`).
 *
 * Importing it twice (or through two paths) does the work once.
 *
 * @module sidecarless/register
 */
import './runtime-check.js'
import type http from 'node:http'
import type https from 'node:https'
import { wrapServer } from './inbound/server.js'
import type { Mesh } from './mesh.js'
import { processMeshState, whenProcessMesh } from './process-mesh.js'
import { patchHttpServers } from './zerocode/patch-http.js'
import { describeProblem } from './zerocode/report.js'

const REGISTERED = Symbol.for('sidecarless.registered')

type AnyServer = http.Server | https.Server

register()

function register(): void {
  const holder = globalThis as { [REGISTERED]?: true }
  if (holder[REGISTERED] === true) return
  holder[REGISTERED] = true

  const state = processMeshState()
  if (state.error !== undefined) {
    process.stderr.write(describeProblem('sidecarless/register: cannot start the mesh', state.error))
    if (state.environment?.onConfigError !== 'continue') {
      process.stderr.write('sidecarless/register: refusing to start the app without the mesh; fix the config, or set SIDECARLESS_ON_CONFIG_ERROR=continue to start it anyway\n')
      process.exit(1)
    }
    const watched = state.environment.config === undefined ? '' : `; ${state.environment.config} is watched, and the mesh starts once it is valid`
    process.stderr.write(`sidecarless/register: SIDECARLESS_ON_CONFIG_ERROR=continue: the app starts WITHOUT the mesh (no routing, policies or mesh security)${watched}\n`)
  }

  let mesh: Mesh | undefined
  /** Servers created while there was no mesh, wrapped to pass requests through until there is. */
  const waiting = new Set<WeakRef<AnyServer>>()
  let warned = false
  const wrap = (server: AnyServer): void => {
    try {
      if (mesh !== undefined) mesh.wrapImplicitly(server)
      else {
        wrapServer(server, null, null, 'implicit')
        if (waiting.size >= 64) for (const ref of waiting) if (ref.deref() === undefined) waiting.delete(ref)
        waiting.add(new WeakRef(server))
      }
    } catch (err) {
      // The server still works, without the inbound side; say so once rather than fail the app.
      if (!warned) process.emitWarning(`sidecarless/register: a server was not wrapped: ${(err as Error).message}`, { code: 'SIDECARLESS_REGISTER_NOT_WRAPPED' })
      warned = true
    }
  }
  patchHttpServers(wrap)
  whenProcessMesh((started) => {
    mesh = started
    started.installGlobal()
    for (const ref of waiting) {
      const server = ref.deref()
      if (server !== undefined) wrap(server)
    }
    waiting.clear()
    reportAdmin(started)
  })
}

/** Says where the admin endpoint listens (its failure is already a warning). */
function reportAdmin(mesh: Mesh): void {
  mesh.adminAddress().then(
    (address) => {
      if (address !== undefined) process.stderr.write(`sidecarless: admin on http://${address}\n`)
    },
    () => undefined,
  )
}
