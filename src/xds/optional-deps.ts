/**
 * The optional dependencies of xDS, imported only when a control plane or an xDS client is
 * created: a mesh that never uses xDS never loads `@grpc/grpc-js` nor `protobufjs`
 * (ARCHITECTURE: optional integrations are loaded only when configured).
 *
 * @module
 */
import type * as GrpcModule from '@grpc/grpc-js'
import type * as ProtobufModule from 'protobufjs'
import { MeshError } from '../errors.js'

/** The `@grpc/grpc-js` module. */
export type Grpc = typeof GrpcModule
/** The `protobufjs` module. */
export type Protobuf = typeof ProtobufModule

let grpc: Promise<Grpc> | undefined
let protobuf: Promise<Protobuf> | undefined

/** Imports `@grpc/grpc-js` once; rejects with `SIDECARLESS_ERR_XDS_UNAVAILABLE` when it is not installed. */
export function loadGrpc(): Promise<Grpc> {
  grpc ??= importOptional<Grpc>('@grpc/grpc-js', () => import('@grpc/grpc-js'))
  return grpc
}

/** Imports `protobufjs` once; rejects with `SIDECARLESS_ERR_XDS_UNAVAILABLE` when it is not installed. */
export function loadProtobuf(): Promise<Protobuf> {
  protobuf ??= importOptional<Protobuf>('protobufjs', () => import('protobufjs'))
  return protobuf
}

async function importOptional<T>(name: string, load: () => Promise<unknown>): Promise<T> {
  let mod: unknown
  try {
    mod = await load()
  } catch (err) {
    throw new MeshError(
      'SIDECARLESS_ERR_XDS_UNAVAILABLE',
      `xDS needs the optional dependency ${name}, which could not be loaded (${(err as Error).message}); install it with npm install ${name}`,
      { cause: err },
    )
  }
  // Both are CommonJS: an ESM import puts module.exports on `default`.
  const withDefault = mod as { default?: unknown }
  return (withDefault.default ?? mod) as T
}
