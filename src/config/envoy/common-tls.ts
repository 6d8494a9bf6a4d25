/**
 * Envoy `CommonTlsContext`, shared by `UpstreamTlsContext` (a cluster's transport socket) and
 * `DownstreamTlsContext` (a listener's filter chain): the certificate presented and how the
 * peer is validated, each inline, by SDS secret name, or by certificate provider instance
 * (gRPC proxyless: istio-agent's `default`).
 */
import { asList, asString, present, readField, type Field, type Problems, type Shape } from './reader.js'
import { translateTlsCertificate, translateValidationContext, type TlsCertificateTranslation, type ValidationTranslation } from './secret.js'

/** What a `CommonTlsContext` says, with the secrets and providers it names still to resolve. */
export interface CommonTlsTranslation {
  /** An inline certificate. */
  readonly certificate: TlsCertificateTranslation | undefined
  /** An inline validation context. */
  readonly validation: ValidationTranslation | undefined
  /** SDS secret names (`tls_certificate_sds_secret_configs`, `validation_context_sds_secret_config`). */
  readonly certificateSecret: string | undefined
  readonly validationSecret: string | undefined
  /** Certificate provider instances. */
  readonly certificateProvider: string | undefined
  readonly validationProvider: string | undefined
}

const COMMON_TLS: Shape = {
  use: [
    'tls_certificates', 'tls_certificate_sds_secret_configs', 'validation_context', 'validation_context_sds_secret_config',
    'combined_validation_context', 'tls_certificate_provider_instance', 'tls_certificate_certificate_provider_instance',
    'validation_context_certificate_provider_instance', 'alpn_protocols',
  ],
  why: {
    tls_params: 'TLS versions and ciphers are Node\'s defaults',
    custom_handshaker: 'custom handshakers are not supported',
    key_log: 'TLS key logs are not supported',
    tls_certificate_selector: 'certificate selectors are not supported',
    custom_tls_certificate_selector: 'certificate selectors are not supported',
  },
}
const SDS_CONFIG: Shape = { use: ['name'], drop: ['sds_config'] }
const PROVIDER_INSTANCE: Shape = { use: ['instance_name', 'certificate_name'] }
const COMBINED_VALIDATION: Shape = {
  use: ['default_validation_context', 'validation_context_sds_secret_config', 'validation_context_certificate_provider_instance'],
}

/** Translates a `CommonTlsContext` (absent: nothing set). */
export function translateCommonTlsContext(p: Problems, f: Field | undefined): CommonTlsTranslation {
  const common = readField(p, f, COMMON_TLS)
  let certificate: TlsCertificateTranslation | undefined
  const certs = asList(p, common?.get('tls_certificates'))
  for (const extra of certs.slice(1)) p.report(extra.path, 'one certificate is presented; the others are dropped')
  if (certs[0] !== undefined) certificate = translateTlsCertificate(p, certs[0])
  let certificateSecret: string | undefined
  const sds = asList(p, common?.get('tls_certificate_sds_secret_configs'))
  if (sds[0] !== undefined) certificateSecret = asString(p, readField(p, sds[0], SDS_CONFIG)?.get('name'))
  const certificateProvider = providerName(p, common?.get('tls_certificate_provider_instance') ?? common?.get('tls_certificate_certificate_provider_instance'))
  let validation: ValidationTranslation | undefined
  let validationSecret: string | undefined
  let validationProvider: string | undefined
  const combined = readField(p, common?.get('combined_validation_context'), COMBINED_VALIDATION)
  const direct = common?.get('validation_context')
  if (present(direct)) validation = translateValidationContext(p, direct)
  if (combined !== undefined) {
    const dflt = combined.get('default_validation_context')
    if (present(dflt)) validation = translateValidationContext(p, dflt)
    validationSecret = asString(p, readField(p, combined.get('validation_context_sds_secret_config'), SDS_CONFIG)?.get('name'))
    validationProvider = providerName(p, combined.get('validation_context_certificate_provider_instance'))
  }
  validationSecret ??= asString(p, readField(p, common?.get('validation_context_sds_secret_config'), SDS_CONFIG)?.get('name'))
  validationProvider ??= providerName(p, common?.get('validation_context_certificate_provider_instance'))
  // ca_certificate_provider_instance sits inside the validation context (gRPC A29); read it there.
  for (const ctx of [direct, combined?.get('default_validation_context')]) {
    if (validationProvider !== undefined || !present(ctx) || typeof ctx.value !== 'object' || ctx.value === null) continue
    const v = ctx.value as Record<string, unknown>
    const ca = v['ca_certificate_provider_instance'] ?? v['caCertificateProviderInstance']
    if (ca !== undefined && ca !== null) validationProvider = providerName(p, { key: 'ca_certificate_provider_instance', name: 'ca_certificate_provider_instance', value: ca, path: `${ctx.path}.ca_certificate_provider_instance` })
  }
  return { certificate, validation, certificateSecret, validationSecret, certificateProvider, validationProvider }
}

function providerName(p: Problems, f: Field | undefined): string | undefined {
  const m = readField(p, f, PROVIDER_INSTANCE)
  if (m === undefined) return undefined
  return asString(p, m.get('instance_name')) ?? 'default'
}
