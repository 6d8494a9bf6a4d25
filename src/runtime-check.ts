/**
 * Imported first by every entry point (the package, `sidecarless/register`,
 * `sidecarless/fetch`), so an unsupported Node.js fails with a clear message before any
 * dependency loads. See {@link checkRuntime}.
 *
 * @module
 */
import { checkRuntime } from './runtime.js'

checkRuntime()
