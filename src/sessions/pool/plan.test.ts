import { describe, expect, it } from 'vitest';
import type { Pod } from '../objects/pod-types.ts';
import { warmPodName } from '../record/names.ts';
import { planPool } from './plan.ts';

type State = 'ready' | 'starting' | 'finished' | 'deleting' | 'bound';
const pod = (ordinal: number, state: State): Pod => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: {
    name: warmPodName('data', ordinal),
    uid: `uid-${ordinal}`,
    labels: { 'agentenv.io/component': state === 'bound' ? 'session' : 'warm-pool', 'agentenv.io/warm-pool': 'data' },
    ...(state === 'deleting' ? { deletionTimestamp: '2026-01-01T00:00:00Z' } : {}),
  },
  spec: { containers: [] },
  status: {
    phase: state === 'finished' ? 'Failed' : 'Running',
    conditions: [{ type: 'Ready', status: state === 'ready' ? 'True' : 'False' }],
  },
});
const names = (pods: readonly Pod[]): number[] => pods.map((p) => Number(p.metadata?.name?.split('-').pop()));

describe('planPool', () => {
  it.each<[string, number, Array<[number, State]>, string[], number[], number[], number, number]>([
    ['an empty pool of 2 creates ordinals 0 and 1', 2, [], [], [0, 1], [], 2, 0],
    ['a full pool of ready Pods is left alone', 2, [[0, 'ready'], [1, 'ready']], [], [], [], 2, 2],
    ['a bound Pod keeps its name: the refill takes the next free ordinal', 2, [[0, 'bound'], [1, 'ready']], [], [2], [], 2, 1],
    ['a Pod being deleted still holds its name and is replaced beside it', 1, [[0, 'deleting']], [], [1], [], 1, 0],
    ['a finished unbound Pod (it ended before any work) is deleted and replaced', 1, [[0, 'finished']], [], [1], [0], 1, 0],
    ['a Pod being bound is neither counted nor deleted', 1, [[0, 'ready']], ['0'], [1], [], 1, 0],
    ['a smaller size deletes the surplus: not-ready Pods first', 1, [[0, 'ready'], [1, 'starting']], [], [], [1], 1, 1],
    ['a smaller size deletes the surplus: then the highest ordinals', 1, [[0, 'ready'], [1, 'ready'], [2, 'ready']], [], [], [1, 2], 1, 1],
    ['size 0 deletes every unbound Pod and never a bound one', 0, [[0, 'ready'], [1, 'bound']], [], [], [0], 0, 0],
    ['the lowest free ordinals fill the gaps', 3, [[1, 'ready'], [3, 'bound']], [], [0, 2], [], 3, 1],
  ])('%s', (_rule, size, pods, binding, create, remove, replicas, ready) => {
    const plan = planPool({ envName: 'data', size, pods: pods.map(([n, s]) => pod(n, s)), binding: new Set(binding.map((n) => warmPodName('data', Number(n)))) });
    expect(plan.create).toEqual(create);
    expect(names(plan.remove)).toEqual(remove);
    expect({ replicas: plan.replicas, ready: plan.ready }).toEqual({ replicas, ready });
  });

  it('a retried pass over the same Pods plans the same names (AlreadyExists converges)', () => {
    const facts = { envName: 'data', size: 3, pods: [pod(1, 'ready')], binding: new Set<string>() };
    expect(planPool(facts)).toEqual(planPool(facts));
  });
});

describe('planPool: taken Pods without a record (the operator died between the take and the record)', () => {
  const taken = (ordinal: number, boundAt: string, session = 'data-abc'): Pod => {
    const p = pod(ordinal, 'bound');
    return { ...p, metadata: { ...p.metadata, labels: { ...p.metadata?.labels, 'agentenv.io/session': session }, annotations: { 'agentenv.io/bound-at': boundAt } } };
  };
  const now = Date.parse('2026-01-01T00:02:00Z');
  const plan = (p: Pod, recorded: string | undefined) => planPool({ envName: 'data', size: 0, pods: [p], binding: new Set(), recordedPod: () => recorded, now });

  it.each<[string, Pod, string | undefined, boolean]>([
    ['a taken Pod no record names is deleted once the grace has passed', taken(0, '2026-01-01T00:00:00Z'), undefined, true],
    ['a taken Pod whose record names another Pod (uid) is deleted once the grace has passed', taken(0, '2026-01-01T00:00:00Z'), 'uid-other', true],
    ['a taken Pod its record names is the session\'s: never deleted here', taken(0, '2026-01-01T00:00:00Z'), 'uid-0', false],
    ['a taken Pod within the grace is left to its hand-off', taken(0, '2026-01-01T00:01:30Z'), undefined, false],
  ])('%s', (_rule, p, recorded, removed) => {
    expect(plan(p, recorded).remove.length).toBe(removed ? 1 : 0);
  });
});
