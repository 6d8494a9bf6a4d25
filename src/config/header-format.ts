/**
 * Header values with Envoy's command operators (custom request/response headers): `%` starts
 * an operator, `%%` is a literal `%`. `x-client: %DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%`,
 * `x-start: %START_TIME(%s.%3f)%`, `x-user: %REQ(x-user?x-forwarded-user):16%`.
 *
 * This module parses and checks a value (config validation and the Envoy import use it);
 * `router/header-format.ts` evaluates the parsed form per request. The operators supported
 * are listed in {@link HEADER_OPERATORS}; Envoy accepts more (TLS peer details, metadata,
 * filter state), and those are refused here rather than sent literally.
 *
 * @module
 */

/** What an operator reads, which decides where it has a value. */
export type OperatorScope = 'request' | 'response'

/** The command operators the mesh evaluates in header values, with what each means here. */
export const HEADER_OPERATORS: Readonly<Record<string, { readonly scope: OperatorScope; readonly arg: 'none' | 'optional' | 'required'; readonly doc: string }>> = Object.freeze({
  DOWNSTREAM_REMOTE_ADDRESS: { scope: 'request', arg: 'none', doc: 'the caller\'s address and port, when the mesh knows it (empty for in-process calls)' },
  DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT: { scope: 'request', arg: 'none', doc: 'the caller\'s address without the port' },
  DOWNSTREAM_REMOTE_PORT: { scope: 'request', arg: 'none', doc: 'the caller\'s port' },
  DOWNSTREAM_DIRECT_REMOTE_ADDRESS: { scope: 'request', arg: 'none', doc: 'as DOWNSTREAM_REMOTE_ADDRESS (the mesh trusts no forwarding header)' },
  DOWNSTREAM_DIRECT_REMOTE_ADDRESS_WITHOUT_PORT: { scope: 'request', arg: 'none', doc: 'as DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT' },
  DOWNSTREAM_LOCAL_ADDRESS: { scope: 'request', arg: 'none', doc: 'the local address and port the caller reached, when known' },
  DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT: { scope: 'request', arg: 'none', doc: 'the local address without the port' },
  DOWNSTREAM_LOCAL_PORT: { scope: 'request', arg: 'none', doc: 'the local port' },
  START_TIME: { scope: 'request', arg: 'optional', doc: 'when the request started, UTC; the argument is a strftime format (%Y %m %d %H %M %S %s %3f %E3S %z …); default %Y-%m-%dT%H:%M:%E3SZ' },
  REQ: { scope: 'request', arg: 'required', doc: 'a request header (`name` or `name?alternative`), pseudo-headers :path :method :authority :scheme included' },
  PROTOCOL: { scope: 'request', arg: 'none', doc: 'the request\'s protocol, HTTP/1.1' },
  HOSTNAME: { scope: 'request', arg: 'none', doc: 'this machine\'s host name' },
  UPSTREAM_CLUSTER: { scope: 'request', arg: 'none', doc: 'the cluster the route sends the request to' },
  ROUTE_NAME: { scope: 'request', arg: 'none', doc: 'the name of the route taken' },
  VIRTUAL_CLUSTER_NAME: { scope: 'request', arg: 'none', doc: 'the virtual cluster the request matched' },
  REQUESTED_SERVER_NAME: { scope: 'request', arg: 'none', doc: 'the TLS SNI the caller sent (empty: in-process calls have none)' },
  ENVIRONMENT: { scope: 'request', arg: 'required', doc: 'an environment variable of this process' },
  RESP: { scope: 'response', arg: 'required', doc: 'a response header (`name` or `name?alternative`); empty in request headers' },
  RESPONSE_CODE: { scope: 'response', arg: 'none', doc: 'the response status; empty in request headers' },
  RESPONSE_FLAGS: { scope: 'response', arg: 'none', doc: 'the mesh\'s response flags (UH, UO, NR, …); empty in request headers' },
  UPSTREAM_REMOTE_ADDRESS: { scope: 'response', arg: 'none', doc: 'the endpoint that answered, host:port; empty in request headers (no endpoint is chosen yet, as in Envoy)' },
  UPSTREAM_REMOTE_ADDRESS_WITHOUT_PORT: { scope: 'response', arg: 'none', doc: 'the endpoint that answered, without the port' },
  UPSTREAM_REMOTE_PORT: { scope: 'response', arg: 'none', doc: 'the port of the endpoint that answered' },
  UPSTREAM_HOST: { scope: 'response', arg: 'none', doc: 'as UPSTREAM_REMOTE_ADDRESS' },
})

/** One command operator of a header value. */
export interface FormatOperator {
  readonly command: string
  readonly arg: string | undefined
  /** `:N` after the operator: the value is cut to N characters. */
  readonly maxLength: number | undefined
}

/** A parsed header value: literal text and operators, in order. */
export type FormatPart = string | FormatOperator

/** The strftime specifiers START_TIME takes (Envoy's formatter: absl's plus %s and %Nf). */
const TIME_SPECIFIER = /%(?:[1-9]?f|E[1-9*]?S|[YymdeHIMSpjaAbBhZzsTDFR%])/y

/**
 * Parses a header value; returns its parts, or why it is not a valid value. A value without
 * `%` is one literal part.
 */
export function parseHeaderFormat(value: string): FormatPart[] | string {
  if (!value.includes('%')) return [value]
  const parts: FormatPart[] = []
  let literal = ''
  let i = 0
  while (i < value.length) {
    const c = value[i] as string
    if (c !== '%') {
      literal += c
      i++
      continue
    }
    if (value[i + 1] === '%') {
      literal += '%'
      i += 2
      continue
    }
    const parsed = parseOperator(value, i)
    if (typeof parsed === 'string') return parsed
    if (literal !== '') parts.push(literal)
    literal = ''
    parts.push(parsed.operator)
    i = parsed.end
  }
  if (literal !== '') parts.push(literal)
  return parts
}

/** Why `value` cannot be a header value to add (bad `%` syntax, an operator the mesh lacks), or `undefined`. */
export function headerFormatProblem(value: string): string | undefined {
  const parts = parseHeaderFormat(value)
  return typeof parts === 'string' ? parts : undefined
}

/** True when the value has no operator (its text is fixed). */
export function isLiteralFormat(parts: readonly FormatPart[]): boolean {
  return parts.every((p) => typeof p === 'string')
}

function parseOperator(value: string, start: number): { operator: FormatOperator; end: number } | string {
  const name = /[A-Z][A-Z0-9_]*/y
  name.lastIndex = start + 1
  const m = name.exec(value)
  if (m === null) return `"%" at position ${start} starts no command operator; write %% for a literal %`
  const command = m[0]
  let i = start + 1 + command.length
  let arg: string | undefined
  if (value[i] === '(') {
    // The argument runs to the first ")" that closes the operator: START_TIME's holds "%".
    const close = /\)(?::(\d+))?%/g
    close.lastIndex = i + 1
    const c = close.exec(value)
    if (c === null) return `%${command}(… at position ${start} is not closed with ")%"`
    arg = value.slice(i + 1, c.index)
    i = c.index + 1
  }
  let maxLength: number | undefined
  if (value[i] === ':') {
    const len = /:(\d{1,6})/y
    len.lastIndex = i
    const l = len.exec(value)
    if (l === null) return `%${command}…: a length after ":" is a number`
    maxLength = Number(l[1])
    i += l[0].length
  }
  if (value[i] !== '%') return `%${command}… at position ${start} is not closed with "%"; write %% for a literal %`
  const spec = HEADER_OPERATORS[command]
  if (spec === undefined || !Object.hasOwn(HEADER_OPERATORS, command)) {
    return `command operator %${command}% is not supported in header values (supported: ${Object.keys(HEADER_OPERATORS).join(', ')})`
  }
  if (spec.arg === 'none' && arg !== undefined) return `%${command}% takes no argument`
  if (spec.arg === 'required' && (arg === undefined || arg === '')) return `%${command}(…)% needs an argument`
  if ((command === 'REQ' || command === 'RESP') && arg !== undefined && !/^[!#$&'*+.^_`|~0-9A-Za-z:-]+(\?[!#$&'*+.^_`|~0-9A-Za-z:-]+)?$/.test(arg)) {
    return `%${command}(${arg})%: the argument is a header name, or name?alternative`
  }
  if (command === 'START_TIME' && arg !== undefined) {
    const bad = timeFormatProblem(arg)
    if (bad !== undefined) return `%START_TIME(${arg})%: ${bad}`
  }
  return { operator: Object.freeze({ command, arg, maxLength }), end: i + 1 }
}

function timeFormatProblem(format: string): string | undefined {
  for (let i = 0; i < format.length; i++) {
    if (format[i] !== '%') continue
    TIME_SPECIFIER.lastIndex = i
    const m = TIME_SPECIFIER.exec(format)
    if (m === null) return `"${format.slice(i, i + 3)}" is not a time specifier the mesh formats`
    i += m[0].length - 1
  }
  return undefined
}
