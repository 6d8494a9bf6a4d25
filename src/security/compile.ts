/**
 * Compiles the security fields of a validated config into runtime objects: the workload's
 * credential store (reused across snapshots while `identity` is unchanged, so its watcher
 * and current credentials survive unrelated config changes), each cluster's upstream TLS,
 * and the listener's mTLS modes. File problems become {@link ConfigError}s with the path of
 * the field, so a config naming a missing file is rejected like any other bad config.
 */
import { createHash } from 'node:crypto'
import { createSecureContext, type SecureContext } from 'node:tls'
import { ConfigError, MeshError } from '../errors.js'
import { defaults } from '../config/defaults.js'
import { parseDuration } from '../config/duration.js'
import type { ClusterConfig, IdentityConfig, ListenerMtlsConfig, MtlsMode } from '../config/types.js'
import { upstreamTlsMode } from '../config/validate-security.js'
import type { UpstreamTls } from './upstream-tls.js'
import { compileIdentityMatcher } from './identity.js'
import { HTTP11_CLIENT_ALPN, ISTIO_MUTUAL_CLIENT_ALPN, istioSniOf } from './istio-tls.js'
import { CredentialsError, CredentialStore, parseBundle, readPem } from './tls.js'

/** The inbound mTLS of a snapshot. */
export interface InboundTls {
  /** Mode of ports not listed in `ports`. */
  readonly mode: MtlsMode
  /** Per-port modes. */
  readonly ports: ReadonlyMap<number, MtlsMode>
  /** Time allowed for the first byte and the handshake. */
  readonly handshakeTimeoutMs: number
  /** The workload credentials served (null only when every mode is DISABLE). */
  readonly identity: CredentialStore | null
}

/** The workload identity of a snapshot and the key that tells whether it changed. */
export interface CompiledIdentity {
  readonly store: CredentialStore | null
  readonly key: string
  /** Whether this compile created `store` (to close it if the compile is abandoned). */
  readonly created: boolean
}

/** Builds (or reuses) the credential store of `identity`. */
export function compileIdentity(identity: IdentityConfig | undefined, previous: { store: CredentialStore | null; key: string } | undefined): CompiledIdentity {
  const key = identity === undefined ? '' : JSON.stringify(identity)
  if (identity === undefined) return { store: null, key, created: false }
  if (previous !== undefined && previous.key === key && previous.store !== null) return { store: previous.store, key, created: false }
  try {
    const store = new CredentialStore(
      { certificate: identity.certificate, privateKey: identity.privateKey, trustBundle: identity.trustBundle },
      {
        watch: identity.watch ?? true,
        pollIntervalMs: defaults.credentialPollMs,
        names: { certificate: 'identity.certificate', privateKey: 'identity.privateKey', trustBundle: 'identity.trustBundle' },
      },
    )
    return { store, key, created: true }
  } catch (err) {
    throw asConfigError(err, 'identity')
  }
}

function asConfigError(err: unknown, fallbackPath: string): unknown {
  if (err instanceof CredentialsError) return new ConfigError([{ path: err.field, code: 'INVALID_VALUE', message: err.message }])
  if (err instanceof MeshError) return new ConfigError([{ path: fallbackPath, code: 'INVALID_VALUE', message: err.message }])
  return err
}

/** The listener's mTLS, or null when not configured. */
export function compileInboundTls(mtls: ListenerMtlsConfig | undefined, identity: CredentialStore | null): InboundTls | null {
  if (mtls === undefined) return null
  const ports = new Map<number, MtlsMode>()
  for (const [port, v] of Object.entries(mtls.portLevelMtls ?? {})) ports.set(Number(port), v.mode)
  return Object.freeze({
    mode: mtls.mode ?? defaults.mtlsMode,
    ports,
    handshakeTimeoutMs: parseDuration(mtls.handshakeTimeout) ?? defaults.handshakeTimeoutMs,
    identity,
  })
}

/**
 * A cluster's upstream TLS, or undefined for `disable` / no `tls`. `identityKey` is part of
 * the pool key when the workload identity is used, so pools follow identity changes.
 */
export function compileUpstreamTls(c: ClusterConfig, index: number, identity: CompiledIdentity): UpstreamTls | undefined {
  const tls = c.tls
  const mode = tls === undefined ? 'disable' : upstreamTlsMode(tls.mode)
  if (tls === undefined || mode === undefined || mode === 'disable') return undefined
  const path = `clusters[${index}].tls`
  const mutual = mode === 'mutual' || mode === 'istio_mutual'
  let ownCert: string | undefined
  let ownKey: string | undefined
  let ownBundle: string | undefined
  try {
    if (tls.certificate !== undefined && tls.privateKey !== undefined) {
      ownCert = readPem(tls.certificate, `${path}.certificate`)
      ownKey = readPem(tls.privateKey, `${path}.privateKey`)
      parseBundle(ownCert, `${path}.certificate`, tls.certificate)
      // Checks the key parses and matches, with the field's path in the message.
      createSecureContext({ cert: ownCert, key: ownKey })
    }
    if (tls.trustBundle !== undefined) {
      ownBundle = readPem(tls.trustBundle, `${path}.trustBundle`)
      parseBundle(ownBundle, `${path}.trustBundle`, tls.trustBundle)
    }
  } catch (err) {
    if (err instanceof MeshError) throw asConfigError(err, path)
    throw new ConfigError([{ path: `${path}.privateKey`, code: 'INVALID_VALUE', message: 'the private key cannot be used with the certificate (not PEM, or they do not match)' }])
  }
  const store = identity.store
  const usesIdentity = store !== null && ((mutual && ownCert === undefined) || ownBundle === undefined)
  const verify = tls.verifyIdentities !== undefined && tls.verifyIdentities.length > 0 ? compileIdentityMatcher(tls.verifyIdentities) : null
  let cached: { generation: number; context: SecureContext } | undefined
  const context = (): SecureContext => {
    const current = usesIdentity ? (store).current : undefined
    const generation = current?.generation ?? 0
    if (cached !== undefined && cached.generation === generation) return cached.context
    const cert = mutual ? (ownCert ?? current?.certificate) : undefined
    const key = mutual ? (ownKey ?? current?.privateKey) : undefined
    const ca = ownBundle ?? current?.trustBundle
    const ctx = createSecureContext({ ...(cert === undefined ? {} : { cert, key }), ...(ca === undefined ? {} : { ca }) })
    cached = { generation, context: ctx }
    return ctx
  }
  // ISTIO_MUTUAL talks to sidecars as a sidecar does: Istio's ALPN (what a sidecar's inbound
  // filter chains match mTLS on) and, for a cluster named in Istio's form, Istio's SNI.
  const istio = mode === 'istio_mutual'
  const sni = tls.sni ?? (istio ? istioSniOf(c.name) : undefined)
  return Object.freeze({
    // Hashed: the settings may hold inline PEM (a private key), and host keys are shown in admin views.
    // The SNI is in it because it may come from the cluster's name, not from `tls`.
    key: createHash('sha256').update(`${JSON.stringify(tls)}|sni:${sni ?? ''}${usesIdentity ? `|${identity.key}` : ''}`).digest('base64url').slice(0, 22),
    sni,
    alpn: istio ? ISTIO_MUTUAL_CLIENT_ALPN : HTTP11_CLIENT_ALPN,
    verify,
    // Mesh certificates name workloads, not hosts: with identities to verify, or in mutual
    // mode (Envoy verifies only the chain when no SAN matcher is set), host names are not checked.
    checkHostname: verify === null && !mutual,
    context,
  })
}
