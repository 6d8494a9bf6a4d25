/**
 * `safeRegex` in Envoy means RE2: linear time, no backreferences, no lookaround. JavaScript
 * regexes backtrack, so a hostile pattern such as `(a+)+$` could stall the event loop on one
 * header. We accept the RE2-compatible subset that cannot backtrack catastrophically:
 * no backreferences, no lookaround, and no quantified group that itself contains a
 * quantifier (star height ≤ 1). Everything Envoy's own route tables use fits in it.
 */
import { limits } from './defaults.js'

/** Why a pattern is refused, or `undefined` when it is accepted. */
export function unsafeRegexReason(pattern: string): string | undefined {
  if (pattern.length > limits.regexLength) return `longer than ${limits.regexLength} characters`
  try {
    new RegExp(pattern, 'u')
  } catch (err) {
    return (err as Error).message
  }
  // Walk the pattern once, tracking groups, to find backreferences, lookaround and nested quantifiers.
  const groups: { quantified: boolean; alternation: boolean }[] = [{ quantified: false, alternation: false }]
  let inClass = false
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]
    if (c === '\\') {
      const next = pattern[i + 1] ?? ''
      if (!inClass && (/[1-9]/.test(next) || next === 'k')) return 'backreferences are not supported (RE2 semantics)'
      i++
      continue
    }
    if (inClass) {
      if (c === ']') inClass = false
      continue
    }
    if (c === '[') {
      inClass = true
    } else if (c === '(') {
      if (pattern[i + 1] === '?' && (pattern[i + 2] === '=' || pattern[i + 2] === '!' || (pattern[i + 2] === '<' && (pattern[i + 3] === '=' || pattern[i + 3] === '!')))) {
        return 'lookaround is not supported (RE2 semantics)'
      }
      groups.push({ quantified: false, alternation: false })
    } else if (c === '|') {
      const top = groups[groups.length - 1]
      if (top !== undefined) top.alternation = true
    } else if (c === ')') {
      const inner = groups.pop()
      const after = pattern[i + 1]
      const quantifiedGroup = after === '*' || after === '+' || after === '?' || after === '{'
      if (inner !== undefined && inner.quantified && quantifiedGroup && after !== '?') {
        return 'a quantified group contains a quantifier (nested quantifiers can backtrack exponentially)'
      }
      if (inner !== undefined && inner.alternation && quantifiedGroup && after !== '?') {
        // (a|aa)+ or (a|a)*: overlapping alternatives under a repeat backtrack exponentially.
        return 'a repeated group contains alternatives (write a character class, or repeat each alternative)'
      }
      const top = groups[groups.length - 1]
      if (top !== undefined && (quantifiedGroup || inner?.quantified === true)) top.quantified = true
    } else if (c === '*' || c === '+' || c === '{') {
      const top = groups[groups.length - 1]
      if (top !== undefined) top.quantified = true
    }
  }
  return undefined
}

/** Compiles a full-match regex (Envoy's safe_regex matches the whole value). */
export function compileFullMatch(pattern: string, ignoreCase = false): RegExp {
  return new RegExp(`^(?:${pattern})$`, ignoreCase ? 'iu' : 'u')
}
