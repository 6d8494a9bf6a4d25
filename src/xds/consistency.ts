/**
 * What makes a snapshot inconsistent, as go-control-plane's snapshot cache defines it, plus
 * one rule for a fleet: a route must not send traffic to a cluster (or subset) that has no
 * endpoints, since every client would fail those calls at once. Every problem is listed.
 *
 * @module
 */
import type { ClusterConfig, MeshConfig, RouteAction } from '../config/types.js'
import type { ConfigIssue } from '../errors.js'
import type { XdsObject } from './codec.js'
import { endpointsOf } from './emit/endpoints.js'

/** Routes of `config` that send traffic to a cluster or subset without endpoints (INVALID_VALUE issues). */
export function routesToNowhere(config: MeshConfig): ConfigIssue[] {
  const clusters = new Map<string, ClusterConfig>()
  for (const c of config.clusters ?? []) clusters.set(c.name, c)
  const issues: ConfigIssue[] = []
  const check = (path: string, cluster: string, subset: string | undefined, share: string): void => {
    const c = clusters.get(cluster)
    if (c === undefined) return
    const labels = subset === undefined ? undefined : c.subsets?.find((s) => s.name === subset)?.labels
    if (subset !== undefined && labels === undefined) return
    if (endpointsOf(c, labels).length > 0) return
    const what = subset === undefined ? `cluster "${cluster}"` : `subset "${subset}" of cluster "${cluster}"`
    const why = subset === undefined || labels === undefined
      ? 'it has no endpoints'
      : `no endpoint carries ${Object.entries(labels).map(([k, v]) => `${k}=${v}`).join(', ')}`
    issues.push({ path, code: 'INVALID_VALUE', message: `${what} has no endpoints (${why}); the route sends it ${share}, which every client would fail` })
  }
  ;(config.virtualHosts ?? []).forEach((vh, v) => {
    vh.routes.forEach((r, i) => {
      const path = `virtualHosts[${v}].routes[${i}].route`
      const a: RouteAction | undefined = r.route
      if (a === undefined) return
      if (a.weightedClusters !== undefined) {
        const total = a.weightedClusters.reduce((s, w) => s + w.weight, 0)
        a.weightedClusters.forEach((w, j) => {
          if (w.weight > 0) check(`${path}.weightedClusters[${j}]`, w.cluster, w.subset, `${Math.round((w.weight / total) * 10_000) / 100}% of the traffic`)
        })
      } else if (a.cluster !== undefined) {
        check(path, a.cluster, a.subset, 'all of the traffic')
      }
    })
  })
  return issues
}

/** The resources of a snapshot, by type and name. */
export interface ResourceMaps {
  readonly listeners: ReadonlyMap<string, XdsObject>
  readonly routes: ReadonlyMap<string, XdsObject>
  readonly clusters: ReadonlyMap<string, XdsObject>
  readonly endpoints: ReadonlyMap<string, XdsObject>
}

/**
 * References a snapshot does not hold: a listener's route configuration, a route's
 * cluster, an EDS cluster's load assignment. Paths are `xds.<type>["<name>"]...`.
 */
export function danglingReferences(r: ResourceMaps): ConfigIssue[] {
  const issues: ConfigIssue[] = []
  for (const [name, listener] of r.listeners) {
    const rcName = routeConfigOf(listener)
    if (rcName !== undefined && !r.routes.has(rcName)) {
      issues.push({ path: `xds.listeners[${JSON.stringify(name)}].rds.route_config_name`, code: 'INVALID_VALUE', message: `route configuration "${rcName}" is not in the snapshot` })
    }
  }
  for (const [name, rc] of r.routes) {
    for (const [path, cluster] of clustersOf(rc)) {
      if (!r.clusters.has(cluster)) {
        issues.push({ path: `xds.routes[${JSON.stringify(name)}]${path}`, code: 'UNKNOWN_CLUSTER', message: `cluster "${cluster}" is not in the snapshot` })
      }
    }
  }
  for (const [name, cluster] of r.clusters) {
    if (cluster['type'] !== 'EDS') continue
    const eds = cluster['eds_cluster_config'] as XdsObject | undefined
    const service = (eds?.['service_name'] as string | undefined) ?? name
    if (!r.endpoints.has(service)) {
      issues.push({ path: `xds.clusters[${JSON.stringify(name)}].eds_cluster_config.service_name`, code: 'INVALID_VALUE', message: `cluster "${name}" has no load assignment "${service}" in the snapshot` })
    }
  }
  return issues
}

function routeConfigOf(listener: XdsObject): string | undefined {
  const api = listener['api_listener'] as XdsObject | undefined
  const hcm = api?.['api_listener'] as XdsObject | undefined
  const rds = hcm?.['rds'] as XdsObject | undefined
  return rds?.['route_config_name'] as string | undefined
}

/** `[path, cluster]` of every cluster a RouteConfiguration names. */
export function clustersOf(rc: XdsObject): [string, string][] {
  const out: [string, string][] = []
  const vhs = (rc['virtual_hosts'] as XdsObject[] | undefined) ?? []
  vhs.forEach((vh, v) => {
    ((vh['routes'] as XdsObject[] | undefined) ?? []).forEach((route, i) => {
      const action = route['route'] as XdsObject | undefined
      if (action === undefined) return
      const at = `.virtual_hosts[${v}].routes[${i}].route`
      if (typeof action['cluster'] === 'string') out.push([`${at}.cluster`, action['cluster']])
      const weighted = action['weighted_clusters'] as XdsObject | undefined
      ;((weighted?.['clusters'] as XdsObject[] | undefined) ?? []).forEach((w, j) => out.push([`${at}.weighted_clusters.clusters[${j}].name`, w['name'] as string]))
      ;((action['request_mirror_policies'] as XdsObject[] | undefined) ?? []).forEach((m, j) => out.push([`${at}.request_mirror_policies[${j}].cluster`, m['cluster'] as string]))
    })
  })
  return out
}
