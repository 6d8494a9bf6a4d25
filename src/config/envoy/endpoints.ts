/**
 * Envoy `ClusterLoadAssignment` (a cluster's `load_assignment`, or an EDS resource) as our
 * endpoints: `scheme://host:port`, labels from the `envoy.lb` metadata (where Istio puts
 * them), weights. Only priority 0 is imported; localities are flattened.
 */
import { parseAddress } from '../address.js'
import type { EndpointConfig } from '../types.js'
import { socketAddress } from './address.js'
import { asEnum, asList, asMap, asObject, asString, asUint, clip, describe, readField, type Field, type Problems, type Shape } from './reader.js'

/** The result of {@link translateClusterLoadAssignment}. */
export interface LoadAssignmentTranslation {
  /** `cluster_name` (for EDS: the service name the cluster waits for). */
  readonly clusterName: string | undefined
  readonly endpoints: EndpointConfig[]
}

const LOAD_ASSIGNMENT: Shape = {
  use: ['cluster_name', 'endpoints'],
  why: { policy: 'overprovisioning and drop overloads are not imported', named_endpoints: 'named endpoints are not supported' },
}
const LOCALITY_ENDPOINTS: Shape = {
  use: ['lb_endpoints', 'priority', 'load_balancing_weight'],
  // Locality is descriptive unless zone-aware or locality-weighted balancing is on (reported where those are).
  drop: ['locality'],
  why: {
    leds_cluster_locality_config: 'LEDS is not supported',
    metadata: 'locality metadata is not imported',
  },
}
const LB_ENDPOINT: Shape = { use: ['endpoint', 'load_balancing_weight', 'metadata', 'health_status'] }
const ENDPOINT: Shape = {
  use: ['address'],
  // A host name only matters to auto_host_rewrite and health checks' Host, which are reported where set.
  drop: ['hostname'],
  why: {
    health_check_config: 'per-endpoint health check settings are not imported',
    additional_addresses: 'additional endpoint addresses are not supported',
  },
}
const METADATA: Shape = { use: ['filter_metadata'], why: { typed_filter_metadata: 'typed metadata is not imported' } }
const HEALTH_STATUSES = ['UNKNOWN', 'HEALTHY', 'UNHEALTHY', 'DRAINING', 'TIMEOUT', 'DEGRADED']
/** The metadata namespace Envoy's subset load balancer reads; Istio puts labels there. */
const LB_NAMESPACE = 'envoy.lb'
/** Istio's telemetry metadata on every endpoint; informational. */
const QUIET_NAMESPACES: readonly string[] = ['istio']

/**
 * Translates an Envoy `ClusterLoadAssignment`. `scheme` is the one the cluster's transport
 * socket implies (`https` for TLS). Never throws on bad input (but see {@link Problems.step}).
 */
export function translateClusterLoadAssignment(resource: unknown, path: string, p: Problems, scheme: 'http' | 'https' = 'http'): LoadAssignmentTranslation {
  const m = readField(p, { key: path, name: 'load_assignment', value: resource, path }, LOAD_ASSIGNMENT)
  const endpoints: EndpointConfig[] = []
  const groups = asList(p, m?.get('endpoints'))
  // Locality weights only matter between localities: one locality (istiod's and our control
  // plane's usual) or equal weights balance as the flattened endpoints do.
  const localityWeights = new Set<unknown>()
  for (const group of groups) {
    const v = typeof group.value === 'object' && group.value !== null ? (group.value as Record<string, unknown>)['load_balancing_weight'] : undefined
    localityWeights.add(JSON.stringify(v ?? null))
  }
  for (const group of groups) {
    const g = readField(p, group, LOCALITY_ENDPOINTS)
    if (g === undefined) continue
    const priority = asUint(p, g.get('priority'), 0, 0xffffffff)
    if (priority !== undefined && priority > 0) {
      p.report((g.get('priority') as Field).path, `priority ${priority} is not supported; these endpoints are skipped (only priority 0 is imported)`)
      continue
    }
    const weight = g.get('load_balancing_weight')
    if (weight !== undefined && localityWeights.size > 1) p.report(weight.path, 'locality weights are not supported: endpoints of every locality are balanced together')
    for (const item of asList(p, g.get('lb_endpoints'))) {
      const endpoint = lbEndpoint(p, item, scheme)
      if (endpoint !== undefined) endpoints.push(endpoint)
    }
  }
  return { clusterName: asString(p, m?.get('cluster_name')), endpoints }
}

function lbEndpoint(p: Problems, f: Field, scheme: 'http' | 'https'): EndpointConfig | undefined {
  const m = readField(p, f, LB_ENDPOINT)
  if (m === undefined) return undefined
  const status = asEnum(p, m.get('health_status'), HEALTH_STATUSES)
  if (status !== undefined && status !== 'UNKNOWN' && status !== 'HEALTHY') {
    // Envoy routes to such an endpoint only as a last resort (or never); the mesh has no such tier.
    p.report((m.get('health_status') as Field).path, `health_status ${status} is not supported; the endpoint is dropped`)
    return undefined
  }
  const e = readField(p, m.get('endpoint'), ENDPOINT)
  const hostPort = socketAddress(p, e?.get('address'))
  if (hostPort === undefined) {
    p.report(f.path, 'no usable endpoint.address.socket_address; endpoint dropped')
    return undefined
  }
  const address = `${scheme}://${hostPort}`
  const parsed = parseAddress(address)
  if (typeof parsed === 'string') {
    p.report(f.path, `${parsed}; endpoint dropped`)
    return undefined
  }
  const endpoint: EndpointConfig = { address }
  const labels = lbLabels(p, m.get('metadata'))
  if (labels !== undefined) endpoint.labels = labels
  const weight = endpointWeight(p, m.get('load_balancing_weight'))
  if (weight !== undefined) endpoint.weight = weight
  return endpoint
}

/** Envoy allows weights up to 2^32-1, the mesh up to 128: larger ones are capped, keeping their order. */
function endpointWeight(p: Problems, f: Field | undefined): number | undefined {
  const weight = asUint(p, f, 1, 0xffffffff)
  if (weight === undefined || f === undefined || weight <= 128) return weight
  p.report(f.path, `weight ${weight} is above 128, the largest the mesh accepts; 128 is used`)
  return 128
}

/** Labels from `metadata.filter_metadata["envoy.lb"]`; other namespaces are reported. */
function lbLabels(p: Problems, f: Field | undefined): Record<string, string> | undefined {
  const md = readField(p, f, METADATA)
  let labels: Record<string, string> | undefined
  for (const ns of asMap(p, md?.get('filter_metadata'))) {
    if (ns.key !== LB_NAMESPACE) {
      if (!QUIET_NAMESPACES.includes(ns.key)) p.report(ns.path, `metadata namespace "${clip(ns.key)}" is not imported; only "${LB_NAMESPACE}" becomes labels`)
      continue
    }
    // A google.protobuf.Struct: plain JSON in YAML and proto3 JSON; protobufjs may give { fields: { k: { stringValue } } }.
    const struct = asObject(p, ns)
    const values = struct !== undefined && isStructMessage(struct) ? struct['fields'] as Record<string, unknown> : struct
    for (const [key, raw] of Object.entries(values ?? {})) {
      p.step(ns.path)
      const value = structString(raw)
      if (value === undefined) {
        p.report(`${ns.path}.${clip(key)}`, `label values are strings, got ${describe(raw)}; dropped`)
        continue
      }
      labels ??= {}
      // defineProperty, so a label named "__proto__" stays a label.
      Object.defineProperty(labels, key, { value, enumerable: true, writable: true, configurable: true })
    }
  }
  return labels
}

function isStructMessage(v: Record<string, unknown>): boolean {
  const keys = Object.keys(v)
  return keys.length === 1 && keys[0] === 'fields' && typeof v['fields'] === 'object' && v['fields'] !== null
}

function structString(v: unknown): string | undefined {
  if (typeof v === 'string') return v
  if (typeof v === 'object' && v !== null) {
    const o = v as Record<string, unknown>
    const s = o['stringValue'] ?? o['string_value']
    if (typeof s === 'string') return s
  }
  return undefined
}
