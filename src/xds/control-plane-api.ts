/**
 * The public shape of a control plane: the options of `createControlPlane`, the object it
 * resolves with and what that reports. Free of gRPC types, so the package's declarations
 * never need the optional `@grpc/grpc-js`.
 *
 * @module
 */
import type { EventEmitter } from 'node:events'
import type { Duration, MeshConfig } from '../config/types.js'
import type { MeshError } from '../errors.js'
import type { DeepReadonly } from '../snapshot/snapshot.js'
import type { TrafficWeights } from '../traffic/split.js'
import type { OmittedField, XdsNack, XdsNode, XdsObject, XdsTypeStatus } from './types.js'

/** Options of {@link createControlPlane}. */
export interface ControlPlaneOptions {
  /** The fleet's config: an object in our model, an Envoy v3 bootstrap, or the path of a YAML or JSON file holding either. */
  readonly config: MeshConfig | string | object
  /**
   * Where ADS is served: `host:port` (IPv6 bracketed; port 0 takes a free port),
   * `unix:/path/to/socket`, a port number (on 127.0.0.1), or `{ host, port }`. Default
   * `127.0.0.1:15010` (istiod's plain-text xDS port, on loopback: clients on other hosts
   * need an explicit address).
   */
  readonly listen?: string | number | { readonly host?: string; readonly port: number }
  /** When `config` is a path: re-read it when it changes, as `sidecarless control-plane` does. Default false. */
  readonly watch?: boolean
  /**
   * An admin endpoint (`/clients`, `/config_dump`, `/stats`, `/ready`, `/server_info`) on a
   * loopback `host:port`; unset, there is none. It has no authentication, so a
   * non-loopback host is refused.
   */
  readonly admin?: string
  /**
   * How long resources a change removed stay published when some client has not ACKed the
   * routes that stopped using them (make-before-break). Default 10s.
   */
  readonly retireTimeout?: Duration
  /** How often host names in endpoint addresses are resolved again (default: the shortest `dnsRefreshRate`, else 5s). */
  readonly dnsRefreshRate?: Duration
  /** `control_plane.identifier` sent in every response. Default `sidecarless/<host>/<pid>`. */
  readonly identifier?: string
  /** Where log lines go (default stderr). Every NACK is logged with the client's reasons. */
  readonly log?: (line: string) => void
}

/** Content versions of the four resource types. */
export interface XdsVersions {
  readonly listeners: string
  readonly routes: string
  readonly clusters: string
  readonly endpoints: string
}

/** What `cp.update()` and `cp.traffic.split()` resolve with, and the `config` event carries. */
export interface ControlPlaneApplied {
  /** The snapshot's sequence number (1, 2, ...). */
  readonly version: number
  /** The content version of each resource type, as sent in `version_info`. */
  readonly versions: XdsVersions
  /** The config now served (frozen). */
  readonly config: DeepReadonly<MeshConfig>
  /** What the config says that xDS does not carry, by config path. */
  readonly omitted: readonly OmittedField[]
}

/** One connected client, as `cp.clients()` reports it. */
export interface ControlPlaneClient {
  /** The stream's number on this control plane. */
  readonly id: number
  /** The client's node (from its first request); undefined until it sent one. */
  readonly node: XdsNode | undefined
  /** Its address, as gRPC reports it (`ipv4:127.0.0.1:53412`). */
  readonly peer: string
  /** When it connected (ms since the epoch). */
  readonly connectedSince: number
  /** True when it has ACKed the current version of every type it subscribed to. */
  readonly inSync: boolean
  /** Per resource type: names, versions sent and ACKed, status, last NACK. */
  readonly resources: readonly XdsTypeStatus[]
}

/** A NACK, as the `nack` event carries it. */
export interface ControlPlaneNack extends XdsNack {
  readonly client: { readonly id: number; readonly node: XdsNode | undefined; readonly peer: string }
  readonly typeUrl: string
}

/** Counters of a control plane. */
export interface ControlPlaneStats {
  /** Streams open now. */
  readonly clients: number
  /** Snapshots published (the first included). */
  readonly snapshots: number
  /** Configs refused (invalid, or inconsistent). */
  readonly configsRejected: number
  readonly responses: number
  readonly acks: number
  readonly nacks: number
  /** Requests ignored (stale nonce, no type URL). */
  readonly ignoredRequests: number
}

/** The fleet-wide traffic API. */
export interface ControlPlaneTraffic {
  /**
   * Splits the traffic of a virtual host's catch-all route (or of every catch-all route
   * sending to a cluster, when `name` is a cluster) by subset, for every client:
   * `split('reviews', { v1: 90, v2: 10 })`. Same rules as `mesh.traffic.split`; rejects
   * with `SIDECARLESS_ERR_UNKNOWN_TARGET`, `SIDECARLESS_ERR_INVALID_ARGUMENT` or a
   * `ConfigError`, and the control plane also refuses a split that sends traffic to
   * a subset without endpoints.
   */
  split(name: string, weights: TrafficWeights): Promise<ControlPlaneApplied>
  /** The current weights of `name`'s catch-all route, in percent. */
  get(name: string): Record<string, number>
}

/** Events of a {@link ControlPlane}. */
export interface ControlPlaneEvents {
  /** A config was applied and pushed. */
  config: [ControlPlaneApplied]
  /** A config was refused; the one before stays. */
  configRejected: [MeshError]
  /** A client refused a response. */
  nack: [ControlPlaneNack]
  /** A client sent its first request. */
  clientConnected: [ControlPlaneClient]
  /** A client's stream ended. */
  clientDisconnected: [ControlPlaneClient]
}


/**
 * A running control plane (see `createControlPlane`): serves the fleet's config over ADS,
 * takes new configs and traffic splits, reports its clients.
 */
export interface ControlPlane extends EventEmitter<ControlPlaneEvents> {
  /** Where ADS is served: `host:port`, or `unix:/path`. */
  readonly address: string
  /** `host:port` of the admin endpoint, when there is one. */
  readonly adminAddress: string | undefined
  /** The fleet-wide traffic API. */
  readonly traffic: ControlPlaneTraffic
  /** The config served (frozen). */
  readonly config: DeepReadonly<MeshConfig>
  /** The sequence number of the snapshot served (1, 2, ...). */
  readonly version: number
  /** The content version of each resource type served. */
  readonly versions: XdsVersions
  /**
   * Validates a new config (object, Envoy bootstrap or file path), builds its snapshot and
   * pushes it to every client. Rejects with a `ConfigError` listing every problem —
   * validation's, and routes that would send traffic to a cluster or subset without
   * endpoints — and the config served stays.
   */
  update(config: MeshConfig | string | object): Promise<ControlPlaneApplied>
  /** Every connected client. */
  clients(): ControlPlaneClient[]
  /** Counters. */
  stats(): ControlPlaneStats
  /** The resources served, by type, in the codec's object form (what `/config_dump` shows). */
  resources(): Record<keyof XdsVersions, { name: string; resource: XdsObject }[]>
  /**
   * Stops serving: no new streams; open streams are ended (clients reconnect to another
   * control plane, or retry with back-off); the watch, timers and admin endpoint stop.
   */
  close(): Promise<void>
}
