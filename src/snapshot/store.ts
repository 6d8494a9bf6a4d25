/**
 * The snapshot store: apply = validate → compile → start → swap. A config that fails
 * validation is rejected whole and the current snapshot stays; applies are serialised, so
 * two updates never interleave; retired clusters are disposed only after the swap, and
 * their pools close gracefully, so requests in flight finish on the snapshot they started with.
 */
import { compileConfig } from './build.js'
import type { MeshConfig } from '../config/types.js'
import { checkConfig } from '../config/validate.js'
import { ConfigError, MeshError } from '../errors.js'
import type { HostRegistry } from '../upstream/host.js'
import type { LimitRegistry } from '../policy/limits.js'
import type { Snapshot } from './snapshot.js'

/** Holds the current snapshot and swaps it. */
export class SnapshotStore {
  #current: Snapshot
  #version = 0
  #queue: Promise<unknown> = Promise.resolve()
  #closed = false
  readonly #registry: HostRegistry
  readonly #limits: LimitRegistry

  /** Compiles the initial config synchronously; throws {@link ConfigError} when it is invalid. */
  constructor(initial: MeshConfig, registry: HostRegistry, limits: LimitRegistry) {
    this.#registry = registry
    this.#limits = limits
    // Compile the plain copy validation made: the input is read once (a getter or Proxy
    // could answer differently the second time).
    const checked = checkConfig(initial)
    if (checked.config === undefined) throw new ConfigError(checked.issues)
    limits.begin()
    let result
    try {
      result = compileConfig(checked.config, ++this.#version, registry, limits)
    } catch (err) {
      limits.abort()
      throw err
    }
    limits.commit()
    for (const c of result.created) void c.start()
    this.#current = result.snapshot
  }

  /** The snapshot in force. Read it once per request. */
  get current(): Snapshot {
    return this.#current
  }

  /**
   * Validates and applies a config. Resolves with the new snapshot once it is in force
   * (strict_dns clusters have had their first answer, within a bound); rejects with a
   * {@link ConfigError} listing every problem, leaving the current snapshot in force.
   */
  apply(input: MeshConfig): Promise<Snapshot> {
    const run = this.#queue.then(() => this.#apply(input))
    this.#queue = run.catch(() => undefined)
    return run
  }

  async #apply(input: MeshConfig): Promise<Snapshot> {
    if (this.#closed) throw new MeshError('SIDECARLESS_ERR_CLOSED', 'the mesh is closed; config updates are refused')
    const checked = checkConfig(input)
    if (checked.config === undefined) throw new ConfigError(checked.issues)
    this.#limits.begin()
    let result
    try {
      result = compileConfig(checked.config, this.#version + 1, this.#registry, this.#limits, this.#current)
    } catch (err) {
      this.#limits.abort()
      throw err
    }
    const { snapshot, created, retired } = result
    const previous = this.#current
    await Promise.all(created.map((c) => c.start()))
    if (this.#closed) {
      for (const c of created) c.dispose()
      if (snapshot.identity !== this.#current.identity) snapshot.identity?.close()
      this.#limits.abort()
      throw new MeshError('SIDECARLESS_ERR_CLOSED', 'the mesh closed while the config was being applied')
    }
    this.#version++
    this.#current = snapshot
    this.#limits.commit()
    for (const c of retired) c.dispose()
    // Connections already made keep their credentials; only the watcher stops.
    if (previous.identity !== snapshot.identity) previous.identity?.close()
    return snapshot
  }

  /** Stops DNS timers and releases every cluster; waits for pending applies. */
  async close(): Promise<void> {
    this.#closed = true
    await this.#queue
    for (const c of this.#current.clusters.values()) c.dispose()
    this.#current.identity?.close()
  }
}
