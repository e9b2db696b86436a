/**
 * What an AgentSession record's status says, and the status patches that move it (pure). The rules
 * the dispatcher, the settle pass and the session reconciler share:
 * - a record **acknowledges** its current work item only when `status.workId === spec.workId` and
 *   `status.acknowledgedAt` is set ({@link isAcknowledged}); until then the item is merely claimed;
 * - a record **holds capacity** (one of the environment's session slots) while its current work
 *   item is not finished ({@link holdsCapacity}) — the one capacity rule, counted by the dispatcher
 *   and by the AgentEnvironment's `activeSessions`.
 */
import { FINISHED_PHASES, type AgentSessionStatus } from '../../crd/agent-session.ts';
import { jsonEqual } from '../../k8s/conditions.ts';
import type { AgentSession } from '../../crd/resources.ts';

export type StatusPatch = { [K in keyof AgentSessionStatus]?: AgentSessionStatus[K] | null };

/** True when the record's status acknowledges its current work item (see the rules above). */
export function isAcknowledged(s: AgentSession): boolean {
  return s.status?.workId === s.spec.workId && Boolean(s.status?.acknowledgedAt);
}

/**
 * Whether the record holds one of the environment's session slots: its current work item is not
 * finished. A record moved forward to a new work item (`status.workId !== spec.workId`) holds one
 * even while its status still shows the previous item's final phase.
 */
export function holdsCapacity(s: AgentSession): boolean {
  if (s.status?.workId !== undefined && s.status.workId !== s.spec.workId) return true;
  return !FINISHED_PHASES.includes(s.status?.phase ?? 'Pending');
}

/**
 * Whether the record's current work item has a per-item Secret. Without a per-item secret from the
 * poll there is none: the sidecar mounts the environment key's own Secret, so a claim costs one
 * Kubernetes write fewer and the key is not copied into a Secret per session.
 */
export function hasItemSecret(s: AgentSession): boolean {
  return s.spec.workSecret !== false;
}

/** Status of a freshly acknowledged work item; fields about an earlier item are cleared. */
export function acknowledgedStatus(session: AgentSession, at: Date): StatusPatch {
  return {
    phase: 'Starting',
    workId: session.spec.workId,
    workState: 'starting',
    acknowledgedAt: at.toISOString(),
    workItems: (session.status?.workItems ?? 0) + 1,
    podName: null,
    lease: null,
    stopRequestedAt: null,
    reason: null,
    message: null,
    startedAt: null,
    finishedAt: null,
  };
}

/** Status of a work item this cluster did not (or can no longer) acknowledge. No acknowledgedAt: nothing here may stop it. */
export function notAcknowledgedStatus(session: AgentSession, workState: AgentSessionStatus['workState'] | undefined, reason: string, message: string, at: Date): StatusPatch {
  return {
    phase: 'Failed',
    workId: session.spec.workId,
    workState: workState ?? null,
    acknowledgedAt: null,
    podName: null,
    lease: null,
    reason,
    message,
    finishedAt: at.toISOString(),
  };
}

/** A status merge patch applied locally: `null` deletes a field. */
export function applyStatusPatch(status: AgentSessionStatus, patch: StatusPatch): AgentSessionStatus {
  const out: Record<string, unknown> = { ...status };
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = v;
  }
  return out as AgentSessionStatus;
}

/** The merge patch from `prev` to `next` (removed fields become null). */
export function statusPatch(prev: AgentSessionStatus, next: AgentSessionStatus): StatusPatch {
  const patch: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(next)) if (!jsonEqual((prev as Record<string, unknown>)[k], v)) patch[k] = v;
  for (const k of Object.keys(prev)) if (!(k in next)) patch[k] = null;
  return patch as StatusPatch;
}
