/**
 * The traffic split API: weights on a virtual host's catch-all route, applied as an
 * ordinary config change (validated, compiled, swapped). Keys name subsets of the route's
 * cluster or, when the route spans several clusters, the clusters themselves.
 */
import type { MeshConfig, RouteConfig, WeightedClusterConfig } from '../config/types.js'
import { MeshError } from '../errors.js'

/** Weights by subset (or cluster) name, e.g. `{ v1: 90, v2: 10 }`. */
export type TrafficWeights = Readonly<Record<string, number>>

interface CatchAll {
  readonly route: RouteConfig
  readonly path: string
}

/** True for a route that takes every request (`prefix: /`, no other condition). */
function isCatchAll(r: RouteConfig): boolean {
  const m = r.match
  return r.route !== undefined &&
    (m.prefix === '/' || m.prefix === '') &&
    m.caseSensitive !== false &&
    (m.headers?.length ?? 0) === 0 &&
    (m.queryParameters?.length ?? 0) === 0 &&
    (m.methods?.length ?? 0) === 0
}

/** The catch-all routes a split of `name` applies to: the virtual host's, or every one whose only cluster is `name`. */
function findCatchAlls(config: MeshConfig, name: string): CatchAll[] {
  const vhosts = config.virtualHosts ?? []
  const byName = vhosts.findIndex((v) => v.name === name)
  if (byName !== -1) {
    const vh = vhosts[byName]
    const i = vh?.routes.findLastIndex(isCatchAll) ?? -1
    if (vh === undefined || i === -1) {
      throw new MeshError('SIDECARLESS_ERR_UNKNOWN_TARGET', `virtual host "${name}" has no catch-all route (match prefix "/" with no header, query or method condition) to split`)
    }
    return [{ route: vh.routes[i] as RouteConfig, path: `virtualHosts[${byName}].routes[${i}]` }]
  }
  if (!(config.clusters ?? []).some((c) => c.name === name)) {
    throw new MeshError('SIDECARLESS_ERR_UNKNOWN_TARGET', `no virtual host or cluster is named "${name}"`)
  }
  const found: CatchAll[] = []
  vhosts.forEach((vh, v) => {
    const i = vh.routes.findLastIndex(isCatchAll)
    const r = vh.routes[i]
    if (r !== undefined && clustersOf(r).every((c) => c === name)) found.push({ route: r, path: `virtualHosts[${v}].routes[${i}]` })
  })
  if (found.length === 0) {
    throw new MeshError('SIDECARLESS_ERR_UNKNOWN_TARGET', `no virtual host's catch-all route sends traffic to cluster "${name}"`)
  }
  return found
}

function clustersOf(r: RouteConfig): string[] {
  const a = r.route
  if (a === undefined) return []
  if (a.weightedClusters !== undefined) return [...new Set(a.weightedClusters.map((w) => w.cluster))]
  return a.cluster === undefined ? [] : [a.cluster]
}

/**
 * Returns a copy of `config` with the split applied. Unknown subsets are not checked here:
 * the result goes through validation, which rejects them with `UNKNOWN_SUBSET`.
 */
export function applySplit(config: MeshConfig, name: string, weights: TrafficWeights): MeshConfig {
  checkWeights(weights)
  const next = structuredClone(config)
  for (const { route } of findCatchAlls(next, name)) {
    const action = route.route as NonNullable<RouteConfig['route']>
    const clusters = clustersOf(route)
    let entries: WeightedClusterConfig[]
    if (clusters.length === 1) {
      const cluster = clusters[0] as string
      const subsets = (next.clusters ?? []).find((c) => c.name === cluster)?.subsets?.map((s) => s.name) ?? []
      const keys = [...subsets, ...Object.keys(weights).filter((k) => !subsets.includes(k))]
      entries = keys.map((subset) => ({ cluster, subset, weight: weights[subset] ?? 0 }))
    } else {
      const keys = [...clusters, ...Object.keys(weights).filter((k) => !clusters.includes(k))]
      entries = keys.map((cluster) => ({ cluster, weight: weights[cluster] ?? 0 }))
    }
    // Keep header mutations of existing entries for the destinations that remain.
    for (const e of entries) {
      const old = action.weightedClusters?.find((w) => w.cluster === e.cluster && w.subset === e.subset)
      if (old !== undefined) Object.assign(e, { ...old, weight: e.weight })
    }
    delete action.cluster
    delete action.subset
    action.weightedClusters = entries
  }
  return next
}

/**
 * What a split of `name` sends traffic to now: the integer weights of its first catch-all
 * route, by the key {@link applySplit} takes (a subset of `cluster`, or a cluster when the
 * route spans several, `cluster` then undefined). A route to one destination weighs 1.
 */
export function splitTarget(config: MeshConfig, name: string): { readonly cluster: string | undefined; readonly weights: Readonly<Record<string, number>> } {
  const [first] = findCatchAlls(config, name)
  const action = (first as CatchAll).route.route as NonNullable<RouteConfig['route']>
  const clusters = clustersOf((first as CatchAll).route)
  const single = clusters.length === 1 ? clusters[0] : undefined
  const keyOf = (cluster: string, subset: string | undefined): string => (single === undefined ? cluster : (subset ?? cluster))
  const weights: Record<string, number> = {}
  if (action.weightedClusters === undefined) weights[keyOf(action.cluster as string, action.subset)] = 1
  else for (const w of action.weightedClusters) weights[keyOf(w.cluster, w.subset)] = (weights[keyOf(w.cluster, w.subset)] ?? 0) + w.weight
  return { cluster: single, weights }
}

/** The current weights of the split of `name` (subset or cluster names to weights, in percent of the total). */
export function readSplit(config: MeshConfig, name: string): Record<string, number> {
  const { weights } = splitTarget(config, name)
  let total = 0
  for (const k in weights) total += weights[k] as number
  const out: Record<string, number> = {}
  for (const k in weights) out[k] = total === 0 ? 0 : Math.round(((weights[k] as number) / total) * 10000) / 100
  return out
}

function checkWeights(weights: TrafficWeights): void {
  if (weights === null || typeof weights !== 'object' || Array.isArray(weights)) {
    throw new MeshError('SIDECARLESS_ERR_INVALID_ARGUMENT', 'weights must be an object such as { v1: 90, v2: 10 }')
  }
  const entries = Object.entries(weights)
  if (entries.length === 0) throw new MeshError('SIDECARLESS_ERR_INVALID_ARGUMENT', 'weights name no destination')
  for (const [k, w] of entries) {
    if (typeof w !== 'number' || !Number.isInteger(w) || w < 0) {
      throw new MeshError('SIDECARLESS_ERR_INVALID_ARGUMENT', `weight of "${k}" must be a non-negative integer, got ${String(w)}`)
    }
  }
  if (entries.every(([, w]) => w === 0)) throw new MeshError('SIDECARLESS_ERR_INVALID_ARGUMENT', 'weights add up to 0; at least one must be positive')
}
