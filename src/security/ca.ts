/**
 * A workload certificate authority for development and small fleets: Istio Citadel's role
 * without Kubernetes. It holds a self-signed root (ECDSA P-256, CA:true, keyCertSign) and
 * issues short-lived workload certificates (X.509-SVIDs): ECDSA P-256, the SPIFFE ID as the
 * only URI SAN, digitalSignature, serverAuth + clientAuth, default lifetime 24h (Istio's
 * DEFAULT_WORKLOAD_CERT_TTL), at most 90 days (Istio's MAX_WORKLOAD_CERT_TTL).
 *
 * Certificates are written with our own DER writer (`der.ts`) and signed by node:crypto.
 * Private keys are PKCS#8 PEM; they never appear in errors, logs or `toJSON()`.
 */
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, sign, X509Certificate, type KeyObject } from 'node:crypto'
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { MeshError } from '../errors.js'
import { parseDuration } from '../config/duration.js'
import type { Duration } from '../config/types.js'
import * as der from './der.js'
import { isSpiffeId, parseSpiffeId, spiffeIdProblem, subjectAltNames, workloadSpiffeId } from './identity.js'

/** Istio's default workload certificate lifetime (DEFAULT_WORKLOAD_CERT_TTL). */
export const DEFAULT_WORKLOAD_TTL_MS = 24 * 3600_000
/** Istio's longest workload certificate lifetime (MAX_WORKLOAD_CERT_TTL). */
export const MAX_WORKLOAD_TTL_MS = 90 * 24 * 3600_000
/** Istio's self-signed root lifetime (10 years). */
export const DEFAULT_ROOT_TTL_MS = 10 * 365 * 24 * 3600_000
/**
 * Workload certificates start this long before they are issued, so a peer whose clock is a
 * little behind does not refuse a certificate "not yet valid" (our choice; Istio leaves clock
 * skew to the CA's notBefore grace too).
 */
export const CLOCK_SKEW_MS = 5 * 60_000

/** Options of {@link createCertificateAuthority}. */
export interface CertificateAuthorityOptions {
  /** The trust domain, e.g. `cluster.local` (Istio's default). */
  readonly trustDomain: string
  /** Default lifetime of issued certificates (default 24h, at most 90 days). */
  readonly ttl?: Duration
  /** Lifetime of the root certificate (default 10 years). */
  readonly rootTtl?: Duration
}

/** What to issue: a SPIFFE ID, or a Kubernetes-style namespace and service account. */
export type IssueRequest = ({ readonly spiffeId: string } | { readonly namespace: string; readonly serviceAccount: string }) & {
  /** Lifetime of this certificate (default: the CA's `ttl`). */
  readonly ttl?: Duration
  /** DNS names to add as SANs (for clients that verify host names, e.g. curl without `-k`). */
  readonly dnsNames?: readonly string[]
}

/** A workload certificate and its key, PEM-encoded. */
export interface IssuedCertificate {
  /** The workload certificate (PEM). */
  readonly certificate: string
  /** Its PKCS#8 private key (PEM). Keep it secret. */
  readonly privateKey: string
  /** The root certificate(s) peers must trust (PEM). */
  readonly trustBundle: string
  /** The SPIFFE ID in the certificate. */
  readonly spiffeId: string
  /** When the certificate expires. */
  readonly notAfter: Date
}

const OID = {
  ecPublicKey: '1.2.840.10045.2.1',
  ecdsaWithSha256: '1.2.840.10045.4.3.2',
  organization: '2.5.4.10',
  commonName: '2.5.4.3',
  basicConstraints: '2.5.29.19',
  keyUsage: '2.5.29.15',
  extKeyUsage: '2.5.29.37',
  subjectAltName: '2.5.29.17',
  subjectKeyIdentifier: '2.5.29.14',
  authorityKeyIdentifier: '2.5.29.35',
  serverAuth: '1.3.6.1.5.5.7.3.1',
  clientAuth: '1.3.6.1.5.5.7.3.2',
} as const

const SIGNATURE_ALGORITHM = der.sequence(der.oid(OID.ecdsaWithSha256))

function name(trustDomain: string, commonName?: string): Buffer {
  const rdns = [der.set(der.sequence(der.oid(OID.organization), der.utf8String(trustDomain)))]
  if (commonName !== undefined) rdns.push(der.set(der.sequence(der.oid(OID.commonName), der.utf8String(commonName))))
  return der.sequence(...rdns)
}

function extension(id: string, critical: boolean, value: Buffer): Buffer {
  return critical ? der.sequence(der.oid(id), der.boolean(true), der.octetString(value)) : der.sequence(der.oid(id), der.octetString(value))
}

/** RFC 5280 §4.2.1.2 method 1: SHA-1 of the subjectPublicKey bits. */
function keyIdentifier(spki: Buffer): Buffer {
  const parts = der.children(der.readElement(spki))
  const bits = parts[1]?.contents.subarray(1) ?? spki
  return createHash('sha1').update(bits).digest()
}

function spkiOf(key: KeyObject): Buffer {
  return createPublicKey(key).export({ type: 'spki', format: 'der' })
}

interface CertificateFields {
  readonly issuer: Buffer
  readonly subject: Buffer
  readonly notBefore: Date
  readonly notAfter: Date
  readonly spki: Buffer
  readonly extensions: readonly Buffer[]
  readonly signer: KeyObject
}

function buildCertificate(f: CertificateFields): string {
  // A positive 127-bit serial, as RFC 5280 §4.1.2.2 asks (at most 20 octets, unpredictable).
  const serial = randomBytes(16)
  serial[0] = (serial[0] as number) & 0x7f
  const tbs = der.sequence(
    der.explicit(0, der.smallInteger(2)),
    der.unsignedInteger(serial),
    SIGNATURE_ALGORITHM,
    f.issuer,
    der.sequence(der.time(f.notBefore), der.time(f.notAfter)),
    f.subject,
    f.spki,
    der.explicit(3, der.sequence(...f.extensions)),
  )
  const signature = sign('sha256', tbs, { key: f.signer, dsaEncoding: 'der' })
  const cert = der.sequence(tbs, SIGNATURE_ALGORITHM, der.bitString(signature))
  return toPem('CERTIFICATE', cert)
}

function toPem(label: string, body: Buffer): string {
  const b64 = body.toString('base64').replace(/.{64}/g, '$&\n').replace(/\n$/, '')
  return `-----BEGIN ${label}-----\n${b64}\n-----END ${label}-----\n`
}

function ttlMs(value: Duration | undefined, fallback: number, max: number, what: string): number {
  if (value === undefined) return fallback
  const ms = parseDuration(value)
  if (ms === undefined || ms <= 0) throw new MeshError('SIDECARLESS_ERR_INVALID_ARGUMENT', `${what} must be a positive duration such as "24h" or "90m"`)
  if (ms > max) throw new MeshError('SIDECARLESS_ERR_INVALID_ARGUMENT', `${what} is at most ${Math.round(max / 3600_000)}h`)
  return ms
}

function trustDomainProblem(td: unknown): string | undefined {
  const problem = spiffeIdProblem(`spiffe://${typeof td === 'string' ? td : ''}`)
  if (typeof td !== 'string' || td.length === 0) return 'the trust domain is required'
  if (td.includes('/') || problem !== undefined) return `"${td.slice(0, 64)}" is not a valid trust domain (lowercase letters, digits, dots, dashes, underscores)`
  return undefined
}

/** File names of a saved CA (the names of Istio's plugged-in CA secret `cacerts`). */
export const CA_FILES = Object.freeze({ certificate: 'ca-cert.pem', privateKey: 'ca-key.pem' })

/** A workload certificate authority. Create one with {@link createCertificateAuthority} or {@link loadCertificateAuthority}. */
export class CertificateAuthority {
  /** The trust domain every issued SPIFFE ID belongs to. */
  readonly trustDomain: string
  /** The root certificate (PEM): the trust bundle peers need. */
  readonly trustBundle: string
  /** When the root expires. */
  readonly notAfter: Date
  readonly #key: KeyObject
  readonly #subject: Buffer
  readonly #keyId: Buffer
  readonly #ttlMs: number

  /** @internal use {@link createCertificateAuthority} or {@link loadCertificateAuthority}. */
  constructor(trustDomain: string, certificate: string, key: KeyObject, ttlMs: number) {
    const x = new X509Certificate(certificate)
    this.trustDomain = trustDomain
    this.trustBundle = certificate
    this.notAfter = new Date(x.validTo)
    this.#key = key
    this.#ttlMs = ttlMs
    const parts = der.children(der.children(der.readElement(x.raw))[0] as der.Element)
    // tbsCertificate: [0]version, serial, signature, issuer, validity, subject, ...
    this.#subject = (parts[5] as der.Element).raw
    this.#keyId = keyIdentifier(spkiOf(key))
  }

  /**
   * Issues a workload certificate for a SPIFFE ID in this trust domain (or for
   * `namespace` + `serviceAccount`, Istio's `spiffe://<td>/ns/<ns>/sa/<sa>`), with a fresh
   * ECDSA P-256 key. Throws `SIDECARLESS_ERR_INVALID_SPIFFE_ID` or
   * `SIDECARLESS_ERR_INVALID_ARGUMENT` for a bad request.
   */
  issue(request: IssueRequest): IssuedCertificate {
    const spiffeId = 'spiffeId' in request ? request.spiffeId : workloadSpiffeId(this.trustDomain, request.namespace, request.serviceAccount)
    const parsed = parseSpiffeId(spiffeId)
    if (parsed.trustDomain !== this.trustDomain) {
      throw new MeshError('SIDECARLESS_ERR_INVALID_ARGUMENT', `the SPIFFE ID's trust domain "${parsed.trustDomain}" is not this CA's ("${this.trustDomain}")`)
    }
    const dnsNames = request.dnsNames ?? []
    for (const d of dnsNames) {
      if (typeof d !== 'string' || !/^(\*\.)?[A-Za-z0-9]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}))*$/.test(d) || d.length > 253) {
        throw new MeshError('SIDECARLESS_ERR_INVALID_ARGUMENT', `"${String(d).slice(0, 64)}" is not a DNS name`)
      }
    }
    const ttl = ttlMs(request.ttl, this.#ttlMs, MAX_WORKLOAD_TTL_MS, 'ttl')
    const now = Date.now()
    let notAfter = new Date(Math.floor((now + ttl) / 1000) * 1000)
    if (notAfter > this.notAfter) notAfter = this.notAfter
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' })
    const spki = publicKey.export({ type: 'spki', format: 'der' })
    const names = [der.implicit(6, Buffer.from(spiffeId, 'latin1')), ...dnsNames.map((d) => der.implicit(2, Buffer.from(d, 'latin1')))]
    const certificate = buildCertificate({
      issuer: this.#subject,
      subject: name(this.trustDomain),
      notBefore: new Date(Math.floor((now - CLOCK_SKEW_MS) / 1000) * 1000),
      notAfter,
      spki,
      signer: this.#key,
      extensions: [
        extension(OID.keyUsage, true, der.bitString(Buffer.from([0x80]), 7)), // digitalSignature
        extension(OID.extKeyUsage, false, der.sequence(der.oid(OID.serverAuth), der.oid(OID.clientAuth))),
        extension(OID.basicConstraints, true, der.sequence()),
        extension(OID.authorityKeyIdentifier, false, der.sequence(der.implicit(0, this.#keyId))),
        extension(OID.subjectAltName, true, der.sequence(...names)),
      ],
    })
    return Object.freeze({
      certificate,
      privateKey: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
      trustBundle: this.trustBundle,
      spiffeId,
      notAfter,
    })
  }

  /**
   * Writes the root certificate and key to `dir` (created if needed) as `ca-cert.pem` and
   * `ca-key.pem` (mode 0600), each written to a temporary file and renamed into place.
   */
  async save(dir: string): Promise<void> {
    await mkdir(dir, { recursive: true, mode: 0o700 })
    await writeAtomic(join(dir, CA_FILES.certificate), this.trustBundle, 0o644)
    await writeAtomic(join(dir, CA_FILES.privateKey), this.#key.export({ type: 'pkcs8', format: 'pem' }) as string, 0o600)
  }

  /** What JSON and `util.inspect` show: never the key. */
  toJSON(): { trustDomain: string; notAfter: string } {
    return { trustDomain: this.trustDomain, notAfter: this.notAfter.toISOString() }
  }

  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return `CertificateAuthority { trustDomain: '${this.trustDomain}', notAfter: ${this.notAfter.toISOString()} }`
  }
}

/** Writes `data` to a temporary file beside `path` and renames it into place. */
export async function writeAtomic(path: string, data: string, mode: number): Promise<void> {
  const tmp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`
  await writeFile(tmp, data, { mode })
  await rename(tmp, path)
}

/**
 * Creates a CA with a new self-signed root for `trustDomain`. The root's only URI SAN is
 * `spiffe://<trustDomain>`, so a saved CA can be loaded back knowing its trust domain.
 */
export function createCertificateAuthority(options: CertificateAuthorityOptions): CertificateAuthority {
  const problem = trustDomainProblem(options?.trustDomain)
  if (problem !== undefined) throw new MeshError('SIDECARLESS_ERR_INVALID_ARGUMENT', problem)
  const ttl = ttlMs(options.ttl, DEFAULT_WORKLOAD_TTL_MS, MAX_WORKLOAD_TTL_MS, 'ttl')
  const rootTtl = ttlMs(options.rootTtl, DEFAULT_ROOT_TTL_MS, 100 * 365 * 24 * 3600_000, 'rootTtl')
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' })
  const spki = spkiOf(privateKey)
  const subject = name(options.trustDomain, 'sidecarless root CA')
  const now = Date.now()
  const certificate = buildCertificate({
    issuer: subject,
    subject,
    notBefore: new Date(Math.floor((now - CLOCK_SKEW_MS) / 1000) * 1000),
    notAfter: new Date(Math.floor((now + rootTtl) / 1000) * 1000),
    spki,
    signer: privateKey,
    extensions: [
      extension(OID.basicConstraints, true, der.sequence(der.boolean(true))),
      extension(OID.keyUsage, true, der.bitString(Buffer.from([0x06]), 1)), // keyCertSign, cRLSign
      extension(OID.subjectKeyIdentifier, false, der.octetString(keyIdentifier(spki))),
      extension(OID.subjectAltName, false, der.sequence(der.implicit(6, Buffer.from(`spiffe://${options.trustDomain}`, 'latin1')))),
    ],
  })
  return new CertificateAuthority(options.trustDomain, certificate, privateKey, ttl)
}

/**
 * Loads a CA saved by {@link CertificateAuthority.save} (or any ECDSA/RSA root whose only
 * URI SAN is `spiffe://<trust domain>`). Throws `SIDECARLESS_ERR_CA` naming the file when
 * a file is missing, is not what it should be, or the key does not match the certificate.
 */
export async function loadCertificateAuthority(dir: string, options: { ttl?: Duration } = {}): Promise<CertificateAuthority> {
  const certPath = join(dir, CA_FILES.certificate)
  const keyPath = join(dir, CA_FILES.privateKey)
  const read = async (p: string): Promise<string> => {
    try {
      return await readFile(p, 'utf8')
    } catch (err) {
      throw new MeshError('SIDECARLESS_ERR_CA', `cannot read ${p}: ${(err as { code?: string }).code ?? 'error'}`)
    }
  }
  const [certPem, keyPem] = await Promise.all([read(certPath), read(keyPath)])
  let cert: X509Certificate
  try {
    cert = new X509Certificate(certPem)
  } catch {
    throw new MeshError('SIDECARLESS_ERR_CA', `${certPath} is not a PEM certificate`)
  }
  let key: KeyObject
  try {
    key = createPrivateKey(keyPem)
  } catch {
    // The parser's message could quote the file; say only which file.
    throw new MeshError('SIDECARLESS_ERR_CA', `${keyPath} is not a PEM private key`)
  }
  if (!cert.ca) throw new MeshError('SIDECARLESS_ERR_CA', `${certPath} is not a CA certificate (basicConstraints CA:true)`)
  if (!cert.checkPrivateKey(key)) throw new MeshError('SIDECARLESS_ERR_CA', `${keyPath} does not match ${certPath}`)
  const uris = subjectAltNames(cert.raw).uris
  const td = uris.length === 1 && isSpiffeId(uris[0]) ? parseSpiffeId(uris[0]) : undefined
  if (td === undefined || td.path !== '') throw new MeshError('SIDECARLESS_ERR_CA', `${certPath} has no trust domain (a single URI SAN spiffe://<trust domain>)`)
  const ttl = ttlMs(options.ttl, DEFAULT_WORKLOAD_TTL_MS, MAX_WORKLOAD_TTL_MS, 'ttl')
  return new CertificateAuthority(td.trustDomain, cert.toString(), key, ttl)
}

