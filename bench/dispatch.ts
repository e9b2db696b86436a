/**
 * Dispatch on the local cluster (etcd + kube-apiserver, no kubelet: Pods are created, not run) with
 * the emulator in a process of its own (BENCH_EMULATOR=in-process: in this one) and the in-process
 * operator (the operator's least-privilege identity):
 *
 * - dispatch latency on an idle system, sequential sessions: work queued → AgentSession created
 *   (the dispatcher's part) and → Pod created (the figure), as seen by a watch; p50 / p99;
 * - a burst of queued sessions against the floors of the writes a session requires (dispatch-burst.ts);
 * - 100 idle self-hosted environments: polls per second per environment and Kubernetes writes per
 *   second at steady state (over a window after every environment reports Dispatching=True).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { KubeConfig } from '@kubernetes/client-node';
import { readFileSync } from 'node:fs';
import { EnvironmentsClient } from '../src/api/client.ts';
import { LABELS } from '../src/crd/meta.ts';
import { AGENT_SESSIONS, type AgentSession } from '../src/crd/resources.ts';
import { Informer } from '../src/k8s/informer.ts';
import { CORE, KubeRest, type KubeObject } from '../src/k8s/rest.ts';
import { startLocalCluster } from '../src/localcluster/index.ts';
import { silentLogger } from '../src/telemetry/logger.ts';
import { startBenchApi } from './api.ts';
import { burst } from './dispatch-burst.ts';
import { API_KEY, dispatching, environment, namespace, operator, percentile, round, type World } from './dispatch-world.ts';
import { cpuMeter } from './measure.ts';

/** Sequential sessions on an idle environment: queued → AgentSession created, → Pod created. */
async function latency(w: World, samples: number): Promise<Record<string, number>> {
  const ns = await namespace(w.admin, 'bench-latency');
  const writes = { count: 0 };
  const op = await operator(w, ns, writes);
  const id = await environment(w, ns, 'latency', samples + 10);
  await dispatching(w.admin, ns, 1);
  const seen = new Map<string, { session?: number; pod?: number }>();
  const stop = new AbortController();
  const sessions = new Informer<AgentSession>(w.admin, AGENT_SESSIONS, { namespace: ns, logger: silentLogger });
  const pods = new Informer<KubeObject>(w.admin, CORE.pods, { namespace: ns, logger: silentLogger });
  sessions.on((e) => {
    if (e.type === 'add') (seen.get(e.object.spec.sessionId) ?? seen.set(e.object.spec.sessionId, {}).get(e.object.spec.sessionId)!).session ??= performance.now();
  });
  const bySessionName = new Map<string, string>();
  sessions.on((e) => void bySessionName.set(e.object.metadata!.name!, e.object.spec.sessionId));
  pods.on((e) => {
    const sessionId = bySessionName.get(e.object.metadata?.labels?.[LABELS.session] ?? '');
    if (e.type === 'add' && sessionId) (seen.get(sessionId) ?? seen.set(sessionId, {}).get(sessionId)!).pod ??= performance.now();
  });
  const running = [sessions.run(stop.signal), pods.run(stop.signal)];
  await Promise.all([sessions.synced(), pods.synced()]);
  await sleep(1_500); // idle: the poller is parked in a long poll
  const toSession: number[] = [];
  const toPod: number[] = [];
  for (let i = 0; i < samples; i++) {
    const t0 = performance.now();
    const session_id = await w.emu.createSession(id);
    const deadline = t0 + 10_000;
    while (seen.get(session_id)?.pod === undefined && performance.now() < deadline) await sleep(1);
    const s = seen.get(session_id);
    if (s?.session !== undefined) toSession.push(s.session - t0);
    if (s?.pod !== undefined) toPod.push(s.pod - t0);
    await sleep(300); // back to idle
  }
  stop.abort();
  await Promise.allSettled(running);
  await op.stop();
  toSession.sort((a, b) => a - b);
  toPod.sort((a, b) => a - b);
  return {
    'dispatch.latency.samples': samples,
    'dispatch.latency.queued_to_agentsession_p50_ms': round(percentile(toSession, 50)),
    'dispatch.latency.queued_to_agentsession_p99_ms': round(percentile(toSession, 99)),
    'dispatch.latency.queued_to_pod_p50_ms': round(percentile(toPod, 50)),
    'dispatch.latency.queued_to_pod_p99_ms': round(percentile(toPod, 99)),
    'dispatch.latency.pods_seen': toPod.length,
  };
}

/** Established TCP connections of this process to `url`'s port (the operator's sockets to the API, and the bench's own few). */
function socketsTo(url: string): number {
  const port = Number(new URL(url).port).toString(16).toUpperCase().padStart(4, '0');
  let n = 0;
  for (const file of ['/proc/self/net/tcp', '/proc/self/net/tcp6']) {
    try {
      for (const line of readFileSync(file, 'utf8').split('\n').slice(1)) {
        const f = line.trim().split(/\s+/);
        if (f[2]?.endsWith(`:${port}`) && f[3] === '01') n++;
      }
    } catch {
      // no IPv6 table
    }
  }
  return n;
}

/** 100 idle environments: poll rate per environment and Kubernetes writes at steady state. */
async function idle(w: World, count: number, windowSeconds: number): Promise<Record<string, number>> {
  const ns = await namespace(w.admin, 'bench-idle');
  const writes = { count: 0, byResource: new Map<string, number>(), reads: new Map<string, number>() };
  const op = await operator(w, ns, writes);
  const ids: string[] = [];
  for (let i = 0; i < count; i++) ids.push(await environment(w, ns, `idle-${i}`, 5));
  const readyStart = performance.now();
  await dispatching(w.admin, ns, count);
  const readySeconds = (performance.now() - readyStart) / 1000;
  process.stderr.write(`idle start-up: Kubernetes writes by verb and resource: ${JSON.stringify(Object.fromEntries(writes.byResource))}\n`);
  process.stderr.write(`idle start-up: Kubernetes reads by verb and resource: ${JSON.stringify(Object.fromEntries(writes.reads))}\n`);
  await sleep(3_000); // trailing writes of the first passes
  const polls = async (): Promise<number> => (await w.emu.requestCounts())['GET /v1/environments/{environment_id}/work/poll'] ?? 0;
  const polls0 = await polls();
  const emulatorMs0 = w.emu.cpuMs();
  writes.count = 0;
  writes.byResource.clear();
  writes.reads.clear();
  const cpu = cpuMeter(w.clusterPids)();
  const t0 = performance.now();
  await sleep(windowSeconds * 1000);
  const cost = cpu();
  const emulatorMs = w.emu.cpuMs() - emulatorMs0;
  process.stderr.write(`idle window: Kubernetes writes by verb and resource: ${JSON.stringify(Object.fromEntries(writes.byResource))}\n`);
  process.stderr.write(`idle window: Kubernetes reads by verb and resource: ${JSON.stringify(Object.fromEntries(writes.reads))}\n`);
  const seconds = (performance.now() - t0) / 1000;
  const pollRate = ((await polls()) - polls0) / seconds / count;
  const kubeWrites = writes.count;
  const sockets = socketsTo(w.emu.url);
  await op.stop();
  return {
    'dispatch.idle.environments': count,
    'dispatch.idle.all_dispatching_after_s': round(readySeconds),
    'dispatch.idle.window_s': round(seconds),
    'dispatch.idle.polls_per_s_per_environment': round(pollRate, 3),
    'dispatch.idle.kube_writes_in_window': kubeWrites,
    // The bench process holds the operator (and the emulator when BENCH_EMULATOR=in-process).
    'dispatch.idle.bench_process_cores': round(cost.benchMs / 1000 / seconds, 3),
    'dispatch.idle.emulator_process_cores': round(emulatorMs / 1000 / seconds, 3),
    'dispatch.idle.operator_cpu_ms_per_poll': round(cost.benchMs / Math.max(1, pollRate * seconds * count), 3),
    'dispatch.idle.cluster_cores': round(cost.clusterMs / 1000 / seconds, 3),
    'dispatch.idle.bench_process_rss_mib': round(process.memoryUsage().rss / 2 ** 20),
    'dispatch.idle.sockets_to_api': sockets,
  };
}

export async function benchDispatch(): Promise<Record<string, number>> {
  const cluster = await startLocalCluster({ log: (l) => process.stderr.write(`[local cluster] ${l}\n`) });
  // No kubelet runs the Pods, so no sidecar claims a lease: a long default TTL keeps acknowledged
  // items from lapsing back to the queue (and being dispatched again) during the burst.
  const emu = await startBenchApi(API_KEY, 600);
  try {
    const kc = new KubeConfig();
    kc.loadFromFile(cluster.adminKubeconfig);
    const w: World = {
      clusterPids: () => cluster.pids(),
      admin: new KubeRest(kc, { fieldManager: 'agentenv-bench' }),
      emu,
      console: new EnvironmentsClient({ baseUrl: emu.url, credential: { kind: 'api-key', value: API_KEY } }),
      operatorKubeconfig: cluster.operatorKubeconfig,
      adminKubeconfig: cluster.adminKubeconfig,
    };
    const samples = Number(process.env['BENCH_DISPATCH_SAMPLES'] ?? 100);
    const environments = Number(process.env['BENCH_DISPATCH_ENVIRONMENTS'] ?? 100);
    const burstSize = Number(process.env['BENCH_DISPATCH_BURST'] ?? 1000);
    return {
      ...(samples > 0 ? await latency(w, samples) : {}),
      ...(burstSize > 0 ? await burst(w, burstSize) : {}),
      ...(environments > 0 ? await idle(w, environments, 20) : {}),
    };
  } finally {
    await emu.close();
    await cluster.stop();
  }
}
