/**
 * The session controller as the operator wires it: the AgentSession reconciler on the generic
 * runtime, the informers it needs (AgentSessions; Pods labelled `agentenv.io/component=session`),
 * the environment hooks (`stopEnvironmentSessions`, `activeSessions`) and the per-environment
 * NetworkPolicy apply.
 */
import type { Work } from '../../api/wire.ts';
import { FINISHED_PHASES, SESSION_PHASES } from '../../crd/agent-session.ts';
import { LABELS } from '../../crd/meta.ts';
import { AGENT_SESSIONS, type AgentEnvironment, type AgentSession } from '../../crd/resources.ts';
import { jsonEqual } from '../../k8s/conditions.ts';
import { isNotFound } from '../../k8s/errors.ts';
import { Informer, keyOf, lifecycleChanged, type InformerEvent } from '../../k8s/informer.ts';
import { CORE } from '../../k8s/rest.ts';
import { Controller, type ControllerObserver } from '../../runtime/controller.ts';
import type { Logger } from '../../telemetry/logger.ts';
import { labelValue, SESSION_COMPONENT } from '../record/names.ts';
import { desiredNetworkPolicy, networkPolicyName, type NetworkPolicy } from '../objects/network-policy.ts';
import type { Pod } from '../objects/pod-types.ts';
import { Acknowledgements } from './acknowledgements.ts';
import { isAcknowledged } from '../record/status.ts';
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
  acknowledged(namespace: string, name: string, work: Work): void;
  /** An acknowledgement of this record is held in memory, not yet written (the settle pass skips it). */
  acknowledgementPending(key: string): boolean;
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

const DELETED_POD_MEMORY_MS = 60_000;

/** Status changes that mean the reconciler has something new to do (its own writes are not among them). */
function needsReconcile(e: InformerEvent<AgentSession>): boolean {
  if (e.type !== 'update') return true;
  return lifecycleChanged(e.old, e.object) || e.old.status?.acknowledgedAt !== e.object.status?.acknowledgedAt || e.old.status?.workId !== e.object.status?.workId;
}

export function sessionController(deps: SessionControllerDeps): SessionController {
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
  const podsOf = (namespace: string, session: string): Pod[] =>
    pods.flatMap((i) => i.list((p) => p.metadata?.namespace === namespace && p.metadata?.labels?.[LABELS.session] === session));
  // Last states of deleted session Pods, for a minute: a pass that runs after a Pod is gone still
  // sees how it ended (reconcile.ts). Pruned on each delete, so it holds at most a minute of deletions.
  const deleted = new Map<string, { pod: Pod; at: number }>();
  const rememberDeleted = (pod: Pod): void => {
    const now = Date.now();
    for (const [k, v] of deleted) if (now - v.at > DELETED_POD_MEMORY_MS) deleted.delete(k);
    deleted.set(`${pod.metadata?.namespace ?? ''}/${pod.metadata?.name ?? ''}`, { pod, at: now });
  };
  const deletedPod = (namespace: string, name: string): Pod | undefined => {
    const e = deleted.get(`${namespace}/${name}`);
    return e && Date.now() - e.at <= DELETED_POD_MEMORY_MS ? e.pod : undefined;
  };

  let phasesDirty = false;
  const acknowledgements = new Acknowledgements();
  const reconcile = sessionReconciler({ ...deps, podsOf, deletedPod, acknowledgements, ...(deps.metrics ? { metrics: deps.metrics } : {}) });
  const controller = new Controller({
    name: 'agentsession',
    logger: deps.logger,
    ...(deps.concurrency !== undefined ? { concurrency: deps.concurrency } : {}),
    ...(deps.resyncMs !== undefined ? { resyncMs: deps.resyncMs } : {}),
    ...(deps.observer ? { observer: deps.observer } : {}),
    reconcile: async (key, ctx) => {
      try {
        return await reconcile(key, ctx);
      } finally {
        phasesDirty = true;
      }
    },
  });

  // Sessions by phase, recounted from the cache at most once a second (not per reconcile).
  if (deps.metrics) {
    const metrics = deps.metrics;
    const timer = setInterval(() => {
      if (!phasesDirty) return;
      phasesDirty = false;
      const counts: Record<string, number> = Object.fromEntries(SESSION_PHASES.map((p) => [p, 0]));
      for (const i of sessions) for (const s of i.list()) counts[s.status?.phase ?? 'Pending'] = (counts[s.status?.phase ?? 'Pending'] ?? 0) + 1;
      metrics.sessionsByPhase(counts);
    }, 1_000);
    timer.unref();
  }

  for (const i of sessions) i.on((e) => needsReconcile(e) && controller.enqueue(keyOf(e.object)));
  for (const i of pods) {
    i.on((e) => {
      if (e.type === 'delete') rememberDeleted(e.object);
      const session = e.object.metadata?.labels?.[LABELS.session];
      if (session) controller.enqueue(`${e.object.metadata?.namespace ?? ''}/${session}`);
    });
  }

  const sessionsOf = (env: AgentEnvironment): AgentSession[] =>
    sessions.flatMap((i) =>
      i.list((s) => s.metadata?.namespace === env.metadata?.namespace && s.spec?.environmentRef?.name === env.metadata?.name),
    );
  const running = (s: AgentSession): boolean => !FINISHED_PHASES.includes(s.status?.phase ?? 'Pending') || s.status?.workId !== s.spec.workId;

  return {
    controller,
    informers: [...sessions, ...pods],
    enqueue: (namespace, name) => controller.enqueue(`${namespace}/${name}`),
    acknowledged(namespace, name, work) {
      acknowledgements.add(`${namespace}/${name}`, work, new Date());
      controller.enqueue(`${namespace}/${name}`);
    },
    acknowledgementPending: (key) => acknowledgements.has(key),
    activeSessions: (env) => sessionsOf(env).filter(running).length,
    async stopEnvironmentSessions(env) {
      if (env.spec.managementPolicy === 'ObserveOnly') return true;
      const live = sessionsOf(env).filter((s) => running(s) && isAcknowledged(s));
      for (const s of live) {
        if (s.metadata?.deletionTimestamp) continue;
        try {
          await deps.rest.delete(AGENT_SESSIONS, s.metadata?.namespace, s.metadata?.name ?? '');
        } catch (err) {
          if (!isNotFound(err)) throw err;
        }
      }
      return live.length === 0;
    },
    async applyNetworkPolicy(env) {
      const namespace = env.metadata?.namespace ?? '';
      const name = networkPolicyName(env.metadata?.name ?? '');
      const desired = desiredNetworkPolicy(env);
      let current: NetworkPolicy | undefined;
      try {
        current = await deps.rest.get<NetworkPolicy>(CORE.networkPolicies, namespace, name);
      } catch (err) {
        if (!isNotFound(err)) throw err;
      }
      if (!desired) {
        const ours = current?.metadata?.labels?.[LABELS.environment] === labelValue(env.metadata?.name ?? '');
        if (current && ours) await deps.rest.delete(CORE.networkPolicies, namespace, name).catch((err: unknown) => { if (!isNotFound(err)) throw err; });
        return;
      }
      if (!current) {
        await deps.rest.create(CORE.networkPolicies, namespace, desired);
        return;
      }
      // The apiserver drops an empty `ingress` list: compare with it restored.
      if (jsonEqual({ ...current.spec, ingress: current.spec.ingress ?? [] }, desired.spec) && jsonEqual(current.metadata?.labels ?? {}, desired.metadata?.labels ?? {})) return;
      await deps.rest.replace(CORE.networkPolicies, namespace, { ...desired, metadata: { ...desired.metadata, resourceVersion: current.metadata?.resourceVersion ?? '' } });
    },
  };
}
