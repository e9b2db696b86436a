import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import type { z } from 'zod';
import { OperatorConfig } from '../src/config/operator.ts';

/** Clock ticks per second of /proc's CPU times. */
const CLOCK_TICKS = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;

/** CPU seconds (user + system) process `pid` has used so far, from /proc/<pid>/stat; throws when it is gone. */
export function processCpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS; // utime, stime (fields 14 and 15)
}

/** `agentenv emulator` in a process of its own (any free port), accepting `apiKey` (and `args`: its flags); resolves once it listens. */
export async function startEmulatorProcess(apiKey: string, args: readonly string[] = []): Promise<{ url: string; child: ChildProcess }> {
  const child = spawn(process.execPath, ['src/cli/main.ts', 'emulator', '--port', '0', '--api-key', apiKey, '--log-level', 'warn', ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  for await (const line of createInterface({ input: child.stdout! })) {
    const m = /listening on (\S+)/.exec(line);
    if (m) return { url: m[1]!, child };
  }
  throw new Error('emulator did not start');
}

/** The session images of the benches (the local stand-ins `npm run images` builds). */
const BENCH_IMAGES = { sidecarImage: 'ghcr.io/agentenv-io/agentenv:bench', runnerImage: 'ghcr.io/agentenv-io/agentenv-runner:bench' } as const;

/**
 * The operator settings every bench shares, for an in-process operator watching `namespace`:
 * ports on loopback picked by the system, no leader election, a fresh identity, the bench images,
 * and adoption granted in its namespace (the benches make their environments through the API and
 * adopt them by id, which needs the administrator's grant: tenancy). `settings` adds or overrides.
 */
export function benchOperatorConfig(base: { kubeconfig: string; baseUrl: string; apiKey: string; namespace: string }, settings: Partial<z.input<typeof OperatorConfig>> = {}): OperatorConfig {
  return OperatorConfig.parse({
    kubeconfig: base.kubeconfig,
    baseUrl: base.baseUrl,
    apiKey: base.apiKey,
    namespaces: [base.namespace],
    metricsPort: 0,
    healthPort: 0,
    bindAddress: '127.0.0.1',
    leaderElect: false,
    identity: `bench_${randomBytes(4).toString('hex')}`,
    ...BENCH_IMAGES,
    adoptionNamespaces: [base.namespace],
    ...settings,
  });
}
