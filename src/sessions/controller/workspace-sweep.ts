/**
 * The workspace sweep: on every keyed pass of a self-hosted environment (the environment's resync
 * included), the environment's workspace claims are listed by label; a claim whose AgentSession is
 * gone and that was not retained (`reclaimPolicy: Retain`) is deleted — nothing is leaked when a
 * finalizer was removed by hand or garbage collection has not run — and the claims are counted by
 * phase for the `agentenv_workspace_claims` metric. The decision is pure ({@link sweepPlan}).
 */
import { LABELS } from '../../crd/meta.ts';
import type { AgentEnvironment } from '../../crd/resources.ts';
import { isConflict, isNotFound } from '../../k8s/errors.ts';
import { CORE, type KubeRest } from '../../k8s/rest.ts';
import type { Logger } from '../../telemetry/logger.ts';
import { labelValue } from '../record/names.ts';
import { RETAINED_LABEL, WORKSPACE_SELECTOR, type PersistentVolumeClaim } from '../objects/workspace.ts';
import { claimPhase } from './workspace.ts';

export interface SweepPlan {
  /** Claims to delete: their session is gone and they were not retained. */
  readonly orphaned: readonly PersistentVolumeClaim[];
  /** Claims by phase (`Retained` for claims kept by `reclaimPolicy: Retain`). */
  readonly byPhase: Readonly<Record<string, number>>;
}

/** Which claims are orphans, and the counts (pure). A claim being deleted is neither swept again nor counted. */
export function sweepPlan(claims: readonly PersistentVolumeClaim[], sessionExists: (session: string) => boolean): SweepPlan {
  const orphaned: PersistentVolumeClaim[] = [];
  const byPhase: Record<string, number> = {};
  for (const c of claims) {
    if (c.metadata?.deletionTimestamp) continue;
    const retained = c.metadata?.labels?.[RETAINED_LABEL] === 'true';
    const phase = retained ? 'Retained' : claimPhase(c);
    byPhase[phase] = (byPhase[phase] ?? 0) + 1;
    const session = c.metadata?.labels?.[LABELS.session];
    if (!retained && session && !sessionExists(session)) orphaned.push(c);
  }
  return { orphaned, byPhase };
}

export interface SweepDeps {
  readonly rest: KubeRest;
  readonly log: Logger;
  /** Whether the AgentSession exists (the informer cache; a miss is confirmed with a read). */
  readonly sessionExists: (namespace: string, name: string) => Promise<boolean>;
}

/** Sweep one environment's workspace claims; returns the counts by phase. */
export async function sweepWorkspaces(deps: SweepDeps, env: AgentEnvironment): Promise<Readonly<Record<string, number>>> {
  const namespace = env.metadata?.namespace ?? '';
  const selector = `${WORKSPACE_SELECTOR},${LABELS.environment}=${labelValue(env.metadata?.name ?? '')}`;
  const claims = (await deps.rest.list<PersistentVolumeClaim>(CORE.persistentvolumeclaims, namespace, { labelSelector: selector })).items;
  const existing = new Set<string>();
  for (const c of claims) {
    const s = c.metadata?.labels?.[LABELS.session];
    if (s && (await deps.sessionExists(namespace, s))) existing.add(s);
  }
  const plan = sweepPlan(claims, (s) => existing.has(s));
  for (const c of plan.orphaned) {
    try {
      // The uid precondition: never a claim of the same name made since the list.
      await deps.rest.delete(CORE.persistentvolumeclaims, namespace, c.metadata?.name ?? '', { preconditions: { uid: c.metadata?.uid ?? '' } });
      deps.log.info({ claim: c.metadata?.name }, 'deleted a workspace claim whose session is gone');
    } catch (err) {
      if (!isNotFound(err) && !isConflict(err)) throw err;
    }
  }
  return plan.byPhase;
}
