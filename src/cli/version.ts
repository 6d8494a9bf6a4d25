/** The package's version, for `--version` and the proxy's `/server_info`. */
import { readFileSync } from 'node:fs'

/** The version in the package.json above this file (`unknown` if it cannot be found). */
export function version(): string {
  for (const up of ['../../package.json', '../../../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(up, import.meta.url), 'utf8')) as { name?: string; version?: string }
      if (pkg.name === 'sidecarless' && typeof pkg.version === 'string') return pkg.version
    } catch {
      // not there: try one level up
    }
  }
  return 'unknown'
}
