/**
 * Route-matching table tests ported from Envoy's router_check tool cases:
 * envoyproxy/envoy test/tools/router_check/test/config/ (Apache-2.0),
 * https://github.com/envoyproxy/envoy/tree/main/test/tools/router_check/test/config
 *
 * Each fixture under test/fixtures/router-check/ is one Envoy case file: its route config
 * translated into our model (`config`) and its golden tests (`tests`), with `input` and
 * `validate` kept in Envoy's field names so they can be compared with the original. The
 * fixture's `header` credits the source, `source` pins the Envoy commits, `notes` say what was
 * translated or dropped and `skipped` lists the Envoy tests not ported, with the reason.
 *
 * How Envoy's fields map onto a RouteDecision (see `check` below):
 * - `cluster_name`: the single target's cluster; with `random_value`, the cluster Envoy's pick
 *   rule (random_value % total weight, cumulative ranges in order) selects from our targets;
 *   `''` means the request is not forwarded to a cluster.
 * - `virtual_host_name`: `virtualHost`. `path_rewrite` / `host_rewrite`: the `path` / `host`
 *   sent upstream (`''`: not forwarded). `timeout`: `timeoutMs`.
 * - `path_redirect`: Envoy's full Location, compared with `location` (`''`: not a redirect);
 *   `code_redirect`: the redirect `status`.
 * - `request_header_matches` on `:authority`, `:path`, `:method`: the upstream host, path and
 *   the request method. `response_header_matches` on `content-length`: the byte length of a
 *   direct response body (absent when the body is empty, as Envoy sends it).
 * - `expect` holds extra assertions in our model (kind, route name, status, body, targets).
 * - Input `ssl: true` is an https:// URL; `internal` has no counterpart and is only kept where
 *   the outcome does not depend on it.
 *
 * Envoy files and features NOT ported (no counterpart in our model): Runtime.yaml and
 * DefaultRuntime.yaml (runtime_fraction), ClusterHeader.yaml (cluster_header),
 * DynamicMetadata.yaml / RouteMetadata.yaml (metadata matching), virtual clusters
 * (virtual_cluster_name, e.g. TestRoutes Test19..Test30), require_tls and the `internal` input
 * (Redirect Test_3..Test_5), internal_only_headers, header formatters such as
 * %DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT% (TestRoutes "RequestHeaderMatches 2"), and response
 * header checks other than content-length. Envoy's `grpc: {}` match is translated into the
 * content-type header test it performs (see HeaderMatchedRouting.json notes).
 */
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { after, before, describe, it } from 'node:test'
import { createMesh, parseDuration, type MeshConfig, type RouteDecision } from '../src/index.js'

/** The Envoy case files ported, one fixture each. */
const FILES = [
  'TestRoutes',
  'HeaderMatchedRouting',
  'ContentType',
  'Redirect',
  'Redirect2',
  'Redirect3',
  'Redirect4',
  'DirectResponse',
  'Weighted',
  'ComprehensiveRoutes',
  'Timeout',
  'DetailedCoverage',
] as const

interface EnvoyInput {
  readonly authority: string
  readonly path: string
  readonly method?: string
  readonly ssl?: boolean
  readonly internal?: boolean
  readonly random_value?: number
  readonly additional_headers?: readonly { readonly key: string; readonly value: string }[]
}

interface EnvoyHeaderCheck {
  readonly name: string
  readonly string_match?: { readonly exact?: string }
  readonly exact_match?: string
  readonly range_match?: { readonly start: number; readonly end: number }
  readonly present_match?: boolean
  readonly invert_match?: boolean
}

interface EnvoyValidate {
  readonly cluster_name?: string
  readonly virtual_host_name?: string
  readonly path_rewrite?: string
  readonly host_rewrite?: string
  readonly path_redirect?: string
  readonly code_redirect?: number
  readonly timeout?: string
  readonly request_header_matches?: readonly EnvoyHeaderCheck[]
  readonly response_header_matches?: readonly EnvoyHeaderCheck[]
}

interface OurExpect {
  readonly kind?: RouteDecision['kind']
  readonly virtualHost?: string
  readonly route?: string
  readonly status?: number
  readonly body?: string
  readonly targets?: readonly { readonly cluster: string; readonly weight: number }[]
}

interface Case {
  readonly test_name: string
  readonly input: EnvoyInput
  readonly validate: EnvoyValidate
  readonly expect?: OurExpect
}

interface Fixture {
  readonly header: string
  readonly source: { readonly repository: string; readonly license: string; readonly config: string; readonly golden: string }
  readonly notes: readonly string[]
  readonly skipped: readonly { readonly test_name: string; readonly reason: string }[]
  readonly config: MeshConfig
  readonly tests: readonly Case[]
}

const VALIDATE_KEYS = new Set([
  'cluster_name', 'virtual_host_name', 'path_rewrite', 'host_rewrite', 'path_redirect',
  'code_redirect', 'timeout', 'request_header_matches', 'response_header_matches',
])
const INPUT_KEYS = new Set(['authority', 'path', 'method', 'ssl', 'internal', 'random_value', 'additional_headers'])
const EXPECT_KEYS = new Set(['kind', 'virtualHost', 'route', 'status', 'body', 'targets'])

function loadFixture(name: string): Fixture {
  const url = new URL(`../../test/fixtures/router-check/${name}.json`, import.meta.url)
  return JSON.parse(readFileSync(url, 'utf8')) as Fixture
}

type ClusterDecision = Extract<RouteDecision, { kind: 'cluster' }>
type RedirectDecision = Extract<RouteDecision, { kind: 'redirect' }>
type DirectDecision = Extract<RouteDecision, { kind: 'direct' }>

const show = (d: RouteDecision): string => JSON.stringify(d)

function asCluster(d: RouteDecision, field: string): ClusterDecision {
  if (d.kind !== 'cluster') assert.fail(`${field}: expected the request to be forwarded to a cluster, got ${show(d)}`)
  return d
}

function asRedirect(d: RouteDecision, field: string): RedirectDecision {
  if (d.kind !== 'redirect') assert.fail(`${field}: expected a redirect, got ${show(d)}`)
  return d
}

function asDirect(d: RouteDecision, field: string): DirectDecision {
  if (d.kind !== 'direct') assert.fail(`${field}: expected a direct response, got ${show(d)}`)
  return d
}

/**
 * Envoy's weighted cluster pick (RouteEntryImplBase::pickWeightedCluster): the entry whose
 * cumulative range [begin, end) holds `randomValue % totalWeight`, in config order.
 */
function envoyPick(targets: ClusterDecision['targets'], randomValue: number): string | undefined {
  const total = targets.reduce((sum, t) => sum + t.weight, 0)
  const selected = randomValue % total
  let begin = 0
  for (const t of targets) {
    const end = begin + t.weight
    if (selected >= begin && selected < end) return t.cluster
    begin = end
  }
  return undefined
}

/** The query our router takes for an Envoy router_check input. */
function toQuery(input: EnvoyInput): { url: string; method: string; headers: Record<string, string | string[]> } {
  for (const k of Object.keys(input)) assert.ok(INPUT_KEYS.has(k), `unsupported input field ${k}`)
  const headers: Record<string, string | string[]> = {}
  for (const { key, value } of input.additional_headers ?? []) {
    const prev = headers[key]
    headers[key] = prev === undefined ? value : [...(Array.isArray(prev) ? prev : [prev]), value]
  }
  return {
    url: `${input.ssl === true ? 'https' : 'http'}://${input.authority}${input.path}`,
    method: input.method ?? 'GET',
    headers,
  }
}

/** Envoy's header check value as our decision gives it. */
function requestHeader(d: RouteDecision, name: string, method: string): string {
  switch (name) {
    case ':authority': return asCluster(d, name).host
    case ':path': return asCluster(d, name).path
    case ':method': return method
    default: return assert.fail(`request_header_matches on ${name} cannot be checked with mesh.route()`)
  }
}

function checkContentLength(d: RouteDecision, m: EnvoyHeaderCheck): void {
  assert.equal(m.name.toLowerCase(), 'content-length', `response_header_matches on ${m.name} cannot be checked with mesh.route()`)
  const direct = asDirect(d, 'response_header_matches')
  const bytes = Buffer.byteLength(direct.body ?? '')
  const value = bytes === 0 ? undefined : String(bytes)
  if (m.exact_match !== undefined) {
    assert.equal(value, m.exact_match, 'content-length')
  } else if (m.string_match?.exact !== undefined) {
    assert.equal(value, m.string_match.exact, 'content-length')
  } else if (m.range_match !== undefined) {
    assert.ok(value !== undefined, 'content-length: expected a body')
    const n = Number(value)
    assert.ok(n >= m.range_match.start && n < m.range_match.end, `content-length ${n} not in [${m.range_match.start}, ${m.range_match.end})`)
  } else if (m.present_match !== undefined) {
    const present = value !== undefined
    assert.equal(present !== (m.invert_match === true), m.present_match, `content-length present: ${present}`)
  } else {
    assert.fail(`unsupported response header check ${JSON.stringify(m)}`)
  }
}

/** Checks one decision against Envoy's golden `validate` and our extra `expect`. */
function check(d: RouteDecision, c: Case, method: string): void {
  const v = c.validate
  for (const k of Object.keys(v)) assert.ok(VALIDATE_KEYS.has(k), `unsupported validate field ${k}`)

  if (v.cluster_name !== undefined) {
    if (v.cluster_name === '') {
      assert.notEqual(d.kind, 'cluster', `cluster_name '': expected no upstream cluster, got ${show(d)}`)
    } else {
      const cd = asCluster(d, 'cluster_name')
      if (c.input.random_value !== undefined) {
        assert.equal(envoyPick(cd.targets, c.input.random_value), v.cluster_name, `cluster_name with random_value ${c.input.random_value}: targets ${JSON.stringify(cd.targets)}`)
      } else {
        assert.deepEqual(cd.targets.map((t) => t.cluster), [v.cluster_name], 'cluster_name')
      }
    }
  }
  if (v.virtual_host_name !== undefined) {
    assert.ok('virtualHost' in d, `virtual_host_name: no virtual host in ${show(d)}`)
    assert.equal(d.virtualHost, v.virtual_host_name, 'virtual_host_name')
  }
  if (v.path_rewrite !== undefined) {
    if (v.path_rewrite === '') assert.notEqual(d.kind, 'cluster', `path_rewrite '': expected no upstream request, got ${show(d)}`)
    else assert.equal(asCluster(d, 'path_rewrite').path, v.path_rewrite, 'path_rewrite')
  }
  if (v.host_rewrite !== undefined) {
    if (v.host_rewrite === '') assert.notEqual(d.kind, 'cluster', `host_rewrite '': expected no upstream request, got ${show(d)}`)
    else assert.equal(asCluster(d, 'host_rewrite').host, v.host_rewrite, 'host_rewrite')
  }
  if (v.path_redirect !== undefined) {
    if (v.path_redirect === '') assert.notEqual(d.kind, 'redirect', `path_redirect '': expected no redirect, got ${show(d)}`)
    else assert.equal(asRedirect(d, 'path_redirect').location, v.path_redirect, 'path_redirect')
  }
  if (v.code_redirect !== undefined) {
    assert.equal(asRedirect(d, 'code_redirect').status, v.code_redirect, 'code_redirect')
  }
  if (v.timeout !== undefined) {
    assert.equal(asCluster(d, 'timeout').timeoutMs, parseDuration(v.timeout), 'timeout')
  }
  for (const m of v.request_header_matches ?? []) {
    const want = m.string_match?.exact
    if (want === undefined) assert.fail(`unsupported request header check ${JSON.stringify(m)}`)
    const got = requestHeader(d, m.name, method)
    assert.equal(got === want, m.invert_match !== true, `request header ${m.name}: ${got}`)
  }
  for (const m of v.response_header_matches ?? []) checkContentLength(d, m)

  const e = c.expect
  if (e === undefined) return
  for (const k of Object.keys(e)) assert.ok(EXPECT_KEYS.has(k), `unsupported expect field ${k}`)
  if (e.kind !== undefined) assert.equal(d.kind, e.kind, `kind: ${show(d)}`)
  if (e.virtualHost !== undefined) {
    assert.ok('virtualHost' in d, `virtualHost: none in ${show(d)}`)
    assert.equal(d.virtualHost, e.virtualHost, 'virtualHost')
  }
  if (e.route !== undefined) {
    assert.ok('route' in d, `route: none in ${show(d)}`)
    assert.equal(d.route, e.route, 'route')
  }
  if (e.status !== undefined) {
    assert.ok(d.kind === 'direct' || d.kind === 'redirect', `status: ${show(d)}`)
    assert.equal(d.status, e.status, 'status')
  }
  if (e.body !== undefined) assert.equal(asDirect(d, 'body').body, e.body, 'body')
  if (e.targets !== undefined) {
    assert.deepEqual(asCluster(d, 'targets').targets.map((t) => ({ cluster: t.cluster, weight: t.weight })), e.targets, 'targets')
  }
}

const fixtures = FILES.map((name) => ({ name, fixture: loadFixture(name) }))

describe('router table (ported from Envoy router_check)', () => {
  it('every fixture credits its Envoy source and holds checks', () => {
    let checks = 0
    for (const { name, fixture } of fixtures) {
      assert.equal(
        fixture.header,
        `Ported from envoyproxy/envoy test/tools/router_check/test/config/${name}.yaml (Apache-2.0)`,
      )
      assert.equal(fixture.source.license, 'Apache-2.0')
      assert.ok(fixture.tests.length > 0, `${name} has no tests`)
      checks += fixture.tests.length
    }
    assert.ok(checks >= 40, `only ${checks} checks ported`)
  })

  for (const { name, fixture } of fixtures) {
    describe(name, () => {
      let mesh: ReturnType<typeof createMesh> | undefined
      before(() => {
        try {
          mesh = createMesh({ config: fixture.config })
        } catch (err) {
          const issues = (err as { issues?: unknown }).issues
          throw new Error(`${name}: config rejected: ${(err as Error).message}${issues === undefined ? '' : ` ${JSON.stringify(issues, null, 2)}`}`, { cause: err })
        }
      })
      after(async () => {
        await mesh?.close()
      })

      for (const c of fixture.tests) {
        it(c.test_name, () => {
          assert.ok(mesh !== undefined, 'mesh not created')
          const query = toQuery(c.input)
          const d = mesh.route(query)
          check(d, c, query.method)
        })
      }
    })
  }
})
