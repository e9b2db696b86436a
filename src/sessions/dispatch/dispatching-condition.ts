/**
 * The AgentEnvironment's `Dispatching` condition, owned by the dispatchers, not by the
 * AgentEnvironment reconciler: it is written alone by server-side apply with its own field manager
 * (k8s/status.ts `applyCondition`), so the two writers never replace each other's status fields and
 * there is no resourceVersion conflict to retry. Compared with the cached object and the writer's
 * own writes in flight ({@link DispatchingConditionWriter}): the steady state writes nothing.
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
  /** Waits before a retry (tests inject their own). Default: an unref'd timer. */
  readonly sleep?: (ms: number) => Promise<void>;
}

/** What one environment's writer has in hand. */
interface EnvironmentWrites {
  /** A write is in flight: reports meanwhile wait in `next` (only the latest is kept). */
  writing: boolean;
  next?: { readonly env: AgentEnvironment; readonly state: DispatchState };
  /** Our last write, based on the cached object at `resourceVersion`, not yet seen in the cache. */
  written?: { readonly resourceVersion: string; readonly condition: string };
}

/**
 * Writes `state` as the `Dispatching` condition of an environment when it differs from the cached
 * object. Reports come often (every environment event re-asserts the condition, level-triggered),
 * and the cache trails the writes, so two rules keep this to one write per change:
 *
 * - one write in flight per environment; reports made meanwhile are coalesced into the latest;
 * - our own write not yet in the cache: while the cached object is still the one a write was based
 *   on (same resourceVersion) and the same condition is wanted, nothing is written. Without this,
 *   every event during start-up re-wrote every environment whose cache lagged — with 100
 *   environments, tens of thousands of writes and the apiserver answering 429.
 *
 * Once the cache has moved on, the cached object is the judge again: a condition overwritten or
 * lost is put back. A transient failure (429, 5xx) is tried again with backoff, Retry-After
 * honoured; anything else is logged (the next change or environment event re-asserts it).
 */
export class DispatchingConditionWriter {
  readonly #deps: DispatchingConditionDeps;
  readonly #byEnv = new Map<string, EnvironmentWrites>();

  constructor(deps: DispatchingConditionDeps) {
    this.#deps = deps;
  }

  report(env: AgentEnvironment, state: DispatchState): void {
    const namespace = env.metadata?.namespace ?? '';
    const name = env.metadata?.name ?? '';
    const key = `${namespace}/${name}`;
    const entry = this.#byEnv.get(key) ?? { writing: false };
    this.#byEnv.set(key, entry);
    if (entry.writing) {
      entry.next = { env, state };
      return;
    }
    const condition = conditionKey(dispatchingCondition(state));
    const cachedVersion = (this.#deps.cached(namespace, name) ?? env).metadata?.resourceVersion ?? '';
    if (entry.written?.resourceVersion === cachedVersion && entry.written.condition === condition) return;
    entry.written = undefined;
    entry.writing = true;
    void this.#write(env, state).then(
      (basedOn) => {
        if (basedOn !== undefined) entry.written = { resourceVersion: basedOn, condition };
      },
      (err: unknown) => this.#deps.logger.error({ err, environment: key }, 'Dispatching condition writer failed'),
    ).finally(() => {
      entry.writing = false;
      const next = entry.next;
      entry.next = undefined;
      if (next) this.report(next.env, next.state);
      else if (!entry.written) this.#byEnv.delete(key);
    });
  }

  /** Environments with a write in flight or not yet seen in the cache (tests: nothing is kept for good). */
  get tracked(): number {
    return this.#byEnv.size;
  }

  /** One write with its retries; the resourceVersion of the cached object it was based on, when it wrote. */
  async #write(env: AgentEnvironment, state: DispatchState): Promise<string | undefined> {
    const namespace = env.metadata?.namespace ?? '';
    const name = env.metadata?.name ?? '';
    const condition = dispatchingCondition(state);
    const sleep = this.#deps.sleep ?? unrefSleep;
    for (let attempt = 0; ; attempt++) {
      const current = this.#deps.cached(namespace, name) ?? env;
      try {
        const wrote = await applyCondition(this.#deps.rest, AGENT_ENVIRONMENTS, current as AgentEnvironment & { status?: { conditions?: Condition[] } }, condition, { fieldManager: DISPATCHER_FIELD_MANAGER });
        return wrote ? (current.metadata?.resourceVersion ?? '') : undefined;
      } catch (err) {
        if (classify(err) !== 'transient' || attempt === CONDITION_ATTEMPTS - 1) {
          this.#deps.logger.warn({ err, environment: `${namespace}/${name}` }, 'could not write the Dispatching condition');
          return undefined;
        }
        const retryAfterMs = err instanceof KubeError ? err.retryAfterMs : undefined;
        await sleep(retryAfterMs ? Math.min(retryAfterMs, CONDITION_RETRY.capMs) : backoffDelay(attempt, CONDITION_RETRY));
      }
    }
  }
}

const conditionKey = (c: ConditionInput): string => `${c.status}\n${c.reason}\n${c.message}`;

/** Unref'd: a pending retry must not keep a stopping operator alive. */
const unrefSleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms).unref());
