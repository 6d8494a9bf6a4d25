/** Certificates for TLS tests: made by our CA and by the `openssl` command, in a temp dir. */
import { execFile } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

/** Result of a command: exit code (0 ok), stdout, stderr. */
export interface Run {
  readonly code: number
  readonly stdout: string
  readonly stderr: string
}

/** Runs a command asynchronously (never blocks the event loop: the servers under test live in it). */
export function run(cmd: string, args: readonly string[], options: { cwd?: string; timeoutMs?: number } = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile(cmd, args, { cwd: options.cwd, timeout: options.timeoutMs ?? 15_000, encoding: 'utf8' }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1
      resolve({ code, stdout, stderr })
    })
  })
}

/** A temporary directory removed by `dispose()`. */
export async function tempDir(prefix = 'sidecarless-tls-'): Promise<{ path: string; file(name: string): string; write(name: string, data: string): Promise<string>; dispose(): Promise<void> }> {
  const path = await mkdtemp(join(tmpdir(), prefix))
  return {
    path,
    file: (name) => join(path, name),
    write: async (name, data) => {
      await writeFile(join(path, name), data)
      return join(path, name)
    },
    dispose: () => rm(path, { recursive: true, force: true }),
  }
}

/**
 * Makes a key and a certificate with `openssl`: self-signed (a CA of its own) when no issuer
 * is given, else signed by `issuer` (PEM files). `san` is the subjectAltName value, e.g.
 * `URI:spiffe://cluster.local/ns/a/sa/b`. `dates` sets an explicit validity (openssl ca
 * format YYYYMMDDHHMMSSZ), e.g. to make an expired certificate.
 */
export async function opensslCert(dir: string, name: string, options: {
  san?: string
  ca?: boolean
  issuer?: { cert: string; key: string }
  dates?: { start: string; end: string }
  sanSection?: string
}): Promise<{ cert: string; key: string }> {
  const key = join(dir, `${name}.key`)
  const cert = join(dir, `${name}.pem`)
  const csr = join(dir, `${name}.csr`)
  const ext = join(dir, `${name}.ext`)
  const lines = options.ca === true
    ? ['basicConstraints=critical,CA:TRUE', 'keyUsage=critical,keyCertSign,cRLSign']
    : ['basicConstraints=critical,CA:FALSE', 'keyUsage=critical,digitalSignature', 'extendedKeyUsage=serverAuth,clientAuth']
  if (options.sanSection !== undefined) lines.push('subjectAltName=@alt', '[alt]', options.sanSection)
  else if (options.san !== undefined) lines.push(`subjectAltName=${options.san}`)
  await writeFile(ext, `${lines.join('\n')}\n`)
  await must(run('openssl', ['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', key]))
  await must(run('openssl', ['req', '-new', '-key', key, '-subj', `/O=test/CN=${name}`, '-out', csr]))
  if (options.issuer === undefined) {
    await must(run('openssl', ['x509', '-req', '-in', csr, '-signkey', key, '-days', '2', '-extfile', ext, '-out', cert]))
  } else if (options.dates === undefined) {
    await must(run('openssl', ['x509', '-req', '-in', csr, '-CA', options.issuer.cert, '-CAkey', options.issuer.key, '-CAcreateserial', '-days', '2', '-extfile', ext, '-out', cert]))
  } else {
    // `openssl ca` is the one command of OpenSSL 3.0 that takes explicit dates.
    const db = join(dir, `${name}.db`)
    await writeFile(db, '')
    await writeFile(join(dir, `${name}.serial`), '1000\n')
    const conf = join(dir, `${name}.cnf`)
    await writeFile(conf, [
      '[ca]', 'default_ca = test_ca', '[test_ca]', `database = ${db}`, `new_certs_dir = ${dir}`, `serial = ${join(dir, `${name}.serial`)}`,
      'default_md = sha256', 'policy = any', 'unique_subject = no', '[any]', 'organizationName = optional', 'commonName = optional', '',
    ].join('\n'))
    await must(run('openssl', ['ca', '-batch', '-config', conf, '-in', csr, '-cert', options.issuer.cert, '-keyfile', options.issuer.key,
      '-startdate', options.dates.start, '-enddate', options.dates.end, '-extfile', ext, '-notext', '-out', cert]))
  }
  return { cert, key }
}

async function must(p: Promise<Run>): Promise<Run> {
  const r = await p
  if (r.code !== 0) throw new Error(`command failed (${r.code}): ${r.stderr}`)
  return r
}

/** curl against `url`; `-k` skips host-name checks (mesh certificates name workloads, not hosts). */
export function curl(url: string, args: readonly string[] = []): Promise<Run> {
  return run('curl', ['-sS', '--max-time', '5', ...args, url])
}
