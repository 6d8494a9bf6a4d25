/**
 * The semantic checks of `listener.requestAuthentication` and `listener.authorization`,
 * called by `validate.ts` after the structural pass: key sources, header names, patterns,
 * IP blocks and condition keys. Reads only values the structural pass found well-typed.
 */
import type { ConfigIssueCode } from '../errors.js'
import { isHeaderName } from './http-token.js'
import { jwksUriProblem, parseJwks } from './jwks-document.js'
import { isIpConditionKey, parseConditionKey } from './authz-condition.js'
import { parseIpBlock } from './ip-block.js'
import { patternProblem } from './string-match.js'
import { parseDuration } from './duration.js'

type Obj = Record<string, unknown>
type Add = (path: string, code: ConfigIssueCode, message: string) => void

/** Checks `listener.requestAuthentication` at `path`. */
export function checkRequestAuthentication(value: unknown, path: string, add: Add): void {
  if (!isObject(value)) return
  const rules = value['jwtRules']
  if (!Array.isArray(rules)) return
  if (rules.length === 0) add(`${path}.jwtRules`, 'INVALID_VALUE', 'jwtRules is empty; remove requestAuthentication or add a rule')
  rules.forEach((rule: unknown, i) => {
    if (!isObject(rule)) return
    const at = `${path}.jwtRules[${i}]`
    const issuer = rule['issuer']
    if (issuer === '') add(`${at}.issuer`, 'INVALID_VALUE', 'issuer is empty')
    const uri = rule['jwksUri']
    const jwks = rule['jwks']
    const hasUri = uri !== undefined && uri !== null
    const hasJwks = jwks !== undefined && jwks !== null
    if (hasUri === hasJwks) add(at, hasUri ? 'INVALID_VALUE' : 'REQUIRED', hasUri ? 'a JWT rule has either jwksUri or jwks, not both' : 'a JWT rule needs jwksUri or jwks')
    if (typeof uri === 'string') {
      const problem = jwksUriProblem(uri)
      if (problem !== undefined) add(`${at}.jwksUri`, 'INVALID_ADDRESS', problem)
    }
    if (typeof jwks === 'string') {
      const parsed = parseJwks(jwks)
      if (typeof parsed === 'string') add(`${at}.jwks`, 'INVALID_VALUE', parsed)
    }
    eachString(rule['audiences'], (a, j) => {
      if (a === '') add(`${at}.audiences[${j}]`, 'INVALID_VALUE', 'an audience is empty')
    })
    eachObject(rule['fromHeaders'], (h, j) => {
      const name = h['name']
      if (typeof name === 'string' && !isHeaderName(name)) add(`${at}.fromHeaders[${j}].name`, 'INVALID_HEADER', `"${name.slice(0, 64)}" is not a header name`)
    })
    eachString(rule['fromParams'], (p, j) => {
      if (p === '') add(`${at}.fromParams[${j}]`, 'INVALID_VALUE', 'a query parameter name is empty')
    })
    eachObject(rule['outputClaimToHeaders'], (c, j) => {
      const header = c['header']
      if (typeof header === 'string' && (!isHeaderName(header) || isReservedHeader(header))) add(`${at}.outputClaimToHeaders[${j}].header`, 'INVALID_HEADER', `"${header.slice(0, 64)}" cannot be set from a claim`)
      const claim = c['claim']
      if (claim === '') add(`${at}.outputClaimToHeaders[${j}].claim`, 'INVALID_VALUE', 'the claim name is empty')
    })
    const payload = rule['outputPayloadToHeader']
    if (typeof payload === 'string' && (!isHeaderName(payload) || isReservedHeader(payload))) add(`${at}.outputPayloadToHeader`, 'INVALID_HEADER', `"${payload.slice(0, 64)}" cannot be set from the payload`)
    const timeout = parseDuration(rule['jwksTimeout'])
    if (timeout === 0) add(`${at}.jwksTimeout`, 'INVALID_DURATION', 'jwksTimeout must be above 0')
    const cache = parseDuration(rule['jwksCacheDuration'])
    if (cache === 0) add(`${at}.jwksCacheDuration`, 'INVALID_DURATION', 'jwksCacheDuration must be above 0')
  })
}

/** Checks `listener.authorization` at `path`. */
export function checkAuthorization(value: unknown, path: string, add: Add): void {
  if (!Array.isArray(value)) return
  const names = new Set<string>()
  value.forEach((policy: unknown, i) => {
    if (!isObject(policy)) return
    const at = `${path}[${i}]`
    const name = policy['name']
    if (typeof name === 'string') {
      if (name === '') add(`${at}.name`, 'INVALID_VALUE', 'a policy name is empty')
      else if (names.has(name)) add(`${at}.name`, 'DUPLICATE_NAME', `policy "${name.slice(0, 64)}" is defined twice`)
      names.add(name)
    }
    eachObject(policy['rules'], (rule, j) => {
      const r = `${at}.rules[${j}]`
      eachObject(rule['from'], (f, k) => {
        const s = f['source']
        if (isObject(s)) checkSource(s, `${r}.from[${k}].source`, add)
      })
      eachObject(rule['to'], (t, k) => {
        const o = t['operation']
        if (isObject(o)) checkOperation(o, `${r}.to[${k}].operation`, add)
      })
      eachObject(rule['when'], (c, k) => checkCondition(c, `${r}.when[${k}]`, add))
    })
  })
}

const SOURCE_FIELDS = ['principals', 'requestPrincipals', 'namespaces', 'ipBlocks', 'remoteIpBlocks']
const OPERATION_FIELDS = ['hosts', 'ports', 'methods', 'paths']
const not = (k: string): string => `not${k[0]?.toUpperCase() ?? ''}${k.slice(1)}`

function checkSource(s: Obj, at: string, add: Add): void {
  if (!SOURCE_FIELDS.some((k) => nonEmpty(s[k]) || nonEmpty(s[not(k)]))) {
    add(at, 'INVALID_VALUE', 'a source sets no field; omit "from" to match any source')
  }
  for (const k of SOURCE_FIELDS) {
    for (const key of [k, not(k)]) {
      eachString(s[key], (v, j) => {
        const here = `${at}.${key}[${j}]`
        if (k === 'ipBlocks' || k === 'remoteIpBlocks') {
          const parsed = parseIpBlock(v)
          if (typeof parsed === 'string') add(here, 'INVALID_VALUE', parsed)
          return
        }
        const problem = patternProblem(v)
        if (problem !== undefined) add(here, 'INVALID_VALUE', problem)
        else if (k === 'principals' && v.startsWith('spiffe://')) {
          add(here, 'INVALID_VALUE', `principals are written without "spiffe://", as Istio does: "${v.slice(9, 73)}"`)
        }
      })
    }
  }
}

function checkOperation(o: Obj, at: string, add: Add): void {
  if (!OPERATION_FIELDS.some((k) => nonEmpty(o[k]) || nonEmpty(o[not(k)]))) {
    add(at, 'INVALID_VALUE', 'an operation sets no field; omit "to" to match any operation')
  }
  for (const k of OPERATION_FIELDS) {
    for (const key of [k, not(k)]) {
      eachString(o[key], (v, j) => {
        const here = `${at}.${key}[${j}]`
        if (k === 'ports') {
          if (!/^[1-9][0-9]{0,4}$/.test(v) || Number(v) > 65535) add(here, 'INVALID_VALUE', `"${v.slice(0, 16)}" is not a port (1-65535)`)
          return
        }
        const problem = patternProblem(v)
        if (problem !== undefined) add(here, 'INVALID_VALUE', problem)
        else if (k === 'paths' && !v.startsWith('/') && !v.startsWith('*')) add(here, 'INVALID_VALUE', `"${v.slice(0, 64)}" must start with / (or * for a suffix or any path)`)
        else if (k === 'methods' && v !== '*' && !isHeaderName(v.replace(/^\*|\*$/g, ''))) add(here, 'INVALID_VALUE', `"${v.slice(0, 32)}" is not an HTTP method`)
      })
    }
  }
}

function checkCondition(c: Obj, at: string, add: Add): void {
  const keyValue = c['key']
  if (typeof keyValue !== 'string') return
  const key = parseConditionKey(keyValue)
  if (typeof key === 'string') {
    add(`${at}.key`, 'INVALID_VALUE', key)
    return
  }
  if (key.kind === 'header' && !isHeaderName(key.name)) add(`${at}.key`, 'INVALID_HEADER', `"${key.name.slice(0, 64)}" is not a header name`)
  if (!nonEmpty(c['values']) && !nonEmpty(c['notValues'])) add(at, 'REQUIRED', 'a condition needs values or notValues')
  for (const field of ['values', 'notValues']) {
    eachString(c[field], (v, j) => {
      const here = `${at}.${field}[${j}]`
      if (isIpConditionKey(key)) {
        const parsed = parseIpBlock(v)
        if (typeof parsed === 'string') add(here, 'INVALID_VALUE', parsed)
        return
      }
      if (key.kind === 'destination.port' && (!/^[1-9][0-9]{0,4}$/.test(v) || Number(v) > 65535)) {
        add(here, 'INVALID_VALUE', `"${v.slice(0, 16)}" is not a port (1-65535)`)
        return
      }
      const problem = patternProblem(v)
      if (problem !== undefined) add(here, 'INVALID_VALUE', problem)
    })
  }
}

/** Headers that frame or route the request: never set from a token. */
function isReservedHeader(name: string): boolean {
  const n = name.toLowerCase()
  return n === 'host' || n === 'content-length' || n === 'transfer-encoding' || n === 'connection' || n === 'upgrade' || n === 'te' || n === 'expect'
}

function isObject(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

function nonEmpty(v: unknown): boolean {
  return Array.isArray(v) && v.length > 0
}

function eachString(list: unknown, fn: (v: string, i: number) => void): void {
  if (!Array.isArray(list)) return
  list.forEach((v: unknown, i) => {
    if (typeof v === 'string') fn(v, i)
  })
}

function eachObject(list: unknown, fn: (v: Obj, i: number) => void): void {
  if (!Array.isArray(list)) return
  list.forEach((v: unknown, i) => {
    if (isObject(v)) fn(v, i)
  })
}
