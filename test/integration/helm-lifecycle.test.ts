/**
 * `helm install` → `helm upgrade` → `helm uninstall`, in that order, of the real chart on a local
 * cluster of its own (kube-apiserver, kube-controller-manager with the Deployment, ReplicaSet and
 * Job controllers, the process kubelet running the project image as `node src/cli/main.ts`), with
 * AgentEnvironments present: the chart installs the CRDs, its Deployment's operator makes the
 * resources Ready against the emulator, the upgrade rolls the operator over without losing them,
 * and the uninstall's pre-delete hook (`uninstall.policy=delete`) has the still-running operator apply
 * each deletion policy before the release goes — leaving nothing in Terminating: the tenant
 * namespace and then the kept CRDs delete cleanly.
 *
 * A cluster of its own because the chart owns the CRDs here (the run's shared cluster has them
 * applied from crds/ for every other test file).
 */
import { mkdtemp } from 'node:fs/promises';
import { createServer } from 'node:net';
import { mkdirSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AGENT_ENVIRONMENTS, type AgentEnvironment } from '../../src/crd/resources.ts';
import type { RunningEmulator } from '../../src/emulator/index.ts';
import { isNotFound } from '../../src/k8s/errors.ts';
import { CORE, KubeRest, resource, type KubeObject } from '../../src/k8s/rest.ts';
import { startLocalCluster, type LocalCluster } from '../../src/localcluster/index.ts';
import { helm } from '../chart/helm.ts';
import { CHART } from '../chart/helm.ts';
import { waitFor } from '../support/cluster.ts';
import { API_KEY, emulator } from '../support/emulator.ts';
import { agentEnvironment, remote } from '../support/environments.ts';

const RELEASE = 'agentenv';
const RELEASE_NS = 'agentenv-release';
const TENANT_NS = 'team-a';
const DEPLOYMENTS = resource('apps', 'v1', 'deployments', 'Deployment');
const CRDS = resource('apiextensions.k8s.io', 'v1', 'customresourcedefinitions', 'CustomResourceDefinition', false);

let cluster: LocalCluster;
let emu: RunningEmulator;
let admin: KubeRest;

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

/** Run helm against this test's cluster; its output is the failure message. */
async function helmOk(args: readonly string[]): Promise<string> {
  const r = await helm([...args, '--kubeconfig', cluster.adminKubeconfig, '--namespace', RELEASE_NS]);
  if (!r.ok) throw new Error(`helm ${args[0]} failed:\n${r.stderr}\n${r.stdout}`);
  return r.stdout;
}

/**
 * Values for the process kubelet: one replica (every Pod shares the host's network, so two
 * operators would both bind the health port), ports of their own, the emulator as the API.
 */
const values = async (): Promise<string[]> => [
  'replicaCount=1',
  `apiKey.value=${API_KEY}`,
  `anthropicBaseUrl=${emu.url}`,
  `health.port=${await freePort()}`,
  `metrics.port=${await freePort()}`,
  'sessionProxyAddress=pod-ip',
  'livenessProbe.initialDelaySeconds=2',
  'readinessProbe.initialDelaySeconds=1',
  'readinessProbe.periodSeconds=2',
  'terminationGracePeriodSeconds=10',
];

const ready = (name: string) =>
  waitFor(
    async () => {
      const env = await admin.get<AgentEnvironment>(AGENT_ENVIRONMENTS, TENANT_NS, name);
      const r = env.status?.conditions?.find((c) => c.type === 'Ready');
      return r?.status === 'True' && env.status?.environmentId && env.status.observedGeneration === env.metadata?.generation ? env : undefined;
    },
    { timeoutMs: 90_000, intervalMs: 500, what: `${TENANT_NS}/${name} Ready through the chart's operator` },
  );

const gone = (type: Parameters<KubeRest['get']>[0], namespace: string | undefined, name: string, what: string) =>
  waitFor(async () => admin.get(type, namespace, name).then(() => false, (err: unknown) => isNotFound(err)), { timeoutMs: 60_000, intervalMs: 500, what });

beforeAll(async () => {
  // The state directory (and so every Pod's volumes) must not be under /tmp: the operator Pod mounts
  // an emptyDir at /tmp, and the process kubelet's mounts would then hide the other volumes' sources.
  const cacheRoot = process.env.AGENTENV_CACHE_DIR ?? join(homedir(), '.cache', 'agentenv');
  mkdirSync(cacheRoot, { recursive: true });
  cluster = await startLocalCluster({
    dir: await mkdtemp(join(cacheRoot, 'helm-lifecycle-')),
    kubelet: true,
    workloadControllers: true,
    // The chart installs the CRDs itself.
    crdsDir: await mkdtemp(join(tmpdir(), 'agentenv-no-crds-')),
    ...(process.env.AGENTENV_CACHE_DIR ? { cacheDir: process.env.AGENTENV_CACHE_DIR } : {}),
    nodeName: 'agentenv-helm',
  });
  const kc = new KubeConfig();
  kc.loadFromFile(cluster.adminKubeconfig);
  admin = new KubeRest(kc, { fieldManager: 'agentenv-test' });
  emu = await emulator();
}, 600_000);

afterAll(async () => {
  await emu?.close();
  await admin?.close();
  await cluster?.stop();
});

describe('helm install → upgrade → uninstall on the local cluster', () => {
  let ids: string[] = [];

  it('install: the chart creates the CRDs, and its operator Deployment makes AgentEnvironments Ready', { timeout: 300_000 }, async () => {
    await helmOk(['install', RELEASE, CHART, '--create-namespace', '--wait', '--timeout', '3m', ...(await values()).flatMap((v) => ['--set', v])]);
    await waitFor(() => admin.get(CRDS, undefined, 'agentenvironments.agentenv.io'), { what: 'the chart-installed CRD' });
    await admin.create(CORE.namespaces, undefined, { metadata: { name: TENANT_NS } });
    for (const name of ['analysis', 'builds']) {
      await admin.create(AGENT_ENVIRONMENTS, TENANT_NS, agentEnvironment(name, { cloud: {}, description: `${name} before the upgrade` }));
    }
    ids = [(await ready('analysis')).status!.environmentId!, (await ready('builds')).status!.environmentId!];
    expect(ids.map((id) => remote(emu, id)?.description)).toEqual(['analysis before the upgrade', 'builds before the upgrade']);
    const lease = await admin.get<KubeObject & { spec?: { holderIdentity?: string } }>(CORE.leases, RELEASE_NS, 'agentenv');
    expect(lease.spec?.holderIdentity).toMatch(/^agentenv-/);
  });

  it('upgrade (--reset-then-reuse-values, new values): the operator is rolled over and keeps serving the same resources', { timeout: 300_000 }, async () => {
    const before = await admin.get<KubeObject & { metadata: { generation?: number } }>(DEPLOYMENTS, RELEASE_NS, RELEASE);
    await helmOk(['upgrade', RELEASE, CHART, '--reset-then-reuse-values', '--wait', '--timeout', '3m', '--set', 'logLevel=debug', '--set', 'uninstall.policy=delete', '--set', `health.port=${await freePort()}`, '--set', `metrics.port=${await freePort()}`]);
    const after = await admin.get<KubeObject & { metadata: { generation?: number } }>(DEPLOYMENTS, RELEASE_NS, RELEASE);
    expect(after.metadata.generation).toBeGreaterThan(before.metadata.generation ?? 0);
    // A spec edit after the upgrade reaches the API through the new operator.
    await admin.patch(AGENT_ENVIRONMENTS, TENANT_NS, 'analysis', { spec: { description: 'after the upgrade' } }, 'merge');
    await waitFor(() => remote(emu, ids[0])?.description === 'after the upgrade', { timeoutMs: 60_000, intervalMs: 500, what: 'the edit to reach the emulator' });
    expect((await ready('builds')).status?.environmentId).toBe(ids[1]);
  });

  it('uninstall (policy delete): the hook has the operator apply each deletion policy first; the tenant namespace and the kept CRDs then delete without hanging', { timeout: 300_000 }, async () => {
    await helmOk(['uninstall', RELEASE, '--wait', '--timeout', '3m']);
    // The hook deleted the AgentEnvironments and the operator archived their environments (the default policy) before it went.
    expect((await admin.list(AGENT_ENVIRONMENTS, TENANT_NS)).items).toEqual([]);
    for (const id of ids) expect(remote(emu, id)?.archived_at).not.toBeNull();
    await gone(DEPLOYMENTS, RELEASE_NS, RELEASE, 'the operator Deployment to be gone');
    // crds.keep: the CRDs outlive the release.
    await admin.get(CRDS, undefined, 'agentenvironments.agentenv.io');

    await admin.delete(CORE.namespaces, undefined, TENANT_NS);
    await gone(CORE.namespaces, undefined, TENANT_NS, 'the tenant namespace to be deleted (nothing held by a finalizer)');
    for (const crd of ['agentenvironments.agentenv.io', 'agentsessions.agentenv.io']) {
      await admin.delete(CRDS, undefined, crd);
      await gone(CRDS, undefined, crd, `CRD ${crd} to be deleted`);
    }
  });
});
