/**
 * Every error the mesh raises carries a stable `code` from one table, so callers can
 * branch on `err.code` instead of parsing messages. The table is also the documentation:
 * a test checks that every code is described in `docs/errors.md`.
 *
 * @module
 */

/** Codes of errors the mesh throws or rejects with. */
export const ErrorCodes = {
  /** A config was rejected by validation; `issues` lists every problem by path. */
  SIDECARLESS_ERR_INVALID_CONFIG: 'the config is invalid',
  /** A config file could not be read or parsed. */
  SIDECARLESS_ERR_CONFIG_LOAD: 'the config file could not be read or parsed',
  /** A request undici would refuse to send (CR/LF in a header, the path or the method; a header such as `transfer-encoding`; bad options); `cause` is undici's error. */
  SIDECARLESS_ERR_INVALID_REQUEST: 'the request is invalid; it was not sent',
  /** The request URL could not be parsed. */
  SIDECARLESS_ERR_INVALID_URL: 'the request URL is invalid',
  /** `outboundTrafficPolicy.mode` is REGISTRY_ONLY and no virtual host matches the authority. */
  SIDECARLESS_ERR_REGISTRY_ONLY: 'the destination is not in the mesh registry',
  /** The caller aborted the request. */
  SIDECARLESS_ERR_ABORTED: 'the request was aborted by the caller',
  /** The route timeout fired after the response had started; the body was cut short. */
  SIDECARLESS_ERR_UPSTREAM_TIMEOUT: 'the route timeout expired while the response was streaming',
  /** The upstream reset or closed the connection after the response headers; the body was cut short. */
  SIDECARLESS_ERR_UPSTREAM_RESET: 'the upstream failed after the response started',
  /** The mesh (or its dispatcher) was closed; no new requests are accepted. */
  SIDECARLESS_ERR_CLOSED: 'the mesh is closed',
  /** A traffic API call named a virtual host or cluster the config does not have. */
  SIDECARLESS_ERR_UNKNOWN_TARGET: 'no virtual host or cluster has that name',
  /** An argument to a public function is of the wrong type or out of range. */
  SIDECARLESS_ERR_INVALID_ARGUMENT: 'an argument is invalid',
  /** The admin endpoint (`admin.address`) could not listen (port in use, address not on this host). */
  SIDECARLESS_ERR_ADMIN_LISTEN: 'the admin endpoint could not listen',
  /** A string is not a valid SPIFFE ID; the error's `reason` names the broken rule. */
  SIDECARLESS_ERR_INVALID_SPIFFE_ID: 'the SPIFFE ID is invalid',
  /** An upstream's certificate did not carry an identity the cluster's `tls.verifyIdentities` allows; no request byte was sent. */
  SIDECARLESS_ERR_PEER_IDENTITY: "the upstream's identity is not allowed",
  /** TLS credentials (certificate, private key, trust bundle) could not be read or do not fit together. */
  SIDECARLESS_ERR_TLS_CREDENTIALS: 'TLS credentials could not be loaded',
  /** A saved certificate authority could not be loaded. */
  SIDECARLESS_ERR_CA: 'the certificate authority could not be loaded',
  /** `sidecarless/register` or `sidecarless/fetch` found `SIDECARLESS_CONFIG` unset, or a `SIDECARLESS_*` variable invalid. */
  SIDECARLESS_ERR_ENVIRONMENT: 'the SIDECARLESS_* environment is missing or invalid',
  /** The running Node.js is older than any the mesh can run on (it needs 22.12+; 22, 24 and 26 are supported). */
  SIDECARLESS_ERR_UNSUPPORTED_RUNTIME: 'this Node.js version cannot run the mesh',
  /** xDS (a control plane, an xDS client) was asked for, but its optional dependencies `@grpc/grpc-js` and `protobufjs` are not installed. */
  SIDECARLESS_ERR_XDS_UNAVAILABLE: 'the optional xDS dependencies are not installed',
  /** An xDS message or resource could not be encoded or decoded; the message names the type and the field path. */
  SIDECARLESS_ERR_XDS_RESOURCE: 'an xDS resource could not be encoded or decoded',
  /** `createMesh({ xds })` found no xDS bootstrap (`GRPC_XDS_BOOTSTRAP`, `GRPC_XDS_BOOTSTRAP_CONFIG`, `xds.bootstrap`), or one gRPC would refuse; the message names the field. */
  SIDECARLESS_ERR_XDS_BOOTSTRAP: 'the xDS bootstrap is missing or invalid',
  /** A local traffic change (`mesh.traffic.split`) named a virtual host whose routes come from the xDS server. */
  SIDECARLESS_ERR_XDS_MANAGED: 'the target is managed by the xDS server',
  /** `mesh.traffic.rollout(name)` while another rollout of `name` runs. */
  SIDECARLESS_ERR_ROLLOUT_RUNNING: 'a rollout of that target is already running',
} as const

/** A stable error code, one of {@link ErrorCodes}. */
export type ErrorCode = keyof typeof ErrorCodes

/** Codes of the problems validation reports, each with the path where it was found. */
export const ConfigIssueCodes = {
  /** The config is empty: null, undefined, or a file with no document (empty, or only comments). `{}` is not empty. */
  EMPTY_CONFIG: 'the config is empty (null, undefined, or a file with no document)',
  /** A field the model does not know (the message suggests the closest known name). */
  UNKNOWN_FIELD: 'a field the model does not know',
  /** A required field is missing. */
  REQUIRED: 'a required field is missing',
  /** A value has the wrong type (string where a number is expected, and so on). */
  INVALID_TYPE: 'a value has the wrong type',
  /** A value is of the right type but not allowed (out of range, not in an enum). */
  INVALID_VALUE: 'a value is not allowed',
  /** A duration is not a non-negative number of milliseconds nor a string like `250ms`, `3s`, `1m`, `1h`. */
  INVALID_DURATION: 'a duration cannot be parsed',
  /** An endpoint address is not `host:port` or an http(s) URL with a port-able host. */
  INVALID_ADDRESS: 'an endpoint address cannot be parsed',
  /** A regular expression does not compile, or uses a feature outside the safe subset. */
  INVALID_REGEX: 'a regular expression is invalid',
  /** Two clusters, subsets, virtual hosts or routes share a name. */
  DUPLICATE_NAME: 'a name is used twice',
  /** Two virtual hosts claim the same domain. */
  DUPLICATE_DOMAIN: 'a domain is claimed by two virtual hosts',
  /** A domain pattern is not exact, `*.suffix`, `prefix.*` or `*`. */
  INVALID_DOMAIN: 'a domain pattern is invalid',
  /** A route names a cluster that does not exist. */
  UNKNOWN_CLUSTER: 'a route names a cluster that does not exist',
  /** A route names a subset the cluster does not define. */
  UNKNOWN_SUBSET: 'a route names a subset the cluster does not define',
  /** Weighted clusters whose weights are all zero, or a negative weight. */
  INVALID_WEIGHTS: 'weights are negative or all zero',
  /** A route has no action, or more than one of route / redirect / directResponse. */
  INVALID_ACTION: 'a route must have exactly one action',
  /** A route match has none, or more than one, of prefix / path / safeRegex / pathSeparatedPrefix. */
  INVALID_MATCH: 'a route match must have exactly one path specifier',
  /** A header name or value is not valid HTTP, or is one the mesh will not let config touch. */
  INVALID_HEADER: 'a header name or value is invalid',
  /** The config is larger than the mesh accepts (too many items, too long a string). */
  TOO_LARGE: 'the config exceeds a size bound',
} as const

/** A stable validation problem code, one of {@link ConfigIssueCodes}. */
export type ConfigIssueCode = keyof typeof ConfigIssueCodes

/** One problem validation found: where, which rule, and a human sentence. */
export interface ConfigIssue {
  /** Where the problem is, e.g. `virtualHosts[0].routes[2].route.weightedClusters[1].subset`. */
  readonly path: string
  /** Which rule was broken. */
  readonly code: ConfigIssueCode
  /** What is wrong, naming the value where that helps. */
  readonly message: string
  /**
   * Where the problem is in the file the config was read from (for a translated Istio
   * manifest, the manifest field it came from). Set only for configs read from a file.
   */
  readonly location?: ConfigLocation
}

/**
 * Codes of config warnings: settings that are valid (Envoy accepts them) but almost surely
 * not what was meant. A config with warnings is applied; `sidecarless validate` prints them
 * and the mesh reports them once as a `SIDECARLESS_CONFIG_WARNING` process warning.
 */
export const ConfigWarningCodes = {
  /** A route `prefix` that does not start with `/`: no request path does, so the route never matches. */
  PREFIX_WITHOUT_SLASH: 'a path prefix does not start with /',
} as const

/** A stable config warning code, one of {@link ConfigWarningCodes}. */
export type ConfigWarningCode = keyof typeof ConfigWarningCodes

/** A setting that is valid but almost surely a mistake. */
export interface ConfigWarning {
  readonly path: string
  readonly code: ConfigWarningCode
  readonly message: string
}

/** A position in a config file: 1-based line and column. */
export interface ConfigLocation {
  readonly file: string
  readonly line: number
  readonly column: number
}

/** The error class of the mesh: every error it raises is a MeshError with a stable code. */
export class MeshError extends Error {
  /** The stable code; branch on it, not on the message. */
  readonly code: ErrorCode

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.code = code
    this.name = 'MeshError'
  }
}

/**
 * A config was rejected. `issues` holds every problem validation found, not only the
 * first, each with its path and code; the message lists them too.
 */
export class ConfigError extends MeshError {
  /** Every problem found, in document order. */
  readonly issues: readonly ConfigIssue[]

  constructor(issues: readonly ConfigIssue[], options?: { cause?: unknown; source?: string }) {
    const where = options?.source === undefined ? '' : ` (${options.source})`
    const lines = issues.map((i) => `  ${i.location === undefined ? '' : `${i.location.file}:${i.location.line}:${i.location.column}: `}${i.path || '<root>'}: ${i.code}: ${i.message}`)
    super(
      'SIDECARLESS_ERR_INVALID_CONFIG',
      `invalid mesh config${where}: ${issues.length} problem${issues.length === 1 ? '' : 's'}\n${lines.join('\n')}`,
      options,
    )
    this.name = 'ConfigError'
    this.issues = Object.freeze([...issues])
  }
}

/**
 * The error a caller sees when it aborted its own request, on every path (waiting for the
 * upstream, in a fault delay, queued at a bulkhead, waiting for a shared quota, in a retry
 * back-off, while the body streams): a `SIDECARLESS_ERR_ABORTED` {@link MeshError} named
 * `AbortError` (code written for fetch checks the name), the caller's reason as its
 * `cause`. A reason that is already a MeshError is the mesh's own and stays as it is.
 */
export function abortError(reason: unknown): MeshError {
  if (reason instanceof MeshError) return reason
  const err = new MeshError('SIDECARLESS_ERR_ABORTED', 'the request was aborted by the caller', { cause: reason })
  err.name = 'AbortError'
  return err
}

/** True when `err` is a {@link MeshError} with the given code. */
export function isMeshError(err: unknown, code?: ErrorCode): err is MeshError {
  return err instanceof MeshError && (code === undefined || err.code === code)
}
