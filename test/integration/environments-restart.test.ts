/**
 * kube-apiserver restarted under a running operator: its watches must come back (reconnect, or
 * relist after 410 Gone) and a spec edit made after the restart must still reach the API.
 *
 * This file starts a cluster of its own: restarting the run's shared apiserver would break the
 * requests of every other test file running in parallel.
 *
 * The operator runs without leader election here. A restart that takes longer than the renew
 * deadline (10 s) costs the lease, and an operator that lost its lease stops leading and exits by
 * design (its Deployment restarts it); what this test pins down is the watch, not the election.
 */
import { KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CORE, KubeRest, type KubeObject } from '../../src/k8s/rest.ts';
import { startLocalCluster, type LocalCluster } from '../../src/localcluster/index.ts';
import { waitFor, type TestNamespace } from '../support/cluster.ts';
import { createEnvironment, environmentFixture, patchSpec, remote, waitForReady, type EnvironmentFixture } from '../support/environments.ts';

let cluster: LocalCluster | undefined;
let f: EnvironmentFixture | undefined;

async function namespaceIn(admin: KubeRest, prefix: string): Promise<TestNamespace> {
  const created = await admin.create<KubeObject>(CORE.namespaces, undefined, { metadata: { generateName: `${prefix}-` } });
  const name = created.metadata?.name ?? '';
  return { name, cleanup: () => admin.delete(CORE.namespaces, undefined, name).catch(() => {}) };
}

beforeAll(async () => {
  cluster = await startLocalCluster();
  const kc = new KubeConfig();
  kc.loadFromFile(cluster.adminKubeconfig);
  const admin = new KubeRest(kc, { fieldManager: 'agentenv-test' });
  f = await environmentFixture('env-restart', {
    kubeconfig: cluster.operatorKubeconfig,
    admin,
    namespace: (prefix) => namespaceIn(admin, prefix),
    leaderElect: false,
  });
}, 300_000);
afterAll(async () => {
  await f?.cleanup();
  await cluster?.stop();
}, 120_000);

describe('kube-apiserver restart under a running operator', () => {
  it('watches come back, and a spec edit after the restart reaches the API', async () => {
    const fx = f!;
    await createEnvironment(fx.admin, fx.ns.name, 'survivor', { cloud: {} });
    const env = await waitForReady(fx.admin, fx.ns.name, 'survivor');
    const id = env.status?.environmentId;
    const watchesBefore = fx.op.kubeRequests.filter((r) => r.verb === 'watch' || (r.verb === 'list' && r.resource === 'agentenvironments')).length;

    await cluster!.restartApiServer();

    // The apiserver may still be settling: the edit itself is retried until it is accepted.
    await waitFor(() => patchSpec(fx.admin, fx.ns.name, 'survivor', { name: 'edited after the restart' }), { timeoutMs: 30_000, what: 'the apiserver to accept the edit' });
    await waitFor(() => remote(fx.emu, id)?.name === 'edited after the restart', { timeoutMs: 60_000, what: 'the edit to reach the API' });
    const watchesAfter = fx.op.kubeRequests.filter((r) => r.verb === 'watch' || (r.verb === 'list' && r.resource === 'agentenvironments')).length;
    expect(watchesAfter).toBeGreaterThan(watchesBefore);

    // And the operator keeps serving new resources.
    await createEnvironment(fx.admin, fx.ns.name, 'newcomer', { cloud: {} });
    await waitForReady(fx.admin, fx.ns.name, 'newcomer', 30_000);
    await patchSpec(fx.admin, fx.ns.name, 'survivor', { description: 'second edit' });
    await waitFor(() => remote(fx.emu, id)?.description === 'second edit', { timeoutMs: 30_000, what: 'the second edit' });
  });
});
