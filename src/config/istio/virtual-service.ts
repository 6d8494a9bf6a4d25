/**
 * VirtualService → virtual hosts. Each host of a VirtualService that applies to this
 * workload (its `gateways` include `mesh`, it is exported to the workload's namespace) gets a
 * virtual host whose domains are the names istiod generates for it (`reviews`,
 * `reviews.default`, `reviews.default.svc`, the FQDN, each also with `:port` where the port
 * is known), and whose routes are the `http` rules in order; a request no rule matches gets
 * 404, as from istiod's route table. A service known on several ports gets a virtual host per
 * port (routes limited to a `port` go only there) and one without a port.
 *
 * Services of the registry that no VirtualService covers get istiod's default route: all
 * traffic to their cluster, no timeout, Istio's default retries.
 */
import { parseDomain } from '../domain.js'
import type { RouteConfig, VirtualHostConfig } from '../types.js'
import type { Resource } from './documents.js'
import { istioDefaults } from './defaults.js'
import { exportedTo, hostMatches, hostNames, resolveHost } from './names.js'
import type { Registry, Service } from './registry.js'
import { readHttpRule, wholePathRewrite, type HttpRule } from './http-route.js'
import { at, isObject, isSet, list, strings, type Origin, type Translation } from './state.js'

/** A VirtualService that applies to this workload, read. */
export interface VirtualServiceInfo {
  readonly resource: Resource
  readonly hosts: readonly string[]
  readonly rules: readonly HttpRule[]
}

/** Reads a VirtualService; undefined when it does not apply to this workload (reported). */
export function readVirtualService(t: Translation, r: Resource, registry: Registry): VirtualServiceInfo | undefined {
  const spec = r.spec
  const path = `${r.label}.spec`
  t.fields(spec, path, ['hosts', 'gateways', 'http', 'tls', 'tcp', 'exportTo'])
  const gateways = strings(t, spec, 'gateways', path)
  if (gateways.length > 0 && !gateways.includes('mesh')) {
    t.report(at(path, 'gateways'), `applies to gateways ${gateways.join(', ')}, not to sidecars (add "mesh" to apply it here); not translated`)
    return undefined
  }
  if (!exportedTo(strings(t, spec, 'exportTo', path), r.namespace, t.workload)) {
    t.report(at(path, 'exportTo'), `not exported to the workload's namespace ${t.workload.namespace}; not applied`)
    return undefined
  }
  for (const key of ['tls', 'tcp']) {
    if (isSet(spec[key])) t.report(at(path, key), `${key} routes are for ${key === 'tls' ? 'TLS passthrough' : 'TCP'} traffic; the mesh routes HTTP; not translated`)
  }
  const hosts = strings(t, spec, 'hosts', path).map((h) => resolveHost(h, r.namespace, t.workload)).filter((h) => h !== '')
  if (hosts.length === 0) {
    t.report(at(path, 'hosts'), 'a VirtualService needs hosts (a delegate VirtualService is not translated); not translated')
    return undefined
  }
  const ctx = { t, registry, namespace: r.namespace }
  const rules: HttpRule[] = []
  list(t, spec, 'http', path).forEach((rule, i) => {
    const here = `${at(path, 'http')}[${i}]`
    if (!isObject(rule)) {
      t.report(here, 'expected an object; not translated')
      return
    }
    const translated = readHttpRule(ctx, rule, here)
    if (translated !== undefined) rules.push(translated)
  })
  return { resource: r, hosts, rules }
}

/** Builds virtual hosts, keeping domain names unique across them and the mesh-config documents' own. */
export class VirtualHostBuilder {
  readonly virtualHosts: VirtualHostConfig[] = []
  readonly origins: (Origin | undefined)[] = []
  /** Route origins, per virtual host index. */
  readonly routeOrigins = new Map<number, (Origin | undefined)[]>()
  readonly #claimed = new Map<string, string>()
  readonly #names = new Set<string>()
  /** Hosts (and wildcard patterns) a VirtualService covers. */
  readonly #covered: string[] = []

  constructor(readonly t: Translation, readonly registry: Registry, own: readonly VirtualHostConfig[]) {
    for (const vh of own) {
      this.#names.add(vh.name)
      for (const d of Array.isArray(vh.domains) ? vh.domains : []) {
        const k = domainKey(d)
        if (k !== undefined && !this.#claimed.has(k)) this.#claimed.set(k, `virtual host "${vh.name}" of the mesh config`)
      }
    }
  }

  /** Adds the virtual hosts of a VirtualService; a host an earlier one already has is reported and skipped. */
  addVirtualService(vs: VirtualServiceInfo): void {
    const { t } = this
    vs.hosts.forEach((host, i) => {
      const hostPath = `${vs.resource.label}.spec.hosts[${i}]`
      if (this.#covered.includes(host)) {
        t.report(hostPath, `${host} already has a VirtualService; istiod uses the oldest, so this one is not applied to it`)
        return
      }
      this.#covered.push(host)
      const service = host.includes('*') ? undefined : this.registry.find(host)
      const matchPorts = new Set<number>()
      for (const rule of vs.rules) for (const m of rule.matches) if (m.port !== undefined) matchPorts.add(m.port)
      // The cluster learns the ports routes name (for port-level DestinationRule settings).
      if (service !== undefined) for (const p of matchPorts) if (!service.ports.includes(p)) service.ports.push(p)
      const origin: Origin = { doc: vs.resource.doc, path: [...vs.resource.docPath, 'spec'] }
      this.#emit(host, service, declaredPorts(service), [...matchPorts], (port) => this.#routes(vs, port), origin, hostPath, true)
    })
  }

  /** Adds istiod's default virtual host for each service no VirtualService covers. */
  addDefaults(): void {
    for (const service of this.registry.services) {
      if (this.#covered.some((pattern) => hostMatches(pattern, service.host))) continue
      if (service.host.startsWith('*')) continue
      const routes = (port: number | undefined): { routes: RouteConfig[]; origins: (Origin | undefined)[] } => {
        const target = this.registry.target(service, port, undefined, service.host)
        const route: RouteConfig = {
          name: 'default',
          match: { prefix: '/' },
          route: {
            cluster: target.cluster,
            timeout: istioDefaults.routeTimeoutMs,
            retryPolicy: {
              retryOn: [...istioDefaults.retryOn],
              numRetries: istioDefaults.retryNumRetries,
              retriableStatusCodes: [...istioDefaults.retriableStatusCodes],
              hostSelectionRetryMaxAttempts: istioDefaults.hostSelectionRetryMaxAttempts,
            },
            ...(target.hashPolicy === undefined ? {} : { hashPolicy: [target.hashPolicy] }),
          },
        }
        return { routes: [route], origins: [service.origin] }
      }
      this.#emit(service.host, service, declaredPorts(service), [], routes, service.origin, undefined, false)
    }
  }

  /**
   * The virtual hosts of one host. `declared` are the service's ports (a ServiceEntry's);
   * `matched` the ports rules are limited to. One declared port (and rules limited to no
   * other): one virtual host, its names with and without the port. No port at all: one
   * virtual host, names without a port. Otherwise a virtual host per port, so a rule
   * limited to a port never takes a request for another.
   */
  #emit(
    host: string,
    service: Service | undefined,
    declared: readonly number[],
    matched: readonly number[],
    build: (port: number | undefined) => { routes: RouteConfig[]; origins: (Origin | undefined)[] },
    origin: Origin | undefined,
    reportPath: string | undefined,
    fromVirtualService: boolean,
  ): void {
    const names = host.includes('*') ? [host] : [...hostNames(host, this.t.workload), ...(service?.addresses ?? [])]
    const withPort = (port: number): string[] => names.map((n) => `${n.includes(':') && !n.startsWith('[') ? `[${n}]` : n}:${port}`)
    const ports = [...new Set([...declared, ...matched])]
    if (ports.length === 0 || (ports.length === 1 && declared.length === 1)) {
      const port = ports[0]
      this.#add(host, [...names, ...(port === undefined ? [] : withPort(port))], build(port), origin, reportPath, fromVirtualService)
      return
    }
    // Several ports: a virtual host per port. Names without a port go with port 80, as istiod
    // keeps them only on port 80's routes; without a port 80, a port-less virtual host takes
    // them, with the rules not limited to a port.
    for (const port of ports) {
      const domains = port === 80 ? [...names, ...withPort(port)] : withPort(port)
      this.#add(`${host}:${port}`, domains, build(port), origin, reportPath, fromVirtualService)
    }
    if (!ports.includes(80)) this.#add(host, names, build(undefined), origin, reportPath, fromVirtualService)
  }

  #add(name: string, domains: string[], built: { routes: RouteConfig[]; origins: (Origin | undefined)[] }, origin: Origin | undefined, reportPath: string | undefined, fromVirtualService: boolean): void {
    if (built.routes.length === 0) return
    const kept: string[] = []
    for (const d of domains) {
      const k = domainKey(d)
      if (k === undefined) {
        if (reportPath !== undefined) this.t.report(reportPath, `${JSON.stringify(d)} is not a domain the mesh can serve; left out`)
        continue
      }
      const owner = this.#claimed.get(k)
      if (owner !== undefined) {
        if (fromVirtualService && reportPath !== undefined) this.t.report(reportPath, `domain ${d} is already served by ${owner}; not added here`)
        continue
      }
      this.#claimed.set(k, `virtual host "${name}"`)
      kept.push(d)
    }
    if (kept.length === 0) return
    let unique = name
    for (let i = 2; this.#names.has(unique); i++) unique = `${name}-${i}`
    this.#names.add(unique)
    this.routeOrigins.set(this.virtualHosts.length, built.origins)
    this.virtualHosts.push({ name: unique, domains: kept, routes: built.routes })
    this.origins.push(origin)
  }

  /** The routes of a VirtualService on one port (undefined: the port-less virtual host). */
  #routes(vs: VirtualServiceInfo, port: number | undefined): { routes: RouteConfig[]; origins: (Origin | undefined)[] } {
    const routes: RouteConfig[] = []
    const origins: (Origin | undefined)[] = []
    const names = new Set<string>()
    const r = vs.resource
    for (const rule of vs.rules) {
      const action = rule.action(port)
      if (action === undefined) continue
      let reachedCatchAll = false
      rule.matches.forEach((m, i) => {
        if (reachedCatchAll) return
        if (m.port !== undefined && m.port !== port) return
        const route: RouteConfig = { match: structuredClone(m.match), ...structuredClone(action) }
        // Envoy replaces a regex-matched path whole; the model says so with a regex rewrite.
        if (route.route?.prefixRewrite !== undefined && route.match.safeRegex !== undefined) {
          route.route.regexRewrite = wholePathRewrite(route.route.prefixRewrite)
          delete route.route.prefixRewrite
        }
        let name = rule.name === undefined ? m.name : m.name === undefined ? rule.name : `${rule.name}.${m.name}`
        if (name !== undefined) {
          let unique = name
          for (let k = 2; names.has(unique); k++) unique = `${name}-${k}`
          names.add(unique)
          name = unique
        }
        routes.push(name === undefined ? route : { name, ...route })
        const matchPath = rule.matches.length === 0 ? [] : ['match', i]
        origins.push({ doc: r.doc, path: [...r.docPath, ...rulePath(rule.path), ...matchPath] })
        if (m.catchAll) reachedCatchAll = true
      })
      // Rules after a catch-all are never reached (istiod stops there too).
      if (reachedCatchAll) break
    }
    return { routes, origins }
  }
}

/** A service's declared ports: a ServiceEntry's (Kubernetes services' ports are not in the file). */
function declaredPorts(service: Service | undefined): number[] {
  return service?.source.kind === 'serviceentry' ? service.source.entry.ports.map((p) => p.number) : []
}

/** `… (doc 2).spec.http[3]` → `['spec', 'http', 3]`. */
function rulePath(path: string): (string | number)[] {
  const m = /\.spec\.http\[(\d+)\]$/.exec(path)
  return m === null ? ['spec'] : ['spec', 'http', Number(m[1])]
}

function domainKey(domain: string): string | undefined {
  const d = parseDomain(domain)
  if (typeof d === 'string') return undefined
  return `${d.kind}:${d.host}:${d.port ?? ''}`
}
