/**
 * The phases of an AgentSession pass (reconcile.ts lists them in order), each a small function over
 * the scope gathered first (scope.ts). A phase returns an outcome to end the pass, or what it
 * observed for the phases after it. Decisions are pure (decide.ts, finalize.ts); the phases apply them.
 */
import { FINISHED_PHASES } from '../../crd/agent-session.ts';
import { AGENT_SESSIONS, type AgentSession } from '../../crd/resources.ts';
import { jsonEqual } from '../../k8s/conditions.ts';
import { isConflict, isNotFound } from '../../k8s/errors.ts';
import type { Cleanup } from '../../k8s/finalizer.ts';
import { RESYNC, requeueAfter, type Outcome } from '../../runtime/controller.ts';
import type { Pod } from '../objects/pod-types.ts';
import { viewPod, type PodView } from '../objects/pod-view.ts';
import { writeSessionStatus } from '../record/record.ts';
import { isAcknowledged, notAcknowledgedStatus, statusPatch } from '../record/status.ts';
import { createPod, deletePod, deleteSessionObjects, readPod, type Launch } from './children.ts';
import { needsPod, type SessionDecision, type SessionFacts } from './decide.ts';
import type { ReconcilerDeps } from './deps.ts';
import { decideFinalize, ttlRemainingMs } from './finalize.ts';
import type { SessionScope } from './scope.ts';
import type { SessionStart } from '../../telemetry/metrics.ts';
import { NOT_ACKNOWLEDGED, readApiSession, readWork, stopWork, type WorkFact } from './work-item.ts';
import { createClaim, launchGate, observeWorkspace, releaseWorkspace, retention, type ApiSessionFact } from './workspace.ts';

/** The current work item's Pod as this pass sees it: the object (for deleting it) and its reading. */
export interface PodSeen {
  readonly pod: Pod | undefined;
  readonly view: PodView | undefined;
}

const cachedPod = (scope: SessionScope): Pod | undefined => scope.pods.find((p) => p.metadata?.name === scope.podName && isThePod(scope, p));
/** A bound warm Pod is the one of that name AND uid: a later Pod may take a deleted one's name. */
const isThePod = (scope: SessionScope, p: Pod | undefined): boolean => !scope.session.spec.warmPod || p?.metadata?.uid === scope.session.spec.warmPod.uid;

/**
 * Finalize (the finalizer's cleanup): the record is being deleted — stop the work, wait for the
 * Pod, clean up (finalize.ts decides; the flow is documented there). Done once nothing runs and
 * the session's objects are deleted; the helper then removes the finalizer.
 */
export async function finalize(deps: ReconcilerDeps, scope: SessionScope): Promise<Cleanup<Outcome>> {
  const { session, pods, log } = scope;
  const work = isAcknowledged(session) ? await readWork(deps, scope.env, session, scope.signal) : NOT_ACKNOWLEDGED;
  const d = decideFinalize({ session, settings: scope.env ? scope.settings : undefined, work, pods: pods.map(viewPod), now: scope.now });
  for (const a of d.actions) {
    if (a.kind === 'stopWork') await stopWork(deps, scope.env, session, a, log);
    if (a.kind === 'deletePods') await deleteSessionObjects(deps, session, pods, pods.filter((p) => !p.metadata?.deletionTimestamp));
    if (a.kind === 'removeFinalizer') {
      await deleteSessionObjects(deps, session, [], []);
      await releaseWorkspace(deps, session);
    }
  }
  return d.requeueAfterMs === undefined ? { done: true } : { done: false, retry: requeueAfter(d.requeueAfterMs) };
}

/**
 * Expire: a finished record past `sessionTTLSecondsAfterFinished` is deleted. With a workspace the
 * record is the workspace's owner and is kept by the retention rule instead (workspace.ts, rule 4);
 * past the TTL only its finished Pods and Secrets go.
 */
export async function expire(deps: ReconcilerDeps, scope: SessionScope): Promise<Outcome | undefined> {
  const ttl = ttlRemainingMs(scope.session, scope.settings.sessionTTLSecondsAfterFinished, scope.now);
  const workspace = scope.settings.workspace;
  if (workspace) {
    if (ttl === undefined) return undefined;
    if (ttl <= 0 && scope.pods.length) await deleteSessionObjects(deps, scope.session, scope.pods, scope.pods.filter((p) => !p.metadata?.deletionTimestamp));
    const apiSession = await readApiSession(deps, scope);
    const r = retention({ session: scope.session, workspace, apiSession, now: scope.now });
    if (!r.expire) return r.recheckMs === undefined ? undefined : requeueAfter(ttl > 0 ? Math.min(ttl + 100, r.recheckMs) : r.recheckMs);
    scope.log.info({ reason: r.reason }, 'session workspace retention ended');
  } else if (ttl === undefined || ttl > 0) {
    return undefined;
  }
  const { metadata } = scope.session;
  try {
    // Guarded by the resourceVersion read: a session that just came back with new work is kept.
    await deps.rest.delete(AGENT_SESSIONS, scope.namespace, scope.name, { preconditions: { uid: metadata?.uid ?? '', resourceVersion: metadata?.resourceVersion ?? '' } });
    scope.log.info('finished session expired; deleted');
  } catch (err) {
    if (!isNotFound(err) && !isConflict(err)) throw err;
  }
  return requeueAfter(0);
}

/**
 * The session in the API, once the current item's main container has ended and the record is
 * not finished yet: an `idle` session means the runner ended on its idle timeout (decide.ts, `Idle`).
 */
export async function observeApiSession(deps: ReconcilerDeps, scope: SessionScope, seen: PodSeen): Promise<ApiSessionFact | undefined> {
  const view = seen.view;
  if (!view || !(view.finished || view.mainExit)) return undefined;
  // Needed for the default runner's Idle, and for a workspace's retention (a session terminated as its item ended).
  if (!scope.settings.defaultRunner && !scope.settings.workspace) return undefined;
  if (FINISHED_PHASES.includes(scope.session.status?.phase ?? 'Pending') && scope.session.status?.workId === scope.session.spec.workId) return undefined;
  return readApiSession(deps, scope);
}

/**
 * Observe the work item in the API (environment key, else the organization API key). The dispatcher's
 * ack reply, held by this process, stands in for the read when no Pod is seen yet: it is a fresh
 * enough reading, and the Pod should not wait for a credential read and an API round trip (should
 * the item have stopped meanwhile, the decision ends the Pod: its sidecar finds nothing to claim).
 */
export async function observeWork(deps: ReconcilerDeps, scope: SessionScope): Promise<WorkFact> {
  if (!isAcknowledged(scope.session)) return NOT_ACKNOWLEDGED;
  if (scope.ack && scope.env && !cachedPod(scope)) return { kind: 'found', work: scope.ack.work };
  return readWork(deps, scope.env, scope.session, scope.signal);
}

/**
 * Launch: the only place a Pod is created — when the item is `starting` and no Pod is seen
 * ({@link needsPod}). With a workspace, its claim is created first, and the Pod waits while an
 * earlier Pod of the session still exists (workspace.ts, rules 1–2).
 */
export async function launch(deps: ReconcilerDeps, scope: SessionScope, work: WorkFact): Promise<Launch | undefined> {
  const cached = cachedPod(scope);
  if (!needsPod({ session: scope.session, work, pod: cached ? viewPod(cached) : undefined })) return undefined;
  if (!scope.env) return { refused: { reason: 'InvalidTemplate', message: `AgentEnvironment ${scope.session.spec.environmentRef.name} not found` } };
  // A bound warm Pod is never replaced by a created one: two Pods would race for the lease. One
  // that is gone before its claim ends at the start deadline (StartTimeout), force-stopped.
  if (scope.session.spec.warmPod) return undefined;
  const workspace = scope.settings.workspace;
  if (workspace) {
    const seen = await observeWorkspace(deps, scope.session, workspace);
    const earlierPods = scope.pods.filter((p) => p.metadata?.name !== scope.podName).map((p) => p.metadata?.name ?? '');
    const gate = launchGate({ seen, earlierPods });
    if (gate.kind === 'wait') return { waiting: gate.message };
    if (gate.kind === 'createClaim') await createClaim(deps, scope.session, workspace);
  }
  return createPod(deps, scope.env, scope.session, scope.log);
}

/**
 * Observe the current work item's Pod: the cache, else the Pod just created, else a read — the
 * cache may lag behind a Pod just created, and a missing Pod is confirmed before anything is
 * decided on its absence (an active item is force-stopped when its Pod is gone). A Pod deleted
 * between two passes is gone from the cache, but its last state still tells how a stopped item
 * ended (deleted while running: PodDeleted, not a plain stop); a deleted Pod has ended. Only for a
 * session not recorded as finished: an ending once written is not decided again.
 */
export async function observePod(deps: ReconcilerDeps, scope: SessionScope, work: WorkFact, launched: Launch | undefined): Promise<PodSeen> {
  const read = cachedPod(scope) ?? launched?.pod ?? (work.kind === 'found' ? await readPod(deps, scope.namespace, scope.podName) : undefined);
  const pod = isThePod(scope, read) ? read : undefined;
  if (pod) return { pod, view: viewPod(pod) };
  const unfinished = !FINISHED_PHASES.includes(scope.session.status?.phase ?? 'Pending');
  const deleted = unfinished && work.kind === 'found' && work.work.state === 'stopped' ? deps.deletedPod?.(scope.namespace, scope.podName) : undefined;
  return { pod: undefined, view: deleted ? { ...viewPod(deleted), finished: true } : undefined };
}

/** What the decision is made on. */
export function sessionFacts(scope: SessionScope, work: WorkFact, seen: PodSeen, launched: Launch | undefined): SessionFacts {
  return { session: scope.session, settings: scope.settings, work, pod: seen.view, launchRefused: launched?.refused, launchWaiting: launched?.waiting, now: scope.now };
}

/**
 * Apply the decision: its actions first, then the status — the record letting go of an item that is
 * no longer ours, or the decided status, written only when it differs from the stored one.
 */
export async function applyDecision(deps: ReconcilerDeps, scope: SessionScope, d: SessionDecision, work: WorkFact, seen: PodSeen, launched: Launch | undefined): Promise<Outcome> {
  for (const a of d.actions) {
    if (a.kind === 'stopWork') await stopWork(deps, scope.env, scope.session, a, scope.log);
    if (a.kind === 'deletePod' && seen.pod && !seen.pod.metadata?.deletionTimestamp) await deletePod(deps, seen.pod);
  }
  const letGo = d.actions.find((a) => a.kind === 'markNotAcknowledged');
  if (letGo) {
    await markNotAcknowledged(deps, scope, d, work, letGo.message);
    return requeueAfter(0);
  }
  await writeStatus(deps, scope, d, work, seen, launched);
  return nextPass(deps, scope, d);
}

/**
 * The item went back to the queue, or its lease was claimed elsewhere: the record no longer holds
 * it. It is marked not acknowledged (so nothing here stops it), and the settle pass acknowledges
 * it again or releases it.
 */
async function markNotAcknowledged(deps: ReconcilerDeps, scope: SessionScope, d: SessionDecision, work: WorkFact, message: string): Promise<void> {
  const { session } = scope;
  const reason = d.status.reason === 'LeaseLost' ? 'LeaseLost' : 'AcknowledgementLapsed';
  const state = work.kind === 'found' ? work.work.state : undefined;
  await writeSessionStatus(deps.store, scope.record, notAcknowledgedStatus(session, state, reason, message, deps.now()), sameItem(scope));
  deps.acknowledgements.delete(scope.key);
  deps.events.record(session, 'Warning', reason, message);
  deps.metrics?.heartbeats(reason === 'LeaseLost' ? 'lease_lost' : 'lease_lapsed', 1);
}

/** Write the decided status when it differs from the stored one (with the held acknowledgement, which it now records). */
async function writeStatus(deps: ReconcilerDeps, scope: SessionScope, d: SessionDecision, work: WorkFact, seen: PodSeen, launched: Launch | undefined): Promise<void> {
  const { session } = scope;
  const stored = scope.record.status ?? {};
  if (jsonEqual(stored, d.status)) return;
  // The pass ends on this status (nextPass): its update event brings nothing new (k8s/own-writes.ts).
  deps.ownWrites?.writing(AGENT_SESSIONS, scope.namespace, scope.name);
  let written: AgentSession | undefined;
  try {
    written = await writeSessionStatus(deps.store, scope.record, statusPatch(stored, d.status), sameItem(scope));
  } finally {
    deps.ownWrites?.wrote(AGENT_SESSIONS, scope.namespace, scope.name, written);
  }
  deps.acknowledgements.delete(scope.key);
  // A launch records its own event (PodCreated); the Normal transition it causes adds nothing.
  if (d.event && !(launched?.pod && d.event.type === 'Normal')) deps.events.record(session, d.event.type, d.event.reason, d.event.message);
  if (d.becameRunning && work.kind === 'found') {
    const claimedAt = Date.parse(session.spec.claimedAt);
    const startedAt = Date.parse(work.work.started_at ?? '');
    const start: SessionStart = scope.session.spec.warmPod ? 'warm' : 'cold';
    if (!Number.isNaN(claimedAt) && !Number.isNaN(startedAt)) deps.metrics?.claimed(Math.max(0, startedAt - claimedAt), start);
    const enqueuedAt = Date.parse(work.work.created_at);
    if (!Number.isNaN(enqueuedAt) && !Number.isNaN(startedAt)) {
      deps.metrics?.sessionStarted?.({ namespace: scope.namespace, name: session.spec.environmentRef.name }, start, Math.max(0, startedAt - enqueuedAt));
    }
    deps.metrics?.heartbeats('claimed', 1);
  }
  scope.log.debug({ phase: d.status.phase, reason: d.status.reason }, 'session status changed');
}

/** When to look again: as decided, else when a finished session expires, else the slow resync. */
function nextPass(deps: ReconcilerDeps, scope: SessionScope, d: SessionDecision): Outcome {
  if (d.requeueAfterMs !== undefined) return requeueAfter(d.requeueAfterMs);
  const left = ttlRemainingMs({ ...scope.session, status: d.status }, scope.settings.sessionTTLSecondsAfterFinished, deps.now());
  return left !== undefined ? requeueAfter(Math.max(0, left) + 100) : RESYNC;
}

/** Tidy: Pods of earlier work items of the session are deleted, with their Secrets. */
export async function tidy(deps: ReconcilerDeps, scope: SessionScope): Promise<void> {
  const stale = scope.pods.filter((p) => p.metadata?.name !== scope.podName && !p.metadata?.deletionTimestamp);
  if (stale.length) await deleteSessionObjects(deps, scope.session, stale, stale);
}

/**
 * A status write applies only while the record still stands for the same acknowledged item (or
 * the same item whose acknowledgement this process holds and the write records).
 */
const sameItem = (scope: SessionScope) => (fresh: AgentSession): boolean =>
  fresh.spec.workId === scope.session.spec.workId && (scope.ack !== undefined || isAcknowledged(fresh));
