/**
 * The xDS client's metrics in Prometheus text format, appended to
 * `mesh.metrics.prometheus()`, with Envoy's names where Envoy has them
 * (`control_plane.connected_state`, `<type>.update_success`, `<type>.update_rejected`).
 *
 * @module
 */
import type { XdsStatus } from './status.js'

/** Prometheus lines of the client's state and counters. */
export function xdsPrometheus(s: XdsStatus): string {
  const server = label(s.server)
  const lines = [
    '# HELP sidecarless_xds_connected_state 1 while the ADS stream to the xDS server is connected.',
    '# TYPE sidecarless_xds_connected_state gauge',
    `sidecarless_xds_connected_state{server="${server}"} ${s.state === 'CONNECTED' ? 1 : 0}`,
    '# HELP sidecarless_xds_update_success_total Resources accepted (ACKed and in use), by type.',
    '# TYPE sidecarless_xds_update_success_total counter',
  ]
  for (const [type, n] of Object.entries(s.counters.updates)) lines.push(`sidecarless_xds_update_success_total{type="${type}"} ${n}`)
  lines.push('# HELP sidecarless_xds_update_rejected_total Resources refused (NACKed; the last good version stays), by type.')
  lines.push('# TYPE sidecarless_xds_update_rejected_total counter')
  for (const [type, n] of Object.entries(s.counters.rejections)) lines.push(`sidecarless_xds_update_rejected_total{type="${type}"} ${n}`)
  lines.push('# HELP sidecarless_xds_config_applied_total Configs built from xDS resources and put in force.')
  lines.push('# TYPE sidecarless_xds_config_applied_total counter')
  lines.push(`sidecarless_xds_config_applied_total ${s.counters.configsApplied}`)
  lines.push('# HELP sidecarless_xds_config_rejected_total Configs built from xDS resources that validation refused.')
  lines.push('# TYPE sidecarless_xds_config_rejected_total counter')
  lines.push(`sidecarless_xds_config_rejected_total ${s.counters.configsRejected}`)
  lines.push('# HELP sidecarless_xds_streams_total ADS streams opened (reconnects included).')
  lines.push('# TYPE sidecarless_xds_streams_total counter')
  lines.push(`sidecarless_xds_streams_total ${s.counters.streams}`)
  return `${lines.join('\n')}\n`
}

function label(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')
}
