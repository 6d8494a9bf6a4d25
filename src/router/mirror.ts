/**
 * Request mirroring (Envoy `RouteAction.request_mirror_policies`, Istio `mirror`): a
 * sampled share of a route's requests is copied, fire-and-forget, to a shadow cluster
 * (or subset) through that cluster's load balancer and endpoint pools.
 *
 * The copy never touches the original request: it is sent once (no retries), its response
 * body is read and discarded, its errors are swallowed (counted in the shadow cluster's
 * metrics, like any request to it), and nothing here throws or leaves a rejection. The
 * copy's Host is the original authority (after `hostRewrite`) with `-shadow` appended to
 * its host part (`reviews:9080` → `reviews-shadow:9080`); it carries the route's header
 * mutations and the caller's trace (a client span of its own, in the same trace).
 *
 * Bounds: at most `defaults.mirrorMaxInFlight` copies of one route in flight (beyond it,
 * copies are skipped and counted); each copy ends at the route timeout; `close()` of the
 * mesh aborts copies still in flight. Only replayable bodies are mirrored (none, a string,
 * a Buffer or Uint8Array): a streaming body can be read once, by the original request, so
 * such requests are not mirrored and are counted as skipped.
 *
 * The copy is taken when the request is routed, after the fault filter (an aborted request
 * is not mirrored; a delayed one is mirrored after its delay) and before the route and
 * cluster limits of the original decide. The shadow cluster's own limits do not apply to
 * copies: the in-flight bound is what protects this process.
 */
import { defaults } from '../config/defaults.js'
import type { RequestMirrorPolicy } from '../config/types.js'
import type { HeaderMutations } from '../http/header-mutations.js'
import type { Target } from './target.js'
import type { Cluster } from '../upstream/cluster.js'

/**
 * One compiled mirror destination: a route target (the copy takes the send path of any
 * request to it, `outbound/mirror.ts`) with the share of requests copied there. Its
 * request mutations are the route's and virtual host's; the shadow cluster's limits do
 * not apply (no gate).
 */
export interface MirrorTarget extends Target {
  /** Percent of requests copied here (0–100). */
  readonly percentage: number
}

/** Counters of one route's mirrors. */
export interface MirrorStats {
  /** Copies sent (their outcome counts in the shadow cluster's metrics). */
  readonly mirrored: number
  /** Copies not made because the request body streams (cannot be replayed). */
  readonly skippedBody: number
  /** Copies not made because `mirrorMaxInFlight` copies of this route were in flight. */
  readonly skippedOverflow: number
  /** Copies in flight now. */
  readonly inFlight: number
}

/** The mirror policies of one route, compiled, with their counters. */
export class MirrorPolicy {
  readonly targets: readonly MirrorTarget[]
  readonly maxInFlight: number
  inFlight = 0
  mirrored = 0
  skippedBody = 0
  skippedOverflow = 0

  constructor(targets: readonly MirrorTarget[], maxInFlight: number = defaults.mirrorMaxInFlight) {
    this.targets = Object.freeze([...targets])
    this.maxInFlight = maxInFlight
  }

  /** Whether this request's draw copies it to `t` (percentage), or never. */
  draws(t: MirrorTarget): boolean {
    return t.percentage >= 100 || (t.percentage > 0 && Math.random() * 100 < t.percentage)
  }

  /** The counters, read at one moment. */
  stats(): MirrorStats {
    return { mirrored: this.mirrored, skippedBody: this.skippedBody, skippedOverflow: this.skippedOverflow, inFlight: this.inFlight }
  }
}

/** Compiles a route's mirror policies; `null` when it has none. Validation checked the names. */
export function compileMirror(
  policies: readonly RequestMirrorPolicy[] | undefined,
  clusters: ReadonlyMap<string, Cluster>,
  requestMutations: HeaderMutations | null,
): MirrorPolicy | null {
  if (policies === undefined || policies.length === 0) return null
  const targets: MirrorTarget[] = []
  for (const p of policies) {
    const cluster = clusters.get(p.cluster)
    if (cluster === undefined) continue
    targets.push(Object.freeze({
      cluster,
      clusterName: cluster.name,
      subsetIndex: p.subset === undefined ? -1 : cluster.subsetNames.indexOf(p.subset),
      subset: p.subset,
      gate: null,
      requestMutations,
      responseMutations: null,
      percentage: p.percentage ?? defaults.mirrorPercentage,
    }))
  }
  return targets.length === 0 ? null : new MirrorPolicy(targets)
}

/** Envoy's shadow host: `-shadow` appended to the host part, the port kept. */
export function shadowAuthority(authority: string): string {
  const close = authority.lastIndexOf(']')
  const colon = authority.lastIndexOf(':')
  if (colon > close && colon !== -1) return `${authority.slice(0, colon)}-shadow${authority.slice(colon)}`
  return `${authority}-shadow`
}

/** Whether undici can send `body` twice: nothing, a string, or bytes. */
export function isReplayableBody(body: unknown): boolean {
  return body === undefined || body === null || typeof body === 'string' || body instanceof Uint8Array
}
