/**
 * `file:line:column` for config problems. A config read from a file remembers the file's
 * text (weakly, by the parsed value); only when a problem is reported is the text parsed
 * again with positions, and each issue's path looked up in it. A valid config pays nothing.
 */
import type { Document } from 'yaml'
import { yaml } from './lazy-modules.js'
import type { ConfigIssue, ConfigLocation } from '../errors.js'

/** The text a parsed config came from. */
export interface SourceText {
  readonly file: string
  readonly text: string
}

const sources = new WeakMap<object, SourceText>()

/** Remembers the text a parsed value (object or list) came from. */
export function rememberSource(value: unknown, source: SourceText): void {
  if (typeof value === 'object' && value !== null) sources.set(value, source)
}

/** The text a parsed value came from, if it was read from a file. */
export function sourceOf(value: unknown): SourceText | undefined {
  return typeof value === 'object' && value !== null ? sources.get(value) : undefined
}

/** Where an issue's path leads in the source: a document (1-based, among non-empty ones counted from the file's first) and a path in it. */
export type Origin = (path: string) => { doc: number; path: readonly (string | number)[] } | undefined

/**
 * Adds `location` to each issue whose path can be found in `source`. `origin` maps a path of
 * the (translated) config to a document and path of the file; without it, the config is the
 * file's only document and paths are the same.
 */
export function locateIssues(issues: readonly ConfigIssue[], source: SourceText, origin?: Origin): ConfigIssue[] {
  let docs: Document[]
  const { LineCounter, parseAllDocuments } = yaml()
  const counter = new LineCounter()
  try {
    docs = parseAllDocuments(source.text, { lineCounter: counter })
    if (!Array.isArray(docs)) return [...issues]
  } catch {
    return [...issues]
  }
  const nonEmpty = docs.filter((d) => d.contents !== null)
  return issues.map((issue) => {
    const where = origin === undefined ? { doc: 1, path: splitPath(issue.path) } : origin(issue.path)
    if (where === undefined) return issue
    // Several non-empty documents were read as a list of every document (document numbers
    // count them all); one was read alone, whatever empty ones surround it.
    const doc = nonEmpty.length > 1 ? docs[where.doc - 1] : nonEmpty[0]
    if (doc === undefined) return issue
    const offset = nodeOffset(doc, where.path)
    if (offset === undefined) return issue
    const { line, col } = counter.linePos(offset)
    const location: ConfigLocation = { file: source.file, line, column: col }
    return { ...issue, location }
  })
}

/** The start of the deepest node on `path` that exists (a missing field points at its parent). */
function nodeOffset(doc: Document, path: readonly (string | number)[]): number | undefined {
  for (let n = path.length; n >= 0; n--) {
    const node: unknown = n === 0 ? doc.contents : doc.getIn(path.slice(0, n), true)
    if (yaml().isNode(node) && node.range !== undefined && node.range !== null) {
      // For a map entry, point at its key: that is the line a reader looks for.
      const key = n > 0 ? keyOffset(doc, path.slice(0, n)) : undefined
      return key ?? node.range[0]
    }
  }
  return undefined
}

function keyOffset(doc: Document, path: readonly (string | number)[]): number | undefined {
  const parent: unknown = path.length === 1 ? doc.contents : doc.getIn(path.slice(0, -1), true)
  const last = path[path.length - 1]
  if (typeof last !== 'string' || !yaml().isNode(parent) || !('items' in parent)) return undefined
  const items = (parent as { items: unknown[] }).items
  for (const item of items) {
    const key = (item as { key?: unknown }).key
    if (yaml().isNode(key) && 'value' in key && (key as { value: unknown }).value === last && key.range !== undefined && key.range !== null) return key.range[0]
  }
  return undefined
}

/** `a.b[2].c` → `['a', 'b', 2, 'c']`. */
export function splitPath(path: string): (string | number)[] {
  const out: (string | number)[] = []
  const re = /([^.[\]]+)|\[(\d+)\]|\["((?:[^"\\]|\\.)*)"\]/g
  let m: RegExpExecArray | null
  while ((m = re.exec(path)) !== null) {
    if (m[1] !== undefined) out.push(m[1])
    else if (m[2] !== undefined) out.push(Number(m[2]))
    else if (m[3] !== undefined) out.push(JSON.parse(`"${m[3]}"`) as string)
  }
  return out
}

/** `file:line:column`. */
export function formatLocation(l: ConfigLocation): string {
  return `${l.file}:${l.line}:${l.column}`
}
