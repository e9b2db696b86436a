/**
 * The AgentEnvironment's `Dispatching` condition, owned by the dispatchers, not by the
 * AgentEnvironment reconciler: it is written alone by server-side apply with its own field manager
 * (k8s/status.ts `applyCondition`), so the two writers never replace each other's status fields and
 * there is no resourceVersion conflict to retry. Compared with the cached object first: the steady
 * state writes nothing.
 */
import { CONDITIONS } from '../../crd/meta.ts';
import { AGENT_ENVIRONMENTS, type AgentEnvironment } from '../../crd/resources.ts';
import type { Condition, ConditionInput } from '../../k8s/conditions.ts';
import { classify, KubeError } from '../../k8s/errors.ts';
import type { KubeRest } from '../../k8s/rest.ts';
import { applyCondition } from '../../k8s/status.ts';
import type { Logger } from '../../telemetry/logger.ts';
import { backoffDelay, type BackoffPolicy } from '../../util/backoff.ts';
import type { DispatchState } from './poller.ts';

/** The field manager of the `Dispatching` condition (the reconciler writes the rest of the status as `agentenv`). */
export const DISPATCHER_FIELD_MANAGER = 'agentenv-dispatcher';

/** Retries of a write the apiserver turned away for now (429, 5xx), no earlier than it asked. */
const CONDITION_RETRY: BackoffPolicy = { baseMs: 250, capMs: 10_000, jitter: 0.5 };
const CONDITION_ATTEMPTS = 6;

/** The condition a dispatch state stands for. */
export function dispatchingCondition(state: DispatchState): ConditionInput {
  return state.dispatching
    ? { type: CONDITIONS.dispatching, status: 'True', reason: 'Polling', message: 'polling the work queue while below maxSessions' }
    : { type: CONDITIONS.dispatching, status: 'False', reason: state.reason, message: state.message };
}

export interface DispatchingConditionDeps {
  readonly rest: Pick<KubeRest, 'patch'>;
  /** The environment from the informer cache (the latest copy), if it is there. */
  readonly cached: (namespace: string, name: string) => AgentEnvironment | undefined;
  readonly logger: Logger;
}

/**
 * Write `state` as the `Dispatching` condition of `env` when it differs from the cached object. A
 * transient failure (429, 5xx) is tried again with backoff, Retry-After honoured, so the condition
 * does not stay stale until the next state change; anything else is logged (the next change or
 * environment event re-asserts it).
 */
export async function reportDispatching(deps: DispatchingConditionDeps, env: AgentEnvironment, state: DispatchState): Promise<void> {
  const namespace = env.metadata?.namespace ?? '';
  const name = env.metadata?.name ?? '';
  const condition = dispatchingCondition(state);
  for (let attempt = 0; ; attempt++) {
    const current = deps.cached(namespace, name) ?? env;
    try {
      await applyCondition(deps.rest, AGENT_ENVIRONMENTS, current as AgentEnvironment & { status?: { conditions?: Condition[] } }, condition, { fieldManager: DISPATCHER_FIELD_MANAGER });
      return;
    } catch (err) {
      if (classify(err) !== 'transient' || attempt === CONDITION_ATTEMPTS - 1) {
        deps.logger.warn({ err, environment: `${namespace}/${name}` }, 'could not write the Dispatching condition');
        return;
      }
      const retryAfterMs = err instanceof KubeError ? err.retryAfterMs : undefined;
      // Unref'd: a pending retry must not keep a stopping operator alive.
      await new Promise((r) => setTimeout(r, retryAfterMs ? Math.min(retryAfterMs, CONDITION_RETRY.capMs) : backoffDelay(attempt, CONDITION_RETRY)).unref());
    }
  }
}
