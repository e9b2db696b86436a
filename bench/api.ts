/**
 * The Environments API a dispatch bench talks to: the emulator in a process of its own (the
 * default: as in a deployment, the API's CPU is not the operator's, and the two are measured
 * apart), or in the bench's process (`BENCH_EMULATOR=in-process`: one process to profile).
 */
import type { ChildProcess } from 'node:child_process';
import { request } from 'undici';
import { startEmulator } from '../src/emulator/index.ts';
import { processCpuSeconds, startEmulatorProcess } from './support.ts';

export interface BenchApi {
  readonly url: string;
  /** Where the emulator runs (`process` or `in-process`). */
  readonly where: 'process' | 'in-process';
  mintKey(environmentId: string): Promise<string>;
  createSession(environmentId: string): Promise<string>;
  /** `count` sessions in one call; their work items are queued when it returns. */
  createSessions(environmentId: string, count: number): Promise<void>;
  /** Requests answered so far, by `METHOD route template`. */
  requestCounts(): Promise<Record<string, number>>;
  /** CPU time of the emulator's process, ms (0 in-process: it is in the bench's figure). */
  cpuMs(): number;
  close(): Promise<void>;
}

/** The emulator for a bench: leases live `leaseTtlSeconds` when no sidecar renews them. */
export async function startBenchApi(apiKey: string, leaseTtlSeconds: number): Promise<BenchApi> {
  if (process.env['BENCH_EMULATOR'] === 'in-process') return inProcess(apiKey, leaseTtlSeconds);
  const { url, child } = await startEmulatorProcess(apiKey, ['--lease-ttl-default', String(leaseTtlSeconds)]);
  const admin = async <T>(method: 'GET' | 'POST', path: string, body?: unknown): Promise<T> => {
    const res = await request(`${url}/emulator/v1${path}`, { method, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
    if (res.statusCode !== 200) throw new Error(`emulator ${method} ${path}: HTTP ${res.statusCode}: ${await res.body.text()}`);
    return (await res.body.json()) as T;
  };
  return {
    url,
    where: 'process',
    mintKey: async (id) => (await admin<{ key: string }>('POST', `/environments/${id}/keys`)).key,
    createSession: async (id) => (await admin<{ session_id: string }>('POST', `/environments/${id}/sessions`, {})).session_id,
    createSessions: async (id, count) => void (await admin('POST', `/environments/${id}/sessions/batch`, { count })),
    requestCounts: async () => totals((await admin<{ requests: Record<string, Record<string, number>> }>('GET', '/state')).requests),
    cpuMs: () => processCpuMs(child),
    close: async () => {
      child.kill('SIGTERM');
      await new Promise((resolve) => (child.exitCode !== null ? resolve(undefined) : child.once('exit', resolve)));
    },
  };
}

async function inProcess(apiKey: string, leaseTtlSeconds: number): Promise<BenchApi> {
  const emu = await startEmulator({ apiKeys: [apiKey], leaseTtl: { defaultSeconds: leaseTtlSeconds } });
  return {
    url: emu.url,
    where: 'in-process',
    mintKey: async (id) => emu.admin.mintKey(id),
    createSession: async (id) => emu.admin.createSession(id).session_id,
    createSessions: async (id, count) => {
      for (let i = 0; i < count; i++) emu.admin.createSession(id);
    },
    requestCounts: async () => totals(emu.state.requestCounts()),
    cpuMs: () => 0,
    close: () => emu.close(),
  };
}

const totals = (byRoute: Record<string, Record<string, number>>): Record<string, number> =>
  Object.fromEntries(Object.entries(byRoute).map(([route, byStatus]) => [route, Object.values(byStatus).reduce((a, b) => a + b, 0)]));

/** CPU time of a child process, ms (0 once it is gone). */
function processCpuMs(child: ChildProcess): number {
  try {
    return processCpuSeconds(child.pid!) * 1000;
  } catch {
    return 0;
  }
}

/** Requests between two counts, by route. */
export function countsSince(before: Record<string, number>, after: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(after).map(([route, n]) => [route, n - (before[route] ?? 0)]).filter(([, n]) => (n as number) > 0));
}
