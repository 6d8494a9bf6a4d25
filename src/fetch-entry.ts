/**
 * `import { fetch, mesh } from 'sidecarless/fetch'`: a `fetch` that goes through the
 * process mesh, configured from the `SIDECARLESS_*` environment (the same mesh as
 * `sidecarless/register`, when both are used).
 *
 * The mesh is created when this module is first imported. When it cannot be
 * (`SIDECARLESS_CONFIG` unset, a bad config or variable), importing still succeeds:
 * `mesh` is `undefined` and every call of `fetch` rejects with the coded error
 * (`SIDECARLESS_ERR_ENVIRONMENT`, `SIDECARLESS_ERR_INVALID_CONFIG`,
 * `SIDECARLESS_ERR_CONFIG_LOAD`) whose message says what to set or fix. A config file that
 * was bad is watched: once it is valid the mesh starts and `fetch` goes through it.
 *
 * @module sidecarless/fetch
 */
import './runtime-check.js'
import type { Mesh } from './mesh.js'
import type { MeshFetch } from './outbound/fetch.js'
import { processMeshState, whenProcessMesh } from './process-mesh.js'

/**
 * The process mesh, for its metrics (`mesh.metrics.prometheus()`), request context
 * (`mesh.context()`), traffic API and config; `undefined` when it could not be created
 * (see {@link fetch}). A live binding: it becomes the mesh once a config file that was bad
 * at start is fixed.
 */
export let mesh: Mesh | undefined = processMeshState().mesh
whenProcessMesh((started) => {
  mesh = started
})

/**
 * `fetch` through the process mesh: routed, balanced and observed by the config in
 * `SIDECARLESS_CONFIG`. Same arguments and result as the global `fetch`.
 */
export const fetch: MeshFetch = (input, init) => {
  const state = processMeshState()
  if (state.error !== undefined) return Promise.reject(state.error)
  return state.mesh.fetch(input, init)
}

export default fetch
