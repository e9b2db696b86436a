/** Small builders for the session feature's unit tests (not a test file itself). */
import { AgentEnvironmentSpec } from '../crd/agent-environment.ts';
import type { AgentEnvironment, AgentSession } from '../crd/resources.ts';
import { podName, sessionName, workLabels } from './record/names.ts';
import type { Pod, PodStatus } from './objects/pod-types.ts';

export const ENV_NAME = 'data';
export const NAMESPACE = 'team-a';
export const SESSION_ID = 'sesn_01';
export const WORK_ID = 'work_01';
export const SESSION = sessionName(ENV_NAME, SESSION_ID);
export const POD = podName(SESSION, WORK_ID);

/** An AgentEnvironment with a parsed self-hosted spec; `selfHosted` overrides merge into the defaults. */
export function agentEnvironment(selfHosted: Record<string, unknown> = {}, extra: Record<string, unknown> = {}): AgentEnvironment {
  const spec = AgentEnvironmentSpec.parse({
    selfHosted: {
      sessionTemplate: { spec: { containers: [{ name: 'session', image: 'local/shell', command: ['/bin/sh', '-c', 'sleep 1'] }] } },
      environmentKeySecretRef: { name: 'env-key', key: 'key' },
      ...selfHosted,
    },
    ...extra,
  });
  return { apiVersion: 'agentenv.io/v1alpha1', kind: 'AgentEnvironment', metadata: { name: ENV_NAME, namespace: NAMESPACE, uid: 'env-uid' }, spec, status: { environmentId: 'env_1' } };
}

export function agentSession(overrides: Partial<AgentSession['spec']> = {}, status: AgentSession['status'] = undefined): AgentSession {
  return {
    apiVersion: 'agentenv.io/v1alpha1',
    kind: 'AgentSession',
    metadata: { name: SESSION, namespace: NAMESPACE, uid: 'session-uid', finalizers: ['agentenv.io/session'], creationTimestamp: '2026-01-01T00:00:00Z' },
    spec: {
      environmentRef: { name: ENV_NAME },
      environmentId: 'env_1',
      sessionId: SESSION_ID,
      workId: WORK_ID,
      workerId: 'worker-1',
      claimedAt: '2026-01-01T00:00:00.000Z',
      ...overrides,
    },
    ...(status ? { status } : {}),
  };
}

/** Bound to a node unless the status says the scheduler found none, or it is `{ phase: 'Pending', reason: 'Unbound' }`. */
const unbound = (s: PodStatus): boolean => s.reason === 'Unbound' || (s.conditions ?? []).some((c) => c.type === 'PodScheduled' && c.status === 'False');

/** A session Pod in the given status. */
export function sessionPod(status: PodStatus = {}, meta: Partial<NonNullable<Pod['metadata']>> = {}): Pod {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: POD, namespace: NAMESPACE, labels: workLabels(ENV_NAME, SESSION, WORK_ID), creationTimestamp: '2026-01-01T00:00:01Z', ...meta },
    spec: { containers: [{ name: 'session' }], ...(unbound(status) ? {} : { nodeName: 'node-1' }) },
    status,
  };
}
