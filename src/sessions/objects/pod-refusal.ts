/**
 * Which refusals of a session Pod create are about capacity (pure): the namespace's admission
 * chain will refuse the next session Pod in the same way, so claiming more work only to
 * force-stop it helps nobody — another worker could serve it. Told apart by the apiserver's Status
 * (code, reason) and the admission plugin's message, the only place the apiserver names the plugin:
 *
 * | refusal | Status | message (after `pods "<name>" is forbidden: `) | kind |
 * |---|---|---|---|
 * | ResourceQuota full | 403 Forbidden | `exceeded quota: <q>, requested: r=n,…, used: r=n,…, limited: r=n,…` | `quota` |
 * | ResourceQuota needs a figure the Pod lacks | 403 Forbidden | `failed quota: <q>: must specify <r>[,<r>]` | `quota` |
 * | ResourceQuota not yet counted by its controller | 403 Forbidden | `status unknown for quota: <q>, resources: …` | `quota` |
 * | LimitRange | 403 Forbidden (or 422 Invalid) | `[maximum\|minimum] <r> usage per [Container\|Pod] is …`, `<r> max limit to request ratio per …` | `limitRange` |
 * | validating/mutating webhook | ≥ 400, the webhook's code (400 when it gives none) | `admission webhook "<w>" denied the request[: …]` | `webhook` |
 * | ValidatingAdmissionPolicy | 403 Forbidden or 422 Invalid | `ValidatingAdmissionPolicy '<p>' with binding '<b>' denied request: …` | `webhook` |
 *
 * Everything else is not capacity and is handled as before (the claimed item is force-stopped
 * with `PodCreateRefused`): Pod Security (`violates PodSecurity`), RBAC (`cannot create resource`),
 * an invalid Pod (422 without a LimitRange message), a webhook that could not be called (500:
 * transient, retried).
 */

export type PodRefusalKind = 'quota' | 'limitRange' | 'webhook';

export interface PodRefusal {
  readonly kind: PodRefusalKind;
  /** The `Dispatching=False` reason: QuotaExhausted, LimitRangeRefused, AdmissionDenied. */
  readonly reason: 'QuotaExhausted' | 'LimitRangeRefused' | 'AdmissionDenied';
  /** For a person: what refused the Pod, and what is exhausted or asked for. */
  readonly message: string;
}

/** What of an apiserver refusal the classification reads (k8s/errors.ts `KubeError`). */
export interface RefusalStatus {
  readonly status: number | undefined;
  readonly message: string;
}

const REASON: Record<PodRefusalKind, PodRefusal['reason']> = { quota: 'QuotaExhausted', limitRange: 'LimitRangeRefused', webhook: 'AdmissionDenied' };
const MAX_DETAIL = 400;

/** A capacity refusal of a session Pod create in `namespace`, or undefined when it is none. */
export function classifyPodRefusal(e: RefusalStatus, namespace: string): PodRefusal | undefined {
  if (e.status === undefined || e.status < 400 || e.status >= 500 || e.status === 401 || e.status === 404 || e.status === 409 || e.status === 429) return undefined;
  const text = e.message;
  const exceeded = /exceeded quota: ([^,]+), requested: (.*), used: (.*), limited: (.*)$/.exec(text);
  if (exceeded) return refusal('quota', `session Pods do not fit ResourceQuota ${exceeded[1]} in namespace ${namespace}: ${exhausted(exceeded[2]!, exceeded[3]!, exceeded[4]!)}`);
  const mustSpecify = /failed quota: ([^:]+): must specify (.*)$/.exec(text);
  if (mustSpecify) return refusal('quota', `ResourceQuota ${mustSpecify[1]} in namespace ${namespace} needs session Pods to specify ${clip(mustSpecify[2]!)} (set it in the sessionTemplate's containers)`);
  const unknown = /status unknown for quota: ([^,]+)/.exec(text);
  if (unknown) return refusal('quota', `ResourceQuota ${unknown[1]} in namespace ${namespace} has not been counted yet by the quota controller`);
  const webhook = /admission webhook "([^"]+)" denied the request(?:: (.*)| without explanation)?$/.exec(text);
  if (webhook) return refusal('webhook', `admission webhook ${webhook[1]} denied the session Pod${webhook[2] ? `: ${clip(webhook[2])}` : ''}`);
  const policy = /ValidatingAdmissionPolicy '([^']+)' with binding '[^']*' denied request:?\s*(.*)$/.exec(text);
  if (policy) return refusal('webhook', `ValidatingAdmissionPolicy ${policy[1]} denied the session Pod${policy[2] ? `: ${clip(policy[2])}` : ''}`);
  if ((e.status === 403 || e.status === 422) && /(maximum|minimum) \S+ usage per (Container|Pod) is|max limit to request ratio per (Container|Pod) is/.test(text)) {
    return refusal('limitRange', `a LimitRange in namespace ${namespace} refuses session Pods: ${clip(afterForbidden(text))}`);
  }
  return undefined;
}

function refusal(kind: PodRefusalKind, message: string): PodRefusal {
  return { kind, reason: REASON[kind], message };
}

/** `r=n,…` lists of a quota refusal → "pods: 2 of 2 used, a session Pod needs 1" for each resource that does not fit. */
function exhausted(requested: string, used: string, limited: string): string {
  const parse = (list: string): Map<string, string> => new Map(list.split(',').map((kv) => kv.trim().split('=') as [string, string]).filter(([k, v]) => k && v !== undefined));
  const req = parse(requested);
  const u = parse(used);
  const parts = [...parse(limited)].map(([r, hard]) => `${r}: ${u.get(r) ?? '?'} of ${hard} used, a session Pod needs ${req.get(r) ?? '?'}`);
  return parts.length ? parts.join('; ') : clip(`requested ${requested}, used ${used}, limited ${limited}`);
}

/** The plugin's own words, without the apiserver's `<what>: pods "<name>" is forbidden: ` prefix. */
function afterForbidden(text: string): string {
  const i = text.indexOf(' is forbidden: ');
  return i >= 0 ? text.slice(i + ' is forbidden: '.length) : text;
}

const clip = (s: string): string => (s.length > MAX_DETAIL ? `${s.slice(0, MAX_DETAIL)}…` : s);
