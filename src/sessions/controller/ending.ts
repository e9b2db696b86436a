/**
 * How a session's end is recorded (pure; part of the decision in `decide.ts`): the reason a
 * session whose Pod ended gets, and the causes that outrank it — a failure recorded earlier (the
 * first reason wins) and a Pod deleted before the item stopped.
 *
 * Completed or Stopped: a session Stopped when a stop came before its own end, whatever the killed
 * container's exit code. A graceful stop carries its request time (`stop_requested_at`); a forced
 * one (the API's, or the runner's final stop carried out by the sidecar) carries none, and the
 * order the operator happens to see the item stopped and the runner exit in says nothing about who
 * stopped it. The sidecar does know — whoever ended its lease first — and says so by its exit code
 * (`SIDECAR_EXIT_*` in `contract/sidecar.ts`), so a stopped item without a request time is judged
 * once the sidecar has ended, not by the order of observation.
 */
import type { Work } from '../../api/wire.ts';
import type { SessionPhase } from '../../crd/agent-session.ts';
import type { AgentSession } from '../../crd/resources.ts';
import type { PodView } from '../objects/pod-view.ts';
import type { SessionAction, SessionFacts } from './decide.ts';

/** Reasons the operator gives a work item it force-stopped; a session ending with one is Failed. */
export const FAILURE_REASONS = [
  'PodCreateRefused',
  'InvalidTemplate',
  'TemplateRefused',
  'ImagePullFailed',
  'Unschedulable',
  'StartTimeout',
  'CrashedBeforeClaim',
  'PodDeleted',
  'Evicted',
  'WorkGone',
  'WorkspaceUnavailable',
] as const;
export type FailureReason = (typeof FAILURE_REASONS)[number];

/** After the Pod finished, how long its sidecar's exit code may lag behind the phase before the end is judged without it. */
export const SIDECAR_WORD_MS = 10_000;

/** One pass's verdict, before it becomes the status (`decide.ts`). */
export interface Verdict {
  phase: SessionPhase;
  reason: string;
  message: string;
  actions: SessionAction[];
  requeueAfterMs?: number | undefined;
  finished?: boolean;
  /** The item was seen stopped while the main container ran: recorded as the stop's time. */
  stopRequested?: boolean;
  /** The session ended itself (its sidecar says so): a stop time seen on the way is no stop request. */
  endedItself?: boolean;
}

export const ms = (t: string | null | undefined): number | undefined => {
  const v = t ? Date.parse(t) : NaN;
  return Number.isNaN(v) ? undefined : v;
};

/** How a session whose Pod ended is recorded: a stop before the end is a normal end. */
export function ended(f: SessionFacts, work: Work, pod: PodView): Verdict {
  const exit = pod.mainExit;
  if (pod.evicted) return { phase: 'Failed', reason: 'Evicted', message: `session Pod ${pod.name} was evicted`, actions: [], finished: true };
  const stop = stopBeforeEnd(f, work, pod);
  if (stop === 'stopped') return { phase: 'Succeeded', reason: 'Stopped', message: `work item ${work.id} was stopped${exitText(pod)}`, actions: [], finished: true };
  const itself = stop === 'ended-itself';
  if (exit && exit.exitCode === 0) return { phase: 'Succeeded', reason: 'Completed', message: 'session container exited with code 0', actions: [], finished: true, endedItself: itself };
  return { phase: 'Failed', reason: 'ContainerFailed', message: `session container failed${exitText(pod)}`, actions: [], finished: true, endedItself: itself };
}

/**
 * Whether a stop came before the session's own end:
 * 1. a requested stop (`stop_requested_at`: graceful, by the API or a user) counts by its time
 *    against the main container's exit;
 * 2. else the sidecar's exit code says who ended the lease first: the API (a forced remote stop:
 *    `stopped`) or the session (its runner's final stop, or its exit: `ended-itself`, never a stop);
 * 3. else (the sidecar was killed, or the Pod shows none) the stop seen while the main container
 *    still ran (`stopRequestedAt`), as its time.
 */
function stopBeforeEnd(f: SessionFacts, work: Work, pod: PodView): 'stopped' | 'ended-itself' | undefined {
  const requested = ms(work.stop_requested_at);
  if (requested === undefined && pod.sidecarEnd === 'api') return 'stopped';
  if (requested === undefined && pod.sidecarEnd === 'session') return 'ended-itself';
  const stopAt = requested ?? ms(f.session.status?.stopRequestedAt);
  const exitAt = ms(pod.mainExit?.finishedAt);
  // Container times have one-second resolution: a stop within the second of the exit counts as before it.
  return stopAt !== undefined && (exitAt === undefined || stopAt < exitAt + 1_000) ? 'stopped' : undefined;
}

/**
 * The ending waits for the sidecar's word: an item stopped without a request time whose Pod
 * finished while its sidecar still shows running (its exit code not reported yet), for at most
 * {@link SIDECAR_WORD_MS} after the main container's exit. Then without it (rule 3 above).
 */
export function awaitsSidecarWord(f: SessionFacts, work: Work, pod: PodView): boolean {
  if (work.stop_requested_at || pod.sidecarEnd !== 'running' || pod.evicted) return false;
  const exitAt = ms(pod.mainExit?.finishedAt);
  return exitAt !== undefined && f.now.getTime() - exitAt < SIDECAR_WORD_MS;
}

export const exitText = (pod: PodView): string => (pod.mainExit ? ` (exit code ${pod.mainExit.exitCode}${pod.mainExit.reason ? `, ${pod.mainExit.reason}` : ''})` : '');

/**
 * A Pod whose deletion was requested before the item's stop: the deletion ended the session (its
 * sidecar force-stopped the item when the kubelet stopped it), even when this is the first pass to
 * see it. A stop *requested* before the deletion is the cause, even when the item stopped after.
 */
export function deletedFirst(work: Work, pod: PodView | undefined): { reason: string; message: string } | undefined {
  const stoppedAt = ms(work.stop_requested_at) ?? ms(work.stopped_at);
  if (!pod?.deleting || pod.deletionRequestedAt === undefined || stoppedAt === undefined || pod.deletionRequestedAt > stoppedAt) return undefined;
  return { reason: pod.evicted ? 'Evicted' : 'PodDeleted', message: `session Pod ${pod.name} was deleted while the work item was running` };
}

/** The failure reason recorded earlier for the current work item, if any (first reason wins). */
export function keptFailure(s: AgentSession): { reason: string; message: string } | undefined {
  const st = s.status;
  if (!st?.reason || st.workId !== s.spec.workId) return undefined;
  if (!(FAILURE_REASONS as readonly string[]).includes(st.reason)) return undefined;
  if (st.phase !== 'Failed' && st.reason !== 'PodDeleted') return undefined;
  return { reason: st.reason, message: st.message ?? '' };
}
