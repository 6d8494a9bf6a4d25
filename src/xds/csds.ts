/**
 * Envoy's Client Status Discovery Service on the control plane: for each connected client
 * (optionally filtered by node id), every resource it subscribed to, with the version sent
 * and its status (SYNCED, STALE, ERROR with the NACK's details, NOT_SENT).
 *
 * @module
 */
import type { AdsStream } from './ads-stream.js'
import type { XdsObject } from './codec.js'
import type { XdsSnapshot } from './snapshot.js'
import { kindOfTypeUrl, typeUrlOf, ResourceTypeNames } from './type-urls.js'

/** Envoy's ClientResourceStatus for each ConfigStatus. */
const CLIENT_STATUS = { SYNCED: 'ACKED', STALE: 'REQUESTED', ERROR: 'NACKED', NOT_SENT: 'REQUESTED' } as const

/** A `ClientStatusResponse` (object form) for `streams`. */
export function clientStatus(request: XdsObject, streams: Iterable<AdsStream>, snapshot: XdsSnapshot): XdsObject {
  const matchers = Array.isArray(request['node_matchers']) ? (request['node_matchers'] as XdsObject[]) : []
  const withContents = request['exclude_resource_contents'] !== true
  const config: XdsObject[] = []
  for (const stream of streams) {
    const node = stream.node
    if (node === undefined) continue
    if (matchers.length > 0 && !matchers.some((m) => nodeMatches(m, node.id))) continue
    const generic: XdsObject[] = []
    for (const t of stream.status()) {
      const kind = kindOfTypeUrl(t.typeUrl)
      if (kind === undefined) continue
      const names = t.names[0] === '*' ? snapshot.names(kind) : t.names
      for (const name of names) {
        const entry = snapshot.get(kind, name)
        const item: XdsObject = {
          type_url: typeUrlOf(ResourceTypeNames[kind]),
          name,
          config_status: t.status,
        }
        if (t.sentVersion !== undefined) item['version_info'] = t.sentVersion
        if (entry !== undefined && withContents) item['xds_config'] = { '@type': typeUrlOf(ResourceTypeNames[kind]), '@bytes': Buffer.from(entry.bytes).toString('base64') }
        item['client_status'] = entry === undefined ? 'DOES_NOT_EXIST' : CLIENT_STATUS[t.status]
        if (t.status === 'ERROR' && t.lastNack !== undefined) {
          item['error_state'] = { details: t.lastNack.message, version_info: t.lastNack.version, last_update_attempt: new Date(t.lastNack.at).toISOString() }
        }
        generic.push(item)
      }
    }
    config.push({
      node: { id: node.id, cluster: node.cluster, metadata: node.metadata },
      generic_xds_configs: generic,
    })
  }
  return { config }
}

function nodeMatches(matcher: XdsObject, id: string): boolean {
  const m = matcher['node_id'] as XdsObject | undefined
  if (m === undefined) return true
  if (typeof m['exact'] === 'string') return id === m['exact']
  if (typeof m['prefix'] === 'string') return id.startsWith(m['prefix'])
  if (typeof m['suffix'] === 'string') return id.endsWith(m['suffix'])
  if (typeof m['contains'] === 'string') return id.includes(m['contains'])
  return true
}
