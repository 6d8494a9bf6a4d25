/**
 * ServiceEntry → services of the registry, one per host: its ports, virtual IPs and
 * endpoints. `resolution` picks how the endpoints are found: STATIC uses the addresses as
 * given; DNS resolves each endpoint's name (or, with none, the host itself) and uses every
 * address (`strict_dns`); DNS_ROUND_ROBIN uses one address at a time (`logical_dns`); NONE
 * (pass-through) connects to the host the caller named.
 */
import type { DiscoveryType, EndpointConfig } from '../types.js'
import type { Resource } from './documents.js'
import { istioDefaults } from './defaults.js'
import { exportedTo, resolveHost } from './names.js'
import { at, isObject, isSet, list, num, object, str, stringMap, strings, type Translation } from './state.js'

/** A port of a service. */
export interface ServicePort {
  readonly number: number
  readonly name: string
  /** Upper case (`HTTP`, `HTTPS`, …); `''` when unset (sniffed). */
  readonly protocol: string
  readonly targetPort: number | undefined
}

/** A service of the registry, from a ServiceEntry host. */
export interface ServiceEntryService {
  readonly host: string
  readonly namespace: string
  readonly ports: readonly ServicePort[]
  readonly addresses: readonly string[]
  readonly type: DiscoveryType
  /** Endpoints for a port (each port may map to other endpoint ports). */
  readonly endpoints: ReadonlyMap<number, EndpointConfig[]>
  /** SPIFFE IDs the endpoints present (`subjectAltNames`), for ISTIO_MUTUAL. */
  readonly subjectAltNames: readonly string[]
  /** `location: MESH_EXTERNAL`: a service outside the mesh. */
  readonly external: boolean
  readonly resource: Resource
  readonly path: string
}

const HTTP_PROTOCOLS = new Set(['', 'HTTP', 'HTTP2', 'GRPC-WEB', 'HTTPS', 'TLS'])
const TLS_PROTOCOLS = new Set(['HTTPS', 'TLS'])

/** Reads a ServiceEntry into one service per host (none when it does not apply). */
export function readServiceEntry(t: Translation, r: Resource): ServiceEntryService[] {
  const spec = r.spec
  const path = `${r.label}.spec`
  t.fields(spec, path, ['hosts', 'addresses', 'ports', 'location', 'resolution', 'endpoints', 'workloadSelector', 'exportTo', 'subjectAltNames'])
  if (!exportedTo(strings(t, spec, 'exportTo', path), r.namespace, t.workload)) {
    t.report(at(path, 'exportTo'), `not exported to the workload's namespace ${t.workload.namespace}; not applied`)
    return []
  }
  const hosts = strings(t, spec, 'hosts', path).map((h) => resolveHost(h, r.namespace, t.workload)).filter((h) => h !== '')
  if (hosts.length === 0) {
    t.report(at(path, 'hosts'), 'a ServiceEntry needs hosts; not translated')
    return []
  }
  const resolution = str(t, spec, 'resolution', path) ?? 'NONE'
  if (!['NONE', 'STATIC', 'DNS', 'DNS_ROUND_ROBIN'].includes(resolution)) {
    t.report(at(path, 'resolution'), `${JSON.stringify(resolution)} is not translated (STATIC, DNS, DNS_ROUND_ROBIN and NONE are); the entry is left out`)
    return []
  }
  if (isSet(spec['workloadSelector'])) {
    t.report(at(path, 'workloadSelector'), 'endpoints selected from pods or WorkloadEntries cannot be found in-process; list them in endpoints')
  }
  const location = str(t, spec, 'location', path)
  if (location !== undefined && location !== 'MESH_EXTERNAL' && location !== 'MESH_INTERNAL') {
    t.report(at(path, 'location'), `${JSON.stringify(location)} is not MESH_EXTERNAL or MESH_INTERNAL; ignored`)
  }
  const ports = readPorts(t, spec, path)
  if (ports.length === 0) t.report(at(path, 'ports'), 'no HTTP port: the entry\'s hosts get no endpoints (requests get 503 no healthy upstream)')
  const addresses: string[] = []
  strings(t, spec, 'addresses', path).forEach((a, i) => {
    if (a.includes('/')) t.report(`${at(path, 'addresses')}[${i}]`, 'a CIDR range cannot name a virtual host; not translated')
    else addresses.push(a)
  })
  const sans = strings(t, spec, 'subjectAltNames', path)
  const spiffe = sans.filter((s) => s.startsWith('spiffe://'))
  if (spiffe.length < sans.length) t.report(at(path, 'subjectAltNames'), 'only SPIFFE IDs (spiffe://…) are verified by the mesh; other names are not translated')
  const entries = readWorkloadEntries(t, spec, path)
  const out: ServiceEntryService[] = []
  for (const host of hosts) {
    const wildcard = host.startsWith('*')
    if (resolution === 'NONE' && wildcard) {
      t.report(at(path, 'hosts'), `${host}: pass-through to whatever a wildcard host resolves to has no cluster in-process; requests to it are routed like hosts outside the registry (outboundTrafficPolicy)`)
      continue
    }
    if (resolution === 'DNS' && wildcard && entries.length === 0) {
      t.report(at(path, 'hosts'), `${host}: a wildcard host cannot be resolved by DNS without endpoints; left out`)
      continue
    }
    const type: DiscoveryType = resolution === 'DNS' ? 'strict_dns' : resolution === 'DNS_ROUND_ROBIN' ? 'logical_dns' : 'static'
    // NONE (pass-through) and DNS without endpoints go to the host the caller named.
    const targets = (resolution === 'NONE' || resolution === 'DNS' || resolution === 'DNS_ROUND_ROBIN') && entries.length === 0
      ? [{ address: host, ports: undefined, labels: undefined, weight: undefined }]
      : resolution === 'NONE' ? [] : entries
    if (resolution === 'NONE' && entries.length > 0) {
      t.report(at(path, 'endpoints'), 'with resolution NONE the caller\'s destination is used, not these endpoints; not translated')
    }
    if (resolution === 'STATIC' && entries.length === 0) {
      t.report(at(path, 'endpoints'), `${host}: STATIC resolution without endpoints: requests get 503 no healthy upstream`)
    }
    const endpoints = new Map<number, EndpointConfig[]>()
    for (const p of ports) endpoints.set(p.number, targets.map((e) => endpoint(e, e.ports?.[p.name] ?? p.targetPort ?? p.number, TLS_PROTOCOLS.has(p.protocol))))
    out.push({ host, namespace: r.namespace, ports, addresses, type, endpoints, subjectAltNames: spiffe, external: location === 'MESH_EXTERNAL', resource: r, path })
  }
  return out
}

function readPorts(t: Translation, spec: Record<string, unknown>, path: string): ServicePort[] {
  const ports: ServicePort[] = []
  list(t, spec, 'ports', path).forEach((p, i) => {
    const here = `${at(path, 'ports')}[${i}]`
    if (!isObject(p)) {
      t.report(here, 'expected an object; not translated')
      return
    }
    t.fields(p, here, ['number', 'protocol', 'name', 'targetPort'])
    const number = num(t, p, 'number', here)
    if (number === undefined || !Number.isInteger(number) || number < 1 || number > 65535) {
      t.report(here, 'a port needs a number (1–65535); not translated')
      return
    }
    const protocol = (str(t, p, 'protocol', here) ?? '').toUpperCase()
    if (protocol === 'GRPC') {
      t.report(here, `port ${number} is GRPC, which needs HTTP/2; the mesh speaks HTTP/1.1 to endpoints; not translated`)
      return
    }
    if (!HTTP_PROTOCOLS.has(protocol)) {
      t.report(here, `port ${number} is ${protocol}; the mesh routes HTTP only; not translated`)
      return
    }
    if (protocol === 'HTTP2') t.report(at(here, 'protocol'), `port ${number}: the mesh speaks HTTP/1.1 to endpoints (the port is translated as HTTP)`)
    const target = num(t, p, 'targetPort', here)
    ports.push({ number, name: str(t, p, 'name', here) ?? '', protocol, targetPort: target !== undefined && target > 0 ? target : undefined })
  })
  return ports
}

interface WorkloadEntryLike {
  readonly address: string
  readonly ports: Readonly<Record<string, number>> | undefined
  readonly labels: Readonly<Record<string, string>> | undefined
  readonly weight: number | undefined
}

function readWorkloadEntries(t: Translation, spec: Record<string, unknown>, path: string): WorkloadEntryLike[] {
  const out: WorkloadEntryLike[] = []
  const raw = list(t, spec, 'endpoints', path)
  let maxWeight = 0
  raw.forEach((e, i) => {
    const here = `${at(path, 'endpoints')}[${i}]`
    if (!isObject(e)) {
      t.report(here, 'expected an object; not translated')
      return
    }
    t.fields(e, here, ['address', 'ports', 'labels', 'weight', 'network', 'locality', 'serviceAccount'])
    const address = str(t, e, 'address', here)
    if (address === undefined || address === '') {
      t.report(here, 'an endpoint without an address (one reached through a network gateway) cannot be dialled in-process; not translated')
      return
    }
    if (address.startsWith('unix://')) {
      t.report(at(here, 'address'), 'Unix domain socket endpoints are not translated')
      return
    }
    const portsObj = object(t, e, 'ports', here)
    let ports: Record<string, number> | undefined
    if (portsObj !== undefined) {
      ports = {}
      for (const [name, v] of Object.entries(portsObj)) {
        const n = typeof v === 'number' ? v : typeof v === 'string' ? Number(v) : NaN
        if (Number.isInteger(n) && n >= 1 && n <= 65535) ports[name] = n
        else t.report(at(at(here, 'ports'), name), 'not a port number; not translated')
      }
    }
    for (const key of ['network', 'locality']) {
      if (isSet(e[key])) t.report(at(here, key), 'the mesh has no networks or localities; not translated')
    }
    if (isSet(e['serviceAccount'])) t.report(at(here, 'serviceAccount'), 'not translated; verify the peer with the DestinationRule tls.subjectAltNames')
    const weight = num(t, e, 'weight', here)
    if (weight !== undefined && weight > maxWeight) maxWeight = weight
    out.push({ address, ports, labels: stringMap(t, e, 'labels', here), weight: weight !== undefined && weight > 0 ? weight : undefined })
  })
  if (maxWeight > istioDefaults.maxEndpointWeight) {
    // The mesh takes weights 1–128 (Envoy allows more): scale them all, keeping the ratios.
    const scale = istioDefaults.maxEndpointWeight / maxWeight
    t.report(at(path, 'endpoints'), `weights up to ${maxWeight} are scaled by ${scale.toFixed(4)} to the mesh's range 1–${istioDefaults.maxEndpointWeight}`)
    return out.map((e) => (e.weight === undefined ? e : { ...e, weight: Math.max(1, Math.round(e.weight * scale)) }))
  }
  return out
}

function endpoint(e: WorkloadEntryLike, port: number, tls: boolean): EndpointConfig {
  const host = e.address.includes(':') && !e.address.startsWith('[') ? `[${e.address}]` : e.address
  const address = `${tls ? 'https' : 'http'}://${host}:${port}`
  return {
    address,
    ...(e.labels === undefined || Object.keys(e.labels).length === 0 ? {} : { labels: { ...e.labels } }),
    ...(e.weight === undefined ? {} : { weight: e.weight }),
  }
}
