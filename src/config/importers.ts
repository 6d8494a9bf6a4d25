/**
 * The Envoy and Istio importers, loaded on first use. They are ~40 modules and ~300 KB of
 * code that only a config in one of their formats (or the xDS client) needs, and an ES
 * import is loaded whether or not it is used: ~1.5 MB RSS and ~40 ms at import (measured
 * here, Node 24). `require` of an ES module (Node >= 22.12, our `engines`; none of ours has
 * a top-level await) loads them on the spot, so every API that reads them stays synchronous.
 * `formats.ts` tells a config's format without them.
 */
import { createRequire } from 'node:module'
import type * as EnvoyImporter from './envoy/index.js'
import type { EnvoyImport } from './envoy/index.js'
import type * as IstioImporter from './istio/translate.js'
import type { IstioImport, IstioTranslateOptions } from './istio/translate.js'

const require = createRequire(import.meta.url)

let envoyModule: typeof EnvoyImporter | undefined
let istioModule: typeof IstioImporter | undefined

/** The Envoy importer (`envoy/index.ts`), loaded on the first Envoy bootstrap or `fromEnvoy` call. */
export function envoyImporter(): typeof EnvoyImporter {
  return (envoyModule ??= require('./envoy/index.js') as typeof EnvoyImporter)
}

/** The Istio importer (`istio/translate.ts`), loaded on the first manifests or `fromIstio` call. */
export function istioImporter(): typeof IstioImporter {
  return (istioModule ??= require('./istio/translate.js') as typeof IstioImporter)
}

/**
 * Translates an Envoy v3 bootstrap (its `static_resources`) into our model.
 *
 * Clusters become `clusters` (endpoints from `load_assignment`, labels from the `envoy.lb`
 * metadata, TLS from the `UpstreamTlsContext` and the static secrets it names); the route
 * configurations of every listener's `http_connection_manager` become `virtualHosts`; the
 * first listener's `address.socket_address` becomes `listener.address` and the bootstrap's
 * `admin.address` becomes `admin.address` (both used by `sidecarless proxy`). Field names
 * may be snake_case (Envoy YAML) or proto3-JSON camelCase. Routes whose match the mesh
 * cannot honour in full are dropped, never kept with a broader match.
 *
 * Never throws on bad input: problems go into `unsupported` (or, for a non-object, one
 * entry at path `''`).
 *
 * @param bootstrap - a parsed Envoy bootstrap (from YAML or JSON).
 */
export function fromEnvoy(bootstrap: unknown): EnvoyImport {
  return envoyImporter().fromEnvoy(bootstrap)
}

/**
 * Translates Istio manifests (and documents in the mesh's own format beside them) into the
 * mesh model, for the workload `options` describes.
 *
 * `documents` is a list of parsed YAML/JSON documents, or one document (a manifest, or a
 * `kind: List`). Never throws on bad input: problems go into `unsupported`.
 *
 * @param documents - parsed documents, e.g. from `yaml`'s `parseAllDocuments(text).map(d => d.toJS())`.
 * @param options - the workload: namespace (default `default`), labels, cluster domain, root namespace.
 */
export function fromIstio(documents: unknown, options: IstioTranslateOptions = {}): IstioImport {
  return istioImporter().fromIstio(documents, options)
}
