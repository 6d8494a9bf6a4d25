/**
 * An immutable set of xDS resources, each encoded once, with a version per type that is a
 * hash of the type's content: the same resources always give the same version, so a
 * config change that leaves a type alone pushes nothing of that type (go-control-plane's
 * snapshot cache, with content versions).
 *
 * A snapshot is checked whole when it is built (`danglingReferences`): one that names a
 * resource it does not hold is refused with every problem, and the one before stays.
 *
 * @module
 */
import { createHash } from 'node:crypto'
import { ConfigError } from '../errors.js'
import type { XdsCodec, XdsObject } from './codec.js'
import { danglingReferences } from './consistency.js'
import type { AuthorityIndex } from './emit/domains.js'
import type { EmittedResources, OmittedField } from './emit/index.js'
import { emitApiListener } from './emit/listener.js'
import { ResourceTypeNames, type ResourceKind } from './type-urls.js'

/** One resource of a snapshot. */
export interface ResourceEntry {
  readonly name: string
  /** The resource in the codec's object form (frozen). */
  readonly resource: XdsObject
  /** The resource encoded (the `value` of its Any). */
  readonly bytes: Uint8Array
  /** Hash of `bytes`. */
  readonly hash: string
  /** `resource` as JSON: an unchanged resource in the next snapshot keeps this entry. */
  readonly json: string
}

/** Resources kept from earlier snapshots until no client can still use them (make-before-break). */
export interface RetiredResources {
  readonly routes: ReadonlyMap<string, XdsObject>
  readonly clusters: ReadonlyMap<string, XdsObject>
  readonly endpoints: ReadonlyMap<string, XdsObject>
}

/** Listener names resolved on request are remembered up to this many per snapshot. */
const ON_DEMAND_LIMIT = 10_000
const KINDS: readonly ResourceKind[] = ['listener', 'route', 'cluster', 'endpoint', 'secret']

/** An immutable, consistent set of resources. Build with {@link buildSnapshot}. */
export class XdsSnapshot {
  /** Sequence number: 1 for the first snapshot of a control plane, then +1 per published snapshot. */
  readonly sequence: number
  /** Content version of each type. */
  readonly versions: Readonly<Record<ResourceKind, string>>
  /** What the config says that xDS does not carry. */
  readonly omitted: readonly OmittedField[]
  readonly #maps: Readonly<Record<ResourceKind, ReadonlyMap<string, ResourceEntry>>>
  readonly #authorities: AuthorityIndex
  readonly #codec: XdsCodec
  readonly #onDemand = new Map<string, ResourceEntry | null>()

  /** @internal */
  constructor(sequence: number, maps: Record<ResourceKind, ReadonlyMap<string, ResourceEntry>>, authorities: AuthorityIndex, codec: XdsCodec, omitted: readonly OmittedField[]) {
    this.sequence = sequence
    this.#maps = maps
    this.#authorities = authorities
    this.#codec = codec
    this.omitted = omitted
    const versions = {} as Record<ResourceKind, string>
    for (const kind of KINDS) versions[kind] = typeVersion(maps[kind], kind === 'listener' ? authorities.digest() : '')
    this.versions = Object.freeze(versions)
  }

  /** The names of every resource of `kind` (what a wildcard subscription receives). */
  names(kind: ResourceKind): string[] {
    return [...this.#maps[kind].keys()]
  }

  /** Every resource of `kind`. */
  all(kind: ResourceKind): ResourceEntry[] {
    return [...this.#maps[kind].values()]
  }

  /**
   * The resource `name` of `kind`, or undefined. A listener name that is not one of the
   * domains as written is served when a domain matches it as the client will match it
   * (`reviews:9080` by `reviews`, which also serves every port).
   */
  get(kind: ResourceKind, name: string): ResourceEntry | undefined {
    const entry = this.#maps[kind].get(name)
    if (entry !== undefined || kind !== 'listener') return entry
    const memo = this.#onDemand.get(name)
    if (memo !== undefined) return memo ?? undefined
    const rc = this.#authorities.find(name)
    const made = rc === undefined ? null : makeEntry(this.#codec, 'listener', name, emitApiListener(name, rc))
    if (this.#onDemand.size < ON_DEMAND_LIMIT) this.#onDemand.set(name, made)
    return made ?? undefined
  }

  /** The resources of `kind` among `names` (every resource for `'*'`), in the order asked. */
  select(kind: ResourceKind, names: Iterable<string> | '*'): ResourceEntry[] {
    if (names === '*') return this.all(kind)
    const out: ResourceEntry[] = []
    for (const name of names) {
      const entry = this.get(kind, name)
      if (entry !== undefined) out.push(entry)
    }
    return out
  }
}

/**
 * Builds a snapshot from emitted resources plus retired ones. Unchanged resources reuse
 * the encoding of `previous`. Throws a {@link ConfigError} listing every dangling reference.
 */
export function buildSnapshot(
  codec: XdsCodec,
  sequence: number,
  emitted: EmittedResources,
  retired: RetiredResources | undefined,
  previous: XdsSnapshot | undefined,
): XdsSnapshot {
  const merged = {
    listeners: emitted.listeners,
    routes: union(emitted.routes, retired?.routes),
    clusters: union(emitted.clusters, retired?.clusters),
    endpoints: union(emitted.endpoints, retired?.endpoints),
  }
  const issues = danglingReferences(merged)
  if (issues.length > 0) throw new ConfigError(issues)
  const encode = (kind: ResourceKind, objects: ReadonlyMap<string, XdsObject>): Map<string, ResourceEntry> => {
    const out = new Map<string, ResourceEntry>()
    for (const [name, resource] of objects) {
      const prior = previous?.get(kind, name)
      const json = JSON.stringify(resource)
      out.set(name, prior !== undefined && prior.json === json ? prior : makeEntry(codec, kind, name, resource, json))
    }
    return out
  }
  return new XdsSnapshot(sequence, {
    listener: encode('listener', merged.listeners),
    route: encode('route', merged.routes),
    cluster: encode('cluster', merged.clusters),
    endpoint: encode('endpoint', merged.endpoints),
    secret: new Map(),
  }, emitted.authorities, codec, emitted.omitted)
}

function makeEntry(codec: XdsCodec, kind: ResourceKind, name: string, resource: XdsObject, json = JSON.stringify(resource)): ResourceEntry {
  const bytes = codec.encode(ResourceTypeNames[kind], resource)
  const hash = createHash('sha256').update(bytes).digest('hex').slice(0, 16)
  return Object.freeze({ name, resource: deepFreeze(resource), bytes, hash, json })
}

function typeVersion(entries: ReadonlyMap<string, ResourceEntry>, extra: string): string {
  const h = createHash('sha256')
  for (const name of [...entries.keys()].sort()) h.update(`${name}\0${(entries.get(name) as ResourceEntry).hash}\n`)
  h.update(extra)
  return h.digest('hex').slice(0, 16)
}

function union<V>(a: ReadonlyMap<string, V>, b: ReadonlyMap<string, V> | undefined): ReadonlyMap<string, V> {
  if (b === undefined || b.size === 0) return a
  const out = new Map(a)
  for (const [k, v] of b) if (!out.has(k)) out.set(k, v)
  return out
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !ArrayBuffer.isView(value) && !Object.isFrozen(value)) {
    Object.freeze(value)
    for (const v of Object.values(value)) deepFreeze(v)
  }
  return value
}
