/**
 * HAProxy configs for the sidecar pair of bench/side-by-side.mjs: an outbound sidecar the
 * client calls and an inbound sidecar in front of the app server, as a sidecar pair would
 * be. Both keep connections alive on both sides (`http-reuse always`, idle server
 * connections kept 120 s instead of HAProxy's 5 s purge delay), one thread each. The
 * outbound one carries the route's policy as a sidecar would: a 3 s server timeout and
 * Istio's default retry policy (2 retries on connect failure or 503). With `tls`, the two
 * speak mutual TLS to each other with our CA's certificates (the client's chain verified by
 * the inbound sidecar, the server's by the outbound one); the app legs stay plain HTTP on
 * loopback, as in a pod; the inbound one then passes the peer's verification to the app in
 * `x-forwarded-client-cert`, as Istio's sidecar does.
 */

const GLOBAL = `global
    nbthread 1
    maxconn 8192
    ssl-server-verify required

defaults
    mode http
    option http-keep-alive
    http-reuse always
    timeout connect 1s
    timeout client 120s
    timeout http-keep-alive 120s
    timeout http-request 10s
    timeout server 15s
`

/** The outbound sidecar: listens on `port`, sends to the inbound sidecar at `upstreamPort`. */
export function outboundSidecar({ port, upstreamPort, tls }) {
  const ssl = tls === undefined ? '' : ` ssl crt ${tls.certFile} ca-file ${tls.caFile} verify required alpn http/1.1`
  return `${GLOBAL}
frontend outbound
    bind 127.0.0.1:${port}
    default_backend reviews

backend reviews
    timeout server 3s
    retries 2
    retry-on conn-failure empty-response 503
    server reviews 127.0.0.1:${upstreamPort} pool-purge-delay 120s${ssl}
`
}

/** The inbound sidecar: listens on `port` (with mTLS when `tls`), sends to the app at `appPort`. */
export function inboundSidecar({ port, appPort, tls }) {
  const ssl = tls === undefined ? '' : ` ssl crt ${tls.certFile} ca-file ${tls.caFile} verify required alpn http/1.1`
  // Like Istio's inbound sidecar (x-forwarded-client-cert), tell the app about the verified
  // peer, so the benchmark can check that the pair really spoke mutual TLS.
  const xfcc = tls === undefined ? '' : '\n    http-request set-header x-forwarded-client-cert "Used=%[ssl_c_used];Verify=%[ssl_c_verify]"'
  return `${GLOBAL}
frontend inbound
    bind 127.0.0.1:${port}${ssl}${xfcc}
    default_backend app

backend app
    server app 127.0.0.1:${appPort} pool-purge-delay 120s
`
}
