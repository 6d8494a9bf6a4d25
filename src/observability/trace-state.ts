/**
 * A W3C `tracestate` as the OpenTelemetry API's `TraceState` (`createTraceState`), for the
 * mesh's own spans (`recording-span.ts`), so they need not load the API (`otel-api.ts`).
 * It follows the rules of the API's implementation (1.x `TraceStateImpl`), which the spans
 * of the SDK carry, so that a span's `traceState` serialises the same whichever tracer made it:
 *
 * - a header longer than 512 characters is dropped whole;
 * - list members are split on `,` and trimmed; a member without `=`, or whose key or value
 *   is not valid, is dropped;
 * - of a key given twice, the first value is kept, at the place of the last one;
 * - more than 32 members: the first 32 are kept (and then serialise in reverse order, as
 *   the API's do);
 * - `set` puts its key first, `unset` removes it; both return a new state.
 *
 * The members are kept in reverse order (the last one serialised is first in the map), as
 * the API keeps them, which is what makes the two rules above come out the same.
 */
import type { TraceState } from '@opentelemetry/api'

const MAX_LENGTH = 512
const MAX_MEMBERS = 32
const KEY_CHAR = '[_0-9a-z-*/]'
const VALID_KEY = new RegExp(`^(?:[a-z]${KEY_CHAR}{0,255}|[a-z0-9]${KEY_CHAR}{0,240}@[a-z]${KEY_CHAR}{0,13})$`)
const VALID_VALUE = /^[ -~]{0,255}[!-~]$/
const COMMA_OR_EQUALS = /,|=/

/** A parsed `tracestate` (the OpenTelemetry API's `TraceState` interface). */
export class W3cTraceState implements TraceState {
  /** Members, last serialised first. */
  #members: Map<string, string>

  constructor(raw?: string) {
    this.#members = raw === undefined || raw === '' ? new Map<string, string>() : parse(raw)
  }

  set(key: string, value: string): TraceState {
    const next = this.#clone()
    next.#members.delete(key)
    next.#members.set(key, value)
    return next
  }

  unset(key: string): TraceState {
    const next = this.#clone()
    next.#members.delete(key)
    return next
  }

  get(key: string): string | undefined {
    return this.#members.get(key)
  }

  serialize(): string {
    const out: string[] = []
    for (const [key, value] of this.#members) out.push(`${key}=${value}`)
    return out.reverse().join(',')
  }

  #clone(): W3cTraceState {
    const next = new W3cTraceState()
    next.#members = new Map(this.#members)
    return next
  }
}

function parse(raw: string): Map<string, string> {
  let members = new Map<string, string>()
  if (raw.length > MAX_LENGTH) return members
  const parts = raw.split(',')
  for (let i = parts.length - 1; i >= 0; i--) {
    const member = (parts[i] as string).trim()
    const eq = member.indexOf('=')
    if (eq === -1) continue
    const key = member.slice(0, eq)
    const value = member.slice(eq + 1)
    if (VALID_KEY.test(key) && VALID_VALUE.test(value) && !COMMA_OR_EQUALS.test(value)) members.set(key, value)
  }
  if (members.size > MAX_MEMBERS) members = new Map([...members].reverse().slice(0, MAX_MEMBERS))
  return members
}
