/**
 * The shape of the config, as data: which fields each object has and what type each holds.
 * The structural pass of validation walks it; the semantic pass (names, references,
 * regexes, addresses, weights) lives in `validate.ts`.
 */

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

/** The fields of one object type. */
export type Fields = { readonly [name: string]: Spec }

const str: Spec = { t: 'string' }
const reqStr: Spec = { t: 'string', required: true }
const bool: Spec = { t: 'boolean' }
const strList: Spec = { t: 'array', of: str }

const headerValueOption: Spec = {
  t: 'object',
  fields: {
    header: { t: 'object', required: true, fields: { key: reqStr, value: { t: 'string', required: true } } },
    appendAction: {
      t: 'enum',
      values: ['APPEND_IF_EXISTS_OR_ADD', 'ADD_IF_ABSENT', 'OVERWRITE_IF_EXISTS_OR_ADD', 'OVERWRITE_IF_EXISTS'],
    },
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

const routeMatch: Spec = {
  t: 'object',
  required: true,
  fields: {
    prefix: str,
    path: str,
    safeRegex: str,
    pathSeparatedPrefix: str,
    caseSensitive: bool,
    headers: { t: 'array', of: { t: 'object', fields: { ...stringMatchFields, invert: bool } } },
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
        unit: { t: 'enum', required: true, values: ['second', 'minute', 'hour', 'day'] },
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
    timeout: { t: 'duration' },
    rateLimit,
    concurrencyLimit,
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
        responseCode: { t: 'number', int: true },
        stripQuery: bool,
      },
    },
    directResponse: {
      t: 'object',
      fields: { status: { t: 'number', required: true, int: true, min: 200, max: 599 }, body: str },
    },
    ...headerMutations,
  },
}

/** The root of the config. */
export const meshConfigFields: Fields = {
  clusters: {
    t: 'array',
    of: {
      t: 'object',
      fields: {
        name: reqStr,
        type: { t: 'enum', values: ['static', 'strict_dns', 'logical_dns'] },
        dnsRefreshRate: { t: 'duration' },
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
        loadBalancer: { t: 'enum', values: ['round_robin', 'least_request', 'random', 'ring_hash', 'maglev'] },
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
        ...headerMutations,
      },
    },
  },
  listener: {
    t: 'object',
    fields: {
      rateLimit,
      routes: { t: 'array', of: { t: 'object', fields: { name: str, match: routeMatch, rateLimit, concurrencyLimit } } },
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
    },
  },
  outboundTrafficPolicy: {
    t: 'object',
    fields: { mode: { t: 'enum', required: true, values: ['ALLOW_ANY', 'REGISTRY_ONLY'] } },
  },
  admin: { t: 'object', fields: { address: reqStr } },
}
