/**
 * Which AgentEnvironments this operator dispatches, and which get `Dispatching=False` (pure).
 *
 * An environment is dispatched when it is self-hosted, `Full`, Ready with a known remote id and not
 * being deleted. A `sessionTemplate` is not needed: without one its sessions run the default
 * runner (objects/default-template.ts); `maxSessions: 0` is how dispatch is paused. The limits come from the parsed spec, so the
 * CRD's defaults (`maxSessions` 10, `maxPollers` 16) apply without being repeated here.
 */
import { AgentEnvironmentSpec } from '../../crd/agent-environment.ts';
import { CONDITIONS } from '../../crd/meta.ts';
import type { AgentEnvironment } from '../../crd/resources.ts';
import { isTrue, type Condition } from '../../k8s/conditions.ts';
import type { DispatchLimits } from './poller.ts';

export type Eligibility =
  | { readonly eligible: true; readonly environmentId: string; readonly limits: DispatchLimits }
  | { readonly eligible: false; readonly reason: string; readonly message: string; readonly report: boolean };

/** Whether this environment's work is dispatched here, and if not why (pure). */
export function dispatchEligibility(env: AgentEnvironment): Eligibility {
  const parsed = AgentEnvironmentSpec.safeParse(env.spec);
  const spec = parsed.success ? parsed.data : undefined;
  if (!spec?.selfHosted) return { eligible: false, reason: 'NotSelfHosted', message: 'not a self-hosted environment', report: false };
  if (env.metadata?.deletionTimestamp) return { eligible: false, reason: 'Deleting', message: 'the AgentEnvironment is being deleted; no new work is claimed', report: true };
  if (spec.managementPolicy === 'ObserveOnly') return { eligible: false, reason: 'ObserveOnly', message: 'managementPolicy is ObserveOnly: the operator does not poll for work', report: true };
  const id = env.status?.environmentId;
  if (!id || !isTrue(env.status?.conditions as Condition[] | undefined, CONDITIONS.ready)) return { eligible: false, reason: 'EnvironmentNotReady', message: 'waiting for the remote environment to be Ready', report: true };
  return { eligible: true, environmentId: id, limits: { maxSessions: spec.selfHosted.maxSessions, maxPollers: spec.selfHosted.maxPollers } };
}

/**
 * Whether a non-dispatched environment gets `Dispatching=False`: a self-hosted one held back for a
 * reason of its own, or one whose condition would otherwise go stale. A new environment that is
 * merely not Ready yet gets no condition (and costs no write).
 */
export function reportsNotDispatching(env: AgentEnvironment, verdict: Eligibility): boolean {
  if (verdict.eligible || !verdict.report) return false;
  const present = (env.status?.conditions ?? []).some((c) => c.type === CONDITIONS.dispatching);
  if (present) return true;
  return verdict.reason !== 'EnvironmentNotReady';
}
