import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ConnectionError, InvalidRequestError, RateLimitError, ServerError, TimeoutError } from '../../src/api/errors.ts';
import type { RunningEmulator } from '../../src/emulator/index.ts';
import { clientFor, emulator, selfHosted } from '../support/emulator.ts';

let emu: RunningEmulator;
beforeAll(async () => {
  emu = await emulator();
});
afterAll(() => emu.close());
beforeEach(() => {
  emu.admin.clearFaults();
  emu.state.resetRequestCounts();
});

const calls = (template: string): number =>
  Object.values(emu.state.requestCounts()[template] ?? {}).reduce((a, b) => a + b, 0);

describe('fault handling of the client', () => {
  it('waits out a 429 Retry-After: no request is sent before it expires', async () => {
    const api = clientFor(emu);
    const env = await selfHosted(api);
    emu.state.resetRequestCounts();
    emu.admin.setFaults([{ method: 'GET', path: '/v1/environments/*', status: 429, retry_after: 1, count: 1 }]);
    const started = performance.now();
    await expect(api.getEnvironment(env.id)).resolves.toMatchObject({ id: env.id });
    // A retry before the deadline would have succeeded earlier than this (the fault fires once).
    expect(performance.now() - started).toBeGreaterThanOrEqual(1_000);
    expect(calls('GET /v1/environments/{environment_id}')).toBe(2);
  });

  it('surfaces a Retry-After longer than it may wait in place, carrying the delay', async () => {
    const api = clientFor(emu);
    const env = await selfHosted(api);
    emu.admin.setFaults([{ path: '/v1/environments/*', status: 429, retry_after: 120 }]);
    const err = await api.getEnvironment(env.id).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RateLimitError);
    expect((err as RateLimitError).retryAfterMs).toBe(120_000);
  });

  it('retries 5xx with backoff until the API recovers', async () => {
    const api = clientFor(emu);
    const env = await selfHosted(api);
    emu.state.resetRequestCounts();
    emu.admin.setFaults([{ path: '/v1/environments/*/work/stats', status: 503, count: 2 }]);
    await expect(api.getQueueStats(env.id)).resolves.toMatchObject({ type: 'work_queue_stats' });
    expect(calls('GET /v1/environments/{environment_id}/work/stats')).toBe(3);
  });

  it('gives up on persistent 5xx after its retries with a ServerError', async () => {
    const api = clientFor(emu);
    const env = await selfHosted(api);
    emu.admin.setFaults([{ path: '/v1/environments/*/work/stats', status: 500 }]);
    await expect(api.getQueueStats(env.id)).rejects.toBeInstanceOf(ServerError);
  });

  it('retries a reset connection', async () => {
    const api = clientFor(emu);
    const env = await selfHosted(api);
    emu.admin.setFaults([{ path: '/v1/environments/*', method: 'GET', reset: true, count: 1 }]);
    await expect(api.getEnvironment(env.id)).resolves.toMatchObject({ id: env.id });
  });

  it('reports a reset on a never-retried call (create) as a ConnectionError', async () => {
    emu.admin.setFaults([{ path: '/v1/environments', method: 'POST', reset: true, count: 1 }]);
    await expect(clientFor(emu).createEnvironment({ name: 'x' })).rejects.toBeInstanceOf(ConnectionError);
  });

  it('does not retry a fatal 4xx', async () => {
    const api = clientFor(emu);
    emu.state.resetRequestCounts();
    emu.admin.setFaults([{ path: '/v1/environments', method: 'GET', status: 400, message: 'bad request' }]);
    await expect(api.listEnvironmentsPage()).rejects.toBeInstanceOf(InvalidRequestError);
    expect(calls('GET /v1/environments')).toBe(1);
  });

  it('turns added latency beyond the deadline into a TimeoutError', async () => {
    const api = clientFor(emu, undefined, { timeoutMs: 100, retry: { maxRetries: 0, backoff: { baseMs: 1, capMs: 1 }, maxRetryAfterMs: 0 } });
    const env = await selfHosted(clientFor(emu));
    emu.admin.setFaults([{ path: '/v1/environments/*', latency_ms: 400 }]);
    await expect(api.getEnvironment(env.id)).rejects.toBeInstanceOf(TimeoutError);
  });

  it('applies a probability-0 rule never and a counted rule exactly count times', async () => {
    const api = clientFor(emu);
    const env = await selfHosted(api);
    emu.admin.setFaults([
      { path: '/v1/environments/*', status: 500, probability: 0 },
      { path: '/v1/environments/*', status: 502, count: 1 },
    ]);
    await expect(api.getEnvironment(env.id)).resolves.toBeTruthy();
    const faults = (emu.admin.snapshot() as { requests: Record<string, Record<string, number>> }).requests['GET /v1/environments/{environment_id}'];
    expect(faults).toMatchObject({ '502': 1, '200': 1 });
  });
});
