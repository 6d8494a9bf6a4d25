/**
 * The mesh's metrics in an app's own `prom-client` registry, so the app's `/metrics`
 * serves both. Works with prom-client's `Registry` (v13 to v15) by its public contract: each
 * metric is an object with a `name` and an async `get()` returning `{ name, help, type,
 * values, aggregator }`, registered with `registerMetric`. prom-client itself is never
 * imported: the app's copy is the one in use.
 *
 * Each of the mesh's metric families becomes one such object, answering from one
 * exposition of the mesh taken per scrape. Families that first appear after `registerWith`
 * (a new cluster's, the first request's) are added at the start of the scrape that first
 * sees them: the bridge wraps the registry's `getMetricsAsArray()` (public in prom-client,
 * what `metrics()` and `getMetricsAsJSON()` read), and the unregister function restores it.
 */

/** What the bridge needs of a prom-client `Registry`. */
export interface PromClientRegistry {
  registerMetric(metric: unknown): void
  removeSingleMetric(name: string): void
  getSingleMetric(name: string): unknown
  /** What a scrape reads (prom-client's `metrics()` and `getMetricsAsJSON()`). */
  getMetricsAsArray?(): unknown[]
}

/** Options of `mesh.metrics.registerWith()`. */
export interface RegisterOptions {
  /**
   * Whether to add the process and runtime metrics (`process_*`, `nodejs_*`) too. Default
   * false: an app with a prom-client registry usually has `collectDefaultMetrics()`, whose
   * names they are.
   */
  readonly process?: boolean
}

interface Sample {
  metricName: string
  labels: Record<string, string>
  value: number
}

interface Family {
  name: string
  help: string
  type: string
  values: Sample[]
}

/** Parses the Prometheus text this package writes (one HELP and TYPE line before each family's samples). */
export function parseExposition(text: string): Map<string, Family> {
  const families = new Map<string, Family>()
  let current: Family | undefined
  for (const line of text.split('\n')) {
    if (line === '') continue
    if (line.startsWith('# HELP ')) {
      const rest = line.slice(7)
      const sp = rest.indexOf(' ')
      const name = sp === -1 ? rest : rest.slice(0, sp)
      current = { name, help: sp === -1 ? '' : rest.slice(sp + 1).replace(/\\n/g, '\n').replace(/\\\\/g, '\\'), type: 'untyped', values: [] }
      families.set(name, current)
      continue
    }
    if (line.startsWith('# TYPE ')) {
      const [, name, type] = line.split(' ').slice(1)
      const f = families.get(name ?? '')
      if (f !== undefined && type !== undefined) f.type = type
      continue
    }
    if (line.startsWith('#') || current === undefined) continue
    current.values.push(parseSample(line))
  }
  return families
}

function parseSample(line: string): Sample {
  const brace = line.indexOf('{')
  const space = line.lastIndexOf(' ')
  const value = Number(line.slice(space + 1).replace('+Inf', 'Infinity').replace('-Inf', '-Infinity'))
  if (brace === -1 || brace > space) return { metricName: line.slice(0, space), labels: {}, value }
  const labels: Record<string, string> = {}
  let i = brace + 1
  while (i < line.length && line[i] !== '}') {
    const eq = line.indexOf('=', i)
    const key = line.slice(i, eq)
    let j = eq + 2
    let v = ''
    while (line[j] !== '"') {
      if (line[j] === '\\') {
        const next = line[j + 1]
        v += next === 'n' ? '\n' : next
        j += 2
      } else {
        v += line[j]
        j++
      }
    }
    labels[key] = v
    i = line[j + 1] === ',' ? j + 2 : j + 1
  }
  return { metricName: line.slice(0, brace), labels, value }
}

/**
 * Registers the families of `exposition()` in `registry` (and those that appear later, as
 * they appear). Returns a function that removes them again.
 */
export function registerWith(registry: PromClientRegistry, exposition: () => string, options: RegisterOptions = {}): () => void {
  if (registry === null || typeof registry !== 'object' || typeof registry.registerMetric !== 'function') {
    throw new TypeError('registerWith() takes a prom-client Registry (e.g. `register` from prom-client)')
  }
  const skip = options.process === true ? null : /^(process|nodejs)_/
  const registered = new Set<string>()
  let current: Map<string, Family> | undefined
  /** One exposition per scrape: prom-client asks every metric in the same turn. */
  const families = (): Map<string, Family> => {
    if (current === undefined) {
      current = parseExposition(exposition())
      setImmediate(() => (current = undefined)).unref()
      for (const name of current.keys()) add(name)
    }
    return current
  }
  function add(name: string): void {
    if (registered.has(name) || (skip !== null && skip.test(name))) return
    // A name the app already uses stays the app's.
    if (registry.getSingleMetric(name) !== undefined) return
    const metric = {
      name,
      help: '',
      type: 'untyped',
      aggregator: 'sum',
      get: () => {
        const f = families().get(name)
        return Promise.resolve({ name, help: f?.help ?? name, type: f?.type ?? 'untyped', aggregator: 'sum', values: f?.values ?? [] })
      },
      reset: () => undefined,
    }
    registry.registerMetric(metric)
    registered.add(name)
  }
  // The build-info family is always there: its get() runs at every scrape, so families
  // that appear later are found even when none was there at registration.
  add('sidecarless_build_info')
  families()
  // Every scrape starts by listing the registry's metrics: bring the mesh's families up to
  // date first, so a family that appeared since the last scrape is in this one.
  const own = Object.hasOwn(registry, 'getMetricsAsArray')
  // eslint-disable-next-line @typescript-eslint/unbound-method -- called with the registry as `this`
  const list = registry.getMetricsAsArray
  if (typeof list === 'function') {
    registry.getMetricsAsArray = function (this: PromClientRegistry): unknown[] {
      families()
      return list.call(this)
    }
  }
  return () => {
    if (typeof list === 'function') {
      if (own) registry.getMetricsAsArray = list
      else delete registry.getMetricsAsArray
    }
    for (const name of registered) registry.removeSingleMetric(name)
    registered.clear()
  }
}
