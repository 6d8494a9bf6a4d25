/**
 * PeerAuthentication → `listener.mtls`, composed as istiod does for one workload
 * (pilot `ComposePeerAuthentication`): the oldest mesh-wide policy (root namespace, no
 * selector), then the oldest of the workload's namespace, then the oldest workload policy
 * whose selector matches; each mode that is not UNSET overrides, and port-level modes come
 * from the workload policy only (UNSET ones inherit). With no policy at all, nothing is set.
 */
import type { ListenerMtlsConfig, MtlsMode } from '../types.js'
import type { Resource } from './documents.js'
import { at, formatLabels, isObject, object, selects, str, stringMap, type Translation } from './state.js'

interface Candidate {
  readonly r: Resource
  readonly mode: MtlsMode | undefined
  readonly ports: Readonly<Record<string, MtlsMode | undefined>> | undefined
}

/** Composes the PeerAuthentications that apply to this workload; undefined when none does. */
export function composePeerAuthentication(t: Translation, resources: readonly Resource[]): { mtls: ListenerMtlsConfig; from: Resource } | undefined {
  const w = t.workload
  let mesh: Candidate | undefined
  let namespace: Candidate | undefined
  let workload: Candidate | undefined
  for (const r of resources) {
    const path = `${r.label}.spec`
    t.fields(r.spec, path, ['selector', 'mtls', 'portLevelMtls'])
    const selectorObj = object(t, r.spec, 'selector', path)
    const selector = selectorObj === undefined ? undefined : readSelector(t, selectorObj, at(path, 'selector'))
    const hasSelector = selector !== undefined && Object.keys(selector).length > 0
    if (r.namespace !== w.namespace && r.namespace !== w.rootNamespace) {
      t.report(r.label, `applies to namespace ${r.namespace}; this workload is in ${w.namespace}; not applied`)
      continue
    }
    if (hasSelector && r.namespace === w.rootNamespace) {
      t.report(at(path, 'selector'), 'a PeerAuthentication with a selector in the root namespace is ignored (as by istiod)')
      continue
    }
    if (hasSelector && !selects(selector, w.labels)) {
      t.report(at(path, 'selector'), `selects other workloads (this one has ${formatLabels(w.labels)}); not applied`)
      continue
    }
    const c: Candidate = { r, mode: readMode(t, object(t, r.spec, 'mtls', path), at(path, 'mtls')), ports: readPorts(t, r.spec, path, hasSelector) }
    const slot = hasSelector ? 'workload' : r.namespace === w.rootNamespace ? 'mesh' : 'namespace'
    const current = slot === 'mesh' ? mesh : slot === 'namespace' ? namespace : workload
    if (current !== undefined) {
      const [keep, drop] = older(current.r, r) ? [current, c] : [c, current]
      t.report(drop.r.label, `${keep.r.label} is older and applies at the same level; istiod uses the oldest, so this one is not applied`)
      if (slot === 'mesh') mesh = keep
      else if (slot === 'namespace') namespace = keep
      else workload = keep
    } else if (slot === 'mesh') mesh = c
    else if (slot === 'namespace') namespace = c
    else workload = c
  }
  const used = [mesh, namespace, workload].filter((c): c is Candidate => c !== undefined)
  if (used.length === 0) return undefined
  let mode: MtlsMode = 'PERMISSIVE'
  for (const c of used) if (c.mode !== undefined) mode = c.mode
  const mtls: ListenerMtlsConfig = { mode }
  if (workload?.ports !== undefined) {
    const ports: Record<string, { mode: MtlsMode }> = {}
    for (const [port, m] of Object.entries(workload.ports)) ports[port] = { mode: m ?? mode }
    if (Object.keys(ports).length > 0) mtls.portLevelMtls = ports
  }
  return { mtls, from: (workload ?? namespace ?? mesh)!.r }
}

function readSelector(t: Translation, s: Record<string, unknown>, path: string): Record<string, string> | undefined {
  t.fields(s, path, ['matchLabels'])
  return stringMap(t, s, 'matchLabels', path)
}

/** `{ mode }` at `path` → the mode, or undefined for UNSET (inherit). */
function readMode(t: Translation, m: Record<string, unknown> | undefined, path: string): MtlsMode | undefined {
  if (m === undefined) return undefined
  t.fields(m, path, ['mode'])
  const mode = str(t, m, 'mode', path)
  if (mode === undefined || mode === 'UNSET') return undefined
  if (mode === 'STRICT' || mode === 'PERMISSIVE' || mode === 'DISABLE') return mode
  t.report(at(path, 'mode'), `${JSON.stringify(mode)} is not a mode (UNSET, DISABLE, PERMISSIVE, STRICT); treated as UNSET`)
  return undefined
}

function readPorts(t: Translation, spec: Record<string, unknown>, path: string, hasSelector: boolean): Record<string, MtlsMode | undefined> | undefined {
  const ports = object(t, spec, 'portLevelMtls', path)
  if (ports === undefined) return undefined
  const here = at(path, 'portLevelMtls')
  if (!hasSelector) {
    t.report(here, 'port-level modes apply only with a workload selector (Istio rejects them otherwise); not applied')
    return undefined
  }
  const out: Record<string, MtlsMode | undefined> = {}
  for (const [port, value] of Object.entries(ports)) {
    const n = Number(port)
    if (!Number.isInteger(n) || n < 1 || n > 65535) {
      t.report(at(here, port), 'not a port number; not translated')
      continue
    }
    if (!isObject(value)) {
      t.report(at(here, port), 'expected { mode }; not translated')
      continue
    }
    out[String(n)] = readMode(t, value, at(here, port))
  }
  return out
}

function older(a: Resource, b: Resource): boolean {
  if (a.created !== undefined && b.created !== undefined && a.created !== b.created) return a.created < b.created
  return a.order < b.order
}
