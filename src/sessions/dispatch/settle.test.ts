import { describe, expect, it } from 'vitest';
import type { Work, WorkState } from '../../api/wire.ts';
import type { AgentSession } from '../../crd/resources.ts';
import { Capacity, RecordedSessions } from './capacity.ts';
import { holdsCapacity, isAcknowledged } from '../record/record.ts';
import { settleCandidates, settleDecision } from './settle.ts';

function record(o: { workId?: string; status?: AgentSession['status']; claimedAt?: string; name?: string; env?: string } = {}): AgentSession {
  return {
    metadata: { name: o.name ?? 'prod-abc', namespace: 'ns', uid: 'u1' },
    spec: { environmentRef: { name: o.env ?? 'prod' }, environmentId: 'env_1', sessionId: 'session_1', workId: o.workId ?? 'work_2', claimedAt: o.claimedAt ?? '2026-01-01T00:00:00.000Z' },
    ...(o.status ? { status: o.status } : {}),
  };
}
const work = (state: WorkState): Work => ({ id: 'work_2', type: 'work', environment_id: 'env_1', data: { id: 'session_1', type: 'session' }, state, metadata: {}, created_at: '2026-01-01T00:00:00.000Z' });

describe('settleDecision: a record written but not acknowledged', () => {
  it.each([
    ['queued, record complete (per-item Secret written, or none needed) → acknowledge it', work('queued'), true, false, 'acknowledge'],
    ['queued, per-item Secret never written → release it to the queue', work('queued'), false, false, 'release'],
    ['starting, record complete → adopt (our ack landed, or the lease claim arbitrates)', work('starting'), true, false, 'adopt'],
    ['starting, per-item Secret never written → another worker acknowledged it', work('starting'), false, false, 'release'],
    ['active with our Pod → adopt', work('active'), true, true, 'adopt'],
    ['active without our Pod → another worker holds the lease', work('active'), true, false, 'release'],
    ['stopping without our Pod → release', work('stopping'), true, false, 'release'],
    ['stopped → finish', work('stopped'), true, false, 'finish'],
    ['gone → finish', undefined, true, false, 'finish'],
  ])('%s', (_name, w, complete, podExists, action) => {
    expect(settleDecision({ session: record(), work: w, complete, podExists }).action).toBe(action);
  });

  it('leaves an acknowledged record alone', () => {
    const s = record({ status: { workId: 'work_2', acknowledgedAt: '2026-01-01T00:00:01Z', phase: 'Starting' } });
    expect(settleDecision({ session: s, work: work('stopped'), complete: false, podExists: false }).action).toBe('none');
  });

  it('a stopped item is finished as NotAcknowledged, never acknowledged', () => {
    expect(settleDecision({ session: record(), work: work('stopped'), complete: true, podExists: false })).toMatchObject({ reason: 'NotAcknowledged' });
  });
});

describe('acknowledgement and capacity of a record', () => {
  it('a record acknowledges only its current work item', () => {
    expect(isAcknowledged(record({ status: { workId: 'work_2', acknowledgedAt: 'x' } }))).toBe(true);
    expect(isAcknowledged(record({ status: { workId: 'work_1', acknowledgedAt: 'x', phase: 'Succeeded' } }))).toBe(false);
    expect(isAcknowledged(record())).toBe(false);
  });
  it('holds a slot until its current item finishes, including a returning session over an old final phase', () => {
    expect(holdsCapacity(record())).toBe(true);
    expect(holdsCapacity(record({ status: { workId: 'work_2', phase: 'Running' } }))).toBe(true);
    expect(holdsCapacity(record({ status: { workId: 'work_2', phase: 'Succeeded' } }))).toBe(false);
    expect(holdsCapacity(record({ status: { workId: 'work_1', phase: 'Succeeded' } }))).toBe(true);
  });
});

describe('settleCandidates', () => {
  const now = Date.parse('2026-01-01T00:01:00.000Z');
  it('picks unacknowledged records past their grace and skips in-flight hand-offs', () => {
    const old = record({ name: 'a', claimedAt: '2026-01-01T00:00:00.000Z' });
    const fresh = record({ name: 'b', claimedAt: '2026-01-01T00:00:58.000Z' });
    const busy = record({ name: 'c', claimedAt: '2026-01-01T00:00:00.000Z' });
    const acked = record({ name: 'd', status: { workId: 'work_2', acknowledgedAt: 'x' } });
    const finished = record({ name: 'e', status: { workId: 'work_2', phase: 'Failed' } });
    const { due, nextDueMs } = settleCandidates([old, fresh, busy, acked, finished], (k) => k === 'ns/c', now, 5_000);
    expect(due.map((s) => s.metadata?.name)).toEqual(['a']);
    expect(nextDueMs).toBe(Date.parse('2026-01-01T00:01:03.000Z'));
  });
});

describe('RecordedSessions and Capacity', () => {
  it('count unfinished records per environment from informer events', () => {
    const index = new RecordedSessions();
    const changed: string[] = [];
    index.onChange((k) => changed.push(k));
    index.apply({ type: 'add', object: record({ name: 'a' }) });
    index.apply({ type: 'add', object: record({ name: 'b', env: 'other' }) });
    expect(index.unfinished('ns/prod').size).toBe(1);
    const done = record({ name: 'a', status: { workId: 'work_2', phase: 'Succeeded' } });
    index.apply({ type: 'update', object: done, old: record({ name: 'a' }) });
    expect(index.unfinished('ns/prod').size).toBe(0);
    index.apply({ type: 'delete', object: record({ name: 'b', env: 'other' }) });
    expect(index.unfinished('ns/other').size).toBe(0);
    expect(changed).toContain('ns/prod');
  });

  it('a hand-off holds its slot until the cache shows its record, then it is counted once', () => {
    const recorded = new Set<string>();
    let t = 0;
    const c = new Capacity(() => recorded, { now: () => t, graceMs: 1_000 });
    c.begin('ns/a');
    expect(c.active()).toBe(1);
    c.end('ns/a', true);
    expect(c.active()).toBe(1); // the cache has not caught up yet
    recorded.add('ns/a');
    expect(c.active()).toBe(1); // counted once
    recorded.delete('ns/a');
    expect(c.active()).toBe(0);
    c.begin('ns/b');
    c.end('ns/b', false);
    expect(c.active()).toBe(0);
    c.begin('ns/c');
    c.end('ns/c', true);
    t = 2_000;
    expect(c.active()).toBe(0); // grace lapsed without the record ever appearing
  });
});
