/**
 * gRPC service definitions of the control plane — ADS and CSDS — with serializers from the
 * xDS codec, so @grpc/grpc-js needs neither proto-loader nor the .proto files.
 *
 * @module
 */
import type { ServiceDefinition } from '@grpc/grpc-js'
import type { XdsCodec, XdsObject } from './codec.js'

const DISCOVERY_REQUEST = 'envoy.service.discovery.v3.DiscoveryRequest'
const DISCOVERY_RESPONSE = 'envoy.service.discovery.v3.DiscoveryResponse'
const DELTA_REQUEST = 'envoy.service.discovery.v3.DeltaDiscoveryRequest'
const DELTA_RESPONSE = 'envoy.service.discovery.v3.DeltaDiscoveryResponse'
const CSDS_REQUEST = 'envoy.service.status.v3.ClientStatusRequest'
const CSDS_RESPONSE = 'envoy.service.status.v3.ClientStatusResponse'

/** `envoy.service.discovery.v3.AggregatedDiscoveryService`: requests decoded to objects, responses encoded from wire objects. */
export function adsService(codec: XdsCodec): ServiceDefinition {
  const path = '/envoy.service.discovery.v3.AggregatedDiscoveryService/'
  return {
    StreamAggregatedResources: {
      path: `${path}StreamAggregatedResources`,
      requestStream: true,
      responseStream: true,
      requestSerialize: (value: XdsObject) => Buffer.from(codec.encode(DISCOVERY_REQUEST, value)),
      requestDeserialize: (bytes: Buffer) => codec.decode(DISCOVERY_REQUEST, bytes),
      responseSerialize: (value: object) => Buffer.from(codec.encodeWire(DISCOVERY_RESPONSE, value)),
      responseDeserialize: (bytes: Buffer) => codec.decode(DISCOVERY_RESPONSE, bytes),
    },
    DeltaAggregatedResources: {
      path: `${path}DeltaAggregatedResources`,
      requestStream: true,
      responseStream: true,
      requestSerialize: (value: XdsObject) => Buffer.from(codec.encode(DELTA_REQUEST, value)),
      requestDeserialize: (bytes: Buffer) => codec.decode(DELTA_REQUEST, bytes),
      responseSerialize: (value: XdsObject) => Buffer.from(codec.encode(DELTA_RESPONSE, value)),
      responseDeserialize: (bytes: Buffer) => codec.decode(DELTA_RESPONSE, bytes),
    },
  }
}

/** `envoy.service.status.v3.ClientStatusDiscoveryService` (CSDS). */
export function csdsService(codec: XdsCodec): ServiceDefinition {
  const path = '/envoy.service.status.v3.ClientStatusDiscoveryService/'
  const io = {
    requestSerialize: (value: XdsObject) => Buffer.from(codec.encode(CSDS_REQUEST, value)),
    requestDeserialize: (bytes: Buffer) => codec.decode(CSDS_REQUEST, bytes),
    responseSerialize: (value: XdsObject) => Buffer.from(codec.encode(CSDS_RESPONSE, value)),
    responseDeserialize: (bytes: Buffer) => codec.decode(CSDS_RESPONSE, bytes),
  }
  return {
    StreamClientStatus: { path: `${path}StreamClientStatus`, requestStream: true, responseStream: true, ...io },
    FetchClientStatus: { path: `${path}FetchClientStatus`, requestStream: false, responseStream: false, ...io },
  }
}
