/**
 * The AgentEnvironment controller as the operator wires it: the reconciler (reconcile.ts) on the
 * generic runtime, the AgentEnvironment informers (one per watched namespace) and what they
 * enqueue. The informers are made first, on their own, because the sessions feature follows them
 * too (its dispatchers start and stop with the environments) and the reconciler needs the sessions
 * feature's hook: the operator makes the informers, then the sessions feature, then this controller.
 */
import { AGENT_ENVIRONMENTS, type AgentEnvironment } from '../crd/resources.ts';
import { Informer, keyOf, lifecycleChanged, type InformerEvent } from '../k8s/informer.ts';
import type { KubeObject, KubeRest } from '../k8s/rest.ts';
import { Controller, type ControllerObserver } from '../runtime/controller.ts';
import type { Logger } from '../telemetry/logger.ts';
import type { BackoffPolicy } from '../util/backoff.ts';
import { environmentReconciler, type EnvironmentReconcilerDeps } from './reconcile.ts';

export type { SessionsHook } from './deps.ts';

/** One AgentEnvironment informer per watched namespace (all namespaces when none is given). */
export function environmentInformers(rest: KubeRest, namespaces: readonly string[], logger: Logger): Informer<AgentEnvironment>[] {
  return (namespaces.length ? namespaces : [undefined]).map(
    (namespace) =>
      new Informer<AgentEnvironment>(rest, AGENT_ENVIRONMENTS, {
        ...(namespace ? { namespace } : {}),
        logger: logger.child({ component: 'informer', resource: 'agentenvironments', namespace }),
      }),
  );
}

/** Enqueue on spec, deletion and finalizer changes; our own status writes do not trigger a pass. */
export function needsReconcile(e: InformerEvent<KubeObject>): boolean {
  if (e.type !== 'update') return true;
  return lifecycleChanged(e.old, e.object) || JSON.stringify(e.old.metadata?.labels ?? {}) !== JSON.stringify(e.object.metadata?.labels ?? {});
}

export interface EnvironmentControllerDeps extends EnvironmentReconcilerDeps {
  readonly logger: Logger;
  /** From {@link environmentInformers}; the caller runs them (for the life of the process). */
  readonly informers: readonly Informer<AgentEnvironment>[];
  readonly concurrency?: number;
  readonly resyncMs?: number;
  readonly backoff?: BackoffPolicy;
  readonly observer?: ControllerObserver;
}

export interface EnvironmentController {
  readonly controller: Controller;
  /**
   * Run while leading, once the informers have synced: every known object gets a first pass (the
   * informers' add events may predate leadership), then the controller runs until `leading` aborts.
   */
  run(leading: AbortSignal): Promise<void>;
}

export function environmentController(deps: EnvironmentControllerDeps): EnvironmentController {
  const { logger, informers, concurrency, resyncMs, backoff, observer, ...reconcilerDeps } = deps;
  const controller = new Controller({
    name: 'agentenvironment',
    logger,
    ...(concurrency !== undefined ? { concurrency } : {}),
    ...(resyncMs !== undefined ? { resyncMs } : {}),
    ...(observer ? { observer } : {}),
    ...(backoff ? { backoff } : {}),
    reconcile: environmentReconciler(reconcilerDeps),
  });
  for (const informer of informers) informer.on((e) => needsReconcile(e) && controller.enqueue(keyOf(e.object)));
  reconcilerDeps.sessions?.onWarmPodChange?.((namespace, name) => controller.enqueue(`${namespace}/${name}`));
  return {
    controller,
    async run(leading) {
      for (const i of informers) for (const o of i.list()) controller.enqueue(keyOf(o));
      await controller.run(leading);
    },
  };
}
