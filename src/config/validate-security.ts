/**
 * The semantic checks of the security fields: `identity`, `listener.mtls` and
 * `clusters[].tls`. Messages name paths and file names, never PEM contents. Whether files
 * exist and hold matching credentials is checked when the config is compiled (the error
 * then has the same path), since a file may legitimately appear after validation.
 */
import type { ConfigIssueCode } from '../errors.js'
import { identityPatternProblem } from './spiffe-id.js'
import { limits } from './defaults.js'

type Obj = Record<string, unknown>
type Add = (path: string, code: ConfigIssueCode, message: string) => void

const isObject = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v)

/** Normalised upstream TLS mode: Istio's spellings map to ours. */
export function upstreamTlsMode(mode: unknown): 'disable' | 'simple' | 'mutual' | 'istio_mutual' | undefined {
  switch (mode) {
    case 'disable': case 'DISABLE': return 'disable'
    case 'simple': case 'SIMPLE': return 'simple'
    case 'mutual': case 'MUTUAL': return 'mutual'
    case 'ISTIO_MUTUAL': return 'istio_mutual'
    default: return undefined
  }
}

/** Checks identity, listener.mtls and clusters[].tls. */
export function checkSecurity(config: Obj, add: Add): void {
  const hasIdentity = isObject(config['identity'])

  const listener = config['listener']
  const mtls = isObject(listener) ? listener['mtls'] : undefined
  if (isObject(mtls)) {
    const modes: unknown[] = [mtls['mode'] ?? 'PERMISSIVE']
    const ports = mtls['portLevelMtls']
    if (isObject(ports)) {
      for (const [port, v] of Object.entries(ports)) {
        if (!/^[1-9]\d{0,4}$/.test(port) || Number(port) > 65535) {
          add(`listener.mtls.portLevelMtls.${port.slice(0, 32)}`, 'INVALID_VALUE', 'a port-level key is a port number, 1 to 65535')
        }
        if (isObject(v)) modes.push(v['mode'])
      }
    }
    if (!hasIdentity && modes.some((m) => m === 'STRICT' || m === 'PERMISSIVE')) {
      add('identity', 'REQUIRED', 'listener.mtls serves the workload identity: set identity.certificate, identity.privateKey and identity.trustBundle (or set listener.mtls.mode to DISABLE)')
    }
  }

  const clusters = config['clusters']
  // A list over the bound was reported by the structural pass; never walk it (it may be sparse and huge).
  if (!Array.isArray(clusters) || clusters.length > limits.listItems) return
  for (let i = 0; i < clusters.length; i++) {
    const c: unknown = clusters[i]
    if (!isObject(c) || !isObject(c['tls'])) continue
    const tls = c['tls']
    const path = `clusters[${i}].tls`
    const mode = upstreamTlsMode(tls['mode'])
    if (mode === undefined) continue // the structural pass reported it
    const ids = tls['verifyIdentities']
    if (Array.isArray(ids) && ids.length <= limits.listItems) {
      for (let j = 0; j < ids.length; j++) {
        const id: unknown = ids[j]
        if (typeof id !== 'string') continue
        const problem = identityPatternProblem(id)
        if (problem !== undefined) add(`${path}.verifyIdentities[${j}]`, 'INVALID_VALUE', `not a SPIFFE ID, nor one ending in "/*": ${problem.message} (${problem.reason})`)
      }
      if (mode === 'disable' && ids.length > 0) add(`${path}.verifyIdentities`, 'INVALID_VALUE', 'identities are verified only over TLS (mode simple or mutual)')
    }
    const hasCert = typeof tls['certificate'] === 'string'
    const hasKey = typeof tls['privateKey'] === 'string'
    if (hasCert !== hasKey) add(`${path}.${hasCert ? 'privateKey' : 'certificate'}`, 'REQUIRED', 'certificate and privateKey go together')
    if (mode === 'istio_mutual' && (hasCert || hasKey || typeof tls['trustBundle'] === 'string')) {
      add(path, 'INVALID_VALUE', 'ISTIO_MUTUAL uses the workload identity; certificate, privateKey and trustBundle are for MUTUAL')
    }
    if (mode === 'istio_mutual' && !hasIdentity) {
      add(`${path}.mode`, 'REQUIRED', 'ISTIO_MUTUAL presents the workload identity: set the top-level identity')
    } else if (mode === 'mutual' && !hasCert && !hasIdentity) {
      add(`${path}.certificate`, 'REQUIRED', `mode ${String(tls['mode'])} presents a client certificate: set this cluster's certificate and privateKey, or the top-level identity`)
    }
    if (mode === 'disable' && (hasCert || typeof tls['trustBundle'] === 'string' || tls['sni'] !== undefined)) {
      add(path, 'INVALID_VALUE', 'mode disable takes no certificate, privateKey, trustBundle or sni')
    }
    const sni = tls['sni']
    // Labels may hold "_": Istio's SNI names a cluster as `outbound_.9080_.v1_.reviews.default.svc.cluster.local`.
    if (typeof sni === 'string' && (sni.length > 253 || !/^[A-Za-z0-9_]([A-Za-z0-9_-]{0,62})(\.[A-Za-z0-9_]([A-Za-z0-9_-]{0,62}))*\.?$/.test(sni))) {
      add(`${path}.sni`, 'INVALID_VALUE', `"${sni.slice(0, 64)}" is not a DNS name (labels of letters, digits, "-" and "_", at most 253 characters)`)
    }
  }
}
