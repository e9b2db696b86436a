/**
 * One dispatcher per eligible AgentEnvironment, started and stopped as environments come, go and
 * change, and run only while this operator replica leads.
 *
 * An environment is dispatched when it is self-hosted, `Full`, has a `sessionTemplate`, is Ready
 * with a known remote id and is not being deleted ({@link dispatchEligibility}). For each one an
 * {@link EnvironmentDispatch} runs three loops: the {@link Dispatcher} (poll → hand-off), the
 * settle pass (records written but not acknowledged, on start and every `settleIntervalMs`), and
 * the credential refresh (the environment key Secret, re-read on a timer and when the API refuses
 * it). The `Dispatching` condition is written only when its state changes.
 */
import { AuthenticationError, PermissionDeniedError } from '../../api/errors.ts';
import type { EnvironmentsClient } from '../../api/client.ts';
import type { Credential } from '../../api/transport.ts';
import { AgentEnvironmentSpec } from '../../crd/agent-environment.ts';
import { CONDITIONS } from '../../crd/meta.ts';
import type { AgentEnvironment, AgentSession } from '../../crd/resources.ts';
import { isTrue, type Condition } from '../../k8s/conditions.ts';
import type { Logger } from '../../telemetry/logger.ts';
import { CredentialSource, type CredentialResolution } from './credentials.ts';
import { Capacity, envKey, type RecordedSessions } from './capacity.ts';
import { handOff, type HandOffDeps } from './hand-off.ts';
import { DispatchPausedError, POLL_BLOCK_MS } from './plan.ts';
import { Dispatcher, realClock, type DispatchClock, type DispatchLimits, type DispatchState } from './poller.ts';
import { sessionName } from '../record/names.ts';
import { settleCandidates, settleSession } from './settle.ts';

/** Dispatch pauses a new credential can lift, and how often the Secret is re-read meanwhile. */
const CREDENTIAL_REASONS: ReadonlySet<string> = new Set(['CredentialsInvalid', 'PermissionDenied', 'CredentialsMissing']);
const CREDENTIAL_PAUSED_REFRESH_MS = 5_000;

export type Eligibility =
  | { readonly eligible: true; readonly environmentId: string; readonly limits: DispatchLimits }
  | { readonly eligible: false; readonly reason: string; readonly message: string; readonly report: boolean };

/** Whether this environment's work is dispatched here, and if not why (pure). */
export function dispatchEligibility(env: AgentEnvironment): Eligibility {
  const parsed = AgentEnvironmentSpec.safeParse(env.spec);
  const spec = parsed.success ? parsed.data : undefined;
  if (!spec?.selfHosted) return { eligible: false, reason: 'NotSelfHosted', message: 'not a self-hosted environment', report: false };
  if (env.metadata?.deletionTimestamp) return { eligible: false, reason: 'Deleting', message: 'the AgentEnvironment is being deleted; no new work is claimed', report: true };
  if (spec.managementPolicy === 'ObserveOnly') return { eligible: false, reason: 'ObserveOnly', message: 'managementPolicy is ObserveOnly: the operator does not poll for work', report: true };
  if (!spec.selfHosted.sessionTemplate) return { eligible: false, reason: 'NoSessionTemplate', message: 'spec.selfHosted.sessionTemplate is not set: the operator does not poll for work', report: true };
  const id = env.status?.environmentId;
  if (!id || !isTrue(env.status?.conditions as Condition[] | undefined, CONDITIONS.ready)) return { eligible: false, reason: 'EnvironmentNotReady', message: 'waiting for the remote environment to be Ready', report: true };
  return { eligible: true, environmentId: id, limits: { maxSessions: spec.selfHosted.maxSessions, maxPollers: spec.selfHosted.maxPollers } };
}

/**
 * Whether a non-dispatched environment gets `Dispatching=False`: only one that asks to be dispatched
 * (it has a session template) and is held back for a reason of its own, or one whose condition
 * would otherwise go stale. A new environment that is merely not Ready yet, or a self-hosted one
 * without a template, gets no condition (and costs no write).
 */
export function reportsNotDispatching(env: AgentEnvironment, verdict: Eligibility): boolean {
  if (verdict.eligible || !verdict.report) return false;
  const present = (env.status?.conditions ?? []).some((c) => c.type === CONDITIONS.dispatching);
  if (present) return true;
  return Boolean(env.spec.selfHosted?.sessionTemplate) && verdict.reason !== 'EnvironmentNotReady';
}

export interface DispatchRecorder {
  polled(outcome: 'work' | 'empty' | 'error' | 'fatal', code?: string): void;
  recorded(latencyMs: number): void;
  acknowledged(): void;
  settled(action: string): void;
}

export interface DispatchersDeps {
  readonly store: HandOffDeps['store'];
  readonly logger: Logger;
  readonly metrics: DispatchRecorder;
  /** An API client reading its credential through the given function on every call. */
  readonly apiClient: (credential: () => Credential) => EnvironmentsClient;
  readonly resolveCredentials: (env: AgentEnvironment) => Promise<CredentialResolution>;
  /** The operator's identity; worker ids are `<identity>/<env uid>/<slot>`. */
  readonly identity: string;
  readonly recorded: RecordedSessions;
  /** The environment's AgentSessions from the informer cache. */
  readonly sessionsOf: (namespace: string, envName: string) => AgentSession[];
  /** Write the `Dispatching` condition (called on changes only). */
  readonly reportCondition: (env: AgentEnvironment, state: DispatchState) => void;
  readonly onAcknowledged: HandOffDeps['onAcknowledged'];
  /** An acknowledgement of the record (`namespace/name`) waits in memory to be written: not for settling. */
  readonly acknowledgementPending?: (key: string) => boolean;
  readonly clock?: DispatchClock;
  /** Settle pass period. Default 30 s. */
  readonly settleIntervalMs?: number;
  /** A record claimed less than this long ago is left to its hand-off. Default 5 s. */
  readonly settleGraceMs?: number;
  /** Credential Secret re-read period. Default 60 s. */
  readonly credentialRefreshMs?: number;
}

/** Serialises work on one session key (a hand-off and a settle of the same record never overlap). */
class KeyedLock {
  readonly #tails = new Map<string, Promise<unknown>>();
  run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.#tails.get(key) ?? Promise.resolve();
    const next = prev.then(fn, fn);
    const tail = next.catch(() => undefined);
    this.#tails.set(key, tail);
    void tail.then(() => {
      if (this.#tails.get(key) === tail) this.#tails.delete(key);
    });
    return next;
  }
}

/** The dispatcher of one environment, with its settle pass and credential refresh. */
export class EnvironmentDispatch {
  readonly key: string;
  #env: AgentEnvironment;
  #environmentId: string;
  readonly #deps: DispatchersDeps;
  readonly #log: Logger;
  readonly #credentials: CredentialSource;
  readonly #capacity: Capacity;
  readonly #dispatcher: Dispatcher;
  readonly #api: EnvironmentsClient;
  readonly #locks = new KeyedLock();
  /** The last state reported for the `Dispatching` condition (re-asserted on every change of the environment). */
  lastState: DispatchState | undefined;

  constructor(deps: DispatchersDeps, env: AgentEnvironment, environmentId: string, limits: DispatchLimits) {
    this.#deps = deps;
    this.#env = env;
    this.#environmentId = environmentId;
    const ns = env.metadata?.namespace ?? '';
    const name = env.metadata?.name ?? '';
    this.key = envKey(ns, name);
    this.#log = deps.logger.child({ component: 'dispatcher', environment: this.key, environmentId });
    this.#credentials = new CredentialSource({
      resolve: () => deps.resolveCredentials(this.#env),
      onChange: () => {
        this.#log.info('dispatch credential changed');
        this.#dispatcher.credentialsChanged();
      },
      ...(deps.credentialRefreshMs !== undefined ? { refreshMs: deps.credentialRefreshMs } : {}),
    });
    this.#api = deps.apiClient(() => {
      const c = this.#credentials.current;
      if (!c?.ok) throw new DispatchPausedError('CredentialsMissing', 'no dispatch credential');
      return c.credentials.poll;
    });
    this.#capacity = new Capacity(() => deps.recorded.unfinished(this.key));
    const handOffDeps: HandOffDeps = {
      store: deps.store,
      api: this.#api,
      now: () => new Date(),
      logger: this.#log,
      metrics: { dispatched: (ms) => deps.metrics.recorded(ms), acknowledged: () => deps.metrics.acknowledged(), settled: (a) => deps.metrics.settled(a) },
      onAcknowledged: deps.onAcknowledged,
    };
    const sessionKey = (sessionId: string): string => `${ns}/${sessionName(name, sessionId)}`;
    this.#dispatcher = new Dispatcher({
      limits,
      workerIdPrefix: `${deps.identity}/${env.metadata?.uid ?? name}`,
      capacity: this.#capacity,
      poll: (workerId, signal) => this.#poll(workerId, signal),
      sessionKey: (work) => sessionKey(work.data.id),
      handOff: (work, workerId, seenAt) =>
        this.#locks.run(sessionKey(work.data.id), () => handOff(handOffDeps, { work, env: this.#env, credentials: okOrUndefined(this.#credentials.current), workerId, seenAt })),
      report: (state) => {
        this.lastState = state;
        deps.reportCondition(this.#env, state);
      },
      metrics: deps.metrics,
      logger: this.#log,
      ...(deps.clock ? { clock: deps.clock } : {}),
    });
  }

  /** The spec or status changed (limits, owner object, credential references). */
  update(env: AgentEnvironment, environmentId: string, limits: DispatchLimits): void {
    const refsChanged = JSON.stringify([env.spec.selfHosted?.environmentKeySecretRef, env.spec.apiKeySecretRef]) !== JSON.stringify([this.#env.spec.selfHosted?.environmentKeySecretRef, this.#env.spec.apiKeySecretRef]);
    const specChanged = env.metadata?.generation !== this.#env.metadata?.generation || environmentId !== this.#environmentId;
    this.#env = env;
    this.#environmentId = environmentId;
    this.#dispatcher.update(limits, specChanged);
    if (refsChanged) void this.#credentials.refresh(true).catch((err: unknown) => this.#log.warn({ err }, 'credential re-read failed'));
  }

  /** A record of this environment changed: capacity may have been freed. */
  nudge(): void {
    this.#dispatcher.nudge();
  }

  async run(signal: AbortSignal): Promise<void> {
    await Promise.all([this.#dispatcher.run(signal), this.#settleLoop(signal), this.#credentialLoop(signal)]);
  }

  async #poll(workerId: string, signal: AbortSignal) {
    const c = this.#credentials.current ?? (await this.#credentials.refresh());
    if (!c.ok) throw new DispatchPausedError(c.reason, c.message);
    try {
      return await this.#api.pollWork(this.#environmentId, { blockMs: POLL_BLOCK_MS, workerId }, { signal });
    } catch (err) {
      // A refused key may have been rotated: re-read the Secret now (rate-limited).
      if (err instanceof AuthenticationError || err instanceof PermissionDeniedError) void this.#credentials.refresh(true).catch(() => undefined);
      throw err;
    }
  }

  /**
   * Re-read the dispatch credential every `credentialRefreshMs` (60 s), and every 5 s while dispatch
   * is paused because the credential was refused or missing: the operator may not watch Secrets,
   * and a person who just put the right key in the Secret should not wait a minute for it to count.
   */
  async #credentialLoop(signal: AbortSignal): Promise<void> {
    const clock = this.#deps.clock ?? realClock;
    const period = this.#deps.credentialRefreshMs ?? 60_000;
    // Tick at the short period; `refresh` reads the Secret only when the last read is older than
    // the period that applies (60 s, or 5 s while paused), so a tick that has nothing to do is free.
    const tick = Math.min(period, CREDENTIAL_PAUSED_REFRESH_MS);
    while (!signal.aborted) {
      try {
        await this.#credentials.refresh(this.#credentialPaused());
      } catch (err) {
        this.#log.warn({ err }, 'credential re-read failed; keeping the last one');
      }
      await clock.sleep(tick, signal).catch(() => undefined);
    }
  }

  #credentialPaused(): boolean {
    const s = this.lastState;
    return s !== undefined && !s.dispatching && CREDENTIAL_REASONS.has(s.reason);
  }

  /** Settle records written but not acknowledged: at start, then every interval (cache scan; API calls only for such records). */
  async #settleLoop(signal: AbortSignal): Promise<void> {
    const clock = this.#deps.clock ?? realClock;
    const interval = this.#deps.settleIntervalMs ?? 30_000;
    const grace = this.#deps.settleGraceMs ?? 5_000;
    const ns = this.#env.metadata?.namespace ?? '';
    const name = this.#env.metadata?.name ?? '';
    while (!signal.aborted) {
      const now = clock.now();
      const { due, nextDueMs } = settleCandidates(this.#deps.sessionsOf(ns, name), (k) => this.#capacity.inFlight(k) || (this.#deps.acknowledgementPending?.(k) ?? false), now, grace);
      for (const s of due) {
        if (signal.aborted) break;
        const key = `${ns}/${s.metadata?.name ?? ''}`;
        try {
          const action = await this.#locks.run(key, async () => {
            // Re-check inside the lock: a hand-off may just have finished this record.
            if (this.#deps.acknowledgementPending?.(key)) return 'none' as const;
            const fresh = this.#deps.sessionsOf(ns, name).find((x) => x.metadata?.name === s.metadata?.name) ?? s;
            return settleSession({ store: this.#deps.store, api: this.#api, now: () => new Date() }, fresh, {}, signal);
          });
          if (action !== 'none') {
            this.#deps.metrics.settled(action);
            this.#log.info({ session: s.metadata?.name, workId: s.spec.workId, action }, 'settled a record that was not acknowledged');
          }
        } catch (err) {
          if (signal.aborted) break;
          this.#log.warn({ err, session: s.metadata?.name }, 'settling a record failed; retrying on the next pass');
        }
      }
      const wait = Math.max(100, Math.min(interval, (nextDueMs ?? Infinity) - clock.now()));
      await clock.sleep(wait, signal).catch(() => undefined);
    }
  }
}

const okOrUndefined = (r: CredentialResolution | undefined) => (r?.ok ? r.credentials : undefined);

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
    const leading = this.#leading;
    if (!leading || leading.aborted) return;
    const seen = new Set<string>();
    for (const env of envs) {
      const key = envKey(env.metadata?.namespace ?? '', env.metadata?.name ?? '');
      const uid = env.metadata?.uid ?? '';
      const verdict = dispatchEligibility(env);
      const current = this.#running.get(key);
      if (verdict.eligible) seen.add(key);
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
      } else if (reportsNotDispatching(env, verdict)) {
        this.#report(env, { dispatching: false, reason: verdict.reason, message: verdict.message });
      }
    }
    for (const key of [...this.#running.keys()]) if (!seen.has(key)) this.#stop(key);
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

  /** The writer compares with the cached object, so a condition already in place costs nothing. */
  #report(env: AgentEnvironment, state: DispatchState): void {
    this.#deps.reportCondition(env, state);
  }
}
