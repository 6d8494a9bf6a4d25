/**
 * Request headers as undici accepts them (object, flat array, or iterable of pairs), read
 * and rewritten for the upstream hop. The common case (no mutations, no Host in the
 * request) costs one small copy: the original authority is added as Host, because the
 * upstream must see the name the caller used, not the endpoint's IP (Envoy forwards
 * `:authority` unchanged).
 */
import type { Dispatcher } from 'undici'
import { inject, type PropagationFormat } from '../observability/propagation.js'
import { PEER_HEADER } from '../observability/istio-metrics.js'
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

/** The trace of an outgoing call, to write into its headers. */
export interface OutgoingTrace {
  readonly trace: { readonly traceId: string; readonly spanId: string; readonly parentSpanId: string | undefined; readonly sampled: boolean; readonly traceState: string | undefined; readonly peer?: string | undefined }
  readonly formats: readonly PropagationFormat[]
  /** The request id of the inbound request being served, carried unless the caller set one. */
  readonly requestId: string | undefined
}

/**
 * The headers to send upstream: `host` set to `host` (replacing any Host the caller sent),
 * trace headers replaced (never appended) with this call's, the request id carried, then
 * the route's mutations applied. Returns a flat `[name, value, ...]` list.
 */
export function upstreamHeaders(raw: RawHeaders, host: string, mutations: HeaderMutations | null, outgoing?: OutgoingTrace): string[] {
  const out: string[] = []
  const removed = mutations?.remove
  const replaced = outgoing === undefined ? null : replacedBy(outgoing.formats)
  let hasRequestId = false
  const peer = outgoing?.trace.peer
  forEachHeader(raw, (k, v) => {
    const lower = k.toLowerCase()
    if (lower === 'host') return
    if (peer !== undefined && lower === PEER_HEADER) return
    if (replaced !== null && replaced.has(lower)) return
    if (removed !== undefined && removed.includes(lower)) return
    if (lower === 'x-request-id') hasRequestId = true
    out.push(k, v)
  })
  out.push('host', host)
  if (outgoing !== undefined) {
    inject(outgoing.trace, outgoing.formats, (name, value) => out.push(name, value))
    if (!hasRequestId && outgoing.requestId !== undefined) out.push('x-request-id', outgoing.requestId)
    // [otel-metrics] who is calling, for Istio's source_* labels at a meshed destination.
    if (peer !== undefined) out.push(PEER_HEADER, peer)
  }
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

const replacedCache = new WeakMap<readonly PropagationFormat[], ReadonlySet<string>>()

/** Header names a set of formats writes: stale ones from the caller are dropped, not appended to. */
function replacedBy(formats: readonly PropagationFormat[]): ReadonlySet<string> {
  let set = replacedCache.get(formats)
  if (set === undefined) {
    const names = new Set<string>()
    inject({ traceId: `${'0'.repeat(31)}1`, spanId: `${'0'.repeat(15)}1`, parentSpanId: `${'0'.repeat(15)}2`, sampled: true, traceState: 'k=v' }, formats, (name) => names.add(name.toLowerCase()))
    if (formats.includes('b3multi')) for (const n of ['x-b3-parentspanid', 'x-b3-flags', 'x-b3-sampled']) names.add(n)
    set = names
    replacedCache.set(formats, set)
  }
  return set
}

/** Calls `fn` for every header value (repeated values one by one), whatever form `raw` has. */
function forEachHeader(raw: RawHeaders, fn: (name: string, value: string) => void): void {
  const push = (k: unknown, v: unknown): void => {
    if (v === undefined || v === null) return
    if (Array.isArray(v)) for (const x of v) fn(String(k), String(x))
    else fn(String(k), String(v))
  }
  if (raw === null || raw === undefined) return
  if (Array.isArray(raw)) {
    if (raw.length > 0 && Array.isArray(raw[0])) for (const [k, v] of raw as unknown as [string, string][]) push(k, v)
    else for (let i = 0; i + 1 < raw.length; i += 2) push(raw[i], raw[i + 1])
  } else if (typeof (raw as Iterable<unknown>)[Symbol.iterator] === 'function') {
    for (const [k, v] of raw as Iterable<[string, string]>) push(k, v)
  } else {
    for (const k of Object.keys(raw)) push(k, (raw as Record<string, unknown>)[k])
  }
}

function indexOfName(flat: string[], name: string): number {
  for (let i = 0; i < flat.length; i += 2) if ((flat[i] as string).toLowerCase() === name) return i
  return -1
}

function removeName(flat: string[], name: string): void {
  for (let i = flat.length - 2; i >= 0; i -= 2) if ((flat[i] as string).toLowerCase() === name) flat.splice(i, 2)
}
