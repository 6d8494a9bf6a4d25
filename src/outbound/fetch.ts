/**
 * `mesh.fetch`: WHATWG fetch through the mesh dispatcher. Answers the mesh makes for the
 * upstream (503, 504, 404 no route) are ordinary responses; the promise rejects only for
 * caller errors, always with a coded {@link MeshError}: an invalid URL, a request fetch or
 * undici would refuse (`SIDECARLESS_ERR_INVALID_REQUEST`), a REGISTRY_ONLY refusal, an abort
 * by the caller, a closed mesh. The same rule holds for `mesh.dispatcher`.
 */
import { fetch as undiciFetch, type RequestInfo, type RequestInit, type Response } from 'undici'
import { MeshError } from '../errors.js'
import type { MeshDispatcher } from './dispatcher.js'

/** The signature of `mesh.fetch`: WHATWG fetch (undici's types). */
export type MeshFetch = (input: RequestInfo, init?: RequestInit) => Promise<Response>

/** Makes the fetch of a mesh. */
export function createMeshFetch(dispatcher: MeshDispatcher): MeshFetch {
  return async function meshFetch(input: RequestInfo, init?: RequestInit): Promise<Response> {
    try {
      return await undiciFetch(input, init === undefined ? { dispatcher } : { ...init, dispatcher })
    } catch (err) {
      throw translate(err, input, init)
    }
  }
}

function translate(err: unknown, input: RequestInfo, init: RequestInit | undefined): unknown {
  const cause = (err as { cause?: unknown } | null)?.cause
  if (cause instanceof MeshError) return cause
  if (err instanceof MeshError) return err
  const signal = init?.signal ?? (typeof input === 'object' && 'signal' in input ? (input as { signal?: AbortSignal }).signal : undefined)
  if ((err as Error | null)?.name === 'AbortError' || signal?.aborted === true) {
    const aborted = new MeshError('SIDECARLESS_ERR_ABORTED', 'the request was aborted by the caller', { cause: signal?.reason ?? err })
    // Code written for fetch checks `err.name === 'AbortError'`; keep that working.
    aborted.name = 'AbortError'
    return aborted
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
