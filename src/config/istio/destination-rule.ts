/**
 * DestinationRule → the policy of the cluster of its host: subsets by labels, and the
 * traffic policy (see `traffic-policy.ts`). Which rule applies follows istiod: only rules
 * exported to the workload's namespace and whose `workloadSelector` (if any) selects the
 * workload; among them the workload's namespace first, then the service's, then the root
 * namespace; within a namespace an exact host before the longest wildcard, and rules for
 * the same host merged (the first one's traffic policy, subsets of all, the first of a name).
 */
import type { Resource } from './documents.js'
import { exportedTo, hostMatches, resolveHost } from './names.js'
import { EMPTY_POLICY, readTrafficPolicy, type TrafficPolicyParts } from './traffic-policy.js'
import { at, formatLabels, isObject, list, object, selects, str, stringMap, strings, type Translation } from './state.js'

/** A subset of a DestinationRule. */
export interface SubsetRule {
  readonly name: string
  readonly labels: Readonly<Record<string, string>>
  /** The subset's own traffic policy, when it has one. */
  readonly policy: TrafficPolicyParts | undefined
  readonly path: string
}

/** One DestinationRule, read. */
export interface DestinationRuleInfo {
  readonly resource: Resource
  /** The resolved host pattern (FQDN or `*.suffix`). */
  readonly host: string
  readonly policy: TrafficPolicyParts
  readonly hasPolicy: boolean
  readonly subsets: readonly SubsetRule[]
  /** True when it has a workload selector (that selects this workload). */
  readonly selected: boolean
}

/** The merged rule that applies to one host. */
export interface AppliedRule {
  readonly policy: TrafficPolicyParts
  readonly subsets: readonly SubsetRule[]
  /** The rules merged into it, first the one whose traffic policy is used. */
  readonly rules: readonly DestinationRuleInfo[]
}

/** Reads a DestinationRule; undefined when it does not apply to this workload (reported). */
export function readDestinationRule(t: Translation, r: Resource): DestinationRuleInfo | undefined {
  const spec = r.spec
  const path = `${r.label}.spec`
  t.fields(spec, path, ['host', 'trafficPolicy', 'subsets', 'exportTo', 'workloadSelector'])
  const rawHost = str(t, spec, 'host', path)
  if (rawHost === undefined || rawHost === '') {
    t.report(path, 'a DestinationRule needs a host; not translated')
    return undefined
  }
  const exportTo = strings(t, spec, 'exportTo', path)
  if (!exportedTo(exportTo, r.namespace, t.workload)) {
    t.report(at(path, 'exportTo'), `not exported to the workload's namespace ${t.workload.namespace}; not applied`)
    return undefined
  }
  let selected = false
  const selector = object(t, spec, 'workloadSelector', path)
  if (selector !== undefined) {
    t.fields(selector, at(path, 'workloadSelector'), ['matchLabels'])
    const match = stringMap(t, selector, 'matchLabels', at(path, 'workloadSelector'))
    if (r.namespace !== t.workload.namespace || !selects(match, t.workload.labels)) {
      t.report(at(path, 'workloadSelector'), `selects other workloads (this one: namespace ${t.workload.namespace}, ${formatLabels(t.workload.labels)}); not applied`)
      return undefined
    }
    selected = true
  }
  const tp = object(t, spec, 'trafficPolicy', path)
  const policy = tp === undefined ? EMPTY_POLICY : readTrafficPolicy(t, tp, at(path, 'trafficPolicy'))
  const subsets: SubsetRule[] = []
  const names = new Set<string>()
  list(t, spec, 'subsets', path).forEach((s, i) => {
    const here = `${at(path, 'subsets')}[${i}]`
    if (!isObject(s)) {
      t.report(here, 'expected an object; not translated')
      return
    }
    t.fields(s, here, ['name', 'labels', 'trafficPolicy'])
    const name = str(t, s, 'name', here)
    if (name === undefined || name === '') {
      t.report(here, 'a subset needs a name; not translated')
      return
    }
    if (names.has(name)) {
      t.report(here, `subset ${JSON.stringify(name)} is defined twice in this rule; the first is used`)
      return
    }
    names.add(name)
    const stp = object(t, s, 'trafficPolicy', here)
    subsets.push({
      name,
      labels: stringMap(t, s, 'labels', here) ?? {},
      policy: stp === undefined ? undefined : readTrafficPolicy(t, stp, at(here, 'trafficPolicy')),
      path: here,
    })
  })
  return { resource: r, host: resolveHost(rawHost, r.namespace, t.workload), policy, hasPolicy: tp !== undefined, subsets, selected }
}

/** The DestinationRules that apply to this workload, looked up by host. */
export class DestinationRules {
  readonly #rules: DestinationRuleInfo[]
  readonly #used = new Set<DestinationRuleInfo>()

  constructor(readonly t: Translation, rules: readonly DestinationRuleInfo[]) {
    this.#rules = [...rules]
  }

  /** The rule for `host` (a service of namespace `serviceNamespace`), merged; undefined when none. */
  lookup(host: string, serviceNamespace: string | undefined): AppliedRule | undefined {
    const w = this.t.workload
    const tiers = [w.namespace, serviceNamespace, w.rootNamespace].filter((n, i, a): n is string => n !== undefined && a.indexOf(n) === i)
    for (const ns of tiers) {
      const candidates = this.#rules.filter((r) => r.resource.namespace === ns && hostMatches(r.host, host))
      if (candidates.length === 0) continue
      // The most specific host: exact, then the longest wildcard.
      const best = candidates.reduce((a, b) => (specificity(b.host) > specificity(a.host) ? b : a))
      const same = candidates
        .filter((r) => r.host === best.host)
        .sort((a, b) => Number(b.selected) - Number(a.selected) || older(a, b))
      return this.#merge(same)
    }
    return undefined
  }

  #merge(rules: DestinationRuleInfo[]): AppliedRule {
    const first = rules.find((r) => r.hasPolicy)
    const subsets: SubsetRule[] = []
    for (const r of rules) {
      this.#used.add(r)
      if (r.hasPolicy && r !== first) {
        this.t.report(`${r.resource.label}.spec.trafficPolicy`, `${first?.resource.label ?? 'another rule'} for the same host already sets the traffic policy; not applied (istiod merges subsets only)`)
      }
      for (const s of r.subsets) {
        if (subsets.some((x) => x.name === s.name)) this.t.report(s.path, `subset ${JSON.stringify(s.name)} is already defined by another DestinationRule for this host; not applied`)
        else subsets.push(s)
      }
    }
    return { policy: first?.policy ?? EMPTY_POLICY, subsets, rules }
  }

  /** Reports the rules no service used. */
  reportUnused(): void {
    for (const r of this.#rules) {
      if (this.#used.has(r)) continue
      this.t.report(`${r.resource.label}.spec.host`, `no service of this file is ${r.host} (no ServiceEntry, mesh-config cluster or VirtualService destination), or a closer rule applies; not applied`)
    }
  }
}

function specificity(host: string): number {
  return host.startsWith('*') ? host.length - 1 : Number.MAX_SAFE_INTEGER
}

function older(a: DestinationRuleInfo, b: DestinationRuleInfo): number {
  if (a.resource.created !== undefined && b.resource.created !== undefined && a.resource.created !== b.resource.created) {
    return a.resource.created - b.resource.created
  }
  return a.resource.order - b.resource.order
}
