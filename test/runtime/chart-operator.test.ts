/**
 * The chart's Deployment on the containerd node: `helm install` of the real chart with the project
 * image built from the Dockerfile (the chart's default name, imported into containerd, never pulled),
 * its operator Pod reaching the apiserver in-cluster — the `kubernetes` Service's ClusterIP, made
 * reachable by kube-proxy, in front of the apiserver's bridge address — and becoming Ready; then the
 * operator, not the test, dispatches a session: it polls the emulator, claims the work item, runs the
 * session Pod with the default runner image, and scripted bash calls are served in it.
 *
 * The release watches only this file's namespace (one Role per namespace, no cluster-wide rule), so
 * it never touches the other files' sessions; the CRDs are the cluster's (crds.enabled=false).
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { EnvironmentsClient } from '../../src/api/client.ts';
import { AGENT_ENVIRONMENTS, AGENT_SESSIONS, type AgentEnvironment, type AgentSession } from '../../src/crd/resources.ts';
import type { RunningEmulator } from '../../src/emulator/index.ts';
import { CORE, type KubeObject, type KubeRest } from '../../src/k8s/rest.ts';
import { helm, CHART } from '../chart/helm.ts';
import { bash, resultText, scriptAgent, terminated, waitForToolResults } from '../support/agent-script.ts';
import { adminRest, createNamespace, waitFor, type TestNamespace } from '../support/cluster.ts';
import { API_KEY, clientFor, emulator } from '../support/emulator.ts';
import { unavailable } from './world.ts';

const RELEASE = 'agentenv';

interface Pod extends KubeObject {
  spec: { nodeName?: string; containers: Array<{ name: string; image: string }> };
  status?: { conditions?: Array<{ type: string; status: string }> };
}

describe.skipIf(unavailable())('the chart on containerd', () => {
  let releaseNs: TestNamespace;
  let tenantNs: TestNamespace;
  let emu: RunningEmulator;
  let admin: KubeRest;
  let api: EnvironmentsClient;

  /** helm against the runtime tier's cluster, in the release namespace; its output is the failure message. */
  const helmOk = async (args: readonly string[]): Promise<string> => {
    const r = await helm([...args, '--kubeconfig', inject('adminKubeconfig'), '--namespace', releaseNs.name]);
    if (!r.ok) throw new Error(`helm ${args[0]} failed:\n${r.stderr}\n${r.stdout}`);
    return r.stdout;
  };

  beforeAll(async () => {
    admin = adminRest();
    releaseNs = await createNamespace('chart-release');
    tenantNs = await createNamespace('chart-tenant');
    // Pods reach the emulator on the node's address (each Pod has its own network namespace).
    emu = await emulator({ workSecrets: true, leaseTtl: { defaultSeconds: 20, minSeconds: 2 }, host: inject('nodeAddress') });
    api = clientFor(emu);
  });

  afterAll(async () => {
    if (releaseNs) await helm(['uninstall', RELEASE, '--kubeconfig', inject('adminKubeconfig'), '--namespace', releaseNs.name, '--wait', '--timeout', '2m']);
    await emu?.close();
    await tenantNs?.cleanup();
    await releaseNs?.cleanup();
  });

  it('helm install: the operator runs from the project image on the real kubelet, reaches the apiserver through the kubernetes Service, and becomes Ready', { timeout: 300_000 }, async () => {
    const values = [
      'replicaCount=1',
      'crds.enabled=false',
      `watchNamespaces={${tenantNs.name}}`,
      // Its environments are made through the API and adopted by id, which needs the namespace's grant.
      `tenancy.adoptionNamespaces={${tenantNs.name}}`,
      `apiKey.value=${API_KEY}`,
      `anthropicBaseUrl=${emu.url}`,
      'readinessProbe.initialDelaySeconds=1',
      'readinessProbe.periodSeconds=2',
      'terminationGracePeriodSeconds=10',
    ];
    await helmOk(['install', RELEASE, CHART, '--wait', '--timeout', '4m', ...values.flatMap((v) => ['--set', v])]);
    const pods = await admin.list<Pod>(CORE.pods, releaseNs.name);
    const operator = pods.items.find((p) => p.spec.containers.some((c) => c.name === 'operator'));
    expect(operator?.spec.nodeName).toBe('agentenv-containerd');
    expect(operator?.spec.containers.find((c) => c.name === 'operator')?.image).toBe(inject('projectImage'));
    expect(operator?.status?.conditions?.find((c) => c.type === 'Ready')?.status).toBe('True');
  });

  it('the chart\'s operator dispatches a session: the default runner serves scripted bash calls in its Pod, and the session ends Succeeded', { timeout: 300_000 }, async () => {
    const remote = await api.createEnvironment({ name: 'chart-served', config: { type: 'self_hosted' } });
    const envKey = emu.admin.mintKey(remote.id);
    await admin.create(CORE.secrets, tenantNs.name, { metadata: { name: 'chart-served-key' }, stringData: { key: envKey } } as KubeObject);
    await admin.create<AgentEnvironment>(AGENT_ENVIRONMENTS, tenantNs.name, {
      metadata: { name: 'chart-served' },
      spec: { environmentId: remote.id, selfHosted: { environmentKeySecretRef: { name: 'chart-served-key', key: 'key' }, stopGracePeriodSeconds: 5, leaseTTLSeconds: 6 } },
    } as unknown as AgentEnvironment);

    const { session_id: sessionId, work_id: workId } = emu.admin.createSession(remote.id);
    const session = await waitFor(
      async () => {
        const list = await admin.list<AgentSession>(AGENT_SESSIONS, tenantNs.name);
        return list.items.find((s) => s.spec.sessionId === sessionId && s.status?.phase === 'Running');
      },
      { what: `the chart's operator to claim ${workId} and run its session`, timeoutMs: 180_000, intervalMs: 500 },
    );

    const [echo, who] = await scriptAgent(emu.url, sessionId, [bash('echo served-by-the-chart'), bash('id -u')]);
    const results = await waitForToolResults(emu.url, sessionId, [echo!, who!], { timeoutMs: 90_000 });
    expect(resultText(results.get(echo!)).trim()).toBe('served-by-the-chart');
    expect(resultText(results.get(who!)).trim()).toBe('65532');

    await scriptAgent(emu.url, sessionId, [terminated()]);
    const name = session.metadata?.name ?? '';
    const done = await waitFor(
      async () => {
        const s = await admin.get<AgentSession>(AGENT_SESSIONS, tenantNs.name, name);
        return s.status?.phase === 'Succeeded' || s.status?.phase === 'Failed' ? s : undefined;
      },
      { what: `AgentSession ${name} to finish`, timeoutMs: 120_000, intervalMs: 500 },
    );
    expect(done.status).toMatchObject({ phase: 'Succeeded', workState: 'stopped' });
    expect((await api.getWork(remote.id, workId)).state).toBe('stopped');
  });
});
