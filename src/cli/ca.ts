/**
 * `sidecarless ca init` / `sidecarless ca issue`: a development CA on disk.
 *
 * ```sh
 * sidecarless ca init  --dir ./ca --trust-domain cluster.local
 * sidecarless ca issue --dir ./ca --namespace default --service-account reviews --out ./certs/reviews
 * sidecarless ca issue --dir ./ca --spiffe-id spiffe://cluster.local/ns/default/sa/productpage --ttl 12h --out ./certs/productpage
 * ```
 *
 * `init` writes `ca-cert.pem` and `ca-key.pem` (0600) into `--dir` and refuses to replace
 * an existing CA without `--force`. `issue` writes Istio's file names into `--out`:
 * `cert-chain.pem`, `key.pem` (0600) and `root-cert.pem`. Private keys are never printed.
 * Exit codes: 0 done, 1 failed, 2 usage error.
 */
import { access } from 'node:fs/promises'
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { isMeshError } from '../errors.js'
import { CA_FILES, createCertificateAuthority, loadCertificateAuthority, writeAtomic } from '../security/ca.js'

const USAGE = `Usage: sidecarless ca init  --dir <dir> [--trust-domain cluster.local] [--ttl 24h] [--force]
       sidecarless ca issue --dir <dir> (--namespace <ns> --service-account <sa> | --spiffe-id <id>)
                            [--ttl 24h] [--dns <name>]... --out <dir>

A development workload CA on disk. \`init\` writes a root (ca-cert.pem, ca-key.pem);
\`issue\` writes a SPIFFE workload certificate under Istio's file names (cert-chain.pem,
key.pem, root-cert.pem). Private keys are never printed.

Exit codes: 0 done, 1 failed, 2 usage error.`

/** Files `ca issue` writes into `--out` (Istio's names). */
export const ISSUED_FILES = Object.freeze({ certificate: 'cert-chain.pem', privateKey: 'key.pem', trustBundle: 'root-cert.pem' })

interface Io {
  readonly out: (line: string) => void
  readonly err: (line: string) => void
}

const defaultIo: Io = {
  out: (line) => process.stdout.write(`${line}\n`),
  err: (line) => process.stderr.write(`${line}\n`),
}

/** Runs `sidecarless ca <init|issue> ...`; `args` are the words after `ca`. Resolves with the exit code. */
export async function run(args: string[], io: Io = defaultIo): Promise<number> {
  const [first, ...others] = args
  // `ca --help` / `ca -h` ask for help as `ca help` does (and as every other subcommand's --help).
  const [command, rest] = first === '--help' || first === '-h' ? ['help', others] : [first, others]
  let values: Record<string, string | boolean | string[] | undefined>
  try {
    values = parseArgs({
      args: rest,
      strict: true,
      allowPositionals: false,
      options: {
        dir: { type: 'string' },
        'trust-domain': { type: 'string' },
        namespace: { type: 'string' },
        'service-account': { type: 'string' },
        'spiffe-id': { type: 'string' },
        ttl: { type: 'string' },
        dns: { type: 'string', multiple: true },
        out: { type: 'string' },
        force: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    }).values
  } catch (err) {
    io.err(`sidecarless ca: ${(err as Error).message}\n${USAGE}`)
    return 2
  }
  if (values['help'] === true || command === undefined || command === 'help') {
    ;(command === undefined ? io.err : io.out)(USAGE)
    return command === undefined ? 2 : 0
  }
  const dir = values['dir']
  if (typeof dir !== 'string') {
    io.err(`sidecarless ca ${command}: --dir is required\n${USAGE}`)
    return 2
  }
  try {
    if (command === 'init') return await init(dir, values, io)
    if (command === 'issue') return await issue(dir, values, io)
  } catch (err) {
    io.err(`sidecarless ca ${command}: ${isMeshError(err) ? `${err.code}: ${err.message}` : (err as Error).message}`)
    return 1
  }
  io.err(`sidecarless ca: unknown command "${command}"\n${USAGE}`)
  return 2
}

async function init(dir: string, values: Record<string, unknown>, io: Io): Promise<number> {
  if (values['force'] !== true && await exists(join(dir, CA_FILES.privateKey))) {
    io.err(`sidecarless ca init: ${join(dir, CA_FILES.privateKey)} exists; pass --force to replace the CA (certificates it issued will no longer be trusted)`)
    return 1
  }
  const trustDomain = typeof values['trust-domain'] === 'string' ? values['trust-domain'] : 'cluster.local'
  const ca = createCertificateAuthority({ trustDomain, ...(typeof values['ttl'] === 'string' ? { ttl: values['ttl'] } : {}) })
  await ca.save(dir)
  io.out(`created a CA for trust domain ${ca.trustDomain} in ${dir} (root valid until ${ca.notAfter.toISOString()})`)
  io.out(`  ${join(dir, CA_FILES.certificate)}  the trust bundle (share it)`)
  io.out(`  ${join(dir, CA_FILES.privateKey)}  the CA key (keep it secret)`)
  return 0
}

async function issue(dir: string, values: Record<string, unknown>, io: Io): Promise<number> {
  const out = values['out']
  if (typeof out !== 'string') {
    io.err(`sidecarless ca issue: --out is required\n${USAGE}`)
    return 2
  }
  const spiffeId = values['spiffe-id']
  const namespace = values['namespace']
  const serviceAccount = values['service-account']
  const byId = typeof spiffeId === 'string'
  const byAccount = typeof namespace === 'string' && typeof serviceAccount === 'string'
  if (byId === byAccount || (!byAccount && (namespace !== undefined || serviceAccount !== undefined))) {
    io.err(`sidecarless ca issue: give either --spiffe-id, or both --namespace and --service-account\n${USAGE}`)
    return 2
  }
  const ca = await loadCertificateAuthority(dir)
  const ttl = typeof values['ttl'] === 'string' ? { ttl: values['ttl'] } : {}
  const dnsNames = Array.isArray(values['dns']) ? { dnsNames: values['dns'] as string[] } : {}
  const issued = byId
    ? ca.issue({ spiffeId: spiffeId, ...ttl, ...dnsNames })
    : ca.issue({ namespace: namespace as string, serviceAccount: serviceAccount as string, ...ttl, ...dnsNames })
  await mkdir(out, { recursive: true, mode: 0o700 })
  await writeAtomic(join(out, ISSUED_FILES.certificate), issued.certificate, 0o644)
  await writeAtomic(join(out, ISSUED_FILES.privateKey), issued.privateKey, 0o600)
  await writeAtomic(join(out, ISSUED_FILES.trustBundle), issued.trustBundle, 0o644)
  io.out(`issued ${issued.spiffeId}, valid until ${issued.notAfter.toISOString()}`)
  for (const f of Object.values(ISSUED_FILES)) io.out(`  ${join(out, f)}`)
  return 0
}

async function exists(path: string): Promise<boolean> {
  try {
    await access(path)
    return true
  } catch {
    return false
  }
}
