/**
 * Cold start of the xDS protos: the prebuilt descriptor (build/src/xds/descriptor.generated.js,
 * through the codec loader) against @grpc/proto-loader parsing the .proto files
 * @grpc/grpc-js-xds ships (what grpc-js-xds does at start, the baseline). Each sample is a
 * fresh child process (module caches are per process), the two interleaved; medians of
 * BENCH_ROUNDS (default 7) rounds.
 *
 *   npm run build && node bench/xds-descriptor.mjs
 */
import { execFileSync } from 'node:child_process'
import { readFileSync, statSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { emitResult, envNumber, fmt, header, median, pairedRatio, rotate, verdict } from './lib/common.mjs'

const here = dirname(fileURLToPath(import.meta.url))
const repo = join(here, '..')
const require = createRequire(join(repo, 'package.json'))
const rounds = envNumber('BENCH_ROUNDS', 7)
const xdsDir = dirname(require.resolve('@grpc/grpc-js-xds/package.json'))
const deps = join(xdsDir, 'deps')

// The files grpc-js-xds's own generate-types script loads (its resource and filter types).
const FILES = [
  'envoy/service/discovery/v3/ads.proto', 'envoy/service/load_stats/v3/lrs.proto', 'envoy/config/listener/v3/listener.proto',
  'envoy/config/route/v3/route.proto', 'envoy/config/cluster/v3/cluster.proto', 'envoy/config/endpoint/v3/endpoint.proto',
  'envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.proto', 'udpa/type/v1/typed_struct.proto',
  'xds/type/v3/typed_struct.proto', 'envoy/extensions/filters/http/fault/v3/fault.proto', 'envoy/service/status/v3/csds.proto',
  'envoy/extensions/load_balancing_policies/ring_hash/v3/ring_hash.proto', 'envoy/extensions/transport_sockets/tls/v3/tls.proto',
  'envoy/config/rbac/v3/rbac.proto', 'envoy/extensions/filters/http/rbac/v3/rbac.proto',
]

const PROTO_LOADER = `
const t0 = performance.now()
const loader = require(${JSON.stringify(require.resolve('@grpc/proto-loader'))})
loader.loadSync(${JSON.stringify(FILES)}, { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true,
  includeDirs: ${JSON.stringify(['envoy-api', 'xds', 'googleapis', 'protoc-gen-validate'].map((d) => join(deps, d)))} })
console.log(performance.now() - t0)
`
const DESCRIPTOR = `
const t0 = performance.now()
const { loadXdsCodec } = await import(${JSON.stringify(join(repo, 'build/src/xds/protos.js'))})
const codec = await loadXdsCodec()
if (!codec.hasType('envoy.config.cluster.v3.Cluster')) throw new Error('no Cluster')
console.log(performance.now() - t0)
`

function sample(kind) {
  const args = kind === 'descriptor' ? ['--input-type=module', '-e', DESCRIPTOR] : ['-e', PROTO_LOADER]
  return Number(execFileSync(process.execPath, args, { cwd: repo, encoding: 'utf8' }).trim())
}

header('xDS protos: prebuilt descriptor vs proto-loader over the shipped .proto files', { rounds })
const protoCount = Number(execFileSync('find', [deps, '-name', '*.proto'], { encoding: 'utf8' }).trim().split('\n').length)
const descriptorFile = join(repo, 'build/src/xds/descriptor.generated.js')
const types = (readFileSync(join(repo, 'src/xds/descriptor.generated.ts'), 'utf8').match(/: (\d+) messages/) ?? [])[1]
console.log(`descriptor: ${fmt(statSync(descriptorFile).size / 1024, 1)} KB, ${types} messages, enums and services; grpc-js-xds ships ${protoCount} .proto files`)

const times = { descriptor: [], protoLoader: [] }
for (let r = 0; r < rounds; r++) {
  for (const kind of rotate(['descriptor', 'protoLoader'], r)) times[kind].push(sample(kind))
}
const d = median(times.descriptor)
const p = median(times.protoLoader)
console.log(`load, median of ${rounds} cold processes: descriptor ${fmt(d, 1)} ms, proto-loader ${fmt(p, 1)} ms`)
const ratio = pairedRatio(times.descriptor, times.protoLoader)
const targets = [verdict('descriptor load ÷ proto-loader parse', ratio, '<=', 0.5, '×')]
emitResult('xds-descriptor', { descriptorMs: d, protoLoaderMs: p, bytes: statSync(descriptorFile).size, targets })
