/**
 * What the mesh dials a cluster's endpoints with when the cluster has `tls`: the settings
 * `security/compile.ts` builds from the cluster's config and the workload identity, and the
 * upstream connector (`upstream/tls-connector.ts`) uses for every new connection.
 */
import type { SecureContext } from 'node:tls'

/** The TLS settings of a cluster's connections, compiled. */
export interface UpstreamTls {
  /** Distinguishes pools: two clusters with different TLS never share connections. */
  readonly key: string
  /** SNI to send; undefined: the endpoint host name when it is not an IP. */
  readonly sni: string | undefined
  /** ALPN protocols offered (Istio's values in ISTIO_MUTUAL mode); the mesh speaks HTTP/1.1 whatever the server selects. */
  readonly alpn: readonly string[]
  /** Tests the server's SPIFFE ID; null: no identity check. */
  readonly verify: ((id: string) => boolean) | null
  /** Verify the server's host name (standard HTTPS); off when identities are verified instead, or for mutual. */
  readonly checkHostname: boolean
  /** The secure context for a new connection (the current credentials; a new object when they rotate). */
  context(): SecureContext
}
