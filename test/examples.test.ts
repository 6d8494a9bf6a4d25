import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { test } from 'node:test'
import { promisify } from 'node:util'

const run = promisify(execFile)
const root = fileURLToPath(new URL('../../', import.meta.url))

test('examples/canary.mjs runs a canary: 90/10 → 50/50 → 0/100, test user pinned, typo refused', async () => {
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
})
