/**
 * The OpenTelemetry SDK environment variables the mesh honours for its own spans, read the
 * way the OTel spec says (https://opentelemetry.io/docs/specs/otel/configuration/sdk-environment-variables/):
 * empty values count as unset, names of enums are case-insensitive, a bad value is reported
 * once and ignored. What the OTel exporters read themselves (endpoint, headers, compression,
 * timeout, `OTEL_BSP_*`) is left to them; this file reads what decides *whether* and *how*
 * the mesh exports and samples.
 */
import type { OtlpProtocol } from './types.js'

type Env = Readonly<Record<string, string | undefined>>

/** A sampler named by `OTEL_TRACES_SAMPLER` (+ `_ARG`), as the mesh applies it. */
export interface EnvSampler {
  /** Probability that a trace the mesh starts (or re-decides) is sampled, 0..1. */
  readonly ratio: number
  /** `parentbased_*`: a caller's sampled flag decides; otherwise the ratio decides every request. */
  readonly parentBased: boolean
}

/** Where `OTEL_*` says spans go when the config names no collector. */
export interface EnvExport {
  /** Export over OTLP (endpoint, headers and the rest from `OTEL_EXPORTER_OTLP_*`). */
  readonly otlp: boolean
  /** Export to Zipkin (`OTEL_EXPORTER_ZIPKIN_ENDPOINT`, default `http://localhost:9411/api/v2/spans`). */
  readonly zipkin: boolean
  /** `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`, else `OTEL_EXPORTER_OTLP_PROTOCOL`. */
  readonly protocol: OtlpProtocol | undefined
}

const PROTOCOLS: readonly OtlpProtocol[] = ['http/protobuf', 'http/json', 'grpc']
const warned = new Set<string>()

function value(env: Env, name: string): string | undefined {
  const v = env[name]?.trim()
  return v === undefined || v === '' ? undefined : v
}

function warnOnce(key: string, message: string): void {
  if (warned.has(key)) return
  warned.add(key)
  process.emitWarning(message, { code: 'SIDECARLESS_OTEL_ENV_IGNORED' })
}

/**
 * The sampler of `OTEL_TRACES_SAMPLER` / `OTEL_TRACES_SAMPLER_ARG`, or `undefined` when
 * unset or not one the mesh can apply (`jaeger_remote`, `xray`: a warning says so).
 * A ratio that is not a number in [0, 1] is replaced by 1, as the OTel SDK does.
 */
export function envSampler(env: Env = process.env): EnvSampler | undefined {
  const name = value(env, 'OTEL_TRACES_SAMPLER')?.toLowerCase()
  if (name === undefined) return undefined
  const ratio = (): number => {
    const raw = value(env, 'OTEL_TRACES_SAMPLER_ARG')
    if (raw === undefined) return 1
    const n = Number(raw)
    if (Number.isFinite(n) && n >= 0 && n <= 1) return n
    warnOnce(`arg ${raw}`, `OTEL_TRACES_SAMPLER_ARG=${JSON.stringify(raw)} is not a ratio between 0 and 1; 1 is used`)
    return 1
  }
  switch (name) {
    case 'always_on': return { ratio: 1, parentBased: false }
    case 'always_off': return { ratio: 0, parentBased: false }
    case 'traceidratio': return { ratio: ratio(), parentBased: false }
    case 'parentbased_always_on': return { ratio: 1, parentBased: true }
    case 'parentbased_always_off': return { ratio: 0, parentBased: true }
    case 'parentbased_traceidratio': return { ratio: ratio(), parentBased: true }
    default:
      warnOnce(`sampler ${name}`, `OTEL_TRACES_SAMPLER=${JSON.stringify(name)} is not a sampler the mesh applies ` +
        '(always_on, always_off, traceidratio and their parentbased_ forms); tracing.sampling or the default is used')
      return undefined
  }
}

/** The OTLP protocol the environment names, if any (an unknown one is reported and ignored). */
export function envOtlpProtocol(env: Env = process.env): OtlpProtocol | undefined {
  for (const name of ['OTEL_EXPORTER_OTLP_TRACES_PROTOCOL', 'OTEL_EXPORTER_OTLP_PROTOCOL']) {
    const v = value(env, name)?.toLowerCase()
    if (v === undefined) continue
    if ((PROTOCOLS as readonly string[]).includes(v)) return v as OtlpProtocol
    warnOnce(`protocol ${v}`, `${name}=${JSON.stringify(v)} is not an OTLP protocol (${PROTOCOLS.join(', ')}); http/protobuf is used`)
    return undefined
  }
  return undefined
}

/**
 * Which exporters the environment asks for. `OTEL_TRACES_EXPORTER` (a list: `otlp`,
 * `zipkin`, `none`) decides when set; unset, an OTLP or Zipkin endpoint variable turns its
 * exporter on. (The OTel SDK's default is `otlp` to `localhost:4318` always; the mesh does
 * not send spans anywhere nobody named.)
 */
export function envExport(env: Env = process.env): EnvExport {
  const protocol = envOtlpProtocol(env)
  const list = value(env, 'OTEL_TRACES_EXPORTER')
  if (list !== undefined) {
    const names = list.split(',').map((s) => s.trim().toLowerCase()).filter((s) => s !== '')
    for (const n of names) {
      if (n !== 'otlp' && n !== 'zipkin' && n !== 'none' && n !== 'console') {
        warnOnce(`exporter ${n}`, `OTEL_TRACES_EXPORTER names ${JSON.stringify(n)}, which the mesh does not export to (otlp, zipkin, none)`)
      }
    }
    if (names.includes('none')) return { otlp: false, zipkin: false, protocol }
    return { otlp: names.includes('otlp'), zipkin: names.includes('zipkin'), protocol }
  }
  return {
    otlp: value(env, 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT') !== undefined || value(env, 'OTEL_EXPORTER_OTLP_ENDPOINT') !== undefined,
    zipkin: value(env, 'OTEL_EXPORTER_ZIPKIN_ENDPOINT') !== undefined,
    protocol,
  }
}
