import { describe, expect, it } from 'vitest';
import type { WarmPool } from '../../crd/agent-environment.ts';
import { nextPoolSize, RESIZE_INTERVAL_MS, SCALE_DOWN_WINDOW_MS, warmPoolServes, type SizingMemory } from './sizing.ts';
import { agentEnvironment } from '../fixtures.test-support.ts';

const sized: WarmPool = { size: 2, min: 1, max: 10 };
const q = (depth: number, pending = 0) => ({ depth, pending });
const mem = (size: number, changedAt: number, recent: Array<[number, number]> = []): SizingMemory => ({ size, changedAt, recent: recent.map(([at, s]) => ({ at, size: s })) });
const T = 1_000_000;

describe('nextPoolSize', () => {
  it.each<[string, WarmPool | undefined, boolean, ReturnType<typeof q> | undefined, SizingMemory | undefined, number]>([
    ['no warmPool → no warm Pods', undefined, true, q(5), undefined, 0],
    ['a pool that cannot serve (sessionTemplate, ObserveOnly, deleting) → no warm Pods', sized, false, q(5), mem(4, 0), 0],
    ['size alone → exactly size, whatever the queue (HPA and KEDA drive it through /scale)', { size: 3 }, true, q(50), undefined, 3],
    ['size alone, changed → the new size at once (no interval: the autoscaler paces itself)', { size: 5 }, true, q(0), mem(3, T), 5],
    ['min/max, no queue figures yet → starts at size', sized, true, undefined, undefined, 2],
    ['min/max, no queue figures yet, after a pass → keeps what it had', sized, true, undefined, mem(6, 0), 6],
    ['first figures → depth + pending', sized, true, q(3, 2), undefined, 5],
    ['an empty queue → min', sized, true, q(0), undefined, 1],
    ['a queue beyond max → max', sized, true, q(40, 5), undefined, 10],
    ['grows at once once the interval since the last change has passed', sized, true, q(7), mem(2, T - RESIZE_INTERVAL_MS), 7],
    ['does not change twice within the interval, even to grow', sized, true, q(7), mem(2, T - RESIZE_INTERVAL_MS + 1), 2],
    ['a smaller recommendation within the window does not shrink the pool', sized, true, q(1), mem(6, 0, [[T - SCALE_DOWN_WINDOW_MS + 1, 6]]), 6],
    ['shrinks to the highest recommendation still in the window', sized, true, q(1), mem(6, 0, [[T - SCALE_DOWN_WINDOW_MS, 6], [T - 1000, 3]]), 3],
    ['shrinks to the recommendation once the window holds nothing higher', sized, true, q(1), mem(6, 0, [[T - SCALE_DOWN_WINDOW_MS, 6]]), 1],
    ['a lowered max applies at once, within the interval', { size: 2, min: 1, max: 3 }, true, q(9), mem(6, T - 1), 3],
    ['a raised min applies at once, within the interval', { size: 4, min: 4, max: 10 }, true, q(0), mem(2, T - 1), 4],
  ])('%s', (_rule, pool, serves, queue, memory, size) => {
    expect(nextPoolSize({ pool, serves, queue, now: T }, memory).size).toBe(size);
  });

  it('a queue that empties and refills within the window keeps its Pods (no flapping)', () => {
    let memory: SizingMemory | undefined;
    const sizes: number[] = [];
    const depths = [6, 6, 0, 0, 6, 0, 6, 0];
    depths.forEach((depth, i) => {
      memory = nextPoolSize({ pool: sized, serves: true, queue: q(depth), now: T + i * RESIZE_INTERVAL_MS }, memory);
      sizes.push(memory.size);
    });
    expect(sizes).toEqual([6, 6, 6, 6, 6, 6, 6, 6]);
  });

  it('the window remembers only recommendations younger than the window', () => {
    const memory = nextPoolSize({ pool: sized, serves: true, queue: q(2), now: T }, mem(2, 0, [[T - 2 * SCALE_DOWN_WINDOW_MS, 9], [T - 10, 4]]));
    expect(memory.recent.map((r) => r.size)).toEqual([4, 2]);
  });
});

describe('warmPoolServes', () => {
  const claim = { volumeClaimTemplate: { spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } } } };
  it.each<[string, Record<string, unknown>, Record<string, unknown>, boolean]>([
    ['the default runner is served warm', { sessionTemplate: undefined }, {}, true],
    ['a sessionTemplate is served cold (its runner may read its session id at start)', {}, {}, false],
    ['a workspace is served cold (a warm Pod cannot mount a claim named after a session that does not exist yet)', { sessionTemplate: undefined, workspace: claim }, {}, false],
    ['ObserveOnly is served cold (nothing is dispatched)', { sessionTemplate: undefined }, { managementPolicy: 'ObserveOnly' }, false],
  ])('%s', (_rule, selfHosted, extra, serves) => {
    expect(warmPoolServes(agentEnvironment(selfHosted, extra))).toBe(serves);
  });
});
