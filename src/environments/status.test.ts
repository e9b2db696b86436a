import { describe, expect, it } from 'vitest';
import type { AgentEnvironment } from '../crd/resources.ts';
import { failed, nextStatus, type Observation } from './status.ts';

const pool = { replicas: 2, ready: 1, target: 2, selector: 'agentenv.io/component=warm-pool,agentenv.io/warm-pool=e' };
const ok = { ok: true, reason: 'Available', message: '' } as Observation['ready'];
const env = (warmPool?: typeof pool): AgentEnvironment =>
  ({ apiVersion: 'agentenv.io/v1alpha1', kind: 'AgentEnvironment', metadata: { name: 'e', namespace: 'ns', generation: 1 }, spec: {}, status: warmPool ? { warmPool } : {} }) as unknown as AgentEnvironment;
const now = new Date('2026-01-01T00:00:00Z');

describe('nextStatus: status.warmPool', () => {
  it.each<[string, AgentEnvironment, Observation, typeof pool | undefined]>([
    ['a pass that reports a pool writes it', env(), { synced: ok, ready: ok, clean: true, activeSessions: 0, warmPool: pool }, pool],
    ['a full pass without a pool removes a pool reported before (the pool is gone)', env(pool), { synced: ok, ready: ok, clean: true, activeSessions: 0 }, undefined],
    ['a pass that failed before the sessions were asked keeps the pool last reported', env(pool), failed('ApiUnavailable', 'down'), pool],
  ])('%s', (_rule, e, o, expected) => {
    expect(nextStatus(e, o, now).warmPool).toEqual(expected);
  });
});
