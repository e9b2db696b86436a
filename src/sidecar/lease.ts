/**
 * The sidecar's view of one work item's lease: what the server last said (the `last_heartbeat` to
 * echo, the TTL it enforces, the item's state) and, once it is over, why. Pure: no I/O, no timers.
 *
 * The set of end reasons is closed and the FIRST reason wins: a teardown started because the lease
 * was lost still reads as lost when the main container exits a moment later, so nobody calls stop
 * on an item that now belongs to the queue or another worker.
 */
import { SIDECAR_EXIT_LEASE_LOST, SIDECAR_EXIT_STOPPED_BY_API } from '../contract/sidecar.ts';

/** Literal the first heartbeat sends as `expected_last_heartbeat` to claim an unclaimed lease. */
export const NO_HEARTBEAT = 'NO_HEARTBEAT';
/** The TTL assumed before the server has told us its own (what the official worker assumes). */
export const DEFAULT_LEASE_TTL_SECONDS = 90;
/** Longest pause between two beats, whatever the TTL. */
export const MAX_BEAT_INTERVAL_MS = 30_000;
/** Shortest pause between two beats, so a tiny TTL cannot turn the loop into a hot loop. */
export const MIN_BEAT_INTERVAL_MS = 1_000;

/** Work states as the API reports them. */
export type WorkState = 'queued' | 'starting' | 'active' | 'stopping' | 'stopped';

/**
 * Why the sidecar stopped keeping (or using) the lease.
 * - `stop-requested`: a reply said `stopping`/`stopped` or `lease_extended: false`, or a beat found
 *   the item already stopped (409): the API wants the session shut down.
 * - `lease-lost`: a beat got 412; the server's lease has moved on (another holder, or the queue).
 * - `lease-expired`: no beat succeeded for longer than the TTL; the lease is assumed lost.
 * - `heartbeat-rejected`: the API refused the beat for good (401/403/404/400): we cannot keep it.
 * - `session-ended`: the main container said the session is done (its stop call).
 * - `terminated`: the sidecar got SIGTERM (Pod deletion, or the kubelet ending the Pod after the
 *   main container ended by itself).
 */
export type EndReason = 'stop-requested' | 'lease-lost' | 'lease-expired' | 'heartbeat-rejected' | 'session-ended' | 'terminated';

/** The lease as persisted in `lease.json` (and restored after a sidecar restart). */
export interface LeaseRecord {
  readonly work_id: string;
  /** The server's last `last_heartbeat`, echoed by the next beat. */
  readonly last_heartbeat: string;
  readonly ttl_seconds: number;
  /** Set once the lease is over: a restarted sidecar must neither beat nor re-claim it. */
  readonly ended?: EndReason;
  /** The item is known to be stopped (no stop call is needed any more). */
  readonly stopped?: boolean;
  /** The lease was lost or expired at some point: stop must never be called. */
  readonly lost?: boolean;
  /** The item's state and `lease_extended` as of the last beat: the virtual lease carries them. */
  readonly state?: WorkState;
  readonly lease_extended?: boolean;
  /** The last `last_heartbeat` the virtual lease handed to the main container (`virtual-lease.ts`). */
  readonly virtual_last_heartbeat?: string;
}

/** A successful heartbeat reply. */
export interface Beat {
  readonly last_heartbeat: string;
  readonly lease_extended: boolean;
  readonly state: WorkState;
  readonly ttl_seconds: number;
}

/** Pause between beats: min(ttl/2, 30 s), at least 1 s, so two beats fit in every TTL. */
export function beatIntervalMs(ttlSeconds: number): number {
  const half = (ttlSeconds * 1000) / 2;
  return Math.max(MIN_BEAT_INTERVAL_MS, Math.min(half, MAX_BEAT_INTERVAL_MS));
}

export class Lease {
  readonly workId: string;
  /** What the next beat sends as `expected_last_heartbeat`. */
  #expected: string;
  #ttlSeconds: number;
  #state: WorkState | undefined;
  #leaseExtended = true;
  #claimed: boolean;
  #endReason: EndReason | undefined;
  #stopped: boolean;
  #lost: boolean;

  private constructor(workId: string, expected: string, ttlSeconds: number, claimed: boolean, ended: EndReason | undefined, stopped: boolean, lost: boolean) {
    this.workId = workId;
    this.#expected = expected;
    this.#ttlSeconds = ttlSeconds;
    this.#claimed = claimed;
    this.#endReason = ended;
    this.#stopped = stopped;
    this.#lost = lost || isLoss(ended);
  }

  /** A lease not claimed yet: the first beat sends `NO_HEARTBEAT`. */
  static unclaimed(workId: string, ttlSeconds: number = DEFAULT_LEASE_TTL_SECONDS): Lease {
    return new Lease(workId, NO_HEARTBEAT, ttlSeconds, false, undefined, false, false);
  }

  /**
   * The lease a previous life of this sidecar held. It counts as claimed (the main container may
   * already run), but `/started` waits for the first beat that echoes the restored stamp.
   */
  static restored(record: LeaseRecord): Lease {
    const lease = new Lease(record.work_id, record.last_heartbeat, record.ttl_seconds, true, record.ended, record.stopped === true, record.lost === true);
    lease.#state = record.state;
    lease.#leaseExtended = record.lease_extended ?? true;
    return lease;
  }

  get expectedLastHeartbeat(): string {
    return this.#expected;
  }

  get ttlSeconds(): number {
    return this.#ttlSeconds;
  }

  get ttlMs(): number {
    return this.#ttlSeconds * 1000;
  }

  get intervalMs(): number {
    return beatIntervalMs(this.#ttlSeconds);
  }

  /** True once a beat (or a previous life) has claimed the lease. */
  get claimed(): boolean {
    return this.#claimed;
  }

  /** The item's state as of the last reply. */
  get state(): WorkState | undefined {
    return this.#state;
  }

  /** `lease_extended` of the last reply. */
  get leaseExtended(): boolean {
    return this.#leaseExtended;
  }

  get endReason(): EndReason | undefined {
    return this.#endReason;
  }

  get ended(): boolean {
    return this.#endReason !== undefined;
  }

  /**
   * True once the item belongs to the queue or another worker: never call stop then. Sticky even
   * when the lease had already ended for another reason (a 412 during a drain still counts).
   */
  get lost(): boolean {
    return this.#lost;
  }

  /** True once the item is known to be stopped (a stop call would only get 409). */
  get stopped(): boolean {
    return this.#stopped;
  }

  /** Should the item be stopped (force, or confirming a graceful stop) once the main container is gone? */
  get needsStopCall(): boolean {
    return this.ended && !this.lost && !this.#stopped;
  }

  /** Should heartbeats continue? Yes until the lease is lost or the item stopped: a drain keeps its lease. */
  get keepsBeating(): boolean {
    return !this.lost && !this.#stopped;
  }

  /**
   * Apply a successful beat. Returns the end reason the reply orders (`stop-requested` when the
   * item is stopping/stopped or the lease was not extended), which the caller records with `end`.
   */
  applyBeat(beat: Beat): EndReason | undefined {
    this.#expected = beat.last_heartbeat;
    if (beat.ttl_seconds > 0) this.#ttlSeconds = beat.ttl_seconds;
    this.#state = beat.state;
    this.#leaseExtended = beat.lease_extended;
    this.#claimed = true;
    if (beat.state === 'stopped') this.#stopped = true;
    if (beat.state === 'stopping' || beat.state === 'stopped' || !beat.lease_extended) return 'stop-requested';
    return undefined;
  }

  /** The item is stopped (a beat got 409, or our stop call succeeded or got 409). */
  markStopped(): void {
    this.#stopped = true;
    this.#state = 'stopped';
  }

  /**
   * Record why the lease ends. Returns true when this call decided it (the first reason wins). A
   * loss is remembered whatever the reason already recorded.
   */
  end(reason: EndReason): boolean {
    if (isLoss(reason)) this.#lost = true;
    if (this.#endReason !== undefined) return false;
    this.#endReason = reason;
    return true;
  }

  /**
   * The exit code that tells the operator how the lease ended (`SIDECAR_EXIT_*` in the contract):
   * lost whatever came first; else the first reason — the API's stop order, or the session's own
   * end. Derived from what `lease.json` keeps, so a restarted sidecar exits with the same code.
   */
  get exitCode(): number {
    if (this.#lost) return SIDECAR_EXIT_LEASE_LOST;
    return this.#endReason === 'stop-requested' ? SIDECAR_EXIT_STOPPED_BY_API : 0;
  }

  /** What `lease.json` holds. */
  record(): LeaseRecord {
    return {
      work_id: this.workId,
      last_heartbeat: this.#expected,
      ttl_seconds: this.#ttlSeconds,
      ...(this.#endReason ? { ended: this.#endReason } : {}),
      ...(this.#stopped ? { stopped: true } : {}),
      ...(this.#lost ? { lost: true } : {}),
      ...(this.#state ? { state: this.#state } : {}),
      lease_extended: this.#leaseExtended,
    };
  }
}

const isLoss = (reason: EndReason | undefined): boolean => reason === 'lease-lost' || reason === 'lease-expired';
