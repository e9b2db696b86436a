import { describe, expect, it } from 'vitest';
import type { AgentEnvironment } from '../crd/resources.ts';
import { poolNeedsPasses } from './reconcile.ts';
import type { Observation } from './status.ts';

const env = (warmPool: Record<string, number>): AgentEnvironment =>
  ({ metadata: { name: 'e', namespace: 'ns' }, spec: { selfHosted: { warmPool } } }) as unknown as AgentEnvironment;
const seen = (replicas: number, ready: number, target: number): Observation => ({
  synced: { ok: true, reason: 'Synced', message: '' },
  ready: { ok: true, reason: 'Ready', message: '' },
  clean: true,
  warmPool: { replicas, ready, target, selector: 's' },
});

describe('a warm pool is passed every few seconds only while it needs it', () => {
  it.each([
    ['a full fixed-size pool waits for its Pods\' events and the queue refresh', env({ size: 2 }), seen(2, 2, 2), false],
    ['a pool short of its target is passed every few seconds (its refill)', env({ size: 2 }), seen(1, 1, 2), true],
    ['a pool whose Pods are not all ready yet is passed every few seconds', env({ size: 2 }), seen(2, 1, 2), true],
    ['a pool above its target is passed until the surplus is gone', env({ size: 1 }), seen(2, 2, 1), true],
    ['a pool sized from the queue reads the queue every few seconds, full or not', env({ size: 2, min: 1, max: 4 }), seen(2, 2, 2), true],
    ['a pass that saw no pool yet comes again shortly', env({ size: 2 }), { ...seen(0, 0, 0), warmPool: undefined }, true],
  ] as const)('%s', (_rule, e, o, expected) => {
    expect(poolNeedsPasses(e, o)).toBe(expected);
  });
});
