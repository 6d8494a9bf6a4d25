/**
 * A config path (`virtualHosts[2].routes[0].match`) as a link to its parent and a key,
 * spelled out only when a problem is reported. Walking a large valid config used to build
 * the path string of every object and list it descended into; a link is one small object,
 * and most walks report nothing.
 *
 * @module
 */

/** Where a value sits: its parent's path (`undefined` at the root) and its key (a field name or a list index). */
export interface PathLink {
  readonly parent: PathLink | undefined
  readonly key: string | number
}

/** The path of the value at `key` under `parent`, as a link (nothing is spelled yet). */
export function pathLink(parent: PathLink | undefined, key: string | number): PathLink {
  return { parent, key }
}

/**
 * The path spelled as the rest of the library writes it: fields joined by `.`, list indexes
 * in brackets, the root as `''` (`clusters[0].name`, `[3]` for an item of a root list).
 * With `key`, the path of that key under `at`.
 */
export function spellPath(at: PathLink | undefined, key?: string | number): string {
  const keys: (string | number)[] = key === undefined ? [] : [key]
  for (let link = at; link !== undefined; link = link.parent) keys.push(link.key)
  let path = ''
  for (let i = keys.length - 1; i >= 0; i--) path = extend(path, keys[i] as string | number)
  return path
}

/** One step down: `path[3]` for an index, `path.key` for a field (just `key` at the root). */
export function extend(path: string, key: string | number): string {
  if (typeof key === 'number') return `${path}[${key}]`
  return path === '' ? key : `${path}.${key}`
}
