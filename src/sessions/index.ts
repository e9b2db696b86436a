/**
 * The self-hosted sessions feature as the operator wires it (wiring only; see docs/sessions.md for
 * the parts): the dispatchers (`dispatch/`: poll → record → ack) and the AgentSession controller
 * (`controller/`: Pods, stops, cleanup), sharing one AgentSession informer and meeting only here.
 *
 * - `informers` run for the life of the process (warm caches for a fast take-over);
 * - `run(leading)` runs the controller and the dispatchers only while this replica leads, and on
 *   losing the lead lets the hand-offs in flight finish;
 * - `hook` is what the AgentEnvironment reconciler asks: active sessions, the environment's session
 *   children (its NetworkPolicy) on every keyed pass, and draining before deletion.
 */
import type { EnvironmentsClient } from '../api/client.ts';
import type { Credential } from '../api/transport.ts';
import type { WarmPoolStatus } from '../crd/agent-environment.ts';
import { AGENT_SESSIONS, type AgentEnvironment, type AgentSession } from '../crd/resources.ts';
import { classify, isNotFound } from '../k8s/errors.ts';
import type { EventRecorder } from '../k8s/events.ts';
import { Informer, keyOf, type InformerEvent } from '../k8s/informer.ts';
import { AGENT_ENVIRONMENT, LABELS } from '../crd/meta.ts';
import { CORE, type KubeObject, type KubeRest } from '../k8s/rest.ts';
import type { SecretReader } from '../k8s/secrets.ts';
import type { ControllerObserver } from '../runtime/controller.ts';
import type { Logger } from '../telemetry/logger.ts';
import { resolveDispatchCredentials, workItemCredential, organizationCredential } from './dispatch/credentials.ts';
import { envKey, RecordedSessions } from './dispatch/capacity.ts';
import { Dispatchers } from './dispatch/dispatchers.ts';
import type { DispatchRecorder } from './dispatch/environment-dispatch.ts';
import { DispatchingConditionWriter } from './dispatch/dispatching-condition.ts';
import type { PodInputs, ProxyAddressMode, RunnerSettings, SessionPodPolicy, SidecarSettings } from './objects/pod.ts';
import type { Pod } from './objects/pod-types.ts';
import type { PodRefusal } from './objects/pod-refusal.ts';
import type { AdmissionSource } from './dispatch/admission.ts';
import { admissionSource, quotaInformers } from './admission-source.ts';
import { kubeRecordStore } from './record/record.ts';
import type { SessionRecorder } from './controller/reconcile.ts';
import { sessionController, type SessionController } from './controller/controller.ts';
import { sweepWorkspaces } from './controller/workspace-sweep.ts';
import type { EnvironmentFigures } from '../telemetry/metrics.ts';
import { environmentFigures } from './signals.ts';
import type { AssignmentEndpoint } from './objects/warm-pod.ts';
import { WarmPools } from './pool/pool.ts';
import { startAssignmentServer, type AssignmentServer } from './assign/server.ts';
import type { WarmBinder } from './dispatch/hand-off.ts';
import { labelValue, sessionName } from './record/names.ts';

/** What the AgentEnvironment reconciler asks of the sessions feature (same shape as its `SessionsHook`). */
export interface SessionsHook {
  activeSessions(env: AgentEnvironment): number;
  /** The environment's session children (its NetworkPolicy), on every keyed pass of a live self-hosted environment. */
  reconcileChildren(env: AgentEnvironment, signal: AbortSignal): Promise<void>;
  drainBeforeDeletion(env: AgentEnvironment, signal: AbortSignal): Promise<boolean>;
  /** The environment's warm pool as its last keyed pass left it. */
  warmPool(env: AgentEnvironment): WarmPoolStatus | undefined;
  /** Call `enqueue(namespace, name)` when a warm Pod of environment `name` changed (its pool wants a pass). */
  onWarmPodChange(enqueue: (namespace: string, name: string) => void): void;
}

/**
 * Apply the environment's session NetworkPolicy, level-triggered from the environment's keyed pass
 * (a policy deleted by hand comes back on the next pass). A transient failure fails the pass, so the
 * controller's error policy retries it; a refusal (RBAC, admission) is logged and the environment's
 * own reconcile goes on — a session child must not block the environment.
 */
async function reconcileChildren(controller: Pick<SessionController, 'applyNetworkPolicy'>, pools: WarmPools, env: AgentEnvironment, log: Logger, sweep: () => Promise<void>): Promise<void> {
  try {
    await controller.applyNetworkPolicy(env);
  } catch (err) {
    if (classify(err) === 'transient') throw err;
    log.warn({ err, environment: keyOf(env) }, 'could not apply the session NetworkPolicy; tried again on the next pass of the environment');
  }
  try {
    await sweep();
  } catch (err) {
    if (classify(err) === 'transient') throw err;
    log.warn({ err, environment: keyOf(env) }, 'could not sweep the workspace claims; tried again on the next pass of the environment');
  }
  try {
    await pools.reconcile(env);
  } catch (err) {
    if (classify(err) === 'transient') throw err;
    log.warn({ err, environment: keyOf(env) }, 'could not keep the warm pool; tried again on the next pass of the environment');
  }
}

/** Workspace claims by phase, per environment, summed for the metric. */
class WorkspaceCounts {
  readonly #byEnv = new Map<string, Readonly<Record<string, number>>>();
  set(env: string, counts: Readonly<Record<string, number>>): Record<string, number> {
    this.#byEnv.set(env, counts);
    const total: Record<string, number> = {};
    for (const c of this.#byEnv.values()) for (const [phase, n] of Object.entries(c)) total[phase] = (total[phase] ?? 0) + n;
    return total;
  }
}

export interface SessionsDeps {
  readonly rest: KubeRest;
  readonly events: EventRecorder;
  readonly logger: Logger;
  readonly metrics: DispatchRecorder &
    SessionRecorder &
    ControllerObserver & {
      sessionsByPhase(counts: Readonly<Record<string, number>>): void;
      /** Where the per-environment autoscaling figures are read at scrape time (signals.ts). */
      environments?(source: () => readonly EnvironmentFigures[]): void;
    };
  /** Namespaces watched; all when empty. */
  readonly namespaces: readonly string[];
  /** The operator's AgentEnvironment informers (shared: dispatchers follow them). */
  readonly environments: readonly Informer<AgentEnvironment>[];
  readonly apiClient: (credential: Credential | (() => Credential)) => EnvironmentsClient;
  /** Credential Secrets, through the process's cache (k8s/secret-cache.ts), shared with the AgentEnvironment reconciler. */
  readonly secrets: SecretReader;
  /** The operator's default API key for AgentEnvironments of a namespace (none where it does not serve). */
  readonly defaultCredential: (namespace: string) => Credential | undefined;
  /** The operator replica's identity: worker ids are `<identity>/<environment uid>/<slot>`. */
  readonly identity: string;
  /** API base URL given to session Pods. */
  readonly baseUrl: string;
  readonly sidecar: SidecarSettings;
  /** The default runner's image (environments without a sessionTemplate). */
  readonly runner: RunnerSettings;
  /** Where session Pods' sidecar proxy listens. */
  readonly proxyAddress: ProxyAddressMode;
  /** Session Pods' priority class and disruption defaults (a template's own values win). */
  readonly podPolicy?: SessionPodPolicy;
  /** The operator's assignment endpoint for warm Pods; without it no warm pool is kept (every session is cold). */
  readonly assignment?: AssignmentEndpoint;
  /** Where this replica serves that endpoint, and its serving certificate (every replica serves it). */
  readonly assignmentServer?: { readonly address: string; readonly port: number; readonly tls: { readonly cert: string; readonly key: string } };
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
  /** Serve warm Pods' assignment asks (on every replica, from the informer caches); undefined without `assignmentServer`. */
  serveAssignments(): Promise<AssignmentServer | undefined>;
}

export function startSessions(deps: SessionsDeps): Sessions {
  const log = deps.logger.child({ component: 'sessions' });
  const envOf = cachedEnvironment(deps.environments);
  // The controller reports capacity refusals to the dispatchers, which are built after it.
  const late: { dispatchers?: Dispatchers } = {};
  const controller = buildController(deps, envOf, (namespace, envName, refusal) => late.dispatchers?.refused(envKey(namespace, envName), refusal));
  const sessionInformers = controller.informers.filter((i): i is Informer<AgentSession> => i.type === AGENT_SESSIONS);
  const podInformers = controller.informers.filter((i): i is Informer<Pod> => i.type === CORE.pods);
  const recorded = new RecordedSessions();
  for (const i of sessionInformers) i.on((e: InformerEvent<AgentSession>) => recorded.apply(e));
  const conditions = new DispatchingConditionWriter({ rest: deps.rest, cached: envOf, logger: log });
  const quotas = quotaInformers(deps.rest, deps.namespaces, deps.logger);
  const admission = admissionSource({ rest: deps.rest, quotas, sessions: sessionInformers, pods: podInformers, podSettings: podSettings(deps) });
  const warmPods = warmPodInformers(deps);
  const pools = buildPools(deps, log, sessionInformers, warmPods);
  const dispatchers = buildDispatchers(deps, controller, sessionInformers, recorded, conditions, admission, warmBinder(pools, sessionInformers));
  late.dispatchers = dispatchers;
  // Backpressure: a quota's status changed (a Pod created or ended, the quota raised): the namespace's dispatchers look again.
  for (const i of quotas) i.on((e) => dispatchers.nudgeNamespace(e.object.metadata?.namespace ?? ''));
  const allEnvironments = (): AgentEnvironment[] => deps.environments.flatMap((i) => i.list());
  deps.metrics.environments?.(() => environmentFigures(allEnvironments(), (namespace, name) => recorded.unfinished(envKey(namespace, name)).size));

  // Dispatchers follow the environments: a change may start, stop or re-limit that environment's.
  let leading = false;
  for (const i of deps.environments) {
    i.on((e) => {
      if (leading) dispatchers.apply(e);
    });
  }

  return {
    informers: [...controller.informers, ...quotas, ...warmPods],
    serveAssignments: async () =>
      deps.assignmentServer
        ? startAssignmentServer({ rest: deps.rest, log: log.child({ part: 'assignment' }), ...deps.assignmentServer, sessions: sessionInformers, environment: envOf })
        : undefined,
    hook: { ...sessionsHook(deps, log, controller, pools, dispatchers, recorded, sessionInformers), onWarmPodChange: (enqueue) => onWarmPodChange(warmPods, enqueue) },
    async run(signal) {
      // The quotas too: dispatch must not claim before it knows whether the namespace has room.
      await Promise.all([...controller.informers, ...quotas].map((i) => i.synced(signal)));
      if (signal.aborted) return;
      for (const i of sessionInformers) for (const s of i.list()) controller.enqueue(s.metadata?.namespace ?? '', s.metadata?.name ?? '');
      leading = true;
      try {
        await Promise.all([controller.controller.run(signal), dispatchers.run(signal, allEnvironments())]);
      } finally {
        leading = false;
      }
    },
  };
}

type EnvironmentLookup = (namespace: string, name: string) => AgentEnvironment | undefined;

/** An environment from the operator's AgentEnvironment informers' caches. */
function cachedEnvironment(informers: readonly Informer<AgentEnvironment>[]): EnvironmentLookup {
  return (namespace, name) => {
    for (const i of informers) {
      const e = i.get(namespace, name);
      if (e) return e;
    }
    return undefined;
  };
}

/** What every session Pod is built with. */
function podSettings(deps: SessionsDeps): Omit<PodInputs, 'session' | 'env'> {
  return { sidecar: deps.sidecar, runner: deps.runner, proxyAddress: deps.proxyAddress, baseUrl: deps.baseUrl, ...(deps.podPolicy ? { podPolicy: deps.podPolicy } : {}) };
}

/** The AgentSession controller, with the credentials and Pod settings it launches with. */
function buildController(deps: SessionsDeps, envOf: EnvironmentLookup, onCapacityRefused: (namespace: string, envName: string, refusal: PodRefusal) => void): SessionController {
  return sessionController({
    rest: deps.rest,
    cachedEnvironment: envOf,
    events: deps.events,
    logger: deps.logger.child({ component: 'session-controller' }),
    namespaces: deps.namespaces,
    apiClient: (c) => deps.apiClient(c),
    workCredential: (env) => workItemCredential(deps.secrets, env, deps.defaultCredential),
    sessionCredential: (env) => organizationCredential(deps.secrets, env, deps.defaultCredential),
    sidecar: deps.sidecar,
    runner: deps.runner,
    proxyAddress: deps.proxyAddress,
    ...(deps.podPolicy ? { podPolicy: deps.podPolicy } : {}),
    baseUrl: deps.baseUrl,
    onCapacityRefused,
    metrics: deps.metrics,
    observer: deps.metrics,
    ...(deps.concurrency !== undefined ? { concurrency: deps.concurrency } : {}),
    ...(deps.resyncMs !== undefined ? { resyncMs: deps.resyncMs } : {}),
  });
}

/**
 * One informer per watched namespace of the Pods labelled `agentenv.io/warm-pool` (the pools' Pods,
 * bound ones included): the pool's pass every few seconds reads them from this cache, not the
 * apiserver. None without an assignment endpoint (no pool is kept then).
 */
function warmPodInformers(deps: SessionsDeps): Informer<Pod>[] {
  if (!deps.assignment) return [];
  const namespaces = deps.namespaces.length ? deps.namespaces : [undefined];
  return namespaces.map(
    (namespace) =>
      new Informer<Pod>(deps.rest, CORE.pods, {
        ...(namespace ? { namespace } : {}),
        labelSelector: LABELS.warmPool,
        logger: deps.logger.child({ component: 'informer', resource: 'pods', part: 'warm-pool', namespace }),
      }).addIndex(WARM_POOL_INDEX, (p) => (p.metadata?.labels?.[LABELS.warmPool] ? `${p.metadata.namespace ?? ''}/${p.metadata.labels[LABELS.warmPool]}` : undefined)),
  );
}
const WARM_POOL_INDEX = 'warm-pool';

/**
 * A warm Pod was added, deleted, bound (relabelled) or changed readiness: its environment's pool
 * wants a pass (a full pool is otherwise passed only at the queue refresh). The environment is the
 * Pod's controller owner; other status churn (heartbeats of the kubelet) causes no pass.
 */
function onWarmPodChange(informers: readonly Informer<Pod>[], enqueue: (namespace: string, name: string) => void): void {
  const owner = (p: Pod): string | undefined => p.metadata?.ownerReferences?.find((o) => o.controller && o.kind === AGENT_ENVIRONMENT.kind)?.name;
  const readiness = (p: Pod): boolean => !!p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True');
  for (const i of informers) {
    i.on((e) => {
      const name = owner(e.object);
      if (!name) return;
      if (e.type === 'update' && e.old.metadata?.labels?.[LABELS.component] === e.object.metadata?.labels?.[LABELS.component] && readiness(e.old) === readiness(e.object) && e.old.status?.phase === e.object.status?.phase && e.old.metadata?.deletionTimestamp === e.object.metadata?.deletionTimestamp) return;
      enqueue(e.object.metadata?.namespace ?? '', name);
    });
  }
}

/** The warm pools, kept from the environments' keyed passes; a record's warm Pod is read from the AgentSession cache. */
function buildPools(deps: SessionsDeps, log: Logger, sessionInformers: readonly Informer<AgentSession>[], warmPods: readonly Informer<Pod>[]): WarmPools {
  const cachedPods = (namespace: string, envName: string): Pod[] | undefined => {
    if (!warmPods.length || !warmPods.every((i) => i.hasSynced)) return undefined;
    return warmPods.flatMap((i) => i.byIndex(WARM_POOL_INDEX, `${namespace}/${labelValue(envName)}`));
  };
  const recordedPod = (namespace: string, name: string): string | undefined => {
    for (const i of sessionInformers) {
      const s = i.get(namespace, name);
      if (s) return s.spec?.warmPod?.uid;
    }
    return undefined;
  };
  return new WarmPools({ rest: deps.rest, log: log.child({ part: 'warm-pool' }), sidecar: deps.sidecar, runner: deps.runner, proxyAddress: deps.proxyAddress, baseUrl: deps.baseUrl, assignment: deps.assignment, recordedPod, cachedPods });
}

/**
 * The hand-off's view of the pools: a session that already has a record resumes cold (on its
 * workspace, which a warm Pod did not mount); a new one takes a ready warm Pod if there is one.
 */
function warmBinder(pools: WarmPools, sessionInformers: readonly Informer<AgentSession>[]): WarmBinder {
  return {
    take: async (env, sessionId, workId) => {
      const name = sessionName(env.metadata?.name ?? '', sessionId);
      if (sessionInformers.some((i) => i.get(env.metadata?.namespace ?? '', name))) return undefined;
      return pools.take(env, sessionId, workId);
    },
    spend: (env, pod) => pools.spend(env, pod),
  };
}

/** The dispatchers: they meet the controller only through the acknowledgement hand-over. */
function buildDispatchers(
  deps: SessionsDeps,
  controller: SessionController,
  sessionInformers: readonly Informer<AgentSession>[],
  recorded: RecordedSessions,
  conditions: DispatchingConditionWriter,
  admission: AdmissionSource,
  warm: WarmBinder,
): Dispatchers {
  return new Dispatchers({
    store: kubeRecordStore(deps.rest),
    logger: deps.logger,
    metrics: deps.metrics,
    apiClient: (c) => deps.apiClient(c),
    resolveCredentials: (env, options) => resolveDispatchCredentials(deps.secrets, env, deps.defaultCredential, options),
    identity: deps.identity,
    recorded,
    sessionsOf: (namespace, envName) =>
      sessionInformers.flatMap((i) => i.list((s) => s.metadata?.namespace === namespace && s.spec?.environmentRef?.name === envName)),
    reportCondition: (env, state) => conditions.report(env, state),
    onAcknowledged: (namespace, name, work, record) => controller.acknowledged(namespace, name, work, record),
    warm,
    acknowledgedHere: (key, workId) => controller.acknowledgedHere(key, workId),
    admission,
    ...(deps.settleIntervalMs !== undefined ? { settleIntervalMs: deps.settleIntervalMs } : {}),
  });
}

/** What the AgentEnvironment reconciler asks: active sessions, the session children, draining. */
function sessionsHook(
  deps: SessionsDeps,
  log: Logger,
  controller: SessionController,
  pools: WarmPools,
  dispatchers: Dispatchers,
  recorded: RecordedSessions,
  sessionInformers: readonly Informer<AgentSession>[],
): Omit<SessionsHook, 'onWarmPodChange'> {
  const workspaceCounts = new WorkspaceCounts();
  const sessionExists = async (namespace: string, name: string): Promise<boolean> => {
    if (sessionInformers.some((i) => i.get(namespace, name))) return true;
    try {
      await deps.rest.get(AGENT_SESSIONS, namespace, name);
      return true;
    } catch (err) {
      if (isNotFound(err)) return false;
      throw err;
    }
  };
  return {
    activeSessions: (env) => recorded.unfinished(envKey(env.metadata?.namespace ?? '', env.metadata?.name ?? '')).size,
    reconcileChildren: (env) =>
      reconcileChildren(controller, pools, env, log, async () => {
        const counts = await sweepWorkspaces({ rest: deps.rest, log, sessionExists }, env);
        deps.metrics.workspaces?.(workspaceCounts.set(keyOf(env), counts));
      }),
    // Warm Pods are never sessions: not in activeSessions, maxSessions or the session metrics.
    warmPool: (env) => pools.status(env),
    async drainBeforeDeletion(env, signal) {
      // A deleted environment is no longer eligible: its dispatcher stops claiming (sync), and
      // its hand-offs in flight finish before the sessions are stopped.
      await dispatchers.stop(envKey(env.metadata?.namespace ?? '', env.metadata?.name ?? ''));
      return controller.stopEnvironmentSessions(env, signal);
    },
  };
}
