import { describe, expect, it } from 'vitest';
import type { InformerEvent } from '../k8s/informer.ts';
import type { KubeObject } from '../k8s/rest.ts';
import { needsReconcile } from './controller.ts';

const env = (metadata: KubeObject['metadata'] = {}, status: unknown = {}): KubeObject & { status?: unknown } => ({
  metadata: { name: 'data', namespace: 'team-a', generation: 1, finalizers: ['agentenv.io/environment'], ...metadata },
  status,
});
const update = (old: KubeObject, object: KubeObject): InformerEvent<KubeObject> => ({ type: 'update', old, object });

describe('needsReconcile', () => {
  const rows: Array<{ rule: string; event: InformerEvent<KubeObject>; enqueue: boolean }> = [
    { rule: 'a new resource gets a pass', event: { type: 'add', object: env() }, enqueue: true },
    { rule: 'a deleted resource gets a pass (it finds it gone and forgets it)', event: { type: 'delete', object: env() }, enqueue: true },
    { rule: 'a spec edit (a new generation) gets a pass', event: update(env(), env({ generation: 2 })), enqueue: true },
    { rule: 'a deletion request gets a pass (the finalizer runs)', event: update(env(), env({ deletionTimestamp: '2026-01-01T00:00:00Z' })), enqueue: true },
    { rule: 'a finalizer change gets a pass', event: update(env(), env({ finalizers: [] })), enqueue: true },
    { rule: 'a label change gets a pass', event: update(env(), env({ labels: { team: 'a' } })), enqueue: true },
    { rule: "the reconciler's own status write causes no pass", event: update(env({}, { environmentId: 'env_1' }), env({ resourceVersion: '2' }, { environmentId: 'env_1', activeSessions: 1 })), enqueue: false },
  ];
  for (const row of rows) it(row.rule, () => expect(needsReconcile(row.event)).toBe(row.enqueue));
});
