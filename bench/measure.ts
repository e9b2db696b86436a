/** What the dispatch bench measures with: CPU per process, rates of parallel loops, profiles. */
import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { promisify } from 'node:util';

/**
 * CPU time of the local cluster's processes (from /proc, in clock ticks of 10 ms) and of this
 * process, since `start`: what a phase cost the machine, whatever else ran beside it. The rates
 * below move with the machine's load; CPU per session moves much less.
 */
/** CPU spent in a phase, ms: the local cluster's processes (together and each), and this process. */
export interface Cost {
  readonly clusterMs: number;
  readonly benchMs: number;
  readonly byProcess: Record<string, number>;
}

export function cpuMeter(pids: () => Record<string, number>): () => () => Cost {
  const ticksOf = (pid: number): number => {
    try {
      const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
      return Number(fields[11]) + Number(fields[12]); // utime, stime (fields 14 and 15 of stat)
    } catch {
      return 0;
    }
  };
  const clusterTicks = (): Record<string, number> => Object.fromEntries(Object.entries(pids()).map(([name, pid]) => [name, ticksOf(pid)]));
  return () => {
    const ticks0 = clusterTicks();
    const bench0 = process.cpuUsage();
    return () => {
      const bench = process.cpuUsage(bench0);
      const ticks = clusterTicks();
      const byProcess = Object.fromEntries(Object.entries(ticks).map(([name, t]) => [name, (t - (ticks0[name] ?? 0)) * 10]));
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

