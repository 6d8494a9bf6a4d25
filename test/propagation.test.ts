/**
 * Trace-context propagation and id generation.
 *
 * Test vectors are ported from, with attribution:
 * - W3C trace-context test suite: github.com/w3c/trace-context, test/test.py and
 *   test/tracecontext/test_tracestate.py (commit acab820be9db7b3433668baa5cdd43f57f4c4be0),
 *   W3C 3-clause BSD License (https://www.w3.org/Consortium/Legal/2008/03-bsd-license.html).
 *   The harness sends headers to a service and inspects the calls it makes; here each case is
 *   the same headers given to `extract`, and "a new trace id" is `extract` returning undefined.
 *   Strict level 2 and spec level 2 cases included.
 * - OpenTelemetry JS: github.com/open-telemetry/opentelemetry-js
 *   (commit 61126358cb5cf06a2004151cbad18e79cbede00a), Apache-2.0:
 *   packages/opentelemetry-core/test/common/trace/W3CTraceContextPropagator.test.ts,
 *   packages/opentelemetry-core/test/common/trace/tracestate.test.ts,
 *   packages/opentelemetry-propagator-b3/test/B3SinglePropagator.test.ts,
 *   packages/opentelemetry-propagator-b3/test/B3MultiPropagator.test.ts,
 *   packages/opentelemetry-propagator-b3/test/B3Propagator.test.ts.
 *   Where this module deliberately differs (noted at each case): a B3 context without a
 *   sampling state reads as `sampled: undefined` (OTel: not sampled), and an invalid tracestate
 *   member discards the whole tracestate as the W3C strict suite expects (OTel drops the member).
 * - Zipkin b3-propagation README examples: github.com/openzipkin/b3-propagation, README.md
 *   (commit 3e54cda11620a773d53c7f64d2ebb10d3a01794c), Apache-2.0.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { newRequestId, newSpanId, newTraceId } from '../src/observability/ids.js'
import {
  extract,
  formatTraceparent,
  inject,
  isValidRequestId,
  parseB3Multi,
  parseB3Single,
  parseTraceparent,
  parseTracestate,
  PROPAGATION_HEADERS,
  type OutgoingTraceContext,
  type PropagationFormat,
  type TraceParent,
} from '../src/observability/propagation.js'

type Getter = (name: string) => string | string[] | undefined

/** Headers as a server sees them: names case-insensitive, repeated headers as an array. */
function headers(pairs: ReadonlyArray<readonly [string, string]>): Getter {
  const map = new Map<string, string[]>()
  for (const [name, value] of pairs) {
    const key = name.toLowerCase()
    const list = map.get(key)
    if (list) list.push(value)
    else map.set(key, [value])
  }
  return (name) => {
    const list = map.get(name)
    if (list === undefined) return undefined
    return list.length === 1 ? list[0] : list
  }
}

/** A getter over a plain record (values as given, like an OTel carrier). */
function carrier(record: Record<string, unknown>): Getter {
  return (name) => record[name] as string | string[] | undefined
}

const W3C: PropagationFormat[] = ['w3c']
const ALL: PropagationFormat[] = ['w3c', 'b3', 'b3multi']

/** The tracestate as a key → value map (empty when there is none). */
function stateOf(ctx: TraceParent | undefined): Map<string, string> {
  const map = new Map<string, string>()
  const ts = ctx?.traceState
  if (ts === undefined) return map
  for (const member of ts.split(',')) {
    const eq = member.indexOf('=')
    map.set(member.slice(0, eq), member.slice(eq + 1))
  }
  return map
}

const TP = '00-12345678901234567890123456789012-1234567890123456-00'
const TRACE_ID = '12345678901234567890123456789012'

function w3c(...pairs: Array<readonly [string, string]>): TraceParent | undefined {
  return extract(headers(pairs), W3C)
}

// ---------------------------------------------------------------------------------------------

describe('W3C trace-context test suite (w3c/trace-context test/test.py)', () => {
  test('both traceparent and tracestate missing: a new trace', () => {
    assert.equal(w3c(), undefined)
  })

  test('traceparent included, tracestate missing: trace id kept', () => {
    const ctx = w3c(['traceparent', '00-12345678901234567890123456789012-1234567890123456-01'])
    assert.equal(ctx?.traceId, TRACE_ID)
    assert.equal(ctx?.spanId, '1234567890123456')
    assert.equal(ctx?.sampled, true)
    assert.equal(ctx?.traceState, undefined)
    assert.equal(ctx?.format, 'w3c')
  })

  test('traceparent duplicated: a new trace', () => {
    assert.equal(w3c(
      ['traceparent', '00-12345678901234567890123456789011-1234567890123456-01'],
      ['traceparent', '00-12345678901234567890123456789012-1234567890123456-01'],
    ), undefined)
  })

  test('traceparent header name: wrong names are not read', () => {
    assert.equal(w3c(['trace-parent', '00-12345678901234567890123456789012-1234567890123456-01']), undefined)
    assert.equal(w3c(['trace.parent', '00-12345678901234567890123456789012-1234567890123456-01']), undefined)
  })

  test('traceparent header name: any casing', () => {
    for (const name of ['TraceParent', 'TrAcEpArEnT', 'TRACEPARENT']) {
      assert.equal(w3c([name, '00-12345678901234567890123456789012-1234567890123456-01'])?.traceId, TRACE_ID, name)
    }
  })

  const invalidTraceparents: Record<string, string[]> = {
    version_0x00_trailing: [
      '00-12345678901234567890123456789012-1234567890123456-01.',
      '00-12345678901234567890123456789012-1234567890123456-01-what-the-future-will-be-like',
    ],
    version_0xcc_bad_delimiter: ['cc-12345678901234567890123456789012-1234567890123456-01.what-the-future-will-be-like'],
    version_0xff: ['ff-12345678901234567890123456789012-1234567890123456-01'],
    version_illegal_characters: [
      '.0-12345678901234567890123456789012-1234567890123456-01',
      '0.-12345678901234567890123456789012-1234567890123456-01',
    ],
    version_too_long: [
      '000-12345678901234567890123456789012-1234567890123456-01',
      '0000-12345678901234567890123456789012-1234567890123456-01',
    ],
    version_too_short: ['0-12345678901234567890123456789012-1234567890123456-01'],
    trace_id_all_zero: ['00-00000000000000000000000000000000-1234567890123456-01'],
    trace_id_illegal_characters: [
      '00-.2345678901234567890123456789012-1234567890123456-01',
      '00-1234567890123456789012345678901.-1234567890123456-01',
    ],
    trace_id_too_long: ['00-123456789012345678901234567890123-1234567890123456-01'],
    trace_id_too_short: ['00-1234567890123456789012345678901-1234567890123456-01'],
    parent_id_all_zero: ['00-12345678901234567890123456789012-0000000000000000-01'],
    parent_id_illegal_characters: [
      '00-12345678901234567890123456789012-.234567890123456-01',
      '00-12345678901234567890123456789012-123456789012345.-01',
    ],
    parent_id_too_long: ['00-12345678901234567890123456789012-12345678901234567-01'],
    parent_id_too_short: ['00-12345678901234567890123456789012-123456789012345-01'],
    trace_flags_illegal_characters: [
      '00-12345678901234567890123456789012-1234567890123456-.0',
      '00-12345678901234567890123456789012-1234567890123456-0.',
    ],
    trace_flags_too_long: ['00-12345678901234567890123456789012-1234567890123456-001'],
    trace_flags_too_short: ['00-12345678901234567890123456789012-1234567890123456-1'],
  }
  for (const [name, values] of Object.entries(invalidTraceparents)) {
    test(`traceparent ${name}: a new trace`, () => {
      for (const value of values) {
        assert.equal(w3c(['traceparent', value]), undefined, value)
        assert.equal(parseTraceparent(value), undefined, value)
      }
    })
  }

  test('traceparent version 0xcc: parsed by the forward-compatibility rule', () => {
    for (const value of [
      'cc-12345678901234567890123456789012-1234567890123456-01',
      'cc-12345678901234567890123456789012-1234567890123456-01-what-the-future-will-be-like',
    ]) {
      assert.equal(w3c(['traceparent', value])?.traceId, TRACE_ID, value)
    }
  })

  test('traceparent OWS handling', () => {
    for (const value of [
      ' 00-12345678901234567890123456789012-1234567890123456-01',
      '\t00-12345678901234567890123456789012-1234567890123456-01',
      '00-12345678901234567890123456789012-1234567890123456-01 ',
      '00-12345678901234567890123456789012-1234567890123456-01\t',
      '\t 00-12345678901234567890123456789012-1234567890123456-01 \t',
    ]) {
      assert.equal(w3c(['traceparent', value])?.traceId, TRACE_ID, JSON.stringify(value))
    }
  })

  test('tracestate included, traceparent missing: discarded', () => {
    assert.equal(w3c(['tracestate', 'foo=1']), undefined)
    assert.equal(w3c(['tracestate', 'foo=1,bar=2']), undefined)
  })

  test('tracestate included, traceparent included: inherited', () => {
    const ctx = w3c(['traceparent', TP], ['tracestate', 'foo=1,bar=2'])
    assert.equal(ctx?.traceId, TRACE_ID)
    assert.deepEqual(stateOf(ctx), new Map([['foo', '1'], ['bar', '2']]))
  })

  test('tracestate header name: wrong names are not read', () => {
    assert.equal(w3c(['traceparent', TP], ['trace-state', 'foo=1'])?.traceState, undefined)
    assert.equal(w3c(['traceparent', TP], ['trace.state', 'foo=1'])?.traceState, undefined)
  })

  test('tracestate header name: any casing', () => {
    for (const name of ['TraceState', 'TrAcEsTaTe', 'TRACESTATE']) {
      assert.equal(stateOf(w3c(['traceparent', TP], [name, 'foo=1'])).get('foo'), '1', name)
    }
  })

  test('tracestate empty header', () => {
    const empty = w3c(['traceparent', TP], ['tracestate', ''])
    assert.equal(empty?.traceId, TRACE_ID)
    assert.equal(empty?.traceState, undefined)
    assert.equal(w3c(['traceparent', TP], ['tracestate', 'foo=1'], ['tracestate', ''])?.traceState, 'foo=1')
    assert.equal(w3c(['traceparent', TP], ['tracestate', ''], ['tracestate', 'foo=1'])?.traceState, 'foo=1')
  })

  test('tracestate multiple headers with different keys: combined in order', () => {
    const ctx = w3c(['traceparent', TP], ['tracestate', 'foo=1,bar=2'], ['tracestate', 'rojo=1,congo=2'], ['tracestate', 'baz=3'])
    assert.equal(ctx?.traceId, TRACE_ID)
    assert.equal(ctx?.traceState, 'foo=1,bar=2,rojo=1,congo=2,baz=3')
  })

  test('tracestate duplicated keys: inherited, later duplicates dropped', () => {
    assert.equal(w3c(['traceparent', TP], ['tracestate', 'foo=1,foo=1'])?.traceState, 'foo=1')
    assert.equal(w3c(['traceparent', TP], ['tracestate', 'foo=1,foo=2'])?.traceState, 'foo=1')
    assert.equal(w3c(['traceparent', TP], ['tracestate', 'foo=1'], ['tracestate', 'foo=1'])?.traceState, 'foo=1')
    assert.equal(w3c(['traceparent', TP], ['tracestate', 'foo=1'], ['tracestate', 'foo=2'])?.traceState, 'foo=1')
  })

  test('tracestate with all allowed characters', () => {
    let lcalpha = ''
    for (let c = 0x61; c <= 0x7a; c++) lcalpha += String.fromCharCode(c)
    const keyWithoutVendor = `${lcalpha}0123456789_-*/`
    const keyWithVendor = `${keyWithoutVendor}@a-z0-9_-*/`
    let value = ''
    for (let c = 0x20; c <= 0x2b; c++) value += String.fromCharCode(c)
    for (let c = 0x2d; c <= 0x3c; c++) value += String.fromCharCode(c)
    for (let c = 0x3e; c <= 0x7e; c++) value += String.fromCharCode(c)
    assert.equal(stateOf(w3c(['traceparent', TP], ['tracestate', `${keyWithoutVendor}=${value}`])).get(keyWithoutVendor), value)
    assert.equal(stateOf(w3c(['traceparent', TP], ['tracestate', `${keyWithVendor}=${value}`])).get(keyWithVendor), value)
  })

  test('tracestate OWS handling', () => {
    for (const value of ['foo=1 \t , \t bar=2, \t baz=3', 'foo=1\t \t,\t \tbar=2,\t \tbaz=3']) {
      assert.equal(w3c(['traceparent', TP], ['tracestate', value])?.traceState, 'foo=1,bar=2,baz=3', JSON.stringify(value))
    }
    for (const value of [' foo=1', '\tfoo=1', 'foo=1 ', 'foo=1\t', '\t foo=1 \t']) {
      const ctx = w3c(['traceparent', TP], ['tracestate', value])
      assert.equal(ctx?.traceId, TRACE_ID)
      assert.equal(ctx?.traceState, 'foo=1', JSON.stringify(value))
    }
  })

  test('tracestate key with illegal characters: discarded', () => {
    for (const value of ['foo =1', 'FOO=1', 'foo.bar=1']) {
      const ctx = w3c(['traceparent', TP], ['tracestate', value])
      assert.equal(ctx?.traceId, TRACE_ID, 'a bad tracestate never invalidates traceparent')
      assert.equal(ctx?.traceState, undefined, value)
    }
  })

  test('tracestate keys with at signs', () => {
    assert.deepEqual(stateOf(w3c(['traceparent', TP], ['tracestate', 'foo@=1,bar=2'])), new Map([['foo@', '1'], ['bar', '2']]))
    assert.equal(w3c(['traceparent', TP], ['tracestate', '@foo=1,bar=2'])?.traceState, undefined)
    assert.deepEqual(stateOf(w3c(['traceparent', TP], ['tracestate', 'foo@@bar=1,bar=2'])), new Map([['foo@@bar', '1'], ['bar', '2']]))
    assert.deepEqual(stateOf(w3c(['traceparent', TP], ['tracestate', 'foo@bar@baz=1,bar=2'])), new Map([['foo@bar@baz', '1'], ['bar', '2']]))
  })

  test('tracestate member count limit: 32 kept, 33 discarded', () => {
    const first = ['tracestate', 'bar01=01,bar02=02,bar03=03,bar04=04,bar05=05,bar06=06,bar07=07,bar08=08,bar09=09,bar10=10'] as const
    const second = ['tracestate', 'bar11=11,bar12=12,bar13=13,bar14=14,bar15=15,bar16=16,bar17=17,bar18=18,bar19=19,bar20=20'] as const
    const third = ['tracestate', 'bar21=21,bar22=22,bar23=23,bar24=24,bar25=25,bar26=26,bar27=27,bar28=28,bar29=29,bar30=30'] as const
    const state32 = stateOf(w3c(['traceparent', TP], first, second, third, ['tracestate', 'bar31=31,bar32=32']))
    assert.equal(state32.get('bar01'), '01')
    assert.equal(state32.size, 32)
    assert.equal(w3c(['traceparent', TP], first, second, third, ['tracestate', 'bar31=31,bar32=32,bar33=33'])?.traceState, undefined)
  })

  test('tracestate key length limit', () => {
    for (const key of ['z'.repeat(256), `${'t'.repeat(241)}@${'v'.repeat(14)}`, `${'t'.repeat(242)}@v`, `t@${'v'.repeat(15)}`]) {
      const state = stateOf(w3c(['traceparent', TP], ['tracestate', 'foo=1'], ['tracestate', `${key}=1`]))
      assert.equal(state.get('foo'), '1')
      assert.equal(state.get(key), '1', `key of ${key.length}`)
    }
    assert.equal(w3c(['traceparent', TP], ['tracestate', 'foo=1'], ['tracestate', `${'z'.repeat(257)}=1`])?.traceState, undefined)
  })

  test('tracestate value with illegal characters: discarded', () => {
    assert.equal(w3c(['traceparent', TP], ['tracestate', 'foo=bar=baz'])?.traceState, undefined)
    assert.equal(w3c(['traceparent', TP], ['tracestate', 'foo=,bar=3'])?.traceState, undefined)
  })

  test('multiple requests with a valid traceparent: one trace id, a new parent id each', () => {
    const ctx = w3c(['traceparent', '00-12345678901234567890123456789012-1234567890123456-01'])!
    const sent: string[] = []
    for (let i = 0; i < 3; i++) {
      inject({ traceId: ctx.traceId, spanId: newSpanId(), sampled: ctx.sampled === true }, W3C, (name, value) => {
        if (name === 'traceparent') sent.push(value)
      })
    }
    const parsed = sent.map((v) => parseTraceparent(v)!)
    assert.deepEqual(new Set(parsed.map((p) => p.traceId)), new Set([TRACE_ID]))
    assert.equal(new Set(parsed.map((p) => p.spanId)).size, 3)
    assert.ok(parsed.every((p) => p.spanId !== '1234567890123456'))
  })

  test('multiple requests with an illegal traceparent: new trace ids', () => {
    assert.equal(w3c(['traceparent', '00-00000000000000000000000000000000-1234567890123456-01']), undefined)
    const ids = new Set([newTraceId(), newTraceId(), newTraceId()])
    assert.equal(ids.size, 3)
    assert.ok(!ids.has('0'.repeat(32)))
  })

  test('level 2: the random-trace-id flag is propagated', () => {
    const ctx = w3c(['traceparent', '00-12345678901234567890123456789012-1234567890123456-02'])!
    assert.equal(ctx.random, true)
    assert.equal(ctx.sampled, false)
    let out: string | undefined
    inject({ traceId: ctx.traceId, spanId: newSpanId(), sampled: false, random: ctx.random }, W3C, (name, value) => {
      if (name === 'traceparent') out = value
    })
    const p = parseTraceparent(out!)!
    assert.equal(p.traceId, TRACE_ID)
    assert.notEqual(p.spanId, '1234567890123456')
    assert.equal(p.flags & 2, 2, 'random flag set')
  })
})

describe('W3C test harness Tracestate unit tests (w3c/trace-context test/tracecontext/test_tracestate.py)', () => {
  test('ctor with string and delimiters', () => {
    assert.equal(parseTracestate('foo=1,bar=2,baz=3'), 'foo=1,bar=2,baz=3')
    assert.equal(parseTracestate('foobarbaz'), undefined)
    assert.equal(parseTracestate('foo=1, \t bar=2'), 'foo=1,bar=2')
    assert.equal(parseTracestate('foo=1,\t \tbar=2'), 'foo=1,bar=2')
  })

  test('all allowed characters in one member', () => {
    let header = ''
    for (let c = 0x61; c <= 0x7a; c++) header += String.fromCharCode(c)
    header += '0123456789_-*/@='
    for (let c = 0x20; c <= 0x2b; c++) header += String.fromCharCode(c)
    for (let c = 0x2d; c <= 0x3c; c++) header += String.fromCharCode(c)
    for (let c = 0x3e; c <= 0x7e; c++) header += String.fromCharCode(c)
    assert.equal(parseTracestate(header), header)
  })

  test('load order is kept', () => {
    assert.equal(parseTracestate(['foo=1', 'bar=2', 'baz=3']), 'foo=1,bar=2,baz=3')
    assert.equal(parseTracestate(['baz=3', 'bar=2', 'foo=1']), 'baz=3,bar=2,foo=1')
  })
})

// ---------------------------------------------------------------------------------------------

describe('OpenTelemetry JS W3CTraceContextPropagator tests', () => {
  test('inject: sets traceparent, no tracestate', () => {
    const out = new Map<string, string>()
    inject({ traceId: 'd4cda95b652f4a1592b449d5929fda1b', spanId: '6e0c63257de34c92', sampled: true }, W3C, (k, v) => out.set(k, v))
    assert.deepEqual(out, new Map([['traceparent', '00-d4cda95b652f4a1592b449d5929fda1b-6e0c63257de34c92-01']]))
  })

  test('inject: sets traceparent and tracestate', () => {
    const out = new Map<string, string>()
    inject({ traceId: 'd4cda95b652f4a1592b449d5929fda1b', spanId: '6e0c63257de34c92', sampled: true, traceState: 'foo=bar,baz=qux' }, W3C, (k, v) => out.set(k, v))
    assert.equal(out.get('traceparent'), '00-d4cda95b652f4a1592b449d5929fda1b-6e0c63257de34c92-01')
    assert.equal(out.get('tracestate'), 'foo=bar,baz=qux')
  })

  test('inject: ignores an invalid span context', () => {
    const out = new Map<string, string>()
    inject({ traceId: '0'.repeat(32), spanId: '0'.repeat(16), sampled: false, traceState: 'foo=bar,baz=qux' }, ALL, (k, v) => out.set(k, v))
    assert.equal(out.size, 0)
  })

  test('extract: sampled context, current and future versions', () => {
    for (const value of [
      '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
      'cc-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
      'cc-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-what-the-future-will-be-like',
    ]) {
      assert.deepEqual(extract(carrier({ traceparent: value }), W3C), {
        traceId: '0af7651916cd43dd8448eb211c80319c',
        spanId: 'b7ad6b7169203331',
        sampled: true,
        traceState: undefined,
        format: 'w3c',
        random: false,
      }, value)
    }
  })

  test('extract: missing, invalid, or version 00 with extra fields', () => {
    assert.equal(extract(carrier({}), W3C), undefined)
    assert.equal(extract(carrier({ traceparent: 'invalid!' }), W3C), undefined)
    assert.equal(extract(carrier({ traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra' }), W3C), undefined)
  })

  test('extract: traceparent from a list of one header', () => {
    assert.equal(extract(carrier({ traceparent: ['00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01'] }), W3C)?.spanId, 'b7ad6b7169203331')
  })

  test('extract: tracestate, and multiple tracestate headers combined', () => {
    const tp = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01'
    assert.deepEqual(stateOf(extract(carrier({ traceparent: tp, tracestate: 'foo=bar,baz=qux' }), W3C)), new Map([['foo', 'bar'], ['baz', 'qux']]))
    assert.equal(extract(carrier({ traceparent: tp, tracestate: ['foo=bar,baz=qux', 'quux=quuz'] }), W3C)?.traceState, 'foo=bar,baz=qux,quux=quuz')
  })

  test('extract: invalid traceparent combinations', () => {
    const cases: Record<string, string> = {
      invalidParts_tooShort: '00-ffffffffffffffffffffffffffffffff',
      invalidVersion_notHex: '0x-ffffffffffffffffffffffffffffffff-ffffffffffffffff-00',
      invalidVersion_tooShort: '0-ffffffffffffffffffffffffffffffff-ffffffffffffffff-00',
      invalidVersion_tooLong: '000-ffffffffffffffffffffffffffffffff-ffffffffffffffff-00',
      invalidTraceId_empty: '00--ffffffffffffffff-01',
      invalidTraceId_notHex: '00-fffffffffffffffffffffffffffffffx-ffffffffffffffff-01',
      invalidTraceId_allZeros: '00-00000000000000000000000000000000-ffffffffffffffff-01',
      invalidTraceId_tooShort: '00-ffffffff-ffffffffffffffff-01',
      invalidTraceId_tooLong: '00-ffffffffffffffffffffffffffffffff00-ffffffffffffffff-01',
      invalidSpanId_empty: '00-ffffffffffffffffffffffffffffffff--01',
      invalidSpanId_notHex: '00-ffffffffffffffffffffffffffffffff-fffffffffffffffx-01',
      invalidSpanId_allZeros: '00-ffffffffffffffffffffffffffffffff-0000000000000000-01',
      invalidSpanId_tooShort: '00-ffffffffffffffffffffffffffffffff-ffffffff-01',
      invalidSpanId_tooLong: '00-ffffffffffffffffffffffffffffffff-ffffffffffffffff0000-01',
      invalidFutureVersion: 'ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
      invalidFutureFieldAfterFlag: 'cc-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01.what-the-future-will-not-be-like',
    }
    for (const [name, value] of Object.entries(cases)) {
      assert.equal(extract(carrier({ traceparent: value }), W3C), undefined, name)
    }
  })

  test('extract: OWS in tracestate list members', () => {
    const ctx = extract(carrier({ traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01', tracestate: 'foo=1 \t , \t bar=2, \t baz=3 ' }), W3C)
    assert.deepEqual(stateOf(ctx), new Map([['foo', '1'], ['bar', '2'], ['baz', '3']]))
  })

  test('extract: bad responses from the getter', () => {
    assert.equal(extract(() => 1 as unknown as string, ALL), undefined)
    assert.equal(extract(() => [], ALL), undefined)
    assert.equal(extract(() => undefined, ALL), undefined)
    assert.equal(extract(() => [1, 2] as unknown as string[], ALL), undefined)
    assert.equal(extract(() => ({}) as unknown as string, ALL), undefined)
  })
})

describe('OpenTelemetry JS TraceState tests', () => {
  test('serialise and parse valid states', () => {
    assert.equal(parseTracestate('a=1,b=2'), 'a=1,b=2')
    assert.equal(parseTracestate('a=1'), 'a=1')
    assert.equal(parseTracestate('vendorname2=opaqueValue2,vendorname1=opaqueValue1'), 'vendorname2=opaqueValue2,vendorname1=opaqueValue1')
    assert.equal(parseTracestate('a-b=1,c/d=2,p*q=3,x_y=4'), 'a-b=1,c/d=2,p*q=3,x_y=4')
    assert.equal(parseTracestate('a=1,foo=bar baz'), 'a=1,foo=bar baz')
  })

  test('invalid members (OTel drops the member; we discard the whole tracestate, as W3C strict)', () => {
    assert.equal(parseTracestate(`a=${'b'.repeat(512)}`), undefined)
    assert.equal(parseTracestate(`a=${'b'.repeat(512)},c=d`), undefined)
    assert.equal(parseTracestate('a=1,b,c=3'), undefined)
    assert.equal(parseTracestate('a=1=,b=2'), undefined)
    assert.equal(parseTracestate('invalid.prefix.key=1,a0=0'), undefined)
  })

  test('too many entries (OTel keeps 32; we discard, as W3C strict)', () => {
    const members = Array.from({ length: 32 }, (_, i) => `a${i}=${i}`)
    assert.equal(parseTracestate(members.join(',')), members.join(','))
    assert.equal(parseTracestate(`${members.join(',')},a32=32`), undefined)
  })
})

// ---------------------------------------------------------------------------------------------

describe('OpenTelemetry JS B3SinglePropagator tests', () => {
  const traceId = '80f198ee56343ba864fe8b2a57d3eff7'
  const spanId = 'e457b5a2e4d86bd1'

  test('inject: sampled and not sampled', () => {
    const out = new Map<string, string>()
    inject({ traceId, spanId, sampled: true }, ['b3'], (k, v) => out.set(k, v))
    assert.deepEqual(out, new Map([['b3', `${traceId}-${spanId}-1`]]))
    inject({ traceId, spanId, sampled: false }, ['b3'], (k, v) => out.set(k, v))
    assert.deepEqual(out, new Map([['b3', `${traceId}-${spanId}-0`]]))
  })

  test('inject: no-op on an invalid trace id or span id', () => {
    const out = new Map<string, string>()
    inject({ traceId: '0'.repeat(32), spanId, sampled: true }, ['b3'], (k, v) => out.set(k, v))
    inject({ traceId, spanId: '0'.repeat(16), sampled: true }, ['b3'], (k, v) => out.set(k, v))
    assert.equal(out.size, 0)
  })

  test('extract: trace id, span id, sampling state, parent span id', () => {
    assert.deepEqual(parseB3Single(`${traceId}-${spanId}-1-05e3ac9a4f6e3b90`), { traceId, spanId, sampled: true, traceState: undefined, format: 'b3', random: false })
    assert.equal(parseB3Single(`${traceId}-${spanId}-1`)?.sampled, true)
  })

  test('extract: trace id and span id only (OTel: not sampled; we: deferred)', () => {
    const ctx = parseB3Single(`${traceId}-${spanId}`)
    assert.equal(ctx?.traceId, traceId)
    assert.equal(ctx?.sampled, undefined)
  })

  test('extract: 8-byte trace id is padded', () => {
    assert.equal(parseB3Single(`4aaba1a52cf8ee09-${spanId}`)?.traceId, '00000000000000004aaba1a52cf8ee09')
  })

  test('extract: debug means sampled', () => {
    assert.equal(parseB3Single(`${traceId}-${spanId}-d`)?.sampled, true)
  })

  test('extract: malformed or invalid ids', () => {
    for (const value of [`abc123-${spanId}`, `${traceId}-abc123`, `${'0'.repeat(32)}-${spanId}`, `${traceId}-${'0'.repeat(16)}`]) {
      assert.equal(parseB3Single(value), undefined, value)
      assert.equal(extract(carrier({ b3: value }), ['b3']), undefined, value)
    }
  })
})

describe('OpenTelemetry JS B3MultiPropagator tests', () => {
  const traceId = '0af7651916cd43dd8448eb211c80319c'
  const spanId = 'b7ad6b7169203331'
  const multi = (record: Record<string, unknown>): TraceParent | undefined => parseB3Multi(carrier(record))

  test('inject: trace id, span id and sampled headers', () => {
    const out = new Map<string, string>()
    inject({ traceId: 'd4cda95b652f4a1592b449d5929fda1b', spanId: '6e0c63257de34c92', sampled: true, traceState: 'foo=bar' }, ['b3multi'], (k, v) => out.set(k, v))
    assert.deepEqual(out, new Map([['x-b3-traceid', 'd4cda95b652f4a1592b449d5929fda1b'], ['x-b3-spanid', '6e0c63257de34c92'], ['x-b3-sampled', '1']]))
    inject({ traceId: 'd4cda95b652f4a1592b449d5929fda1b', spanId: '6e0c63257de34c92', sampled: false }, ['b3multi'], (k, v) => out.set(k, v))
    assert.equal(out.get('x-b3-sampled'), '0')
    assert.equal(out.has('x-b3-flags'), false)
  })

  test('inject: not an empty span context', () => {
    const out = new Map<string, string>()
    inject({ traceId: '', spanId: '', sampled: false }, ['b3multi'], (k, v) => out.set(k, v))
    assert.equal(out.size, 0)
  })

  test('extract: deferred (OTel: not sampled; we: undefined)', () => {
    assert.deepEqual(multi({ 'x-b3-traceid': traceId, 'x-b3-spanid': spanId }), { traceId, spanId, sampled: undefined, traceState: undefined, format: 'b3multi', random: false })
  })

  test('extract: sampled flag 1, true, false', () => {
    assert.equal(multi({ 'x-b3-traceid': traceId, 'x-b3-spanid': spanId, 'x-b3-sampled': '1' })?.sampled, true)
    // OTel passes booleans; our getter contract is strings, so the lenient spellings are strings.
    assert.equal(multi({ 'x-b3-traceid': traceId, 'x-b3-spanid': spanId, 'x-b3-sampled': 'true' })?.sampled, true)
    assert.equal(multi({ 'x-b3-traceid': traceId, 'x-b3-spanid': spanId, 'x-b3-sampled': 'false' })?.sampled, false)
    assert.equal(multi({ 'x-b3-traceid': traceId, 'x-b3-spanid': spanId, 'x-b3-sampled': 'True' })?.sampled, true)
    assert.equal(multi({ 'x-b3-traceid': traceId, 'x-b3-spanid': spanId, 'x-b3-sampled': 'False' })?.sampled, false)
  })

  test('extract: debug flag 1 means sampled; other flag values are ignored', () => {
    assert.equal(multi({ 'x-b3-traceid': traceId, 'x-b3-spanid': spanId, 'x-b3-flags': '1' })?.sampled, true)
    assert.equal(multi({ 'x-b3-traceid': traceId, 'x-b3-spanid': spanId, 'x-b3-flags': '0', 'x-b3-sampled': '1' })?.sampled, true)
    assert.equal(multi({ 'x-b3-traceid': traceId, 'x-b3-spanid': spanId, 'x-b3-flags': 'false', 'x-b3-sampled': '0' })?.sampled, false)
    assert.equal(multi({ 'x-b3-traceid': traceId, 'x-b3-spanid': spanId, 'x-b3-flags': 'true', 'x-b3-sampled': '0' })?.sampled, false)
    assert.equal(multi({ 'x-b3-traceid': traceId, 'x-b3-spanid': spanId, 'x-b3-flags': '3', 'x-b3-sampled': '0' })?.sampled, false)
  })

  test('extract: invalid headers', () => {
    assert.equal(multi({ 'x-b3-spanid': spanId }), undefined)
    assert.equal(multi({ 'x-b3-traceid': traceId }), undefined)
    assert.equal(multi({ 'x-b3-traceid': traceId, 'x-b3-spanid': spanId, 'x-b3-sampled': '2' }), undefined)
    assert.equal(multi({}), undefined)
    assert.equal(multi({ 'x-b3-traceid': 'invalid!', 'x-b3-spanid': spanId }), undefined)
  })

  test('extract: from a list of headers', () => {
    assert.equal(multi({ 'x-b3-traceid': [traceId], 'x-b3-spanid': spanId, 'x-b3-sampled': '1' })?.traceId, traceId)
  })

  test('extract: invalid b3 trace ids', () => {
    for (const value of [
      '00-ffffffffffffffffffffffffffffffff',
      '00-ffffffffffffffffffffffffffffffff-ffffffffffffffff-00-01',
      '0x-ffffffffffffffffffffffffffffffff-ffffffffffffffff-00',
      '0-ffffffffffffffffffffffffffffffff-ffffffffffffffff-00',
      '000-ffffffffffffffffffffffffffffffff-ffffffffffffffff-00',
      '00--ffffffffffffffff-01',
      '00-fffffffffffffffffffffffffffffffx-ffffffffffffffff-01',
      '00-00000000000000000000000000000000-ffffffffffffffff-01',
      '00-ffffffff-ffffffffffffffff-01',
      '00-ffffffffffffffffffffffffffffffff00-ffffffffffffffff-01',
      '00-ffffffffffffffffffffffffffffffff--01',
      '00-ffffffffffffffffffffffffffffffff-fffffffffffffffx-01',
      '00-ffffffffffffffffffffffffffffffff-0000000000000000-01',
      '00-ffffffffffffffffffffffffffffffff-ffffffff-01',
      '00-ffffffffffffffffffffffffffffffff-ffffffffffffffff0000-01',
    ]) {
      assert.equal(multi({ 'x-b3-traceid': value, 'x-b3-spanid': spanId }), undefined, value)
    }
  })

  test('extract: bad responses from the getter', () => {
    assert.equal(parseB3Multi(() => 1 as unknown as string), undefined)
    assert.equal(parseB3Multi(() => []), undefined)
    assert.equal(parseB3Multi(() => undefined), undefined)
  })

  test('extract: 64-bit trace ids are left-padded with 0', () => {
    assert.equal(multi({ 'x-b3-traceid': '8448eb211c80319c', 'x-b3-spanid': spanId, 'x-b3-sampled': '1' })?.traceId, '00000000000000008448eb211c80319c')
  })
})

describe('OpenTelemetry JS B3Propagator tests: single header over multi', () => {
  const multiHeaders = { 'x-b3-traceid': 'd4cda95b652f4a1592b449d5929fda1b', 'x-b3-spanid': '6e0c63257de34c92', 'x-b3-sampled': '1' }

  test('extracts single, multi, and single over multi', () => {
    assert.equal(extract(carrier({ b3: '80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1' }), ['b3', 'b3multi'])?.format, 'b3')
    assert.equal(extract(carrier(multiHeaders), ['b3', 'b3multi'])?.format, 'b3multi')
    assert.equal(extract(carrier({ ...multiHeaders, 'x-b3-traceid': ['d4cda95b652f4a1592b449d5929fda1b'] }), ['b3', 'b3multi'])?.traceId, 'd4cda95b652f4a1592b449d5929fda1b')
    const both = extract(carrier({ ...multiHeaders, b3: '80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1' }), ['b3', 'b3multi'])
    assert.equal(both?.format, 'b3')
    assert.equal(both?.traceId, '80f198ee56343ba864fe8b2a57d3eff7')
  })
})

describe('Zipkin b3-propagation README examples', () => {
  test('the multi-header example and its single-header form are the same context', () => {
    const multi = parseB3Multi(carrier({
      'x-b3-traceid': '80f198ee56343ba864fe8b2a57d3eff7',
      'x-b3-parentspanid': '05e3ac9a4f6e3b90',
      'x-b3-spanid': 'e457b5a2e4d86bd1',
      'x-b3-sampled': '1',
    }))
    const single = parseB3Single('80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90')
    assert.deepEqual({ ...multi, format: 'b3' }, single)
    const out = new Map<string, string>()
    inject({ traceId: single!.traceId, spanId: single!.spanId, parentSpanId: '05e3ac9a4f6e3b90', sampled: true }, ['b3'], (k, v) => out.set(k, v))
    assert.equal(out.get('b3'), '80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90')
  })

  test('debug and deny', () => {
    assert.equal(parseB3Single('80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-d')?.sampled, true)
    assert.equal(parseB3Single('80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-0')?.sampled, false)
  })

  test('a bare sampling state carries no trace: a new trace starts', () => {
    for (const value of ['0', '1', 'd']) {
      assert.equal(parseB3Single(value), undefined, value)
      assert.equal(extract(carrier({ b3: value }), ['b3']), undefined, value)
    }
    assert.equal(parseB3Multi(carrier({ 'x-b3-sampled': '0' })), undefined)
  })

  test('malformed data: empty sampled header, nonsense parent span id', () => {
    const ids = { 'x-b3-traceid': '80f198ee56343ba864fe8b2a57d3eff7', 'x-b3-spanid': 'e457b5a2e4d86bd1' }
    assert.equal(parseB3Multi(carrier({ ...ids, 'x-b3-sampled': '' })), undefined)
    assert.equal(parseB3Multi(carrier({ ...ids, 'x-b3-parentspanid': '-' })), undefined)
    assert.equal(parseB3Multi(carrier({ ...ids, 'x-b3-parentspanid': '0000000000000000' })), undefined)
  })
})

// ---------------------------------------------------------------------------------------------

describe('strictness beyond the ported vectors', () => {
  const tp = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01'

  test('upper-case hex is rejected in every format', () => {
    assert.equal(parseTraceparent(tp.toUpperCase()), undefined)
    assert.equal(parseTraceparent('00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01'), undefined)
    assert.equal(parseTraceparent('0A-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01'), undefined)
    assert.equal(parseTraceparent('00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-0A'), undefined)
    assert.equal(parseB3Single('80F198EE56343BA864FE8B2A57D3EFF7-E457B5A2E4D86BD1-1'), undefined)
    assert.equal(parseB3Multi(carrier({ 'x-b3-traceid': '80F198EE56343BA864FE8B2A57D3EFF7', 'x-b3-spanid': 'e457b5a2e4d86bd1' })), undefined)
  })

  test('comma-joined traceparent headers are invalid, for any version', () => {
    assert.equal(parseTraceparent(`${tp},${tp}`), undefined)
    assert.equal(parseTraceparent(`${tp}, ${tp}`), undefined)
    const future = 'cc-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01'
    assert.equal(parseTraceparent(`${future},${future}`), undefined)
    assert.equal(parseTraceparent(`${future}-x, ${future}`), undefined)
    assert.equal(parseTraceparent(`${future}-x,${future}`), undefined)
  })

  test('all trace flags are read; only sampled and random matter', () => {
    assert.equal(parseTraceparent('00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-ff')?.flags, 255)
    const ctx = extract(carrier({ traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-fd' }), W3C)
    assert.equal(ctx?.sampled, true)
    assert.equal(ctx?.random, false)
    assert.equal(parseTraceparent('cc-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-09-')?.version, 'cc')
  })

  test('non-ASCII is rejected', () => {
    assert.equal(parseTraceparent('00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-0\u0661'), undefined)
    assert.equal(parseTraceparent('\u00a000-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01'), undefined)
    assert.equal(parseTraceparent('cc-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-\u00e9'), undefined)
    assert.equal(parseTracestate('foo=caf\u00e9'), undefined)
    assert.equal(parseTracestate('f\u00f6o=1'), undefined)
    assert.equal(parseTracestate('foo=\ud83d\ude00'), undefined)
    assert.equal(parseB3Single('80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-\u0661'), undefined)
    assert.equal(isValidRequestId('r\u00e9quest'), false)
  })

  test('values over 4 KiB are invalid whatever they contain', () => {
    assert.equal(parseTraceparent(`${tp}${' '.repeat(4096)}`), undefined)
    assert.deepEqual(parseTraceparent(`${' '.repeat(4041)}${tp}`), parseTraceparent(tp), 'exactly 4096 characters is still read')
    const big = Array.from({ length: 25 }, (_, i) => `k${i}=${'v'.repeat(200)}`).join(',')
    assert.ok(big.length > 4096)
    assert.equal(parseTracestate(big), undefined)
    assert.equal(parseTracestate([big.slice(0, 2100), big.slice(2100)]), undefined, 'the combined value is bounded too')
    assert.equal(parseB3Single(`${'f'.repeat(5000)}-e457b5a2e4d86bd1`), undefined)
    assert.equal(parseB3Multi(carrier({ 'x-b3-traceid': ` ${'f'.repeat(32)}${' '.repeat(5000)}`, 'x-b3-spanid': 'e457b5a2e4d86bd1' })), undefined)
  })

  test('tracestate arrays: non-strings and too many values are invalid', () => {
    assert.equal(parseTracestate([]), undefined)
    assert.equal(parseTracestate(['foo=1', 2 as unknown as string]), undefined)
    assert.equal(parseTracestate(Array.from({ length: 5000 }, () => '')), undefined)
    assert.equal(parseTracestate(42 as unknown as string), undefined)
  })

  test('a tracestate without a valid traceparent is never read, whatever else is valid', () => {
    const get = carrier({ traceparent: 'junk', tracestate: 'foo=1', b3: '80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1' })
    const ctx = extract(get, ALL)
    assert.equal(ctx?.format, 'b3')
    assert.equal(ctx?.traceState, undefined)
  })

  test('formats are tried in the order given; a bad one falls through to the next', () => {
    const get = carrier({ traceparent: tp, b3: '80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1' })
    assert.equal(extract(get, ['w3c', 'b3'])?.format, 'w3c')
    assert.equal(extract(get, ['b3', 'w3c'])?.format, 'b3')
    assert.equal(extract(get, []), undefined)
    assert.equal(extract(carrier({ traceparent: `${tp}x`, b3: '80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1' }), ['w3c', 'b3'])?.format, 'b3')
  })

  test('b3 single: field grammar', () => {
    const t = '80f198ee56343ba864fe8b2a57d3eff7'
    const s = 'e457b5a2e4d86bd1'
    const p = '05e3ac9a4f6e3b90'
    assert.equal(parseB3Single(`${t}-${s}-${p}`)?.sampled, undefined, 'deferred with a parent, as Brave reads it')
    assert.equal(parseB3Single(` ${t}-${s}-1 `)?.sampled, true, 'OWS tolerated')
    for (const bad of [
      `${t}-${s}-`, `${t}-${s}-1-`, `${t}-${s}--${p}`, `${t}-${s}-2`, `${t}-${s}-11`, `${t}-${s}-1-${p}-`,
      `${t}-${s}-1-${p}-1`, `${t}-${s}-1-${'0'.repeat(16)}`, `${t}-${s}-1-${p.slice(1)}`, `${t}-${s}-1-${p}0`,
      `${t}${s}`, `${t}-${s}x`, `${t.slice(1)}-${s}`, `-${s}`, `${t}-`, '', ' ', '-', `${t}-${s}-1,${t}-${s}-1`,
      `${'0'.repeat(16)}-${s}`, `${t}-${s}-1-${p}\n`, `\n${t}-${s}-1`,
    ]) {
      assert.equal(parseB3Single(bad), undefined, JSON.stringify(bad))
    }
  })

  test('b3 multi: arrays take the first value; OWS tolerated', () => {
    const ctx = parseB3Multi(carrier({
      'x-b3-traceid': ['80f198ee56343ba864fe8b2a57d3eff7', 'junk'],
      'x-b3-spanid': ' e457b5a2e4d86bd1 ',
      'x-b3-sampled': ['0', '1'],
    }))
    assert.equal(ctx?.traceId, '80f198ee56343ba864fe8b2a57d3eff7')
    assert.equal(ctx?.sampled, false)
    assert.equal(parseB3Multi(carrier({ 'x-b3-traceid': '80f198ee56343ba864fe8b2a57d3eff7', 'x-b3-spanid': 'e457b5a2e4d86bd1', 'x-b3-sampled': [7] })), undefined)
  })

  test('inject: a malformed parent span id is left out, never written', () => {
    const out = new Map<string, string>()
    inject({ traceId: newTraceId(), spanId: newSpanId(), parentSpanId: 'nope', sampled: true }, ['b3', 'b3multi'], (k, v) => out.set(k, v))
    assert.equal(out.get('b3')!.split('-').length, 3)
    assert.equal(out.has('x-b3-parentspanid'), false)
  })

  test('inject: an invalid tracestate is not written; a messy one is normalised', () => {
    const traceId = newTraceId()
    const spanId = newSpanId()
    for (const [traceState, want] of [['foo=1,FOO=2', undefined], ['', undefined], [' , ', undefined], [' a=1 ,, b=2 ', 'a=1,b=2']] as const) {
      const out = new Map<string, string>()
      inject({ traceId, spanId, sampled: false, traceState }, W3C, (k, v) => out.set(k, v))
      assert.equal(out.get('tracestate'), want, JSON.stringify(traceState))
      assert.ok(out.has('traceparent'))
    }
  })

  test('inject: ids of the wrong shape write nothing', () => {
    const good = { traceId: newTraceId(), spanId: newSpanId(), sampled: true }
    for (const bad of [
      { ...good, traceId: good.traceId.toUpperCase().replace(/[0-9]/g, 'A') },
      { ...good, traceId: good.traceId.slice(16) },
      { ...good, spanId: `${good.spanId}0` },
      { ...good, spanId: 'zzzzzzzzzzzzzzzz' },
      { ...good, traceId: undefined as unknown as string },
      null as unknown as OutgoingTraceContext,
    ]) {
      let calls = 0
      inject(bad, ALL, () => calls++)
      assert.equal(calls, 0, JSON.stringify(bad))
    }
  })

  test('inject replaces: one set() per header, lower-case names, all in PROPAGATION_HEADERS', () => {
    const calls: string[] = []
    inject({ traceId: newTraceId(), spanId: newSpanId(), parentSpanId: newSpanId(), sampled: true, traceState: 'a=1', random: true }, ALL, (k) => calls.push(k))
    assert.equal(new Set(calls).size, calls.length)
    for (const name of calls) {
      assert.equal(name, name.toLowerCase())
      assert.ok(PROPAGATION_HEADERS.includes(name), name)
    }
    assert.deepEqual([...calls].sort(), ['b3', 'traceparent', 'tracestate', 'x-b3-parentspanid', 'x-b3-sampled', 'x-b3-spanid', 'x-b3-traceid'])
    assert.ok(PROPAGATION_HEADERS.includes('x-b3-flags'), 'a stale debug flag must be strippable')
    assert.ok(Object.isFrozen(PROPAGATION_HEADERS))
  })

  test('formatTraceparent writes only the two defined flags', () => {
    const t = '0af7651916cd43dd8448eb211c80319c'
    const s = 'b7ad6b7169203331'
    assert.equal(formatTraceparent(t, s, false), `00-${t}-${s}-00`)
    assert.equal(formatTraceparent(t, s, true), `00-${t}-${s}-01`)
    assert.equal(formatTraceparent(t, s, false, true), `00-${t}-${s}-02`)
    assert.equal(formatTraceparent(t, s, true, true), `00-${t}-${s}-03`)
  })
})

describe('tracestate truncation (over 512 characters)', () => {
  test('a list within 512 characters is returned as it is', () => {
    const s = Array.from({ length: 8 }, (_, i) => `k${i}=${'v'.repeat(60)}`).join(',')
    assert.ok(s.length <= 512)
    assert.equal(parseTracestate(s), s)
  })

  test('entries are removed from the end, whole', () => {
    const entries = Array.from({ length: 20 }, (_, i) => `v${String(i).padStart(2, '0')}=${'x'.repeat(36)}`)
    const long = entries.join(',')
    assert.ok(long.length > 512)
    const out = parseTracestate(long)!
    assert.ok(out.length <= 512)
    assert.equal(out, entries.slice(0, out.split(',').length).join(','))
    assert.equal(out, entries.slice(0, 12).join(','), '12 × 40 + 11 = 491; a 13th would make 532')
  })

  test('entries over 128 characters go first (the right-most first, only as many as needed)', () => {
    const small1 = 'a=1'
    const long1 = `b=${'x'.repeat(200)}`
    const small2 = 'c=2'
    const long2 = `d=${'y'.repeat(200)}`
    const medium = `e=${'z'.repeat(126)}` // exactly 128 characters: not "larger than 128"
    const small3 = 'f=3'
    const all = [small1, long1, small2, long2, medium, small3]
    assert.ok(all.join(',').length > 512)
    assert.equal(parseTracestate(all.join(',')), [small1, long1, small2, medium, small3].join(','))
  })

  test('then entries are removed from the end', () => {
    const long = `big=${'x'.repeat(200)}`
    const mediums = Array.from({ length: 5 }, (_, i) => `m${i}=${'v'.repeat(118)}`) // 121 characters each
    const out = parseTracestate([long, ...mediums].join(','))
    assert.equal(out, mediums.slice(0, 4).join(','))
  })

  test('a single entry longer than 512 characters cannot be kept', () => {
    const member = `${'k'.repeat(256)}=${'v'.repeat(256)}`
    assert.equal(parseTracestate(member), undefined)
    assert.equal(parseTracestate(`a=1,${member}`), 'a=1')
  })

  test('inject truncates the same way', () => {
    const entries = Array.from({ length: 20 }, (_, i) => `v${String(i).padStart(2, '0')}=${'x'.repeat(36)}`)
    const out = new Map<string, string>()
    inject({ traceId: newTraceId(), spanId: newSpanId(), sampled: true, traceState: entries.join(',') }, W3C, (k, v) => out.set(k, v))
    assert.equal(out.get('tracestate'), entries.slice(0, 12).join(','))
  })

  test('normalisation is idempotent', () => {
    const messy = ` a=1 ,,\tb= 2\t, a=3 ,${'c'.repeat(100)}=${'d'.repeat(200)},e=5`
    const once = parseTracestate(messy)!
    assert.equal(once, `a=1,b= 2,${'c'.repeat(100)}=${'d'.repeat(200)},e=5`)
    assert.equal(parseTracestate(once), once)
  })
})

describe('round trips: inject → extract', () => {
  for (const format of ['w3c', 'b3', 'b3multi'] as const) {
    test(format, () => {
      for (let i = 0; i < 200; i++) {
        const ctx: OutgoingTraceContext = {
          traceId: newTraceId(),
          spanId: newSpanId(),
          parentSpanId: i % 2 === 0 ? newSpanId() : undefined,
          sampled: i % 3 === 0,
          traceState: i % 4 === 0 ? `congo=${i},rojo=00f067aa0ba902b7` : undefined,
          random: i % 5 === 0,
        }
        const sent = new Map<string, string>()
        inject(ctx, [format], (k, v) => sent.set(k, v))
        const got = extract((name) => sent.get(name), [format])
        assert.ok(got, `${format} ${JSON.stringify(ctx)}`)
        assert.equal(got.traceId, ctx.traceId)
        assert.equal(got.spanId, ctx.spanId)
        assert.equal(got.sampled, ctx.sampled)
        assert.equal(got.format, format)
        assert.equal(got.traceState, format === 'w3c' ? ctx.traceState : undefined)
        assert.equal(got.random, format === 'w3c' ? ctx.random : false)
      }
    })
  }

  test('w3c in, b3 and b3multi out, and back', () => {
    const inbound = extract(carrier({ traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' }), ALL)!
    const sent = new Map<string, string>()
    const spanId = newSpanId()
    inject({ traceId: inbound.traceId, spanId, parentSpanId: inbound.spanId, sampled: inbound.sampled === true }, ALL, (k, v) => sent.set(k, v))
    for (const format of ALL) {
      const got = extract((name) => sent.get(name), [format])
      assert.deepEqual([got?.traceId, got?.spanId, got?.sampled], [inbound.traceId, spanId, true], format)
    }
  })

  test('a 64-bit B3 trace id goes out padded to 128 bits', () => {
    const inbound = parseB3Single('4aaba1a52cf8ee09-e457b5a2e4d86bd1-1')!
    const sent = new Map<string, string>()
    inject({ traceId: inbound.traceId, spanId: newSpanId(), sampled: true }, ['w3c', 'b3'], (k, v) => sent.set(k, v))
    assert.equal(parseTraceparent(sent.get('traceparent')!)?.traceId, '00000000000000004aaba1a52cf8ee09')
    assert.ok(sent.get('b3')!.startsWith('00000000000000004aaba1a52cf8ee09-'))
  })
})

// ---------------------------------------------------------------------------------------------

/** Deterministic PRNG (mulberry32) so a fuzz failure can be replayed from its seed. */
function prng(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

// Reference oracles written straight from the grammars, as regular expressions: the
// hand-written scanners must agree with them on every input.
const REF_TRACEPARENT = /^[ \t]*([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-[\x21-\x2b\x2d-\x7e]*)?[ \t]*$/
function refTraceparent(s: string): string | undefined {
  if (s.length > 4096) return undefined
  const m = REF_TRACEPARENT.exec(s)
  if (!m) return undefined
  const [, version, traceId, spanId, flags, tail] = m
  if (version === 'ff' || (version === '00' && tail !== undefined)) return undefined
  if (/^0+$/.test(traceId!) || /^0+$/.test(spanId!)) return undefined
  return `${version}-${traceId}-${spanId}-${flags}`
}

const REF_B3 = /^[ \t]*([0-9a-f]{16}|[0-9a-f]{32})-([0-9a-f]{16})(?:-([01d]))?(?:-([0-9a-f]{16}))?[ \t]*$/
function refB3(s: string): string | undefined {
  if (s.length > 4096) return undefined
  const m = REF_B3.exec(s)
  if (!m) return undefined
  const [, traceId, spanId, state, parent] = m
  if (/^0+$/.test(traceId!) || /^0+$/.test(spanId!) || (parent !== undefined && /^0+$/.test(parent))) return undefined
  return `${traceId!.padStart(32, '0')}-${spanId}-${state === undefined ? 'u' : state === '0' ? '0' : '1'}`
}

const REF_MEMBER = /^([a-z0-9][a-z0-9_\-*/@]{0,255})=([\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e])$/
/** The tracestate before truncation, or undefined when invalid. */
function refTracestate(s: string): string | undefined {
  if (s.length > 4096) return undefined
  const members = s.split(',').map((m) => m.replace(/^[ \t]+|[ \t]+$/g, '')).filter((m) => m !== '')
  if (members.length === 0 || members.length > 32) return undefined
  const seen = new Set<string>()
  const out: string[] = []
  for (const member of members) {
    const m = REF_MEMBER.exec(member)
    if (!m) return undefined
    if (seen.has(m[1]!)) continue
    seen.add(m[1]!)
    out.push(member)
  }
  return out.join(',')
}

const SEEDS = [
  '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
  'cc-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-03-future-fields',
  'rojo=00f067aa0ba902b7,congo=t61rcWkgMzE',
  ' foo=1 \t, bar@baz=2 ,, k/e*y-_=a b ',
  '80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90',
  '4aaba1a52cf8ee09-e457b5a2e4d86bd1-d',
  'e457b5a2e4d86bd1',
  '1',
  '7a0c3f2e-6b1d-4c55-9e2a-3f1b2c4d5e6f',
]
const ALPHABET = '0123456789abcdefABCDEF-=,@ \t*/_.xyz;:\r\n\0'
const UNICODE = ['\u00e9', '\u0661', '\u00a0', '\u2028', '\ufeff', '\ud83d\ude00', '\ud800', '\udfff', '\u0000', '\u007f']

function randomString(rand: () => number): string {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!
  const roll = rand()
  if (roll < 0.02) {
    // huge: beyond the 4 KiB bound, sometimes valid-looking
    return pick(SEEDS).repeat(1 + Math.floor(rand() * 2000))
  }
  if (roll < 0.55) {
    // mutate a valid value: replace, insert, delete, duplicate or cut, a few times
    let s = pick(SEEDS)
    const edits = Math.floor(rand() * 4) // 0 to 3: a quarter stay valid, for the accepting paths
    for (let e = 0; e < edits; e++) {
      const at = Math.floor(rand() * (s.length + 1))
      const ch = rand() < 0.15 ? pick(UNICODE) : rand() < 0.5 ? pick([...'0123456789abcdef']) : pick([...ALPHABET])
      switch (Math.floor(rand() * 5)) {
        case 0: s = s.slice(0, at) + ch + s.slice(at + 1); break
        case 1: s = s.slice(0, at) + ch + s.slice(at); break
        case 2: s = s.slice(0, at) + s.slice(at + 1); break
        case 3: s = `${s},${pick(SEEDS)}`; break
        default: s = s.slice(0, at)
      }
    }
    return s
  }
  // random characters, from ASCII-ish or the whole BMP
  const length = Math.floor(rand() * (rand() < 0.9 ? 80 : 600))
  let s = ''
  for (let i = 0; i < length; i++) {
    const r = rand()
    s += r < 0.7 ? pick([...ALPHABET]) : r < 0.85 ? String.fromCharCode(Math.floor(rand() * 128)) : r < 0.95 ? pick(UNICODE) : String.fromCharCode(Math.floor(rand() * 0x10000))
  }
  return s
}

const LOWER_HEX_32 = /^(?!0{32})[0-9a-f]{32}$/
const LOWER_HEX_16 = /^(?!0{16})[0-9a-f]{16}$/

/** Whatever was read must be usable as it is, and survive inject → extract unchanged. */
function assertUsable(ctx: TraceParent | undefined, input: string): void {
  if (ctx === undefined) return
  const why = JSON.stringify(input.slice(0, 200))
  assert.match(ctx.traceId, LOWER_HEX_32, why)
  assert.match(ctx.spanId, LOWER_HEX_16, why)
  assert.ok(ctx.sampled === undefined || typeof ctx.sampled === 'boolean', why)
  if (ctx.traceState !== undefined) {
    assert.ok(ctx.traceState.length <= 512, why)
    assert.equal(parseTracestate(ctx.traceState), ctx.traceState, why)
  }
  const sent = new Map<string, string>()
  inject({ traceId: ctx.traceId, spanId: ctx.spanId, sampled: ctx.sampled === true, traceState: ctx.traceState, random: ctx.random }, [ctx.format], (k, v) => sent.set(k, v))
  const back = extract((name) => sent.get(name), [ctx.format])
  assert.equal(back?.traceId, ctx.traceId, why)
  assert.equal(back?.traceState, ctx.traceState, why)
}

describe('fuzz: 10,000 random strings, never a throw, never garbage', () => {
  test('every parser agrees with its reference grammar and returns usable contexts', () => {
    const seed = 0x5eed1e55
    const rand = prng(seed)
    const accepted = { traceparent: 0, b3: 0, tracestate: 0, extract: 0 }
    for (let i = 0; i < 10_000; i++) {
      const s = randomString(rand)
      const why = `seed ${seed}, case ${i}: ${JSON.stringify(s.slice(0, 200))}`

      const tp = parseTraceparent(s)
      const tpKey = tp && `${tp.version}-${tp.traceId}-${tp.spanId}-${tp.flags.toString(16).padStart(2, '0')}`
      assert.equal(tpKey, refTraceparent(s), why)

      const b3 = parseB3Single(s)
      const b3Key = b3 && `${b3.traceId}-${b3.spanId}-${b3.sampled === undefined ? 'u' : b3.sampled ? '1' : '0'}`
      assert.equal(b3Key, refB3(s), why)

      const ts = parseTracestate(s)
      const ref = refTracestate(s)
      if (ref === undefined || ref.length <= 512) assert.equal(ts, ref, why)
      else if (ts !== undefined) assert.ok(ts.length <= 512 && parseTracestate(ts) === ts, why)
      assert.equal(parseTracestate([s, s]), parseTracestate(`${s},${s}`), why)

      const get = carrier({
        traceparent: s, tracestate: [s, 'a=1'], b3: s,
        'x-b3-traceid': s, 'x-b3-spanid': s, 'x-b3-sampled': s, 'x-b3-flags': s, 'x-b3-parentspanid': s,
      })
      const ctx = extract(get, ALL)
      assertUsable(ctx, s)
      assertUsable(parseB3Multi(get), s)
      if (tp) assertUsable(extract(carrier({ traceparent: s, tracestate: s }), W3C), s)
      if (tp) accepted.traceparent++
      if (b3) accepted.b3++
      if (ts) accepted.tracestate++
      if (ctx) accepted.extract++

      const requestId = isValidRequestId(s)
      assert.equal(requestId, /^[\x21-\x2b\x2d-\x7e]{1,128}$/.test(s), why)
    }
    // The corpus must exercise the accepting paths too, not only rejection.
    for (const [parser, count] of Object.entries(accepted)) {
      assert.ok(count > 300, `only ${count} of 10,000 fuzz inputs were accepted by ${parser}`)
    }
  })

  test('hostile values of every type through every entry point', () => {
    const values: unknown[] = [undefined, null, 0, 1, NaN, true, {}, [], [[]], [null], [1, 2], Symbol('x'), () => 'x', 'x'.repeat(1 << 20), ['a=1'.repeat(2000), 'b=2']]
    for (const v of values) {
      const get = (() => v) as Getter
      assert.doesNotThrow(() => {
        extract(get, ALL)
        parseB3Multi(get)
        parseTraceparent(v as string)
        parseTracestate(v as string)
        parseB3Single(v as string)
        isValidRequestId(v as string)
        inject(v as OutgoingTraceContext, ALL, () => undefined)
        inject({ traceId: v, spanId: v, parentSpanId: v, sampled: v, traceState: v, random: v } as unknown as OutgoingTraceContext, ALL, () => undefined)
      })
    }
  })
})

// ---------------------------------------------------------------------------------------------

describe('ids', () => {
  test('trace ids: 32 lower hex, never all zeros, distinct across 100k draws', () => {
    const seen = new Set<string>()
    for (let i = 0; i < 100_000; i++) {
      const id = newTraceId()
      assert.match(id, LOWER_HEX_32)
      seen.add(id)
    }
    assert.equal(seen.size, 100_000)
  })

  test('span ids: 16 lower hex, never all zeros, distinct across 100k draws', () => {
    const seen = new Set<string>()
    for (let i = 0; i < 100_000; i++) {
      const id = newSpanId()
      assert.match(id, LOWER_HEX_16)
      seen.add(id)
    }
    assert.equal(seen.size, 100_000)
  })

  test('trace ids use every hex digit in every position (no stuck bits)', () => {
    const perPosition = Array.from({ length: 32 }, () => new Set<string>())
    for (let i = 0; i < 2000; i++) {
      const id = newTraceId()
      for (let p = 0; p < 32; p++) perPosition[p]!.add(id[p]!)
    }
    assert.ok(perPosition.every((s) => s.size === 16))
  })

  test('request ids: UUID v4, distinct, and valid request ids', () => {
    const seen = new Set<string>()
    for (let i = 0; i < 100_000; i++) {
      const id = newRequestId()
      seen.add(id)
      if (i < 1000) {
        assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/)
        assert.ok(isValidRequestId(id))
      }
    }
    assert.equal(seen.size, 100_000)
  })

  test('request ids: version 4 and variant 10 fixed, every other digit free (no stuck bits), whatever draws came before', () => {
    const perPosition = Array.from({ length: 36 }, () => new Set<string>())
    for (let i = 0; i < 4000; i++) {
      // Draws of other sizes in between move where each id starts in the random pool.
      if (i % 3 === 0) newSpanId()
      if (i % 7 === 0) newTraceId()
      const id = newRequestId()
      for (let p = 0; p < 36; p++) perPosition[p]!.add(id[p]!)
    }
    for (let p = 0; p < 36; p++) {
      const digits = [...perPosition[p]!].sort().join('')
      if (p === 8 || p === 13 || p === 18 || p === 23) assert.equal(digits, '-', `position ${p}`)
      else if (p === 14) assert.equal(digits, '4', 'version')
      else if (p === 19) assert.equal(digits, '89ab', 'variant')
      else assert.equal(digits, '0123456789abcdef', `position ${p}`)
    }
  })

  test('isValidRequestId', () => {
    for (const ok of ['a', 'x'.repeat(128), '7a0c3f2e-6b1d-4c55-9e2a-3f1b2c4d5e6f', 'req_1:abc/def+ghi=', '~!#$%&*()']) {
      assert.equal(isValidRequestId(ok), true, ok)
    }
    for (const bad of ['', 'x'.repeat(129), 'a b', 'a,b', 'a\tb', 'a\nb', '\u00e9', 'a\u0000', 'a\u007f']) {
      assert.equal(isValidRequestId(bad), false, JSON.stringify(bad))
    }
  })
})
