#!/usr/bin/env node
/**
 * Builds src/xds/descriptor.generated.ts: a protobufjs JSON descriptor of only the Envoy /
 * xDS messages the mesh encodes and decodes, from the .proto files `@grpc/grpc-js-xds`
 * ships in its `deps/` folder (a devDependency; the descriptor is committed, so users and
 * fresh clones never need the .proto files).
 *
 * Parsing the ~600 shipped .proto files takes most of a second; the pruned descriptor
 * holds only the types reachable from the roots below, without options or comments.
 *
 *   node scripts/build-xds-descriptor.mjs           writes the file
 *   node scripts/build-xds-descriptor.mjs --check   exits 1 if the committed file differs
 *
 * Types are written with fully qualified names (`.envoy.config.core.v3.Address`), so
 * pruning cannot change how a reference resolves.
 */
import { accessSync, readFileSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const here = path.dirname(fileURLToPath(import.meta.url))
const repo = path.resolve(here, '..')
const require = createRequire(path.join(repo, 'package.json'))
const protobuf = require('protobufjs')
const xdsPackage = path.dirname(require.resolve('@grpc/grpc-js-xds/package.json'))
const xdsVersion = JSON.parse(readFileSync(path.join(xdsPackage, 'package.json'), 'utf8')).version
const protobufjsDir = path.dirname(require.resolve('protobufjs/package.json'))
const OUT = path.join(repo, 'src/xds/descriptor.generated.ts')

/** The files whose messages are the roots. */
const FILES = [
  'envoy/service/discovery/v3/ads.proto',
  'envoy/service/status/v3/csds.proto',
  'envoy/config/listener/v3/listener.proto',
  'envoy/config/route/v3/route.proto',
  'envoy/config/cluster/v3/cluster.proto',
  'envoy/config/endpoint/v3/endpoint.proto',
  'envoy/extensions/transport_sockets/tls/v3/tls.proto',
  'envoy/extensions/transport_sockets/tls/v3/secret.proto',
  'envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.proto',
  'envoy/extensions/filters/http/router/v3/router.proto',
  'envoy/extensions/filters/http/fault/v3/fault.proto',
  'envoy/extensions/filters/http/rbac/v3/rbac.proto',
  'envoy/extensions/load_balancing_policies/round_robin/v3/round_robin.proto',
  'envoy/extensions/load_balancing_policies/least_request/v3/least_request.proto',
  'envoy/extensions/load_balancing_policies/random/v3/random.proto',
  'envoy/extensions/load_balancing_policies/ring_hash/v3/ring_hash.proto',
  'envoy/extensions/load_balancing_policies/maglev/v3/maglev.proto',
  'envoy/extensions/load_balancing_policies/wrr_locality/v3/wrr_locality.proto',
  'envoy/extensions/load_balancing_policies/pick_first/v3/pick_first.proto',
  'envoy/extensions/clusters/aggregate/v3/cluster.proto',
  'envoy/extensions/upstreams/http/v3/http_protocol_options.proto',
  'udpa/type/v1/typed_struct.proto',
  'xds/type/v3/typed_struct.proto',
]

/** Messages and services kept, with everything they reference. */
const ROOTS = [
  'envoy.service.discovery.v3.AggregatedDiscoveryService',
  'envoy.service.status.v3.ClientStatusDiscoveryService',
  'envoy.config.listener.v3.Listener',
  'envoy.config.route.v3.RouteConfiguration',
  'envoy.config.cluster.v3.Cluster',
  'envoy.config.endpoint.v3.ClusterLoadAssignment',
  'envoy.extensions.transport_sockets.tls.v3.Secret',
  'envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext',
  'envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext',
  'envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
  'envoy.extensions.filters.http.router.v3.Router',
  'envoy.extensions.filters.http.fault.v3.HTTPFault',
  'envoy.extensions.filters.http.rbac.v3.RBAC',
  'envoy.extensions.filters.http.rbac.v3.RBACPerRoute',
  'envoy.extensions.load_balancing_policies.round_robin.v3.RoundRobin',
  'envoy.extensions.load_balancing_policies.least_request.v3.LeastRequest',
  'envoy.extensions.load_balancing_policies.random.v3.Random',
  'envoy.extensions.load_balancing_policies.ring_hash.v3.RingHash',
  'envoy.extensions.load_balancing_policies.maglev.v3.Maglev',
  'envoy.extensions.load_balancing_policies.wrr_locality.v3.WrrLocality',
  'envoy.extensions.load_balancing_policies.pick_first.v3.PickFirst',
  'envoy.extensions.clusters.aggregate.v3.ClusterConfig',
  'envoy.extensions.upstreams.http.v3.HttpProtocolOptions',
  'udpa.type.v1.TypedStruct',
  'xds.type.v3.TypedStruct',
  // Any's payloads that are well-known types (proto3 JSON writes them as `{ '@type', value }`).
  'google.protobuf.Any',
  'google.protobuf.Duration',
  'google.protobuf.Timestamp',
  'google.protobuf.Struct',
  'google.protobuf.Empty',
  'google.protobuf.BoolValue',
  'google.protobuf.StringValue',
  'google.protobuf.BytesValue',
  'google.protobuf.DoubleValue',
  'google.protobuf.FloatValue',
  'google.protobuf.Int32Value',
  'google.protobuf.UInt32Value',
  'google.protobuf.Int64Value',
  'google.protobuf.UInt64Value',
]

/** Field options that change the wire format; every other option is dropped. */
const WIRE_OPTIONS = ['packed', 'proto3_optional']

function loadRoot() {
  const deps = path.join(xdsPackage, 'deps')
  const includes = ['envoy-api', 'xds', 'googleapis', 'protoc-gen-validate'].map((d) => path.join(deps, d))
  // protobufjs ships google/protobuf/descriptor.proto, which the annotation protos import.
  includes.push(protobufjsDir)
  const root = new protobuf.Root()
  root.resolvePath = (origin, target) => {
    if (path.isAbsolute(target)) return target
    for (const dir of includes) {
      const candidate = path.join(dir, target)
      try {
        accessSync(candidate)
        return candidate
      } catch {
        // not in this include directory
      }
    }
    // Well-known types protobufjs bundles (google/protobuf/any.proto, ...).
    return target
  }
  root.loadSync(FILES, { keepCase: true })
  root.resolveAll()
  return root
}

/** Every type, enum and service reachable from the roots, by full name (leading dot). */
function reachable(root) {
  const kept = new Map()
  const queue = ROOTS.map((name) => root.lookup(name))
  for (let i = 0; i < queue.length; i++) {
    const item = queue[i]
    if (item === null) throw new Error(`root ${ROOTS[i] ?? '?'} not found`)
    if (kept.has(item.fullName)) continue
    kept.set(item.fullName, item)
    if (item instanceof protobuf.Type) {
      if (item._edition !== undefined && item._edition !== null && item._edition !== 'proto3') {
        throw new Error(`${item.fullName} is ${item._edition}; the descriptor is read back as proto3`)
      }
      for (const field of item.fieldsArray) if (field.resolvedType !== null) queue.push(field.resolvedType)
    } else if (item instanceof protobuf.Service) {
      for (const method of item.methodsArray) queue.push(method.resolvedRequestType, method.resolvedResponseType)
    }
  }
  return kept
}

/**
 * The proto field name. protobufjs defines the well-known types it bundles (Struct's
 * Value) with camelCase names; every other name is already the proto's snake_case.
 */
function protoName(name) {
  return name.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)
}

function typeJson(type) {
  const fields = {}
  for (const field of type.fieldsArray) {
    const out = {}
    if (field.map) out.keyType = field.keyType
    if (field.repeated) out.rule = 'repeated'
    out.type = field.resolvedType === null ? field.type : field.resolvedType.fullName
    out.id = field.id
    const options = {}
    for (const key of WIRE_OPTIONS) {
      if (field.options !== undefined && Object.hasOwn(field.options, key)) options[key] = field.options[key]
    }
    if (Object.keys(options).length > 0) out.options = options
    fields[protoName(field.name)] = out
  }
  const json = {}
  const oneofs = {}
  for (const oneof of type.oneofsArray) oneofs[oneof.name] = { oneof: oneof.oneof.map(protoName) }
  if (Object.keys(oneofs).length > 0) json.oneofs = oneofs
  json.fields = fields
  return json
}

function enumJson(e) {
  // In value order, so the zero value comes first.
  return { values: Object.fromEntries(Object.entries(e.values).sort((a, b) => a[1] - b[1])) }
}

function serviceJson(s) {
  const methods = {}
  for (const m of s.methodsArray) {
    const out = { requestType: m.resolvedRequestType.fullName, responseType: m.resolvedResponseType.fullName }
    if (m.requestStream) out.requestStream = true
    if (m.responseStream) out.responseStream = true
    methods[m.name] = out
  }
  return { methods }
}

/** Nests the kept items under their namespaces, sorted, so the output is stable. */
function descriptor(kept) {
  const top = { nested: {} }
  const names = [...kept.keys()].sort()
  for (const fullName of names) {
    const item = kept.get(fullName)
    const parts = fullName.slice(1).split('.')
    let node = top
    for (const part of parts.slice(0, -1)) {
      node.nested ??= {}
      node.nested[part] ??= {}
      node = node.nested[part]
    }
    const leaf = parts[parts.length - 1]
    node.nested ??= {}
    const existing = node.nested[leaf] ?? {}
    const own = item instanceof protobuf.Type ? typeJson(item) : item instanceof protobuf.Enum ? enumJson(item) : serviceJson(item)
    node.nested[leaf] = { ...own, ...(existing.nested === undefined ? {} : { nested: existing.nested }) }
  }
  return sortKeys(top)
}

/** Sorts object keys, except an enum's values: their first is the enum's default for protobufjs. */
function sortKeys(value, key = '') {
  if (Array.isArray(value)) return value.map((v) => sortKeys(v))
  if (value === null || typeof value !== 'object' || key === 'values') return value
  const out = {}
  for (const k of Object.keys(value).sort()) out[k] = sortKeys(value[k], k)
  return out
}

function render(json, count) {
  const text = JSON.stringify(json)
  return `// Generated by scripts/build-xds-descriptor.mjs from the .proto files of
// @grpc/grpc-js-xds ${xdsVersion}: ${count} messages, enums and services. Do not edit;
// run \`npm run build:xds-descriptor\` instead (a test checks that this file is current).

/** protobufjs JSON descriptor (\`Root.fromJSON\`) of the Envoy and xDS types the mesh uses. */
export const XDS_DESCRIPTOR_JSON: string =
  ${JSON.stringify(text)}
`
}

const root = loadRoot()
const kept = reachable(root)
const output = render(descriptor(kept), kept.size)
if (process.argv.includes('--check')) {
  let current = ''
  try {
    current = readFileSync(OUT, 'utf8')
  } catch {
    // missing: differs
  }
  if (current !== output) {
    process.stderr.write(`${path.relative(repo, OUT)} is out of date: run npm run build:xds-descriptor\n`)
    process.exit(1)
  }
  process.stdout.write(`${path.relative(repo, OUT)} is current (${kept.size} types, ${output.length} bytes)\n`)
} else {
  writeFileSync(OUT, output)
  process.stdout.write(`wrote ${path.relative(repo, OUT)} (${kept.size} types, ${output.length} bytes)\n`)
}
