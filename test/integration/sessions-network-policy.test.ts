/**
 * The per-environment NetworkPolicy, applied as the operator's ServiceAccount: created when
 * enabled, left alone when it matches (no write), updated when the spec changes, deleted when
 * disabled; and, through the whole operator, reconciled from the environment's keyed pass.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { AgentEnvironmentSpec } from '../../src/crd/agent-environment.ts';
import { AGENT_ENVIRONMENTS, type AgentEnvironment } from '../../src/crd/resources.ts';
import { MemoryEventRecorder } from '../../src/k8s/events.ts';
import { CORE, KubeRest, type Verb } from '../../src/k8s/rest.ts';
import { networkPolicyName, type NetworkPolicy } from '../../src/sessions/objects/network-policy.ts';
import { sessionController } from '../../src/sessions/controller/controller.ts';
import { createLogger } from '../../src/telemetry/logger.ts';
import { adminRest, createNamespace, operatorKubeConfig, waitFor, type TestNamespace } from '../support/cluster.ts';
import { createEnvironment, environmentFixture, waitForReady } from '../support/environments.ts';
import { TEST_TIMINGS } from '../support/operator.ts';

let ns: TestNamespace;
const writes: Array<{ verb: Verb; resource: string }> = [];

beforeAll(async () => {
  ns = await createNamespace('sessions-netpol');
});
afterAll(async () => {
  await ns?.cleanup();
});

describe('applyNetworkPolicy', () => {
  it('creates, keeps (no write), updates and deletes the environment\'s NetworkPolicy', async () => {
    const rest = new KubeRest(operatorKubeConfig(), {
      fieldManager: 'agentenv',
      observe: (r) => {
        if (r.verb !== 'get' && r.verb !== 'list' && r.verb !== 'watch') writes.push({ verb: r.verb, resource: r.resource });
      },
    });
    const controller = sessionController({
      rest,
      events: new MemoryEventRecorder(),
      apiClient: () => {
        throw new Error('no API calls expected');
      },
      workCredential: async () => 'no API calls expected',
      sidecar: { image: 'ghcr.io/agentenv-io/agentenv:test', imagePullPolicy: 'IfNotPresent' },
      baseUrl: 'http://127.0.0.1:1',
      logger: createLogger({ level: 'silent' }),
      namespaces: [ns.name],
    });
    const created = await adminRest().create<AgentEnvironment>(AGENT_ENVIRONMENTS, ns.name, {
      metadata: { name: 'fenced' },
      spec: { environmentId: 'env_0fenced', selfHosted: { networkPolicy: { enabled: true, apiEgressCIDRs: ['160.79.104.0/23'] } } },
    } as unknown as AgentEnvironment);
    const withSpec = (spec: unknown): AgentEnvironment => ({ ...created, spec: AgentEnvironmentSpec.parse(spec) });
    const read = () => adminRest().get<NetworkPolicy>(CORE.networkPolicies, ns.name, networkPolicyName('fenced'));

    await controller.applyNetworkPolicy(withSpec(created.spec));
    const np = await read();
    expect(np.spec.podSelector.matchLabels).toEqual({ 'agentenv.io/component': 'session', 'agentenv.io/environment': 'fenced' });
    expect(np.spec.egress[1]).toEqual({ to: [{ ipBlock: { cidr: '160.79.104.0/23' } }], ports: [{ protocol: 'TCP', port: 443 }] });
    expect(np.metadata?.ownerReferences?.[0]).toMatchObject({ kind: 'AgentEnvironment', name: 'fenced', uid: created.metadata?.uid });
    expect(writes).toEqual([{ verb: 'create', resource: 'networkpolicies' }]);

    writes.length = 0;
    await controller.applyNetworkPolicy(withSpec(created.spec));
    expect(writes).toEqual([]);

    await controller.applyNetworkPolicy(withSpec({ ...created.spec, selfHosted: { networkPolicy: { enabled: true, allowedEgress: [{ cidr: '10.1.0.0/16', ports: [5432] }] } } }));
    expect(writes).toEqual([{ verb: 'update', resource: 'networkpolicies' }]);
    const updated = await read();
    expect(updated.spec.egress.at(-1)).toEqual({ to: [{ ipBlock: { cidr: '10.1.0.0/16' } }], ports: [{ protocol: 'TCP', port: 5432 }] });
    expect(updated.spec.egress[1]?.to?.[0]?.ipBlock.except).toEqual(['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '169.254.0.0/16', '100.64.0.0/10']);

    writes.length = 0;
    await controller.applyNetworkPolicy(withSpec({ ...created.spec, selfHosted: {} }));
    expect(writes).toEqual([{ verb: 'delete', resource: 'networkpolicies' }]);
    await expect(read()).rejects.toThrow(/not found/i);
  });
});

describe('the session NetworkPolicy through the operator', () => {
  it('a deleted session NetworkPolicy comes back on the next environment pass', async () => {
    // A self-hosted environment's next pass comes after queueRefreshMs, without any change to it: short here.
    const f = await environmentFixture('sessions-netpol-op', { kubeconfig: inject('operatorKubeconfig'), timings: { ...TEST_TIMINGS, queueRefreshMs: 1_000 } });
    try {
      const remote = await f.console.createEnvironment({ name: 'fenced', config: { type: 'self_hosted' } });
      await createEnvironment(f.admin, f.ns.name, 'fenced', { environmentId: remote.id, selfHosted: { networkPolicy: { enabled: true } } });
      const env = await waitForReady(f.admin, f.ns.name, 'fenced');
      const read = () => f.admin.get<NetworkPolicy>(CORE.networkPolicies, f.ns.name, networkPolicyName('fenced')).catch(() => undefined);
      const first = await waitFor(read, { what: 'the session NetworkPolicy' });
      await f.admin.delete(CORE.networkPolicies, f.ns.name, networkPolicyName('fenced'));
      const back = await waitFor(async () => {
        const np = await read();
        return np && np.metadata?.uid !== first.metadata?.uid ? np : undefined;
      }, { what: 'the NetworkPolicy to come back', timeoutMs: 20_000 });
      expect(back.spec).toEqual(first.spec);
      // No change to the environment brought it back: its generation is the same.
      expect((await f.admin.get<AgentEnvironment>(AGENT_ENVIRONMENTS, f.ns.name, 'fenced')).metadata?.generation).toBe(env.metadata?.generation);
    } finally {
      await f.cleanup();
    }
  });
});
