/**
 * Envoy's spellings of the model's enums. The model writes Envoy enums in lower case
 * (`round_robin`, `strict_dns`, `second`) and also accepts Envoy's own upper case
 * (`ROUND_ROBIN`, `STRICT_DNS`, `SECOND`), as it accepts both for TLS modes. Validation takes
 * either; compilation calls {@link normalizeEnvoyEnums} once so the runtime sees one spelling.
 */
import type { ClusterConfig, MeshConfig, RateLimitConfig } from './types.js'

/** The model's load balancers, then Envoy's `Cluster.LbPolicy` names for them. */
export const LOAD_BALANCERS = ['round_robin', 'least_request', 'random', 'ring_hash', 'maglev', 'ROUND_ROBIN', 'LEAST_REQUEST', 'RANDOM', 'RING_HASH', 'MAGLEV'] as const

/** The model's discovery types, then Envoy's `Cluster.DiscoveryType` names. */
export const DISCOVERY_TYPES = ['static', 'strict_dns', 'logical_dns', 'STATIC', 'STRICT_DNS', 'LOGICAL_DNS'] as const

/** The global rate limit's units, then Envoy's `RateLimitUnit` names. */
export const RATE_LIMIT_UNITS = ['second', 'minute', 'hour', 'day', 'SECOND', 'MINUTE', 'HOUR', 'DAY'] as const

type Obj = Record<string, unknown>

/**
 * A copy of `config` with Envoy's upper-case enum spellings in the model's lower case
 * (objects that need no change are shared, not copied). Reads only well-typed values.
 */
export function normalizeEnvoyEnums(config: MeshConfig): MeshConfig {
  let out = config
  const clusters = config.clusters
  if (Array.isArray(clusters)) {
    let changed = false
    const next = clusters.map((c) => {
      const n = normalizeCluster(c)
      if (n !== c) changed = true
      return n
    })
    if (changed) out = { ...out, clusters: next }
  }
  const vhosts = config.virtualHosts
  if (Array.isArray(vhosts)) {
    let changed = false
    const next = vhosts.map((vh) => {
      if (!isObject(vh) || !Array.isArray(vh.routes)) return vh
      let routesChanged = false
      const routes = vh.routes.map((r) => {
        const action = isObject(r) ? r.route : undefined
        if (!isObject(action) || !isObject(action.rateLimit)) return r
        const rl = normalizeRateLimit(action.rateLimit)
        if (rl === (action.rateLimit as unknown)) return r
        routesChanged = true
        return { ...r, route: { ...action, rateLimit: rl } }
      })
      if (!routesChanged) return vh
      changed = true
      return { ...vh, routes }
    })
    if (changed) out = { ...out, virtualHosts: next }
  }
  const listener = config.listener
  if (isObject(listener)) {
    let next = listener
    if (isObject(listener.rateLimit)) {
      const rl = normalizeRateLimit(listener.rateLimit)
      if (rl !== (listener.rateLimit as unknown)) next = { ...next, rateLimit: rl }
    }
    if (Array.isArray(listener.routes)) {
      let changed = false
      const routes = (listener.routes as unknown[]).map((r: unknown) => {
        if (!isObject(r) || !isObject(r['rateLimit'])) return r
        const rl = normalizeRateLimit(r['rateLimit'])
        if (rl === (r['rateLimit'] as unknown)) return r
        changed = true
        return { ...r, rateLimit: rl }
      })
      if (changed) next = { ...next, routes: routes }
    }
    if (next !== listener) out = { ...out, listener: next }
  }
  return out
}

function normalizeCluster(c: ClusterConfig): ClusterConfig {
  if (!isObject(c)) return c
  let out = c
  if (typeof c.loadBalancer === 'string' && c.loadBalancer !== c.loadBalancer.toLowerCase()) {
    out = { ...out, loadBalancer: c.loadBalancer.toLowerCase() as ClusterConfig['loadBalancer'] }
  }
  if (typeof c.type === 'string' && c.type !== c.type.toLowerCase()) {
    out = { ...out, type: c.type.toLowerCase() as ClusterConfig['type'] }
  }
  if (isObject(c.rateLimit)) {
    const rl = normalizeRateLimit(c.rateLimit)
    if (rl !== (c.rateLimit as unknown)) out = { ...out, rateLimit: rl }
  }
  return out
}

function normalizeRateLimit(value: unknown): RateLimitConfig {
  const rl = value as RateLimitConfig
  const g: unknown = rl.global
  if (!isObject(g) || typeof g['unit'] !== 'string' || g['unit'] === g['unit'].toLowerCase()) return rl
  return { ...rl, global: { ...rl.global, unit: g['unit'].toLowerCase() } as RateLimitConfig['global'] }
}

function isObject(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}
