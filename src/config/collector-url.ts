/**
 * The rules a collector URL (`tracing.zipkin`, `tracing.otlp`) must follow. Kept apart from
 * the exporters so validation can use it without loading them.
 */

/**
 * Why `value` cannot be a collector URL, or `undefined` when it can: an absolute http(s)
 * URL with a host and no credentials. Credentials are refused because the URL is config:
 * it is logged, diffed and shown by the admin endpoint; a collector that needs a secret
 * should get it some other way.
 */
export function collectorUrlProblem(value: string): string | undefined {
  let url: URL
  try {
    url = new URL(value)
  } catch {
    return `${show(value)} is not an absolute URL (e.g. "http://127.0.0.1:9411/api/v2/spans")`
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    return `${show(value)} uses ${url.protocol.slice(0, -1)}; a collector URL is http or https`
  }
  if (url.username !== '' || url.password !== '') {
    return 'a collector URL must not carry credentials (user:password@)'
  }
  if (url.hostname === '') return `${show(value)} has no host`
  return undefined
}

/** The URL a valid collector URL is sent to: normalised, without a fragment. */
export function collectorUrl(value: string): string {
  const url = new URL(value)
  url.hash = ''
  return url.href
}

function show(v: string): string {
  return JSON.stringify(v.length > 64 ? `${v.slice(0, 64)}…` : v)
}
