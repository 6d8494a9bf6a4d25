/**
 * Kubernetes names as Istio reads them: short host names resolve in the namespace of the
 * resource that writes them, and a service is reachable under every name its clients' DNS
 * search path would expand (pilot `ResolveShortnameToFQDN` and `GenerateAltVirtualHosts`).
 */
import type { Workload } from './state.js'

/**
 * The fully qualified name of a host written in a resource of namespace `namespace`:
 * a name without a dot is a Kubernetes short name (`reviews` in `default` →
 * `reviews.default.svc.cluster.local`); a name with a dot, `*`, or an IP is taken as written.
 */
export function resolveHost(host: string, namespace: string, workload: Workload): string {
  const h = host.toLowerCase()
  if (h === '' || h === '*' || h.includes('.') || h.includes(':')) return h
  return `${h}.${namespace}.svc.${workload.clusterDomain}`
}

/** The namespace of a Kubernetes service FQDN (`reviews.prod.svc.cluster.local` → `prod`), else undefined. */
export function serviceNamespace(fqdn: string, workload: Workload): string | undefined {
  const suffix = `.svc.${workload.clusterDomain}`
  if (!fqdn.endsWith(suffix)) return undefined
  const parts = fqdn.slice(0, -suffix.length).split('.')
  return parts.length === 2 ? parts[1] : undefined
}

/**
 * Every name a client of the workload's namespace may use for `fqdn`, as istiod writes the
 * virtual host's domains: for a Kubernetes service of the workload's own namespace
 * `reviews`, `reviews.default.svc`, `reviews.default` and the FQDN; of another namespace the
 * same without the bare name; any other host only as written.
 */
export function hostNames(fqdn: string, workload: Workload): string[] {
  const ns = serviceNamespace(fqdn, workload)
  if (ns === undefined) return [fqdn]
  const name = fqdn.slice(0, fqdn.indexOf('.'))
  const names = ns === workload.namespace ? [name] : []
  names.push(`${name}.${ns}`, `${name}.${ns}.svc`, fqdn)
  return names
}

/**
 * The names a cluster of the mesh's own format may stand for: its name as written and, for a
 * Kubernetes-style name (`reviews`, `reviews.prod`, `reviews.prod.svc`), the service FQDN it
 * abbreviates (a bare name in the workload's namespace).
 */
export function clusterHostKeys(name: string, workload: Workload): string[] {
  const n = name.toLowerCase()
  const keys = [n]
  const parts = n.split('.')
  if (parts.some((p) => p === '' || !/^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/.test(p))) return keys
  if (parts.length === 1) keys.push(`${n}.${workload.namespace}.svc.${workload.clusterDomain}`)
  else if (parts.length === 2) keys.push(`${n}.svc.${workload.clusterDomain}`)
  else if (parts.length === 3 && parts[2] === 'svc') keys.push(`${n}.${workload.clusterDomain}`)
  return keys
}

/**
 * Whether a resource of namespace `namespace` with `exportTo` is visible to the workload:
 * unset or `*` exports everywhere, `.` to its own namespace, `~` nowhere.
 */
export function exportedTo(exportTo: readonly string[], namespace: string, workload: Workload): boolean {
  if (exportTo.length === 0) return true
  for (const e of exportTo) {
    if (e === '*') return true
    if (e === '.' && namespace === workload.namespace) return true
    if (e === workload.namespace) return true
  }
  return false
}

/** Whether a (possibly wildcard) host pattern covers `host` (`*.example.com` covers `a.example.com`). */
export function hostMatches(pattern: string, host: string): boolean {
  if (pattern === '*') return true
  if (pattern.startsWith('*.')) return host.endsWith(pattern.slice(1)) && host.length > pattern.length - 1
  return pattern === host
}
