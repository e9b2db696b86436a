/**
 * The AgentSession decision (pure): from what one pass observed — the record, its environment's
 * settings, its Pod and the work item in the API — to the status to show and the actions to take.
 *
 * Rules, in the order they apply to an acknowledged record (`isAcknowledged`):
 * 1. The item is gone (404) → nothing can run it: delete the Pod, Failed `WorkGone`.
 * 2. The item went back to `queued` (our acknowledgement lapsed), or its lease was claimed again
 *    since our sidecar claimed it (`LeaseLost`) → the record no longer holds it:
 *    it is marked not acknowledged, so the dispatcher's settle pass acknowledges it again (or
 *    releases it) — we never create a Pod for, or stop, an item that is not ours.
 * 3. `starting` → launch: create the Pod ({@link needsPod}; the launch phase creates it). Acknowledged work is never stranded: a Pod that cannot
 *    start (create refused, template refused, image pull failure, unschedulable past the deadline,
 *    ended before the lease was claimed, still unclaimed at the deadline) ends in a force-stop of
 *    the item with the reason recorded.
 * 4. `active` → Running. A Pod that is gone, finished or being deleted while the item is active is
 *    made sure of: the sidecar force-stops when the kubelet stops it, and the reconciler
 *    force-stops as well once the Pod is gone (409 = already stopped) — unless the sidecar ended
 *    saying it lost the lease: then nothing stops the item, and rule 2 lets it go once it lapses.
 * 5. `stopping` / `stopped` → Stopping until the Pod has ended (deleted after the grace period
 *    plus {@link STOP_MARGIN_MS}), then Succeeded or Failed (`ending.ts`: an item stopped with no
 *    request time is judged by its sidecar's exit code — the session's own stop is Completed, the
 *    API's is Stopped — never by the order the stop and the exit were seen in).
 * 6. The enforced stop, in rules 4 and 5: the sidecar reports not ready (a stop is due, the lease
 *    was lost or not extended) and the main container has not ended `stopGracePeriodSeconds`
 *    later → the Pod is deleted (`StopEnforced`). The kubelet does SIGTERM, grace, SIGKILL, the
 *    sidecar (stopped last) stops the item unless the lease was lost, and rules 4–5 record the
 *    end; a deletion made here is never read as the session's cause (`PodDeleted`), and an item
 *    its sidecar left active is not stopped from here either (the lease may be lost): the API
 *    ends the lease nobody beats, and rule 2 lets the record go.
 * The first failure reason recorded wins: later passes keep it.
 *
 * ObserveOnly environments: the operator never writes to the API, so force-stops are left out (the
 * reason is still recorded; the Pod is deleted, and the item's own sidecar, or the lease expiry,
 * ends it). Pods are still created for items acknowledged before the switch: creating a Pod is not
 * an API write, and not launching would strand the item.
 */
import type { Work } from '../../api/wire.ts';
import type { AgentSessionStatus } from '../../crd/agent-session.ts';
import type { AgentSession } from '../../crd/resources.ts';
import { isAcknowledged } from '../record/status.ts';
import type { PodView } from '../objects/pod-view.ts';
import type { Workspace } from '../../crd/agent-environment.ts';
import type { ApiSessionFact, WorkspaceSeen } from './workspace.ts';
import { idleEnding, keptIdle } from './idle.ts';
import { awaitsSidecarWord, deletedFirst, ended as endedVerdict, exitText, FAILURE_REASONS, keptFailure, ms, type FailureReason, type Verdict } from './ending.ts';

export { FAILURE_REASONS, type FailureReason } from './ending.ts';

/** After a stop, how much longer than `stopGracePeriodSeconds` the Pod gets to end by itself (one heartbeat interval and the sidecar's own stop call). */
export const STOP_MARGIN_MS = 45_000;
/** After the main container ended, how long the sidecar gets to force-stop the item before the reconciler does. */
export const SIDECAR_STOP_MS = 10_000;
/**
 * The least time between the sidecar turning not ready and the enforced stop, whatever
 * `stopGracePeriodSeconds` says (it may be 0): a few readiness periods, so that a sidecar that is
 * not ready for a moment (its first readiness probe after it started) never costs a Pod.
 */
export const MIN_ENFORCE_MS = 5_000;
/** The reason recorded when the operator deletes a Pod whose main container did not end when told. */
export const STOP_ENFORCED = 'StopEnforced';

export interface SessionSettings {
  readonly startDeadlineSeconds: number;
  readonly stopGracePeriodSeconds: number;
  readonly leaseTTLSeconds: number | undefined;
  /** A finished session is deleted this long after it finished. */
  readonly sessionTTLSecondsAfterFinished: number;
  /** Nothing is written to the API (ObserveOnly, or the environment is gone). */
  readonly observeOnly: boolean;
  /** The environment's `workspace`, if it has one. */
  readonly workspace?: Workspace | undefined;
  /** The environment runs the default runner (no `sessionTemplate`): its clean exits are its idle timeout or the session's end. */
  readonly defaultRunner?: boolean;
}

/** What one pass observed. */
export interface SessionFacts {
  readonly session: AgentSession;
  readonly settings: SessionSettings;
  /** The work item: found, gone (404), or unknown (no credential, API unavailable). */
  readonly work: { readonly kind: 'found'; readonly work: Work } | { readonly kind: 'gone' } | { readonly kind: 'unknown'; readonly message: string };
  /** The Pod of the current work item, if it exists. */
  readonly pod: PodView | undefined;
  /** Why the Pod cannot be built or created, when that was tried and refused. */
  readonly launchRefused?: { readonly reason: 'InvalidTemplate' | 'TemplateRefused' | 'PodCreateRefused'; readonly message: string } | undefined;
  /** Why the launch waits before creating the Pod (controller/workspace.ts, rule 2). */
  readonly launchWaiting?: string | undefined;
  /** The session's workspace claim, when the environment has a workspace. */
  readonly workspace?: WorkspaceSeen | undefined;
  /** The session in the API, read once its Pod's main container has ended (an `idle` session makes the end `Idle`). */
  readonly apiSession?: ApiSessionFact | undefined;
  readonly now: Date;
}

/** What a pass does besides writing the status. Creating the Pod is not among them: it is the launch phase's ({@link needsPod}). */
export type SessionAction =
  | { readonly kind: 'deletePod' }
  | { readonly kind: 'stopWork'; readonly force: boolean; readonly reason: string }
  | { readonly kind: 'markNotAcknowledged'; readonly message: string };

export interface SessionDecision {
  /** The status fields this reconciler owns, merged over the current status. */
  readonly status: AgentSessionStatus;
  readonly actions: readonly SessionAction[];
  /** A Warning (failure) or Normal event for a transition, if any. */
  readonly event?: { readonly type: 'Normal' | 'Warning'; readonly reason: string; readonly message: string } | undefined;
  /** When to look again even if nothing changes; undefined = the slow resync. */
  readonly requeueAfterMs: number | undefined;
  /** The item's lease was just seen claimed: the session turns Running in this pass. */
  readonly becameRunning?: boolean;
}

export function decideSession(f: SessionFacts): SessionDecision {
  const prev = f.session.status ?? {};
  if (!isAcknowledged(f.session)) {
    // Claimed, not acknowledged: the dispatcher's record (see record/record.ts); nothing runs here yet.
    return { status: prev, actions: [], requeueAfterMs: undefined };
  }
  if (f.work.kind === 'unknown') {
    return { status: prev, actions: [], requeueAfterMs: 30_000 };
  }
  const v = keptIdle(f.session, f.work.kind === 'gone' ? goneVerdict(f) : verdict(f, f.work.work));
  const actions = f.settings.observeOnly ? v.actions.filter((a) => a.kind !== 'stopWork') : v.actions;
  const status = nextStatus(f, v);
  const transition = status.phase !== prev.phase || status.reason !== prev.reason;
  const failed = (FAILURE_REASONS as readonly string[]).includes(v.reason) || v.reason === STOP_ENFORCED;
  const event = transition && v.reason ? { type: failed ? ('Warning' as const) : ('Normal' as const), reason: v.reason, message: v.message } : undefined;
  return { status, actions, event, requeueAfterMs: v.requeueAfterMs, becameRunning: status.phase === 'Running' && prev.phase !== 'Running' };
}

function goneVerdict(f: SessionFacts): Verdict {
  const kept = keptFailure(f.session);
  return {
    ...(kept ?? { reason: 'WorkGone', message: `work item ${f.session.spec.workId} no longer exists in the API` }),
    phase: 'Failed',
    actions: f.pod ? [{ kind: 'deletePod' }] : [],
    finished: true,
  };
}

/**
 * Rule 3, the launch rule: an acknowledged item that is `starting` and still ours gets its Pod
 * when none exists and none was refused. The launch phase asks this before looking the Pod up
 * beyond the cache: a create that finds the Pod existing is success.
 */
export function needsPod(f: Pick<SessionFacts, 'session' | 'work' | 'pod' | 'launchRefused'>): boolean {
  if (!isAcknowledged(f.session) || f.work.kind !== 'found' || f.pod || f.launchRefused) return false;
  return f.work.work.state === 'starting' && !leaseLost(f.session, f.work.work);
}

/**
 * Our sidecar's claim, as first observed: an item claimed again since (or back in the queue's
 * hands) is held by another worker now.
 */
function leaseLost(session: AgentSession, work: Work): boolean {
  const ourClaim = session.status?.lease?.claimedAt;
  return Boolean(ourClaim) && (work.state === 'starting' || work.state === 'active' || work.state === 'stopping') && work.started_at !== ourClaim;
}

/** The verdict on an item the API reports, by its state (rules 2–5). */
function verdict(f: SessionFacts, work: Work): Verdict {
  if (leaseLost(f.session, work)) return lostVerdict(f, work);
  switch (work.state) {
    case 'queued':
      return {
        phase: 'Claimed',
        reason: 'AcknowledgementLapsed',
        message: `work item ${work.id} went back to the queue before its lease was claimed here`,
        actions: [{ kind: 'markNotAcknowledged', message: `work item ${work.id} went back to the queue` }],
      };
    case 'starting':
      return startingVerdict(f);
    case 'active':
      return activeVerdict(f, work);
    case 'stopping':
    case 'stopped':
      return stoppingVerdict(f, work);
  }
}

/** A failure the operator ends with a force-stop of the item (and the Pod deleted, when asked). */
function fail(f: SessionFacts, reason: FailureReason, message: string, deletePod: boolean): Verdict {
  return {
    phase: 'Failed',
    reason,
    message,
    actions: [{ kind: 'stopWork', force: true, reason }, ...(deletePod && f.pod ? [{ kind: 'deletePod' } as const] : [])],
    finished: true,
  };
}

/** Rule 2: the lease is held elsewhere. Never stop it: the Pod goes (its sidecar, having lost the lease, stops nothing) and the record lets go of the item. */
function lostVerdict(f: SessionFacts, work: Work): Verdict {
  return {
    phase: 'Failed',
    reason: 'LeaseLost',
    message: `the lease of work item ${work.id} was lost: it belongs to the queue or another worker now`,
    actions: [...(f.pod ? [{ kind: 'deletePod' } as const] : []), { kind: 'markNotAcknowledged', message: `the lease of work item ${work.id} was lost` }],
    finished: true,
  };
}

/** Rule 3: `starting` — the Pod is created (the launch phase) and given `startDeadlineSeconds` to claim the lease. */
function startingVerdict(f: SessionFacts): Verdict {
  const pod = f.pod;
  const now = f.now.getTime();
  const { startDeadlineSeconds } = f.settings;
  const deadline = (ms(f.session.spec.claimedAt) ?? now) + startDeadlineSeconds * 1000;
  if (f.launchRefused) return fail(f, f.launchRefused.reason, f.launchRefused.message, false);
  // Rule 3 for the workspace: a claim not bound by the deadline (no provisioner, no capacity).
  if (now >= deadline && f.workspace && f.workspace.phase !== 'Bound') {
    return fail(f, 'WorkspaceUnavailable', `workspace claim ${f.workspace.claimName} is ${f.workspace.phase}, not Bound, after startDeadlineSeconds (${startDeadlineSeconds}s)`, true);
  }
  if (!pod && f.launchWaiting) return { phase: 'Starting', reason: 'WaitingForWorkspace', message: f.launchWaiting, actions: [], requeueAfterMs: 2_000 };
  if (!pod) return { phase: 'Starting', reason: 'CreatingPod', message: 'creating the session Pod', actions: [], requeueAfterMs: Math.max(1_000, deadline - now) };
  if (pod.imagePullFailure) return fail(f, 'ImagePullFailed', `image pull failed: ${pod.imagePullFailure}`, true);
  if (pod.finished || pod.mainExit) return fail(f, 'CrashedBeforeClaim', `the session Pod ended before its sidecar claimed the lease${exitText(pod)}`, false);
  if (pod.deleting) return { phase: 'Starting', reason: 'PodDeleting', message: `session Pod ${pod.name} is being deleted`, actions: [], requeueAfterMs: 2_000 };
  if (now >= deadline) {
    if (pod.unschedulable || !pod.scheduled) {
      return fail(f, 'Unschedulable', `not scheduled within startDeadlineSeconds (${startDeadlineSeconds}s): ${pod.unschedulable ?? 'no node accepted the Pod'}`, true);
    }
    return fail(f, 'StartTimeout', `the sidecar did not claim the lease within startDeadlineSeconds (${startDeadlineSeconds}s)`, true);
  }
  return pod.unschedulable
    ? { phase: 'Starting', reason: 'Unschedulable', message: pod.unschedulable, actions: [], requeueAfterMs: deadline - now }
    : { phase: 'Starting', reason: 'PodStarting', message: `waiting for the sidecar of ${pod.name} to claim the lease`, actions: [], requeueAfterMs: Math.min(deadline - now, 10_000) };
}

/** Rule 4: `active` — Running while the Pod runs; a Pod that is gone, ended or being deleted ends the item. */
function activeVerdict(f: SessionFacts, work: Work): Verdict {
  const pod = f.pod;
  const now = f.now.getTime();
  const enforced = enforcedHere(f.session);
  if (!pod && enforced) {
    // Our own deletion (rule 6), and the item still active: its sidecar did not stop it because the
    // lease was lost (then nothing may stop it: it belongs to the queue or another worker) or the
    // API stopped extending it. Either way nobody beats the lease any more: the API ends it within
    // one TTL, and rule 2 lets the record go. The end is no PodDeleted.
    return { phase: 'Stopping', reason: STOP_ENFORCED, message: f.session.status?.message ?? '', actions: [], requeueAfterMs: leaseWaitMs(f) };
  }
  if (!pod) return fail(f, 'PodDeleted', `session Pod of work item ${work.id} is gone while the item was active`, false);
  if (pod.evicted) return fail(f, 'Evicted', `session Pod ${pod.name} was evicted while the item was active`, false);
  if (pod.deleting) {
    // The kubelet stops the main container first and the sidecar last; the sidecar then
    // force-stops the item, and once the Pod is gone the reconciler makes sure (rule 4).
    if (enforced) return { phase: 'Stopping', reason: STOP_ENFORCED, message: f.session.status?.message ?? '', actions: [], requeueAfterMs: 2_000 };
    return { phase: 'Stopping', reason: 'PodDeleted', message: `session Pod ${pod.name} is being deleted; its sidecar stops the work item`, actions: [], requeueAfterMs: 2_000 };
  }
  if (pod.sidecarLostLease) {
    // The sidecar lost the lease (a heartbeat 412, or no beat within the TTL) before the Pod ended:
    // the item belongs to the queue or another worker even while the API still shows our claim
    // active. Never stop it; the API hands it back to the queue once the lease lapses (rule 2).
    return { phase: 'Stopping', reason: 'LeaseLost', message: `the sidecar of ${pod.name} lost the lease of work item ${work.id}; it is not stopped from here`, actions: [], requeueAfterMs: leaseWaitMs(f) };
  }
  if (pod.finished || (pod.mainExit && now - (ms(pod.mainExit.finishedAt) ?? now) >= SIDECAR_STOP_MS)) {
    return { ...ended(f, work, pod), actions: [{ kind: 'stopWork', force: true, reason: 'ContainerExited' }] };
  }
  if (pod.mainExit) return { phase: 'Stopping', reason: 'ContainerExited', message: `session container exited${exitText(pod)}; its sidecar stops the work item`, actions: [], requeueAfterMs: SIDECAR_STOP_MS };
  if (!pod.mainStarted) {
    // The lease is claimed before the session container starts (the sidecar's startup probe
    // gates it), so its image is pulled only now: a container that cannot start is a failed
    // start all the same.
    const { startDeadlineSeconds } = f.settings;
    const deadline = (ms(f.session.spec.claimedAt) ?? now) + startDeadlineSeconds * 1000;
    if (pod.imagePullFailure) return fail(f, 'ImagePullFailed', `image pull failed: ${pod.imagePullFailure}`, true);
    if (now >= deadline) return fail(f, 'StartTimeout', `the session container did not start within startDeadlineSeconds (${startDeadlineSeconds}s)`, true);
    return { phase: 'Running', reason: 'LeaseClaimed', message: `the sidecar of ${pod.name} holds the lease; the session container is starting`, actions: [], requeueAfterMs: Math.min(deadline - now, 10_000) };
  }
  const running: Verdict = { phase: 'Running', reason: 'LeaseClaimed', message: `session Pod ${pod.name} holds the lease`, actions: [], requeueAfterMs: 60_000 };
  const enforceAt = enforcedStopAt(f, pod);
  if (enforceAt === undefined) return running;
  // The sidecar asks the main container to end (lease not extended, or lost): the status stays
  // as it is until the grace is over (no write for a readiness blip), then rule 6.
  return now >= enforceAt ? enforceStop(f, pod) : { ...running, requeueAfterMs: Math.max(1_000, enforceAt - now) };
}

/** How often to look again while waiting for the API to end a lease nobody beats: the TTL, at most 10 s. */
const leaseWaitMs = (f: SessionFacts): number => Math.min((f.settings.leaseTTLSeconds ?? 90) * 1000, 10_000);

/**
 * Rule 6, when: the sidecar has asked the main container to end (`PodView.stopDueSince`) and
 * `stopGracePeriodSeconds` (at least {@link MIN_ENFORCE_MS}) have passed. Undefined: not asked.
 */
function enforcedStopAt(f: SessionFacts, pod: PodView): number | undefined {
  return stopEnforcedAt(f.settings.stopGracePeriodSeconds, pod);
}

/** Rule 6's time for one Pod (also the finalizer's): undefined while its sidecar asks nothing. */
export function stopEnforcedAt(stopGracePeriodSeconds: number, pod: PodView): number | undefined {
  if (pod.stopDueSince === undefined || pod.mainExit) return undefined;
  return pod.stopDueSince + Math.max(stopGracePeriodSeconds * 1000, MIN_ENFORCE_MS);
}

/**
 * Rule 6: delete the Pod. Without a shared process namespace no signal reaches the main container
 * from the sidecar, and the sidecar has no Kubernetes API access: only the kubelet can end the
 * container (SIGTERM, the Pod's grace, SIGKILL), and a Pod deletion is how it is asked.
 */
function enforceStop(f: SessionFacts, pod: PodView): Verdict {
  const grace = f.settings.stopGracePeriodSeconds;
  return {
    phase: 'Stopping',
    reason: STOP_ENFORCED,
    message: `the session container of ${pod.name} did not end within stopGracePeriodSeconds (${grace}s) of its sidecar asking it to (a stop, or a lease lost or not extended); the Pod is deleted`,
    actions: [{ kind: 'deletePod' }],
    requeueAfterMs: 2_000,
  };
}

/** The Pod of the current item was deleted by rule 6 (the reason the pass that deleted it wrote). */
function enforcedHere(s: AgentSession): boolean {
  return s.status?.reason === STOP_ENFORCED && s.status.workId === s.spec.workId;
}

/** Rule 5: `stopping` / `stopped` — Stopping until the Pod has ended, then Succeeded or Failed. */
function stoppingVerdict(f: SessionFacts, work: Work): Verdict {
  const pod = f.pod;
  const now = f.now.getTime();
  // Our own deletion (rule 6) is never the session's cause: the stop, or the exit code, is.
  const enforced = enforcedHere(f.session);
  const kept = keptFailure(f.session) ?? (enforced ? undefined : deletedFirst(work, pod));
  if (!pod || pod.finished) {
    // `stopping` with the Pod ended: confirm the stop (the sidecar normally has).
    const confirm: SessionAction[] = work.state === 'stopping' ? [{ kind: 'stopWork', force: true, reason: 'StopConfirmed' }] : [];
    if (kept) return { ...kept, phase: 'Failed', actions: confirm, finished: true };
    if (pod && awaitsSidecarWord(f, work, pod)) return { phase: 'Stopping', reason: 'Stopping', message: `work item ${work.id} is ${work.state}; waiting for the sidecar of ${pod.name} to say how the session ended`, actions: [], requeueAfterMs: 2_000 };
    if (pod) return { ...ended(f, work, pod), actions: confirm };
    return { phase: 'Succeeded', reason: 'Stopped', message: `work item ${work.id} stopped`, actions: confirm, finished: true };
  }
  if (!pod.mainStarted && !pod.mainExit) {
    // Stopped before the session container ran: nothing to drain.
    return { ...(kept ?? { reason: 'Stopped', message: `work item ${work.id} stopped before the session started` }), phase: kept ? 'Failed' : 'Succeeded', actions: [{ kind: 'deletePod' }], finished: true };
  }
  // Rule 6 once the sidecar asked the main container to end; the stop request plus grace plus
  // margin as the backstop when the sidecar cannot say so (it crashed, or its probe is broken).
  const stopAt = ms(work.stop_requested_at) ?? ms(work.stopped_at) ?? ms(f.session.status?.stopRequestedAt) ?? now;
  const giveUp = Math.min(stopAt + f.settings.stopGracePeriodSeconds * 1000 + STOP_MARGIN_MS, enforcedStopAt(f, pod) ?? Infinity);
  const waiting = { reason: 'Stopping', message: `work item ${work.id} is ${work.state}; waiting for session Pod ${pod.name} to end` };
  if (pod.deleting) {
    const ours = enforced ? { reason: STOP_ENFORCED, message: f.session.status?.message ?? '' } : undefined;
    return { ...(kept ?? ours ?? waiting), phase: 'Stopping', actions: [], requeueAfterMs: 2_000, stopRequested: !pod.mainExit };
  }
  if (now >= giveUp) return { ...enforceStop(f, pod), ...(kept ?? {}), stopRequested: !pod.mainExit };
  return { ...(kept ?? waiting), phase: 'Stopping', actions: [], requeueAfterMs: Math.max(1_000, Math.min(giveUp - now, 10_000)), stopRequested: !pod.mainExit };
}

/** How a session whose Pod ended is recorded (ending.ts); the default runner's idle timeout is `Idle` (idle.ts). */
function ended(f: SessionFacts, work: Work, pod: PodView): Verdict {
  return idleEnding(f, work, endedVerdict(f, work, pod));
}

/**
 * The next status: the verdict's phase/reason plus the observed work state, Pod name, lease and
 * timestamps. `lease.lastHeartbeat` is copied only when the phase changes, so a heartbeat alone
 * never causes a status write.
 */
function nextStatus(f: SessionFacts, v: Verdict): AgentSessionStatus {
  const prev = f.session.status ?? {};
  const work = f.work.kind === 'found' ? f.work.work : undefined;
  const next: AgentSessionStatus = { ...prev, phase: v.phase, reason: v.reason, message: v.message.slice(0, 4096) };
  if (work) next.workState = work.state;
  if (f.pod) next.podName = f.pod.name;
  if (f.workspace) next.workspace = { claimName: f.workspace.claimName, phase: f.workspace.phase };
  const phaseChanged = prev.phase !== v.phase;
  if (work?.started_at) {
    next.lease = {
      ...(prev.lease ?? {}),
      claimedAt: work.started_at,
      ...(phaseChanged && work.latest_heartbeat_at ? { lastHeartbeat: work.latest_heartbeat_at } : {}),
      ...(f.settings.leaseTTLSeconds !== undefined ? { ttlSeconds: f.settings.leaseTTLSeconds } : {}),
    };
  }
  const stopAt = work?.stop_requested_at ?? (v.stopRequested ? (work?.stopped_at ?? undefined) : undefined);
  if (stopAt && !prev.stopRequestedAt) next.stopRequestedAt = stopAt;
  // The session's own final stop, seen before its runner exited, was never a stop request.
  if (v.endedItself && !work?.stop_requested_at) delete next.stopRequestedAt;
  if (f.pod?.mainStartedAt && !prev.startedAt) next.startedAt = f.pod.mainStartedAt;
  if (v.finished && !prev.finishedAt) next.finishedAt = work?.stopped_at ?? f.now.toISOString();
  if (!v.finished) delete next.finishedAt;
  return next;
}
