/**
 * Config warnings: settings Envoy accepts, so validation does not refuse them, but that are
 * almost surely mistakes. Validation keeps its contract (a list of errors; empty means
 * valid); warnings are a separate list the mesh reports once per config it loads and that
 * `sidecarless validate` prints.
 */
import type { ConfigWarning } from '../errors.js'

type Obj = Record<string, unknown>

/** Past this many routes the walk stops (validation bounds lists; this only bounds the work). */
const MAX_ROUTES = 200_000

/** The warnings of a config (valid or not; only well-typed values are looked at). Never throws. */
export function lintConfig(config: unknown): ConfigWarning[] {
  const out: ConfigWarning[] = []
  try {
    if (!isObject(config)) return out
    let seen = 0
    const routes = (list: unknown, path: string): void => {
      if (!Array.isArray(list)) return
      list.forEach((r: unknown, j) => {
        if (++seen > MAX_ROUTES || !isObject(r)) return
        const match = r['match']
        if (isObject(match)) checkMatch(match, `${path}[${j}].match`, out)
      })
    }
    const vhosts = config['virtualHosts']
    if (Array.isArray(vhosts)) vhosts.forEach((vh: unknown, i) => {
      if (isObject(vh)) routes(vh['routes'], `virtualHosts[${i}].routes`)
    })
    const listener = config['listener']
    if (isObject(listener)) routes(listener['routes'], 'listener.routes')
  } catch {
    // A hostile object (a throwing getter): validation reports it; warnings have nothing to add.
  }
  return out
}

function checkMatch(match: Obj, path: string, out: ConfigWarning[]): void {
  const prefix = match['prefix']
  // Envoy takes the prefix as written; request paths start with "/", so this one matches nothing.
  if (typeof prefix === 'string' && prefix !== '' && !prefix.startsWith('/')) {
    const shown = JSON.stringify(prefix.length > 64 ? `${prefix.slice(0, 64)}…` : prefix)
    out.push({ path: `${path}.prefix`, code: 'PREFIX_WITHOUT_SLASH', message: `${shown} does not start with /, so no request path matches it; did you mean "/${prefix.slice(0, 64)}"?` })
  }
}

function isObject(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}
