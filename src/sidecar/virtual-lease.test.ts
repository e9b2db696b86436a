import { describe, expect, it } from 'vitest';
import { Lease, NO_HEARTBEAT, type Beat } from './lease.ts';
import { decideMainStop, freshStamp, VirtualLease } from './virtual-lease.ts';

const NOW = Date.parse('2026-12-03T07:00:00Z');
const beat = (over: Partial<Beat> = {}): Beat => ({ last_heartbeat: 'real-1', lease_extended: true, state: 'active', ttl_seconds: 40, ...over });

/** A real lease claimed by the sidecar, with `over` as its last beat. */
function held(over: Partial<Beat> = {}): Lease {
  const lease = Lease.unclaimed('w');
  const ordered = lease.applyBeat(beat(over));
  if (ordered) lease.end(ordered);
  return lease;
}

describe('the virtual lease', () => {
  it('a heartbeat with NO_HEARTBEAT succeeds and carries the real state, lease_extended and ttl_seconds', () => {
    const v = new VirtualLease();
    const a = v.heartbeat(NO_HEARTBEAT, held(), NOW);
    expect(a).toEqual({ status: 200, body: { last_heartbeat: '2026-12-03T07:00:00.000Z', lease_extended: true, state: 'active', ttl_seconds: 40 } });
    expect(v.lastHeartbeat).toBe('2026-12-03T07:00:00.000Z');
  });

  it('a heartbeat echoing the last value handed out succeeds with a fresh last_heartbeat', () => {
    const v = new VirtualLease();
    const lease = held();
    const first = v.heartbeat(NO_HEARTBEAT, lease, NOW) as { body: { last_heartbeat: string } };
    const second = v.heartbeat(first.body.last_heartbeat, lease, NOW) as { status: number; body: { last_heartbeat: string } };
    expect(second.status).toBe(200);
    expect(second.body.last_heartbeat).not.toBe(first.body.last_heartbeat);
  });

  it('a stale echo gets 412 with error.details.current_state, as the API answers', () => {
    const v = new VirtualLease('2026-12-03T06:59:00.000Z');
    expect(v.heartbeat('2026-12-03T06:58:00.000Z', held(), NOW)).toEqual({
      status: 412,
      error: expect.objectContaining({ details: { current_state: { state: 'active', ttl_seconds: 40, last_heartbeat: '2026-12-03T06:59:00.000Z' } } }),
    });
    expect(v.lastHeartbeat).toBe('2026-12-03T06:59:00.000Z');
  });

  it.each([
    ['stopping passes through', { state: 'stopping' as const, lease_extended: true }, 'stopping', true],
    ['stopped passes through, never extended', { state: 'stopped' as const, lease_extended: false }, 'stopped', false],
    ['lease_extended: false passes through', { lease_extended: false }, 'active', false],
  ])('%s', (_rule, over, state, extended) => {
    expect(new VirtualLease().heartbeat(NO_HEARTBEAT, held(over), NOW)).toMatchObject({ status: 200, body: { state, lease_extended: extended } });
  });

  it.each(['lease-lost', 'lease-expired', 'heartbeat-rejected'] as const)('a real lease ended by %s answers 412, so the runner releases the item without stopping it', (reason) => {
    const lease = held();
    lease.end(reason);
    const v = new VirtualLease();
    expect(v.heartbeat(NO_HEARTBEAT, lease, NOW)).toMatchObject({ status: 412, error: { details: { current_state: { state: 'active' } } } });
  });

  it.each(['session-ended', 'terminated'] as const)('a stop the sidecar carries out (%s) reads as stopping, not extended', (reason) => {
    const lease = held();
    lease.end(reason);
    expect(new VirtualLease().heartbeat(NO_HEARTBEAT, lease, NOW)).toMatchObject({ status: 200, body: { state: 'stopping', lease_extended: false } });
  });

  it('never answers 401, 403 or 404 (the official runner force-stops on those)', () => {
    const statuses = new Set<number>();
    for (const over of [{}, { state: 'stopping' as const }, { state: 'stopped' as const }, { lease_extended: false }]) {
      for (const reason of [undefined, 'lease-lost', 'lease-expired', 'heartbeat-rejected', 'session-ended', 'terminated', 'stop-requested'] as const) {
        for (const expected of [NO_HEARTBEAT, 'stale', '', undefined]) {
          const lease = held(over);
          if (reason) lease.end(reason);
          statuses.add(new VirtualLease('x').heartbeat(expected, lease, NOW).status);
        }
      }
    }
    statuses.add(new VirtualLease().heartbeat(NO_HEARTBEAT, Lease.unclaimed('w'), NOW).status);
    expect([...statuses].sort()).toEqual([200, 400, 412, 503]);
  });

  it('restored after a sidecar restart, it accepts the stamp it handed out before', () => {
    const lease = Lease.restored({ work_id: 'w', last_heartbeat: 'real-9', ttl_seconds: 40, state: 'active', lease_extended: true });
    expect(new VirtualLease('2026-12-03T06:59:59.000Z').heartbeat('2026-12-03T06:59:59.000Z', lease, NOW)).toMatchObject({ status: 200, body: { state: 'active' } });
  });

  it('hands out a stamp strictly after the previous one, even within one millisecond', () => {
    expect(freshStamp(NOW, '2026-12-03T07:00:00.000Z')).toBe('2026-12-03T07:00:00.001Z');
    expect(freshStamp(NOW, undefined)).toBe('2026-12-03T07:00:00.000Z');
  });
});

describe("the main container's stop", () => {
  it('means the session is done: the sidecar performs the real stop', () => {
    expect(decideMainStop(held())).toEqual({ kind: 'stop' });
    expect(decideMainStop(held({ state: 'stopping' }))).toEqual({ kind: 'stop' });
  });

  it('after a lost lease answers 409 and stops nothing', () => {
    const lease = held();
    lease.end('lease-lost');
    expect(decideMainStop(lease)).toMatchObject({ kind: 'answer', answer: { status: 409 } });
  });

  it('of an item already stopped answers 409, as the API does', () => {
    const lease = held();
    lease.markStopped();
    expect(decideMainStop(lease)).toMatchObject({ kind: 'answer', answer: { status: 409 } });
  });
});
