/**
 * Request headers rewritten for the upstream hop, from the caller's headers as the door
 * read them (object, flat array, or iterable of pairs: see request-check.ts). The common
 * case (no mutations) costs one small copy: the original authority is added as Host, because the
 * upstream must see the name the caller used, not the endpoint's IP (Envoy forwards
 * `:authority` unchanged).
 */
import { inject, type PropagationFormat } from '../observability/propagation.js'
import type { Dispatcher } from 'undici'
import { PEER_HEADER } from '../observability/istio-metrics.js'
import type { HeaderMutations } from '../http/header-mutations.js'
import { RequestView } from '../http/request-view.js'

/** The trace of an outgoing call, to write into its headers. */
export interface OutgoingTrace {
  readonly trace: { readonly traceId: string; readonly spanId: string; readonly parentSpanId: string | undefined; readonly sampled: boolean; readonly traceState: string | undefined; readonly random?: boolean }
  readonly formats: readonly PropagationFormat[]
  /** The request id of the inbound request being served, carried unless the caller set one. */
  readonly requestId: string | undefined
  /**
   * This workload, for Istio's `source_*` labels at a meshed destination (the
   * `x-sidecarless-peer` header); unset for calls leaving the mesh (pass-through).
   */
  readonly peer?: string | undefined
}

/**
 * The caller's request headers, read once at the door (src/outbound/request-check.ts):
 * checked as undici checks them, flattened (a list value gives one line per item; null and
 * undefined values none), with Host and the trace headers the mesh writes itself taken
 * out. Every try and mirrored copy builds its upstream headers from it without walking the
 * caller's headers again.
 */
export interface CallerHeaders {
  /** `[name, value, name, value, ...]`, names as the caller wrote them; no Host, no trace headers. */
  readonly flat: string[]
  /** The caller's Host header, when it sent one. */
  readonly host: string | undefined
  /** Whether the caller set `x-request-id` (then it is kept, not replaced). */
  readonly hasRequestId: boolean
}

/** An outbound request as routing sees it, with the caller's headers as the door read them. */
export class OutboundView extends RequestView {
  readonly caller: CallerHeaders

  constructor(method: string, fullPath: string, authority: string, scheme: string, raw: Dispatcher.DispatchOptions['headers'], caller: CallerHeaders) {
    super(method, fullPath, authority, scheme, raw)
    this.caller = caller
  }
}

/**
 * The headers to send upstream: the caller's, then `host` (replacing any Host the caller
 * sent), this call's trace headers, the request id carried unless the caller set one, then
 * the route's mutations. Returns a flat `[name, value, ...]` list. `last` says no other try
 * or copy will read `caller` again: its list is then extended in place instead of copied.
 */
export function upstreamHeaders(caller: CallerHeaders, host: string, mutations: HeaderMutations | null, outgoing: OutgoingTrace, last = false): string[] {
  const out = last ? caller.flat : caller.flat.slice()
  let hasRequestId = caller.hasRequestId
  const removed = mutations?.remove
  if (removed !== undefined && removed.length > 0) {
    for (let i = out.length - 2; i >= 0; i -= 2) {
      if (removed.includes((out[i] as string).toLowerCase())) out.splice(i, 2)
    }
    if (removed.includes('x-request-id')) hasRequestId = false
  }
  out.push('host', host)
  inject(outgoing.trace, outgoing.formats, (name, value) => out.push(name, value))
  if (!hasRequestId && outgoing.requestId !== undefined) out.push('x-request-id', outgoing.requestId)
  if (outgoing.peer !== undefined) out.push(PEER_HEADER, outgoing.peer)
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
export function replacedBy(formats: readonly PropagationFormat[]): ReadonlySet<string> {
  let set = replacedCache.get(formats)
  if (set === undefined) {
    const names = new Set<string>()
    inject({ traceId: `${'0'.repeat(31)}1`, spanId: `${'0'.repeat(15)}1`, parentSpanId: `${'0'.repeat(15)}2`, sampled: true, traceState: 'k=v' }, formats, (name) => names.add(name.toLowerCase()))
    if (formats.includes('b3multi')) for (const n of ['x-b3-parentspanid', 'x-b3-flags', 'x-b3-sampled']) names.add(n)
    // Mesh-to-mesh metadata is the mesh's to write: a caller's own is never forwarded.
    names.add(PEER_HEADER)
    set = names
    replacedCache.set(formats, set)
  }
  return set
}

function indexOfName(flat: string[], name: string): number {
  for (let i = 0; i < flat.length; i += 2) if ((flat[i] as string).toLowerCase() === name) return i
  return -1
}

function removeName(flat: string[], name: string): void {
  for (let i = flat.length - 2; i >= 0; i -= 2) if ((flat[i] as string).toLowerCase() === name) flat.splice(i, 2)
}
