import { describe, expect, it } from 'vitest';
import type { AgentEnvironment } from '../../crd/resources.ts';
import { dispatchEligibility, reportsNotDispatching } from './eligibility.ts';

const ready = { type: 'Ready', status: 'True', reason: 'Available', message: '', lastTransitionTime: '2026-01-01T00:00:00Z' };

function env(o: { selfHosted?: Record<string, unknown> | false; policy?: string; ready?: boolean; id?: string | false; deleting?: boolean } = {}): AgentEnvironment {
  const selfHosted = o.selfHosted === false ? undefined : { sessionTemplate: { spec: { containers: [{ name: 'session', image: 'x' }] } }, ...o.selfHosted };
  return {
    metadata: { name: 'prod', namespace: 'ns', uid: 'u', ...(o.deleting ? { deletionTimestamp: '2026-01-01T00:00:00Z' } : {}) },
    spec: { ...(selfHosted ? { selfHosted } : { cloud: {} }), managementPolicy: o.policy ?? 'Full' },
    status: { ...(o.id === false ? {} : { environmentId: o.id ?? 'env_1' }), conditions: o.ready === false ? [{ ...ready, status: 'False' }] : [ready] },
  } as unknown as AgentEnvironment;
}

describe('dispatchEligibility', () => {
  it('dispatches a Ready, Full, self-hosted environment with the spec\'s limits (defaults applied)', () => {
    expect(dispatchEligibility(env())).toEqual({ eligible: true, environmentId: 'env_1', limits: { maxSessions: 10, maxPollers: 16 } });
    // Without a session template its sessions run the default runner.
    expect(dispatchEligibility(env({ selfHosted: { sessionTemplate: undefined } }))).toMatchObject({ eligible: true });
    expect(dispatchEligibility(env({ selfHosted: { maxSessions: 0, maxPollers: 2 } }))).toMatchObject({ eligible: true, limits: { maxSessions: 0, maxPollers: 2 } });
  });
  it.each([
    ['a cloud environment (nothing reported)', env({ selfHosted: false }), 'NotSelfHosted', false],
    ['ObserveOnly', env({ policy: 'ObserveOnly' }), 'ObserveOnly', true],
    ['not Ready', env({ ready: false }), 'EnvironmentNotReady', true],
    ['no remote id yet', env({ id: false }), 'EnvironmentNotReady', true],
    ['being deleted', env({ deleting: true }), 'Deleting', true],
  ])('does not dispatch %s', (_name, e, reason, report) => {
    expect(dispatchEligibility(e)).toMatchObject({ eligible: false, reason, report });
  });
});

describe('reportsNotDispatching', () => {
  const withCondition = (e: AgentEnvironment): AgentEnvironment => ({ ...e, status: { ...e.status, conditions: [...(e.status?.conditions ?? []), { ...ready, type: 'Dispatching' }] } }) as AgentEnvironment;
  it.each([
    ['a self-hosted environment held back by ObserveOnly', env({ policy: 'ObserveOnly' }), true],
    ['one without a template held back by ObserveOnly (it runs the default runner otherwise)', env({ policy: 'ObserveOnly', selfHosted: { sessionTemplate: undefined } }), true],
    ['an environment being deleted', env({ deleting: true }), true],
    ['a new environment that is not Ready yet (no condition to create)', env({ ready: false }), false],
    ['one no longer Ready while Dispatching was reported', withCondition(env({ ready: false })), true],
    ['a cloud environment', env({ selfHosted: false }), false],
    ['an eligible environment', env(), false],
  ])('%s → %s', (_name, e, expected) => {
    expect(reportsNotDispatching(e, dispatchEligibility(e))).toBe(expected);
  });
});
