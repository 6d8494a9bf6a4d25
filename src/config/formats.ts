/**
 * What a config source is, told without loading an importer: an Envoy bootstrap, Kubernetes
 * manifests, or the mesh's own format. The loaders ask on every config; the importers
 * themselves (`envoy/`, `istio/`, about 300 KB of code) load only when one is needed
 * (`lazy-modules.ts`).
 */

type Obj = Record<string, unknown>

/**
 * True when `input` looks like an Envoy bootstrap (an object with a `static_resources` or
 * `staticResources` key), so a loader can tell it from a mesh config.
 */
export function isEnvoyBootstrap(input: unknown): boolean {
  try {
    return typeof input === 'object' && input !== null && !Array.isArray(input) && !ArrayBuffer.isView(input) &&
      (Object.hasOwn(input, 'static_resources') || Object.hasOwn(input, 'staticResources'))
  } catch {
    return false
  }
}

/** True when `v` is a Kubernetes object: an object with string `apiVersion` and `kind`. */
export function isManifest(v: unknown): v is Obj & { apiVersion: string; kind: string } {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && typeof (v as Obj)['apiVersion'] === 'string' && typeof (v as Obj)['kind'] === 'string'
}

/** True when any of the documents is a Kubernetes manifest (the import then applies). */
export function hasManifests(documents: readonly unknown[]): boolean {
  return documents.some(isManifest)
}
