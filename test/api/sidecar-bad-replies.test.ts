/**
 * Bad replies to the sidecar's own calls (heartbeat, stop), scripted with the emulator's "reply
 * with this body" fault, through the sidecar's real work-API client and heartbeat loop: a reply
 * that is not JSON, of the wrong types, cut short or too long is retried with backoff within the
 * lease's TTL — a glitch costs nothing, a server that keeps sending garbage ends the lease as
 * expired after a bounded number of attempts, and nothing throws.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { FaultRule, RunningEmulator } from '../../src/emulator/index.ts';
import { keepLease } from '../../src/sidecar/heartbeat.ts';
import { Lease } from '../../src/sidecar/lease.ts';
import { createSidecarLogger } from '../../src/sidecar/log.ts';
import { createUpstream } from '../../src/sidecar/upstream.ts';
import { MAX_REPLY_BYTES, WorkApi, WorkApiError } from '../../src/sidecar/work-api.ts';
import { emulator } from '../support/emulator.ts';
import { acknowledgedItem, type Item } from '../support/sidecar-process.ts';

const TTL_SECONDS = 2;

let emu: RunningEmulator;
let item: Item;
let api: WorkApi;
let close: () => void;
beforeEach(async () => {
  emu = await emulator({ leaseTtl: { minSeconds: 1, defaultSeconds: TTL_SECONDS } });
  item = await acknowledgedItem(emu);
  const upstream = createUpstream(new URL(emu.url), {});
  close = () => upstream.close();
  api = new WorkApi(upstream, item, item.environmentKey);
});
afterEach(async () => {
  close();
  await emu.close();
});

const HEARTBEAT = 'POST /v1/environments/{environment_id}/work/{work_id}/heartbeat';
const beats = (): Record<string, number> => emu.state.requestCounts()[HEARTBEAT] ?? {};
const heartbeatFault = (rule: Omit<FaultRule, 'path'>): FaultRule => ({ method: 'POST', path: '/v1/environments/*/work/*/heartbeat', ...rule });

/** Run the heartbeat loop until the lease ends or `until` holds; returns the lease and the log. */
async function beat(until: (lease: Lease) => boolean) {
  const lease = Lease.unclaimed(item.workId, TTL_SECONDS);
  const lines: Array<Record<string, unknown>> = [];
  const log = createSidecarLogger('debug', {}, (l) => lines.push(JSON.parse(l) as Record<string, unknown>));
  const stop = new AbortController();
  const ends: string[] = [];
  const loop = keepLease({ api, lease, desiredTtlSeconds: TTL_SECONDS, log, signal: stop.signal, onBeat: async () => undefined, onEnd: (r) => ends.push(r) });
  const deadline = Date.now() + 20_000;
  while (!lease.ended && !until(lease) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  stop.abort();
  await loop; // resolves: the loop never throws on a bad reply
  return { lease, lines, ends };
}

describe('bad heartbeat replies', () => {
  it.each([
    ['not JSON', { body: '{"type":"work_heartbeat",<html>' }],
    ['of the wrong types', { body: '{"type":"work_heartbeat","last_heartbeat":7,"lease_extended":"yes","state":"active","ttl_seconds":"90"}' }],
    ['cut mid-body', { body: `{"type":"work_heartbeat","last_heartbeat":"${'9'.repeat(300)}"}`, truncate_at: 40 }],
    ['longer than the read cap', { body: '{"type":"work_heartbeat"', body_bytes: 4 * MAX_REPLY_BYTES }],
  ] as const)('a reply %s, twice, is retried with backoff and the lease is claimed and kept', async (_name, rule) => {
    emu.admin.setFaults([heartbeatFault({ ...rule, count: 2 })]);
    const { lease, lines, ends } = await beat((l) => l.claimed && (beats()['200'] ?? 0) >= 2);
    expect(ends).toEqual([]);
    expect(lease.claimed).toBe(true);
    expect(emu.state.work.get(item.environmentId, item.workId).work.state).toBe('active');
    const retries = lines.filter((l) => l['msg'] === 'heartbeat failed; retrying');
    expect(retries).toHaveLength(2);
    expect(retries.every((l) => typeof l['retry_in_ms'] === 'number' && l['retry_in_ms'] > 0)).toBe(true);
  });

  it('garbage on every beat ends the lease as expired after a bounded number of attempts, never a tight loop', async () => {
    emu.admin.setFaults([heartbeatFault({ body: 'null' })]);
    const { lease, ends } = await beat(() => false);
    expect(ends).toEqual(['lease-expired']);
    expect(lease.lost).toBe(true); // the item is not stopped: the queue hands it out again
    // Backoff 250 ms doubling within a 2 s TTL: a handful of attempts, where a tight loop makes thousands.
    const attempts = Object.values(beats()).reduce((a, b) => a + b, 0);
    expect(attempts).toBeGreaterThanOrEqual(2);
    expect(attempts).toBeLessThanOrEqual(8);
  });
});

describe('bad stop replies', () => {
  it('an oversized stop reply is a malformed_response naming the cap, not read whole', async () => {
    emu.admin.setFaults([{ method: 'POST', path: '/v1/environments/*/work/*/stop', body: '{"id":', body_bytes: 64 * 1024 * 1024 }]);
    const err = await api.forceStop(5_000).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WorkApiError);
    expect(err).toMatchObject({ code: 'malformed_response' });
    expect((err as Error).message).toContain(`exceeds ${MAX_REPLY_BYTES} bytes`);
  });

  it('a stop reply that is not JSON is a malformed_response, not an exception', async () => {
    emu.admin.setFaults([{ method: 'POST', path: '/v1/environments/*/work/*/stop', body: '<html>bad gateway</html>' }]);
    await expect(api.forceStop(5_000)).rejects.toMatchObject({ code: 'malformed_response' });
  });
});
