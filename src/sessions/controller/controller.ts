/**
 * The session controller as the operator wires it: the AgentSession reconciler (reconcile.ts) on
 * the generic runtime, the informers it needs (AgentSessions; Pods labelled
 * `agentenv.io/component=session`) and what they enqueue, the environment hooks
 * (`stopEnvironmentSessions`, `activeSessions`) and the per-environment NetworkPolicy apply.
 */
import type { Work } from '../../api/wire.ts';
import { SESSION_PHASES } from '../../crd/agent-session.ts';
import { LABELS } from '../../crd/meta.ts';
import { AGENT_SESSIONS, type AgentEnvironment, type AgentSession } from '../../crd/resources.ts';
import { isNotFound } from '../../k8s/errors.ts';
import { Informer, keyOf, lifecycleChanged, type InformerEvent } from '../../k8s/informer.ts';
import { OwnWrites } from '../../k8s/own-writes.ts';
import { CORE, type KubeRest } from '../../k8s/rest.ts';
import { Controller, type ControllerObserver } from '../../runtime/controller.ts';
import type { Logger } from '../../telemetry/logger.ts';
import type { Pod } from '../objects/pod-types.ts';
import { SESSION_COMPONENT } from '../record/names.ts';
import { holdsCapacity, isAcknowledged } from '../record/status.ts';
import { Acknowledgements } from './acknowledgements.ts';
import { DeletedPods } from './deleted-pods.ts';
import { applyNetworkPolicy } from './network-policy.ts';
import { sessionReconciler, type SessionReconcilerDeps, type SessionRecorder } from './reconcile.ts';

export interface SessionControllerDeps extends Omit<SessionReconcilerDeps, 'podsOf' | 'metrics' | 'acknowledgements'> {
  readonly logger: Logger;
  /** Namespaces to watch; all when empty. */
  readonly namespaces: readonly string[];
  readonly concurrency?: number;
  readonly resyncMs?: number;
  readonly observer?: ControllerObserver;
  readonly metrics?: SessionRecorder & { sessionsByPhase(counts: Readonly<Record<string, number>>): void };
}

export interface SessionController {
  readonly controller: Controller;
  /** Run these with the operator's signal; wait for `synced()` before `controller.run`. */
  readonly informers: ReadonlyArray<Informer<AgentSession> | Informer<Pod>>;
  /** Reconcile one session now. */
  enqueue(namespace: string, name: string): void;
  /**
   * The dispatcher acknowledged the record's work item (`work` is the ack reply): create its Pod
   * now and record the acknowledgement with it (acknowledgements.ts).
   */
  acknowledged(namespace: string, name: string, work: Work, record?: AgentSession): void;
  /** This process acknowledged `workId` for the record `key` and holds the acknowledgement, not yet written (acknowledgements.ts `holds`). */
  acknowledgedHere(key: string, workId: string): boolean;
  /** Sessions of `env` this cluster runs (recorded, not finished). */
  activeSessions(env: AgentEnvironment): number;
  /**
   * For the AgentEnvironment's deletion (SessionsHook.drainBeforeDeletion): gracefully stop every
   * running session of `env` by deleting its AgentSession (whose finalizer stops the work item,
   * waits for the Pod and cleans up). Resolves true once none is left. ObserveOnly environments
   * stop nothing (no API writes): true at once.
   */
  stopEnvironmentSessions(env: AgentEnvironment, signal?: AbortSignal): Promise<boolean>;
  /** Create, update or delete the environment's NetworkPolicy to match its spec (no write when it matches). */
  applyNetworkPolicy(env: AgentEnvironment): Promise<void>;
}

/** Status changes that mean the reconciler has something new to do (its own writes are not among them). */
function needsReconcile(e: InformerEvent<AgentSession>): boolean {
  if (e.type !== 'update') return true;
  return lifecycleChanged(e.old, e.object) || e.old.status?.acknowledgedAt !== e.object.status?.acknowledgedAt || e.old.status?.workId !== e.object.status?.workId;
}

/** One AgentSession informer and one session-Pod informer per watched namespace (all when none is given). */
function sessionInformers(deps: SessionControllerDeps): { sessions: Informer<AgentSession>[]; pods: Informer<Pod>[] } {
  const namespaces = deps.namespaces.length ? deps.namespaces : [undefined];
  const sessions = namespaces.map(
    (namespace) =>
      new Informer<AgentSession>(deps.rest, AGENT_SESSIONS, {
        ...(namespace ? { namespace } : {}),
        logger: deps.logger.child({ component: 'informer', resource: 'agentsessions', namespace }),
      }),
  );
  const pods = namespaces.map(
    (namespace) =>
      new Informer<Pod>(deps.rest, CORE.pods, {
        ...(namespace ? { namespace } : {}),
        labelSelector: `${LABELS.component}=${SESSION_COMPONENT}`,
        logger: deps.logger.child({ component: 'informer', resource: 'pods', namespace }),
      }),
  );
  return { sessions, pods };
}

/** Sessions by phase, recounted from the cache at most once a second (not per reconcile), when something was reconciled. */
function countPhasesEverySecond(sessions: readonly Informer<AgentSession>[], reconciled: { dirty: boolean }, report: (counts: Readonly<Record<string, number>>) => void): void {
  const timer = setInterval(() => {
    if (!reconciled.dirty) return;
    reconciled.dirty = false;
    const counts: Record<string, number> = Object.fromEntries(SESSION_PHASES.map((p) => [p, 0]));
    for (const i of sessions) for (const s of i.list()) counts[s.status?.phase ?? 'Pending'] = (counts[s.status?.phase ?? 'Pending'] ?? 0) + 1;
    report(counts);
  }, 1_000);
  timer.unref();
}

/**
 * Gracefully stop every running session of `env` by deleting its AgentSession (whose finalizer
 * stops the work item, waits for the Pod and cleans up). True once none is left. ObserveOnly
 * environments stop nothing (no API writes): true at once.
 */
async function stopSessions(rest: KubeRest, env: AgentEnvironment, sessions: readonly AgentSession[]): Promise<boolean> {
  if (env.spec.managementPolicy === 'ObserveOnly') return true;
  const live = sessions.filter((s) => holdsCapacity(s) && isAcknowledged(s));
  for (const s of live) {
    if (s.metadata?.deletionTimestamp) continue;
    try {
      await rest.delete(AGENT_SESSIONS, s.metadata?.namespace, s.metadata?.name ?? '');
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }
  return live.length === 0;
}

/** The Pod informers' index: `<namespace>/<AgentSession name>` from the Pod's session label. */
const SESSION_INDEX = 'session';

export function sessionController(deps: SessionControllerDeps): SessionController {
  const { sessions, pods } = sessionInformers(deps);
  // By index: a scan of every cached Pod per pass made a burst quadratic in its size.
  for (const i of pods) i.addIndex(SESSION_INDEX, (p) => (p.metadata?.labels?.[LABELS.session] ? `${p.metadata.namespace ?? ''}/${p.metadata.labels[LABELS.session]}` : undefined));
  const podsOf = (namespace: string, session: string): Pod[] => pods.flatMap((i) => i.byIndex(SESSION_INDEX, `${namespace}/${session}`));
  const deleted = new DeletedPods();
  const acknowledgements = new Acknowledgements();
  const ownWrites = new OwnWrites();
  const reconcile = sessionReconciler({ ...deps, podsOf, deletedPod: (ns, name) => deleted.get(ns, name), acknowledgements, ownWrites, ...(deps.metrics ? { metrics: deps.metrics } : {}) });
  const reconciled = { dirty: false };
  const controller = new Controller({
    name: 'agentsession',
    logger: deps.logger,
    ...(deps.concurrency !== undefined ? { concurrency: deps.concurrency } : {}),
    ...(deps.resyncMs !== undefined ? { resyncMs: deps.resyncMs } : {}),
    ...(deps.observer ? { observer: deps.observer } : {}),
    reconcile: (key, ctx) => reconcile(key, ctx).finally(() => (reconciled.dirty = true)),
  });
  if (deps.metrics) countPhasesEverySecond(sessions, reconciled, (c) => deps.metrics?.sessionsByPhase(c));

  // The events of a pass's own writes (the Pod it created, the status it wrote) cause no pass: that
  // pass ended knowing them (k8s/own-writes.ts); every event of an object with an entry consumes it.
  for (const i of sessions) i.on((e) => ownWrites.observe(AGENT_SESSIONS, e, () => needsReconcile(e) && controller.enqueue(keyOf(e.object))));
  for (const i of pods) {
    i.on((e) => {
      if (e.type === 'delete') deleted.remember(e.object);
      const session = e.object.metadata?.labels?.[LABELS.session];
      if (session) ownWrites.observe(CORE.pods, e, () => controller.enqueue(`${e.object.metadata?.namespace ?? ''}/${session}`));
    });
  }
  const sessionsOf = (env: AgentEnvironment): AgentSession[] =>
    sessions.flatMap((i) => i.list((s) => s.metadata?.namespace === env.metadata?.namespace && s.spec?.environmentRef?.name === env.metadata?.name));

  return {
    controller,
    informers: [...sessions, ...pods],
    enqueue: (namespace, name) => controller.enqueue(`${namespace}/${name}`),
    acknowledged(namespace, name, work, record) {
      acknowledgements.add(`${namespace}/${name}`, work, new Date(), record);
      // The next pass decides on the record the dispatcher created (takeRecord): its add event brings nothing new.
      if (record) ownWrites.wrote(AGENT_SESSIONS, namespace, name, record);
      controller.enqueue(`${namespace}/${name}`);
    },
    acknowledgedHere: (key, workId) => acknowledgements.holds(key, workId),
    activeSessions: (env) => sessionsOf(env).filter(holdsCapacity).length,
    stopEnvironmentSessions: (env) => stopSessions(deps.rest, env, sessionsOf(env)),
    applyNetworkPolicy: (env) => applyNetworkPolicy(deps.rest, env),
  };
}
