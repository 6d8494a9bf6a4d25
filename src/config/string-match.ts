/**
 * Istio's string match of authorization policies: exact, prefix `abc*`, suffix `*abc`, or
 * `*` alone (the value is present). Compiled once per policy into a closure.
 */

/** A compiled Istio string pattern list: true when any pattern matches `value`. */
export type StringListMatcher = (value: string | undefined) => boolean

/** Compiles one Istio string pattern. `ignoreCase` lower-cases both sides (hosts). */
export function compilePattern(pattern: string, ignoreCase = false): (value: string) => boolean {
  const p = ignoreCase ? pattern.toLowerCase() : pattern
  if (p === '*') return () => true
  if (p.length > 1 && p.endsWith('*')) {
    const prefix = p.slice(0, -1)
    return ignoreCase ? (v) => v.toLowerCase().startsWith(prefix) : (v) => v.startsWith(prefix)
  }
  if (p.length > 1 && p.startsWith('*')) {
    const suffix = p.slice(1)
    return ignoreCase ? (v) => v.toLowerCase().endsWith(suffix) : (v) => v.endsWith(suffix)
  }
  return ignoreCase ? (v) => v.toLowerCase() === p : (v) => v === p
}

/** Compiles a pattern list: matches when any pattern matches; an absent value matches none. */
export function compilePatterns(patterns: readonly string[], ignoreCase = false): StringListMatcher {
  const exact = new Set<string>()
  const others: ((value: string) => boolean)[] = []
  for (const p of patterns) {
    if (p !== '*' && !p.startsWith('*') && !p.endsWith('*')) exact.add(ignoreCase ? p.toLowerCase() : p)
    else others.push(compilePattern(p, ignoreCase))
  }
  return (value) => {
    if (value === undefined) return false
    if (exact.size > 0 && exact.has(ignoreCase ? value.toLowerCase() : value)) return true
    for (let i = 0; i < others.length; i++) if (others[i]!(value)) return true
    return false
  }
}

/** Why `pattern` is not an Istio string pattern (a `*` inside the string), or `undefined`. */
export function patternProblem(pattern: string): string | undefined {
  if (pattern === '') return 'an empty pattern matches nothing; use "*" for "present"'
  const inner = pattern.length > 2 ? pattern.slice(1, -1) : ''
  if (inner.includes('*') || (pattern.startsWith('*') && pattern.endsWith('*') && pattern !== '*')) {
    return `${JSON.stringify(pattern)}: "*" may only be the whole pattern, its first or its last character`
  }
  return undefined
}
