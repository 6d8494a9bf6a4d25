/**
 * What Istio's sidecars put in the TLS ClientHello, so sidecars and the mesh can call each
 * other during a migration. From istio/istio pilot/pkg/networking/core (inbound filter-chain
 * matches) and pilot/pkg/xds/filters (the `istio.alpn` override of outbound HTTP clusters):
 *
 * - A sidecar calling over ISTIO_MUTUAL offers ALPN `istio-http/1.0`, `istio-http/1.1` or
 *   `istio-h2` (each followed by `istio`) for HTTP it detected, and `istio-peer-exchange`,
 *   `istio` for TCP. It offers no `http/1.1`.
 * - A sidecar's inbound listener picks its mTLS filter chains by transport protocol `tls` and,
 *   in PERMISSIVE mode, by those ALPN values (`mtlsHTTPALPNs` = istio-http/1.0, istio-http/1.1,
 *   istio-h2; `allIstioMtlsALPNs` adds istio and istio-peer-exchange). A TLS connection
 *   offering none of them is not terminated there: on a port declared HTTP it matches no
 *   chain and is closed; on other ports it is passed to the app as raw TCP.
 * - Its server side offers `h2`, `http/1.1` (never `istio`), so Istio's values are matched on
 *   but not selected; Envoy then answers without ALPN.
 * - The SNI of an ISTIO_MUTUAL connection is the cluster name in DNS SRV form:
 *   `outbound_.<port>_.<subset>_.<host>` (`model.BuildDNSSrvSubsetKey`), which east-west
 *   gateways (AUTO_PASSTHROUGH) route on. Sidecars ignore it.
 */

/** ALPN a sidecar offers for HTTP/1.1 over ISTIO_MUTUAL (`mtlsHTTP11ALPN`). */
export const ISTIO_HTTP11_ALPN: readonly string[] = Object.freeze(['istio-http/1.1', 'istio'])

/**
 * What the mesh offers upstream in ISTIO_MUTUAL mode: the sidecar's list, then `http/1.1` for
 * servers that know no Istio values (RFC 7301 makes a server with no protocol in common
 * fail the handshake, as Node's and earlier sidecarless listeners do). Envoy's filter-chain
 * match takes the first offered value it has a chain for, so `istio-http/1.1` decides.
 */
export const ISTIO_MUTUAL_CLIENT_ALPN: readonly string[] = Object.freeze([...ISTIO_HTTP11_ALPN, 'http/1.1'])

/** What the mesh offers upstream in other TLS modes. */
export const HTTP11_CLIENT_ALPN: readonly string[] = Object.freeze(['http/1.1'])

/**
 * The protocol the inbound listener selects from a client's ALPN list (the listener serves
 * HTTP/1.x only), or undefined to refuse the handshake with `no_application_protocol`.
 *
 * In order: `http/1.1`; a sidecar's `istio-http/1.1`; `http/1.0`, `istio-http/1.0`; then
 * `istio` when nothing names an HTTP version (a sidecar that proxies our port as TCP: the
 * bytes are the app's HTTP/1.x). `istio-peer-exchange` is never selected: a sidecar that sees
 * it selected prefixes the stream with its binary metadata exchange. A list that asks only
 * for HTTP/2 (`h2`, `istio-h2`) or for protocols we do not speak is refused, as RFC 7301 asks.
 */
export function selectServerAlpn(offered: readonly string[]): string | undefined {
  for (const p of SERVER_PREFERENCE) if (offered.includes(p)) return p
  if (offered.includes('istio') && !offered.some((p) => p === 'h2' || p === 'istio-h2')) return 'istio'
  return undefined
}

const SERVER_PREFERENCE = ['http/1.1', 'istio-http/1.1', 'http/1.0', 'istio-http/1.0'] as const

/** Istio's outbound cluster name: `outbound|<port>|<subset>|<host>`. */
const ISTIO_CLUSTER_NAME = /^outbound\|(\d{1,5})\|([^|]*)\|([^|]+)$/

/**
 * The SNI a sidecar sends for an Istio outbound cluster name (`outbound|9080|v1|reviews.default.svc.cluster.local`
 * → `outbound_.9080_.v1_.reviews.default.svc.cluster.local`), or undefined when the name is
 * not in Istio's form.
 */
export function istioSniOf(clusterName: string): string | undefined {
  const m = ISTIO_CLUSTER_NAME.exec(clusterName)
  if (m === null) return undefined
  return `outbound_.${m[1]}_.${m[2]}_.${m[3]}`
}
