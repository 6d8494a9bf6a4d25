/** Envoy `Address` (`socket_address`) as `host:port`, to listen on or to connect to. */
import { formatListenAddress, parseListenAddress } from '../listen-address.js'
import { asEnum, asString, asUint, present, readField, type Field, type Problems, type Shape } from './reader.js'

const ADDRESS: Shape = {
  use: ['socket_address'],
  why: { pipe: 'Unix domain sockets are not supported', envoy_internal_address: 'internal addresses are not supported' },
}
const SOCKET_ADDRESS: Shape = {
  use: ['address', 'port_value', 'protocol'],
  why: { named_port: 'named ports are not supported; use port_value', resolver_name: 'custom resolvers are not supported', ipv4_compat: 'IPv4-compatible IPv6 sockets are not configurable' },
}

/**
 * `host:port` of an Envoy Address to listen on (port 0 allowed), IPv6 bracketed;
 * `undefined` (reported) otherwise.
 */
export function listenAddress(p: Problems, f: Field | undefined): string | undefined {
  const s = socketFields(p, f, 'listeners')
  if (s === undefined || f === undefined) return undefined
  const host = asString(p, s.get('address'))
  // An unset port_value is 0 in protobuf: any free port.
  const port = present(s.get('port_value')) ? asUint(p, s.get('port_value'), 0, 65535) : 0
  if (host === undefined || host === '' || port === undefined) return undefined
  const address = formatListenAddress(host, port)
  const parsed = parseListenAddress(address)
  if (typeof parsed === 'string') {
    p.report(f.path, `${parsed}; dropped`)
    return undefined
  }
  return address
}

/** `host:port` of an Envoy Address to connect to, IPv6 bracketed; `undefined` (reported) otherwise. */
export function socketAddress(p: Problems, f: Field | undefined): string | undefined {
  const s = socketFields(p, f, 'endpoints')
  if (s === undefined) return undefined
  const host = asString(p, s.get('address'))
  const port = asUint(p, s.get('port_value'), 1, 65535)
  if (host === undefined || host === '' || port === undefined) return undefined
  return host.includes(':') && !host.startsWith('[') ? `[${host}]:${port}` : `${host}:${port}`
}

function socketFields(p: Problems, f: Field | undefined, what: string): Map<string, Field> | undefined {
  const a = readField(p, f, ADDRESS)
  const s = readField(p, a?.get('socket_address'), SOCKET_ADDRESS)
  if (s === undefined) return undefined
  const protocol = asEnum(p, s.get('protocol'), ['TCP', 'UDP'])
  if (protocol === 'UDP') {
    p.report((s.get('protocol') as Field).path, `UDP ${what} are not supported`)
    return undefined
  }
  return s
}
