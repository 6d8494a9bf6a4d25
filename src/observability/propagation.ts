/**
 * Trace-context propagation: W3C Trace Context (`traceparent`, `tracestate`) and Zipkin B3
 * (single `b3` header and the `x-b3-*` headers), read from incoming requests and written to
 * outgoing ones.
 *
 * Rules every function here keeps:
 * - Nothing throws on any header value. Anything malformed reads as `undefined` (a new trace
 *   starts); nothing half-parsed is ever propagated.
 * - A header value longer than {@link MAX_HEADER_VALUE_LENGTH} characters is rejected before
 *   it is scanned, so a hostile header costs one length check. Non-ASCII is rejected.
 * - Parsers scan character codes against one lookup table, with no regular expressions and
 *   no splitting; a tracestate that is already normalised comes back as the same string.
 *
 * Specs: W3C Trace Context Level 2 (https://www.w3.org/TR/trace-context-2/, and its test
 * suite at github.com/w3c/trace-context/tree/main/test), Zipkin B3
 * (https://github.com/openzipkin/b3-propagation), with OpenTelemetry JS's propagators as the
 * reference for the lenient corners of B3. Choices the specs leave open are marked "Choice:".
 */

/** Where a context was read from, or which encoding to write. */
export type PropagationFormat = 'w3c' | 'b3' | 'b3multi'

/** A trace context read from an incoming request. */
export interface TraceParent {
  /** 32 lower-hex characters, never all zeros. A 64-bit B3 id is left-padded with zeros. */
  readonly traceId: string
  /** 16 lower-hex characters: the caller's span, which becomes the parent of ours. */
  readonly spanId: string
  /** The caller's sampling decision; `undefined` when none was carried (B3 "defer"). */
  readonly sampled: boolean | undefined
  /** The validated, normalised W3C `tracestate` (W3C only), or `undefined`. */
  readonly traceState: string | undefined
  /** Which encoding it was read from. */
  readonly format: PropagationFormat
  /**
   * The W3C Level 2 `random-trace-id` flag (trace-flags bit 1). Level 2 says an outgoing
   * `traceparent` with the same trace id MUST carry this flag exactly as received, so it is
   * kept and {@link inject} writes it back. B3 carries no such assurance, so B3 contexts read
   * `false` (leaving the flag unset is always allowed). Optional so that callers may build a
   * TraceParent without it; every context returned here sets it.
   */
  readonly random?: boolean
}

/** The context of an outgoing call, as {@link inject} writes it. */
export interface OutgoingTraceContext {
  /** 32 lower-hex characters, not all zeros. */
  traceId: string
  /** 16 lower-hex characters, not all zeros: the NEW span of this outgoing call. */
  spanId: string
  /** The span that caused this call (B3 only; ignored when not 16 lower hex, non-zero). */
  parentSpanId?: string
  sampled: boolean
  /** A W3C `tracestate` to forward; validated and normalised again before it is written. */
  traceState?: string
  /**
   * The W3C `random-trace-id` flag: pass the extracted `random` when continuing a trace, and
   * `true` for a trace started with `newTraceId()` (whose 128 bits are all random). Default
   * `false`, which is always allowed when starting a trace.
   */
  random?: boolean
}

/** Reads a header's value(s) by lower-case name. */
export type HeaderGetter = (name: string) => string | string[] | undefined

/** Replaces (never appends) a header, named in lower case. */
export type HeaderSetter = (name: string, value: string) => void

/** The four fields of a `traceparent`; `flags` holds all 8 bits as received. */
export interface ParsedTraceparent {
  readonly version: string
  readonly traceId: string
  readonly spanId: string
  readonly flags: number
}

/** Longer header values are treated as invalid without being scanned. */
export const MAX_HEADER_VALUE_LENGTH = 4096
/**
 * The longest `tracestate` produced. The spec asks vendors to propagate at least 512 characters
 * and to document a limit; 512 is that limit (longer lists are cut by whole entries).
 */
export const MAX_TRACESTATE_LENGTH = 512

const TRACEPARENT = 'traceparent'
const TRACESTATE = 'tracestate'
const B3 = 'b3'
const X_B3_TRACE_ID = 'x-b3-traceid'
const X_B3_SPAN_ID = 'x-b3-spanid'
const X_B3_PARENT_SPAN_ID = 'x-b3-parentspanid'
const X_B3_SAMPLED = 'x-b3-sampled'
const X_B3_FLAGS = 'x-b3-flags'

/**
 * Every header this module reads or writes, lower case, so a caller can delete stale ones
 * before {@link inject} (which replaces what it writes but never deletes). `x-b3-flags` is
 * never written, but a stale `x-b3-flags: 1` would turn a forwarded B3 context into a debug
 * trace, so it is listed too.
 */
export const PROPAGATION_HEADERS: readonly string[] = Object.freeze([
  TRACEPARENT, TRACESTATE, B3, X_B3_TRACE_ID, X_B3_SPAN_ID, X_B3_PARENT_SPAN_ID, X_B3_SAMPLED, X_B3_FLAGS,
])

// ---------------------------------------------------------------------------------------------
// Character classes

const C_HEX = 1 // 0-9 a-f (lower case only)
const C_KEY_FIRST = 2 // tracestate key, first character: a-z 0-9
const C_KEY = 4 // tracestate key: a-z 0-9 _ - * / @
const C_VALUE = 8 // tracestate value: 0x20-0x7e except , and =
const C_TOKEN = 16 // visible ASCII 0x21-0x7e except ,

const CLASS = new Uint8Array(128)
for (let c = 0x20; c <= 0x7e; c++) {
  if (c !== 0x2c && c !== 0x3d) CLASS[c]! |= C_VALUE
  if (c !== 0x20 && c !== 0x2c) CLASS[c]! |= C_TOKEN
}
for (let c = 0x30; c <= 0x39; c++) CLASS[c]! |= C_HEX | C_KEY_FIRST | C_KEY
for (let c = 0x61; c <= 0x7a; c++) CLASS[c]! |= C_KEY_FIRST | C_KEY | (c <= 0x66 ? C_HEX : 0)
for (const ch of '_-*/@') CLASS[ch.charCodeAt(0)]! |= C_KEY

const DASH = 0x2d
const EQUALS = 0x3d

function is(c: number, cls: number): boolean {
  return c < 128 && (CLASS[c]! & cls) !== 0
}

function isOws(c: number): boolean {
  return c === 0x20 || c === 0x09
}

const HEX_INVALID = 0
const HEX_ZERO = 1
const HEX_NONZERO = 2

/** Classifies `s[start, start + length)` as lower hex: invalid, all zeros, or a usable id. */
function hexRun(s: string, start: number, length: number): number {
  if (start + length > s.length) return HEX_INVALID
  let bits = 0
  const end = start + length
  for (let i = start; i < end; i++) {
    const c = s.charCodeAt(i)
    // Nothing above `f` is hex: one comparison also keeps the table read in bounds.
    if (c > 0x66 || (CLASS[c]! & C_HEX) === 0) return HEX_INVALID
    bits |= c ^ 0x30
  }
  return bits === 0 ? HEX_ZERO : HEX_NONZERO
}

function hexValue(c: number): number {
  return c <= 0x39 ? c - 0x30 : c - 0x57
}

function isId(value: unknown, length: number): value is string {
  return typeof value === 'string' && value.length === length && hexRun(value, 0, length) === HEX_NONZERO
}

/** Index of the first character that is not optional whitespace (SP, HTAB). */
function trimStart(s: string, from: number, to: number): number {
  while (from < to && isOws(s.charCodeAt(from))) from++
  return from
}

/** One past the last character that is not optional whitespace. */
function trimEnd(s: string, from: number, to: number): number {
  while (to > from && isOws(s.charCodeAt(to - 1))) to--
  return to
}

/** `s` without surrounding OWS, or `undefined` when it is not a string or too long. */
function bounded(s: unknown): string | undefined {
  if (typeof s !== 'string' || s.length > MAX_HEADER_VALUE_LENGTH) return undefined
  const a = trimStart(s, 0, s.length)
  const b = trimEnd(s, a, s.length)
  return a === 0 && b === s.length ? s : s.slice(a, b)
}

const ABSENT = undefined
const INVALID = null

/**
 * One header's value. `pick` says what several values mean: `'only'` (W3C traceparent:
 * several are invalid) or `'first'` (B3: "the first value wins"). Returns `undefined` when
 * the header is absent and `null` when it is present but unusable (not a string).
 */
function headerValue(raw: unknown, pick: 'only' | 'first'): string | null | undefined {
  if (raw === undefined) return ABSENT
  if (typeof raw === 'string') return raw
  if (!Array.isArray(raw)) return INVALID
  if (raw.length === 0) return ABSENT
  if (pick === 'only' && raw.length !== 1) return INVALID
  const v: unknown = raw[0]
  return typeof v === 'string' ? v : INVALID
}

// ---------------------------------------------------------------------------------------------
// W3C traceparent

const TRACEPARENT_LENGTH = 55

/**
 * Parses a `traceparent` value: `version-traceid-parentid-flags`, lower-case hex only, with
 * surrounding spaces and tabs ignored. Invalid: version `ff`, an all-zero trace or parent id,
 * version `00` with anything but exactly 55 characters. A higher version is read by the
 * spec's forward-compatibility rule: at least 55 characters, the first four fields as in
 * `00`, then either the end or a `-` and further fields, which are not interpreted (Choice:
 * they must be visible ASCII without commas, so two comma-joined headers never pass).
 */
export function parseTraceparent(value: string): ParsedTraceparent | undefined {
  const a = traceparentStart(value)
  if (a === -1) return undefined
  return {
    version: value.slice(a, a + 2),
    traceId: value.slice(a + 3, a + 35),
    spanId: value.slice(a + 36, a + 52),
    flags: traceparentFlags(value, a),
  }
}

/**
 * Where the `traceparent` in `value` starts (after leading OWS) when it is valid by the rules
 * of {@link parseTraceparent}, else -1: the check alone, so that extraction cuts only the
 * fields it keeps.
 */
function traceparentStart(value: string): number {
  if (typeof value !== 'string' || value.length > MAX_HEADER_VALUE_LENGTH) return -1
  const a = trimStart(value, 0, value.length)
  const b = trimEnd(value, a, value.length)
  const n = b - a
  if (n < TRACEPARENT_LENGTH) return -1
  if (hexRun(value, a, 2) === HEX_INVALID || value.charCodeAt(a + 2) !== DASH) return -1
  const v0 = value.charCodeAt(a)
  const v1 = value.charCodeAt(a + 1)
  if (v0 === 0x66 && v1 === 0x66) return -1 // version ff is forbidden
  if (v0 === 0x30 && v1 === 0x30) {
    if (n !== TRACEPARENT_LENGTH) return -1
  } else if (n > TRACEPARENT_LENGTH) {
    if (value.charCodeAt(a + TRACEPARENT_LENGTH) !== DASH) return -1
    for (let i = a + TRACEPARENT_LENGTH + 1; i < b; i++) {
      if (!is(value.charCodeAt(i), C_TOKEN)) return -1
    }
  }
  if (hexRun(value, a + 3, 32) !== HEX_NONZERO || value.charCodeAt(a + 35) !== DASH) return -1
  if (hexRun(value, a + 36, 16) !== HEX_NONZERO || value.charCodeAt(a + 52) !== DASH) return -1
  if (hexRun(value, a + 53, 2) === HEX_INVALID) return -1
  return a
}

/** The 8 flag bits of the valid `traceparent` starting at `a`. */
function traceparentFlags(value: string, a: number): number {
  return (hexValue(value.charCodeAt(a + 53)) << 4) | hexValue(value.charCodeAt(a + 54))
}

const FLAGS_HEX = ['00', '01', '02', '03'] as const

/**
 * Formats a version-00 `traceparent`. Only the two flags this version defines are written
 * (bit 0 sampled, bit 1 random-trace-id); the spec says unknown flags go out as zero. The ids
 * are not checked here: {@link inject} checks them.
 */
export function formatTraceparent(traceId: string, spanId: string, sampled: boolean, random = false): string {
  return `00-${traceId}-${spanId}-${FLAGS_HEX[(sampled ? 1 : 0) | (random ? 2 : 0)]}`
}

// ---------------------------------------------------------------------------------------------
// W3C tracestate

const MAX_MEMBERS = 32
const MAX_KEY_LENGTH = 256
const MAX_VALUE_LENGTH = 256
/** Entries longer than this are the first to go when a tracestate must be cut (spec). */
const LONG_MEMBER = 128

// Scratch space for one parse (parsing is synchronous, so one set serves every call).
const memberStart = new Int32Array(MAX_MEMBERS)
const memberKeyEnd = new Int32Array(MAX_MEMBERS)
const memberEnd = new Int32Array(MAX_MEMBERS)
const memberHash = new Int32Array(MAX_MEMBERS)
const memberKept = new Uint8Array(MAX_MEMBERS)

/**
 * Validates and normalises a `tracestate`. Several header values are combined with `,`
 * first (RFC 9110 field order), as the spec requires. Returns the list-members joined by `,`
 * without optional whitespace or empty members, or `undefined` when the list is invalid or
 * empty.
 *
 * - Invalid as a whole (the spec allows discarding the entire header; its strict test suite
 *   expects it): any list-member that is not `key=value` by the grammar, more than 32
 *   list-members, a key over 256 or a value over 256 characters, or a combined value over
 *   {@link MAX_HEADER_VALUE_LENGTH} characters.
 * - Keys: `(lcalpha / DIGIT) 0*255(lcalpha / DIGIT / "_" / "-" / "*" / "/" / "@")`, the grammar
 *   of the current spec (a multi-tenant key is any key containing `@`, e.g. `tenant@vendor`).
 * - Values: printable ASCII 0x20–0x7e except `,` and `=`; leading spaces are kept as part of
 *   the value, trailing spaces and tabs are whitespace and dropped.
 * - Duplicate keys: Choice: the left-most entry is kept and later duplicates dropped. Since
 *   2022 the spec makes uniqueness the sender's duty and its test suite expects a receiver to
 *   forward the list (as-is or with duplicates dropped); the left-most entry is the most
 *   recent one, because vendors move what they update to the left.
 * - Longer than {@link MAX_TRACESTATE_LENGTH}: whole entries are removed until it fits, as
 *   the spec suggests: first entries longer than 128 characters (the right-most first, only
 *   as many as needed), then entries from the end.
 */
export function parseTracestate(value: string | string[]): string | undefined {
  let s: string
  if (typeof value === 'string') {
    s = value
  } else if (Array.isArray(value)) {
    const joined = joinBounded(value)
    if (joined === undefined) return undefined
    s = joined
  } else {
    return undefined
  }
  if (s.length > MAX_HEADER_VALUE_LENGTH) return undefined
  return normaliseTracestate(s)
}

function joinBounded(values: readonly unknown[]): string | undefined {
  if (values.length === 0) return undefined
  let total = values.length - 1
  for (let i = 0; i < values.length; i++) {
    const v = values[i]
    if (typeof v !== 'string') return undefined
    total += v.length
    if (total > MAX_HEADER_VALUE_LENGTH) return undefined
  }
  return values.length === 1 ? (values[0] as string) : values.join(',')
}

function sameKey(s: string, i: number, j: number, length: number): boolean {
  for (let k = 0; k < length; k++) {
    if (s.charCodeAt(i + k) !== s.charCodeAt(j + k)) return false
  }
  return true
}

function normaliseTracestate(s: string): string | undefined {
  const n = s.length
  let count = 0 // members kept
  let seen = 0 // non-empty members read, duplicates included
  let clean = true // `s` is already exactly the kept members joined by ','
  let pos = 0
  for (;;) {
    let end = s.indexOf(',', pos)
    if (end === -1) end = n
    const a = trimStart(s, pos, end)
    const b = trimEnd(s, a, end)
    if (a === b) {
      clean = false // an empty member
    } else {
      if (a !== pos || b !== end) clean = false
      if (++seen > MAX_MEMBERS) return undefined
      let c = s.charCodeAt(a)
      if (!is(c, C_KEY_FIRST)) return undefined
      let hash = c
      let k = a + 1
      for (; k < b; k++) {
        c = s.charCodeAt(k)
        if (c === EQUALS) break
        if (!is(c, C_KEY)) return undefined
        hash = (Math.imul(hash, 31) + c) | 0
      }
      const keyLength = k - a
      const valueLength = b - k - 1
      if (k === b || keyLength > MAX_KEY_LENGTH || valueLength < 1 || valueLength > MAX_VALUE_LENGTH) return undefined
      for (let i = k + 1; i < b; i++) {
        if (!is(s.charCodeAt(i), C_VALUE)) return undefined
      }
      let duplicate = false
      for (let m = 0; m < count; m++) {
        if (memberHash[m] === hash && memberKeyEnd[m]! - memberStart[m]! === keyLength && sameKey(s, memberStart[m]!, a, keyLength)) {
          duplicate = true
          break
        }
      }
      if (duplicate) {
        clean = false
      } else {
        memberStart[count] = a
        memberKeyEnd[count] = k
        memberEnd[count] = b
        memberHash[count] = hash
        count++
      }
    }
    if (end === n) break
    pos = end + 1
  }
  if (count === 0) return undefined
  if (clean && n <= MAX_TRACESTATE_LENGTH) return s

  let total = -1
  for (let m = 0; m < count; m++) {
    memberKept[m] = 1
    total += memberEnd[m]! - memberStart[m]! + 1
  }
  let kept = count
  while (total > MAX_TRACESTATE_LENGTH && kept > 0) {
    let victim = -1
    let last = -1
    for (let m = count - 1; m >= 0; m--) {
      if (memberKept[m] === 0) continue
      if (last === -1) last = m
      if (memberEnd[m]! - memberStart[m]! > LONG_MEMBER) {
        victim = m
        break
      }
    }
    if (victim === -1) victim = last
    memberKept[victim] = 0
    kept--
    total -= memberEnd[victim]! - memberStart[victim]! + 1
  }
  if (kept === 0) return undefined
  let out = ''
  for (let m = 0; m < count; m++) {
    if (memberKept[m] === 0) continue
    const member = s.slice(memberStart[m], memberEnd[m])
    out = out === '' ? member : `${out},${member}`
  }
  return out
}

// ---------------------------------------------------------------------------------------------
// B3

const B3_TRACE_ID_PAD = '0000000000000000'

/** A B3 trace id (16 or 32 lower hex, not all zeros) as 32 characters, or `undefined`. */
function b3TraceId(s: string, start: number, length: number): string | undefined {
  if ((length !== 16 && length !== 32) || hexRun(s, start, length) !== HEX_NONZERO) return undefined
  const id = s.slice(start, start + length)
  return length === 32 ? id : B3_TRACE_ID_PAD + id
}

function b3Context(traceId: string, spanId: string, sampled: boolean | undefined, format: PropagationFormat): TraceParent {
  return { traceId, spanId, sampled, traceState: undefined, format, random: false }
}

/**
 * Parses a single `b3` header: `{TraceId}-{SpanId}[-{SamplingState}[-{ParentSpanId}]]`, ids
 * in lower hex (Choice: upper case is rejected, as Zipkin's Brave does; the spec says
 * lower-hex), a 64-bit trace id left-padded to 32 characters, sampling state `1` (accept),
 * `0` (deny) or `d` (debug, which implies accept); no sampling state means "defer"
 * (`sampled: undefined`). Like Brave, `{TraceId}-{SpanId}-{ParentSpanId}` (a deferred
 * decision with a parent) is accepted too. A malformed or all-zero parent span id makes the
 * whole value invalid, as every other malformed field does.
 *
 * A bare sampling state (`b3: 0`, `1` or `d`) carries no trace: it yields `undefined` and a
 * new trace starts. A caller that wants to honour such a decision (a health checker's `b3: 0`)
 * can read the header itself; this function does not model decisions without ids.
 */
export function parseB3Single(value: string): TraceParent | undefined {
  if (typeof value !== 'string' || value.length > MAX_HEADER_VALUE_LENGTH) return undefined
  const a = trimStart(value, 0, value.length)
  const b = trimEnd(value, a, value.length)
  const idEnd = value.indexOf('-', a)
  if (idEnd === -1 || idEnd > b) return undefined
  const traceId = b3TraceId(value, a, idEnd - a)
  if (traceId === undefined) return undefined
  let p = idEnd + 1
  if (p + 16 > b || hexRun(value, p, 16) !== HEX_NONZERO) return undefined
  const spanId = value.slice(p, p + 16)
  p += 16
  let sampled: boolean | undefined
  if (p === b) return b3Context(traceId, spanId, sampled, 'b3')
  if (value.charCodeAt(p) !== DASH) return undefined
  p++
  if (b - p !== 16) {
    // a sampling state, then the end or `-` and a parent span id
    const state = value.charCodeAt(p)
    if (state === 0x31 || state === 0x64) sampled = true
    else if (state === 0x30) sampled = false
    else return undefined
    p++
    if (p === b) return b3Context(traceId, spanId, sampled, 'b3')
    if (value.charCodeAt(p) !== DASH) return undefined
    p++
  }
  // the parent span id, the last field
  if (b - p !== 16 || hexRun(value, p, 16) !== HEX_NONZERO) return undefined
  return b3Context(traceId, spanId, sampled, 'b3')
}

/**
 * Reads the B3 multi-header encoding: `x-b3-traceid` (16 or 32 lower hex, padded to 32),
 * `x-b3-spanid` (16 lower hex), both required and not all zeros. `x-b3-sampled`: `1` or `0`,
 * also `true`/`false` (and `True`/`False`) as OpenTelemetry JS accepts; absent means defer
 * (`sampled: undefined`); any other value makes the context invalid. `x-b3-flags: 1` is debug,
 * which means sampled whatever `x-b3-sampled` says; other flag values are ignored, as the spec
 * allows. `x-b3-parentspanid`, when present, must be valid (Choice: the spec calls a nonsense
 * value malformed data; OpenTelemetry ignores it). When a header has several values the first
 * wins, as the spec says.
 */
export function parseB3Multi(get: HeaderGetter): TraceParent | undefined {
  const rawTraceId = bounded(headerValue(get(X_B3_TRACE_ID), 'first'))
  if (rawTraceId === undefined) return undefined
  const traceId = b3TraceId(rawTraceId, 0, rawTraceId.length)
  if (traceId === undefined) return undefined
  const spanId = bounded(headerValue(get(X_B3_SPAN_ID), 'first'))
  if (!isId(spanId, 16)) return undefined

  let sampled: boolean | undefined
  const flags = headerValue(get(X_B3_FLAGS), 'first')
  if (typeof flags === 'string' && bounded(flags) === '1') {
    sampled = true
  } else {
    const raw = headerValue(get(X_B3_SAMPLED), 'first')
    if (raw === INVALID) return undefined
    if (raw !== ABSENT) {
      const v = bounded(raw)
      if (v === '1' || v === 'true' || v === 'True') sampled = true
      else if (v === '0' || v === 'false' || v === 'False') sampled = false
      else return undefined
    }
  }

  const parent = headerValue(get(X_B3_PARENT_SPAN_ID), 'first')
  if (parent !== ABSENT && !isId(bounded(parent), 16)) return undefined

  return b3Context(traceId, spanId, sampled, 'b3multi')
}

// ---------------------------------------------------------------------------------------------
// extract / inject

function extractW3C(get: HeaderGetter): TraceParent | undefined {
  const raw = headerValue(get(TRACEPARENT), 'only')
  if (typeof raw !== 'string') return undefined
  const a = traceparentStart(raw)
  if (a === -1) return undefined
  // The spec: tracestate is read only when traceparent is valid; an invalid tracestate
  // never invalidates the traceparent.
  const rawState = get(TRACESTATE)
  const traceState = rawState === undefined ? undefined : parseTracestate(rawState)
  const flags = traceparentFlags(raw, a)
  // One object, and only the two ids cut out of the header (every request of a meshed caller).
  return {
    traceId: raw.slice(a + 3, a + 35),
    spanId: raw.slice(a + 36, a + 52),
    sampled: (flags & 1) === 1,
    traceState,
    format: 'w3c',
    random: (flags & 2) === 2,
  }
}

/**
 * Reads the first valid context among `formats`, in the order given (list `'b3'` before
 * `'b3multi'` to follow the B3 rule that the single header takes precedence). A format whose
 * headers are absent or invalid is skipped. `get` returns a header's value(s) by lower-case
 * name. Returns `undefined` when none is valid: start a new trace.
 *
 * B3 shares one span id between the client and server side of a call; here, as in
 * OpenTelemetry, the extracted `spanId` is always the parent of a new server span.
 */
export function extract(get: HeaderGetter, formats: readonly PropagationFormat[]): TraceParent | undefined {
  for (let i = 0; i < formats.length; i++) {
    let ctx: TraceParent | undefined
    switch (formats[i]) {
      case 'w3c':
        ctx = extractW3C(get)
        break
      case 'b3': {
        const raw = headerValue(get(B3), 'first')
        ctx = typeof raw === 'string' ? parseB3Single(raw) : undefined
        break
      }
      case 'b3multi':
        ctx = parseB3Multi(get)
        break
      default:
        ctx = undefined
    }
    if (ctx !== undefined) return ctx
  }
  return undefined
}

/**
 * Writes the context of an outgoing call in each of `formats`, header names in lower case.
 * `set` must replace the header (never append: two `traceparent` headers make the receiver
 * start a new trace); headers this call does not write are left alone, so delete
 * {@link PROPAGATION_HEADERS} first when forwarding a request's headers.
 *
 * - `'w3c'`: `traceparent` (version 00; flags sampled and random-trace-id), and `tracestate`
 *   when `traceState` is valid and not empty after normalisation.
 * - `'b3'`: `b3: {traceId}-{spanId}-{1|0}[-{parentSpanId}]`.
 * - `'b3multi'`: `x-b3-traceid`, `x-b3-spanid`, `x-b3-sampled` (`1`/`0`) and
 *   `x-b3-parentspanid` when given.
 *
 * Writes nothing when `traceId` or `spanId` is not a valid id: garbage is never propagated.
 */
export function inject(ctx: OutgoingTraceContext, formats: readonly PropagationFormat[], set: HeaderSetter): void {
  if (ctx === null || typeof ctx !== 'object') return
  const { traceId, spanId } = ctx
  if (!isId(traceId, 32) || !isId(spanId, 16)) return
  const sampled = ctx.sampled === true
  const parentSpanId = isId(ctx.parentSpanId, 16) ? ctx.parentSpanId : undefined
  for (let i = 0; i < formats.length; i++) {
    switch (formats[i]) {
      case 'w3c': {
        set(TRACEPARENT, formatTraceparent(traceId, spanId, sampled, ctx.random === true))
        const raw = ctx.traceState
        if (typeof raw === 'string' && raw !== '') {
          const traceState = parseTracestate(raw)
          if (traceState !== undefined) set(TRACESTATE, traceState)
        }
        break
      }
      case 'b3':
        set(B3, parentSpanId === undefined
          ? `${traceId}-${spanId}-${sampled ? '1' : '0'}`
          : `${traceId}-${spanId}-${sampled ? '1' : '0'}-${parentSpanId}`)
        break
      case 'b3multi':
        set(X_B3_TRACE_ID, traceId)
        set(X_B3_SPAN_ID, spanId)
        set(X_B3_SAMPLED, sampled ? '1' : '0')
        if (parentSpanId !== undefined) set(X_B3_PARENT_SPAN_ID, parentSpanId)
        break
      default:
        break
    }
  }
}

// ---------------------------------------------------------------------------------------------
// x-request-id

const MAX_REQUEST_ID_LENGTH = 128

/**
 * True when an incoming `x-request-id` may be kept and forwarded: 1 to 128 characters of
 * visible ASCII, with no spaces and no commas (a comma would mean two joined headers). Envoy
 * keeps any caller's id by default; bounding it keeps logs and headers sane. Otherwise
 * generate a new one with `newRequestId()`.
 */
export function isValidRequestId(value: string): boolean {
  if (typeof value !== 'string' || value.length === 0 || value.length > MAX_REQUEST_ID_LENGTH) return false
  for (let i = 0; i < value.length; i++) {
    if (!is(value.charCodeAt(i), C_TOKEN)) return false
  }
  return true
}
