/**
 * Leader election on a `coordination.k8s.io/v1` Lease, so only one operator replica dispatches
 * work and reconciles at a time.
 *
 * Flow:
 * 1. Read the Lease (create it if missing, holding it ourselves).
 * 2. Someone else holds it and has renewed it within `leaseDurationSeconds` *as observed on our
 *    clock* (we time how long the lease's renewTime has stayed unchanged, so clock skew between
 *    machines does not matter) → wait `retryPeriodMs`, go to 1.
 * 3. Otherwise take it with an update guarded by resourceVersion (a Conflict means another
 *    candidate won the race → go to 1).
 * 4. While leading, renew every `retryPeriodMs`; if no renewal succeeds for `renewDeadlineMs`,
 *    leadership is lost: the leading signal aborts (the process should then exit and restart).
 *    {@link LeaderElector.health} reports it from then on, so a process that lost the lead but did
 *    not exit (a loop that does not stop) fails its liveness probe and is restarted; it also
 *    reports a leader whose renewals stopped without failing (a wedged renew loop).
 * 5. On shutdown, release: clear holderIdentity and set leaseDurationSeconds=1 so a standby
 *    replica takes over at once.
 */
import type { Logger } from '../telemetry/logger.ts';
import { sleepUnlessAborted } from '../util/sleep.ts';
import { isAlreadyExists, isConflict, isNotFound } from '../k8s/errors.ts';
import { CORE, type KubeObject, type KubeRest } from '../k8s/rest.ts';

interface Lease extends KubeObject {
  spec?: {
    holderIdentity?: string | null;
    leaseDurationSeconds?: number;
    acquireTime?: string | null;
    renewTime?: string | null;
    leaseTransitions?: number;
  };
}

export interface LeaderElectionOptions {
  readonly rest: KubeRest;
  readonly namespace: string;
  readonly name: string;
  /** Unique per process, e.g. `<pod name>_<random>`. */
  readonly identity: string;
  readonly logger: Logger;
  /** Default 15 s. */
  readonly leaseDurationSeconds?: number;
  /** Default 10 s. */
  readonly renewDeadlineMs?: number;
  /** Default 2 s. */
  readonly retryPeriodMs?: number;
  /** Told when this process starts and stops leading (the `agentenv_leader` gauge). */
  readonly onLeadership?: (leading: boolean) => void;
  /** Injected clock (ms). Default `Date.now`. */
  readonly now?: () => number;
}

/** Micro-second RFC 3339, as the Lease API's MicroTime expects. */
const microTime = (d = new Date()): string => d.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');

export class LeaderElector {
  readonly #o: Required<LeaderElectionOptions>;
  #observed: { renewTime: string | null | undefined; holder: string | null | undefined; at: number } | undefined;
  #leading = false;
  #lastRenew = 0;
  #lost = false;
  /** How much longer another holder's lease runs, as of the last read (undefined: not held by another). */
  #heldForMs: number | undefined;

  constructor(options: LeaderElectionOptions) {
    this.#o = { leaseDurationSeconds: 15, renewDeadlineMs: 10_000, retryPeriodMs: 2_000, onLeadership: () => {}, now: Date.now, ...options };
  }

  get isLeader(): boolean {
    return this.#leading;
  }

  /**
   * Liveness of the election (undefined when healthy): a standby is healthy; leadership lost is
   * reported until the process exits; a leader whose last renewal is older than the renew deadline
   * plus two retry periods has a renew loop that stopped renewing without giving the lead up.
   */
  health(): string | undefined {
    if (this.#lost) return 'leadership lost (the lease could not be renewed in time); the process should have exited';
    if (!this.#leading) return undefined;
    const age = this.#o.now() - this.#lastRenew;
    return age > this.#o.renewDeadlineMs + 2 * this.#o.retryPeriodMs ? `leader lease not renewed for ${Math.round(age / 1000)} s` : undefined;
  }

  /**
   * Campaign until elected, run `lead` with a signal that aborts when leadership is lost or `signal`
   * aborts, then release the lease. Resolves when `lead` has returned.
   */
  async run(signal: AbortSignal, lead: (leading: AbortSignal) => Promise<void>): Promise<void> {
    const log = this.#o.logger;
    // A failed write while campaigning (the apiserver went away between read and write) is one
    // more lost round, not a reason to give up.
    const attempt = (): Promise<boolean> =>
      this.#tryAcquireOrRenew().catch((err: unknown) => {
        log.warn({ err, lease: this.#o.name }, 'leader election: could not write the lease');
        return false;
      });
    while (!signal.aborted && !(await attempt())) {
      await sleepUnlessAborted(nextAttemptInMs(this.#o.retryPeriodMs, this.#heldForMs), signal);
    }
    if (signal.aborted) return;
    this.#leading = true;
    this.#lastRenew = this.#o.now();
    this.#o.onLeadership(true);
    log.info({ lease: this.#o.name, identity: this.#o.identity }, 'became leader');
    const leadership = new AbortController();
    const onAbort = (): void => leadership.abort(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    const renewing = this.#renewLoop(leadership);
    try {
      await lead(leadership.signal);
    } finally {
      leadership.abort();
      await renewing;
      signal.removeEventListener('abort', onAbort);
      this.#leading = false;
      this.#o.onLeadership(false);
      await this.#release();
    }
  }

  async #renewLoop(leadership: AbortController): Promise<void> {
    while (!leadership.signal.aborted) {
      if (!(await sleepUnlessAborted(this.#o.retryPeriodMs, leadership.signal))) return;
      if (await this.#tryAcquireOrRenew().catch(() => false)) {
        this.#lastRenew = this.#o.now();
      } else if (this.#o.now() - this.#lastRenew > this.#o.renewDeadlineMs) {
        this.#lost = true;
        this.#o.logger.error({ lease: this.#o.name }, 'leadership lost: could not renew the lease in time');
        leadership.abort(new Error('leadership lost'));
        return;
      }
    }
  }

  async #tryAcquireOrRenew(): Promise<boolean> {
    const { rest, namespace, name, identity, leaseDurationSeconds } = this.#o;
    const now = microTime();
    let lease: Lease;
    try {
      lease = await rest.get<Lease>(CORE.leases, namespace, name);
    } catch (err) {
      if (!isNotFound(err)) {
        this.#o.logger.warn({ err }, 'leader election: cannot read the lease');
        return false;
      }
      try {
        await rest.create<Lease>(CORE.leases, namespace, {
          metadata: { name, namespace },
          spec: { holderIdentity: identity, leaseDurationSeconds, acquireTime: now, renewTime: now, leaseTransitions: 0 },
        });
        return true;
      } catch (e) {
        if (isAlreadyExists(e)) return false;
        throw e;
      }
    }
    const spec = lease.spec ?? {};
    const held = spec.holderIdentity && spec.holderIdentity !== identity;
    this.#heldForMs = held ? this.#leaseRunsForMs(spec) : undefined;
    if (this.#heldForMs !== undefined && this.#heldForMs >= 0) return false;
    const next: Lease = {
      ...lease,
      spec: {
        ...spec,
        holderIdentity: identity,
        leaseDurationSeconds,
        renewTime: now,
        ...(spec.holderIdentity !== identity ? { acquireTime: now, leaseTransitions: (spec.leaseTransitions ?? 0) + 1 } : {}),
      },
    };
    try {
      await rest.replace(CORE.leases, namespace, next);
      return true;
    } catch (err) {
      if (isConflict(err)) return false;
      throw err;
    }
  }

  /**
   * How much longer the other holder's lease runs, timed on our own clock from when we first saw
   * its current renewTime; negative once it has gone a full lease duration without renewing.
   */
  #leaseRunsForMs(spec: NonNullable<Lease['spec']>): number {
    const nowMs = this.#o.now();
    const durationMs = (spec.leaseDurationSeconds ?? this.#o.leaseDurationSeconds) * 1000;
    const o = this.#observed;
    if (!o || o.renewTime !== spec.renewTime || o.holder !== spec.holderIdentity) {
      this.#observed = { renewTime: spec.renewTime, holder: spec.holderIdentity, at: nowMs };
      return durationMs;
    }
    return durationMs - (nowMs - o.at);
  }

  async #release(): Promise<void> {
    const { rest, namespace, name, identity } = this.#o;
    try {
      const lease = await rest.get<Lease>(CORE.leases, namespace, name);
      if (lease.spec?.holderIdentity !== identity) return;
      await rest.replace(CORE.leases, namespace, {
        ...lease,
        spec: { ...lease.spec, holderIdentity: null, leaseDurationSeconds: 1, renewTime: microTime() },
      });
      this.#o.logger.info({ lease: name }, 'released leadership');
    } catch (err) {
      this.#o.logger.warn({ err }, 'could not release the lease; it will expire');
    }
  }
}

/**
 * The pause before a standby's next attempt: one retry period, or — when the holder's lease runs
 * out sooner — just past its end. A SIGKILLed leader never releases its lease, so failover is its
 * expiry plus this pause; waking at the expiry instead of at the next period takes up to one retry
 * period off every failover. The expiry is still judged on our clock when we read the lease again.
 */
export function nextAttemptInMs(retryPeriodMs: number, heldForMs: number | undefined): number {
  if (heldForMs === undefined) return retryPeriodMs;
  return Math.min(retryPeriodMs, Math.max(1, heldForMs + 1));
}
