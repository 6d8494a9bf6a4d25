/**
 * The semantic checks of a cluster's DNS settings (`dnsRefreshRate`, `dnsFailureRefreshRate`,
 * `dnsJitter`, `dnsResolvers`), called by `validate.ts` after the structural pass, with
 * Envoy's rules: refresh intervals above zero (at least 1ms), `maxInterval` not below
 * `baseInterval`, resolver addresses that are IPs.
 */
import { isIP } from 'node:net'
import type { ConfigIssueCode } from '../errors.js'
import { limits } from './defaults.js'
import { parseDuration } from './duration.js'

type Obj = Record<string, unknown>
type Add = (path: string, code: ConfigIssueCode, message: string) => void

/** A DNS server address: an IP and a port. */
export interface DnsServerAddress {
  readonly ip: string
  readonly port: number
  /** The form `dns.Resolver#setServers` takes: `ip:port`, `[ipv6]:port`. */
  readonly server: string
}

/**
 * Parses a `dnsResolvers` entry: `ip`, `ip:port`, `[ipv6]`, `[ipv6]:port` or a bare IPv6
 * address (port 53 when absent); or returns a sentence saying what is wrong.
 */
export function parseDnsServer(value: string): DnsServerAddress | string {
  let ip = value
  let port = 53
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(value)
  if (bracketed !== null) {
    ip = bracketed[1] as string
    if (bracketed[2] !== undefined) port = Number(bracketed[2])
  } else if (isIP(value) === 0) {
    const colon = value.lastIndexOf(':')
    if (colon > 0 && /^\d+$/.test(value.slice(colon + 1))) {
      ip = value.slice(0, colon)
      port = Number(value.slice(colon + 1))
    }
  }
  const family = isIP(ip)
  if (family === 0) return `"${value}" is not an IP address (a DNS server is named by address, optionally with :port)`
  if (bracketed !== null && family !== 6) return `"${value}": only IPv6 addresses are bracketed`
  if (!Number.isInteger(port) || port < 1 || port > 65_535) return `"${value}": port ${port} is outside 1..65535`
  return Object.freeze({ ip, port, server: family === 6 ? `[${ip}]:${port}` : `${ip}:${port}` })
}

/** Checks the DNS settings of the cluster `c` at `path`. */
export function checkClusterDns(c: Obj, path: string, add: Add): void {
  const refresh = parseDuration(c['dnsRefreshRate'])
  if (refresh !== undefined && refresh < limits.minDnsRefreshMs) {
    add(`${path}.dnsRefreshRate`, 'INVALID_VALUE', `dnsRefreshRate must be at least ${limits.minDnsRefreshMs}ms (Envoy's rule)`)
  }
  const failure = c['dnsFailureRefreshRate']
  if (isObject(failure)) {
    const base = parseDuration(failure['baseInterval'])
    const max = parseDuration(failure['maxInterval'])
    if (base !== undefined && base < limits.minDnsRefreshMs) {
      add(`${path}.dnsFailureRefreshRate.baseInterval`, 'INVALID_VALUE', `baseInterval must be at least ${limits.minDnsRefreshMs}ms`)
    }
    if (max !== undefined && max < limits.minDnsRefreshMs) {
      add(`${path}.dnsFailureRefreshRate.maxInterval`, 'INVALID_VALUE', `maxInterval must be at least ${limits.minDnsRefreshMs}ms`)
    } else if (base !== undefined && max !== undefined && max < base) {
      add(`${path}.dnsFailureRefreshRate.maxInterval`, 'INVALID_VALUE', `maxInterval ${max}ms is below baseInterval ${base}ms`)
    }
  }
  const resolvers = c['dnsResolvers']
  if (Array.isArray(resolvers)) {
    if (resolvers.length > limits.dnsResolvers) {
      add(`${path}.dnsResolvers`, 'TOO_LARGE', `${resolvers.length} DNS servers; at most ${limits.dnsResolvers} are accepted`)
      return
    }
    if (resolvers.length === 0) add(`${path}.dnsResolvers`, 'INVALID_VALUE', 'dnsResolvers is empty; remove it to use the system resolver')
    resolvers.forEach((r: unknown, i) => {
      if (typeof r !== 'string') return
      const parsed = parseDnsServer(r)
      if (typeof parsed === 'string') add(`${path}.dnsResolvers[${i}]`, 'INVALID_ADDRESS', parsed)
    })
  }
}

function isObject(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}
