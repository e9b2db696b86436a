/**
 * The self-hosted work queue of the emulator: sessions, work items, delivery and reclaim, leases
 * and stops. State transitions (queued → starting → active → stopping → stopped) follow the
 * protocol facts; choices where the reference is silent are listed in docs/emulator.md.
 *
 * Lease and reclaim deadlines are evaluated lazily against the injected clock (`sweep`) on every
 * request that touches the environment, and by a periodic sweep, so a manual clock makes expiry
 * deterministic in tests.
 */
import { NO_HEARTBEAT, type Metadata, type QueueStats, type Work, type WorkState } from '../api/wire.ts';
import { encodeWorkSecret } from '../api/work-secret.ts';
import { EmulatorError } from './errors.ts';
import { checkMetadata, mergeMetadata, pageAfter, DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT } from './environments.ts';
import { MonotonicStamp, newId, newSecret, rfc3339 } from './ids.ts';

export interface LeaseTtl {
  /** Applied when a heartbeat asks for no particular TTL. Default 90 s (what the SDK assumes). */
  readonly defaultSeconds: number;
  readonly minSeconds: number;
  readonly maxSeconds: number;
}
export const DEFAULT_LEASE_TTL: LeaseTtl = { defaultSeconds: 90, minSeconds: 10, maxSeconds: 600 };
export const DEFAULT_RECLAIM_MS = 5_000;
/** Workers count towards `workers_polling` for this long after their last poll. */
export const WORKER_WINDOW_MS = 30_000;

/** A work item with the emulator's private bookkeeping. */
export interface WorkRecord {
  work: Work;
  /** When the item was last delivered by a poll and not yet acknowledged. */
  deliveredAt: number | undefined;
  /** The lease: the server's last heartbeat stamp (null until claimed) and its deadline. */
  lastHeartbeat: string | null;
  ttlSeconds: number;
  deadline: number | undefined;
  /** Per-item bearer token, minted on first delivery when work secrets are enabled. */
  sessionsToken: string | undefined;
}

export interface SessionRecord {
  readonly id: string;
  readonly environmentId: string;
  readonly metadata: Metadata;
  readonly workIds: string[];
}

export class WorkQueueModel {
  readonly #items = new Map<string, WorkRecord>();
  readonly #byEnvironment = new Map<string, Map<string, WorkRecord>>();
  readonly #sessions = new Map<string, SessionRecord>();
  readonly #workers = new Map<string, Map<string, number>>();
  readonly #tokens = new Map<string, string>(); // sessions token → work id
  readonly #stamp = new MonotonicStamp();
  readonly #now: () => number;
  /** No record's deadline is earlier than this (Infinity when none is set). */
  #earliestDeadline = Infinity;
  readonly #ttl: LeaseTtl;
  /** Called when an item becomes deliverable (new, woken, or back from a lapsed lease). */
  onQueued: (environmentId: string) => void = () => undefined;

  constructor(now: () => number, ttl: LeaseTtl = DEFAULT_LEASE_TTL) {
    this.#now = now;
    this.#ttl = ttl;
  }

  records(environmentId?: string): WorkRecord[] {
    if (environmentId === undefined) return [...this.#items.values()];
    return [...(this.#byEnvironment.get(environmentId)?.values() ?? [])];
  }

  #recordsOf(environmentId: string): Iterable<WorkRecord> {
    return this.#byEnvironment.get(environmentId)?.values() ?? [];
  }

  sessions(): SessionRecord[] {
    return [...this.#sessions.values()];
  }

  get(environmentId: string, workId: string): WorkRecord {
    this.sweep();
    const r = this.#items.get(workId);
    if (!r || r.work.environment_id !== environmentId) throw new EmulatorError(404, `work item ${workId} not found`);
    return r;
  }

  /** The session a work item serves. */
  sessionOfWork(workId: string): string | undefined {
    return this.#items.get(workId)?.work.data.id;
  }

  /** The work id a per-item sessions token belongs to. */
  workForToken(token: string): string | undefined {
    return this.#tokens.get(token);
  }

  // --- admin ------------------------------------------------------------------------------------

  /** Queue the first work item of a new session (the session resource itself lives in `SessionStore`). */
  createSession(sessionId: string, environmentId: string, metadata: Metadata): { session_id: string; work_id: string } {
    const session: SessionRecord = { id: sessionId, environmentId, metadata, workIds: [] };
    this.#sessions.set(session.id, session);
    const work = this.#enqueue(session);
    return { session_id: session.id, work_id: work.id };
  }

  /** A dormant session gets a message: a new work item for the same session. */
  wake(environmentId: string, sessionId: string): { work_id: string } {
    const session = this.#sessions.get(sessionId);
    if (!session || session.environmentId !== environmentId) throw new EmulatorError(404, `session ${sessionId} not found`);
    const live = session.workIds.map((id) => this.#items.get(id)).find((r) => r && r.work.state !== 'stopped');
    if (live) throw new EmulatorError(409, `session ${sessionId} already has live work item ${live.work.id} (${live.work.state})`);
    return { work_id: this.#enqueue(session).id };
  }

  dropEnvironment(environmentId: string): void {
    for (const r of this.records(environmentId)) {
      this.#items.delete(r.work.id);
      if (r.sessionsToken) this.#tokens.delete(r.sessionsToken);
    }
    this.#byEnvironment.delete(environmentId);
    for (const s of this.sessions()) if (s.environmentId === environmentId) this.#sessions.delete(s.id);
    this.#workers.delete(environmentId);
  }

  #enqueue(session: SessionRecord): Work {
    const work: Work = {
      id: newId('work'),
      type: 'work',
      environment_id: session.environmentId,
      data: { id: session.id, type: 'session' },
      state: 'queued',
      metadata: { ...session.metadata },
      created_at: rfc3339(this.#now()),
      acknowledged_at: null,
      started_at: null,
      latest_heartbeat_at: null,
      stop_requested_at: null,
      stopped_at: null,
    };
    const record: WorkRecord = { work, deliveredAt: undefined, lastHeartbeat: null, ttlSeconds: this.#ttl.defaultSeconds, deadline: undefined, sessionsToken: undefined };
    this.#items.set(work.id, record);
    let forEnvironment = this.#byEnvironment.get(session.environmentId);
    if (!forEnvironment) this.#byEnvironment.set(session.environmentId, (forEnvironment = new Map()));
    forEnvironment.set(work.id, record);
    session.workIds.push(work.id);
    this.onQueued(session.environmentId);
    return work;
  }

  // --- poll and acknowledge ---------------------------------------------------------------------

  notePoller(environmentId: string, workerId: string | undefined): void {
    if (!workerId) return;
    let m = this.#workers.get(environmentId);
    if (!m) this.#workers.set(environmentId, (m = new Map()));
    m.set(workerId, this.#now());
  }

  /**
   * Deliver the oldest deliverable item: queued and either never delivered or delivered more than
   * `reclaimMs` ago without an acknowledgement. Delivery marks it pending.
   */
  deliver(environmentId: string, reclaimMs: number, withSecret: { apiBaseUrl: string } | undefined): Work | null {
    this.sweep();
    const now = this.#now();
    let best: WorkRecord | undefined;
    for (const r of this.#recordsOf(environmentId)) {
      if (r.work.state !== 'queued') continue;
      if (r.deliveredAt !== undefined && now - r.deliveredAt < reclaimMs) continue;
      if (!best || r.work.created_at < best.work.created_at) best = r;
    }
    if (!best) return null;
    best.deliveredAt = now;
    if (!withSecret) return best.work;
    if (!best.sessionsToken) {
      best.sessionsToken = newSecret('sk-ant-req-');
      this.#tokens.set(best.sessionsToken, best.work.id);
    }
    return { ...best.work, secret: encodeWorkSecret({ sessions_token: best.sessionsToken, api_base_url: withSecret.apiBaseUrl }) };
  }

  ack(environmentId: string, workId: string): Work {
    const r = this.get(environmentId, workId);
    if (r.work.state !== 'queued') throw new EmulatorError(409, `work item ${workId} cannot be acknowledged: it is ${r.work.state}`);
    const now = this.#now();
    r.work = { ...r.work, state: 'starting', acknowledged_at: rfc3339(now) };
    r.deliveredAt = undefined;
    // An acknowledged item whose lease is never claimed goes back to the queue after one default TTL.
    this.#setDeadline(r, now + this.#ttl.defaultSeconds * 1000);
    return r.work;
  }

  // --- lease -------------------------------------------------------------------------------------

  heartbeat(environmentId: string, workId: string, expected: string, desiredTtl: number | undefined): { last_heartbeat: string; lease_extended: boolean; state: WorkState; ttl_seconds: number } {
    const r = this.get(environmentId, workId);
    const state = r.work.state;
    if (state === 'queued') throw new EmulatorError(409, `work item ${workId} has not been acknowledged`);
    if (state === 'stopped') throw new EmulatorError(409, `work item ${workId} is stopped`);
    const claiming = expected === NO_HEARTBEAT;
    if (claiming ? r.lastHeartbeat !== null : expected !== r.lastHeartbeat) {
      throw new EmulatorError(412, claiming ? `the lease of work item ${workId} is already claimed` : `expected_last_heartbeat does not match the lease of work item ${workId}`, {
        details: { current_state: { state, ttl_seconds: r.ttlSeconds, last_heartbeat: r.lastHeartbeat } },
      });
    }
    const now = this.#now();
    const ttl = clamp(desiredTtl ?? r.ttlSeconds, this.#ttl.minSeconds, this.#ttl.maxSeconds);
    const stamp = this.#stamp.next(now);
    r.lastHeartbeat = stamp;
    r.ttlSeconds = ttl;
    this.#setDeadline(r, now + ttl * 1000);
    r.work = {
      ...r.work,
      latest_heartbeat_at: stamp,
      ...(state === 'starting' ? { state: 'active' as const, started_at: rfc3339(now) } : {}),
    };
    return { last_heartbeat: stamp, lease_extended: true, state: r.work.state, ttl_seconds: ttl };
  }

  /** Graceful: active/starting → stopping, and a stop of a stopping item confirms it. Force: → stopped. */
  stop(environmentId: string, workId: string, force: boolean): Work {
    const r = this.get(environmentId, workId);
    const now = this.#now();
    switch (r.work.state) {
      case 'stopped':
        throw new EmulatorError(409, `work item ${workId} is already stopped`);
      case 'queued':
        // Nobody runs a queued item, so there is nothing to drain.
        this.#finish(r, now);
        break;
      case 'starting':
      case 'active':
        if (force) this.#finish(r, now);
        else r.work = { ...r.work, state: 'stopping', stop_requested_at: rfc3339(now) };
        break;
      case 'stopping':
        this.#finish(r, now);
        break;
    }
    return r.work;
  }

  update(environmentId: string, workId: string, patch: Record<string, string | null>): Work {
    const r = this.get(environmentId, workId);
    const metadata = mergeMetadata(r.work.metadata, patch, false);
    checkMetadata(metadata);
    r.work = { ...r.work, metadata };
    return r.work;
  }

  list(environmentId: string, opts: { limit?: number; page?: string }): { data: Work[]; next_page: string | null } {
    this.sweep();
    const limit = opts.limit ?? DEFAULT_LIST_LIMIT;
    if (!Number.isInteger(limit) || limit < 1 || limit > MAX_LIST_LIMIT) throw new EmulatorError(400, `limit must be an integer between 1 and ${MAX_LIST_LIMIT}`);
    const items = this.records(environmentId)
      .map((r) => r.work)
      .sort((a, b) => (a.created_at === b.created_at ? (a.id < b.id ? 1 : -1) : a.created_at < b.created_at ? 1 : -1));
    return pageAfter(items, opts.page, limit, (w) => [w.created_at, w.id], true);
  }

  stats(environmentId: string): QueueStats {
    this.sweep();
    const now = this.#now();
    let depth = 0;
    let pending = 0;
    let oldest: string | null = null;
    for (const r of this.#recordsOf(environmentId)) {
      if (r.work.state !== 'queued') continue;
      if (r.deliveredAt !== undefined) pending++;
      else depth++;
      if (oldest === null || r.work.created_at < oldest) oldest = r.work.created_at;
    }
    let workers = 0;
    for (const seen of this.#workers.get(environmentId)?.values() ?? []) if (now - seen <= WORKER_WINDOW_MS) workers++;
    return { type: 'work_queue_stats', depth, pending, oldest_queued_at: oldest, workers_polling: workers };
  }

  /**
   * Apply every deadline that has passed: an active lease not renewed within its TTL, or a
   * starting item never claimed, goes back to the queue; a stopping item whose lease lapsed is
   * stopped (its worker is gone).
   */
  sweep(): void {
    const now = this.#now();
    // Nothing is due before the earliest deadline set: most calls return here, instead of scanning
    // every record on every request (a burst of 1,000 items made each call a scan of 1,000).
    if (now < this.#earliestDeadline) return;
    let earliest = Infinity;
    for (const r of this.#items.values()) {
      if (r.deadline === undefined) continue;
      if (r.deadline > now) {
        earliest = Math.min(earliest, r.deadline);
        continue;
      }
      if (r.work.state === 'stopping') {
        this.#finish(r, now);
      } else if (r.work.state === 'active' || r.work.state === 'starting') {
        r.work = { ...r.work, state: 'queued', acknowledged_at: null, started_at: null, latest_heartbeat_at: null };
        r.lastHeartbeat = null;
        r.deadline = undefined;
        r.deliveredAt = undefined;
        r.ttlSeconds = this.#ttl.defaultSeconds;
        this.onQueued(r.work.environment_id);
      }
    }
    this.#earliestDeadline = earliest;
  }

  /** Every deadline is set here, so the sweep's lower bound stays true. */
  #setDeadline(r: WorkRecord, at: number): void {
    r.deadline = at;
    this.#earliestDeadline = Math.min(this.#earliestDeadline, at);
  }

  #finish(r: WorkRecord, now: number): void {
    r.work = { ...r.work, state: 'stopped', stopped_at: rfc3339(now) };
    r.deadline = undefined;
    r.deliveredAt = undefined;
    // The sessions token stays valid for the item, so a late stop still gets its 409 "already stopped".
  }
}

const clamp = (v: number, lo: number, hi: number): number => Math.min(hi, Math.max(lo, Math.round(v)));
