/**
 * Process and runtime metrics under the names prom-client's `collectDefaultMetrics()` gives
 * them, so the Node.js dashboards teams already have read a meshed process unchanged:
 * CPU (`process_cpu_*_seconds_total`), memory (`process_resident_memory_bytes`, the V8 heap
 * `nodejs_heap_*`), file descriptors (`process_open_fds`, `process_max_fds`, Linux), the
 * event loop's delay (`nodejs_eventloop_lag_*_seconds`), active resources and the version.
 *
 * Read when scraped, never on the request path. The event-loop delay comes from
 * `perf_hooks.monitorEventLoopDelay`, started on the first scrape (a process nobody scrapes
 * pays nothing) and reset at each scrape, as prom-client does: its figures cover the time
 * since the last scrape. (prom-client's own `nodejs_eventloop_lag_seconds` measures one
 * `setImmediate` at scrape time; a synchronous exposition cannot, so it is the mean delay.)
 */
import { readdirSync, readFileSync } from 'node:fs'
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks'
import v8 from 'node:v8'
import { escapeLabelValue, formatValue } from './prometheus-text.js'

let loop: IntervalHistogram | undefined
const startTimeSeconds = Math.round((performance.timeOrigin / 1000) * 1000) / 1000

/** The process metrics, in the Prometheus text format (each family with HELP and TYPE). */
export function processMetrics(): string {
  const out: string[] = []
  const family = (name: string, type: 'counter' | 'gauge', help: string, samples: [string, number][]): void => {
    if (samples.length === 0) return
    out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`)
    for (const [labels, v] of samples) out.push(`${name}${labels === '' ? '' : `{${labels}}`} ${formatValue(v)}`)
  }
  const cpu = process.cpuUsage()
  const user = cpu.user / 1e6
  const system = cpu.system / 1e6
  family('process_cpu_user_seconds_total', 'counter', 'Total user CPU time spent in seconds.', [['', user]])
  family('process_cpu_system_seconds_total', 'counter', 'Total system CPU time spent in seconds.', [['', system]])
  family('process_cpu_seconds_total', 'counter', 'Total user and system CPU time spent in seconds.', [['', user + system]])
  family('process_start_time_seconds', 'gauge', 'Start time of the process since unix epoch in seconds.', [['', startTimeSeconds]])
  const mem = process.memoryUsage()
  family('process_resident_memory_bytes', 'gauge', 'Resident memory size in bytes.', [['', mem.rss]])
  family('process_heap_bytes', 'gauge', 'Process heap size in bytes.', [['', mem.heapTotal]])
  if (process.platform === 'linux') {
    try {
      family('process_open_fds', 'gauge', 'Number of open file descriptors.', [['', readdirSync('/proc/self/fd').length - 1]])
      const limit = /^Max open files\s+(\d+)/m.exec(readFileSync('/proc/self/limits', 'utf8'))
      if (limit !== null) family('process_max_fds', 'gauge', 'Maximum number of open file descriptors.', [['', Number(limit[1])]])
    } catch {
      // /proc not mounted (a sandbox): no fd figures.
    }
  }

  if (loop === undefined) {
    loop = monitorEventLoopDelay({ resolution: 10 })
    loop.enable()
  }
  const s = (ns: number): number => (Number.isFinite(ns) ? ns / 1e9 : 0)
  const sampled = loop.count > 0
  family('nodejs_eventloop_lag_seconds', 'gauge', 'Mean event loop delay in seconds since the last scrape.', [['', sampled ? s(loop.mean) : 0]])
  family('nodejs_eventloop_lag_min_seconds', 'gauge', 'The minimum recorded event loop delay.', [['', sampled ? s(loop.min) : 0]])
  family('nodejs_eventloop_lag_max_seconds', 'gauge', 'The maximum recorded event loop delay.', [['', sampled ? s(loop.max) : 0]])
  family('nodejs_eventloop_lag_mean_seconds', 'gauge', 'The mean of the recorded event loop delays.', [['', sampled ? s(loop.mean) : 0]])
  family('nodejs_eventloop_lag_stddev_seconds', 'gauge', 'The standard deviation of the recorded event loop delays.', [['', sampled ? s(loop.stddev) : 0]])
  for (const p of [50, 90, 99]) {
    family(`nodejs_eventloop_lag_p${p}_seconds`, 'gauge', `The ${p}th percentile of the recorded event loop delays.`, [['', sampled ? s(loop.percentile(p)) : 0]])
  }
  loop.reset()

  const resources = process.getActiveResourcesInfo()
  const byType = new Map<string, number>()
  for (const r of resources) byType.set(r, (byType.get(r) ?? 0) + 1)
  family('nodejs_active_resources', 'gauge', 'Number of active resources that are currently keeping the event loop alive, grouped by async resource type.',
    [...byType].sort().map(([t, n]) => [`type="${escapeLabelValue(t)}"`, n]))
  family('nodejs_active_resources_total', 'gauge', 'Total number of active resources.', [['', resources.length]])

  family('nodejs_heap_size_total_bytes', 'gauge', 'Process heap size from Node.js in bytes.', [['', mem.heapTotal]])
  family('nodejs_heap_size_used_bytes', 'gauge', 'Process heap size used from Node.js in bytes.', [['', mem.heapUsed]])
  family('nodejs_external_memory_bytes', 'gauge', 'Node.js external memory size in bytes.', [['', mem.external]])
  const spaces = v8.getHeapSpaceStatistics()
  const space = (pick: (x: v8.HeapSpaceInfo) => number): [string, number][] => spaces.map((x) => [`space="${escapeLabelValue(x.space_name.replace(/_space$/, ''))}"`, pick(x)])
  family('nodejs_heap_space_size_total_bytes', 'gauge', 'Process heap space size total from Node.js in bytes.', space((x) => x.space_size))
  family('nodejs_heap_space_size_used_bytes', 'gauge', 'Process heap space size used from Node.js in bytes.', space((x) => x.space_used_size))
  family('nodejs_heap_space_size_available_bytes', 'gauge', 'Process heap space size available from Node.js in bytes.', space((x) => x.space_available_size))

  const [major, minor, patch] = process.versions.node.split('.')
  family('nodejs_version_info', 'gauge', 'Node.js version info.', [[`version="${process.version}",major="${major}",minor="${minor}",patch="${patch}"`, 1]])
  return out.join('\n') + '\n'
}

let buildInfoText: string | undefined

/** `sidecarless_build_info{version}` 1: which version of the mesh runs here (Prometheus's build-info idiom). */
export function buildInfo(version: string | undefined): string {
  return (buildInfoText ??= `# HELP sidecarless_build_info The sidecarless version in this process.\n# TYPE sidecarless_build_info gauge\nsidecarless_build_info{version="${escapeLabelValue(version ?? 'unknown')}"} 1\n`)
}
