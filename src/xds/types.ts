/**
 * Plain types of xDS shared by the codec, the control plane's public API and the client,
 * kept apart so the package's declarations need neither protobufjs nor gRPC types.
 *
 * @module
 */

/** A protobuf message in the codec's object form (proto3 JSON with snake_case names). */
export type XdsObject = Record<string, unknown>

/** A part of a config the xDS resources do not carry, and why. */
export interface OmittedField {
  /** Where it is in the config, e.g. `clusters[0].rateLimit`. */
  readonly path: string
  readonly message: string
}

/** The client's node, from the first request of the stream (Envoy `config.core.v3.Node`). */
export interface XdsNode {
  readonly id: string
  readonly cluster: string
  /** `user_agent_name` and version, e.g. `gRPC Node 1.14.1`. */
  readonly userAgent: string
  /** The node metadata (Istio's `GENERATOR`, ...). */
  readonly metadata: Readonly<Record<string, unknown>>
}

/** A NACK: the client refused a response. */
export interface XdsNack {
  /** The version the client refused. */
  readonly version: string
  readonly nonce: string
  /** The client's `error_detail.message`: every reason it gave. */
  readonly message: string
  /** When it arrived (ms since the epoch). */
  readonly at: number
}

/** The state of one resource type on one stream, as `cp.clients()` shows it. */
export interface XdsTypeStatus {
  readonly typeUrl: string
  /** Names subscribed; `['*']` for a wildcard subscription. */
  readonly names: readonly string[]
  /** Version last sent, or undefined. */
  readonly sentVersion: string | undefined
  /** Version the client last ACKed, or undefined. */
  readonly ackedVersion: string | undefined
  /**
   * `SYNCED`: the client ACKed the last response; `STALE`: a response is not ACKed yet;
   * `ERROR`: the client NACKed the last response; `NOT_SENT`: nothing sent yet (Envoy CSDS's
   * ConfigStatus).
   */
  readonly status: 'SYNCED' | 'STALE' | 'ERROR' | 'NOT_SENT'
  /** The last NACK, if any (kept after a later ACK). */
  readonly lastNack: XdsNack | undefined
  readonly nacks: number
}
