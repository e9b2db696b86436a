import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { KubeError } from '../k8s/errors.ts';
import type { KubeObject, KubeRest } from '../k8s/rest.ts';
import { createLogger } from '../telemetry/logger.ts';
import { LeaderElector, nextAttemptInMs } from './leader-election.ts';

/** A Lease store in memory; `down` makes every request fail as an unreachable apiserver would. */
function leases() {
  let lease: KubeObject | undefined;
  let version = 0;
  const state = { down: false };
  const check = (): void => {
    if (state.down) throw new KubeError('Unavailable', 'connect ECONNREFUSED');
  };
  const rest = {
    get: async () => {
      check();
      if (!lease) throw new KubeError('NotFound', 'not found', { status: 404 });
      return structuredClone(lease);
    },
    create: async (_t: unknown, _ns: unknown, o: KubeObject) => {
      check();
      lease = { ...o, metadata: { ...o.metadata, resourceVersion: String(++version) } };
      return lease;
    },
    replace: async (_t: unknown, _ns: unknown, o: KubeObject) => {
      check();
      lease = { ...o, metadata: { ...o.metadata, resourceVersion: String(++version) } };
      return lease;
    },
  } as unknown as KubeRest;
  return { rest, state };
}

const until = async (what: () => boolean): Promise<void> => {
  for (let i = 0; i < 500 && !what(); i++) await sleep(5);
  expect(what()).toBe(true);
};

describe('LeaderElector health and the leader gauge', () => {
  it('a leader that cannot renew loses the lead, says so in health() until the process exits, and the gauge follows', async () => {
    const { rest, state } = leases();
    const gauge: boolean[] = [];
    const elector = new LeaderElector({ rest, namespace: 'ns', name: 'lease', identity: 'me', logger: createLogger({ level: 'silent' }), retryPeriodMs: 5, renewDeadlineMs: 30, onLeadership: (l) => gauge.push(l) });
    expect(elector.health()).toBeUndefined();
    let lost: unknown;
    const stop = new AbortController();
    const running = elector.run(stop.signal, async (leading) => {
      await new Promise<void>((resolve) => leading.addEventListener('abort', () => resolve(), { once: true }));
      lost = leading.reason;
    });
    await until(() => elector.isLeader);
    expect(elector.health()).toBeUndefined();
    expect(gauge).toEqual([true]);
    state.down = true;
    await running;
    expect(String(lost)).toContain('leadership lost');
    expect(gauge).toEqual([true, false]);
    expect(elector.health()).toBe('leadership lost (the lease could not be renewed in time); the process should have exited');
  });

  it('a standby that stops on request is healthy and never counted as leader', async () => {
    const { rest } = leases();
    const holder = new LeaderElector({ rest, namespace: 'ns', name: 'lease', identity: 'other', logger: createLogger({ level: 'silent' }), retryPeriodMs: 5 });
    const holding = new AbortController();
    const held = holder.run(holding.signal, (leading) => new Promise((resolve) => leading.addEventListener('abort', () => resolve(), { once: true })));
    await until(() => holder.isLeader);
    const gauge: boolean[] = [];
    const standby = new LeaderElector({ rest, namespace: 'ns', name: 'lease', identity: 'me', logger: createLogger({ level: 'silent' }), retryPeriodMs: 5, onLeadership: (l) => gauge.push(l) });
    const stop = new AbortController();
    const waiting = standby.run(stop.signal, async () => {});
    await sleep(30);
    expect(standby.health()).toBeUndefined();
    stop.abort();
    await waiting;
    expect(gauge).toEqual([]);
    holding.abort();
    await held;
  });
});

describe('a standby takes a dead leader\'s lease as it expires', () => {
  it.each([
    { rule: 'nobody else holds the lease: one retry period', heldForMs: undefined, pause: 500 },
    { rule: 'the holder\'s lease runs longer than a period: one retry period', heldForMs: 2_000, pause: 500 },
    { rule: 'the holder\'s lease runs out within the period: just past its end', heldForMs: 120, pause: 121 },
    { rule: 'the holder\'s lease runs out now: just past its end', heldForMs: 0, pause: 1 },
  ])('$rule', ({ heldForMs, pause }) => {
    expect(nextAttemptInMs(500, heldForMs)).toBe(pause);
  });

  it('a lease its holder stopped renewing is taken at its expiry, not a retry period later', async () => {
    const { rest } = leases();
    // A leader that wrote its lease once (a 300 ms lease) and was then SIGKILLed.
    await rest.create({} as never, 'ns', { metadata: { name: 'lease' }, spec: { holderIdentity: 'dead', leaseDurationSeconds: 0.3, renewTime: new Date().toISOString() } } as KubeObject);
    const standby = new LeaderElector({ rest, namespace: 'ns', name: 'lease', identity: 'me', logger: createLogger({ level: 'silent' }), retryPeriodMs: 60_000 });
    const stop = new AbortController();
    const waiting = standby.run(stop.signal, (leading) => new Promise((resolve) => leading.addEventListener('abort', () => resolve(), { once: true })));
    await until(() => standby.isLeader); // within 2.5 s; a retry period is a minute
    stop.abort();
    await waiting;
  });
});
