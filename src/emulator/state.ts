/**
 * The emulator's whole in-memory state: API keys, environments, environment keys, the work queue,
 * sessions and their events, long-poll waiters and request counters.
 */
import type { Metadata, Work } from '../api/wire.ts';
import type { Clock } from './clock.ts';
import { EnvironmentStore, checkMetadata } from './environments.ts';
import { EmulatorError } from './errors.ts';
import { newSecret } from './ids.ts';
import { SessionStore, type SessionLimits } from './sessions.ts';
import { WorkQueueModel, type LeaseTtl } from './work.ts';

interface Waiter {
  readonly deliver: () => Work | null;
  readonly respond: (work: Work) => void;
}

export class EmulatorState {
  readonly environments: EnvironmentStore;
  readonly work: WorkQueueModel;
  readonly sessions: SessionStore;
  readonly clock: Clock;
  readonly #apiKeys: Set<string>;
  readonly #environmentKeys = new Map<string, string>(); // key → environment id
  readonly #waiters = new Map<string, Waiter[]>();
  readonly #requests = new Map<string, Map<number, number>>();

  constructor(options: { clock: Clock; apiKeys: readonly string[]; leaseTtl?: LeaseTtl; sessionLimits?: SessionLimits }) {
    this.clock = options.clock;
    const now = (): number => options.clock.now();
    this.#apiKeys = new Set(options.apiKeys);
    this.environments = new EnvironmentStore(now);
    this.work = new WorkQueueModel(now, options.leaseTtl);
    this.sessions = new SessionStore(now, options.sessionLimits);
    this.work.onQueued = (environmentId) => queueMicrotask(() => this.#wakeWaiters(environmentId));
  }

  isApiKey(credential: string): boolean {
    return this.#apiKeys.has(credential);
  }

  environmentForKey(key: string): string | undefined {
    const id = this.#environmentKeys.get(key);
    return id && this.environments.has(id) ? id : undefined;
  }

  /** Mint an environment key (what the Console does). */
  mintEnvironmentKey(environmentId: string): string {
    this.environments.get(environmentId);
    const key = newSecret('sk-ant-oat01-');
    this.#environmentKeys.set(key, environmentId);
    return key;
  }

  keyCounts(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const id of this.#environmentKeys.values()) out[id] = (out[id] ?? 0) + 1;
    return out;
  }

  /**
   * A session targets a self-hosted environment that is not archived: the session resource is
   * created and its first work item queued.
   */
  createSession(environmentId: string, metadata: Metadata): { session_id: string; work_id: string } {
    const e = this.environments.get(environmentId);
    if (e.config.type !== 'self_hosted') throw new EmulatorError(400, `environment ${e.id} is not self-hosted: it cannot take new sessions`);
    if (e.archived_at) throw new EmulatorError(409, `environment ${e.id} is archived: it cannot take new sessions`);
    checkMetadata(metadata);
    const session = this.sessions.create(e.id, metadata);
    return this.work.createSession(session.id, e.id, metadata);
  }

  /** A dormant session gets a message: a new work item, unless the environment is archived or the session terminated. */
  wake(environmentId: string, sessionId: string): { work_id: string } {
    const e = this.environments.get(environmentId);
    if (e.archived_at) throw new EmulatorError(409, `environment ${e.id} is archived and accepts no new work`);
    if (this.sessions.environmentOf(sessionId) === e.id && this.sessions.status(sessionId) === 'terminated') {
      throw new EmulatorError(409, `session ${sessionId} is terminated and gets no new work`);
    }
    return this.work.wake(e.id, sessionId);
  }

  deleteEnvironment(id: string): void {
    this.environments.delete(id);
    this.work.dropEnvironment(id);
    this.sessions.dropEnvironment(id);
    for (const [k, env] of this.#environmentKeys) if (env === id) this.#environmentKeys.delete(k);
  }

  /** Park a long poll; returns a function that withdraws it. */
  wait(environmentId: string, waiter: Waiter): () => void {
    let list = this.#waiters.get(environmentId);
    if (!list) this.#waiters.set(environmentId, (list = []));
    list.push(waiter);
    return () => {
      const l = this.#waiters.get(environmentId);
      const i = l?.indexOf(waiter) ?? -1;
      if (l && i >= 0) l.splice(i, 1);
    };
  }

  /** Hand deliverable items to waiting polls, oldest waiter first. */
  #wakeWaiters(environmentId: string): void {
    const list = this.#waiters.get(environmentId);
    while (list && list.length > 0) {
      const work = list[0]!.deliver();
      if (!work) return;
      list.shift()!.respond(work);
    }
  }

  /** Lease deadlines for every environment (a timer calls this so waiting polls see requeues). */
  sweepAll(): void {
    this.work.sweep();
  }

  countRequest(template: string, status: number): void {
    let m = this.#requests.get(template);
    if (!m) this.#requests.set(template, (m = new Map()));
    m.set(status, (m.get(status) ?? 0) + 1);
  }

  requestCounts(): Record<string, Record<string, number>> {
    return Object.fromEntries([...this.#requests].map(([t, m]) => [t, Object.fromEntries([...m].map(([s, n]) => [String(s), n]))]));
  }

  resetRequestCounts(): void {
    this.#requests.clear();
  }

  snapshot(): Record<string, unknown> {
    this.work.sweep();
    return {
      environments: this.environments.all(),
      work: this.work.records().map((r) => r.work),
      sessions: this.work.sessions().map((s) => ({
        id: s.id,
        environment_id: s.environmentId,
        work_ids: [...s.workIds],
        status: this.sessions.status(s.id),
        events: this.sessions.history(s.id).length,
      })),
      open_streams: this.sessions.openStreams(),
      environment_keys: this.keyCounts(),
      requests: this.requestCounts(),
    };
  }
}
