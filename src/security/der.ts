/**
 * Just enough ASN.1 DER to write X.509 certificates and to read the parts of one the mesh
 * needs (the subject alternative names). Node can parse and verify certificates but not
 * create them; this writer (about a hundred lines) replaces a 5 MB dependency tree
 * (`@peculiar/x509` and its `reflect-metadata` global polyfill). node:crypto signs.
 *
 * The reader is strict: definite lengths only, bounded nesting, no read past the end.
 */

/** A DER-encoded element. */
export type Der = Buffer

function length(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n])
  const bytes: number[] = []
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff)
  return Buffer.from([0x80 | bytes.length, ...bytes])
}

/** One element: tag, length, contents. */
export function tlv(tag: number, contents: Buffer): Der {
  return Buffer.concat([Buffer.from([tag]), length(contents.length), contents])
}

/** SEQUENCE of the given elements. */
export const sequence = (...items: Der[]): Der => tlv(0x30, Buffer.concat(items))
/** SET of the given elements (callers pass them in DER order). */
export const set = (...items: Der[]): Der => tlv(0x31, Buffer.concat(items))
/** OCTET STRING. */
export const octetString = (b: Buffer): Der => tlv(0x04, b)
/** UTF8String. */
export const utf8String = (s: string): Der => tlv(0x0c, Buffer.from(s, 'utf8'))
/** BOOLEAN (DER: true is 0xff). */
export const boolean = (v: boolean): Der => tlv(0x01, Buffer.from([v ? 0xff : 0]))
/** Context-specific constructed tag `[n]` (EXPLICIT). */
export const explicit = (n: number, inner: Der): Der => tlv(0xa0 | n, inner)
/** Context-specific primitive tag `[n]` (IMPLICIT, for a primitive type). */
export const implicit = (n: number, contents: Buffer): Der => tlv(0x80 | n, contents)

/** A non-negative INTEGER from big-endian bytes (a leading zero is added when the top bit is set). */
export function unsignedInteger(bytes: Buffer): Der {
  let i = 0
  while (i < bytes.length - 1 && bytes[i] === 0) i++
  let b = bytes.subarray(i)
  if (((b[0] ?? 0) & 0x80) !== 0) b = Buffer.concat([Buffer.from([0]), b])
  return tlv(0x02, b.length === 0 ? Buffer.from([0]) : b)
}

/** A small non-negative INTEGER. */
export const smallInteger = (n: number): Der => unsignedInteger(Buffer.from([n]))

/** A BIT STRING holding whole bytes. */
export const bitString = (b: Buffer, unusedBits = 0): Der => tlv(0x03, Buffer.concat([Buffer.from([unusedBits]), b]))

/** An OBJECT IDENTIFIER from its dotted form. */
export function oid(dotted: string): Der {
  const parts = dotted.split('.').map(Number)
  const out: number[] = [(parts[0] as number) * 40 + (parts[1] as number)]
  for (const p of parts.slice(2)) {
    const chunk: number[] = [p & 0x7f]
    for (let v = Math.floor(p / 128); v > 0; v = Math.floor(v / 128)) chunk.unshift((v & 0x7f) | 0x80)
    out.push(...chunk)
  }
  return tlv(0x06, Buffer.from(out))
}

/** UTCTime up to 2049, GeneralizedTime from 2050 (RFC 5280 §4.1.2.5), to the second. */
export function time(d: Date): Der {
  const iso = d.toISOString() // YYYY-MM-DDTHH:MM:SS.sssZ
  const digits = iso.slice(0, 19).replace(/[-:T]/g, '')
  const year = d.getUTCFullYear()
  if (year >= 1950 && year < 2050) return tlv(0x17, Buffer.from(`${digits.slice(2)}Z`, 'ascii'))
  return tlv(0x18, Buffer.from(`${digits}Z`, 'ascii'))
}

// ---------------------------------------------------------------- reader

/** One element read from DER: its tag and where its contents are. */
export interface Element {
  readonly tag: number
  /** The contents (without tag and length). */
  readonly contents: Buffer
  /** The whole element (tag, length, contents). */
  readonly raw: Buffer
}

/** Thrown by the reader on malformed input; callers turn it into their own coded error. */
export class DerError extends Error {}

/** Reads one element at `offset`. */
export function readElement(buf: Buffer, offset = 0): Element {
  if (offset + 2 > buf.length) throw new DerError('truncated element')
  const tag = buf[offset] as number
  if ((tag & 0x1f) === 0x1f) throw new DerError('multi-byte tags are not used in certificates')
  let len = buf[offset + 1] as number
  let start = offset + 2
  if (len & 0x80) {
    const n = len & 0x7f
    if (n === 0 || n > 4) throw new DerError('unsupported length encoding')
    if (start + n > buf.length) throw new DerError('truncated length')
    len = 0
    for (let i = 0; i < n; i++) len = len * 256 + (buf[start + i] as number)
    start += n
  }
  const end = start + len
  if (end > buf.length) throw new DerError('element runs past the end of its parent')
  return { tag, contents: buf.subarray(start, end), raw: buf.subarray(offset, end) }
}

/** The elements inside a constructed element, in order. */
export function children(el: Element): Element[] {
  const out: Element[] = []
  let offset = 0
  while (offset < el.contents.length) {
    const child = readElement(el.contents, offset)
    out.push(child)
    offset += child.raw.length
    if (out.length > 10_000) throw new DerError('too many elements')
  }
  return out
}

/** Decodes an OBJECT IDENTIFIER's contents to its dotted form. */
export function decodeOid(contents: Buffer): string {
  if (contents.length === 0 || contents.length > 64) throw new DerError('bad object identifier')
  const first = contents[0] as number
  const parts: number[] = first < 80 ? [Math.floor(first / 40), first % 40] : [2, first - 80]
  let v = 0
  for (let i = 1; i < contents.length; i++) {
    const b = contents[i] as number
    v = v * 128 + (b & 0x7f)
    if ((b & 0x80) === 0) {
      parts.push(v)
      v = 0
    }
  }
  return parts.join('.')
}
