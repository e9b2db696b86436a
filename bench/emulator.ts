/**
 * Emulator throughput: the emulator runs in its own process (one core, it is single-threaded) and
 * this process generates load over keep-alive connections.
 *
 * - poll (empty queue, no block) requests per second
 * - heartbeat requests per second (each connection renews its own lease, echoing last_heartbeat)
 * - CPU used by the emulator while 2,000 long polls are parked (should be ~0)
 */
import { once } from 'node:events';
import { Pool } from 'undici';
import { processCpuSeconds, startEmulatorProcess } from './support.ts';

const KEY = 'sk-bench';
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- benchmark reads a few known fields of API replies
type Json = any;
const HEADERS = { 'x-api-key': KEY, 'anthropic-version': '2023-06-01', 'anthropic-beta': 'managed-agents-2026-04-01' };

async function json(pool: Pool, method: 'GET' | 'POST', path: string, body?: unknown): Promise<Json> {
  const res = await pool.request({ method, path, headers: { ...HEADERS, 'content-type': 'application/json' }, body: body === undefined ? null : JSON.stringify(body) });
  const text = await res.body.text();
  if (res.statusCode >= 400) throw new Error(`${method} ${path}: ${res.statusCode} ${text}`);
  return JSON.parse(text);
}

async function rate(seconds: number, workers: number, op: (worker: number) => Promise<void>): Promise<number> {
  let done = 0;
  const until = performance.now() + seconds * 1000;
  await Promise.all(
    Array.from({ length: workers }, async (_, w) => {
      while (performance.now() < until) {
        await op(w);
        done++;
      }
    }),
  );
  return done / seconds;
}

export async function benchEmulator(): Promise<Record<string, number>> {
  const { url, child } = await startEmulatorProcess(KEY);
  const pool = new Pool(url, { connections: 32, pipelining: 1 });
  try {
    const env = await json(pool, 'POST', '/v1/environments', { name: 'bench', config: { type: 'self_hosted' } });
    const base = `/v1/environments/${env.id}/work`;

    // Warm up the JIT, then measure empty polls.
    await rate(1, 32, async () => void (await json(pool, 'GET', `${base}/poll`)));
    const cpu0 = processCpuSeconds(child.pid!);
    const pollRate = await rate(4, 32, async () => void (await json(pool, 'GET', `${base}/poll`)));
    const pollCpu = (processCpuSeconds(child.pid!) - cpu0) / 4;

    // 32 claimed leases, one per connection, each renewed in a loop with an exact echo.
    const admin = new Pool(url, { connections: 4 });
    const leases: Array<{ id: string; last: string }> = [];
    for (let i = 0; i < 32; i++) {
      const res = await admin.request({ method: 'POST', path: `/emulator/v1/environments/${env.id}/sessions`, body: '{}' });
      const { work_id } = (await res.body.json()) as { work_id: string };
      await json(pool, 'POST', `${base}/${work_id}/ack`);
      const hb = await json(pool, 'POST', `${base}/${work_id}/heartbeat?expected_last_heartbeat=NO_HEARTBEAT`);
      leases.push({ id: work_id, last: hb.last_heartbeat });
    }
    const beat = async (w: number): Promise<void> => {
      const lease = leases[w]!;
      const hb = await json(pool, 'POST', `${base}/${lease.id}/heartbeat?expected_last_heartbeat=${encodeURIComponent(lease.last)}`);
      lease.last = hb.last_heartbeat;
    };
    await rate(1, 32, beat);
    const cpu1 = processCpuSeconds(child.pid!);
    const heartbeatRate = await rate(4, 32, beat);
    const heartbeatCpu = (processCpuSeconds(child.pid!) - cpu1) / 4;

    // 2,000 parked long polls on an empty environment: measure CPU while they wait.
    const idleEnv = await json(pool, 'POST', '/v1/environments', { name: 'idle', config: { type: 'self_hosted' } });
    const idlePool = new Pool(url, { connections: 2000, pipelining: 1 });
    const parked = Array.from({ length: 2000 }, () =>
      idlePool.request({ method: 'GET', path: `/v1/environments/${idleEnv.id}/work/poll?block_ms=999`, headers: HEADERS }).then((r) => r.body.dump()),
    );
    await new Promise((r) => setTimeout(r, 400)); // all connected and parked
    const cpu2 = processCpuSeconds(child.pid!);
    await new Promise((r) => setTimeout(r, 400));
    const idleCpu = (processCpuSeconds(child.pid!) - cpu2) / 0.4;
    await Promise.all(parked);
    await idlePool.close();
    await admin.close();

    return {
      'emulator poll (empty) req/s': Math.round(pollRate),
      'emulator poll CPU (cores)': round2(pollCpu),
      'emulator heartbeat req/s': Math.round(heartbeatRate),
      'emulator heartbeat CPU (cores)': round2(heartbeatCpu),
      'emulator CPU with 2000 parked long polls (cores)': round2(idleCpu),
    };
  } finally {
    await pool.close();
    child.kill('SIGTERM');
    await once(child, 'exit');
  }
}

const round2 = (n: number): number => Math.round(n * 100) / 100;
