/**
 * `createControlPlane` as the package exports it: a thin function that imports the control
 * plane (its gRPC server, ADS streams, resource emitters and the Envoy translators they
 * share, ~30 modules) on first call. Most processes that import the package run a mesh and
 * never a control plane; they do not pay for its code.
 */
import type { ControlPlane, ControlPlaneOptions } from './control-plane-api.js'

/**
 * Starts a control plane serving `options.config` over ADS (and CSDS) on `options.listen`.
 * Rejects with a {@link ConfigError} for an invalid config, with
 * `SIDECARLESS_ERR_XDS_UNAVAILABLE` when `@grpc/grpc-js` or `protobufjs` is not installed,
 * and with `SIDECARLESS_ERR_INVALID_ARGUMENT` for an address it cannot listen on.
 */
export async function createControlPlane(options: ControlPlaneOptions): Promise<ControlPlane> {
  const controlPlane = await import('./control-plane.js')
  return controlPlane.createControlPlane(options)
}
