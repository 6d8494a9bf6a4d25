/** Reading claims of a JWT payload, by path (`a.b` in config becomes `['a', 'b']`). */

/** The claim at `path`, or `undefined` when any step is missing or not an object. */
export function claimAt(payload: Readonly<Record<string, unknown>>, path: readonly string[]): unknown {
  let v: unknown = payload
  for (const key of path) {
    if (typeof v !== 'object' || v === null || Array.isArray(v) || !Object.hasOwn(v, key)) return undefined
    v = (v as Record<string, unknown>)[key]
  }
  return v
}
