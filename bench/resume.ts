/**
 * Resume latency (issue 12) on the local cluster with the process kubelet, the real volume
 * provisioner, the in-process emulator and the in-process operator: sessions run the default runner
 * (the SDK's handleItem) on a workspace claim, with a short idle timeout.
 *
 * - cold first message: session created → the result of its first bash call (claim provisioned and
 *   bound, Pod started, lease claimed, runner up, tool run), over `BENCH_RESUME_COLD` sessions;
 * - resume: the runner ended on its idle timeout (AgentSession `Succeeded` / `Idle`) → `wake` → the
 *   result of the new work item's first bash call (reading the file the first item wrote), over
 *   `BENCH_RESUME_SAMPLES` resumes (default 20) of one session. p50 / p99 in milliseconds.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { KubeConfig } from '@kubernetes/client-node';
import { EnvironmentsClient } from '../src/api/client.ts';
import { startOperator } from '../src/cli/operator.ts';
import { benchOperatorConfig } from './support.ts';
import { AGENT_ENVIRONMENTS, AGENT_SESSIONS, type AgentEnvironment, type AgentSession } from '../src/crd/resources.ts';
import { startEmulator, type RunningEmulator } from '../src/emulator/index.ts';
import { CORE, KubeRest, type KubeObject } from '../src/k8s/rest.ts';
import { startLocalCluster } from '../src/localcluster/index.ts';
import { sessionName } from '../src/sessions/record/names.ts';
import { createLogger } from '../src/telemetry/logger.ts';
import { bash, endTurn, resultText, scriptAgent, waitForToolResults } from '../test/support/agent-script.ts';

const API_KEY = 'sk-ant-api03-bench';
const IDLE_SECONDS = 2;

function percentile(sorted: readonly number[], p: number): number {
  if (!sorted.length) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}
const stats = (name: string, xs: number[]): Record<string, number> => {
  const s = [...xs].sort((a, b) => a - b);
  return { [`${name}_p50_ms`]: Math.round(percentile(s, 50)), [`${name}_p99_ms`]: Math.round(percentile(s, 99)), [`${name}_samples`]: s.length };
};

async function until<T>(what: string, read: () => Promise<T | undefined>, timeoutMs = 120_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await read();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

/** One bash call scripted now; resolves with its result text and the milliseconds from `t0`. */
async function firstResult(emu: RunningEmulator, sessionId: string, command: string, t0: number): Promise<{ text: string; ms: number }> {
  const [id] = await scriptAgent(emu.url, sessionId, [bash(command)]);
  const results = await waitForToolResults(emu.url, sessionId, [id!], { timeoutMs: 120_000, intervalMs: 10 });
  return { text: resultText(results.get(id!)), ms: performance.now() - t0 };
}

export async function benchResume(): Promise<Record<string, number>> {
  const cluster = await startLocalCluster({ kubelet: true, log: (l) => process.stderr.write(`[local cluster] ${l}\n`) });
  const emu = await startEmulator({ apiKeys: [API_KEY] });
  const kc = new KubeConfig();
  kc.loadFromFile(cluster.adminKubeconfig);
  const admin = new KubeRest(kc, { fieldManager: 'agentenv-bench' });
  const ns = (await admin.create<KubeObject>(CORE.namespaces, undefined, { metadata: { generateName: 'bench-resume-' } })).metadata!.name!;
  const config = benchOperatorConfig({ kubeconfig: cluster.operatorKubeconfig, baseUrl: emu.url, apiKey: API_KEY, namespace: ns }, { sessionProxyAddress: 'pod-ip', logLevel: 'warn' });
  const op = await startOperator(config, { logger: createLogger({ level: 'warn', destination: { write: (l: string) => void process.stderr.write(l) } }) });
  try {
    const console_ = new EnvironmentsClient({ baseUrl: emu.url, credential: { kind: 'api-key', value: API_KEY } });
    const remote = await console_.createEnvironment({ name: 'resume', config: { type: 'self_hosted' } });
    await admin.create(CORE.secrets, ns, { metadata: { name: 'resume-key' }, stringData: { key: emu.admin.mintKey(remote.id) } } as KubeObject);
    await admin.create(AGENT_ENVIRONMENTS, ns, {
      metadata: { name: 'resume' },
      spec: {
        environmentId: remote.id,
        selfHosted: {
          environmentKeySecretRef: { name: 'resume-key', key: 'key' },
          idleTimeoutSeconds: IDLE_SECONDS,
          workspace: { volumeClaimTemplate: { spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } } } },
        },
      },
    } as unknown as AgentEnvironment);

    const cold: number[] = [];
    const coldSessions = Number(process.env['BENCH_RESUME_COLD'] ?? 5);
    let resumed: string | undefined;
    for (let i = 0; i < coldSessions; i++) {
      const t0 = performance.now();
      const { session_id } = emu.admin.createSession(remote.id);
      const r = await firstResult(emu, session_id, 'echo kept > kept.txt && echo ok', t0);
      cold.push(r.ms);
      if (i === 0) resumed = session_id;
      else await scriptAgent(emu.url, session_id, [{ type: 'session.status_terminated' }]);
    }

    const resumes: number[] = [];
    const samples = Number(process.env['BENCH_RESUME_SAMPLES'] ?? 20);
    const record = sessionName('resume', resumed!);
    for (let i = 0; i < samples; i++) {
      await scriptAgent(emu.url, resumed!, [endTurn()]);
      await until('the runner to end idle', async () => {
        const s = await admin.get<AgentSession>(AGENT_SESSIONS, ns, record);
        return s.status?.phase === 'Succeeded' && s.status.reason === 'Idle' ? s : undefined;
      });
      const t0 = performance.now();
      emu.admin.wake(remote.id, resumed!);
      const r = await firstResult(emu, resumed!, 'cat kept.txt', t0);
      if (r.text.trim() !== 'kept') throw new Error(`resume ${i} read ${JSON.stringify(r.text)}, not the workspace's file`);
      resumes.push(r.ms);
    }
    return { ...stats('resume_cold_first_result', cold), ...stats('resume_wake_to_first_result', resumes) };
  } finally {
    await op.stop();
    await emu.close();
    await cluster.stop();
  }
}
