import { describe, expect, it } from 'vitest';
import { applyStatusPatch, holdsCapacity, isAcknowledged, statusPatch } from './status.ts';
import { dispatchRecord as record } from '../fixtures.test-support.ts';

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

describe('status patches', () => {
  it('applies a merge patch locally: null deletes, other values replace', () => {
    expect(applyStatusPatch({ phase: 'Running', reason: 'LeaseClaimed' }, { reason: null, message: 'm' })).toEqual({ phase: 'Running', message: 'm' });
  });

  it('patches only what changed, and removed fields become null', () => {
    expect(statusPatch({ phase: 'Starting', reason: 'CreatingPod', podName: 'p' }, { phase: 'Running', podName: 'p' })).toEqual({ phase: 'Running', reason: null });
  });
});
