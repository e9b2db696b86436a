/**
 * The self-hosted sessions feature as the operator wires it: the dispatchers (poll → record → ack,
 * `dispatcher*.ts`) and the AgentSession controller (Pods, stops, cleanup, `session-controller.ts`),
 * sharing one AgentSession informer.
 *
 * - `informers` run for the life of the process (warm caches for a fast take-over);
 * - `run(leading)` runs the controller and the dispatchers only while this replica leads, and on
 *   losing the lead lets the hand-offs in flight finish;
 * - `hook` is what the AgentEnvironment reconciler asks: active sessions, and draining before deletion.
 */
import type { EnvironmentsClient } from '../api/client.ts';
import type { Credential } from '../api/transport.ts';
import type { AgentEnvironment, AgentSession } from '../crd/resources.ts';
import { AGENT_ENVIRONMENTS, AGENT_SESSIONS } from '../crd/resources.ts';
import { CONDITIONS } from '../crd/meta.ts';
import { jsonEqual, setCondition, type Condition } from '../k8s/conditions.ts';
import { classify, isConflict, isNotFound, KubeError } from '../k8s/errors.ts';
import type { EventRecorder } from '../k8s/events.ts';
import { keyOf, type Informer, type InformerEvent } from '../k8s/informer.ts';
import type { KubeObject, KubeRest } from '../k8s/rest.ts';
import type { ControllerObserver } from '../runtime/controller.ts';
import type { Logger } from '../telemetry/logger.ts';
import { resolveDispatchCredentials, workItemCredential } from './dispatch/credentials.ts';
import { envKey, RecordedSessions } from './dispatch/capacity.ts';
import { Dispatchers } from './dispatch/dispatchers.ts';
import type { DispatchRecorder } from './dispatch/environment-dispatch.ts';
import type { DispatchState } from './dispatch/poller.ts';
import type { SidecarSettings } from './objects/pod.ts';
import { kubeRecordStore } from './record/record.ts';
import type { SessionRecorder } from './controller/reconcile.ts';
import { sessionController } from './controller/controller.ts';
import { backoffDelay, type BackoffPolicy } from '../util/backoff.ts';

/** Retries of a Dispatching-condition write the apiserver turned away for now (429, 5xx). */
const CONDITION_RETRY: BackoffPolicy = { baseMs: 250, capMs: 10_000, jitter: 0.5 };

/** What the AgentEnvironment reconciler asks of the sessions feature (same shape as its `SessionsHook`). */
export interface SessionsHook {
  activeSessions(env: AgentEnvironment): number;
  drainBeforeDeletion(env: AgentEnvironment, signal: AbortSignal): Promise<boolean>;
}

export interface SessionsDeps {
  readonly rest: KubeRest;
  readonly events: EventRecorder;
  readonly logger: Logger;
  readonly metrics: DispatchRecorder & SessionRecorder & ControllerObserver & { sessionsByPhase(counts: Readonly<Record<string, number>>): void };
  /** Namespaces watched; all when empty. */
  readonly namespaces: readonly string[];
  /** The operator's AgentEnvironment informers (shared: dispatchers follow them). */
  readonly environments: readonly Informer<AgentEnvironment>[];
  readonly apiClient: (credential: Credential | (() => Credential)) => EnvironmentsClient;
  readonly defaultCredential: () => Credential | undefined;
  /** The operator replica's identity: worker ids are `<identity>/<environment uid>/<slot>`. */
  readonly identity: string;
  /** API base URL given to session Pods. */
  readonly baseUrl: string;
  readonly sidecar: SidecarSettings;
  readonly concurrency?: number;
  readonly resyncMs?: number;
  /** Settle pass period of each dispatcher. Default 30 s. */
  readonly settleIntervalMs?: number;
}

export interface Sessions {
  readonly hook: SessionsHook;
  /** Run these with the process's signal (not only while leading). */
  readonly informers: ReadonlyArray<Pick<Informer<KubeObject>, 'run' | 'synced' | 'hasSynced'>>;
  /** Run while leading; resolves after `leading` aborts and hand-offs in flight have finished. */
  run(leading: AbortSignal): Promise<void>;
}

export function startSessions(deps: SessionsDeps): Sessions {
  const log = deps.logger.child({ component: 'sessions' });
  const envOf = (namespace: string, name: string): AgentEnvironment | undefined => {
    for (const i of deps.environments) {
      const e = i.get(namespace, name);
      if (e) return e;
    }
    return undefined;
  };
  const controller = sessionController({
    rest: deps.rest,
    cachedEnvironment: (namespace, name) => envOf(namespace, name),
    events: deps.events,
    logger: deps.logger.child({ component: 'session-controller' }),
    namespaces: deps.namespaces,
    apiClient: (c) => deps.apiClient(c),
    workCredential: (env) => workItemCredential(deps.rest, env, deps.defaultCredential),
    sidecar: deps.sidecar,
    baseUrl: deps.baseUrl,
    metrics: deps.metrics,
    observer: deps.metrics,
    ...(deps.concurrency !== undefined ? { concurrency: deps.concurrency } : {}),
    ...(deps.resyncMs !== undefined ? { resyncMs: deps.resyncMs } : {}),
  });
  const sessionInformers = controller.informers.filter((i): i is Informer<AgentSession> => i.type === AGENT_SESSIONS);
  const recorded = new RecordedSessions();
  for (const i of sessionInformers) i.on((e: InformerEvent<AgentSession>) => recorded.apply(e));

  const allEnvironments = (): AgentEnvironment[] => deps.environments.flatMap((i) => i.list());
  const dispatchers = new Dispatchers({
    store: kubeRecordStore(deps.rest),
    logger: deps.logger,
    metrics: deps.metrics,
    apiClient: (c) => deps.apiClient(c),
    resolveCredentials: (env) => resolveDispatchCredentials(deps.rest, env, deps.defaultCredential),
    identity: deps.identity,
    recorded,
    sessionsOf: (namespace, envName) =>
      sessionInformers.flatMap((i) => i.list((s) => s.metadata?.namespace === namespace && s.spec?.environmentRef?.name === envName)),
    reportCondition: (env, state) => void reportDispatching(env, state),
    onAcknowledged: (namespace, name, work) => controller.acknowledged(namespace, name, work),
    acknowledgementPending: (key) => controller.acknowledgementPending(key),
    ...(deps.settleIntervalMs !== undefined ? { settleIntervalMs: deps.settleIntervalMs } : {}),
  });

  // Dispatchers follow the environments: any change may start, stop or re-limit one.
  let leading = false;
  for (const i of deps.environments) {
    i.on((e) => {
      if (!leading) return;
      dispatchers.sync(allEnvironments());
      if (e.type !== 'delete' && (e.type === 'add' || e.old.metadata?.generation !== e.object.metadata?.generation)) applyNetworkPolicy(e.object);
    });
  }

  function applyNetworkPolicy(env: AgentEnvironment): void {
    if (!env.spec?.selfHosted || env.metadata?.deletionTimestamp) return;
    controller.applyNetworkPolicy(env).catch((err: unknown) => log.warn({ err, environment: keyOf(env) }, 'could not apply the session NetworkPolicy; retried on the next change or take-over'));
  }

  /** Write the `Dispatching` condition when it differs from the cached object (steady state writes nothing). */
  async function reportDispatching(stale: AgentEnvironment, state: DispatchState): Promise<void> {
    const ns = stale.metadata?.namespace ?? '';
    const name = stale.metadata?.name ?? '';
    const next = (env: AgentEnvironment): Condition[] =>
      setCondition(env.status?.conditions as Condition[] | undefined, {
        type: CONDITIONS.dispatching,
        status: state.dispatching ? 'True' : 'False',
        reason: state.dispatching ? 'Polling' : state.reason,
        message: state.dispatching ? 'polling the work queue while below maxSessions' : state.message,
      });
    let current: AgentEnvironment | undefined = envOf(ns, name) ?? stale;
    for (let attempt = 0; attempt < 6; attempt++) {
      try {
        // The cached object first (no read); a Conflict means it was stale: read it and try again.
        const fresh: AgentEnvironment = current ?? (await deps.rest.get<AgentEnvironment>(AGENT_ENVIRONMENTS, ns, name));
        current = undefined;
        const conditions = next(fresh);
        if (jsonEqual(fresh.status?.conditions ?? [], conditions)) return;
        await deps.rest.replace(AGENT_ENVIRONMENTS, ns, { ...fresh, status: { ...fresh.status, conditions } }, 'status');
        return;
      } catch (err) {
        if (isNotFound(err)) return;
        if (isConflict(err)) continue;
        // An apiserver that is busy (429) or briefly unavailable gets the write again, no earlier
        // than it asked; otherwise the condition would stay stale until the next state change.
        if (!(err instanceof KubeError) || classify(err) !== 'transient' || attempt === 5) {
          log.warn({ err, environment: envKey(ns, name) }, 'could not write the Dispatching condition');
          return;
        }
        const delayMs = err instanceof KubeError && err.retryAfterMs ? Math.min(err.retryAfterMs, CONDITION_RETRY.capMs) : backoffDelay(attempt, CONDITION_RETRY);
        // Unref'd: a pending retry must not keep a stopping operator alive.
        await new Promise((r) => setTimeout(r, delayMs).unref());
        current = undefined;
      }
    }
  }

  return {
    informers: controller.informers,
    hook: {
      activeSessions: (env) => recorded.unfinished(envKey(env.metadata?.namespace ?? '', env.metadata?.name ?? '')).size,
      async drainBeforeDeletion(env, signal) {
        // A deleted environment is no longer eligible: its dispatcher stops claiming (sync), and
        // its hand-offs in flight finish before the sessions are stopped.
        await dispatchers.stop(envKey(env.metadata?.namespace ?? '', env.metadata?.name ?? ''));
        return controller.stopEnvironmentSessions(env, signal);
      },
    },
    async run(signal) {
      await Promise.all(controller.informers.map((i) => i.synced(signal)));
      if (signal.aborted) return;
      for (const i of sessionInformers) for (const s of i.list()) controller.enqueue(s.metadata?.namespace ?? '', s.metadata?.name ?? '');
      leading = true;
      for (const env of allEnvironments()) applyNetworkPolicy(env);
      try {
        await Promise.all([controller.controller.run(signal), dispatchers.run(signal, allEnvironments())]);
      } finally {
        leading = false;
      }
    },
  };
}
