/** What the dispatch benches share: the world (cluster, emulator, clients), the operator under test, environments. */
import { setTimeout as sleep } from 'node:timers/promises';
import { startOperator, type OperatorHandle } from '../src/cli/operator.ts';
import { AGENT_ENVIRONMENTS, type AgentEnvironment } from '../src/crd/resources.ts';
import type { EnvironmentsClient } from '../src/api/client.ts';
import { CORE, type KubeObject, type KubeRest, type Verb } from '../src/k8s/rest.ts';
import { createLogger } from '../src/telemetry/logger.ts';
import type { BenchApi } from './api.ts';
import { benchOperatorConfig } from './support.ts';

export const API_KEY = 'sk-ant-api03-bench';
const TEMPLATE = { spec: { containers: [{ name: 'session', image: 'local/shell', command: ['/bin/sh', '-c', 'sleep 3600'] }] } };
const WRITES: ReadonlySet<Verb> = new Set(['create', 'update', 'patch', 'delete']);

export function percentile(sorted: readonly number[], p: number): number {
  if (!sorted.length) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}
export const round = (n: number, digits = 1): number => Math.round(n * 10 ** digits) / 10 ** digits;

export interface World {
  /** Pids of the local cluster's processes (kube-apiserver, etcd, controller-manager). */
  readonly clusterPids: () => Record<string, number>;
  readonly admin: KubeRest;
  readonly emu: BenchApi;
  readonly console: EnvironmentsClient;
  readonly operatorKubeconfig: string;
  readonly adminKubeconfig: string;
}

export async function namespace(admin: KubeRest, prefix: string): Promise<string> {
  const ns = await admin.create<KubeObject>(CORE.namespaces, undefined, { metadata: { generateName: `${prefix}-` } });
  return ns.metadata!.name!;
}

export interface Requests {
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

export async function operator(w: World, ns: string, writes: Requests): Promise<OperatorHandle> {
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
export async function environment(w: World, ns: string, name: string, maxSessions: number): Promise<string> {
  const remote = await w.console.createEnvironment({ name, config: { type: 'self_hosted' } });
  const key = await w.emu.mintKey(remote.id);
  await w.admin.create(CORE.secrets, ns, { metadata: { name: `${name}-key` }, stringData: { key } } as KubeObject);
  await w.admin.create(AGENT_ENVIRONMENTS, ns, {
    metadata: { name },
    spec: { environmentId: remote.id, selfHosted: { environmentKeySecretRef: { name: `${name}-key`, key: 'key' }, sessionTemplate: TEMPLATE, maxSessions, ...(process.env['BENCH_MAX_POLLERS'] ? { maxPollers: Number(process.env['BENCH_MAX_POLLERS']) } : {}) } },
  } as unknown as AgentEnvironment);
  return remote.id;
}

export async function dispatching(admin: KubeRest, ns: string, count: number): Promise<void> {
  for (;;) {
    const envs = (await admin.list<AgentEnvironment>(AGENT_ENVIRONMENTS, ns)).items;
    const ok = envs.filter((e) => e.status?.conditions?.some((c) => c.type === 'Dispatching' && c.status === 'True')).length;
    if (ok >= count) return;
    await sleep(250);
  }
}

