/**
 * TLS credentials and their rotation. A workload's certificate, private key and trust
 * bundle come from files or inline PEM (a value starting with `-----BEGIN` is PEM, anything
 * else a path). File-backed credentials are watched: `fs.watch` on the files' directories
 * (so atomic renames and Kubernetes' symlink swaps are seen) with a poll as a fallback,
 * debounced. A reload that fails — a half-written file, a key that does not match the
 * certificate yet — keeps the last good credentials, emits `reloadFailed` and a
 * `SIDECARLESS_TLS_RELOAD_FAILED` process warning, and is retried on the next change.
 *
 * Readers never cache a SecureContext: inbound connections and new outbound connections
 * ask for the current one, so a rotation reaches every new connection while those open
 * finish on the credentials they started with.
 */
import { EventEmitter } from 'node:events'
import { X509Certificate, createHash, createPrivateKey } from 'node:crypto'
import { readFileSync, statSync, watch, type FSWatcher } from 'node:fs'
import { dirname, resolve } from 'node:path'
import { createSecureContext, type SecureContext } from 'node:tls'
import { MeshError } from '../errors.js'
import { spiffeIdOfCertificate } from './identity.js'

/** Where a credential comes from: inline PEM (starts with `-----BEGIN`) or a file path. */
export type PemSource = string

/** A workload's own credentials (Istio: one workload certificate per proxy). */
export interface CredentialSources {
  /** The certificate chain (leaf first), PEM or path. */
  readonly certificate: PemSource
  /** The private key of the leaf, PEM or path. */
  readonly privateKey: PemSource
  /** The CA certificates peers are verified against, PEM or path. */
  readonly trustBundle: PemSource
}

/** One loaded, consistent set of credentials. */
export interface Credentials {
  /** The certificate chain (PEM). */
  readonly certificate: string
  /** The private key (PEM). Never logged. */
  readonly privateKey: string
  /** The trust bundle (PEM). */
  readonly trustBundle: string
  /** The SPIFFE ID of the certificate, when it has one. */
  readonly spiffeId: string | undefined
  /** When the leaf certificate expires. */
  readonly notAfter: Date
  /** Increases with every successful reload. */
  readonly generation: number
  /**
   * A secure context with certificate, key and trust bundle (for either side). As a server
   * context it resumes sessions of verified clients: it has a session id context, a digest of
   * the trust bundle (OpenSSL refuses such resumptions without one).
   */
  readonly secureContext: SecureContext
}

/** A credential that could not be loaded; `field` names which one (a config path when one was given). */
export class CredentialsError extends MeshError {
  /** The field (or config path) of the credential at fault. */
  readonly field: string

  constructor(field: string, message: string) {
    super('SIDECARLESS_ERR_TLS_CREDENTIALS', `${field}: ${message}`)
    this.name = 'CredentialsError'
    this.field = field
  }
}

/** OpenSSL's bound on a session id context (SSL_MAX_SID_CTX_LENGTH). */
const SID_CTX_CHARS = 32

/**
 * The session id context of a server that verifies clients against `trustBundle`: 32 hex
 * characters of a digest of it. A session made while another bundle was trusted does not
 * match, so OpenSSL does not resume it and verifies the client again.
 */
export function sessionIdContextOf(trustBundle: string): string {
  return createHash('sha256').update('sidecarless/mtls/v1\n').update(trustBundle).digest('hex').slice(0, SID_CTX_CHARS)
}

/** Largest credential file read (a bundle of many roots is still far below this). */
export const MAX_PEM_BYTES = 1024 * 1024
const PEM_MARK = '-----BEGIN'

/** Whether a credential value is inline PEM rather than a path. */
export function isInlinePem(value: string): boolean {
  return value.trimStart().startsWith(PEM_MARK)
}

/** Reads one credential: inline PEM as is, or a file (bounded). `what` names it in errors; contents never appear. */
export function readPem(value: string, what: string): string {
  if (isInlinePem(value)) return value
  let size: number
  try {
    size = statSync(value).size
  } catch (err) {
    throw new CredentialsError(what, `cannot read ${value}: ${(err as { code?: string }).code ?? 'error'}`)
  }
  if (size > MAX_PEM_BYTES) throw new CredentialsError(what, `${value} is larger than ${MAX_PEM_BYTES} bytes`)
  try {
    return readFileSync(value, 'utf8')
  } catch (err) {
    throw new CredentialsError(what, `cannot read ${value}: ${(err as { code?: string }).code ?? 'error'}`)
  }
}

function where(value: string): string {
  return isInlinePem(value) ? 'the inline PEM' : value
}

/** The certificates of a PEM bundle; throws naming `what` when there are none or one is bad. */
export function parseBundle(pem: string, what: string, source: string): X509Certificate[] {
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? []
  if (blocks.length === 0) throw new CredentialsError(what, `${where(source)} holds no PEM certificate`)
  if (blocks.length > 1000) throw new CredentialsError(what, `${where(source)} holds more than 1000 certificates`)
  return blocks.map((b, i) => {
    try {
      return new X509Certificate(b)
    } catch {
      throw new CredentialsError(what, `certificate #${i + 1} in ${where(source)} cannot be parsed`)
    }
  })
}

/**
 * Loads and checks a set of credentials: each part parses, the key matches the leaf, the
 * leaf is within its validity period. Errors name the field and the file, never contents.
 * `names` gives each field's name in errors (e.g. its config path).
 */
export function loadCredentials(sources: CredentialSources, generation = 1, names: Partial<Record<keyof CredentialSources, string>> = {}): Credentials {
  const certName = names.certificate ?? 'certificate'
  const keyName = names.privateKey ?? 'privateKey'
  const bundleName = names.trustBundle ?? 'trustBundle'
  const certificate = readPem(sources.certificate, certName)
  const privateKey = readPem(sources.privateKey, keyName)
  const trustBundle = readPem(sources.trustBundle, bundleName)
  const chain = parseBundle(certificate, certName, sources.certificate)
  parseBundle(trustBundle, bundleName, sources.trustBundle)
  const leaf = chain[0] as X509Certificate
  let key
  try {
    key = createPrivateKey(privateKey)
  } catch {
    throw new CredentialsError(keyName, `${where(sources.privateKey)} is not a PEM private key`)
  }
  if (!leaf.checkPrivateKey(key)) {
    throw new CredentialsError(keyName, `the private key does not match the certificate in ${where(sources.certificate)}`)
  }
  let secureContext: SecureContext
  try {
    secureContext = createSecureContext({ cert: certificate, key: privateKey, ca: trustBundle, sessionIdContext: sessionIdContextOf(trustBundle) })
  } catch (err) {
    throw new CredentialsError(certName, `OpenSSL refused the credentials (${(err as { code?: string }).code ?? 'error'})`)
  }
  return Object.freeze({
    certificate,
    privateKey,
    trustBundle,
    spiffeId: spiffeIdOfCertificate(leaf),
    notAfter: new Date(leaf.validTo),
    generation,
    secureContext,
  })
}

/** Options of a {@link CredentialStore}. */
export interface CredentialStoreOptions {
  /** Watch file-backed credentials and reload them when they change (default true). */
  readonly watch?: boolean
  /** How long changes must settle before a reload (default 100ms). */
  readonly debounceMs?: number
  /** Poll interval, used alone when `fs.watch` is not available and as a safety net beside it (default 5s). */
  readonly pollIntervalMs?: number
  /** Names of the fields in errors and warnings (e.g. config paths). */
  readonly names?: Partial<Record<keyof CredentialSources, string>>
}

/** Events of a {@link CredentialStore}. */
export interface CredentialStoreEvents {
  /** New credentials are in use for new connections. */
  rotated: [Credentials]
  /** A reload failed; the last good credentials stay in use. */
  reloadFailed: [MeshError]
}

/**
 * The current credentials of a workload, reloaded when their files change. Construct it
 * with sources that load (it throws `SIDECARLESS_ERR_TLS_CREDENTIALS` otherwise); call
 * `close()` to stop watching.
 */
export class CredentialStore extends EventEmitter<CredentialStoreEvents> {
  /** Where the credentials come from (paths or inline PEM), as given. */
  readonly sources: CredentialSources
  #current: Credentials
  readonly #names: Partial<Record<keyof CredentialSources, string>>
  readonly #watchers: FSWatcher[] = []
  #poll: NodeJS.Timeout | undefined
  #debounce: NodeJS.Timeout | undefined
  readonly #debounceMs: number
  #stamp: string
  #closed = false

  constructor(sources: CredentialSources, options: CredentialStoreOptions = {}) {
    super()
    this.sources = Object.freeze({ ...sources })
    this.#names = options.names ?? {}
    this.#current = loadCredentials(this.sources, 1, this.#names)
    this.#debounceMs = options.debounceMs ?? 100
    const files = [sources.certificate, sources.privateKey, sources.trustBundle].filter((v) => !isInlinePem(v)).map((f) => resolve(f))
    this.#stamp = stampOf(files)
    if (options.watch === false || files.length === 0) return
    const dirs = new Set(files.map((f) => dirname(f)))
    for (const dir of dirs) {
      try {
        // Any change in the directory may be ours: Kubernetes swaps a `..data` symlink, other
        // writers rename temporary files into place. A reload of unchanged files is cheap.
        const w = watch(dir, { persistent: false }, () => this.#schedule())
        w.on('error', () => undefined)
        this.#watchers.push(w)
      } catch {
        // No fs.watch here (some network file systems): the poll below does the work.
      }
    }
    const poll = (): void => {
      const stamp = stampOf(files)
      if (stamp !== this.#stamp) this.#schedule()
    }
    this.#poll = setInterval(poll, options.pollIntervalMs ?? 5_000)
    this.#poll.unref()
  }

  /** The credentials in use now. */
  get current(): Credentials {
    return this.#current
  }

  /** Reloads now (normally the watcher does it). Resolves true when new credentials were taken. */
  reload(): boolean {
    if (this.#closed) return false
    const files = [this.sources.certificate, this.sources.privateKey, this.sources.trustBundle].filter((v) => !isInlinePem(v)).map((f) => resolve(f))
    this.#stamp = stampOf(files)
    let next: Credentials
    try {
      next = loadCredentials(this.sources, this.#current.generation + 1, this.#names)
    } catch (err) {
      const e = err instanceof MeshError ? err : new MeshError('SIDECARLESS_ERR_TLS_CREDENTIALS', 'reload failed')
      if (this.listenerCount('reloadFailed') > 0) this.emit('reloadFailed', e)
      process.emitWarning(`TLS credentials not reloaded; the previous ones stay in use: ${e.message}`, { code: 'SIDECARLESS_TLS_RELOAD_FAILED' })
      return false
    }
    if (next.certificate === this.#current.certificate && next.privateKey === this.#current.privateKey && next.trustBundle === this.#current.trustBundle) return false
    this.#current = next
    this.emit('rotated', next)
    return true
  }

  #schedule(): void {
    if (this.#closed) return
    clearTimeout(this.#debounce)
    this.#debounce = setTimeout(() => this.reload(), this.#debounceMs)
    this.#debounce.unref()
  }

  /** Stops watching. */
  close(): void {
    this.#closed = true
    clearTimeout(this.#debounce)
    clearInterval(this.#poll)
    for (const w of this.#watchers) w.close()
    this.#watchers.length = 0
  }

  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return `CredentialStore { spiffeId: ${String(this.#current.spiffeId)}, generation: ${this.#current.generation} }`
  }
}

/** A cheap fingerprint of files: size and mtime of each (missing files count too). */
function stampOf(files: readonly string[]): string {
  return files.map((f) => {
    try {
      const s = statSync(f)
      return `${s.size}:${s.mtimeMs}:${s.ino}`
    } catch {
      return 'missing'
    }
  }).join('|')
}
