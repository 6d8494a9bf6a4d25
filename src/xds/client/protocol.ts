/**
 * The client side of state-of-the-world ADS (Envoy's "xDS REST and gRPC protocol"), as
 * gRPC's xDS client runs it, without gRPC: requests out as objects, responses in as their
 * envelope, so it is testable alone.
 *
 * - Per type: the names subscribed, the version last accepted (kept across streams), the
 *   nonce of the last response on this stream, and the NACK reason to send.
 * - A response is judged resource by resource (gRFC A46): the valid ones are cached and
 *   used, the invalid ones NACKed with every reason while their last good version stays;
 *   the response is ACKed (its version and nonce) when all were valid, else NACKed with
 *   `error_detail` listing every reason; the version moves on when at least one resource
 *   was valid, as gRPC does.
 * - Listeners and Clusters come in full state: one cached before and missing from a
 *   response is deleted (unless the server has `ignore_resource_deletion`, gRFC A53); one
 *   never received is left to its timer.
 * - A does-not-exist timer (15 s) runs per requested resource, started only once the
 *   request is on a connected stream (gRFC A57), stopped while disconnected.
 * - After a reconnect every subscribed name is requested again, with the versions held.
 *
 * @module
 */
import type { AnyParts } from '../codec.js'
import { typeUrlOf } from '../type-urls.js'
import type { XdsObject } from '../types.js'
import type { UnsupportedField } from '../../config/envoy/index.js'
import type { DecodeContext, Decoder } from './resources.js'
import type { ResourceStatus, XdsResourceType } from './status.js'
import type { RawDiscoveryResponse } from './wire.js'

/** The type URL of each resource type. */
export const TYPE_URLS: { readonly [K in XdsResourceType]: string } = {
  listener: typeUrlOf('envoy.config.listener.v3.Listener'),
  route: typeUrlOf('envoy.config.route.v3.RouteConfiguration'),
  cluster: typeUrlOf('envoy.config.cluster.v3.Cluster'),
  endpoint: typeUrlOf('envoy.config.endpoint.v3.ClusterLoadAssignment'),
}
const RESOURCE_WRAPPER = typeUrlOf('envoy.service.discovery.v3.Resource')

/** Types whose responses hold every subscribed resource (a missing one was deleted). */
const FULL_STATE: ReadonlySet<XdsResourceType> = new Set(['listener', 'cluster'])

export type { ResourceStatus } from './status.js'

/** A NACK of one resource. */
export interface ResourceError {
  /** The version of the response that carried it. */
  readonly version: string
  /** Every reason. */
  readonly message: string
  /** When (ms since the epoch). */
  readonly at: number
}

/** One subscribed resource. */
export interface ResourceEntry<V = unknown> {
  readonly type: XdsResourceType
  readonly name: string
  status: ResourceStatus
  /** The last accepted value (kept when a later version is NACKED, and after a deletion until the caller drops it). */
  value: V | undefined
  /** Its wire bytes: an unchanged resource is not decoded again. */
  bytes: Uint8Array | undefined
  /** The response version that carried `value`. */
  version: string | undefined
  /** When `value` was accepted. */
  lastUpdated: number | undefined
  /** What the translators did not apply. */
  warnings: readonly UnsupportedField[]
  /** The last NACK of this resource (kept after a later good version, as CSDS's error_state). */
  error: ResourceError | undefined
  /** Deleted by the server (full-state types) while `value` is still held. */
  deleted: boolean
  timer: NodeJS.Timeout | undefined
}

/** What the protocol asks of its owner. */
export interface ProtocolHost {
  /** Sends a DiscoveryRequest (object form); false when no stream is open. */
  send(request: XdsObject): boolean
  /** Decodes one resource's Any (throws a coded error when it does not parse). */
  decodeAny(any: AnyParts): XdsObject
  /** Resources changed (accepted, deleted, found not to exist); called once per batch. */
  changed(type: XdsResourceType, names: readonly string[]): void
  /** A response was NACKed; `errors` has every reason, one per refused resource. */
  nacked(type: XdsResourceType, version: string, errors: readonly string[]): void
  /** A response was ACKed. */
  acked(type: XdsResourceType, version: string): void
}

/** Settings of the protocol. */
export interface ProtocolOptions {
  /** The node sent on the first request of each stream. */
  readonly node: XdsObject
  /** The does-not-exist timer (gRPC: 15 s). */
  readonly resourceTimeoutMs: number
  /** The server's `ignore_resource_deletion` feature (gRFC A53). */
  readonly ignoreResourceDeletion: boolean
  readonly decoders: { readonly [K in XdsResourceType]: Decoder<unknown> }
  readonly context: DecodeContext
}

interface TypeState {
  readonly type: XdsResourceType
  readonly entries: Map<string, ResourceEntry>
  /** The version last accepted; sent in every request of the type. */
  version: string
  /** The nonce of the last response on this stream. */
  nonce: string
  /** The NACK reason sent with requests until a response is fully accepted. */
  error: string | undefined
  /** Whether a request of this type was sent on this stream (the first must name resources). */
  sent: boolean
  dirty: boolean
}

/** Counters for status and metrics. */
export interface ProtocolCounters {
  responses: number
  acks: number
  nacks: number
  /** Resources accepted, by type. */
  updates: Record<XdsResourceType, number>
  /** Resources refused, by type. */
  rejections: Record<XdsResourceType, number>
}

const TYPES: readonly XdsResourceType[] = ['listener', 'route', 'cluster', 'endpoint']

/** The per-type state of one ADS client across its streams. */
export class AdsProtocol {
  readonly #options: ProtocolOptions
  readonly #host: ProtocolHost
  readonly #types = new Map<XdsResourceType, TypeState>()
  readonly counters: ProtocolCounters = {
    responses: 0, acks: 0, nacks: 0,
    updates: { listener: 0, route: 0, cluster: 0, endpoint: 0 },
    rejections: { listener: 0, route: 0, cluster: 0, endpoint: 0 },
  }
  #connected = false
  #nodeSent = false
  #flushQueued = false
  #closed = false

  constructor(options: ProtocolOptions, host: ProtocolHost) {
    this.#options = options
    this.#host = host
    for (const type of TYPES) this.#types.set(type, { type, entries: new Map(), version: '', nonce: '', error: undefined, sent: false, dirty: false })
  }

  /** The entry of a subscribed resource. */
  entry(type: XdsResourceType, name: string): ResourceEntry | undefined {
    return this.#state(type).entries.get(name)
  }

  /** Every subscribed resource of a type. */
  entries(type: XdsResourceType): IterableIterator<ResourceEntry> {
    return this.#state(type).entries.values()
  }

  /** The version last accepted for a type ('' before any). */
  version(type: XdsResourceType): string {
    return this.#state(type).version
  }

  /** Subscribes to a resource (requested on the next flush). */
  subscribe(type: XdsResourceType, name: string): ResourceEntry {
    const state = this.#state(type)
    let entry = state.entries.get(name)
    if (entry !== undefined) return entry
    entry = {
      type, name, status: 'REQUESTED', value: undefined, bytes: undefined, version: undefined, lastUpdated: undefined,
      warnings: [], error: undefined, deleted: false, timer: undefined,
    }
    state.entries.set(name, entry)
    this.#markDirty(state)
    return entry
  }

  /** Unsubscribes; the cached value goes with it. */
  unsubscribe(type: XdsResourceType, name: string): void {
    const state = this.#state(type)
    const entry = state.entries.get(name)
    if (entry === undefined) return
    clearTimeout(entry.timer)
    state.entries.delete(name)
    this.#markDirty(state)
  }

  /** A new stream: nonces reset, the node goes with the first request, every subscription is sent again. */
  streamStarted(): void {
    this.#nodeSent = false
    for (const state of this.#types.values()) {
      state.nonce = ''
      state.sent = false
      state.dirty = state.entries.size > 0
    }
    this.flush()
  }

  /** The stream is on a connected channel: the timers of what was requested start. */
  connected(): void {
    this.#connected = true
    for (const state of this.#types.values()) if (state.sent) this.#startTimers(state)
  }

  /** The stream ended: timers stop (they start again on the next connected stream). */
  streamEnded(): void {
    this.#connected = false
    for (const state of this.#types.values()) {
      for (const entry of state.entries.values()) {
        clearTimeout(entry.timer)
        entry.timer = undefined
      }
    }
  }

  /** Stops every timer; nothing more is sent. */
  close(): void {
    this.#closed = true
    this.streamEnded()
  }

  /** Sends one request for each type whose subscriptions or ACK state changed. */
  flush(): void {
    this.#flushQueued = false
    if (this.#closed) return
    for (const state of this.#types.values()) {
      if (!state.dirty) continue
      // The first request of a type must name resources: an empty list would be a wildcard.
      if (!state.sent && state.entries.size === 0) {
        state.dirty = false
        continue
      }
      const request: XdsObject = {
        version_info: state.version,
        resource_names: [...state.entries.keys()],
        type_url: TYPE_URLS[state.type],
        response_nonce: state.nonce,
      }
      if (state.error !== undefined) request['error_detail'] = { code: INVALID_ARGUMENT, message: state.error }
      if (!this.#nodeSent) request['node'] = this.#options.node
      if (!this.#host.send(request)) return
      this.#nodeSent = true
      state.sent = true
      state.dirty = false
      if (this.#connected) this.#startTimers(state)
    }
  }

  /** Handles one response; the ACK or NACK goes out on the next flush (this same tick). */
  response(raw: RawDiscoveryResponse): void {
    if (this.#closed) return
    const type = typeOfUrl(raw.typeUrl)
    // A type never asked for: nothing to ACK (gRPC ignores it too).
    if (type === undefined) return
    this.counters.responses++
    const state = this.#state(type)
    state.nonce = raw.nonce
    const decode = this.#options.decoders[type]
    const errors: string[] = []
    const seen = new Set<string>()
    const changed: string[] = []
    let valid = false
    const now = Date.now()
    raw.resources.forEach((any, i) => {
      const at = `resource index ${i}`
      let resource: XdsObject
      let bytes = any.value
      try {
        let object = this.#host.decodeAny(any)
        if (any.type_url === RESOURCE_WRAPPER) {
          const inner = object['resource']
          if (typeof inner !== 'object' || inner === null) throw new Error('a Resource wrapper without resource')
          object = inner as XdsObject
          bytes = new Uint8Array(0)
        }
        const url = object['@type']
        if (url !== raw.typeUrl) {
          errors.push(`${at}: incorrect resource type "${String(url)}" (should be "${raw.typeUrl}")`)
          return
        }
        resource = object
      } catch (err) {
        errors.push(`${at}: ${(err as Error).message}`)
        return
      }
      const result = decode(resource, this.#options.context)
      const name = result.name
      if (name !== undefined) {
        if (seen.has(name)) {
          errors.push(`${at}: resource "${name}" appears twice in one response`)
          return
        }
        seen.add(name)
      }
      const entry = name === undefined ? undefined : state.entries.get(name)
      if (!result.ok) {
        const message = result.errors.join('; ')
        errors.push(`${at}${name === undefined ? '' : ` ("${name}")`}: ${message}`)
        this.counters.rejections[type]++
        if (entry !== undefined) {
          entry.status = 'NACKED'
          entry.error = { version: raw.versionInfo, message, at: now }
          clearTimeout(entry.timer)
          entry.timer = undefined
        }
        return
      }
      valid = true
      // Not subscribed (any more): ignored, as gRPC does.
      if (entry === undefined) return
      clearTimeout(entry.timer)
      entry.timer = undefined
      const same = entry.value !== undefined && !entry.deleted && entry.bytes !== undefined && bytes.length > 0 && sameBytes(entry.bytes, bytes)
      entry.status = 'ACKED'
      entry.version = raw.versionInfo
      entry.deleted = false
      if (same) return
      entry.value = result.value
      entry.bytes = bytes
      entry.warnings = result.warnings
      entry.lastUpdated = now
      this.counters.updates[type]++
      changed.push(entry.name)
    })
    if (FULL_STATE.has(type) && !this.#options.ignoreResourceDeletion) {
      for (const entry of state.entries.values()) {
        // Never received: its timer decides. Received before and missing now: deleted.
        if (seen.has(entry.name) || entry.value === undefined || entry.deleted) continue
        entry.status = 'DOES_NOT_EXIST'
        entry.deleted = true
        changed.push(entry.name)
      }
    }
    if (valid || errors.length === 0) state.version = raw.versionInfo
    state.error = errors.length === 0 ? undefined : `xDS response validation errors: [${errors.join('; ')}]`
    this.#markDirty(state)
    if (state.error === undefined) {
      this.counters.acks++
      this.#host.acked(type, raw.versionInfo)
    } else {
      this.counters.nacks++
      this.#host.nacked(type, raw.versionInfo, errors)
    }
    if (changed.length > 0) this.#host.changed(type, changed)
  }

  #startTimers(state: TypeState): void {
    for (const entry of state.entries.values()) {
      if (entry.timer !== undefined || entry.value !== undefined || entry.status !== 'REQUESTED') continue
      entry.timer = setTimeout(() => {
        entry.timer = undefined
        if (state.entries.get(entry.name) !== entry || entry.value !== undefined) return
        entry.status = 'DOES_NOT_EXIST'
        this.#host.changed(state.type, [entry.name])
      }, this.#options.resourceTimeoutMs)
      entry.timer.unref()
    }
  }

  #markDirty(state: TypeState): void {
    state.dirty = true
    if (this.#flushQueued) return
    this.#flushQueued = true
    queueMicrotask(() => this.flush())
  }

  #state(type: XdsResourceType): TypeState {
    return this.#types.get(type) as TypeState
  }
}

/** google.rpc.Code INVALID_ARGUMENT: what a NACK's error_detail says. */
const INVALID_ARGUMENT = 3

function typeOfUrl(url: string): XdsResourceType | undefined {
  for (const type of TYPES) if (TYPE_URLS[type] === url) return type
  return undefined
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength))
}
