import { describe, expect, it } from 'vitest';
import { agentEnvironment, sessionRecord, SESSION } from '../fixtures.test-support.ts';
import type { AgentSession } from '../../crd/resources.ts';
import { bindingOf, decideAssignment } from './decide.ts';

const warm = { name: 'data-warm-abc123-0', uid: 'pod-uid' };
const bound = (status: AgentSession['status'], spec: Partial<AgentSession['spec']> = {}): AgentSession => sessionRecord({ warmPod: warm, ...spec }, status);
const acked = { workId: 'work_01', acknowledgedAt: '2026-01-01T00:00:01Z', phase: 'Starting' as const };

describe('bindingOf', () => {
  const pod = { namespace: 'ns', name: warm.name, uid: warm.uid };
  it.each<[string, AgentSession[], boolean]>([
    ['the record naming the Pod\'s name and uid binds it', [bound(acked)], true],
    ['a record naming the same name with another uid does not (a later Pod took the name)', [bound(acked, { warmPod: { name: warm.name, uid: 'older' } })], false],
    ['a cold record binds nothing', [sessionRecord({}, acked)], false],
  ])('%s', (_rule, sessions, found) => {
    expect(bindingOf({ ...pod, namespace: sessions[0]!.metadata!.namespace! }, sessions) !== undefined).toBe(found);
  });
});

describe('decideAssignment', () => {
  const env = agentEnvironment({ sessionTemplate: undefined });
  it.each<[string, AgentSession | undefined, string]>([
    ['not bound yet → wait', undefined, 'wait'],
    ['bound, recorded, not acknowledged → wait (the settle pass may still let the item go)', bound(undefined), 'wait'],
    ['bound and acknowledged → assign', bound(acked), 'assign'],
    ['bound, the item finished → gone (one Pod, one item)', bound({ ...acked, phase: 'Succeeded' }), 'gone'],
  ])('%s', (_rule, session, kind) => {
    expect(decideAssignment(session, env).kind).toBe(kind);
  });

  it('hands over the per-item token when the item has one, from the per-item Secret', () => {
    expect(decideAssignment(bound(acked), env)).toMatchObject({ credentialKind: 'sessions-token', secret: { name: expect.stringContaining(SESSION), key: 'token' }, workId: 'work_01' });
  });

  it('hands over the environment key when the item has no per-item token, and nothing without one', () => {
    expect(decideAssignment(bound(acked, { workSecret: false }), env)).toMatchObject({ credentialKind: 'environment-key', secret: { name: 'env-key', key: 'key' } });
    const keyless = agentEnvironment({ sessionTemplate: undefined, environmentKeySecretRef: undefined });
    expect(decideAssignment(bound(acked, { workSecret: false }), keyless).kind).toBe('gone');
  });
});
