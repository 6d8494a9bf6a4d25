/** The Prometheus text exposition format's escaping and number spelling (format 0.0.4). */

/** A sample value as the format wants it (Go's ParseFloat syntax, `+Inf`, `-Inf`, `NaN`). */
export function formatValue(n: number): string {
  if (Number.isFinite(n)) return String(n)
  return n !== n ? 'NaN' : n > 0 ? '+Inf' : '-Inf'
}

/** Escapes a label value: backslash, double quote and line feed. */
export function escapeLabelValue(value: string): string {
  return value.replace(/[\\"\n]/g, (ch) => (ch === '\\' ? '\\\\' : ch === '"' ? '\\"' : '\\n'))
}

/** Escapes a HELP docstring: backslash and line feed. */
export function escapeHelp(text: string): string {
  return text.replace(/[\\\n]/g, (ch) => (ch === '\\' ? '\\\\' : '\\n'))
}
