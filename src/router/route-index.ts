/**
 * Route candidates by first path segment. Routes are tried in order and the first match
 * wins, so an index may only skip routes that cannot match. A route whose literal path
 * pins the first segment (`prefix: /api/…`, `path: /health`, `pathSeparatedPrefix: /api`)
 * can only match requests whose first segment is that one; every other route (`prefix: /`,
 * `prefix: /ap`, regexes, case-insensitive matches) may match anything and stays in every
 * list. Each list keeps the original order, so the first match is the same as a full scan.
 */
import type { CompiledMatch } from '../http/matcher.js'

/** What the index reads of a route: its compiled match. */
interface Indexed {
  readonly match: Pick<CompiledMatch, 'segment'>
}

/** Below this many routes a plain scan is as fast as the lookup. */
const INDEX_THRESHOLD = 16

/** An index of a virtual host's routes, or `null` when a scan is cheaper. */
export interface RouteIndex<R extends Indexed = Indexed> {
  /** Candidates for requests whose first segment is the key. */
  readonly bySegment: ReadonlyMap<string, readonly R[]>
  /** Candidates for any other request: the routes that do not pin a segment. */
  readonly others: readonly R[]
}

/** Builds the index of `routes`, or returns `null` when they are few or pin no segment. */
export function buildRouteIndex<R extends Indexed>(routes: readonly R[]): RouteIndex<R> | null {
  if (routes.length < INDEX_THRESHOLD) return null
  const segments = new Set<string>()
  for (const r of routes) {
    const s = r.match.segment
    if (s !== undefined) segments.add(s)
  }
  if (segments.size === 0) return null
  const bySegment = new Map<string, readonly R[]>()
  for (const seg of segments) {
    bySegment.set(seg, Object.freeze(routes.filter((r) => r.match.segment === undefined || r.match.segment === seg)))
  }
  return Object.freeze({ bySegment, others: Object.freeze(routes.filter((r) => r.match.segment === undefined)) })
}

/** The first segment of a request path: `/api/v1?x` → `api`, `/` → ``. */
export function firstSegment(fullPath: string): string {
  let end = fullPath.length
  for (let i = 1; i < fullPath.length; i++) {
    const c = fullPath.charCodeAt(i)
    if (c === 47 /* / */ || c === 63 /* ? */ || c === 35 /* # */) {
      end = i
      break
    }
  }
  return fullPath.slice(1, end)
}
