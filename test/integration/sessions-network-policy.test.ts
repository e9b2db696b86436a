/**
 * The per-environment NetworkPolicy, applied as the operator's ServiceAccount: created when
 * enabled, left alone when it matches (no write), updated when the spec changes, deleted when
 * disabled.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AgentEnvironmentSpec } from '../../src/crd/agent-environment.ts';
import { AGENT_ENVIRONMENTS, type AgentEnvironment } from '../../src/crd/resources.ts';
import { MemoryEventRecorder } from '../../src/k8s/events.ts';
import { CORE, KubeRest, type Verb } from '../../src/k8s/rest.ts';
import { networkPolicyName, type NetworkPolicy } from '../../src/sessions/objects/network-policy.ts';
import { sessionController } from '../../src/sessions/controller/controller.ts';
import { createLogger } from '../../src/telemetry/logger.ts';
import { adminRest, createNamespace, operatorKubeConfig, type TestNamespace } from '../support/cluster.ts';

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
