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
 * routing) is safer stopped than running without it.
 *
 * Importing it twice (or through two paths) does the work once.
 *
 * @module sidecarless/register
 */
import './runtime-check.js'
import { processMeshState } from './process-mesh.js'
import { patchHttpServers } from './zerocode/patch-http.js'
import { describeProblem } from './zerocode/report.js'

const REGISTERED = Symbol.for('sidecarless.registered')

register()

function register(): void {
  const holder = globalThis as { [REGISTERED]?: true }
  if (holder[REGISTERED] === true) return
  holder[REGISTERED] = true

  const state = processMeshState()
  if (state.error !== undefined) {
    process.stderr.write(describeProblem('sidecarless/register: cannot start the mesh', state.error))
    if (state.environment?.onConfigError === 'continue') {
      process.stderr.write('sidecarless/register: SIDECARLESS_ON_CONFIG_ERROR=continue: the app starts WITHOUT the mesh (no routing, policies or mesh security)\n')
      return
    }
    process.stderr.write('sidecarless/register: refusing to start the app without the mesh; fix the config, or set SIDECARLESS_ON_CONFIG_ERROR=continue to start it anyway\n')
    process.exit(1)
  }
  const mesh = state.mesh
  mesh.installGlobal()
  let warned = false
  patchHttpServers((server) => {
    try {
      mesh.wrap(server)
    } catch (err) {
      // The server still works, without the inbound side; say so once rather than fail the app.
      if (!warned) process.emitWarning(`sidecarless/register: a server was not wrapped: ${(err as Error).message}`, { code: 'SIDECARLESS_REGISTER_NOT_WRAPPED' })
      warned = true
    }
  })
}
