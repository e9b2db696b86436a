/**
 * Warm against cold in the same run (issue 13): the local cluster with the process kubelet, the
 * in-process emulator (per-item secrets on) and the in-process operator with its assignment
 * endpoint (TLS from openssl, as the chart would provide), `pod-ip` proxy mode, the default runner.
 *
 * Two environments: `warm` (`warmPool.size: 2`) and `cold` (no pool). BENCH_WARM_SESSIONS sessions
 * (default 30) each, alternating warm and cold, ONE AT A TIME: before a warm session the pool is
 * waited for (two ready Pods), so every warm session finds one; each is scripted at enqueue with one
 * bash `echo`, then terminated, and the next starts once it has finished. Measured, p50 / p99:
 *
 *   lease_active   enqueued → the work item's first heartbeat 200 (the emulator's request log)
 *   first_result   enqueued → `user.tool_result` in the history (its `processed_at`)
 *   bound          how many warm sessions were bound to a warm Pod (records naming spec.warmPod)
 *
 * Then the idle cost of the pool of 2, over BENCH_WARM_IDLE_SECONDS (default 60) with nothing
 * queued: the operator's Kubernetes reads and writes and its API calls, per minute, and the CPU
 * seconds per minute of the warm Pods' processes (their sidecars' long polls, their waiting
 * runners), from /proc. The Kubernetes and API figures are the whole operator's, the cold
 * environment's idle poll included: compare them with the same window of `npm run bench -- dispatch`
 * to see what the pool adds (a full pool: its 60 s pass and its Pods' TokenReviews). Figures are
 * measured, never asserted. Run: `npm run bench -- warm` (BENCH_WARM_SESSIONS, BENCH_WARM_IDLE_SECONDS).
 */
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { KubeConfig } from '@kubernetes/client-node';
import { EnvironmentsClient } from '../src/api/client.ts';
import { startOperator } from '../src/cli/operator.ts';
import { AGENT_ENVIRONMENTS, AGENT_SESSIONS, type AgentEnvironment, type AgentSession } from '../src/crd/resources.ts';
import { startEmulator } from '../src/emulator/index.ts';
import { CORE, KubeRest, type KubeObject } from '../src/k8s/rest.ts';
import { startLocalCluster } from '../src/localcluster/index.ts';
import type { Pod } from '../src/sessions/objects/pod-types.ts';
import { warmPoolSelector } from '../src/sessions/record/names.ts';
import { createLogger } from '../src/telemetry/logger.ts';
import { benchOperatorConfig, processCpuSeconds } from './support.ts';
import { writeServingCertificate } from '../src/localcluster/serving-cert.ts';
import { freePort } from '../src/localcluster/controlplane-process.ts';

const API_KEY = 'sk-ant-api03-bench-warm';
const NS = 'bench-warm';

const pct = (xs: readonly number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]! : NaN;
};
const round = (n: number): number => Math.round(n * 10) / 10;
const bump = (m: Map<string, number>, k: string): void => void m.set(k, (m.get(k) ?? 0) + 1);

async function until<T>(what: string, timeoutMs: number, probe: () => T | undefined | false | Promise<T | undefined | false>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(5);
  }
}



/** CPU seconds (user + system) of every process whose environment marks it as a warm Pod's sidecar or runner. */
function warmPodCpuSeconds(): number {
  let seconds = 0;
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const environ = readFileSync(`/proc/${entry}/environ`, 'utf8');
      if (!environ.includes('AGENTENV_ASSIGNMENT_URL=') && !environ.includes('AGENTENV_WAIT_FOR_ASSIGNMENT=1')) continue;
      seconds += processCpuSeconds(Number(entry));
    } catch {
      // gone, or not ours
    }
  }
  return seconds;
}

export async function benchWarm(): Promise<Record<string, number>> {
  const count = Number(process.env['BENCH_WARM_SESSIONS'] ?? 30);
  const idleSeconds = Number(process.env['BENCH_WARM_IDLE_SECONDS'] ?? 60);
  const cluster = await startLocalCluster({ kubelet: true, log: (l) => process.stderr.write(`[local cluster] ${l}\n`) });
  const beats: Array<{ at: number; path: string }> = [];
  const emulatorLog = createLogger({
    level: 'debug',
    destination: {
      write: (line: string) => {
        const l = JSON.parse(line) as { msg: string; time: string; method: string; path: string; status: number };
        if (l.msg === 'request' && l.method === 'POST' && l.status === 200 && l.path.endsWith('/heartbeat')) beats.push({ at: Date.parse(l.time), path: l.path });
      },
    },
  });
  const emu = await startEmulator({ apiKeys: [API_KEY], workSecrets: true, logger: emulatorLog });
  const kube = { reads: 0, writes: 0, byRequest: new Map<string, number>() };
  const api = { calls: 0, byEndpoint: new Map<string, number>() };
  let operator: Awaited<ReturnType<typeof startOperator>> | undefined;
  try {
    const kc = new KubeConfig();
    kc.loadFromFile(cluster.adminKubeconfig);
    const admin = new KubeRest(kc, { fieldManager: 'agentenv-bench' });
    await admin.create(CORE.namespaces, undefined, { metadata: { name: NS } } as KubeObject);
    const port = await freePort();
    operator = await startOperator(
      benchOperatorConfig({ kubeconfig: cluster.operatorKubeconfig, baseUrl: emu.url, apiKey: API_KEY, namespace: NS }, {
        sessionProxyAddress: 'pod-ip',
        assignmentUrl: `https://127.0.0.1:${port}`,
        assignmentPort: port,
        assignmentTlsDir: writeServingCertificate(mkdtempSync(join(tmpdir(), 'agentenv-assignment-'))),
      }),
      {
        logger: createLogger({ level: (process.env['BENCH_LOG_LEVEL'] ?? 'warn') as 'warn', destination: { write: (l: string) => void process.stderr.write(l) } }),
        observeKube: (r) => {
          void (['get', 'list', 'watch'].includes(r.verb) ? kube.reads++ : kube.writes++);
          bump(kube.byRequest, `${r.verb} ${r.resource}`);
        },
        onApiCall: (r) => {
          api.calls++;
          bump(api.byEndpoint, r.endpoint);
        },
      },
    );

    const console_ = new EnvironmentsClient({ baseUrl: emu.url, credential: { kind: 'api-key', value: API_KEY } });
    const envIds: Record<'warm' | 'cold', string> = { warm: '', cold: '' };
    for (const kind of ['warm', 'cold'] as const) {
      const remote = await console_.createEnvironment({ name: kind, config: { type: 'self_hosted' } });
      envIds[kind] = remote.id;
      await admin.create(CORE.secrets, NS, { metadata: { name: `${kind}-key` }, stringData: { key: emu.admin.mintKey(remote.id) } } as KubeObject);
      await admin.create(AGENT_ENVIRONMENTS, NS, {
        metadata: { name: kind },
        spec: { environmentId: remote.id, selfHosted: { environmentKeySecretRef: { name: `${kind}-key`, key: 'key' }, maxSessions: 4, ...(kind === 'warm' ? { warmPool: { size: 2 } } : {}) } },
      } as unknown as AgentEnvironment);
    }
    const poolReady = async (): Promise<boolean> => {
      const pods = (await admin.list<Pod>(CORE.pods, NS, { labelSelector: warmPoolSelector('warm') })).items;
      return pods.filter((p) => !p.metadata?.deletionTimestamp && p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True')).length === 2;
    };
    await until('the warm pool of 2', 180_000, poolReady);

    const figures = { warm: { active: [] as number[], result: [] as number[] }, cold: { active: [] as number[], result: [] as number[] } };
    for (let i = 0; i < 2 * count; i++) {
      const kind = i % 2 === 0 ? 'warm' : 'cold';
      if (kind === 'warm') await until('the warm pool of 2', 180_000, poolReady);
      const enqueued = Date.now();
      const { session_id: id, work_id: workId } = emu.admin.createSession(envIds[kind]);
      const [, echo] = emu.admin.appendAgentEvents(id, [{ type: 'session.status_running' }, { type: 'agent.tool_use', name: 'bash', input: { command: `echo ${kind}-${i}` } }]);
      const result = await until(`the result of ${kind} session ${i}`, 120_000, () => emu.admin.sessionEvents(id).find((e) => e.type === 'user.tool_result' && e['tool_use_id'] === echo));
      const active = beats.find((b) => b.path.endsWith(`/work/${workId}/heartbeat`))?.at;
      if (active !== undefined) figures[kind].active.push(active - enqueued);
      figures[kind].result.push(Date.parse(String(result.processed_at)) - enqueued);
      emu.admin.appendAgentEvents(id, [{ type: 'session.status_terminated' }]);
      await until(`${kind} session ${i} finished`, 120_000, async () => {
        const s = (await admin.list<AgentSession>(AGENT_SESSIONS, NS)).items.find((r) => r.spec.sessionId === id);
        return s?.status?.phase === 'Succeeded' || s?.status?.phase === 'Failed';
      });
      process.stderr.write(`  ${kind} ${Math.floor(i / 2) + 1}/${count}: first result after ${figures[kind].result.at(-1)} ms\n`);
    }
    const records = (await admin.list<AgentSession>(AGENT_SESSIONS, NS)).items;
    const out: Record<string, number> = {
      'warm.sessions_each': count,
      'warm.bound_to_warm_pods': records.filter((r) => r.spec.environmentRef.name === 'warm' && r.spec.warmPod).length,
    };
    for (const kind of ['warm', 'cold'] as const) {
      out[`warm.${kind}.enqueued_to_lease_active_p50_ms`] = round(pct(figures[kind].active, 50));
      out[`warm.${kind}.enqueued_to_lease_active_p99_ms`] = round(pct(figures[kind].active, 99));
      out[`warm.${kind}.enqueued_to_first_result_p50_ms`] = round(pct(figures[kind].result, 50));
      out[`warm.${kind}.enqueued_to_first_result_p99_ms`] = round(pct(figures[kind].result, 99));
    }

    // The idle cost of the pool of 2: nothing queued, the pool full.
    await until('the warm pool of 2', 180_000, poolReady);
    await sleep(5_000);
    kube.reads = kube.writes = api.calls = 0;
    kube.byRequest.clear();
    api.byEndpoint.clear();
    const cpu0 = warmPodCpuSeconds();
    // Which status fields the idle writes change: the environments read every second and diffed.
    const changed = new Map<string, number>();
    const seen = new Map<string, Record<string, unknown>>();
    const idleEnd = Date.now() + idleSeconds * 1000;
    while (Date.now() < idleEnd) {
      for (const e of (await admin.list<AgentEnvironment>(AGENT_ENVIRONMENTS, NS)).items) {
        const status = (e.status ?? {}) as Record<string, unknown>;
        const before = seen.get(e.metadata!.name!);
        if (before) for (const k of new Set([...Object.keys(before), ...Object.keys(status)])) if (JSON.stringify(before[k]) !== JSON.stringify(status[k])) bump(changed, `${e.metadata!.name} status.${k}`);
        seen.set(e.metadata!.name!, status);
      }
      await sleep(1_000);
    }
    process.stderr.write(`idle: status fields changed (environment, field: times): ${JSON.stringify(Object.fromEntries(changed))}\n`);
    const perMinute = 60 / idleSeconds;
    out['warm.idle.kube_reads_per_min'] = round(kube.reads * perMinute);
    out['warm.idle.kube_writes_per_min'] = round(kube.writes * perMinute);
    out['warm.idle.api_calls_per_min'] = round(api.calls * perMinute);
    // Which requests they are: every write of a steady pool must be explained (docs/performance.md).
    const byKey = (m: Map<string, number>) => JSON.stringify(Object.fromEntries([...m].sort((a, b) => b[1] - a[1]).map(([k, n]) => [k, round(n * perMinute)])));
    process.stderr.write(`idle: Kubernetes requests per minute by verb and resource: ${byKey(kube.byRequest)}\n`);
    process.stderr.write(`idle: API calls per minute by endpoint: ${byKey(api.byEndpoint)}\n`);
    out['warm.idle.warm_pod_cpu_s_per_min'] = round((warmPodCpuSeconds() - cpu0) * perMinute * 1000) / 1000;
    return out;
  } finally {
    await operator?.stop();
    await emu.close();
    await cluster.stop();
  }
}
