/**
 * The two status writers against a real apiserver: the reconciler's `writeStatus` (replace of the
 * status subresource, guarded by resourceVersion) and another loop's `applyCondition` (server-side
 * apply of one condition with its own field manager) leave each other's conditions alone, in
 * either order and when they race. Both run as the operator's ServiceAccount (the chart's RBAC).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AgentEnvironmentStatus } from '../../src/crd/agent-environment.ts';
import { AGENT_ENVIRONMENTS, type AgentEnvironment } from '../../src/crd/resources.ts';
import { findCondition, setCondition, type Condition } from '../../src/k8s/conditions.ts';
import { classify } from '../../src/k8s/errors.ts';
import { applyCondition, writeStatus } from '../../src/k8s/status.ts';
import { adminRest, createNamespace, operatorRest, type TestNamespace } from '../support/cluster.ts';

let ns: TestNamespace;
beforeAll(async () => {
  ns = await createNamespace('k8s-status');
});
afterAll(async () => {
  await ns?.cleanup();
});

const DISPATCHER = 'agentenv-dispatcher';
const dispatching = (status: 'True' | 'False') => ({ type: 'Dispatching', status, reason: status === 'True' ? 'Polling' : 'AtCapacity', message: `dispatching ${status}` }) as const;

/** The reconciler's decision: Ready and Synced, merged into whatever status the object holds. */
const reconciled = (message: string) => (current: AgentEnvironment): AgentEnvironmentStatus => {
  let conditions = current.status?.conditions as Condition[] | undefined;
  conditions = setCondition(conditions, { type: 'Ready', status: 'True', reason: 'Available', message });
  conditions = setCondition(conditions, { type: 'Synced', status: 'True', reason: 'Synced', message });
  return { ...current.status, environmentId: 'env_0123', conditions };
};

async function createEnvironment(name: string): Promise<AgentEnvironment> {
  return adminRest().create<AgentEnvironment>(AGENT_ENVIRONMENTS, ns.name, { metadata: { name, namespace: ns.name }, spec: { cloud: {} } } as AgentEnvironment);
}
const read = (name: string) => adminRest().get<AgentEnvironment>(AGENT_ENVIRONMENTS, ns.name, name);
const types = (env: AgentEnvironment) => (env.status?.conditions ?? []).map((c) => `${c.type}=${c.status}`).sort();

describe('status writers on a real apiserver', () => {
  it("an applied condition survives the reconciler's status write, and the reconciler's conditions survive the apply", async () => {
    const rest = operatorRest();
    const created = await createEnvironment('apply-then-write');
    expect(await applyCondition(rest, AGENT_ENVIRONMENTS, created, dispatching('True'), { fieldManager: DISPATCHER })).toBe(true);
    // The reconciler still holds the object it read before the apply: its write meets a Conflict,
    // re-reads, and merges its decision into the fresh status.
    await writeStatus(rest, AGENT_ENVIRONMENTS, created, reconciled('first pass'));
    let env = await read('apply-then-write');
    expect(types(env)).toEqual(['Dispatching=True', 'Ready=True', 'Synced=True']);
    expect(env.status?.environmentId).toBe('env_0123');

    expect(await applyCondition(rest, AGENT_ENVIRONMENTS, env, dispatching('False'), { fieldManager: DISPATCHER })).toBe(true);
    env = await read('apply-then-write');
    expect(types(env)).toEqual(['Dispatching=False', 'Ready=True', 'Synced=True']);
    expect(findCondition(env.status?.conditions, 'Ready')?.message).toBe('first pass');
    expect(env.status?.environmentId).toBe('env_0123');

    await writeStatus(rest, AGENT_ENVIRONMENTS, env, reconciled('second pass'));
    env = await read('apply-then-write');
    expect(types(env)).toEqual(['Dispatching=False', 'Ready=True', 'Synced=True']);
    expect(findCondition(env.status?.conditions, 'Dispatching')?.message).toBe('dispatching False');
    expect(findCondition(env.status?.conditions, 'Synced')?.message).toBe('second pass');
    await rest.close();
  });

  it('writes nothing when neither the status nor the condition changed', async () => {
    const rest = operatorRest();
    await createEnvironment('steady');
    await applyCondition(rest, AGENT_ENVIRONMENTS, await read('steady'), dispatching('True'), { fieldManager: DISPATCHER });
    const written = await writeStatus(rest, AGENT_ENVIRONMENTS, await read('steady'), reconciled('steady'));
    const before = await read('steady');
    expect(before.metadata?.resourceVersion).toBe(written?.metadata?.resourceVersion);
    expect(await applyCondition(rest, AGENT_ENVIRONMENTS, before, dispatching('True'), { fieldManager: DISPATCHER })).toBe(false);
    expect(await writeStatus(rest, AGENT_ENVIRONMENTS, before, reconciled('steady'))).toBe(before);
    expect((await read('steady')).metadata?.resourceVersion).toBe(before.metadata?.resourceVersion);
    await rest.close();
  });

  it('racing writers: every flip of the applied condition and every reconciler write land, none clobbered', async () => {
    const rest = operatorRest();
    const created = await createEnvironment('race');
    const rounds = 10;
    await Promise.all([
      (async () => {
        for (let i = 0; i < rounds; i++) await applyCondition(rest, AGENT_ENVIRONMENTS, await read('race'), dispatching(i % 2 ? 'True' : 'False'), { fieldManager: DISPATCHER });
      })(),
      (async () => {
        // Always from the object read at the start, so every write after the first meets a Conflict.
        // A pass whose tries all met one is run again, as the controller would.
        for (let i = 0; i < rounds; i++) {
          for (;;) {
            try {
              await writeStatus(rest, AGENT_ENVIRONMENTS, created, reconciled(`pass ${i}`));
              break;
            } catch (err) {
              if (classify(err) !== 'conflict') throw err;
            }
          }
        }
      })(),
    ]);
    const env = await read('race');
    expect(types(env)).toEqual(['Dispatching=True', 'Ready=True', 'Synced=True']);
    expect(findCondition(env.status?.conditions, 'Synced')?.message).toBe(`pass ${rounds - 1}`);
    await rest.close();
  });
});
