import { describe, expect, it } from 'vitest';
import { silentLogger } from '../telemetry/logger.ts';
import { KubeError, kubeErrorFromStatus } from '../k8s/errors.ts';
import { Controller, defaultErrorPolicy, FORGET, requeueAfter, RESYNC, TerminalError, type Outcome } from './controller.ts';

const tick = () => new Promise((r) => setTimeout(r, 5));

function harness(reconcile: (key: string) => Promise<Outcome>, concurrency = 4) {
  const ctrl = new AbortController();
  const c = new Controller({
    name: 'test',
    reconcile,
    logger: silentLogger,
    concurrency,
    backoff: { baseMs: 1, capMs: 4, jitter: 0 },
    resyncMs: 60_000,
  });
  const running = c.run(ctrl.signal);
  return { c, stop: async () => (ctrl.abort(), running) };
}

describe('Controller', () => {
  it('never runs two reconciles of one key at once, and runs the latest change after', async () => {
    let active = 0;
    let maxActive = 0;
    let runs = 0;
    const { c, stop } = harness(async () => {
      active++;
      maxActive = Math.max(maxActive, active);
      runs++;
      await tick();
      active--;
      return FORGET;
    });
    for (let i = 0; i < 10; i++) c.enqueue('ns/a');
    await tick();
    c.enqueue('ns/a');
    await new Promise((r) => setTimeout(r, 40));
    await stop();
    expect(maxActive).toBe(1);
    expect(runs).toBe(2);
  });

  it('reconciles different keys in parallel up to the concurrency', async () => {
    let active = 0;
    let maxActive = 0;
    const { c, stop } = harness(async () => {
      maxActive = Math.max(maxActive, ++active);
      await tick();
      active--;
      return FORGET;
    }, 3);
    for (const k of ['a', 'b', 'c', 'd', 'e']) c.enqueue(k);
    await new Promise((r) => setTimeout(r, 40));
    await stop();
    expect(maxActive).toBe(3);
  });

  it('retries a failing key with backoff and resets it on success', async () => {
    const failuresSeen: number[] = [];
    let n = 0;
    const c = new Controller({
      name: 't',
      logger: silentLogger,
      backoff: { baseMs: 1, capMs: 2, jitter: 0 },
      reconcile: async (_k, ctx) => {
        failuresSeen.push(ctx.failures);
        if (++n < 3) throw new Error('transient');
        return FORGET;
      },
    });
    const ctrl = new AbortController();
    const running = c.run(ctrl.signal);
    c.enqueue('k');
    await new Promise((r) => setTimeout(r, 50));
    ctrl.abort();
    await running;
    expect(failuresSeen).toEqual([0, 1, 2]);
    expect(c.queue.failures('k')).toBe(0);
  });

  it('does not hot-loop on a terminal error: it waits for the resync', async () => {
    let runs = 0;
    const { c, stop } = harness(async () => {
      runs++;
      throw new TerminalError('bad spec');
    });
    c.enqueue('k');
    await new Promise((r) => setTimeout(r, 40));
    await stop();
    expect(runs).toBe(1);
  });

  it('schedules the requested requeue and the resync after success', async () => {
    const { c, stop } = harness(async (k) => (k === 'soon' ? requeueAfter(5) : RESYNC));
    c.enqueue('soon');
    c.enqueue('later');
    await tick();
    expect(c.queue.size).toBe(2); // both scheduled again
    await stop();
  });

  it('returns at once when started with an already-aborted signal (stopped before it began)', async () => {
    const c = new Controller({ name: 'test', reconcile: async () => FORGET, logger: silentLogger });
    const ctrl = new AbortController();
    ctrl.abort();
    c.enqueue('k');
    const outcome = await Promise.race([c.run(ctrl.signal).then(() => 'returned'), new Promise((r) => setTimeout(() => r('hung'), 500))]);
    expect(outcome).toBe('returned');
  });

  it('makes an apiserver 429 thrown out of a reconcile wait at least its Retry-After', async () => {
    const runs: number[] = [];
    const c = new Controller({
      name: 't',
      logger: silentLogger,
      backoff: { baseMs: 1, capMs: 2, jitter: 0 },
      reconcile: async () => {
        runs.push(performance.now());
        if (runs.length === 1) throw kubeErrorFromStatus(429, { kind: 'Status', reason: 'TooManyRequests', message: 'slow down' }, 'update agentenvironments/status', '1');
        return FORGET;
      },
    });
    const ctrl = new AbortController();
    const running = c.run(ctrl.signal);
    c.enqueue('k');
    await new Promise((r) => setTimeout(r, 1_500));
    ctrl.abort();
    await running;
    expect(runs).toHaveLength(2);
    // Timers may fire up to a millisecond early; the ordinary backoff here would be 1 ms.
    expect(runs[1]! - runs[0]!).toBeGreaterThanOrEqual(990);
  });

  it('uses the error policy it is given', async () => {
    let runs = 0;
    const c = new Controller({
      name: 't',
      logger: silentLogger,
      backoff: { baseMs: 1, capMs: 2, jitter: 0 },
      resyncMs: 60_000,
      errorPolicy: () => ({ retry: 'resync' }),
      reconcile: async () => {
        runs++;
        throw new Error('would be retried by the default policy');
      },
    });
    const ctrl = new AbortController();
    const running = c.run(ctrl.signal);
    c.enqueue('k');
    await new Promise((r) => setTimeout(r, 40));
    ctrl.abort();
    await running;
    expect(runs).toBe(1);
  });
});

describe('defaultErrorPolicy', () => {
  const kube429 = kubeErrorFromStatus(429, { kind: 'Status', reason: 'TooManyRequests', message: 'm' }, 'get x', '3');
  const kube503 = kubeErrorFromStatus(503, { kind: 'Status', message: 'm', details: { retryAfterSeconds: 2 } }, 'get x');
  /** An Environments API error carries the same field (runtime may not import api/, so its shape stands in). */
  const api429 = Object.assign(new Error('rate limited'), { code: 'rate_limited', retryAfterMs: 4_000 });
  it.each([
    ['a terminal error waits for a change or the resync', new TerminalError('bad spec'), { retry: 'resync' }],
    ['an apiserver 429 backs off no earlier than its Retry-After', kube429, { retry: 'backoff', notBeforeMs: 3_000 }],
    ["an apiserver 503 backs off no earlier than the Status body's retryAfterSeconds", kube503, { retry: 'backoff', notBeforeMs: 2_000 }],
    ['an API 429 backs off no earlier than its Retry-After', api429, { retry: 'backoff', notBeforeMs: 4_000 }],
    ['a Kubernetes conflict gets plain backoff', new KubeError('Conflict', 'stale', { status: 409 }), { retry: 'backoff', notBeforeMs: 0 }],
    ['any other error gets plain backoff', new Error('boom'), { retry: 'backoff', notBeforeMs: 0 }],
    ['a thrown non-object gets plain backoff', 'a string', { retry: 'backoff', notBeforeMs: 0 }],
    ['a zero or negative retryAfterMs is no floor', Object.assign(new Error('x'), { retryAfterMs: -5 }), { retry: 'backoff', notBeforeMs: 0 }],
  ])('%s', (_rule, err, expected) => {
    expect(defaultErrorPolicy(err)).toEqual(expected);
  });
});
