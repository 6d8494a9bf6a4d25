/** The package's version, for `--version` and the admin endpoint's `/server_info`. */
import { readFileSync } from 'node:fs'

let cached: string | undefined

/** The version in the package.json above this file (`unknown` if it cannot be found). */
export function version(): string {
  if (cached !== undefined) return cached
  // dist/version.js and build/src/version.js sit one and two levels below the package root.
  for (const up of ['../package.json', '../../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(up, import.meta.url), 'utf8')) as { name?: string; version?: string }
      if (pkg.name === 'sidecarless' && typeof pkg.version === 'string') return (cached = pkg.version)
    } catch {
      // not there: try one level up
    }
  }
  return (cached = 'unknown')
}
