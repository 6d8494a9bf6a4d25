import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { test } from 'node:test'
import { promisify } from 'node:util'

const run = promisify(execFile)
const root = fileURLToPath(new URL('../../', import.meta.url))

test('examples/canary.mjs runs a canary: 90/10 → 50/50 → 0/100, test user pinned, typo refused, then rollouts: a bad build rolled back, a good one completed', async () => {
  const { stdout } = await run(process.execPath, ['examples/canary.mjs'], {
    cwd: root,
    env: { ...process.env, CANARY_REQUESTS: '400' },
    timeout: 60_000,
  })
  const line = (prefix: string): string => stdout.split('\n').find((l) => l.startsWith(prefix)) ?? assert.fail(`no line "${prefix}" in:\n${stdout}`)
  const share = (l: string, v: string): number => Number(new RegExp(`${v} ([\\d.]+)%`).exec(l)?.[1] ?? 0)
  assert.equal(share(line('before the canary'), 'v1'), 100)
  const ninety = line('split v1:90 v2:10')
  assert.ok(Math.abs(share(ninety, 'v2') - 10) < 5, ninety)
  const half = line('split v1:50 v2:50')
  assert.ok(Math.abs(share(half, 'v2') - 50) < 10, half)
  assert.equal(share(line('split v1:0 v2:100'), 'v2'), 100)
  assert.equal(share(line('test user (jason)'), 'v2'), 100)
  assert.match(stdout, /refused: SIDECARLESS_ERR_INVALID_CONFIG: UNKNOWN_SUBSET at virtualHosts\[0\]\.routes\[1\]\.route\.weightedClusters\[2\]\.subset/)
  assert.match(stdout, /still in force: \{"v1":0,"v2":100\}/)
  assert.match(stdout, /^ {2}step 20% to v2: failed \((\d+) of \1 failed\)$/m)
  assert.match(stdout, /^rollout, v2 broken: rolledBack \(step 0 \(20% to "v2"\) failed: error rate 1 \(\d+ of \d+\) is above 0\.05\); in force: \{"v1":100,"v2":0\}$/m)
  const fixed = stdout.slice(stdout.indexOf('rollout, v2 broken'))
  for (const w of [20, 50, 100]) assert.match(fixed, new RegExp(`^ {2}step ${w}% to v2: passed \\(0 of \\d+ failed\\)$`, 'm'))
  assert.match(stdout, /^rollout, v2 fixed: completed; in force: \{"v1":0,"v2":100\}$/m)
})

test('examples/bookinfo.mjs: split, jason on v3, mTLS identities, breaker open and closed, traces across hops', async () => {
  // execFile rejects unless the demo exits 0 (and it only exits once every mesh, server and
  // socket is closed: a leaked handle would hold it until the timeout).
  const { stdout, stderr } = await run(process.execPath, ['examples/bookinfo.mjs'], { cwd: root, timeout: 60_000 })
    .catch((err: { code?: unknown; stdout?: string; stderr?: string }) => assert.fail(`exit ${String(err.code)}\n${err.stdout ?? ''}\n${err.stderr ?? ''}`))
  assert.equal(stderr, '', 'no warnings')
  const line = (prefix: string): string => stdout.split('\n').find((l) => l.trim().startsWith(prefix)) ?? assert.fail(`no line "${prefix}" in:\n${stdout}`)
  const share = (l: string, v: string): number => Number(new RegExp(`${v} ([\\d.]+)%`).exec(l)?.[1] ?? 0)

  // The canary split, then the split moved while running; shares near the weights.
  const canary = line('split v1:80 v2:20')
  assert.ok(Math.abs(share(canary, 'v2') - 20) < 10, canary)
  assert.equal(share(canary, 'v3'), 0, canary)
  const half = line('split v1:50 v2:50')
  assert.ok(Math.abs(share(half, 'v2') - 50) < 15, half)
  // The header route: jason always on v3, red stars from ratings.
  assert.match(line('end-user: jason'), /served by: v3 100\.0%\s+\(stars: red\)/)

  // mTLS: each callee saw its caller's SPIFFE identity; plain text refused by STRICT.
  assert.match(stdout, /reviews v1 +saw caller spiffe:\/\/cluster\.local\/ns\/default\/sa\/productpage/)
  assert.match(stdout, /reviews v2 +saw caller spiffe:\/\/cluster\.local\/ns\/default\/sa\/productpage/)
  assert.match(stdout, /reviews v3 +saw caller spiffe:\/\/cluster\.local\/ns\/default\/sa\/productpage/)
  assert.match(stdout, /ratings v1 +saw caller spiffe:\/\/cluster\.local\/ns\/default\/sa\/reviews/)
  assert.match(line('plain HTTP to reviews v1'), /refused by STRICT mTLS/)
  // The caller checks the server's identity too: reviews' certificate is not ratings'.
  assert.match(line('a client that expects ratings'), /503 UF: .*SIDECARLESS_ERR_PEER_IDENTITY: .* is spiffe:\/\/cluster\.local\/ns\/default\/sa\/reviews, not/)

  // The breaker on v2 opened, shed requests with 503 UO, then half-opened and closed.
  const events = stdout.split('\n').filter((l) => l.includes('[event] circuitBreaker'))
  assert.match(events[0] ?? '', /reviews\/v2: closed -> open \(error rate [\d.]+%\)/, events.join('\n'))
  assert.ok(events.some((l) => /reviews\/v2: open -> halfOpen/.test(l)), events.join('\n'))
  assert.match(events.at(-1) ?? '', /reviews\/v2: halfOpen -> closed/, events.join('\n'))
  assert.ok(events.every((l) => l.includes('reviews/v2')), 'only the failing version tripped')
  const phase = (n: number): string => stdout.split(`== ${n}.`)[1]?.split('\n== ')[0] ?? assert.fail(`no phase ${n}`)
  const row = (text: string, v: string): number[] => (new RegExp(`^ +${v} +(\\d+) +(\\d+) +(\\d+) +(\\d+) +\\w+$`, 'm').exec(text)?.slice(1) ?? assert.fail(`no row ${v} in ${text}`)).map(Number)
  const [, , v2failed, v2shed] = row(phase(5), 'v2')
  assert.ok((v2failed ?? 0) > 0 && (v2shed ?? 0) > 0, phase(5))
  const [v1req, v1ok, v1failed] = row(phase(5), 'v1')
  assert.ok((v1req ?? 0) > 0 && v1ok === v1req && v1failed === 0, phase(5))
  assert.match(phase(5), /503 UO: \d+/)
  const [, healedOk, healedFailed] = row(phase(6), 'v2')
  assert.ok((healedOk ?? 0) > 0 && healedFailed === 0, phase(6))
  assert.match(phase(6), /^ +v2 .* closed$/m)

  // Traces: one trace id, ≥ 3 spans, across productpage, reviews and ratings.
  const traces = [...stdout.matchAll(/trace ([0-9a-f]{32}): (\d+) spans across (\d+) services\n((?: {4}.*\n)+)/g)]
  assert.ok(traces.length >= 2, stdout)
  for (const [, traceId, count, services, body] of traces) {
    assert.ok(Number(count) >= 3 && Number(services) === 3, `${traceId}: ${count} spans, ${services} services`)
    const spans = (body ?? '').trimEnd().split('\n')
    assert.equal(spans.length, Number(count))
    assert.equal(new Set(spans.map((s) => /span ([0-9a-f]{16})/.exec(s)?.[1])).size, spans.length, 'distinct span ids')
    for (const name of ['productpage v1', 'reviews v', 'ratings v1']) assert.ok(spans.some((s) => s.includes(name)), `${name} in ${body}`)
  }

  // Metrics read from the loopback endpoint.
  assert.match(stdout, /metrics \(Prometheus text, loopback only\): http:\/\/127\.0\.0\.1:\d+\/stats\/prometheus/)
  assert.match(stdout, /sidecarless_cluster_subset_rq_total\{service="productpage",cluster_name="reviews",subset="v2"\} [1-9]\d*/)
  assert.match(stdout, /sidecarless_cluster_upstream_rq_overflow_total\{service="productpage",cluster_name="reviews",reason="breaker_open"\} [1-9]\d*/)
  assert.match(stdout, /sidecarless_cluster_breaker_opened_total\{service="productpage",cluster_name="reviews",subset="v2"\} [1-9]\d*/)
  assert.match(stdout, /all meshes and servers closed/)
})
