/**
 * `@opentelemetry/api`, loaded on first use: only once the app has registered something
 * with OpenTelemetry (a tracer provider, a context manager, a propagator...), or once the
 * mesh sends its own spans through the OpenTelemetry SDK (which loads the API itself).
 *
 * Why: the API is 47 CommonJS modules, ~0.38 MB of heap in a process (measured on Node 24,
 * docs/memory.md), and a mesh whose app uses no OpenTelemetry needs none of it: its own
 * spans (`recording-span.ts`), context (`context.ts`) and ids are the mesh's.
 *
 * How the mesh tells without loading it: every copy of the API (of any 1.x version) keeps
 * its registrations on one global object, `globalThis[Symbol.for('opentelemetry.js.api.1')]`
 * (`{ version, trace?, context?, propagation?, diag?, metrics? }`, created by the first
 * registration: see the API's `internal/global-utils`). The places that would use the API
 * read that object first, as they did before, on every request: one symbol-keyed property
 * read of `globalThis` (a few nanoseconds), so an app that registers after the mesh was
 * created is seen from its next request on, and the API is loaded then, once.
 */
import { createRequire } from 'node:module'
import type * as Api from '@opentelemetry/api'
import type { SpanKind, SpanStatusCode, TraceFlags } from '@opentelemetry/api'

/** The key of the global object where the OpenTelemetry API (major version 1) keeps what the app registered. */
const OTEL_GLOBAL = Symbol.for('opentelemetry.js.api.1')

/** What the API keeps on {@link OTEL_GLOBAL}: each member is set when the app registers one. */
export interface OtelGlobal {
  readonly version?: unknown
  readonly trace?: unknown
  readonly context?: unknown
  readonly propagation?: unknown
}

/** The API's global registrations, when something registered one; `undefined` while nothing did. */
export function otelGlobal(): OtelGlobal | undefined {
  return (globalThis as Record<symbol, OtelGlobal | undefined>)[OTEL_GLOBAL]
}

let api: typeof Api | undefined

/**
 * The OpenTelemetry API, loaded on the first call (synchronously: a `require` of the
 * package, as the SDK is loaded in `tracing.ts`). Callers reach it only when
 * {@link otelGlobal} says the app registered something, or on the mesh's SDK path.
 */
export function otelApi(): typeof Api {
  return (api ??= createRequire(import.meta.url)('@opentelemetry/api') as typeof Api)
}

/**
 * `@opentelemetry/api`'s `createContextKey`, which is `Symbol.for(description)` (so that
 * every copy of the API, and the SDK packages, agree on a key): the same key without
 * loading the API.
 */
export function contextKey(description: string): symbol {
  return Symbol.for(description)
}

/*
 * The values of the API's enums the mesh uses (fixed by the OpenTelemetry specification and
 * the API's 1.x interface), so that using them does not load the API. Checked against the
 * API's own enums in test/otel-api-lazy.test.ts.
 */
/** `SpanKind.SERVER`. */
export const SPAN_KIND_SERVER = 1 as SpanKind
/** `SpanKind.CLIENT`. */
export const SPAN_KIND_CLIENT = 2 as SpanKind
/** `SpanStatusCode.UNSET`. */
export const STATUS_UNSET = 0 as SpanStatusCode
/** `SpanStatusCode.OK`. */
export const STATUS_OK = 1 as SpanStatusCode
/** `SpanStatusCode.ERROR`. */
export const STATUS_ERROR = 2 as SpanStatusCode
/** `TraceFlags.NONE`. */
export const TRACE_FLAGS_NONE = 0 as TraceFlags
/** `TraceFlags.SAMPLED`. */
export const TRACE_FLAGS_SAMPLED = 1 as TraceFlags
