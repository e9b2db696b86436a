/**
 * The local control plane enforces what a real cluster enforces: served CRDs, their CEL rules, the
 * operator's least-privilege RBAC, owner-reference garbage collection by kube-controller-manager, and
 * a restartable kube-apiserver.
 */
import { KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AGENT_ENVIRONMENTS } from '../../src/crd/resources.ts';
import { KubeError } from '../../src/k8s/errors.ts';
import { Informer } from '../../src/k8s/informer.ts';
import { CORE, KubeRest, resource, type KubeObject } from '../../src/k8s/rest.ts';
import { startLocalCluster, type LocalCluster } from '../../src/localcluster/index.ts';
import { silentLogger } from '../../src/telemetry/logger.ts';
import { adminRest, createNamespace, operatorRest, waitFor, type TestNamespace } from '../support/cluster.ts';

const CRDS = resource('apiextensions.k8s.io', 'v1', 'customresourcedefinitions', 'CustomResourceDefinition', false);
const CLUSTER_ROLES = resource('rbac.authorization.k8s.io', 'v1', 'clusterroles', 'ClusterRole', false);

interface Conditioned extends KubeObject {
  status?: { conditions?: Array<{ type: string; status: string }> };
}

/** The rejection reason of a call that must fail. */
async function refusal(call: Promise<unknown>): Promise<KubeError> {
  const err: unknown = await call.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(err instanceof KubeError)) throw new Error(`expected a KubeError, got ${String(err)}`);
  return err;
}

let ns: TestNamespace;
beforeAll(async () => {
  ns = await createNamespace('controlplane');
});
afterAll(async () => {
  await ns?.cleanup();
});

describe('local control plane', () => {
  it('serves the AgentEnvironment and AgentSession CRDs', async () => {
    const admin = adminRest();
    for (const name of ['agentenvironments.agentenv.io', 'agentsessions.agentenv.io']) {
      const crd = await admin.get<Conditioned>(CRDS, undefined, name);
      expect(crd.status?.conditions).toContainEqual(expect.objectContaining({ type: 'Established', status: 'True' }));
    }
    const list = await admin.list(AGENT_ENVIRONMENTS, ns.name);
    expect(list.items).toEqual([]);
  });

  it('refuses an AgentEnvironment with both cloud and selfHosted through the CRD CEL rule', async () => {
    const err = await refusal(
      adminRest().create(AGENT_ENVIRONMENTS, ns.name, { metadata: { name: 'both' }, spec: { cloud: {}, selfHosted: {} } } as KubeObject),
    );
    expect(err.reason).toBe('Invalid');
    expect(err.message).toContain('exactly one of spec.cloud or spec.selfHosted must be set');
  });

  it('lets the operator identity write AgentEnvironment status', async () => {
    await adminRest().create(AGENT_ENVIRONMENTS, ns.name, { metadata: { name: 'status-writer' }, spec: { selfHosted: {} } } as KubeObject);
    const operator = operatorRest();
    const written = await operator.patch<KubeObject & { status?: { environmentId?: string } }>(
      AGENT_ENVIRONMENTS,
      ns.name,
      'status-writer',
      { status: { environmentId: 'env_01Test', type: 'self_hosted' } },
      'merge',
      { subresource: 'status' },
    );
    expect(written.status?.environmentId).toBe('env_01Test');
  });

  it('forbids the operator identity to delete Nodes, create ClusterRoles or read ConfigMaps', async () => {
    const operator = operatorRest();
    expect((await refusal(operator.delete(CORE.nodes, undefined, 'agentenv-local'))).reason).toBe('Forbidden');
    const role = { metadata: { name: 'agentenv-escalation' }, rules: [{ apiGroups: ['*'], resources: ['*'], verbs: ['*'] }] } as KubeObject;
    expect((await refusal(operator.create(CLUSTER_ROLES, undefined, role))).reason).toBe('Forbidden');
    expect((await refusal(operator.list(CORE.configMaps, ns.name))).reason).toBe('Forbidden');
  });

  it('garbage-collects a ConfigMap once its owner is deleted (kube-controller-manager runs)', async () => {
    const admin = adminRest();
    const owner = await admin.create<KubeObject>(CORE.configMaps, ns.name, { metadata: { name: 'owner' } });
    await admin.create(CORE.configMaps, ns.name, {
      metadata: {
        name: 'child',
        ownerReferences: [{ apiVersion: 'v1', kind: 'ConfigMap', name: 'owner', uid: owner.metadata?.uid ?? '' }],
      },
    });
    await admin.delete(CORE.configMaps, ns.name, 'owner', { propagationPolicy: 'Background' });
    await waitFor(
      async () => {
        try {
          await admin.get(CORE.configMaps, ns.name, 'child');
          return false;
        } catch (err) {
          return err instanceof KubeError && err.reason === 'NotFound';
        }
      },
      { timeoutMs: 60_000, what: 'the garbage collector to delete the child ConfigMap' },
    );
  });

  it('keeps an informer index in line with adds, label changes and deletes', async () => {
    const admin = adminRest();
    const informer = new Informer<KubeObject>(admin, CORE.configMaps, { namespace: ns.name, logger: silentLogger }).addIndex('team', (o) => o.metadata?.labels?.['team']);
    const stop = new AbortController();
    const running = informer.run(stop.signal);
    const names = (team: string): string[] => informer.byIndex('team', team).map((o) => o.metadata?.name ?? '').sort();
    try {
      await informer.synced();
      await admin.create(CORE.configMaps, ns.name, { metadata: { name: 'a', labels: { team: 'red' } } });
      await admin.create(CORE.configMaps, ns.name, { metadata: { name: 'b', labels: { team: 'red' } } });
      await admin.create(CORE.configMaps, ns.name, { metadata: { name: 'c' } });
      await waitFor(() => names('red').length === 2 && informer.get(ns.name, 'c'), { what: 'the informer to index a and b' });
      expect(names('red')).toEqual(['a', 'b']);
      await admin.patch(CORE.configMaps, ns.name, 'b', { metadata: { labels: { team: 'blue' } } }, 'merge');
      await admin.patch(CORE.configMaps, ns.name, 'c', { metadata: { labels: { team: 'blue' } } }, 'merge');
      await waitFor(() => names('blue').length === 2, { what: 'b and c to move to blue' });
      expect(names('red')).toEqual(['a']);
      await admin.delete(CORE.configMaps, ns.name, 'a');
      await waitFor(() => names('red').length === 0, { what: 'a to leave the index' });
      expect(names('blue')).toEqual(['b', 'c']);
    } finally {
      stop.abort();
      await running;
    }
  });
});

describe('a kube-apiserver restart', () => {
  // A cluster of its own: restarting the run's shared apiserver would disturb the other test files.
  let cluster: LocalCluster;
  beforeAll(async () => {
    cluster = await startLocalCluster();
  });
  afterAll(async () => {
    await cluster?.stop();
  });

  it('keeps the same address and data, and an informer resumes its watch across it', async () => {
    const kc = new KubeConfig();
    kc.loadFromFile(cluster.adminKubeconfig);
    const rest = new KubeRest(kc);
    const controller = new AbortController();
    const informer = new Informer<KubeObject>(rest, CORE.configMaps, {
      namespace: 'default',
      logger: silentLogger,
      backoff: { baseMs: 100, capMs: 1_000, jitter: 0.2 },
    });
    const running = informer.run(controller.signal);
    try {
      await informer.synced();
      await rest.create(CORE.configMaps, 'default', { metadata: { name: 'before-restart' } });
      await waitFor(() => informer.get('default', 'before-restart'), { what: 'the informer to see before-restart' });

      await cluster.restartApiServer();

      await rest.create(CORE.configMaps, 'default', { metadata: { name: 'after-restart' } });
      await waitFor(() => informer.get('default', 'after-restart'), { timeoutMs: 60_000, what: 'the informer to see after-restart' });
      expect(informer.get('default', 'before-restart')).toBeDefined();
    } finally {
      controller.abort();
      await running;
    }
  });
});
