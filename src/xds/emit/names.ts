/**
 * Names of the xDS resources the control plane serves, as istiod names them for proxyless
 * gRPC clients: clusters `outbound|<port>|<subset>|<host>` (the subset empty for the whole
 * cluster), listeners by the authority clients dial.
 *
 * @module
 */
import { parseAddress } from '../../config/address.js'
import type { ClusterConfig } from '../../config/types.js'

const ISTIO_NAME = /^outbound\|(\d+)\|([^|]*)\|(.+)$/

/**
 * The port a cluster is known by: the port most of its endpoints listen on (the lowest on
 * a tie), 0 when it has none. Our clusters have no service port; this keeps the name
 * stable while endpoints come and go.
 */
export function clusterPort(cluster: ClusterConfig): number {
  const counts = new Map<number, number>()
  for (const e of cluster.endpoints ?? []) {
    const parsed = parseAddress(e.address)
    if (typeof parsed !== 'string') counts.set(parsed.port, (counts.get(parsed.port) ?? 0) + 1)
  }
  let best = 0
  let bestCount = 0
  for (const [port, count] of counts) {
    if (count > bestCount || (count === bestCount && port < best)) {
      best = port
      bestCount = count
    }
  }
  return best
}

/**
 * The xDS name of a cluster, or of one of its subsets: `outbound|<port>|<subset>|<name>`. A
 * cluster already named that way (an Istio-shaped Envoy import) keeps its port and host.
 */
export function xdsClusterName(cluster: ClusterConfig, subset: string | undefined, port = clusterPort(cluster)): string {
  const istio = ISTIO_NAME.exec(cluster.name)
  if (istio !== null) return `outbound|${istio[1]}|${subset ?? ''}|${istio[3]}`
  return `outbound|${port}|${subset ?? ''}|${cluster.name}`
}

/** The name of the RouteConfiguration of a virtual host: the virtual host's own name. */
export function routeConfigName(virtualHost: string): string {
  return virtualHost
}
