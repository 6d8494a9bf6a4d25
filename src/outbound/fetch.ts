/**
 * `mesh.fetch`: WHATWG fetch through the mesh dispatcher. Answers the mesh makes for the
 * upstream (503, 504, 404 no route, 429 rate limited) are ordinary responses; the promise
 * rejects only for caller errors, always with a coded {@link MeshError}: an invalid URL, a
 * request fetch or undici would refuse (`SIDECARLESS_ERR_INVALID_REQUEST`), a REGISTRY_ONLY
 * refusal, an abort by the caller, a closed mesh. The same rule holds for `mesh.dispatcher`.
 */
import type { Request as UndiciRequest, RequestInit as UndiciRequestInit } from 'undici'
import { abortError, MeshError } from '../errors.js'
import type { MeshDispatcher } from './dispatcher.js'

/**
 * The signature of `mesh.fetch`: Node.js's own fetch — its `Response`, `Request`, `Headers`
 * and `FormData` are the global ones, so `res instanceof Response` holds as it does for
 * `fetch` — that also takes the `Request` and `FormData` of the `undici` package.
 */
export type MeshFetch = (input: string | URL | Request | UndiciRequest, init?: RequestInit | UndiciRequestInit) => Promise<Response>

/**
 * Makes the fetch of a mesh: Node's fetch (as `globalThis.fetch` is when the mesh is made)
 * with the mesh's dispatcher. Not the `undici` package's fetch, whose `Response` is another
 * class than the global one: frameworks that take a `Response` from a handler check it
 * with `instanceof` (a Next.js route handler, Hono), and failed on one from `mesh.fetch`.
 */
export function createMeshFetch(dispatcher: MeshDispatcher): MeshFetch {
  const nodeFetch = globalThis.fetch
  return async function meshFetch(input: string | URL | Request | UndiciRequest, init?: RequestInit | UndiciRequestInit): Promise<Response> {
    const signal = init?.signal ?? (typeof input === 'object' && input !== null && 'signal' in input ? (input as { signal?: AbortSignal | null }).signal : undefined)
    const linked = signal === undefined || signal === null ? undefined : linkedSignal(signal)
    try {
      // `dispatcher` is undici's extension of fetch's init (Node's types know undici-types' Dispatcher).
      const options = (init === undefined ? { dispatcher } : { ...init, dispatcher }) as unknown as RequestInit
      if (linked !== undefined) options.signal = linked.signal
      if (isForeign(options.body, FormData, 'FormData')) options.body = adoptFormData(options.body as unknown as Iterable<[string, string | File]>)
      return await nodeFetch(isForeign(input, Request, 'Request') ? adoptRequest(input as Request) : input, options)
    } catch (err) {
      linked?.release()
      throw translate(err, input, signal ?? undefined)
    }
  }
}

/**
 * Whether `value` is a `Request` or `FormData` of another copy of undici than Node's own
 * (the `undici` package's, an app's undici 8): fetch tells its own classes by `instanceof`,
 * so a foreign `Request` failed as "Failed to parse URL from [object Request]" and a foreign
 * `FormData` body was sent as the text "[object FormData]".
 */
function isForeign(value: unknown, own: abstract new (...args: never[]) => unknown, tag: string): boolean {
  return typeof value === 'object' && value !== null && !(value instanceof own) && (value as { [Symbol.toStringTag]?: unknown })[Symbol.toStringTag] === tag
}

/** Node's copy of a foreign `Request`: what fetch reads of it (its body streams through, unread). */
function adoptRequest(r: Request): Request {
  const init: RequestInit & { duplex?: 'half' } = {
    method: r.method,
    headers: [...r.headers],
    redirect: r.redirect,
    signal: r.signal,
    keepalive: r.keepalive,
    integrity: r.integrity,
    referrerPolicy: r.referrerPolicy,
    credentials: r.credentials,
  }
  if (r.body !== null) {
    init.body = r.body
    init.duplex = 'half'
  }
  return new Request(r.url, init)
}

/** Node's copy of a foreign `FormData`: the same entries, files with their names. */
function adoptFormData(form: Iterable<[string, string | File]>): FormData {
  const out = new FormData()
  for (const [name, value] of form) {
    if (typeof value === 'string') out.append(name, value)
    else out.append(name, value, value.name)
  }
  return out
}

/**
 * A signal that follows the caller's, aborting with the mesh's abort error. fetch rejects,
 * and errors a response body that is still streaming, with its signal's reason: through
 * this one, a caller's abort reads the same on every path and at every stage
 * (`SIDECARLESS_ERR_ABORTED`, named `AbortError`, the caller's reason as `cause`).
 *
 * The listener on the caller's signal holds the linked controller weakly and is removed
 * when the linked signal is collected (fetch holds it as long as the response may stream)
 * or when fetch fails, so a long-lived signal shared by many calls does not collect
 * listeners.
 */
function linkedSignal(signal: AbortSignal): { signal: AbortSignal; release(): void } {
  const link = new AbortController()
  if (signal.aborted) {
    link.abort(abortError(signal.reason))
    return { signal: link.signal, release: () => undefined }
  }
  const ref = new WeakRef(link)
  const onAbort = (): void => ref.deref()?.abort(abortError(signal.reason))
  signal.addEventListener('abort', onAbort, { once: true })
  // The linked signal keeps its controller alive: aborting it needs the controller.
  controllers.set(link.signal, link)
  const release = (): void => signal.removeEventListener('abort', onAbort)
  listeners.register(link.signal, release, link.signal)
  return {
    signal: link.signal,
    release: () => {
      listeners.unregister(link.signal)
      release()
    },
  }
}

const controllers = new WeakMap<AbortSignal, AbortController>()
const listeners = new FinalizationRegistry<() => void>((release) => release())

function translate(err: unknown, input: string | URL | Request | UndiciRequest, signal: AbortSignal | undefined): unknown {
  const cause = (err as { cause?: unknown } | null)?.cause
  if (cause instanceof MeshError) return cause
  if (err instanceof MeshError) return err
  if ((err as Error | null)?.name === 'AbortError' || signal?.aborted === true) {
    // Code written for fetch checks `err.name === 'AbortError'`; the mesh's error keeps it.
    return abortError(signal?.reason ?? err)
  }
  if (typeof input === 'string' && !URL.canParse(input)) {
    return new MeshError('SIDECARLESS_ERR_INVALID_URL', `invalid URL: ${JSON.stringify(input.slice(0, 200))}`, { cause: err })
  }
  if (err instanceof TypeError && cause === undefined) {
    // fetch's own checks of the request (bad method, bad header, body with GET, ...): the
    // same caller error the dispatcher reports for a request undici would refuse.
    return new MeshError('SIDECARLESS_ERR_INVALID_REQUEST', `invalid request: ${err.message}; it was not sent`, { cause: err })
  }
  return err
}
