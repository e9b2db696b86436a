/**
 * The set of environment dispatchers: one {@link EnvironmentDispatch} per eligible AgentEnvironment
 * ({@link dispatchEligibility}), started and stopped as environments come, go and change, and run
 * only while this operator replica leads. The `Dispatching` condition of an environment that is
 * not dispatched is reported here ({@link reportsNotDispatching}); a dispatched one reports its own.
 */
import type { AgentEnvironment } from '../../crd/resources.ts';
import type { InformerEvent } from '../../k8s/informer.ts';
import { envKey } from './capacity.ts';
import { dispatchEligibility, reportsNotDispatching } from './eligibility.ts';
import { EnvironmentDispatch, type EnvironmentDispatchDeps } from './environment-dispatch.ts';
import type { DispatchLimits, DispatchState } from './poller.ts';
import type { PodRefusal } from '../objects/pod-refusal.ts';

const keyOf = (env: AgentEnvironment): string => envKey(env.metadata?.namespace ?? '', env.metadata?.name ?? '');

export type DispatchersDeps = EnvironmentDispatchDeps;

/** The set of running environment dispatchers, kept in line with the AgentEnvironment cache. */
export class Dispatchers {
  readonly #deps: DispatchersDeps;
  readonly #running = new Map<string, { dispatch: EnvironmentDispatch; uid: string; abort: AbortController; done: Promise<void> }>();
  #leading: AbortSignal | undefined;

  constructor(deps: DispatchersDeps) {
    this.#deps = deps;
    deps.recorded.onChange((key) => this.#running.get(key)?.dispatch.nudge());
  }

  /** Environments currently dispatched (keys). */
  get keys(): string[] {
    return [...this.#running.keys()];
  }

  /** Bring the running set in line with `envs` (the whole cache). No-op while not leading. */
  sync(envs: readonly AgentEnvironment[]): void {
    if (!this.#leading || this.#leading.aborted) return;
    const seen = new Set<string>();
    for (const env of envs) if (this.#follow(env)) seen.add(keyOf(env));
    for (const key of [...this.#running.keys()]) if (!seen.has(key)) this.#stop(key);
  }

  /**
   * One environment changed or went: only its dispatcher can start, stop or change. (Re-checking the
   * whole cache on every event made start-up quadratic in the number of environments.) No-op while
   * not leading.
   */
  apply(e: InformerEvent<AgentEnvironment>): void {
    if (!this.#leading || this.#leading.aborted) return;
    if (e.type === 'delete') void this.#stop(keyOf(e.object));
    else if (!this.#follow(e.object)) void this.#stop(keyOf(e.object));
  }

  /** Start, re-limit or stop the dispatcher of `env`; true when it is dispatched. */
  #follow(env: AgentEnvironment): boolean {
    const leading = this.#leading;
    if (!leading || leading.aborted) return false;
    const key = keyOf(env);
    const uid = env.metadata?.uid ?? '';
    const verdict = dispatchEligibility(env);
    const current = this.#running.get(key);
    if (current && (!verdict.eligible || current.uid !== uid)) this.#stop(key);
    if (verdict.eligible) {
      const running = this.#running.get(key);
      if (running) {
        running.dispatch.update(env, verdict.environmentId, verdict.limits);
        // Level-triggered: a condition lost to a failed write (or overwritten) is put back; an equal one costs nothing.
        if (running.dispatch.lastState) this.#report(env, running.dispatch.lastState);
      } else {
        this.#start(key, uid, env, verdict.environmentId, verdict.limits, leading);
      }
      return true;
    }
    if (reportsNotDispatching(env, verdict)) this.#report(env, { dispatching: false, reason: verdict.reason, message: verdict.message });
    return false;
  }

  /** Run while leading: dispatchers run until `signal` aborts, then every hand-off in flight finishes. */
  async run(signal: AbortSignal, initial: readonly AgentEnvironment[]): Promise<void> {
    this.#leading = signal;
    this.sync(initial);
    await new Promise<void>((resolve) => (signal.aborted ? resolve() : signal.addEventListener('abort', () => resolve(), { once: true })));
    const stopping = [...this.#running.keys()].map((k) => this.#stop(k));
    await Promise.allSettled(stopping);
    this.#leading = undefined;
  }

  #start(key: string, uid: string, env: AgentEnvironment, environmentId: string, limits: DispatchLimits, leading: AbortSignal): void {
    const dispatch = new EnvironmentDispatch({ ...this.#deps, reportCondition: (e, s) => this.#report(e, s) }, env, environmentId, limits);
    const abort = new AbortController();
    const signal = AbortSignal.any([leading, abort.signal]);
    const done = dispatch.run(signal).catch((err: unknown) => this.#deps.logger.error({ err, environment: key }, 'dispatcher crashed'));
    this.#running.set(key, { dispatch, uid, abort, done });
    this.#deps.logger.info({ environment: key, environmentId, ...limits }, 'dispatching work');
  }

  /** A session Pod of environment `key` was refused for capacity: its dispatch holds (admission.ts). */
  refused(key: string, refusal: PodRefusal): void {
    this.#running.get(key)?.dispatch.refused(refusal);
  }

  /** Something the namespace's admission depends on changed (a ResourceQuota, a session Pod): its dispatchers look again. */
  nudgeNamespace(namespace: string): void {
    for (const [key, r] of this.#running) if (key.startsWith(`${namespace}/`)) r.dispatch.nudge();
  }

  /** Stop dispatching for one environment (its deletion); resolves once its hand-offs in flight have finished. */
  stop(key: string): Promise<void> {
    return this.#stop(key);
  }

  #stop(key: string): Promise<void> {
    const r = this.#running.get(key);
    if (!r) return Promise.resolve();
    this.#running.delete(key);
    r.abort.abort();
    this.#deps.logger.info({ environment: key }, 'stopped dispatching work');
    return r.done;
  }

  /** The writer compares with the cached object (and its own writes in flight), so a condition already in place costs nothing. */
  #report(env: AgentEnvironment, state: DispatchState): void {
    this.#deps.reportCondition(env, state);
  }
}
