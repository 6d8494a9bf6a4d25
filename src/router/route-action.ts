/**
 * Compiled route actions: where a matched request goes (a cluster target drawn from a
 * cumulative weight table), how its path and host are rewritten, or what local reply
 * (redirect, direct response) answers it.
 */
import { fmix32, hash32 } from '../hash.js'
import type { CompiledMatch } from '../http/matcher.js'
import type { RequestView } from '../http/request-view.js'
import type { RouteIndex } from './route-index.js'
import type { HeaderMutations } from '../http/header-mutations.js'
import type { Target } from './target.js'
import type { RetryPolicy } from '../policy/retry-policy.js'
import type { CompiledFault } from '../policy/fault.js'
import type { MirrorPolicy } from './mirror.js'

export type { Target } from './target.js'

/** A compiled hash policy: the request's hash, or undefined when no policy yields a value. */
export type HashFunction = (req: RequestView) => number | undefined

/** Forward to a cluster, or split across several. */
export interface ClusterAction {
  readonly kind: 'cluster'
  /** Empty for a `clusterHeader` action: {@link ClusterAction.forCluster} gives the action per cluster. */
  readonly targets: readonly Target[]
  /** Cumulative weights (weightedClusters); `null` for a single target. */
  readonly cumulative: readonly number[] | null
  readonly totalWeight: number
  readonly timeoutMs: number
  readonly rewritePath: ((req: RequestView) => string) | null
  readonly hostRewrite: string | undefined
  readonly hash: HashFunction | null
  /** The route's retry policy (or its virtual host's); null: one try. */
  readonly retry: RetryPolicy | null
  /** The route's fault injection (`fault`), or `null`. */
  readonly fault: CompiledFault | null
  /** The route's mirror policies (`route.requestMirrorPolicies`), or `null`. */
  readonly mirror: MirrorPolicy | null
  /** Envoy `cluster_header` (lower-cased), or `null`. */
  readonly clusterHeader: string | null
  /** For a `clusterHeader` action: this action bound to one cluster, or `undefined` when there is no such cluster. */
  readonly forCluster: ((name: string) => ClusterAction | undefined) | null
  /** The status answered when `clusterHeader` names no cluster (Envoy `cluster_not_found_response_code`). */
  readonly notFoundStatus: number
  /**
   * Envoy `max_stream_duration.grpc_timeout_header_max`: the timeout a gRPC request's
   * `grpc-timeout` header gives (offset taken off, capped), or `undefined` without the header.
   */
  readonly grpcTimeout: ((req: RequestView) => number | undefined) | null
}

/** Answer with a redirect. */
export interface RedirectActionCompiled {
  readonly kind: 'redirect'
  readonly status: number
  location(req: RequestView): string
}

/** Answer with a fixed response. */
export interface DirectAction {
  readonly kind: 'direct'
  readonly status: number
  readonly body: Buffer | undefined
}

export type CompiledAction = ClusterAction | RedirectActionCompiled | DirectAction

/** A route ready to run. */
export interface CompiledRoute {
  readonly name: string | undefined
  readonly match: CompiledMatch
  readonly action: CompiledAction
  /** For redirect and direct responses (cluster targets carry their own merged lists). */
  readonly responseMutations: HeaderMutations | null
}

/** A virtual host ready to run. */
export interface CompiledVirtualHost {
  readonly name: string
  readonly routes: readonly CompiledRoute[]
  /** Candidate routes by first path segment, for virtual hosts with many routes. */
  readonly index: RouteIndex<CompiledRoute> | null
  /** Envoy `require_tls`. */
  readonly requireTls: 'NONE' | 'EXTERNAL_ONLY' | 'ALL'
  /** Envoy `virtual_clusters`, in order; `null` when none. */
  readonly virtualClusters: readonly CompiledVirtualCluster[] | null
}

/** A virtual cluster: a name and the header matchers a request must all match. */
export interface CompiledVirtualCluster {
  readonly name: string
  readonly matches: (req: RequestView) => boolean
}

/** Salt so the split draw and the endpoint draw of one hashed request are independent. */
const SPLIT_SALT = 0x5bd1e995

/**
 * Picks the target of a cluster action. With a request hash the draw is the hash itself,
 * so one user keeps landing in the same slice of the weight table: sticky while the
 * weights hold, and a weight change moves only the users of the slices that changed.
 */
export function pickTarget(action: ClusterAction, hash: number | undefined): Target {
  const cum = action.cumulative
  if (cum === null) return action.targets[0] as Target
  const draw = hash === undefined
    ? Math.floor(Math.random() * action.totalWeight)
    : fmix32((hash ^ SPLIT_SALT) >>> 0) % action.totalWeight
  for (let i = 0; i < cum.length; i++) {
    if ((cum[i] as number) > draw) return action.targets[i] as Target
  }
  return action.targets[cum.length - 1] as Target
}

/** Builds the request hash function of a route's hash policies (Envoy semantics). */
export function compileHash(policies: readonly { header?: { name: string }; cookie?: { name: string }; queryParameter?: { name: string }; terminal?: boolean }[]): HashFunction | null {
  if (policies.length === 0) return null
  const steps = policies.map((p) => {
    let read: (req: RequestView) => string | undefined
    if (p.header !== undefined) {
      const name = p.header.name.toLowerCase()
      read = (req) => req.header(name)
    } else if (p.cookie !== undefined) {
      const name = p.cookie.name
      read = (req) => readCookie(req.header('cookie'), name)
    } else {
      const name = (p.queryParameter as { name: string }).name
      read = (req) => req.queryParameter(name)
    }
    return { read, terminal: p.terminal === true }
  })
  return (req) => {
    let h: number | undefined
    for (const s of steps) {
      const v = s.read(req)
      if (v === undefined) continue
      h = h === undefined ? hash32(v) : hash32(v, h)
      if (s.terminal) break
    }
    return h
  }
}

function readCookie(header: string | undefined, name: string): string | undefined {
  if (header === undefined) return undefined
  for (const part of header.split(/[;,]/)) {
    const eq = part.indexOf('=')
    if (eq === -1) continue
    if (part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim()
  }
  return undefined
}
