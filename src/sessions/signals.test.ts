import { describe, expect, it } from 'vitest';
import type { AgentEnvironment } from '../crd/resources.ts';
import { environmentFigures } from './signals.ts';

function env(name: string, o: { cloud?: boolean; queue?: Record<string, unknown>; dispatching?: 'True' | 'False' } = {}): AgentEnvironment {
  const conditions = o.dispatching ? [{ type: 'Dispatching', status: o.dispatching, reason: 'r', message: 'm', lastTransitionTime: '2026-01-01T00:00:00Z' }] : [];
  return {
    metadata: { name, namespace: 'team-a' },
    spec: o.cloud ? { cloud: {} } : { selfHosted: {} },
    status: { conditions, ...(o.queue ? { queue: o.queue } : {}) },
  } as unknown as AgentEnvironment;
}

const active = (_ns: string, name: string): number => (name === 'busy' ? 3 : 0);

describe('environmentFigures', () => {
  it.each([
    ['a cloud environment has no figures (it has no queue of ours)', env('c', { cloud: true }), undefined],
    ['a self-hosted environment not yet read reports its sessions only', env('new'), { namespace: 'team-a', name: 'new', activeSessions: 0 }],
    [
      'the queue figures are those of the status, the oldest item as a time',
      env('busy', { queue: { depth: 4, pending: 1, workersPolling: 2, oldestQueuedAt: '2026-01-01T00:00:10Z' }, dispatching: 'True' }),
      { namespace: 'team-a', name: 'busy', activeSessions: 3, dispatching: true, queue: { depth: 4, pending: 1, workersPolling: 2, oldestQueuedAt: Date.parse('2026-01-01T00:00:10Z') } },
    ],
    ['an empty queue has no oldest item', env('idle', { queue: { depth: 0, pending: 0, workersPolling: 1 } }), { namespace: 'team-a', name: 'idle', activeSessions: 0, queue: { depth: 0, pending: 0, workersPolling: 1 } }],
    ['a paused dispatch reports 0', env('full', { dispatching: 'False' }), { namespace: 'team-a', name: 'full', activeSessions: 0, dispatching: false }],
  ])('%s', (_rule, e, want) => {
    expect(environmentFigures([e], active)).toEqual(want ? [want] : []);
  });
});
