/**
 * `mesh.fetch`: WHATWG fetch through the mesh dispatcher. Answers the mesh makes for the
 * upstream (503, 504, 404 no route, 429 rate limited) are ordinary responses; the promise
 * rejects only for caller errors, always with a coded {@link MeshError}: an invalid URL, a
 * request fetch or undici would refuse (`SIDECARLESS_ERR_INVALID_REQUEST`), a REGISTRY_ONLY
 * refusal, an abort by the caller, a closed mesh. The same rule holds for `mesh.dispatcher`.
 */
import { fetch as undiciFetch, type RequestInfo, type RequestInit, type Response } from 'undici'
import { abortError, MeshError } from '../errors.js'
import type { MeshDispatcher } from './dispatcher.js'

/** The signature of `mesh.fetch`: WHATWG fetch (undici's types). */
export type MeshFetch = (input: RequestInfo, init?: RequestInit) => Promise<Response>

/** Makes the fetch of a mesh. */
export function createMeshFetch(dispatcher: MeshDispatcher): MeshFetch {
  return async function meshFetch(input: RequestInfo, init?: RequestInit): Promise<Response> {
    const signal = init?.signal ?? (typeof input === 'object' && input !== null && 'signal' in input ? (input as { signal?: AbortSignal | null }).signal : undefined)
    const linked = signal === undefined || signal === null ? undefined : linkedSignal(signal)
    try {
      const options: RequestInit = init === undefined ? { dispatcher } : { ...init, dispatcher }
      if (linked !== undefined) options.signal = linked.signal
      return await undiciFetch(input, options)
    } catch (err) {
      linked?.release()
      throw translate(err, input, signal ?? undefined)
    }
  }
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

function translate(err: unknown, input: RequestInfo, signal: AbortSignal | undefined): unknown {
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
