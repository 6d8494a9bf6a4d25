/** RFC 9110 token characters: valid header names. */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/
/** Field value characters: visible ASCII, space, tab and obs-text; never CR, LF or NUL. */
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/

/** True when `name` is a valid HTTP header name. */
export function isHeaderName(name: string): boolean {
  return name.length > 0 && name.length <= 256 && TOKEN.test(name)
}

/** True when `value` can be sent as an HTTP header value. */
export function isHeaderValue(value: string): boolean {
  return FIELD_VALUE.test(value)
}
