/**
 * Pure status computation for AgentEnvironments: the observation of one reconcile in, the status
 * to write out. `lastSyncTime` and `observedGeneration` only move when the status is written for
 * another reason or the generation changed, so a steady-state resync writes nothing.
 */
import type { Environment, QueueStats } from '../api/wire.ts';
import { CONDITIONS } from '../crd/meta.ts';
import type { AgentEnvironment } from '../crd/resources.ts';
import type { AgentEnvironmentStatus, WarmPoolStatus } from '../crd/agent-environment.ts';
import { jsonEqual, setCondition, type Condition } from '../k8s/conditions.ts';

/** A condition's verdict: its status (`ok`), reason and message. */
export interface Verdict {
  readonly ok: boolean;
  readonly reason: string;
  readonly message: string;
}
export const ok = (reason: string, message = ''): Verdict => ({ ok: true, reason, message });
export const notOk = (reason: string, message: string): Verdict => ({ ok: false, reason, message });

export interface Observation {
  /** The remote environment as last read or written in this reconcile. */
  readonly remote?: Environment;
  /** The id known for the remote environment even when it could not be read. */
  readonly environmentId?: string;
  readonly synced: Verdict;
  readonly ready: Verdict;
  readonly queue?: QueueStats;
  readonly activeSessions?: number;
  /** The warm pool (self-hosted with spec.selfHosted.warmPool); undefined removes status.warmPool. */
  readonly warmPool?: WarmPoolStatus;
  /** True when this pass fully reconciled the current generation. */
  readonly clean: boolean;
}

/** A pass that failed before reading the remote environment: both conditions say why. */
export function failed(reason: string, message: string): Observation {
  return { synced: notOk(reason, message), ready: notOk(reason, message), clean: false };
}

export function nextStatus(env: AgentEnvironment, o: Observation, now: Date): AgentEnvironmentStatus {
  const prev = env.status ?? {};
  const generation = env.metadata?.generation;
  let conditions = prev.conditions as Condition[] | undefined;
  conditions = setCondition(conditions, { type: CONDITIONS.ready, status: o.ready.ok ? 'True' : 'False', reason: o.ready.reason, message: o.ready.message, ...(generation !== undefined ? { observedGeneration: generation } : {}) }, now);
  conditions = setCondition(conditions, { type: CONDITIONS.synced, status: o.synced.ok ? 'True' : 'False', reason: o.synced.reason, message: o.synced.message, ...(generation !== undefined ? { observedGeneration: generation } : {}) }, now);
  const next: AgentEnvironmentStatus = {
    ...prev,
    conditions,
  };
  const id = o.remote?.id ?? o.environmentId ?? prev.environmentId;
  if (id) next.environmentId = id;
  if (o.remote) {
    next.type = o.remote.config.type;
    if (o.remote.archived_at) next.archivedAt = o.remote.archived_at;
    else delete next.archivedAt;
  }
  if (o.queue) {
    next.queue = {
      depth: o.queue.depth,
      pending: o.queue.pending,
      workersPolling: o.queue.workers_polling,
      ...(o.queue.oldest_queued_at ? { oldestQueuedAt: o.queue.oldest_queued_at } : {}),
    };
  }
  if (o.activeSessions !== undefined) next.activeSessions = o.activeSessions;
  if (o.warmPool) next.warmPool = o.warmPool;
  else if (o.activeSessions !== undefined) delete next.warmPool;
  if (o.clean && generation !== undefined) next.observedGeneration = generation;
  // Only a status that changes anyway records the sync time: steady state writes nothing.
  if (!jsonEqual(withoutSyncTime(next), withoutSyncTime(prev)) && o.synced.ok) next.lastSyncTime = now.toISOString();
  return next;
}

const withoutSyncTime = (s: AgentEnvironmentStatus): AgentEnvironmentStatus => {
  const { lastSyncTime: _ignored, ...rest } = s;
  return rest;
};
