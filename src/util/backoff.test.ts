import { describe, expect, it } from 'vitest';
import { backoffDelay } from './backoff.ts';

describe('backoffDelay', () => {
  const policy = { baseMs: 100, capMs: 1_000, jitter: 0.5 };

  it('doubles per attempt up to the cap', () => {
    expect([0, 1, 2, 3, 4, 10].map((a) => backoffDelay(a, policy, () => 1))).toEqual([100, 200, 400, 800, 1000, 1000]);
  });

  it('randomises only the jitter fraction of the delay', () => {
    expect(backoffDelay(2, policy, () => 0)).toBe(200);
    expect(backoffDelay(2, policy, () => 0.5)).toBe(300);
  });

  it('never overflows for huge attempt numbers', () => {
    expect(backoffDelay(10_000, policy, () => 1)).toBe(1000);
  });
});
