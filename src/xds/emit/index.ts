/**
 * Our config → the xDS resources a control plane serves, the inverse of what an xDS client
 * translates back: each virtual host a RouteConfiguration named after it, each of its
 * domains an API listener of exactly that name (and, on request, any authority its domains
 * match); each cluster, and each of its subsets, an EDS cluster named
 * `outbound|<port>|<subset>|<cluster>` with its ClusterLoadAssignment.
 *
 * Pure: the same config and resolved addresses give the same resources, in the same order.
 *
 * @module
 */
import type { ClusterConfig, MeshConfig } from '../../config/types.js'
import type { XdsObject } from '../types.js'
import { emitCluster } from './cluster.js'
import { Omissions, type OmittedField } from './common.js'
import { AuthorityIndex } from './domains.js'
import { emitLoadAssignment, endpointsOf, type ResolvedHosts } from './endpoints.js'
import { emitApiListener } from './listener.js'
import { clusterPort, xdsClusterName } from './names.js'
import { emitRouteConfiguration, emittedDomains } from './route.js'

export type { OmittedField } from './common.js'
export type { ResolvedHosts } from './endpoints.js'

/** The resources of one config, by type and name. */
export interface EmittedResources {
  /** One API listener per domain as written. */
  readonly listeners: ReadonlyMap<string, XdsObject>
  readonly routes: ReadonlyMap<string, XdsObject>
  readonly clusters: ReadonlyMap<string, XdsObject>
  readonly endpoints: ReadonlyMap<string, XdsObject>
  /** Which RouteConfiguration serves an authority not among the listeners (`reviews:9080` for domain `reviews`). */
  readonly authorities: AuthorityIndex
  /** What the config says that xDS does not carry, by config path. */
  readonly omitted: readonly OmittedField[]
}

/** Emits the resources of a validated config. `resolved` maps the host names in endpoint addresses to IPs. */
export function emitResources(config: MeshConfig, resolved: ResolvedHosts = new Map()): EmittedResources {
  const omissions = new Omissions()
  const clusters = new Map<string, XdsObject>()
  const endpoints = new Map<string, XdsObject>()
  const byName = new Map<string, { cluster: ClusterConfig; port: number }>()
  ;(config.clusters ?? []).forEach((cluster, i) => {
    const port = clusterPort(cluster)
    byName.set(cluster.name, { cluster, port })
    const name = xdsClusterName(cluster, undefined, port)
    clusters.set(name, emitCluster(cluster, name, i, omissions))
    endpoints.set(name, emitLoadAssignment(cluster, i, name, endpointsOf(cluster, undefined), resolved, omissions))
    for (const subset of cluster.subsets ?? []) {
      const subsetName = xdsClusterName(cluster, subset.name, port)
      clusters.set(subsetName, emitCluster(cluster, subsetName, i, omissions))
      endpoints.set(subsetName, emitLoadAssignment(cluster, i, subsetName, endpointsOf(cluster, subset.labels), resolved, omissions))
    }
  })

  const clusterName = (cluster: string, subset: string | undefined): string => {
    const found = byName.get(cluster)
    // Validation guarantees the cluster exists; a name passed through keeps a bad snapshot visible.
    return found === undefined ? cluster : xdsClusterName(found.cluster, subset, found.port)
  }
  const routes = new Map<string, XdsObject>()
  const listeners = new Map<string, XdsObject>()
  const authorities = new AuthorityIndex()
  ;(config.virtualHosts ?? []).forEach((vh, i) => {
    const rc = emitRouteConfiguration(vh, i, { clusterName, omissions })
    const rcName = rc['name'] as string
    routes.set(rcName, rc)
    authorities.add(rcName, emittedDomains(vh.domains))
    for (const domain of vh.domains) if (!listeners.has(domain)) listeners.set(domain, emitApiListener(domain, rcName))
  })
  authorities.seal()

  reportUncarried(config, omissions)
  return { listeners, routes, clusters, endpoints, authorities, omitted: omissions.list }
}

/** Top-level parts of a config that describe one workload, not the fleet. */
function reportUncarried(config: MeshConfig, omissions: Omissions): void {
  const why: Record<string, string> = {
    listener: 'the inbound side of each workload is its own config; the control plane serves outbound routing',
    identity: 'each workload has its own certificate (its certificate provider instance)',
    tracing: 'tracing is configured on each workload',
    admin: 'the admin endpoint is configured on each process',
    outboundTrafficPolicy: 'proxyless clients only dial the authorities they have listeners for',
  }
  for (const key of Object.keys(why)) {
    if ((config as Record<string, unknown>)[key] !== undefined) omissions.add(key, `not carried over xDS: ${why[key] ?? ''}`)
  }
}
