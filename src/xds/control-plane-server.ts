/**
 * The control plane's engine: the snapshot served, the ADS streams, config updates, the
 * make-before-break retirement of removed resources, CSDS. Created by `createControlPlane`.
 *
 * @module
 */
import { EventEmitter } from 'node:events'
import type { Server, ServerDuplexStream, ServerUnaryCall, sendUnaryData } from '@grpc/grpc-js'
import { loadCheckedConfig } from '../config/load.js'
import type { MeshConfig } from '../config/types.js'
import { validateConfig } from '../config/validate.js'
import type { ConfigWatch } from '../config/watch.js'
import { ConfigError, MeshError } from '../errors.js'
import type { DeepReadonly } from '../snapshot/snapshot.js'
import { applySplit, readSplit, type TrafficWeights } from '../traffic/split.js'
import { AdsStream, type WireDiscoveryResponse, type XdsNack } from './ads-stream.js'
import type { XdsCodec, XdsObject } from './codec.js'
import { routesToNowhere } from './consistency.js'
import type {
  ControlPlane, ControlPlaneApplied, ControlPlaneClient, ControlPlaneEvents, ControlPlaneStats, ControlPlaneTraffic, XdsVersions,
} from './control-plane-api.js'
import { clientStatus } from './csds.js'
import { emitResources, type EmittedResources, type OmittedField } from './emit/index.js'
import { hostNamesOf, resolveHostNames, sameResolution } from './resolve.js'
import { buildSnapshot, type RetiredResources, type XdsSnapshot } from './snapshot.js'
import { kindOfTypeUrl, type ResourceKind } from './type-urls.js'


/** What the server holds of its admin endpoint (`control-plane-admin.ts`, which reads the server: no import back). */
interface AttachedAdmin {
  readonly address: string
  close(): Promise<void>
}
/** gRPC's INVALID_ARGUMENT status code. */
const GRPC_INVALID_ARGUMENT = 3

const KIND_NAMES: Readonly<Record<'listener' | 'route' | 'cluster' | 'endpoint', keyof XdsVersions>> = {
  listener: 'listeners', route: 'routes', cluster: 'clusters', endpoint: 'endpoints',
}

/** A running control plane (the implementation of {@link ControlPlane}). */
export class ControlPlaneServer extends EventEmitter<ControlPlaneEvents> implements ControlPlane {
  /** Where ADS is served: `host:port`, or `unix:/path`. */
  readonly address: string
  /** `host:port` of the admin endpoint, when there is one. */
  get adminAddress(): string | undefined {
    return this.#admin?.address
  }

  /** The fleet-wide traffic API. */
  readonly traffic: ControlPlaneTraffic

  readonly #codec: XdsCodec
  readonly #server: Server
  readonly #log: (line: string) => void
  readonly #identifier: string
  readonly #retireTimeoutMs: number
  readonly #streams = new Map<AdsStream, ServerDuplexStream<XdsObject, WireDiscoveryResponse>>()
  #config: DeepReadonly<MeshConfig>
  #snapshot: XdsSnapshot
  #resolved: Map<string, string[]>
  #retired: { emitted: EmittedResources; timer: NodeJS.Timeout } | undefined
  #updates: Promise<unknown> = Promise.resolve()
  #admin: AttachedAdmin | undefined
  #watch: ConfigWatch | undefined
  #dnsTimer: NodeJS.Timeout | undefined
  #nextStreamId = 0
  #closing: Promise<void> | undefined
  #startedAt = Date.now()
  #omittedReported = ''
  readonly #stats = { snapshots: 0, configsRejected: 0, responses: 0, acks: 0, nacks: 0, ignoredRequests: 0 }

  /** @internal use {@link createControlPlane}. */
  constructor(init: {
    codec: XdsCodec
    server: Server
    address: string
    log: (line: string) => void
    identifier: string
    retireTimeoutMs: number
    config: MeshConfig
    resolved: Map<string, string[]>
    emitted: EmittedResources
    snapshot: XdsSnapshot
  }) {
    super()
    this.#codec = init.codec
    this.#server = init.server
    this.address = init.address
    this.#log = init.log
    this.#identifier = init.identifier
    this.#retireTimeoutMs = init.retireTimeoutMs
    this.#config = deepFreeze(structuredClone(init.config))
    this.#resolved = init.resolved
    this.#snapshot = init.snapshot
    this.#stats.snapshots = 1
    this.traffic = Object.freeze({
      split: (name: string, weights: TrafficWeights) => this.#enqueue(async () => this.#apply(applySplit(this.#config as MeshConfig, name, weights))),
      get: (name: string) => readSplit(this.#config as MeshConfig, name),
    })
  }

  /** The config served (frozen). */
  get config(): DeepReadonly<MeshConfig> {
    return this.#config
  }

  /** The sequence number of the snapshot served. */
  get version(): number {
    return this.#snapshot.sequence
  }

  /** The content version of each resource type served. */
  get versions(): XdsVersions {
    return versionsOf(this.#snapshot)
  }

  /**
   * Validates a new config (object, Envoy bootstrap or file path), builds its snapshot and
   * pushes it to every client. Rejects with a {@link ConfigError} listing every problem —
   * validation's, and routes that would send traffic to a cluster or subset without
   * endpoints — and the config served stays.
   */
  update(config: MeshConfig | string | object): Promise<ControlPlaneApplied> {
    return this.#enqueue(async () => {
      const loaded = this.#load(config)
      return this.#apply(loaded)
    })
  }

  /** Every connected client. */
  clients(): ControlPlaneClient[] {
    return [...this.#streams.keys()].map((s) => this.#client(s))
  }

  /** Counters. */
  stats(): ControlPlaneStats {
    return { clients: this.#streams.size, ...this.#stats }
  }

  /** The resources served, by type, in the codec's object form (what `/config_dump` shows). */
  resources(): Record<keyof XdsVersions, { name: string; resource: XdsObject }[]> {
    const out = {} as Record<keyof XdsVersions, { name: string; resource: XdsObject }[]>
    for (const [kind, key] of Object.entries(KIND_NAMES) as [ResourceKind, keyof XdsVersions][]) {
      out[key] = this.#snapshot.all(kind).map((e) => ({ name: e.name, resource: e.resource }))
    }
    return out
  }

  /**
   * Stops serving: no new streams; open streams are ended (clients reconnect to another
   * control plane, or retry with back-off); the watch, timers and admin endpoint stop.
   * Resolves once the server has shut down (at most a few seconds).
   */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#watch?.close()
      if (this.#dnsTimer !== undefined) clearInterval(this.#dnsTimer)
      if (this.#retired !== undefined) clearTimeout(this.#retired.timer)
      for (const call of this.#streams.values()) {
        try {
          call.end()
        } catch {
          // already closed
        }
      }
      await new Promise<void>((resolve) => {
        const force = setTimeout(() => {
          this.#server.forceShutdown()
          resolve()
        }, 2_000)
        this.#server.tryShutdown(() => {
          clearTimeout(force)
          resolve()
        })
      })
      await this.#admin?.close()
    })()
    return this.#closing
  }

  // ------------------------------------------------------------------ internals used by createControlPlane

  /** @internal */
  attach(admin: AttachedAdmin | undefined, watch: ConfigWatch | undefined, dnsRefreshMs: number): void {
    this.#admin = admin
    this.#watch = watch
    this.#dnsTimer = setInterval(() => void this.#refreshDns(), dnsRefreshMs)
    this.#dnsTimer.unref()
  }

  /** @internal logs what the config says that xDS does not carry, when that changes. */
  reportOmitted(omitted: readonly OmittedField[]): void {
    const text = omitted.map((o) => `  ${o.path}: ${o.message}`).join('\n')
    if (text === this.#omittedReported) return
    this.#omittedReported = text
    if (text !== '') this.#log(`sidecarless control-plane: ${omitted.length} part(s) of the config are not carried over xDS:\n${text}`)
  }

  /** @internal the ADS handler. */
  handleAds(call: ServerDuplexStream<XdsObject, WireDiscoveryResponse>): void {
    if (this.#closing !== undefined) {
      call.end()
      return
    }
    let open = true
    let announced = false
    const stream: AdsStream = new AdsStream(++this.#nextStreamId, call.getPeer(), {
      snapshot: () => this.#snapshot,
      identifier: this.#identifier,
      send: (response) => {
        if (!open) return
        this.#stats.responses++
        call.write(response)
      },
      acked: () => {
        this.#stats.acks++
        this.#maybeDropRetired()
      },
      nacked: (s, typeUrl, nack) => this.#nacked(s, typeUrl, nack),
      ignored: () => {
        this.#stats.ignoredRequests++
      },
      refused: (s, why) => {
        this.#stats.ignoredRequests++
        this.#log(`sidecarless control-plane: client ${label(s)}: ${why}; stream ended`)
        close()
        // grpc-js ends a server stream with the status of an 'error' it emits: INVALID_ARGUMENT (3).
        call.emit('error', { code: GRPC_INVALID_ARGUMENT, details: why })
      },
    })
    this.#streams.set(stream, call)
    const close = (): void => {
      if (!open) return
      open = false
      this.#streams.delete(stream)
      if (announced) this.emit('clientDisconnected', this.#client(stream))
      this.#maybeDropRetired()
    }
    call.on('data', (request: XdsObject) => {
      if (!open) return
      try {
        stream.handle(request)
      } catch (err) {
        this.#log(`sidecarless control-plane: client ${label(stream)}: cannot answer a request: ${(err as Error).message}`)
      }
      if (!announced && stream.node !== undefined) {
        announced = true
        this.emit('clientConnected', this.#client(stream))
      }
    })
    call.on('end', () => {
      close()
      call.end()
    })
    call.on('error', close)
    call.on('close', close)
    call.on('cancelled', close)
  }

  /** @internal the CSDS handler (unary). */
  handleCsds(call: ServerUnaryCall<XdsObject, XdsObject>, callback: sendUnaryData<XdsObject>): void {
    callback(null, clientStatus(call.request, this.#streams.keys(), this.#snapshot))
  }

  /** @internal the CSDS handler (streaming: one response per request). */
  handleCsdsStream(call: ServerDuplexStream<XdsObject, XdsObject>): void {
    call.on('data', (request: XdsObject) => call.write(clientStatus(request, this.#streams.keys(), this.#snapshot)))
    call.on('end', () => call.end())
    call.on('error', () => undefined)
  }

  // ------------------------------------------------------------------ config

  #enqueue<T>(work: () => Promise<T>): Promise<T> {
    const run = this.#updates.then(() => {
      if (this.#closing !== undefined) throw new MeshError('SIDECARLESS_ERR_CLOSED', 'the control plane is closed')
      return work()
    })
    this.#updates = run.catch(() => undefined)
    return run
  }

  #load(source: MeshConfig | string | object): MeshConfig {
    try {
      const loaded = loadCheckedConfig(source)
      for (const u of loaded.unsupported) this.#log(`sidecarless control-plane: ${loaded.source ?? 'the config'}: ${u.path}: ${u.message}`)
      return loaded.config
    } catch (err) {
      if (err instanceof MeshError) this.#rejected(err)
      throw err
    }
  }

  async #apply(config: MeshConfig): Promise<ControlPlaneApplied> {
    const issues = checkConfig(config)
    if (issues !== undefined) {
      this.#rejected(issues)
      throw issues
    }
    const resolved = await this.#resolve(config)
    return this.#publish(config, resolved)
  }

  #publish(config: MeshConfig, resolved: Map<string, string[]>): ControlPlaneApplied {
    const emitted = emitResources(config, resolved)
    const retired = retiredOf(this.#snapshot, emitted)
    let snapshot: XdsSnapshot
    try {
      snapshot = buildSnapshot(this.#codec, this.#snapshot.sequence + 1, emitted, retired, this.#snapshot)
    } catch (err) {
      if (err instanceof MeshError) this.#rejected(err)
      throw err
    }
    this.#config = deepFreeze(structuredClone(config))
    this.#resolved = resolved
    this.#install(snapshot)
    if (retired !== undefined) {
      if (this.#retired !== undefined) clearTimeout(this.#retired.timer)
      const timer = setTimeout(() => this.#dropRetired(), this.#retireTimeoutMs)
      timer.unref()
      this.#retired = { emitted, timer }
      this.#maybeDropRetired()
    } else if (this.#retired !== undefined) {
      clearTimeout(this.#retired.timer)
      this.#retired = undefined
    }
    this.reportOmitted(emitted.omitted)
    const applied = this.#applied()
    this.emit('config', applied)
    return applied
  }

  /** Swaps the snapshot and pushes it to every stream. */
  #install(snapshot: XdsSnapshot): void {
    this.#snapshot = snapshot
    this.#stats.snapshots++
    for (const stream of this.#streams.keys()) {
      try {
        stream.push(snapshot)
      } catch (err) {
        this.#log(`sidecarless control-plane: client ${label(stream)}: push failed: ${(err as Error).message}`)
      }
    }
  }

  /**
   * Drops the retired resources once no client can still use them: every stream has ACKed
   * the current listeners and routes (those no longer name them).
   */
  #maybeDropRetired(): void {
    if (this.#retired === undefined) return
    const versions = this.#snapshot.versions
    for (const stream of this.#streams.keys()) {
      for (const kind of ['listener', 'route'] as const) {
        if (stream.subscribes(kind) && stream.ackedVersion(kind) !== versions[kind]) return
      }
    }
    this.#dropRetired()
  }

  #dropRetired(): void {
    const retired = this.#retired
    if (retired === undefined || this.#closing !== undefined) return
    clearTimeout(retired.timer)
    this.#retired = undefined
    try {
      this.#install(buildSnapshot(this.#codec, this.#snapshot.sequence + 1, retired.emitted, undefined, this.#snapshot))
    } catch (err) {
      this.#log(`sidecarless control-plane: cannot drop retired resources: ${(err as Error).message}`)
    }
  }

  async #resolve(config: MeshConfig, names = hostNamesOf(config)): Promise<Map<string, string[]>> {
    return resolveHostNames(names, (name, err) => {
      this.#log(`sidecarless control-plane: cannot resolve ${name}: ${err.message}; its endpoints are left out until it resolves`)
    })
  }

  async #refreshDns(): Promise<void> {
    await this.#enqueue(async () => {
      // The host names of the config served are the keys of its resolution.
      if (this.#resolved.size === 0) return
      const config = this.#config as MeshConfig
      const resolved = await this.#resolve(config, [...this.#resolved.keys()])
      if (!sameResolution(resolved, this.#resolved)) this.#publish(config, resolved)
    }).catch((err: unknown) => {
      if (!isMeshError(err, 'SIDECARLESS_ERR_CLOSED')) this.#log(`sidecarless control-plane: DNS refresh failed: ${(err as Error).message}`)
    })
  }

  #rejected(err: MeshError): void {
    this.#stats.configsRejected++
    if (this.listenerCount('configRejected') > 0) this.emit('configRejected', err)
  }

  #nacked(stream: AdsStream, typeUrl: string, nack: XdsNack): void {
    this.#stats.nacks++
    const kind = kindOfTypeUrl(typeUrl) ?? typeUrl
    this.#log(`sidecarless control-plane: NACK from ${label(stream)} of ${kind} version ${nack.version}: ${nack.message}`)
    if (this.listenerCount('nack') > 0) {
      this.emit('nack', { ...nack, typeUrl, client: { id: stream.id, node: stream.node, peer: stream.peer } })
    }
  }

  #client(stream: AdsStream): ControlPlaneClient {
    return {
      id: stream.id,
      node: stream.node,
      peer: stream.peer,
      connectedSince: stream.connectedAt,
      inSync: stream.inSync(this.#snapshot),
      resources: stream.status(),
    }
  }

  #applied(): ControlPlaneApplied {
    return Object.freeze({ version: this.#snapshot.sequence, versions: versionsOf(this.#snapshot), config: this.#config, omitted: this.#snapshot.omitted })
  }

  /** @internal for the admin endpoint. */
  get startedAt(): number {
    return this.#startedAt
  }
}

/**
 * Stands in for `identity` when a fleet config has none: each workload presents its own
 * certificate (its certificate provider instance), so mutual TLS towards a cluster is
 * valid without one. Validation only checks the shape of these values.
 */
const EACH_WORKLOADS_IDENTITY = Object.freeze({ certificate: 'workload certificate', privateKey: 'workload key', trustBundle: 'workload trust bundle' })

/**
 * Validation's issues, then (for a valid config) routes to clusters without endpoints;
 * undefined when fine. A fleet config is validated as any workload's would be, with the
 * workload's own identity assumed.
 */
export function checkConfig(config: MeshConfig): ConfigError | undefined {
  const assumed = config.identity === undefined && typeof config === 'object' && config !== null
  const issues = validateConfig(assumed ? { ...config, identity: EACH_WORKLOADS_IDENTITY } : config)
    .filter((i) => !(assumed && (i.path === 'identity' || i.path.startsWith('identity.'))))
  if (issues.length > 0) return new ConfigError(issues)
  const nowhere = routesToNowhere(config)
  return nowhere.length > 0 ? new ConfigError(nowhere) : undefined
}

/** Resources of `current` (routes, clusters, endpoints) that `next` no longer has: kept until unused. */
function retiredOf(current: XdsSnapshot, next: EmittedResources): RetiredResources | undefined {
  const pick = (kind: ResourceKind, keep: ReadonlyMap<string, XdsObject>): Map<string, XdsObject> => {
    const out = new Map<string, XdsObject>()
    for (const e of current.all(kind)) if (!keep.has(e.name)) out.set(e.name, e.resource)
    return out
  }
  const retired = { routes: pick('route', next.routes), clusters: pick('cluster', next.clusters), endpoints: pick('endpoint', next.endpoints) }
  return retired.routes.size + retired.clusters.size + retired.endpoints.size === 0 ? undefined : retired
}

function versionsOf(s: XdsSnapshot): XdsVersions {
  return Object.freeze({ listeners: s.versions.listener, routes: s.versions.route, clusters: s.versions.cluster, endpoints: s.versions.endpoint })
}

function label(stream: AdsStream): string {
  return stream.node === undefined ? `#${stream.id} (${stream.peer})` : `${stream.node.id} (#${stream.id}, ${stream.peer})`
}

function isMeshError(err: unknown, code: string): boolean {
  return err instanceof MeshError && err.code === code
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value)
    for (const v of Object.values(value)) deepFreeze(v)
  }
  return value
}
