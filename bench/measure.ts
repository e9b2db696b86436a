/** What the dispatch bench measures with: CPU per process, rates of parallel loops, profiles. */
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { promisify } from 'node:util';
import { processCpuSeconds } from './support.ts';

/** CPU spent in a phase, ms: the local cluster's processes (together and each), and this process. */
export interface Cost {
  readonly clusterMs: number;
  readonly benchMs: number;
  readonly byProcess: Record<string, number>;
}

/**
 * CPU time of the local cluster's processes (from /proc) and of this process, since `start`: what
 * a phase cost the machine, whatever else ran beside it. The rates move with the machine's load;
 * CPU per session moves much less.
 */
export function cpuMeter(pids: () => Record<string, number>): () => () => Cost {
  const msOf = (pid: number): number => {
    try {
      return processCpuSeconds(pid) * 1000;
    } catch {
      return 0; // gone (a restarted component): its time so far is not counted
    }
  };
  const clusterMs = (): Record<string, number> => Object.fromEntries(Object.entries(pids()).map(([name, pid]) => [name, msOf(pid)]));
  return () => {
    const ms0 = clusterMs();
    const bench0 = process.cpuUsage();
    return () => {
      const bench = process.cpuUsage(bench0);
      const byProcess = Object.fromEntries(Object.entries(clusterMs()).map(([name, ms]) => [name, ms - (ms0[name] ?? 0)]));
      return { clusterMs: Object.values(byProcess).reduce((a, b) => a + b, 0), benchMs: (bench.user + bench.system) / 1000, byProcess };
    };
  };
}

/** With a file name: profile this process (V8's CPU profiler) until the returned function writes the `.cpuprofile`. */
export async function profileIf(file: string | undefined): Promise<(() => Promise<void>) | undefined> {
  if (!file) return undefined;
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.start');
  return async () => {
    const { profile } = await session.post('Profiler.stop');
    writeFileSync(file, JSON.stringify(profile));
    session.disconnect();
  };
}

/**
 * With a file name: the kube-apiserver's CPU profile over the next `seconds` (Go pprof; read it with
 * `go tool pprof -top <file>`). Needs the local cluster started with AGENTENV_APISERVER_PROFILING=1
 * (profiling is off otherwise, as in production) and kubectl.
 */
export async function apiserverProfileIf(file: string | undefined, kubeconfig: string, seconds: number): Promise<void> {
  if (!file) return;
  const { stdout } = await promisify(execFile)('kubectl', ['--kubeconfig', kubeconfig, 'get', '--raw', `/debug/pprof/profile?seconds=${seconds}`], { encoding: 'buffer', maxBuffer: 64 << 20 });
  writeFileSync(file, stdout);
}

/** Steps 0…count−1 taken by `loops` loops in parallel, each taking the next step in turn: steps per second. */
export async function stepsPerSecond(loops: number, count: number, step: (i: number) => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  let next = 0;
  await Promise.all(Array.from({ length: loops }, async () => {
    while (next < count) await step(next++);
  }));
  return count / ((performance.now() - t0) / 1000);
}

