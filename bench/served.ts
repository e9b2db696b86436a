/**
 * Sessions served end to end: the local cluster WITH the process kubelet, the in-process emulator
 * (per-item secrets on) and the in-process operator in `pod-ip` proxy mode with the default runner
 * (no sessionTemplate: `agentenv runner`, the official SDK's handleItem, behind the real sidecar).
 *
 * BENCH_SERVED_SESSIONS sessions (default 30) are enqueued ONE AT A TIME on an otherwise idle
 * system: each is scripted at enqueue time with one bash `echo` through the emulator's admin route,
 * and the next is enqueued only after the previous one has finished (its result posted, the session
 * terminated, its AgentSession Succeeded and its Pod finished) plus a short idle pause. Measured:
 * enqueued → first tool result posted, p50 / p99, with the split (each step from the previous one):
 *
 *   dispatch        enqueued → Pod object (a watch; the AgentSession is reported too)
 *   pod_start       Pod object → sidecar container started (the kubelet's "container started" log line)
 *   lease_claim     sidecar started → work item active (the sidecar's first heartbeat 200 in the emulator's request log)
 *   probe_gate      item active → main container started (the kubelet's log line): the kubelet starts
 *                   it once the sidecar's startup probe (/started, passing once the lease is claimed,
 *                   periodSeconds 1) has passed
 *   runner_start    main container started → the runner's first request through the proxy (the first
 *                   /v1/sessions/{id}… request in the emulator's request log: the runner's session GET)
 *   first_result    → `user.tool_result` in the history (its `processed_at`)
 *
 * Every stamp is wall-clock epoch milliseconds (the kubelet runs in another process; its log lines
 * carry ISO times with millisecond precision). Figures are measured, never asserted.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { KubeConfig } from '@kubernetes/client-node';
import { EnvironmentsClient } from '../src/api/client.ts';
import { startOperator } from '../src/cli/operator.ts';
import { benchOperatorConfig } from './support.ts';
import { LABELS } from '../src/crd/meta.ts';
import { AGENT_ENVIRONMENTS, AGENT_SESSIONS, type AgentEnvironment, type AgentSession } from '../src/crd/resources.ts';
import { startEmulator } from '../src/emulator/index.ts';
import { Informer } from '../src/k8s/informer.ts';
import { CORE, KubeRest, type KubeObject } from '../src/k8s/rest.ts';
import { startLocalCluster } from '../src/localcluster/index.ts';
import { SIDECAR_NAME } from '../src/sessions/objects/pod.ts';
import type { Pod } from '../src/sessions/objects/pod-types.ts';
import { createLogger, silentLogger } from '../src/telemetry/logger.ts';

const API_KEY = 'sk-ant-api03-bench-served';
const NS = 'bench-served';
const STEPS = ['dispatch', 'pod_start', 'lease_claim', 'probe_gate', 'runner_start', 'first_result'] as const;
type Step = (typeof STEPS)[number];

interface Stamps {
  enqueued: number;
  agentSession?: number;
  pod?: number;
  podName?: string;
  sidecarStarted?: number;
  active?: number;
  mainStarted?: number;
  runnerFirstRequest?: number;
  firstResult?: number;
}

interface RequestLine {
  readonly at: number;
  readonly method: string;
  readonly path: string;
  readonly status: number;
}

const pct = (xs: readonly number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]! : NaN;
};
const round = (n: number): number => Math.round(n * 10) / 10;

async function until<T>(what: string, timeoutMs: number, probe: () => T | undefined | false): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = probe();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(2);
  }
}

/** "container started" lines of the process kubelet's log: `${pod}/${container}` → first start (epoch ms). */
function kubeletStarts(logFile: string): Map<string, number> {
  const starts = new Map<string, number>();
  for (const line of readFileSync(logFile, 'utf8').split('\n')) {
    if (!line.includes('"container started"')) continue;
    try {
      const l = JSON.parse(line) as { time: string; pod: string; container: string };
      const key = `${l.pod}/${l.container}`;
      if (!starts.has(key)) starts.set(key, Date.parse(l.time));
    } catch {
      // a partial line at the end of the file
    }
  }
  return starts;
}

export async function benchServed(): Promise<Record<string, number>> {
  const count = Number(process.env['BENCH_SERVED_SESSIONS'] ?? 30);
  const cluster = await startLocalCluster({ kubelet: true, log: (l) => process.stderr.write(`[local cluster] ${l}\n`) });
  const requests: RequestLine[] = [];
  const emulatorLog = createLogger({
    level: 'debug',
    destination: {
      write: (line: string) => {
        const l = JSON.parse(line) as { msg: string; time: string; method: string; path: string; status: number };
        if (l.msg === 'request') requests.push({ at: Date.parse(l.time), method: l.method, path: l.path, status: l.status });
      },
    },
  });
  const emu = await startEmulator({ apiKeys: [API_KEY], workSecrets: true, logger: emulatorLog });
  const stop = new AbortController();
  const running: Array<Promise<void>> = [];
  let operator: Awaited<ReturnType<typeof startOperator>> | undefined;
  try {
    const kc = new KubeConfig();
    kc.loadFromFile(cluster.adminKubeconfig);
    const admin = new KubeRest(kc, { fieldManager: 'agentenv-bench' });
    await admin.create(CORE.namespaces, undefined, { metadata: { name: NS } } as KubeObject);
    operator = await startOperator(
      benchOperatorConfig({ kubeconfig: cluster.operatorKubeconfig, baseUrl: emu.url, apiKey: API_KEY, namespace: NS }, { sessionProxyAddress: 'pod-ip' }),
      { logger: createLogger({ level: (process.env['BENCH_LOG_LEVEL'] ?? 'warn') as 'warn', destination: { write: (l: string) => void process.stderr.write(l) } }) },
    );

    // A self-hosted environment without a sessionTemplate: the default runner.
    const console_ = new EnvironmentsClient({ baseUrl: emu.url, credential: { kind: 'api-key', value: API_KEY } });
    const remote = await console_.createEnvironment({ name: 'served', config: { type: 'self_hosted' } });
    await admin.create(CORE.secrets, NS, { metadata: { name: 'served-key' }, stringData: { key: emu.admin.mintKey(remote.id) } } as KubeObject);
    await admin.create(AGENT_ENVIRONMENTS, NS, {
      metadata: { name: 'served' },
      spec: { environmentId: remote.id, selfHosted: { environmentKeySecretRef: { name: 'served-key', key: 'key' }, maxSessions: 4 } },
    } as unknown as AgentEnvironment);

    const bySessionId = new Map<string, Stamps>();
    const sessionIdOf = new Map<string, string>(); // AgentSession name → session id
    const phases = new Map<string, string>(); // session id → AgentSession phase
    const sessions = new Informer<AgentSession>(admin, AGENT_SESSIONS, { namespace: NS, logger: silentLogger });
    const pods = new Informer<Pod & KubeObject>(admin, CORE.pods, { namespace: NS, logger: silentLogger });
    sessions.on((e) => {
      const id = e.object.spec.sessionId;
      sessionIdOf.set(e.object.metadata!.name!, id);
      phases.set(id, e.type === 'delete' ? 'Deleted' : (e.object.status?.phase ?? ''));
      const s = bySessionId.get(id);
      if (s && e.type === 'add') s.agentSession ??= Date.now();
    });
    pods.on((e) => {
      const s = bySessionId.get(sessionIdOf.get(e.object.metadata?.labels?.[LABELS.session] ?? '') ?? '');
      if (!s || e.type === 'delete') return;
      s.pod ??= Date.now();
      s.podName ??= e.object.metadata?.name;
    });
    running.push(sessions.run(stop.signal), pods.run(stop.signal));
    await Promise.all([sessions.synced(), pods.synced()]);
    for (let waited = 0; ; waited += 250) {
      const env = await admin.get<AgentEnvironment>(AGENT_ENVIRONMENTS, NS, 'served');
      if (env.status?.conditions?.some((c) => c.type === 'Dispatching' && c.status === 'True')) break;
      if (waited > 120_000) throw new Error('the environment never reported Dispatching=True');
      await sleep(250);
    }
    await sleep(1_500); // idle: the poller is parked in a long poll

    const done: Array<{ id: string; workId: string; stamps: Stamps }> = [];
    for (let i = 0; i < count; i++) {
      const stamps: Stamps = { enqueued: Date.now() };
      const { session_id: id, work_id: workId } = emu.admin.createSession(remote.id);
      bySessionId.set(id, stamps);
      const [, echo] = emu.admin.appendAgentEvents(id, [{ type: 'session.status_running' }, { type: 'agent.tool_use', name: 'bash', input: { command: `echo served-${i}` } }]);
      const result = await until(`the result of session ${i}`, 120_000, () => emu.admin.sessionEvents(id).find((e) => e.type === 'user.tool_result' && e['tool_use_id'] === echo));
      stamps.firstResult = Date.parse(String(result.processed_at));
      emu.admin.appendAgentEvents(id, [{ type: 'session.status_terminated' }]);
      await until(`session ${i} Succeeded`, 120_000, () => phases.get(id) === 'Succeeded' || phases.get(id) === 'Failed');
      // The finished Pod is kept (until sessionTTLSecondsAfterFinished); its processes are gone.
      await until(`the Pod of session ${i} finished`, 120_000, () => {
        const pod = pods.list().find((p) => p.metadata?.name === stamps.podName);
        return !pod || pod.status?.phase === 'Succeeded' || pod.status?.phase === 'Failed';
      });
      if (phases.get(id) !== 'Succeeded') throw new Error(`session ${i} ended ${phases.get(id)}`);
      done.push({ id, workId, stamps });
      process.stderr.write(`  session ${i + 1}/${count}: first result after ${stamps.firstResult - stamps.enqueued} ms\n`);
      await sleep(500); // back to idle
    }

    // Stamps from the logs: the kubelet's container starts, the emulator's request log.
    const starts = kubeletStarts(join(cluster.dir, 'kubelet.log'));
    const steps: Record<Step | 'total' | 'to_agentsession', number[]> = { total: [], to_agentsession: [], dispatch: [], pod_start: [], lease_claim: [], probe_gate: [], runner_start: [], first_result: [] };
    for (const { id, workId, stamps: s } of done) {
      s.sidecarStarted = starts.get(`${NS}/${s.podName}/${SIDECAR_NAME}`);
      s.mainStarted = starts.get(`${NS}/${s.podName}/session`);
      s.active = requests.find((r) => r.method === 'POST' && r.path.endsWith(`/work/${workId}/heartbeat`) && r.status === 200)?.at;
      s.runnerFirstRequest = requests.find((r) => r.path.startsWith(`/v1/sessions/${id}`))?.at;
      const chain = [s.enqueued, s.pod, s.sidecarStarted, s.active, s.mainStarted, s.runnerFirstRequest, s.firstResult];
      if (chain.some((t) => t === undefined)) {
        process.stderr.write(`  session ${id}: a stamp is missing ${JSON.stringify(s)}\n`);
        continue;
      }
      STEPS.forEach((step, k) => steps[step].push(chain[k + 1]! - chain[k]!));
      steps.total.push(s.firstResult! - s.enqueued);
      if (s.agentSession !== undefined) steps.to_agentsession.push(s.agentSession - s.enqueued);
    }
    const out: Record<string, number> = { 'served.sessions': count, 'served.sessions_measured': steps.total.length };
    out['served.enqueued_to_first_result_p50_ms'] = round(pct(steps.total, 50));
    out['served.enqueued_to_first_result_p99_ms'] = round(pct(steps.total, 99));
    out['served.enqueued_to_agentsession_p50_ms'] = round(pct(steps.to_agentsession, 50));
    for (const step of STEPS) {
      out[`served.split.${step}_p50_ms`] = round(pct(steps[step], 50));
      out[`served.split.${step}_p99_ms`] = round(pct(steps[step], 99));
    }
    return out;
  } finally {
    stop.abort();
    await Promise.allSettled(running);
    await operator?.stop();
    await emu.close();
    await cluster.stop();
  }
}
