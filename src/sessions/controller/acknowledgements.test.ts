import { describe, expect, it } from 'vitest';
import type { Work } from '../../api/wire.ts';
import { Acknowledgements, withAcknowledgement } from './acknowledgements.ts';
import { agentSession, NAMESPACE, SESSION, WORK_ID } from '../fixtures.test-support.ts';
import { isAcknowledged } from '../record/status.ts';

const key = `${NAMESPACE}/${SESSION}`;
const acked = (id = WORK_ID): Work => ({ id, type: 'work', environment_id: 'env_1', data: { id: 'sesn_01', type: 'session' }, state: 'starting', metadata: {}, created_at: '2026-01-01T00:00:00.000Z' });
const at = new Date('2026-01-01T00:00:05.000Z');

describe('Acknowledgements: what this process acknowledged and has not written yet', () => {
  it('holds an acknowledgement of the record\'s current work item, by work id, until it is written', () => {
    const acks = new Acknowledgements();
    acks.add(key, acked(), at);
    expect(acks.holds(key, WORK_ID)).toBe(true);
    expect(acks.holds(key, 'work_other')).toBe(false);
    expect(acks.pending(key, agentSession().session)).toEqual({ work: acked(), at });
    acks.delete(key);
    expect(acks.holds(key, WORK_ID)).toBe(false);
  });

  it('drops an acknowledgement of another work item (the record moved on) or one the record already shows', () => {
    const acks = new Acknowledgements();
    acks.add(key, acked('work_00'), at);
    expect(acks.pending(key, agentSession().session)).toBeUndefined();
    expect(acks.holds(key, WORK_ID)).toBe(false);
    acks.add(key, acked(), at);
    expect(acks.pending(key, agentSession().withStatus({ workId: WORK_ID, acknowledgedAt: at.toISOString(), phase: 'Running' }).session)).toBeUndefined();
    expect(acks.holds(key, WORK_ID)).toBe(false);
  });

  it('reads the record as it will be once written: acknowledged, Starting, earlier item\'s fields cleared', () => {
    const earlier = agentSession().withStatus({ workId: 'work_00', phase: 'Succeeded', reason: 'Completed', finishedAt: '2025-12-31T00:00:00.000Z', workItems: 1, podName: 'old' }).session;
    const s = withAcknowledgement(earlier, { work: acked(), at });
    expect(isAcknowledged(s)).toBe(true);
    expect(s.status).toEqual({ phase: 'Starting', workId: WORK_ID, workState: 'starting', acknowledgedAt: at.toISOString(), workItems: 2 });
    expect(earlier.status?.phase).toBe('Succeeded'); // the input is not changed
  });

});
