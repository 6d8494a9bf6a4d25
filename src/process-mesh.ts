/**
 * The one mesh of a process, created from the `SIDECARLESS_*` environment and shared by
 * `sidecarless/register` and `sidecarless/fetch`. It lives on `globalThis` under a
 * registry symbol, so two copies of this module (two paths to the package, or both
 * entries) still find the same mesh.
 *
 * Once created it watches its config file (a bad new config is rejected, reported on
 * stderr, and the old one stays). When the config could not be used at start (unreadable,
 * invalid, or naming credentials that cannot be loaded), the file is watched all the same,
 * and each change retries: the mesh starts as soon as it can, and {@link whenProcessMesh}
 * callers then get it.
 *
 * On SIGINT/SIGTERM, when the app has no handler of its own for them, every server the
 * process wrapped drains (`drain.delay`, `drain.timeout`), the mesh closes, and the signal
 * is raised again, so the process ends as it would have. An app with its own handler
 * decides when to exit: the mesh only turns not ready (`/ready` answers 503), and closes
 * when the event loop empties.
 *
 * @module
 */
import { createMesh, type Mesh } from './mesh.js'
import { defaults } from './config/defaults.js'
import { parseDuration } from './config/duration.js'
import { watchConfigFile, type ConfigWatch } from './config/watch.js'
import { isMeshError, MeshError } from './errors.js'
import { processServers, type DrainTimes } from './inbound/server.js'
import { CONFIG_HELP, readEnvironment, type ProcessEnvironment } from './zerocode/environment.js'
import { describeProblem } from './zerocode/report.js'

/** The process mesh, or why there is none (yet: see {@link whenProcessMesh}). */
export type ProcessMeshState =
  | { readonly mesh: Mesh; readonly error?: undefined; readonly environment: ProcessEnvironment }
  | { readonly mesh?: undefined; readonly error: Error; readonly environment: ProcessEnvironment | undefined }

const STATE = Symbol.for('sidecarless.processMesh')
const WAITERS = Symbol.for('sidecarless.processMeshWaiters')
type Holder = { [STATE]?: ProcessMeshState; [WAITERS]?: Set<(mesh: Mesh) => void> }

/**
 * Beyond the drain itself, how long a signal waits for the mesh to close (pools, the span
 * flush, bounded by its export timeout) before the process ends anyway.
 */
const CLOSE_MARGIN_MS = defaults.traceExportTimeoutMs + 2_000

/**
 * The process mesh, created on first call from the environment. Never throws: a missing
 * or bad environment or config is returned as `error`; once a bad config file is fixed,
 * later calls return the mesh.
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

/** Calls `use` with the process mesh: now if it runs, else when it starts (a fixed config file). */
export function whenProcessMesh(use: (mesh: Mesh) => void): void {
  const state = processMeshState()
  if (state.mesh !== undefined) {
    use(state.mesh)
    return
  }
  const holder = globalThis as Holder
  ;(holder[WAITERS] ??= new Set()).add(use)
}

function start(): ProcessMeshState {
  let environment: ProcessEnvironment
  try {
    environment = readEnvironment()
  } catch (err) {
    return { error: err as Error, environment: undefined }
  }
  const path = environment.config
  if (path === undefined) {
    return { error: new MeshError('SIDECARLESS_ERR_ENVIRONMENT', `SIDECARLESS_CONFIG is not set: ${CONFIG_HELP}`), environment }
  }
  drainOnSignals(environment)
  try {
    const mesh = create(environment, path)
    watch(mesh, path)
    return { mesh, environment }
  } catch (err) {
    // Unreadable, invalid, or naming credentials that cannot be loaded yet: a change of the
    // file retries.
    startWhenFixed(environment, path)
    return { error: err as Error, environment }
  }
}

function create(environment: ProcessEnvironment, path: string): Mesh {
  return createMesh({
    ...(environment.service === undefined ? {} : { service: environment.service }),
    labels: environment.labels,
    config: path,
    ...(environment.drain === undefined ? {} : { drain: environment.drain }),
  })
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

/**
 * The config could not be used at start: watch the file and start the mesh once it is
 * valid, then hand it to whoever waits ({@link whenProcessMesh}).
 */
function startWhenFixed(environment: ProcessEnvironment, path: string): void {
  const watcher: ConfigWatch = watchConfigFile(path, () => {
    const holder = globalThis as Holder
    if (holder[STATE]?.mesh !== undefined) {
      watcher.close()
      return
    }
    let mesh: Mesh
    try {
      mesh = create(environment, path)
    } catch (err) {
      process.stderr.write(describeProblem(`sidecarless: config ${path} still cannot be used; the app runs without the mesh`, err))
      return
    }
    watcher.close()
    holder[STATE] = { mesh, environment }
    watch(mesh, path)
    process.stderr.write(`sidecarless: config ${path} applied (version ${mesh.version}); the mesh started\n`)
    const waiters = holder[WAITERS]
    holder[WAITERS] = undefined
    for (const use of waiters ?? []) use(mesh)
  }, {
    // Still missing or mid-replacement: the next change retries.
    onError: () => undefined,
  })
}

/** The drain of a signal: the mesh's (its option, else its config), else the environment's, else the defaults. */
function drainTimes(environment: ProcessEnvironment, mesh: Mesh | undefined): DrainTimes {
  if (mesh !== undefined) return mesh.drainTimes()
  return {
    timeoutMs: parseDuration(environment.drain?.timeout) ?? defaults.drainTimeoutMs,
    delayMs: parseDuration(environment.drain?.delay) ?? defaults.drainDelayMs,
  }
}

function drainOnSignals(environment: ProcessEnvironment): void {
  const current = (): Mesh | undefined => (globalThis as Holder)[STATE]?.mesh
  const onSignal = (signal: NodeJS.Signals): void => {
    const mesh = current()
    // The app handles the signal itself and decides when to exit; the mesh closes when
    // the event loop empties (below). Its handler was not swallowed: it runs after this.
    // Kubernetes must stop sending traffic all the same: the mesh turns not ready.
    if (process.listenerCount(signal) > 1) {
      mesh?.markDraining()
      return
    }
    // Alone: drain every wrapped server (bounded), close the mesh, then end the process as
    // the signal would have. A second signal finds no handler and ends it at once.
    process.removeListener('SIGINT', onSignal)
    process.removeListener('SIGTERM', onSignal)
    const times = drainTimes(environment, mesh)
    const raise = (): void => {
      clearTimeout(backstop)
      process.kill(process.pid, signal)
    }
    const backstop = setTimeout(raise, times.delayMs + times.timeoutMs + CLOSE_MARGIN_MS)
    mesh?.markDraining()
    void (async () => {
      // Every server of the process first (the app's own meshes' too), while the mesh's
      // outbound side still serves the requests they finish.
      await processServers.drain(times)
      await mesh?.close()
    })().catch(() => undefined).finally(raise)
  }
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)
  process.once('beforeExit', () => {
    process.removeListener('SIGINT', onSignal)
    process.removeListener('SIGTERM', onSignal)
    void current()?.close().catch(() => undefined)
  })
}
