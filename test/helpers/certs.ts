/** Real certificates for mutual TLS tests, made with the openssl CLI in a temporary directory. */
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

/** A CA, a server certificate for 127.0.0.1, and client certificates by SPIFFE ID. */
export interface TestPki {
  readonly ca: string
  readonly server: { readonly key: string; readonly cert: string }
  readonly clients: Readonly<Record<string, { readonly key: string; readonly cert: string }>>
}

/** Makes a PKI whose clients carry the given SPIFFE IDs as URI SANs (keyed by the ID). */
export function makePki(spiffeIds: readonly string[]): TestPki {
  const dir = mkdtempSync(join(tmpdir(), 'sidecarless-pki-'))
  const ssl = (...args: string[]): void => {
    execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' })
  }
  try {
    ssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '1', '-subj', '/CN=test-ca')
    const leaf = (name: string, san: string, usage: string): { key: string; cert: string } => {
      writeFileSync(join(dir, `${name}.ext`), `subjectAltName=${san}\nextendedKeyUsage=${usage}\nbasicConstraints=CA:FALSE\n`)
      ssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`)
      ssl('x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.crt`, '-days', '1', '-extfile', `${name}.ext`)
      return { key: readFileSync(join(dir, `${name}.key`), 'utf8'), cert: readFileSync(join(dir, `${name}.crt`), 'utf8') }
    }
    const server = leaf('server', 'IP:127.0.0.1,DNS:localhost', 'serverAuth')
    const clients: Record<string, { key: string; cert: string }> = {}
    spiffeIds.forEach((id, i) => (clients[id] = leaf(`client${i}`, `URI:${id}`, 'clientAuth')))
    return { ca: readFileSync(join(dir, 'ca.crt'), 'utf8'), server, clients }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}
