/**
 * Ending and removing sessions (pure decisions; the finalize phase of `reconcile.ts` applies them).
 *
 * Finalizer flow (a user deleted the AgentSession, its environment was deleted, or its TTL ran out):
 * 1. A record that never acknowledged its item here stops nothing: the item is not ours.
 * 2. A live item is stopped gracefully (`stopWork` without force): the sidecar sees `stopping` on
 *    its next heartbeat and passes it to the runner, which ends; the stop is confirmed once it has.
 *    An item still `starting` has nothing to drain and is force-stopped.
 * 3. A Pod whose sidecar has asked its main container to end for `stopGracePeriodSeconds` is
 *    deleted (the enforced stop, decide.ts rule 6); in any case the Pod gets
 *    `stopGracePeriodSeconds` + {@link STOP_MARGIN_MS} to end, after which the item is
 *    force-stopped and the Pod deleted.
 * 4. When nothing runs any more, the Pods and per-item Secrets are deleted explicitly (owner
 *    references would remove them too, but nothing should depend on garbage-collection timing) and
 *    the finalizer is removed.
 * Guarantees: idempotent, and correct when nothing was ever launched. When the item cannot be
 * reached (no credential, environment gone) or the environment is ObserveOnly (no API writes), the
 * Pod is deleted right away: the kubelet stops the main container, then the sidecar, which
 * force-stops the item itself.
 *
 * TTL: a finished session (Succeeded/Failed, `finishedAt` set) is deleted
 * `sessionTTLSecondsAfterFinished` after it finished.
 */
import type { Work } from '../../api/wire.ts';
import { FINISHED_PHASES } from '../../crd/agent-session.ts';
import type { AgentSession } from '../../crd/resources.ts';
import type { PodView } from '../objects/pod-view.ts';
import { isAcknowledged } from '../record/status.ts';
import { STOP_MARGIN_MS, stopEnforcedAt, type SessionSettings } from './decide.ts';

export type FinalizeAction =
  | { readonly kind: 'stopWork'; readonly force: boolean; readonly reason: 'SessionDeleted' }
  | { readonly kind: 'deletePods' }
  | { readonly kind: 'removeFinalizer' };

export interface FinalizeFacts {
  readonly session: AgentSession;
  /** Undefined when the environment is gone (then nothing is written to the API, as under ObserveOnly). */
  readonly settings: SessionSettings | undefined;
  readonly work: { readonly kind: 'found'; readonly work: Work } | { readonly kind: 'gone' } | { readonly kind: 'unknown'; readonly message: string };
  /** Every Pod of the session (any work item). */
  readonly pods: readonly PodView[];
  readonly now: Date;
}

export interface FinalizeDecision {
  readonly actions: readonly FinalizeAction[];
  /** Undefined once the finalizer is removed. */
  readonly requeueAfterMs: number | undefined;
}

export function decideFinalize(f: FinalizeFacts): FinalizeDecision {
  const running = f.pods.filter((p) => !p.finished);
  const done = (): FinalizeDecision => ({ actions: [{ kind: 'deletePods' }, { kind: 'removeFinalizer' }], requeueAfterMs: undefined });
  // 1. Never acknowledged here: nothing of ours to stop.
  if (!isAcknowledged(f.session)) return done();

  const settings = f.settings;
  const work = f.work.kind === 'found' ? f.work.work : undefined;
  const live = work !== undefined && work.state !== 'stopped' && work.state !== 'queued';
  if (!settings || settings.observeOnly || f.work.kind === 'unknown') {
    // The sidecar stops the item on SIGTERM; wait for the Pods to go.
    if (running.length === 0) return done();
    return { actions: running.some((p) => !p.deleting) ? [{ kind: 'deletePods' }] : [], requeueAfterMs: 2_000 };
  }

  const deletedAt = Date.parse(f.session.metadata?.deletionTimestamp ?? '') || f.now.getTime();
  const giveUp = deletedAt + settings.stopGracePeriodSeconds * 1000 + STOP_MARGIN_MS;
  const now = f.now.getTime();

  if (running.length === 0) {
    // 4. Nothing runs: an item still `stopping` is confirmed, a `starting` one force-stopped.
    const actions: FinalizeAction[] = live ? [{ kind: 'stopWork', force: true, reason: 'SessionDeleted' }] : [];
    return { actions: [...actions, ...done().actions], requeueAfterMs: undefined };
  }
  if (now >= giveUp) {
    // 3. Out of patience: force.
    return { actions: [...(live ? [{ kind: 'stopWork', force: true, reason: 'SessionDeleted' } as const] : []), { kind: 'deletePods' }], requeueAfterMs: 2_000 };
  }
  // 2. Graceful stop (once: a `stopping` item is left to drain).
  const actions: FinalizeAction[] = [];
  // 3. The enforced stop: a main container its sidecar told to end, still running after the grace.
  const enforce = running.some((p) => !p.deleting && now >= (stopEnforcedAt(settings.stopGracePeriodSeconds, p) ?? Infinity));
  if (work?.state === 'active') actions.push({ kind: 'stopWork', force: false, reason: 'SessionDeleted' });
  if (work?.state === 'starting') actions.push({ kind: 'stopWork', force: true, reason: 'SessionDeleted' });
  // An item already stopped while its Pod still runs is the sidecar's to end; a Pod that never
  // started its session container has nothing to drain.
  const idle = running.filter((p) => !p.mainStarted && !p.deleting);
  if (enforce || ((work?.state === 'starting' || !live) && idle.length)) actions.push({ kind: 'deletePods' });
  return { actions, requeueAfterMs: Math.max(1_000, Math.min(2_000, giveUp - now)) };
}

/** Milliseconds until a finished session should be deleted (≤ 0: now), or undefined when it is not finished. */
export function ttlRemainingMs(session: AgentSession, ttlSeconds: number, now: Date): number | undefined {
  const st = session.status;
  if (!st?.phase || !FINISHED_PHASES.includes(st.phase) || !st.finishedAt) return undefined;
  // A finished status about an earlier work item does not count: the session came back.
  if (st.workId !== undefined && st.workId !== session.spec.workId) return undefined;
  const finished = Date.parse(st.finishedAt);
  if (Number.isNaN(finished)) return undefined;
  return finished + ttlSeconds * 1000 - now.getTime();
}
