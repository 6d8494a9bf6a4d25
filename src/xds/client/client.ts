/**
 * The mesh's xDS client: one ADS stream to the bootstrap's server, subscriptions by name
 * as proxyless gRPC clients make them, complete trees composed with the config file into
 * one MeshConfig, applied through the mesh as `update()` applies a config.
 *
 * - Outbound Listeners are named by the authorities the app calls (`echo.svc:8080`), given
 *   ahead (`xds.listeners`) or subscribed on the first request to a new authority, which
 *   waits for the tree (at most the does-not-exist timeout) through the dispatcher's hook.
 * - The inbound Listener of each server the mesh wraps is named by the bootstrap's
 *   `server_listener_resource_name_template` and the server's `ip:port`.
 * - A config is applied only when it changed; applies are serialised and coalesced, so a
 *   burst of responses costs one swap.
 *
 * `@grpc/grpc-js` and `protobufjs` are imported when the client starts, never before.
 *
 * @module
 */
import type { AddressInfo } from 'node:net'
import { ConfigError } from '../../errors.js'
import { version as packageVersion } from '../../version.js'
import type { MeshConfig } from '../../config/types.js'
import type { XdsCodec } from '../codec.js'
import { loadGrpc, loadProtobuf, type Protobuf } from '../optional-deps.js'
import { loadXdsCodec } from '../protos.js'
import type { XdsObject } from '../types.js'
import { serverListenerName, type XdsBootstrap } from './bootstrap.js'
import { compose, listenerDomains, listenerNameOf, type OutboundListener } from './compose.js'
import { AdsProtocol, type ResourceEntry } from './protocol.js'
import { DECODERS, type ClusterValue, type EndpointValue, type ListenerValue, type RouteValue, type ServerListener } from './resources.js'
import type { XdsResourceStatus, XdsStatus } from './status.js'

export type { XdsCounters, XdsResourceStatus, XdsStatus } from './status.js'
import { AdsTransport, GRPC_BACKOFF, type BackoffOptions } from './transport.js'
import { resolveCluster, resolveListener, type ListenerTree, type Needs, type ResourceView } from './tree.js'
import { readDiscoveryResponse } from './wire.js'

const DISCOVERY_REQUEST = 'envoy.service.discovery.v3.DiscoveryRequest'
/**
 * On-demand subscriptions stop here: an app calling ever new hosts (outside the mesh) must
 * not grow the subscription without bound. Past it, new authorities route as without xDS.
 */
const MAX_ON_DEMAND = 4096

/** Settings of the client. */
export interface XdsClientOptions {
  readonly bootstrap: XdsBootstrap
  /** Outbound Listeners subscribed at start. */
  readonly listeners: readonly string[]
  /** The does-not-exist timer, and the longest a request waits for a new authority. */
  readonly resourceTimeoutMs: number
  /** Subscribe to the Listener of an authority on its first request. */
  readonly onDemand: boolean
  /** The config file's part. */
  readonly base: MeshConfig
  /** Stream backoff (gRPC's by default). */
  readonly backoff?: BackoffOptions
}

/** What the client asks of the mesh. */
export interface XdsClientHost {
  /** Validates and applies a config (as `mesh.update` does); rejects with a ConfigError. */
  apply(config: MeshConfig): Promise<unknown>
  /** The ADS stream is connected. */
  connected(server: string): void
  /** The ADS stream ended (`reason`); a new one follows. */
  disconnected(server: string, reason: string): void
  /** A response was NACKed: the resources named stay at their last good version. */
  rejected(error: ConfigError): void
}

interface Waiter {
  readonly resolve: (ok: boolean) => void
  readonly timer: NodeJS.Timeout
}

interface ApplyWaiter {
  readonly resolve: (v: unknown) => void
  readonly reject: (err: unknown) => void
}

/** The xDS client of one mesh. */
export class XdsClient implements ResourceView {
  readonly #options: XdsClientOptions
  readonly #host: XdsClientHost
  readonly #protocol: AdsProtocol
  #base: MeshConfig
  #transport: AdsTransport | undefined
  #codec: XdsCodec | undefined
  #protobuf: Protobuf | undefined
  #state: XdsStatus['state'] = 'CONNECTING'
  #lastError: string | undefined
  #closed = false
  readonly #outbound = new Set<string>()
  /** Inbound Listener name → number of servers bound to it. */
  readonly #inbound = new Map<string, number>()
  /** The last ready tree of each outbound Listener, and the objects it was built from. */
  readonly #trees = new Map<string, ListenerTree>()
  readonly #treeInputs = new Map<string, readonly unknown[]>()
  /** What the config in force was composed from (identities): the same again is the same config. */
  #composedFrom: readonly unknown[] | undefined
  #refusedFrom: readonly unknown[] | undefined
  readonly #waiters = new Map<string, Set<Waiter>>()
  /** Listeners in the config in force. */
  #applied = new Set<string>()
  #notes: readonly string[] = []
  #applying: Promise<void> | undefined
  #applyDirty = false
  readonly #applyWaiters: ApplyWaiter[] = []
  #warnedFull = false
  #configsApplied = 0
  #configsRejected = 0
  #streams = 0

  constructor(options: XdsClientOptions, host: XdsClientHost) {
    this.#options = options
    this.#host = host
    this.#base = options.base
    const b = options.bootstrap
    this.#protocol = new AdsProtocol({
      node: nodeOf(b),
      resourceTimeoutMs: options.resourceTimeoutMs,
      ignoreResourceDeletion: b.server.ignoreResourceDeletion,
      decoders: DECODERS,
      context: { certificateProviders: b.certificateProviders },
    }, {
      send: (request) => this.#send(request),
      decodeAny: (any) => (this.#codec as XdsCodec).decodeAny(any),
      changed: () => this.#recompute(),
      acked: () => undefined,
      nacked: (type, version, errors) => {
        this.#host.rejected(new ConfigError(errors.map((message) => ({ path: `xds.${type}`, code: 'INVALID_VALUE' as const, message: `version ${JSON.stringify(version)}: ${message}` }))))
      },
    })
    for (const name of options.listeners) this.#outbound.add(name.toLowerCase())
  }

  /** Loads gRPC and the codec, then opens the stream. Never rejects: a failure is the status's `lastError`. */
  async start(): Promise<void> {
    try {
      const [grpc, codec, protobuf] = await Promise.all([loadGrpc(), loadXdsCodec(), loadProtobuf()])
      if (this.#closed) return
      this.#codec = codec
      this.#protobuf = protobuf
      this.#transport = new AdsTransport(grpc, this.#options.bootstrap.server, {
        streamStarted: () => {
          this.#streams++
          this.#protocol.streamStarted()
        },
        connected: () => {
          this.#state = 'CONNECTED'
          this.#protocol.connected()
          this.#host.connected(this.#options.bootstrap.server.uri)
        },
        response: (bytes) => this.#response(bytes),
        streamEnded: (reason) => {
          const was = this.#state
          this.#state = 'DISCONNECTED'
          this.#lastError = reason
          this.#protocol.streamEnded()
          if (was === 'CONNECTED') this.#host.disconnected(this.#options.bootstrap.server.uri, reason)
        },
      }, this.#options.backoff ?? GRPC_BACKOFF)
      this.#recompute()
      this.#transport.start()
    } catch (err) {
      this.#state = 'DISCONNECTED'
      this.#lastError = (err as Error).message
      this.#settleAll(false)
      process.emitWarning(`sidecarless xDS client cannot start: ${(err as Error).message}`, { code: 'SIDECARLESS_XDS_START_FAILED' })
    }
  }

  // ---------------------------------------------------------------- ResourceView

  listener(name: string): ResourceEntry<ListenerValue> | undefined {
    return this.#protocol.entry('listener', name) as ResourceEntry<ListenerValue> | undefined
  }

  route(name: string): ResourceEntry<RouteValue> | undefined {
    return this.#protocol.entry('route', name) as ResourceEntry<RouteValue> | undefined
  }

  cluster(name: string): ResourceEntry<ClusterValue> | undefined {
    return this.#protocol.entry('cluster', name) as ResourceEntry<ClusterValue> | undefined
  }

  endpoint(name: string): ResourceEntry<EndpointValue> | undefined {
    return this.#protocol.entry('endpoint', name) as ResourceEntry<EndpointValue> | undefined
  }

  // ---------------------------------------------------------------- the mesh's side

  /** The config file's part changed (`mesh.update`): compose again and apply. */
  setBase(config: MeshConfig): Promise<unknown> {
    this.#base = config
    return this.#requestApply()
  }

  /** The config file's part. */
  get base(): MeshConfig {
    return this.#base
  }

  /** True when the virtual host `name` comes from xDS. */
  manages(virtualHost: string): boolean {
    return this.#applied.has(virtualHost) && !(this.#base.virtualHosts ?? []).some((v) => v.name === virtualHost)
  }

  /**
   * The dispatcher's hook for an authority no virtual host claims: undefined when there is
   * nothing to wait for (route as without xDS); else a promise that resolves once the
   * authority's tree is in force or known not to exist (true: route again), or false when
   * the wait timed out (answer 503).
   */
  resolveAuthority(authority: string, scheme: string): Promise<boolean> | undefined {
    if (this.#closed) return undefined
    const name = listenerNameOf(authority, scheme)
    if (name === undefined) return undefined
    if (!this.#outbound.has(name)) {
      if (!this.#options.onDemand) return undefined
      if (this.#outbound.size >= MAX_ON_DEMAND) {
        if (!this.#warnedFull) process.emitWarning(`sidecarless xDS client: ${MAX_ON_DEMAND} Listeners subscribed; further authorities (${name}) are not asked for and route as without xDS`, { code: 'SIDECARLESS_XDS_SUBSCRIPTIONS_FULL' })
        this.#warnedFull = true
        return undefined
      }
    }
    // In force already: the request's authority is not one of its domains; nothing to wait for.
    if (this.#applied.has(name) || this.#absent(name)) return undefined
    return this.#waitFor(name)
  }

  /** Resolves once each Listener is in force or known not to exist (true), or after the timeout (false). */
  async ready(listeners: readonly string[]): Promise<boolean> {
    const results = await Promise.all(listeners.map((l) => this.#waitFor(l.toLowerCase())))
    return results.every(Boolean)
  }

  #absent(name: string): boolean {
    const entry = this.listener(name)
    return entry !== undefined && (entry.status === 'DOES_NOT_EXIST' || (entry.value !== undefined && entry.value.role !== 'client'))
  }

  #waitFor(name: string): Promise<boolean> {
    if (this.#closed) return Promise.resolve(false)
    if (!this.#outbound.has(name)) {
      this.#outbound.add(name)
      this.#recompute()
    }
    if (this.#applied.has(name) || this.#absent(name)) return Promise.resolve(true)
    // The client could not start (no gRPC): nothing will come.
    if (this.#state === 'DISCONNECTED' && this.#transport === undefined) return Promise.resolve(false)
    return new Promise<boolean>((resolve) => {
      let set = this.#waiters.get(name)
      if (set === undefined) {
        set = new Set()
        this.#waiters.set(name, set)
      }
      const waiters = set
      const waiter: Waiter = {
        resolve,
        timer: setTimeout(() => {
          // The Listener's does-not-exist timer is running (it started when the request was
          // sent on the connected stream): it decides, within one more timeout at most.
          if (this.listener(name)?.timer !== undefined) return
          waiters.delete(waiter)
          resolve(false)
        }, this.#options.resourceTimeoutMs),
      }
      waiters.add(waiter)
    })
  }

  /** A server the mesh wraps is listening: subscribe to its inbound Listener. */
  serverListening(address: AddressInfo | string | null): void {
    const name = this.#inboundName(address)
    if (name === undefined || this.#closed) return
    this.#inbound.set(name, (this.#inbound.get(name) ?? 0) + 1)
    this.#protocol.subscribe('listener', name)
  }

  /** That server closed. */
  serverClosed(address: AddressInfo | string | null): void {
    const name = this.#inboundName(address)
    if (name === undefined) return
    const n = (this.#inbound.get(name) ?? 0) - 1
    if (n > 0) {
      this.#inbound.set(name, n)
      return
    }
    this.#inbound.delete(name)
    if (!this.#outbound.has(name)) this.#protocol.unsubscribe('listener', name)
    this.#recompute()
  }

  #inboundName(address: AddressInfo | string | null): string | undefined {
    const template = this.#options.bootstrap.serverListenerTemplate
    if (template === undefined || address === null || typeof address === 'string') return undefined
    const host = address.family === 'IPv6' || address.address.includes(':') ? `[${address.address}]` : address.address
    return serverListenerName(template, `${host}:${address.port}`)
  }

  /** The client's state. */
  status(): XdsStatus {
    const resources: XdsResourceStatus[] = []
    for (const type of ['listener', 'route', 'cluster', 'endpoint'] as const) {
      for (const e of this.#protocol.entries(type)) {
        resources.push({ type, name: e.name, status: e.status, version: e.value === undefined ? undefined : e.version, lastUpdated: e.lastUpdated, error: e.error, warnings: e.warnings })
      }
    }
    const c = this.#protocol.counters
    return {
      server: this.#options.bootstrap.server.uri,
      node: this.#options.bootstrap.node.id,
      state: this.#state,
      lastError: this.#lastError,
      versions: { listener: this.#protocol.version('listener'), route: this.#protocol.version('route'), cluster: this.#protocol.version('cluster'), endpoint: this.#protocol.version('endpoint') },
      resources,
      listeners: [...this.#applied].sort(),
      notes: this.#notes,
      counters: {
        responses: c.responses, acks: c.acks, nacks: c.nacks, updates: { ...c.updates }, rejections: { ...c.rejections },
        configsApplied: this.#configsApplied, configsRejected: this.#configsRejected, streams: this.#streams,
      },
    }
  }

  /** Ends the stream and every timer; waiting requests get their answer (503). */
  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    this.#state = 'CLOSED'
    this.#protocol.close()
    this.#transport?.close()
    this.#settleAll(false)
    for (const w of this.#applyWaiters.splice(0)) w.resolve(undefined)
    await this.#applying?.catch(() => undefined)
  }

  // ---------------------------------------------------------------- internals

  #send(request: XdsObject): boolean {
    if (this.#transport === undefined || this.#codec === undefined) return false
    return this.#transport.send(this.#codec.encode(DISCOVERY_REQUEST, request))
  }

  #response(bytes: Buffer): void {
    let raw
    try {
      raw = readDiscoveryResponse(this.#protobuf as Protobuf, bytes)
    } catch (err) {
      // No type or nonce to answer with: nothing to NACK. The server sees no ACK and may resend.
      this.#lastError = `a DiscoveryResponse could not be read: ${(err as Error).message}`
      return
    }
    this.#protocol.response(raw)
  }

  /** Subscriptions follow the trees; ready trees replace the last ones; the config is applied if it changed. */
  #recompute(): void {
    if (this.#closed) return
    const needs: Needs = { routes: new Set(), clusters: new Set(), endpoints: new Set() }
    for (const name of this.#outbound) {
      this.#protocol.subscribe('listener', name)
      const r = resolveListener(this, name, needs)
      if (r.kind === 'ready') {
        // Built from the same objects as the tree in force: keep that one (the config is then unchanged).
        const before = this.#treeInputs.get(name)
        if (before === undefined || !sameItems(before, r.inputs) || !this.#trees.has(name)) {
          this.#trees.set(name, r.tree)
          this.#treeInputs.set(name, r.inputs)
        }
      } else if (r.kind === 'absent') {
        this.#trees.delete(name)
        this.#treeInputs.delete(name)
      }
    }
    // Make-before-break: what the trees in force name stays subscribed, so it keeps updating.
    for (const tree of this.#trees.values()) {
      for (const c of tree.clusters.keys()) {
        needs.clusters.add(c)
        resolveCluster(this, c, needs)
      }
    }
    this.#sync('route', needs.routes)
    this.#sync('cluster', needs.clusters)
    this.#sync('endpoint', needs.endpoints)
    for (const name of this.#outbound) if (!this.#trees.has(name) && this.#absent(name)) this.#settle(name, true)
    void this.#requestApply().catch(() => undefined)
  }

  #sync(type: 'route' | 'cluster' | 'endpoint', wanted: ReadonlySet<string>): void {
    for (const name of wanted) this.#protocol.subscribe(type, name)
    for (const e of [...this.#protocol.entries(type)]) if (!wanted.has(e.name)) this.#protocol.unsubscribe(type, e.name)
  }

  /** The parts of the next config: the same objects as the config in force mean the same config. */
  #parts(): { outbound: OutboundListener[]; inbound: ServerListener[]; key: unknown[] } {
    const outbound: OutboundListener[] = []
    const key: unknown[] = [this.#base]
    for (const [name, tree] of this.#trees) {
      outbound.push({ tree, domains: listenerDomains(name) })
      key.push(tree)
    }
    const inbound: ServerListener[] = []
    for (const name of this.#inbound.keys()) {
      const v = this.listener(name)?.value
      if (v?.role === 'server' && this.listener(name)?.deleted !== true) {
        inbound.push(v)
        key.push(v)
      }
    }
    return { outbound, inbound, key }
  }

  /** Applies the current composition once the apply in flight (if any) is done. */
  #requestApply(): Promise<unknown> {
    const done = new Promise((resolve, reject) => this.#applyWaiters.push({ resolve, reject }))
    this.#applyDirty = true
    this.#applying ??= this.#runApplies().finally(() => {
      this.#applying = undefined
    })
    return done
  }

  async #runApplies(): Promise<void> {
    while (this.#applyDirty && !this.#closed) {
      this.#applyDirty = false
      const waiters = this.#applyWaiters.splice(0)
      const parts = this.#parts()
      // The config in force, or one validation refused already: nothing to apply.
      if ((this.#composedFrom !== undefined && sameItems(this.#composedFrom, parts.key)) || (this.#refusedFrom !== undefined && sameItems(this.#refusedFrom, parts.key))) {
        for (const w of waiters) w.resolve(undefined)
        continue
      }
      const composition = compose(this.#base, { outbound: parts.outbound, inbound: parts.inbound, providers: this.#options.bootstrap.certificateProviders })
      try {
        const applied = await this.#host.apply(composition.config)
        this.#composedFrom = parts.key
        this.#applied = new Set(composition.listeners)
        this.#notes = composition.notes
        this.#configsApplied++
        for (const w of waiters) w.resolve(applied)
        for (const name of composition.listeners) this.#settle(name, true)
      } catch (err) {
        this.#refusedFrom = parts.key
        this.#configsRejected++
        for (const w of waiters) w.reject(err)
      }
    }
    for (const w of this.#applyWaiters.splice(0)) w.resolve(undefined)
  }

  #settle(name: string, ok: boolean): void {
    const set = this.#waiters.get(name)
    if (set === undefined) return
    this.#waiters.delete(name)
    for (const w of set) {
      clearTimeout(w.timer)
      w.resolve(ok)
    }
  }

  #settleAll(ok: boolean): void {
    for (const name of [...this.#waiters.keys()]) this.#settle(name, ok)
  }
}

function sameItems(a: readonly unknown[], b: readonly unknown[]): boolean {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}

/** The node of the first request of each stream (Envoy `config.core.v3.Node`). */
function nodeOf(b: XdsBootstrap): XdsObject {
  const node: XdsObject = {
    id: b.node.id,
    cluster: b.node.cluster,
    metadata: b.node.metadata,
    user_agent_name: 'sidecarless',
    user_agent_version: packageVersion(),
    // What gRPC announces: no overprovisioning factor; resources may come wrapped (sotw).
    client_features: ['envoy.lb.does_not_support_overprovisioning', 'xds.config.resource-in-sotw'],
  }
  if (b.node.locality !== undefined) node['locality'] = b.node.locality
  return node
}

