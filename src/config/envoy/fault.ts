/**
 * Envoy's HTTP fault filter (`HTTPFault`, at the filter and per route) and request mirror
 * policies, as the mesh's `fault` and `requestMirrorPolicies`.
 */
import type { FaultConfig, RequestMirrorPolicy } from '../types.js'
import { asDuration, asUint, firstOf, fractionalPercent, nonEmpty, present, put, readField, type Field, type Problems, type Shape } from './reader.js'

export const FAULT_FILTER = 'envoy.filters.http.fault'
export const FAULT_TYPE = 'envoy.extensions.filters.http.fault.v3.HTTPFault'

const RUNTIME_OVERRIDE = 'runtime overrides are not supported; the configured values apply'
/** HTTPFault fields that narrow which requests are faulted: without them the fault would reach more traffic. */
const FAULT_SCOPE = 'fault scoping by upstream cluster, headers or downstream nodes is not supported; the fault is dropped rather than applied more widely'
const HTTP_FAULT: Shape = {
  use: ['delay', 'abort', 'max_active_faults', 'upstream_cluster', 'headers', 'downstream_nodes'],
  drop: ['disable_downstream_cluster_stats', 'filter_metadata'],
  why: {
    response_rate_limit: 'response rate limits are not supported',
    delay_percent_runtime: RUNTIME_OVERRIDE,
    abort_percent_runtime: RUNTIME_OVERRIDE,
    delay_duration_runtime: RUNTIME_OVERRIDE,
    abort_http_status_runtime: RUNTIME_OVERRIDE,
    max_active_faults_runtime: RUNTIME_OVERRIDE,
    response_rate_limit_percent_runtime: RUNTIME_OVERRIDE,
    abort_grpc_status_runtime: RUNTIME_OVERRIDE,
  },
}
const FAULT_DELAY: Shape = { use: ['fixed_delay', 'header_delay', 'percentage'] }
const FAULT_ABORT: Shape = { use: ['http_status', 'grpc_status', 'header_abort', 'percentage'] }
const RUNTIME_FRACTION: Shape = { use: ['default_value'], why: { runtime_key: RUNTIME_OVERRIDE } }
const MIRROR_POLICY: Shape = {
  use: ['cluster', 'runtime_fraction'],
  why: {
    cluster_header: 'choosing the mirror cluster from a header is not supported',
    trace_sampled: 'the copy follows the sampling of the original request',
    disable_shadow_host_suffix_append: 'the -shadow suffix is always appended',
    request_headers_mutations: 'per-mirror header mutations are not supported',
  },
}

/** Envoy `HTTPFault` (filter-level or per-route) as the mesh's fault config. */
export function translateHttpFault(p: Problems, f: Field): FaultConfig | undefined {
  const m = readField(p, f, HTTP_FAULT)
  if (m === undefined) return undefined
  for (const key of ['upstream_cluster', 'headers', 'downstream_nodes']) {
    const scoped = m.get(key)
    if (present(scoped) && !(Array.isArray(scoped.value) && scoped.value.length === 0) && scoped.value !== '') {
      p.report(scoped.path, `unsupported field "${scoped.key}": ${FAULT_SCOPE}`)
      return undefined
    }
  }
  const fault: FaultConfig = {}
  const delay = readField(p, m.get('delay'), FAULT_DELAY)
  if (delay !== undefined) {
    const source = firstOf(p, delay, ['fixed_delay', 'header_delay'])
    const percentage = fractionalPercent(p, delay.get('percentage'))
    if (source?.name === 'fixed_delay') {
      const fixedDelay = asDuration(p, source)
      if (fixedDelay !== undefined) fault.delay = percentage === undefined ? { fixedDelay } : { fixedDelay, percentage }
    } else if (source?.name === 'header_delay') {
      fault.delay = percentage === undefined ? { headerDelay: true } : { headerDelay: true, percentage }
    } else {
      p.report(m.get('delay')?.path ?? f.path, 'a delay needs fixed_delay or header_delay; dropped')
    }
  }
  const abort = readField(p, m.get('abort'), FAULT_ABORT)
  if (abort !== undefined) {
    const source = firstOf(p, abort, ['http_status', 'grpc_status', 'header_abort'])
    const percentage = fractionalPercent(p, abort.get('percentage'))
    if (source?.name === 'http_status') {
      const httpStatus = asUint(p, source, 200, 599)
      if (httpStatus !== undefined) fault.abort = percentage === undefined ? { httpStatus } : { httpStatus, percentage }
    } else if (source?.name === 'header_abort') {
      fault.abort = percentage === undefined ? { headerAbort: true } : { headerAbort: true, percentage }
    } else if (source?.name === 'grpc_status') {
      p.report(source.path, 'unsupported field "grpc_status": gRPC aborts are not supported; dropped')
    } else {
      p.report(m.get('abort')?.path ?? f.path, 'an abort needs http_status or header_abort; dropped')
    }
  }
  put(fault, 'maxActiveFaults', asUint(p, m.get('max_active_faults'), 0, 1e9))
  if (fault.delay === undefined && fault.abort === undefined) return undefined
  return fault
}

/** Envoy `RouteAction.RequestMirrorPolicy`. */
export function translateMirrorPolicy(p: Problems, f: Field): RequestMirrorPolicy | undefined {
  const m = readField(p, f, MIRROR_POLICY)
  if (m === undefined) return undefined
  const cluster = nonEmpty(p, m.get('cluster'))
  if (cluster === undefined) {
    p.report(f.path, 'a mirror policy needs a cluster; dropped')
    return undefined
  }
  const policy: RequestMirrorPolicy = { cluster }
  const fraction = readField(p, m.get('runtime_fraction'), RUNTIME_FRACTION)
  if (fraction !== undefined) {
    const value = fraction.get('default_value')
    const percentage = present(value) ? fractionalPercent(p, value) : undefined
    if (percentage === undefined) {
      // Envoy requires default_value; guessing a share would mirror traffic nobody asked for.
      p.report(m.get('runtime_fraction')?.path ?? f.path, 'runtime_fraction needs a usable default_value; the mirror policy is dropped')
      return undefined
    }
    policy.percentage = percentage
  }
  return policy
}
