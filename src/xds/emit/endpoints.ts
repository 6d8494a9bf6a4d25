/**
 * A cluster's endpoints (or those of one subset) → an Envoy ClusterLoadAssignment: one
 * locality of weight 1 (gRPC ignores localities without a weight), each endpoint an IP
 * address and port with its weight and its labels as `envoy.lb` metadata (where Envoy's
 * subset load balancer and our translator read them).
 *
 * @module
 */
import { isIP } from 'node:net'
import { parseAddress } from '../../config/address.js'
import type { ClusterConfig, EndpointConfig } from '../../config/types.js'
import type { XdsObject } from '../types.js'
import type { Omissions } from './common.js'

/** Host names resolved to addresses (by the control plane's resolver); IPs need no entry. */
export type ResolvedHosts = ReadonlyMap<string, readonly string[]>

/** The endpoints of `cluster` that carry every label of `labels` (all of them without `labels`). */
export function endpointsOf(cluster: ClusterConfig, labels: Readonly<Record<string, string>> | undefined): EndpointConfig[] {
  const all = cluster.endpoints ?? []
  if (labels === undefined) return all
  const wanted = Object.entries(labels)
  return all.filter((e) => wanted.every(([k, v]) => e.labels?.[k] === v))
}

/**
 * The ClusterLoadAssignment `name` of `endpoints` (from `clusters[index]`). A host name
 * becomes its resolved addresses: all of them for `strict_dns`, the first otherwise (one
 * logical endpoint, as the mesh dials it); one that did not resolve is left out.
 */
export function emitLoadAssignment(
  cluster: ClusterConfig,
  index: number,
  name: string,
  endpoints: readonly EndpointConfig[],
  resolved: ResolvedHosts,
  omissions: Omissions,
): XdsObject {
  const lbEndpoints: XdsObject[] = []
  for (const e of endpoints) {
    const parsed = parseAddress(e.address)
    if (typeof parsed === 'string') continue
    const i = (cluster.endpoints ?? []).indexOf(e)
    if (parsed.protocol === 'https:' && cluster.tls === undefined) {
      omissions.add(`clusters[${index}].endpoints[${i}].address`, 'an https:// endpoint without clusters[].tls: xDS carries TLS per cluster, so clients dial it in plain text; set tls.mode: simple')
    }
    const ips = isIP(parsed.hostname) !== 0 ? [parsed.hostname] : (resolved.get(parsed.hostname) ?? [])
    const addresses = cluster.type === 'strict_dns' ? ips : ips.slice(0, 1)
    for (const ip of addresses) {
      const lb: XdsObject = { endpoint: { address: { socket_address: { address: ip, port_value: parsed.port } } } }
      if (e.labels !== undefined && Object.keys(e.labels).length > 0) lb['metadata'] = { filter_metadata: { 'envoy.lb': { ...e.labels } } }
      if (e.weight !== undefined) lb['load_balancing_weight'] = e.weight
      lbEndpoints.push(lb)
    }
  }
  if (lbEndpoints.length === 0) return { cluster_name: name }
  return { cluster_name: name, endpoints: [{ locality: {}, lb_endpoints: lbEndpoints, load_balancing_weight: 1 }] }
}
