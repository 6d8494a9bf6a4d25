// Printing helpers of the Bookinfo demo: shares, per-version tables, traces.

/** `v1 79.0%, v2 21.0%` from counts by version. */
export function shares(counts) {
  const total = Object.values(counts).reduce((a, b) => a + b, 0)
  return Object.entries(counts).sort().map(([k, c]) => `${k} ${((c / total) * 100).toFixed(1)}%`).join(', ')
}

/** Counts of the answers productpage got from reviews: by version, and by status. */
export function tally(results) {
  const byVersion = {}
  const byStatus = {}
  for (const { reviews } of results) {
    const key = reviews.subset ?? '?'
    byVersion[key] = (byVersion[key] ?? 0) + 1
    const status = reviews.flags === null ? String(reviews.status) : `${reviews.status} ${reviews.flags}`
    byStatus[status] = (byStatus[status] ?? 0) + 1
  }
  return { byVersion, byStatus }
}

const ZERO = { requests: 0, responses: { '2xx': 0, '5xx': 0 }, errors: { overflow: 0, no_healthy_upstream: 0, connect_failure: 0, reset: 0, timeout: 0 } }

/** 5xx answers the mesh made for the upstream (they count in the 5xx class too, as Envoy counts them). */
const meshMade5xx = (s) => s.errors.overflow + s.errors.no_healthy_upstream + s.errors.connect_failure + s.errors.reset + s.errors.timeout

/**
 * A table of productpage's calls to reviews, per version, between two metrics snapshots:
 * requests, 2xx, 5xx from the upstream, 503s the breaker answered itself (UO), breaker state.
 */
export function versionTable(before, after) {
  const b = before.outbound.clusters.reviews?.subsets ?? {}
  const a = after.outbound.clusters.reviews?.subsets ?? {}
  const breakers = after.resilience.reviews?.breakers ?? {}
  const rows = [['version', 'requests', '2xx', '5xx', '503 UO', 'breaker']]
  for (const v of ['v1', 'v2', 'v3']) {
    const x = a[v] ?? ZERO
    const y = b[v] ?? ZERO
    const d = (f) => f(x) - f(y)
    rows.push([v, d((s) => s.requests), d((s) => s.responses['2xx']), d((s) => s.responses['5xx'] - meshMade5xx(s)), d((s) => s.errors.overflow), breakers[v]?.state ?? 'closed'])
  }
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => String(r[i]).length)))
  return rows.map((r) => '    ' + r.map((c, i) => (i === 0 ? String(c).padEnd(widths[i]) : String(c).padStart(widths[i]))).join('  ')).join('\n')
}

/** The spans of one trace, gathered from every service's mesh, drawn as a tree. */
export function drawTrace(services, traceId) {
  const spans = services.flatMap((s) => s.mesh.tracing.recent().filter((span) => span.traceId === traceId).map((span) => ({ ...span, service: s.name })))
  // Depth-first from the root, children by start time (span start times have millisecond
  // resolution, so a parent and its first child often start "at the same time").
  const ids = new Set(spans.map((s) => s.spanId))
  const children = (parent) => spans.filter((s) => (parent === undefined ? !ids.has(s.parentSpanId) : s.parentSpanId === parent)).sort((x, y) => x.startTime - y.startTime)
  const ordered = []
  const walk = (s, depth) => {
    ordered.push({ s, depth })
    for (const c of children(s.spanId)) walk(c, depth + 1)
  }
  for (const root of children(undefined)) walk(root, 0)
  const lines = [`  trace ${traceId}: ${spans.length} spans across ${new Set(spans.map((s) => s.service)).size} services`]
  for (const { s, depth } of ordered) {
    const status = s.attributes['http.response.status_code'] ?? '-'
    const what = s.kind === 'client'
      ? `${s.name} ${s.attributes['url.full']} -> ${s.attributes['sidecarless.subset'] ?? s.attributes['sidecarless.cluster']}`
      : `${s.name} ${s.attributes['url.path']}`
    const label = `${'  '.repeat(depth)}${s.kind} ${s.service}: ${what}`
    lines.push(`    ${label.padEnd(66)} span ${s.spanId}  ${String(status).padStart(3)}  ${s.durationMs.toFixed(1).padStart(6)} ms`)
  }
  return lines.join('\n')
}
