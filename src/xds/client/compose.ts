/**
 * One MeshConfig from the config file (the base) and the xDS trees in force.
 *
 * - The base comes first: its clusters, virtual hosts and domains win; xDS adds the
 *   authorities the base does not name (a domain the base claims is left to the base), and
 *   clusters of names the base does not use.
 * - Each outbound Listener is one virtual host named after it, whose domains are the
 *   authorities a caller reaches it by: the Listener's `host:port`, and `host` alone when the
 *   port is the scheme's default. One virtual host per Listener keeps gRPC's rule that a
 *   Listener's routes answer for its authority only (route configurations list domains of
 *   their own, which may overlap between Listeners).
 * - Istio's cluster names (`outbound|9080|v1|reviews.default.svc.cluster.local`) are kept as
 *   cluster names; a subset is its own cluster, as istiod serves it.
 * - The inbound Listeners give `listener.mtls` (per port) and `listener.authorization`,
 *   unless the base sets them; the workload identity comes from the bootstrap's certificate
 *   provider when something uses it and the base has none.
 *
 * @module
 */
import { parseDomain } from '../../config/domain.js'
import type { AuthorizationPolicyConfig, ClusterConfig, IdentityConfig, ListenerConfig, MeshConfig, MtlsMode, VirtualHostConfig } from '../../config/types.js'
import type { FileWatcherProvider } from './bootstrap.js'
import type { ServerListener } from './resources.js'
import type { ListenerTree } from './tree.js'

/** An outbound Listener and the authorities it answers for. */
export interface OutboundListener {
  readonly tree: ListenerTree
  /** Domains: `host:port`, plus `host` when the port is the default of the scheme it is called by. */
  readonly domains: readonly string[]
}

/** What the xDS side adds to the base. */
export interface XdsParts {
  readonly outbound: readonly OutboundListener[]
  /** Server Listeners with their ports. */
  readonly inbound: readonly ServerListener[]
  /** Provider instances in use, by name. */
  readonly providers: ReadonlyMap<string, FileWatcherProvider>
}

/** The composed config, and which outbound Listeners made it in (with at least one domain). */
export interface Composition {
  readonly config: MeshConfig
  readonly listeners: ReadonlySet<string>
  /** What was left out, for `mesh.xds.status()`. */
  readonly notes: readonly string[]
}

/** Composes the base and the xDS parts. */
export function compose(base: MeshConfig, parts: XdsParts): Composition {
  const notes: string[] = []
  const clusters: ClusterConfig[] = [...(base.clusters ?? [])]
  const clusterNames = new Set(clusters.map((c) => c.name))
  const vhosts: VirtualHostConfig[] = [...(base.virtualHosts ?? [])]
  const vhostNames = new Set(vhosts.map((v) => v.name))
  const domains = new Set<string>()
  for (const vh of vhosts) for (const d of vh.domains) domains.add(domainKey(d))
  const listeners = new Set<string>()
  const added = new Map<string, ClusterConfig>()
  let usesIdentity: string | undefined
  for (const { tree, domains: wanted } of parts.outbound) {
    const own = wanted.filter((d) => {
      const key = domainKey(d)
      if (domains.has(key)) {
        notes.push(`listener "${tree.listener}": the authority "${d}" is already routed by another virtual host (the config file's come first); left out`)
        return false
      }
      domains.add(key)
      return true
    })
    if (own.length === 0) continue
    let name = tree.listener
    while (vhostNames.has(name)) name = `${name}~xds`
    vhostNames.add(name)
    vhosts.push({ ...tree.routes, name, domains: own })
    listeners.add(tree.listener)
    for (const [cname, c] of tree.clusters) {
      if (clusterNames.has(cname) && !added.has(cname)) {
        notes.push(`cluster "${cname}" of listener "${tree.listener}" has the name of a cluster in the config file; the file's is used`)
        continue
      }
      if (!added.has(cname)) {
        added.set(cname, c)
        clusterNames.add(cname)
        clusters.push(c)
      }
      if (c.tls?.mode === 'ISTIO_MUTUAL') usesIdentity ??= 'ISTIO_MUTUAL'
    }
  }
  const config: MeshConfig = { ...base }
  if (clusters.length > 0) config.clusters = clusters
  if (vhosts.length > 0) config.virtualHosts = vhosts
  const listener = inboundListener(base.listener, parts.inbound, notes)
  if (listener !== undefined) config.listener = listener
  const mtlsUsed = parts.inbound.some((s) => s.mtls !== 'DISABLE') && base.listener?.mtls === undefined
  if (base.identity === undefined && (usesIdentity !== undefined || mtlsUsed)) {
    const identity = identityOf(parts.providers)
    if (identity !== undefined) config.identity = identity
  }
  return { config, listeners, notes }
}

/** The listener with the inbound Listeners' mTLS and authorization where the base has none. */
function inboundListener(base: ListenerConfig | undefined, servers: readonly ServerListener[], notes: string[]): ListenerConfig | undefined {
  const withPort = servers.filter((s) => s.port !== undefined)
  if (withPort.length === 0) return base
  const out: ListenerConfig = { ...base }
  if (base?.mtls === undefined) {
    const portLevelMtls: Record<string, { mode: MtlsMode }> = {}
    for (const s of withPort) portLevelMtls[String(s.port)] = { mode: s.mtls }
    out.mtls = { mode: (withPort[0] as ServerListener).mtls, portLevelMtls }
  } else {
    notes.push('listener.mtls of the config file is used; the inbound Listener\'s mTLS is not')
  }
  if (base?.authorization === undefined) {
    const authorization = portAuthorization(withPort)
    if (authorization !== undefined) out.authorization = authorization
  } else if (withPort.some((s) => s.authorization !== undefined)) {
    notes.push('listener.authorization of the config file is used; the inbound Listener\'s RBAC is not')
  }
  return out
}

/**
 * One authorization for every port. With one port (or the same policies on every port),
 * the policies as they are. Otherwise each policy is bound to its port (a `destination.port`
 * condition), and a port without ALLOW policies gets one allowing it, so that another
 * port's ALLOW policies do not deny its requests.
 */
function portAuthorization(servers: readonly ServerListener[]): AuthorizationPolicyConfig[] | undefined {
  if (servers.every((s) => s.authorization === undefined)) return undefined
  const first = JSON.stringify(servers[0]?.authorization ?? null)
  if (servers.every((s) => JSON.stringify(s.authorization ?? null) === first)) return servers[0]?.authorization
  const anyAllow = servers.some((s) => (s.authorization ?? []).some((p) => (p.action ?? 'ALLOW') === 'ALLOW'))
  const out: AuthorizationPolicyConfig[] = []
  for (const s of servers) {
    const port = String(s.port)
    const bind = { key: 'destination.port', values: [port] }
    const policies = s.authorization ?? []
    for (const p of policies) {
      out.push({ ...p, name: `${p.name ?? 'policy'}@${port}`, rules: (p.rules ?? []).map((r) => ({ ...r, when: [...(r.when ?? []), bind] })) })
    }
    if (anyAllow && !policies.some((p) => (p.action ?? 'ALLOW') === 'ALLOW')) {
      out.push({ name: `allow-port-${port}`, action: 'ALLOW', rules: [{ when: [bind] }] })
    }
  }
  return out
}

/** The workload identity from the certificate provider in use (istio-agent's `default` first). */
function identityOf(providers: ReadonlyMap<string, FileWatcherProvider>): IdentityConfig | undefined {
  const p = providers.get('default') ?? providers.values().next().value
  if (p === undefined || p.certificateFile === undefined || p.privateKeyFile === undefined || p.caCertificateFile === undefined) return undefined
  return { certificate: p.certificateFile, privateKey: p.privateKeyFile, trustBundle: p.caCertificateFile }
}

function domainKey(domain: string): string {
  const d = parseDomain(domain)
  return typeof d === 'string' ? domain.toLowerCase() : `${d.kind}:${d.host}:${d.port ?? ''}`
}

/**
 * The Listener name of an authority as gRPC names it for a target: `host:port`, the port
 * being the scheme's default when the authority has none (80 for http, 443 for https).
 * Lower case; undefined when it has no host.
 */
export function listenerNameOf(authority: string, scheme: string): string | undefined {
  const a = authority.toLowerCase()
  if (a === '') return undefined
  if (/:\d{1,5}$/.test(a) && !a.endsWith(']')) return a
  const port = scheme === 'https' || scheme === 'wss' ? 443 : scheme === 'http' || scheme === 'ws' ? 80 : undefined
  return port === undefined ? undefined : `${a}:${port}`
}

/** The domains a Listener answers for: its name, and the host alone when the port is a scheme default. */
export function listenerDomains(name: string): string[] {
  const m = /^(.*):(\d{1,5})$/.exec(name)
  if (m === null) return [name]
  const port = Number(m[2])
  return port === 80 || port === 443 ? [name, m[1] as string] : [name]
}
