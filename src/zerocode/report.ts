/**
 * How the zero-code entries and the CLI describe a config problem on stderr: one line per
 * issue, `path: CODE message`, so every problem is visible at once.
 *
 * @module
 */
import { ConfigError, MeshError } from '../errors.js'

/** The issue lines of a config problem, each `[file:line:column: ]path: CODE message` (the root path is `<root>`). */
export function problemLines(err: unknown): string[] {
  if (err instanceof ConfigError) return err.issues.map((i) => `${i.location === undefined ? '' : `${i.location.file}:${i.location.line}:${i.location.column}: `}${i.path === '' ? '<root>' : i.path}: ${i.code} ${i.message}`)
  if (err instanceof MeshError) return [`${err.code} ${err.message}`]
  return [err instanceof Error ? err.message : String(err)]
}

/** A headline and the issue lines, indented, ready for stderr. */
export function describeProblem(headline: string, err: unknown): string {
  const head = err instanceof ConfigError ? `${headline}: ${err.issues.length} problem${err.issues.length === 1 ? '' : 's'}` : headline
  return `${head}\n${problemLines(err).map((l) => `  ${l}`).join('\n')}\n`
}
