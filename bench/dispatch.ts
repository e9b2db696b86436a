/**
 * Dispatch on the local cluster (etcd + kube-apiserver, no kubelet: Pods are created, not run) with
 * the in-process emulator and the in-process operator (the operator's least-privilege identity):
 *
 * - dispatch latency on an idle system, sequential sessions: work queued → AgentSession created
 *   (the dispatcher's part) and → Pod created (the issue's figure), as seen by a watch; p50 / p99;
 * - a burst of queued sessions (default 1,000): rate at which they reach Pods, against a tight loop
 *   creating the same Pods (copied from the burst, in another namespace) on the same apiserver, and
 *   against parallel loops creating each session's record and then its Pod (the guarantees' floor);
 * - 100 idle self-hosted environments: polls per second per environment and Kubernetes writes per
 *   second at steady state (over a window after every environment reports Dispatching=True).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { KubeConfig } from '@kubernetes/client-node';
import { readFileSync } from 'node:fs';
import { startOperator, type OperatorHandle } from '../src/cli/operator.ts';
import { benchOperatorConfig } from './support.ts';
import { apiserverProfileIf, cpuMeter, profileIf, stepsPerSecond } from './measure.ts';
import { LABELS } from '../src/crd/meta.ts';
import { AGENT_ENVIRONMENTS, AGENT_SESSIONS, type AgentEnvironment, type AgentSession } from '../src/crd/resources.ts';
import { countsSince, startBenchApi, type BenchApi } from './api.ts';
import { EnvironmentsClient } from '../src/api/client.ts';
import { Informer } from '../src/k8s/informer.ts';
import { CORE, KubeRest, type KubeObject, type Verb } from '../src/k8s/rest.ts';
import { startLocalCluster } from '../src/localcluster/index.ts';
import { createLogger, silentLogger } from '../src/telemetry/logger.ts';

const API_KEY = 'sk-ant-api03-bench';
const TEMPLATE = { spec: { containers: [{ name: 'session', image: 'local/shell', command: ['/bin/sh', '-c', 'sleep 3600'] }] } };
const WRITES: ReadonlySet<Verb> = new Set(['create', 'update', 'patch', 'delete']);

function percentile(sorted: readonly number[], p: number): number {
  if (!sorted.length) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}
const round = (n: number, digits = 1): number => Math.round(n * 10 ** digits) / 10 ** digits;

interface World {
  /** Pids of the local cluster's processes (kube-apiserver, etcd, controller-manager). */
  readonly clusterPids: () => Record<string, number>;
  readonly admin: KubeRest;
  readonly emu: BenchApi;
  readonly console: EnvironmentsClient;
  readonly operatorKubeconfig: string;
  readonly adminKubeconfig: string;
}

async function namespace(admin: KubeRest, prefix: string): Promise<string> {
  const ns = await admin.create<KubeObject>(CORE.namespaces, undefined, { metadata: { generateName: `${prefix}-` } });
  return ns.metadata!.name!;
}

interface Requests {
  /** Writes other than Events and Leases. */
  count: number;
  /** Writes by `verb resource` (Events included). */
  byResource?: Map<string, number>;
  /** Reads by `verb resource` (what a reconcile pass costs the apiserver besides its writes). */
  reads?: Map<string, number>;
  /** Pods the operator created (201), and when the last create returned (`performance.now()`). */
  podsCreated?: number;
  lastPodAt?: number;
}

const bump = (m: Map<string, number> | undefined, k: string): void => void m?.set(k, (m.get(k) ?? 0) + 1);

async function operator(w: World, ns: string, writes: Requests): Promise<OperatorHandle> {
  const config = benchOperatorConfig(
    { kubeconfig: w.operatorKubeconfig, baseUrl: w.emu.url, apiKey: API_KEY, namespace: ns },
    { concurrency: Number(process.env['BENCH_CONCURRENCY'] ?? 8), logLevel: (process.env['BENCH_LOG_LEVEL'] ?? 'warn') as 'warn' },
  );
  return startOperator(config, {
    logger: createLogger({ level: (process.env['BENCH_LOG_LEVEL'] ?? 'warn') as 'warn', destination: { write: (l: string) => void process.stderr.write(l) } }),
    observeKube: (r) => {
      if (r.resource === 'leases') return;
      if (!WRITES.has(r.verb)) return bump(writes.reads, `${r.verb} ${r.resource}`);
      bump(writes.byResource, `${r.verb} ${r.resource}`);
      if (r.resource !== 'events') writes.count++;
      if (r.verb === 'create' && r.resource === 'pods' && r.code === 201 && writes.podsCreated !== undefined) {
        writes.podsCreated++;
        writes.lastPodAt = performance.now();
      }
    },
  });
}

/** A remote self-hosted environment, its key in a Secret, and an AgentEnvironment adopting it. */
async function environment(w: World, ns: string, name: string, maxSessions: number): Promise<string> {
  const remote = await w.console.createEnvironment({ name, config: { type: 'self_hosted' } });
  const key = await w.emu.mintKey(remote.id);
  await w.admin.create(CORE.secrets, ns, { metadata: { name: `${name}-key` }, stringData: { key } } as KubeObject);
  await w.admin.create(AGENT_ENVIRONMENTS, ns, {
    metadata: { name },
    spec: { environmentId: remote.id, selfHosted: { environmentKeySecretRef: { name: `${name}-key`, key: 'key' }, sessionTemplate: TEMPLATE, maxSessions, ...(process.env['BENCH_MAX_POLLERS'] ? { maxPollers: Number(process.env['BENCH_MAX_POLLERS']) } : {}) } },
  } as unknown as AgentEnvironment);
  return remote.id;
}

async function dispatching(admin: KubeRest, ns: string, count: number): Promise<void> {
  for (;;) {
    const envs = (await admin.list<AgentEnvironment>(AGENT_ENVIRONMENTS, ns)).items;
    const ok = envs.filter((e) => e.status?.conditions?.some((c) => c.type === 'Dispatching' && c.status === 'True')).length;
    if (ok >= count) return;
    await sleep(250);
  }
}

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

/**
 * Loops of the floors: enough to keep the machine's two cores busy (8 left it latency-bound at
 * 1.6–1.8 cores in some runs), as the operator's burst does with its 16 pollers and 32 hand-offs.
 */
const FLOOR_LOOPS = 16;

/**
 * Wait (at most 20 s) until the local cluster is idle (under 0.1 cores over half a second): the
 * controller-manager still digesting the previous phase's objects would be billed to the next one.
 */
async function quiet(meter: ReturnType<typeof cpuMeter>): Promise<void> {
  for (const deadline = performance.now() + 20_000; performance.now() < deadline; ) {
    const sample = meter();
    await sleep(500);
    if (sample().clusterMs < 50) return;
  }
}

/**
 * Write, in `ns`, what the operator wrote for session `i` of the burst: its record (as created:
 * metadata without server fields, and spec), then its Pod owned by that record, then (`status`) the
 * record's status as the operator left it, replacing the status subresource as the operator does
 * (k8s/status.ts; its RBAC grants exactly that). Owner references point at the copies' uids.
 */
async function sameWrites(
  admin: KubeRest,
  rest: KubeRest,
  ns: string,
  env: AgentEnvironment,
  records: ReadonlyMap<string, AgentSession>,
  pods: readonly KubeObject[],
): Promise<(i: number, status: boolean) => Promise<void>> {
  const envCopy = await admin.create<AgentEnvironment>(AGENT_ENVIRONMENTS, ns, { metadata: { name: env.metadata!.name }, spec: env.spec } as AgentEnvironment);
  const own = (m: KubeObject['metadata'], uid: string) => (m?.ownerReferences ?? []).map((r) => ({ ...r, uid }));
  return async (i, status) => {
    const pod = pods[i]! as KubeObject & { spec: Record<string, unknown> };
    const record = records.get(pod.metadata!.ownerReferences![0]!.name)!;
    const m = record.metadata!;
    const createdRecord = await rest.create<AgentSession>(AGENT_SESSIONS, ns, {
      metadata: { name: m.name, labels: m.labels, annotations: m.annotations, finalizers: m.finalizers, ownerReferences: own(m, envCopy.metadata!.uid!) },
      spec: record.spec,
    } as unknown as AgentSession);
    const pm = pod.metadata!;
    await rest.create(CORE.pods, ns, {
      metadata: { name: pm.name, labels: pm.labels, annotations: pm.annotations, ownerReferences: own(pm, createdRecord.metadata!.uid!) },
      spec: { ...pod.spec, nodeName: undefined },
    } as KubeObject);
    if (status) await rest.replace(AGENT_SESSIONS, ns, { ...createdRecord, status: record.status } as AgentSession, 'status');
  };
}

/** A burst of queued sessions → Pods, against a tight loop creating the same Pods. */
async function burst(w: World, count: number): Promise<Record<string, number>> {
  const ns = await namespace(w.admin, 'bench-burst');
  const writes: Requests = { count: 0, byResource: new Map<string, number>(), reads: new Map<string, number>(), podsCreated: 0 };
  const op = await operator(w, ns, writes);
  const id = await environment(w, ns, 'burst', count);
  await dispatching(w.admin, ns, 1);
  writes.count = 0;
  writes.podsCreated = 0;
  writes.byResource!.clear();
  writes.reads!.clear();
  // Pods are counted as the operator's creates return (as the loops below are timed), not by a
  // watch of the bench's own: a watch would add apiserver work to the operator's run only.
  const calls0 = await w.emu.requestCounts();
  const meter = cpuMeter(w.clusterPids);
  await quiet(meter);
  const profile = await profileIf(process.env['BENCH_CPU_PROFILE']);
  const operatorCpu = meter();
  const apiserverProfile = apiserverProfileIf(process.env['BENCH_APISERVER_PROFILE'], w.adminKubeconfig, 6);
  const emulatorMs0 = w.emu.cpuMs();
  const t0 = performance.now();
  await w.emu.createSessions(id, count);
  const deadline = t0 + 600_000;
  while (writes.podsCreated < count && performance.now() < deadline) await sleep(20);
  const burstSeconds = ((writes.lastPodAt ?? performance.now()) - t0) / 1000;
  const reached = writes.podsCreated;
  // Until the last session's status write has landed too (the floor below includes it).
  while ((writes.byResource!.get('update agentsessions/status') ?? 0) < reached && performance.now() < deadline) await sleep(20);
  const operatorCost = operatorCpu();
  const emulatorMs = w.emu.cpuMs() - emulatorMs0;
  await profile?.();
  await apiserverProfile;
  const writesPerSession = [...writes.byResource!.values()].reduce((a, b) => a + b, 0) / Math.max(1, reached);
  process.stderr.write(`burst: Kubernetes writes by verb and resource: ${JSON.stringify(Object.fromEntries(writes.byResource!))}\n`);
  process.stderr.write(`burst: Kubernetes reads by verb and resource: ${JSON.stringify(Object.fromEntries(writes.reads!))}\n`);
  const readsPerSession = [...writes.reads!.values()].reduce((a, b) => a + b, 0) / Math.max(1, reached);
  // The API calls (poll, ack, work reads), answered by the emulator (its CPU: its own figure, or the bench process's when in-process).
  const apiCalls = Object.entries(countsSince(calls0, await w.emu.requestCounts())).filter(([route]) => !route.includes('/emulator/'));
  process.stderr.write(`burst: API calls by route: ${JSON.stringify(Object.fromEntries(apiCalls))}\n`);
  process.stderr.write(`burst: cluster CPU ms by process: ${JSON.stringify(operatorCost.byProcess)}\n`);
  const apiCallsPerSession = apiCalls.reduce((a, [, n]) => a + n, 0) / Math.max(1, reached);
  const records = new Map((await w.admin.list<AgentSession>(AGENT_SESSIONS, ns)).items.map((s) => [s.metadata!.name!, s]));
  const created = (await w.admin.list<KubeObject>(CORE.pods, ns)).items;
  const burstEnv = await w.admin.get<AgentEnvironment>(AGENT_ENVIRONMENTS, ns, 'burst');
  await op.stop();

  // The same Pods, created one after another by a tight loop in a fresh namespace.
  const loopNs = await namespace(w.admin, 'bench-loop');
  const operatorKc = new KubeConfig();
  operatorKc.loadFromFile(w.operatorKubeconfig);
  const rest = new KubeRest(operatorKc, { fieldManager: 'agentenv-bench' });
  const copies = created.map((p) => {
    const { metadata, spec } = p as KubeObject & { spec: unknown };
    return { metadata: { name: metadata?.name, labels: metadata?.labels }, spec: { ...(spec as Record<string, unknown>), nodeName: undefined } } as KubeObject;
  });
  const loopRate = await stepsPerSecond(1, copies.length, (i) => rest.create(CORE.pods, loopNs, copies[i]!));
  // For reading the figures: the same creates from 8 parallel loops (does the apiserver scale with concurrency here?).
  const parallelNs = await namespace(w.admin, 'bench-loop8');
  const parallelRate = await stepsPerSecond(8, copies.length, (i) => rest.create(CORE.pods, parallelNs, copies[i]!));
  // What the guarantees cannot do without: each session's record, then its Pod (FLOOR_LOOPS parallel loops,
  // nothing else — no acknowledgement, status, Event, read, watch or API call). The ceiling of any
  // dispatcher that records before it acknowledges, on this apiserver. The objects are the
  // operator's own, as it wrote them: finalizer, labels, annotations and owner references (to a
  // copy of the environment, then from each Pod to its copied record).
  const floorNs = await namespace(w.admin, 'bench-floor');
  const floorWrites = await sameWrites(w.admin, rest, floorNs, burstEnv, records, created);
  const floorRate = await stepsPerSecond(FLOOR_LOOPS, created.length, (i) => floorWrites(i, false));
  // The same plus the status write that records the acknowledgement and the phase (Starting), with
  // the status the operator wrote: what the status rules add to the floor.
  const statusNs = await namespace(w.admin, 'bench-floor-status');
  const statusWrites = await sameWrites(w.admin, rest, statusNs, burstEnv, records, created);
  await quiet(meter);
  const floorCpu = meter();
  const statusFloorRate = await stepsPerSecond(FLOOR_LOOPS, created.length, (i) => statusWrites(i, true));
  const floorCost = floorCpu();
  process.stderr.write(`floor (record, Pod, status): cluster CPU ms by process: ${JSON.stringify(floorCost.byProcess)}\n`);
  const perSession = (ms: number, n: number): number => round(ms / Math.max(1, n), 2);
  const burstRate = reached / burstSeconds;
  return {
    'dispatch.burst.sessions': count,
    'dispatch.burst.pods_created': reached,
    'dispatch.burst.pods_per_s': round(burstRate),
    'dispatch.burst.tight_loop_pods_per_s': round(loopRate),
    'dispatch.burst.ratio_to_tight_loop': round(burstRate / loopRate, 2),
    'dispatch.burst.parallel8_loop_pods_per_s': round(parallelRate),
    'dispatch.burst.record_then_pod_loops_per_s': round(floorRate),
    'dispatch.burst.record_then_pod_ratio_to_tight_loop': round(floorRate / loopRate, 2),
    'dispatch.burst.record_pod_status_loops_per_s': round(statusFloorRate),
    'dispatch.burst.record_pod_status_ratio_to_tight_loop': round(statusFloorRate / loopRate, 2),
    'dispatch.burst.kube_writes_per_session_incl_events': round(writesPerSession, 2),
    'dispatch.burst.cluster_cpu_ms_per_session': perSession(operatorCost.clusterMs, reached),
    // The operator (plus the bench's own counting; and the emulator when BENCH_EMULATOR=in-process).
    'dispatch.burst.bench_process_cpu_ms_per_session': perSession(operatorCost.benchMs, reached),
    'dispatch.burst.emulator_process_cpu_ms_per_session': perSession(emulatorMs, reached),
    'dispatch.burst.floor_status_cluster_cpu_ms_per_session': perSession(floorCost.clusterMs, copies.length),
    'dispatch.burst.floor_status_bench_process_cpu_ms_per_session': perSession(floorCost.benchMs, copies.length),
    'dispatch.burst.ratio_to_record_pod_status_floor': round(burstRate / statusFloorRate, 2),
    // Cores the run kept busy (cluster + bench process + emulator): near 2 on this machine when it is CPU-bound.
    'dispatch.burst.cores_busy': round((operatorCost.clusterMs + operatorCost.benchMs + emulatorMs) / 1000 / burstSeconds, 2),
    'dispatch.burst.floor_status_cores_busy': round((floorCost.clusterMs + floorCost.benchMs) / 1000 / (copies.length / statusFloorRate), 2),
    // CPU per session, floor ÷ burst, without the emulator's (in a deployment the API's CPU is not the cluster's):
    // the rate ratio the machine's CPU allows once the API is elsewhere.
    'dispatch.burst.cpu_ratio_to_floor_without_api': round((floorCost.clusterMs + floorCost.benchMs) / copies.length / ((operatorCost.clusterMs + operatorCost.benchMs) / reached), 2),
    'dispatch.burst.kube_reads_per_session': round(readsPerSession, 2),
    'dispatch.burst.api_calls_per_session': round(apiCallsPerSession, 2),
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
