/**
 * The mesh: one config store, one outbound dispatcher, the traffic API. `createMesh` is the
 * entry point users call.
 */
import { EventEmitter } from 'node:events'
import type http from 'node:http'
import type https from 'node:https'
import { createRequire } from 'node:module'
import { InboundPipeline } from './inbound/pipeline.js'
import { LimitRegistry } from './policy/limits.js'
import { createWrappedServer, ServerSet, wrapServer, type DrainTimes } from './inbound/server.js'
import { adminBindAddress, startAdmin, type AdminServer } from './admin/admin.js'
import { currentContext, type RequestContext } from './observability/context.js'
import { MetricsRegistry, type MetricsSnapshot } from './observability/metrics.js'
import { workloadOf } from './observability/istio-metrics.js'
import { buildInfo, processMetrics } from './observability/process-metrics.js'
import { registerWith, type PromClientRegistry, type RegisterOptions } from './observability/prom-client-bridge.js'
import { MeshTracer, type FinishedSpan } from './observability/tracing.js'
import type { ExporterStats } from './observability/exporters/collectors.js'
import { getGlobalDispatcher, setGlobalDispatcher, type Dispatcher } from 'undici'
import type { UnsupportedField } from './config/envoy/index.js'
import { loadCheckedConfig, reportLoaded, type LoadOptions } from './config/load.js'
import type { AdminConfig, DrainConfig, Duration, MeshConfig } from './config/types.js'
import { defaults, limits } from './config/defaults.js'
import { parseDuration } from './config/duration.js'
import { formatListenAddress } from './config/listen-address.js'
import { version as packageVersion } from './version.js'
import { ConfigError, MeshError } from './errors.js'
import type * as XdsClientModule from './xds/client/index.js'
import type { XdsClient } from './xds/client/client.js'
import type { XdsStatus } from './xds/client/status.js'
import { MeshDispatcher } from './outbound/dispatcher.js'
import { createMeshFetch, type MeshFetch } from './outbound/fetch.js'
import type { DeepReadonly, Snapshot } from './snapshot/snapshot.js'
import { SnapshotStore } from './snapshot/store.js'
import { decideRoute, type RouteDecision, type RouteQuery } from './router/router.js'
import { applySplit, readSplit, splitTarget, type TrafficWeights } from './traffic/split.js'
import { createRollout, type Rollout, type RolloutOptions, type RunningRollout } from './traffic/rollout.js'
import { HostRegistry } from './upstream/host.js'
import type { Cluster } from './upstream/cluster.js'
import type { BreakerStateChange, BreakerStats } from './policy/error-rate-breaker.js'
import type { ClusterResilienceStats } from './observability/metrics.js'
import type { EndpointHealthEvent, OutlierEjectionEvent } from './upstream/host-health.js'

/** Options of {@link createMesh}. */
export interface MeshOptions {
  /** This workload's service name (used by metrics and, later, identity). */
  readonly service?: string
  /** This workload's labels, e.g. `{ version: 'v1' }`. */
  readonly labels?: Readonly<Record<string, string>>
  /**
   * This workload's Kubernetes namespace, for Istio manifests in the config (short names
   * resolve in it; policies of other namespaces do not apply). Default: the environment's
   * `SIDECARLESS_NAMESPACE` or `POD_NAMESPACE`, else `default`.
   */
  readonly namespace?: string
  /**
   * The config: an object in our model, an Envoy v3 bootstrap object, Istio manifests (one,
   * a `kind: List`, or a list of documents), or the path of a JSON or YAML file holding any of
   * them (Istio manifests as a multi-document file). Omitted: an empty config (`{}`: every
   * request passes through, no policy). Given but `null` or `undefined`, or a file with no
   * document, it is refused like any invalid config ({@link ConfigError}, `EMPTY_CONFIG`): an
   * empty value is more often a mistake (an unset variable, a truncated file) than a wish for
   * no policy.
   */
  readonly config?: MeshConfig | string | object
  /**
   * Take the config from an xDS server (istiod, or `sidecarless control-plane`) over ADS, as
   * a proxyless gRPC client does. `true` reads the bootstrap as gRPC does, from
   * `GRPC_XDS_BOOTSTRAP` (a file) or `GRPC_XDS_BOOTSTRAP_CONFIG` (its JSON); the object form
   * takes it and more settings. With `config` too, the file's clusters and routes come first
   * and xDS answers for the authorities the file does not name. Needs the optional
   * dependencies `@grpc/grpc-js` and `protobufjs` (loaded only when set).
   */
  readonly xds?: boolean | XdsOptions
  /**
   * The drain of `close()`; each field given overrides the config's `drain`
   * (`sidecarless/register` sets it from `SIDECARLESS_DRAIN_TIMEOUT` and
   * `SIDECARLESS_DRAIN_DELAY`).
   */
  readonly drain?: DrainConfig
  /** @internal false: the caller serves the admin endpoint itself (`sidecarless proxy`). */
  readonly serveAdmin?: boolean
}

/** Settings of the mesh's xDS client (`createMesh({ xds })`). */
export interface XdsOptions {
  /**
   * The gRPC xDS bootstrap: the path of its JSON file, or the object. Default: from
   * `GRPC_XDS_BOOTSTRAP` or `GRPC_XDS_BOOTSTRAP_CONFIG`, as gRPC reads it (istio-agent writes
   * it to `/etc/istio/proxy/grpc-bootstrap.json`).
   */
  readonly bootstrap?: string | object
  /**
   * Outbound Listeners to subscribe to at start, named as the app calls them
   * (`reviews.default.svc.cluster.local:9080`), so the first request finds its routes ready.
   * Others are subscribed on the first request to their authority.
   */
  readonly listeners?: readonly string[]
  /**
   * Subscribe to the Listener of an authority on its first request (default true). That
   * request waits for the routes, at most `resourceTimeout`. With false, only `listeners`
   * are asked for; other authorities route as without xDS.
   */
  readonly onDemand?: boolean
  /** How long a requested resource may stay unanswered before it is taken not to exist (gRPC's 15s). */
  readonly resourceTimeout?: Duration
}

/** The xDS client of a mesh (`mesh.xds`). */
export interface MeshXds {
  /**
   * Per resource: type, name, status (REQUESTED, ACKED, NACKED, DOES_NOT_EXIST), the version
   * in use, when it arrived, the last refusal with every reason, and the fields not applied;
   * the connection state and counters. `/config_dump` of `sidecarless proxy` shows the same.
   */
  status(): XdsStatus
  /**
   * Resolves once every Listener of `listeners` (default: `xds.listeners`) is in force or
   * known not to exist: true; false when `resourceTimeout` passed first.
   */
  ready(listeners?: readonly string[]): Promise<boolean>
}

/** What `xdsConnected` carries. */
export interface XdsConnectionEvent {
  /** The xDS server's `server_uri`. */
  readonly server: string
  /** Why the stream ended (`xdsDisconnected` only). */
  readonly reason?: string
}

/**
 * Envoy's server state: `LIVE` while the mesh takes requests; `DRAINING` from the moment
 * `close()` began (under `sidecarless/register`, from SIGTERM); `CLOSED` once it resolved.
 * The admin endpoint's `/ready` answers 200 only when `LIVE`.
 */
export type MeshState = 'LIVE' | 'DRAINING' | 'CLOSED'

/** What the `config` event carries, and what `mesh.update()` resolves with. */
export interface ConfigApplied {
  /** The snapshot version now in force. */
  readonly version: number
  /** The config now in force (frozen). */
  readonly config: DeepReadonly<MeshConfig>
}

/** The traffic API: weighted splits as config changes. */
export interface Traffic {
  /**
   * Splits traffic of a virtual host's catch-all route (or of every catch-all route sending
   * to a cluster, when `name` is a cluster) by subset: `split('reviews', { v1: 90, v2: 10 })`.
   * Subsets not named get 0. Rejects with `SIDECARLESS_ERR_UNKNOWN_TARGET` for an unknown
   * name, and with a {@link ConfigError} (`UNKNOWN_SUBSET`) for an unknown subset.
   */
  split(name: string, weights: TrafficWeights): Promise<ConfigApplied>
  /** The current weights of `name`'s catch-all route, in percent: `{ v1: 90, v2: 10 }`. */
  get(name: string): Record<string, number>
  /**
   * A stepped canary with automatic rollback: moves `name`'s traffic to `options.to` step
   * by step (`[10, 25, 50, 100]` percent by default), each step held for `interval`
   * (default 1 minute) and then judged by `to`'s requests in that step, as this mesh's
   * metrics counted them (error rate, mean latency, your own `check`); a failed step puts
   * the weights back as they were. Each move is a {@link Traffic.split}.
   *
   * Resolves once the first step is in force, with a handle: `done` (settles with the
   * final status), `status()`, `abort()`, and `step` / `end` events. Rejects with
   * `SIDECARLESS_ERR_INVALID_ARGUMENT` for bad options or a split with nothing to move,
   * `SIDECARLESS_ERR_ROLLOUT_RUNNING` while another rollout of `name` runs, and as
   * {@link Traffic.split} does (an unknown `to` is a {@link ConfigError}, `UNKNOWN_SUBSET`).
   * `mesh.close()` stops a running rollout and leaves the weights as they are.
   *
   * ```ts
   * const rollout = await mesh.traffic.rollout('reviews', { to: 'v2', steps: [10, 50, 100], interval: '30s', maxErrorRate: 0.01 })
   * rollout.on('step', (s) => console.log(s.weight, s.verdict, s.errorRate))
   * const { state } = await rollout.done   // 'completed', or 'rolledBack' with a reason
   * ```
   */
  rollout(name: string, options: RolloutOptions): Promise<Rollout>
}

/** Events of a {@link Mesh}. */
export interface MeshEvents {
  /** A config was applied. */
  config: [ConfigApplied]
  /** A config was rejected; the previous one stays in force. */
  configRejected: [ConfigError]
  /** An error-rate breaker of a cluster (or subset) changed state. */
  circuitBreaker: [BreakerStateChange]
  /** Outlier detection ejected an endpoint, or returned one to service. */
  outlierEjection: [OutlierEjectionEvent]
  /** An active health check gave an endpoint its first verdict, or changed it. */
  endpointHealth: [EndpointHealthEvent]
  /** The ADS stream to the xDS server is connected. */
  xdsConnected: [XdsConnectionEvent]
  /** The ADS stream ended; the client reconnects (with backoff) and asks for everything again. */
  xdsDisconnected: [XdsConnectionEvent]
}

/**
 * An in-process service mesh. Create one with {@link createMesh}. It is a Node
 * `EventEmitter` of {@link MeshEvents}: `mesh.on('config', …)`, `once`, `off` are Node's
 * (not repeated on this page).
 */
export class Mesh extends EventEmitter<MeshEvents> {
  /** This workload's service name. */
  readonly service: string | undefined
  /** This workload's labels. */
  readonly labels: Readonly<Record<string, string>>
  /** An undici Dispatcher that routes by the mesh config. */
  readonly dispatcher: MeshDispatcher
  /** `fetch` through the mesh. Rejects only for caller errors, with a coded {@link MeshError}. */
  readonly fetch: MeshFetch
  /** Weighted traffic splits. */
  readonly traffic: Traffic
  /** What an Envoy bootstrap import could not translate (empty for our own format). */
  unsupported: readonly UnsupportedField[]
  /** Metrics of every route, cluster, subset and endpoint. */
  readonly metrics: MeshMetrics
  /** Recent spans and span export counters, when the app registered no tracer provider. */
  readonly tracing: MeshTracing
  /** The xDS client, when the mesh was created with `xds`; otherwise undefined. */
  readonly xds: MeshXds | undefined
  readonly #xds: XdsClient | undefined
  readonly #store: SnapshotStore
  readonly #registry: HostRegistry
  readonly #limits = new LimitRegistry()
  readonly #tracer: MeshTracer
  readonly #metricsRegistry: MetricsRegistry
  readonly #pipeline: InboundPipeline
  /** Who Istio manifests in the config are translated for. */
  readonly #load: LoadOptions
  /** The servers this mesh wrapped, while they listen: `close()` drains them. */
  readonly #servers = new ServerSet()
  readonly #drainOverride: DrainConfig | undefined
  #state: MeshState = 'LIVE'
  /** The admin endpoint, when `admin` is configured (listening, or failed to). */
  #admin: Promise<AdminServer> | undefined
  /** The `admin` block the endpoint was started from: a change needs a restart. */
  #adminConfig: string | undefined
  #restoreGlobal: (() => void) | undefined
  #closing: Promise<void> | undefined
  /** Running rollouts, by split name: one at a time each. */
  readonly #rollouts = new Map<string, RunningRollout>()

  /** @internal use {@link createMesh}. */
  constructor(options: MeshOptions = {}) {
    super()
    this.service = options.service
    this.labels = Object.freeze({ ...(options.labels ?? {}) })
    this.#drainOverride = checkDrainOption(options.drain)
    this.#load = { labels: this.labels, ...(options.namespace === undefined ? {} : { namespace: options.namespace }) }
    // No `config` option at all is the documented empty start; an explicit null/undefined is not.
    const loaded = 'config' in options ? loadCheckedConfig(options.config, this.#load) : { config: {}, unsupported: [], source: undefined }
    this.unsupported = loaded.unsupported
    reportLoaded(loaded)
    const xdsOptions = options.xds === true ? {} : options.xds === false || options.xds === undefined ? undefined : options.xds
    if (xdsOptions !== undefined) {
      requireXdsDependencies()
      const { readBootstrap, XdsClient } = xdsClientModule()
      const bootstrap = readBootstrap(xdsOptions.bootstrap)
      const timeout = xdsOptions.resourceTimeout === undefined ? 15_000 : parseDuration(xdsOptions.resourceTimeout)
      if (timeout === undefined || timeout <= 0) throw new MeshError('SIDECARLESS_ERR_INVALID_ARGUMENT', `xds.resourceTimeout is ${JSON.stringify(xdsOptions.resourceTimeout)}; write a positive duration such as "15s"`)
      this.#xds = new XdsClient({
        bootstrap,
        listeners: xdsOptions.listeners ?? [],
        onDemand: xdsOptions.onDemand ?? true,
        resourceTimeoutMs: timeout,
        base: loaded.config,
      }, {
        apply: (config) => this.#apply(config),
        connected: (server) => this.#emitSafely('xdsConnected', { server }),
        disconnected: (server, reason) => this.#emitSafely('xdsDisconnected', { server, reason }),
        rejected: (err) => this.#emitSafely('configRejected', err),
      })
      const client = this.#xds
      const preset = xdsOptions.listeners ?? []
      this.xds = Object.freeze({
        status: () => client.status(),
        ready: (listeners?: readonly string[]) => client.ready(listeners ?? preset),
      })
    }
    this.#registry = new HostRegistry({
      outlierEjection: (e) => this.#emitSafely('outlierEjection', e),
      endpointHealth: (e) => this.#emitSafely('endpointHealth', e),
    })
    try {
      this.#store = new SnapshotStore(loaded.config, this.#registry, this.#limits)
    } catch (err) {
      if (err instanceof ConfigError && loaded.source !== undefined) throw new ConfigError(err.issues, { source: loaded.source })
      throw err
    }
    this.#metricsRegistry = new MetricsRegistry({ service: options.service, workload: workloadOf(options.service, this.labels) })
    this.#metricsRegistry.setEndpointLabelsSource((cluster, subset, endpoint) => endpointLabels(this.#store.current.clusters.get(cluster), subset, endpoint))
    this.#metricsRegistry.setLimitSource(() => this.#limits.stats())
    this.#metricsRegistry.setResilienceSource(() => resilienceStats(this.#store.current.clusters))
    this.#registry.tlsStats = this.#metricsRegistry.security.tls
    this.#registry.onBreakerChange = (change) => {
      if (this.listenerCount('circuitBreaker') > 0) this.emit('circuitBreaker', change)
    }
    this.#metricsRegistry.setHealthSource(() => this.#perCluster((c) => c.healthStats()))
    this.#metricsRegistry.setDnsSource(() => this.#perCluster((c) => c.dnsStats()))
    const exposition = (options?: PrometheusOptions): string =>
      this.#metricsRegistry.prometheus() + buildInfo(packageVersion()) + (options?.process === false ? '' : processMetrics()) +
      (this.#xds === undefined ? '' : xdsClientModule().xdsPrometheus(this.#xds.status()))
    this.metrics = Object.freeze({
      snapshot: () => this.#metricsRegistry.snapshot(),
      prometheus: exposition,
      registerWith: (registry: PromClientRegistry, options?: RegisterOptions) => registerWith(registry, () => exposition({ process: options?.process === true }), options),
    })
    this.#tracer = new MeshTracer({ serviceName: options.service ?? 'sidecarless', labels: this.labels })
    this.tracing = Object.freeze({ recent: () => this.#tracer.recent(), exporters: () => this.#tracer.exporters() })
    this.#pipeline = new InboundPipeline(() => this.#store.current, this.#tracer, this.#metricsRegistry)
    this.dispatcher = new MeshDispatcher(this.#store, {
      onClose: (force) => this.#shutdown(force),
      tracer: this.#tracer,
      metrics: this.#metricsRegistry,
      resolveAuthority: this.#xds === undefined ? undefined : (authority, scheme) => this.#xds?.resolveAuthority(authority, scheme),
    })
    this.fetch = createMeshFetch(this.dispatcher)
    this.traffic = Object.freeze({
      split: async (name: string, weights: TrafficWeights) => {
        const xds = this.#xds
        if (xds === undefined) {
          const current = this.#store.current.config as MeshConfig
          return this.#apply(applySplit(current, name, weights))
        }
        // With xDS the split is a change of the config file's part; what xDS serves is the server's to change.
        const base = xds.base
        const inBase = (base.virtualHosts ?? []).some((v) => v.name === name) || (base.clusters ?? []).some((c) => c.name === name)
        if (!inBase && (xds.manages(name) || (this.config.clusters ?? []).some((c) => c.name === name))) {
          throw new MeshError('SIDECARLESS_ERR_XDS_MANAGED', `"${name}" comes from the xDS server (${xds.status().server}); change its split there (a VirtualService for istiod, cp.traffic.split() for sidecarless control-plane)`)
        }
        await xds.setBase(applySplit(base, name, weights))
        return Object.freeze({ version: this.version, config: this.config })
      },
      get: (name: string) => readSplit(this.#store.current.config as MeshConfig, name),
      rollout: (name: string, options: RolloutOptions) => this.#rollout(name, options),
    })
    void this.#xds?.start()
    if (options.serveAdmin !== false) {
      this.#adminConfig = JSON.stringify(loaded.config.admin ?? null)
      if (loaded.config.admin !== undefined) this.#admin = this.#serveAdmin(loaded.config.admin, loaded.source)
    }
  }

  /** See {@link MeshState}. */
  get state(): MeshState {
    return this.#state
  }

  /**
   * Where the admin endpoint listens (`host:port`), once it does; `undefined` when the
   * config has no `admin`. Rejects with `SIDECARLESS_ERR_ADMIN_LISTEN` when it could not
   * listen.
   */
  async adminAddress(): Promise<string | undefined> {
    return (await this.#admin)?.address
  }

  /** The config in force (frozen). */
  get config(): DeepReadonly<MeshConfig> {
    return this.#store.current.config
  }

  /** The snapshot version in force; it increases with every applied config. */
  get version(): number {
    return this.#store.current.version
  }

  /** @internal the snapshot in force (for tests, admin and later parts). */
  get snapshot(): Snapshot {
    return this.#store.current
  }

  /**
   * Creates a node:http server (node:https when TLS options are given) whose requests run
   * through the mesh: trace context, request id, inbound route, metrics. Same arguments as
   * `http.createServer`.
   */
  createServer(handler?: RequestListener): http.Server
  createServer(options: http.ServerOptions | https.ServerOptions, handler?: RequestListener): http.Server | https.Server
  createServer(a?: http.ServerOptions | https.ServerOptions | RequestListener, b?: RequestListener): http.Server | https.Server {
    return this.#followServer(createWrappedServer(this.#pipeline, this.#servers, a, b))
  }

  /**
   * Makes an existing node:http or node:https server run its requests through the mesh,
   * whatever framework handles them (Express, Fastify, Koa, ...). Returns the server.
   * `close()` drains it. A server the `sidecarless/register` hook wrapped is taken over by
   * this mesh; one that another mesh's `wrap()` or `createServer()` holds is refused with
   * `SIDECARLESS_ERR_INVALID_ARGUMENT`.
   */
  wrap<S extends http.Server | https.Server>(server: S): S {
    return this.#followServer(wrapServer(server, this.#pipeline, this.#servers, 'explicit'))
  }

  /**
   * @internal the register hook's wrap: it gives way to an app's explicit `wrap()` of the
   * same server, and never takes a server from another mesh.
   */
  wrapImplicitly<S extends http.Server | https.Server>(server: S): S {
    return this.#followServer(wrapServer(server, this.#pipeline, this.#servers, 'implicit'))
  }

  /**
   * @internal marks the mesh not ready (`/ready` answers 503) without closing it: SIGTERM
   * under `sidecarless/register` when the app handles the signal itself.
   */
  markDraining(): void {
    if (this.#state === 'LIVE') this.#state = 'DRAINING'
  }

  /** @internal the drain times in force: per field, the `drain` option, else the config's, else the defaults. */
  drainTimes(): DrainTimes {
    const option = this.#drainOverride
    const config = this.#store.current.config.drain
    return {
      timeoutMs: parseDuration(option?.timeout ?? config?.timeout) ?? defaults.drainTimeoutMs,
      delayMs: parseDuration(option?.delay ?? config?.delay) ?? defaults.drainDelayMs,
    }
  }

  /** xDS: a server's inbound Listener is subscribed while it listens. */
  #followServer<S extends http.Server | https.Server>(server: S): S {
    const xds = this.#xds
    if (xds === undefined) return server
    let bound: ReturnType<typeof server.address> = null
    const listening = (): void => {
      bound = server.address()
      xds.serverListening(bound)
    }
    if (server.listening) listening()
    server.on('listening', listening)
    server.on('close', () => {
      if (bound !== null) xds.serverClosed(bound)
      bound = null
    })
    return server
  }

  /**
   * The context of the request being served, anywhere in its async call tree:
   * `{ traceId, spanId, requestId, route, peer, ... }`; `undefined` outside a request.
   */
  context(): RequestContext | undefined {
    return currentContext()
  }

  /**
   * Tells how the config in force would route a request, without sending it: the virtual
   * host, the route, the possible destinations with their weights, the rewritten path and
   * host, or the local answer (redirect, direct response, no route, pass-through).
   */
  route(query: RouteQuery): RouteDecision {
    return decideRoute(this.#store.current, query)
  }

  /**
   * Validates and applies a new config (object, Envoy bootstrap, Istio manifests, or file path). Requests in
   * flight finish on the config they started with. Rejects with a {@link ConfigError}
   * listing every problem when the config is invalid — `null`, `undefined` and a file with
   * no document included (`EMPTY_CONFIG`); the current config stays in force.
   */
  async update(config: MeshConfig | string | object): Promise<ConfigApplied> {
    let loaded
    try {
      loaded = loadCheckedConfig(config, this.#load)
    } catch (err) {
      if (err instanceof ConfigError) this.emit('configRejected', err)
      throw err
    }
    reportLoaded(loaded)
    if (this.#xds !== undefined) {
      if (this.dispatcher.closed) throw new MeshError('SIDECARLESS_ERR_CLOSED', 'the mesh is closed; config updates are refused')
      await this.#xds.setBase(loaded.config)
      this.unsupported = loaded.unsupported
      return Object.freeze({ version: this.version, config: this.config })
    }
    const applied = await this.#apply(loaded.config)
    this.unsupported = loaded.unsupported
    return applied
  }

  async #apply(config: MeshConfig): Promise<ConfigApplied> {
    try {
      const snapshot = await this.#store.apply(config)
      this.#checkAdminChange(config.admin)
      const applied = Object.freeze({ version: snapshot.version, config: snapshot.config })
      this.emit('config', applied)
      return applied
    } catch (err) {
      if (err instanceof ConfigError) this.emit('configRejected', err)
      throw err
    }
  }

  /**
   * Makes the mesh the process-wide undici dispatcher, so the global `fetch` (and undici
   * calls without a dispatcher) go through it. Returns a function that restores the
   * dispatcher that was global before (if the mesh is still the global one).
   */
  installGlobal(): () => void {
    if (this.dispatcher.closed) throw new MeshError('SIDECARLESS_ERR_CLOSED', 'the mesh is closed')
    const previous: Dispatcher = getGlobalDispatcher()
    setGlobalDispatcher(this.dispatcher)
    let restored = false
    const restore = (): void => {
      if (restored) return
      restored = true
      if (getGlobalDispatcher() === this.dispatcher) setGlobalDispatcher(previous)
      if (this.#restoreGlobal === restore) this.#restoreGlobal = undefined
    }
    this.#restoreGlobal = restore
    return restore
  }

  /**
   * Drains and closes the mesh. At once: the mesh is not ready (`state` is `DRAINING`, the
   * admin endpoint's `/ready` answers 503), new outbound requests are refused except those
   * made by the inbound requests being drained, and every server the mesh wrapped answers
   * with `connection: close` and closes its idle keep-alive connections. After
   * `drain.delay` (default 0) the servers stop accepting; requests in flight get
   * `drain.timeout` (default 20s) to finish, then their connections are cut. Then every
   * connection pool and timer closes, the global dispatcher is restored if
   * `installGlobal()` replaced it, spans still queued for `tracing.zipkin` / `tracing.otlp`
   * are sent (within the export timeout, 10s), and the admin endpoint closes. Resolves
   * when all of it is closed; calling it again returns the same promise.
   */
  close(): Promise<void> {
    return this.dispatcher.close()
  }

  /**
   * Emits a health event from a timer or the request path: a listener that throws must not
   * break either, so its error becomes a process warning.
   */
  #emitSafely<K extends 'outlierEjection' | 'endpointHealth' | 'xdsConnected' | 'xdsDisconnected' | 'configRejected'>(name: K, event: MeshEvents[K][0]): void {
    if (this.listenerCount(name) === 0) return
    try {
      ;(this.emit as (n: K, e: MeshEvents[K][0]) => boolean)(name, event)
    } catch (err) {
      process.emitWarning(`a "${name}" listener threw: ${err instanceof Error ? err.message : String(err)}`, { code: 'SIDECARLESS_LISTENER_ERROR' })
    }
  }

  /** One entry per cluster in force for which `pick` has something (health, DNS). */
  #perCluster<T>(pick: (c: Cluster) => T | undefined): Record<string, T> {
    const out: Record<string, T> = {}
    for (const [name, c] of this.#store.current.clusters) {
      const stats = pick(c)
      if (stats !== undefined) out[name] = stats
    }
    return out
  }

  async #rollout(name: string, options: RolloutOptions): Promise<Rollout> {
    if (this.#closing !== undefined) throw new MeshError('SIDECARLESS_ERR_CLOSED', 'the mesh is closed')
    if (typeof name !== 'string') throw new MeshError('SIDECARLESS_ERR_INVALID_ARGUMENT', 'rollout: the name must be a string (a virtual host or a cluster)')
    if (this.#rollouts.has(name)) throw new MeshError('SIDECARLESS_ERR_ROLLOUT_RUNNING', `a rollout of "${name}" is running; abort it first (rollout.abort())`)
    const rollout = createRollout(name, options, {
      split: (weights) => this.traffic.split(name, weights),
      read: () => splitTarget(this.#store.current.config as MeshConfig, name),
      metrics: () => this.#metricsRegistry.snapshot(),
      ended: (r) => {
        if (this.#rollouts.get(name) === r) this.#rollouts.delete(name)
      },
    })
    // Held for the name while the first step is applied, so a second call cannot race it.
    this.#rollouts.set(name, rollout)
    await rollout.begin()
    return rollout
  }

  #shutdown(force: boolean): Promise<void> {
    this.#closing ??= (async () => {
      this.#state = 'DRAINING'
      for (const r of this.#rollouts.values()) r.closed()
      this.#rollouts.clear()
      // The servers first, while the outbound side still serves the requests they finish
      // (through the global fetch too: it is restored only after).
      this.dispatcher.serveDrain(true)
      await this.#servers.drain(force ? { delayMs: 0, timeoutMs: 0 } : this.drainTimes())
      this.dispatcher.serveDrain(false)
      this.#restoreGlobal?.()
      await this.#xds?.close()
      await this.#store.close()
      await Promise.all([this.dispatcher.closePassThrough(force), this.#registry.closeAll(force), this.#limits.close()])
      // Last: the spans of requests that finished while the pools drained are flushed too.
      await this.#tracer.shutdown(force)
      await this.#admin?.then((a) => a.close(), () => undefined)
      this.#state = 'CLOSED'
    })()
    return this.#closing
  }

  /** Starts the admin endpoint; its failure is a warning (the mesh works without it). */
  #serveAdmin(config: AdminConfig, configPath: string | undefined): Promise<AdminServer> {
    const warn = (message: string, code: string): void => process.emitWarning(message, { code })
    const at = adminBindAddress(config, (m) => warn(m, 'SIDECARLESS_ADMIN_LOOPBACK'))
    const where = formatListenAddress(at.host, at.port)
    const started = startAdmin(this, at.host, at.port, {
      version: packageVersion(),
      startedAt: Date.now(),
      configPath,
      listener: () => this.#servers.addresses().join(',') || 'none',
      state: () => this.#state,
    }).catch((err: unknown) => {
      const failure = new MeshError('SIDECARLESS_ERR_ADMIN_LISTEN', `the admin endpoint cannot listen on ${where}: ${(err as Error).message}`, { cause: err })
      warn(failure.message, 'SIDECARLESS_ADMIN_LISTEN_FAILED')
      throw failure
    })
    // Reported by the warning; `adminAddress()` callers still get the rejection.
    started.catch(() => undefined)
    return started
  }

  #checkAdminChange(admin: AdminConfig | undefined): void {
    if (this.#adminConfig === undefined) return
    const next = JSON.stringify(admin ?? null)
    if (next === this.#adminConfig) return
    this.#adminConfig = next
    process.emitWarning('the config changed admin; the admin endpoint keeps its address until the process restarts', { code: 'SIDECARLESS_ADMIN_RESTART' })
  }
}

/** Checks the `drain` option as validation checks the config's (durations, at most 1h). */
function checkDrainOption(drain: DrainConfig | undefined): DrainConfig | undefined {
  if (drain === undefined) return undefined
  for (const key of ['timeout', 'delay'] as const) {
    const value = drain[key]
    if (value === undefined) continue
    const ms = parseDuration(value)
    if (ms === undefined || ms > limits.drainMs) {
      throw new MeshError('SIDECARLESS_ERR_INVALID_ARGUMENT', `options.drain.${key} is ${JSON.stringify(value)}; give a duration such as "20s" (at most 1h)`)
    }
  }
  return Object.freeze({ ...drain })
}

/** Reading the mesh's metrics. */
export interface MeshMetrics {
  /** Every counter and latency summary, per inbound route and per outbound cluster, subset and endpoint. */
  snapshot(): MetricsSnapshot
  /**
   * The same in Prometheus text exposition format 0.0.4 (serve it with `Content-Type:
   * text/plain; version=0.0.4`): Envoy-like names (`sidecarless_…`), Istio's standard
   * metrics (`istio_requests_total`, `istio_request_duration_milliseconds`,
   * `istio_request_bytes`, `istio_response_bytes`) and, unless `{ process: false }`, the
   * process and runtime metrics under prom-client's default names (`process_*`, `nodejs_*`).
   */
  prometheus(options?: PrometheusOptions): string
  /**
   * Adds the mesh's metrics to an app's own prom-client registry, so the app's `/metrics`
   * serves them too: `mesh.metrics.registerWith(register)` with prom-client's default
   * `register` or any `new Registry()`. Process metrics are left out unless
   * `{ process: true }` (the app's `collectDefaultMetrics()` has them). A name the registry
   * already has stays the app's. Returns a function that removes the mesh's metrics again.
   *
   * ```ts
   * import { collectDefaultMetrics, register } from 'prom-client'
   * collectDefaultMetrics()
   * mesh.metrics.registerWith(register)
   * app.get('/metrics', async (_req, res) => res.type(register.contentType).send(await register.metrics()))
   * ```
   */
  registerWith(registry: PromClientRegistry, options?: RegisterOptions): () => void
}

/** Options of `mesh.metrics.prometheus()`. */
export interface PrometheusOptions {
  /** Whether to add the process and runtime metrics (default true). */
  readonly process?: boolean
}

/** Reading the mesh's spans. */
export interface MeshTracing {
  /** Finished spans kept in memory (oldest first), when the app registered no tracer provider. */
  recent(): FinishedSpan[]
  /**
   * Counters of the collectors named by `tracing.zipkin` / `tracing.otlp` (or the `OTEL_*`
   * variables): spans queued, exported, dropped (the batch queue was full) and failed (after
   * the exporter's retries). Empty until the first sampled span, and when the app registered
   * its own tracer provider.
   */
  exporters(): ExporterStats[]
}

type RequestListener = (req: http.IncomingMessage, res: http.ServerResponse) => void

/** Creates a mesh. Throws a {@link ConfigError} when the initial config is invalid. */
export function createMesh(options: MeshOptions = {}): Mesh {
  return new Mesh(options)
}

let xdsClient: typeof XdsClientModule | undefined

/**
 * The xDS client, loaded by the first mesh created with `xds` (synchronously: `require` of
 * an ES module, Node >= 22.12): a mesh with a static config never loads its ~40 modules.
 */
function xdsClientModule(): typeof XdsClientModule {
  return (xdsClient ??= createRequire(import.meta.url)('./xds/client/index.js') as typeof XdsClientModule)
}

/**
 * The optional xDS dependencies, checked when the mesh is created (resolved, not loaded), so
 * a missing one fails `createMesh` rather than every later request.
 */
function requireXdsDependencies(): void {
  const require = createRequire(import.meta.url)
  for (const name of ['@grpc/grpc-js', 'protobufjs']) {
    try {
      require.resolve(name)
    } catch (err) {
      throw new MeshError('SIDECARLESS_ERR_XDS_UNAVAILABLE', `xDS needs the optional dependency ${name}, which is not installed; install it with npm install ${name}`, { cause: err })
    }
  }
}

function resilienceStats(clusters: ReadonlyMap<string, Cluster>): Record<string, ClusterResilienceStats> {
  const out: Record<string, ClusterResilienceStats> = {}
  for (const [name, c] of clusters) {
    const stats = c.resources.stats()
    if (c.breakers === null) {
      out[name] = stats
      continue
    }
    const breakers: Record<string, BreakerStats> = {}
    c.breakers.forEach((b, i) => (breakers[i === 0 ? '(cluster)' : (c.subsetNames[i - 1] as string)] = b.stats()))
    out[name] = { ...stats, breakers }
  }
  return out
}

/**
 * Istio's destination labels of an outbound request come from the endpoint's labels (its
 * `version`, `app`, ...), or, before an endpoint was chosen, from the subset's selector.
 */
function endpointLabels(cluster: Cluster | undefined, subset: string | undefined, endpoint: string | undefined): Readonly<Record<string, string>> | undefined {
  if (cluster === undefined) return undefined
  if (endpoint !== undefined) {
    const e = cluster.members.endpoints.find((m) => m.host.address.hostPort === endpoint)
    if (e !== undefined) return e.labels
  }
  return subset === undefined ? undefined : cluster.config.subsets?.find((s) => s.name === subset)?.labels
}
