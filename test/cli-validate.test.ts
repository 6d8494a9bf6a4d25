// `sidecarless validate`: exit codes 0/1/2, every issue by path and code, Envoy fields not
// translated listed as warnings (errors with --strict), and --json.
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, test } from 'node:test'
import { start } from './helpers/spawned.js'

let dir: string

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'sidecarless-validate-'))
})

after(() => {
  rmSync(dir, { recursive: true, force: true })
})

function write(name: string, text: string): string {
  const file = join(dir, name)
  writeFileSync(file, text)
  return file
}

async function cli(...args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const p = start(process.execPath, ['dist/cli/main.js', ...args])
  const { code } = await p.exited()
  return { code, stdout: p.stdout(), stderr: p.stderr() }
}

const VALID = `clusters:
  - name: reviews
    endpoints: [ { address: "127.0.0.1:9081", labels: { version: v1 } } ]
    subsets: [ { name: v1, labels: { version: v1 } } ]
virtualHosts:
  - name: reviews
    domains: [ reviews ]
    routes:
      - match: { prefix: /v1 }
        route: { cluster: reviews, subset: v1 }
      - match: { prefix: / }
        route: { cluster: reviews }
listener:
  address: 0.0.0.0:8080
`

const INVALID = `clusters:
  - name: reviews
    endpoints: [ { address: "ftp://x:1" } ]
    loadBalancer: roundRobin
virtualHosts:
  - name: reviews
    domains: [ reviews ]
    routes:
      - match: { prefix: / }
        route: { cluster: reviews, subset: v9 }
listener:
  address: "localhost:99999"
admin: {}
`

const ENVOY = `admin:
  access_log_path: /tmp/admin_access.log
  address:
    socket_address: { address: 127.0.0.1, port_value: 9901 }
static_resources:
  listeners:
  - name: listener_0
    address:
      socket_address: { address: 0.0.0.0, port_value: 10000 }
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress_http
          route_config:
            virtual_hosts:
            - name: local
              domains: ["*"]
              routes:
              - match: { prefix: "/" }
                route: { cluster: backend }
  clusters:
  - name: backend
    type: STATIC
    lb_subset_config: { subset_selectors: [ { keys: [version] } ] }
    load_assignment:
      cluster_name: backend
      endpoints:
      - lb_endpoints:
        - endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: 8081 } } }
`

test('a valid config: exit 0 and a one-line summary', async () => {
  const file = write('valid.yaml', VALID)
  const r = await cli('validate', file)
  assert.equal(r.code, 0, r.stderr)
  assert.equal(r.stdout, `${file}: valid: 1 cluster, 1 virtual host, 2 routes (listener 0.0.0.0:8080)\n`)
})

test('an invalid config: exit 1, every issue as "file:line:column: path: CODE message"', async () => {
  const file = write('invalid.yaml', INVALID)
  const r = await cli('validate', file)
  assert.equal(r.code, 1)
  const lines = r.stdout.trimEnd().split('\n')
  // The line and column of the field (a missing field: its parent's).
  assert.deepEqual(lines.map((l) => l.split(' ').slice(0, 3).join(' ')), [
    `${file}:3:20: clusters[0].endpoints[0].address: INVALID_ADDRESS`,
    `${file}:4:5: clusters[0].loadBalancer: INVALID_VALUE`,
    `${file}:10:36: virtualHosts[0].routes[0].route.subset: UNKNOWN_SUBSET`,
    `${file}:12:3: listener.address: INVALID_ADDRESS`,
    `${file}:13:1: admin.address: REQUIRED`,
    `${file}: invalid: 5`,
  ])
  assert.match(r.stdout, /listener\.address: INVALID_ADDRESS "localhost:99999": the port must be 0 to 65535/)
})

test('several files: each reported; a missing one makes the exit code 2', async () => {
  const valid = write('v.yaml', VALID)
  const invalid = write('i.yaml', INVALID)
  const both = await cli('validate', valid, invalid)
  assert.equal(both.code, 1)
  assert.match(both.stdout, /v\.yaml: valid/)
  assert.match(both.stdout, /i\.yaml: invalid: 5 problems/)
  const missing = await cli('validate', valid, join(dir, 'nope.yaml'))
  assert.equal(missing.code, 2)
  assert.match(missing.stderr, /nope\.yaml: cannot read: ENOENT/)
  const unparsable = await cli('validate', write('broken.yaml', 'clusters: [ {\n'))
  assert.equal(unparsable.code, 1)
  assert.match(unparsable.stdout, /broken\.yaml: <root>: SIDECARLESS_ERR_CONFIG_LOAD cannot parse config file/)
})

test('usage errors exit 2: no file, an unknown flag', async () => {
  const none = await cli('validate')
  assert.equal(none.code, 2)
  assert.match(none.stderr, /no file given[\s\S]*Usage: sidecarless validate/)
  const flag = await cli('validate', '--frobnicate', 'x.yaml')
  assert.equal(flag.code, 2)
  assert.match(flag.stderr, /Unknown option '--frobnicate'/)
  const command = await cli('validat')
  assert.equal(command.code, 2)
  assert.match(command.stderr, /unknown command "validat"/)
})

test('an Envoy bootstrap: untranslated fields are warnings; --strict makes them errors', async () => {
  const file = write('envoy.yaml', ENVOY)
  const r = await cli('validate', file)
  assert.equal(r.code, 0, r.stdout)
  assert.match(r.stdout, /warning: admin\.access_log_path: UNSUPPORTED unsupported field "access_log_path"/)
  assert.match(r.stdout, /warning: static_resources\.clusters\[0\]\.lb_subset_config\.subset_selectors: UNSUPPORTED/)
  assert.match(r.stdout, /valid: 1 cluster, 1 virtual host, 1 route \(Envoy bootstrap; listener 0\.0\.0\.0:10000; 2 fields not translated\)/)
  const strict = await cli('validate', '--strict', file)
  assert.equal(strict.code, 1)
  assert.match(strict.stdout, /: static_resources\.clusters\[0\]\.lb_subset_config\.subset_selectors: UNSUPPORTED/)
  assert.match(strict.stdout, /invalid: 2 problems/)
})

test('--json: machine-readable, the same findings', async () => {
  const envoy = write('envoy-json.yaml', ENVOY)
  const invalid = write('invalid-json.yaml', INVALID)
  const r = await cli('validate', '--json', envoy, invalid)
  assert.equal(r.code, 1)
  const out = JSON.parse(r.stdout) as { valid: boolean; files: { file: string; format: string; valid: boolean; issues: { path: string; code: string }[]; unsupported: { path: string }[]; summary: Record<string, unknown> }[] }
  assert.equal(out.valid, false)
  const [e, i] = out.files
  assert.deepEqual([e?.format, e?.valid, e?.unsupported.length], ['envoy', true, 2])
  assert.deepEqual(e?.summary, { clusters: 1, virtualHosts: 1, routes: 1, listener: '0.0.0.0:10000' })
  assert.deepEqual(i?.issues.map((x) => `${x.path} ${x.code}`), [
    'clusters[0].endpoints[0].address INVALID_ADDRESS',
    'clusters[0].loadBalancer INVALID_VALUE',
    'virtualHosts[0].routes[0].route.subset UNKNOWN_SUBSET',
    'listener.address INVALID_ADDRESS',
    'admin.address REQUIRED',
  ])
})

test('--help and --version', async () => {
  const help = await cli('--help')
  assert.equal(help.code, 0)
  assert.match(help.stdout, /validate .*\n.*proxy /)
  const version = await cli('--version')
  assert.equal(version.code, 0)
  assert.match(version.stdout, /^\d+\.\d+\.\d+/)
})
