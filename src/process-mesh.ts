/**
 * The one mesh of a process, created from the `SIDECARLESS_*` environment and shared by
 * `sidecarless/register` and `sidecarless/fetch`. It lives on `globalThis` under a
 * registry symbol, so two copies of this module (two paths to the package, or both
 * entries) still find the same mesh.
 *
 * Once created it watches its config file (a bad new config is rejected, reported on
 * stderr, and the old one stays), and closes when the process ends: on SIGINT/SIGTERM when
 * the app has no handler of its own for them (then the signal is raised again, so the
 * process ends as it would have), and when the event loop empties.
 *
 * @module
 */
import { createMesh, type Mesh } from './mesh.js'
import { isMeshError, MeshError } from './errors.js'
import { watchConfigFile } from './config/watch.js'
import { CONFIG_HELP, readEnvironment, type ProcessEnvironment } from './zerocode/environment.js'
import { describeProblem } from './zerocode/report.js'

/** The process mesh, or why there is none. */
export type ProcessMeshState =
  | { readonly mesh: Mesh; readonly error?: undefined; readonly environment: ProcessEnvironment }
  | { readonly mesh?: undefined; readonly error: Error; readonly environment: ProcessEnvironment | undefined }

const STATE = Symbol.for('sidecarless.processMesh')
type Holder = { [STATE]?: ProcessMeshState }

/** How long a signal waits for the mesh to drain before the process ends anyway. */
const CLOSE_ON_SIGNAL_MS = 2000

/**
 * The process mesh, created on first call from the environment. Never throws: a missing
 * or bad environment or config is returned as `error` (the same on every call).
 */
export function processMeshState(): ProcessMeshState {
  const holder = globalThis as Holder
  holder[STATE] ??= start()
  return holder[STATE]
}

/** The process mesh; throws the reason when there is none (a coded {@link MeshError}). */
export function processMesh(): Mesh {
  const state = processMeshState()
  if (state.error !== undefined) throw state.error
  return state.mesh
}

function start(): ProcessMeshState {
  let environment: ProcessEnvironment
  try {
    environment = readEnvironment()
  } catch (err) {
    return { error: err as Error, environment: undefined }
  }
  const path = environment.config
  if (path === undefined && !environment.xds) {
    return { error: new MeshError('SIDECARLESS_ERR_ENVIRONMENT', `SIDECARLESS_CONFIG is not set: ${CONFIG_HELP}`), environment }
  }
  let mesh: Mesh
  try {
    mesh = createMesh({
      ...(environment.service === undefined ? {} : { service: environment.service }),
      labels: environment.labels,
      ...(path === undefined ? {} : { config: path }),
      // The bootstrap as gRPC reads it: GRPC_XDS_BOOTSTRAP, else GRPC_XDS_BOOTSTRAP_CONFIG.
      ...(environment.xds ? { xds: true } : {}),
    })
  } catch (err) {
    return { error: err as Error, environment }
  }
  if (path !== undefined) watch(mesh, path)
  closeOnExit(mesh)
  return { mesh, environment }
}

function watch(mesh: Mesh, path: string): void {
  const watcher = watchConfigFile(path, () => {
    mesh.update(path).then(
      (applied) => process.stderr.write(`sidecarless: config ${path} applied (version ${applied.version})\n`),
      (err: unknown) => {
        // Someone closed the mesh: nothing left to update.
        if (isMeshError(err, 'SIDECARLESS_ERR_CLOSED')) watcher.close()
        else process.stderr.write(describeProblem(`sidecarless: config ${path} rejected; the previous config stays in force`, err))
      },
    )
  }, {
    onError: (err) => process.stderr.write(`sidecarless: cannot read config ${path}: ${err.message}; the previous config stays in force\n`),
  })
}

function closeOnExit(mesh: Mesh): void {
  const onSignal = (signal: NodeJS.Signals): void => {
    // The app handles the signal itself and decides when to exit; the mesh closes when
    // the event loop empties (below). Its handler was not swallowed: it runs after this.
    if (process.listenerCount(signal) > 1) return
    // Alone: drain the mesh (bounded), then end the process as the signal would have.
    process.removeListener('SIGINT', onSignal)
    process.removeListener('SIGTERM', onSignal)
    const timer = setTimeout(() => process.kill(process.pid, signal), CLOSE_ON_SIGNAL_MS)
    void mesh.close().catch(() => undefined).finally(() => {
      clearTimeout(timer)
      process.kill(process.pid, signal)
    })
  }
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)
  process.once('beforeExit', () => {
    process.removeListener('SIGINT', onSignal)
    process.removeListener('SIGTERM', onSignal)
    void mesh.close().catch(() => undefined)
  })
}
