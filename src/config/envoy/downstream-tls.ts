/**
 * Envoy `DownstreamTlsContext` (the transport socket of a listener's filter chain) as what
 * the mesh's inbound listener can do with it. istiod writes one for a proxyless gRPC
 * server's mTLS filter chain (pilot/pkg/networking/grpcgen lds.go): the certificate and the
 * peer validation from certificate provider instance `default`, and
 * `require_client_certificate: true`, which is our `listener.mtls` mode STRICT.
 */
import { translateCommonTlsContext, type CommonTlsTranslation } from './common-tls.js'
import { asBool, readField, type Field, type Problems, type Shape } from './reader.js'

/** The result of {@link translateDownstreamTlsContext}. */
export interface DownstreamTlsTranslation extends CommonTlsTranslation {
  readonly path: string
  /** `require_client_certificate`: peers must present a certificate (mutual TLS). */
  readonly requireClientCertificate: boolean
}

const DOWNSTREAM_TLS: Shape = {
  use: ['common_tls_context', 'require_client_certificate'],
  // Session tickets and resumption are the mesh's own (rotating ticket keys).
  drop: ['session_ticket_keys', 'session_ticket_keys_sds_secret_config', 'disable_stateless_session_resumption', 'disable_stateful_session_resumption', 'session_timeout'],
  why: {
    require_sni: 'SNI is not required by the mesh listener',
    ocsp_staple_policy: 'OCSP stapling is not supported',
    full_scan_certs_on_sni_mismatch: 'one certificate is served',
    prefer_client_ciphers: 'cipher preference is Node\'s',
  },
}

/** Translates a `DownstreamTlsContext`; `undefined` when it is not an object. */
export function translateDownstreamTlsContext(p: Problems, f: Field): DownstreamTlsTranslation | undefined {
  const m = readField(p, f, DOWNSTREAM_TLS)
  if (m === undefined) return undefined
  const common = translateCommonTlsContext(p, m.get('common_tls_context'))
  return { path: f.path, ...common, requireClientCertificate: asBool(p, m.get('require_client_certificate')) === true }
}
