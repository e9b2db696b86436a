import { describe, expect, it } from 'vitest';
import { SIDECAR_EXIT_LEASE_LOST, SIDECAR_EXIT_STOPPED_BY_API } from '../contract/sidecar.ts';
import { beatIntervalMs, Lease, NO_HEARTBEAT, type Beat, type EndReason } from './lease.ts';
import { parseLeaseRecord } from './lease-file.ts';

const beat = (over: Partial<Beat> = {}): Beat => ({ last_heartbeat: 't1', lease_extended: true, state: 'active', ttl_seconds: 60, ...over });

describe('beat interval', () => {
  it.each([
    [90, 30_000], // min(45 s, 30 s)
    [60, 30_000],
    [40, 20_000], // half the TTL
    [10, 5_000],
    [1, 1_000], // never below 1 s
    [0.5, 1_000],
  ])('is min(ttl/2, 30 s) and at least 1 s (ttl %s s → %s ms)', (ttl, ms) => {
    expect(beatIntervalMs(ttl)).toBe(ms);
  });
});

describe('Lease', () => {
  it('claims with NO_HEARTBEAT, then echoes the server stamp and adopts its TTL', () => {
    const lease = Lease.unclaimed('w');
    expect(lease.expectedLastHeartbeat).toBe(NO_HEARTBEAT);
    expect(lease.claimed).toBe(false);
    expect(lease.applyBeat(beat({ last_heartbeat: '2026-01-01T00:00:00.000001Z', ttl_seconds: 20 }))).toBeUndefined();
    expect(lease.expectedLastHeartbeat).toBe('2026-01-01T00:00:00.000001Z');
    expect(lease.intervalMs).toBe(10_000);
    expect(lease.claimed).toBe(true);
  });

  it.each([
    [{ state: 'stopping' as const }, false],
    [{ state: 'stopped' as const }, true],
    [{ lease_extended: false }, false],
  ])('treats a reply %o as a stop order (item known stopped: %s)', (over, stopped) => {
    const lease = Lease.unclaimed('w');
    expect(lease.applyBeat(beat(over))).toBe('stop-requested');
    expect(lease.stopped).toBe(stopped);
  });

  it.each([
    [['session-ended'], 0],
    [['terminated'], 0],
    [['stop-requested'], SIDECAR_EXIT_STOPPED_BY_API],
    [['session-ended', 'stop-requested'], 0],
    [['stop-requested', 'session-ended'], SIDECAR_EXIT_STOPPED_BY_API],
    [['session-ended', 'lease-lost'], SIDECAR_EXIT_LEASE_LOST],
    [['lease-expired'], SIDECAR_EXIT_LEASE_LOST],
  ] as [EndReason[], number][])('exits with the code of the first end reason, a loss whatever came first (%o → %s), the same after a restore', (reasons, code) => {
    const lease = Lease.unclaimed('w');
    lease.applyBeat(beat());
    for (const r of reasons) lease.end(r);
    expect(lease.exitCode).toBe(code);
    expect(Lease.restored(parseLeaseRecord(JSON.stringify(lease.record()))!).exitCode).toBe(code);
  });

  it('keeps the first end reason', () => {
    const lease = Lease.unclaimed('w');
    expect(lease.end('stop-requested')).toBe(true);
    expect(lease.end('session-ended')).toBe(false);
    expect(lease.endReason).toBe('stop-requested');
  });

  it('remembers a loss that follows another end reason, so stop is never called after it', () => {
    const lease = Lease.unclaimed('w');
    lease.end('session-ended');
    expect(lease.needsStopCall).toBe(true);
    lease.end('lease-lost');
    expect(lease.endReason).toBe('session-ended');
    expect(lease.lost).toBe(true);
    expect(lease.needsStopCall).toBe(false);
    expect(lease.keepsBeating).toBe(false);
  });

  it.each(['lease-lost', 'lease-expired'] as const)('never needs a stop call after %s', (reason) => {
    const lease = Lease.unclaimed('w');
    lease.end(reason);
    expect(lease.needsStopCall).toBe(false);
    expect(lease.keepsBeating).toBe(false);
  });

  it.each(['stop-requested', 'session-ended', 'terminated', 'heartbeat-rejected'] as const)('stops the item after %s, unless it is already stopped', (reason) => {
    const lease = Lease.unclaimed('w');
    lease.end(reason);
    expect(lease.needsStopCall).toBe(true);
    expect(lease.keepsBeating).toBe(true); // a drain keeps its lease until the stop is confirmed
    lease.markStopped();
    expect(lease.needsStopCall).toBe(false);
    expect(lease.keepsBeating).toBe(false);
  });

  it('round-trips through lease.json, end reason and loss included', () => {
    const lease = Lease.unclaimed('w', 30);
    lease.applyBeat(beat({ last_heartbeat: 't9', ttl_seconds: 30 }));
    lease.end('lease-expired');
    const text = JSON.stringify(lease.record());
    const restored = Lease.restored(parseLeaseRecord(text)!);
    expect(restored.expectedLastHeartbeat).toBe('t9');
    expect(restored.ttlSeconds).toBe(30);
    expect(restored.endReason).toBe('lease-expired');
    expect(restored.lost).toBe(true);
    expect(restored.claimed).toBe(true);
  });

  it.each(['', 'not json', '{}', '{"work_id":"w","last_heartbeat":"","ttl_seconds":10}', '{"work_id":"w","last_heartbeat":"t","ttl_seconds":0}'])('ignores a malformed lease.json (%s)', (text) => {
    expect(parseLeaseRecord(text)).toBeUndefined();
  });
});
