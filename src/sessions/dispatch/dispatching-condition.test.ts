import { describe, expect, it } from 'vitest';
import type { AgentEnvironment } from '../../crd/resources.ts';
import { KubeError } from '../../k8s/errors.ts';
import { silentLogger } from '../../telemetry/logger.ts';
import { DispatchingConditionWriter } from './dispatching-condition.ts';
import type { DispatchState } from './poller.ts';

const POLLING: DispatchState = { dispatching: true };
const PAUSED: DispatchState = { dispatching: false, reason: 'CredentialsMissing', message: 'no key' };

/** A fake apiserver for one AgentEnvironment: patches are counted and applied to `stored`; the cache is moved by hand. */
function world() {
  let version = 1;
  const env = (rv: number, conditions: unknown[] = []): AgentEnvironment =>
    ({ metadata: { namespace: 'ns', name: 'env', resourceVersion: String(rv) }, spec: {}, status: { conditions } }) as unknown as AgentEnvironment;
  let stored = env(version);
  let cached = stored;
  const patches: unknown[] = [];
  const failures: Error[] = [];
  let release: (() => void) | undefined;
  let holdWrites = false;
  const rest = {
    async patch(_type: unknown, _ns: unknown, _name: unknown, body: { status: { conditions: unknown[] } }) {
      patches.push(body.status.conditions[0]);
      if (holdWrites) await new Promise<void>((r) => (release = r));
      const failure = failures.shift();
      if (failure) throw failure;
      stored = env(++version, body.status.conditions);
      return stored;
    },
  };
  const slept: number[] = [];
  const writer = new DispatchingConditionWriter({
    rest: rest as never,
    cached: () => cached,
    logger: silentLogger,
    sleep: async (ms) => void slept.push(ms),
  });
  const settle = () => new Promise((r) => setTimeout(r, 0));
  return {
    writer,
    patches,
    failures,
    slept,
    settle,
    /** The informer delivers what is stored. */
    catchUp: () => void (cached = stored),
    /** Another writer replaces the status (the condition is lost). */
    overwrite: () => void (cached = stored = env(++version)),
    hold: () => void (holdWrites = true),
    releaseWrite: () => {
      holdWrites = false;
      release?.();
    },
    get env() {
      return cached;
    },
  };
}

describe('DispatchingConditionWriter', () => {
  it('writes once while the cache still shows the object the write was based on (the start-up storm)', async () => {
    const w = world();
    for (let i = 0; i < 50; i++) {
      w.writer.report(w.env, POLLING);
      await w.settle();
    }
    expect(w.patches).toHaveLength(1);
    w.catchUp();
    w.writer.report(w.env, POLLING);
    await w.settle();
    expect(w.patches).toHaveLength(1);
    expect(w.writer.tracked).toBe(0); // nothing is kept once the cache has caught up
  });

  it('coalesces reports made during a write into the latest, written after it', async () => {
    const w = world();
    w.hold();
    w.writer.report(w.env, POLLING);
    w.writer.report(w.env, PAUSED);
    w.writer.report(w.env, POLLING);
    w.writer.report(w.env, PAUSED);
    await w.settle();
    expect(w.patches).toHaveLength(1);
    w.releaseWrite();
    await w.settle();
    await w.settle();
    expect(w.patches).toMatchObject([{ status: 'True' }, { status: 'False', reason: 'CredentialsMissing' }]);
  });

  it('writes a different condition at once, even before the cache has caught up', async () => {
    const w = world();
    w.writer.report(w.env, POLLING);
    await w.settle();
    w.writer.report(w.env, PAUSED);
    await w.settle();
    expect(w.patches).toMatchObject([{ status: 'True' }, { status: 'False' }]);
  });

  it('puts back a condition another writer removed, once the cache shows it gone', async () => {
    const w = world();
    w.writer.report(w.env, POLLING);
    await w.settle();
    w.catchUp();
    w.overwrite();
    w.writer.report(w.env, POLLING);
    await w.settle();
    expect(w.patches).toHaveLength(2);
  });

  it('retries a 429 no earlier than Retry-After (capped), and gives up on a refusal without keeping anything', async () => {
    const w = world();
    w.failures.push(new KubeError('TooManyRequests', 'slow down', { status: 429, retryAfterMs: 8_000 }), new KubeError('TooManyRequests', 'slow down', { status: 429, retryAfterMs: 60_000 }));
    w.writer.report(w.env, POLLING);
    for (let i = 0; i < 5; i++) await w.settle();
    expect(w.patches).toHaveLength(3);
    expect(w.slept).toEqual([8_000, 10_000]);

    const r = world();
    r.failures.push(new KubeError('Forbidden', 'no', { status: 403 }));
    r.writer.report(r.env, POLLING);
    for (let i = 0; i < 3; i++) await r.settle();
    expect(r.patches).toHaveLength(1);
    expect(r.writer.tracked).toBe(0);
    r.writer.report(r.env, POLLING); // the next report tries again
    await r.settle();
    expect(r.patches).toHaveLength(2);
  });
});
