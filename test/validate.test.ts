/**
 * Validation: every ConfigIssueCode, with exact paths; many problems at once; hostile input;
 * how createMesh / mesh.update / config files surface a rejected config.
 */
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import {
  ConfigError,
  ConfigIssueCodes,
  createMesh,
  isMeshError,
  MeshError,
  parseDuration,
  validateConfig,
} from '../src/index.js'
import type { ConfigApplied, ConfigIssue, ConfigIssueCode, Mesh, MeshConfig } from '../src/index.js'

// ---------------------------------------------------------------- helpers

type Pair = readonly [path: string, code: ConfigIssueCode]

function show(issues: readonly ConfigIssue[]): string {
  return JSON.stringify(issues, null, 2)
}

/** The issues as [path, code] pairs, in the order reported. */
function pairs(config: unknown): Pair[] {
  return validateConfig(config).map((i) => [i.path, i.code] as const)
}

/** Asserts the config yields exactly these issues (path and code), in this order. */
function expectExactly(config: unknown, expected: readonly Pair[]): ConfigIssue[] {
  const issues = validateConfig(config)
  assert.deepEqual(issues.map((i) => [i.path, i.code]), expected.map(([p, c]) => [p, c]), `got ${show(issues)}`)
  return issues
}

/** Asserts one issue with this path and code exists, and that its message contains each of `words`. */
function expectIssue(config: unknown, path: string, code: ConfigIssueCode, ...words: string[]): ConfigIssue {
  const issues = validateConfig(config)
  const found = issues.find((i) => i.path === path && i.code === code)
  assert.ok(found, `expected ${code} at ${path}; got ${show(issues)}`)
  for (const w of words) assert.ok(found.message.includes(w), `message of ${code} at ${path} should mention ${JSON.stringify(w)}: ${found.message}`)
  return found
}

/** Like {@link expectExactly}, ignoring order (for checks whose document order is not the point). */
function expectSet(config: unknown, expected: readonly Pair[]): ConfigIssue[] {
  const issues = validateConfig(config)
  const key = (p: string, c: string): string => `${p} ${c}`
  assert.deepEqual(issues.map((i) => key(i.path, i.code)).sort(), expected.map(([p, c]) => key(p, c)).sort(), `got ${show(issues)}`)
  return issues
}

function expectValid(config: unknown): void {
  const issues = validateConfig(config)
  assert.deepEqual(issues, [], `expected no issues; got ${show(issues)}`)
}

/** A valid base: a `reviews` cluster with subsets v1/v2, a `ratings` cluster, one virtual host. */
function base(): MeshConfig {
  return {
    clusters: [
      {
        name: 'reviews',
        endpoints: [
          { address: 'http://127.0.0.1:9081', labels: { version: 'v1' } },
          { address: 'http://127.0.0.1:9082', labels: { version: 'v2' }, weight: 2 },
        ],
        subsets: [
          { name: 'v1', labels: { version: 'v1' } },
          { name: 'v2', labels: { version: 'v2' } },
        ],
        loadBalancer: 'round_robin',
        connectTimeout: '250ms',
      },
      { name: 'ratings', endpoints: [{ address: '127.0.0.1:9083' }] },
    ],
    virtualHosts: [
      {
        name: 'reviews',
        domains: ['reviews', 'reviews.default.svc.cluster.local'],
        routes: [
          { name: 'jason', match: { prefix: '/', headers: [{ name: 'end-user', exact: 'jason' }] }, route: { cluster: 'reviews', subset: 'v2' } },
          {
            name: 'split',
            match: { prefix: '/' },
            route: {
              weightedClusters: [
                { cluster: 'reviews', subset: 'v1', weight: 90 },
                { cluster: 'reviews', subset: 'v2', weight: 10 },
              ],
              timeout: '3s',
            },
          },
        ],
      },
    ],
  }
}

/** A config with one virtual host `r` holding `routes`, and the base clusters. */
function withRoutes(...routes: unknown[]): unknown {
  return { clusters: base().clusters, virtualHosts: [{ name: 'r', domains: ['r'], routes }] }
}

/** A config with one cluster holding these extra fields. */
function withCluster(fields: Record<string, unknown>): unknown {
  return { clusters: [{ name: 'c', ...fields }] }
}

/** A config with one listener route whose match is `match`. */
function withListenerMatch(match: unknown): unknown {
  return { listener: { routes: [{ match }] } }
}

// ---------------------------------------------------------------- every code, once

describe('validateConfig: one example per ConfigIssueCode', () => {
  const examples: Record<ConfigIssueCode, { config: unknown; path: string; words: string[] }> = {
    EMPTY_CONFIG: { config: null, path: '', words: ['empty', '{}'] },
    UNKNOWN_FIELD: { config: withCluster({ loadBalancr: 'random' }), path: 'clusters[0].loadBalancr', words: ['loadBalancr', 'loadBalancer'] },
    REQUIRED: { config: { clusters: [{ endpoints: [] }] }, path: 'clusters[0].name', words: ['name'] },
    INVALID_TYPE: { config: withCluster({ endpoints: [{ address: 'x:1', weight: '2' }] }), path: 'clusters[0].endpoints[0].weight', words: ['"2"'] },
    INVALID_VALUE: { config: withCluster({ loadBalancer: 'roundRobin' }), path: 'clusters[0].loadBalancer', words: ['roundRobin', 'round_robin'] },
    INVALID_DURATION: { config: withCluster({ connectTimeout: '5 sec' }), path: 'clusters[0].connectTimeout', words: ['5 sec'] },
    INVALID_ADDRESS: { config: withCluster({ endpoints: [{ address: 'ftp://x:1' }] }), path: 'clusters[0].endpoints[0].address', words: ['ftp'] },
    INVALID_REGEX: { config: withListenerMatch({ safeRegex: '(a)\\1' }), path: 'listener.routes[0].match.safeRegex', words: ['escape'] },
    DUPLICATE_NAME: { config: { clusters: [{ name: 'a' }, { name: 'a' }] }, path: 'clusters[1].name', words: ['"a"'] },
    DUPLICATE_DOMAIN: {
      config: { virtualHosts: [{ name: 'a', domains: ['x'], routes: [] }, { name: 'b', domains: ['x'], routes: [] }] },
      path: 'virtualHosts[1].domains[0]',
      words: ['"x"', '"a"'],
    },
    INVALID_DOMAIN: { config: { virtualHosts: [{ name: 'a', domains: ['a*b'], routes: [] }] }, path: 'virtualHosts[0].domains[0]', words: ['a*b'] },
    UNKNOWN_CLUSTER: { config: withRoutes({ match: { prefix: '/' }, route: { cluster: 'reviw' } }), path: 'virtualHosts[0].routes[0].route.cluster', words: ['reviw', 'reviews'] },
    UNKNOWN_SUBSET: {
      config: withRoutes({ match: { prefix: '/' }, route: { cluster: 'reviews', subset: 'v3' } }),
      path: 'virtualHosts[0].routes[0].route.subset',
      words: ['v3', 'reviews'],
    },
    INVALID_WEIGHTS: {
      config: withRoutes({ match: { prefix: '/' }, route: { weightedClusters: [{ cluster: 'reviews', weight: 0 }] } }),
      path: 'virtualHosts[0].routes[0].route.weightedClusters',
      words: ['0'],
    },
    INVALID_ACTION: { config: withRoutes({ match: { prefix: '/' } }), path: 'virtualHosts[0].routes[0]', words: ['action'] },
    INVALID_MATCH: { config: withListenerMatch({ prefix: '/', path: '/x' }), path: 'listener.routes[0].match', words: ['prefix', 'path'] },
    INVALID_HEADER: {
      config: { virtualHosts: [{ name: 'a', domains: ['a'], routes: [], requestHeadersToAdd: [{ header: { key: 'x', value: 'a\r\nb' } }] }] },
      path: 'virtualHosts[0].requestHeadersToAdd[0].header.value',
      words: [],
    },
    TOO_LARGE: { config: { clusters: [{ name: 'x'.repeat(8193) }] }, path: 'clusters[0].name', words: ['8192'] },
  }

  it('has an example for every code in ConfigIssueCodes', () => {
    assert.deepEqual(Object.keys(examples).sort(), Object.keys(ConfigIssueCodes).sort())
  })

  for (const [code, ex] of Object.entries(examples) as [ConfigIssueCode, (typeof examples)[ConfigIssueCode]][]) {
    it(`${code} at ${ex.path.length > 60 ? `${ex.path.slice(0, 60)}…` : ex.path}`, () => {
      expectIssue(ex.config, ex.path, code, ...ex.words)
      // One mistake, one issue.
      assert.equal(validateConfig(ex.config).length, 1, show(validateConfig(ex.config)))
    })
  }

  it('accepts the base config and an empty one', () => {
    expectValid(base())
    expectValid({})
  })
})

// ---------------------------------------------------------------- structure

describe('validateConfig: unknown fields', () => {
  it('suggests loadBalancer for a typo', () => {
    const issue = expectIssue(withCluster({ loadBalancr: 'random' }), 'clusters[0].loadBalancr', 'UNKNOWN_FIELD')
    assert.match(issue.message, /did you mean "loadBalancer"\?/)
  })

  it('suggests loadBalancer for snake_case load_balancer', () => {
    const issue = expectIssue(withCluster({ load_balancer: 'random' }), 'clusters[0].load_balancer', 'UNKNOWN_FIELD')
    assert.match(issue.message, /did you mean "loadBalancer"\?/)
  })

  it('suggests snake_case → camelCase names deep in a route', () => {
    const issue = expectIssue(
      withRoutes({ match: { prefix: '/' }, route: { weighted_clusters: [{ cluster: 'reviews', weight: 1 }] } }),
      'virtualHosts[0].routes[0].route.weighted_clusters',
      'UNKNOWN_FIELD',
    )
    assert.match(issue.message, /did you mean "weightedClusters"\?/)
  })

  it('suggests at the root (virtualHost → virtualHosts)', () => {
    const issue = expectIssue({ virtualHost: [] }, 'virtualHost', 'UNKNOWN_FIELD')
    assert.match(issue.message, /did you mean "virtualHosts"\?/)
  })

  it('does not suggest a name that is far away', () => {
    const issue = expectIssue(withCluster({ zzzzzzzzzz: 1 }), 'clusters[0].zzzzzzzzzz', 'UNKNOWN_FIELD')
    assert.doesNotMatch(issue.message, /did you mean/)
  })

  it('reports keys named like Object.prototype members (__proto__, constructor, toString) as unknown', () => {
    const config = JSON.parse('{"__proto__": {"x": 1}, "constructor": 1, "clusters": [{"name": "a", "toString": "x", "hasOwnProperty": 2}]}') as unknown
    expectExactly(config, [
      ['__proto__', 'UNKNOWN_FIELD'],
      ['constructor', 'UNKNOWN_FIELD'],
      ['clusters[0].toString', 'UNKNOWN_FIELD'],
      ['clusters[0].hasOwnProperty', 'UNKNOWN_FIELD'],
    ])
  })
})

describe('validateConfig: required fields', () => {
  it('reports each missing required field at its path', () => {
    expectSet(
      {
        clusters: [{ subsets: [{ name: 's' }] }],
        virtualHosts: [{ name: 'v' }, { name: 'w', domains: ['w'], routes: [{ directResponse: { status: 204 } }] }],
        outboundTrafficPolicy: {},
      },
      [
        ['clusters[0].subsets[0].labels', 'REQUIRED'],
        ['clusters[0].name', 'REQUIRED'],
        ['virtualHosts[0].domains', 'REQUIRED'],
        ['virtualHosts[0].routes', 'REQUIRED'],
        ['virtualHosts[1].routes[0].match', 'REQUIRED'],
        ['outboundTrafficPolicy.mode', 'REQUIRED'],
      ],
    )
  })

  it('treats null like a missing field', () => {
    expectExactly({ clusters: [{ name: null }] }, [['clusters[0].name', 'REQUIRED']])
  })

  it('requires header key and value, status of a direct response, weight of a weighted cluster', () => {
    expectSet(
      withRoutes(
        { match: { prefix: '/a' }, directResponse: {}, requestHeadersToAdd: [{ header: {} }] },
        { match: { prefix: '/' }, route: { weightedClusters: [{ cluster: 'reviews' }] } },
      ),
      [
        ['virtualHosts[0].routes[0].directResponse.status', 'REQUIRED'],
        ['virtualHosts[0].routes[0].requestHeadersToAdd[0].header.key', 'REQUIRED'],
        ['virtualHosts[0].routes[0].requestHeadersToAdd[0].header.value', 'REQUIRED'],
        ['virtualHosts[0].routes[1].route.weightedClusters[0].weight', 'REQUIRED'],
      ],
    )
  })
})

describe('validateConfig: wrong types', () => {
  it('string for number, object for list, null list item, number for string, string for boolean', () => {
    const issues = expectExactly(
      {
        clusters: { name: 'a' },
        virtualHosts: [
          null,
          { name: 1, domains: 'a', routes: {} },
          {
            name: 'ok',
            domains: ['ok'],
            routes: [{ match: { prefix: '/', caseSensitive: 'yes', methods: [1] }, directResponse: { status: '200' } }],
          },
        ],
        listener: [],
      },
      [
        ['clusters', 'INVALID_TYPE'],
        ['virtualHosts[0]', 'INVALID_TYPE'],
        ['virtualHosts[1].name', 'INVALID_TYPE'],
        ['virtualHosts[1].domains', 'INVALID_TYPE'],
        ['virtualHosts[1].routes', 'INVALID_TYPE'],
        ['virtualHosts[2].routes[0].match.caseSensitive', 'INVALID_TYPE'],
        ['virtualHosts[2].routes[0].match.methods[0]', 'INVALID_TYPE'],
        ['virtualHosts[2].routes[0].directResponse.status', 'INVALID_TYPE'],
        ['listener', 'INVALID_TYPE'],
      ],
    )
    assert.match(issues[0]!.message, /list/)
    assert.match(issues[3]!.message, /"a"/)
    assert.match(issues[5]!.message, /"yes"/)
    assert.match(issues[7]!.message, /"200"/)
  })

  it('weight as a string is INVALID_TYPE and is not also counted as a zero weight', () => {
    expectExactly(
      withRoutes({ match: { prefix: '/' }, route: { weightedClusters: [{ cluster: 'reviews', weight: '90' }] } }),
      [['virtualHosts[0].routes[0].route.weightedClusters[0].weight', 'INVALID_TYPE']],
    )
  })

  it('NaN and Infinity are not numbers', () => {
    expectExactly(withCluster({ endpoints: [{ address: 'x:1', weight: Number.NaN }, { address: 'x:2', weight: Infinity }] }), [
      ['clusters[0].endpoints[0].weight', 'INVALID_TYPE'],
      ['clusters[0].endpoints[1].weight', 'INVALID_TYPE'],
    ])
  })

  it('labels must be a map of strings', () => {
    expectExactly(withCluster({ endpoints: [{ address: 'x:1', labels: ['v1'] }, { address: 'x:2', labels: { version: 2 } }] }), [
      ['clusters[0].endpoints[0].labels', 'INVALID_TYPE'],
      ['clusters[0].endpoints[1].labels.version', 'INVALID_TYPE'],
    ])
  })

  it('a wrongly typed cluster name is reported once (no semantic echo)', () => {
    expectExactly(withRoutes({ match: { prefix: '/' }, route: { cluster: 5 } }), [['virtualHosts[0].routes[0].route.cluster', 'INVALID_TYPE']])
  })
})

describe('validateConfig: INVALID_VALUE', () => {
  it('enums, ranges, integers, redirect codes, paths, methods', () => {
    expectSet(
      {
        clusters: [
          { name: '', loadBalancer: 'roundRobin', endpoints: [{ address: 'x:1', weight: 129 }, { address: 'x:2', weight: 1.5 }] },
          { name: 'r', ringHash: { minimumRingSize: 2048, maximumRingSize: 1024 } },
        ],
        virtualHosts: [
          {
            name: 'v',
            domains: ['v'],
            routes: [
              { match: { prefix: '/a' }, redirect: { responseCode: 200 } },
              { match: { path: 'no-slash' }, directResponse: { status: 700 } },
              { match: { prefix: '/', methods: ['get'] }, route: { cluster: 'r', hostRewrite: 'a b' } },
            ],
          },
        ],
        outboundTrafficPolicy: { mode: 'registry_only' },
      },
      [
        ['clusters[0].loadBalancer', 'INVALID_VALUE'],
        ['clusters[0].endpoints[0].weight', 'INVALID_VALUE'],
        ['clusters[0].endpoints[1].weight', 'INVALID_VALUE'],
        ['virtualHosts[0].routes[1].directResponse.status', 'INVALID_VALUE'],
        ['outboundTrafficPolicy.mode', 'INVALID_VALUE'],
        ['clusters[0].name', 'INVALID_VALUE'],
        ['clusters[1].ringHash', 'INVALID_VALUE'],
        ['virtualHosts[0].routes[0].redirect.responseCode', 'INVALID_VALUE'],
        ['virtualHosts[0].routes[1].match.path', 'INVALID_VALUE'],
        ['virtualHosts[0].routes[2].match.methods[0]', 'INVALID_VALUE'],
        ['virtualHosts[0].routes[2].route.hostRewrite', 'INVALID_VALUE'],
      ],
    )
  })

  it('names the offending value and suggests the enum member', () => {
    const issue = expectIssue({ outboundTrafficPolicy: { mode: 'registry_only' } }, 'outboundTrafficPolicy.mode', 'INVALID_VALUE', 'registry_only')
    assert.match(issue.message, /did you mean "REGISTRY_ONLY"\?/)
    expectIssue(withCluster({ endpoints: [{ address: 'x:1', weight: 129 }] }), 'clusters[0].endpoints[0].weight', 'INVALID_VALUE', '129')
  })
})

// ---------------------------------------------------------------- durations

describe('validateConfig: durations', () => {
  for (const bad of ['5 sec', -1, '1w', '366d', '', '1.5.5s', '.5s', 's', '0', '9000h', Number.NaN, Infinity, true, {}] as unknown[]) {
    it(`rejects ${typeof bad === 'string' ? JSON.stringify(bad) : String(bad)}`, () => {
      expectExactly(withCluster({ connectTimeout: bad }), [['clusters[0].connectTimeout', 'INVALID_DURATION']])
    })
  }

  it('names the bad value in the message', () => {
    expectIssue(withCluster({ idleTimeout: '5 sec' }), 'clusters[0].idleTimeout', 'INVALID_DURATION', '"5 sec"')
    expectIssue(withCluster({ dnsRefreshRate: -1 }), 'clusters[0].dnsRefreshRate', 'INVALID_DURATION', '-1')
    expectIssue(withRoutes({ match: { prefix: '/' }, route: { cluster: 'reviews', timeout: '1w' } }), 'virtualHosts[0].routes[0].route.timeout', 'INVALID_DURATION', '1w')
  })

  const good: [unknown, number][] = [['250ms', 250], ['3s', 3000], ['1m', 60_000], ['1.5s', 1500], ['1m30s', 90_000], ['1h', 3_600_000], ['1d', 86_400_000], ['1d12h', 129_600_000], ['365d', 31_536_000_000], [0, 0], [0.5, 1], [1.4, 1], [1500, 1500]]
  for (const [value, ms] of good) {
    it(`accepts ${JSON.stringify(value)} = ${ms} ms`, () => {
      expectValid(withCluster({ connectTimeout: value }))
      assert.equal(parseDuration(value), ms)
    })
  }

  it('a route timeout reaches the routing decision in milliseconds', async () => {
    const config = base()
    config.virtualHosts![0]!.routes[1]!.route!.timeout = '1m30s'
    const mesh = createMesh({ config })
    try {
      const d = mesh.route({ url: 'http://reviews/x' })
      assert.equal(d.kind, 'cluster')
      assert.equal(d.kind === 'cluster' ? d.timeoutMs : -1, 90_000)
    } finally {
      await mesh.close()
    }
  })
})

// ---------------------------------------------------------------- addresses

describe('validateConfig: endpoint addresses', () => {
  const bad: [string, string][] = [
    ['ftp://x:1', 'ftp'],
    ['http://x:1/path', 'path'],
    ['user@x:1', 'user'],
    ['x:0', 'port 0'],
    ['', '""'],
    ['x:99999', '99999'],
    ['http://[::1', '[::1'],
  ]
  for (const [address, word] of bad) {
    it(`rejects ${JSON.stringify(address)}`, () => {
      expectExactly(withCluster({ endpoints: [{ address: 'ok:1' }, { address }] }), [['clusters[0].endpoints[1].address', 'INVALID_ADDRESS']])
      expectIssue(withCluster({ endpoints: [{ address: 'ok:1' }, { address }] }), 'clusters[0].endpoints[1].address', 'INVALID_ADDRESS', word)
    })
  }

  for (const address of ['x:1', 'http://x:1', 'https://x:443', 'http://127.0.0.1:8080', '[::1]:8080', 'https://[::1]:8443', 'reviews.default.svc.cluster.local:9080', 'http://x:1/']) {
    it(`accepts ${JSON.stringify(address)}`, () => {
      expectValid(withCluster({ endpoints: [{ address }] }))
    })
  }
})

// ---------------------------------------------------------------- names and references

describe('validateConfig: names and references', () => {
  it('duplicate cluster, subset and virtual host names', () => {
    const issues = expectExactly(
      {
        clusters: [
          { name: 'a', subsets: [{ name: 's', labels: {} }, { name: 's', labels: {} }] },
          { name: 'a' },
        ],
        virtualHosts: [
          { name: 'v', domains: ['v1'], routes: [] },
          { name: 'v', domains: ['v2'], routes: [] },
        ],
      },
      [
        ['clusters[0].subsets[1].name', 'DUPLICATE_NAME'],
        ['clusters[1].name', 'DUPLICATE_NAME'],
        ['virtualHosts[1].name', 'DUPLICATE_NAME'],
      ],
    )
    assert.match(issues[0]!.message, /"s"/)
    assert.match(issues[1]!.message, /"a"/)
    assert.match(issues[2]!.message, /"v"/)
  })

  it('the same subset name in two clusters is fine', () => {
    expectValid({ clusters: [{ name: 'a', subsets: [{ name: 's', labels: {} }] }, { name: 'b', subsets: [{ name: 's', labels: {} }] }] })
  })

  it('duplicate route names within a virtual host (DUPLICATE_NAME says routes too)', () => {
    expectExactly(
      withRoutes(
        { name: 'a', match: { prefix: '/a' }, route: { cluster: 'reviews' } },
        { name: 'a', match: { prefix: '/' }, route: { cluster: 'reviews' } },
      ),
      [['virtualHosts[0].routes[1].name', 'DUPLICATE_NAME']],
    )
  })

  it('unknown cluster, with and without a suggestion', () => {
    const issues = expectExactly(
      withRoutes(
        { match: { prefix: '/a' }, route: { cluster: 'reviw' } },
        { match: { prefix: '/b' }, route: { cluster: 'somethingelse' } },
      ),
      [
        ['virtualHosts[0].routes[0].route.cluster', 'UNKNOWN_CLUSTER'],
        ['virtualHosts[0].routes[1].route.cluster', 'UNKNOWN_CLUSTER'],
      ],
    )
    assert.match(issues[0]!.message, /"reviw".*did you mean "reviews"\?/)
    assert.match(issues[1]!.message, /"somethingelse"/)
    assert.doesNotMatch(issues[1]!.message, /did you mean/)
  })

  it('unknown subset, listing the known ones and suggesting the closest', () => {
    const issue = expectIssue(withRoutes({ match: { prefix: '/' }, route: { cluster: 'reviews', subset: 'V2' } }), 'virtualHosts[0].routes[0].route.subset', 'UNKNOWN_SUBSET', '"V2"', 'v1, v2')
    assert.match(issue.message, /did you mean "v2"\?/)
    expectIssue(withRoutes({ match: { prefix: '/' }, route: { cluster: 'ratings', subset: 'v1' } }), 'virtualHosts[0].routes[0].route.subset', 'UNKNOWN_SUBSET', 'defines none')
  })

  it('exact path of an unknown subset deep in weighted clusters', () => {
    expectExactly(
      withRoutes(
        { match: { prefix: '/a' }, route: { cluster: 'reviews' } },
        { match: { prefix: '/b' }, route: { cluster: 'reviews', subset: 'v1' } },
        {
          match: { prefix: '/' },
          route: {
            weightedClusters: [
              { cluster: 'reviews', subset: 'v1', weight: 50 },
              { cluster: 'reviews', subset: 'v9', weight: 50 },
              { cluster: 'nope', subset: 'v1', weight: 0 },
            ],
          },
        },
      ),
      [
        ['virtualHosts[0].routes[2].route.weightedClusters[1].subset', 'UNKNOWN_SUBSET'],
        ['virtualHosts[0].routes[2].route.weightedClusters[2].cluster', 'UNKNOWN_CLUSTER'],
      ],
    )
  })

  it('listener routes accept no action fields (only name and match)', () => {
    expectExactly({ listener: { routes: [{ match: { prefix: '/' }, route: { cluster: 'x' } }] } }, [['listener.routes[0].route', 'UNKNOWN_FIELD']])
  })
})

// ---------------------------------------------------------------- domains

describe('validateConfig: domains', () => {
  it('the same domain in two virtual hosts, case-insensitively and with a port', () => {
    const issues = expectExactly(
      {
        virtualHosts: [
          { name: 'a', domains: ['Reviews', '*.example.com', 'ratings:9080', '*'], routes: [] },
          { name: 'b', domains: ['reviews', '*.EXAMPLE.com', 'ratings:9081', 'ratings:9080'], routes: [] },
          { name: 'c', domains: ['*'], routes: [] },
        ],
      },
      [
        ['virtualHosts[1].domains[0]', 'DUPLICATE_DOMAIN'],
        ['virtualHosts[1].domains[1]', 'DUPLICATE_DOMAIN'],
        ['virtualHosts[1].domains[3]', 'DUPLICATE_DOMAIN'],
        ['virtualHosts[2].domains[0]', 'DUPLICATE_DOMAIN'],
      ],
    )
    assert.match(issues[0]!.message, /"reviews".*virtual host "a"/)
  })

  it('bad domain patterns', () => {
    const domains = ['a*b', '*.*.com', 'foo bar', '', 'reviews/x', 'rev**']
    const issues = expectExactly(
      { virtualHosts: [{ name: 'a', domains, routes: [] }] },
      domains.map((_, i) => [`virtualHosts[0].domains[${i}]`, 'INVALID_DOMAIN'] as const),
    )
    for (const [i, d] of domains.entries()) if (d !== '') assert.ok(issues[i]!.message.includes(d), issues[i]!.message)
  })

  it('a domain port beyond 65535 is invalid', () => {
    expectExactly({ virtualHosts: [{ name: 'a', domains: ['reviews:99999'], routes: [] }] }, [['virtualHosts[0].domains[0]', 'INVALID_DOMAIN']])
  })

  it('good domain patterns', () => {
    expectValid({ virtualHosts: [{ name: 'a', domains: ['reviews', 'reviews:9080', '*.example.com', '*-bar.com', 'reviews.*', '*', '[::1]:8080', '10.0.0.1'], routes: [] }] })
  })
})

// ---------------------------------------------------------------- weights

describe('validateConfig: weights', () => {
  it('all zero', () => {
    const issue = expectIssue(
      withRoutes({ match: { prefix: '/' }, route: { weightedClusters: [{ cluster: 'reviews', subset: 'v1', weight: 0 }, { cluster: 'reviews', subset: 'v2', weight: 0 }] } }),
      'virtualHosts[0].routes[0].route.weightedClusters',
      'INVALID_WEIGHTS',
    )
    assert.match(issue.message, /0/)
  })

  it('a negative weight', () => {
    const issues = expectExactly(
      withRoutes({ match: { prefix: '/' }, route: { weightedClusters: [{ cluster: 'reviews', subset: 'v1', weight: 10 }, { cluster: 'reviews', subset: 'v2', weight: -5 }] } }),
      [['virtualHosts[0].routes[0].route.weightedClusters[1].weight', 'INVALID_WEIGHTS']],
    )
    assert.match(issues[0]!.message, /-5/)
  })

  it('an empty list', () => {
    expectExactly(withRoutes({ match: { prefix: '/' }, route: { weightedClusters: [] } }), [['virtualHosts[0].routes[0].route.weightedClusters', 'INVALID_WEIGHTS']])
  })

  it('a sum beyond 2^32-1', () => {
    expectExactly(
      withRoutes({ match: { prefix: '/' }, route: { weightedClusters: [{ cluster: 'reviews', weight: 0xffffffff }, { cluster: 'ratings', weight: 1 }] } }),
      [['virtualHosts[0].routes[0].route.weightedClusters', 'INVALID_WEIGHTS']],
    )
  })

  it('a zero among positive weights is fine', () => {
    expectValid(withRoutes({ match: { prefix: '/' }, route: { weightedClusters: [{ cluster: 'reviews', subset: 'v1', weight: 100 }, { cluster: 'reviews', subset: 'v2', weight: 0 }] } }))
  })
})

// ---------------------------------------------------------------- regexes

describe('validateConfig: regular expressions', () => {
  const bad: [string, RegExp][] = [
    ['(', /./],
    ['[a-', /./],
    // RE2's own reasons: no backreferences, no lookaround, no stacked repetition.
    ['(a)\\1', /invalid escape sequence/],
    ['(?<n>a)\\k<n>', /invalid escape sequence/],
    ['(?=a)a', /invalid or unsupported Perl syntax|perl operator/],
    ['(?!a)b', /invalid or unsupported Perl syntax|perl operator/],
    ['(?<=a)b', /invalid/],
    ['(?<!a)b', /invalid/],
    ['a**', /repetition/],
    ['x{1001}', /repeat/],
    ['a'.repeat(1025), /1024/],
  ]
  for (const [pattern, why] of bad) {
    it(`rejects ${JSON.stringify(pattern.length > 30 ? `${pattern.slice(0, 10)}…(${pattern.length})` : pattern)}`, () => {
      const issues = expectExactly(withListenerMatch({ safeRegex: pattern }), [['listener.routes[0].match.safeRegex', 'INVALID_REGEX']])
      assert.match(issues[0]!.message, why)
    })
  }

  it('checks regexes in header and query matchers and in regexRewrite, at their paths', () => {
    expectExactly(
      withRoutes({
        match: { prefix: '/', headers: [{ name: 'x', safeRegex: '(a' }], queryParameters: [{ name: 'q', safeRegex: '(?=x)' }] },
        route: { cluster: 'reviews', regexRewrite: { pattern: '(a)\\1', substitution: '' } },
      }),
      [
        ['virtualHosts[0].routes[0].match.headers[0].safeRegex', 'INVALID_REGEX'],
        ['virtualHosts[0].routes[0].match.queryParameters[0].safeRegex', 'INVALID_REGEX'],
        ['virtualHosts[0].routes[0].route.regexRewrite.pattern', 'INVALID_REGEX'],
      ],
    )
  })

  it('accepts what RE2 accepts, even patterns that backtrack exponentially in JavaScript: RE2 matches them in linear time', () => {
    for (const safeRegex of ['(a+)+', '(a*)*b', '(?:a|b+){2,}', '(a|a)*', '(a|aa)+', '/api\\-v1/\\d+', '(?i)\\Q/A.B\\E\\pL+\\z']) {
      expectValid(withListenerMatch({ safeRegex }))
    }
  })

  it('a regexRewrite substitution names only groups its pattern has (RE2::CheckRewriteString)', () => {
    expectExactly(
      withRoutes({ match: { prefix: '/' }, route: { cluster: 'reviews', regexRewrite: { pattern: '/(a)/', substitution: '/\\2/' } } }),
      [['virtualHosts[0].routes[0].route.regexRewrite.substitution', 'INVALID_VALUE']],
    )
  })

  it('a regex over the string limit is reported once', () => {
    expectExactly(withListenerMatch({ safeRegex: 'a'.repeat(9000) }), [['listener.routes[0].match.safeRegex', 'TOO_LARGE']])
  })

  for (const pattern of ['/api/v[0-9]+/.*', '/(v1|v2)/.*', '(?:ab)+', '[(a+)+]', '\\(a+\\)+', '(a+)?', '/users/(?<id>[0-9]+)', 'x{1,3}']) {
    it(`accepts ${JSON.stringify(pattern)}`, () => {
      expectValid(withListenerMatch({ safeRegex: pattern }))
    })
  }
})

// ---------------------------------------------------------------- actions and matches

describe('validateConfig: actions and matches', () => {
  it('a route with two actions, and one with none', () => {
    const issues = expectExactly(
      withRoutes(
        { match: { prefix: '/a' }, route: { cluster: 'reviews' }, directResponse: { status: 200 } },
        { match: { prefix: '/b' } },
        { match: { prefix: '/' }, route: { cluster: 'reviews' }, redirect: { httpsRedirect: true }, directResponse: { status: 200 } },
      ),
      [
        ['virtualHosts[0].routes[0]', 'INVALID_ACTION'],
        ['virtualHosts[0].routes[1]', 'INVALID_ACTION'],
        ['virtualHosts[0].routes[2]', 'INVALID_ACTION'],
      ],
    )
    assert.match(issues[0]!.message, /route and directResponse/)
    assert.match(issues[2]!.message, /route and redirect and directResponse/)
  })

  it('a route action with both cluster and weightedClusters, or neither, or subset without cluster', () => {
    expectExactly(
      withRoutes(
        { match: { prefix: '/a' }, route: { cluster: 'reviews', weightedClusters: [{ cluster: 'reviews', weight: 1 }] } },
        { match: { prefix: '/b' }, route: {} },
        { match: { prefix: '/' }, route: { subset: 'v1', weightedClusters: [{ cluster: 'reviews', weight: 1 }] } },
      ),
      [
        ['virtualHosts[0].routes[0].route', 'INVALID_ACTION'],
        ['virtualHosts[0].routes[1].route', 'INVALID_ACTION'],
        ['virtualHosts[0].routes[2].route.subset', 'INVALID_ACTION'],
      ],
    )
  })

  it('cluster: null or weightedClusters: null is a route action without a destination', () => {
    expectExactly(withRoutes({ match: { prefix: '/a' }, route: { cluster: null } }, { match: { prefix: '/' }, route: { weightedClusters: null } }), [
      ['virtualHosts[0].routes[0].route', 'INVALID_ACTION'],
      ['virtualHosts[0].routes[1].route', 'INVALID_ACTION'],
    ])
  })

  it('null optional fields count as absent in the semantic checks too', () => {
    expectValid(
      withRoutes(
        { match: { prefix: '/a', headers: [{ name: 'x', exact: 'a', prefix: null }] }, route: { cluster: 'reviews', weightedClusters: null } },
        { match: { prefix: '/' }, route: { subset: null, weightedClusters: [{ cluster: 'reviews', weight: 1 }] } },
      ),
    )
  })

  it('a match with two path specifiers, and one with none', () => {
    const issues = expectExactly(
      withRoutes(
        { match: { prefix: '/', path: '/x' }, route: { cluster: 'reviews' } },
        { match: { headers: [{ name: 'x' }] }, route: { cluster: 'reviews' } },
        { match: { safeRegex: '/.*', pathSeparatedPrefix: '/api' }, route: { cluster: 'reviews' } },
      ),
      [
        ['virtualHosts[0].routes[0].match', 'INVALID_MATCH'],
        ['virtualHosts[0].routes[1].match', 'INVALID_MATCH'],
        ['virtualHosts[0].routes[2].match', 'INVALID_MATCH'],
      ],
    )
    assert.match(issues[0]!.message, /prefix and path/)
    assert.match(issues[1]!.message, /needs one/)
  })

  it('the listener checks matches too', () => {
    expectExactly({ listener: { routes: [{ match: {} }, { match: { path: '/a', prefix: '/' } }] } }, [
      ['listener.routes[0].match', 'INVALID_MATCH'],
      ['listener.routes[1].match', 'INVALID_MATCH'],
    ])
  })

  it('a header matcher with two kinds', () => {
    expectExactly(withRoutes({ match: { prefix: '/', headers: [{ name: 'x', exact: 'a', prefix: 'b' }] }, route: { cluster: 'reviews' } }), [
      ['virtualHosts[0].routes[0].match.headers[0]', 'INVALID_MATCH'],
    ])
  })
})

// ---------------------------------------------------------------- headers

describe('validateConfig: headers', () => {
  it('CR/LF and NUL in header values are header injection', () => {
    expectExactly(
      {
        virtualHosts: [
          {
            name: 'a',
            domains: ['a'],
            requestHeadersToAdd: [{ header: { key: 'x-a', value: 'a\r\nb' } }, { header: { key: 'x-b', value: 'ok' } }, { header: { key: 'x-c', value: 'a\nX-Evil: 1' } }],
            responseHeadersToAdd: [{ header: { key: 'x-d', value: 'a\0b' } }],
            routes: [],
          },
        ],
      },
      [
        ['virtualHosts[0].requestHeadersToAdd[0].header.value', 'INVALID_HEADER'],
        ['virtualHosts[0].requestHeadersToAdd[2].header.value', 'INVALID_HEADER'],
        ['virtualHosts[0].responseHeadersToAdd[0].header.value', 'INVALID_HEADER'],
      ],
    )
  })

  it('forbidden and invalid header names, on vhost, route and weighted cluster', () => {
    const issues = expectExactly(
      {
        clusters: base().clusters,
        virtualHosts: [
          {
            name: 'a',
            domains: ['a'],
            requestHeadersToAdd: [{ header: { key: 'host', value: 'b' } }, { header: { key: 'Content-Length', value: '1' } }],
            requestHeadersToRemove: ['transfer-encoding', 'x-ok'],
            routes: [
              {
                match: { prefix: '/', headers: [{ name: 'bad name', exact: 'x' }, { name: ':authority', exact: 'a' }] },
                responseHeadersToAdd: [{ header: { key: 'x y', value: '1' } }],
                responseHeadersToRemove: ['connection'],
                route: {
                  weightedClusters: [{ cluster: 'reviews', weight: 1, requestHeadersToAdd: [{ header: { key: 'upgrade', value: 'h2c' } }] }],
                  hashPolicy: [{ header: { name: 'a:b' } }],
                },
              },
            ],
          },
        ],
      },
      [
        ['virtualHosts[0].requestHeadersToAdd[0].header.key', 'INVALID_HEADER'],
        ['virtualHosts[0].requestHeadersToAdd[1].header.key', 'INVALID_HEADER'],
        ['virtualHosts[0].requestHeadersToRemove[0]', 'INVALID_HEADER'],
        ['virtualHosts[0].routes[0].match.headers[0].name', 'INVALID_HEADER'],
        ['virtualHosts[0].routes[0].responseHeadersToAdd[0].header.key', 'INVALID_HEADER'],
        ['virtualHosts[0].routes[0].responseHeadersToRemove[0]', 'INVALID_HEADER'],
        ['virtualHosts[0].routes[0].route.weightedClusters[0].requestHeadersToAdd[0].header.key', 'INVALID_HEADER'],
        ['virtualHosts[0].routes[0].route.hashPolicy[0].header.name', 'INVALID_HEADER'],
      ],
    )
    assert.match(issues[0]!.message, /"host"/)
    assert.match(issues[1]!.message, /"Content-Length"/)
    assert.match(issues[3]!.message, /"bad name"/)
  })

  it('redirect targets cannot carry CR/LF', () => {
    expectExactly(withRoutes({ match: { prefix: '/' }, redirect: { hostRedirect: 'a\r\nSet-Cookie: x' } }), [['virtualHosts[0].routes[0].redirect.hostRedirect', 'INVALID_VALUE']])
  })
})

// ---------------------------------------------------------------- size bounds

describe('validateConfig: TOO_LARGE', () => {
  it('a string longer than 8192 characters (and 8192 is fine)', () => {
    expectExactly({ clusters: [{ name: 'x'.repeat(8193) }] }, [['clusters[0].name', 'TOO_LARGE']])
    expectValid({ clusters: [{ name: 'x'.repeat(8192) }] })
    expectIssue({ virtualHosts: [{ name: 'a', domains: ['a'], routes: [], requestHeadersToAdd: [{ header: { key: 'x', value: 'v'.repeat(10_000) } }] }] }, 'virtualHosts[0].requestHeadersToAdd[0].header.value', 'TOO_LARGE', '8192')
  })

  it('a list over 100,000 items is reported once, quickly, without walking it', () => {
    const start = performance.now()
    const domains = new Array<string>(100_001).fill('a')
    expectExactly({ virtualHosts: [{ name: 'a', domains, routes: [] }] }, [['virtualHosts[0].domains', 'TOO_LARGE']])
    const issue = expectIssue({ clusters: new Array(100_001).fill({ name: 'c' }) }, 'clusters', 'TOO_LARGE', '100001', '100000')
    assert.ok(issue)
    // A sparse array claiming a huge length must not be iterated either.
    expectExactly({ clusters: new Array(2 ** 31) }, [['clusters', 'TOO_LARGE']])
    assert.ok(performance.now() - start < 20_000, `took ${performance.now() - start} ms`)
  })

  it('exactly 100,000 items is accepted', () => {
    const domains = Array.from({ length: 100_000 }, (_, i) => `h${i}`)
    expectValid({ virtualHosts: [{ name: 'a', domains, routes: [] }] })
  })

  it('a direct response body over 4096 bytes', () => {
    expectExactly(withRoutes({ match: { prefix: '/' }, directResponse: { status: 200, body: 'é'.repeat(2049) } }), [['virtualHosts[0].routes[0].directResponse.body', 'TOO_LARGE']])
  })

  it('label names and values are bounded like every other string', () => {
    expectExactly(withCluster({ endpoints: [{ address: 'x:1', labels: { version: 'v'.repeat(8193) } }] }), [['clusters[0].endpoints[0].labels.version', 'TOO_LARGE']])
    const longKey = 'k'.repeat(8193)
    assert.ok(
      validateConfig(withCluster({ subsets: [{ name: 's', labels: { [longKey]: 'v' } }] })).some((i) => i.code === 'TOO_LARGE' && i.path.startsWith('clusters[0].subsets[0].labels')),
      'a label name over 8192 characters is TOO_LARGE',
    )
  })
})

// ---------------------------------------------------------------- many problems at once

describe('validateConfig: every problem at once', () => {
  /** Six mistakes of six kinds, alternating structural and semantic, one per top-level item. */
  const sixMistakes = {
    clusters: [
      { name: 'a', loadBalancr: 'random' },
      { name: 'b', endpoints: [{ address: 'ftp://x:1' }] },
      { name: 'c', connectTimeout: '5 sec' },
    ],
    virtualHosts: [
      { name: 'v0', domains: ['v0'], routes: [{ match: { prefix: '/' }, route: { cluster: 'nope' } }] },
      { name: 'v1', domains: ['v1'], routes: [{ match: { prefix: '/' }, route: { weightedClusters: [{ cluster: 'a', weight: '90' }] } }] },
    ],
    listener: { routes: [{ match: { safeRegex: '(a)\\1' } }] },
  }
  const expected: Pair[] = [
    ['clusters[0].loadBalancr', 'UNKNOWN_FIELD'],
    ['clusters[1].endpoints[0].address', 'INVALID_ADDRESS'],
    ['clusters[2].connectTimeout', 'INVALID_DURATION'],
    ['virtualHosts[0].routes[0].route.cluster', 'UNKNOWN_CLUSTER'],
    ['virtualHosts[1].routes[0].route.weightedClusters[0].weight', 'INVALID_TYPE'],
    ['listener.routes[0].match.safeRegex', 'INVALID_REGEX'],
  ]

  it('reports all six', () => {
    const got = pairs(sixMistakes)
    assert.equal(got.length, 6, JSON.stringify(got))
    assert.deepEqual([...got].sort(), [...expected].sort())
  })

  it('reports them in document order (as ConfigError.issues promises)', () => {
    assert.deepEqual(pairs(sixMistakes), expected)
  })

  it('six structural mistakes come out in document order', () => {
    expectExactly(
      {
        clusters: [{ name: 'a', type: 'dns' }, { name: 'b', weight: 1 }],
        virtualHosts: [{ name: 'v', domains: 'v', routes: [{ match: { prefix: 1 }, directResponse: { status: 99 } }] }],
        outboundTrafficPolicy: { mode: 'ANY' },
      },
      [
        ['clusters[0].type', 'INVALID_VALUE'],
        ['clusters[1].weight', 'UNKNOWN_FIELD'],
        ['virtualHosts[0].domains', 'INVALID_TYPE'],
        ['virtualHosts[0].routes[0].match.prefix', 'INVALID_TYPE'],
        ['virtualHosts[0].routes[0].directResponse.status', 'INVALID_VALUE'],
        ['outboundTrafficPolicy.mode', 'INVALID_VALUE'],
      ],
    )
  })
})

// ---------------------------------------------------------------- hostile input

describe('validateConfig: hostile input never throws', () => {
  let deep: Record<string, unknown> = {}
  for (let i = 0; i < 100_000; i++) deep = { a: deep }
  let deepList: unknown = []
  for (let i = 0; i < 100_000; i++) deepList = [deepList]
  const hugeKey = 'k'.repeat(1_000_000)

  // Each case names every issue it must produce (path and code, in order): a validator that
  // returned [] — or threw — fails every one of them.
  const cases: [string, () => unknown, readonly Pair[]][] = [
    ['null', () => null, [['', 'EMPTY_CONFIG']]],
    ['undefined', () => undefined, [['', 'EMPTY_CONFIG']]],
    ['42', () => 42, [['', 'INVALID_TYPE']]],
    ['a string', () => 'str', [['', 'INVALID_TYPE']]],
    ['a list', () => [], [['', 'INVALID_TYPE']]],
    ['a function', () => () => 1, [['', 'INVALID_TYPE']]],
    ['a symbol', () => Symbol('x'), [['', 'INVALID_TYPE']]],
    ['a bigint', () => 10n, [['', 'INVALID_TYPE']]],
    // A Map is not read as its entries (nor as an empty object): it is not plain data.
    ['a Map', () => new Map([['clusters', []]]), [['', 'INVALID_TYPE']]],
    ['a Date', () => new Date(), [['', 'INVALID_TYPE']]],
    ['deeply nested unknown objects', () => ({ ...deep, clusters: [{ name: 'x', leastRequest: deep }] }), [['a', 'UNKNOWN_FIELD'], ['clusters[0].leastRequest.a', 'UNKNOWN_FIELD']]],
    ['deeply nested lists where a list of strings is expected', () => ({ virtualHosts: [{ name: 'v', domains: deepList, routes: deepList }] }),
      [['virtualHosts[0].domains[0]', 'INVALID_TYPE'], ['virtualHosts[0].routes[0]', 'INVALID_TYPE']]],
    ['__proto__ and constructor keys', () => JSON.parse('{"__proto__": {"clusters": 5}, "constructor": {"prototype": {}}, "clusters": [{"__proto__": null, "name": "a"}]}') as unknown,
      [['__proto__', 'UNKNOWN_FIELD'], ['constructor', 'UNKNOWN_FIELD'], ['clusters[0].__proto__', 'UNKNOWN_FIELD']]],
    // Objects without a prototype are plain data, read field by field (not refused as non-data).
    ['an object without a prototype', () => Object.assign(Object.create(null) as object, { clusters: [Object.assign(Object.create(null) as object, { name: 'a', loadBalancr: 'random' })] }), [['clusters[0].loadBalancr', 'UNKNOWN_FIELD']]],
    ['symbols and bigints as values', () => ({ clusters: [{ name: Symbol('n'), endpoints: [{ address: 'x:1', weight: 1n }] }], virtualHosts: 10n }),
      [['clusters[0].name', 'INVALID_TYPE'], ['clusters[0].endpoints[0].weight', 'INVALID_TYPE'], ['virtualHosts', 'INVALID_TYPE']]],
    ['functions as values', () => ({ clusters: () => [], listener: { routes: [{ match: () => ({}) }] } }), [['clusters', 'INVALID_TYPE'], ['listener.routes[0].match', 'INVALID_TYPE']]],
    ['sparse lists', () => ({ clusters: [, , { name: 'a' }] }), [['clusters[0]', 'INVALID_TYPE'], ['clusters[1]', 'INVALID_TYPE']]], // eslint-disable-line no-sparse-arrays
    ['a huge unknown key', () => ({ [hugeKey]: 1 }), [[hugeKey, 'UNKNOWN_FIELD']]],
    ['a throwing getter', () => ({ get clusters(): never { throw new Error('boom') } }), [['clusters', 'INVALID_VALUE']]],
    ['a throwing getter deep in a list', () => ({ clusters: [{ name: 'a', get endpoints(): never { throw new Error('boom') } }] }), [['clusters[0].endpoints', 'INVALID_VALUE']]],
    ['a Proxy whose ownKeys trap throws, at the root', () => new Proxy({}, { ownKeys: () => { throw new Error('no keys') } }), [['', 'INVALID_VALUE']]],
    ['a Proxy whose get trap throws', () => ({ clusters: [new Proxy({ name: 'a' }, { get: () => { throw new Error('no get') } })] }), [['clusters[0].name', 'INVALID_VALUE']]],
    ['a Proxy whose getPrototypeOf trap throws', () => ({ listener: new Proxy({}, { getPrototypeOf: () => { throw new Error('no proto') } }) }), [['listener', 'INVALID_VALUE']]],
    ['a Proxy whose has/getOwnPropertyDescriptor traps throw', () => ({ listener: new Proxy({ mtls: {} }, { getOwnPropertyDescriptor: () => { throw new Error('no descriptor') } }) }), [['listener', 'INVALID_VALUE']]],
    ['a revoked Proxy', () => {
      const r = Proxy.revocable({}, {})
      r.revoke()
      return { clusters: [{ name: 'a' }], listener: r.proxy }
    }, [['listener', 'INVALID_VALUE']]],
    ['a list whose length getter throws', () => ({ clusters: new Proxy([], { get: (t, k) => { if (k === 'length') throw new Error('no length'); return Reflect.get(t, k) as unknown } }) }), [['clusters', 'INVALID_VALUE']]],
    ['a class instance where an object is expected', () => {
      class ClusterSpec { name = 'a' }
      return { clusters: [new ClusterSpec()] }
    }, [['clusters[0]', 'INVALID_TYPE']]],
    ['a Date where a duration is expected', () => ({ clusters: [{ name: 'a', connectTimeout: new Date() }] }), [['clusters[0].connectTimeout', 'INVALID_DURATION']]],
    ['a Map where labels are expected', () => ({ clusters: [{ name: 'a', endpoints: [{ address: 'x:1', labels: new Map([['version', 'v1']]) }] }] }), [['clusters[0].endpoints[0].labels', 'INVALID_TYPE']]],
    ['a Set where a list is expected', () => ({ virtualHosts: [{ name: 'v', domains: new Set(['v']), routes: [] }] }), [['virtualHosts[0].domains', 'INVALID_TYPE']]],
  ]

  for (const [label, make, expected] of cases) {
    it(label, () => {
      const input = make()
      let issues: ConfigIssue[] = []
      assert.doesNotThrow(() => { issues = validateConfig(input) })
      assert.deepEqual(issues.map((i) => [i.path, i.code]), expected.map(([p, c]) => [p, c]), `got ${show(issues).slice(0, 2000)}`)
      for (const i of issues) assert.ok(i.message.length > 0 && i.message.length < 400, i.message.slice(0, 400))
    })
  }

  it('a valid config made of objects without a prototype is accepted', () => {
    expectValid(Object.assign(Object.create(null) as object, { clusters: [Object.assign(Object.create(null) as object, { name: 'a' })] }))
  })

  it('names what could not be read, and why', () => {
    expectIssue({ get clusters(): never { throw new Error('boom') } }, 'clusters', 'INVALID_VALUE', 'could not be read', 'boom')
    expectIssue({ clusters: [{ name: 'a', connectTimeout: new Date() }] }, 'clusters[0].connectTimeout', 'INVALID_DURATION', 'Date')
    class ClusterSpec { name = 'a' }
    expectIssue({ clusters: [new ClusterSpec()] }, 'clusters[0]', 'INVALID_TYPE', 'ClusterSpec', 'not plain data')
  })

  it('a non-object root is one INVALID_TYPE at the root, naming what it got; null and undefined are EMPTY_CONFIG', () => {
    for (const [input, word] of [[42, '42'], ['str', '"str"'], [[], 'list'], [new Map(), 'Map']] as [unknown, string][]) {
      const issues = expectExactly(input, [['', 'INVALID_TYPE']])
      assert.ok(issues[0]!.message.includes(word), issues[0]!.message)
    }
    for (const [input, word] of [[null, 'null'], [undefined, 'undefined']] as [unknown, string][]) {
      const issues = expectExactly(input, [['', 'EMPTY_CONFIG']])
      assert.ok(issues[0]!.message.includes(word), issues[0]!.message)
    }
  })

  it('shared references are bounded: a small object standing for a huge tree is TOO_LARGE, quickly', () => {
    // 1,000 clusters sharing one list of 10,000 endpoints: 10 million endpoint objects to read.
    const endpoints = Array.from({ length: 10_000 }, () => ({ address: '127.0.0.1:1' }))
    const clusters = Array.from({ length: 1_000 }, (_, i) => ({ name: `c${i}`, endpoints }))
    const issues = validateConfig({ clusters })
    assert.equal(issues.filter((i) => i.code === 'TOO_LARGE').length, 1, show(issues.slice(0, 5)))
  })

  it('a getter that throws only when read a second time (the document-order walk) does not make validation throw', () => {
    let reads = 0
    const config = { loadBalancr: 1, get clusters(): unknown {
      if (reads++ > 0) throw new Error('second read')
      return []
    } }
    let issues: ConfigIssue[] = []
    assert.doesNotThrow(() => { issues = validateConfig(config) })
    assert.deepEqual(issues.map((i) => [i.path, i.code]), [['loadBalancr', 'UNKNOWN_FIELD']])
    assert.equal(reads, 1, 'each value of the input is read once')
  })

  it('mesh.update rejects every hostile config with a ConfigError, and the config in force stays', async () => {
    const mesh = createMesh({ config: base() })
    try {
      const revoked = Proxy.revocable({}, {})
      revoked.revoke()
      const hostile: unknown[] = [
        new Proxy({}, { ownKeys: () => { throw new Error('no keys') } }),
        new Proxy({}, { getPrototypeOf: () => { throw new Error('no proto') } }),
        new Proxy({ clusters: [] }, { get: () => { throw new Error('no get') } }),
        revoked.proxy,
        { get clusters(): never { throw new Error('boom') } },
        // Looks like an Envoy bootstrap; reading it throws inside the import.
        { static_resources: { get clusters(): never { throw new Error('boom') } } },
        { get static_resources(): never { throw new Error('boom') } },
        new Map(),
        () => ({}),
      ]
      for (const config of hostile) {
        await assert.rejects(mesh.update(config as MeshConfig), (err: unknown) => {
          assert.ok(err instanceof ConfigError, `expected ConfigError, got ${String(err)}`)
          assert.ok(err.issues.length > 0)
          return true
        })
      }
      assert.deepEqual(mesh.config, base())
      assert.equal(mesh.version, 1)
    } finally {
      await mesh.close()
    }
  })

  it('a Proxy that answers differently on a second read cannot slip past validation', async () => {
    // The first read is validated; a second read (compile) would see a cluster the routes
    // never named. The mesh compiles what it validated.
    let reads = 0
    const config = { clusters: [{ name: 'a' }], get virtualHosts(): unknown {
      reads++
      return reads === 1 ? [] : [{ name: 'v', domains: ['v'], routes: [{ match: { prefix: '/' }, route: { cluster: 'nope' } }] }]
    } }
    const mesh = createMesh({ config })
    try {
      assert.equal(reads, 1)
      assert.deepEqual(mesh.config.virtualHosts, [])
    } finally {
      await mesh.close()
    }
  })

  it('a cyclic object finishes (the schema does not recurse)', () => {
    const cyclic: Record<string, unknown> = { clusters: [] }
    ;(cyclic['clusters'] as unknown[]).push(cyclic)
    cyclic['listener'] = cyclic
    const start = performance.now()
    const issues = validateConfig(cyclic)
    assert.ok(performance.now() - start < 20_000, "the walk ends (a loop would never return)")
    assert.ok(issues.some((i) => i.path === 'clusters[0].name' && i.code === 'REQUIRED'), show(issues))
    assert.ok(issues.some((i) => i.path === 'listener.clusters' && i.code === 'UNKNOWN_FIELD'), show(issues))
  })

  it('20,000 unknown keys in one object: the first 1,000 are listed, then a count of the rest', () => {
    const wide: Record<string, number> = {}
    for (let i = 0; i < 20_000; i++) wide[`k${i}`] = i
    const issues = validateConfig({ listener: wide })
    assert.equal(issues.length, 1_001)
    assert.deepEqual(issues[0], { path: 'listener.k0', code: 'UNKNOWN_FIELD', message: 'unknown field "k0"' })
    assert.deepEqual(issues[1_000], { path: '', code: 'TOO_LARGE', message: '19000 more problems were not listed' })
  })
})

// ---------------------------------------------------------------- createMesh / update

describe('createMesh and mesh.update with a bad config', () => {
  const bad = {
    clusters: [{ name: 'reviews', loadBalancr: 'random' }, { name: 'reviews' }],
    virtualHosts: [{ name: 'v', domains: ['v'], routes: [{ match: { prefix: '/' }, route: { cluster: 'ratings' } }] }],
  }

  it('createMesh throws ConfigError with every issue, listing each path', () => {
    const expected = validateConfig(bad)
    assert.equal(expected.length, 3)
    let caught: unknown
    try {
      createMesh({ config: bad })
    } catch (err) {
      caught = err
    }
    assert.ok(caught instanceof ConfigError, String(caught))
    assert.ok(caught instanceof MeshError)
    assert.ok(isMeshError(caught, 'SIDECARLESS_ERR_INVALID_CONFIG'))
    assert.equal(caught.code, 'SIDECARLESS_ERR_INVALID_CONFIG')
    assert.equal(caught.name, 'ConfigError')
    assert.deepEqual(caught.issues, expected)
    assert.ok(Object.isFrozen(caught.issues))
    assert.match(caught.message, /3 problems/)
    for (const i of expected) {
      assert.ok(caught.message.includes(i.path), `message should list ${i.path}: ${caught.message}`)
      assert.ok(caught.message.includes(i.code), `message should list ${i.code}`)
    }
  })

  it('createMesh with a non-object config throws ConfigError naming <root>', () => {
    assert.throws(() => createMesh({ config: 42 as unknown as object }), (err: unknown) => {
      assert.ok(err instanceof ConfigError)
      assert.deepEqual(err.issues.map((i) => [i.path, i.code]), [['', 'INVALID_TYPE']])
      assert.match(err.message, /<root>/)
      return true
    })
  })

  const crashers: [string, unknown][] = [
    ['a constructor key holding a function', { constructor: () => 1 }],
    ['route: { cluster: null }', withRoutes({ match: { prefix: '/' }, route: { cluster: null } })],
    ['route: { weightedClusters: null }', withRoutes({ match: { prefix: '/' }, route: { weightedClusters: null } })],
  ]
  for (const [label, config] of crashers) {
    it(`createMesh throws ConfigError, not a crash, for ${label}`, () => {
      assert.throws(() => createMesh({ config: config as object }), (err: unknown) => {
        assert.ok(err instanceof ConfigError, `expected ConfigError, got ${String(err)}`)
        return true
      })
    })
  }

  describe('mesh.update', () => {
    let mesh: Mesh
    before(() => {
      mesh = createMesh({ service: 'productpage', config: base() })
    })
    after(async () => {
      await mesh.close()
    })

    it('rejects a bad config with ConfigError, emits configRejected, keeps the old config', async () => {
      const version = mesh.version
      const config = mesh.config
      const decision = mesh.route({ url: 'http://reviews/reviews/1', headers: { 'end-user': 'jason' } })
      const other = mesh.route({ url: 'http://reviews/reviews/1' })
      assert.equal(decision.kind, 'cluster')
      const rejected: ConfigError[] = []
      const applied: ConfigApplied[] = []
      const onRejected = (err: ConfigError): void => { rejected.push(err) }
      const onApplied = (a: ConfigApplied): void => { applied.push(a) }
      mesh.on('configRejected', onRejected)
      mesh.on('config', onApplied)
      try {
        await assert.rejects(mesh.update(bad), (err: unknown) => {
          assert.ok(err instanceof ConfigError)
          assert.equal(err.code, 'SIDECARLESS_ERR_INVALID_CONFIG')
          assert.deepEqual(err.issues, validateConfig(bad))
          return true
        })
        assert.equal(rejected.length, 1)
        assert.deepEqual(rejected[0]!.issues, validateConfig(bad))
        assert.equal(applied.length, 0)
        assert.equal(mesh.version, version)
        assert.equal(mesh.config, config)
        assert.deepEqual(mesh.config, base())
        assert.deepEqual(mesh.route({ url: 'http://reviews/reviews/1', headers: { 'end-user': 'jason' } }), decision)
        assert.deepEqual(mesh.route({ url: 'http://reviews/reviews/1' }), other)
      } finally {
        mesh.off('configRejected', onRejected)
        mesh.off('config', onApplied)
      }
    })

    it('rejects a missing file with CONFIG_LOAD and keeps the old config', async () => {
      const version = mesh.version
      await assert.rejects(mesh.update(join(tmpdir(), 'sidecarless-does-not-exist', 'mesh.yaml')), (err: unknown) => {
        assert.ok(isMeshError(err, 'SIDECARLESS_ERR_CONFIG_LOAD'), String(err))
        return true
      })
      assert.equal(mesh.version, version)
    })

    it('applies a valid config: emits config, bumps the version, routes by it', async () => {
      const version = mesh.version
      const applied: ConfigApplied[] = []
      const onApplied = (a: ConfigApplied): void => { applied.push(a) }
      mesh.on('config', onApplied)
      try {
        const next = base()
        next.virtualHosts![0]!.routes = [{ match: { prefix: '/' }, route: { cluster: 'ratings' } }]
        const result = await mesh.update(next)
        assert.equal(result.version, version + 1)
        assert.equal(mesh.version, version + 1)
        assert.equal(applied.length, 1)
        assert.equal(applied[0]!.version, version + 1)
        assert.equal(applied[0]!.config, mesh.config)
        assert.deepEqual(mesh.config, next)
        const d = mesh.route({ url: 'http://reviews/x', headers: { 'end-user': 'jason' } })
        assert.equal(d.kind, 'cluster')
        assert.deepEqual(d.kind === 'cluster' ? d.targets.map((t) => t.cluster) : [], ['ratings'])
      } finally {
        mesh.off('config', onApplied)
      }
    })
  })
})

// ---------------------------------------------------------------- files

describe('loading config files', () => {
  let dir: string
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'sidecarless-validate-'))
  })
  after(() => {
    rmSync(dir, { recursive: true, force: true })
  })

  const write = (name: string, text: string): string => {
    const path = join(dir, name)
    writeFileSync(path, text)
    return path
  }

  it('reads a JSON file', async () => {
    const path = write('mesh.json', JSON.stringify(base()))
    const mesh = createMesh({ config: path })
    try {
      assert.deepEqual(mesh.config, base())
      assert.equal(mesh.route({ url: 'http://reviews/x' }).kind, 'cluster')
    } finally {
      await mesh.close()
    }
  })

  it('reads a YAML file', async () => {
    const path = write(
      'mesh.yaml',
      `
clusters:
  - name: reviews
    endpoints:
      - { address: http://127.0.0.1:9081, labels: { version: v1 } }
      - { address: http://127.0.0.1:9082, labels: { version: v2 }, weight: 2 }
    subsets: [ { name: v1, labels: { version: v1 } }, { name: v2, labels: { version: v2 } } ]
    loadBalancer: round_robin
    connectTimeout: 250ms
  - name: ratings
    endpoints: [ { address: "127.0.0.1:9083" } ]
virtualHosts:
  - name: reviews
    domains: [ reviews, reviews.default.svc.cluster.local ]
    routes:
      - name: jason
        match: { prefix: /, headers: [ { name: end-user, exact: jason } ] }
        route: { cluster: reviews, subset: v2 }
      - name: split
        match: { prefix: / }
        route:
          weightedClusters: [ { cluster: reviews, subset: v1, weight: 90 },
                              { cluster: reviews, subset: v2, weight: 10 } ]
          timeout: 3s
`,
    )
    const mesh = createMesh({ config: path })
    try {
      assert.deepEqual(mesh.config, base())
    } finally {
      await mesh.close()
    }
  })

  it('an invalid config in a file is a ConfigError naming the file and each path', () => {
    const path = write('bad.yml', 'clusters:\n  - name: a\n    load_balancer: random\n  - name: a\n')
    assert.throws(() => createMesh({ config: path }), (err: unknown) => {
      assert.ok(err instanceof ConfigError)
      assert.deepEqual(err.issues.map((i) => [i.path, i.code]), [['clusters[0].load_balancer', 'UNKNOWN_FIELD'], ['clusters[1].name', 'DUPLICATE_NAME']])
      assert.ok(err.message.includes(path), err.message)
      assert.ok(err.message.includes('clusters[0].load_balancer'))
      assert.ok(err.message.includes('clusters[1].name'))
      return true
    })
  })

  it('a YAML syntax error is CONFIG_LOAD naming the path', () => {
    const path = write('syntax.yaml', 'clusters:\n  - { name: a\n  - name: b\n')
    assert.throws(() => createMesh({ config: path }), (err: unknown) => {
      assert.ok(err instanceof MeshError)
      assert.ok(!(err instanceof ConfigError))
      assert.equal(err.code, 'SIDECARLESS_ERR_CONFIG_LOAD')
      assert.ok(err.message.includes(path), err.message)
      return true
    })
  })

  it('a JSON syntax error is CONFIG_LOAD naming the path', () => {
    const path = write('syntax.json', '{ "clusters": [ }')
    assert.throws(() => createMesh({ config: path }), (err: unknown) => isMeshError(err, 'SIDECARLESS_ERR_CONFIG_LOAD') && err.message.includes(path))
  })

  it('a duplicate YAML key is CONFIG_LOAD, not silently the last one', () => {
    const path = write('dup.yaml', 'clusters: []\nclusters: []\n')
    assert.throws(() => createMesh({ config: path }), (err: unknown) => isMeshError(err, 'SIDECARLESS_ERR_CONFIG_LOAD'))
  })

  it('a missing file is CONFIG_LOAD naming the path', () => {
    const path = join(dir, 'missing.yaml')
    assert.throws(() => createMesh({ config: path }), (err: unknown) => {
      assert.ok(isMeshError(err, 'SIDECARLESS_ERR_CONFIG_LOAD'), String(err))
      assert.ok(err.message.includes(path), err.message)
      return true
    })
  })

  it('a YAML file holding a scalar is a ConfigError at the root', () => {
    const path = write('scalar.yaml', '42\n')
    assert.throws(() => createMesh({ config: path }), (err: unknown) => err instanceof ConfigError && err.issues[0]?.path === '')
  })

  it('a YAML billion-laughs alias bomb is rejected quickly', () => {
    const lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    const names = 'abcdefghi'
    for (let i = 1; i < names.length; i++) {
      const prev = names[i - 1]!
      lines.push(`${names[i]}: &${names[i]} [${new Array(9).fill(`*${prev}`).join(',')}]`)
    }
    const path = write('bomb.yaml', `${lines.join('\n')}\n`)
    const start = performance.now()
    assert.throws(() => createMesh({ config: path }), (err: unknown) => {
      assert.ok(isMeshError(err, 'SIDECARLESS_ERR_CONFIG_LOAD'), String(err))
      assert.ok(err.message.includes(path))
      return true
    })
    assert.ok(performance.now() - start < 20_000, `took ${performance.now() - start} ms`)
  })
})
