/**
 * How many sessions an environment has in this cluster, for the dispatcher's capacity rule.
 *
 * Counted from what Kubernetes has recorded (the AgentSession informer cache): every record of the
 * environment that is not in a finished phase, including claimed ones not yet acknowledged. Records
 * are the ledger, so the count survives a restart. Hand-offs in flight are counted too, until the
 * cache shows their record (a reservation per session name), so a burst can never overshoot
 * `maxSessions` while the cache lags behind our own writes.
 */
import type { AgentSession } from '../../crd/resources.ts';
import type { InformerEvent } from '../../k8s/informer.ts';
import { holdsCapacity } from '../record/status.ts';

export const envKey = (namespace: string, name: string): string => `${namespace}/${name}`;

/** An index of unfinished AgentSessions per environment, fed by informer events. */
export class RecordedSessions {
  readonly #byEnv = new Map<string, Set<string>>();
  readonly #envOf = new Map<string, string>();
  readonly #listeners: Array<(envKey: string) => void> = [];

  /** Feed one informer event (add/update/delete). */
  apply(e: InformerEvent<AgentSession>): void {
    const s = e.object;
    const ns = s.metadata?.namespace ?? '';
    const key = `${ns}/${s.metadata?.name ?? ''}`;
    const env = envKey(ns, s.spec?.environmentRef?.name ?? '');
    const unfinished = e.type !== 'delete' && holdsCapacity(s);
    const before = this.#envOf.get(key);
    if (before !== undefined && (!unfinished || before !== env)) {
      this.#byEnv.get(before)?.delete(key);
      this.#envOf.delete(key);
    }
    if (unfinished) {
      let set = this.#byEnv.get(env);
      if (!set) this.#byEnv.set(env, (set = new Set()));
      set.add(key);
      this.#envOf.set(key, env);
    }
    if (before !== undefined && before !== env) this.#notify(before);
    this.#notify(env);
  }

  /** Keys (`namespace/name`) of the environment's unfinished records. */
  unfinished(env: string): ReadonlySet<string> {
    return this.#byEnv.get(env) ?? EMPTY;
  }

  /** Called with the environment key whenever one of its records changes. */
  onChange(listener: (envKey: string) => void): void {
    this.#listeners.push(listener);
  }

  #notify(env: string): void {
    for (const l of this.#listeners) l(env);
  }
}

const EMPTY: ReadonlySet<string> = new Set();

/** Reservations of one environment's hand-offs, on top of what is recorded. */
export class Capacity {
  readonly #recorded: () => ReadonlySet<string>;
  readonly #now: () => number;
  /** session key → `inflight`, or the time after which the reservation lapses while the cache catches up. */
  readonly #reserved = new Map<string, 'inflight' | number>();
  readonly #graceMs: number;

  /**
   * @param recorded the environment's unfinished record keys (from {@link RecordedSessions})
   * @param graceMs how long a finished hand-off's reservation waits for the cache. Default 30 s.
   */
  constructor(recorded: () => ReadonlySet<string>, options: { now?: () => number; graceMs?: number } = {}) {
    this.#recorded = recorded;
    this.#now = options.now ?? Date.now;
    this.#graceMs = options.graceMs ?? 30_000;
  }

  /** A claimed item's hand-off starts (the poll's slot becomes this reservation). */
  begin(sessionKey: string): void {
    this.#reserved.set(sessionKey, 'inflight');
  }

  /**
   * The hand-off ended. `recorded`: its record exists and counts (keep the slot until the cache
   * shows it); otherwise the slot is free at once (nothing was recorded or the record is finished).
   */
  end(sessionKey: string, recorded: boolean): void {
    if (recorded) this.#reserved.set(sessionKey, this.#now() + this.#graceMs);
    else this.#reserved.delete(sessionKey);
  }

  /** Whether a hand-off for this session is running in this process. */
  inFlight(sessionKey: string): boolean {
    return this.#reserved.get(sessionKey) === 'inflight';
  }

  /** Unfinished records ∪ reservations. */
  active(): number {
    const recorded = this.#recorded();
    const now = this.#now();
    let extra = 0;
    for (const [key, state] of this.#reserved) {
      if (state !== 'inflight' && (recorded.has(key) || state <= now)) {
        this.#reserved.delete(key); // the cache has caught up (or the grace lapsed)
        continue;
      }
      if (!recorded.has(key)) extra++;
    }
    return recorded.size + extra;
  }
}
