/**
 * How many more session Pods a namespace's ResourceQuotas admit (pure), so dispatch stops before
 * it claims work whose Pod the quota would refuse (dispatch/admission.ts). A prediction from the
 * quotas' status (`hard`, `used`, kept by the quota controller and by the quota admission plugin at
 * every create); the apiserver stays the judge, and a refusal it makes anyway pauses dispatch too.
 *
 * Judged here, as the quota admission plugin judges a Pod:
 * - the Pod's figures (`podQuotaUsage`): `pods`/`count/pods` 1; `requests.*`/`limits.*` of cpu,
 *   memory and ephemeral-storage (bare `cpu`/`memory`/`ephemeral-storage` are requests) as the
 *   Pod's effective figure: the larger of the app containers plus native sidecars, and each init
 *   container plus the sidecars started before it; plus `spec.overhead`;
 * - a quota's scopes: Terminating/NotTerminating (activeDeadlineSeconds), BestEffort/NotBestEffort,
 *   and PriorityClass selectors. A quota with a scope not judged here, or not counted yet (no
 *   status), is left to the apiserver; so are resources the Pod does not declare (a quota that
 *   needs them refuses with "must specify", which pauses dispatch on the refusal).
 */
import type { Container, Pod } from './pod-types.ts';

/** The parts of a ResourceQuota read here. */
export interface ResourceQuota {
  readonly metadata?: { readonly name?: string; readonly namespace?: string };
  readonly spec?: {
    readonly scopes?: readonly string[];
    readonly scopeSelector?: { readonly matchExpressions?: ReadonlyArray<{ readonly scopeName: string; readonly operator: string; readonly values?: readonly string[] }> };
  };
  readonly status?: { readonly hard?: Readonly<Record<string, string>>; readonly used?: Readonly<Record<string, string>> };
}

export type QuotaFit =
  | { readonly fits: number }
  /** None fits: which quota and resource, in words and figures. */
  | { readonly fits: 0; readonly quota: string; readonly resource: string; readonly used: string; readonly hard: string; readonly needs: string };

const SUFFIX: Record<string, number> = { n: 1e-9, u: 1e-6, m: 1e-3, '': 1, k: 1e3, M: 1e6, G: 1e9, T: 1e12, P: 1e15, E: 1e18, Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, Pi: 2 ** 50, Ei: 2 ** 60 };

/** A Kubernetes quantity ("500m", "1Gi", "2", "1e3") as a number; NaN when it is not one. */
export function parseQuantity(q: string | number | undefined): number {
  if (typeof q === 'number') return q;
  const m = /^([+-]?[0-9.]+)(?:([eE][+-]?[0-9]+)|(n|u|m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?)$/.exec((q ?? '').trim());
  if (!m) return NaN;
  const base = Number(m[1]);
  return m[2] ? base * 10 ** Number(m[2].slice(1)) : base * SUFFIX[m[3] ?? '']!;
}

const COMPUTE = ['cpu', 'memory', 'ephemeral-storage'] as const;

/** What one more session Pod adds to each quota resource it declares (see the file comment). */
export function podQuotaUsage(pod: Pod): Map<string, number> {
  const usage = new Map<string, number>([['pods', 1], ['count/pods', 1]]);
  for (const kind of ['requests', 'limits'] as const) {
    for (const r of COMPUTE) {
      // A container with a limit and no request gets the limit as its request (Pod defaulting, before admission).
      const v = effective(pod, (c) => parseQuantity(kind === 'requests' ? (c.resources?.requests?.[r] ?? c.resources?.limits?.[r]) : c.resources?.limits?.[r])) + overhead(pod, r);
      if (v > 0) {
        usage.set(`${kind}.${r}`, v);
        if (kind === 'requests') usage.set(r, v);
      }
    }
  }
  return usage;
}

/** The Pod's effective figure: max(app containers + sidecars, each init container + the sidecars before it). */
function effective(pod: Pod, figure: (c: Container) => number): number {
  const of = (c: Container): number => (Number.isNaN(figure(c)) ? 0 : figure(c));
  let sidecars = 0;
  let initPeak = 0;
  for (const c of pod.spec.initContainers ?? []) {
    if (c.restartPolicy === 'Always') sidecars += of(c);
    else initPeak = Math.max(initPeak, sidecars + of(c));
  }
  const app = pod.spec.containers.reduce((sum, c) => sum + of(c), 0) + sidecars;
  return Math.max(app, initPeak);
}

const overhead = (pod: Pod, r: string): number => {
  const v = parseQuantity(pod.spec.overhead?.[r]);
  return Number.isNaN(v) ? 0 : v;
};

/** Whether a quota applies to the Pod: true, false, or undefined when a scope is not judged here. */
function inScope(q: ResourceQuota, pod: Pod): boolean | undefined {
  const bestEffort = [...(pod.spec.initContainers ?? []), ...pod.spec.containers].every((c) => !Object.keys(c.resources?.requests ?? {}).length && !Object.keys(c.resources?.limits ?? {}).length);
  const terminating = pod.spec.activeDeadlineSeconds !== undefined;
  const scope = (name: string, operator = 'Exists', values: readonly string[] = []): boolean | undefined => {
    switch (name) {
      case 'Terminating':
        return terminating;
      case 'NotTerminating':
        return !terminating;
      case 'BestEffort':
        return bestEffort;
      case 'NotBestEffort':
        return !bestEffort;
      case 'PriorityClass': {
        const pc = pod.spec.priorityClassName;
        if (operator === 'Exists') return Boolean(pc);
        if (operator === 'DoesNotExist') return !pc;
        if (operator === 'In') return pc !== undefined && values.includes(pc);
        if (operator === 'NotIn') return pc === undefined || !values.includes(pc);
        return undefined;
      }
      case 'CrossNamespacePodAffinity':
        return false; // session Pods carry no cross-namespace affinity terms unless their template does; left to the apiserver then
      default:
        return undefined;
    }
  };
  const verdicts = [...(q.spec?.scopes ?? []).map((s) => scope(s)), ...(q.spec?.scopeSelector?.matchExpressions ?? []).map((e) => scope(e.scopeName, e.operator, e.values))];
  if (verdicts.includes(false)) return false;
  return verdicts.includes(undefined) ? undefined : true;
}

/** How many more Pods like `pod` the quotas admit (Infinity when none limits them). */
export function quotaFit(quotas: readonly ResourceQuota[], pod: Pod): QuotaFit {
  const usage = podQuotaUsage(pod);
  let best: QuotaFit = { fits: Infinity };
  for (const q of quotas) {
    const hard = q.status?.hard;
    if (!hard || inScope(q, pod) !== true) continue;
    for (const [resource, limit] of Object.entries(hard)) {
      const needs = usage.get(resource);
      if (!needs) continue;
      const used = q.status?.used?.[resource] ?? '0';
      const free = parseQuantity(limit) - parseQuantity(used);
      if (Number.isNaN(free)) continue;
      // A tiny tolerance: quantities are decimal, the sums here binary floating point.
      const fits = Math.max(0, Math.floor(free / needs + 1e-9));
      if (fits < best.fits) best = fits === 0 ? { fits: 0, quota: q.metadata?.name ?? '', resource, used, hard: limit, needs: format(resource, needs) } : { fits };
    }
  }
  return best;
}

/** A figure the way a person reads it: cores for cpu, bytes with a binary suffix for the rest. */
function format(resource: string, v: number): string {
  if (resource === 'pods' || resource === 'count/pods') return String(v);
  if (resource.endsWith('cpu')) return v < 1 ? `${Math.round(v * 1000)}m` : String(v);
  for (const [s, n] of [['Gi', 2 ** 30], ['Mi', 2 ** 20], ['Ki', 2 ** 10]] as const) if (v >= n && Number.isInteger(v / n)) return `${v / n}${s}`;
  return String(v);
}
