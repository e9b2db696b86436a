import { describe, expect, it } from 'vitest';
import type { Work } from '../../api/wire.ts';
import type { AgentSessionStatus } from '../../crd/agent-session.ts';
import { agentSession, endedLeaseLost, exited, iso, at, pending, POD, pullFailure, running, sidecarNotReady, unschedulable, WORK_ID } from '../fixtures.test-support.ts';
import { SIDECAR_EXIT_LEASE_LOST, SIDECAR_EXIT_STOPPED_BY_API } from '../../contract/sidecar.ts';
import type { PodStatus } from '../objects/pod-types.ts';
import { SIDECAR_NAME } from '../objects/pod.ts';
import { decideSession, needsPod, type SessionFacts } from './decide.ts';
import type { ApiSessionFact, WorkspaceSeen } from './workspace.ts';

function work(state: Work['state'], extra: Partial<Work> = {}): Work {
  return { id: WORK_ID, type: 'work', environment_id: 'env_1', data: { id: 'sesn_01', type: 'session' }, state, metadata: {}, created_at: iso(-1), ...extra };
}

const acked: AgentSessionStatus = agentSession().acknowledged().session.status ?? {};
const settings = { startDeadlineSeconds: 60, stopGracePeriodSeconds: 10, leaseTTLSeconds: undefined, sessionTTLSecondsAfterFinished: 300, observeOnly: false, defaultRunner: true };

interface Case {
  rule: string;
  work: SessionFacts['work'];
  pod?: PodStatus | 'deleting' | 'deletedAt5' | undefined;
  status?: AgentSessionStatus;
  now?: number;
  launchRefused?: SessionFacts['launchRefused'];
  observeOnly?: boolean;
  grace?: number;
  workspace?: WorkspaceSeen['phase'];
  launchWaiting?: string;
  apiSession?: ApiSessionFact;
  template?: boolean;
  phase: string;
  reason?: string;
  actions: string[];
}

const found = (w: Work): SessionFacts['work'] => ({ kind: 'found', work: w });

/**
 * A Pod whose main container exited `exitCode` at `finishedSec` and whose sidecar then exited
 * `sidecar` (how it says the lease ended: `SIDECAR_EXIT_*`), or still shows running.
 */
const endedBySidecar = (exitCode: number, finishedSec: number, sidecar: number | 'running'): PodStatus => ({
  ...exited(exitCode, finishedSec, exitCode === 0 ? 'Succeeded' : 'Failed'),
  initContainerStatuses: [
    sidecar === 'running'
      ? { name: SIDECAR_NAME, started: true, ready: false, state: { running: { startedAt: iso(1) } } }
      : { name: SIDECAR_NAME, started: false, ready: false, state: { terminated: { exitCode: sidecar, finishedAt: iso(finishedSec + 0.5) } } },
  ],
});
/** The item stopped at 4 s with no request time (a forced stop: the runner's final one through its sidecar, or the API's). */
/**
 * A warm Pod right after its claim: its sidecar (no startup probe: started since it began waiting,
 * at 1 s, as the runner) restarted its probe server for the claim and is not ready again yet; the
 * kubelet flipped the Pod's Ready to False at `sinceSec` (ContainersReady counts the regular containers only).
 */
const warmSidecarClaiming = (sinceSec: number): PodStatus => ({
  phase: 'Running',
  conditions: [{ type: 'ContainersReady', status: 'True', lastTransitionTime: iso(1) }, { type: 'Ready', status: 'False', lastTransitionTime: iso(sinceSec) }],
  initContainerStatuses: [{ name: SIDECAR_NAME, started: true, ready: false, state: { running: { startedAt: iso(1) } } }],
  containerStatuses: [{ name: 'session', started: true, ready: true, state: { running: { startedAt: iso(1) } } }],
});
const forceStopped = found(work('stopped', { stopped_at: iso(4) }));
/** What the pass that saw the item stopped while the main container still ran recorded. */
const seenStoppedWhileRunning: AgentSessionStatus = { ...acked, phase: 'Stopping', reason: 'Stopping', stopRequestedAt: iso(4), podName: POD };

const cases: Case[] = [
  // launch
  { rule: 'an acknowledged starting item without a Pod gets its Pod', work: found(work('starting')), phase: 'Starting', actions: ['createPod'] },
  { rule: 'a refused Pod create force-stops the item', work: found(work('starting')), launchRefused: { reason: 'PodCreateRefused', message: 'quota' }, phase: 'Failed', reason: 'PodCreateRefused', actions: ['stopWork:force:PodCreateRefused'] },
  { rule: 'a refused template force-stops the item', work: found(work('starting')), launchRefused: { reason: 'TemplateRefused', message: 'privileged' }, phase: 'Failed', reason: 'TemplateRefused', actions: ['stopWork:force:TemplateRefused'] },
  { rule: 'a Pod waiting for its lease claim is Starting', work: found(work('starting')), pod: pending(), now: 5, phase: 'Starting', reason: 'PodStarting', actions: [] },
  { rule: 'an image pull failure force-stops the item and deletes the Pod', work: found(work('starting')), pod: pullFailure(), now: 5, phase: 'Failed', reason: 'ImagePullFailed', actions: ['stopWork:force:ImagePullFailed', 'deletePod'] },
  { rule: 'an unschedulable Pod before the deadline waits', work: found(work('starting')), pod: unschedulable(), now: 30, phase: 'Starting', reason: 'Unschedulable', actions: [] },
  { rule: 'an unschedulable Pod past the deadline force-stops the item', work: found(work('starting')), pod: unschedulable(), now: 61, phase: 'Failed', reason: 'Unschedulable', actions: ['stopWork:force:Unschedulable', 'deletePod'] },
  { rule: 'a Pod never bound to a node at the deadline force-stops the item: Unschedulable', work: found(work('starting')), pod: { phase: 'Pending', reason: 'Unbound' }, now: 60, phase: 'Failed', reason: 'Unschedulable', actions: ['stopWork:force:Unschedulable', 'deletePod'] },
  { rule: 'a lease still unclaimed at the deadline force-stops the item', work: found(work('starting')), pod: pending(), now: 60, phase: 'Failed', reason: 'StartTimeout', actions: ['stopWork:force:StartTimeout', 'deletePod'] },
  { rule: 'a Pod that ended before the claim force-stops the item', work: found(work('starting')), pod: exited(1, 3, 'Failed'), now: 5, phase: 'Failed', reason: 'CrashedBeforeClaim', actions: ['stopWork:force:CrashedBeforeClaim'] },
  // running
  { rule: 'an active item with a running Pod is Running', work: found(work('active', { started_at: iso(2) })), pod: running(), now: 5, phase: 'Running', reason: 'LeaseClaimed', actions: [] },
  { rule: 'an image pull failure of the session container after the claim force-stops the item', work: found(work('active')), pod: { ...pullFailure(), phase: 'Running' }, now: 5, phase: 'Failed', reason: 'ImagePullFailed', actions: ['stopWork:force:ImagePullFailed', 'deletePod'] },
  { rule: 'a session container not started by the deadline force-stops the item', work: found(work('active')), pod: { phase: 'Running' }, now: 60, phase: 'Failed', reason: 'StartTimeout', actions: ['stopWork:force:StartTimeout', 'deletePod'] },
  { rule: 'an active item whose Pod is gone is force-stopped', work: found(work('active')), status: { ...acked, phase: 'Running', podName: POD }, now: 5, phase: 'Failed', reason: 'PodDeleted', actions: ['stopWork:force:PodDeleted'] },
  { rule: 'an active item whose Pod is being deleted is left to its sidecar for now', work: found(work('active')), pod: 'deleting', now: 5, phase: 'Stopping', reason: 'PodDeleted', actions: [] },
  { rule: 'a Pod deleted while active ends Failed PodDeleted once the sidecar stopped the item', work: found(work('stopped', { stopped_at: iso(9) })), status: { ...acked, phase: 'Stopping', reason: 'PodDeleted' }, now: 10, phase: 'Failed', reason: 'PodDeleted', actions: [] },
  { rule: 'a Pod whose deletion came before the stop ends the session as PodDeleted, even when first seen stopped', work: found(work('stopped', { stopped_at: iso(5.5) })), pod: 'deletedAt5', now: 7, phase: 'Stopping', reason: 'PodDeleted', actions: [] },
  { rule: 'a Pod deleted after the item stopped is no failure', work: found(work('stopped', { stopped_at: iso(4) })), pod: 'deletedAt5', now: 7, phase: 'Stopping', reason: 'Stopping', actions: [] },
  { rule: 'an evicted Pod force-stops an active item', work: found(work('active')), pod: { ...exited(137, 4, 'Failed'), reason: 'Evicted' }, now: 5, phase: 'Failed', reason: 'Evicted', actions: ['stopWork:force:Evicted'] },
  { rule: 'a main container that just exited is the sidecar\'s to stop', work: found(work('active')), pod: { ...exited(0, 4), phase: 'Running' }, now: 5, phase: 'Stopping', reason: 'ContainerExited', actions: [] },
  { rule: 'a finished Pod with the item still active is force-stopped, Succeeded by exit code 0', work: found(work('active')), pod: exited(0, 4), now: 5, phase: 'Succeeded', reason: 'Completed', actions: ['stopWork:force:ContainerExited'] },
  // ends
  { rule: 'the main container exiting 0 ends Succeeded Completed', work: found(work('stopped', { stopped_at: iso(4.5) })), pod: exited(0, 4), now: 6, phase: 'Succeeded', reason: 'Completed', actions: [] },
  { rule: 'the main container exiting non-zero ends Failed ContainerFailed', work: found(work('stopped', { stopped_at: iso(4.5) })), pod: exited(3, 4, 'Failed'), now: 6, phase: 'Failed', reason: 'ContainerFailed', actions: [] },
  { rule: 'a graceful remote stop is Stopping while the Pod runs', work: found(work('stopping', { stop_requested_at: iso(5) })), pod: running(), now: 6, phase: 'Stopping', reason: 'Stopping', actions: [] },
  { rule: 'a remote stop before the exit ends Succeeded Stopped', work: found(work('stopped', { stop_requested_at: iso(5), stopped_at: iso(7) })), pod: exited(0, 6), now: 8, phase: 'Succeeded', reason: 'Stopped', actions: [] },
  { rule: 'a stopping item whose Pod ended is confirmed', work: found(work('stopping', { stop_requested_at: iso(5) })), pod: exited(0, 6), now: 8, phase: 'Succeeded', reason: 'Stopped', actions: ['stopWork:force:StopConfirmed'] },
  { rule: 'a Pod that outlives the stop by grace plus margin is deleted, even when its sidecar never said so', work: found(work('stopped', { stopped_at: iso(5) })), pod: running(), now: 5 + 10 + 45, phase: 'Stopping', reason: 'StopEnforced', actions: ['deletePod'] },
  { rule: 'an item stopped before the session container ran deletes its Pod', work: found(work('stopped', { stopped_at: iso(5) })), pod: pending(), now: 6, phase: 'Succeeded', reason: 'Stopped', actions: ['deletePod'] },
  { rule: 'the first failure reason wins after the item stopped', work: found(work('stopped', { stopped_at: iso(5) })), status: { ...acked, phase: 'Failed', reason: 'ImagePullFailed', message: 'x' }, now: 6, phase: 'Failed', reason: 'ImagePullFailed', actions: [] },
  // who stopped an item with no request time: the sidecar's exit code, once it has ended (both orders of observation)
  { rule: 'a session that ended itself, its item seen stopped before the runner exited, ends Succeeded Completed: its sidecar exits 0', work: forceStopped, status: seenStoppedWhileRunning, pod: endedBySidecar(0, 4.5, 0), now: 6, phase: 'Succeeded', reason: 'Completed', actions: [] },
  { rule: 'a session that ended itself, its item first seen stopped after the Pod ended, ends Succeeded Completed', work: forceStopped, pod: endedBySidecar(0, 4.5, 0), now: 6, phase: 'Succeeded', reason: 'Completed', actions: [] },
  { rule: 'a session that ended itself with a failing runner ends Failed ContainerFailed, never Stopped', work: forceStopped, status: seenStoppedWhileRunning, pod: endedBySidecar(1, 4.5, 0), now: 6, phase: 'Failed', reason: 'ContainerFailed', actions: [] },
  { rule: 'a forced remote stop seen before the runner exited ends Succeeded Stopped: its sidecar exits SIDECAR_EXIT_STOPPED_BY_API', work: forceStopped, status: seenStoppedWhileRunning, pod: endedBySidecar(0, 4.5, SIDECAR_EXIT_STOPPED_BY_API), now: 6, phase: 'Succeeded', reason: 'Stopped', actions: [] },
  { rule: 'a forced remote stop first seen after the Pod ended ends Succeeded Stopped: the sidecar\'s exit code says the API stopped it first', work: forceStopped, pod: endedBySidecar(0, 4.5, SIDECAR_EXIT_STOPPED_BY_API), now: 6, phase: 'Succeeded', reason: 'Stopped', actions: [] },
  { rule: 'a requested stop before the exit ends Succeeded Stopped whatever the sidecar\'s exit code', work: found(work('stopped', { stop_requested_at: iso(3), stopped_at: iso(4) })), pod: endedBySidecar(0, 4.5, 0), now: 6, phase: 'Succeeded', reason: 'Stopped', actions: [] },
  { rule: 'a Pod that finished before its sidecar\'s exit code is reported waits for it', work: forceStopped, status: seenStoppedWhileRunning, pod: endedBySidecar(0, 4.5, 'running'), now: 6, phase: 'Stopping', reason: 'Stopping', actions: [] },
  { rule: 'a sidecar exit code not reported SIDECAR_WORD_MS after the exit is not waited for: the stop seen while the runner ran counts, as before', work: forceStopped, status: seenStoppedWhileRunning, pod: endedBySidecar(0, 4.5, 'running'), now: 14.5, phase: 'Succeeded', reason: 'Stopped', actions: [] },
  { rule: 'a sidecar killed (an exit code outside the contract) says nothing: the stop seen while the runner ran counts, as before', work: forceStopped, status: seenStoppedWhileRunning, pod: endedBySidecar(0, 4.5, 137), now: 6, phase: 'Succeeded', reason: 'Stopped', actions: [] },
  { rule: 'a sidecar that lost the lease says nothing about who stopped the item: the stop seen while the runner ran counts', work: forceStopped, status: seenStoppedWhileRunning, pod: endedBySidecar(0, 4.5, SIDECAR_EXIT_LEASE_LOST), now: 6, phase: 'Succeeded', reason: 'Stopped', actions: [] },
  { rule: 'an item stopped whose Pod is gone ends Succeeded Stopped: no sidecar is left to ask', work: forceStopped, status: seenStoppedWhileRunning, now: 6, phase: 'Succeeded', reason: 'Stopped', actions: [] },
  // the enforced stop (rule 6): the sidecar's readiness says "end now"; no signal crosses containers
  { rule: 'a sidecar not ready while the main container runs gives it stopGracePeriodSeconds, with no status change', work: found(work('active', { started_at: iso(2) })), pod: sidecarNotReady(5), status: { ...acked, phase: 'Running', reason: 'LeaseClaimed' }, now: 14.9, phase: 'Running', reason: 'LeaseClaimed', actions: [] },
  { rule: 'a main container still running stopGracePeriodSeconds after its sidecar turned not ready gets its Pod deleted', work: found(work('active', { started_at: iso(2) })), pod: sidecarNotReady(5), now: 15, phase: 'Stopping', reason: 'StopEnforced', actions: ['deletePod'] },
  { rule: 'a remote stop the main container ignores is enforced after the grace, not after the backstop margin', work: found(work('stopping', { stop_requested_at: iso(5) })), pod: sidecarNotReady(6), now: 16, phase: 'Stopping', reason: 'StopEnforced', actions: ['deletePod'] },
  { rule: 'a remote stop is waited for while the grace runs', work: found(work('stopping', { stop_requested_at: iso(5) })), pod: sidecarNotReady(6), now: 15, phase: 'Stopping', reason: 'Stopping', actions: [] },
  { rule: 'the enforced stop waits MIN_ENFORCE_MS even with a zero grace', work: found(work('active')), pod: sidecarNotReady(5), grace: 0, now: 9.9, phase: 'Running', actions: [] },
  { rule: 'the enforced stop with a zero grace comes after MIN_ENFORCE_MS', work: found(work('active')), pod: sidecarNotReady(5), grace: 0, now: 10, phase: 'Stopping', reason: 'StopEnforced', actions: ['deletePod'] },
  { rule: 'the clock never starts before the main container\'s current run (a condition False for another reason)', work: found(work('active')), pod: sidecarNotReady(1, 8), now: 15, phase: 'Running', actions: [] },
  { rule: 'a warm Pod\'s sidecar (no startup probe, started long before its binding) not yet ready again after its claim is given the grace from the Pod\'s Ready=False, not from its start', work: found(work('active', { started_at: iso(20) })), pod: warmSidecarClaiming(19), now: 21, phase: 'Running', actions: [] },
  { rule: 'a warm Pod\'s sidecar still not ready the grace after the Pod\'s Ready=False gets its Pod deleted', work: found(work('active', { started_at: iso(20) })), pod: warmSidecarClaiming(19), now: 29, phase: 'Stopping', reason: 'StopEnforced', actions: ['deletePod'] },
  { rule: 'a sidecar whose startup probe has not passed asks nothing', work: found(work('active')), pod: sidecarNotReady(5, 2, { started: false }), now: 50, phase: 'Running', actions: [] },
  { rule: 'a Pod being deleted by an enforced stop stays StopEnforced, never PodDeleted', work: found(work('active')), pod: 'deleting', status: { ...acked, phase: 'Stopping', reason: 'StopEnforced' }, now: 20, phase: 'Stopping', reason: 'StopEnforced', actions: [] },
  { rule: 'an item its sidecar left active once the enforced-stop Pod is gone is not stopped (the lease may be lost) nor failed as PodDeleted: the API ends the lease', work: found(work('active')), status: { ...acked, phase: 'Stopping', reason: 'StopEnforced', podName: POD }, now: 20, phase: 'Stopping', reason: 'StopEnforced', actions: [] },
  { rule: 'an item whose lease lapsed after an enforced stop is let go, never stopped', work: found(work('queued')), status: { ...acked, phase: 'Stopping', reason: 'StopEnforced', podName: POD }, now: 30, phase: 'Claimed', reason: 'AcknowledgementLapsed', actions: ['markNotAcknowledged'] },
  { rule: 'an enforced stop of a remote stop ends Succeeded Stopped, whatever the killed container\'s exit code', work: found(work('stopped', { stop_requested_at: iso(5), stopped_at: iso(30) })), status: { ...acked, phase: 'Stopping', reason: 'StopEnforced' }, pod: exited(137, 25, 'Failed'), now: 31, phase: 'Succeeded', reason: 'Stopped', actions: [] },
  { rule: 'an enforced stop of our own is not read as a deletion that came first', work: found(work('stopped', { stopped_at: iso(5.5) })), status: { ...acked, phase: 'Stopping', reason: 'StopEnforced' }, pod: 'deletedAt5', now: 7, phase: 'Stopping', reason: 'StopEnforced', actions: [] },
  { rule: 'a stop requested before the Pod\'s deletion is the cause, even when the item stopped after it', work: found(work('stopped', { stop_requested_at: iso(4), stopped_at: iso(6) })), pod: 'deletedAt5', now: 7, phase: 'Stopping', reason: 'Stopping', actions: [] },
  // the lease lost to another worker: never stop it
  { rule: 'a Pod whose sidecar ended having lost the lease stops nothing, even while the API still shows the item active', work: found(work('active', { started_at: iso(2) })), status: { ...acked, phase: 'Running', lease: { claimedAt: iso(2) } }, pod: endedLeaseLost(4), now: 20, phase: 'Stopping', reason: 'LeaseLost', actions: [] },
  { rule: 'a Pod whose sidecar lost the lease lets the record go once the item is back in the queue', work: found(work('queued')), status: { ...acked, phase: 'Stopping', reason: 'LeaseLost', lease: { claimedAt: iso(2) } }, pod: endedLeaseLost(4), now: 30, phase: 'Claimed', reason: 'AcknowledgementLapsed', actions: ['markNotAcknowledged'] },
  { rule: 'an item claimed again since our claim is left alone: the Pod goes, the record lets go', work: found(work('active', { started_at: iso(30) })), status: { ...acked, phase: 'Running', lease: { claimedAt: iso(2) } }, pod: exited(0, 20), now: 31, phase: 'Failed', reason: 'LeaseLost', actions: ['deletePod', 'markNotAcknowledged'] },
  { rule: 'an item re-acknowledged elsewhere after our claim is not force-stopped as a crash', work: found(work('starting')), status: { ...acked, phase: 'Running', lease: { claimedAt: iso(2) } }, pod: exited(0, 20), now: 31, phase: 'Failed', reason: 'LeaseLost', actions: ['deletePod', 'markNotAcknowledged'] },
  { rule: 'a stopping item held by another worker is not confirmed by us', work: found(work('stopping', { started_at: iso(30) })), status: { ...acked, phase: 'Running', lease: { claimedAt: iso(2) } }, now: 31, phase: 'Failed', reason: 'LeaseLost', actions: ['markNotAcknowledged'] },
  // gone, requeued, unknown
  { rule: 'a work item gone from the API ends the session and deletes its Pod', work: { kind: 'gone' }, pod: running(), now: 6, phase: 'Failed', reason: 'WorkGone', actions: ['deletePod'] },
  { rule: 'an item back in the queue is no longer ours', work: found(work('queued')), pod: pending(), now: 6, phase: 'Claimed', reason: 'AcknowledgementLapsed', actions: ['markNotAcknowledged'] },
  { rule: 'an unreadable work item changes nothing', work: { kind: 'unknown', message: 'no credential' }, pod: running(), now: 6, phase: 'Starting', actions: [] },
  // the workspace (workspace.ts) and the idle timeout
  { rule: 'a launch waiting for the session\'s earlier Pod is Starting WaitingForWorkspace', work: found(work('starting')), launchWaiting: 'earlier Pod x', now: 5, phase: 'Starting', reason: 'WaitingForWorkspace', actions: ['createPod'] },
  { rule: 'a workspace claim still Pending at the deadline force-stops the item: WorkspaceUnavailable, the Pod deleted', work: found(work('starting')), pod: pending(), workspace: 'Pending', now: 60, phase: 'Failed', reason: 'WorkspaceUnavailable', actions: ['stopWork:force:WorkspaceUnavailable', 'deletePod'] },
  { rule: 'a workspace claim still Pending before the deadline waits like any start', work: found(work('starting')), pod: pending(), workspace: 'Pending', now: 30, phase: 'Starting', reason: 'PodStarting', actions: [] },
  { rule: 'a bound workspace with the lease unclaimed at the deadline is a StartTimeout, not the workspace\'s fault', work: found(work('starting')), pod: pending(), workspace: 'Bound', now: 60, phase: 'Failed', reason: 'StartTimeout', actions: ['stopWork:force:StartTimeout', 'deletePod'] },
  { rule: 'a runner that exited 0 with no stop requested while its session is idle in the API ends Succeeded Idle', work: found(work('stopped', { stopped_at: iso(5.5) })), pod: exited(0, 6), apiSession: 'idle', workspace: 'Bound', now: 8, phase: 'Succeeded', reason: 'Idle', actions: [] },
  { rule: 'a runner whose own force-stop was seen before its exit is Idle all the same: its sidecar exits 0 (the session ended it)', work: found(work('stopped', { stopped_at: iso(5.5) })), status: { ...acked, phase: 'Stopping', stopRequestedAt: iso(5.5) }, pod: endedBySidecar(0, 6, 0), apiSession: 'idle', now: 8, phase: 'Succeeded', reason: 'Idle', actions: [] },
  { rule: 'a forced remote stop of a session idle in the API is Stopped, not Idle: its sidecar exits SIDECAR_EXIT_STOPPED_BY_API', work: found(work('stopped', { stopped_at: iso(5.5) })), status: { ...acked, phase: 'Stopping', stopRequestedAt: iso(5.5) }, pod: endedBySidecar(0, 6, SIDECAR_EXIT_STOPPED_BY_API), apiSession: 'idle', now: 8, phase: 'Succeeded', reason: 'Stopped', actions: [] },
  { rule: 'a session template\'s runner that exits 0 while its session is idle ends Completed: its idle timeout cannot be told from another clean exit', work: found(work('stopped', { stopped_at: iso(5.5) })), pod: exited(0, 6), apiSession: 'idle', template: true, now: 8, phase: 'Succeeded', reason: 'Completed', actions: [] },
  { rule: 'a remote stop of a session idle in the API is Stopped, not Idle', work: found(work('stopped', { stop_requested_at: iso(5), stopped_at: iso(5.5) })), pod: exited(0, 6), apiSession: 'idle', workspace: 'Bound', now: 8, phase: 'Succeeded', reason: 'Stopped', actions: [] },
  { rule: 'a runner that ended because its session terminated ends Succeeded Completed, not Idle', work: found(work('stopped', { stopped_at: iso(5.5) })), pod: exited(0, 6), apiSession: 'terminated', now: 8, phase: 'Succeeded', reason: 'Completed', actions: [] },
  { rule: 'a runner that failed while its session is idle is a failure, not Idle', work: found(work('stopped', { stopped_at: iso(6.5) })), pod: exited(2, 6, 'Failed'), apiSession: 'idle', now: 8, phase: 'Failed', reason: 'ContainerFailed', actions: [] },
  { rule: 'an Idle ending stays Idle once the Pod is gone (the API session is not read again)', work: found(work('stopped', { stopped_at: iso(5.5) })), status: { ...acked, phase: 'Succeeded', reason: 'Idle', message: 'idle' }, now: 400, phase: 'Succeeded', reason: 'Idle', actions: [] },
  // ObserveOnly
  { rule: 'ObserveOnly records a failure without stopping the item', work: found(work('starting')), pod: pullFailure(), now: 5, observeOnly: true, phase: 'Failed', reason: 'ImagePullFailed', actions: ['deletePod'] },
];

function facts(c: Case): SessionFacts {
  const record = agentSession().withStatus(c.status ?? acked);
  const seen =
    c.pod === 'deleting'
      ? record.withPod(running(), { deletionTimestamp: iso(4) })
      : c.pod === 'deletedAt5'
        ? record.withPod(exited(0, 6, 'Running'), { deletionTimestamp: iso(35), deletionGracePeriodSeconds: 30 })
        : c.pod
          ? record.withPod(c.pod)
          : record;
  return {
    session: seen.session,
    settings: { ...settings, observeOnly: c.observeOnly ?? false, stopGracePeriodSeconds: c.grace ?? settings.stopGracePeriodSeconds, defaultRunner: !c.template },
    work: c.work,
    pod: seen.podView,
    launchRefused: c.launchRefused,
    launchWaiting: c.launchWaiting,
    workspace: c.workspace ? { claimName: 'claim', phase: c.workspace, deleting: false } : undefined,
    apiSession: c.apiSession,
    now: at(c.now ?? 1),
  };
}

const actionName = (a: ReturnType<typeof decideSession>['actions'][number]): string => (a.kind === 'stopWork' ? `stopWork:${a.force ? 'force' : 'graceful'}:${a.reason}` : a.kind);

describe('decideSession', () => {
  it.each(cases)('$rule', (c) => {
    const d = decideSession(facts(c));
    expect(d.status.phase).toBe(c.phase);
    if (c.reason) expect(d.status.reason).toBe(c.reason);
    // Creating the Pod is the launch phase's (needsPod), the other actions the decision's.
    expect([...(needsPod(facts(c)) ? ['createPod'] : []), ...d.actions.map(actionName)]).toEqual(c.actions);
  });

  it('leaves a claimed, not acknowledged record to the dispatcher', () => {
    const d = decideSession({ ...facts(cases[0]!), session: agentSession().withStatus({ phase: 'Claimed' }).session });
    expect(d).toEqual({ status: { phase: 'Claimed' }, actions: [], requeueAfterMs: undefined });
  });

  it('copies the last heartbeat on a phase change only, so heartbeats alone write nothing', () => {
    const first = decideSession(facts({ rule: '', work: found(work('active', { started_at: iso(2), latest_heartbeat_at: iso(3) })), pod: running(), now: 5, phase: '', actions: [] }));
    expect(first.status.lease).toEqual({ claimedAt: iso(2), lastHeartbeat: iso(3) });
    expect(first.event).toMatchObject({ type: 'Normal', reason: 'LeaseClaimed' });
    const again = decideSession({
      ...facts({ rule: '', work: found(work('active', { started_at: iso(2), latest_heartbeat_at: iso(50) })), pod: running(), now: 55, phase: '', actions: [] }),
      session: agentSession().withStatus(first.status).session,
    });
    expect(again.status).toEqual(first.status);
    expect(again.event).toBeUndefined();
  });

  it('records the Pod name, start and finish times and the stop request', () => {
    const d = decideSession(facts({ rule: '', work: found(work('stopped', { stop_requested_at: iso(5), stopped_at: iso(7), started_at: iso(2) })), pod: exited(0, 6), now: 8, phase: '', actions: [] }));
    expect(d.status).toMatchObject({ podName: POD, startedAt: iso(2), finishedAt: iso(7), stopRequestedAt: iso(5), workState: 'stopped' });
  });

  it('records no stop request for a session that ended itself, in either order of observation', () => {
    const whileRunning = decideSession(facts({ rule: '', work: forceStopped, pod: running(), now: 4.2, phase: '', actions: [] }));
    expect(whileRunning.status).toMatchObject({ phase: 'Stopping', stopRequestedAt: iso(4) });
    const afterward = { rule: '', work: forceStopped, pod: endedBySidecar(0, 4.5, 0), now: 6, phase: '', actions: [] };
    const seenBefore = decideSession({ ...facts(afterward), session: agentSession().withStatus(whileRunning.status).session });
    const seenAfter = decideSession(facts(afterward));
    for (const d of [seenBefore, seenAfter]) {
      expect(d.status).toMatchObject({ phase: 'Succeeded', reason: 'Completed', finishedAt: iso(4) });
      expect(d.status.stopRequestedAt).toBeUndefined();
    }
  });

  it('raises a Warning event when it enforces a stop', () => {
    const d = decideSession(facts(cases.find((c) => c.reason === 'StopEnforced' && c.actions.includes('deletePod'))!));
    expect(d.event).toMatchObject({ type: 'Warning', reason: 'StopEnforced', message: expect.stringMatching(/stopGracePeriodSeconds \(10s\)/) });
  });

  it('shows the workspace claim and its phase on the status', () => {
    const d = decideSession(facts({ rule: '', work: found(work('active', { started_at: iso(2) })), pod: running(), workspace: 'Bound', now: 5, phase: '', actions: [] }));
    expect(d.status.workspace).toEqual({ claimName: 'claim', phase: 'Bound' });
  });

  it('raises a Warning event when the workspace is unavailable', () => {
    const d = decideSession(facts(cases.find((c) => c.reason === 'WorkspaceUnavailable')!));
    expect(d.event).toMatchObject({ type: 'Warning', reason: 'WorkspaceUnavailable', message: expect.stringMatching(/claim is Pending, not Bound/) });
  });

  it('raises a Warning event for a failure reason', () => {
    const d = decideSession(facts(cases.find((c) => c.reason === 'ImagePullFailed')!));
    expect(d.event).toMatchObject({ type: 'Warning', reason: 'ImagePullFailed' });
    expect(d.event?.message).toMatch(/ImagePullBackOff: no such image/);
  });
});
