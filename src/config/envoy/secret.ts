/**
 * Envoy `Secret` (a bootstrap's `static_resources.secrets`, or SDS) and the data sources
 * and certificate validation contexts it shares with `UpstreamTlsContext`.
 */
import { asList, asString, clip, describe, firstOf, present, readField, type Field, type Problems, type Shape } from './reader.js'

/** A certificate and its key: PEM text or file paths, as our model takes them. */
export interface TlsCertificateTranslation {
  readonly certificate: string
  readonly privateKey: string
}

/** What to verify a peer with. */
export interface ValidationTranslation {
  /** CA certificates (PEM or a path); undefined: the mesh's default trust. */
  readonly trustedCa: string | undefined
  /** SPIFFE IDs the peer may present (exact, or a prefix ending in `/*`). */
  readonly verifyIdentities: readonly string[] | undefined
}

/** The result of {@link translateSecret}. */
export interface SecretTranslation {
  readonly name: string | undefined
  readonly tlsCertificate?: TlsCertificateTranslation
  readonly validationContext?: ValidationTranslation
}

const SECRET: Shape = {
  use: ['name', 'tls_certificate', 'validation_context'],
  why: { session_ticket_keys: 'session ticket keys are not imported', generic_secret: 'generic secrets are not imported' },
}
const TLS_CERTIFICATE: Shape = {
  use: ['certificate_chain', 'private_key'],
  why: {
    password: 'encrypted private keys are not supported',
    private_key_provider: 'private key providers are not supported',
    ocsp_staple: 'OCSP stapling is not supported',
    signed_certificate_timestamp: 'certificate transparency is not supported',
    watched_directory: 'files are watched by the mesh itself',
    pkcs12: 'PKCS#12 is not supported; use PEM',
  },
}
const VALIDATION_CONTEXT: Shape = {
  use: ['trusted_ca', 'match_typed_subject_alt_names', 'match_subject_alt_names'],
  // Read by the cluster translator: a certificate provider names the workload's trust (gRPC A29).
  drop: ['ca_certificate_provider_instance'],
  why: {
    verify_certificate_spki: 'SPKI pinning is not supported',
    verify_certificate_hash: 'certificate hash pinning is not supported',
    crl: 'CRLs are not supported',
    allow_expired_certificate: 'expired certificates are never accepted',
    trust_chain_verification: 'the chain is always verified',
    custom_validator_config: 'custom validators are not supported',
    only_verify_leaf_cert_crl: 'CRLs are not supported',
    max_verify_depth: 'the verification depth is not configurable',
    watched_directory: 'files are watched by the mesh itself',
    system_root_certs: 'without trusted_ca the mesh uses its default trust',
  },
}
const DATA_SOURCE: Shape = {
  use: ['filename', 'inline_string', 'inline_bytes'],
  why: { environment_variable: 'certificates from environment variables are not supported' },
}
const SAN_MATCHER: Shape = { use: ['san_type', 'matcher'], why: { oid: 'OtherName SANs are not supported' } }
const STRING_MATCHER: Shape = { use: ['exact', 'prefix', 'suffix', 'contains', 'safe_regex', 'ignore_case'] }

/** Translates an Envoy `Secret`; `undefined` when it holds nothing the mesh can use. */
export function translateSecret(resource: unknown, path: string, p: Problems): SecretTranslation | undefined {
  const m = readField(p, { key: path, name: 'secret', value: resource, path }, SECRET)
  if (m === undefined) return undefined
  const name = asString(p, m.get('name'))
  const cert = m.get('tls_certificate')
  const validation = m.get('validation_context')
  const tlsCertificate = present(cert) ? translateTlsCertificate(p, cert) : undefined
  const validationContext = present(validation) ? translateValidationContext(p, validation) : undefined
  if (tlsCertificate === undefined && validationContext === undefined) return undefined
  return { name, ...(tlsCertificate === undefined ? {} : { tlsCertificate }), ...(validationContext === undefined ? {} : { validationContext }) }
}

/** Envoy `TlsCertificate`: both the chain and the key, or nothing. */
export function translateTlsCertificate(p: Problems, f: Field): TlsCertificateTranslation | undefined {
  const m = readField(p, f, TLS_CERTIFICATE)
  if (m === undefined) return undefined
  const certificate = dataSource(p, m.get('certificate_chain'))
  const privateKey = dataSource(p, m.get('private_key'))
  if (certificate === undefined || privateKey === undefined) {
    p.report(f.path, 'a TLS certificate needs certificate_chain and private_key; dropped')
    return undefined
  }
  return { certificate, privateKey }
}

/** Envoy `CertificateValidationContext`. */
export function translateValidationContext(p: Problems, f: Field): ValidationTranslation | undefined {
  const m = readField(p, f, VALIDATION_CONTEXT)
  if (m === undefined) return undefined
  const trustedCa = present(m.get('trusted_ca')) ? dataSource(p, m.get('trusted_ca')) : undefined
  const identities: string[] = []
  for (const item of asList(p, m.get('match_typed_subject_alt_names'))) {
    const san = readField(p, item, SAN_MATCHER)
    if (san === undefined) continue
    const type = san.get('san_type')?.value
    if (type !== 'URI' && type !== 6) {
      p.report(item.path, `SAN type ${describe(type)} is not verified: the mesh checks URI SANs (SPIFFE IDs); dropped`)
      continue
    }
    const id = sanIdentity(p, san.get('matcher'))
    if (id !== undefined) identities.push(id)
  }
  for (const item of asList(p, m.get('match_subject_alt_names'))) {
    const id = sanIdentity(p, item)
    if (id !== undefined) identities.push(id)
  }
  return { trustedCa, verifyIdentities: identities.length > 0 ? identities : undefined }
}

/** A SAN StringMatcher as one of our identities: exact, or a prefix ending in `/` (as `…/*`). */
function sanIdentity(p: Problems, f: Field | undefined): string | undefined {
  const m = readField(p, f, STRING_MATCHER)
  if (m === undefined || f === undefined) return undefined
  const c = firstOf(p, m, ['exact', 'prefix', 'suffix', 'contains', 'safe_regex'])
  const value = c?.name === 'exact' || c?.name === 'prefix' ? asString(p, c) : undefined
  if (c?.name === 'exact' && value !== undefined) return value
  if (c?.name === 'prefix' && value !== undefined && value.endsWith('/')) return `${value}*`
  p.report(f.path, `SAN matcher ${c === undefined ? '' : `"${c.key}" `}is not supported: identities are exact or a prefix ending in "/"; dropped`)
  return undefined
}

/** Envoy `DataSource` as our model's PEM text or file path. */
export function dataSource(p: Problems, f: Field | undefined): string | undefined {
  const m = readField(p, f, DATA_SOURCE)
  if (m === undefined) return undefined
  const c = firstOf(p, m, ['filename', 'inline_string', 'inline_bytes'])
  if (c?.name === 'filename' || c?.name === 'inline_string') return asString(p, c)
  if (c?.name === 'inline_bytes') {
    const v = c.value
    const bytes = typeof v === 'string' ? Buffer.from(v, 'base64') : v instanceof Uint8Array ? Buffer.from(v) : undefined
    if (bytes !== undefined) return bytes.toString('utf8')
    p.report(c.path, `expected base64 bytes, got ${describe(v)}; dropped`)
    return undefined
  }
  if (f !== undefined) p.report(f.path, `a data source needs filename, inline_string or inline_bytes (${clip('none given')})`)
  return undefined
}
