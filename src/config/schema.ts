/**
 * The shape of the config, as data: which fields each object has and what type each holds.
 * The structural pass of validation walks it; the semantic pass (names, references,
 * regexes, addresses, weights) lives in `validate.ts`.
 */

import { DISCOVERY_TYPES, LOAD_BALANCERS, RATE_LIMIT_UNITS } from './envoy-enums.js'
import type { MeshConfig } from './types.js'

/** What one field may hold. */
export type Spec =
  | { readonly t: 'string'; readonly required?: boolean }
  | { readonly t: 'number'; readonly required?: boolean; readonly int?: boolean; readonly min?: number; readonly max?: number }
  | { readonly t: 'boolean'; readonly required?: boolean }
  | { readonly t: 'duration'; readonly required?: boolean }
  | { readonly t: 'enum'; readonly required?: boolean; readonly values: readonly string[] }
  | { readonly t: 'object'; readonly required?: boolean; readonly fields: Fields }
  | { readonly t: 'array'; readonly required?: boolean; readonly of: Spec }
  | { readonly t: 'labels'; readonly required?: boolean }
  /** A list of enum values, or the same as one comma-separated string (Envoy's `retry_on`). */
  | { readonly t: 'enumList'; readonly required?: boolean; readonly values: readonly string[] }
  /** A string that may be long inline PEM (bounded by `limits.pemLength`, not `stringLength`). */
  | { readonly t: 'pem'; readonly required?: boolean }
  /** An object whose keys are free-form (checked by the semantic pass) and whose values are `of`. */
  | { readonly t: 'map'; readonly required?: boolean; readonly of: Spec }

/** The fields of one object type. */
export type Fields = { readonly [name: string]: Spec }

const str: Spec = { t: 'string' }
const reqStr: Spec = { t: 'string', required: true }
const bool: Spec = { t: 'boolean' }
const strList: Spec = { t: 'array', of: str }
/** `ClusterConfig.dnsLookupFamily`: ours, then Envoy's spellings. */
export const DNS_LOOKUP_FAMILIES = ['auto', 'v4_only', 'v6_only', 'v4_preferred', 'all', 'AUTO', 'V4_ONLY', 'V6_ONLY', 'V4_PREFERRED', 'ALL'] as const
const mtlsMode = { t: 'enum', values: ['STRICT', 'PERMISSIVE', 'DISABLE'] } as const

const headerValueOption: Spec = {
  t: 'object',
  fields: {
    header: { t: 'object', required: true, fields: { key: reqStr, value: { t: 'string', required: true } } },
    appendAction: {
      t: 'enum',
      values: ['APPEND_IF_EXISTS_OR_ADD', 'ADD_IF_ABSENT', 'OVERWRITE_IF_EXISTS_OR_ADD', 'OVERWRITE_IF_EXISTS'],
    },
    keepEmptyValue: bool,
  },
}

const headerMutations: Fields = {
  requestHeadersToAdd: { t: 'array', of: headerValueOption },
  requestHeadersToRemove: strList,
  responseHeadersToAdd: { t: 'array', of: headerValueOption },
  responseHeadersToRemove: strList,
}

const stringMatchFields: Fields = {
  name: reqStr,
  exact: str,
  prefix: str,
  suffix: str,
  contains: str,
  safeRegex: str,
  present: bool,
  ignoreCase: bool,
}

const int64: Spec = { t: 'number', required: true, int: true, min: Number.MIN_SAFE_INTEGER, max: Number.MAX_SAFE_INTEGER }
const headerMatcherFields: Fields = {
  ...stringMatchFields,
  rangeMatch: { t: 'object', fields: { start: int64, end: int64 } },
  treatMissingHeaderAsEmpty: bool,
  invert: bool,
}

const routeMatch: Spec = {
  t: 'object',
  required: true,
  fields: {
    prefix: str,
    path: str,
    safeRegex: str,
    pathSeparatedPrefix: str,
    caseSensitive: bool,
    headers: { t: 'array', of: { t: 'object', fields: headerMatcherFields } },
    queryParameters: { t: 'array', of: { t: 'object', fields: stringMatchFields } },
    methods: strList,
  },
}

const nameOnly = (extra: Fields = {}): Spec => ({ t: 'object', fields: { name: reqStr, ...extra } })

const bucketFields: Fields = {
  maxTokens: { t: 'number', required: true, int: true, min: 1, max: 1e9 },
  tokensPerFill: { t: 'number', int: true, min: 1, max: 1e9 },
  fillInterval: { t: 'duration', required: true },
}

const descriptorKey: Spec = { t: 'enum', required: true, values: ['remoteAddress', 'identity', 'header', 'path'] }

const rateLimit: Spec = {
  t: 'object',
  fields: {
    ...bucketFields,
    descriptors: { t: 'array', of: { t: 'object', fields: { ...bucketFields, key: descriptorKey, name: str, value: str } } },
    responseHeaders: bool,
    alwaysConsumeDefaultTokenBucket: bool,
    global: {
      t: 'object',
      fields: {
        redis: reqStr,
        requestsPerUnit: { t: 'number', required: true, int: true, min: 1, max: 1e12 },
        unit: { t: 'enum', required: true, values: RATE_LIMIT_UNITS },
        descriptor: { t: 'object', fields: { key: descriptorKey, name: str } },
        timeout: { t: 'duration' },
        failureMode: { t: 'enum', values: ['open', 'closed'] },
        prefix: str,
      },
    },
  },
}

const concurrencyLimit: Spec = {
  t: 'object',
  fields: {
    maxConcurrent: { t: 'number', required: true, int: true, min: 1, max: 1e9 },
    maxQueue: { t: 'number', int: true, min: 0, max: 1e9 },
    queueTimeout: { t: 'duration' },
  },
}

const percent: Spec = { t: 'number', min: 0, max: 100 }

const headerMatcher: Spec = { t: 'object', fields: headerMatcherFields }

/** Retry conditions: Envoy's `x-envoy-retry-on` values the mesh implements. */
export const RETRY_ON = ['5xx', 'gateway-error', 'reset', 'connect-failure', 'refused-stream', 'retriable-4xx', 'retriable-status-codes', 'retriable-headers'] as const

const retryPolicy: Spec = {
  t: 'object',
  fields: {
    retryOn: { t: 'enumList', required: true, values: RETRY_ON },
    numRetries: { t: 'number', int: true, min: 0, max: 100 },
    perTryTimeout: { t: 'duration' },
    retryBackOff: { t: 'object', fields: { baseInterval: { t: 'duration' }, maxInterval: { t: 'duration' } } },
    retriableStatusCodes: { t: 'array', of: { t: 'number', int: true, min: 100, max: 599 } },
    retriableHeaders: { t: 'array', of: headerMatcher },
    retriableRequestHeaders: { t: 'array', of: headerMatcher },
    retriableMethods: strList,
    hostSelectionRetryMaxAttempts: { t: 'number', int: true, min: 1, max: 100 },
    maxRetryAfter: { t: 'duration' },
  },
}

const statusRange: Spec = {
  t: 'object',
  fields: { start: { t: 'number', required: true, int: true, min: 100, max: 600 }, end: { t: 'number', required: true, int: true, min: 100, max: 600 } },
}

const circuitBreakers: Spec = {
  t: 'object',
  fields: {
    maxConnections: { t: 'number', int: true, min: 1, max: 1e9 },
    maxPendingRequests: { t: 'number', int: true, min: 0, max: 1e9 },
    maxRequests: { t: 'number', int: true, min: 1, max: 1e9 },
    maxRetries: { t: 'number', int: true, min: 0, max: 1e9 },
    retryBudget: {
      t: 'object',
      fields: {
        budgetPercent: { t: 'number', min: 0, max: 100 },
        minRetryConcurrency: { t: 'number', int: true, min: 0, max: 1e9 },
      },
    },
    errorRate: {
      t: 'object',
      fields: {
        errorThreshold: { t: 'number', min: 0, max: 100 },
        volumeThreshold: { t: 'number', int: true, min: 1, max: 1e9 },
        rollingWindow: { t: 'duration' },
        rollingWindowBuckets: { t: 'number', int: true, min: 1, max: 1000 },
        openDuration: { t: 'duration' },
        halfOpenTrials: { t: 'number', int: true, min: 1, max: 1e6 },
        failureStatuses: { t: 'array', of: statusRange },
        countTransportErrors: bool,
      },
    },
  },
}


const fault: Spec = {
  t: 'object',
  fields: {
    delay: { t: 'object', fields: { fixedDelay: { t: 'duration' }, headerDelay: bool, percentage: percent } },
    abort: { t: 'object', fields: { httpStatus: { t: 'number', int: true, min: 200, max: 599 }, headerAbort: bool, percentage: percent } },
    maxActiveFaults: { t: 'number', int: true, min: 0, max: 1e9 },
  },
}

const routeAction: Spec = {
  t: 'object',
  fields: {
    cluster: str,
    subset: str,
    weightedClusters: {
      t: 'array',
      of: {
        t: 'object',
        fields: {
          cluster: reqStr,
          subset: str,
          weight: { t: 'number', required: true, int: true },
          ...headerMutations,
        },
      },
    },
    prefixRewrite: str,
    regexRewrite: { t: 'object', fields: { pattern: reqStr, substitution: { t: 'string', required: true } } },
    hostRewrite: str,
    clusterHeader: str,
    clusterNotFoundResponseCode: { t: 'number', int: true, min: 200, max: 599 },
    timeout: { t: 'duration' },
    maxStreamDuration: {
      t: 'object',
      fields: { maxStreamDuration: { t: 'duration' }, grpcTimeoutHeaderMax: { t: 'duration' }, grpcTimeoutHeaderOffset: { t: 'duration' } },
    },
    retryPolicy,
    rateLimit,
    concurrencyLimit,
    requestMirrorPolicies: { t: 'array', of: { t: 'object', fields: { cluster: reqStr, subset: str, percentage: percent } } },
    hashPolicy: {
      t: 'array',
      of: {
        t: 'object',
        fields: {
          header: nameOnly(),
          cookie: nameOnly(),
          queryParameter: nameOnly(),
          terminal: bool,
        },
      },
    },
  },
}

const route: Spec = {
  t: 'object',
  fields: {
    name: str,
    match: routeMatch,
    route: routeAction,
    redirect: {
      t: 'object',
      fields: {
        schemeRedirect: str,
        httpsRedirect: bool,
        hostRedirect: str,
        portRedirect: { t: 'number', int: true, min: 1, max: 65535 },
        pathRedirect: str,
        prefixRewrite: str,
        regexRewrite: { t: 'object', fields: { pattern: reqStr, substitution: { t: 'string', required: true } } },
        responseCode: { t: 'number', int: true },
        stripQuery: bool,
      },
    },
    directResponse: {
      t: 'object',
      fields: { status: { t: 'number', required: true, int: true, min: 200, max: 599 }, body: str },
    },
    ...headerMutations,
    fault,
  },
}

const count: Spec = { t: 'number', int: true, min: 0, max: 1e9 }
const statusRanges: Spec = {
  t: 'array',
  of: {
    t: 'object',
    fields: {
      start: { t: 'number', required: true, int: true, min: 100, max: 600 },
      end: { t: 'number', required: true, int: true, min: 100, max: 600 },
    },
  },
}

const outlierDetection: Spec = {
  t: 'object',
  fields: {
    consecutive5xx: count,
    consecutiveGatewayFailure: count,
    enforcingConsecutive5xx: percent,
    enforcingConsecutiveGatewayFailure: percent,
    interval: { t: 'duration' },
    baseEjectionTime: { t: 'duration' },
    maxEjectionTime: { t: 'duration' },
    maxEjectionPercent: percent,
    alwaysEjectOneHost: bool,
    successRateMinimumHosts: count,
    successRateRequestVolume: count,
    successRateStdevFactor: count,
    enforcingSuccessRate: percent,
    failurePercentageThreshold: percent,
    failurePercentageMinimumHosts: count,
    failurePercentageRequestVolume: count,
    enforcingFailurePercentage: percent,
    successfulActiveHealthCheckUnejectHost: bool,
  },
}

const healthCheck: Spec = {
  t: 'object',
  fields: {
    timeout: { t: 'duration', required: true },
    interval: { t: 'duration', required: true },
    intervalJitter: { t: 'duration' },
    unhealthyThreshold: { t: 'number', required: true, int: true, min: 1, max: 1e6 },
    healthyThreshold: { t: 'number', required: true, int: true, min: 1, max: 1e6 },
    noTrafficInterval: { t: 'duration' },
    httpHealthCheck: {
      t: 'object',
      required: true,
      fields: {
        path: reqStr,
        host: str,
        expectedStatuses: statusRanges,
        retriableStatuses: statusRanges,
        requestHeadersToAdd: { t: 'array', of: headerValueOption },
      },
    },
  },
}

const requestAuthentication: Spec = {
  t: 'object',
  fields: {
    jwtRules: {
      t: 'array',
      required: true,
      of: {
        t: 'object',
        fields: {
          issuer: reqStr,
          audiences: strList,
          jwksUri: str,
          jwks: { t: 'string' },
          fromHeaders: { t: 'array', of: { t: 'object', fields: { name: reqStr, prefix: str } } },
          fromParams: strList,
          forwardOriginalToken: bool,
          outputClaimToHeaders: { t: 'array', of: { t: 'object', fields: { header: reqStr, claim: reqStr } } },
          outputPayloadToHeader: str,
          clockSkew: { t: 'duration' },
          jwksTimeout: { t: 'duration' },
          jwksCacheDuration: { t: 'duration' },
        },
      },
    },
  },
}

const sourceFields: Fields = Object.fromEntries(
  ['principals', 'requestPrincipals', 'namespaces', 'ipBlocks', 'remoteIpBlocks']
    .flatMap((k) => [[k, strList], [`not${k[0]?.toUpperCase()}${k.slice(1)}`, strList]]),
)
const operationFields: Fields = Object.fromEntries(
  ['hosts', 'ports', 'methods', 'paths'].flatMap((k) => [[k, strList], [`not${k[0]?.toUpperCase()}${k.slice(1)}`, strList]]),
)

const authorizationPolicy: Spec = {
  t: 'object',
  fields: {
    name: str,
    action: { t: 'enum', values: ['ALLOW', 'DENY', 'AUDIT'] },
    rules: {
      t: 'array',
      of: {
        t: 'object',
        fields: {
          from: { t: 'array', of: { t: 'object', fields: { source: { t: 'object', required: true, fields: sourceFields } } } },
          to: { t: 'array', of: { t: 'object', fields: { operation: { t: 'object', required: true, fields: operationFields } } } },
          when: { t: 'array', of: { t: 'object', fields: { key: reqStr, values: strList, notValues: strList } } },
        },
      },
    },
  },
}

/**
 * The fields of an object type `T`, one spec for each and no other: the compiler refuses a
 * field of `T` the schema forgets, and a field the schema has that `T` does not. (The
 * nested objects are checked against the types by test/config-model.test.ts.)
 */
type FieldsOf<T> = { readonly [K in keyof Required<T>]: Spec }

/** The root of the config. */
export const meshConfigFields: Fields = {
  clusters: {
    t: 'array',
    of: {
      t: 'object',
      fields: {
        name: reqStr,
        type: { t: 'enum', values: DISCOVERY_TYPES },
        dnsRefreshRate: { t: 'duration' },
        respectDnsTtl: bool,
        dnsFailureRefreshRate: { t: 'object', fields: { baseInterval: { t: 'duration', required: true }, maxInterval: { t: 'duration' } } },
        dnsJitter: { t: 'duration' },
        dnsLookupFamily: { t: 'enum', values: DNS_LOOKUP_FAMILIES },
        dnsResolvers: strList,
        endpoints: {
          t: 'array',
          of: {
            t: 'object',
            fields: {
              address: reqStr,
              labels: { t: 'labels' },
              weight: { t: 'number', int: true, min: 1, max: 128 },
            },
          },
        },
        subsets: { t: 'array', of: { t: 'object', fields: { name: reqStr, labels: { t: 'labels', required: true } } } },
        loadBalancer: { t: 'enum', values: LOAD_BALANCERS },
        leastRequest: { t: 'object', fields: { choiceCount: { t: 'number', int: true, min: 2, max: 100 } } },
        ringHash: {
          t: 'object',
          fields: {
            minimumRingSize: { t: 'number', int: true, min: 1, max: 8_388_608 },
            maximumRingSize: { t: 'number', int: true, min: 1, max: 8_388_608 },
          },
        },
        maglev: { t: 'object', fields: { tableSize: { t: 'number', int: true, min: 2, max: 5_000_011 } } },
        connectTimeout: { t: 'duration' },
        idleTimeout: { t: 'duration' },
        rateLimit,
        concurrencyLimit,
        circuitBreakers,
        outlierDetection,
        healthChecks: { t: 'array', of: healthCheck },
        peerMetadata: bool,
        commonLbConfig: { t: 'object', fields: { healthyPanicThreshold: percent } },
        tls: {
          t: 'object',
          fields: {
            mode: { t: 'enum', required: true, values: ['disable', 'simple', 'mutual', 'DISABLE', 'SIMPLE', 'MUTUAL', 'ISTIO_MUTUAL'] },
            sni: str,
            verifyIdentities: strList,
            trustBundle: { t: 'pem' },
            certificate: { t: 'pem' },
            privateKey: { t: 'pem' },
          },
        },
      },
    },
  },
  virtualHosts: {
    t: 'array',
    of: {
      t: 'object',
      fields: {
        name: reqStr,
        domains: { t: 'array', required: true, of: str },
        routes: { t: 'array', required: true, of: route },
        retryPolicy,
        requireTls: { t: 'enum', values: ['NONE', 'EXTERNAL_ONLY', 'ALL'] },
        virtualClusters: { t: 'array', of: { t: 'object', fields: { name: reqStr, headers: { t: 'array', required: true, of: headerMatcher } } } },
        mostSpecificHeaderMutationsWins: bool,
        ...headerMutations,
      },
    },
  },
  listener: {
    t: 'object',
    fields: {
      rateLimit,
      routes: { t: 'array', of: { t: 'object', fields: { name: str, match: routeMatch, rateLimit, concurrencyLimit, fault } } },
      mtls: {
        t: 'object',
        fields: {
          mode: mtlsMode,
          portLevelMtls: { t: 'map', of: { t: 'object', fields: { mode: { ...mtlsMode, required: true } } } },
          handshakeTimeout: { t: 'duration' },
        },
      },
      requestAuthentication,
      authorization: { t: 'array', of: authorizationPolicy },
      address: str,
    },
  },
  tracing: {
    t: 'object',
    fields: {
      sampling: { t: 'number', min: 0, max: 100 },
      extract: { t: 'array', of: { t: 'enum', values: ['w3c', 'b3', 'b3multi'] } },
      inject: { t: 'array', of: { t: 'enum', values: ['w3c', 'b3', 'b3multi'] } },
      recentSpans: { t: 'number', int: true, min: 0, max: 1_000_000 },
      zipkin: str,
      otlp: str,
      otlpProtocol: { t: 'enum', values: ['http/protobuf', 'http/json', 'grpc'] },
      spans: { t: 'enum', values: ['auto', 'mesh', 'app', 'both'] },
    },
  },
  outboundTrafficPolicy: {
    t: 'object',
    fields: { mode: { t: 'enum', required: true, values: ['ALLOW_ANY', 'REGISTRY_ONLY'] } },
  },
  identity: {
    t: 'object',
    fields: {
      certificate: { t: 'pem', required: true },
      privateKey: { t: 'pem', required: true },
      trustBundle: { t: 'pem', required: true },
      watch: bool,
    },
  },
  admin: { t: 'object', fields: { address: reqStr, allowNonLoopback: bool } },
  drain: { t: 'object', fields: { timeout: { t: 'duration' }, delay: { t: 'duration' } } },
} satisfies FieldsOf<MeshConfig>
