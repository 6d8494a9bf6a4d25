/**
 * A DiscoveryResponse read only as deep as its envelope: version, type, nonce and each
 * resource as the raw parts of its `google.protobuf.Any`. Resources are decoded one by one
 * afterwards, so one that does not parse is one NACK reason (gRFC A46) and the others of
 * the same response are still accepted; decoding the whole message at once would lose them
 * all to the first bad byte.
 *
 * @module
 */
import type { AnyParts } from '../codec.js'
import type { Protobuf } from '../optional-deps.js'

/** The envelope of an `envoy.service.discovery.v3.DiscoveryResponse`. */
export interface RawDiscoveryResponse {
  readonly versionInfo: string
  readonly typeUrl: string
  readonly nonce: string
  readonly resources: AnyParts[]
}

/** Field numbers of DiscoveryResponse and Any (envoy/service/discovery/v3/discovery.proto). */
const VERSION_INFO = 1
const RESOURCES = 2
const TYPE_URL = 4
const NONCE = 5
const ANY_TYPE_URL = 1
const ANY_VALUE = 2
const LENGTH_DELIMITED = 2

/** Reads the envelope; throws (a protobufjs error) when the bytes are not a DiscoveryResponse. */
export function readDiscoveryResponse(pb: Protobuf, bytes: Uint8Array): RawDiscoveryResponse {
  const r = pb.Reader.create(bytes)
  let versionInfo = ''
  let typeUrl = ''
  let nonce = ''
  const resources: AnyParts[] = []
  while (r.pos < r.len) {
    const tag = r.uint32()
    const field = tag >>> 3
    const wire = tag & 7
    if (wire === LENGTH_DELIMITED && field === VERSION_INFO) versionInfo = r.string()
    else if (wire === LENGTH_DELIMITED && field === TYPE_URL) typeUrl = r.string()
    else if (wire === LENGTH_DELIMITED && field === NONCE) nonce = r.string()
    else if (wire === LENGTH_DELIMITED && field === RESOURCES) resources.push(readAny(pb, r.bytes()))
    else r.skipType(wire)
  }
  return { versionInfo, typeUrl, nonce, resources }
}

function readAny(pb: Protobuf, bytes: Uint8Array): AnyParts {
  const r = pb.Reader.create(bytes)
  let typeUrl = ''
  let value: Uint8Array = new Uint8Array(0)
  while (r.pos < r.len) {
    const tag = r.uint32()
    const field = tag >>> 3
    const wire = tag & 7
    if (wire === LENGTH_DELIMITED && field === ANY_TYPE_URL) typeUrl = r.string()
    else if (wire === LENGTH_DELIMITED && field === ANY_VALUE) value = r.bytes()
    else r.skipType(wire)
  }
  return { type_url: typeUrl, value }
}
