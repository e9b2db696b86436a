/**
 * The warm pools: each environment's pool kept from the environment's keyed pass
 * (SessionsHook.reconcileChildren), gather → decide (sizing.ts, plan.ts) → apply, level-triggered:
 * every pass lists the environment's warm Pods again, so a warm Pod deleted while waiting is
 * replaced on the next pass (every `WARM_POOL_RESYNC_MS`) and a bound one is refilled.
 *
 * Memory kept here, all of it safe to lose with the process: the sizing window per environment
 * (a restart starts a new window), the last status (recomputed next pass), and the Pods a hand-off
 * is binding now (a bind in flight dies with the process; the Pod it labelled is found by the
 * binding's own recovery, see docs/sessions.md "Warm pool").
 */
import type { WarmPoolStatus } from '../../crd/agent-environment.ts';
import type { AgentEnvironment } from '../../crd/resources.ts';
import { LABELS } from '../../crd/meta.ts';
import { isAlreadyExists, isConflict, isNotFound } from '../../k8s/errors.ts';
import { keyOf } from '../../k8s/informer.ts';
import { CORE, type KubeObject, type KubeRest } from '../../k8s/rest.ts';
import type { Logger } from '../../telemetry/logger.ts';
import type { Pod } from '../objects/pod-types.ts';
import type { ProxyAddressMode, RunnerSettings, SidecarSettings } from '../objects/pod.ts';
import { desiredWarmPod, type AssignmentEndpoint } from '../objects/warm-pod.ts';
import { labelValue, sessionName, warmPoolSelector, workLabels } from '../record/names.ts';
import { BOUND_AT_ANNOTATION, isReady, isUnbound, planPool } from './plan.ts';
import { nextPoolSize, warmPoolServes, type SizingMemory } from './sizing.ts';

export interface WarmPoolDeps {
  readonly rest: KubeRest;
  readonly log: Logger;
  readonly sidecar: SidecarSettings;
  readonly runner: RunnerSettings;
  readonly proxyAddress: ProxyAddressMode;
  readonly baseUrl: string;
  /**
   * Where warm sidecars ask for their assignment (operator setting `assignmentUrl`). Without it no
   * warm Pod is started: nothing could tell one what it was bound to, so every session is cold.
   */
  readonly assignment: AssignmentEndpoint | undefined;
  /**
   * The environment's warm Pods (labelled `agentenv.io/warm-pool=<environment>`: unbound, bound or
   * terminating) from the operator's warm-Pod informer cache; undefined while that cache has not
   * synced (then the apiserver is listed). The pool's pass comes every few seconds: listing the
   * apiserver each time would be a needless read per environment per pass.
   */
  readonly cachedPods?: (namespace: string, envName: string) => Pod[] | undefined;
  /** The uid of the warm Pod AgentSession `namespace/name` names, from the informer cache (orphans are Pods no record names). */
  readonly recordedPod: (namespace: string, sessionName: string) => string | undefined;
  readonly now?: () => number;
}

export class WarmPools {
  readonly #deps: WarmPoolDeps;
  readonly #sizing = new Map<string, SizingMemory>();
  readonly #status = new Map<string, WarmPoolStatus>();
  readonly #binding = new Map<string, Set<string>>();
  /** Each environment's warm Pods as the last pass listed them: the candidates of a bind (a stale one fails its precondition). */
  readonly #listed = new Map<string, Pod[]>();
  #warnedNoEndpoint = false;
  /** The CA last written per namespace: read and written again only after a restart or a change of CA. */
  readonly #caWritten = new Map<string, string>();

  constructor(deps: WarmPoolDeps) {
    this.#deps = deps;
  }

  /** The pool's status as the last pass left it; undefined for an environment without a pool. */
  status(env: AgentEnvironment): WarmPoolStatus | undefined {
    return this.#status.get(keyOf(env));
  }

  /** Pods a hand-off is binding now: neither counted nor deleted by the pool until released. */
  binding(env: AgentEnvironment): Set<string> {
    const key = keyOf(env);
    let set = this.#binding.get(key);
    if (!set) this.#binding.set(key, (set = new Set()));
    return set;
  }

  /** One pass over the environment's pool: size it, create and delete to match, remember the status. */
  async reconcile(env: AgentEnvironment): Promise<void> {
    const key = keyOf(env);
    const envName = env.metadata?.name ?? '';
    const spec = env.spec.selfHosted?.warmPool;
    // An environment without a pool costs nothing here (no list) — unless its status still shows
    // one: a pool removed while the operator was down, whose Pods are deleted now.
    if (!spec && !this.#status.has(key) && !env.status?.warmPool) return;
    const now = (this.#deps.now ?? Date.now)();
    const serves = warmPoolServes(env) && this.#endpoint() !== undefined;
    const sizing = nextPoolSize({ pool: spec, serves, queue: env.status?.queue, now }, this.#sizing.get(key));
    this.#sizing.set(key, sizing);
    const pods = await this.#list(env);
    this.#listed.set(key, pods);
    const namespace = env.metadata?.namespace ?? '';
    const plan = planPool({ envName, size: sizing.size, pods, binding: this.binding(env), recordedPod: (name) => this.#deps.recordedPod(namespace, name), now });
    for (const pod of plan.remove) await this.#delete(pod);
    if (plan.create.length || spec) await this.#ensureCa(namespace);
    for (const ordinal of plan.create) await this.#create(env, ordinal);
    if (!spec && pods.length === 0) {
      this.#status.delete(key);
      this.#sizing.delete(key);
      return;
    }
    this.#status.set(key, { replicas: plan.replicas, ready: plan.ready, target: sizing.size, selector: warmPoolSelector(envName) });
  }

  /**
   * Take a ready warm Pod for a claimed item (the hand-off's step 1b). The take is a merge patch
   * that relabels the Pod a session Pod (component `session`, the session and work labels) with
   * the listed resourceVersion as precondition: the apiserver lets exactly one writer through, so
   * one Pod is taken for at most one item, and a Pod deleted or taken since the list is skipped.
   * From the patch on the Pod is the session's: the pool never counts or deletes it again.
   */
  async take(env: AgentEnvironment, sessionId: string, workId: string): Promise<{ name: string; uid: string } | undefined> {
    const key = keyOf(env);
    if (!env.spec.selfHosted?.warmPool || !warmPoolServes(env)) return undefined;
    const binding = this.binding(env);
    const envName = env.metadata?.name ?? '';
    const session = sessionName(envName, sessionId);
    // The candidates: the cache as it is now (fresher than the last pass), else the last pass's
    // list; a new operator life without either binds at once by listing.
    const cached = this.#deps.cachedPods?.(env.metadata?.namespace ?? '', envName);
    if (cached) this.#listed.set(key, cached.filter((p) => p.metadata?.ownerReferences?.some((o) => o.uid === env.metadata?.uid) ?? false));
    if (!this.#listed.has(key)) {
      try {
        this.#listed.set(key, await this.#list(env));
      } catch (err) {
        this.#deps.log.warn({ err, environment: key }, 'could not list the warm Pods; serving the item cold');
        return undefined;
      }
    }
    for (const pod of this.#listed.get(key) ?? []) {
      const name = pod.metadata?.name ?? '';
      if (!isUnbound(pod) || !isReady(pod) || pod.metadata?.deletionTimestamp || binding.has(name)) continue;
      binding.add(name);
      try {
        const taken = await this.#takeOne(pod, envName, session, workId);
        this.#listed.set(key, (this.#listed.get(key) ?? []).filter((p) => p !== pod));
        if (!taken) continue;
        this.#deps.log.info({ environment: key, pod: name, session }, 'bound a warm Pod');
        return { name, uid: taken.metadata?.uid ?? pod.metadata?.uid ?? '' };
      } catch (err) {
        this.#deps.log.warn({ err, environment: key, pod: name }, 'could not take a warm Pod; serving the item cold');
        return undefined;
      } finally {
        binding.delete(name);
      }
    }
    return undefined;
  }

  /**
   * One take: the relabel guarded by the listed resourceVersion; on a Conflict (the Pod changed
   * since the list: its status too changes it) the Pod is read again and, still unbound, ready and
   * not being deleted, the take is tried once more on the fresh version. Undefined: taken by
   * another, deleted, or no longer ready.
   */
  async #takeOne(listed: Pod, envName: string, session: string, workId: string): Promise<Pod | undefined> {
    const rest = this.#deps.rest;
    const namespace = listed.metadata?.namespace;
    const name = listed.metadata?.name ?? '';
    const patch = (rv: string | undefined) =>
      rest.patch<Pod>(CORE.pods, namespace, name, {
        metadata: { resourceVersion: rv, labels: workLabels(envName, session, workId), annotations: { [BOUND_AT_ANNOTATION]: new Date((this.#deps.now ?? Date.now)()).toISOString() } },
      }, 'merge');
    let current = listed;
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        return await patch(current.metadata?.resourceVersion);
      } catch (err) {
        if (isNotFound(err)) return undefined;
        if (!isConflict(err) || attempt === 1) {
          if (isConflict(err)) return undefined;
          throw err;
        }
      }
      try {
        current = await rest.get<Pod>(CORE.pods, namespace, name);
      } catch (err) {
        if (isNotFound(err)) return undefined;
        throw err;
      }
      if (current.metadata?.uid !== listed.metadata?.uid || !isUnbound(current) || !isReady(current) || current.metadata?.deletionTimestamp) return undefined;
    }
    return undefined;
  }

  /** A taken Pod that serves nothing (its record was not written, or names another Pod): deleted. */
  async spend(env: AgentEnvironment, pod: { name: string; uid: string }): Promise<void> {
    try {
      await this.#deps.rest.delete(CORE.pods, env.metadata?.namespace, pod.name, { preconditions: { uid: pod.uid } });
    } catch (err) {
      if (!isNotFound(err) && !isConflict(err)) this.#deps.log.warn({ err, pod: pod.name }, 'could not delete a taken warm Pod; the pool deletes it as an orphan');
    }
  }

  #endpoint(): AssignmentEndpoint | undefined {
    if (!this.#deps.assignment && !this.#warnedNoEndpoint) {
      this.#warnedNoEndpoint = true;
      this.#deps.log.warn('spec.selfHosted.warmPool is set but the operator has no assignmentUrl: no warm Pod is started, every session is served cold');
    }
    return this.#deps.assignment;
  }

  /** The endpoint's CA, as the ConfigMap warm Pods project beside their token (in each namespace with a pool). */
  async #ensureCa(namespace: string): Promise<void> {
    const a = this.#deps.assignment;
    if (!a || this.#caWritten.get(namespace) === a.caPem) return;
    const desired = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: a.caConfigMap, namespace, labels: { [LABELS.managedBy]: 'agentenv' } }, data: { 'ca.crt': a.caPem } };
    let current: (KubeObject & { data?: Record<string, string> }) | undefined;
    try {
      current = await this.#deps.rest.get(CORE.configMaps, namespace, a.caConfigMap);
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
    if (!current) {
      await this.#deps.rest.create(CORE.configMaps, namespace, desired).catch((err: unknown) => { if (!isAlreadyExists(err)) throw err; });
    } else if (current.data?.['ca.crt'] !== a.caPem) {
      // A new CA (a new certificate at restart): running warm Pods see it too, the kubelet
      // refreshes projected volumes and the sidecar reads the CA file on every ask.
      await this.#deps.rest.replace(CORE.configMaps, namespace, { ...desired, metadata: { ...desired.metadata, resourceVersion: current.metadata?.resourceVersion ?? '' } });
    }
    this.#caWritten.set(namespace, a.caPem);
  }

  /**
   * The environment's warm Pods: from the cache when it has synced (a Pod it does not show yet is
   * created again → AlreadyExists; one it shows stale fails its precondition), else listed.
   */
  async #list(env: AgentEnvironment): Promise<Pod[]> {
    const namespace = env.metadata?.namespace ?? '';
    const envName = env.metadata?.name ?? '';
    const items = this.#deps.cachedPods?.(namespace, envName)
      ?? (await this.#deps.rest.list<Pod>(CORE.pods, namespace, { labelSelector: `${LABELS.warmPool}=${labelValue(envName)}` })).items;
    // Only Pods this environment owns (a same-named environment recreated has a new uid).
    return items.filter((p) => p.metadata?.ownerReferences?.some((o) => o.uid === env.metadata?.uid) ?? false);
  }

  async #create(env: AgentEnvironment, ordinal: number): Promise<void> {
    const d = this.#deps;
    const pod = desiredWarmPod({ env, ordinal, sidecar: d.sidecar, runner: d.runner, proxyAddress: d.proxyAddress, baseUrl: d.baseUrl, assignment: d.assignment! });
    if (!pod) return;
    try {
      await d.rest.create<Pod>(CORE.pods, pod.metadata?.namespace ?? '', pod);
      d.log.info({ environment: keyOf(env), pod: pod.metadata?.name }, 'started a warm Pod');
    } catch (err) {
      // AlreadyExists: a retried pass, or a name still held; the next pass lists it.
      if (!isAlreadyExists(err)) throw err;
    }
  }

  async #delete(pod: Pod): Promise<void> {
    try {
      // Preconditions: never a Pod that took the name since the list (uid), nor one a hand-off bound
      // since (binding relabels the Pod, which changes its resourceVersion).
      await this.#deps.rest.delete(CORE.pods, pod.metadata?.namespace, pod.metadata?.name ?? '', { preconditions: { uid: pod.metadata?.uid ?? '', resourceVersion: pod.metadata?.resourceVersion ?? '' } });
    } catch (err) {
      if (!isNotFound(err) && !isConflict(err)) throw err;
    }
  }
}
