import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';

/** Kernel constants the benchmarks need to turn /proc figures into seconds and bytes. */
export const sysconf = {
  clockTicks: Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100,
  pageSize: Number(execFileSync('getconf', ['PAGESIZE']).toString().trim()) || 4096,
};

/** `agentenv emulator` in a process of its own (any free port), accepting `apiKey`; resolves once it listens. */
export async function startEmulatorProcess(apiKey: string): Promise<{ url: string; child: ChildProcess }> {
  const child = spawn(process.execPath, ['src/cli/main.ts', 'emulator', '--port', '0', '--api-key', apiKey, '--log-level', 'warn'], { stdio: ['ignore', 'pipe', 'inherit'] });
  for await (const line of createInterface({ input: child.stdout! })) {
    const m = /listening on (\S+)/.exec(line);
    if (m) return { url: m[1]!, child };
  }
  throw new Error('emulator did not start');
}
