/**
 * Backpressure: dispatch stops claiming work whose session Pod the namespace would refuse, and
 * starts again on its own. Claiming an item only to force-stop it when its Pod is refused wastes
 * work another worker could serve; left in the queue, it is.
 *
 * 1. **Predict** (before every claim): the namespace's ResourceQuotas, from the operator's cache,
 *    admit how many more session Pods like the environment's next one (objects/quota.ts)? Minus the
 *    session Pods already claimed in the namespace and not created yet (the quota counts a Pod only
 *    once it is created). Polls start only within that room; none left and the quota full →
 *    `Dispatching=False` `QuotaExhausted`, naming the quota and the resource. It lifts when the
 *    quota's status shows room again (a Pod ended, the quota was raised): the cache's events wake
 *    the dispatcher.
 * 2. **Refused anyway** (a LimitRange, a webhook, a quota the prediction could not judge, a race):
 *    the session reconciler handles the claimed item as before (force-stopped, `PodCreateRefused`)
 *    and reports the refusal here (objects/pod-refusal.ts tells capacity refusals apart). Dispatch
 *    holds: `Dispatching=False` with the refusal's reason and words.
 * 3. **Probe** while held: every {@link PROBE_INTERVAL_MS}, a server-side dry-run create of the
 *    environment's next session Pod. The dry run goes through the whole admission chain (quota,
 *    LimitRange, webhooks) and stores nothing, with no permission beyond the Pod create the
 *    operator has: the one check that answers "would the next Pod be admitted" for every kind of
 *    refusal, where the quota's status answers it for quotas only. Admitted → the hold lifts and
 *    polling resumes; refused → the hold stays, with the latest words.
 */
import type { AgentEnvironment } from '../../crd/resources.ts';
import type { Pod } from '../objects/pod-types.ts';
import type { PodRefusal } from '../objects/pod-refusal.ts';
import type { QuotaFit, ResourceQuota } from '../objects/quota.ts';

/** How often a held environment dry-runs its next session Pod. */
export const PROBE_INTERVAL_MS = 10_000;

export type AdmissionVerdict =
  /** Polls may hold up to `room` claims at once (Infinity: no quota limits it). */
  | { readonly open: true; readonly room: number }
  | { readonly open: false; readonly reason: string; readonly message: string };

export interface AdmissionFacts {
  readonly namespace: string;
  /** A capacity refusal of a session Pod create, held until a probe admits the next Pod. */
  readonly held: PodRefusal | undefined;
  /** How many more session Pods the namespace's quotas admit (undefined: not judged). */
  readonly fit: QuotaFit | undefined;
  /** Session Pods claimed in the namespace (any environment) and not created yet, plus this environment's hand-offs not recorded yet. */
  readonly pending: number;
}

const RESUMES = 'dispatch resumes on its own once a session Pod is admitted again (a dry-run create every 10 s)';

/** Whether polls may claim, and how many at once (pure; the rules are the file comment's 1–2). */
export function admissionVerdict(f: AdmissionFacts): AdmissionVerdict {
  if (f.held) return { open: false, reason: f.held.reason, message: `${f.held.message}; no work is claimed meanwhile: ${RESUMES}` };
  const fit = f.fit ?? { fits: Infinity };
  if ('quota' in fit) {
    return {
      open: false,
      reason: 'QuotaExhausted',
      message: `session Pods do not fit ResourceQuota ${fit.quota} in namespace ${f.namespace}: ${fit.resource}: ${fit.used} of ${fit.hard} used, a session Pod needs ${fit.needs}; no work is claimed meanwhile: dispatch resumes on its own when one fits`,
    };
  }
  // Room taken by claims whose Pods are not created yet: no new poll, nothing to report (their
  // Pods fill the quota next, and rule 1 then says so).
  return { open: true, room: Math.max(0, fit.fits - f.pending) };
}

/** What the dispatcher of one environment needs from the cluster for backpressure (wired in sessions/index.ts). */
export interface AdmissionSource {
  /** The environment's next session Pod as it would be created (undefined: it cannot be built; the session reconciler says why). */
  nextPod(env: AgentEnvironment): Pod | undefined;
  /** The namespace's ResourceQuotas from the operator's cache. */
  quotas(namespace: string): readonly ResourceQuota[];
  /** Session Pods claimed in the namespace and not created yet (records without their Pod in the cache). */
  podsPending(namespace: string): number;
  /** A dry-run create of `pod`: undefined when admitted, the capacity refusal when refused; throws on anything else. */
  dryRun(pod: Pod): Promise<PodRefusal | undefined>;
}
