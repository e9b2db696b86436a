import { describe, expect, it } from 'vitest';
import type { Work, WorkState } from '../../api/wire.ts';
import { settleCandidates, settleDecision } from './settle.ts';
import { dispatchRecord as record } from '../fixtures.test-support.ts';

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
