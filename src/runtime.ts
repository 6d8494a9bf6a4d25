/**
 * Which Node.js versions the mesh runs on, checked once when an entry point loads.
 *
 * Supported: the LTS lines users run today, 22 (maintenance), 24 and 26 (active), from 22.12,
 * the first 22 that loads ES modules from `require()` unflagged (`node --require
 * sidecarless/register`). Node 20.19+ still loads and works, but it is past end of life (April
 * 2026) and no longer tested, so it gets one warning. Anything older lacks what the mesh needs
 * (`require()` of ES modules, undici 7's minimum 20.18.1): importing fails at once with
 * `SIDECARLESS_ERR_UNSUPPORTED_RUNTIME` and a message naming the versions to use, instead of
 * a crash somewhere inside a dependency.
 *
 * @module
 */
import { MeshError } from './errors.js'

/** The Node.js release lines CI runs the whole suite on. */
export const SUPPORTED_NODE_LINES: readonly number[] = Object.freeze([22, 24, 26])

/** What the mesh makes of a Node.js version. */
export interface RuntimeSupport {
  /** `supported`: tested; `end-of-life`: works, untested, warned once; `unsupported`: cannot run. */
  readonly level: 'supported' | 'end-of-life' | 'unsupported'
  /** Why, for the warning or the error; empty when supported. */
  readonly message: string
}

/** Judges a `process.versions.node`-style version string (`'22.12.0'`). */
export function runtimeSupport(version: string): RuntimeSupport {
  const [major = 0, minor = 0] = version.split('.').map((p) => Number.parseInt(p, 10))
  const lines = SUPPORTED_NODE_LINES.join(', ')
  if (major > 22 || (major === 22 && minor >= 12)) return { level: 'supported', message: '' }
  if (major === 22) {
    return {
      level: 'end-of-life',
      message: `Node.js ${version} cannot require() ES modules, so \`node --require sidecarless/register\` fails on it (\`--import\` works); upgrade to 22.12 or later (supported: ${lines})`,
    }
  }
  if (major === 20 && minor >= 19) {
    return {
      level: 'end-of-life',
      message: `Node.js ${version} is past end of life (April 2026) and sidecarless is no longer tested on it; supported: ${lines}`,
    }
  }
  return {
    level: 'unsupported',
    message: `sidecarless needs Node.js 22.12 or later (supported: ${lines}); this is ${version}, which lacks require() of ES modules and what undici 7 needs`,
  }
}

const WARNED = Symbol.for('sidecarless.runtimeWarned')

/**
 * Checks the running Node.js once per process: throws on a version the mesh cannot run on,
 * warns once (`SIDECARLESS_UNSUPPORTED_NODE`) on one past end of life.
 */
export function checkRuntime(version: string = process.versions.node): void {
  const support = runtimeSupport(version)
  if (support.level === 'unsupported') throw new MeshError('SIDECARLESS_ERR_UNSUPPORTED_RUNTIME', support.message)
  const holder = globalThis as { [WARNED]?: true }
  if (support.level === 'end-of-life' && holder[WARNED] !== true) {
    holder[WARNED] = true
    process.emitWarning(support.message, { code: 'SIDECARLESS_UNSUPPORTED_NODE' })
  }
}

