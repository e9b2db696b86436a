import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ConflictError, InvalidRequestError, PermissionDeniedError, PreconditionFailedError } from '../../src/api/errors.ts';
import { decodeWorkSecret } from '../../src/api/work-secret.ts';
import { NO_HEARTBEAT } from '../../src/api/wire.ts';
import { ManualClock, type RunningEmulator } from '../../src/emulator/index.ts';
import { clientFor, emulator, selfHosted } from '../support/emulator.ts';

let emu: RunningEmulator;
let clock: ManualClock;
beforeEach(async () => {
  clock = new ManualClock(Date.parse('2026-11-22T12:00:00Z'));
  emu = await emulator({ clock });
});
afterEach(() => emu.close());

async function queued() {
  const api = clientFor(emu);
  const env = await selfHosted(api);
  const { session_id, work_id } = emu.admin.createSession(env.id, { team: 'a' });
  return { api, env, session_id, work_id };
}

describe('work queue: poll and acknowledge', () => {
  it('returns null at once when the queue is empty and no block_ms is given', async () => {
    const api = clientFor(emu);
    const env = await selfHosted(api);
    expect(await api.pollWork(env.id)).toBeNull();
  });

  it('wakes a waiting long poll as soon as work arrives', async () => {
    const api = clientFor(emu);
    const env = await selfHosted(api);
    const polling = api.pollWork(env.id, { blockMs: 999 });
    await new Promise((r) => setTimeout(r, 20));
    const { work_id } = emu.admin.createSession(env.id);
    const work = await polling;
    expect(work?.id).toBe(work_id);
  });

  it.each([0, 1000, -5])('refuses block_ms=%i with a 400', async (blockMs) => {
    const api = clientFor(emu);
    const env = await selfHosted(api);
    await expect(api.pollWork(env.id, { blockMs })).rejects.toBeInstanceOf(InvalidRequestError);
  });

  it('keeps a delivered item pending until acknowledged, and re-delivers it after reclaim_older_than_ms', async () => {
    const { api, env, work_id } = await queued();
    expect((await api.pollWork(env.id))?.id).toBe(work_id);
    expect(await api.pollWork(env.id)).toBeNull();
    expect(await api.getQueueStats(env.id)).toMatchObject({ depth: 0, pending: 1 });
    clock.advance(5_001);
    expect((await api.pollWork(env.id))?.id).toBe(work_id);
    clock.advance(1_000);
    expect((await api.pollWork(env.id, { reclaimOlderThanMs: 500 }))?.id).toBe(work_id);
  });

  it('acknowledges queued → starting, and answers 409 when not acknowledgeable', async () => {
    const { api, env, work_id } = await queued();
    await api.pollWork(env.id);
    const acked = await api.ackWork(env.id, work_id);
    expect(acked).toMatchObject({ state: 'starting' });
    expect(acked.acknowledged_at).toBeTruthy();
    await expect(api.ackWork(env.id, work_id, { retry: { maxRetries: 0, backoff: { baseMs: 1, capMs: 1 }, maxRetryAfterMs: 0 } })).rejects.toBeInstanceOf(ConflictError);
  });

  it('counts distinct workers that polled in the last 30 s', async () => {
    const api = clientFor(emu);
    const env = await selfHosted(api);
    await api.pollWork(env.id, { workerId: 'w1' });
    await api.pollWork(env.id, { workerId: 'w2' });
    await api.pollWork(env.id, { workerId: 'w1' });
    expect((await api.getQueueStats(env.id)).workers_polling).toBe(2);
    clock.advance(30_001);
    expect((await api.getQueueStats(env.id)).workers_polling).toBe(0);
  });

  it('reports depth, pending and the oldest queued item', async () => {
    const { api, env } = await queued();
    emu.admin.createSession(env.id);
    await api.pollWork(env.id);
    const stats = await api.getQueueStats(env.id);
    expect(stats).toMatchObject({ depth: 1, pending: 1 });
    expect(stats.oldest_queued_at).toBeTruthy();
  });
});

describe('work queue: the lease', () => {
  async function acked() {
    const q = await queued();
    await q.api.pollWork(q.env.id);
    await q.api.ackWork(q.env.id, q.work_id);
    return q;
  }

  it('claims with NO_HEARTBEAT (starting → active) and renews only with the exact previous last_heartbeat', async () => {
    const { api, env, work_id } = await acked();
    const first = await api.heartbeatWork(env.id, work_id, { expectedLastHeartbeat: NO_HEARTBEAT });
    expect(first).toMatchObject({ type: 'work_heartbeat', state: 'active', lease_extended: true, ttl_seconds: 90 });
    expect((await api.getWork(env.id, work_id)).started_at).toBeTruthy();
    const second = await api.heartbeatWork(env.id, work_id, { expectedLastHeartbeat: first.last_heartbeat });
    expect(second.last_heartbeat > first.last_heartbeat).toBe(true);
    const stale = await api.heartbeatWork(env.id, work_id, { expectedLastHeartbeat: first.last_heartbeat }).catch((e: unknown) => e);
    expect(stale).toBeInstanceOf(PreconditionFailedError);
    expect((stale as PreconditionFailedError).leaseState).toEqual({ state: 'active', ttl_seconds: 90, last_heartbeat: second.last_heartbeat });
  });

  it('refuses a second claim with 412', async () => {
    const { api, env, work_id } = await acked();
    await api.heartbeatWork(env.id, work_id, { expectedLastHeartbeat: NO_HEARTBEAT });
    await expect(api.heartbeatWork(env.id, work_id, { expectedLastHeartbeat: NO_HEARTBEAT })).rejects.toBeInstanceOf(PreconditionFailedError);
  });

  it('clamps desired_ttl_seconds to the configured range', async () => {
    const { api, env, work_id } = await acked();
    const low = await api.heartbeatWork(env.id, work_id, { expectedLastHeartbeat: NO_HEARTBEAT, desiredTtlSeconds: 1 });
    expect(low.ttl_seconds).toBe(10);
    const high = await api.heartbeatWork(env.id, work_id, { expectedLastHeartbeat: low.last_heartbeat, desiredTtlSeconds: 100_000 });
    expect(high.ttl_seconds).toBe(600);
  });

  it('puts an active item whose lease lapsed back in the queue', async () => {
    const { api, env, work_id } = await acked();
    await api.heartbeatWork(env.id, work_id, { expectedLastHeartbeat: NO_HEARTBEAT, desiredTtlSeconds: 30 });
    clock.advance(30_001);
    expect(await api.getWork(env.id, work_id)).toMatchObject({ state: 'queued', acknowledged_at: null });
    expect((await api.pollWork(env.id))?.id).toBe(work_id);
  });

  it('puts an acknowledged item that was never claimed back in the queue after the default TTL', async () => {
    const { api, env, work_id } = await acked();
    clock.advance(90_001);
    expect((await api.getWork(env.id, work_id)).state).toBe('queued');
  });

  it('refuses heartbeats on queued (409) and stopped (409) items', async () => {
    const { api, env, work_id } = await queued();
    await expect(api.heartbeatWork(env.id, work_id, { expectedLastHeartbeat: NO_HEARTBEAT })).rejects.toBeInstanceOf(ConflictError);
    await api.stopWork(env.id, work_id, { force: true });
    await expect(api.heartbeatWork(env.id, work_id, { expectedLastHeartbeat: NO_HEARTBEAT })).rejects.toBeInstanceOf(ConflictError);
  });
});

describe('work queue: stop', () => {
  async function active() {
    const q = await queued();
    await q.api.pollWork(q.env.id);
    await q.api.ackWork(q.env.id, q.work_id);
    const hb = await q.api.heartbeatWork(q.env.id, q.work_id, { expectedLastHeartbeat: NO_HEARTBEAT });
    return { ...q, hb };
  }

  it('stops gracefully: active → stopping (heartbeats say so), and the worker\'s own stop confirms → stopped', async () => {
    const { api, env, work_id, hb } = await active();
    const stopping = await api.stopWork(env.id, work_id);
    expect(stopping.state).toBe('stopping');
    expect(stopping.stop_requested_at).toBeTruthy();
    expect((await api.heartbeatWork(env.id, work_id, { expectedLastHeartbeat: hb.last_heartbeat })).state).toBe('stopping');
    const stopped = await api.stopWork(env.id, work_id);
    expect(stopped.state).toBe('stopped');
    expect(stopped.stopped_at).toBeTruthy();
  });

  it('force-stops at once, and a second stop is a 409', async () => {
    const { api, env, work_id } = await active();
    expect((await api.stopWork(env.id, work_id, { force: true })).state).toBe('stopped');
    await expect(api.stopWork(env.id, work_id, { force: true }, { retry: { maxRetries: 0, backoff: { baseMs: 1, capMs: 1 }, maxRetryAfterMs: 0 } })).rejects.toBeInstanceOf(ConflictError);
  });

  it('stops a stopping item whose lease lapses (its worker is gone)', async () => {
    const { api, env, work_id } = await active();
    await api.stopWork(env.id, work_id);
    clock.advance(90_001);
    expect((await api.getWork(env.id, work_id)).state).toBe('stopped');
  });
});

describe('work queue: list, get, update, sessions', () => {
  it('merges metadata updates (null deletes) and lists work with cursors', async () => {
    const { api, env, work_id } = await queued();
    const updated = await api.updateWork(env.id, work_id, { team: null, owner: 'me' });
    expect(updated.metadata).toEqual({ owner: 'me' });
    for (let i = 0; i < 4; i++) emu.admin.createSession(env.id);
    const ids: string[] = [];
    for await (const w of api.listWork(env.id, { limit: 2 })) ids.push(w.id);
    expect(ids).toHaveLength(5);
    expect(new Set(ids).size).toBe(5);
  });

  it('wakes a dormant session with a new work item for the same session, but not while one is live', async () => {
    const { api, env, session_id, work_id } = await queued();
    expect(() => emu.admin.wake(env.id, session_id)).toThrow(/live work item/);
    await api.stopWork(env.id, work_id, { force: true });
    const { work_id: next } = emu.admin.wake(env.id, session_id);
    expect(next).not.toBe(work_id);
    expect((await api.getWork(env.id, next)).data).toEqual({ id: session_id, type: 'session' });
  });
});

describe('per-item secrets', () => {
  it('carries a sessions token that works for its own item only', async () => {
    const own = await emulator({ clock, workSecrets: true });
    try {
      const api = clientFor(own);
      const env = await selfHosted(api);
      const a = own.admin.createSession(env.id);
      const b = own.admin.createSession(env.id);
      const work = await api.pollWork(env.id);
      const secret = decodeWorkSecret(work?.secret);
      expect(secret?.sessions_token).toMatch(/^sk-ant-req-/);
      expect(secret?.api_base_url).toBe(own.url);
      const asItem = clientFor(own, { kind: 'bearer', value: secret!.sessions_token });
      const mine = work!.id;
      const other = mine === a.work_id ? b.work_id : a.work_id;
      await expect(asItem.ackWork(env.id, mine)).resolves.toMatchObject({ state: 'starting' });
      await expect(asItem.heartbeatWork(env.id, mine, { expectedLastHeartbeat: NO_HEARTBEAT })).resolves.toMatchObject({ state: 'active' });
      await expect(asItem.getWork(env.id, other)).rejects.toBeInstanceOf(PermissionDeniedError);
      await expect(asItem.pollWork(env.id)).rejects.toBeInstanceOf(PermissionDeniedError);
      await expect(asItem.stopWork(env.id, mine, { force: true })).resolves.toMatchObject({ state: 'stopped' });
    } finally {
      await own.close();
    }
  });
});

describe('emulator admin reads and duplicate delivery', () => {
  const admin = async <T>(path: string, method = 'GET'): Promise<T> => (await (await fetch(`${emu.url}/emulator/v1${path}`, { method })).json()) as T;

  it('a reclaim makes a pending item deliverable again at once: the next poll delivers it a second time', async () => {
    const { api, env, work_id } = await queued();
    expect((await api.pollWork(env.id))?.id).toBe(work_id);
    expect(await api.pollWork(env.id)).toBeNull();
    expect(await admin(`/environments/${env.id}/work/reclaim`, 'POST')).toEqual({ reclaimed: 1 });
    expect((await api.pollWork(env.id))?.id).toBe(work_id);
    await api.ackWork(env.id, work_id);
    expect(await admin(`/environments/${env.id}/work/reclaim`, 'POST')).toEqual({ reclaimed: 0 });
  });

  it('lists each worker that polled with its last poll', async () => {
    const { api, env } = await queued();
    await api.pollWork(env.id, { workerId: 'replica-a/1' });
    expect(await admin(`/environments/${env.id}/workers`)).toEqual({ data: [{ worker_id: 'replica-a/1', last_poll_at: '2026-11-22T12:00:00.000Z' }] });
  });

  it('records each lease of an item, and counts a beat of an earlier lease after a new claim as stale', async () => {
    const { api, env, work_id } = await queued();
    await api.pollWork(env.id);
    await api.ackWork(env.id, work_id);
    const first = await api.heartbeatWork(env.id, work_id, { expectedLastHeartbeat: NO_HEARTBEAT, desiredTtlSeconds: 10 });
    clock.advance(10_001); // the first holder's lease lapses; the item is queued again
    await api.pollWork(env.id);
    await api.ackWork(env.id, work_id);
    await api.heartbeatWork(env.id, work_id, { expectedLastHeartbeat: NO_HEARTBEAT });
    await expect(api.heartbeatWork(env.id, work_id, { expectedLastHeartbeat: first.last_heartbeat }, { retry: { maxRetries: 0, backoff: { baseMs: 1, capMs: 1 }, maxRetryAfterMs: 0 } })).rejects.toBeInstanceOf(PreconditionFailedError);
    const { data } = await admin<{ data: Array<{ work_id: string; leases: Array<{ end: string | null }>; stale_heartbeats: number }> }>(`/environments/${env.id}/work/leases`);
    expect(data).toEqual([expect.objectContaining({ work_id, stale_heartbeats: 1, leases: [expect.objectContaining({ end: 'lapsed' }), expect.objectContaining({ end: null })] })]);
  });
});
