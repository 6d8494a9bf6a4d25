/**
 * What `mesh.xds.status()` shows: plain types, apart from the client, so the package's
 * declarations never reach gRPC's or protobufjs's.
 *
 * @module
 */
import type { UnsupportedField } from '../../config/envoy/index.js'

/** The resource types a proxyless client subscribes to. */
export type XdsResourceType = 'listener' | 'route' | 'cluster' | 'endpoint'

/** CSDS's ClientResourceStatus, as `mesh.xds.status()` shows it. */
export type ResourceStatus = 'REQUESTED' | 'ACKED' | 'NACKED' | 'DOES_NOT_EXIST'

/** One resource as `mesh.xds.status()` shows it (after CSDS's per-resource status). */
export interface XdsResourceStatus {
  /** `listener`, `route`, `cluster` or `endpoint`. */
  readonly type: XdsResourceType
  readonly name: string
  /** REQUESTED (not received yet), ACKED, NACKED (the last version was refused; the one before is in use), DOES_NOT_EXIST. */
  readonly status: ResourceStatus
  /** The version in use (of the response that carried it). */
  readonly version: string | undefined
  /** When the version in use arrived (ms since the epoch). */
  readonly lastUpdated: number | undefined
  /** The last refused version of this resource and every reason. */
  readonly error: { readonly version: string; readonly message: string; readonly at: number } | undefined
  /** Fields of the version in use the mesh does not apply (the resource was accepted). */
  readonly warnings: readonly UnsupportedField[]
}

/** The client's state: `mesh.xds.status()`. */
export interface XdsStatus {
  /** The xDS server's `server_uri`. */
  readonly server: string
  /** The node id sent. */
  readonly node: string
  /** `CONNECTING` (no stream ready yet), `CONNECTED`, `DISCONNECTED` (retrying), `CLOSED`. */
  readonly state: 'CONNECTING' | 'CONNECTED' | 'DISCONNECTED' | 'CLOSED'
  /** Why the last stream ended, or why the client could not start. */
  readonly lastError: string | undefined
  /** The version last accepted per type. */
  readonly versions: Readonly<Record<XdsResourceType, string>>
  /** Every subscribed resource. */
  readonly resources: readonly XdsResourceStatus[]
  /** Outbound Listeners whose trees are in force. */
  readonly listeners: readonly string[]
  /** What the composition left out (an authority the config file routes, a cluster name it uses). */
  readonly notes: readonly string[]
  /** Counters: responses, ACKs, NACKs, resource updates and rejections per type, configs applied and refused, streams. */
  readonly counters: XdsCounters
}

/** The client's counters (also on `mesh.metrics.prometheus()`). */
export interface XdsCounters {
  readonly responses: number
  readonly acks: number
  readonly nacks: number
  readonly updates: Readonly<Record<XdsResourceType, number>>
  readonly rejections: Readonly<Record<XdsResourceType, number>>
  readonly configsApplied: number
  readonly configsRejected: number
  readonly streams: number
}

