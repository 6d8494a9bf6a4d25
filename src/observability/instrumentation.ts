/**
 * What the mesh needs to know about the app's OpenTelemetry setup, read without depending
 * on the SDK: whether a tracer provider is registered, whether OpenTelemetry's undici
 * instrumentation traces undici requests (and so would add a client span and a
 * `traceparent` of its own to the mesh's upstream requests), and the context keys the OTel
 * SDK packages share by `Symbol.for` name (suppress-tracing, RPC metadata), so the mesh
 * can set them without importing `@opentelemetry/core`.
 */
import { channel } from 'node:diagnostics_channel'
import type { Context } from '@opentelemetry/api'
import { contextKey, otelGlobal } from './otel-api.js'

/** True when the app registered a global OpenTelemetry tracer provider (read without loading the API: `otel-api.ts`). */
export function appTracerRegistered(): boolean {
  return otelGlobal()?.trace !== undefined
}

/**
 * The channel undici publishes every request on as it is created (Node's bundled undici and
 * the npm package alike); `@opentelemetry/instrumentation-undici` starts its client span and
 * injects its trace headers there.
 */
const requestCreated = channel('undici:request:create')

/**
 * True when the app's undici instrumentation is active: a tracer provider is registered and
 * something listens for undici's request creation. One property read when it is not.
 */
export function undiciInstrumented(): boolean {
  return requestCreated.hasSubscribers && appTracerRegistered()
}

/** `@opentelemetry/core`'s suppress-tracing key: instrumentations and the SDK record nothing under it. */
const SUPPRESS_TRACING = contextKey('OpenTelemetry SDK Context Key SUPPRESS_TRACING')

/** `ctx` with tracing suppressed: the app's instrumentations add no span and no trace header in it. */
export function withoutAppSpans(ctx: Context): Context {
  return ctx.setValue(SUPPRESS_TRACING, true)
}

/** `@opentelemetry/core`'s RPC metadata key: instrumentation-http names its server span from `route` set there. */
const RPC_METADATA = contextKey('OpenTelemetry SDK Context Key RPC_METADATA')

/**
 * Tells instrumentation-http the route of the request it is serving (`http.route`, and the
 * span name `GET /api/{id}` it gives its server span when the response ends), unless a
 * framework instrumentation (Express, Fastify, ...) already did or does later: theirs is the
 * more precise template.
 */
export function setAppRoute(ctx: Context, route: string): void {
  const meta = ctx.getValue(RPC_METADATA) as { type?: unknown; route?: string } | undefined
  if (meta !== undefined && meta.route === undefined) meta.route = route
}
