/**
 * What the mesh needs of the xDS client, in one module the mesh loads (`require`, so
 * `createMesh` stays synchronous) only when it is created with `xds`: the client, its
 * transport, the resource decoders and the Envoy translators behind them are ~40 modules
 * that a mesh with a static config never uses.
 *
 * @module
 */
export { readBootstrap } from './bootstrap.js'
export { XdsClient } from './client.js'
export { xdsPrometheus } from './metrics.js'
