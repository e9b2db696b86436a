import { describe, expect, it } from 'vitest';
import type { Work, WorkState } from '../../api/wire.ts';
import type { AgentSession } from '../../crd/resources.ts';
import { settleCandidates, settleDecision, type SettleFacts } from './settle.ts';
import { dispatchRecord as record } from '../fixtures.test-support.ts';

const work = (state: WorkState): Work => ({ id: 'work_2', type: 'work', environment_id: 'env_1', data: { id: 'session_1', type: 'session' }, state, metadata: {}, created_at: '2026-01-01T00:00:00.000Z' });
const WARM = { name: 'prod-warm-1a2b3c-0', uid: 'warm-uid' };
/** A record bound to a warm Pod (late binding). */
const bound = (): AgentSession => {
  const s = record();
  return { ...s, spec: { ...s.spec, warmPod: WARM } };
};
/** A returning session's record: a history (`workItems`), its new item not acknowledged. */
const returning = (): AgentSession => record({ status: { workId: 'work_1', phase: 'Succeeded', acknowledgedAt: '2026-01-01T00:00:00Z', workItems: 1 } });
const facts = (f: Partial<SettleFacts>): SettleFacts => ({ session: record(), acknowledgedHere: false, work: work('queued'), complete: true, podUid: undefined, ...f });

describe('settleDecision: a record written but not acknowledged', () => {
  it.each<[string, Partial<SettleFacts>, string]>([
    ['queued, record complete (per-item Secret written, or none needed) → acknowledge it', { work: work('queued') }, 'acknowledge'],
    ['queued, per-item Secret never written → release it to the queue', { work: work('queued'), complete: false }, 'release'],
    ['starting, record complete → adopt (our ack landed, or the lease claim arbitrates)', { work: work('starting') }, 'adopt'],
    ['starting, per-item Secret never written → another worker acknowledged it', { work: work('starting'), complete: false }, 'release'],
    ['active with the Pod made for the item → adopt', { work: work('active'), podUid: 'pod-uid' }, 'adopt'],
    ['active without our Pod → another worker holds the lease', { work: work('active') }, 'release'],
    ['stopping without our Pod → release', { work: work('stopping') }, 'release'],
    ['stopped → finish', { work: work('stopped') }, 'finish'],
    ['gone → finish', { work: undefined }, 'finish'],
    ['an active item served by the record\'s warm Pod is adopted', { session: bound(), work: work('active'), podUid: WARM.uid }, 'adopt'],
    ['a stopping item served by the record\'s warm Pod is adopted', { session: bound(), work: work('stopping'), podUid: WARM.uid }, 'adopt'],
    ['a Pod that took the name of the record\'s warm Pod is not ours: another worker holds the lease', { session: bound(), work: work('active'), podUid: 'a-later-uid' }, 'release'],
    ['an active item of a returning session served by the Pod made for it is adopted, not marked NotAcknowledged', { session: returning(), work: work('active'), podUid: 'pod-uid' }, 'adopt'],
    ['an item this process acknowledged, its acknowledgement not written yet, settles nothing (a duplicate delivery is ours)', { work: work('active'), acknowledgedHere: true }, 'none'],
    ['an item acknowledged here and stopped since is not finished as NotAcknowledged', { work: work('stopped'), acknowledgedHere: true }, 'none'],
  ])('%s', (_name, f, action) => {
    expect(settleDecision(facts(f)).action).toBe(action);
  });

  it('leaves an acknowledged record alone', () => {
    const s = record({ status: { workId: 'work_2', acknowledgedAt: '2026-01-01T00:00:01Z', phase: 'Starting' } });
    expect(settleDecision(facts({ session: s, work: work('stopped'), complete: false })).action).toBe('none');
  });

  it('a stopped item is finished as NotAcknowledged, never acknowledged', () => {
    expect(settleDecision(facts({ work: work('stopped') }))).toMatchObject({ reason: 'NotAcknowledged' });
  });
});

describe('settleCandidates', () => {
  const now = Date.parse('2026-01-01T00:01:00.000Z');
  it('picks unacknowledged records past their grace and skips the ones busy here (a hand-off in flight, an acknowledgement held)', () => {
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
