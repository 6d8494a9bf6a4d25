/**
 * Byte classes of HTTP/1.1 (RFC 9110 §5.6.2, §5.5; RFC 9112 §4, §7.1), as lookup tables the
 * response parser indexes with a byte. One table read per byte is what keeps a hand-written
 * JS parser within reach of llhttp.
 */

export const CR = 0x0d
export const LF = 0x0a
export const SP = 0x20
export const HTAB = 0x09
export const COLON = 0x3a
export const SEMI = 0x3b
export const DQUOTE = 0x22
export const EQUALS = 0x3d
export const BACKSLASH = 0x5c

/** tchar: the bytes of a token (a header name). */
export const TOKEN = new Uint8Array(256)
for (const c of "!#$%&'*+-.^_`|~") TOKEN[c.charCodeAt(0)] = 1
for (let c = 0x30; c <= 0x39; c++) TOKEN[c] = 1
for (let c = 0x41; c <= 0x5a; c++) TOKEN[c] = 1
for (let c = 0x61; c <= 0x7a; c++) TOKEN[c] = 1

/**
 * The bytes of a field value or a reason phrase: HTAB, SP, VCHAR and obs-text. No other
 * control (NUL, a bare CR or LF, DEL) is allowed inside a line.
 */
export const TEXT = new Uint8Array(256)
TEXT[HTAB] = 1
for (let c = 0x20; c <= 0x7e; c++) TEXT[c] = 1
for (let c = 0x80; c <= 0xff; c++) TEXT[c] = 1

/** The value of a hex digit, or -1. */
export const HEX = new Int8Array(256).fill(-1)
for (let c = 0; c <= 9; c++) HEX[0x30 + c] = c
for (let c = 0; c < 6; c++) {
  HEX[0x41 + c] = 10 + c
  HEX[0x61 + c] = 10 + c
}

/** Whether `buf[start, start + lower.length)` is `lower` (ASCII lower case bytes) in any case. Token bytes only. */
export function equalsLower(buf: Buffer, start: number, lower: Uint8Array): boolean {
  for (let k = 0; k < lower.length; k++) if (((buf[start + k] as number) | 0x20) !== lower[k]) return false
  return true
}

export function bytes(s: string): Uint8Array {
  return Uint8Array.from(s, (c) => c.charCodeAt(0))
}
