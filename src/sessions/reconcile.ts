/**
 * The AgentSession reconciler. Level-triggered, keyed by namespace/name: every pass re-reads the
 * record, its environment, its Pods and the work item, then runs these phases:
 *
 * 1. gather    — the record (gone → forget), the environment's settings, the session's Pods (cache).
 * 2. finalize  — the record is being deleted: stop the work, wait for the Pod, clean up (cleanup.ts).
 * 3. finalizer — add it first if missing, then return.
 * 4. expire    — a finished record past `sessionTTLSecondsAfterFinished` is deleted.
 * 5. observe   — the work item from the API (environment key, else the organization API key);
 *                a just-acknowledged item gets its Pod first (5a), and the ack reply stands in
 *                for the read (acknowledgements.ts: the acknowledgement is written with the Pod).
 * 6. launch    — build the Pod when the item is `starting` and no Pod exists (decided in status.ts).
 * 7. decide    — pure: status and actions (status.ts); apply the actions, then write the status
 *                only when it changed.
 * 8. tidy      — Pods of earlier work items of the session are deleted.
 */
import type { EnvironmentsClient } from '../api/client.ts';
import { ApiError, AuthenticationError, ConflictError, isFatal, NotFoundError, PermissionDeniedError } from '../api/errors.ts';
import type { Credential } from '../api/transport.ts';
import { AgentEnvironmentSpec } from '../crd/agent-environment.ts';
import { FINISHED_PHASES, type AgentSessionStatus } from '../crd/agent-session.ts';
import { SESSION_FINALIZER } from '../crd/meta.ts';
import { AGENT_ENVIRONMENTS, AGENT_SESSIONS, type AgentEnvironment, type AgentSession } from '../crd/resources.ts';
import { jsonEqual } from '../k8s/conditions.ts';
import { isAlreadyExists, isConflict, isForbidden, isInvalid, isNotFound } from '../k8s/errors.ts';
import type { EventRecorder } from '../k8s/events.ts';
import { addFinalizer, hasFinalizer, removeFinalizer } from '../k8s/finalizer.ts';
import { CORE, type KubeRest } from '../k8s/rest.ts';
import { FORGET, RESYNC, requeueAfter, type Outcome, type ReconcileContext } from '../runtime/controller.ts';
import type { Logger } from '../telemetry/logger.ts';
import { decideFinalize, ttlRemainingMs } from './cleanup.ts';
import { resolveDispatchCredentials } from './credentials.ts';
import { withAcknowledgement, type Acknowledgements } from './acknowledgements.ts';
import { podName, secretName } from './names.ts';
import { viewPod } from './observe.ts';
import { desiredPod, type SidecarSettings } from './pod.ts';
import type { Pod } from './pod-types.ts';
import { isAcknowledged, kubeRecordStore, notAcknowledgedStatus, writeSessionStatus, type StatusPatch } from './record.ts';
import { decideSession, type SessionFacts, type SessionSettings } from './status.ts';

/** The narrow metrics the session reconciler reports (prom-client stays in telemetry). */
export interface SessionRecorder {
  /** claimedAt → Pod created. */
  podCreated(latencyMs: number): void;
  /** claimedAt → lease claimed (item `active`, as observed). */
  claimed(latencyMs: number): void;
  /** A work item stopped by the operator, by reason. */
  stopped(reason: string): void;
  /** Lease outcomes as the operator observes them (claimed, lost). */
  heartbeats(outcome: string, n: number): void;
}

export interface SessionReconcilerDeps {
  readonly rest: KubeRest;
  readonly events: EventRecorder;
  readonly apiClient: (credential: Credential) => Pick<EnvironmentsClient, 'getWork' | 'stopWork'>;
  /** The operator's default organization API key, if configured. */
  readonly defaultCredential: () => Credential | undefined;
  readonly sidecar: SidecarSettings;
  /** API base URL given to session Pods. */
  readonly baseUrl: string;
  /** The Pods of one session (any work item), from the Pod informer. */
  readonly podsOf: (namespace: string, session: string) => Pod[];
  /** The last state of a session Pod deleted in the last minute (the Pod informer's delete events). */
  readonly deletedPod?: (namespace: string, name: string) => Pod | undefined;
  readonly metrics?: SessionRecorder;
  /**
   * The AgentEnvironment from the operator's informer cache. A miss is read from the apiserver (a
   * cache that has not seen a new environment yet must not make it look deleted).
   */
  readonly cachedEnvironment?: (namespace: string, name: string) => AgentEnvironment | undefined;
  /** Acknowledgements this process made and has not written yet (the dispatcher adds them). */
  readonly acknowledgements: Acknowledgements;
  readonly now?: () => Date;
}

type WorkFact = SessionFacts['work'];

export function sessionReconciler(deps: SessionReconcilerDeps) {
  const now = deps.now ?? (() => new Date());
  const store = kubeRecordStore(deps.rest);
  const acknowledgements = deps.acknowledgements;

  return async function reconcile(key: string, ctx: ReconcileContext): Promise<Outcome> {
    // 1. gather
    const slash = key.indexOf('/');
    const namespace = key.slice(0, slash);
    const name = key.slice(slash + 1);
    let session: AgentSession;
    try {
      session = await deps.rest.get<AgentSession>(AGENT_SESSIONS, namespace, name);
    } catch (err) {
      if (isNotFound(err)) {
        acknowledgements.delete(key);
        return FORGET;
      }
      throw err;
    }
    // Decide on the record as it reads with this process's acknowledgement written; `recorded` is
    // what the apiserver holds, the base of the status write.
    const recorded = session.status ?? {};
    const ack = acknowledgements.pending(key, session);
    if (ack) session = withAcknowledgement(session, ack);
    const env = await readEnvironment(namespace, session.spec.environmentRef.name);
    const settings = env ? settingsOf(env) : undefined;
    const pods = deps.podsOf(namespace, name);
    const log = ctx.logger.child({ session: name, workId: session.spec.workId });

    // 2. finalize
    if (session.metadata?.deletionTimestamp) {
      if (!hasFinalizer(session, SESSION_FINALIZER)) return FORGET;
      const work = isAcknowledged(session) ? await readWork(env, session, ctx) : ({ kind: 'unknown', message: 'not acknowledged' } as const);
      const d = decideFinalize({ session, settings, work, pods: pods.map(viewPod), now: now() });
      for (const a of d.actions) {
        if (a.kind === 'stopWork') await stopWork(env, session, a.force, a.reason, log);
        if (a.kind === 'deletePods') await deleteSessionObjects(session, pods, pods.filter((p) => !p.metadata?.deletionTimestamp));
        if (a.kind === 'removeFinalizer') {
          await deleteSessionObjects(session, [], []);
          try {
            await removeFinalizer(deps.rest, AGENT_SESSIONS, session, SESSION_FINALIZER);
          } catch (err) {
            if (!isNotFound(err)) throw err;
          }
          log.info('session finalized');
        }
      }
      return d.requeueAfterMs === undefined ? FORGET : requeueAfter(d.requeueAfterMs);
    }

    // 3. finalizer
    if (!hasFinalizer(session, SESSION_FINALIZER)) {
      await addFinalizer(deps.rest, AGENT_SESSIONS, session, SESSION_FINALIZER);
      return requeueAfter(0);
    }

    // 4. expire
    const ttl = ttlRemainingMs(session, env?.spec.selfHosted?.sessionTTLSecondsAfterFinished ?? 300, now());
    if (ttl !== undefined && ttl <= 0) {
      try {
        // Guarded by the resourceVersion read: a session that just came back with new work is kept.
        await deps.rest.delete(AGENT_SESSIONS, namespace, name, { preconditions: { uid: session.metadata?.uid ?? '', resourceVersion: session.metadata?.resourceVersion ?? '' } });
        log.info('finished session expired; deleted');
      } catch (err) {
        if (!isNotFound(err) && !isConflict(err)) throw err;
      }
      return requeueAfter(0);
    }

    const currentPod = podName(name, session.spec.workId);
    // 5a. Launch first when the dispatcher has just acknowledged the item (phase Starting, no Pod
    // seen yet): the acknowledgement is a fresh enough reading of the item, and the Pod should
    // not wait for a credential read and an API round trip. Should the item have stopped in the
    // meantime, the decision below ends the Pod (its sidecar finds nothing to claim).
    let launched: Launch | undefined;
    if (env && isAcknowledged(session) && session.status?.phase === 'Starting' && !session.status.podName && !pods.some((p) => p.metadata?.name === currentPod)) {
      launched = await launch(env, session, log);
    }

    // 5b. observe (the ack reply of a launch just made is a fresh enough reading)
    const work: WorkFact = ack && launched ? { kind: 'found', work: ack.work } : isAcknowledged(session) ? await readWork(env, session, ctx) : { kind: 'unknown', message: 'not acknowledged' };
    // The cache may lag behind a Pod just created; a missing Pod is confirmed by a read before
    // anything is decided on its absence (an active item is force-stopped when its Pod is gone).
    const pod = pods.find((p) => p.metadata?.name === currentPod) ?? launched?.pod ?? (work.kind === 'found' ? await readPod(namespace, currentPod) : undefined);
    // A Pod deleted between two passes is gone from the cache, but its last state still tells how a
    // stopped item ended (deleted while running: PodDeleted, not a plain stop). A deleted Pod has ended.
    // Only for a session not recorded as finished: an ending once written is not decided again.
    const unfinished = !FINISHED_PHASES.includes(session.status?.phase ?? 'Pending');
    const deleted = !pod && unfinished && work.kind === 'found' && work.work.state === 'stopped' ? deps.deletedPod?.(namespace, currentPod) : undefined;
    const facts: SessionFacts = {
      session,
      settings: settings ?? { startDeadlineSeconds: 300, stopGracePeriodSeconds: 30, leaseTTLSeconds: undefined, observeOnly: true },
      work,
      pod: pod ? viewPod(pod) : deleted ? { ...viewPod(deleted), finished: true } : undefined,
      now: now(),
    };

    // 6–7. decide, launching when asked to (a refused launch is decided on again).
    let decision = decideSession(launched?.refused ? { ...facts, launchRefused: launched.refused } : facts);
    if (decision.actions.some((a) => a.kind === 'createPod') && !launched) {
      launched = env ? await launch(env, session, log) : { refused: { reason: 'InvalidTemplate', message: `AgentEnvironment ${session.spec.environmentRef.name} not found` } };
      if (launched.refused) decision = decideSession({ ...facts, launchRefused: launched.refused });
      else if (launched.pod) decision = decideSession({ ...facts, pod: viewPod(launched.pod) });
    }
    for (const a of decision.actions) {
      if (a.kind === 'stopWork') await stopWork(env, session, a.force, a.reason, log);
      if (a.kind === 'deletePod' && pod && !pod.metadata?.deletionTimestamp) await deletePod(pod);
      if (a.kind === 'markNotAcknowledged') {
        const lost = decision.status.reason === 'LeaseLost';
        const state = work.kind === 'found' ? work.work.state : undefined;
        await writeSessionStatus(store, session, notAcknowledgedStatus(session, state, lost ? 'LeaseLost' : 'AcknowledgementLapsed', a.message, now()), sameItem(session, ack !== undefined));
        acknowledgements.delete(key);
        deps.events.record(session, 'Warning', lost ? 'LeaseLost' : 'AcknowledgementLapsed', a.message);
        deps.metrics?.heartbeats(lost ? 'lease_lost' : 'lease_lapsed', 1);
        return requeueAfter(0);
      }
    }
    const prev = session.status ?? {};
    if (!jsonEqual(recorded, decision.status)) {
      await writeSessionStatus(store, session, statusPatch(recorded, decision.status), sameItem(session, ack !== undefined));
      acknowledgements.delete(key);
      // A launch records its own event (PodCreated); the Normal transition it causes adds nothing.
      if (decision.event && !(launched?.pod && decision.event.type === 'Normal')) deps.events.record(session, decision.event.type, decision.event.reason, decision.event.message);
      if (decision.status.phase === 'Running' && prev.phase !== 'Running' && work.kind === 'found') {
        const claimedAt = Date.parse(session.spec.claimedAt);
        const startedAt = Date.parse(work.work.started_at ?? '');
        if (!Number.isNaN(claimedAt) && !Number.isNaN(startedAt)) deps.metrics?.claimed(Math.max(0, startedAt - claimedAt));
        deps.metrics?.heartbeats('claimed', 1);
      }
      log.debug({ phase: decision.status.phase, reason: decision.status.reason }, 'session status changed');
    }

    // 8. tidy
    const stale = pods.filter((p) => p.metadata?.name !== currentPod && !p.metadata?.deletionTimestamp);
    if (stale.length) await deleteSessionObjects(session, stale, stale);

    if (decision.requeueAfterMs !== undefined) return requeueAfter(decision.requeueAfterMs);
    const left = ttlRemainingMs({ ...session, status: decision.status }, env?.spec.selfHosted?.sessionTTLSecondsAfterFinished ?? 300, now());
    return left !== undefined ? requeueAfter(Math.max(0, left) + 100) : RESYNC;
  };

  async function readEnvironment(namespace: string, name: string): Promise<AgentEnvironment | undefined> {
    try {
      const env = deps.cachedEnvironment?.(namespace, name) ?? (await deps.rest.get<AgentEnvironment>(AGENT_ENVIRONMENTS, namespace, name));
      const spec = AgentEnvironmentSpec.safeParse(env.spec);
      return spec.success ? { ...env, spec: spec.data } : undefined;
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  async function api(env: AgentEnvironment | undefined): Promise<ReturnType<SessionReconcilerDeps['apiClient']> | string> {
    if (!env) return 'the AgentEnvironment is gone';
    const cred = await resolveDispatchCredentials(deps.rest, env, deps.defaultCredential);
    return cred.ok ? deps.apiClient(cred.credentials.poll) : cred.message;
  }

  /** The work item: found, gone (404), or unknown (no credential, refused key). Transient API failures throw (backoff). */
  async function readWork(env: AgentEnvironment | undefined, session: AgentSession, ctx: ReconcileContext): Promise<WorkFact> {
    const client = await api(env);
    if (typeof client === 'string') return { kind: 'unknown', message: client };
    try {
      return { kind: 'found', work: await client.getWork(session.spec.environmentId, session.spec.workId, { signal: ctx.signal }) };
    } catch (err) {
      if (err instanceof NotFoundError) return { kind: 'gone' };
      if (err instanceof AuthenticationError || err instanceof PermissionDeniedError || (err instanceof ApiError && isFatal(err))) {
        return { kind: 'unknown', message: `the API refused to read work item ${session.spec.workId}: ${err.message}` };
      }
      throw err;
    }
  }

  /** Stop the work item. 409 here means it is already stopped; 404 that it is gone: both done. */
  async function stopWork(env: AgentEnvironment | undefined, session: AgentSession, force: boolean, reason: string, log: Logger): Promise<void> {
    const client = await api(env);
    if (typeof client === 'string') {
      log.warn({ reason }, `cannot stop the work item: ${client}`);
      return;
    }
    try {
      await client.stopWork(session.spec.environmentId, session.spec.workId, { force });
      deps.metrics?.stopped(reason);
      log.info({ force, reason }, 'stopped the work item');
    } catch (err) {
      if (err instanceof ConflictError || err instanceof NotFoundError) return;
      throw err;
    }
  }

  /**
   * Create the Pod of the current work item: the Pod created, or why it was refused. AlreadyExists
   * is success (neither: the cache shows the Pod soon). A per-item Secret that is missing is not
   * looked for here: the hand-off wrote it before the ack, and a Pod whose Secret was deleted since
   * never starts, which `startDeadlineSeconds` ends with a force-stop.
   */
  async function launch(env: AgentEnvironment, session: AgentSession, log: Logger): Promise<Launch> {
    const namespace = session.metadata?.namespace ?? '';
    const build = desiredPod({ session, env, sidecar: deps.sidecar, baseUrl: deps.baseUrl });
    if (!build.ok) return { refused: { reason: build.reason, message: build.message } };
    let pod: Pod;
    try {
      pod = await deps.rest.create<Pod>(CORE.pods, namespace, build.pod);
      const claimedAt = Date.parse(session.spec.claimedAt);
      if (!Number.isNaN(claimedAt)) deps.metrics?.podCreated(Math.max(0, now().getTime() - claimedAt));
      deps.events.record(session, 'Normal', 'PodCreated', `created session Pod ${build.pod.metadata?.name}`);
      log.info({ pod: build.pod.metadata?.name }, 'created the session Pod');
    } catch (err) {
      if (isAlreadyExists(err)) return {};
      // Admission (Pod Security, quota, webhooks) or validation refused it: retrying cannot help.
      if (isForbidden(err) || isInvalid(err)) return { refused: { reason: 'PodCreateRefused', message: err instanceof Error ? err.message : String(err) } };
      throw err;
    }
    return { pod };
  }

  async function readPod(namespace: string, name: string): Promise<Pod | undefined> {
    try {
      return await deps.rest.get<Pod>(CORE.pods, namespace, name);
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  async function deletePod(pod: Pod): Promise<void> {
    try {
      await deps.rest.delete(CORE.pods, pod.metadata?.namespace, pod.metadata?.name ?? '', { preconditions: { uid: pod.metadata?.uid ?? '' } });
    } catch (err) {
      // Conflict: the uid precondition failed, i.e. this Pod is already gone and another took its name.
      if (!isNotFound(err) && !isConflict(err)) throw err;
    }
  }

  /**
   * Delete Pods and their per-item Secrets explicitly (not relying on garbage-collection timing).
   * With no Pods given, deletes the current work item's Secret. A Secret the operator may not
   * delete is left to garbage collection (it is owned by the AgentSession).
   */
  async function deleteSessionObjects(session: AgentSession, secretsOf: readonly Pod[], podsToDelete: readonly Pod[]): Promise<void> {
    for (const p of podsToDelete) await deletePod(p);
    const names = secretsOf.length ? secretsOf.map((p) => p.metadata?.name ?? '') : [secretName(session.metadata?.name ?? '', session.spec.workId)];
    for (const n of names) {
      try {
        await deps.rest.delete(CORE.secrets, session.metadata?.namespace, n);
      } catch (err) {
        if (!isNotFound(err) && !isForbidden(err)) throw err;
      }
    }
  }
}

/** The environment settings a session decision needs, with the CRD's defaults. */
export function settingsOf(env: AgentEnvironment): SessionSettings {
  const sh = env.spec.selfHosted;
  return {
    startDeadlineSeconds: sh?.startDeadlineSeconds ?? 300,
    stopGracePeriodSeconds: sh?.stopGracePeriodSeconds ?? 30,
    leaseTTLSeconds: sh?.leaseTTLSeconds,
    observeOnly: env.spec.managementPolicy === 'ObserveOnly',
  };
}

/** What a launch did: created the Pod, found it existing (neither field), or was refused. */
interface Launch {
  readonly pod?: Pod;
  readonly refused?: SessionFacts['launchRefused'];
}

/**
 * A status write applies only while the record still stands for the same acknowledged item (or
 * the same item whose acknowledgement this process holds and the write records).
 */
const sameItem = (session: AgentSession, acknowledgedHere: boolean) => (fresh: AgentSession): boolean =>
  fresh.spec.workId === session.spec.workId && (acknowledgedHere || isAcknowledged(fresh));

/** The merge patch from `prev` to `next` (removed fields become null). */
export function statusPatch(prev: AgentSessionStatus, next: AgentSessionStatus): StatusPatch {
  const patch: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(next)) if (!jsonEqual((prev as Record<string, unknown>)[k], v)) patch[k] = v;
  for (const k of Object.keys(prev)) if (!(k in next)) patch[k] = null;
  return patch as StatusPatch;
}
