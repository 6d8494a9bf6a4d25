/**
 * The server side of one state-of-the-world ADS stream (Envoy's "xDS REST and gRPC
 * protocol"), per resource type: the names subscribed (or wildcard), the version and nonce
 * last sent, the version ACKed, the last NACK.
 *
 * - A request whose nonce is not the last one sent for its type is stale and ignored.
 * - A response holds the requested names the snapshot has: a missing name never holds the
 *   others back (go-control-plane's ADS mode waits for all of them, and clients hang).
 *   Listeners and clusters are sent in full (the state of the world): a name left out is a
 *   name removed.
 * - A new name, a new subscription or a new snapshot version gets a response; an ACK or a
 *   NACK alone does not. After a NACK nothing more of that type is sent until the snapshot
 *   has a new version, so a client that cannot accept a resource is not sent it in a loop.
 * - Pushes go out in make-before-break order: clusters, endpoints, listeners, routes.
 *
 * The class knows nothing of gRPC: it gets decoded requests and hands wire responses to
 * `send`, so the protocol is testable on its own.
 *
 * @module
 */
import type { XdsNack, XdsNode, XdsObject, XdsTypeStatus } from './types.js'
import type { XdsSnapshot } from './snapshot.js'

export type { XdsNack, XdsNode, XdsTypeStatus } from './types.js'
import { kindOfTypeUrl, ResourceTypeNames, typeUrlOf, type ResourceKind } from './type-urls.js'

/** The order a new snapshot is pushed in: what is referenced before what references it. */
export const PUSH_ORDER: readonly ResourceKind[] = ['cluster', 'endpoint', 'listener', 'route', 'secret']

/** A DiscoveryResponse ready for the codec's wire encoder (resources already encoded). */
export interface WireDiscoveryResponse {
  readonly version_info: string
  readonly resources: readonly { readonly type_url: string; readonly value: Uint8Array }[]
  readonly type_url: string
  readonly nonce: string
  readonly control_plane?: { readonly identifier: string }
}




/** What a stream tells its control plane. */
export interface StreamHost {
  /** The snapshot in force. */
  snapshot(): XdsSnapshot
  /** Writes a response on the stream. */
  send(response: WireDiscoveryResponse): void
  /** The client ACKed a response. */
  acked(stream: AdsStream, kind: ResourceKind | undefined): void
  /** The client NACKed a response. */
  nacked(stream: AdsStream, typeUrl: string, nack: XdsNack): void
  /** A request was ignored (a stale nonce), with the reason. */
  ignored(stream: AdsStream, why: string): void
  /** The client broke the protocol (a request without a type URL): the stream is ended. */
  refused(stream: AdsStream, why: string): void
  readonly identifier: string
}

interface Subscription {
  readonly typeUrl: string
  readonly kind: ResourceKind | undefined
  wildcard: boolean
  names: Set<string>
  nonce: string | undefined
  sentVersion: string | undefined
  ackedVersion: string | undefined
  ackedNonce: string | undefined
  /** A version the client NACKed: not sent again. */
  refusedVersion: string | undefined
  lastNack: XdsNack | undefined
  nacks: number
}

/** One ADS stream. */
export class AdsStream {
  readonly id: number
  /** The peer address as gRPC reports it. */
  readonly peer: string
  /** When the stream opened (ms since the epoch). */
  readonly connectedAt: number
  #node: XdsNode | undefined
  readonly #host: StreamHost
  readonly #subs = new Map<string, Subscription>()
  #nonce = 0

  constructor(id: number, peer: string, host: StreamHost) {
    this.id = id
    this.peer = peer
    this.connectedAt = Date.now()
    this.#host = host
  }

  /** The client's node (from the first request that carried one). */
  get node(): XdsNode | undefined {
    return this.#node
  }

  /** Handles one DiscoveryRequest (object form). */
  handle(request: XdsObject): void {
    if (this.#node === undefined && isObject(request['node'])) this.#node = nodeOf(request['node'])
    const typeUrl = typeof request['type_url'] === 'string' ? request['type_url'] : ''
    if (typeUrl === '') {
      this.#host.refused(this, 'a DiscoveryRequest on an ADS stream needs a type_url')
      return
    }
    let sub = this.#subs.get(typeUrl)
    const first = sub === undefined
    if (sub === undefined) {
      sub = {
        typeUrl, kind: kindOfTypeUrl(typeUrl), wildcard: false, names: new Set(), nonce: undefined, sentVersion: undefined,
        ackedVersion: undefined, ackedNonce: undefined, refusedVersion: undefined, lastNack: undefined, nacks: 0,
      }
      this.#subs.set(typeUrl, sub)
    }
    const nonce = typeof request['response_nonce'] === 'string' ? request['response_nonce'] : ''
    if (nonce !== '' && nonce !== sub.nonce) {
      this.#host.ignored(this, `a ${shortType(typeUrl)} request with stale nonce ${nonce} (last sent ${sub.nonce ?? 'none'})`)
      return
    }
    const version = typeof request['version_info'] === 'string' ? request['version_info'] : ''
    let nacked = false
    if (nonce !== '') {
      const detail = request['error_detail']
      if (isObject(detail)) {
        nacked = true
        const nack: XdsNack = { version: sub.sentVersion ?? '', nonce, message: typeof detail['message'] === 'string' ? detail['message'] : '', at: Date.now() }
        sub.lastNack = nack
        sub.nacks++
        sub.refusedVersion = sub.sentVersion
        this.#host.nacked(this, typeUrl, nack)
      } else {
        sub.ackedVersion = version
        sub.ackedNonce = nonce
        this.#host.acked(this, sub.kind)
      }
    }

    const requested = Array.isArray(request['resource_names']) ? (request['resource_names'] as unknown[]).filter((n): n is string => typeof n === 'string') : []
    const explicitWildcard = requested.includes('*')
    const names = new Set(requested.filter((n) => n !== '*'))
    // Legacy wildcard (Envoy's protocol): the first LDS or CDS request naming nothing
    // subscribes to everything, and stays so while later requests name nothing either.
    const legacy = (sub.kind === 'listener' || sub.kind === 'cluster') && names.size === 0 && (first || sub.wildcard)
    const wildcard = explicitWildcard || legacy
    let added = wildcard && !sub.wildcard
    for (const n of names) if (!sub.names.has(n)) added = true
    sub.wildcard = wildcard
    sub.names = names

    const snapshot = this.#host.snapshot()
    const current = sub.kind === undefined ? '' : snapshot.versions[sub.kind]
    const behind = sub.sentVersion !== current && sub.refusedVersion !== current && !nacked
    if (first || nonce === '' || added || behind) this.#respond(sub, snapshot)
  }

  /** Sends the new snapshot's changed types, in make-before-break order. */
  push(snapshot: XdsSnapshot): void {
    for (const kind of PUSH_ORDER) {
      for (const sub of this.#subs.values()) {
        if (sub.kind !== kind) continue
        const current = snapshot.versions[kind]
        if (sub.sentVersion !== current && sub.refusedVersion !== current) this.#respond(sub, snapshot)
      }
    }
  }

  /** The state of every type the client subscribed to. */
  status(): XdsTypeStatus[] {
    return [...this.#subs.values()].map((s) => ({
      typeUrl: s.typeUrl,
      names: s.wildcard ? ['*'] : [...s.names],
      sentVersion: s.sentVersion,
      ackedVersion: s.ackedVersion,
      status: statusOf(s),
      lastNack: s.lastNack,
      nacks: s.nacks,
    }))
  }

  /** True when the client has ACKed `snapshot`'s version of every type it subscribed to. */
  inSync(snapshot: XdsSnapshot): boolean {
    for (const s of this.#subs.values()) {
      if (s.kind === undefined) continue
      if (statusOf(s) !== 'SYNCED' || s.sentVersion !== snapshot.versions[s.kind]) return false
    }
    return true
  }

  /** The version of `kind` the client last ACKed (undefined: never, or not subscribed). */
  ackedVersion(kind: ResourceKind): string | undefined {
    return this.#subs.get(typeUrlOf(ResourceTypeNames[kind]))?.ackedVersion
  }

  /** Whether the client subscribed to `kind`. */
  subscribes(kind: ResourceKind): boolean {
    return this.#subs.has(typeUrlOf(ResourceTypeNames[kind]))
  }

  /** The resources last sent of `kind`, by name, with their version (for CSDS). */
  sent(kind: ResourceKind, snapshot: XdsSnapshot): { names: string[]; wildcard: boolean } | undefined {
    const s = this.#subs.get(typeUrlOf(ResourceTypeNames[kind]))
    if (s === undefined) return undefined
    return { names: s.wildcard ? snapshot.names(kind) : [...s.names], wildcard: s.wildcard }
  }

  #respond(sub: Subscription, snapshot: XdsSnapshot): void {
    const resources = sub.kind === undefined ? [] : snapshot.select(sub.kind, sub.wildcard ? '*' : sub.names)
    const version = sub.kind === undefined ? '0' : snapshot.versions[sub.kind]
    const nonce = String(++this.#nonce)
    sub.nonce = nonce
    sub.sentVersion = version
    this.#host.send({
      version_info: version,
      resources: resources.map((r) => ({ type_url: sub.typeUrl, value: r.bytes })),
      type_url: sub.typeUrl,
      nonce,
      control_plane: { identifier: this.#host.identifier },
    })
  }
}

function statusOf(s: Subscription): XdsTypeStatus['status'] {
  if (s.nonce === undefined) return 'NOT_SENT'
  if (s.lastNack !== undefined && s.lastNack.nonce === s.nonce) return 'ERROR'
  if (s.ackedNonce === s.nonce) return 'SYNCED'
  return 'STALE'
}

function nodeOf(node: XdsObject): XdsNode {
  const str = (v: unknown): string => (typeof v === 'string' ? v : '')
  const version = isObject(node['user_agent_build_version']) ? '' : str(node['user_agent_version'])
  return Object.freeze({
    id: str(node['id']),
    cluster: str(node['cluster']),
    userAgent: [str(node['user_agent_name']), version].filter((s) => s !== '').join(' '),
    metadata: Object.freeze(isObject(node['metadata']) ? { ...node['metadata'] } : {}),
  })
}

function shortType(typeUrl: string): string {
  return typeUrl.slice(typeUrl.lastIndexOf('.') + 1)
}

function isObject(v: unknown): v is XdsObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}
