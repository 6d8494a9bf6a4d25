/**
 * Request headers as undici accepts them (object, flat array, or iterable of pairs), read
 * and rewritten for the upstream hop. The common case (no mutations, no Host in the
 * request) costs one small copy: the original authority is added as Host, because the
 * upstream must see the name the caller used, not the endpoint's IP (Envoy forwards
 * `:authority` unchanged).
 */
import type { Dispatcher } from 'undici'
import type { HeaderMutations } from '../router/header-mutations.js'

type RawHeaders = Dispatcher.DispatchOptions['headers']

/** The first value of a header, by case-insensitive name. */
export function findHeader(raw: RawHeaders, name: string): string | undefined {
  if (raw === null || raw === undefined) return undefined
  if (Array.isArray(raw)) {
    if (raw.length > 0 && Array.isArray(raw[0])) {
      for (const [k, v] of raw as unknown as [string, string][]) if (String(k).toLowerCase() === name) return String(v)
      return undefined
    }
    for (let i = 0; i + 1 < raw.length; i += 2) if (String(raw[i]).toLowerCase() === name) return String(raw[i + 1])
    return undefined
  }
  if (typeof (raw as Iterable<unknown>)[Symbol.iterator] === 'function') {
    for (const [k, v] of raw as Iterable<[string, string]>) if (String(k).toLowerCase() === name) return String(v)
    return undefined
  }
  const obj = raw as Record<string, unknown>
  const direct = obj[name]
  if (direct !== undefined) return Array.isArray(direct) ? String(direct[0]) : String(direct)
  for (const k in obj) {
    if (k.length === name.length && k.toLowerCase() === name) {
      const v = obj[k]
      if (v !== undefined && v !== null) return Array.isArray(v) ? String(v[0]) : String(v)
    }
  }
  return undefined
}

/**
 * The headers to send upstream: `host` set to `host` (replacing any Host the caller sent),
 * then the mutations applied. Returns a flat `[name, value, ...]` list or a plain object.
 */
export function upstreamHeaders(raw: RawHeaders, host: string, hadHost: boolean, mutations: HeaderMutations | null): RawHeaders {
  if (mutations === null) {
    if (!hadHost) {
      if (raw === null || raw === undefined) return { host }
      if (isPlainObject(raw)) return { ...raw, host }
      if (Array.isArray(raw) && (raw.length === 0 || !Array.isArray(raw[0]))) return [...(raw), 'host', host]
    }
  }
  const list = toPairs(raw)
  const out: string[] = []
  const removed = mutations?.remove
  for (const [k, v] of list) {
    const lower = k.toLowerCase()
    if (lower === 'host') continue
    if (removed !== undefined && removed.includes(lower)) continue
    out.push(k, v)
  }
  out.push('host', host)
  if (mutations !== null) {
    for (const a of mutations.add) {
      const present = indexOfName(out, a.name)
      switch (a.action) {
        case 'APPEND_IF_EXISTS_OR_ADD':
          out.push(a.name, a.value)
          break
        case 'ADD_IF_ABSENT':
          if (present === -1) out.push(a.name, a.value)
          break
        case 'OVERWRITE_IF_EXISTS_OR_ADD':
          removeName(out, a.name)
          out.push(a.name, a.value)
          break
        case 'OVERWRITE_IF_EXISTS':
          if (present !== -1) {
            removeName(out, a.name)
            out.push(a.name, a.value)
          }
          break
      }
    }
  }
  return out
}

function isPlainObject(v: unknown): v is Record<string, string | string[] | undefined> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false
  const proto = Object.getPrototypeOf(v) as unknown
  return proto === Object.prototype || proto === null
}

function toPairs(raw: RawHeaders): [string, string][] {
  const out: [string, string][] = []
  const push = (k: unknown, v: unknown): void => {
    if (v === undefined || v === null) return
    if (Array.isArray(v)) for (const x of v) out.push([String(k), String(x)])
    else out.push([String(k), String(v)])
  }
  if (raw === null || raw === undefined) return out
  if (Array.isArray(raw)) {
    if (raw.length > 0 && Array.isArray(raw[0])) for (const [k, v] of raw as unknown as [string, string][]) push(k, v)
    else for (let i = 0; i + 1 < raw.length; i += 2) push(raw[i], raw[i + 1])
  } else if (typeof (raw as Iterable<unknown>)[Symbol.iterator] === 'function') {
    for (const [k, v] of raw as Iterable<[string, string]>) push(k, v)
  } else {
    for (const k of Object.keys(raw)) push(k, (raw as Record<string, unknown>)[k])
  }
  return out
}

function indexOfName(flat: string[], name: string): number {
  for (let i = 0; i < flat.length; i += 2) if ((flat[i] as string).toLowerCase() === name) return i
  return -1
}

function removeName(flat: string[], name: string): void {
  for (let i = flat.length - 2; i >= 0; i -= 2) if ((flat[i] as string).toLowerCase() === name) flat.splice(i, 2)
}
