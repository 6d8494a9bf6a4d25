/**
 * One destination of a route: a cluster, optionally narrowed to a subset, with everything
 * compiled for requests to it — the header mutations of its route levels merged, and the
 * admission gate of the route's and the cluster's limits.
 */
import type { AdmissionGate } from '../policy/admission.js'
import type { Cluster } from '../upstream/cluster.js'
import type { HeaderMutations } from '../http/header-mutations.js'

export interface Target {
  readonly cluster: Cluster
  readonly clusterName: string
  /** Index into `cluster.members.subsets`, or -1 for the whole cluster. */
  readonly subsetIndex: number
  readonly subset: string | undefined
  /** The limits of the route and of the cluster, compiled; `null` when neither has any. */
  readonly gate: AdmissionGate | null
  /** Request mutations of this target merged with its route's and virtual host's. */
  readonly requestMutations: HeaderMutations | null
  readonly responseMutations: HeaderMutations | null
}
