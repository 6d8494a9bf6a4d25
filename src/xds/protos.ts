/**
 * The xDS codec over the prebuilt descriptor (`descriptor.generated.ts`, built by
 * `scripts/build-xds-descriptor.mjs` from the protos `@grpc/grpc-js-xds` ships). Loaded
 * once per process, on first use, with `protobufjs` imported lazily.
 *
 * @module
 */
import { XdsCodec } from './codec.js'
import { loadProtobuf } from './optional-deps.js'

let codec: Promise<XdsCodec> | undefined

/** The process's codec, built on first call. Rejects with `SIDECARLESS_ERR_XDS_UNAVAILABLE` without protobufjs. */
export function loadXdsCodec(): Promise<XdsCodec> {
  codec ??= build()
  // A failed load (protobufjs missing) may be retried once the user installs it.
  codec.catch(() => {
    codec = undefined
  })
  return codec
}

async function build(): Promise<XdsCodec> {
  const [protobuf, { XDS_DESCRIPTOR_JSON }] = await Promise.all([loadProtobuf(), import('./descriptor.generated.js')])
  const root = protobuf.Root.fromJSON(JSON.parse(XDS_DESCRIPTOR_JSON) as Parameters<typeof protobuf.Root.fromJSON>[0])
  root.resolveAll()
  return new XdsCodec(root)
}
