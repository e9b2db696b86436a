/**
 * The dispatch of one eligible AgentEnvironment: three loops over one credential source, one
 * capacity count and one lock per session key —
 * 1. the poll loop ({@link Poller}, poller.ts): long-poll while there is free capacity and hand
 *    each claimed item off (record → ack → hand over, hand-off.ts) under the session's lock;
 * 2. the settle pass (loops.ts): records written but not acknowledged, on start and every
 *    `settleIntervalMs`, under the same lock;
 * 3. the credential refresh (loops.ts): the environment key Secret, re-read on a timer and at once
 *    when the API refuses it;
 * 4. backpressure (admission.ts): the poll loop asks whether the namespace admits more session Pods,
 *    and while a capacity refusal is held, the probe loop (loops.ts) dry-runs the next Pod.
 * The `Dispatching` condition is reported when its state changes.
 */
import { AuthenticationError, PermissionDeniedError } from '../../api/errors.ts';
import type { EnvironmentsClient } from '../../api/client.ts';
import type { Credential } from '../../api/transport.ts';
import type { AgentEnvironment, AgentSession } from '../../crd/resources.ts';
import type { Logger } from '../../telemetry/logger.ts';
import { CredentialSource, type CredentialResolution } from './credentials.ts';
import { Capacity, envKey, type RecordedSessions } from './capacity.ts';
import { KeyedLock } from './keyed-lock.ts';
import { credentialLoop, probeLoop, settleLoop } from './loops.ts';
import { admissionVerdict, PROBE_INTERVAL_MS, type AdmissionSource, type AdmissionVerdict } from './admission.ts';
import type { Pod } from '../objects/pod-types.ts';
import type { PodRefusal } from '../objects/pod-refusal.ts';
import { quotaFit } from '../objects/quota.ts';
import { handOff, type HandOffDeps } from './hand-off.ts';
import { DispatchPausedError, POLL_BLOCK_MS } from './plan.ts';
import { Poller, realClock, type DispatchClock, type DispatchLimits, type DispatchState } from './poller.ts';
import { sessionName } from '../record/names.ts';
import { settleSession, type SettleDeps } from './settle.ts';

export interface DispatchRecorder {
  polled(outcome: 'work' | 'empty' | 'error' | 'fatal', code?: string): void;
  recorded(latencyMs: number): void;
  acknowledged(): void;
  settled(action: string): void;
}

export interface EnvironmentDispatchDeps {
  readonly store: HandOffDeps['store'];
  readonly logger: Logger;
  readonly metrics: DispatchRecorder;
  /** An API client reading its credential through the given function on every call. */
  readonly apiClient: (credential: () => Credential) => EnvironmentsClient;
  /** `refresh`: the API refused the key (or dispatch is paused for it): re-read the Secret, not the cache. */
  readonly resolveCredentials: (env: AgentEnvironment, options?: { readonly refresh?: boolean }) => Promise<CredentialResolution>;
  /** The operator's identity; worker ids are `<identity>/<env uid>/<slot>`. */
  readonly identity: string;
  readonly recorded: RecordedSessions;
  /** The environment's AgentSessions from the informer cache. */
  readonly sessionsOf: (namespace: string, envName: string) => AgentSession[];
  /** Write the `Dispatching` condition (called on changes only). */
  readonly reportCondition: (env: AgentEnvironment, state: DispatchState) => void;
  readonly onAcknowledged: HandOffDeps['onAcknowledged'];
  /** The warm pool (late binding); absent: every item is served cold. */
  readonly warm?: HandOffDeps['warm'];
  /** This process acknowledged `workId` for the record (`namespace/name`) and its acknowledgement waits in memory to be written: not for acknowledging or settling again. */
  readonly acknowledgedHere?: (key: string, workId: string) => boolean;
  readonly clock?: DispatchClock;
  /** Settle pass period. Default 30 s. */
  readonly settleIntervalMs?: number;
  /** A record claimed less than this long ago is left to its hand-off. Default 5 s. */
  readonly settleGraceMs?: number;
  /** Credential Secret re-read period. Default 60 s. */
  readonly credentialRefreshMs?: number;
  /** Backpressure's view of the cluster; without it, dispatch claims regardless of the namespace's quota. */
  readonly admission?: AdmissionSource;
  /** How often a held refusal is probed. Default {@link PROBE_INTERVAL_MS}. */
  readonly probeIntervalMs?: number;
}

/** The dispatcher of one environment, with its settle pass and credential refresh. */
export class EnvironmentDispatch {
  readonly key: string;
  #env: AgentEnvironment;
  #environmentId: string;
  readonly #deps: EnvironmentDispatchDeps;
  readonly #log: Logger;
  readonly #credentials: CredentialSource;
  readonly #capacity: Capacity;
  readonly #poller: Poller;
  readonly #api: EnvironmentsClient;
  readonly #locks = new KeyedLock();
  /** The last state reported for the `Dispatching` condition (re-asserted on every change of the environment). */
  lastState: DispatchState | undefined;
  /** A capacity refusal of one of this environment's session Pods, held until a dry run admits the next Pod. */
  #held: PodRefusal | undefined;
  /** The environment's next session Pod, built once per spec generation (for the quota's judgement and the probe). */
  #nextPod: { generation: number | undefined; pod: Pod | undefined } | undefined;

  constructor(deps: EnvironmentDispatchDeps, env: AgentEnvironment, environmentId: string, limits: DispatchLimits) {
    this.#deps = deps;
    this.#env = env;
    this.#environmentId = environmentId;
    const ns = env.metadata?.namespace ?? '';
    const name = env.metadata?.name ?? '';
    this.key = envKey(ns, name);
    this.#log = deps.logger.child({ component: 'dispatcher', environment: this.key, environmentId });
    this.#credentials = new CredentialSource({
      resolve: (refresh) => deps.resolveCredentials(this.#env, { refresh }),
      onChange: () => {
        this.#log.info('dispatch credential changed');
        this.#poller.credentialsChanged();
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
      ...(deps.acknowledgedHere ? { acknowledgedHere: deps.acknowledgedHere } : {}),
      ...(deps.warm ? { warm: deps.warm } : {}),
    };
    const sessionKey = (sessionId: string): string => `${ns}/${sessionName(name, sessionId)}`;
    this.#poller = new Poller({
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
      ...(deps.admission ? { admission: () => this.#admission() } : {}),
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
    this.#poller.update(limits, specChanged);
    if (refsChanged) void this.#credentials.refresh(true).catch((err: unknown) => this.#log.warn({ err }, 'credential re-read failed'));
  }

  /** A record of this environment changed: capacity may have been freed. */
  nudge(): void {
    this.#poller.nudge();
  }

  /**
   * A session Pod of this environment was refused for capacity (the session reconciler reports
   * it): claim nothing until a dry run admits the next Pod.
   */
  refused(refusal: PodRefusal): void {
    if (!this.#deps.admission) return;
    if (!this.#held) this.#log.warn({ reason: refusal.reason }, 'a session Pod was refused for capacity; dispatch holds until the next Pod is admitted');
    this.#held = refusal;
    this.#poller.nudge();
  }

  async run(signal: AbortSignal): Promise<void> {
    await Promise.all([this.#poller.run(signal), this.#settleLoop(signal), this.#credentialLoop(signal), this.#probeLoop(signal)]);
  }

  /** Backpressure's verdict now (admission.ts): a held refusal, else the quota's room less the claims whose Pods are not created yet. */
  #admission(): AdmissionVerdict {
    const a = this.#deps.admission!;
    const namespace = this.#env.metadata?.namespace ?? '';
    const quotas = a.quotas(namespace);
    const pod = quotas.length ? this.#pod() : undefined;
    // Claims not yet Pods only shrink a quota's room: with no quota to judge, the room is unlimited
    // and counting them (a look at every record of the namespace, before every poll) is skipped.
    if (!pod) return admissionVerdict({ namespace, held: this.#held, fit: undefined, pending: 0 });
    const unrecorded = Math.max(0, this.#capacity.active() - this.#deps.recorded.unfinished(this.key).size);
    return admissionVerdict({ namespace, held: this.#held, fit: quotaFit(quotas, pod), pending: a.podsPending(namespace) + unrecorded });
  }

  #pod(): Pod | undefined {
    const generation = this.#env.metadata?.generation;
    if (!this.#nextPod || this.#nextPod.generation !== generation) this.#nextPod = { generation, pod: this.#deps.admission!.nextPod(this.#env) };
    return this.#nextPod.pod;
  }

  #probeLoop(signal: AbortSignal): Promise<void> {
    const a = this.#deps.admission;
    if (!a) return Promise.resolve();
    return probeLoop(
      {
        held: () => this.#held,
        probe: async () => {
          const pod = this.#pod();
          return pod ? a.dryRun(pod) : this.#held;
        },
        lift: (still) => {
          this.#held = still;
          if (!still) {
            this.#log.info('the next session Pod is admitted again; dispatch resumes');
            this.#poller.nudge();
          }
        },
        clock: this.#deps.clock ?? realClock,
        intervalMs: this.#deps.probeIntervalMs ?? PROBE_INTERVAL_MS,
        logger: this.#log,
      },
      signal,
    );
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

  #settleLoop(signal: AbortSignal): Promise<void> {
    const ns = this.#env.metadata?.namespace ?? '';
    const name = this.#env.metadata?.name ?? '';
    const acknowledgedHere = (key: string, workId: string): boolean => this.#deps.acknowledgedHere?.(key, workId) ?? false;
    const deps: SettleDeps = { store: this.#deps.store, api: this.#api, now: () => new Date(), acknowledgedHere };
    return settleLoop(
      {
        namespace: ns,
        records: () => this.#deps.sessionsOf(ns, name),
        inFlight: (key) => this.#capacity.inFlight(key),
        acknowledgedHere,
        locks: this.#locks,
        settle: (session, s) => settleSession(deps, session, {}, s),
        settled: (action) => this.#deps.metrics.settled(action),
        clock: this.#deps.clock ?? realClock,
        intervalMs: this.#deps.settleIntervalMs ?? 30_000,
        graceMs: this.#deps.settleGraceMs ?? 5_000,
        logger: this.#log,
      },
      signal,
    );
  }

  #credentialLoop(signal: AbortSignal): Promise<void> {
    const o = { credentials: this.#credentials, state: () => this.lastState, clock: this.#deps.clock ?? realClock, refreshMs: this.#deps.credentialRefreshMs ?? 60_000, logger: this.#log };
    return credentialLoop(o, signal);
  }
}

const okOrUndefined = (r: CredentialResolution | undefined) => (r?.ok ? r.credentials : undefined);

