/**
 * Dependencies loaded on first use, synchronously. Most processes never read a YAML file
 * (a config built in code, or JSON) nor compile an RE2 pattern (no `safeRegex` in the
 * config), and an ES import is loaded whether or not it is used: `yaml` is ~50 files,
 * `re2js` one 300 KB file, and together they cost every process ~1.7 MB RSS and ~25 ms at
 * import (measured here, Node 24). Both ship CommonJS, so `require` loads them on the spot
 * and every API that reads them stays synchronous.
 */
import { createRequire } from 'node:module'
import type * as Yaml from 'yaml'
import type * as Re2js from 're2js'

const require = createRequire(import.meta.url)

let yamlModule: typeof Yaml | undefined
let re2jsModule: typeof Re2js | undefined

/** The `yaml` package, loaded on the first YAML (or JSON) text read. */
export function yaml(): typeof Yaml {
  return (yamlModule ??= require('yaml') as typeof Yaml)
}

/** The `re2js` package, loaded on the first RE2 pattern compiled. */
export function re2js(): typeof Re2js {
  return (re2jsModule ??= require('re2js') as typeof Re2js)
}
