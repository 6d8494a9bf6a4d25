/**
 * Side by side: one service calling another over loopback, every process apart, the same
 * call made eight ways (issue 15 item 5, issue 17 part 2, issue 19 item 2).
 *
 *   plain HTTP   direct · two HAProxy sidecars · mesh on both sides · mesh on the client only
 *                · mesh on the server only
 *   mTLS         plain Node mTLS · HAProxy pair with mTLS between them · mesh on both sides,
 *                STRICT mTLS (ratios still against the direct plain-HTTP call)
 *
 * Per arm: requests/s of a closed loop of 32 connections, CPU µs per request summed over
 * every process of the arm (client, server, proxies), p50/p90/p99 latency of an open loop at
 * a fixed 1000 req/s; per Node version, the RSS a mesh with a 100-cluster config adds to a
 * process. Medians of N interleaved rounds (every arm in each round, in rotated and
 * mirrored order); ratios are medians of per-round ratios against the direct arm of the same
 * round. Targets (issue 15, issue 17, RSS) print PASS/MISS; a miss never fails the script,
 * a crash or a failed request does.
 *
 *   node bench/side-by-side.mjs                         every arm, this Node, 5 rounds
 *   node bench/side-by-side.mjs --quick                 1 round, ~2 s per arm
 *   node bench/side-by-side.mjs --arms=direct,mesh-both --rounds=3
 *   node bench/side-by-side.mjs --node=/path/to/node22 --node=/path/to/node24 --json out.json --svg out.svg
 *   node bench/side-by-side.mjs --profile=mesh-both     .cpuprofile of the arm's client and server
 *   node bench/side-by-side.mjs --rss-only --rss-samples=5   the RSS probe alone
 *
 * See bench/README.md for every option and how to read the output.
 */
import { execFileSync } from 'node:child_process'
import { existsSync, mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs'
import net from 'node:net'
import { cpus, loadavg, tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { ARMED_ROUTE, ARMS, DEFAULT_ARMS, ROLES, armNamed, rolesOf } from './lib/sbs-arms.mjs'
import { combinedTable, svgChart, versionTable } from './lib/sbs-report.mjs'
import { inboundSidecar, outboundSidecar } from './lib/haproxy-config.mjs'
import { children, forkChild, machineBusyUs } from './lib/ipc.mjs'
import { printDiff, printProfile } from './lib/cpuprofile-top.mjs'
import { emitResult, median, pairedRatio, rotate, verdict } from './lib/common.mjs'

const here = dirname(fileURLToPath(import.meta.url))
const lib = (f) => join(here, 'lib', f)

// ---------------------------------------------------------------- options

const USAGE = `usage: node bench/side-by-side.mjs [options]
  --arms=a,b,...        arms to run (default: ${DEFAULT_ARMS.join(',')}; also: ${ARMS.filter((a) => a.optional).map((a) => a.name).join(',')})
                        direct, the baseline, always runs
  --rounds=N            interleaved rounds (default 5)
  --duration=MS         closed-loop time per arm per round (default 2000)
  --open-duration=MS    open-loop time per arm per round (default 2000)
  --rate=N              open-loop rate, req/s (default 1000)
  --connections=N       closed-loop connections / requests in flight (default 32)
  --warmup=MS           closed-loop warm-up per arm before round 1 (default 2000)
  --quick               1 round, ~2 s per arm (500 ms warm-up, 1000 ms closed, 500 ms open), 1 RSS sample
  --node=PATH           run everything under this Node binary (repeat for several; default: this one)
  --rss-samples=N       processes per variant of the RSS probe (default 3), --no-rss to skip it
  --rss-only            the RSS probe alone (no arm is run; --quick still sets 1 sample unless --rss-samples is given)
  --json FILE           write every figure, per round, as JSON
  --svg FILE            write a chart of the combined table
  --note TEXT           a note for the JSON and the chart (e.g. "loaded machine")
  --profile=arm[,arm]   profile the arm's client and server under load (closed loop only),
                        write .cpuprofile files and print the top functions
  --profile-dir=DIR     where to write them (default: a new directory under the temp dir)
  --haproxy=PATH        the HAProxy binary (default: $HAPROXY or /usr/sbin/haproxy)`

function parseOptions(argv) {
  const o = {
    arms: undefined, rounds: 5, duration: 2000, openDuration: 2000, rate: 1000, connections: 32, warmup: 2000,
    nodes: [], rssSamples: 3, rss: true, json: undefined, svg: undefined, note: '', profile: [], profileDir: undefined,
    haproxy: process.env.HAPROXY || '/usr/sbin/haproxy', quick: false, rssOnly: false,
  }
  const valued = new Set(['arms', 'rounds', 'duration', 'open-duration', 'rate', 'connections', 'warmup', 'node', 'rss-samples', 'json', 'svg', 'note', 'profile', 'profile-dir', 'haproxy'])
  const numeric = { rounds: 'rounds', duration: 'duration', 'open-duration': 'openDuration', rate: 'rate', connections: 'connections', warmup: 'warmup', 'rss-samples': 'rssSamples' }
  const set = {}
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    if (a === '--help' || a === '-h') {
      console.log(USAGE)
      process.exit(0)
    }
    if (!a.startsWith('--')) fail(`unexpected argument ${a}`)
    let [k, v] = a.slice(2).split(/=(.*)/s)
    if (k === 'quick') {
      o.quick = true
      continue
    }
    if (k === 'no-rss') {
      o.rss = false
      continue
    }
    if (k === 'rss-only') {
      o.rssOnly = true
      continue
    }
    if (!valued.has(k)) fail(`unknown option --${k}`)
    if (v === undefined) {
      v = argv[++i]
      if (v === undefined) fail(`--${k} needs a value`)
    }
    if (k in numeric) {
      const n = Number(v)
      if (!Number.isFinite(n) || n <= 0) fail(`--${k} must be a positive number (got ${v})`)
      set[numeric[k]] = n
    } else if (k === 'node') o.nodes.push(v)
    else if (k === 'arms') o.arms = v.split(',').map((s) => s.trim()).filter(Boolean)
    else if (k === 'profile') o.profile.push(...v.split(',').map((s) => s.trim()).filter(Boolean))
    else if (k === 'profile-dir') o.profileDir = v
    else o[k] = v
  }
  if (o.quick) Object.assign(o, { rounds: 1, duration: 1000, openDuration: 500, warmup: 500, rssSamples: 1 })
  Object.assign(o, set)
  o.rounds = Math.round(o.rounds)
  if (o.nodes.length === 0) o.nodes.push(process.execPath)
  if (o.rssOnly && !o.rss) fail('--rss-only and --no-rss leave nothing to run')
  if (o.rssOnly && o.profile.length > 0) fail('--rss-only and --profile do not go together')
  for (const name of [...(o.arms ?? []), ...o.profile]) if (armNamed(name) === undefined) fail(`unknown arm ${name}; known: ${ARMS.map((a) => a.name).join(', ')}`)
  return o
}

function fail(message) {
  console.error(`${message}\n\n${USAGE}`)
  process.exit(2)
}

const opts = parseOptions(process.argv.slice(2))

if (!existsSync(join(here, '..', 'dist', 'index.js'))) {
  console.error('dist/ is missing: run `npm run build` first (or `npm run bench`).')
  process.exit(1)
}

// ---------------------------------------------------------------- clean-up on every exit path

const tmp = mkdtempSync(join(tmpdir(), 'sidecarless-side-by-side-'))
const sidecarPids = new Set()
process.on('exit', () => {
  for (const c of children) {
    try {
      c.kill('SIGKILL')
    } catch {
      // gone already
    }
  }
  // The supervisors kill HAProxy when they go; this covers a supervisor killed first.
  for (const pid of sidecarPids) {
    try {
      process.kill(pid, 'SIGKILL')
    } catch {
      // gone already
    }
  }
  rmSync(tmp, { recursive: true, force: true })
})
for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143], ['SIGHUP', 129]]) {
  process.on(signal, () => {
    console.error(`\n${signal}: stopping every process of the benchmark`)
    process.exit(code)
  })
}
let stopping = false
const crashed = (err) => {
  if (stopping) return
  console.error(`CRASH: ${err.message}`)
  process.exit(1)
}

// ---------------------------------------------------------------- set-up

// The mesh warns once per process on a Node past end of life (20); the header says which
// Node runs, so the children stay quiet about it.
const CHILD_FLAGS = ['--disable-warning=SIDECARLESS_UNSUPPORTED_NODE']

function freePort() {
  return new Promise((resolvePort, reject) => {
    const s = net.createServer()
    s.once('error', reject)
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address()
      s.close(() => resolvePort(port))
    })
  })
}

/** Our CA's certificates (what `sidecarless ca` issues), and the PEM files HAProxy reads. */
async function makeCredentials() {
  const { createCertificateAuthority } = await import('../dist/index.js')
  const ca = createCertificateAuthority({ trustDomain: 'cluster.local' })
  const server = ca.issue({ namespace: 'default', serviceAccount: 'reviews', dnsNames: ['reviews'] })
  const client = ca.issue({ namespace: 'default', serviceAccount: 'productpage' })
  const pick = (c) => ({ certificate: c.certificate, privateKey: c.privateKey, trustBundle: c.trustBundle })
  const files = { caFile: join(tmp, 'ca.pem'), serverFile: join(tmp, 'server.pem'), clientFile: join(tmp, 'client.pem') }
  writeFileSync(files.caFile, ca.trustBundle, { mode: 0o600 })
  writeFileSync(files.serverFile, `${server.certificate.trim()}\n${server.privateKey.trim()}\n`, { mode: 0o600 })
  writeFileSync(files.clientFile, `${client.certificate.trim()}\n${client.privateKey.trim()}\n`, { mode: 0o600 })
  return { server: pick(server), client: pick(client), files }
}

/**
 * Starts every process the arms need under `node`: servers, then sidecars (inbound before
 * outbound), then clients. Returns role → { handle, port }.
 */
async function startRoles(node, arms, creds, tag) {
  const needed = new Set(arms.flatMap(rolesOf))
  const procs = {}
  const ports = {}
  const spawn = (file, name) => forkChild(lib(file), { execPath: node, execArgv: CHILD_FLAGS, name, onCrash: crashed })
  await Promise.all([...needed].filter((r) => ROLES[r].type === 'server').map(async (role) => {
    const handle = spawn('sbs-server.mjs', role)
    const { port } = await handle.call('start', { kind: ROLES[role].kind, credentials: creds?.server })
    procs[role] = handle
    ports[role] = port
  }))
  const startSidecar = async (role) => {
    const r = ROLES[role]
    const port = await freePort()
    const tls = r.tls ? { certFile: r.side === 'inbound' ? creds.files.serverFile : creds.files.clientFile, caFile: creds.files.caFile } : undefined
    const text = r.side === 'inbound' ? inboundSidecar({ port, appPort: ports[r.to], tls }) : outboundSidecar({ port, upstreamPort: ports[r.to], tls })
    const config = join(tmp, `${tag}-${role}.cfg`)
    writeFileSync(config, text, { mode: 0o600 })
    const handle = forkChild(lib('sbs-haproxy.mjs'), { execPath: process.execPath, name: role, onCrash: crashed })
    const { pid } = await handle.call('start', { bin: opts.haproxy, config, port })
    sidecarPids.add(pid)
    procs[role] = handle
    ports[role] = port
  }
  const sidecars = [...needed].filter((r) => ROLES[r].type === 'sidecar')
  for (const side of ['inbound', 'outbound']) await Promise.all(sidecars.filter((r) => ROLES[r].side === side).map(startSidecar))
  for (const role of [...needed].filter((r) => ROLES[r].type === 'client')) {
    const mine = arms.filter((a) => a.client === role)
    const targets = Object.fromEntries(mine.map((a) => [a.name, a.target(ports, creds)]))
    let meshConfig
    if (ROLES[role].kind === 'mesh') {
      const clusters = mine.map((a) => a.meshCluster(ports))
      meshConfig = {
        clusters,
        virtualHosts: clusters.map((c) => ({ name: c.name, domains: [c.name], routes: [{ name: c.name, match: { prefix: '/' }, route: { cluster: c.name, ...ARMED_ROUTE } }] })),
        ...(clusters.some((c) => c.tls) ? { identity: creds.client } : {}),
      }
    }
    const handle = spawn('sbs-client.mjs', role)
    await handle.call('start', { kind: ROLES[role].kind, targets, meshConfig })
    procs[role] = handle
  }
  return procs
}

// ---------------------------------------------------------------- measuring

/** CPU time (µs) of each process of the arm, in rolesOf order. */
function cpuOf(procs, arm) {
  return Promise.all(rolesOf(arm).map((r) => procs[r].call('cpu').then((c) => c.us)))
}

/**
 * One slice of `cmd` ('closed' or 'open') on `arm`: the client's figures, the CPU of every
 * process of the arm over the slice, TCP connections its server accepted, and the CPU the
 * rest of the machine used meanwhile.
 */
async function slice(procs, arm, cmd, args) {
  const server = procs[arm.server]
  const s0 = await server.call('stats')
  const c0 = await cpuOf(procs, arm)
  const m0 = machineBusyUs()
  const r = await procs[arm.client].call(cmd, { arm: arm.name, ...args }, args.ms + 60_000)
  const m1 = machineBusyUs()
  const c1 = await cpuOf(procs, arm)
  const s1 = await server.call('stats')
  const cpu = c1.map((v, i) => v - c0[i])
  const armUs = cpu.reduce((a, b) => a + b, 0)
  if (r.bad > 0) throw new Error(`${arm.name}: ${r.bad} of ${r.n} requests failed (${r.lastError ?? 'non-200 status'})`)
  return {
    ...r,
    cpu,
    connects: s1.connections - s0.connections,
    othersUs: m0 === undefined ? NaN : Math.max(0, m1 - m0 - armUs),
  }
}

/** Checks, after the warm-up, that the arm's server saw what the arm claims to do. */
async function checkArm(procs, arm) {
  const stats = await procs[arm.server].call('stats')
  const probe = stats.probe
  if (probe === undefined) throw new Error(`${arm.name}: the server saw no request`)
  const problems = []
  if (probe.traceparent !== arm.expect.traceparent) problems.push(`traceparent ${probe.traceparent ? 'present' : 'absent'} (expected ${arm.expect.traceparent ? 'present' : 'absent'})`)
  if (probe.xfcc !== arm.expect.xfcc) problems.push(`x-forwarded-client-cert ${probe.xfcc ?? 'absent'} (expected ${arm.expect.xfcc ?? 'absent'})`)
  if (arm.expect.peer !== undefined && probe.peer !== arm.expect.peer) problems.push(`client identity ${probe.peer ?? 'none'} (expected ${arm.expect.peer})`)
  if (ROLES[arm.server].kind.startsWith('mesh') && !(stats.inbound > 0)) problems.push('the mesh server counted no inbound request')
  if (ROLES[arm.client].kind === 'mesh') {
    const c = await procs[arm.client].call('stats', { arm: arm.name })
    if (!(c.outbound > 0)) problems.push('the mesh client counted no outbound request')
  }
  if (problems.length > 0) throw new Error(`${arm.name} does not run the path it names: ${problems.join('; ')}`)
}

async function warmUp(procs, arms) {
  for (const arm of arms) {
    await procs[arm.server].call('probe-reset')
    await slice(procs, arm, 'closed', { ms: opts.warmup, connections: opts.connections })
    await slice(procs, arm, 'open', { ms: Math.min(500, opts.warmup / 4), rate: opts.rate })
    await checkArm(procs, arm)
  }
}

/**
 * The RSS the library adds: probe processes `without` the mesh, `with` a mesh of the
 * 100-cluster config, `with-one` (a one-cluster config) and `import-only` (the code
 * loaded, no mesh), in rotated order, medians per variant.
 */
async function measureRss(node) {
  const variants = ['without', 'with', 'with-one', 'import-only']
  const samples = Object.fromEntries(variants.map((v) => [v, []]))
  for (let i = 0; i < opts.rssSamples; i++) {
    for (const variant of rotate(variants, i)) {
      const h = forkChild(lib('sbs-rss.mjs'), { execPath: node, execArgv: ['--expose-gc', ...CHILD_FLAGS], name: `rss-${variant}`, onCrash: crashed })
      samples[variant].push(await h.call('measure', { variant }, 60_000))
      await h.stop()
    }
  }
  const mb = (variant, k) => median(samples[variant].map((s) => s[k])) / 1048576
  // What each variant's added RSS is made of (medians of each part, so they need not add up exactly).
  const parts = (variant) => Object.fromEntries(['heapNew', 'heapOld', 'native', 'file'].map((k) => [k, mb(variant, k) - mb('without', k)]))
  return {
    parts: { with: parts('with'), 'with-one': parts('with-one'), 'import-only': parts('import-only') },
    deltaMB: mb('with', 'rss') - mb('without', 'rss'),
    heapDeltaMB: mb('with', 'heapUsed') - mb('without', 'heapUsed'),
    oneClusterDeltaMB: mb('with-one', 'rss') - mb('without', 'rss'),
    oneClusterHeapDeltaMB: mb('with-one', 'heapUsed') - mb('without', 'heapUsed'),
    importDeltaMB: mb('import-only', 'rss') - mb('without', 'rss'),
    importHeapDeltaMB: mb('import-only', 'heapUsed') - mb('without', 'heapUsed'),
    withMB: mb('with', 'rss'),
    withoutMB: mb('without', 'rss'),
    samples,
  }
}

function nodeVersion(node) {
  return execFileSync(node, ['-p', 'process.version'], { encoding: 'utf8' }).trim()
}

/** Arms to run: the named ones and direct, minus those this machine cannot run. */
function selectArms(names) {
  // In the canonical order (tables and charts read alike whatever order was asked).
  const wanted = ARMS.map((a) => a.name).filter((n) => n === 'direct' || names.includes(n))
  const arms = []
  const skipped = []
  const haveHaproxy = existsSync(opts.haproxy)
  for (const name of wanted) {
    const arm = armNamed(name)
    if (arm.unsupported !== undefined) skipped.push({ name, why: arm.unsupported })
    else if (arm.proxies.length > 0 && !haveHaproxy) skipped.push({ name, why: `HAProxy is not installed (${opts.haproxy}; set --haproxy or $HAPROXY; Debian: apt-get install haproxy)` })
    else arms.push(arm)
  }
  return { arms, skipped }
}

// ---------------------------------------------------------------- one Node version

/** The RSS probe's figures: one line, and one for what each variant's added RSS is made of. */
function rssLine(rss) {
  const f = (x) => (Number.isFinite(x) ? `${x >= 0 ? '+' : ''}${x.toFixed(2)}` : 'n/a')
  const made = Object.entries(rss.parts).map(([v, p]) => `${v}: young generation ${f(p.heapNew)}, rest of the heap ${f(p.heapOld)}, native ${f(p.native)}, file-backed ${f(p.file)}`)
  return `${rssFigures(rss)}\nRSS added, made of (MB): ${made.join('; ')}`
}

function rssFigures(rss) {
  return `RSS: ${rss.withoutMB.toFixed(1)} MB without the mesh, ${rss.withMB.toFixed(1)} MB with it (100 clusters): +${rss.deltaMB.toFixed(2)} MB (heap +${rss.heapDeltaMB.toFixed(2)} MB);`
    + ` with a one-cluster config +${rss.oneClusterDeltaMB.toFixed(2)} MB (heap +${rss.oneClusterHeapDeltaMB.toFixed(2)} MB);`
    + ` the import alone +${rss.importDeltaMB.toFixed(2)} MB (heap +${rss.importHeapDeltaMB.toFixed(2)} MB); medians of ${opts.rssSamples} process(es) each`
}

/** `--rss-only`: the RSS probe of one Node version, no arm run. */
async function runRssOnly(node) {
  const version = nodeVersion(node)
  console.log(`\n## ${version} (${node})`)
  const rss = await measureRss(node)
  console.log(rssLine(rss))
  console.log('')
  const result = { node, version, rounds: 0, loadavg: loadavg(), arms: [], skipped: [], rss, othersPct: 0 }
  result.targets = targets(result)
  return result
}

async function runVersion(node, creds) {
  if (opts.rssOnly) return runRssOnly(node)
  const version = nodeVersion(node)
  const { arms, skipped } = selectArms(opts.arms ?? DEFAULT_ARMS)
  console.log(`\n## ${version} (${node})`)
  console.log(`${opts.rounds} round(s); per arm and round: closed loop ${opts.duration} ms at ${opts.connections} connections, open loop ${opts.openDuration} ms at ${opts.rate} req/s; warm-up ${opts.warmup} ms`)
  console.log(`machine: ${cpus().length} cores, load average ${loadavg().map((l) => l.toFixed(2)).join(' ')}`)
  for (const s of skipped) console.log(`SKIP ${s.name}: ${s.why}`)
  const procs = await startRoles(node, arms, creds, version)
  await warmUp(procs, arms)

  const perRound = Object.fromEntries(arms.map((a) => [a.name, []]))
  for (let round = 0; round < opts.rounds; round++) {
    const order = rotate(arms, round)
    const acc = Object.fromEntries(arms.map((a) => [a.name, { n: 0, elapsed: 0, cpu: rolesOf(a).map(() => 0), connects: 0, othersUs: 0 }]))
    // Closed loop: each arm twice, in mirrored order, half the time each.
    for (const arm of [...order, ...order.slice().reverse()]) {
      const s = await slice(procs, arm, 'closed', { ms: opts.duration / 2, connections: opts.connections })
      const a = acc[arm.name]
      a.n += s.n
      a.elapsed += s.elapsed
      a.connects += s.connects
      a.othersUs += s.othersUs
      s.cpu.forEach((us, i) => (a.cpu[i] += us))
    }
    // Open loop at a fixed rate, in the reverse order of the closed loop's first pass.
    const open = {}
    for (const arm of order.slice().reverse()) open[arm.name] = await slice(procs, arm, 'open', { ms: opts.openDuration, rate: opts.rate })
    const line = []
    for (const arm of arms) {
      const a = acc[arm.name]
      const o = open[arm.name]
      const cpuUs = a.cpu.reduce((x, y) => x + y, 0)
      const r = {
        rps: (a.n * 1000) / a.elapsed,
        cpuPerReq: cpuUs / a.n,
        client: a.cpu[0] / a.n,
        server: a.cpu[1] / a.n,
        proxies: a.cpu.slice(2).reduce((x, y) => x + y, 0) / a.n,
        connects: a.connects,
        // Cores the arm's processes kept busy: below ~1.8 on two cores, something else had the CPU.
        cores: cpuUs / 1000 / a.elapsed,
        othersPct: (a.othersUs / 1000 / a.elapsed) * 100,
        p50: o.p50,
        p90: o.p90,
        p99: o.p99,
        max: o.max,
        lagP99: o.lagP99,
        openRps: (o.n * 1000) / o.elapsed,
        openCpuPerReq: o.cpu.reduce((x, y) => x + y, 0) / o.n,
        openConnects: o.connects,
      }
      perRound[arm.name].push(r)
      line.push(`${arm.name} ${Math.round(r.rps)}/s ${Math.round(r.cpuPerReq)}µs ${r.cores.toFixed(2)} cores p99 ${r.p99.toFixed(2)}ms${r.connects > 0 ? ` (${r.connects} new conns)` : ''}`)
    }
    const others = median(arms.map((a) => perRound[a.name][round].othersPct))
    console.log(`round ${round + 1}/${opts.rounds} (others ${others.toFixed(0)}% of a core):\n  ${line.join('\n  ')}`)
  }

  stopping = true
  await Promise.all(Object.values(procs).map((p) => p.stop()))
  stopping = false
  const rss = opts.rss ? await measureRss(node) : undefined

  const direct = perRound.direct
  const col = (name, k) => perRound[name].map((r) => r[k])
  const rows = arms.map((arm) => ({
    name: arm.name,
    title: arm.title,
    label: arm.label,
    group: arm.group,
    processes: rolesOf(arm).length,
    rps: median(col(arm.name, 'rps')),
    rpsRatio: pairedRatio(col(arm.name, 'rps'), direct.map((r) => r.rps)),
    cpuPerReq: median(col(arm.name, 'cpuPerReq')),
    cpuRatio: pairedRatio(col(arm.name, 'cpuPerReq'), direct.map((r) => r.cpuPerReq)),
    split: { client: median(col(arm.name, 'client')), server: median(col(arm.name, 'server')), proxies: median(col(arm.name, 'proxies')) },
    p50: median(col(arm.name, 'p50')),
    p90: median(col(arm.name, 'p90')),
    p99: median(col(arm.name, 'p99')),
    lagP99: median(col(arm.name, 'lagP99')),
    openCpuPerReq: median(col(arm.name, 'openCpuPerReq')),
    connects: median(col(arm.name, 'connects')),
    cores: median(col(arm.name, 'cores')),
    othersPct: median(col(arm.name, 'othersPct')),
    rounds: perRound[arm.name],
  }))
  const result = {
    node, version, rounds: opts.rounds, loadavg: loadavg(), arms: rows, skipped, rss,
    othersPct: median(rows.map((r) => r.othersPct)),
  }

  console.log('')
  console.log(versionTable(result))
  console.log('')
  console.log(`CPU is summed over every process of the arm (client, server, proxies); the open loop's CPU per request at ${opts.rate} req/s: ${rows.map((r) => `${r.name} ${Math.round(r.openCpuPerReq)}`).join(', ')} µs.`)
  console.log(`Sender lag p99 (how late the open loop sent against its schedule): ${rows.map((r) => `${r.name} ${r.lagP99.toFixed(2)}`).join(', ')} ms. Other load on the machine: median ${result.othersPct.toFixed(0)}% of a core.`)
  const reconnecting = rows.filter((r) => r.connects > 0).map((r) => `${r.name} (${r.connects})`)
  if (reconnecting.length > 0) console.log(`NOTE new connections during closed-loop slices (median per round): ${reconnecting.join(', ')}: connection set-up is in their CPU figures`)
  if (rss !== undefined) console.log(rssLine(rss))
  console.log('')
  result.targets = targets(result)
  return result
}

function targets(v) {
  const out = []
  const arm = (name) => v.arms.find((a) => a.name === name)
  const tag = `[${v.version}]`
  if (arm('mesh-both')) {
    out.push(verdict(`${tag} issue 15: mesh both sides ÷ direct, req/s`, arm('mesh-both').rpsRatio, '>=', 0.95, '×'))
    out.push(verdict(`${tag} issue 15: mesh both sides ÷ direct, CPU µs/req`, arm('mesh-both').cpuRatio, '<=', 1.1, '×'))
  }
  const paired = (a, b) => pairedRatio(arm(a).rounds.map((r) => r.rps), arm(b).rounds.map((r) => r.rps))
  if (arm('mesh-mtls') && arm('node-mtls')) out.push(verdict(`${tag} issue 17: mesh STRICT mTLS ÷ plain Node mTLS, req/s`, paired('mesh-mtls', 'node-mtls'), '>=', 0.95, '×'))
  if (arm('mesh-mtls') && arm('sidecars-mtls')) out.push(verdict(`${tag} issue 17: mesh STRICT mTLS ÷ HAProxy mTLS pair, req/s`, paired('mesh-mtls', 'sidecars-mtls'), '>=', 1.3, '×'))
  if (v.rss) out.push(verdict(`${tag} RSS added by the mesh, 100-cluster config`, v.rss.deltaMB, '<=', 5, ' MB'))
  return out
}

// ---------------------------------------------------------------- profiles

async function profileVersion(node, creds, dir) {
  const version = nodeVersion(node)
  const arms = opts.profile.map(armNamed)
  for (const a of arms) {
    if (a.unsupported) fail(`cannot profile ${a.name}: ${a.unsupported}`)
    if (a.proxies.length > 0 && !existsSync(opts.haproxy)) fail(`cannot profile ${a.name}: HAProxy is not installed (${opts.haproxy})`)
  }
  console.log(`\n## profiles on ${version} (${node}): ${opts.rounds} interleaved round(s) of ${opts.duration} ms closed loop per arm, ${opts.connections} connections`)
  const procs = await startRoles(node, arms, creds, version)
  await warmUp(procs, arms)
  // Interleaved like the benchmark's rounds, so drifting load hits every arm alike: each
  // slice is profiled on its own (a process may serve several arms) and added up per arm.
  const written = []
  const done = Object.fromEntries(arms.map((a) => [a.name, { files: { client: [], server: [] }, n: 0, elapsed: 0, connects: 0, cpu: rolesOf(a).map(() => 0) }]))
  for (let round = 0; round < opts.rounds; round++) {
    for (const arm of rotate(arms, round)) {
      const d = done[arm.name]
      const sides = [['client', arm.client], ['server', arm.server]]
      await Promise.all(sides.map(([, r]) => procs[r].call('profile-start')))
      const s = await slice(procs, arm, 'closed', { ms: opts.duration, connections: opts.connections })
      for (const [side, role] of sides) {
        const file = join(dir, `${arm.name}-${version}-${side}-${round + 1}.cpuprofile`)
        await procs[role].call('profile-stop', { file }, 60_000)
        d.files[side].push(file)
        written.push(file)
      }
      d.n += s.n
      d.elapsed += s.elapsed
      d.connects += s.connects
      s.cpu.forEach((us, j) => (d.cpu[j] += us))
    }
  }
  for (const arm of arms) {
    const { n, elapsed, cpu, files, connects } = done[arm.name]
    console.log(`\n### ${arm.name} (${arm.title}): ${n} requests, ${Math.round((n * 1000) / elapsed)} req/s while profiled; CPU µs/req by process: ${rolesOf(arm).map((r, j) => `${r} ${(cpu[j] / n).toFixed(1)}`).join(', ')}; ${connects} new connections`)
    for (const side of ['client', 'server']) {
      console.log(`\n#### ${side}: ${arm[side]}`)
      printProfile(files[side], { top: 20, requests: n })
    }
  }
  // What each arm adds over its baseline, side by side, when both were profiled.
  for (const arm of arms) {
    const base = done[arm.profileBaseline]
    if (base === undefined || arm.profileBaseline === undefined) continue
    console.log(`\n### ${arm.name} minus ${arm.profileBaseline}`)
    for (const side of ['client', 'server']) printDiff(done[arm.name].files[side], done[arm.name].n, base.files[side], base.n, { top: 25 })
  }
  stopping = true
  await Promise.all(Object.values(procs).map((p) => p.stop()))
  stopping = false
  return written
}

// ---------------------------------------------------------------- main

const needsCreds = !opts.rssOnly && [...(opts.arms ?? DEFAULT_ARMS), ...opts.profile].some((n) => armNamed(n).group === 'mtls')
const creds = needsCreds ? await makeCredentials() : undefined

console.log('# side by side: one service calling another over loopback, each process apart')
console.log(`${new Date().toISOString()}${opts.note ? ` — ${opts.note}` : ''}`)

if (opts.profile.length > 0) {
  const dir = resolve(opts.profileDir ?? mkdtempSync(join(tmpdir(), 'sidecarless-profiles-')))
  mkdirSync(dir, { recursive: true })
  const files = []
  for (const node of opts.nodes) files.push(...(await profileVersion(node, creds, dir)))
  console.log(`\nprofiles written:\n${files.map((f) => `  ${f}`).join('\n')}`)
  console.log('(self time per request in µs is of the main thread; the profiler itself costs some, so compare functions, not totals)')
  process.exit(0)
}

const versions = []
for (const node of opts.nodes) versions.push(await runVersion(node, creds))

if (versions.length > 1 && !opts.rssOnly) {
  console.log('## every version')
  console.log('')
  console.log(combinedTable(versions))
  console.log('')
}
console.log('## targets')
for (const v of versions) for (const t of v.targets) console.log(`${t.verdict}  ${t.label}: ${t.value.toFixed(t.unit === '×' ? 3 : 2)}${t.unit} (target ${t.cmp} ${t.target}${t.unit})`)

const subtitle = `closed loop, ${opts.connections} connections; medians of ${opts.rounds} interleaved round(s); ${new Date().toISOString().slice(0, 10)}${opts.note ? `; ${opts.note}` : ''}`
if (opts.json) {
  const data = { date: new Date().toISOString(), note: opts.note, machine: { cores: cpus().length, model: cpus()[0]?.model }, options: { ...opts, json: undefined, svg: undefined }, versions }
  writeFileSync(opts.json, `${JSON.stringify(data, null, 2)}\n`)
  console.log(`wrote ${opts.json}`)
}
if (opts.svg && opts.rssOnly) console.log('no chart with --rss-only (no arm was run)')
else if (opts.svg) {
  writeFileSync(opts.svg, svgChart(versions, { title: 'sidecarless side by side: one service calling another over loopback', subtitle }))
  console.log(`wrote ${opts.svg}`)
}
for (const v of versions) {
  emitResult('side-by-side', {
    node: v.version,
    arms: Object.fromEntries(v.arms.map((a) => [a.name, { rps: a.rps, rpsRatio: a.rpsRatio, cpuPerReq: a.cpuPerReq, cpuRatio: a.cpuRatio, p50: a.p50, p90: a.p90, p99: a.p99 }])),
    rssMB: v.rss?.deltaMB,
    targets: v.targets,
  })
}
