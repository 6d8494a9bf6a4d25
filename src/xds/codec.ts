/**
 * Encoding and decoding of Envoy / xDS messages between protobuf bytes and plain objects.
 *
 * The object form is proto3 JSON with the proto field names (snake_case, as Envoy's YAML
 * writes them), which is what the Envoy translators read:
 *
 * - a field at its default value is absent (except inside a oneof, and proto3 `optional`
 *   fields, whose presence means something), empty lists and maps are absent;
 * - enums are their names (`"ROUND_ROBIN"`), 64-bit integers decimal strings, bytes base64;
 * - `google.protobuf.Any` is expanded: `{ '@type': 'type.googleapis.com/<name>', ...fields }`;
 *   an Any of a well-known type with a special JSON form is `{ '@type', value }`; an Any of a
 *   type the descriptor does not hold is `{ '@type', '@bytes': '<base64>' }` (so a decoder
 *   never fails on an extension it does not know; the translator reports the type);
 * - `Duration` is a string (`"1.500s"`), `Timestamp` an RFC 3339 string, the wrappers
 *   (`UInt32Value`, `BoolValue`, ...) their plain value, `Struct` / `Value` / `ListValue`
 *   plain JSON.
 *
 * Encoding takes the same form (and also `{ seconds, nanos }` durations, `{ value }`
 * wrappers and lowerCamelCase field names), and refuses what the type does not have: an
 * unknown field, a value of the wrong type, an unknown enum name, each with its path.
 *
 * @module
 */
import type { Enum, Field, Message, Root, Type } from 'protobufjs'
import { MeshError } from '../errors.js'
import { TYPE_URL_PREFIX, typeNameOf } from './type-urls.js'
import type { XdsObject } from './types.js'

export type { XdsObject } from './types.js'

/** The parts of a `google.protobuf.Any` on the wire. */
export interface AnyParts {
  readonly type_url: string
  readonly value: Uint8Array
}

/** Nesting bound: deeper messages are refused (hostile input, or a cycle in an object to encode). */
const MAX_DEPTH = 100

const WRAPPERS: ReadonlySet<string> = new Set([
  'google.protobuf.DoubleValue', 'google.protobuf.FloatValue', 'google.protobuf.Int64Value',
  'google.protobuf.UInt64Value', 'google.protobuf.Int32Value', 'google.protobuf.UInt32Value',
  'google.protobuf.BoolValue', 'google.protobuf.StringValue', 'google.protobuf.BytesValue',
])

/** Well-known types whose proto3 JSON form is not an object of their fields. */
const SPECIAL_JSON: ReadonlySet<string> = new Set([
  ...WRAPPERS, 'google.protobuf.Duration', 'google.protobuf.Timestamp', 'google.protobuf.Struct',
  'google.protobuf.Value', 'google.protobuf.ListValue',
])

const LONG_TYPES: ReadonlySet<string> = new Set(['int64', 'uint64', 'sint64', 'fixed64', 'sfixed64'])
const INT32_TYPES: ReadonlySet<string> = new Set(['int32', 'sint32', 'sfixed32'])
const UINT32_TYPES: ReadonlySet<string> = new Set(['uint32', 'fixed32'])
const DURATION_TEXT = /^(-)?(\d{1,12})(?:\.(\d{1,9}))?s$/

/** Encodes and decodes the messages of one descriptor (see {@link loadXdsCodec}). */
export class XdsCodec {
  readonly #root: Root
  readonly #types = new Map<string, Type | null>()

  constructor(root: Root) {
    this.#root = root
  }

  /** True when the descriptor holds the message type (full name, no leading dot). */
  hasType(typeName: string): boolean {
    return this.#type(typeName) !== null
  }

  /** Decodes `bytes` as the message `typeName` into object form. */
  decode(typeName: string, bytes: Uint8Array): XdsObject {
    const type = this.#need(typeName)
    let message: Message
    try {
      message = type.decode(bytes)
    } catch (err) {
      throw new MeshError('SIDECARLESS_ERR_XDS_RESOURCE', `cannot decode ${typeName}: ${(err as Error).message}`, { cause: err })
    }
    return this.#toObject(type, message, typeName, 0)
  }

  /** Decodes an Any into `{ '@type': url, ...fields }`. */
  decodeAny(any: AnyParts): XdsObject {
    return this.#anyToObject(any, 'Any', 0)
  }

  /** Encodes `object` (object form) as the message `typeName`. */
  encode(typeName: string, object: XdsObject): Uint8Array {
    const type = this.#need(typeName)
    const wire = this.#toWire(type, object, typeName, 0)
    return type.encode(wire).finish()
  }

  /**
   * Encodes an object already in protobufjs's wire form (enum numbers, encoded Any parts),
   * unchecked: for messages the mesh builds itself on a hot path (DiscoveryResponse).
   */
  encodeWire(typeName: string, wire: object): Uint8Array {
    return this.#need(typeName).encode(wire).finish()
  }

  /** Encodes `{ '@type': url, ...fields }` into the parts of an Any. */
  encodeAny(object: XdsObject): AnyParts {
    return this.#anyToWire(object, 'Any', 0)
  }

  #type(typeName: string): Type | null {
    let type = this.#types.get(typeName)
    if (type === undefined) {
      const found = this.#root.lookup(typeName)
      type = found !== null && 'fieldsArray' in found ? (found as Type) : null
      this.#types.set(typeName, type)
    }
    return type
  }

  #need(typeName: string): Type {
    const type = this.#type(typeName)
    if (type === null) throw new MeshError('SIDECARLESS_ERR_XDS_RESOURCE', `the xDS descriptor has no message type ${typeName}`)
    return type
  }

  // ------------------------------------------------------------------ decoding

  #toObject(type: Type, message: Message, path: string, depth: number): XdsObject {
    if (depth > MAX_DEPTH) throw new MeshError('SIDECARLESS_ERR_XDS_RESOURCE', `${path}: messages nested deeper than ${MAX_DEPTH}`)
    const msg = message as unknown as Record<string, unknown>
    const out: XdsObject = {}
    for (const field of type.fieldsArray) {
      const name = field.name
      if (!Object.hasOwn(msg, name)) continue
      const value = msg[name]
      if (value === null || value === undefined) continue
      const here = `${path}.${name}`
      if (field.map) {
        const entries = Object.entries(value as Record<string, unknown>)
        if (entries.length === 0) continue
        const map: XdsObject = {}
        for (const [k, v] of entries) map[k] = this.#valueToObject(field, v, `${here}[${JSON.stringify(k)}]`, depth)
        out[name] = map
      } else if (field.repeated) {
        const list = value as unknown[]
        if (list.length === 0) continue
        out[name] = list.map((v, i) => this.#valueToObject(field, v, `${here}[${i}]`, depth))
      } else {
        // proto3: a scalar at its default is not there, unless a oneof (or `optional`) says it is.
        if (field.partOf === null && !(field.resolvedType !== null && !isEnum(field.resolvedType)) && isDefault(field, value)) continue
        out[name] = this.#valueToObject(field, value, here, depth)
      }
    }
    return out
  }

  #valueToObject(field: Field, value: unknown, path: string, depth: number): unknown {
    const resolved = field.resolvedType
    if (resolved === null) return scalarToObject(field.type, value)
    if (isEnum(resolved)) return resolved.valuesById[value as number] ?? value
    return this.#messageToObject(resolved, value as Message, path, depth + 1)
  }

  #messageToObject(type: Type, message: Message, path: string, depth: number): unknown {
    const name = nameOf(type)
    if (name === 'google.protobuf.Any') {
      const m = message as unknown as { type_url?: string; value?: Uint8Array }
      return this.#anyToObject({ type_url: m.type_url ?? '', value: m.value ?? new Uint8Array(0) }, path, depth)
    }
    if (SPECIAL_JSON.has(name)) return specialToObject(name, this.#toObject(type, message, path, depth), message)
    return this.#toObject(type, message, path, depth)
  }

  #anyToObject(any: AnyParts, path: string, depth: number): XdsObject {
    if (depth > MAX_DEPTH) throw new MeshError('SIDECARLESS_ERR_XDS_RESOURCE', `${path}: messages nested deeper than ${MAX_DEPTH}`)
    const url = any.type_url
    const type = this.#type(typeNameOf(url))
    if (type === null) return { '@type': url, '@bytes': Buffer.from(any.value).toString('base64') }
    let inner: Message
    try {
      inner = type.decode(any.value)
    } catch (err) {
      throw new MeshError('SIDECARLESS_ERR_XDS_RESOURCE', `${path}: cannot decode ${url}: ${(err as Error).message}`, { cause: err })
    }
    const name = nameOf(type)
    if (name === 'google.protobuf.Any') return { '@type': url, value: this.#messageToObject(type, inner, `${path}.value`, depth + 1) }
    if (SPECIAL_JSON.has(name)) return { '@type': url, value: this.#messageToObject(type, inner, path, depth + 1) }
    return { '@type': url, ...this.#toObject(type, inner, `${path}<${name}>`, depth + 1) }
  }

  // ------------------------------------------------------------------ encoding

  #toWire(type: Type, object: unknown, path: string, depth: number): Record<string, unknown> {
    if (depth > MAX_DEPTH) throw encodeError(path, `messages nested deeper than ${MAX_DEPTH}`)
    if (!isPlainObject(object)) throw encodeError(path, `expected an object for ${nameOf(type)}, got ${describe(object)}`)
    const out: Record<string, unknown> = {}
    const oneofs = new Map<string, string>()
    for (const key of Object.keys(object)) {
      const value = object[key]
      if (value === undefined) continue
      const field = fieldNamed(type, key) ?? fieldNamed(type, snakeCase(key))
      if (field === undefined) {
        throw encodeError(`${path}.${key}`, `${nameOf(type)} has no field "${key}"`)
      }
      const here = `${path}.${field.name}`
      if (field.partOf !== null) {
        const prior = oneofs.get(field.partOf.name)
        if (prior !== undefined && prior !== field.name) throw encodeError(here, `"${field.name}" and "${prior}" are one of ${field.partOf.name}; set one`)
        oneofs.set(field.partOf.name, field.name)
      }
      if (value === null) continue
      if (field.map) {
        if (!isPlainObject(value)) throw encodeError(here, `expected a map (object), got ${describe(value)}`)
        const map: Record<string, unknown> = {}
        for (const [k, v] of Object.entries(value)) map[k] = this.#valueToWire(field, v, `${here}[${JSON.stringify(k)}]`, depth)
        out[field.name] = map
      } else if (field.repeated) {
        if (!Array.isArray(value)) throw encodeError(here, `expected a list, got ${describe(value)}`)
        out[field.name] = value.map((v: unknown, i) => this.#valueToWire(field, v, `${here}[${i}]`, depth))
      } else {
        out[field.name] = this.#valueToWire(field, value, here, depth)
      }
    }
    return out
  }

  #valueToWire(field: Field, value: unknown, path: string, depth: number): unknown {
    const resolved = field.resolvedType
    if (resolved === null) return scalarToWire(field.type, value, path)
    if (isEnum(resolved)) return enumToWire(resolved, value, path)
    return this.#messageToWire(resolved, value, path, depth + 1)
  }

  #messageToWire(type: Type, value: unknown, path: string, depth: number): unknown {
    const name = nameOf(type)
    if (name === 'google.protobuf.Any') return this.#anyToWire(value, path, depth)
    if (SPECIAL_JSON.has(name)) return specialToWire(name, value, path, depth)
    return this.#toWire(type, value, path, depth)
  }

  #anyToWire(object: unknown, path: string, depth: number): AnyParts {
    if (depth > MAX_DEPTH) throw encodeError(path, `messages nested deeper than ${MAX_DEPTH}`)
    if (!isPlainObject(object) || typeof object['@type'] !== 'string') {
      throw encodeError(path, `an Any is written { '@type': 'type.googleapis.com/<message>', ...fields }, got ${describe(object)}`)
    }
    const url = object['@type']
    const typeName = typeNameOf(url)
    const fields: XdsObject = { ...object }
    delete fields['@type']
    if (typeof fields['@bytes'] === 'string') return { type_url: url, value: Buffer.from(fields['@bytes'], 'base64') }
    const type = this.#type(typeName)
    if (type === null) throw encodeError(path, `the xDS descriptor has no message type ${typeName} (from @type ${JSON.stringify(url)})`)
    const here = `${path}<${typeName}>`
    const inner = SPECIAL_JSON.has(typeName) || typeName === 'google.protobuf.Any'
      ? this.#messageToWire(type, fields['value'], here, depth + 1)
      : this.#toWire(type, fields, here, depth + 1)
    return { type_url: url.includes('/') ? url : `${TYPE_URL_PREFIX}${url}`, value: type.encode(inner as Record<string, unknown>).finish() }
  }
}

// ------------------------------------------------------------------ scalars

const names = new WeakMap<Type, string>()

/** A type's full name without the leading dot (protobufjs computes `fullName` on every read). */
function nameOf(type: Type): string {
  let name = names.get(type)
  if (name === undefined) {
    name = type.fullName.slice(1)
    names.set(type, name)
  }
  return name
}

function isEnum(t: Type | Enum): t is Enum {
  return 'valuesById' in t
}

/** proto3's default of a scalar or enum field (an enum's is 0, whatever protobufjs's typeDefault says). */
function isDefault(field: Field, value: unknown): boolean {
  if (field.resolvedType !== null) return value === 0
  if (LONG_TYPES.has(field.type)) return String(value) === '0'
  if (field.type === 'bytes') return (value as Uint8Array).length === 0
  return value === field.typeDefault
}

function scalarToObject(type: string, value: unknown): unknown {
  if (LONG_TYPES.has(type)) return String(value)
  if (type === 'bytes') return Buffer.from(value as Uint8Array).toString('base64')
  return value
}

function scalarToWire(type: string, value: unknown, path: string): unknown {
  if (type === 'string') {
    if (typeof value !== 'string') throw encodeError(path, `expected a string, got ${describe(value)}`)
    return value
  }
  if (type === 'bool') {
    if (typeof value !== 'boolean') throw encodeError(path, `expected true or false, got ${describe(value)}`)
    return value
  }
  if (type === 'double' || type === 'float') {
    const n = typeof value === 'string' ? Number(value) : value
    if (typeof n !== 'number' || Number.isNaN(n)) throw encodeError(path, `expected a number, got ${describe(value)}`)
    return n
  }
  if (type === 'bytes') {
    if (value instanceof Uint8Array) return value
    if (typeof value !== 'string') throw encodeError(path, `expected base64 bytes, got ${describe(value)}`)
    return Buffer.from(value, 'base64')
  }
  if (LONG_TYPES.has(type)) {
    const text = typeof value === 'number' && Number.isSafeInteger(value) ? String(value) : value
    const unsigned = type === 'uint64' || type === 'fixed64'
    if (typeof text !== 'string' || !(unsigned ? /^\d{1,20}$/ : /^-?\d{1,19}$/).test(text)) {
      throw encodeError(path, `expected a${unsigned ? 'n unsigned' : ''} 64-bit integer (number or decimal string), got ${describe(value)}`)
    }
    return text
  }
  const n = typeof value === 'string' && /^-?\d{1,10}$/.test(value) ? Number(value) : value
  if (typeof n !== 'number' || !Number.isInteger(n)) throw encodeError(path, `expected an integer, got ${describe(value)}`)
  if (UINT32_TYPES.has(type) && (n < 0 || n > 0xffffffff)) throw encodeError(path, `${n} is not a 32-bit unsigned integer`)
  if (INT32_TYPES.has(type) && (n < -0x80000000 || n > 0x7fffffff)) throw encodeError(path, `${n} is not a 32-bit integer`)
  return n
}

function enumToWire(e: Enum, value: unknown, path: string): number {
  if (typeof value === 'number' && Number.isInteger(value)) return value
  if (typeof value === 'string' && Object.hasOwn(e.values, value)) return e.values[value] as number
  throw encodeError(path, `${describe(value)} is not one of ${Object.keys(e.values).join(', ')}`)
}

// ------------------------------------------------------------------ well-known types

function specialToObject(name: string, fields: XdsObject, message: Message): unknown {
  const m = message as unknown as Record<string, unknown>
  if (WRAPPERS.has(name)) {
    const v = fields['value']
    if (v !== undefined) return v
    // The wrapped value is the default: the wrapper says it is set.
    if (name === 'google.protobuf.BoolValue') return false
    if (name === 'google.protobuf.StringValue' || name === 'google.protobuf.BytesValue') return ''
    if (name === 'google.protobuf.Int64Value' || name === 'google.protobuf.UInt64Value') return '0'
    return 0
  }
  switch (name) {
    case 'google.protobuf.Duration':
      return formatProtoDuration(String((m['seconds'] as number | undefined) ?? 0), (m['nanos'] as number | undefined) ?? 0)
    case 'google.protobuf.Timestamp': {
      const ms = Number(String((m['seconds'] as number | undefined) ?? 0)) * 1000 + Math.floor(((m['nanos'] as number | undefined) ?? 0) / 1e6)
      return new Date(ms).toISOString()
    }
    case 'google.protobuf.Struct':
      return structToJson(fields)
    case 'google.protobuf.Value':
      return valueToJson(fields)
    case 'google.protobuf.ListValue':
      return (fields['values']) ?? []
  }
  return fields
}

/** proto3 JSON of a Duration: seconds with 0, 3, 6 or 9 fraction digits and `s`. */
export function formatProtoDuration(seconds: string, nanos: number): string {
  const negative = seconds.startsWith('-') || nanos < 0
  const s = seconds.replace('-', '')
  const n = Math.abs(nanos)
  if (n === 0) return `${negative ? '-' : ''}${s}s`
  let fraction = String(n).padStart(9, '0')
  while (fraction.endsWith('000')) fraction = fraction.slice(0, -3)
  return `${negative ? '-' : ''}${s}.${fraction}s`
}

/** A duration in milliseconds as proto3 JSON (`1500` → `"1.500s"`). */
export function durationFromMs(ms: number): string {
  const whole = Math.floor(ms / 1000)
  return formatProtoDuration(String(whole), Math.round((ms - whole * 1000) * 1e6))
}

/** A Struct's map values went through Value's conversion already: they are JSON. */
function structToJson(fields: XdsObject): XdsObject {
  return { ...((fields['fields'] as XdsObject | undefined) ?? {}) }
}

/** A Value's fields (its Struct and ListValue members are JSON already) as the JSON value. */
function valueToJson(value: XdsObject): unknown {
  if ('null_value' in value) return null
  if ('number_value' in value) return value['number_value']
  if ('string_value' in value) return value['string_value']
  if ('bool_value' in value) return value['bool_value']
  if ('struct_value' in value) return value['struct_value']
  if ('list_value' in value) return value['list_value']
  return null
}

function specialToWire(name: string, value: unknown, path: string, depth: number): unknown {
  if (WRAPPERS.has(name)) {
    const v = isPlainObject(value) && Object.keys(value).length === 1 && 'value' in value ? value['value'] : value
    // DoubleValue → double, UInt32Value → uint32, ...
    const scalar = name.slice('google.protobuf.'.length, -'Value'.length).toLowerCase()
    return { value: scalarToWire(scalar, v, path) }
  }
  switch (name) {
    case 'google.protobuf.Duration':
      return durationToWire(value, path)
    case 'google.protobuf.Timestamp': {
      const ms = typeof value === 'string' ? Date.parse(value) : NaN
      if (Number.isNaN(ms)) throw encodeError(path, `expected an RFC 3339 timestamp, got ${describe(value)}`)
      return { seconds: String(Math.floor(ms / 1000)), nanos: (ms % 1000) * 1e6 }
    }
    case 'google.protobuf.Struct':
      if (!isPlainObject(value)) throw encodeError(path, `expected an object, got ${describe(value)}`)
      return structToWire(value, path, depth)
    case 'google.protobuf.Value':
      return jsonToValue(value, path, depth)
    case 'google.protobuf.ListValue':
      if (!Array.isArray(value)) throw encodeError(path, `expected a list, got ${describe(value)}`)
      return { values: value.map((v: unknown, i) => jsonToValue(v, `${path}[${i}]`, depth + 1)) }
  }
  return value
}

function durationToWire(value: unknown, path: string): { seconds: string; nanos: number } {
  if (isPlainObject(value) && Object.keys(value).every((k) => k === 'seconds' || k === 'nanos')) {
    const seconds = scalarToWire('int64', value['seconds'] ?? 0, `${path}.seconds`) as string
    const nanos = scalarToWire('int32', value['nanos'] ?? 0, `${path}.nanos`) as number
    return { seconds, nanos }
  }
  const m = typeof value === 'string' ? DURATION_TEXT.exec(value) : null
  if (m === null) throw encodeError(path, `expected a duration like "1.5s" or { seconds, nanos }, got ${describe(value)}`)
  const sign = m[1] === '-' ? -1 : 1
  const nanos = Number((m[3] ?? '').padEnd(9, '0'))
  return { seconds: `${sign < 0 && m[2] !== '0' ? '-' : ''}${m[2]}`, nanos: sign * nanos }
}

function structToWire(obj: XdsObject, path: string, depth: number): unknown {
  const fields: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(obj)) fields[k] = jsonToValue(v, `${path}.${k}`, depth + 1)
  return { fields }
}

function jsonToValue(v: unknown, path: string, depth: number): unknown {
  if (depth > MAX_DEPTH) throw encodeError(path, `values nested deeper than ${MAX_DEPTH}`)
  if (v === null) return { null_value: 0 }
  if (typeof v === 'number') return { number_value: v }
  if (typeof v === 'string') return { string_value: v }
  if (typeof v === 'boolean') return { bool_value: v }
  if (Array.isArray(v)) return { list_value: { values: v.map((x: unknown, i) => jsonToValue(x, `${path}[${i}]`, depth + 1)) } }
  if (isPlainObject(v)) return { struct_value: structToWire(v, path, depth) }
  throw encodeError(path, `${describe(v)} is not a JSON value`)
}

// ------------------------------------------------------------------ helpers

function fieldNamed(type: Type, name: string): Field | undefined {
  return Object.hasOwn(type.fields, name) ? type.fields[name] : undefined
}

function isPlainObject(v: unknown): v is XdsObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array)
}

function snakeCase(key: string): string {
  return key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)
}

function describe(v: unknown): string {
  if (v === null) return 'null'
  if (Array.isArray(v)) return 'a list'
  if (typeof v === 'string') return JSON.stringify(v.length > 64 ? `${v.slice(0, 64)}…` : v)
  if (typeof v === 'object') return 'an object'
  return `${typeof v} ${String(v)}`
}

function encodeError(path: string, message: string): MeshError {
  return new MeshError('SIDECARLESS_ERR_XDS_RESOURCE', `cannot encode ${path}: ${message}`)
}
