/**
 * Addresses to listen on (`sidecarless proxy`'s listener and admin endpoint): `host:port`,
 * IPv6 bracketed (`[::1]:9901`). Unlike an endpoint address, port 0 is allowed (a free
 * port) and there is no scheme.
 */
import { isIP } from 'node:net'

/** A parsed listen address. */
export interface ListenAddress {
  /** IP or host name, without brackets. */
  readonly host: string
  /** 0 to 65535; 0 takes a free port. */
  readonly port: number
}

const HOST_NAME = /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/

/** Parses `host:port`, or returns a sentence saying what is wrong with it. */
export function parseListenAddress(address: string): ListenAddress | string {
  const shown = JSON.stringify(address.length > 64 ? `${address.slice(0, 64)}…` : address)
  let host: string
  let portText: string
  if (address.startsWith('[')) {
    const end = address.indexOf(']')
    if (end === -1 || address[end + 1] !== ':') return `${shown} is not [ipv6]:port`
    host = address.slice(1, end)
    portText = address.slice(end + 2)
    if (isIP(host) !== 6) return `${shown}: "${host}" is not an IPv6 address`
  } else {
    const colon = address.lastIndexOf(':')
    if (colon <= 0) return `${shown} is not host:port`
    host = address.slice(0, colon)
    portText = address.slice(colon + 1)
    if (host.includes(':')) return `${shown}: an IPv6 host is written in brackets, e.g. [::1]:9901`
    if (isIP(host) === 0 && !HOST_NAME.test(host)) return `${shown}: "${host}" is not an IP address or host name`
  }
  if (!/^\d{1,5}$/.test(portText) || Number(portText) > 65535) return `${shown}: the port must be 0 to 65535`
  return Object.freeze({ host, port: Number(portText) })
}

/** True for an address only this machine can reach (127.0.0.0/8, ::1, localhost). */
export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host)
}

/** `host:port` with IPv6 bracketed. */
export function formatListenAddress(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`
}
